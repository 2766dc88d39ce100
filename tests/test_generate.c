/* test_generate.c — the generation loop and perplexity on hf-tiny against
 * transformers' references: greedy ids equal ref/gen_tokens_cpu.bin (single
 * and batched), perplexity equals the value computed from
 * ref/logits_seq33_cpu.bin, stops, limits, cancellation, clear errors. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bitnet.h"
#include "harness.h"

#define N_VOCAB 512

static bn_model *g_model;
static int32_t g_ref[22]; /* 6 prompt ids + 16 greedy ids */

static bn_context *make_ctx(int32_t n_ctx, int32_t n_seq) {
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_seq_max = n_seq;
    cp.n_threads = 2;
    bn_context *ctx = NULL;
    CHECK_OK(bn_context_create(g_model, &cp, &ctx));
    return ctx;
}

static bn_sampler *greedy(void) {
    bn_sampler_params sp = bn_sampler_default_params();
    sp.temperature = 0.0f;
    bn_sampler *s = NULL;
    CHECK_OK(bn_sampler_create(&sp, &s));
    return s;
}

static bool load_fixtures(void) {
    bn_model_params mp = bn_model_default_params();
    if (bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), &mp, &g_model) != BN_OK) {
        fprintf(stderr, "cannot load hf-tiny: %s\n", bn_last_error());
        return false;
    }
    size_t n = 0;
    int32_t *ref = bn_test_read(bn_test_src("tests/data/hf-tiny/ref/gen_tokens_cpu.bin"), &n);
    if (!ref || n != sizeof g_ref) { free(ref); fprintf(stderr, "gen_tokens_cpu.bin missing\n"); return false; }
    memcpy(g_ref, ref, sizeof g_ref);
    free(ref);
    return true;
}

static void test_greedy_matches_reference(void) {
    bn_context *ctx = make_ctx(64, 1);
    bn_sampler *s = greedy();
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = 16;
    bn_generate_result r;
    CHECK_OK(bn_generate(ctx, g_model, NULL, s, g_ref, 6, &gp, NULL, NULL, &r));
    CHECK(r.n_prompt == 6 && r.n_gen == 16 && r.finish == BN_FINISH_LENGTH && r.text == NULL);
    int diff = 0;
    for (int i = 0; i < 16 && i < r.n_gen; i++) diff += r.ids[i] != g_ref[6 + i];
    CHECK_MSG(diff == 0, "%d of 16 greedy ids differ from transformers'", diff);
    /* the last sampled token is not decoded */
    CHECK(bn_seq_length(ctx, 0) == 6 + 15);
    CHECK(r.ttft_s > 0 && r.prompt_tps > 0 && r.gen_tps > 0);
    bn_generate_result_free(&r);
    bn_sampler_free(s);
    bn_context_free(ctx);
}

static void test_batch_matches_single(void) {
    /* three sequences decoded together: the reference prompt twice (one with
     * fewer tokens) and another prompt; each must equal its own single run */
    static const int32_t other[7] = {485, 225, 435, 190, 266, 351, 190};
    bn_context *ctx = make_ctx(64, 3);
    bn_sampler *s[3] = {greedy(), greedy(), greedy()};
    bn_generate_request rq[3];
    memset(rq, 0, sizeof rq);
    for (int i = 0; i < 3; i++) {
        rq[i].sampler = s[i];
        rq[i].params = bn_generate_default_params();
        rq[i].params.seq_id = 2 - i; /* not in request order */
        rq[i].params.max_tokens = 16;
    }
    rq[0].prompt = g_ref; rq[0].n_prompt = 6;
    rq[1].prompt = other; rq[1].n_prompt = 7;
    rq[2].prompt = g_ref; rq[2].n_prompt = 6; rq[2].params.max_tokens = 5;
    bn_generate_result res[3];
    CHECK_OK(bn_generate_batch(ctx, g_model, NULL, rq, 3, res));
    CHECK(res[0].status == BN_OK && res[1].status == BN_OK && res[2].status == BN_OK);
    CHECK(res[0].n_gen == 16 && res[2].n_gen == 5);
    int diff = 0;
    for (int i = 0; i < 16 && i < res[0].n_gen; i++) diff += res[0].ids[i] != g_ref[6 + i];
    for (int i = 0; i < 5 && i < res[2].n_gen; i++) diff += res[2].ids[i] != g_ref[6 + i];
    CHECK_MSG(diff == 0, "batched greedy ids differ from the reference in %d places", diff);
    /* the other prompt alone */
    bn_context *c1 = make_ctx(64, 1);
    bn_generate_result one;
    bn_generate_params gp1 = bn_generate_default_params();
    gp1.max_tokens = 16;
    CHECK_OK(bn_generate(c1, g_model, NULL, s[1], other, 7, &gp1, NULL, NULL, &one));
    CHECK(one.n_gen == res[1].n_gen);
    int d2 = 0;
    for (int i = 0; i < one.n_gen && i < res[1].n_gen; i++) d2 += one.ids[i] != res[1].ids[i];
    CHECK_MSG(d2 == 0, "batched and single runs of the same prompt differ in %d ids", d2);
    bn_generate_result_free(&one);
    bn_context_free(c1);
    for (int i = 0; i < 3; i++) { bn_generate_result_free(&res[i]); bn_sampler_free(s[i]); }
    bn_context_free(ctx);
}

static void test_batch_bad_request_others_run(void) {
    bn_context *ctx = make_ctx(16, 2);
    bn_sampler *s[2] = {greedy(), greedy()};
    int32_t long_prompt[20];
    for (int i = 0; i < 20; i++) long_prompt[i] = i;
    bn_generate_request rq[2];
    memset(rq, 0, sizeof rq);
    rq[0].prompt = long_prompt; rq[0].n_prompt = 20; rq[0].sampler = s[0];
    rq[0].params = bn_generate_default_params(); rq[0].params.seq_id = 0;
    rq[1].prompt = g_ref; rq[1].n_prompt = 6; rq[1].sampler = s[1];
    rq[1].params = bn_generate_default_params(); rq[1].params.seq_id = 1; rq[1].params.max_tokens = 4;
    bn_generate_result res[2];
    CHECK_OK(bn_generate_batch(ctx, g_model, NULL, rq, 2, res));
    CHECK(res[0].status == BN_ERR_CONTEXT_FULL && strstr(res[0].error, "20 tokens") && strstr(res[0].error, "16"));
    CHECK(res[1].status == BN_OK && res[1].n_gen == 4 && res[1].ids[3] == g_ref[9]);
    for (int i = 0; i < 2; i++) { bn_generate_result_free(&res[i]); bn_sampler_free(s[i]); }
    bn_context_free(ctx);
}

static void test_errors(void) {
    bn_context *ctx = make_ctx(8, 1);
    bn_sampler *s = greedy();
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result r;
    int32_t nine[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK(bn_generate(ctx, g_model, NULL, s, nine, 9, &gp, NULL, NULL, &r) == BN_ERR_CONTEXT_FULL);
    CHECK_MSG(strstr(bn_last_error(), "9 tokens") && strstr(bn_last_error(), "8"), "message: %s", bn_last_error());
    CHECK(bn_seq_length(ctx, 0) == 0); /* nothing was decoded */
    bn_generate_result_free(&r);
    CHECK(bn_generate(ctx, g_model, NULL, s, nine, 0, &gp, NULL, NULL, &r) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "empty") != NULL);
    bn_generate_result_free(&r);
    int32_t bad[2] = {1, N_VOCAB};
    CHECK(bn_generate(ctx, g_model, NULL, s, bad, 2, &gp, NULL, NULL, &r) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "out of range") != NULL);
    bn_generate_result_free(&r);
    bn_sampler_free(s);
    bn_context_free(ctx);
}

static void test_context_limit_and_stop_ids(void) {
    /* ctx 10, prompt 6: tokens are sampled until the cache is full, then one
     * more can be sampled (it is never decoded): 5 tokens */
    bn_context *ctx = make_ctx(10, 1);
    bn_sampler *s = greedy();
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = 0;
    bn_generate_result r;
    CHECK_OK(bn_generate(ctx, g_model, NULL, s, g_ref, 6, &gp, NULL, NULL, &r));
    CHECK_MSG(r.n_gen == 5 && r.finish == BN_FINISH_LENGTH, "n_gen %d finish %s", (int)r.n_gen, bn_finish_reason_name(r.finish));
    CHECK(r.n_gen == 5 && !memcmp(r.ids, g_ref + 6, 5 * sizeof(int32_t)));
    bn_generate_result_free(&r);
    bn_seq_truncate(ctx, 0, 0);
    /* a stop id ends the generation and is reported */
    int32_t stop = 283;
    gp.stop_ids = &stop;
    gp.n_stop_ids = 1;
    gp.max_tokens = 16;
    CHECK_OK(bn_generate(ctx, g_model, NULL, s, g_ref, 6, &gp, NULL, NULL, &r));
    CHECK(r.finish == BN_FINISH_STOP && r.n_gen == 4 && r.ids[3] == 283);
    bn_generate_result_free(&r);
    bn_sampler_free(s);
    bn_context_free(ctx);
}

/* ---- cancellation */

typedef struct cancel_state {
    int          stop_after;   /* callback returns false after this many  */
    atomic_int   seen;
    bn_cancel   *cancel;
    int          n_info_ok;
} cancel_state;

static bool cb_count(const char *piece, size_t len, int32_t token, const bn_sample_info *info, void *user) {
    cancel_state *cs = user;
    (void)piece;
    (void)len;
    if (token >= 0 && info && info->token == token && info->logprob <= 0.0f && info->n_top == 3 &&
        info->top[0].logprob >= info->top[1].logprob)
        cs->n_info_ok++;
    int n = atomic_fetch_add(&cs->seen, 1) + 1;
    return cs->stop_after <= 0 || n < cs->stop_after;
}

static void *canceller(void *arg) {
    cancel_state *cs = arg;
    while (atomic_load(&cs->seen) < 5) {}
    bn_cancel_request(cs->cancel);
    return NULL;
}

static void test_cancel(void) {
    bn_context *ctx = make_ctx(4096, 1);
    bn_sampler *s = greedy();
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = 0;
    gp.n_top_logprobs = 3;
    bn_generate_result r;
    /* from the callback */
    cancel_state cs = {.stop_after = 3};
    CHECK_OK(bn_generate(ctx, g_model, NULL, s, g_ref, 6, &gp, cb_count, &cs, &r));
    CHECK(r.finish == BN_FINISH_CANCELLED && r.n_gen == 3 && cs.n_info_ok == 3);
    bn_generate_result_free(&r);
    /* from another thread */
    bn_seq_truncate(ctx, 0, 0);
    cancel_state cs2 = {.stop_after = 0};
    CHECK_OK(bn_cancel_create(&cs2.cancel));
    gp.cancel = cs2.cancel;
    pthread_t th;
    pthread_create(&th, NULL, canceller, &cs2);
    CHECK_OK(bn_generate(ctx, g_model, NULL, s, g_ref, 6, &gp, cb_count, &cs2, &r));
    pthread_join(th, NULL);
    CHECK_MSG(r.finish == BN_FINISH_CANCELLED && r.n_gen >= 5 && r.n_gen < 4000, "finish %s after %d tokens",
              bn_finish_reason_name(r.finish), (int)r.n_gen);
    bn_generate_result_free(&r);
    /* a flag raised before the start: nothing is generated */
    bn_seq_truncate(ctx, 0, 0);
    CHECK_OK(bn_generate(ctx, g_model, NULL, s, g_ref, 6, &gp, NULL, NULL, &r));
    CHECK(r.finish == BN_FINISH_CANCELLED && r.n_gen == 0);
    bn_generate_result_free(&r);
    bn_cancel_free(cs2.cancel);
    bn_sampler_free(s);
    bn_context_free(ctx);
}

/* ---- text: streaming and stop strings (hf-tiny's ids < 512 are valid
 * LLaMA 3 tokens, so its greedy ids read as " this this be" "ou" x5 " [" x3 ...) */

typedef struct text_acc {
    char   buf[1024];
    size_t len;
    int    calls, flushes;
} text_acc;

static bool cb_text(const char *piece, size_t len, int32_t token, const bn_sample_info *info, void *user) {
    text_acc *a = user;
    (void)info;
    if (len && a->len + len < sizeof a->buf) { memcpy(a->buf + a->len, piece, len); a->len += len; }
    a->calls++;
    a->flushes += token < 0;
    return true;
}

static void test_text_and_stop_strings(void) {
    bn_tokenizer *tok = NULL;
    CHECK_OK(bn_tokenizer_load(bn_test_src("tests/data/tokenizer/llama3.tiktoken"), &tok));
    if (!tok) return;
    bn_context *ctx = make_ctx(64, 1);
    bn_sampler *s = greedy();
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = 16;
    bn_generate_result r;
    /* no stop: the streamed text is the decoded ids */
    text_acc a = {0};
    CHECK_OK(bn_generate(ctx, g_model, tok, s, g_ref, 6, &gp, cb_text, &a, &r));
    char *want = NULL;
    size_t want_len = 0;
    CHECK_OK(bn_detokenize(tok, g_ref + 6, 16, true, &want, &want_len));
    CHECK(r.text && r.text_len == want_len && !memcmp(r.text, want, want_len));
    CHECK(a.len == want_len && !memcmp(a.buf, want, want_len));
    CHECK(a.calls - a.flushes == 16);
    free(want);
    bn_generate_result_free(&r);

    /* "ouou" completes at the 6th token: nothing of it may reach the stream */
    static const char *const stops[] = {"zzz", "ouou"};
    gp.stop = stops;
    gp.n_stop = 2;
    bn_seq_truncate(ctx, 0, 0);
    text_acc b = {0};
    CHECK_OK(bn_generate(ctx, g_model, tok, s, g_ref, 6, &gp, cb_text, &b, &r));
    CHECK_MSG(r.finish == BN_FINISH_STOP && r.n_gen == 5, "finish %s n_gen %d", bn_finish_reason_name(r.finish), (int)r.n_gen);
    CHECK(r.text && !strcmp(r.text, " this this be"));
    CHECK_MSG(b.len == 13 && !memcmp(b.buf, " this this be", 13), "streamed '%.*s'", (int)b.len, b.buf);
    bn_generate_result_free(&r);

    /* " [" : text up to it, the repeated "ou" released */
    static const char *const stop2[] = {" ["};
    gp.stop = stop2;
    gp.n_stop = 1;
    bn_seq_truncate(ctx, 0, 0);
    text_acc c = {0};
    CHECK_OK(bn_generate(ctx, g_model, tok, s, g_ref, 6, &gp, cb_text, &c, &r));
    CHECK(r.finish == BN_FINISH_STOP && r.n_gen == 9 && r.ids[8] == 510);
    CHECK(r.text && !strcmp(r.text, " this this beououououou"));
    CHECK(c.len == strlen(" this this beououououou") && !memcmp(c.buf, r.text, c.len));
    bn_generate_result_free(&r);
    bn_sampler_free(s);
    bn_context_free(ctx);
    bn_tokenizer_free(tok);
}

/* ---- perplexity */

static int32_t *seq33_ids(void) {
    size_t n = 0;
    char *js = bn_test_read(bn_test_src("tests/data/hf-tiny/ref/manifest.json"), &n);
    if (!js) return NULL;
    cJSON *root = cJSON_ParseWithLength(js, n);
    free(js);
    cJSON *ids = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "sequences"), "seq33"), "token_ids");
    int32_t *out = NULL;
    if (cJSON_GetArraySize(ids) == 33) {
        out = malloc(33 * sizeof *out);
        for (int i = 0; i < 33; i++) out[i] = (int32_t)cJSON_GetArrayItem(ids, i)->valuedouble;
    }
    cJSON_Delete(root);
    return out;
}

/* llama.cpp's rule on one window of n_ctx from reference logits [33, 512] */
static double ref_ppl(const float *logits, const int32_t *ids, int n_ctx) {
    double nll = 0;
    int count = 0;
    for (int j = n_ctx / 2; j < n_ctx - 1; j++) {
        const float *row = logits + (size_t)j * N_VOCAB;
        double mx = row[0], sum = 0;
        for (int v = 1; v < N_VOCAB; v++) if (row[v] > mx) mx = row[v];
        for (int v = 0; v < N_VOCAB; v++) sum += exp(row[v] - mx);
        nll += -(row[ids[j + 1]] - mx - log(sum));
        count++;
    }
    return exp(nll / count);
}

static void test_perplexity_matches_reference(void) {
    int32_t *ids = seq33_ids();
    size_t n = 0;
    float *ref = bn_test_read(bn_test_src("tests/data/hf-tiny/ref/logits_seq33_cpu.bin"), &n);
    CHECK(ids && ref && n == 33 * N_VOCAB * sizeof(float));
    if (!ids || !ref) { free(ids); free(ref); return; }
    bn_context *ctx = make_ctx(64, 1);
    for (int n_ctx = 32; n_ctx <= 33; n_ctx++) {
        bn_perplexity_params pp = bn_perplexity_default_params();
        pp.n_ctx = n_ctx;
        pp.bos_id = -1; /* the reference has no BOS */
        pp.n_batch = n_ctx == 33 ? 7 : 0; /* several decode calls per window too */
        bn_perplexity_result r;
        CHECK_OK(bn_perplexity(ctx, g_model, ids, 33, &pp, &r));
        double want = ref_ppl(ref, ids, n_ctx);
        CHECK_MSG(fabs(r.ppl / want - 1) < 0.005, "ctx %d: PPL %.4f, reference %.4f", n_ctx, r.ppl, want);
        CHECK(r.n_chunks == 1 && r.n_scored == n_ctx - n_ctx / 2 - 1 && r.ppl_err > 0);
        fprintf(stderr, "   ctx %d: PPL %.4f +/- %.4f, from the reference logits %.4f\n", n_ctx, r.ppl, r.ppl_err, want);
    }
    /* two windows of 16: the second window starts afresh (no context), so it
     * must not equal the reference computed with context */
    bn_perplexity_params pp = bn_perplexity_default_params();
    pp.n_ctx = 16;
    pp.bos_id = 510;
    bn_perplexity_result r;
    CHECK_OK(bn_perplexity(ctx, g_model, ids, 33, &pp, &r));
    CHECK(r.n_chunks == 2 && r.n_scored == 14);
    /* too few tokens and an oversized window are refused */
    pp.n_ctx = 34;
    CHECK(bn_perplexity(ctx, g_model, ids, 33, &pp, &r) == BN_ERR_INVALID_ARG);
    int32_t many[200] = {0};
    pp.n_ctx = 128;
    CHECK(bn_perplexity(ctx, g_model, many, 200, &pp, &r) == BN_ERR_CONTEXT_FULL);
    bn_context_free(ctx);
    free(ids);
    free(ref);
}

/* bn_sample on a CPU context is bn_sampler_sample on the row (the CUDA
 * path's equality is in test_cuda); bad rows and arguments fail cleanly. */
static void test_sample_row(void) {
    bn_context *ctx = make_ctx(64, 1);
    if (!ctx) return;
    bn_batch b = {.n_tokens = 6, .tokens = g_ref};
    CHECK_OK(bn_decode(ctx, &b));
    bn_sampler_params sp = bn_sampler_default_params();
    sp.repeat_penalty = 1.3f;
    sp.seed = 11;
    bn_sampler *a = NULL, *h = NULL;
    CHECK_OK(bn_sampler_create(&sp, &a));
    CHECK_OK(bn_sampler_create(&sp, &h));
    for (int k = 0; k < 20; k++) {
        int32_t ta = -1, th = -2;
        CHECK_OK(bn_sample(ctx, 5, a, g_ref, 6, 0, NULL, &ta));
        CHECK_OK(bn_sampler_sample(h, bn_get_logits(ctx, 5), N_VOCAB, g_ref, 6, 0, NULL, &th));
        CHECK(ta == th);
    }
    int32_t t;
    CHECK(bn_sample(ctx, 2, a, NULL, 0, 0, NULL, &t) != BN_OK); /* no logits for token 2 */
    CHECK(bn_sample(ctx, 5, a, NULL, 3, 0, NULL, &t) != BN_OK); /* history count without ids */
    CHECK(bn_sample(NULL, 5, a, NULL, 0, 0, NULL, &t) != BN_OK);
    bn_sampler_free(a);
    bn_sampler_free(h);
    bn_context_free(ctx);
}

int main(void) {
    if (!load_fixtures()) {
        CHECK(!"fixtures");
        return bn_test_finish("test_generate");
    }
    RUN(test_greedy_matches_reference);
    RUN(test_batch_matches_single);
    RUN(test_batch_bad_request_others_run);
    RUN(test_errors);
    RUN(test_context_limit_and_stop_ids);
    RUN(test_cancel);
    RUN(test_text_and_stop_strings);
    RUN(test_perplexity_matches_reference);
    RUN(test_sample_row);
    bn_model_free(g_model);
    return bn_test_finish("test_generate");
}
