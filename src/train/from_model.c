/* from_model.c — a trainer model from any loaded bn_model (GGUF, HF packed,
 * HF masters): the fine-tuning base when no latent f32/bf16 masters exist.
 * A ternary linear t * beta becomes the latent t * beta / f (f = fraction of
 * non-zero codes), so that the trainer's absmean quantizer gives back exactly
 * codes t with scale mean|W| = beta: the frozen base is the loaded ternary
 * model. */
#include "train/lora.h"

#include <string.h>

#include "kernels/kernels.h"
#include "model/model.h"

bn_status bn_tr_model_from_bn_model(const struct bn_model *bm, bn_tr_model **out) {
    *out = NULL;
    const bn_hparams *hp = &bm->hp;
    if (hp->arch != BN_ARCH_BITNET_B158 || hp->act != BN_ACT_RELU2)
        return bn_fail(BN_ERR_UNSUPPORTED, "fine-tuning needs a BitNet b1.58 model (ReLU^2 FFN "
                       "with sub-norms)");
    if (bm->qhead.bits != 0)
        return bn_fail(BN_ERR_UNSUPPORTED, "fine-tuning needs the tied head unquantized");
    bn_tr_config c = {.vocab = hp->n_vocab, .hidden = hp->n_embd, .ffn = hp->n_ff,
                      .layers = hp->n_layer, .heads = hp->n_head, .kv_heads = hp->n_head_kv,
                      .head_dim = hp->head_dim, .eps = hp->rms_eps, .rope_theta = hp->rope_theta,
                      .max_pos = hp->n_ctx_train, .bos_id = hp->bos_id, .eos_id = hp->eos_id};
    bn_tr_model *m = NULL;
    bn_status st = bn_tr_model_create(&c, true, &m);
    if (st != BN_OK) return st;
    const size_t H = (size_t)c.hidden;
    /* embedding (tied head) */
    float *E = bn_tr_w(m, bn_tr_tensor_embed());
    for (size_t i = 0; i < (size_t)c.vocab * H; i++) {
        if (bm->embd_type == BN_TYPE_F32) E[i] = ((const float *)bm->tok_embd)[i];
        else {
            uint16_t h = ((const uint16_t *)bm->tok_embd)[i];
            E[i] = bm->embd_type == BN_TYPE_BF16 ? bn_bf16_to_f32(h) : bn_f16_to_f32(h);
        }
    }
    memcpy(bn_tr_w(m, bn_tr_tensor_final_norm(m)), bm->output_norm, sizeof(float) * H);
    for (int l = 0; l < c.layers && st == BN_OK; l++) {
        const bn_layer *L = &bm->layers[l];
        if (!L->attn_sub_norm || !L->ffn_sub_norm) {
            st = bn_fail(BN_ERR_UNSUPPORTED, "layer %d has no sub-norms", l);
            break;
        }
        const float *norms[4] = {L->attn_sub_norm, L->ffn_sub_norm, L->attn_norm, L->ffn_norm};
        const int nslot[4] = {BN_TR_ATTN_SUB_NORM, BN_TR_FFN_SUB_NORM, BN_TR_IN_NORM, BN_TR_POST_NORM};
        for (int i = 0; i < 4; i++) {
            int t = bn_tr_tensor_layer(m, l, nslot[i]);
            memcpy(bn_tr_w(m, t), norms[i], sizeof(float) * m->params[t].n);
        }
        const bn_linear *lin[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < 7; k++) {
            int t = bn_tr_tensor_layer(m, l, bn_tr_lora_slot(k));
            const bn_tr_param *p = &m->params[t];
            const bn_linear *li = lin[k];
            if (li->n_out != p->shape[0] || li->n_in != p->shape[1]) {
                st = bn_fail(BN_ERR_SHAPE, "layer %d %s: [%d, %d] vs [%lld, %lld]", l,
                             bn_lora_target_module(k), li->n_out, li->n_in,
                             (long long)p->shape[0], (long long)p->shape[1]);
                break;
            }
            float *w = bn_tr_w(m, t);
            size_t nz = 0;
            for (int o = 0; o < li->n_out; o++) {
                const uint8_t *row = li->w + (size_t)o * bn_t2r_row_bytes(li->n_in);
                for (int i = 0; i < li->n_in; i++) {
                    int v = bn_t2r_get(row, i);
                    w[(size_t)o * li->n_in + i] = (float)v;
                    nz += v != 0;
                }
            }
            const float f = nz ? (float)((double)nz / (double)p->n) : 1.0f;
            const float s = li->scale / f;
            for (size_t i = 0; i < p->n; i++) w[i] *= s;
        }
    }
    if (st != BN_OK) { bn_tr_model_free(m); return st; }
    *out = m;
    return BN_OK;
}
