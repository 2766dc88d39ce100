/* lora_model.c — forward and backward of the trainer's network with LoRA
 * adapters on the BitLinear projections: the trainer's one op sequence
 * (model.c) with a hook (hook.h) that adds the adapter terms after each
 * linear product and takes their gradients. The base gets no gradients
 * (frozen), only A and B; tests check that with B = 0 the logits equal
 * bn_tr_forward's bit for bit. */
#include "train/hook.h"
#include "train/lora.h"

#include <stdlib.h>
#include <string.h>

/* What the adapters keep beyond the model's activations (which stay in m). */
struct bn_tr_lora_acts {
    int B, T;
    bool merge_aware;
    bn_tr_model *m;   /* model of the last forward: holds its logits */
    float **buf;      /* every allocation, for freeing */
    int n_buf;
    float **u;        /* per pair: A x [N, r] */
    float *ur;        /* backward scratch [N, r] */
    float *wtmp;      /* merge-aware: W + sBA (forward) or dW (backward), [max out*in] */
};

static void acts_free(bn_tr_lora_acts *a) {
    if (!a) return;
    for (int i = 0; i < a->n_buf; i++) bn_aligned_free(a->buf[i]);
    free(a->buf);
    free(a->u);
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
    const size_t N = (size_t)B * T, H = c->hidden, F = c->ffn, R = (size_t)lo->rank,
                 qs = (size_t)c->heads * c->head_dim;
    bn_tr_lora_acts *a = bn_calloc(1, sizeof *a);
    if (!a) return BN_ERR_NOMEM;
    a->B = B; a->T = T;
    a->merge_aware = lo->merge_aware;
    a->u = bn_calloc((size_t)lo->n_pairs + 1, sizeof(float *));
    a->buf = bn_calloc((size_t)lo->n_pairs + 2, sizeof(float *));
    if (!a->u || !a->buf) { acts_free(a); return BN_ERR_NOMEM; }
    bool ok = true;
    for (int i = 0; i < lo->n_pairs && ok; i++) a->u[i] = take(a, N * R, &ok);
    if (ok) a->ur = take(a, N * R, &ok);
    if (ok) a->wtmp = take(a, lo->merge_aware ? (H > qs ? H : qs) * (F > qs ? F : qs) : 1, &ok);
    if (!ok) { acts_free(a); return BN_ERR_NOMEM; }
    lo->acts = a;
    return BN_OK;
}

/* The pair adapting train slot `slot` of `layer`, or -1. */
static int pair_of(const bn_tr_lora *lo, int layer, int slot) {
    for (int k = 0; k < BN_LORA_N_TARGETS; k++)
        if (bn_tr_lora_slot(k) == slot) return lo->slot[(size_t)layer * BN_LORA_N_TARGETS + k];
    return -1;
}

/* merge-aware: the forward quantizes W + s B A */
static const float *ad_weight(void *user, int layer, int slot, const float *w) {
    const bn_tr_lora *lo = user;
    int pi = lo->merge_aware ? pair_of(lo, layer, slot) : -1;
    if (pi < 0) return w;
    const bn_lora_pair *p = &lo->pairs[pi];
    float *wt = lo->acts->wtmp;
    memcpy(wt, w, sizeof(float) * (size_t)p->out * p->in);
    bn_tr_sgemm(false, false, p->out, p->in, lo->rank, lo->scale, p->B, lo->rank, p->A, p->in, 1.0f,
                wt, p->in);
    return wt;
}

/* y += scale * (x A^T) B^T, keeping u = x A^T for the backward */
static void ad_fwd(void *user, int layer, int slot, const float *x, float *y, int N) {
    const bn_tr_lora *lo = user;
    int s = pair_of(lo, layer, slot);
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
static void ad_bwd(void *user, int layer, int slot, const float *x, const float *xq,
                   const float *dy, float *dx, int N) {
    bn_tr_lora *lo = user;
    int s = pair_of(lo, layer, slot);
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

static bn_tr_hook lora_hook(bn_tr_lora *lo) {
    return (bn_tr_hook){.user = lo, .weight = ad_weight, .fwd = ad_fwd, .bwd = ad_bwd,
                        .base_frozen = true};
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
    lo->acts->m = NULL;
    const bn_tr_hook h = lora_hook(lo);
    st = bn_tr_forward_hooked(m, &h, tokens, targets, B, T, loss_scale, loss_sum, n_tok, logits_out);
    if (st == BN_OK) lo->acts->m = m;
    return st;
}

const float *bn_tr_lora_logits(const bn_tr_lora *a) {
    return a->acts && a->acts->m ? bn_tr_logits(a->acts->m) : NULL;
}

bn_status bn_tr_lora_backward(bn_tr_model *m, bn_tr_lora *lo) {
    if (!lo->acts || lo->acts->m != m)
        return bn_fail(BN_ERR_INVALID_ARG, "LoRA backward needs a forward with targets first");
    const bn_tr_hook h = lora_hook(lo);
    return bn_tr_backward_hooked(m, &h);
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
