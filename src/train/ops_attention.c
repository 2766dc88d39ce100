/* ops_attention.c — causal grouped-query attention (eager: scores scaled by
 * hd^-0.5, softmax in f32, then P.V), forward and backward. Work is split
 * over (sequence, kv head) so that every thread owns its dk/dv slices. */
#include "train/train.h"

#include <math.h>
#include <string.h>

void bn_tr_attn_fwd(const float *q, const float *k, const float *v, float *P, float *out,
                    int B, int T, int nh, int nkv, int hd) {
    const int grp = nh / nkv, qs = nh * hd, ks = nkv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++) {
            const int kh = h / grp;
            float *Pb = P + ((size_t)b * nh + h) * (size_t)T * T;
            for (int t = 0; t < T; t++) {
                const float *qt = q + ((size_t)b * T + t) * qs + (size_t)h * hd;
                float *pr = Pb + (size_t)t * T;
                float mx = -INFINITY;
                for (int s = 0; s <= t; s++) {
                    const float *ks_ = k + ((size_t)b * T + s) * ks + (size_t)kh * hd;
                    float dot = 0;
                    for (int i = 0; i < hd; i++) dot += qt[i] * ks_[i];
                    pr[s] = dot * scale;
                    mx = fmaxf(mx, pr[s]);
                }
                float sum = 0;
                for (int s = 0; s <= t; s++) { pr[s] = expf(pr[s] - mx); sum += pr[s]; }
                float inv = 1.0f / sum;
                for (int s = 0; s <= t; s++) pr[s] *= inv;
                for (int s = t + 1; s < T; s++) pr[s] = 0;
                float *o = out + ((size_t)b * T + t) * qs + (size_t)h * hd;
                memset(o, 0, sizeof(float) * (size_t)hd);
                for (int s = 0; s <= t; s++) {
                    const float *vs = v + ((size_t)b * T + s) * ks + (size_t)kh * hd;
                    float p = pr[s];
                    for (int i = 0; i < hd; i++) o[i] += p * vs[i];
                }
            }
        }
}

/* dP = dout.v ; dS = P*(dP - rowsum(P*dP)) ; dq = scale*dS.k ; dk = scale*dS^T.q ;
 * dv = P^T.dout */
void bn_tr_attn_bwd(const float *q, const float *k, const float *v, const float *P,
                    const float *dout, float *dq, float *dk, float *dv,
                    int B, int T, int nh, int nkv, int hd) {
    const int grp = nh / nkv, qs = nh * hd, ks = nkv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    #pragma omp parallel
    {
        float dS[T];  /* one row of dP; T is bounded by the context length */
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int kh = 0; kh < nkv; kh++) {
                for (int s = 0; s < T; s++) {
                    memset(dk + ((size_t)b * T + s) * ks + (size_t)kh * hd, 0, sizeof(float) * (size_t)hd);
                    memset(dv + ((size_t)b * T + s) * ks + (size_t)kh * hd, 0, sizeof(float) * (size_t)hd);
                }
                for (int h = kh * grp; h < (kh + 1) * grp; h++) {
                    const float *Pb = P + ((size_t)b * nh + h) * (size_t)T * T;
                    for (int t = 0; t < T; t++) {
                        const float *pr = Pb + (size_t)t * T;
                        const float *go = dout + ((size_t)b * T + t) * qs + (size_t)h * hd;
                        const float *qt = q + ((size_t)b * T + t) * qs + (size_t)h * hd;
                        float *dqt = dq + ((size_t)b * T + t) * qs + (size_t)h * hd;
                        float acc = 0;
                        for (int s = 0; s <= t; s++) {
                            const float *vs = v + ((size_t)b * T + s) * ks + (size_t)kh * hd;
                            float dp = 0;
                            for (int i = 0; i < hd; i++) dp += go[i] * vs[i];
                            dS[s] = dp;
                            acc += pr[s] * dp;
                        }
                        memset(dqt, 0, sizeof(float) * (size_t)hd);
                        for (int s = 0; s <= t; s++) {
                            float ds = pr[s] * (dS[s] - acc) * scale;
                            const float *kk = k + ((size_t)b * T + s) * ks + (size_t)kh * hd;
                            float *dks = dk + ((size_t)b * T + s) * ks + (size_t)kh * hd;
                            float *dvs = dv + ((size_t)b * T + s) * ks + (size_t)kh * hd;
                            float p = pr[s];
                            for (int i = 0; i < hd; i++) {
                                dqt[i] += ds * kk[i];
                                dks[i] += ds * qt[i];
                                dvs[i] += p * go[i];
                            }
                        }
                    }
                }
            }
    }
}
