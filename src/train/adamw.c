/* adamw.c — AdamW as torch.optim.AdamW's single-tensor path (decoupled weight
 * decay before the update, lerp for the first moment, bias corrections in
 * double, scalars rounded to f32 like torch's CPU kernels). */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bn_status bn_tr_adamw_init(bn_tr_adamw *opt, size_t n) {
    opt->n = n;
    opt->step = 0;
    opt->m = bn_aligned_alloc(64, sizeof(float) * (n ? n : 1));
    opt->v = bn_aligned_alloc(64, sizeof(float) * (n ? n : 1));
    if (!opt->m || !opt->v) { bn_tr_adamw_free(opt); return BN_ERR_NOMEM; }
    memset(opt->m, 0, sizeof(float) * n);
    memset(opt->v, 0, sizeof(float) * n);
    return BN_OK;
}

void bn_tr_adamw_free(bn_tr_adamw *opt) {
    bn_aligned_free(opt->m);
    bn_aligned_free(opt->v);
    opt->m = opt->v = NULL;
}

void bn_tr_scale_grads(bn_tr_model *m, float f) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m->n_params; i++) m->g[i] *= f;
}

void bn_tr_adamw_step(bn_tr_adamw *opt, bn_tr_model *m, double lr, double wd) {
    opt->step++;
    const double t = (double)opt->step;
    const double bc1 = 1.0 - pow(opt->beta1, t), bc2 = 1.0 - pow(opt->beta2, t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float one_m_b1 = (float)(1.0 - opt->beta1), b2 = (float)opt->beta2,
                one_m_b2 = (float)(1.0 - opt->beta2), eps = (float)opt->eps;
    const float decay = (float)(1.0 - lr * wd);
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const bn_tr_param *p = &m->params[ti];
        float *w = m->w + p->off, *g = m->g + p->off, *mm = opt->m + p->off, *vv = opt->v + p->off;
        const bool dec = p->decay && wd != 0;
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < p->n; i++) {
            float gi = g[i];
            float wi = dec ? w[i] * decay : w[i];
            float mi = mm[i] + one_m_b1 * (gi - mm[i]);
            float vi = vv[i] * b2;
            vi = vi + (one_m_b2 * gi) * gi;
            float denom = sqrtf(vi) / bc2_sqrt + eps;
            w[i] = wi + (-step_size) * (mi / denom);
            mm[i] = mi;
            vv[i] = vi;
        }
    }
}
