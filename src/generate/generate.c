/* generate.c — the generation loop: prompt prefill, then one token per
 * sequence per bn_decode, sampling, stop tokens and strings, streaming in
 * whole UTF-8 characters, cancellation and timings. One code path serves a
 * single request (bn_generate) and many sequences at once (bn_generate_batch). */
#include "generate/generate_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- cancellation flag */

struct bn_cancel {
    atomic_int flag;
};

bn_status bn_cancel_create(bn_cancel **out) {
    if (!out) return bn_fail(BN_ERR_INVALID_ARG, "bn_cancel_create: out is NULL");
    bn_cancel *c = bn_calloc(1, sizeof *c);
    if (!c) return BN_ERR_NOMEM;
    atomic_init(&c->flag, 0);
    *out = c;
    return BN_OK;
}
void bn_cancel_free(bn_cancel *c) { free(c); }
void bn_cancel_request(bn_cancel *c) { if (c) atomic_store(&c->flag, 1); }
void bn_cancel_reset(bn_cancel *c) { if (c) atomic_store(&c->flag, 0); }
bool bn_cancel_requested(const bn_cancel *c) { return c && atomic_load(&((bn_cancel *)c)->flag) != 0; }

const char *bn_finish_reason_name(bn_finish_reason r) {
    switch (r) {
    case BN_FINISH_STOP: return "stop";
    case BN_FINISH_LENGTH: return "length";
    case BN_FINISH_CANCELLED: return "cancelled";
    case BN_FINISH_NONE: break;
    }
    return "none";
}

bn_generate_params bn_generate_default_params(void) {
    bn_generate_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = 128;
    return p;
}

void bn_generate_result_free(bn_generate_result *r) {
    if (!r) return;
    free(r->ids);
    free(r->text);
    r->ids = NULL;
    r->text = NULL;
    r->n_gen = 0;
    r->text_len = 0;
}

/* ---- per-sequence state */

typedef struct gen_seq {
    const bn_generate_request *rq;
    bn_generate_result        *res;
    bool        active;
    int32_t    *hist;        /* prompt + generated ids: penalty history     */
    int32_t     n_hist;
    int32_t     gen_cap;
    bn_streamer streamer;
    int32_t     pending;     /* sampled, to be decoded in the next step     */
    int32_t     logit_row;   /* row of this sequence in the current batch   */
    double      t_first;
    bool        has_text;
} gen_seq;

static void seq_error(gen_seq *s, bn_status st) {
    s->res->status = st;
    snprintf(s->res->error, sizeof s->res->error, "%s", bn_last_error());
    s->active = false;
}

static bool is_stop_token(const bn_model_info *mi, const bn_tokenizer *tok,
                          const bn_generate_params *p, int32_t t) {
    for (int32_t i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] == t) return true;
    if (p->ignore_eos) return false;
    if (mi->eos_id >= 0 && t == mi->eos_id) return true;
    return tok && bn_tokenizer_is_eog(tok, t);
}

static void finish(gen_seq *s, bn_finish_reason why, double now) {
    s->res->finish = why;
    s->active = false;
    if (s->res->n_gen > 0) s->res->gen_s = now - s->t_first;
}

/* Record a sampled token; decide whether the sequence goes on. */
static bn_status accept_token(gen_seq *s, const bn_model_info *mi, const bn_tokenizer *tok,
                              int32_t n_ctx, int32_t cache_len, int32_t t,
                              const bn_sample_info *info, double now, double t0) {
    bn_generate_result *r = s->res;
    const bn_generate_params *p = &s->rq->params;
    if (r->n_gen == s->gen_cap) {
        int32_t cap = s->gen_cap ? s->gen_cap * 2 : 64;
        int32_t *ids = realloc(r->ids, sizeof *ids * (size_t)cap);
        if (!ids) return bn_fail(BN_ERR_NOMEM, "out of memory for generated ids");
        r->ids = ids;
        s->gen_cap = cap;
    }
    r->ids[r->n_gen++] = t;
    s->hist[s->n_hist++] = t;
    if (r->n_gen == 1) {
        s->t_first = now;
        r->ttft_s = now - t0;
    }
    bool stop_tok = is_stop_token(mi, tok, p, t);
    const char *piece = NULL;
    size_t piece_len = 0;
    if (tok && !stop_tok) {
        size_t blen = 0;
        const char *bytes = bn_tokenizer_is_special(tok, t) ? NULL : bn_token_to_piece(tok, t, &blen);
        bn_status st = bn_streamer_push(&s->streamer, bytes ? bytes : "", bytes ? blen : 0, &piece, &piece_len);
        if (st) return st;
    }
    bool go_on = true;
    if (s->rq->cb) go_on = s->rq->cb(piece ? piece : "", piece_len, t, info, s->rq->user);
    if (stop_tok || s->streamer.stopped) finish(s, BN_FINISH_STOP, now);
    else if (!go_on || bn_cancel_requested(p->cancel)) finish(s, BN_FINISH_CANCELLED, now);
    else if (p->max_tokens > 0 && r->n_gen >= p->max_tokens) finish(s, BN_FINISH_LENGTH, now);
    else if (cache_len >= n_ctx) finish(s, BN_FINISH_LENGTH, now); /* no room to decode t */
    else s->pending = t;
    return BN_OK;
}

static bn_status sample_seq(gen_seq *s, bn_context *ctx, const bn_model_info *mi,
                            const bn_tokenizer *tok, int32_t n_ctx, double t0) {
    bn_sample_info info;
    int32_t t;
    const bn_generate_params *p = &s->rq->params;
    /* log-probabilities cost a pass of exp over the vocabulary: only on request */
    bool want_info = p->logprobs || p->n_top_logprobs > 0;
    bn_status st = bn_sample(ctx, s->logit_row, s->rq->sampler, s->hist, s->n_hist, p->n_top_logprobs,
                             want_info ? &info : NULL, &t);
    if (st) { seq_error(s, st); return BN_OK; } /* this sequence only */
    int32_t cache_len = bn_seq_length(ctx, p->seq_id);
    return accept_token(s, mi, tok, n_ctx, cache_len, t, want_info ? &info : NULL, bn_time_s(), t0);
}

/* Check one request before anything runs; on failure it is marked done. */
static void validate(gen_seq *s, bn_context *ctx, const bn_model_info *mi, int32_t n_ctx) {
    const bn_generate_request *rq = s->rq;
    const bn_generate_params *p = &rq->params;
    bn_status st = BN_OK;
    int32_t have = bn_seq_length(ctx, p->seq_id);
    if (!rq->sampler) st = bn_fail(BN_ERR_INVALID_ARG, "generate: no sampler");
    else if (p->seq_id < 0 || have < 0) st = bn_fail(BN_ERR_INVALID_ARG, "generate: sequence id %d is out of range", (int)p->seq_id);
    else if (rq->n_prompt <= 0 || !rq->prompt) st = bn_fail(BN_ERR_INVALID_ARG, "the prompt is empty: at least one token is needed");
    else if (p->n_top_logprobs < 0 || p->n_top_logprobs > BN_MAX_TOP_LOGPROBS)
        st = bn_fail(BN_ERR_INVALID_ARG, "n_top_logprobs must be in [0, %d]", BN_MAX_TOP_LOGPROBS);
    else if (p->n_stop < 0 || (p->n_stop > 0 && !p->stop) || p->n_stop_ids < 0 || (p->n_stop_ids > 0 && !p->stop_ids))
        st = bn_fail(BN_ERR_INVALID_ARG, "generate: bad stop list");
    else if ((int64_t)have + rq->n_prompt > n_ctx)
        st = bn_fail(BN_ERR_CONTEXT_FULL,
                     "the prompt has %d tokens but the context holds %d (%d already used): shorten the prompt or raise --ctx",
                     (int)rq->n_prompt, (int)n_ctx, (int)have);
    else
        for (int32_t i = 0; i < rq->n_prompt; i++)
            if (rq->prompt[i] < 0 || rq->prompt[i] >= mi->n_vocab) {
                st = bn_fail(BN_ERR_INVALID_ARG, "prompt token %d at index %d is out of range [0, %d)",
                             (int)rq->prompt[i], (int)i, (int)mi->n_vocab);
                break;
            }
    if (st) seq_error(s, st);
}

bn_status bn_generate_batch(bn_context *ctx, const bn_model *model, const bn_tokenizer *tok,
                            const bn_generate_request *reqs, int32_t n_req,
                            bn_generate_result *results) {
    if (!ctx || !model || !reqs || !results || n_req <= 0)
        return bn_fail(BN_ERR_INVALID_ARG, "bn_generate_batch: ctx, model, requests and results are required");
    const double t0 = bn_time_s();
    bn_model_info mi;
    bn_model_get_info(model, &mi);
    const int32_t n_ctx = bn_context_n_ctx(ctx);
    memset(results, 0, sizeof *results * (size_t)n_req);
    gen_seq *seqs = bn_calloc((size_t)n_req, sizeof *seqs);
    if (!seqs) return BN_ERR_NOMEM;
    bn_status st = BN_OK;
    int32_t *tokens = NULL, *seq_ids = NULL;
    int8_t *want = NULL;
    int64_t total_prompt = 0;

    for (int32_t i = 0; i < n_req; i++) {
        gen_seq *s = &seqs[i];
        s->rq = &reqs[i];
        s->res = &results[i];
        s->res->n_prompt = reqs[i].n_prompt > 0 ? reqs[i].n_prompt : 0;
        s->active = true;
        s->logit_row = -1;
        bn_streamer_init(&s->streamer, reqs[i].params.stop, reqs[i].params.n_stop);
        validate(s, ctx, &mi, n_ctx);
        for (int32_t j = 0; s->active && j < i; j++)
            if (seqs[j].active && seqs[j].rq->params.seq_id == reqs[i].params.seq_id)
                seq_error(s, bn_fail(BN_ERR_INVALID_ARG, "two requests use sequence %d", (int)reqs[i].params.seq_id));
        if (!s->active) continue;
        /* history: the prompt plus room for every token the context allows */
        s->hist = bn_malloc(sizeof *s->hist * ((size_t)reqs[i].n_prompt + (size_t)n_ctx + 1));
        if (!s->hist) { st = BN_ERR_NOMEM; goto done; }
        memcpy(s->hist, reqs[i].prompt, sizeof *s->hist * (size_t)reqs[i].n_prompt);
        s->n_hist = reqs[i].n_prompt;
        total_prompt += reqs[i].n_prompt;
    }

    /* ---- prefill: all prompts together, cut into calls of n_batch tokens */
    int32_t n_batch = reqs[0].params.n_batch > 0 ? reqs[0].params.n_batch : INT32_MAX;
    int64_t cap = total_prompt < n_batch ? total_prompt : n_batch;
    if (cap < n_req) cap = n_req; /* a decode step holds one token per sequence */
    tokens = bn_malloc(sizeof *tokens * (size_t)cap);
    seq_ids = bn_malloc(sizeof *seq_ids * (size_t)cap);
    want = bn_malloc(sizeof *want * (size_t)cap);
    if (!tokens || !seq_ids || !want) { st = BN_ERR_NOMEM; goto done; }
    {
        int32_t cur = 0, off = 0; /* request index, offset in its prompt */
        while (cur < n_req) {
            int32_t n = 0;
            while (cur < n_req && n < cap) {
                gen_seq *s = &seqs[cur];
                if (!s->active || off >= s->rq->n_prompt) { cur++; off = 0; continue; }
                tokens[n] = s->rq->prompt[off];
                seq_ids[n] = s->rq->params.seq_id;
                want[n] = off == s->rq->n_prompt - 1;
                if (want[n]) s->logit_row = n;
                n++;
                off++;
            }
            if (n == 0) break;
            bn_batch b = {n, tokens, seq_ids, NULL, want};
            st = bn_decode(ctx, &b);
            if (st) goto done;
            double now = bn_time_s();
            for (int32_t i = 0; i < n_req; i++) {
                gen_seq *s = &seqs[i];
                if (!s->active || s->logit_row < 0) continue;
                s->res->prompt_s = now - t0;
                if (bn_cancel_requested(s->rq->params.cancel)) { finish(s, BN_FINISH_CANCELLED, now); continue; }
                st = sample_seq(s, ctx, &mi, tok, n_ctx, t0);
                if (st) goto done;
                s->logit_row = -1;
            }
        }
    }

    /* ---- decode: one token per active sequence per step */
    for (;;) {
        int32_t n = 0;
        for (int32_t i = 0; i < n_req; i++) {
            gen_seq *s = &seqs[i];
            if (!s->active) continue;
            if (bn_cancel_requested(s->rq->params.cancel)) { finish(s, BN_FINISH_CANCELLED, bn_time_s()); continue; }
            tokens[n] = s->pending;
            seq_ids[n] = s->rq->params.seq_id;
            want[n] = 1;
            s->logit_row = n++;
        }
        if (n == 0) break;
        bn_batch b = {n, tokens, seq_ids, NULL, want};
        st = bn_decode(ctx, &b);
        if (st) goto done;
        for (int32_t i = 0; i < n_req; i++) {
            gen_seq *s = &seqs[i];
            if (!s->active) continue;
            st = sample_seq(s, ctx, &mi, tok, n_ctx, t0);
            if (st) goto done;
        }
    }

done:
    for (int32_t i = 0; i < n_req; i++) {
        gen_seq *s = &seqs[i];
        bn_generate_result *r = &results[i];
        if (st && r->status == BN_OK) {
            r->status = st;
            snprintf(r->error, sizeof r->error, "%s", bn_last_error());
        }
        if (r->status == BN_OK && tok) {
            const char *rest;
            size_t rest_len;
            bn_streamer_flush(&s->streamer, &rest, &rest_len);
            if (rest_len > 0 && s->rq->cb) s->rq->cb(rest, rest_len, -1, NULL, s->rq->user);
            /* hand the text buffer over to the result */
            if (!s->streamer.text) {
                s->streamer.text = calloc(1, 1);
                if (!s->streamer.text && st == BN_OK) st = bn_fail(BN_ERR_NOMEM, "out of memory");
            }
            r->text = s->streamer.text;
            r->text_len = s->streamer.len;
            s->streamer.text = NULL;
        }
        bn_streamer_free(&s->streamer);
        if (r->prompt_s > 0) r->prompt_tps = r->n_prompt / r->prompt_s;
        if (r->n_gen > 1 && r->gen_s > 0) r->gen_tps = (r->n_gen - 1) / r->gen_s;
        free(s->hist);
    }
    free(tokens);
    free(seq_ids);
    free(want);
    free(seqs);
    return st;
}

bn_status bn_generate(bn_context *ctx, const bn_model *model, const bn_tokenizer *tok,
                      bn_sampler *sampler, const int32_t *prompt, int32_t n_prompt,
                      const bn_generate_params *params, bn_token_callback cb, void *user,
                      bn_generate_result *result) {
    if (!result) return bn_fail(BN_ERR_INVALID_ARG, "bn_generate: result is NULL");
    bn_generate_request rq;
    memset(&rq, 0, sizeof rq);
    rq.prompt = prompt;
    rq.n_prompt = n_prompt;
    rq.sampler = sampler;
    rq.params = params ? *params : bn_generate_default_params();
    rq.cb = cb;
    rq.user = user;
    bn_status st = bn_generate_batch(ctx, model, tok, &rq, 1, result);
    if (st) return st;
    if (result->status) {
        /* restore the request's message as the thread's last error */
        return bn_fail(result->status, "%s", result->error);
    }
    return BN_OK;
}
