/* ops_rope.c — rotary position embedding, rotate_half convention (dim i pairs
 * with i + hd/2), as transformers' LLaMA/BitNet rotary embedding. */
#include "train/train.h"

#include <math.h>

void bn_tr_rope_table(float *cos_t, float *sin_t, int T, int hd, float theta) {
    int h2 = hd / 2;
    for (int i = 0; i < h2; i++) {
        /* float32 as transformers: inv_freq = 1 / theta^(2i/hd) */
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        for (int p = 0; p < T; p++) {
            float a = (float)p * inv;
            float c = cosf(a), s = sinf(a);
            cos_t[(size_t)p * hd + i] = c;
            cos_t[(size_t)p * hd + i + h2] = c;
            sin_t[(size_t)p * hd + i] = s;
            sin_t[(size_t)p * hd + i + h2] = s;
        }
    }
}

/* out = x*cos + rotate_half(x)*sin, rotate_half(x) = [-x2, x1]. The backward
 * is the transposed rotation (sin -> -sin). */
void bn_tr_rope(float *x, const float *cos_t, const float *sin_t, int n, int T,
                int nheads, int hd, bool inverse) {
    int h2 = hd / 2;
    float sg = inverse ? -1.0f : 1.0f;
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++) {
        const float *c = cos_t + (size_t)(t % T) * hd, *s = sin_t + (size_t)(t % T) * hd;
        for (int h = 0; h < nheads; h++) {
            float *v = x + ((size_t)t * nheads + h) * hd;
            for (int i = 0; i < h2; i++) {
                float a = v[i], b = v[i + h2];
                v[i] = a * c[i] - b * (sg * s[i]);
                v[i + h2] = b * c[i + h2] + a * (sg * s[i + h2]);
            }
        }
    }
}
