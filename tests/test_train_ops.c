/* test_train_ops.c — finite-difference checks of every training op's
 * backward (RMSNorm, RoPE, attention, relu^2, softmax-cross-entropy, plain
 * linear), the straight-through BitLinear backward, and the quantizers
 * against transformers' values from the train-tiny fixture (bit-exact). */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "train/train.h"
#include "harness.h"

static void fill(bn_tr_rng *r, float *x, size_t n, float sd) {
    for (size_t i = 0; i < n; i++) x[i] = sd * bn_tr_rng_normal(r);
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* max |an - fd| / max |an| over the checked entries */
typedef struct { double maxdiff, maxan; } fdstat;
static void fd_acc(fdstat *s, double an, double fd) {
    if (fabs(an - fd) > s->maxdiff) s->maxdiff = fabs(an - fd);
    if (fabs(an) > s->maxan) s->maxan = fabs(an);
}
static double fd_rel(const fdstat *s) { return s->maxdiff / (s->maxan > 0 ? s->maxan : 1); }

/* ---- RMSNorm */
static double rms_loss(const float *x, const float *w, const float *R, int n, int d) {
    float y[64], r[8];
    bn_tr_rmsnorm_fwd(x, w, y, r, n, d, 1e-5f);
    return dot(y, R, (size_t)n * d);
}

static void test_rmsnorm_fd(void) {
    enum { N = 3, D = 16 };
    bn_tr_rng rng;
    bn_tr_rng_seed(&rng, 1);
    float x[N * D], w[D], R[N * D], y[N * D], r[N], dx[N * D], dw[D] = {0};
    fill(&rng, x, N * D, 1.0f);
    fill(&rng, R, N * D, 1.0f);
    for (int j = 0; j < D; j++) w[j] = 0.5f + (float)bn_tr_rng_uniform(&rng);
    bn_tr_rmsnorm_fwd(x, w, y, r, N, D, 1e-5f);
    bn_tr_rmsnorm_bwd(x, w, r, R, dx, dw, N, D);
    fdstat sx = {0}, sw = {0};
    const float h = 1e-2f;
    for (int i = 0; i < N * D; i++) {
        float o = x[i];
        x[i] = o + h; double lp = rms_loss(x, w, R, N, D);
        x[i] = o - h; double lm = rms_loss(x, w, R, N, D);
        x[i] = o;
        fd_acc(&sx, dx[i], (lp - lm) / (2 * h));
    }
    for (int j = 0; j < D; j++) {
        float o = w[j];
        w[j] = o + h; double lp = rms_loss(x, w, R, N, D);
        w[j] = o - h; double lm = rms_loss(x, w, R, N, D);
        w[j] = o;
        fd_acc(&sw, dw[j], (lp - lm) / (2 * h));
    }
    fprintf(stderr, "   rmsnorm FD rel err: dx %.2e dw %.2e\n", fd_rel(&sx), fd_rel(&sw));
    CHECK(fd_rel(&sx) < 2e-3);
    CHECK(fd_rel(&sw) < 2e-3);
}

/* ---- RoPE: a rotation; the backward is its transpose, and it preserves norms */
static void test_rope(void) {
    enum { T = 7, NH = 2, HD = 8, N = 2 * T };
    float cs[T * HD], sn[T * HD];
    bn_tr_rope_table(cs, sn, T, HD, 10000.0f);
    bn_tr_rng rng;
    bn_tr_rng_seed(&rng, 2);
    float x[N * NH * HD], y[N * NH * HD], x0[N * NH * HD];
    fill(&rng, x, sizeof x / 4, 1.0f);
    fill(&rng, y, sizeof y / 4, 1.0f);
    memcpy(x0, x, sizeof x);
    /* <R x, y> == <x, R^T y> */
    bn_tr_rope(x, cs, sn, N, T, NH, HD, false);
    double a = dot(x, y, sizeof x / 4);
    CHECK(fabs(dot(x, x, sizeof x / 4) - dot(x0, x0, sizeof x / 4)) < 1e-4);
    bn_tr_rope(y, cs, sn, N, T, NH, HD, true);
    double b = dot(x0, y, sizeof x / 4);
    fprintf(stderr, "   rope <Rx,y> %.6f vs <x,R^T y> %.6f\n", a, b);
    CHECK(fabs(a - b) < 1e-4 * (1 + fabs(a)));
    /* position 0 is the identity; position 1, dim 0 pairs with dim HD/2 at angle 1 rad */
    float v[HD];
    for (int i = 0; i < HD; i++) v[i] = (float)(i + 1);
    float w0[2 * HD];
    memcpy(w0, v, sizeof v);
    memcpy(w0 + HD, v, sizeof v);
    bn_tr_rope(w0, cs, sn, 2, 2, 1, HD, false);
    CHECK(!memcmp(w0, v, sizeof v));
    float e0 = 1.0f * cosf(1.0f) - 5.0f * sinf(1.0f);
    float e4 = 5.0f * cosf(1.0f) + 1.0f * sinf(1.0f);
    CHECK(fabsf(w0[HD + 0] - e0) < 1e-5f && fabsf(w0[HD + 4] - e4) < 1e-5f);
}

/* ---- attention */
enum { AB = 2, AT = 5, ANH = 4, ANKV = 2, AHD = 4, AQS = ANH * AHD, AKS = ANKV * AHD };
static double attn_loss(const float *q, const float *k, const float *v, const float *R) {
    float P[AB * ANH * AT * AT], o[AB * AT * AQS];
    bn_tr_attn_fwd(q, k, v, P, o, AB, AT, ANH, ANKV, AHD);
    return dot(o, R, sizeof o / 4);
}

static void test_attention_fd(void) {
    bn_tr_rng rng;
    bn_tr_rng_seed(&rng, 3);
    float q[AB * AT * AQS], k[AB * AT * AKS], v[AB * AT * AKS], R[AB * AT * AQS];
    float P[AB * ANH * AT * AT], o[AB * AT * AQS], dq[sizeof q / 4], dk[sizeof k / 4],
          dv[sizeof v / 4];
    fill(&rng, q, sizeof q / 4, 1.0f);
    fill(&rng, k, sizeof k / 4, 1.0f);
    fill(&rng, v, sizeof v / 4, 1.0f);
    fill(&rng, R, sizeof R / 4, 1.0f);
    bn_tr_attn_fwd(q, k, v, P, o, AB, AT, ANH, ANKV, AHD);
    /* causal: row t of P sums to 1 and is zero after t */
    double bad = 0;
    for (int r = 0; r < AB * ANH * AT; r++) {
        int t = r % AT;
        double s = 0;
        for (int c = 0; c < AT; c++) { s += P[r * AT + c]; if (c > t) bad += fabs(P[r * AT + c]); }
        bad += fabs(s - 1);
    }
    CHECK(bad < 1e-5);
    /* the first position attends only to itself: output = v of its kv head */
    CHECK(fabsf(o[0] - v[0]) < 1e-6f && fabsf(o[AHD] - v[0]) < 1e-6f &&
          fabsf(o[2 * AHD] - v[AHD]) < 1e-6f);
    bn_tr_attn_bwd(q, k, v, P, R, dq, dk, dv, AB, AT, ANH, ANKV, AHD);
    const float h = 1e-2f;
    float *ins[3] = {q, k, v}, *gr[3] = {dq, dk, dv};
    size_t ns[3] = {sizeof q / 4, sizeof k / 4, sizeof v / 4};
    const char *nm[3] = {"dq", "dk", "dv"};
    for (int a = 0; a < 3; a++) {
        fdstat s = {0};
        for (size_t i = 0; i < ns[a]; i++) {
            float old = ins[a][i];
            ins[a][i] = old + h; double lp = attn_loss(q, k, v, R);
            ins[a][i] = old - h; double lm = attn_loss(q, k, v, R);
            ins[a][i] = old;
            fd_acc(&s, gr[a][i], (lp - lm) / (2 * h));
        }
        fprintf(stderr, "   attention FD rel err %s %.2e\n", nm[a], fd_rel(&s));
        CHECK(fd_rel(&s) < 2e-3);
    }
}

/* ---- relu^2 */
static void test_relu2_fd(void) {
    enum { N = 64 };
    bn_tr_rng rng;
    bn_tr_rng_seed(&rng, 4);
    float g[N], u[N], R[N], m[N], dg[N], du[N];
    fill(&rng, g, N, 1.0f);
    fill(&rng, u, N, 1.0f);
    fill(&rng, R, N, 1.0f);
    for (int i = 0; i < N; i++) if (fabsf(g[i]) < 0.05f) g[i] = 0.3f;  /* away from the kink */
    bn_tr_relu2_bwd(g, u, R, dg, du, N);
    fdstat sg = {0}, su = {0};
    const float h = 1e-3f;
    for (int i = 0; i < N; i++) {
        float o = g[i];
        g[i] = o + h; bn_tr_relu2_fwd(g, u, m, N); double lp = dot(m, R, N);
        g[i] = o - h; bn_tr_relu2_fwd(g, u, m, N); double lm = dot(m, R, N);
        g[i] = o;
        fd_acc(&sg, dg[i], (lp - lm) / (2 * h));
        o = u[i];
        u[i] = o + h; bn_tr_relu2_fwd(g, u, m, N); lp = dot(m, R, N);
        u[i] = o - h; bn_tr_relu2_fwd(g, u, m, N); lm = dot(m, R, N);
        u[i] = o;
        fd_acc(&su, du[i], (lp - lm) / (2 * h));
    }
    fprintf(stderr, "   relu2 FD rel err dg %.2e du %.2e\n", fd_rel(&sg), fd_rel(&su));
    CHECK(fd_rel(&sg) < 2e-3 && fd_rel(&su) < 2e-3);
}

/* ---- softmax cross-entropy */
static void test_xent_fd(void) {
    enum { N = 4, V = 11 };
    bn_tr_rng rng;
    bn_tr_rng_seed(&rng, 5);
    float l[N * V], d[N * V], tmp[N * V];
    int32_t tg[N] = {3, 0, 10, -1};  /* the last row is ignored */
    fill(&rng, l, N * V, 2.0f);
    int nv = 0;
    double loss = bn_tr_xent(l, tg, d, N, V, 1.0f / 3, &nv);
    CHECK(nv == 3);
    /* direct: logsumexp - logit[target] */
    double ref = 0;
    for (int i = 0; i < 3; i++) {
        double se = 0;
        for (int j = 0; j < V; j++) se += exp((double)l[i * V + j]);
        ref += log(se) - l[i * V + tg[i]];
    }
    CHECK(fabs(loss - ref) < 1e-9 * fabs(ref) + 1e-12);
    fdstat s = {0};
    const float h = 1e-2f;
    for (int i = 0; i < N * V; i++) {
        float o = l[i];
        l[i] = o + h; double lp = bn_tr_xent(l, tg, tmp, N, V, 1, NULL) / 3;
        l[i] = o - h; double lm = bn_tr_xent(l, tg, tmp, N, V, 1, NULL) / 3;
        l[i] = o;
        fd_acc(&s, d[i], (lp - lm) / (2 * h));
    }
    fprintf(stderr, "   cross-entropy FD rel err %.2e\n", fd_rel(&s));
    CHECK(fd_rel(&s) < 2e-3);
    for (int j = 0; j < V; j++) CHECK(d[3 * V + j] == 0);
}

/* ---- linear: FD without quantization; STE with quantization */
static void test_linear(void) {
    enum { N = 3, IN = 8, OUT = 5 };
    bn_tr_rng rng;
    bn_tr_rng_seed(&rng, 6);
    float x[N * IN], w[OUT * IN], wq[OUT * IN], xq[N * IN], y[N * OUT], R[N * OUT], dx[N * IN],
          dw[OUT * IN] = {0};
    fill(&rng, x, N * IN, 1.0f);
    fill(&rng, w, OUT * IN, 1.0f);
    fill(&rng, R, N * OUT, 1.0f);
    bn_tr_linear_fwd(x, w, y, N, IN, OUT);
    bn_tr_linear_bwd(x, w, R, dx, dw, N, IN, OUT, false);
    fdstat sx = {0}, sw = {0};
    const float h = 1e-2f;
    for (int i = 0; i < N * IN; i++) {
        float o = x[i];
        x[i] = o + h; bn_tr_linear_fwd(x, w, y, N, IN, OUT); double lp = dot(y, R, N * OUT);
        x[i] = o - h; bn_tr_linear_fwd(x, w, y, N, IN, OUT); double lm = dot(y, R, N * OUT);
        x[i] = o;
        fd_acc(&sx, dx[i], (lp - lm) / (2 * h));
    }
    for (int i = 0; i < OUT * IN; i++) {
        float o = w[i];
        w[i] = o + h; bn_tr_linear_fwd(x, w, y, N, IN, OUT); double lp = dot(y, R, N * OUT);
        w[i] = o - h; bn_tr_linear_fwd(x, w, y, N, IN, OUT); double lm = dot(y, R, N * OUT);
        w[i] = o;
        fd_acc(&sw, dw[i], (lp - lm) / (2 * h));
    }
    fprintf(stderr, "   linear FD rel err dx %.2e dw %.2e\n", fd_rel(&sx), fd_rel(&sw));
    CHECK(fd_rel(&sx) < 2e-3 && fd_rel(&sw) < 2e-3);
    /* straight-through: dx = dy . Wq, dW = dy^T . xq */
    bn_tr_weightquant(w, wq, OUT * IN, true);
    bn_tr_actquant(x, xq, N, IN, true);
    memset(dw, 0, sizeof dw);
    bn_tr_linear_bwd(xq, wq, R, dx, dw, N, IN, OUT, false);
    double e = 0;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < IN; i++) {
            double s = 0;
            for (int o = 0; o < OUT; o++) s += (double)R[n * OUT + o] * wq[o * IN + i];
            e = fmax(e, fabs(s - dx[n * IN + i]));
        }
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)R[n * OUT + o] * xq[n * IN + i];
            e = fmax(e, fabs(s - dw[o * IN + i]));
        }
    CHECK(e < 1e-5);
}

/* ---- quantizers: rounding rules and transformers' exact values */
static void test_quantizers(void) {
    /* amax 127 -> s = 1: round half to even, clamp at -128/127 */
    float x[8] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -126.5f, 3.4f}, q[8];
    bn_tr_actquant(x, q, 1, 8, true);
    float e[8] = {127, 0, 2, 2, -0, -2, -126, 3};
    for (int i = 0; i < 8; i++) CHECK_MSG(q[i] == e[i], "x %g -> %g, expected %g", x[i], q[i], e[i]);
    /* mean|W| = 1: 0.5 -> 0 (even), 1.5 -> 1 (clamped), -0.6 -> -1 */
    float w[4] = {0.5f, 1.5f, -0.6f, -1.4f}, wq[4];
    float mean = bn_tr_weightquant(w, wq, 4, true);
    CHECK(mean == 1.0f);
    CHECK(wq[0] == 0 && wq[1] == 1 && wq[2] == -1 && wq[3] == -1);
    /* all-zero input: clamps to 1e-5, codes 0 */
    float z[4] = {0}, zq[4];
    bn_tr_actquant(z, zq, 1, 4, true);
    CHECK(zq[0] == 0 && zq[3] == 0);

    /* fixture (transformers' AutoBitLinear): x_q bit-exact for two layers */
    const char *layers[2] = {"model.layers.0.self_attn.o_proj", "model.layers.1.mlp.down_proj"};
    const int din[2] = {64, 128};
    for (int l = 0; l < 2; l++) {
        char p1[256], p2[256];
        snprintf(p1, sizeof p1, "tests/data/train-tiny/quant/%s/x.bin", layers[l]);
        snprintf(p2, sizeof p2, "tests/data/train-tiny/quant/%s/x_q.bin", layers[l]);
        size_t n1 = 0, n2 = 0;
        float *xx = bn_test_read(bn_test_src(p1), &n1), *xr = bn_test_read(bn_test_src(p2), &n2);
        CHECK(xx && xr && n1 == n2 && n1 == 4u * 32 * din[l]);
        if (xx && xr && n1 == n2 && n1 == 4u * 32 * din[l]) {
            float *mine = malloc(n1);
            bn_tr_actquant(xx, mine, 32, din[l], true);
            size_t diff = 0;
            for (size_t i = 0; i < n1 / 4; i++) diff += memcmp(&mine[i], &xr[i], 4) != 0;
            fprintf(stderr, "   %s: x_q values differing from transformers: %zu of %zu\n",
                    layers[l], diff, n1 / 4);
            CHECK(diff == 0);
            free(mine);
        }
        free(xx);
        free(xr);
    }
    /* W_q of down_proj (transformers' mean was the correctly rounded one) */
    size_t n1 = 0, n2 = 0;
    float *ww = bn_test_read(bn_test_src("tests/data/train-tiny/quant/model.layers.1.mlp.down_proj/w.bin"), &n1);
    float *wr = bn_test_read(bn_test_src("tests/data/train-tiny/quant/model.layers.1.mlp.down_proj/w_q.bin"), &n2);
    CHECK(ww && wr && n1 == n2 && n1 == 4u * 64 * 128);
    if (ww && wr && n1 == n2) {
        float *mine = malloc(n1);
        bn_tr_weightquant(ww, mine, n1 / 4, true);
        size_t diff = 0;
        for (size_t i = 0; i < n1 / 4; i++) diff += memcmp(&mine[i], &wr[i], 4) != 0;
        fprintf(stderr, "   down_proj W_q values differing from transformers: %zu of %zu\n", diff, n1 / 4);
        CHECK(diff == 0);
        free(mine);
    }
    free(ww);
    free(wr);
}

int main(void) {
    openblas_set_num_threads(1);  /* the trainer parallelises with OpenMP (train.h) */
    RUN(test_rmsnorm_fd);
    RUN(test_rope);
    RUN(test_attention_fd);
    RUN(test_relu2_fd);
    RUN(test_xent_fd);
    RUN(test_linear);
    RUN(test_quantizers);
    return bn_test_finish("test_train_ops");
}
