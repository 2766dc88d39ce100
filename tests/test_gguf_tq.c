/* test_gguf_tq.c — llama.cpp's TQ1_0 / TQ2_0 linears and Q8_0 / Q6_K heads
 * (load_gguf_tq.c) against the I2_S file of the same weights, and
 * architecture "bitnet" (1bitLLM: SiLU FFN, per-linear .scale tensors, rope
 * scaling keys) against llama.cpp's own logits.
 *
 * Fixtures (tests/data/gguf_tq, see SOURCES.md): one-layer cuts of the tiny
 * random BitNet b1.58 (ReLU^2), as our I2_S GGUF and as llama.cpp's
 * llama-quantize wrote TQ2_0 (F16 head), TQ2_0 (Q8_0 head) and TQ1_0 (Q6_K
 * head) from its F16 copy, relabelled "bitnet-b1.58" (llama-quantize only
 * takes "bitnet", which means SiLU); *_rows.f32 are head rows dequantized by
 * ggml itself; tiny1-silu.lc.f32 is llama.cpp's logits for the TQ2_0 file
 * labelled "bitnet" with seven .scale tensors (k_scales). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bitnet.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "harness.h"
#include "quant/ternary.h"
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

static float *logits(const bn_model *m) { return bn_test_batch_logits(m, k_ids, N_IDS, NULL); }

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
    CHECK(tq2->hp.act == BN_ACT_RELU2 && tq1->hp.act == BN_ACT_RELU2 && tq2->hp.arch == BN_ARCH_BITNET_B158);
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

/* ------------------------------------------------------------ edits */

typedef struct xtensor {
    const char *name;
    float       v;
    uint64_t    n; /* elements, all v (F32) */
} xtensor;

typedef struct edit {
    const char    *arch;        /* rename general.architecture and its key prefix */
    const char    *skey, *sval; /* add a string key */
    const char    *fkey;        /* add an f32 key */
    float          fval;
    const xtensor *t;           /* add F32 tensors */
    int            nt;
    const char    *drop;        /* drop tensors whose name contains this */
    bool           f16_linears; /* TQ linears -> F16 values code * d (a converter's form) */
} edit;

/* Copy of a GGUF with the edit applied, in the temp dir as `out`. */
static const char *rewrite(const char *rel, const edit *e, const char *out) {
    size_t n = 0;
    uint8_t *buf = bn_test_read(bn_test_src(rel), &n);
    bn_gguf *g = NULL;
    bn_gguf_writer *w = NULL;
    const char *path = NULL;
    enum { MAXT = 64 };
    void *owned[MAXT] = {0};
    int n_owned = 0;
    float vals[MAXT];
    CHECK(buf != NULL);
    if (!buf) return NULL;
    CHECK_OK(bn_gguf_parse(buf, n, rel, &g));
    CHECK_OK(bn_gguf_writer_create(&w));
    if (!g || !w) goto out;
    char old_arch[64] = "";
    bn_gguf_get_str(g, "general.architecture", old_arch, sizeof old_arch);
    const size_t ol = strlen(old_arch);
    for (uint64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        const bn_gguf_kv *kv = bn_gguf_kv_at(g, i);
        char k[128];
        snprintf(k, sizeof k, "%.*s", (int)kv->key.len, kv->key.data);
        if (e->arch && !strcmp(k, "general.architecture")) {
            CHECK_OK(bn_gguf_writer_add_str(w, k, e->arch));
        } else if (e->arch && !strncmp(k, old_arch, ol) && k[ol] == '.') {
            char k2[160];
            snprintf(k2, sizeof k2, "%s%s", e->arch, k + ol);
            CHECK_OK(bn_gguf_writer_add_kv(w, k2, &kv->value));
        } else {
            CHECK_OK(bn_gguf_writer_add_kv(w, k, &kv->value));
        }
    }
    if (e->skey) CHECK_OK(bn_gguf_writer_add_str(w, e->skey, e->sval));
    if (e->fkey) CHECK_OK(bn_gguf_writer_add_f32(w, e->fkey, e->fval));
    for (uint64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        char k[128];
        snprintf(k, sizeof k, "%.*s", (int)t->name.len, t->name.data);
        if (e->drop && strstr(k, e->drop)) continue;
        if (e->f16_linears && bn_gguf_is_tq(t->type) && n_owned + 2 <= MAXT) {
            const int n_in = (int)t->ne[0], n_out = (int)t->ne[1];
            const size_t rb = bn_t2r_row_bytes(n_in);
            uint8_t *codes = calloc(rb * (size_t)n_out, 1);
            uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n_in * (size_t)n_out);
            owned[n_owned++] = codes;
            owned[n_owned++] = h;
            float d = 0;
            CHECK_OK(bn_gguf_tq_to_t2r(t, k, n_in, n_out, codes, &d));
            for (int r = 0; r < n_out; r++)
                for (int c = 0; c < n_in; c++)
                    h[(size_t)r * n_in + c] = bn_f32_to_f16((float)bn_t2r_get(codes + (size_t)r * rb, c) * d);
            CHECK_OK(bn_gguf_writer_add_tensor(w, k, BN_TYPE_F16, 2, t->ne, h, sizeof(uint16_t) * (size_t)n_in * n_out));
            continue;
        }
        CHECK_OK(bn_gguf_writer_add_tensor(w, k, t->type, t->n_dims, t->ne, t->data, t->nbytes));
    }
    for (int j = 0; j < e->nt && n_owned < MAXT; j++) {
        const uint64_t ne[1] = {e->t[j].n};
        float *v = malloc(sizeof(float) * e->t[j].n);
        owned[n_owned++] = v;
        for (uint64_t i = 0; i < e->t[j].n; i++) v[i] = e->t[j].v;
        vals[j] = e->t[j].v;
        CHECK_OK(bn_gguf_writer_add_tensor(w, e->t[j].name, BN_TYPE_F32, 1, ne, v, sizeof(float) * e->t[j].n));
    }
    (void)vals;
    static char p[4][512];
    static int pk;
    char *dst = p[pk++ % 4];
    snprintf(dst, 512, "%s/%s", bn_test_tmpdir(), out);
    CHECK_OK(bn_gguf_writer_write(w, dst));
    path = dst;
out:
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    bn_gguf_writer_free(w);
    bn_gguf_free(g);
    free(buf);
    return path;
}

/* ------------------------------------------------------------ arch bitnet */

/* The output multipliers of tiny1-silu.lc.f32 (gguf_edit.py --add-scale). */
static const char *const k_lin_names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
static const float k_scales[7] = {1.25f, 0.5f, 2.0f, 0.75f, 1.5f, 0.8f, 1.1f};

static const char *silu_file(const char *out, const float *scales) {
    static char names[7][48];
    xtensor t[7];
    for (int j = 0; j < 7; j++) {
        snprintf(names[j], sizeof names[j], "blk.0.%s.scale", k_lin_names[j]);
        t[j] = (xtensor){names[j], scales ? scales[j] : 1.0f, 1};
    }
    edit e = {.arch = "bitnet", .skey = "bitnet.rope.scaling.type", .sval = "linear",
              .fkey = "bitnet.rope.scaling.factor", .fval = 1.0f, .t = t, .nt = scales ? 7 : 0};
    return rewrite(DIR "tiny1-tq20.gguf", &e, out);
}

/* llama.cpp (the independent oracle) on the TQ2_0 file labelled "bitnet" with
 * seven .scale tensors: SiLU FFN, scales applied after each matmul. Its
 * activations are quantized per 256-block (Q8_K), ours per token (SPEC §2),
 * so the logits agree within SPEC §2's tolerance, not bit for bit; the same
 * file run as ReLU^2, or without the scales, must be far off. */
static void test_silu_llama(void) {
    size_t n = 0;
    float *want = bn_test_read(bn_test_src(DIR "tiny1-silu.lc.f32"), &n);
    const char *p = silu_file("silu.gguf", k_scales);
    bn_model *ref = load(DIR "tiny1-tq20.gguf"), *m = NULL;
    CHECK(want && n == sizeof(float) * V * N_IDS);
    if (!want || n != sizeof(float) * V * N_IDS || !p || !ref) goto out;
    CHECK_OK(bn_model_load(p, NULL, &m));
    if (!m) goto out;
    CHECK(m->hp.act == BN_ACT_SILU && m->hp.arch == BN_ARCH_BITNET_1BIT);
    CHECK(m->layers[0].attn_sub_norm && m->layers[0].ffn_sub_norm);
    int bad_scale = 0;
    for (int j = 0; j < 7; j++) /* folded: f16 block scale d times .scale, one f32 product */
        bad_scale += linears(&m->layers[0], j)->scale != linears(&ref->layers[0], j)->scale * k_scales[j];
    CHECK_MSG(bad_scale == 0, "%d of 7 folded scales differ from d * scale", bad_scale);
    float *got = logits(m);
    if (got) {
        int agree = 0;
        for (int i = 0; i < N_IDS; i++) {
            int a = 0, b = 0;
            for (int v = 1; v < V; v++) {
                if (got[i * V + v] > got[i * V + a]) a = v;
                if (want[i * V + v] > want[i * V + b]) b = v;
            }
            agree += a == b;
        }
        fprintf(stderr, "   argmax equal to llama.cpp's at %d of %d positions\n", agree, N_IDS);
        CHECK(bn_test_compare_logits("bitnet (SiLU, .scale) vs llama.cpp", got, want, N_IDS, V) == 0);
        CHECK(agree >= N_IDS - 1);
    }
    free(got);
    /* the controls: what the old reading (ReLU^2) and dropped scales give */
    m->hp.act = BN_ACT_RELU2;
    got = logits(m);
    if (got) CHECK(bn_test_compare_logits("control: same file as ReLU^2", got, want, N_IDS, V) == N_IDS);
    free(got);
    m->hp.act = BN_ACT_SILU;
    for (int j = 0; j < 7; j++) linears(&m->layers[0], j)->scale = linears(&ref->layers[0], j)->scale;
    got = logits(m);
    if (got) CHECK(bn_test_compare_logits("control: .scale tensors ignored", got, want, N_IDS, V) > 0);
    free(got);
out:
    bn_model_free(m);
    bn_model_free(ref);
    free(want);
}

/* Exact checks inside the engine: .scale = 1 everywhere changes nothing; a
 * "bitnet" file's SiLU model is the 2B4T file's weights with act = SiLU; a
 * converter's F16 linears holding code * d mean exactly the TQ codes and d. */
static void test_silu_exact(void) {
    bn_model *ref = load(DIR "tiny1-tq20.gguf"), *a = NULL, *b = NULL, *c = NULL;
    const char *pa = silu_file("silu-plain.gguf", NULL);
    static const float ones[7] = {1, 1, 1, 1, 1, 1, 1};
    const char *pb = silu_file("silu-ones.gguf", ones);
    edit ef = {.f16_linears = true};
    const char *pc = rewrite(DIR "tiny1-tq20.gguf", &ef, "f16lin.gguf");
    if (!ref || !pa || !pb || !pc) goto out;
    CHECK_OK(bn_model_load(pa, NULL, &a));
    CHECK_OK(bn_model_load(pb, NULL, &b));
    CHECK_OK(bn_model_load(pc, NULL, &c));
    if (!a || !b || !c) goto out;
    float *la = logits(a), *lb = logits(b);
    ref->hp.act = BN_ACT_SILU;
    float *lr = logits(ref);
    ref->hp.act = BN_ACT_RELU2;
    CHECK(la && lb && lr && !memcmp(la, lb, sizeof(float) * V * N_IDS) && !memcmp(la, lr, sizeof(float) * V * N_IDS));
    free(la);
    free(lb);
    free(lr);
    check_same_weights(ref, c, "F16 linears"); /* scales: f16(d) = d */
    la = logits(ref);
    lb = logits(c);
    CHECK(la && lb && !memcmp(la, lb, sizeof(float) * V * N_IDS));
    fprintf(stderr, "   .scale = 1, SiLU-switched 2B4T file, F16 code*d linears: logits identical\n");
    free(la);
    free(lb);
out:
    bn_model_free(ref);
    bn_model_free(a);
    bn_model_free(b);
    bn_model_free(c);
}

/* ------------------------------------------------------------ HF 1bitLLM */

/* A 1bitLLM-style Hugging Face folder (config as 1bitLLM/bitnet_b1_58-*
 * ships it: model_type "llama", BitnetForCausalLM, silu, fp16 masters, tied;
 * sub-norms inner_attn_ln / ffn_layernorm) holding the "bitnet" GGUF model's
 * weights as f16(code * d). The loader quantizes masters online (absmean, as
 * 1bitLLM's weight_quant; codes come back unchanged since |w| is uniform), so
 * its logits must equal, bit for bit, the GGUF model's with every scale set
 * to absmean: which checks every name, the orientation, SiLU and the tie. */
static void test_hf_1bitllm(void) {
    const char *p = silu_file("silu-hf-src.gguf", NULL);
    bn_model *g = NULL, *h = NULL;
    bn_st_writer *w = NULL;
    enum { NL = 7 };
    uint16_t *masters[NL] = {0};
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/hf1bit", bn_test_tmpdir());
    if (!p) return;
    CHECK_OK(bn_model_load(p, NULL, &g));
    if (!g) return;
    const bn_hparams *hp = &g->hp;
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) goto out;
    fprintf(f,
            "{\"architectures\": [\"BitnetForCausalLM\"], \"model_type\": \"llama\", \"hidden_act\": \"silu\",\n"
            " \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,\n"
            " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d,\n"
            " \"rms_norm_eps\": %.9g, \"rope_theta\": %.9g, \"rope_scaling\": null, \"max_position_embeddings\": 2048,\n"
            " \"tie_word_embeddings\": true, \"torch_dtype\": \"float16\", \"input_bits\": 8, \"weight_bits\": 1,\n"
            " \"bos_token_id\": 1, \"eos_token_id\": 2}\n",
            hp->n_embd, hp->n_ff, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_vocab, (double)hp->rms_eps,
            (double)hp->rope_theta);
    fclose(f);
    CHECK_OK(bn_st_writer_create(&w));
    if (!w) goto out;
    const uint64_t es[2] = {(uint64_t)hp->n_vocab, (uint64_t)hp->n_embd};
    CHECK(g->embd_type == BN_TYPE_F16);
    CHECK_OK(bn_st_writer_add(w, "model.embed_tokens.weight", BN_TYPE_F16, 2, es, g->tok_embd, es[0] * es[1] * 2));
    const uint64_t ne1[1] = {(uint64_t)hp->n_embd}, nf1[1] = {(uint64_t)hp->n_ff};
    CHECK_OK(bn_st_writer_add(w, "model.norm.weight", BN_TYPE_F32, 1, ne1, g->output_norm, ne1[0] * 4));
    static const char *const hf_names[NL] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    char names[NL + 4][96];
    const bn_layer *L = &g->layers[0];
    for (int j = 0; j < NL; j++) {
        const bn_linear *l = linears((bn_layer *)L, j);
        const size_t rb = bn_t2r_row_bytes(l->n_in);
        masters[j] = malloc(sizeof(uint16_t) * (size_t)l->n_in * l->n_out);
        for (int r = 0; r < l->n_out; r++)
            for (int c = 0; c < l->n_in; c++)
                masters[j][(size_t)r * l->n_in + c] = bn_f32_to_f16((float)bn_t2r_get(l->w + (size_t)r * rb, c) * l->scale);
        const uint64_t sh[2] = {(uint64_t)l->n_out, (uint64_t)l->n_in};
        snprintf(names[j], sizeof names[j], "model.layers.0.%s.weight", hf_names[j]);
        CHECK_OK(bn_st_writer_add(w, names[j], BN_TYPE_F16, 2, sh, masters[j], sh[0] * sh[1] * 2));
    }
    const char *norm_names[4] = {"input_layernorm", "self_attn.inner_attn_ln", "post_attention_layernorm",
                                 "mlp.ffn_layernorm"};
    const float *norms[4] = {L->attn_norm, L->attn_sub_norm, L->ffn_norm, L->ffn_sub_norm};
    for (int j = 0; j < 4; j++) {
        snprintf(names[NL + j], sizeof names[NL + j], "model.layers.0.%s.weight", norm_names[j]);
        const uint64_t *sh = j == 3 ? nf1 : ne1;
        CHECK_OK(bn_st_writer_add(w, names[NL + j], BN_TYPE_F32, 1, sh, norms[j], sh[0] * 4));
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(bn_st_writer_write(w, path));
    CHECK_OK(bn_model_load(dir, NULL, &h));
    if (!h) goto out;
    CHECK(h->hp.act == BN_ACT_SILU && h->hp.arch == BN_ARCH_BITNET_1BIT && h->layers[0].attn_sub_norm &&
          h->layers[0].ffn_sub_norm);
    int diff = 0;
    for (int j = 0; j < NL; j++) { /* the GGUF model with 1bitLLM's online scale */
        bn_linear *a = linears(&g->layers[0], j), *b = linears(&h->layers[0], j);
        const size_t n = (size_t)a->n_in * a->n_out;
        float *fw = malloc(sizeof(float) * n);
        bn_f16_to_f32_row(masters[j], fw, n);
        a->scale = bn_absmean_scale(fw, n);
        free(fw);
        diff += memcmp(a->w, b->w, bn_t2r_row_bytes(a->n_in) * (size_t)a->n_out) != 0 || a->scale != b->scale;
    }
    CHECK_MSG(diff == 0, "%d of 7 linears differ (codes or absmean scale)", diff);
    float *la = logits(g), *lb = logits(h);
    CHECK(la && lb && !memcmp(la, lb, sizeof(float) * V * N_IDS));
    fprintf(stderr, "   1bitLLM HF folder (llama/BitnetForCausalLM, fp16 masters): logits identical to the GGUF model's\n");
    free(la);
    free(lb);
out:
    for (int j = 0; j < NL; j++) free(masters[j]);
    bn_st_writer_free(w);
    bn_model_free(g);
    bn_model_free(h);
}

/* RoPE scaling other than the identity, .scale tensors outside "bitnet" or
 * out of range are refused; "bitnet" runs without sub-norms, 2B4T does not. */
static void test_arch_guards(void) {
    edit e = {.skey = "bitnet-b1.58.rope.scaling.type", .sval = "yarn"};
    const char *p = rewrite(DIR "tiny1-tq20.gguf", &e, "yarn.gguf");
    if (p) expect_fail(p, BN_ERR_UNSUPPORTED, "RoPE scaling type 'yarn'", NULL);
    e = (edit){.arch = "bitnet", .skey = "bitnet.rope.scaling.type", .sval = "linear",
               .fkey = "bitnet.rope.scaling.factor", .fval = 2.0f};
    if ((p = rewrite(DIR "tiny1-tq20.gguf", &e, "lin2.gguf"))) expect_fail(p, BN_ERR_UNSUPPORTED, "factor 2", NULL);
    e = (edit){.fkey = "bitnet-b1.58.rope.scale_linear", .fval = 4.0f};
    if ((p = rewrite(DIR "tiny1-tq20.gguf", &e, "lin4.gguf"))) expect_fail(p, BN_ERR_UNSUPPORTED, "factor 4", NULL);
    xtensor t = {"blk.0.ffn_up.scale", 1.0f, 1};
    e = (edit){.t = &t, .nt = 1};
    if ((p = rewrite(DIR "tiny1-tq20.gguf", &e, "oscale.gguf")))
        expect_fail(p, BN_ERR_UNSUPPORTED, "blk.0.ffn_up.scale", "architecture 'bitnet'");
    e.arch = "bitnet";
    t.v = 0.0f;
    if ((p = rewrite(DIR "tiny1-tq20.gguf", &e, "oscale0.gguf")))
        expect_fail(p, BN_ERR_FORMAT, "blk.0.ffn_up.scale", "positive finite");
    t = (xtensor){"blk.0.attn_k.scale", 1.0f, 2};
    if ((p = rewrite(DIR "tiny1-tq20.gguf", &e, "oscale2.gguf")))
        expect_fail(p, BN_ERR_SHAPE, "blk.0.attn_k.scale", "2 elements");
    e = (edit){.drop = "sub_norm"};
    if ((p = rewrite(DIR "tiny1-tq20.gguf", &e, "nosub.gguf")))
        expect_fail(p, BN_ERR_NOT_FOUND, "blk.0.attn_sub_norm.weight is missing", NULL);
    e.arch = "bitnet";
    bn_model *m = NULL;
    if ((p = rewrite(DIR "tiny1-tq20.gguf", &e, "nosub1.gguf"))) CHECK_OK(bn_model_load(p, NULL, &m));
    if (m) {
        CHECK(!m->layers[0].attn_sub_norm && !m->layers[0].ffn_sub_norm && m->hp.act == BN_ACT_SILU);
        float *l = logits(m);
        bool finite = l != NULL;
        for (int i = 0; l && i < V * N_IDS; i++) finite &= isfinite(l[i]) != 0;
        CHECK(finite);
        free(l);
    }
    bn_model_free(m);
    m = NULL;
    e = (edit){.skey = "general.note", .sval = "x"}; /* the copy itself loads */
    if ((p = rewrite(DIR "tiny1-tq20.gguf", &e, "plain.gguf"))) CHECK_OK(bn_model_load(p, NULL, &m));
    bn_model_free(m);
}

int main(void) {
    RUN(test_tq_files);
    RUN(test_bad_files);
    RUN(test_short_tensor);
    RUN(test_tq1_digits);
    RUN(test_silu_llama);
    RUN(test_silu_exact);
    RUN(test_hf_1bitllm);
    RUN(test_arch_guards);
    return bn_test_finish("test_gguf_tq");
}
