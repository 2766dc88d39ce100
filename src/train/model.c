/* model.c — the BitNet b1.58 network for training: parameters in one flat
 * array (HF checkpoint names and order), forward over a [B, T] batch keeping
 * the activations, and the backward over the whole net (tied head). A hook
 * (hook.h) lets adapters add terms to the linear products of this one op
 * sequence. */
#include "train/hook.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bn_tr_acts {
    int B, T, N;
    int32_t *tokens, *targets;
    float *arena;
    float **xs;           /* residual stream entering layer l, [L+1][N*H] */
    /* per layer, pointer arrays of length L */
    float **r1, **h1q, **q, **k, **v, **P, **att, **rsub, **aq, **xmid, **r2, **h2q,
          **gg, **uu, **mm, **r3, **mq;
    /* normed linear inputs before quantization: kept per layer for a hook,
     * else every layer's pointer is the forward scratch tH / tF */
    float **h1, **ao, **h2, **mo;
    float *rf, *hn, *logits, *dlogits;
    float *tH, *tF;                         /* forward scratch */
    float *dx, *dA, *dB, *dF1, *dF2, *dF3, *dq, *dk, *dv;  /* backward scratch */
    float *dnorm;                           /* norm gradients of a frozen base */
    float *rope_cos, *rope_sin;
    size_t n_dnorm;
    bool have_targets, keep, hooked;
};

static const char *slot_name[BN_TR_PER_LAYER] = {
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight", "self_attn.attn_sub_norm.weight", "mlp.gate_proj.weight",
    "mlp.up_proj.weight", "mlp.down_proj.weight", "mlp.ffn_sub_norm.weight",
    "input_layernorm.weight", "post_attention_layernorm.weight"};

int bn_tr_tensor_embed(void) { return 0; }
int bn_tr_tensor_layer(const bn_tr_model *m, int layer, int slot) {
    (void)m;
    return 1 + layer * BN_TR_PER_LAYER + slot;
}
int bn_tr_tensor_final_norm(const bn_tr_model *m) { return 1 + m->cfg.layers * BN_TR_PER_LAYER; }

int bn_tr_find_tensor(const bn_tr_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->params[i].name, name)) return i;
    return -1;
}

static void set_param(bn_tr_param *p, const char *name, int nd, int64_t d0, int64_t d1,
                      size_t *off) {
    snprintf(p->name, sizeof p->name, "%s", name);
    p->n_dims = nd;
    p->shape[0] = d0;
    p->shape[1] = nd == 2 ? d1 : 1;
    p->n = (size_t)d0 * (size_t)p->shape[1];
    p->off = *off;
    p->decay = nd == 2;
    *off += p->n;
}

bn_status bn_tr_model_create(const bn_tr_config *cfg, bool quant, bn_tr_model **out) {
    *out = NULL;
    bn_status st = bn_tr_config_check(cfg);
    if (st != BN_OK) return st;
    bn_tr_model *m = bn_calloc(1, sizeof *m);
    if (!m) return BN_ERR_NOMEM;
    m->cfg = *cfg;
    m->quant = quant;
    const int H = cfg->hidden, F = cfg->ffn, qs = cfg->heads * cfg->head_dim,
              ks = cfg->kv_heads * cfg->head_dim;
    m->n_tensors = 2 + cfg->layers * BN_TR_PER_LAYER;
    m->params = bn_calloc((size_t)m->n_tensors, sizeof *m->params);
    if (!m->params) { bn_tr_model_free(m); return BN_ERR_NOMEM; }
    size_t off = 0;
    set_param(&m->params[0], "model.embed_tokens.weight", 2, cfg->vocab, H, &off);
    for (int l = 0; l < cfg->layers; l++) {
        static const int nd[BN_TR_PER_LAYER] = {2, 2, 2, 2, 1, 2, 2, 2, 1, 1, 1};
        int64_t d0[BN_TR_PER_LAYER] = {qs, ks, ks, H, qs, F, F, H, F, H, H};
        int64_t d1[BN_TR_PER_LAYER] = {H, H, H, qs, 1, H, H, F, 1, 1, 1};
        for (int s = 0; s < BN_TR_PER_LAYER; s++) {
            char name[BN_TR_MAX_NAME];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, slot_name[s]);
            set_param(&m->params[bn_tr_tensor_layer(m, l, s)], name, nd[s], d0[s], d1[s], &off);
        }
    }
    set_param(&m->params[bn_tr_tensor_final_norm(m)], "model.norm.weight", 1, H, 1, &off);
    m->n_params = off;
    m->w = bn_aligned_alloc(64, sizeof(float) * off);
    m->g = bn_aligned_alloc(64, sizeof(float) * off);
    m->wq = bn_aligned_alloc(64, sizeof(float) * off);
    if (!m->w || !m->g || !m->wq) { bn_tr_model_free(m); return BN_ERR_NOMEM; }
    memset(m->w, 0, sizeof(float) * off);
    memset(m->g, 0, sizeof(float) * off);
    memset(m->wq, 0, sizeof(float) * off);
    *out = m;
    return BN_OK;
}

static void acts_free(bn_tr_acts *a) {
    if (!a) return;
    free(a->tokens);
    free(a->targets);
    bn_aligned_free(a->arena);
    free(a->xs);
    free(a);
}

bn_status bn_tr_model_view(const bn_tr_model *src, bn_tr_model **out) {
    *out = NULL;
    bn_tr_model *v = bn_malloc(sizeof *v);
    if (!v) return BN_ERR_NOMEM;
    *v = *src;
    v->acts = NULL;
    v->is_view = true;
    v->t_gemm = 0;
    *out = v;
    return BN_OK;
}

void bn_tr_model_free(bn_tr_model *m) {
    if (!m) return;
    acts_free(m->acts);
    if (m->is_view) { free(m); return; }
    free(m->params);
    bn_aligned_free(m->w);
    bn_aligned_free(m->g);
    bn_aligned_free(m->wq);
    free(m);
}

void bn_tr_model_init_random(bn_tr_model *m, uint64_t seed) {
    bn_tr_rng r;
    bn_tr_rng_seed(&r, seed);
    for (int t = 0; t < m->n_tensors; t++) {
        float *w = bn_tr_w(m, t);
        const bn_tr_param *p = &m->params[t];
        for (size_t i = 0; i < p->n; i++)
            w[i] = p->n_dims == 2 ? 0.02f * bn_tr_rng_normal(&r) : 1.0f;
    }
}

void bn_tr_zero_grad(bn_tr_model *m) { memset(m->g, 0, sizeof(float) * m->n_params); }

/* Carve every activation buffer out of one allocation (64-byte aligned). */
static bn_status acts_alloc(bn_tr_model *m, int B, int T, bool keep) {
    bn_tr_acts *a = m->acts;
    if (a && a->B == B && a->T == T && (a->keep || !keep)) return BN_OK;
    acts_free(a);
    m->acts = NULL;
    const bn_tr_config *c = &m->cfg;
    const size_t N = (size_t)B * (size_t)T, H = (size_t)c->hidden, F = (size_t)c->ffn,
                 V = (size_t)c->vocab, L = (size_t)c->layers,
                 qs = (size_t)c->heads * c->head_dim, ks = (size_t)c->kv_heads * c->head_dim,
                 PT = (size_t)B * c->heads * (size_t)T * (size_t)T;
    a = bn_calloc(1, sizeof *a);
    if (!a) return BN_ERR_NOMEM;
    a->B = B; a->T = T; a->N = (int)N;
    a->tokens = bn_malloc(sizeof(int32_t) * N);
    a->targets = bn_malloc(sizeof(int32_t) * N);
    a->xs = bn_calloc((L + 1) + 21 * L, sizeof(float *));
    if (!a->tokens || !a->targets || !a->xs) { acts_free(a); return BN_ERR_NOMEM; }
    float ***lists[] = {&a->r1, &a->h1q, &a->q, &a->k, &a->v, &a->P, &a->att, &a->rsub, &a->aq,
                        &a->xmid, &a->r2, &a->h2q, &a->gg, &a->uu, &a->mm, &a->r3, &a->mq,
                        &a->h1, &a->ao, &a->h2, &a->mo};
    const int n_lists = keep ? 21 : 17;
    for (size_t i = 0; i < 21; i++) *lists[i] = a->xs + (L + 1) + i * L;
    const size_t per_layer[21] = {N, N * H, N * qs, N * ks, N * ks, PT, N * qs, N, N * H,
                                  N * H, N, N * H, N * F, N * F, N * F, N, N * F,
                                  N * H, N * qs, N * H, N * F};
    a->keep = keep;
    /* sizes rounded up to 16 floats to keep every buffer aligned */
#define RUP(x) (((x) + 15) & ~(size_t)15)
    size_t total = (L + 1) * RUP(N * H);
    for (int i = 0; i < n_lists; i++) total += L * RUP(per_layer[i]);
    const size_t nmax = H > F ? (H > qs ? H : qs) : (F > qs ? F : qs);
    const size_t tail[] = {N, N * H, N * V, N * V, N * H, N * F, N * H, N * H, N * H, N * F,
                           N * F, N * F, N * qs, N * ks, N * ks, (size_t)T * c->head_dim,
                           (size_t)T * c->head_dim, nmax};
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++) total += RUP(tail[i]);
    if (total > BN_MAX_ALLOC / sizeof(float)) {
        acts_free(a);
        return bn_fail(BN_ERR_NOMEM, "activations for batch %d x %d need %zu floats: too many",
                       B, T, total);
    }
    a->arena = bn_aligned_alloc(64, total * sizeof(float));
    if (!a->arena) { acts_free(a); return BN_ERR_NOMEM; }
    float *p = a->arena;
    for (size_t l = 0; l <= L; l++) { a->xs[l] = p; p += RUP(N * H); }
    for (int i = 0; i < n_lists; i++)
        for (size_t l = 0; l < L; l++) { (*lists[i])[l] = p; p += RUP(per_layer[i]); }
    float **tails[] = {&a->rf, &a->hn, &a->logits, &a->dlogits, &a->tH, &a->tF, &a->dx, &a->dA,
                       &a->dB, &a->dF1, &a->dF2, &a->dF3, &a->dq, &a->dk, &a->dv, &a->rope_cos,
                       &a->rope_sin, &a->dnorm};
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++) { *tails[i] = p; p += RUP(tail[i]); }
#undef RUP
    for (size_t l = 0; l < L && !keep; l++) {
        a->h1[l] = a->ao[l] = a->h2[l] = a->tH;
        a->mo[l] = a->tF;
    }
    a->n_dnorm = nmax;
    bn_tr_rope_table(a->rope_cos, a->rope_sin, T, c->head_dim, c->rope_theta);
    m->acts = a;
    return BN_OK;
}

/* the linear layers' sgemm calls, timed for the throughput report */
static void lin_f(bn_tr_model *m, const float *xq, const float *wq, float *y, int n, int in,
                  int out) {
    double t0 = bn_time_s();
    bn_tr_linear_fwd(xq, wq, y, n, in, out);
    m->t_gemm += bn_time_s() - t0;
}
static void lin_b(bn_tr_model *m, const float *xq, const float *wq, const float *dy, float *dx,
                  float *dw, int n, int in, int out, bool acc) {
    double t0 = bn_time_s();
    bn_tr_linear_bwd(xq, wq, dy, dx, dw, n, in, out, acc);
    m->t_gemm += bn_time_s() - t0;
}

static void add_inplace(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

bn_status bn_tr_forward(bn_tr_model *m, const int32_t *tokens, const int32_t *targets,
                        int B, int T, float loss_scale, double *loss_sum, int *n_tok,
                        float *logits_out) {
    return bn_tr_forward_hooked(m, NULL, tokens, targets, B, T, loss_scale, loss_sum, n_tok,
                                logits_out);
}

bn_status bn_tr_forward_hooked(bn_tr_model *m, const bn_tr_hook *h, const int32_t *tokens,
                               const int32_t *targets, int B, int T, float loss_scale,
                               double *loss_sum, int *n_tok, float *logits_out) {
    if (B <= 0 || T <= 0 || (int64_t)B * T > (1 << 26))
        return bn_fail(BN_ERR_INVALID_ARG, "batch %d x %d is not usable", B, T);
    const bn_tr_config *c = &m->cfg;
    for (int64_t i = 0; i < (int64_t)B * T; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return bn_fail(BN_ERR_INVALID_ARG, "token id %d at %lld is outside the vocabulary "
                           "(%d)", tokens[i], (long long)i, c->vocab);
        if (targets && targets[i] >= c->vocab)
            return bn_fail(BN_ERR_INVALID_ARG, "target id %d at %lld is outside the vocabulary "
                           "(%d)", targets[i], (long long)i, c->vocab);
    }
    bn_status st = acts_alloc(m, B, T, h != NULL);
    if (st != BN_OK) return st;
    bn_tr_acts *a = m->acts;
    a->hooked = h != NULL;
    const int N = B * T, H = c->hidden, F = c->ffn, V = c->vocab, hd = c->head_dim,
              qs = c->heads * hd, ks = c->kv_heads * hd;
    memcpy(a->tokens, tokens, sizeof(int32_t) * (size_t)N);
    a->have_targets = targets != NULL;
    if (targets) memcpy(a->targets, targets, sizeof(int32_t) * (size_t)N);

    /* quantize every linear weight once per forward (latent -> ternary * scale) */
    for (int l = 0; l < c->layers; l++)
        for (int s = 0; s < BN_TR_PER_LAYER; s++) {
            int t = bn_tr_tensor_layer(m, l, s);
            if (m->params[t].n_dims != 2) continue;
            const float *src = bn_tr_w(m, t);
            if (h && h->weight) src = h->weight(h->user, l, s, src);
            bn_tr_weightquant(src, m->wq + m->params[t].off, m->params[t].n, m->quant);
        }
    const float *E = bn_tr_w(m, bn_tr_tensor_embed());
    bn_tr_embed_fwd(E, tokens, a->xs[0], N, H);
    for (int l = 0; l < c->layers; l++) {
#define W(s) bn_tr_w(m, bn_tr_tensor_layer(m, l, s))
#define WQ(s) (m->wq + m->params[bn_tr_tensor_layer(m, l, s)].off)
#define HOOK(s, x, y) do { if (h && h->fwd) h->fwd(h->user, l, s, x, y, N); } while (0)
        float *x = a->xs[l];
        bn_tr_rmsnorm_fwd(x, W(BN_TR_IN_NORM), a->h1[l], a->r1[l], N, H, c->eps);
        bn_tr_actquant(a->h1[l], a->h1q[l], N, H, m->quant);
        lin_f(m, a->h1q[l], WQ(BN_TR_Q), a->q[l], N, H, qs);
        HOOK(BN_TR_Q, a->h1[l], a->q[l]);
        lin_f(m, a->h1q[l], WQ(BN_TR_K), a->k[l], N, H, ks);
        HOOK(BN_TR_K, a->h1[l], a->k[l]);
        lin_f(m, a->h1q[l], WQ(BN_TR_V), a->v[l], N, H, ks);
        HOOK(BN_TR_V, a->h1[l], a->v[l]);
        bn_tr_rope(a->q[l], a->rope_cos, a->rope_sin, N, T, c->heads, hd, false);
        bn_tr_rope(a->k[l], a->rope_cos, a->rope_sin, N, T, c->kv_heads, hd, false);
        bn_tr_attn_fwd(a->q[l], a->k[l], a->v[l], a->P[l], a->att[l], B, T, c->heads,
                       c->kv_heads, hd);
        bn_tr_rmsnorm_fwd(a->att[l], W(BN_TR_ATTN_SUB_NORM), a->ao[l], a->rsub[l], N, qs, c->eps);
        bn_tr_actquant(a->ao[l], a->aq[l], N, qs, m->quant);
        lin_f(m, a->aq[l], WQ(BN_TR_O), a->tH, N, qs, H); /* tH may be ao (no hook) */
        HOOK(BN_TR_O, a->ao[l], a->tH);
        memcpy(a->xmid[l], x, sizeof(float) * (size_t)N * H);
        add_inplace(a->xmid[l], a->tH, (size_t)N * H);
        bn_tr_rmsnorm_fwd(a->xmid[l], W(BN_TR_POST_NORM), a->h2[l], a->r2[l], N, H, c->eps);
        bn_tr_actquant(a->h2[l], a->h2q[l], N, H, m->quant);
        lin_f(m, a->h2q[l], WQ(BN_TR_GATE), a->gg[l], N, H, F);
        HOOK(BN_TR_GATE, a->h2[l], a->gg[l]);
        lin_f(m, a->h2q[l], WQ(BN_TR_UP), a->uu[l], N, H, F);
        HOOK(BN_TR_UP, a->h2[l], a->uu[l]);
        bn_tr_relu2_fwd(a->gg[l], a->uu[l], a->mm[l], (size_t)N * F);
        bn_tr_rmsnorm_fwd(a->mm[l], W(BN_TR_FFN_SUB_NORM), a->mo[l], a->r3[l], N, F, c->eps);
        bn_tr_actquant(a->mo[l], a->mq[l], N, F, m->quant);
        lin_f(m, a->mq[l], WQ(BN_TR_DOWN), a->tH, N, F, H);
        HOOK(BN_TR_DOWN, a->mo[l], a->tH);
        memcpy(a->xs[l + 1], a->xmid[l], sizeof(float) * (size_t)N * H);
        add_inplace(a->xs[l + 1], a->tH, (size_t)N * H);
#undef W
#undef WQ
#undef HOOK
    }
    bn_tr_rmsnorm_fwd(a->xs[c->layers], bn_tr_w(m, bn_tr_tensor_final_norm(m)), a->hn, a->rf, N,
                      H, c->eps);
    /* tied head: neither the weight nor its input is quantized */
    lin_f(m, a->hn, E, a->logits, N, H, V);
    if (logits_out) memcpy(logits_out, a->logits, sizeof(float) * (size_t)N * V);
    double ls = 0;
    int nv = 0;
    if (targets) ls = bn_tr_xent(a->logits, targets, a->dlogits, N, V, loss_scale, &nv);
    if (loss_sum) *loss_sum = ls;
    if (n_tok) *n_tok = nv;
    return BN_OK;
}

const float *bn_tr_logits(const bn_tr_model *m) { return m->acts ? m->acts->logits : NULL; }

bn_status bn_tr_backward(bn_tr_model *m) { return bn_tr_backward_hooked(m, NULL); }

bn_status bn_tr_backward_hooked(bn_tr_model *m, const bn_tr_hook *h) {
    bn_tr_acts *a = m->acts;
    if (!a || !a->have_targets)
        return bn_fail(BN_ERR_INVALID_ARG, "backward needs a forward with targets first");
    if (h && !a->hooked)
        return bn_fail(BN_ERR_INVALID_ARG, "a hooked backward needs a hooked forward first");
    const bool frozen = h && h->base_frozen;
    const bn_tr_config *c = &m->cfg;
    const int B = a->B, T = a->T, N = a->N, H = c->hidden, F = c->ffn, V = c->vocab,
              hd = c->head_dim, qs = c->heads * hd, ks = c->kv_heads * hd;
    const float *E = bn_tr_w(m, bn_tr_tensor_embed());
    float *dE = frozen ? NULL : bn_tr_g(m, bn_tr_tensor_embed());
    if (frozen) memset(a->dnorm, 0, sizeof(float) * a->n_dnorm); /* scratch, never read */
    /* head: dE += dlogits^T . hn ; dhn = dlogits . E */
    lin_b(m, a->hn, E, a->dlogits, a->dA, dE, N, H, V, false);
    int fn = bn_tr_tensor_final_norm(m);
    bn_tr_rmsnorm_bwd(a->xs[c->layers], bn_tr_w(m, fn), a->rf, a->dA, a->dx,
                      frozen ? a->dnorm : bn_tr_g(m, fn), N, H);
    for (int l = c->layers - 1; l >= 0; l--) {
#define W(s) bn_tr_w(m, bn_tr_tensor_layer(m, l, s))
#define G(s) (frozen ? NULL : bn_tr_g(m, bn_tr_tensor_layer(m, l, s)))       /* linears */
#define GN(s) (frozen ? a->dnorm : bn_tr_g(m, bn_tr_tensor_layer(m, l, s)))  /* norms */
#define WQ(s) (m->wq + m->params[bn_tr_tensor_layer(m, l, s)].off)
#define HOOK(s, x, xq, dy, dx) do { if (h && h->bwd) h->bwd(h->user, l, s, x, xq, dy, dx, N); } while (0)
        /* x_{l+1} = xmid + down(mq) */
        lin_b(m, a->mq[l], WQ(BN_TR_DOWN), a->dx, a->dF1, G(BN_TR_DOWN), N, F, H, false);
        HOOK(BN_TR_DOWN, a->mo[l], a->mq[l], a->dx, a->dF1);
        bn_tr_rmsnorm_bwd(a->mm[l], W(BN_TR_FFN_SUB_NORM), a->r3[l], a->dF1, a->dF2,
                          GN(BN_TR_FFN_SUB_NORM), N, F);
        bn_tr_relu2_bwd(a->gg[l], a->uu[l], a->dF2, a->dF1, a->dF3, (size_t)N * F);
        lin_b(m, a->h2q[l], WQ(BN_TR_GATE), a->dF1, a->dA, G(BN_TR_GATE), N, H, F, false);
        HOOK(BN_TR_GATE, a->h2[l], a->h2q[l], a->dF1, a->dA);
        lin_b(m, a->h2q[l], WQ(BN_TR_UP), a->dF3, a->dA, G(BN_TR_UP), N, H, F, true);
        HOOK(BN_TR_UP, a->h2[l], a->h2q[l], a->dF3, a->dA);
        bn_tr_rmsnorm_bwd(a->xmid[l], W(BN_TR_POST_NORM), a->r2[l], a->dA, a->dB,
                          GN(BN_TR_POST_NORM), N, H);
        add_inplace(a->dx, a->dB, (size_t)N * H);
        /* xmid = x + o(aq) */
        lin_b(m, a->aq[l], WQ(BN_TR_O), a->dx, a->dA, G(BN_TR_O), N, qs, H, false);
        HOOK(BN_TR_O, a->ao[l], a->aq[l], a->dx, a->dA);
        bn_tr_rmsnorm_bwd(a->att[l], W(BN_TR_ATTN_SUB_NORM), a->rsub[l], a->dA, a->dB,
                          GN(BN_TR_ATTN_SUB_NORM), N, qs);
        bn_status st = bn_tr_attn_bwd(a->q[l], a->k[l], a->v[l], a->P[l], a->dB, a->dq, a->dk,
                                      a->dv, B, T, c->heads, c->kv_heads, hd);
        if (st != BN_OK) return st;
        bn_tr_rope(a->dq, a->rope_cos, a->rope_sin, N, T, c->heads, hd, true);
        bn_tr_rope(a->dk, a->rope_cos, a->rope_sin, N, T, c->kv_heads, hd, true);
        lin_b(m, a->h1q[l], WQ(BN_TR_Q), a->dq, a->dA, G(BN_TR_Q), N, H, qs, false);
        HOOK(BN_TR_Q, a->h1[l], a->h1q[l], a->dq, a->dA);
        lin_b(m, a->h1q[l], WQ(BN_TR_K), a->dk, a->dA, G(BN_TR_K), N, H, ks, true);
        HOOK(BN_TR_K, a->h1[l], a->h1q[l], a->dk, a->dA);
        lin_b(m, a->h1q[l], WQ(BN_TR_V), a->dv, a->dA, G(BN_TR_V), N, H, ks, true);
        HOOK(BN_TR_V, a->h1[l], a->h1q[l], a->dv, a->dA);
        bn_tr_rmsnorm_bwd(a->xs[l], W(BN_TR_IN_NORM), a->r1[l], a->dA, a->dB, GN(BN_TR_IN_NORM),
                          N, H);
        add_inplace(a->dx, a->dB, (size_t)N * H);
#undef W
#undef G
#undef GN
#undef WQ
#undef HOOK
    }
    if (!frozen) bn_tr_embed_bwd(a->tokens, a->dx, dE, N, H);
    return BN_OK;
}

double bn_tr_grad_norm(const bn_tr_model *m) {
    double s = 0;
    for (size_t i = 0; i < m->n_params; i++) s += (double)m->g[i] * m->g[i];
    return sqrt(s);
}

double bn_tr_flops_per_step(const bn_tr_config *c, int B, int T) {
    const double N = (double)B * T, H = c->hidden, F = c->ffn, V = c->vocab,
                 qs = (double)c->heads * c->head_dim, ks = (double)c->kv_heads * c->head_dim;
    double per_tok = c->layers * (H * qs + 2 * H * ks + qs * H + 3 * H * F) + H * V;
    /* forward 2 flops per MAC, backward twice the forward */
    return 6.0 * N * per_tok;
}
