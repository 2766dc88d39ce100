/* ops_xent.c — softmax fused with cross-entropy (and its gradient). */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>

double bn_tr_xent(const float *logits, const int32_t *targets, float *dlogits, int n, int V,
                  float scale, int *n_valid) {
    /* per-row losses summed in order afterwards: OpenMP reductions combine in
     * an unspecified order, and resumed runs must reproduce losses bit for bit */
    double *row = bn_malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!row) return NAN;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * V;
        float *d = dlogits + (size_t)i * V;
        int tgt = targets[i];
        if (tgt < 0 || tgt >= V) {
            for (int j = 0; j < V; j++) d[j] = 0;
            row[i] = NAN;
            continue;
        }
        float mx = l[0];
        for (int j = 1; j < V; j++) mx = fmaxf(mx, l[j]);
        double se = 0;
        for (int j = 0; j < V; j++) se += exp((double)(l[j] - mx));
        double lse = (double)mx + log(se);
        row[i] = lse - (double)l[tgt];
        float inv = (float)(1.0 / se);
        for (int j = 0; j < V; j++) d[j] = expf(l[j] - mx) * inv * scale;
        d[tgt] -= scale;
    }
    double total = 0;
    int valid = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(row[i]) || (targets[i] >= 0 && targets[i] < V)) { total += row[i]; valid++; }
    free(row);
    if (n_valid) *n_valid = valid;
    return total;
}
