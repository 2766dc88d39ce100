/* load_hf.c — Hugging Face BitNet folders: config.json + safetensors, in
 * the packed form (U8 + weight_scale) or as float masters (quantized here).
 * Two families: transformers' BitNetForCausalLM (2B4T, relu2) and 1bitLLM's
 * BitnetForCausalLM (bitnet_b1_58-large/3B: model_type "llama", hidden_act
 * silu, fp16 masters quantized online with absmean, tied embeddings, sub-norms
 * named inner_attn_ln / ffn_layernorm). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "model.h"
#include "quant/ternary.h"

typedef struct hf_loader {
    bn_model          *m;
    const bn_st_set   *st;
    const bn_hf_config *cfg;
} hf_loader;

static bn_status find(const hf_loader *ld, const char *name, const bn_st_tensor **out) {
    *out = bn_st_find(ld->st, name);
    if (!*out) return bn_fail(BN_ERR_NOT_FOUND, "tensor %s is missing", name);
    return BN_OK;
}

static bool is_float(bn_type t) { return t == BN_TYPE_F32 || t == BN_TYPE_F16 || t == BN_TYPE_BF16; }

/* Any float tensor -> new f32 buffer of n elements. */
static bn_status to_f32(hf_loader *ld, const bn_st_tensor *t, float **out) {
    if (!is_float(t->dtype))
        return bn_fail(BN_ERR_FORMAT, "tensor %s has dtype %s, expected a float type", t->name, bn_type_name(t->dtype));
    float *dst = bn_alloc_list_add(&ld->m->owned, 64, (size_t)t->n_elems * sizeof(float));
    if (!dst) return BN_ERR_NOMEM;
    if (t->dtype == BN_TYPE_F32) memcpy(dst, t->data, (size_t)t->n_elems * 4);
    else if (t->dtype == BN_TYPE_BF16) bn_bf16_to_f32_row((const uint16_t *)t->data, dst, t->n_elems);
    else bn_f16_to_f32_row((const uint16_t *)t->data, dst, t->n_elems);
    *out = dst;
    return BN_OK;
}

static bn_status load_norm(hf_loader *ld, const char *name, int32_t n, const float **out) {
    const bn_st_tensor *t;
    bn_status st = find(ld, name, &t);
    if (st != BN_OK) return st;
    if (t->n_dims != 1 || t->shape[0] != (uint64_t)n)
        return bn_fail(BN_ERR_SHAPE, "tensor %s has %u dims / %llu elements, expected [%d]", name, t->n_dims,
                       (unsigned long long)t->n_elems, n);
    float *f = NULL;
    st = to_f32(ld, t, &f);
    *out = f;
    return st;
}

static bn_status load_linear(hf_loader *ld, const char *name, int32_t n_in, int32_t n_out, bn_linear *l) {
    const bn_st_tensor *t;
    bn_status st = find(ld, name, &t);
    if (st != BN_OK) return st;
    l->n_in = n_in;
    l->n_out = n_out;
    uint8_t *w = bn_alloc_list_add(&ld->m->owned, 64, bn_t2r_row_bytes(n_in) * (size_t)n_out);
    if (!w) return BN_ERR_NOMEM;
    if (t->dtype == BN_TYPE_U8) {
        /* packed: [n_out/4, n_in] + weight_scale */
        if (t->n_dims != 2 || t->shape[0] * 4 != (uint64_t)n_out || t->shape[1] != (uint64_t)n_in)
            return bn_fail(BN_ERR_SHAPE, "packed tensor %s has shape [%llu, %llu], expected [%d, %d]", name,
                           (unsigned long long)t->shape[0], (unsigned long long)(t->n_dims > 1 ? t->shape[1] : 0),
                           n_out / 4, n_in);
        char sname[256];
        snprintf(sname, sizeof sname, "%s_scale", name);
        const bn_st_tensor *s;
        if ((st = find(ld, sname, &s)) != BN_OK) return st;
        if (s->n_elems != 1 || !is_float(s->dtype))
            return bn_fail(BN_ERR_SHAPE, "tensor %s must hold one float, has %llu of %s", sname,
                           (unsigned long long)s->n_elems, bn_type_name(s->dtype));
        float ws = s->dtype == BN_TYPE_F32 ? *(const float *)s->data
                   : s->dtype == BN_TYPE_BF16 ? bn_bf16_to_f32(*(const uint16_t *)s->data)
                                              : bn_f16_to_f32(*(const uint16_t *)s->data);
        if (!(ws > 0.0f)) return bn_fail(BN_ERR_FORMAT, "tensor %s holds a non-positive scale %g", sname, ws);
        /* A checkpoint means nothing without its linear_class (SPEC §2). */
        l->scale = ld->cfg->linear_class == BN_LINEAR_AUTOBITLINEAR ? ws : 1.0f / ws;
        if ((st = bn_ternary_from_hf_packed(t->data, n_out, n_in, w)) != BN_OK) {
            bn_error_prefix("tensor %s", name);
            return st;
        }
    } else if (is_float(t->dtype)) {
        if (t->n_dims != 2 || t->shape[0] != (uint64_t)n_out || t->shape[1] != (uint64_t)n_in)
            return bn_fail(BN_ERR_SHAPE, "tensor %s has shape [%llu, %llu], expected [%d, %d]", name,
                           (unsigned long long)t->shape[0], (unsigned long long)(t->n_dims > 1 ? t->shape[1] : 0),
                           n_out, n_in);
        float *f = bn_malloc((size_t)t->n_elems * sizeof(float));
        if (!f) return BN_ERR_NOMEM;
        if (t->dtype == BN_TYPE_F32) memcpy(f, t->data, (size_t)t->n_elems * 4);
        else if (t->dtype == BN_TYPE_BF16) bn_bf16_to_f32_row((const uint16_t *)t->data, f, t->n_elems);
        else bn_f16_to_f32_row((const uint16_t *)t->data, f, t->n_elems);
        /* online quantization, SPEC §2: beta = mean|W| in f32 */
        l->scale = bn_absmean_scale(f, t->n_elems);
        bn_ternary_quantize_rows(f, n_out, n_in, l->scale, w);
        free(f);
    } else {
        return bn_fail(BN_ERR_FORMAT, "tensor %s has dtype %s; expected U8 (packed) or a float type", name,
                       bn_type_name(t->dtype));
    }
    l->w = w;
    return BN_OK;
}

static bn_status load_layer(hf_loader *ld, int i) {
    const bn_hparams *hp = &ld->m->hp;
    bn_layer *L = &ld->m->layers[i];
    const int32_t e = hp->n_embd, kv = hp->n_head_kv * hp->head_dim, f = hp->n_ff;
    char n[256];
    bn_status st;
#define NAME(suffix) (snprintf(n, sizeof n, "model.layers.%d.%s", i, suffix), n)
    if ((st = load_norm(ld, NAME("input_layernorm.weight"), e, &L->attn_norm))) return st;
    if ((st = load_linear(ld, NAME("self_attn.q_proj.weight"), e, hp->n_head * hp->head_dim, &L->wq))) return st;
    if ((st = load_linear(ld, NAME("self_attn.k_proj.weight"), e, kv, &L->wk))) return st;
    if ((st = load_linear(ld, NAME("self_attn.v_proj.weight"), e, kv, &L->wv))) return st;
    if ((st = load_linear(ld, NAME("self_attn.o_proj.weight"), hp->n_head * hp->head_dim, e, &L->wo))) return st;
    if ((st = load_norm(ld, NAME("post_attention_layernorm.weight"), e, &L->ffn_norm))) return st;
    if ((st = load_linear(ld, NAME("mlp.gate_proj.weight"), e, f, &L->w_gate))) return st;
    if ((st = load_linear(ld, NAME("mlp.up_proj.weight"), e, f, &L->w_up))) return st;
    if ((st = load_linear(ld, NAME("mlp.down_proj.weight"), f, e, &L->w_down))) return st;
    /* sub-norms: transformers' BitNet names; 1bitLLM's modeling_bitnet.py
     * calls the same RMSNorms (before o_proj, and on silu(gate) * up before
     * down_proj) inner_attn_ln and ffn_layernorm */
    const bool old_names = hp->arch == BN_ARCH_BITNET_1BIT && bn_st_find(ld->st, NAME("self_attn.inner_attn_ln.weight"));
    if ((st = load_norm(ld, NAME(old_names ? "self_attn.inner_attn_ln.weight" : "self_attn.attn_sub_norm.weight"), e,
                        &L->attn_sub_norm)))
        return st;
    if ((st = load_norm(ld, NAME(old_names ? "mlp.ffn_layernorm.weight" : "mlp.ffn_sub_norm.weight"), f, &L->ffn_sub_norm)))
        return st;
#undef NAME
    return BN_OK;
}

bn_status bn_model_load_hf(bn_model *m, const char *dir, const bn_model_params *p) {
    (void)p;
    bn_hf_config cfg;
    bn_status st = bn_hf_config_load(dir, &cfg);
    if (st != BN_OK) return st;
    m->hp = cfg.hp;
    if (!cfg.tied) return bn_fail(BN_ERR_UNSUPPORTED, "%s: untied output heads (tie_word_embeddings false) are not supported", dir);
    if ((st = bn_st_open(dir, &m->st)) != BN_OK) return st;
    hf_loader ld = {m, m->st, &cfg};
    const bn_st_tensor *emb;
    if ((st = find(&ld, "model.embed_tokens.weight", &emb)) != BN_OK) goto fail;
    if (emb->n_dims != 2 || emb->shape[0] != (uint64_t)m->hp.n_vocab || emb->shape[1] != (uint64_t)m->hp.n_embd) {
        st = bn_fail(BN_ERR_SHAPE, "tensor model.embed_tokens.weight has the wrong shape (expected [%d, %d])",
                     m->hp.n_vocab, m->hp.n_embd);
        goto fail;
    }
    if (!is_float(emb->dtype)) {
        st = bn_fail(BN_ERR_FORMAT, "tensor model.embed_tokens.weight has dtype %s", bn_type_name(emb->dtype));
        goto fail;
    }
    m->tok_embd = emb->data; /* zero copy */
    m->embd_type = emb->dtype;
    if ((st = load_norm(&ld, "model.norm.weight", m->hp.n_embd, &m->output_norm)) != BN_OK) goto fail;
    if ((st = bn_model_alloc_layers(m)) != BN_OK) goto fail;
    for (int i = 0; i < m->hp.n_layer; i++)
        if ((st = load_layer(&ld, i)) != BN_OK) goto fail;
    snprintf(m->source, sizeof m->source, "%s", cfg.online ? "hf-masters" : "hf-packed");
    m->tokenizer_path = bn_strdup(dir);
    return BN_OK;
fail:
    bn_error_prefix("%s", dir);
    return st;
}
