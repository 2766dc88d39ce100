/* perplexity.c — perplexity the way llama.cpp's perplexity tool computes it,
 * so figures compare with published ones (e.g. 17.109 for 2B4T on
 * wikitext-2 at ctx 512):
 *   - the ids are cut into floor(n / n_ctx) non-overlapping windows;
 *   - the first token of each window is replaced by BOS (if the model has
 *     one) and the cache is cleared between windows;
 *   - only the second half is scored: logits of positions n_ctx/2 .. n_ctx-2
 *     against the next token, n_ctx - n_ctx/2 - 1 tokens per window;
 *   - PPL = exp(mean NLL), +/- = PPL * sqrt(var(NLL) / (count - 1)).
 * One difference: llama.cpp refuses inputs shorter than 2 * n_ctx tokens;
 * one window is enough here (the figure is the same whenever both run). */
#include "generate/generate_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bn_perplexity_params bn_perplexity_default_params(void) {
    bn_perplexity_params p;
    memset(&p, 0, sizeof p);
    p.n_ctx = 512;
    p.bos_id = -1;
    return p;
}

/* -log softmax(logits)[target]: expf per entry as llama.cpp does, the sum
 * in double */
static double token_nll(const float *logits, int32_t n_vocab, int32_t target) {
    float mx = logits[0];
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += (double)expf(logits[i] - mx);
    return -((double)logits[target] - (double)mx - log(sum));
}

bn_status bn_perplexity(bn_context *ctx, const bn_model *model, const int32_t *ids, int64_t n_ids,
                        const bn_perplexity_params *params, bn_perplexity_result *result) {
    if (!ctx || !model || !ids || !params || !result)
        return bn_fail(BN_ERR_INVALID_ARG, "bn_perplexity: ctx, model, ids, params and result are required");
    memset(result, 0, sizeof *result);
    bn_model_info mi;
    bn_model_get_info(model, &mi);
    const int32_t n_ctx = params->n_ctx;
    if (n_ctx < 4) return bn_fail(BN_ERR_INVALID_ARG, "perplexity: the window must be at least 4 tokens, got %d", (int)n_ctx);
    if (n_ctx > bn_context_n_ctx(ctx))
        return bn_fail(BN_ERR_CONTEXT_FULL, "perplexity: window of %d tokens exceeds the context of %d",
                       (int)n_ctx, (int)bn_context_n_ctx(ctx));
    if (n_ids < n_ctx)
        return bn_fail(BN_ERR_INVALID_ARG, "perplexity: %lld tokens are fewer than one window of %d",
                       (long long)n_ids, (int)n_ctx);
    if (params->bos_id >= mi.n_vocab)
        return bn_fail(BN_ERR_INVALID_ARG, "perplexity: BOS id %d is out of range", (int)params->bos_id);
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= mi.n_vocab)
            return bn_fail(BN_ERR_INVALID_ARG, "perplexity: token %d at index %lld is out of range [0, %d)",
                           (int)ids[i], (long long)i, (int)mi.n_vocab);
    int64_t n_chunks = n_ids / n_ctx;
    if (params->max_chunks > 0 && n_chunks > params->max_chunks) n_chunks = params->max_chunks;
    if (n_chunks > INT32_MAX) n_chunks = INT32_MAX;
    const int32_t n_batch = params->n_batch > 0 && params->n_batch < n_ctx ? params->n_batch : n_ctx;
    const int32_t first = n_ctx / 2;

    int32_t *tok = bn_malloc(sizeof *tok * (size_t)n_ctx);
    int32_t *seq = bn_malloc(sizeof *seq * (size_t)n_batch);
    int8_t *want = bn_malloc((size_t)n_batch);
    if (!tok || !seq || !want) { free(tok); free(seq); free(want); return BN_ERR_NOMEM; }
    for (int32_t i = 0; i < n_batch; i++) seq[i] = params->seq_id;

    bn_status st = BN_OK;
    double nll = 0.0, nll2 = 0.0;
    int64_t count = 0;
    int32_t done_chunks = 0;
    for (int64_t c = 0; c < n_chunks && st == BN_OK; c++) {
        const int64_t start = c * n_ctx;
        memcpy(tok, ids + start, sizeof *tok * (size_t)n_ctx);
        if (params->bos_id >= 0) tok[0] = params->bos_id;
        if ((st = bn_seq_truncate(ctx, params->seq_id, 0))) break;
        for (int32_t b0 = 0; b0 < n_ctx && st == BN_OK; b0 += n_batch) {
            const int32_t nb = n_ctx - b0 < n_batch ? n_ctx - b0 : n_batch;
            int32_t n_want = 0;
            for (int32_t i = 0; i < nb; i++) {
                const int32_t pos = b0 + i;
                want[i] = pos >= first && pos < n_ctx - 1; /* rows that score a next token */
                n_want += want[i];
            }
            bn_batch b = {nb, tok + b0, seq, NULL, want};
            if (n_want == 0) want[nb - 1] = 1; /* a decode returns at least one row */
            if ((st = bn_decode(ctx, &b))) break;
            for (int32_t i = 0; i < nb && n_want > 0; i++) {
                if (!want[i]) continue;
                const int32_t pos = b0 + i;
                const float *lg = bn_get_logits(ctx, i);
                if (!lg) { st = bn_fail(BN_ERR_INTERNAL, "perplexity: missing logits for row %d", (int)i); break; }
                const double v = token_nll(lg, mi.n_vocab, ids[start + pos + 1]);
                nll += v;
                nll2 += v * v;
                count++;
            }
        }
        if (st) break;
        done_chunks++;
        const double mean = nll / (double)count;
        const double ppl = exp(mean);
        double var = nll2 / (double)count - mean * mean;
        const double err = var > 0 && count > 1 ? ppl * sqrt(var / (double)(count - 1)) : 0.0;
        result->ppl = ppl;
        result->ppl_err = err;
        result->nll = mean;
        result->n_scored = count;
        result->n_chunks = done_chunks;
        if (params->progress && !params->progress(done_chunks, (int32_t)n_chunks, ppl, err, params->user)) break;
    }
    free(tok);
    free(seq);
    free(want);
    return st;
}
