/* test_quantize.c — `bitnet quantize`'s writer (model/save_quant.c) and
 * encoders (quant/tq_encode.c).
 *
 * Oracles: llama.cpp's own TQ2_0 / TQ1_0 / Q8_0 / Q6_K files of the same
 * weights (tests/data/gguf_tq, made by llama-quantize at d7da8dc8) must
 * equal ours tensor for tensor, byte for byte (they are relabelled
 * "bitnet-b1.58", the 2B4T name we write by default); the loader's decoders
 * (load_gguf_tq.c, tested against those files) must give every code back;
 * logits of the quantized models must equal the source's bit for bit (with
 * the scales rounded to f16 where TQ stores them so). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet.h"
#include "formats/gguf.h"
#include "harness.h"
#include "model/load_gguf_tq.h"
#include "model/model.h"
#include "model/save_quant.h"
#include "quant/tq_encode.h"

#define TQ "tests/data/gguf_tq/"
#define HF "tests/data/hf-tiny/packed"

static const int32_t k_ids[] = {510, 1, 5, 77, 300, 2, 511, 128};
#define N_IDS ((int)(sizeof k_ids / sizeof k_ids[0]))

static bn_model *load(const char *path) {
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(path, NULL, &m));
    return m;
}

static const char *tmp(const char *name) {
    static char p[8][512];
    static int k;
    char *d = p[k++ % 8];
    snprintf(d, 512, "%s/%s", bn_test_tmpdir(), name);
    return d;
}

static bn_status quant(const bn_model *m, const char *path, bn_type lt, bn_type ht, bn_quant_stats *s) {
    bn_quant_options o = {.linear_type = lt, .head_type = ht, .n_threads = 2};
    return bn_model_save_quant(m, path, &o, s);
}

static bn_linear *lin(bn_layer *L, int j) {
    bn_linear *ls[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return ls[j];
}

static float f16r(float x) { return bn_f16_to_f32(bn_f32_to_f16(x)); }

/* Linears with other codes than ref's; *bad_scale counts scales that are not
 * want(ref scale) (f16r, or identity when f16 is NULL). */
static int diff_codes(bn_model *ref, bn_model *m, bool f16, int *bad_scale) {
    int diff = 0;
    *bad_scale = 0;
    for (int i = 0; i < ref->hp.n_layer; i++)
        for (int j = 0; j < 7; j++) {
            const bn_linear *a = lin(&ref->layers[i], j), *b = lin(&m->layers[i], j);
            if (a->n_in != b->n_in || a->n_out != b->n_out ||
                memcmp(a->w, b->w, bn_t2r_row_bytes(a->n_in) * (size_t)a->n_out) != 0)
                diff++;
            if (b->scale != (f16 ? f16r(a->scale) : a->scale)) (*bad_scale)++;
        }
    return diff;
}

static float *logits(const bn_model *m) { return bn_test_batch_logits(m, k_ids, N_IDS, NULL); }

/* Logits of m equal ref's bit for bit (ref's scales rounded to f16 first when
 * f16 is set: the model a TQ file denotes). */
static void same_logits(bn_model *ref, const bn_model *m, bool f16, const char *what) {
    const int V = ref->hp.n_vocab, nl = ref->hp.n_layer;
    float *saved = malloc(sizeof(float) * 7 * (size_t)nl);
    for (int i = 0; i < nl; i++)
        for (int j = 0; j < 7; j++) {
            saved[i * 7 + j] = lin(&ref->layers[i], j)->scale;
            if (f16) lin(&ref->layers[i], j)->scale = f16r(saved[i * 7 + j]);
        }
    float *a = logits(ref), *b = logits(m);
    if (a && b) {
        double worst = 0, amax = 0;
        for (int i = 0; i < V * N_IDS; i++) {
            worst = fmax(worst, fabs((double)a[i] - b[i]));
            amax = fmax(amax, fabs((double)a[i]));
        }
        fprintf(stderr, "   %s: %d x %d logits, max |d| = %g (max |logit| %.3f)\n", what, N_IDS, V, worst, amax);
        CHECK_MSG(memcmp(a, b, sizeof(float) * (size_t)V * N_IDS) == 0, "%s: logits differ by up to %g", what, worst);
    }
    free(a);
    free(b);
    for (int i = 0; i < nl; i++)
        for (int j = 0; j < 7; j++) lin(&ref->layers[i], j)->scale = saved[i * 7 + j];
    free(saved);
}

/* Every tensor of `want` is in `got` with the same type, shape and bytes. */
static void same_tensors(const char *want_path, const char *got_path, const char *what) {
    bn_gguf *a = NULL, *b = NULL;
    CHECK_OK(bn_gguf_open(want_path, &a));
    CHECK_OK(bn_gguf_open(got_path, &b));
    if (!a || !b) goto out;
    int same = 0, n = (int)bn_gguf_n_tensors(a);
    for (int i = 0; i < n; i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(a, (uint64_t)i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        const bn_gguf_tensor *u = bn_gguf_find_tensor(b, name);
        uint64_t nel = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3], bytes = 0;
        bool ok = u && u->type == t->type && !memcmp(u->ne, t->ne, sizeof t->ne) &&
                  bn_type_nbytes((bn_type)t->type, nel, &bytes) && !memcmp(u->data, t->data, (size_t)bytes);
        CHECK_MSG(ok, "%s: tensor %s differs (type %u vs %u)", what, name, t->type, u ? u->type : 0u);
        same += ok;
    }
    CHECK(bn_gguf_n_tensors(b) == (uint64_t)n);
    fprintf(stderr, "   %s: %d of %d tensors byte-identical\n", what, same, n);
out:
    bn_gguf_free(a);
    bn_gguf_free(b);
}

static void check_arch(const char *path, const char *arch, uint32_t ftype) {
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open(path, &g));
    char a[64] = "";
    uint32_t ft = 0, v = 0;
    CHECK(g && bn_gguf_get_str(g, "general.architecture", a, sizeof a) && !strcmp(a, arch));
    CHECK(g && bn_gguf_get_u32(g, "general.file_type", &ft) && ft == ftype);
    char k[128];
    snprintf(k, sizeof k, "%s.block_count", arch);
    CHECK(g && bn_gguf_get_u32(g, k, &v) && v >= 1);
    bn_gguf_free(g);
}

/* llama-quantize's files of the same weights are the oracle. */
static void test_llama_oracle(void) {
    bn_model *src = load(bn_test_src(TQ "tiny1-i2s.gguf"));
    if (!src) return;
    static const struct { bn_type lt, ht; const char *out, *want; uint32_t ft; } c[] = {
        {BN_TYPE_TQ2_0, BN_TYPE_F16, "o-tq20.gguf", TQ "tiny1-tq20.gguf", 37},
        {BN_TYPE_TQ2_0, BN_TYPE_Q8_0, "o-tq20-q80.gguf", TQ "tiny1-tq20-q80.gguf", 37},
        {BN_TYPE_TQ1_0, BN_TYPE_Q6_K, "o-tq10-q6k.gguf", TQ "tiny1-tq10-q6k.gguf", 36},
    };
    for (int i = 0; i < 3; i++) {
        bn_quant_stats s;
        CHECK_OK(quant(src, tmp(c[i].out), c[i].lt, c[i].ht, &s));
        CHECK(s.n_linears == 7 && s.n_tensors == 13 && !strcmp(s.arch, "bitnet-b1.58"));
        CHECK(s.head_copied == (c[i].ht == BN_TYPE_F16));
        fprintf(stderr, "   %s: %d of 7 scales rounded to f16, max relative change %.3g\n", c[i].out,
                s.n_scale_rounded, s.max_scale_rel_err);
        CHECK(s.n_scale_rounded > 0 && s.max_scale_rel_err > 0 && s.max_scale_rel_err < 1.0 / 2048);
        same_tensors(bn_test_src(c[i].want), tmp(c[i].out), c[i].want);
        check_arch(tmp(c[i].out), "bitnet-b1.58", c[i].ft);
    }
    bn_model_free(src);
}

/* I2_S -> TQ2_0 -> TQ1_0 -> I2_S: codes identical at every step, the scale
 * f16(beta) from the first TQ file on; I2_S -> I2_S changes nothing. */
static void test_round_trip(void) {
    bn_model *src = load(bn_test_src(TQ "tiny1-i2s.gguf")), *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    if (!src) return;
    CHECK_OK(quant(src, tmp("rt-a.gguf"), BN_TYPE_TQ2_0, BN_TYPE_F16, NULL));
    if (!(a = load(tmp("rt-a.gguf")))) goto out;
    CHECK_OK(quant(a, tmp("rt-b.gguf"), BN_TYPE_TQ1_0, BN_TYPE_F16, NULL));
    if (!(b = load(tmp("rt-b.gguf")))) goto out;
    bn_quant_stats s;
    CHECK_OK(quant(b, tmp("rt-c.gguf"), BN_TYPE_I2_S, BN_TYPE_F16, &s));
    CHECK(s.n_scale_rounded == 0 && !strcmp(s.arch, "bitnet-b1.58"));
    if (!(c = load(tmp("rt-c.gguf")))) goto out;
    bn_model *steps[3] = {a, b, c};
    const char *names[3] = {"TQ2_0", "TQ1_0", "I2_S"};
    for (int k = 0; k < 3; k++) {
        int bad_scale, diff = diff_codes(src, steps[k], true, &bad_scale);
        fprintf(stderr, "   %s: %d of 7 linears with other codes, %d scales != f16(beta)\n", names[k], diff, bad_scale);
        CHECK(diff == 0 && bad_scale == 0);
    }
    /* the TQ1_0 file re-encoded as TQ1_0 is the same file's tensors */
    CHECK_OK(quant(b, tmp("rt-b2.gguf"), BN_TYPE_TQ1_0, BN_TYPE_F16, NULL));
    same_tensors(tmp("rt-b.gguf"), tmp("rt-b2.gguf"), "TQ1_0 -> TQ1_0");
    /* I2_S -> I2_S: every tensor as the source (scale kept in f32) */
    CHECK_OK(quant(src, tmp("rt-d.gguf"), BN_TYPE_I2_S, BN_TYPE_F16, &s));
    CHECK(s.n_scale_rounded == 0 && s.head_copied);
    same_tensors(bn_test_src(TQ "tiny1-i2s.gguf"), tmp("rt-d.gguf"), "I2_S -> I2_S");
    check_arch(tmp("rt-d.gguf"), "bitnet-b1.58", 40);
    if (!(d = load(tmp("rt-d.gguf")))) goto out;
    same_logits(src, d, false, "I2_S -> I2_S");
    same_logits(src, a, true, "I2_S -> TQ2_0");
    float *la = logits(src), *lb = logits(a); /* what the f16 scales cost against the f32 ones */
    if (la && lb) {
        double worst = 0, amax = 0;
        for (int i = 0; i < src->hp.n_vocab * N_IDS; i++) {
            worst = fmax(worst, fabs((double)la[i] - lb[i]));
            amax = fmax(amax, fabs((double)la[i]));
        }
        fprintf(stderr, "   TQ2_0 (f16 scales) vs I2_S (f32 scales): max |d logit| = %.3g of %.3f\n", worst, amax);
        CHECK(worst > 0); /* and within SPEC §2's tolerance */
        CHECK(bn_test_compare_logits("TQ2_0 vs I2_S", lb, la, N_IDS, src->hp.n_vocab) == 0);
    }
    free(la);
    free(lb);
    same_logits(src, b, true, "-> TQ1_0");
    same_logits(src, c, true, "-> I2_S");
out:
    bn_model_free(src);
    bn_model_free(a);
    bn_model_free(b);
    bn_model_free(c);
    bn_model_free(d);
}

/* llama.cpp's TQ1_0 + Q6_K file -> I2_S: the Q6_K head is copied, the scale
 * (an f16 value) kept, so the logits are the llama.cpp file's exactly. */
static void test_from_llama(void) {
    bn_model *src = load(bn_test_src(TQ "tiny1-tq10-q6k.gguf")), *m = NULL;
    if (!src) return;
    CHECK(bn_quant_source_head_type(src) == BN_TYPE_Q6_K);
    bn_quant_stats s;
    CHECK_OK(quant(src, tmp("fl.gguf"), BN_TYPE_I2_S, BN_TYPE_Q6_K, &s));
    CHECK(s.head_copied && s.n_scale_rounded == 0);
    if ((m = load(tmp("fl.gguf")))) {
        int bad_scale, diff = diff_codes(src, m, false, &bad_scale);
        CHECK(diff == 0 && bad_scale == 0);
        same_logits(src, m, false, "llama.cpp TQ1_0/Q6_K -> I2_S/Q6_K");
    }
    bn_model_free(m);
    bn_model_free(src);
}

/* HF packed (BF16 scales: f16 values) -> TQ2_0 / TQ1_0 / I2_S: nothing is
 * rounded, logits equal bit for bit. */
static void test_hf(void) {
    bn_model *src = load(bn_test_src(HF));
    if (!src) return;
    static const bn_type lts[3] = {BN_TYPE_TQ2_0, BN_TYPE_TQ1_0, BN_TYPE_I2_S};
    static const char *const outs[3] = {"hf-tq20.gguf", "hf-tq10.gguf", "hf-i2s.gguf"};
    CHECK(src->embd_type == BN_TYPE_BF16);
    for (int k = 0; k < 3; k++) {
        bn_quant_stats s;
        CHECK_OK(quant(src, tmp(outs[k]), lts[k], BN_TYPE_BF16, &s));
        CHECK_MSG(s.n_scale_rounded == 0 && s.n_linears == 7 * src->hp.n_layer, "%d rounded", s.n_scale_rounded);
        bn_model *m = load(tmp(outs[k]));
        if (!m) continue;
        int bad_scale, diff = diff_codes(src, m, false, &bad_scale);
        CHECK(diff == 0 && bad_scale == 0);
        CHECK(m->embd_type == BN_TYPE_BF16 && !memcmp(m->tok_embd, src->tok_embd, (size_t)512 * 256 * 2));
        same_logits(src, m, false, outs[k]);
        bn_model_free(m);
    }
    bn_model_free(src);
}

/* Random T2R rows (codes 0..3; 3 is a second zero) through both TQ encoders
 * and the loader's decoder: every code back, d = 0 only on zero blocks. */
static void test_encoders_random(void) {
    enum { K = 1024, R = 6 };
    const size_t rb = K / 4;
    uint8_t *w = malloc(rb * R), *want = malloc(rb * R), *got = malloc(rb * R);
    uint8_t *enc = malloc((size_t)(K / 256) * 66 * R);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < rb * R; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        w[i] = (uint8_t)x;
    }
    memset(w + 64, 0x55, 64); /* row 0 block 1 all zero */
    memset(w + rb + 128, 0xFF, 64); /* row 1 block 2 all code 3 (zeros too) */
    for (size_t i = 0; i < rb * R; i++) /* canonical: 3 -> 1 */
        want[i] = (uint8_t)(w[i] & ~((w[i] & (w[i] >> 1) & 0x55) << 1));
    const uint16_t d16 = bn_f32_to_f16(0.0123f);
    for (int tq2 = 0; tq2 < 2; tq2++) {
        const size_t bsz = tq2 ? 66 : 54, ob = (size_t)(K / 256) * bsz;
        for (int r = 0; r < R; r++) {
            bool nz = tq2 ? bn_tq2_0_encode_row(w + r * rb, K, d16, enc + r * ob)
                          : bn_tq1_0_encode_row(w + r * rb, K, d16, enc + r * ob);
            CHECK(nz);
        }
        int zero_d = 0;
        for (int bl = 0; bl < R * K / 256; bl++) {
            const uint8_t *p = enc + (size_t)bl * bsz + bsz - 2;
            const uint16_t d = (uint16_t)(p[0] | p[1] << 8);
            CHECK(d == d16 || d == 0);
            zero_d += d == 0;
        }
        CHECK_MSG(zero_d == 2, "%d blocks with d = 0", zero_d);
        bn_gguf_tensor t = {.type = tq2 ? BN_TYPE_TQ2_0 : BN_TYPE_TQ1_0, .ne = {K, R, 1, 1}, .nbytes = ob * R,
                            .data = enc};
        float s = 0;
        memset(got, 0, rb * R);
        CHECK_OK(bn_gguf_tq_to_t2r(&t, "r.weight", K, R, got, &s));
        CHECK(s == bn_f16_to_f32(d16));
        CHECK_MSG(memcmp(got, want, rb * R) == 0, "%s: decoded codes differ", tq2 ? "TQ2_0" : "TQ1_0");
    }
    free(w);
    free(want);
    free(got);
    free(enc);
}

static bool exists(const char *p) { return access(p, F_OK) == 0; }

/* The architecture names the FFN: 2B4T (ReLU^2) -> "bitnet-b1.58" for every
 * type; --arch bitnet on it gives a file every reader runs as SiLU (another
 * model); a SiLU (1bitLLM) model -> "bitnet", and only that; its missing
 * sub-norms stay missing. */
static void test_arch_choice(void) {
    bn_model *src = load(bn_test_src(TQ "tiny1-i2s.gguf")), *m = NULL;
    if (!src) return;
    bn_quant_stats s;
    bn_quant_options o = {.linear_type = BN_TYPE_TQ2_0, .head_type = BN_TYPE_F16, .n_threads = 2, .arch = "bitnet"};
    CHECK_OK(bn_model_save_quant(src, tmp("as-bitnet.gguf"), &o, &s));
    CHECK(!strcmp(s.arch, "bitnet"));
    check_arch(tmp("as-bitnet.gguf"), "bitnet", 37);
    if ((m = load(tmp("as-bitnet.gguf")))) {
        int bad_scale, diff = diff_codes(src, m, true, &bad_scale);
        CHECK(diff == 0 && bad_scale == 0 && m->hp.act == BN_ACT_SILU);
        float *a = logits(src), *b = logits(m);
        CHECK(a && b && memcmp(a, b, sizeof(float) * (size_t)src->hp.n_vocab * N_IDS) != 0);
        fprintf(stderr, "   2B4T weights written as \"bitnet\" load as SiLU (other logits), codes kept\n");
        free(a);
        free(b);
        bn_model_free(m);
        m = NULL;
    }
    /* the same weights as a SiLU model (as a "bitnet" source loads) */
    src->hp.act = BN_ACT_SILU;
    src->hp.arch = BN_ARCH_BITNET_1BIT;
    CHECK(!strcmp(bn_quant_default_arch(src), "bitnet"));
    for (int k = 0; k < 2; k++) {
        const char *p = tmp(k ? "silu-i2s.gguf" : "silu-tq10.gguf");
        CHECK_OK(quant(src, p, k ? BN_TYPE_I2_S : BN_TYPE_TQ1_0, BN_TYPE_F16, &s));
        CHECK(!strcmp(s.arch, "bitnet") && s.n_tensors == 13);
        check_arch(p, "bitnet", k ? 40 : 36);
        if ((m = load(p))) {
            CHECK(m->hp.act == BN_ACT_SILU && m->hp.arch == BN_ARCH_BITNET_1BIT);
            same_logits(src, m, !k, k ? "SiLU -> I2_S (bitnet)" : "SiLU -> TQ1_0 (bitnet)");
            bn_model_free(m);
            m = NULL;
        }
    }
    const char *p = tmp("silu-b158.gguf");
    o = (bn_quant_options){.linear_type = BN_TYPE_TQ2_0, .head_type = BN_TYPE_F16, .n_threads = 2, .arch = "bitnet-b1.58"};
    CHECK(bn_model_save_quant(src, p, &o, &s) == BN_ERR_INVALID_ARG && strstr(bn_last_error(), "SiLU"));
    fprintf(stderr, "   expected error: %s\n", bn_last_error());
    CHECK(!exists(p));
    /* without sub-norms: 11 tensors, none invented */
    const float *sa = src->layers[0].attn_sub_norm, *sf = src->layers[0].ffn_sub_norm;
    src->layers[0].attn_sub_norm = src->layers[0].ffn_sub_norm = NULL;
    CHECK_OK(quant(src, tmp("silu-nosub.gguf"), BN_TYPE_TQ2_0, BN_TYPE_F16, &s));
    CHECK(s.n_tensors == 11);
    if ((m = load(tmp("silu-nosub.gguf")))) {
        CHECK(!m->layers[0].attn_sub_norm && !m->layers[0].ffn_sub_norm);
        same_logits(src, m, true, "SiLU without sub-norms -> TQ2_0");
    }
    src->layers[0].attn_sub_norm = sa;
    src->layers[0].ffn_sub_norm = sf;
    bn_model_free(m);
    bn_model_free(src);
}

/* Refusals leave neither OUT nor OUT.tmp behind. */
static void test_errors(void) {
    bn_model *m = load(bn_test_src(TQ "tiny1-i2s.gguf"));
    if (!m) return;
    char tmpf[600];
    /* a scale f16 cannot hold */
    const float saved = m->layers[0].w_up.scale;
    m->layers[0].w_up.scale = 1e6f;
    const char *p = tmp("bad-scale.gguf");
    bn_status st = quant(m, p, BN_TYPE_TQ1_0, BN_TYPE_F16, NULL);
    CHECK(st == BN_ERR_UNSUPPORTED && strstr(bn_last_error(), "blk.0.ffn_up.weight") && strstr(bn_last_error(), "f16"));
    fprintf(stderr, "   expected error: %s\n", bn_last_error());
    snprintf(tmpf, sizeof tmpf, "%s.tmp", p);
    CHECK(!exists(p) && !exists(tmpf));
    CHECK_OK(quant(m, p, BN_TYPE_I2_S, BN_TYPE_F16, NULL)); /* I2_S keeps f32 scales */
    m->layers[0].w_up.scale = saved;
    /* TQ rows must be whole 256-blocks (checked before any weight is read) */
    m->layers[0].wk.n_in = 128;
    p = tmp("bad-rows.gguf");
    st = quant(m, p, BN_TYPE_TQ2_0, BN_TYPE_F16, NULL);
    CHECK(st == BN_ERR_UNSUPPORTED && strstr(bn_last_error(), "blk.0.attn_k.weight") && strstr(bn_last_error(), "256"));
    fprintf(stderr, "   expected error: %s\n", bn_last_error());
    CHECK(!exists(p));
    m->layers[0].wk.n_in = 256;
    /* an output folder that does not exist */
    p = tmp("no/such/dir/x.gguf");
    st = quant(m, p, BN_TYPE_TQ2_0, BN_TYPE_F16, NULL);
    CHECK(st == BN_ERR_IO && strstr(bn_last_error(), "cannot create"));
    fprintf(stderr, "   expected error: %s\n", bn_last_error());
    /* types the writer does not take */
    CHECK(quant(m, tmp("t.gguf"), BN_TYPE_Q8_0, BN_TYPE_F16, NULL) == BN_ERR_INVALID_ARG);
    CHECK(quant(m, tmp("t.gguf"), BN_TYPE_TQ2_0, BN_TYPE_I2_S, NULL) == BN_ERR_INVALID_ARG);
    CHECK(!exists(tmp("t.gguf")));
    bn_model_free(m);
}

int main(void) {
    RUN(test_llama_oracle);
    RUN(test_round_trip);
    RUN(test_from_llama);
    RUN(test_hf);
    RUN(test_encoders_random);
    RUN(test_arch_choice);
    RUN(test_errors);
    return bn_test_finish("test_quantize");
}
