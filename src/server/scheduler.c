/* scheduler.c — continuous batching. One thread owns the context. Each step
 * builds ONE batch over all active slots (the next decode token of every
 * generating slot, then prompt chunks of the slots still reading their
 * prompt, up to n_batch tokens), runs one bn_decode, samples per slot and
 * hands text to the waiting HTTP side. Queued requests join between steps;
 * each goes to the free slot whose cached tokens share the longest prefix
 * with its prompt, and only the rest of the prompt is computed. */
#include "server/server.h"
#include "generate/generate_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- requests */

bn_srv_req *bn_srv_req_new(void) {
    bn_srv_req *r = bn_calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->cancel, 0);
    r->refs = 1;
    r->sp = bn_sampler_default_params();
    return r;
}

void bn_srv_req_release(bn_srv_req *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left > 0) return;
    free(r->prompt);
    free(r->bias);
    for (int32_t i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->text);
    free(r->toks);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* ---- scheduler */

typedef struct slot {
    bn_srv_req *req;       /* NULL: free                                     */
    int32_t    *cache;     /* [n_ctx] tokens held in this sequence's KV cache */
    int32_t     n_cache;
    int32_t     n_fed;     /* prompt tokens already in the cache              */
    bn_sampler *smp;
    bn_streamer st;
    int32_t    *hist;      /* prompt + generated: the penalty history         */
    int32_t     n_hist;
    int32_t     pending;   /* sampled, decoded in the next step               */
    bool        has_pending;
    int32_t     row;       /* logits row in the current batch, -1: none       */
    double      t_last;
} slot;

struct bn_sched {
    bn_sched_params p;
    bn_model_info   mi;
    bn_context     *ctx;
    slot           *slots;
    pthread_t       th;
    bool            th_started;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bn_srv_req    **q;          /* ring of max_queue                          */
    int             q_head, q_len;
    int             n_active;
    bool            stopping;
    int32_t        *b_tok, *b_seq;
    int8_t         *b_want;
    int32_t         rr;         /* first prefill slot of the next step         */
};

int32_t bn_sched_n_ctx(const bn_sched *s) { return s->p.n_ctx; }

int bn_sched_inflight(bn_sched *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->q_len + s->n_active;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void bn_sched_wake(bn_sched *s) {
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bn_status bn_sched_submit(bn_sched *s, bn_srv_req *r) {
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return bn_fail(BN_ERR_CANCELLED, "the server is shutting down");
    }
    if (s->q_len >= s->p.max_queue) {
        pthread_mutex_unlock(&s->mu);
        return bn_fail(BN_ERR_CONTEXT_FULL, "the server is busy: %d requests are waiting; retry later", s->q_len);
    }
    pthread_mutex_lock(&r->mu);
    r->refs++;
    r->state = BN_REQ_QUEUED;
    r->t_submit = bn_time_s();
    pthread_mutex_unlock(&r->mu);
    s->q[(s->q_head + s->q_len) % s->p.max_queue] = r;
    s->q_len++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return BN_OK;
}

/* Mark a request done (with the scheduler's reference dropped). */
static void req_done(bn_sched *s, bn_srv_req *r, bn_finish_reason why, bn_status st, const char *msg) {
    /* metrics first: a client that sees its answer sees them counted */
    bn_srv_metrics_tokens(s->p.metrics, r->n_prompt, r->n_cached, r->n_gen);
    pthread_mutex_lock(&r->mu);
    r->state = BN_REQ_DONE;
    r->finish = why;
    r->status = st;
    if (st) snprintf(r->error, sizeof r->error, "%s", msg ? msg : "generation failed");
    r->t_done = bn_time_s();
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    bn_srv_req_release(r);
}

static bn_status req_append(bn_srv_req *r, const char *text, size_t n, const bn_srv_tok *tok) {
    bn_status st = BN_OK;
    pthread_mutex_lock(&r->mu);
    if (n > 0) {
        if (r->text_len + n + 1 > r->text_cap) {
            size_t cap = r->text_cap ? r->text_cap : 256;
            while (cap < r->text_len + n + 1) cap *= 2;
            char *t = realloc(r->text, cap);
            if (!t) { st = bn_fail(BN_ERR_NOMEM, "out of memory for generated text"); goto out; }
            r->text = t;
            r->text_cap = cap;
        }
        memcpy(r->text + r->text_len, text, n);
        r->text_len += n;
        r->text[r->text_len] = '\0';
    }
    if (tok) {
        r->n_gen++;
        if (r->keep_tokens) {
            if (r->n_toks == r->toks_cap) {
                int32_t cap = r->toks_cap ? r->toks_cap * 2 : 16;
                bn_srv_tok *t = realloc(r->toks, sizeof *t * (size_t)cap);
                if (!t) { st = bn_fail(BN_ERR_NOMEM, "out of memory for logprobs"); goto out; }
                r->toks = t;
                r->toks_cap = cap;
            }
            r->toks[r->n_toks++] = *tok;
        }
    }
    pthread_cond_broadcast(&r->cv);
out:
    pthread_mutex_unlock(&r->mu);
    return st;
}

static void slot_release(bn_sched *s, slot *sl, bn_finish_reason why, bn_status st, const char *msg) {
    bn_srv_req *r = sl->req;
    if (!r) return;
    if (st == BN_OK && s->p.tok) {
        const char *rest;
        size_t n;
        bn_streamer_flush(&sl->st, &rest, &n);
        if (n) req_append(r, rest, n, NULL);
    }
    bn_streamer_free(&sl->st);
    bn_sampler_free(sl->smp);
    sl->smp = NULL;
    free(sl->hist);
    sl->hist = NULL;
    sl->req = NULL;
    sl->has_pending = false;
    sl->row = -1;
    req_done(s, r, why, st, msg);
    pthread_mutex_lock(&s->mu);
    s->n_active--;
    pthread_mutex_unlock(&s->mu);
}

/* The slot forgets its cache (after a failure its contents are unknown). */
static void slot_fail(bn_sched *s, slot *sl, int32_t seq, bn_status st, const char *msg) {
    bn_seq_truncate(s->ctx, seq, 0);
    sl->n_cache = 0;
    slot_release(s, sl, BN_FINISH_NONE, st, msg);
}

static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* Under s->mu: finish queued requests whose client went away, so they
 * neither hold a queue place nor keep their connection waiting for a slot. */
static void purge_locked(bn_sched *s) {
    int kept = 0;
    for (int k = 0; k < s->q_len; k++) {
        bn_srv_req *r = s->q[(s->q_head + k) % s->p.max_queue];
        if (atomic_load(&r->cancel)) req_done(s, r, BN_FINISH_CANCELLED, BN_OK, NULL);
        else s->q[(s->q_head + kept++) % s->p.max_queue] = r;
    }
    s->q_len = kept;
}

/* Under s->mu: move queued requests into free slots. */
static void assign_locked(bn_sched *s, bn_srv_req **started, int *n_started) {
    while (s->q_len > 0 && s->n_active < s->p.n_slots) {
        bn_srv_req *r = s->q[s->q_head];
        s->q_head = (s->q_head + 1) % s->p.max_queue;
        s->q_len--;
        int best = -1;
        int32_t best_len = -1;
        for (int i = 0; i < s->p.n_slots; i++) {
            slot *sl = &s->slots[i];
            if (sl->req) continue;
            int32_t l = common_prefix(sl->cache, sl->n_cache, r->prompt, r->n_prompt);
            if (l > best_len) { best_len = l; best = i; }
        }
        s->slots[best].req = r;
        s->n_active++;
        started[(*n_started)++] = r;
    }
}

static void slot_start(bn_sched *s, int32_t i) {
    slot *sl = &s->slots[i];
    bn_srv_req *r = sl->req;
    if (atomic_load(&r->cancel)) { slot_release(s, sl, BN_FINISH_CANCELLED, BN_OK, NULL); return; }
    if (r->n_prompt <= 0 || r->n_prompt > s->p.n_ctx) {
        slot_release(s, sl, BN_FINISH_NONE, BN_ERR_CONTEXT_FULL, "the prompt does not fit the context");
        return;
    }
    /* keep the shared prefix, but recompute at least the last prompt token:
     * its logits are what the first sample needs */
    int32_t keep = common_prefix(sl->cache, sl->n_cache, r->prompt, r->n_prompt);
    if (keep > r->n_prompt - 1) keep = r->n_prompt - 1;
    if (bn_seq_truncate(s->ctx, i, keep)) { slot_fail(s, sl, i, BN_ERR_INTERNAL, bn_last_error()); return; }
    sl->n_cache = keep;
    sl->n_fed = keep;
    sl->has_pending = false;
    sl->row = -1;
    r->n_cached = keep;
    sl->hist = malloc(sizeof *sl->hist * ((size_t)r->n_prompt + (size_t)s->p.n_ctx + 1));
    bn_streamer_init(&sl->st, (const char *const *)r->stop, r->n_stop);
    if (!sl->hist) { slot_fail(s, sl, i, BN_ERR_NOMEM, "out of memory"); return; }
    memcpy(sl->hist, r->prompt, sizeof *sl->hist * (size_t)r->n_prompt);
    sl->n_hist = r->n_prompt;
    if (bn_sampler_create(&r->sp, &sl->smp)) { slot_fail(s, sl, i, BN_ERR_INVALID_ARG, bn_last_error()); return; }
    pthread_mutex_lock(&r->mu);
    r->state = BN_REQ_RUNNING;
    pthread_mutex_unlock(&r->mu);
}

static bool is_stop_token(const bn_sched *s, int32_t t) {
    if (s->mi.eos_id >= 0 && t == s->mi.eos_id) return true;
    return s->p.tok && bn_tokenizer_is_eog(s->p.tok, t);
}

static void slot_sample(bn_sched *s, int32_t i) {
    slot *sl = &s->slots[i];
    bn_srv_req *r = sl->req;
    const int32_t row = sl->row;
    sl->row = -1;
    /* log-probabilities (a pass of exp over the vocabulary, and the whole
     * row) only for requests that asked; the others may be sampled where
     * the logits are (bn_sample: greedy and top-k on the GPU) */
    bn_sample_info info;
    memset(&info, 0, sizeof info);
    int32_t t;
    if (bn_sample(s->ctx, row, sl->smp, sl->hist, sl->n_hist, r->n_top, r->keep_tokens ? &info : NULL, &t)) {
        slot_release(s, sl, BN_FINISH_NONE, BN_ERR_INVALID_ARG, bn_last_error());
        return;
    }
    double now = bn_time_s();
    if (r->n_gen == 0) {
        r->t_first = now;
        bn_srv_metrics_ttft(s->p.metrics, now - r->t_submit);
    } else {
        bn_srv_metrics_token_latency(s->p.metrics, now - sl->t_last);
    }
    sl->t_last = now;
    sl->hist[sl->n_hist++] = t;
    bool stop_tok = is_stop_token(s, t);
    const char *piece = NULL;
    size_t piece_len = 0;
    if (s->p.tok && !stop_tok) {
        size_t blen = 0;
        const char *bytes = bn_tokenizer_is_special(s->p.tok, t) ? NULL : bn_token_to_piece(s->p.tok, t, &blen);
        if (bn_streamer_push(&sl->st, bytes ? bytes : "", bytes ? blen : 0, &piece, &piece_len)) {
            slot_fail(s, sl, i, BN_ERR_NOMEM, bn_last_error());
            return;
        }
    }
    bn_srv_tok tk;
    tk.id = t;
    tk.logprob = info.logprob;
    tk.n_top = info.n_top;
    memcpy(tk.top, info.top, sizeof tk.top);
    if (req_append(r, piece, piece_len, &tk)) { slot_fail(s, sl, i, BN_ERR_NOMEM, bn_last_error()); return; }
    if (stop_tok || sl->st.stopped) slot_release(s, sl, BN_FINISH_STOP, BN_OK, NULL);
    else if (atomic_load(&r->cancel)) slot_release(s, sl, BN_FINISH_CANCELLED, BN_OK, NULL);
    else if (r->max_tokens > 0 && r->n_gen >= r->max_tokens) slot_release(s, sl, BN_FINISH_LENGTH, BN_OK, NULL);
    else if (sl->n_cache >= s->p.n_ctx) slot_release(s, sl, BN_FINISH_LENGTH, BN_OK, NULL);
    else {
        sl->pending = t;
        sl->has_pending = true;
    }
}

static void update_gauges(bn_sched *s) {
    if (!s->p.metrics) return;
    int64_t used = 0;
    for (int i = 0; i < s->p.n_slots; i++) used += s->slots[i].n_cache;
    pthread_mutex_lock(&s->mu);
    int64_t q = s->q_len, a = s->n_active;
    pthread_mutex_unlock(&s->mu);
    bn_srv_metrics_gauges(s->p.metrics, q, a, used, (int64_t)s->p.n_ctx * s->p.n_slots);
}

/* One step: returns false when nothing ran. */
static bool step(bn_sched *s) {
    const int32_t ns = s->p.n_slots;
    int32_t n = 0;
    /* decode tokens first: generating slots never wait for a long prompt */
    for (int32_t i = 0; i < ns; i++) {
        slot *sl = &s->slots[i];
        if (!sl->req || !sl->has_pending) continue;
        if (atomic_load(&sl->req->cancel)) { slot_release(s, sl, BN_FINISH_CANCELLED, BN_OK, NULL); continue; }
        s->b_tok[n] = sl->pending;
        s->b_seq[n] = i;
        s->b_want[n] = 1;
        sl->row = n++;
        sl->cache[sl->n_cache++] = sl->pending;
        sl->has_pending = false;
    }
    int32_t budget = s->p.n_batch - n;
    for (int32_t k = 0; k < ns && budget > 0; k++) {
        int32_t i = (s->rr + k) % ns;
        slot *sl = &s->slots[i];
        bn_srv_req *r = sl->req;
        if (!r || sl->has_pending || sl->row >= 0 || sl->n_fed >= r->n_prompt) continue;
        if (atomic_load(&r->cancel)) { slot_release(s, sl, BN_FINISH_CANCELLED, BN_OK, NULL); continue; }
        int32_t chunk = r->n_prompt - sl->n_fed;
        if (chunk > budget) chunk = budget;
        for (int32_t j = 0; j < chunk; j++) {
            int32_t t = r->prompt[sl->n_fed + j];
            s->b_tok[n] = t;
            s->b_seq[n] = i;
            s->b_want[n] = sl->n_fed + j == r->n_prompt - 1;
            if (s->b_want[n]) sl->row = n;
            n++;
            sl->cache[sl->n_cache++] = t;
        }
        sl->n_fed += chunk;
        budget -= chunk;
    }
    s->rr = (s->rr + 1) % ns;
    if (n == 0) return false;
    bn_batch b = {n, s->b_tok, s->b_seq, NULL, s->b_want};
    bn_status st = bn_decode(s->ctx, &b);
    if (st) {
        char msg[256];
        snprintf(msg, sizeof msg, "decode failed: %s", bn_last_error());
        bn_log(&s->p.logger, BN_LOG_ERROR, "%s", msg);
        /* every slot that took part is in an unknown state: fail them */
        for (int32_t i = 0; i < ns; i++) {
            slot *sl = &s->slots[i];
            bool in_batch = false;
            for (int32_t j = 0; j < n && !in_batch; j++) in_batch = s->b_seq[j] == i;
            if (in_batch && sl->req) slot_fail(s, sl, i, BN_ERR_INTERNAL, msg);
            else if (in_batch) { bn_seq_truncate(s->ctx, i, 0); sl->n_cache = 0; }
        }
        return true;
    }
    for (int32_t i = 0; i < ns; i++)
        if (s->slots[i].req && s->slots[i].row >= 0) slot_sample(s, i);
    return true;
}

static void *sched_main(void *arg) {
    bn_sched *s = arg;
    bn_srv_req **started = malloc(sizeof *started * (size_t)s->p.n_slots);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && s->q_len == 0 && s->n_active == 0) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping && s->q_len == 0 && s->n_active == 0) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        int n_started = 0;
        purge_locked(s);
        if (started) assign_locked(s, started, &n_started);
        pthread_mutex_unlock(&s->mu);
        for (int k = 0; k < n_started; k++)
            for (int32_t i = 0; i < s->p.n_slots; i++)
                if (s->slots[i].req == started[k]) slot_start(s, i);
        bool ran = step(s);
        update_gauges(s);
        if (!ran) {
            /* active slots that are all finished in this pass, or a memory
             * failure: avoid a busy loop */
            pthread_mutex_lock(&s->mu);
            if (!started && s->q_len > 0) {
                /* without the scratch array nothing can start: fail them */
                while (s->q_len > 0) {
                    bn_srv_req *r = s->q[s->q_head];
                    s->q_head = (s->q_head + 1) % s->p.max_queue;
                    s->q_len--;
                    pthread_mutex_unlock(&s->mu);
                    req_done(s, r, BN_FINISH_NONE, BN_ERR_NOMEM, "out of memory");
                    pthread_mutex_lock(&s->mu);
                }
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
    free(started);
    return NULL;
}

bn_status bn_sched_create(const bn_sched_params *p, bn_sched **out) {
    if (!p || !p->model || !out || p->n_slots <= 0 || p->n_ctx <= 0 || p->max_queue <= 0)
        return bn_fail(BN_ERR_INVALID_ARG, "scheduler: model, slots, context and queue size are required");
    bn_sched *s = bn_calloc(1, sizeof *s);
    if (!s) return BN_ERR_NOMEM;
    s->p = *p;
    if (s->p.n_batch <= 0) s->p.n_batch = 512;
    if (s->p.n_batch < s->p.n_slots) s->p.n_batch = s->p.n_slots; /* one decode token per slot */
    bn_model_get_info(p->model, &s->mi);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = p->n_ctx;
    cp.n_seq_max = p->n_slots;
    cp.n_batch = s->p.n_batch;
    cp.n_threads = p->n_threads;
    cp.kernels = p->kernels;
    cp.device = p->device;
    cp.cuda_flags = p->cuda_flags;
    cp.kv_type = p->kv_type;
    cp.logger = p->logger;
    bn_status st = bn_context_create(p->model, &cp, &s->ctx);
    if (st) goto fail;
    s->p.n_ctx = bn_context_n_ctx(s->ctx);
    s->slots = bn_calloc((size_t)p->n_slots, sizeof *s->slots);
    s->q = bn_calloc((size_t)p->max_queue, sizeof *s->q);
    s->b_tok = bn_calloc((size_t)s->p.n_batch, sizeof *s->b_tok);
    s->b_seq = bn_calloc((size_t)s->p.n_batch, sizeof *s->b_seq);
    s->b_want = bn_calloc((size_t)s->p.n_batch, sizeof *s->b_want);
    if (!s->slots || !s->q || !s->b_tok || !s->b_seq || !s->b_want) { st = BN_ERR_NOMEM; goto fail; }
    for (int i = 0; i < p->n_slots; i++) {
        s->slots[i].row = -1;
        s->slots[i].cache = bn_calloc((size_t)s->p.n_ctx, sizeof *s->slots[i].cache);
        if (!s->slots[i].cache) { st = BN_ERR_NOMEM; goto fail; }
    }
    if (pthread_create(&s->th, NULL, sched_main, s)) {
        st = bn_fail(BN_ERR_INTERNAL, "cannot start the scheduler thread");
        goto fail;
    }
    s->th_started = true;
    *out = s;
    return BN_OK;
fail:
    bn_sched_free(s);
    return st;
}

void bn_sched_free(bn_sched *s) {
    if (!s) return;
    if (s->th_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th, NULL);
    }
    if (s->slots)
        for (int i = 0; i < s->p.n_slots; i++) free(s->slots[i].cache);
    free(s->slots);
    free(s->q);
    free(s->b_tok);
    free(s->b_seq);
    free(s->b_want);
    bn_context_free(s->ctx);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
