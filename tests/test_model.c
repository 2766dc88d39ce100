/* test_model.c — the forward pass against Hugging Face transformers'
 * references (tests/data/hf-tiny/ref), through every load path and both the
 * batched and the KV-cache paths, plus bad-input checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "harness.h"
#include "model/model.h"
#include "model/save.h"

#define V 512

static const int32_t seq1[] = {481};
static const int32_t seq7[] = {485, 225, 435, 190, 266, 351, 190};
static const int32_t seq33[] = {377, 400, 151, 217, 66, 430, 319, 62, 40, 226, 252, 491, 268, 289, 10, 419, 294,
                                202, 311, 475, 125, 467, 231, 333, 493, 394, 209, 403, 295, 224, 421, 16, 370};

static int compare_rows(const char *what, const float *got, const float *ref, int n_rows, int n_vocab) {
    return bn_test_compare_logits(what, got, ref, n_rows, n_vocab);
}

static float *read_ref(const char *rel, size_t expect_floats) {
    size_t n = 0;
    float *p = bn_test_read(bn_test_src(rel), &n);
    if (!p || n != expect_floats * 4) {
        fprintf(stderr, "cannot read %s (%zu bytes)\n", rel, n);
        free(p);
        return NULL;
    }
    return p;
}

/* All-positions logits of one batch through a fresh context. */
static float *batch_logits(bn_model *m, const int32_t *ids, int n, const char *kernels) {
    return bn_test_batch_logits(m, ids, n, kernels);
}

static void check_model_against(const char *model_rel, const char *suffix, const char *kernels) {
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(bn_test_src(model_rel), NULL, &m));
    if (!m) return;
    const struct { const int32_t *ids; int n; const char *name; } seqs[] = {
        {seq1, 1, "seq1"}, {seq7, 7, "seq7"}, {seq33, 33, "seq33"}};
    for (int s = 0; s < 3; s++) {
        char rel[256], what[256];
        snprintf(rel, sizeof rel, "tests/data/hf-tiny/ref/logits_%s_%s.bin", seqs[s].name, suffix);
        snprintf(what, sizeof what, "%s %s vs %s [%s]", model_rel, seqs[s].name, suffix, kernels ? kernels : "best");
        float *ref = read_ref(rel, (size_t)seqs[s].n * V);
        float *got = batch_logits(m, seqs[s].ids, seqs[s].n, kernels);
        CHECK(ref && got);
        if (ref && got) CHECK_MSG(compare_rows(what, got, ref, seqs[s].n, V) == 0, "%s", what);
        free(ref);
        free(got);
    }
    bn_model_free(m);
}

static void test_packed_logits(void) {
    check_model_against("tests/data/hf-tiny/packed", "cpu", "ref");
    check_model_against("tests/data/hf-tiny/packed", "cpu", NULL);
}

static void test_bf16_online_logits(void) { check_model_against("tests/data/hf-tiny/bf16", "bf16online_cuda", NULL); }

static void test_gguf_roundtrip_logits(void) {
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), NULL, &m));
    if (!m) return;
    char path[512];
    snprintf(path, sizeof path, "%s/tiny.gguf", bn_test_tmpdir());
    /* F32 embeddings: the BF16 source survives exactly (F16 would round). */
    bn_save_options opt = {.set_embd_type = true, .embd_type = BN_TYPE_F32};
    CHECK_OK(bn_model_save_gguf_ex(m, path, &opt));
    bn_model_free(m);
    m = NULL;
    CHECK_OK(bn_model_load(path, NULL, &m));
    if (!m) return;
    float *ref = read_ref("tests/data/hf-tiny/ref/logits_seq33_cpu.bin", 33 * V);
    float *got = batch_logits(m, seq33, 33, NULL);
    if (ref && got) CHECK(compare_rows("gguf(f32 embd) seq33", got, ref, 33, V) == 0);
    free(got);
    bn_model_free(m);
    /* default F16 embeddings, as bitnet.cpp writes them */
    CHECK_OK(bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), NULL, &m));
    if (m) CHECK_OK(bn_model_save_gguf(m, path));
    bn_model_free(m);
    m = NULL;
    CHECK_OK(bn_model_load(path, NULL, &m));
    if (m) {
        got = batch_logits(m, seq33, 33, NULL);
        if (ref && got) CHECK(compare_rows("gguf(f16 embd) seq33", got, ref, 33, V) == 0);
        free(got);
    }
    free(ref);
    bn_model_free(m);
}

/* --prefill 6 over the 22 generation ids: rows 0..15 of gen_step_logits are
 * positions 5..20, the last 15 of which go through the KV cache one by one. */
static void test_kv_cache_path(void) {
    size_t n = 0;
    int32_t *toks = bn_test_read(bn_test_src("tests/data/hf-tiny/ref/gen_tokens_cpu.bin"), &n);
    float *ref = read_ref("tests/data/hf-tiny/ref/gen_step_logits_cpu.bin", 16 * V);
    CHECK(toks && n == 22 * 4 && ref);
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), NULL, &m));
    if (!m || !toks || !ref) goto out;
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 2;
    bn_context *c = NULL;
    CHECK_OK(bn_context_create(m, &cp, &c));
    float got[16 * V];
    bn_batch b = {.n_tokens = 6, .tokens = toks};
    CHECK_OK(bn_decode(c, &b));
    memcpy(got, bn_get_logits(c, 5), sizeof(float) * V);
    for (int i = 6; i < 21; i++) {
        bn_batch one = {.n_tokens = 1, .tokens = toks + i};
        CHECK_OK(bn_decode(c, &one));
        memcpy(got + (size_t)(i - 5) * V, bn_get_logits(c, 0), sizeof(float) * V);
    }
    CHECK(bn_seq_length(c, 0) == 21);
    CHECK(compare_rows("kv-cache decode", got, ref, 16, V) == 0);
    /* greedy ids equal transformers' generation */
    for (int r = 0; r < 16; r++) {
        int best = 0;
        for (int v = 1; v < V; v++) if (got[(size_t)r * V + v] > got[(size_t)r * V + best]) best = v;
        CHECK_MSG(best == toks[6 + r], "greedy step %d: %d vs %d", r, best, toks[6 + r]);
    }
    /* truncate and re-decode gives the same logits (cache reuse) */
    CHECK_OK(bn_seq_truncate(c, 0, 10));
    bn_batch redo = {.n_tokens = 1, .tokens = toks + 10};
    CHECK_OK(bn_decode(c, &redo));
    float d = 0;
    for (int v = 0; v < V; v++) d = fmaxf(d, fabsf(bn_get_logits(c, 0)[v] - got[(size_t)(10 - 5) * V + v]));
    CHECK_MSG(d == 0.0f, "re-decode after truncate differs by %g", d);
    bn_context_free(c);
out:
    bn_model_free(m);
    free(toks);
    free(ref);
}

/* Logits of a 6-token prefill, then 1-, 2- and 3-token steps, into out
 * [rows x V]; returns rows. */
static int step_logits(bn_model *m, const char *kernels, const int32_t *toks, float *out) {
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 2;
    cp.kernels = kernels;
    cp.all_logits = true;
    bn_context *c = NULL;
    if (bn_context_create(m, &cp, &c) != BN_OK) return 0;
    const int steps[] = {6, 1, 1, 2, 3, 1, 3, 2};
    int rows = 0, at = 0;
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        bn_batch b = {.n_tokens = steps[s], .tokens = toks + at};
        CHECK_OK(bn_decode(c, &b));
        for (int j = 0; j < steps[s]; j++) memcpy(out + (size_t)rows++ * V, bn_get_logits(c, j), sizeof(float) * V);
        at += steps[s];
    }
    bn_context_free(c);
    return rows;
}

/* repack (the T2R4 decode copy) changes no bit, with every kernel table this
 * CPU runs; and decode steps really read the copy: scribbling over it moves
 * their logits but not the prefill's. */
static void test_repack(void) {
    size_t n = 0;
    int32_t *toks = bn_test_read(bn_test_src("tests/data/hf-tiny/ref/gen_tokens_cpu.bin"), &n);
    CHECK(toks && n >= 19 * 4);
    bn_model *plain = NULL, *rp = NULL;
    bn_model_params mp = bn_model_default_params();
    mp.repack = true;
    CHECK_OK(bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), NULL, &plain));
    CHECK_OK(bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), &mp, &rp));
    if (!toks || !plain || !rp) goto out;
    CHECK(rp->layers[0].wq.w4 && rp->layers[rp->hp.n_layer - 1].w_down.w4 && !plain->layers[0].wq.w4);
    enum { ROWS = 19 };
    float a[ROWS * V], b[ROWS * V];
    const char *tables[] = {"ref", "avx2", "avx512"};
    for (int t = 0; t < 3; t++) {
        if (!bn_kernels_by_name(tables[t])) continue;
        CHECK(step_logits(plain, tables[t], toks, a) == ROWS && step_logits(rp, tables[t], toks, b) == ROWS);
        CHECK_MSG(!memcmp(a, b, sizeof a), "%s: repack changed the logits", tables[t]);
    }
    /* scribble: every code of layer 0's copy of w_down set to +1 */
    bn_linear *d = &rp->layers[0].w_down;
    memset((uint8_t *)d->w4, 0xaa, bn_t2r4_bytes(d->n_out, d->n_in));
    CHECK(step_logits(rp, NULL, toks, b) == ROWS);
    CHECK_MSG(!memcmp(a, b, 6 * V * sizeof(float)), "the 6-token prefill read the decode copy");
    CHECK_MSG(memcmp(a + 6 * V, b + 6 * V, (ROWS - 6) * V * sizeof(float)), "decode steps did not read the copy");
out:
    bn_model_free(plain);
    bn_model_free(rp);
    free(toks);
}

/* Several sequences in one batch give the same logits as each alone. */
static void test_multi_sequence(void) {
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), NULL, &m));
    if (!m) return;
    float *ref7 = read_ref("tests/data/hf-tiny/ref/logits_seq7_cpu.bin", 7 * V);
    float *ref33 = read_ref("tests/data/hf-tiny/ref/logits_seq33_cpu.bin", 33 * V);
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 40;
    cp.n_seq_max = 2;
    cp.n_threads = 2;
    bn_context *c = NULL;
    CHECK_OK(bn_context_create(m, &cp, &c));
    /* interleave: prefix of each, then one token of each per step */
    int32_t toks[40], seqs[40];
    int n = 0;
    for (int i = 0; i < 4; i++) { toks[n] = seq7[i]; seqs[n++] = 0; }
    for (int i = 0; i < 20; i++) { toks[n] = seq33[i]; seqs[n++] = 1; }
    bn_batch b = {.n_tokens = n, .tokens = toks, .seq_ids = seqs};
    CHECK_OK(bn_decode(c, &b));
    float got7[7 * V], got33[33 * V];
    memcpy(got7 + 3 * V, bn_get_logits(c, 3), sizeof(float) * V);
    memcpy(got33 + 19 * V, bn_get_logits(c, n - 1), sizeof(float) * V);
    for (int step = 0; step < 13; step++) {
        int32_t t2[2], s2[2];
        int k = 0;
        if (4 + step < 7) { t2[k] = seq7[4 + step]; s2[k++] = 0; }
        t2[k] = seq33[20 + step];
        s2[k++] = 1;
        bn_batch bb = {.n_tokens = k, .tokens = t2, .seq_ids = s2};
        CHECK_OK(bn_decode(c, &bb));
        if (k == 2) memcpy(got7 + (size_t)(4 + step) * V, bn_get_logits(c, 0), sizeof(float) * V);
        memcpy(got33 + (size_t)(20 + step) * V, bn_get_logits(c, k - 1), sizeof(float) * V);
    }
    if (ref7) CHECK(compare_rows("multi-seq seq7 (rows 3..6)", got7 + 3 * V, ref7 + 3 * V, 4, V) == 0);
    if (ref33) CHECK(compare_rows("multi-seq seq33 (rows 19..32)", got33 + 19 * V, ref33 + 19 * V, 14, V) == 0);
    /* copying a sequence's cache continues identically */
    CHECK_OK(bn_seq_copy(c, 1, 0, 20));
    CHECK(bn_seq_length(c, 0) == 20);
    bn_context_free(c);
    free(ref7);
    free(ref33);
    bn_model_free(m);
}

static void test_hidden_states(void) {
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), NULL, &m));
    const int L = 4, E = 256, T = 7;
    float *ref = read_ref("tests/data/hf-tiny/ref/hidden_seq7_spec_cpu.bin", (size_t)(L + 2) * T * E);
    if (!m || !ref) goto out;
    float *dump = calloc((size_t)(L + 2) * T * E, sizeof(float));
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 8;
    bn_context *c = NULL;
    CHECK_OK(bn_context_create(m, &cp, &c));
    bn_context_set_hidden_dump(c, dump, T);
    bn_batch b = {.n_tokens = T, .tokens = seq7};
    CHECK_OK(bn_decode(c, &b));
    for (int s = 0; s < L + 2; s++) {
        double mx = 0, amax = 0;
        for (size_t i = 0; i < (size_t)T * E; i++) {
            mx = fmax(mx, fabs(dump[(size_t)s * T * E + i] - ref[(size_t)s * T * E + i]));
            amax = fmax(amax, fabs(ref[(size_t)s * T * E + i]));
        }
        fprintf(stderr, "  hidden state %d: max|d| %.5f (max|ref| %.3f)\n", s, mx, amax);
        CHECK_MSG(mx <= 0.03 * amax, "hidden state %d differs by %g", s, mx);
    }
    bn_context_free(c);
    free(dump);
out:
    free(ref);
    bn_model_free(m);
}

/* The 8-bit row-quantized head stays within the SPEC tolerance; 6 and 4 bits
 * trade accuracy for bytes (their perplexity cost is in docs/PERFORMANCE.md). */
static void test_quantized_head(void) {
    bn_model_params mp = bn_model_default_params();
    mp.head_bits = 8;
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), &mp, &m));
    float *ref = read_ref("tests/data/hf-tiny/ref/logits_seq33_cpu.bin", 33 * V);
    if (m && ref) {
        bn_model_info info;
        bn_model_get_info(m, &info);
        CHECK(info.head_bits == 8);
        float *got = batch_logits(m, seq33, 33, NULL);
        float *got_ref = batch_logits(m, seq33, 33, "ref");
        if (got) CHECK(compare_rows("q8 head seq33", got, ref, 33, V) == 0);
        if (got && got_ref) CHECK(compare_rows("q8 head: best vs ref kernels", got, got_ref, 33, V) == 0);
        free(got);
        free(got_ref);
    }
    bn_model_free(m);
    m = NULL;
    mp.head_bits = 5;
    CHECK(bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), &mp, &m) == BN_ERR_INVALID_ARG);
    CHECK(m == NULL);
    free(ref);
}

static void test_bad_input(void) {
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(bn_test_src("tests/data/hf-tiny/packed"), NULL, &m));
    if (!m) return;
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 4;
    bn_context *c = NULL;
    CHECK_OK(bn_context_create(m, &cp, &c));
    int32_t bad[] = {1, 512};
    bn_batch b = {.n_tokens = 2, .tokens = bad};
    CHECK(bn_decode(c, &b) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "out of range") != NULL);
    CHECK(bn_seq_length(c, 0) == 0); /* nothing changed */
    int32_t five[] = {1, 2, 3, 4, 5};
    bn_batch b5 = {.n_tokens = 5, .tokens = five};
    CHECK(bn_decode(c, &b5) == BN_ERR_CONTEXT_FULL);
    CHECK(strstr(bn_last_error(), "context") != NULL);
    bn_batch b4 = {.n_tokens = 4, .tokens = five};
    CHECK_OK(bn_decode(c, &b4));
    bn_batch b1 = {.n_tokens = 1, .tokens = five};
    CHECK(bn_decode(c, &b1) == BN_ERR_CONTEXT_FULL);
    int32_t seq_bad[] = {3};
    bn_batch bs = {.n_tokens = 1, .tokens = five, .seq_ids = seq_bad};
    CHECK(bn_decode(c, &bs) == BN_ERR_INVALID_ARG);
    cp.kernels = "no-such-kernels";
    bn_context *c2 = NULL;
    CHECK(bn_context_create(m, &cp, &c2) == BN_ERR_UNSUPPORTED);
    cp.kernels = NULL;
    cp.device = BN_DEVICE_CUDA;
#ifndef BITNET_CUDA
    CHECK(bn_context_create(m, &cp, &c2) == BN_ERR_UNSUPPORTED); /* no CUDA in this build: a clear error */
    CHECK(strstr(bn_last_error(), "CUDA") != NULL);
#else
    if (bn_context_create(m, &cp, &c2) == BN_OK) bn_context_free(c2); /* a GPU may or may not exist */
    c2 = NULL;
#endif
    bn_context_free(c);
    bn_model_free(m);
    m = NULL;
    CHECK(bn_model_load("/nonexistent/model.gguf", NULL, &m) == BN_ERR_IO);
    CHECK(m == NULL);
}

int main(void) {
    RUN(test_packed_logits);
    RUN(test_bf16_online_logits);
    RUN(test_kv_cache_path);
    RUN(test_multi_sequence);
    RUN(test_hidden_states);
    RUN(test_gguf_roundtrip_logits);
    RUN(test_quantized_head);
    RUN(test_repack);
    RUN(test_bad_input);
    return bn_test_finish("test_model");
}
