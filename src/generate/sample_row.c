/* sample_row.c — bn_sample: sampling a row of the last batch where its
 * logits are (the GPU's top-k when the CUDA backend kept them, else the
 * host row). */
#include "generate/generate_internal.h"
#include "model/context.h"

#include <stdlib.h>

/* Greedy and top-k <= BN_TOPK_DEVICE_MAX (below the vocabulary) reduce to
 * k candidates; 0: the pipeline needs the whole row. */
static int32_t device_k(const bn_sampler_params *p, int32_t n_vocab) {
    if (p->temperature <= 0.0f) return 1;
    if (p->top_k > 0 && p->top_k < n_vocab && p->top_k <= BN_TOPK_DEVICE_MAX) return p->top_k;
    return 0;
}

/* BN_ERR_UNSUPPORTED: not done here, sample the host row. */
static bn_status sample_on_device(bn_context *ctx, int32_t i, bn_sampler *s, const int32_t *history,
                                  int32_t n_history, int32_t *out_token) {
    const bn_sampler_params *p = bn_sampler_get_params(s);
    const int32_t V = ctx->m->hp.n_vocab, k = device_k(p, V);
    if (!ctx->logits_deferred || k == 0) return BN_ERR_UNSUPPORTED;
    int32_t win = p->repeat_last_n > 0 && p->repeat_last_n < n_history ? p->repeat_last_n : n_history;
    int32_t *pen = malloc(sizeof(int32_t) * (size_t)(2 * (win > 0 ? win : 1)));
    int32_t *btok = malloc(sizeof(int32_t) * (size_t)(p->n_logit_bias > 0 ? p->n_logit_bias : 1));
    float *bias = malloc(sizeof(float) * (size_t)(p->n_logit_bias > 0 ? p->n_logit_bias : 1));
    bn_status st = BN_ERR_UNSUPPORTED;
    if (!pen || !btok || !bias) {
        st = bn_fail(BN_ERR_NOMEM, "out of memory");
        goto done;
    }
    const int32_t np = bn_sampler_penalized(s, history, n_history, V, pen, pen + win, win);
    int32_t nb = 0;
    for (int32_t j = 0; j < p->n_logit_bias; j++) /* out-of-range biases do nothing, as on the host */
        if (p->logit_bias[j].token >= 0 && p->logit_bias[j].token < V) {
            btok[nb] = p->logit_bias[j].token;
            bias[nb++] = p->logit_bias[j].bias;
        }
    if (np < 0) goto done;
    const bn_logit_adjust adj = {btok, bias, nb, pen, pen + win, np,
                                 p->repeat_penalty, p->presence_penalty, p->frequency_penalty};
    int32_t ids[BN_TOPK_DEVICE_MAX], n = 0;
    float lg[BN_TOPK_DEVICE_MAX];
    st = bn_context_top_k(ctx, i, &adj, k, ids, lg, &n);
    if (st) goto done;
    bn_cand c[BN_TOPK_DEVICE_MAX];
    for (int32_t j = 0; j < n; j++) c[j] = (bn_cand){ids[j], lg[j], 0.0};
    st = bn_sampler_finish(s, c, n, out_token);
done:
    free(pen);
    free(btok);
    free(bias);
    return st;
}

bn_status bn_sample(bn_context *ctx, int32_t i, bn_sampler *s, const int32_t *history, int32_t n_history,
                    int32_t n_top, bn_sample_info *info, int32_t *out_token) {
    if (!ctx || !s || !out_token || n_history < 0 || (n_history > 0 && !history))
        return bn_fail(BN_ERR_INVALID_ARG, "bn_sample: bad arguments");
    if (!info) {
        bn_status st = sample_on_device(ctx, i, s, history, n_history, out_token);
        if (st != BN_ERR_UNSUPPORTED) return st;
    }
    const float *logits = bn_get_logits(ctx, i);
    if (!logits) return bn_fail(BN_ERR_INVALID_ARG, "bn_sample: no logits for batch token %d", (int)i);
    return bn_sampler_sample(s, logits, ctx->m->hp.n_vocab, history, n_history, n_top, info, out_token);
}
