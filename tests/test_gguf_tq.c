/* test_gguf_tq.c — llama.cpp's TQ1_0 / TQ2_0 linears and Q8_0 / Q6_K heads
 * (load_gguf_tq.c) against the I2_S file of the same weights.
 *
 * Fixtures (tests/data/gguf_tq, see SOURCES.md): one-layer cuts of the tiny
 * random BitNet, as our I2_S GGUF and as llama.cpp's llama-quantize wrote
 * TQ2_0 (F16 head), TQ2_0 (Q8_0 head) and TQ1_0 (Q6_K head) from its F16
 * copy; *_rows.f32 are head rows dequantized by ggml itself. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "formats/gguf.h"
#include "harness.h"
#include "model/load_gguf_tq.h"
#include "model/model.h"

#define DIR "tests/data/gguf_tq/"
#define V 512
#define E 256

static const int32_t k_ids[] = {510, 1, 5, 77, 300, 2, 511, 128};
#define N_IDS ((int)(sizeof k_ids / sizeof k_ids[0]))

static bn_model *load(const char *rel) {
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(bn_test_src(rel), NULL, &m));
    return m;
}

static bn_linear *linears(bn_layer *L, int j) {
    bn_linear *ls[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return ls[j];
}

static float f16_round(float x) { return bn_f16_to_f32(bn_f32_to_f16(x)); }

/* ggml's TQ scale is d = f16(absmax) of the F16 copy's values ±f16(beta):
 * the codes must be identical and the scale the f16 rounding of beta. */
static void check_same_weights(const bn_model *ref, const bn_model *m, const char *what) {
    CHECK(m->hp.n_layer == ref->hp.n_layer && m->hp.n_embd == ref->hp.n_embd && m->hp.n_vocab == ref->hp.n_vocab);
    int diff_codes = 0, diff_scale = 0, n_lin = 0;
    for (int i = 0; i < ref->hp.n_layer; i++)
        for (int j = 0; j < 7; j++) {
            const bn_linear *a = linears(&ref->layers[i], j), *b = linears(&m->layers[i], j);
            size_t bytes = bn_t2r_row_bytes(a->n_in) * (size_t)a->n_out;
            n_lin++;
            if (a->n_in != b->n_in || a->n_out != b->n_out || memcmp(a->w, b->w, bytes) != 0) diff_codes++;
            if (b->scale != f16_round(a->scale)) diff_scale++;
        }
    CHECK_MSG(diff_codes == 0, "%s: %d of %d linears have other codes", what, diff_codes, n_lin);
    CHECK_MSG(diff_scale == 0, "%s: %d of %d scales differ from f16(I2_S scale)", what, diff_scale, n_lin);
    CHECK(memcmp(m->output_norm, ref->output_norm, sizeof(float) * E) == 0);
    CHECK(memcmp(m->layers[0].ffn_sub_norm, ref->layers[0].ffn_sub_norm, sizeof(float) * 512) == 0);
}

static float *logits(const bn_model *m) {
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 32;
    cp.all_logits = true;
    cp.n_threads = 2;
    bn_context *c = NULL;
    CHECK_OK(bn_context_create(m, &cp, &c));
    if (!c) return NULL;
    bn_batch b = {.n_tokens = N_IDS, .tokens = k_ids};
    float *out = NULL;
    if (bn_decode(c, &b) == BN_OK) {
        out = malloc(sizeof(float) * V * N_IDS);
        for (int i = 0; i < N_IDS; i++) memcpy(out + (size_t)i * V, bn_get_logits(c, i), sizeof(float) * V);
    } else {
        CHECK_MSG(0, "decode failed: %s", bn_last_error());
    }
    bn_context_free(c);
    return out;
}

/* The I2_S model with every scale rounded to f16 and (optionally) another
 * head table: the model the llama.cpp file denotes. Logits must be equal. */
static void check_same_logits(bn_model *ref, const bn_model *m, const char *what) {
    float saved[7];
    const void *embd = ref->tok_embd;
    bn_type et = ref->embd_type;
    for (int j = 0; j < 7; j++) {
        saved[j] = linears(&ref->layers[0], j)->scale;
        linears(&ref->layers[0], j)->scale = f16_round(saved[j]);
    }
    ref->tok_embd = m->tok_embd;
    ref->embd_type = m->embd_type;
    float *a = logits(ref), *b = logits(m);
    if (a && b) {
        double worst = 0, amax = 0;
        for (int i = 0; i < V * N_IDS; i++) {
            worst = fmax(worst, fabs((double)a[i] - b[i]));
            amax = fmax(amax, fabs((double)a[i]));
        }
        fprintf(stderr, "   %s: %d x %d logits, max |d| = %g (max |logit| %.3f)\n", what, N_IDS, V, worst, amax);
        CHECK_MSG(memcmp(a, b, sizeof(float) * V * N_IDS) == 0, "%s: logits differ by up to %g", what, worst);
    }
    free(a);
    free(b);
    for (int j = 0; j < 7; j++) linears(&ref->layers[0], j)->scale = saved[j];
    ref->tok_embd = embd;
    ref->embd_type = et;
}

/* Head rows against ggml's own dequantization; also close to the F16 head. */
static void check_head(const bn_model *ref, const bn_model *m, const char *rows_rel, double tol, const char *what) {
    static const int rows[6] = {0, 1, 2, 255, 510, 511};
    size_t n = 0;
    float *want = bn_test_read(bn_test_src(rows_rel), &n);
    CHECK(want && n == sizeof(float) * E * 6);
    CHECK(m->embd_type == BN_TYPE_F32);
    if (!want || n != sizeof(float) * E * 6 || m->embd_type != BN_TYPE_F32) {
        free(want);
        return;
    }
    const float *got = m->tok_embd;
    int bad = 0;
    for (int r = 0; r < 6; r++)
        if (memcmp(got + (size_t)rows[r] * E, want + (size_t)r * E, sizeof(float) * E) != 0) bad++;
    CHECK_MSG(bad == 0, "%s: %d of 6 rows differ from ggml's dequantization", what, bad);
    /* and the table is the F16 head up to the quantization error */
    const uint16_t *h = ref->tok_embd;
    double worst = 0, amax = 0;
    for (size_t i = 0; i < (size_t)V * E; i++) {
        worst = fmax(worst, fabs((double)got[i] - bn_f16_to_f32(h[i])));
        amax = fmax(amax, fabs((double)bn_f16_to_f32(h[i])));
    }
    fprintf(stderr, "   %s head: max |d| vs F16 = %.4g (max |w| %.3f)\n", what, worst, amax);
    CHECK_MSG(worst < tol * amax && worst > 0, "%s head differs from F16 by %g", what, worst);
    free(want);
}

static void test_tq_files(void) {
    bn_model *ref = load(DIR "tiny1-i2s.gguf");
    bn_model *tq2 = load(DIR "tiny1-tq20.gguf"), *tq2q8 = load(DIR "tiny1-tq20-q80.gguf");
    bn_model *tq1 = load(DIR "tiny1-tq10-q6k.gguf");
    if (!ref || !tq2 || !tq2q8 || !tq1) goto out;
    CHECK(ref->embd_type == BN_TYPE_F16 && tq2->embd_type == BN_TYPE_F16);
    CHECK(memcmp(ref->tok_embd, tq2->tok_embd, (size_t)V * E * 2) == 0);
    int n_scaled = 0; /* the fixture must exercise the f16 rounding of beta */
    for (int j = 0; j < 7; j++) n_scaled += linears(&ref->layers[0], j)->scale != f16_round(linears(&ref->layers[0], j)->scale);
    fprintf(stderr, "   %d of 7 I2_S scales are not f16 values\n", n_scaled);
    check_same_weights(ref, tq2, "TQ2_0");
    check_same_weights(ref, tq2q8, "TQ2_0/Q8_0");
    check_same_weights(ref, tq1, "TQ1_0");
    check_head(ref, tq2q8, DIR "q80_rows.f32", 0.01, "Q8_0");
    check_head(ref, tq1, DIR "q6k_rows.f32", 0.05, "Q6_K");
    check_same_logits(ref, tq2, "TQ2_0");
    check_same_logits(ref, tq2q8, "TQ2_0/Q8_0");
    check_same_logits(ref, tq1, "TQ1_0/Q6_K");
out:
    bn_model_free(ref);
    bn_model_free(tq2);
    bn_model_free(tq2q8);
    bn_model_free(tq1);
}

/* ------------------------------------------------------------ bad files */

static const char *write_tmp(const char *name, const uint8_t *p, size_t n) {
    static char path[4][512];
    static int k;
    char *dst = path[k++ % 4];
    snprintf(dst, 512, "%s/%s", bn_test_tmpdir(), name);
    FILE *f = fopen(dst, "wb");
    CHECK(f && fwrite(p, 1, n, f) == n);
    if (f) fclose(f);
    return dst;
}

/* Load must fail with status want and a message containing every needle. */
static void expect_fail(const char *path, bn_status want, const char *n1, const char *n2) {
    bn_model *m = NULL;
    bn_status st = bn_model_load(path, NULL, &m);
    const char *msg = bn_last_error();
    CHECK_MSG(st == want, "got %s (%s)", bn_status_name(st), msg);
    CHECK_MSG(strstr(msg, n1) && (!n2 || strstr(msg, n2)), "message: %s", msg);
    fprintf(stderr, "   expected error: %s\n", msg);
    bn_model_free(m);
}

/* Offset of a tensor's data in the file buffer. */
static size_t tensor_off(const uint8_t *buf, size_t n, const char *name) {
    bn_gguf *g = NULL;
    size_t off = 0;
    CHECK_OK(bn_gguf_parse(buf, n, "copy", &g));
    const bn_gguf_tensor *t = g ? bn_gguf_find_tensor(g, name) : NULL;
    CHECK(t != NULL);
    if (t) off = (size_t)(t->data - buf);
    bn_gguf_free(g);
    return off;
}

static void test_bad_files(void) {
    size_t n2 = 0, n1 = 0;
    uint8_t *f2 = bn_test_read(bn_test_src(DIR "tiny1-tq20.gguf"), &n2);
    uint8_t *f1 = bn_test_read(bn_test_src(DIR "tiny1-tq10-q6k.gguf"), &n1);
    CHECK(f2 && f1);
    if (!f2 || !f1) goto out;
    uint8_t *c = malloc(n2 > n1 ? n2 : n1);

    /* truncated: the last tensor's data runs past the end */
    expect_fail(write_tmp("trunc.gguf", f2, n2 - 100), BN_ERR_FORMAT, "past end of file", NULL);
    expect_fail(write_tmp("trunc1.gguf", f1, n1 / 2), BN_ERR_FORMAT, "past end of file", NULL);

    /* a second scale in one TQ2_0 tensor: block 1 of row 3 of attn_q */
    memcpy(c, f2, n2);
    size_t off = tensor_off(c, n2, "blk.0.attn_q.weight");
    size_t blk = off + (3 * 1 + 0) * 66; /* row 3, block 0 (one 256-block per row) */
    c[blk + 64] ^= 1;                    /* low bit of d: one f16 ulp */
    expect_fail(write_tmp("scale2.gguf", c, n2), BN_ERR_UNSUPPORTED, "blk.0.attn_q.weight", "block scales differ");

    /* a zero scale on a nonzero block is refused too; on an all-zero block it is fine */
    memcpy(c, f2, n2);
    c[off + 64] = 0;
    c[off + 65] = 0;
    expect_fail(write_tmp("scale0.gguf", c, n2), BN_ERR_FORMAT, "blk.0.attn_q.weight", "invalid scale");
    memset(c + off, 0x55, 64); /* row 0 all zero, then its d is unused */
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(write_tmp("zeroblk.gguf", c, n2), NULL, &m));
    if (m) CHECK(bn_t2r_get(m->layers[0].wq.w, 0) == 0 && m->layers[0].wq.scale > 0);
    bn_model_free(m);

    /* TQ2_0's fourth code (+2d) is not ternary */
    memcpy(c, f2, n2);
    c[off + 66 * 5 + 7] |= 0x30;
    expect_fail(write_tmp("code3.gguf", c, n2), BN_ERR_FORMAT, "blk.0.attn_q.weight", "code 3");

    /* TQ1_0: another scale in ffn_down row 7 block 1 */
    memcpy(c, f1, n1);
    off = tensor_off(c, n1, "blk.0.ffn_down.weight");
    c[off + (7 * 2 + 1) * 54 + 53] ^= 0x04;
    expect_fail(write_tmp("scale1.gguf", c, n1), BN_ERR_UNSUPPORTED, "blk.0.ffn_down.weight", "block scales differ");
    free(c);
out:
    free(f2);
    free(f1);
}

/* The decoders refuse short data even when handed a tensor directly. */
static void test_short_tensor(void) {
    uint8_t buf[66 * 2 + 210] = {0};
    bn_gguf_tensor t = {.type = BN_TYPE_TQ2_0, .ne = {256, 2, 1, 1}, .nbytes = 66 * 2 - 1, .data = buf};
    uint8_t w[128] = {0};
    float s = 0;
    CHECK(bn_gguf_tq_to_t2r(&t, "x.weight", 256, 2, w, &s) == BN_ERR_FORMAT);
    CHECK(strstr(bn_last_error(), "x.weight") && strstr(bn_last_error(), "131 bytes"));
    t.nbytes = 66 * 2;
    memset(buf, 0x55, sizeof buf); /* all zero codes */
    CHECK_OK(bn_gguf_tq_to_t2r(&t, "x.weight", 256, 2, w, &s));
    CHECK(s == 1.0f);
    CHECK(bn_gguf_tq_to_t2r(&t, "x.weight", 128, 2, w, &s) == BN_ERR_SHAPE);
    t.type = BN_TYPE_TQ1_0;
    t.nbytes = 54 * 2 - 2;
    CHECK(bn_gguf_tq_to_t2r(&t, "y.weight", 256, 2, w, &s) == BN_ERR_FORMAT);
    float f[256];
    bn_gguf_tensor q = {.type = BN_TYPE_Q6_K, .ne = {256, 1, 1, 1}, .nbytes = 209, .data = buf};
    CHECK(bn_gguf_dequant_f32(&q, "token_embd.weight", 256, f) == BN_ERR_FORMAT);
    CHECK(strstr(bn_last_error(), "token_embd.weight") != NULL);
    q.type = BN_TYPE_Q8_0;
    q.nbytes = 34 * 8 - 1;
    CHECK(bn_gguf_dequant_f32(&q, "token_embd.weight", 256, f) == BN_ERR_FORMAT);
    q.type = BN_TYPE_TQ2_0;
    CHECK(bn_gguf_dequant_f32(&q, "token_embd.weight", 256, f) == BN_ERR_UNSUPPORTED);
}

/* TQ1_0 digits: every byte value decodes as ggml does (((b * 3^n) mod 256) * 3) >> 8,
 * and a byte the quantizer writes for digits (d0..d4) gives them back. */
static void test_tq1_digits(void) {
    uint8_t blk[54];
    uint8_t w[64];
    int bad = 0;
    for (int v = 0; v < 243; v++) {
        int dg[5], x = v;
        for (int n = 4; n >= 0; n--) { dg[n] = x % 3; x /= 3; } /* most significant digit first */
        uint8_t q = (uint8_t)((v * 256 + 242) / 243); /* the quantizer's ceiling division */
        memset(blk, q, 48);
        memset(blk + 48, 0x00, 4);
        blk[52] = 0x00;
        blk[53] = 0x3c; /* d = 1.0 */
        bn_gguf_tensor t = {.type = BN_TYPE_TQ1_0, .ne = {256, 1, 1, 1}, .nbytes = 54, .data = blk};
        float s;
        memset(w, 0, sizeof w);
        if (bn_gguf_tq_to_t2r(&t, "d", 256, 1, w, &s) != BN_OK) { bad++; continue; }
        for (int n = 0; n < 5; n++)
            if (bn_t2r_get(w, n * 32 + 3) != dg[n] - 1 || bn_t2r_get(w, 160 + n * 16 + 9) != dg[n] - 1) bad++;
        if (bn_t2r_get(w, 250) != -1) bad++; /* qh byte 0: digit 0 -> -1 */
    }
    CHECK_MSG(bad == 0, "%d TQ1_0 digit mismatches", bad);
}

/* Copy of a GGUF plus one string key and/or one F32 [1] tensor. */
static const char *rewrite(const char *rel, const char *key, const char *val, const char *tname, const char *out) {
    size_t n = 0;
    uint8_t *buf = bn_test_read(bn_test_src(rel), &n);
    bn_gguf *g = NULL;
    bn_gguf_writer *w = NULL;
    const char *path = NULL;
    static const float one = 1.0f;
    CHECK(buf != NULL);
    if (!buf) return NULL;
    CHECK_OK(bn_gguf_parse(buf, n, rel, &g));
    CHECK_OK(bn_gguf_writer_create(&w));
    if (!g || !w) goto out;
    for (uint64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        const bn_gguf_kv *kv = bn_gguf_kv_at(g, i);
        char k[128];
        snprintf(k, sizeof k, "%.*s", (int)kv->key.len, kv->key.data);
        CHECK_OK(bn_gguf_writer_add_kv(w, k, &kv->value));
    }
    if (key) CHECK_OK(bn_gguf_writer_add_str(w, key, val));
    for (uint64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        char k[128];
        snprintf(k, sizeof k, "%.*s", (int)t->name.len, t->name.data);
        CHECK_OK(bn_gguf_writer_add_tensor(w, k, t->type, t->n_dims, t->ne, t->data, t->nbytes));
    }
    if (tname) {
        const uint64_t ne[1] = {1};
        CHECK_OK(bn_gguf_writer_add_tensor(w, tname, BN_TYPE_F32, 1, ne, &one, sizeof one));
    }
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", bn_test_tmpdir(), out);
    CHECK_OK(bn_gguf_writer_write(w, p));
    path = p;
out:
    bn_gguf_writer_free(w);
    bn_gguf_free(g);
    free(buf);
    return path;
}

/* llama.cpp's "bitnet" arch: 2B4T files made for llama-quantize load, its
 * 1bitLLM conversions (SiLU FFN, marked by rope scaling) and its optional
 * per-linear output scales are refused rather than run wrongly. */
static void test_arch_guards(void) {
    const char *p = rewrite(DIR "tiny1-tq20.gguf", "bitnet.rope.scaling.type", "linear", NULL, "silu.gguf");
    if (p) expect_fail(p, BN_ERR_UNSUPPORTED, "1bitLLM", NULL);
    p = rewrite(DIR "tiny1-tq20.gguf", NULL, NULL, "blk.0.ffn_up.scale", "oscale.gguf");
    if (p) expect_fail(p, BN_ERR_UNSUPPORTED, "blk.0.ffn_up.scale", NULL);
    p = rewrite(DIR "tiny1-tq20.gguf", "general.note", "x", NULL, "plain.gguf"); /* the copy itself loads */
    bn_model *m = NULL;
    if (p) CHECK_OK(bn_model_load(p, NULL, &m));
    bn_model_free(m);
}

int main(void) {
    RUN(test_tq_files);
    RUN(test_bad_files);
    RUN(test_short_tensor);
    RUN(test_tq1_digits);
    RUN(test_arch_guards);
    return bn_test_finish("test_gguf_tq");
}
