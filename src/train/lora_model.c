/* lora_model.c — forward and backward of the trainer's network with LoRA
 * adapters on the BitLinear projections. The base path is the same sequence
 * of ops as bn_tr_forward (model.c), kept separately so that the adapter
 * terms can be inserted without touching the pre-training code; tests check
 * that with B = 0 the logits equal bn_tr_forward's bit for bit. The base gets
 * no gradients (frozen), only A and B. */
#include "train/lora.h"

#include <stdlib.h>
#include <string.h>

struct bn_tr_lora_acts {
    int B, T, N;
    bool have_targets, merge_aware;
    int32_t *tokens;
    float **buf;   /* every allocation, for freeing */
    int n_buf;
    /* per layer */
    float **xs, **r1, **h1, **h1q, **q, **k, **v, **P, **att, **rsub, **ao, **aq, **xmid, **r2,
          **h2, **h2q, **gg, **uu, **mm, **r3, **mo, **mq;
    float **u;     /* per pair: A x [N, r] */
    float *rf, *hn, *logits, *dlogits, *tH;
    float *dx, *dA, *dB, *dF1, *dF2, *dF3, *dq, *dk, *dv, *dnorm, *ur;
    float *wtmp;   /* merge-aware: W + sBA (forward) or dW (backward), [max out*in] */
    float *rope_cos, *rope_sin;
};

static void acts_free(bn_tr_lora_acts *a) {
    if (!a) return;
    for (int i = 0; i < a->n_buf; i++) bn_aligned_free(a->buf[i]);
    free(a->buf);
    free(a->tokens);
    free(a->xs);
    free(a);
}

static float *take(bn_tr_lora_acts *a, size_t n, bool *ok) {
    float *p = bn_aligned_alloc(64, sizeof(float) * (n ? n : 1));
    if (!p) { *ok = false; return NULL; }
    a->buf[a->n_buf++] = p;
    return p;
}

static bn_status acts_alloc(bn_tr_model *m, bn_tr_lora *lo, int B, int T) {
    if (lo->acts && lo->acts->B == B && lo->acts->T == T && lo->acts->merge_aware == lo->merge_aware)
        return BN_OK;
    acts_free(lo->acts);
    lo->acts = NULL;
    const bn_tr_config *c = &m->cfg;
    const size_t N = (size_t)B * T, H = c->hidden, F = c->ffn, V = c->vocab, L = c->layers,
                 qs = (size_t)c->heads * c->head_dim, ks = (size_t)c->kv_heads * c->head_dim,
                 PT = (size_t)B * c->heads * (size_t)T * T, R = (size_t)lo->rank;
    enum { NL = 22 };
    bn_tr_lora_acts *a = bn_calloc(1, sizeof *a);
    if (!a) return BN_ERR_NOMEM;
    a->B = B; a->T = T; a->N = (int)N;
    a->merge_aware = lo->merge_aware;
    a->tokens = bn_malloc(sizeof(int32_t) * N);
    a->xs = bn_calloc(NL * (L + 1) + (size_t)lo->n_pairs + 1, sizeof(float *));
    a->buf = bn_calloc(NL * (L + 1) + (size_t)lo->n_pairs + 32, sizeof(float *));
    if (!a->tokens || !a->xs || !a->buf) { acts_free(a); return BN_ERR_NOMEM; }
    float ***lists[NL] = {&a->xs, &a->r1, &a->h1, &a->h1q, &a->q, &a->k, &a->v, &a->P, &a->att,
                          &a->rsub, &a->ao, &a->aq, &a->xmid, &a->r2, &a->h2, &a->h2q, &a->gg,
                          &a->uu, &a->mm, &a->r3, &a->mo, &a->mq};
    const size_t sz[NL] = {N * H, N, N * H, N * H, N * qs, N * ks, N * ks, PT, N * qs, N, N * qs,
                           N * qs, N * H, N, N * H, N * H, N * F, N * F, N * F, N, N * F, N * F};
    float **base = a->xs;
    for (int i = 0; i < NL; i++) *lists[i] = base + (size_t)i * (L + 1);
    a->u = base + NL * (L + 1);
    bool ok = true;
    for (int i = 0; i < NL; i++)
        for (size_t l = 0; l < (i == 0 ? L + 1 : L) && ok; l++) (*lists[i])[l] = take(a, sz[i], &ok);
    for (int i = 0; i < lo->n_pairs && ok; i++) a->u[i] = take(a, N * R, &ok);
    const size_t mx = H > F ? H : F;
    float **tails[] = {&a->rf, &a->hn, &a->logits, &a->dlogits, &a->tH, &a->dx, &a->dA, &a->dB,
                       &a->dF1, &a->dF2, &a->dF3, &a->dq, &a->dk, &a->dv, &a->dnorm, &a->ur,
                       &a->rope_cos, &a->rope_sin, &a->wtmp};
    const size_t tsz[] = {N, N * H, N * V, N * V, N * mx, N * H, N * mx, N * mx, N * F, N * F,
                          N * F, N * qs, N * ks, N * ks, mx, N * R,
                          (size_t)T * c->head_dim, (size_t)T * c->head_dim,
                          lo->merge_aware ? (H > qs ? H : qs) * (F > qs ? F : qs) : 1};
    for (size_t i = 0; i < sizeof tsz / sizeof tsz[0] && ok; i++) *tails[i] = take(a, tsz[i], &ok);
    if (!ok) { acts_free(a); return BN_ERR_NOMEM; }
    bn_tr_rope_table(a->rope_cos, a->rope_sin, T, c->head_dim, c->rope_theta);
    lo->acts = a;
    return BN_OK;
}

/* y += scale * (x A^T) B^T, keeping u = x A^T for the backward */
static void ad_fwd(const bn_tr_lora *lo, int layer, int t, const float *x, float *y, int N) {
    int s = lo->slot[(size_t)layer * BN_LORA_N_TARGETS + t];
    if (s < 0 || lo->merge_aware) return;
    const bn_lora_pair *p = &lo->pairs[s];
    float *u = lo->acts->u[s];
    bn_tr_sgemm(false, true, N, lo->rank, p->in, 1.0f, x, p->in, p->A,
                p->in, 0.0f, u, lo->rank);
    bn_tr_sgemm(false, true, N, p->out, lo->rank, lo->scale, u,
                lo->rank, p->B, lo->rank, 1.0f, y, p->out);
}

/* With g = dy B [N, r]:  dB += s dy^T u;  dA += s g^T x;  dx += s g A.
 * Merge-aware: with the straight-through dW = dy^T xq of the merged weight,
 * dB += s dW A^T and dA += s B^T dW (dx came with the base product). */
static void ad_bwd(bn_tr_lora *lo, int layer, int t, const float *x, const float *xq,
                   const float *dy, float *dx, int N) {
    int s = lo->slot[(size_t)layer * BN_LORA_N_TARGETS + t];
    if (s < 0) return;
    const bn_lora_pair *p = &lo->pairs[s];
    const int r = lo->rank;
    float *gA = lo->g + (p->A - lo->p), *gB = lo->g + (p->B - lo->p), *g = lo->acts->ur;
    if (lo->merge_aware) {
        float *dW = lo->acts->wtmp;
        bn_tr_sgemm(true, false, p->out, p->in, N, 1.0f, dy, p->out,
                    xq, p->in, 0.0f, dW, p->in);
        bn_tr_sgemm(false, true, p->out, r, p->in, lo->scale, dW,
                    p->in, p->A, p->in, 1.0f, gB, r);
        bn_tr_sgemm(true, false, r, p->in, p->out, lo->scale, p->B,
                    r, dW, p->in, 1.0f, gA, p->in);
        return;
    }
    bn_tr_sgemm(true, false, p->out, r, N, lo->scale, dy, p->out,
                lo->acts->u[s], r, 1.0f, gB, r);
    bn_tr_sgemm(false, false, N, r, p->out, 1.0f, dy, p->out, p->B, r,
                0.0f, g, r);
    bn_tr_sgemm(true, false, r, p->in, N, lo->scale, g, r, x, p->in,
                1.0f, gA, p->in);
    bn_tr_sgemm(false, false, N, p->in, r, lo->scale, g, r, p->A,
                p->in, 1.0f, dx, p->in);
}

bn_status bn_tr_lora_forward(bn_tr_model *m, bn_tr_lora *lo, const int32_t *tokens,
                             const int32_t *targets, int B, int T, float loss_scale,
                             double *loss_sum, int *n_tok, float *logits_out) {
    const bn_tr_config *c = &m->cfg;
    if (B <= 0 || T <= 0 || (int64_t)B * T > (1 << 24))
        return bn_fail(BN_ERR_INVALID_ARG, "batch %d x %d is not usable", B, T);
    if (lo->layers != c->layers) return bn_fail(BN_ERR_SHAPE, "adapter and model disagree on layers");
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab || (targets && targets[i] >= c->vocab))
            return bn_fail(BN_ERR_INVALID_ARG, "token or target id at %lld is outside the "
                           "vocabulary (%d)", (long long)i, c->vocab);
    bn_status st = acts_alloc(m, lo, B, T);
    if (st != BN_OK) return st;
    bn_tr_lora_acts *a = lo->acts;
    const int N = B * T, H = c->hidden, F = c->ffn, V = c->vocab, hd = c->head_dim,
              qs = c->heads * hd, ks = c->kv_heads * hd;
    memcpy(a->tokens, tokens, sizeof(int32_t) * (size_t)N);
    a->have_targets = targets != NULL;
    for (int l = 0; l < c->layers; l++)
        for (int s = 0; s < BN_TR_PER_LAYER; s++) {
            int t = bn_tr_tensor_layer(m, l, s);
            if (m->params[t].n_dims != 2) continue;
            const float *src = bn_tr_w(m, t);
            int pi = -1;
            for (int k = 0; k < BN_LORA_N_TARGETS && lo->merge_aware; k++)
                if (bn_tr_lora_slot(k) == s) pi = lo->slot[(size_t)l * BN_LORA_N_TARGETS + k];
            if (pi >= 0) {  /* merge-aware: quantize W + s B A */
                const bn_lora_pair *p = &lo->pairs[pi];
                memcpy(a->wtmp, src, sizeof(float) * m->params[t].n);
                bn_tr_sgemm(false, false, p->out, p->in, lo->rank,
                            lo->scale, p->B, lo->rank, p->A, p->in, 1.0f, a->wtmp, p->in);
                src = a->wtmp;
            }
            bn_tr_weightquant(src, m->wq + m->params[t].off, m->params[t].n, m->quant);
        }
    const float *E = bn_tr_w(m, bn_tr_tensor_embed());
    bn_tr_embed_fwd(E, tokens, a->xs[0], N, H);
    for (int l = 0; l < c->layers; l++) {
#define W(s) bn_tr_w(m, bn_tr_tensor_layer(m, l, s))
#define WQ(s) (m->wq + m->params[bn_tr_tensor_layer(m, l, s)].off)
        const float *x = a->xs[l];
        bn_tr_rmsnorm_fwd(x, W(BN_TR_IN_NORM), a->h1[l], a->r1[l], N, H, c->eps);
        bn_tr_actquant(a->h1[l], a->h1q[l], N, H, m->quant);
        bn_tr_linear_fwd(a->h1q[l], WQ(BN_TR_Q), a->q[l], N, H, qs);
        ad_fwd(lo, l, BN_LORA_Q, a->h1[l], a->q[l], N);
        bn_tr_linear_fwd(a->h1q[l], WQ(BN_TR_K), a->k[l], N, H, ks);
        ad_fwd(lo, l, BN_LORA_K, a->h1[l], a->k[l], N);
        bn_tr_linear_fwd(a->h1q[l], WQ(BN_TR_V), a->v[l], N, H, ks);
        ad_fwd(lo, l, BN_LORA_V, a->h1[l], a->v[l], N);
        bn_tr_rope(a->q[l], a->rope_cos, a->rope_sin, N, T, c->heads, hd, false);
        bn_tr_rope(a->k[l], a->rope_cos, a->rope_sin, N, T, c->kv_heads, hd, false);
        bn_tr_attn_fwd(a->q[l], a->k[l], a->v[l], a->P[l], a->att[l], B, T, c->heads, c->kv_heads, hd);
        bn_tr_rmsnorm_fwd(a->att[l], W(BN_TR_ATTN_SUB_NORM), a->ao[l], a->rsub[l], N, qs, c->eps);
        bn_tr_actquant(a->ao[l], a->aq[l], N, qs, m->quant);
        bn_tr_linear_fwd(a->aq[l], WQ(BN_TR_O), a->tH, N, qs, H);
        ad_fwd(lo, l, BN_LORA_O, a->ao[l], a->tH, N);
        for (size_t i = 0; i < (size_t)N * H; i++) a->xmid[l][i] = x[i] + a->tH[i];
        bn_tr_rmsnorm_fwd(a->xmid[l], W(BN_TR_POST_NORM), a->h2[l], a->r2[l], N, H, c->eps);
        bn_tr_actquant(a->h2[l], a->h2q[l], N, H, m->quant);
        bn_tr_linear_fwd(a->h2q[l], WQ(BN_TR_GATE), a->gg[l], N, H, F);
        ad_fwd(lo, l, BN_LORA_GATE, a->h2[l], a->gg[l], N);
        bn_tr_linear_fwd(a->h2q[l], WQ(BN_TR_UP), a->uu[l], N, H, F);
        ad_fwd(lo, l, BN_LORA_UP, a->h2[l], a->uu[l], N);
        bn_tr_relu2_fwd(a->gg[l], a->uu[l], a->mm[l], (size_t)N * F);
        bn_tr_rmsnorm_fwd(a->mm[l], W(BN_TR_FFN_SUB_NORM), a->mo[l], a->r3[l], N, F, c->eps);
        bn_tr_actquant(a->mo[l], a->mq[l], N, F, m->quant);
        bn_tr_linear_fwd(a->mq[l], WQ(BN_TR_DOWN), a->tH, N, F, H);
        ad_fwd(lo, l, BN_LORA_DOWN, a->mo[l], a->tH, N);
        for (size_t i = 0; i < (size_t)N * H; i++) a->xs[l + 1][i] = a->xmid[l][i] + a->tH[i];
#undef W
#undef WQ
    }
    bn_tr_rmsnorm_fwd(a->xs[c->layers], bn_tr_w(m, bn_tr_tensor_final_norm(m)), a->hn, a->rf, N,
                      H, c->eps);
    bn_tr_linear_fwd(a->hn, E, a->logits, N, H, V);
    if (logits_out) memcpy(logits_out, a->logits, sizeof(float) * (size_t)N * V);
    double ls = 0;
    int nv = 0;
    if (targets) ls = bn_tr_xent(a->logits, targets, a->dlogits, N, V, loss_scale, &nv);
    if (loss_sum) *loss_sum = ls;
    if (n_tok) *n_tok = nv;
    return BN_OK;
}

const float *bn_tr_lora_logits(const bn_tr_lora *a) { return a->acts ? a->acts->logits : NULL; }

bn_status bn_tr_lora_backward(bn_tr_model *m, bn_tr_lora *lo) {
    bn_tr_lora_acts *a = lo->acts;
    if (!a || !a->have_targets)
        return bn_fail(BN_ERR_INVALID_ARG, "LoRA backward needs a forward with targets first");
    const bn_tr_config *c = &m->cfg;
    const int B = a->B, T = a->T, N = a->N, H = c->hidden, F = c->ffn, V = c->vocab,
              hd = c->head_dim, qs = c->heads * hd, ks = c->kv_heads * hd;
    const float *E = bn_tr_w(m, bn_tr_tensor_embed());
    /* frozen base: parameter gradients go to scratch (dnorm, dE) or are skipped */
    bn_tr_linear_bwd(a->hn, E, a->dlogits, a->dA, NULL, N, H, V, false);
    int fn = bn_tr_tensor_final_norm(m);
    bn_tr_rmsnorm_bwd(a->xs[c->layers], bn_tr_w(m, fn), a->rf, a->dA, a->dx, a->dnorm, N, H);
    for (int l = c->layers - 1; l >= 0; l--) {
#define W(s) bn_tr_w(m, bn_tr_tensor_layer(m, l, s))
#define WQ(s) (m->wq + m->params[bn_tr_tensor_layer(m, l, s)].off)
        bn_tr_linear_bwd(a->mq[l], WQ(BN_TR_DOWN), a->dx, a->dF1, NULL, N, F, H, false);
        ad_bwd(lo, l, BN_LORA_DOWN, a->mo[l], a->mq[l], a->dx, a->dF1, N);
        bn_tr_rmsnorm_bwd(a->mm[l], W(BN_TR_FFN_SUB_NORM), a->r3[l], a->dF1, a->dF2, a->dnorm, N, F);
        bn_tr_relu2_bwd(a->gg[l], a->uu[l], a->dF2, a->dF1, a->dF3, (size_t)N * F);
        bn_tr_linear_bwd(a->h2q[l], WQ(BN_TR_GATE), a->dF1, a->dA, NULL, N, H, F, false);
        ad_bwd(lo, l, BN_LORA_GATE, a->h2[l], a->h2q[l], a->dF1, a->dA, N);
        bn_tr_linear_bwd(a->h2q[l], WQ(BN_TR_UP), a->dF3, a->dA, NULL, N, H, F, true);
        ad_bwd(lo, l, BN_LORA_UP, a->h2[l], a->h2q[l], a->dF3, a->dA, N);
        bn_tr_rmsnorm_bwd(a->xmid[l], W(BN_TR_POST_NORM), a->r2[l], a->dA, a->dB, a->dnorm, N, H);
        for (size_t i = 0; i < (size_t)N * H; i++) a->dx[i] += a->dB[i];
        bn_tr_linear_bwd(a->aq[l], WQ(BN_TR_O), a->dx, a->dA, NULL, N, qs, H, false);
        ad_bwd(lo, l, BN_LORA_O, a->ao[l], a->aq[l], a->dx, a->dA, N);
        bn_tr_rmsnorm_bwd(a->att[l], W(BN_TR_ATTN_SUB_NORM), a->rsub[l], a->dA, a->dB, a->dnorm, N, qs);
        bn_status st = bn_tr_attn_bwd(a->q[l], a->k[l], a->v[l], a->P[l], a->dB, a->dq, a->dk,
                                      a->dv, B, T, c->heads, c->kv_heads, hd);
        if (st != BN_OK) return st;
        bn_tr_rope(a->dq, a->rope_cos, a->rope_sin, N, T, c->heads, hd, true);
        bn_tr_rope(a->dk, a->rope_cos, a->rope_sin, N, T, c->kv_heads, hd, true);
        bn_tr_linear_bwd(a->h1q[l], WQ(BN_TR_Q), a->dq, a->dA, NULL, N, H, qs, false);
        ad_bwd(lo, l, BN_LORA_Q, a->h1[l], a->h1q[l], a->dq, a->dA, N);
        bn_tr_linear_bwd(a->h1q[l], WQ(BN_TR_K), a->dk, a->dA, NULL, N, H, ks, true);
        ad_bwd(lo, l, BN_LORA_K, a->h1[l], a->h1q[l], a->dk, a->dA, N);
        bn_tr_linear_bwd(a->h1q[l], WQ(BN_TR_V), a->dv, a->dA, NULL, N, H, ks, true);
        ad_bwd(lo, l, BN_LORA_V, a->h1[l], a->h1q[l], a->dv, a->dA, N);
        bn_tr_rmsnorm_bwd(a->xs[l], W(BN_TR_IN_NORM), a->r1[l], a->dA, a->dB, a->dnorm, N, H);
        for (size_t i = 0; i < (size_t)N * H; i++) a->dx[i] += a->dB[i];
#undef W
#undef WQ
    }
    (void)V;
    return BN_OK;
}

void bn_tr_lora_free(bn_tr_lora *a) {
    if (!a) return;
    acts_free(a->acts);
    free(a->slot);
    free(a->pairs);
    bn_aligned_free(a->p);
    bn_aligned_free(a->g);
    bn_aligned_free(a->m1);
    bn_aligned_free(a->m2);
    free(a);
}
