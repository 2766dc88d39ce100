/* hook.h — an optional hook on the BitLinear products of the trainer's one
 * forward and backward (model.c), so that adapters (LoRA, lora_model.c) add
 * their terms without a second copy of the network's op sequence. */
#ifndef BN_TRAIN_HOOK_H
#define BN_TRAIN_HOOK_H

#include "train/train.h"

/* slot: BN_TR_Q ... BN_TR_DOWN of `layer`. Any callback may be NULL. */
typedef struct bn_tr_hook {
    void *user;
    /* The latent weight [out, in] that the forward quantizes for slot, given
     * the model's own w (return w, or a scratch copy such as W + s B A). */
    const float *(*weight)(void *user, int layer, int slot, const float *w);
    /* Right after y [N, out] = BitLinear(xq): add a term of x [N, in], the
     * linear's unquantized (normed) input. */
    void (*fwd)(void *user, int layer, int slot, const float *x, float *y, int N);
    /* Right after the base backward of slot wrote (or added) dy . Wq into
     * dx [N, in]: add the hook's part to dx and take its own gradients. */
    void (*bwd)(void *user, int layer, int slot, const float *x, const float *xq, const float *dy,
                float *dx, int N);
    /* The base gets no gradients (m->g untouched): a frozen model. */
    bool base_frozen;
} bn_tr_hook;

/* bn_tr_forward / bn_tr_backward with a hook (NULL: exactly those). A hooked
 * forward keeps the normed linear inputs for the hooked backward, which
 * needs one (with targets) as the model's last forward. */
bn_status bn_tr_forward_hooked(bn_tr_model *m, const bn_tr_hook *h, const int32_t *tokens,
                               const int32_t *targets, int B, int T, float loss_scale,
                               double *loss_sum, int *n_tok, float *logits_out);
bn_status bn_tr_backward_hooked(bn_tr_model *m, const bn_tr_hook *h);

#endif /* BN_TRAIN_HOOK_H */
