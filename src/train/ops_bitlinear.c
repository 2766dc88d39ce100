/* ops_bitlinear.c — BitLinear (AutoBitLinear, online mode): per-token int8
 * activations and per-tensor ternary weights, both dequantized, one f32 sgemm;
 * straight-through backward (the quantizers are treated as identity). */
#include "train/train.h"

#include <cblas.h>
#include <omp.h>
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

/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major, with the rows of C
 * (or its columns when N is the larger side) split into one contiguous block
 * per OpenMP thread, each block one single-threaded sgemm. Running OpenBLAS's
 * own threads next to OpenMP's oversubscribes the cores (both spin while the
 * other works), which on a busy machine cost 10x; the trainer therefore keeps
 * OpenBLAS at one thread (see train.h) and splits here. The split depends
 * only on the thread count, so results are reproducible for a given count. */
void bn_tr_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    const CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt <= 1 || (double)M * N * K < 1e6) {
        cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const bool split_m = M >= N;
    const int D = split_m ? M : N;
    int chunk = (D + nt - 1) / nt;
    chunk = (chunk + 15) & ~15;  /* whole SIMD panels per block */
    #pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int i0 = t * chunk, i1 = i0 + chunk < D ? i0 + chunk : D;
        if (i0 >= i1) continue;
        if (split_m)  /* rows i0..i1 of op(A) and C */
            cblas_sgemm(CblasRowMajor, TA, TB, i1 - i0, N, K, alpha,
                        ta ? A + i0 : A + (size_t)i0 * lda, lda, B, ldb, beta,
                        C + (size_t)i0 * ldc, ldc);
        else          /* columns i0..i1 of op(B) and C */
            cblas_sgemm(CblasRowMajor, TA, TB, M, i1 - i0, K, alpha, A, lda,
                        tb ? B + (size_t)i0 * ldb : B + i0, ldb, beta, C + i0, ldc);
    }
}

void bn_tr_linear_fwd(const float *xq, const float *wq, float *y, int n, int in, int out) {
    bn_tr_sgemm(false, true, n, out, in, 1.0f, xq, in, wq, in, 0.0f, y, out);
}

void bn_tr_linear_bwd(const float *xq, const float *wq, const float *dy, float *dx,
                      float *dw, int n, int in, int out, bool accum_dx) {
    if (dx) bn_tr_sgemm(false, false, n, in, out, 1.0f, dy, out, wq, in, accum_dx ? 1.0f : 0.0f, dx, in);
    if (dw) bn_tr_sgemm(true, false, out, in, n, 1.0f, dy, out, xq, in, 1.0f, dw, in);
}
