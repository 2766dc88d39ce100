/* ops_relu2.c — the relu^2 gated MLP product m = relu(g)^2 * u. */
#include "train/train.h"

void bn_tr_relu2_fwd(const float *g, const float *u, float *m, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float r = g[i] > 0 ? g[i] : 0.0f;
        m[i] = (r * r) * u[i];
    }
}

void bn_tr_relu2_bwd(const float *g, const float *u, const float *dm, float *dg, float *du,
                     size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float r = g[i] > 0 ? g[i] : 0.0f;
        float d = dm[i];
        du[i] = d * (r * r);
        dg[i] = d * u[i] * 2.0f * r;
    }
}
