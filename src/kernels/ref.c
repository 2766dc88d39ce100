/* ref.c — scalar reference kernels: the oracle every faster kernel is
 * tested against. Written to read like the math, not to be fast. */
#include "kernels.h"

#include <math.h>
#include <string.h>

#include "core/core.h"

void bn_ref_quantize_act(const float *x, size_t ldx, int k, int n_tokens,
                         int8_t *q, size_t ldq, float *x_scale, int32_t *x_sum) {
    const int kp = bn_pad_k(k);
    for (int n = 0; n < n_tokens; n++) {
        const float *xr = x + (size_t)n * ldx;
        int8_t *qr = q + (size_t)n * ldq;
        float amax = 0.0f;
        for (int i = 0; i < k; i++) amax = fmaxf(amax, fabsf(xr[i]));
        amax = fmaxf(amax, 1e-5f);
        /* SPEC §2: s = 127 / max(absmax, 1e-5), evaluated as transformers
         * does (reciprocal, then * 127: two f32 roundings) so codes match. */
        const float s = (1.0f / amax) * 127.0f;
        int32_t sum = 0;
        for (int i = 0; i < k; i++) {
            float v = nearbyintf(xr[i] * s); /* round half to even */
            v = fminf(fmaxf(v, -128.0f), 127.0f);
            qr[i] = (int8_t)v;
            sum += qr[i];
        }
        for (int i = k; i < kp; i++) qr[i] = 0;
        x_scale[n] = 1.0f / s;
        if (x_sum) x_sum[n] = sum;
    }
}

void bn_ref_tgemm(const uint8_t *W, int k, const int8_t *q, size_t ldq,
                  const float *x_scale, const int32_t *x_sum, int n_tokens,
                  float w_scale, float *y, size_t ldy, int m0, int m1) {
    (void)x_sum;
    const size_t rb = bn_t2r_row_bytes(k);
    for (int m = m0; m < m1; m++) {
        const uint8_t *row = W + (size_t)m * rb;
        for (int n = 0; n < n_tokens; n++) {
            const int8_t *qr = q + (size_t)n * ldq;
            int32_t acc = 0;
            for (int i = 0; i < k; i++) acc += bn_t2r_get(row, i) * (int32_t)qr[i];
            y[(size_t)n * ldy + m] = (float)acc * w_scale * x_scale[n];
        }
    }
}

static float embed_value(const void *E, bn_type et, size_t idx) {
    switch (et) {
    case BN_TYPE_F16: return bn_f16_to_f32(((const uint16_t *)E)[idx]);
    case BN_TYPE_BF16: return bn_bf16_to_f32(((const uint16_t *)E)[idx]);
    default: return ((const float *)E)[idx];
    }
}

void bn_ref_head(const void *E, bn_type et, int n_embd, const float *h, size_t ldh,
                 int n_tokens, float *logits, size_t ldl, int v0, int v1) {
    for (int v = v0; v < v1; v++) {
        const size_t base = (size_t)v * (size_t)n_embd;
        for (int n = 0; n < n_tokens; n++) {
            const float *hr = h + (size_t)n * ldh;
            float acc = 0.0f;
            for (int i = 0; i < n_embd; i++) acc += embed_value(E, et, base + (size_t)i) * hr[i];
            logits[(size_t)n * ldl + v] = acc;
        }
    }
}

void bn_sum_squares_rows(const float *x, size_t ld, int rows, int n, float *ss) {
    /* Each row's sum stays one sequential f32 chain: its last bit feeds the
     * int8 rounding of the next BitLinear, and this order is the one that
     * reproduces transformers' codes on the hf-tiny fixtures (an exact f64
     * sum flipped codes in bf16 seq7/seq33). Four rows' chains interleave so
     * that the adds' latency overlaps (one chain alone: 3 cycles a value). */
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *x0 = x + (size_t)r * ld, *x1 = x0 + ld, *x2 = x1 + ld, *x3 = x2 + ld;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        for (int i = 0; i < n; i++) {
            s0 += x0[i] * x0[i];
            s1 += x1[i] * x1[i];
            s2 += x2[i] * x2[i];
            s3 += x3[i] * x3[i];
        }
        ss[r] = s0, ss[r + 1] = s1, ss[r + 2] = s2, ss[r + 3] = s3;
    }
    for (; r < rows; r++) {
        const float *xr = x + (size_t)r * ld;
        float s0 = 0.0f;
        for (int i = 0; i < n; i++) s0 += xr[i] * xr[i];
        ss[r] = s0;
    }
}

void bn_ref_rmsnorm(const float *x, const float *w, int n, float eps, float *out) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    const float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) out[i] = w[i] * (x[i] * inv);
}

void bn_ref_embed(const void *E, bn_type et, int n_embd, int32_t id, float *out) {
    const size_t base = (size_t)id * (size_t)n_embd;
    for (int i = 0; i < n_embd; i++) out[i] = embed_value(E, et, base + (size_t)i);
}

void bn_ref_rope(float *v, int head_dim, int pos, float theta) {
    const int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* inv_freq[i] = theta^(-2i/d), as transformers computes it in f32 */
        const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        const float ang = (float)pos * inv_freq;
        const float c = cosf(ang), s = sinf(ang);
        const float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;        /* rotate_half: (x1, x2) -> (-x2, x1) */
        v[i + half] = b * c + a * s;
    }
}

/* Elementwise float code that is also the fast path: GCC clones it for
 * AVX-512 and AVX2 and picks one at load time (ifunc). Max and products are
 * exact IEEE operations, so every clone gives the same bits; the baseline
 * build alone vectorizes with 4-wide SSE2. Not with clang: its clones need
 * the attribute on every declaration (callers in other files then fail to
 * link against the plain name), so clang builds keep the baseline loop. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(BN_NO_CLONES)
#define BN_ELEMENTWISE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BN_ELEMENTWISE_CLONES
#endif

BN_ELEMENTWISE_CLONES
void bn_ref_relu2_mul(const float *gate, const float *up, int n, float *out) {
    /* Also the fast path: elementwise (out may be gate), so one SIMD select
     * per 4-16 values; as a branch it mispredicted on every other random
     * sign (7 % of a 2B prompt). NaN and -0 give 0 either way. At 512 tokens
     * the SSE2 loop was 2.8 % of the prompt. */
#pragma omp simd
    for (int i = 0; i < n; i++) {
        const float r = gate[i] > 0.0f ? gate[i] : 0.0f;
        out[i] = r * r * up[i];
    }
}

void bn_ref_silu_mul(const float *gate, const float *up, int n, float *out) {
    for (int i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void bn_ref_softmax(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = fmaxf(mx, x[i]);
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void bn_ref_attend_head(const float *q, const float *K, const float *V, size_t ld,
                        int n_kv, int head_dim, float scale, float *scratch, float *out) {
    for (int t = 0; t < n_kv; t++) {
        const float *kr = K + (size_t)t * ld;
        float dot = 0.0f;
        for (int d = 0; d < head_dim; d++) dot += q[d] * kr[d];
        scratch[t] = dot * scale;
    }
    bn_ref_softmax(scratch, n_kv);
    for (int d = 0; d < head_dim; d++) out[d] = 0.0f;
    for (int t = 0; t < n_kv; t++) {
        const float *vr = V + (size_t)t * ld;
        const float p = scratch[t];
        for (int d = 0; d < head_dim; d++) out[d] += p * vr[d];
    }
}
