/* save_quant.c — `bitnet quantize`'s writer: a loaded model as GGUF with its
 * linears in I2_S (bitnet.cpp), TQ2_0 or TQ1_0 (ggml) and the tied head in
 * F16, BF16, F32, Q8_0 or Q6_K.
 *
 * A ternary linear has one scale (beta). I2_S keeps it as f32; TQ blocks hold
 * it as f16 in every block (d), so TQ files carry f16(beta). Blocks whose
 * codes are all zero get d = 0, as ggml's absmax quantizer writes them, which
 * makes our TQ tensors byte-identical to llama-quantize's for the same
 * weights. A head already stored in the requested type is copied verbatim. */
#include "save_quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/ternary.h"
#include "quant/tq_encode.h"

/* The name must say which FFN the weights were trained with: llama.cpp and
 * bitnet.cpp (and our loader) run "bitnet" as the 1bitLLM SiLU block and
 * "bitnet-b1.58" as 2B4T's ReLU^2 block, whatever the linear type. */
const char *bn_quant_default_arch(const bn_model *m) {
    return m->hp.act == BN_ACT_SILU ? "bitnet" : "bitnet-b1.58";
}

bn_type bn_quant_source_head_type(const bn_model *m) {
    const bn_gguf_tensor *t = m->gguf ? bn_gguf_find_tensor(m->gguf, "token_embd.weight") : NULL;
    return t ? (bn_type)t->type : m->embd_type;
}

typedef struct qwriter {
    const bn_model         *m;
    const bn_quant_options *o;
    bn_quant_stats         *st;
    bn_gguf_writer         *w;
    bn_alloc_list           tmp; /* encoded tensors, alive until the file is written */
    int                     n_threads, done, total;
} qwriter;

static void progress(qwriter *q, const char *name) {
    q->done++;
    if (q->o->progress) q->o->progress(q->done, q->total, name, q->o->progress_user);
}

/* ------------------------------------------------------------ linears */

static bn_status add_linear(qwriter *q, const char *name, const bn_linear *l) {
    const bn_type t = q->o->linear_type;
    const int n_in = l->n_in, n_out = l->n_out;
    const size_t n = (size_t)n_in * (size_t)n_out, rb = bn_t2r_row_bytes(n_in);
    const uint64_t ne[2] = {(uint64_t)n_in, (uint64_t)n_out};
    q->st->n_linears++;
    if (t == BN_TYPE_I2_S) {
        if (n % BN_QK) return bn_fail(BN_ERR_UNSUPPORTED, "tensor %s: I2_S needs a multiple of 128 elements", name);
        uint8_t *buf = bn_alloc_list_add(&q->tmp, 64, n / 4 + 32);
        if (!buf) return BN_ERR_NOMEM;
        bn_ternary_to_i2s(l->w, n_out, n_in, l->scale, buf);
        return bn_gguf_writer_add_tensor(q->w, name, BN_TYPE_I2_S, 2, ne, buf, n / 4 + 32);
    }
    const bool tq2 = t == BN_TYPE_TQ2_0;
    if (n_in % BN_QK_K)
        return bn_fail(BN_ERR_UNSUPPORTED, "tensor %s: %s needs rows of a multiple of %d elements, not %d", name,
                       tq2 ? "TQ2_0" : "TQ1_0", BN_QK_K, n_in);
    const uint16_t d16 = bn_f32_to_f16(l->scale);
    const float d = bn_f16_to_f32(d16);
    if (!(d > 0.0f) || isinf(d))
        return bn_fail(BN_ERR_UNSUPPORTED, "tensor %s: scale %g has no positive finite f16 value (TQ blocks store f16)",
                       name, (double)l->scale);
    if (d != l->scale) {
        q->st->n_scale_rounded++;
        const double rel = fabs((double)d - l->scale) / l->scale;
        if (rel > q->st->max_scale_rel_err) q->st->max_scale_rel_err = rel;
    }
    const size_t ob = (size_t)(n_in / BN_QK_K) * (tq2 ? BN_TQ2_0_BYTES : BN_TQ1_0_BYTES);
    uint8_t *buf = bn_alloc_list_add(&q->tmp, 64, ob * (size_t)n_out);
    if (!buf) return BN_ERR_NOMEM;
#pragma omp parallel for num_threads(q->n_threads) schedule(static)
    for (int r = 0; r < n_out; r++) {
        if (tq2) bn_tq2_0_encode_row(l->w + (size_t)r * rb, n_in, d16, buf + (size_t)r * ob);
        else bn_tq1_0_encode_row(l->w + (size_t)r * rb, n_in, d16, buf + (size_t)r * ob);
    }
    return bn_gguf_writer_add_tensor(q->w, name, (uint32_t)t, 2, ne, buf, ob * (size_t)n_out);
}

static bn_status add_norm(qwriter *q, const char *name, const float *v, int32_t n) {
    const uint64_t ne[1] = {(uint64_t)n};
    return bn_gguf_writer_add_tensor(q->w, name, BN_TYPE_F32, 1, ne, v, (uint64_t)n * 4);
}

/* ------------------------------------------------------------ head */

static size_t head_row_bytes(bn_type t, int n_embd) {
    switch (t) {
    case BN_TYPE_F32: return (size_t)n_embd * 4;
    case BN_TYPE_F16:
    case BN_TYPE_BF16: return (size_t)n_embd * 2;
    case BN_TYPE_Q8_0: return (size_t)(n_embd / BN_Q8_0_BLOCK) * BN_Q8_0_BYTES;
    case BN_TYPE_Q6_K: return (size_t)(n_embd / BN_QK_K) * BN_Q6_K_BYTES;
    default: return 0;
    }
}

static void encode_head_row(bn_type t, const float *x, int n, uint8_t *dst) {
    switch (t) {
    case BN_TYPE_F32: memcpy(dst, x, (size_t)n * 4); break;
    case BN_TYPE_F16:
        for (int i = 0; i < n; i++) {
            const uint16_t h = bn_f32_to_f16(x[i]);
            memcpy(dst + 2 * i, &h, 2);
        }
        break;
    case BN_TYPE_BF16:
        for (int i = 0; i < n; i++) {
            const uint16_t h = bn_f32_to_bf16(x[i]);
            memcpy(dst + 2 * i, &h, 2);
        }
        break;
    case BN_TYPE_Q8_0: bn_q8_0_quantize_row(x, n, dst); break;
    case BN_TYPE_Q6_K: bn_q6_k_quantize_row(x, n, dst); break;
    default: break;
    }
}

static bn_status add_head(qwriter *q) {
    const bn_hparams *hp = &q->m->hp;
    const bn_type ht = q->o->head_type;
    const int E = hp->n_embd, V = hp->n_vocab;
    const uint64_t ne[2] = {(uint64_t)E, (uint64_t)V};
    const size_t rb = head_row_bytes(ht, E);
    if (!rb) return bn_fail(BN_ERR_INVALID_ARG, "head type %s is not one of F16, BF16, F32, Q8_0, Q6_K", bn_type_name(ht));
    if ((ht == BN_TYPE_Q8_0 && E % BN_Q8_0_BLOCK) || (ht == BN_TYPE_Q6_K && E % BN_QK_K))
        return bn_fail(BN_ERR_UNSUPPORTED, "head type %s needs n_embd to be a multiple of %d, not %d", bn_type_name(ht),
                       ht == BN_TYPE_Q8_0 ? BN_Q8_0_BLOCK : BN_QK_K, E);
    if (!q->m->tok_embd) return bn_fail(BN_ERR_UNSUPPORTED, "the model has no token embedding table to write as the head");
    const size_t bytes = rb * (size_t)V;
    q->st->head_src_type = bn_quant_source_head_type(q->m);
    const bn_gguf_tensor *src = q->m->gguf ? bn_gguf_find_tensor(q->m->gguf, "token_embd.weight") : NULL;
    if (src && src->type == (uint32_t)ht && src->nbytes >= bytes) { /* stored as asked: copy, bit for bit */
        q->st->head_copied = true;
        return bn_gguf_writer_add_tensor(q->w, "token_embd.weight", (uint32_t)ht, 2, ne, src->data, bytes);
    }
    uint8_t *buf = bn_alloc_list_add(&q->tmp, 64, bytes);
    if (!buf) return BN_ERR_NOMEM;
    int nomem = 0;
    enum { CHUNKS = 20 }; /* Q6_K of a 128k x 2560 head takes a while: report as it goes */
    for (int ch = 0; ch < CHUNKS && !nomem; ch++) {
        const int lo = (int)((int64_t)V * ch / CHUNKS), hi = (int)((int64_t)V * (ch + 1) / CHUNKS);
#pragma omp parallel num_threads(q->n_threads)
        {
            float *row = malloc((size_t)E * sizeof(float));
            if (!row) {
#pragma omp atomic write
                nomem = 1;
            }
#pragma omp for schedule(dynamic, 64)
            for (int v = lo; v < hi; v++) {
                if (!row) continue;
                bn_ref_embed(q->m->tok_embd, q->m->embd_type, E, v, row);
                encode_head_row(ht, row, E, buf + (size_t)v * rb);
            }
            free(row);
        }
        if (q->o->progress && ch + 1 < CHUNKS) {
            char label[48];
            snprintf(label, sizeof label, "token_embd.weight %d%%", (ch + 1) * 100 / CHUNKS);
            q->o->progress(q->done, q->total, label, q->o->progress_user);
        }
    }
    if (nomem) return bn_fail(BN_ERR_NOMEM, "out of memory encoding the head");
    return bn_gguf_writer_add_tensor(q->w, "token_embd.weight", (uint32_t)ht, 2, ne, buf, bytes);
}

/* ------------------------------------------------------------ metadata */

static bool has_prefix(const bn_gguf_str *k, const char *p) {
    const size_t n = strlen(p);
    return k->len >= n && memcmp(k->data, p, n) == 0;
}

static bool is_key(const bn_gguf_str *k, const char *s) { return k->len == strlen(s) && !memcmp(k->data, s, k->len); }

/* The source GGUF's keys, minus those this writer owns. */
static bn_status copy_source_kv(qwriter *q, const char *arch, bool *has_name) {
    const bn_gguf *g = q->m->gguf;
    char src_arch[64] = "", pa[80], pb[80];
    bn_gguf_get_str(g, "general.architecture", src_arch, sizeof src_arch);
    snprintf(pa, sizeof pa, "%s.", src_arch);
    snprintf(pb, sizeof pb, "%s.", arch);
    static const char *const owned[] = {"general.architecture", "general.file_type", "general.quantization_version",
                                        "general.alignment"};
    for (uint64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        const bn_gguf_kv *kv = bn_gguf_kv_at(g, i);
        bool skip = (src_arch[0] && has_prefix(&kv->key, pa)) || has_prefix(&kv->key, pb) ||
                    (q->o->replace_tokenizer && has_prefix(&kv->key, "tokenizer."));
        for (size_t j = 0; j < sizeof owned / sizeof owned[0]; j++) skip |= is_key(&kv->key, owned[j]);
        if (skip) continue;
        char key[256];
        if (kv->key.len >= sizeof key) continue; /* no such key is ours to carry */
        memcpy(key, kv->key.data, (size_t)kv->key.len);
        key[kv->key.len] = '\0';
        if (!strcmp(key, "general.name")) *has_name = true;
        bn_status st = bn_gguf_writer_add_kv(q->w, key, &kv->value);
        if (st) return st;
    }
    return BN_OK;
}

static uint32_t file_type(bn_type t) {
    /* llama.cpp's LLAMA_FTYPE_MOSTLY_TQ1_0 = 36, TQ2_0 = 37; bitnet.cpp's I2_S = 40 */
    return t == BN_TYPE_TQ1_0 ? 36 : t == BN_TYPE_TQ2_0 ? 37 : 40;
}

static bn_status add_metadata(qwriter *q, const char *arch) {
    const bn_hparams *hp = &q->m->hp;
    bn_status st = bn_gguf_writer_add_str(q->w, "general.architecture", arch);
    bool has_name = false;
    if (!st && q->m->gguf) st = copy_source_kv(q, arch, &has_name);
    if (!st && !has_name) st = bn_gguf_writer_add_str(q->w, "general.name", "bitnet");
    static const char *const keys[] = {"vocab_size", "context_length", "embedding_length", "block_count",
                                       "feed_forward_length", "rope.dimension_count", "attention.head_count",
                                       "attention.head_count_kv"};
    const int32_t vals[] = {hp->n_vocab, hp->n_ctx_train, hp->n_embd, hp->n_layer, hp->n_ff, hp->head_dim,
                            hp->n_head, hp->n_head_kv};
    char k[128];
    for (int i = 0; !st && i < 8; i++) {
        snprintf(k, sizeof k, "%s.%s", arch, keys[i]);
        st = bn_gguf_writer_add_u32(q->w, k, (uint32_t)vals[i]);
    }
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
    if (!st) st = bn_gguf_writer_add_f32(q->w, k, hp->rms_eps);
    snprintf(k, sizeof k, "%s.rope.freq_base", arch);
    if (!st) st = bn_gguf_writer_add_f32(q->w, k, hp->rope_theta);
    if (!st) st = bn_gguf_writer_add_u32(q->w, "general.file_type", file_type(q->o->linear_type));
    if (!st) st = bn_gguf_writer_add_u32(q->w, "general.quantization_version", 2);
    if (st || (q->m->gguf && !q->o->replace_tokenizer)) return st; /* a GGUF source's tokenizer keys were copied */
    if (q->o->add_metadata) return q->o->add_metadata(q->w, q->o->user);
    if (hp->bos_id >= 0) st = bn_gguf_writer_add_u32(q->w, "tokenizer.ggml.bos_token_id", (uint32_t)hp->bos_id);
    if (!st && hp->eos_id >= 0) st = bn_gguf_writer_add_u32(q->w, "tokenizer.ggml.eos_token_id", (uint32_t)hp->eos_id);
    return st;
}

/* ------------------------------------------------------------ the file */

static bn_status add_tensors(qwriter *q) {
    const bn_hparams *hp = &q->m->hp;
    bn_status st = add_head(q);
    if (!st) progress(q, "token_embd.weight");
    char n[96];
    for (int l = 0; l < hp->n_layer && !st; l++) {
        const bn_layer *L = &q->m->layers[l];
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), n)
#define LIN(suffix, lin) if (!st && !(st = add_linear(q, NAME(suffix), lin))) progress(q, n)
#define NORM(suffix, v, len) if (!st && v && !(st = add_norm(q, NAME(suffix), v, len))) progress(q, n)
        NORM("attn_norm.weight", L->attn_norm, hp->n_embd);
        LIN("attn_q.weight", &L->wq);
        LIN("attn_k.weight", &L->wk);
        LIN("attn_v.weight", &L->wv);
        NORM("attn_sub_norm.weight", L->attn_sub_norm, hp->n_embd);
        LIN("attn_output.weight", &L->wo);
        NORM("ffn_norm.weight", L->ffn_norm, hp->n_embd);
        LIN("ffn_gate.weight", &L->w_gate);
        LIN("ffn_up.weight", &L->w_up);
        NORM("ffn_sub_norm.weight", L->ffn_sub_norm, hp->n_ff);
        LIN("ffn_down.weight", &L->w_down);
#undef LIN
#undef NORM
#undef NAME
    }
    if (!st && !(st = add_norm(q, "output_norm.weight", q->m->output_norm, hp->n_embd))) progress(q, "output_norm.weight");
    return st;
}

bn_status bn_model_save_quant(const bn_model *m, const char *path, const bn_quant_options *o, bn_quant_stats *stats) {
    bn_quant_stats dummy;
    bn_quant_stats *s = stats ? stats : &dummy;
    memset(s, 0, sizeof *s);
    qwriter q = {.m = m, .o = o, .st = s};
    q.n_threads = o->n_threads > 0 ? o->n_threads : bn_cpu_count();
    q.total = 2 + 11 * m->hp.n_layer;
    for (int l = 0; l < m->hp.n_layer; l++) /* 1bitLLM models may lack sub-norms: not written */
        q.total -= !m->layers[l].attn_sub_norm + !m->layers[l].ffn_sub_norm;
    bn_status st = BN_OK;
    const bn_type lt = o->linear_type;
    const char *arch = o->arch ? o->arch : bn_quant_default_arch(m);
    snprintf(s->arch, sizeof s->arch, "%s", arch);
    if (lt != BN_TYPE_I2_S && lt != BN_TYPE_TQ2_0 && lt != BN_TYPE_TQ1_0) {
        st = bn_fail(BN_ERR_INVALID_ARG, "linear type %s is not one of I2_S, TQ2_0, TQ1_0", bn_type_name(lt));
        goto out;
    }
    if (m->qhead.bits || m->lora) {
        st = bn_fail(BN_ERR_UNSUPPORTED, "only plain models (no quantized-head view, no LoRA) can be written");
        goto out;
    }
    /* A SiLU model under a 2B4T name would be run with ReLU^2 by every reader.
     * The reverse (2B4T weights as "bitnet", for llama.cpp, which knows no
     * other BitNet name) is the caller's explicit choice (--arch bitnet). */
    if (m->hp.act == BN_ACT_SILU && strcmp(arch, "bitnet") != 0) {
        st = bn_fail(BN_ERR_INVALID_ARG, "a SiLU-FFN (1bitLLM) model must be written as architecture 'bitnet', not '%s'",
                     arch);
        goto out;
    }
    if (lt == BN_TYPE_I2_S && !bn_gguf_arch_is_bitnet(arch, strlen(arch))) {
        st = bn_fail(BN_ERR_INVALID_ARG, "I2_S files need a bitnet architecture name, not '%s'", arch);
        goto out;
    }
    if ((st = bn_gguf_writer_create(&q.w))) goto out;
    if (!(st = add_metadata(&q, arch)) && !(st = add_tensors(&q))) st = bn_gguf_writer_write(q.w, path);
out:
    s->n_tensors = q.done;
    bn_gguf_writer_free(q.w);
    bn_alloc_list_free(&q.tmp);
    if (st) bn_error_prefix("writing %s", path);
    return st;
}
