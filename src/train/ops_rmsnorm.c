/* ops_rmsnorm.c — RMSNorm forward/backward (BitNetRMSNorm: w * (x * rsqrt(mean(x^2)+eps))). */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>

void bn_tr_rmsnorm_fwd(const float *x, const float *w, float *y, float *rstd,
                       int n, int d, float eps) {
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
        double ss = 0;  /* double sum, rounded once: close to torch's float mean */
        for (int j = 0; j < d; j++) ss += (double)xr[j] * xr[j];
        float var = (float)(ss / d);
        float r = 1.0f / sqrtf(var + eps);
        rstd[i] = r;
        for (int j = 0; j < d; j++) yr[j] = w[j] * (xr[j] * r);
    }
}

/* With g = dy*w:  dx = r*g - x * r^3 * mean(g*x);  dw = sum_n dy * x * r. */
void bn_tr_rmsnorm_bwd(const float *x, const float *w, const float *rstd, const float *dy,
                       float *dx, float *dw, int n, int d) {
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d, *dyr = dy + (size_t)i * d;
        float *dxr = dx + (size_t)i * d;
        float r = rstd[i];
        double dot = 0;
        for (int j = 0; j < d; j++) dot += (double)dyr[j] * w[j] * xr[j];
        float c = (float)(dot / d) * r * r * r;
        for (int j = 0; j < d; j++) dxr[j] = r * (dyr[j] * w[j]) - c * xr[j];
    }
    /* parameter gradient: partial sums over fixed blocks of rows (in
     * parallel), then the blocks in order: the result does not depend on
     * the number of threads */
    enum { RB = 64 };
    int nb = (n + RB - 1) / RB;
    double *part = bn_malloc(sizeof(double) * (size_t)nb * (size_t)d);
    if (!part) {  /* fall back to the slow column order */
        for (int j = 0; j < d; j++) {
            double acc = 0;
            for (int i = 0; i < n; i++)
                acc += (double)dy[(size_t)i * d + j] * (x[(size_t)i * d + j] * rstd[i]);
            dw[j] += (float)acc;
        }
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nb; blk++) {
        double *pp = part + (size_t)blk * d;
        for (int j = 0; j < d; j++) pp[j] = 0;
        int e = (blk + 1) * RB < n ? (blk + 1) * RB : n;
        for (int i = blk * RB; i < e; i++) {
            const float *xr = x + (size_t)i * d, *dyr = dy + (size_t)i * d;
            float r = rstd[i];
            for (int j = 0; j < d; j++) pp[j] += (double)dyr[j] * (xr[j] * r);
        }
    }
    for (int j = 0; j < d; j++) {
        double acc = 0;
        for (int blk = 0; blk < nb; blk++) acc += part[(size_t)blk * d + j];
        dw[j] += (float)acc;
    }
    free(part);
}
