/* ops_rmsnorm.c — RMSNorm forward/backward (BitNetRMSNorm: w * (x * rsqrt(mean(x^2)+eps))). */
#include "train/train.h"

#include <math.h>

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
    /* parameter gradient column by column: deterministic, no reductions */
    #pragma omp parallel for schedule(static)
    for (int j = 0; j < d; j++) {
        double acc = 0;
        for (int i = 0; i < n; i++)
            acc += (double)dy[(size_t)i * d + j] * (x[(size_t)i * d + j] * rstd[i]);
        dw[j] += (float)acc;
    }
}
