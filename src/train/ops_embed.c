/* ops_embed.c — token embedding lookup and its scatter-add backward. */
#include "train/train.h"

#include <string.h>

void bn_tr_embed_fwd(const float *E, const int32_t *ids, float *y, int n, int d) {
    for (int i = 0; i < n; i++)
        memcpy(y + (size_t)i * d, E + (size_t)ids[i] * d, sizeof(float) * (size_t)d);
}

/* Sequential over tokens so repeated ids accumulate in a fixed order. */
void bn_tr_embed_bwd(const int32_t *ids, const float *dy, float *dE, int n, int d) {
    for (int i = 0; i < n; i++) {
        float *row = dE + (size_t)ids[i] * d;
        const float *g = dy + (size_t)i * d;
        for (int j = 0; j < d; j++) row[j] += g[j];
    }
}
