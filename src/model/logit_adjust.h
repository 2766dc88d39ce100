/* logit_adjust.h — a logits row's bias and penalties in the form a device
 * can apply (the CUDA backend's top-k for sampling, see bn_context_top_k). */
#ifndef BN_LOGIT_ADJUST_H
#define BN_LOGIT_ADJUST_H

#include <stdint.h>

/* As the sampler applies them: every bias in order (tokens in range), then
 * for each penalized token (distinct, with its count in the window) the
 * repeat penalty, then presence + frequency x count. */
typedef struct bn_logit_adjust {
    const int32_t *bias_tok;
    const float   *bias;
    int32_t        n_bias;
    const int32_t *pen_tok, *pen_cnt;
    int32_t        n_pen;
    float          repeat_penalty, presence, frequency;
} bn_logit_adjust;

#define BN_TOPK_DEVICE_MAX 64 /* the largest k chosen on a device */

#endif
