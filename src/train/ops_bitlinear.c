/* ops_bitlinear.c — BitLinear (AutoBitLinear, online mode): per-token int8
 * activations and per-tensor ternary weights, both dequantized, one f32 sgemm;
 * straight-through backward (the quantizers are treated as identity). */
#include "train/train.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void bn_tr_actquant(const float *x, float *xq, int n, int d, bool quant) {
    if (!quant) {
        if (xq != x) memcpy(xq, x, sizeof(float) * (size_t)n * (size_t)d);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *qr = xq + (size_t)i * d;
        float amax = 0;
        for (int j = 0; j < d; j++) {
            float a = fabsf(xr[j]);
            amax = a > amax ? a : amax;
        }
        /* transformers writes 127 / amax, which torch evaluates as
         * amax.reciprocal() * 127: two roundings, reproduced here. */
        float r = 1.0f / (amax > 1e-5f ? amax : 1e-5f);
        float s = r * 127.0f;
        for (int j = 0; j < d; j++) {
            float c = rintf(xr[j] * s);  /* round half to even (default FP mode) */
            c = c < -128.0f ? -128.0f : c > 127.0f ? 127.0f : c;
            qr[j] = c / s;               /* a true division, as torch does */
        }
    }
}

float bn_tr_weightquant(const float *w, float *wq, size_t n, bool quant) {
    /* fixed chunks summed in order: the result must not depend on threads */
    enum { CH = 4096 };
    size_t nch = (n + CH - 1) / CH;
    double part[256];
    double sum = 0;
    for (size_t c0 = 0; c0 < nch; c0 += 256) {
        size_t c1 = nch - c0 < 256 ? nch : c0 + 256;
        #pragma omp parallel for schedule(static)
        for (size_t c = c0; c < c1; c++) {
            double a = 0;
            size_t e = (c + 1) * CH < n ? (c + 1) * CH : n;
            for (size_t i = c * CH; i < e; i++) a += fabs((double)w[i]);
            part[c - c0] = a;
        }
        for (size_t c = c0; c < c1; c++) sum += part[c - c0];
    }
    float mean = (float)(sum / (double)n);
    if (!quant) {
        if (wq != w) memcpy(wq, w, sizeof(float) * n);
        return mean;
    }
    float s = 1.0f / fmaxf(mean, 1e-5f);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float c = fminf(fmaxf(rintf(w[i] * s), -1.0f), 1.0f);
        wq[i] = c / s;
    }
    return mean;
}

void bn_tr_linear_fwd(const float *xq, const float *wq, float *y, int n, int in, int out) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, xq, in, wq, in,
                0.0f, y, out);
}

void bn_tr_linear_bwd(const float *xq, const float *wq, const float *dy, float *dx,
                      float *dw, int n, int in, int out, bool accum_dx) {
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, wq, in,
                    accum_dx ? 1.0f : 0.0f, dx, in);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, xq, in,
                    1.0f, dw, in);
}
