/* load_gguf.c — GGUF files from bitnet.cpp (bitnet-b1.58 / bitnet-25, I2_S),
 * llama.cpp (TQ1_0 / TQ2_0, float) and the project's own output. I2_S weights
 * whose rows are whole 128-blocks are used in place (zero copy).
 *
 * Architectures (facts from llama.cpp d7da8dc8 llm_build_bitnet and
 * bitnet.cpp's fork): "bitnet-b1.58" and its older name "bitnet-25" are
 * BitNet b1.58 2B4T (ReLU^2 FFN, sub-norms). "bitnet" is the 1bitLLM family
 * (bitnet_b1_58-large/3B): the same block with a SiLU-gated FFN, plus
 * optional per-linear "<linear>.scale" output multipliers; llama.cpp's
 * converter also writes rope.scaling.type "linear" with factor 1 for it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "load_gguf_tq.h"
#include "model.h"
#include "quant/ternary.h"

typedef struct gguf_loader {
    bn_model       *m;
    const bn_gguf  *g;
    bool            zero_copy;
    bool            is_1bit; /* arch "bitnet": SiLU FFN, .scale tensors, sub-norms optional */
} gguf_loader;

static bn_status find(const gguf_loader *ld, const char *name, const bn_gguf_tensor **out) {
    *out = bn_gguf_find_tensor(ld->g, name);
    if (!*out) return bn_fail(BN_ERR_NOT_FOUND, "tensor %s is missing", name);
    return BN_OK;
}

static bn_status load_norm(gguf_loader *ld, const char *name, int32_t n, const float **out) {
    const bn_gguf_tensor *t;
    bn_status st = find(ld, name, &t);
    if (st != BN_OK) return st;
    if (t->ne[0] != (uint64_t)n || t->ne[1] * t->ne[2] * t->ne[3] != 1)
        return bn_fail(BN_ERR_SHAPE, "tensor %s has %llu elements, expected [%d]", name,
                       (unsigned long long)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]), n);
    if (t->type == BN_TYPE_F32) {
        *out = (const float *)t->data; /* zero copy */
        return BN_OK;
    }
    if (t->type != BN_TYPE_F16 && t->type != BN_TYPE_BF16)
        return bn_fail(BN_ERR_FORMAT, "tensor %s has type %s, expected F32", name, bn_type_name((bn_type)t->type));
    float *f = bn_alloc_list_add(&ld->m->owned, 64, (size_t)n * 4);
    if (!f) return BN_ERR_NOMEM;
    if (t->type == BN_TYPE_F16) bn_f16_to_f32_row((const uint16_t *)t->data, f, (size_t)n);
    else bn_bf16_to_f32_row((const uint16_t *)t->data, f, (size_t)n);
    *out = f;
    return BN_OK;
}

/* Float linears that are already ternary (every nonzero |w| the same value
 * b, as llama.cpp's converter writes 1bitLLM weights and as an F16 copy of a
 * ternary model holds them) mean exactly codes * b: returns b. Returns 0 for
 * anything else (master weights, quantized at load with absmean). */
static float ternary_magnitude(const float *f, size_t n) {
    float b = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float a = fabsf(f[i]);
        if (a == 0.0f) continue;
        if (b == 0.0f) b = a;
        else if (a != b) return 0.0f;
    }
    return b > 0.0f && b <= 1e30f ? b : 0.0f;
}

static bn_status load_linear_codes(gguf_loader *ld, const char *name, int32_t n_in, int32_t n_out, bn_linear *l);

/* The linear, then llama.cpp's optional output multiplier "<name>.scale"
 * folded into its scale: ggml computes (W x) * s, we compute
 * (q . W) * (beta * s) * x_scale, the same product up to f32 rounding. */
static bn_status load_linear(gguf_loader *ld, const char *name, int32_t n_in, int32_t n_out, bn_linear *l) {
    float s;
    bool present;
    bn_status st = bn_gguf_output_scale(ld->g, name, ld->is_1bit, &s, &present);
    if (st != BN_OK) return st;
    if ((st = load_linear_codes(ld, name, n_in, n_out, l)) != BN_OK) return st;
    if (present) {
        const float folded = l->scale * s;
        if (!(folded > 0.0f) || folded > 1e30f || folded < 1e-30f)
            return bn_fail(BN_ERR_FORMAT, "tensor %s: scale %g times its .scale %g is out of range", name,
                           (double)l->scale, (double)s);
        l->scale = folded;
    }
    return BN_OK;
}

static bn_status load_linear_codes(gguf_loader *ld, const char *name, int32_t n_in, int32_t n_out, bn_linear *l) {
    const bn_gguf_tensor *t;
    bn_status st = find(ld, name, &t);
    if (st != BN_OK) return st;
    if (t->ne[0] != (uint64_t)n_in || t->ne[1] != (uint64_t)n_out || t->ne[2] != 1 || t->ne[3] != 1)
        return bn_fail(BN_ERR_SHAPE, "tensor %s has shape [%llu, %llu] (GGUF order), expected [%d, %d]", name,
                       (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], n_in, n_out);
    l->n_in = n_in;
    l->n_out = n_out;
    const size_t n = (size_t)n_in * (size_t)n_out;
    if (t->type == BN_TYPE_I2_S) {
        if (t->nbytes < n / 4 + 4)
            return bn_fail(BN_ERR_FORMAT, "I2_S tensor %s holds %llu bytes, needs %zu", name,
                           (unsigned long long)t->nbytes, n / 4 + 32);
        float scale;
        memcpy(&scale, t->data + n / 4, sizeof scale);
        if (!(scale > 0.0f) || scale > 1e30f)
            return bn_fail(BN_ERR_FORMAT, "I2_S tensor %s has an invalid scale %g", name, scale);
        l->scale = scale;
        if (ld->zero_copy && n_in % BN_QK == 0) {
            l->w = t->data;
            return BN_OK;
        }
        uint8_t *w = bn_alloc_list_add(&ld->m->owned, 64, bn_t2r_row_bytes(n_in) * (size_t)n_out);
        if (!w) return BN_ERR_NOMEM;
        bn_ternary_from_i2s(t->data, n_out, n_in, w);
        l->w = w;
        return BN_OK;
    }
    if (bn_gguf_is_tq(t->type)) { /* llama.cpp's TQ1_0 / TQ2_0, decoded (load_gguf_tq.c) */
        uint8_t *w = bn_alloc_list_add(&ld->m->owned, 64, bn_t2r_row_bytes(n_in) * (size_t)n_out);
        if (!w) return BN_ERR_NOMEM;
        if ((st = bn_gguf_tq_to_t2r(t, name, n_in, n_out, w, &l->scale)) != BN_OK) return st;
        l->w = w;
        return BN_OK;
    }
    if (t->type == BN_TYPE_F32 || t->type == BN_TYPE_F16 || t->type == BN_TYPE_BF16) {
        float *f = bn_malloc(n * sizeof(float));
        if (!f) return BN_ERR_NOMEM;
        if (t->type == BN_TYPE_F32) memcpy(f, t->data, n * 4);
        else if (t->type == BN_TYPE_F16) bn_f16_to_f32_row((const uint16_t *)t->data, f, n);
        else bn_bf16_to_f32_row((const uint16_t *)t->data, f, n);
        uint8_t *w = bn_alloc_list_add(&ld->m->owned, 64, bn_t2r_row_bytes(n_in) * (size_t)n_out);
        if (!w) { free(f); return BN_ERR_NOMEM; }
        l->scale = ternary_magnitude(f, n);
        if (l->scale == 0.0f) l->scale = bn_absmean_scale(f, n); /* masters: online quantization, SPEC §2 */
        bn_ternary_quantize_rows(f, n_out, n_in, l->scale, w);
        free(f);
        l->w = w;
        return BN_OK;
    }
    return bn_fail(BN_ERR_UNSUPPORTED, "tensor %s has type %s; ternary linears must be I2_S, TQ1_0, TQ2_0 (or float masters)", name,
                   bn_type_name((bn_type)t->type));
}

static bn_status load_layer(gguf_loader *ld, int i) {
    const bn_hparams *hp = &ld->m->hp;
    bn_layer *L = &ld->m->layers[i];
    const int32_t e = hp->n_embd, kv = hp->n_head_kv * hp->head_dim, f = hp->n_ff, qd = hp->n_head * hp->head_dim;
    char n[128];
    bn_status st;
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%d.%s", i, suffix), n)
    if ((st = load_norm(ld, NAME("attn_norm.weight"), e, &L->attn_norm))) return st;
    if ((st = load_linear(ld, NAME("attn_q.weight"), e, qd, &L->wq))) return st;
    if ((st = load_linear(ld, NAME("attn_k.weight"), e, kv, &L->wk))) return st;
    if ((st = load_linear(ld, NAME("attn_v.weight"), e, kv, &L->wv))) return st;
    if ((st = load_linear(ld, NAME("attn_output.weight"), qd, e, &L->wo))) return st;
    if ((st = load_norm(ld, NAME("ffn_norm.weight"), e, &L->ffn_norm))) return st;
    if ((st = load_linear(ld, NAME("ffn_gate.weight"), e, f, &L->w_gate))) return st;
    if ((st = load_linear(ld, NAME("ffn_up.weight"), e, f, &L->w_up))) return st;
    if ((st = load_linear(ld, NAME("ffn_down.weight"), f, e, &L->w_down))) return st;
    /* sub-norms: required for 2B4T; for "bitnet" (llama.cpp requires them
     * too) a file without them runs without (forward.c skips a NULL norm) */
    if ((!ld->is_1bit || bn_gguf_find_tensor(ld->g, NAME("attn_sub_norm.weight"))) &&
        (st = load_norm(ld, NAME("attn_sub_norm.weight"), e, &L->attn_sub_norm)))
        return st;
    if ((!ld->is_1bit || bn_gguf_find_tensor(ld->g, NAME("ffn_sub_norm.weight"))) &&
        (st = load_norm(ld, NAME("ffn_sub_norm.weight"), f, &L->ffn_sub_norm)))
        return st;
#undef NAME
    return BN_OK;
}

static bool get_i32(const bn_gguf *g, const char *arch, const char *key, int32_t *out) {
    char k[128];
    uint32_t v;
    snprintf(k, sizeof k, "%s.%s", arch, key);
    if (!bn_gguf_get_u32(g, k, &v) || v > INT32_MAX) return false;
    *out = (int32_t)v;
    return true;
}

static bool get_f32(const bn_gguf *g, const char *arch, const char *key, float *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return bn_gguf_get_f32(g, k, out);
}

/* RoPE scaling: llama.cpp reads <arch>.rope.scaling.type ("none", "linear",
 * "yarn", "longrope"; absent = none) and the factor from
 * <arch>.rope.scaling.factor or the older <arch>.rope.scale_linear (absent
 * or 0 = 1), then scales positions by 1/factor. Only the identity is
 * implemented: none, or linear with factor 1 (what llama.cpp's 1bitLLM
 * converter writes). */
static bn_status check_rope_scaling(const bn_gguf *g, const char *arch) {
    char k[128], type[32] = "none";
    snprintf(k, sizeof k, "%s.rope.scaling.type", arch);
    const bn_gguf_value *v = bn_gguf_find(g, k);
    if (v && !bn_gguf_get_str(g, k, type, sizeof type))
        return bn_fail(BN_ERR_FORMAT, "metadata key %s is not a string", k);
    float factor = 0.0f;
    if (!get_f32(g, arch, "rope.scaling.factor", &factor)) get_f32(g, arch, "rope.scale_linear", &factor);
    if (strcmp(type, "none") != 0 && strcmp(type, "linear") != 0)
        return bn_fail(BN_ERR_UNSUPPORTED, "RoPE scaling type '%s' is not supported (none, or linear with factor 1)",
                       type);
    if (factor != 0.0f && factor != 1.0f)
        return bn_fail(BN_ERR_UNSUPPORTED, "RoPE scaling (%s) with factor %g is not supported (only factor 1)", type,
                       (double)factor);
    return BN_OK;
}

static bn_status read_hparams(gguf_loader *ld, const char *arch) {
    bn_hparams *hp = &ld->m->hp;
    const bn_gguf *g = ld->g;
    static const char *const keys[] = {"embedding_length", "feed_forward_length", "block_count", "attention.head_count"};
    int32_t *dst[] = {&hp->n_embd, &hp->n_ff, &hp->n_layer, &hp->n_head};
    for (int i = 0; i < 4; i++)
        if (!get_i32(g, arch, keys[i], dst[i]))
            return bn_fail(BN_ERR_FORMAT, "metadata key %s.%s is missing or not an integer", arch, keys[i]);
    if (!get_i32(g, arch, "attention.head_count_kv", &hp->n_head_kv)) hp->n_head_kv = hp->n_head;
    if (!get_i32(g, arch, "context_length", &hp->n_ctx_train)) hp->n_ctx_train = 2048;
    if (!get_f32(g, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps)) hp->rms_eps = 1e-5f;
    if (!get_f32(g, arch, "rope.freq_base", &hp->rope_theta)) hp->rope_theta = 10000.0f;
    hp->head_dim = hp->n_head > 0 ? hp->n_embd / hp->n_head : 0;
    int32_t rope_dim;
    if (get_i32(g, arch, "rope.dimension_count", &rope_dim) && rope_dim != hp->head_dim)
        return bn_fail(BN_ERR_UNSUPPORTED, "partial RoPE (rope.dimension_count %d != head_dim %d) is not supported",
                       rope_dim, hp->head_dim);
    const bn_gguf_tensor *emb = bn_gguf_find_tensor(g, "token_embd.weight");
    if (!get_i32(g, arch, "vocab_size", &hp->n_vocab)) hp->n_vocab = emb ? (int32_t)emb->ne[1] : 0;
    uint32_t v;
    hp->bos_id = bn_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &v) ? (int32_t)v : -1;
    hp->eos_id = bn_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &v) ? (int32_t)v : -1;
    hp->arch = ld->is_1bit ? BN_ARCH_BITNET_1BIT : BN_ARCH_BITNET_B158;
    hp->act = ld->is_1bit ? BN_ACT_SILU : BN_ACT_RELU2;
    bn_status st = check_rope_scaling(g, arch);
    return st != BN_OK ? st : bn_hparams_validate(hp);
}

bn_status bn_model_load_gguf(bn_model *m, const char *path, const bn_model_params *p) {
    bn_status st = bn_gguf_open_ex(path, p->use_mmap, &m->gguf);
    if (st != BN_OK) return st;
    gguf_loader ld = {m, m->gguf, true, false}; /* weights used in place, mapped or read */
    char arch[64];
    if (!bn_gguf_get_str(m->gguf, "general.architecture", arch, sizeof arch)) {
        st = bn_fail(BN_ERR_FORMAT, "metadata key general.architecture is missing");
        goto fail;
    }
    if (strcmp(arch, "bitnet-b1.58") != 0 && strcmp(arch, "bitnet-25") != 0 && strcmp(arch, "bitnet") != 0) {
        st = bn_fail(BN_ERR_UNSUPPORTED, "architecture '%s' is not supported (bitnet-b1.58, bitnet-25 or bitnet)", arch);
        goto fail;
    }
    ld.is_1bit = strcmp(arch, "bitnet") == 0;
    if ((st = read_hparams(&ld, arch)) != BN_OK) goto fail;
    const bn_gguf_tensor *emb;
    if ((st = find(&ld, "token_embd.weight", &emb)) != BN_OK) goto fail;
    if (emb->ne[0] != (uint64_t)m->hp.n_embd || emb->ne[1] != (uint64_t)m->hp.n_vocab) {
        st = bn_fail(BN_ERR_SHAPE, "tensor token_embd.weight has shape [%llu, %llu], expected [%d, %d]",
                     (unsigned long long)emb->ne[0], (unsigned long long)emb->ne[1], m->hp.n_embd, m->hp.n_vocab);
        goto fail;
    }
    if (bn_gguf_is_dequant(emb->type)) { /* llama.cpp's Q6_K / Q8_0 head: exact f32 values */
        const uint64_t ne = (uint64_t)m->hp.n_embd * (uint64_t)m->hp.n_vocab;
        float *f = bn_alloc_list_add(&m->owned, 64, (size_t)ne * sizeof(float));
        if (!f) { st = BN_ERR_NOMEM; goto fail; }
        if ((st = bn_gguf_dequant_f32(emb, "token_embd.weight", ne, f)) != BN_OK) goto fail;
        m->tok_embd = f;
        m->embd_type = BN_TYPE_F32;
    } else if (emb->type != BN_TYPE_F32 && emb->type != BN_TYPE_F16 && emb->type != BN_TYPE_BF16) {
        st = bn_fail(BN_ERR_UNSUPPORTED, "tensor token_embd.weight has type %s (F32, F16, BF16, Q8_0 or Q6_K supported)",
                     bn_type_name((bn_type)emb->type));
        goto fail;
    } else {
        m->tok_embd = emb->data;
        m->embd_type = (bn_type)emb->type;
    }
    if (bn_gguf_find_tensor(m->gguf, "output.weight")) {
        st = bn_fail(BN_ERR_UNSUPPORTED, "untied output heads (output.weight) are not supported");
        goto fail;
    }
    if ((st = load_norm(&ld, "output_norm.weight", m->hp.n_embd, &m->output_norm)) != BN_OK) goto fail;
    if ((st = bn_model_alloc_layers(m)) != BN_OK) goto fail;
    for (int i = 0; i < m->hp.n_layer; i++)
        if ((st = load_layer(&ld, i)) != BN_OK) goto fail;
    snprintf(m->source, sizeof m->source, "gguf");
    if (bn_gguf_find(m->gguf, "tokenizer.ggml.tokens")) m->tokenizer_path = bn_strdup(path);
    return BN_OK;
fail:
    bn_error_prefix("%s", path);
    return st;
}
