/* save_gguf.c — write a model as GGUF the way bitnet.cpp does: architecture
 * bitnet-b1.58, I2_S linears (n/4 bytes + 32-byte tail holding the scale),
 * F16 token embeddings, F32 norms, no output.weight (tied). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "model.h"
#include "quant/ternary.h"
#include "save.h"

#define ARCH "bitnet-b1.58"

static bn_status add_linear(bn_gguf_writer *w, bn_alloc_list *tmp, const char *name, const bn_linear *l) {
    const size_t n = (size_t)l->n_in * (size_t)l->n_out;
    if (n % BN_QK) return bn_fail(BN_ERR_UNSUPPORTED, "tensor %s: I2_S needs a multiple of 128 elements", name);
    uint8_t *buf = bn_alloc_list_add(tmp, 64, n / 4 + 32);
    if (!buf) return BN_ERR_NOMEM;
    bn_ternary_to_i2s(l->w, l->n_out, l->n_in, l->scale, buf);
    const uint64_t ne[2] = {(uint64_t)l->n_in, (uint64_t)l->n_out};
    return bn_gguf_writer_add_tensor(w, name, BN_TYPE_I2_S, 2, ne, buf, n / 4 + 32);
}

static bn_status add_norm(bn_gguf_writer *w, const char *name, const float *v, int32_t n) {
    const uint64_t ne[1] = {(uint64_t)n};
    return bn_gguf_writer_add_tensor(w, name, BN_TYPE_F32, 1, ne, v, (uint64_t)n * 4);
}

static bn_status add_hparams(bn_gguf_writer *w, const bn_hparams *hp) {
    bn_status st = bn_gguf_writer_add_str(w, "general.architecture", ARCH);
    if (!st) st = bn_gguf_writer_add_str(w, "general.name", "bitnet");
    static const char *const keys[] = {"vocab_size", "context_length", "embedding_length", "block_count",
                                       "feed_forward_length", "rope.dimension_count", "attention.head_count",
                                       "attention.head_count_kv"};
    const int32_t vals[] = {hp->n_vocab, hp->n_ctx_train, hp->n_embd, hp->n_layer, hp->n_ff, hp->head_dim,
                            hp->n_head, hp->n_head_kv};
    char k[96];
    for (int i = 0; !st && i < 8; i++) {
        snprintf(k, sizeof k, ARCH ".%s", keys[i]);
        st = bn_gguf_writer_add_u32(w, k, (uint32_t)vals[i]);
    }
    if (!st) st = bn_gguf_writer_add_f32(w, ARCH ".attention.layer_norm_rms_epsilon", hp->rms_eps);
    if (!st) st = bn_gguf_writer_add_f32(w, ARCH ".rope.freq_base", hp->rope_theta);
    if (!st) st = bn_gguf_writer_add_u32(w, "general.file_type", 40); /* bitnet.cpp's I2_S ftype */
    if (!st) st = bn_gguf_writer_add_u32(w, "general.quantization_version", 2);
    return st;
}

bn_status bn_model_save_gguf_ex(const bn_model *m, const char *path, const bn_save_options *opt) {
    bn_gguf_writer *w = NULL;
    bn_alloc_list tmp = {0};
    bn_status st = bn_gguf_writer_create(&w);
    if (st) return st;
    const bn_hparams *hp = &m->hp;
    if (hp->arch != BN_ARCH_BITNET_B158) {
        st = bn_fail(BN_ERR_UNSUPPORTED, "only bitnet-b1.58 models can be written as GGUF");
        goto done;
    }
    if ((st = add_hparams(w, hp))) goto done;
    if (hp->bos_id >= 0 && (st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)hp->bos_id))) goto done;
    if (hp->eos_id >= 0 && (st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)hp->eos_id))) goto done;
    if (opt && opt->add_metadata && (st = opt->add_metadata(w, opt->user))) goto done;

    /* token embeddings: F16 unless asked otherwise */
    const bn_type et = opt && opt->set_embd_type ? opt->embd_type : BN_TYPE_F16;
    const size_t n_emb = (size_t)hp->n_vocab * (size_t)hp->n_embd;
    const void *emb = m->tok_embd;
    if (et != m->embd_type) {
        void *conv = bn_alloc_list_add(&tmp, 64, n_emb * (et == BN_TYPE_F32 ? 4 : 2));
        if (!conv) { st = BN_ERR_NOMEM; goto done; }
        float *row = bn_malloc((size_t)hp->n_embd * 4);
        if (!row) { st = BN_ERR_NOMEM; goto done; }
        for (int v = 0; v < hp->n_vocab; v++) {
            bn_ref_embed(m->tok_embd, m->embd_type, hp->n_embd, v, row);
            for (int i = 0; i < hp->n_embd; i++) {
                const size_t j = (size_t)v * (size_t)hp->n_embd + (size_t)i;
                if (et == BN_TYPE_F32) ((float *)conv)[j] = row[i];
                else if (et == BN_TYPE_F16) ((uint16_t *)conv)[j] = bn_f32_to_f16(row[i]);
                else ((uint16_t *)conv)[j] = bn_f32_to_bf16(row[i]);
            }
        }
        free(row);
        emb = conv;
    }
    const uint64_t ne_emb[2] = {(uint64_t)hp->n_embd, (uint64_t)hp->n_vocab};
    if ((st = bn_gguf_writer_add_tensor(w, "token_embd.weight", et, 2, ne_emb, emb,
                                        n_emb * (et == BN_TYPE_F32 ? 4 : 2)))) goto done;
    char n[96];
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), n)
    for (int l = 0; l < hp->n_layer && !st; l++) {
        const bn_layer *L = &m->layers[l];
        if (!st) st = add_norm(w, NAME("attn_norm.weight"), L->attn_norm, hp->n_embd);
        if (!st) st = add_linear(w, &tmp, NAME("attn_q.weight"), &L->wq);
        if (!st) st = add_linear(w, &tmp, NAME("attn_k.weight"), &L->wk);
        if (!st) st = add_linear(w, &tmp, NAME("attn_v.weight"), &L->wv);
        if (!st) st = add_norm(w, NAME("attn_sub_norm.weight"), L->attn_sub_norm, hp->n_embd);
        if (!st) st = add_linear(w, &tmp, NAME("attn_output.weight"), &L->wo);
        if (!st) st = add_norm(w, NAME("ffn_norm.weight"), L->ffn_norm, hp->n_embd);
        if (!st) st = add_linear(w, &tmp, NAME("ffn_gate.weight"), &L->w_gate);
        if (!st) st = add_linear(w, &tmp, NAME("ffn_up.weight"), &L->w_up);
        if (!st) st = add_norm(w, NAME("ffn_sub_norm.weight"), L->ffn_sub_norm, hp->n_ff);
        if (!st) st = add_linear(w, &tmp, NAME("ffn_down.weight"), &L->w_down);
    }
#undef NAME
    if (!st) st = add_norm(w, "output_norm.weight", m->output_norm, hp->n_embd);
    if (!st) st = bn_gguf_writer_write(w, path);
done:
    bn_gguf_writer_free(w);
    bn_alloc_list_free(&tmp);
    if (st) bn_error_prefix("writing %s", path);
    return st;
}

bn_status bn_model_save_gguf(const bn_model *m, const char *path) { return bn_model_save_gguf_ex(m, path, NULL); }
