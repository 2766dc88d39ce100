/* save_hf.c — write a model as a Hugging Face BitNet folder, in the layout
 * of microsoft/bitnet-b1.58-2B-4T: config.json + model.safetensors, either
 *  - packed: U8 [n_out/4, n_in] ternary weights + weight_scale [1] (BF16 as
 *    in 2B4T when exact, else F32; autobitlinear: the scale multiplies),
 *    quantization_mode offline; or
 *  - bf16:   the source's float masters as BF16, quantization_mode online.
 * Norms and embeddings are BF16 in both. Tokenizer files are copied from an
 * HF source folder (there is no tokenizer.json writer for other sources). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "model.h"
#include "quant/ternary.h"
#include "save.h"

typedef struct hf_tensor {
    char        name[128];
    bn_type     dtype;
    uint32_t    n_dims;
    uint64_t    shape[2];
    const void *data;
    uint64_t    nbytes;
} hf_tensor;

/* The tensors to write; converted buffers live in `bufs` until written
 * (the safetensors writer does not copy data). */
typedef struct hf_out {
    hf_tensor    *t;
    size_t        n, cap;
    bn_alloc_list bufs;
} hf_out;

static bn_status push(hf_out *o, const char *name, bn_type dtype, uint32_t n_dims, uint64_t s0, uint64_t s1,
                      const void *data, uint64_t nbytes) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        hf_tensor *t = realloc(o->t, cap * sizeof *t);
        if (!t) return bn_fail(BN_ERR_NOMEM, "out of memory");
        o->t = t;
        o->cap = cap;
    }
    hf_tensor *t = &o->t[o->n];
    if ((size_t)snprintf(t->name, sizeof t->name, "%s", name) >= sizeof t->name)
        return bn_fail(BN_ERR_INVALID_ARG, "tensor name %s is too long", name);
    t->dtype = dtype;
    t->n_dims = n_dims;
    t->shape[0] = s0;
    t->shape[1] = s1;
    t->data = data;
    t->nbytes = nbytes;
    o->n++;
    return BN_OK;
}

/* n float elements of type `type` -> BF16 (round to nearest even). BF16
 * input is passed through untouched, so bf16 sources keep identical bytes. */
static bn_status to_bf16(hf_out *o, const void *src, bn_type type, uint64_t n, const void **out) {
    if (type == BN_TYPE_BF16) { *out = src; return BN_OK; }
    if (type != BN_TYPE_F32 && type != BN_TYPE_F16)
        return bn_fail(BN_ERR_FORMAT, "cannot write %s as BF16", bn_type_name(type));
    if (n > SIZE_MAX / 2) return bn_fail(BN_ERR_NOMEM, "tensor too large");
    uint16_t *dst = bn_alloc_list_add(&o->bufs, 64, (size_t)n * 2);
    if (!dst) return BN_ERR_NOMEM;
    if (type == BN_TYPE_F32) {
        const float *f = src;
        for (uint64_t i = 0; i < n; i++) dst[i] = bn_f32_to_bf16(f[i]);
    } else {
        const uint16_t *h = src;
        for (uint64_t i = 0; i < n; i++) dst[i] = bn_f32_to_bf16(bn_f16_to_f32(h[i]));
    }
    *out = dst;
    return BN_OK;
}

static bn_status push_bf16(hf_out *o, const char *name, uint32_t n_dims, uint64_t s0, uint64_t s1, const void *src,
                           bn_type type) {
    uint64_t n = n_dims == 1 ? s0 : s0 * s1;
    const void *d = NULL;
    bn_status st = to_bf16(o, src, type, n, &d);
    if (st != BN_OK) { bn_error_prefix("tensor %s", name); return st; }
    return push(o, name, BN_TYPE_BF16, n_dims, s0, s1, d, n * 2);
}

static const char *const k_norm_names[4] = {"input_layernorm.weight", "self_attn.attn_sub_norm.weight",
                                            "post_attention_layernorm.weight", "mlp.ffn_sub_norm.weight"};
static const char *const k_lin_names[7] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                           "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                                           "mlp.gate_proj.weight",    "mlp.up_proj.weight",
                                           "mlp.down_proj.weight"};

/* ---- packed: from the in-memory ternary model (any source) ---- */

static bn_status push_packed_linear(hf_out *o, const char *name, const bn_linear *l) {
    if (l->n_out <= 0 || l->n_in <= 0 || l->n_out % 4 != 0)
        return bn_fail(BN_ERR_SHAPE, "tensor %s: n_out %d is not a positive multiple of 4 (packed HF layout)", name,
                       l->n_out);
    if (!(l->scale > 0.0f) || !isfinite(l->scale))
        return bn_fail(BN_ERR_FORMAT, "tensor %s: scale %g is not a positive finite number", name, l->scale);
    uint64_t nb = (uint64_t)(l->n_out / 4) * (uint64_t)l->n_in;
    uint8_t *w = bn_alloc_list_add(&o->bufs, 64, (size_t)nb);
    float *s = bn_alloc_list_add(&o->bufs, 16, sizeof(float));
    if (!w || !s) return BN_ERR_NOMEM;
    bn_ternary_to_hf_packed(l->w, l->n_out, l->n_in, w);
    /* autobitlinear multiplies by weight_scale: store beta itself. BF16 as
     * 2B4T does when beta is a BF16 value (packed sources); otherwise (beta =
     * absmean of float masters) F32, since rounding beta to BF16 moves the
     * logits by several percent of the int8 steps downstream. */
    uint16_t b = bn_f32_to_bf16(l->scale);
    bool as_bf16 = bn_bf16_to_f32(b) == l->scale;
    if (as_bf16) memcpy(s, &b, 2);
    else s[0] = l->scale;
    bn_status st = push(o, name, BN_TYPE_U8, 2, (uint64_t)(l->n_out / 4), (uint64_t)l->n_in, w, nb);
    if (st != BN_OK) return st;
    char sname[sizeof ((hf_tensor *)0)->name];
    if ((size_t)snprintf(sname, sizeof sname, "%s_scale", name) >= sizeof sname)
        return bn_fail(BN_ERR_INVALID_ARG, "tensor name %s is too long", name);
    return push(o, sname, as_bf16 ? BN_TYPE_BF16 : BN_TYPE_F32, 1, 1, 0, s, as_bf16 ? 2 : 4);
}

static bn_status collect_packed(const bn_model *m, hf_out *o) {
    const bn_hparams *hp = &m->hp;
    bn_status st = push_bf16(o, "model.embed_tokens.weight", 2, (uint64_t)hp->n_vocab, (uint64_t)hp->n_embd,
                             m->tok_embd, m->embd_type);
    if (st != BN_OK) return st;
    if ((st = push_bf16(o, "model.norm.weight", 1, (uint64_t)hp->n_embd, 0, m->output_norm, BN_TYPE_F32))) return st;
    char n[160];
    for (int i = 0; i < hp->n_layer; i++) {
        const bn_layer *L = &m->layers[i];
        const float *norms[4] = {L->attn_norm, L->attn_sub_norm, L->ffn_norm, L->ffn_sub_norm};
        const int32_t nsz[4] = {hp->n_embd, hp->n_embd, hp->n_embd, hp->n_ff};
        const bn_linear *lin[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < 4; k++) {
            if (!norms[k]) return bn_fail(BN_ERR_UNSUPPORTED, "layer %d has no %s", i, k_norm_names[k]);
            snprintf(n, sizeof n, "model.layers.%d.%s", i, k_norm_names[k]);
            if ((st = push_bf16(o, n, 1, (uint64_t)nsz[k], 0, norms[k], BN_TYPE_F32))) return st;
        }
        for (int k = 0; k < 7; k++) {
            snprintf(n, sizeof n, "model.layers.%d.%s", i, k_lin_names[k]);
            if ((st = push_packed_linear(o, n, lin[k]))) return st;
        }
    }
    return BN_OK;
}

/* ---- bf16: the source's float masters, straight from its safetensors ---- */

static bool is_float(bn_type t) { return t == BN_TYPE_F32 || t == BN_TYPE_F16 || t == BN_TYPE_BF16; }

static bn_status push_master(hf_out *o, const bn_st_set *s, const char *name, uint32_t n_dims, uint64_t s0,
                             uint64_t s1) {
    const bn_st_tensor *t = bn_st_find(s, name);
    if (!t) return bn_fail(BN_ERR_NOT_FOUND, "source tensor %s is missing", name);
    if (!is_float(t->dtype))
        return bn_fail(BN_ERR_FORMAT, "source tensor %s has dtype %s, expected float masters", name,
                       bn_type_name(t->dtype));
    if (t->n_dims != n_dims || t->shape[0] != s0 || (n_dims == 2 && t->shape[1] != s1))
        return bn_fail(BN_ERR_SHAPE, "source tensor %s does not have the model's shape", name);
    return push_bf16(o, name, n_dims, s0, s1, t->data, t->dtype);
}

static bn_status collect_masters(const bn_model *m, hf_out *o) {
    const bn_hparams *hp = &m->hp;
    const bn_st_set *s = m->st;
    const uint64_t e = (uint64_t)hp->n_embd, f = (uint64_t)hp->n_ff;
    const uint64_t q = (uint64_t)hp->n_head * (uint64_t)hp->head_dim, kv = (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim;
    bn_status st = push_master(o, s, "model.embed_tokens.weight", 2, (uint64_t)hp->n_vocab, e);
    if (st != BN_OK) return st;
    if ((st = push_master(o, s, "model.norm.weight", 1, e, 0))) return st;
    /* [n_out, n_in] of q k v o gate up down */
    const uint64_t lo[7] = {q, kv, kv, e, f, f, e}, li[7] = {e, e, e, q, e, e, f};
    const uint64_t nsz[4] = {e, e, e, f};
    char n[160];
    for (int i = 0; i < hp->n_layer; i++) {
        for (int k = 0; k < 4; k++) {
            snprintf(n, sizeof n, "model.layers.%d.%s", i, k_norm_names[k]);
            if ((st = push_master(o, s, n, 1, nsz[k], 0))) return st;
        }
        for (int k = 0; k < 7; k++) {
            snprintf(n, sizeof n, "model.layers.%d.%s", i, k_lin_names[k]);
            if ((st = push_master(o, s, n, 2, lo[k], li[k]))) return st;
        }
    }
    return BN_OK;
}

/* ---- files ---- */

/* safetensors' own serializer orders by element size (largest first), then
 * by name; following it gives the same data offsets as HF's files. */
static int cmp_tensor(const void *a, const void *b) {
    const hf_tensor *x = a, *y = b;
    int32_t sx = bn_type_get(x->dtype)->type_size, sy = bn_type_get(y->dtype)->type_size;
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static bn_status join(char *buf, size_t cap, const char *dir, const char *file) {
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, file) >= cap) return bn_fail(BN_ERR_INVALID_ARG, "path %s/%s is too long", dir, file);
    return BN_OK;
}

/* tmp + fsync + rename, so a crash never leaves a half-written file. */
static bn_status write_atomic(const char *path, const void *data, size_t len) {
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= sizeof tmp)
        return bn_fail(BN_ERR_INVALID_ARG, "path %s is too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return bn_fail(BN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    bn_status st = BN_OK;
    const char *p = data;
    while (st == BN_OK && len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) st = bn_fail(BN_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        else { p += w; len -= (size_t)w; }
    }
    if (st == BN_OK && fchmod(fd, 0644) != 0) st = bn_fail(BN_ERR_IO, "%s: chmod failed: %s", tmp, strerror(errno));
    if (st == BN_OK && fsync(fd) != 0) st = bn_fail(BN_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == BN_OK) st = bn_fail(BN_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (st == BN_OK && rename(tmp, path) != 0)
        st = bn_fail(BN_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (st != BN_OK) unlink(tmp);
    return st;
}

/* Shortest decimal that reads back as the same float; integral values keep
 * a ".0" as Python writes them (500000.0, not 5e+05). */
static cJSON *json_float(float v) {
    char buf[48];
    if (isfinite(v) && fabsf(v) < 1e15f && v == floorf(v)) snprintf(buf, sizeof buf, "%.1f", (double)v);
    else {
        for (int p = 1; p <= 9; p++) {
            snprintf(buf, sizeof buf, "%.*g", p, (double)v);
            if (strtof(buf, NULL) == v) break;
        }
    }
    return cJSON_CreateRaw(buf);
}

/* Print as Python's json.dumps(indent=2) does, the form of HF's config.json. */
typedef struct jbuf { char *p; size_t n, cap; bool oom; } jbuf;
static void jput(jbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->oom) return;
    if (b->n + l + 1 > b->cap) {
        size_t cap = (b->n + l + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, l + 1);
    b->n += l;
}
static void jindent(jbuf *b, int depth) {
    for (int i = 0; i < depth; i++) jput(b, "  ");
}
static void jprint(jbuf *b, const cJSON *v, int depth) {
    if ((cJSON_IsObject(v) || cJSON_IsArray(v)) && v->child) {
        bool obj = cJSON_IsObject(v);
        jput(b, obj ? "{\n" : "[\n");
        for (const cJSON *c = v->child; c; c = c->next) {
            jindent(b, depth + 1);
            if (obj) {
                cJSON *k = cJSON_CreateString(c->string);
                char *ks = k ? cJSON_PrintUnformatted(k) : NULL;
                if (ks) { jput(b, ks); jput(b, ": "); } else b->oom = true;
                free(ks);
                cJSON_Delete(k);
            }
            jprint(b, c, depth + 1);
            jput(b, c->next ? ",\n" : "\n");
        }
        jindent(b, depth);
        jput(b, obj ? "}" : "]");
        return;
    }
    char *s = cJSON_PrintUnformatted(v);
    if (s) jput(b, s); else b->oom = true;
    free(s);
}

static bn_status write_config(const bn_model *m, const char *dir, bn_hf_form form) {
    const bn_hparams *hp = &m->hp;
    cJSON *r = cJSON_CreateObject(), *arch = cJSON_CreateArray(), *qc = cJSON_CreateObject();
    bool ok = r && arch && qc;
    if (ok) {
        cJSON_AddItemToArray(arch, cJSON_CreateString("BitNetForCausalLM"));
        cJSON_AddItemToObject(r, "architectures", arch);
        arch = NULL;
        if (hp->bos_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", hp->bos_id);
        if (hp->eos_id >= 0) cJSON_AddNumberToObject(r, "eos_token_id", hp->eos_id);
        cJSON_AddStringToObject(r, "hidden_act", "relu2");
        cJSON_AddNumberToObject(r, "hidden_size", hp->n_embd);
        if (hp->head_dim * hp->n_head != hp->n_embd) cJSON_AddNumberToObject(r, "head_dim", hp->head_dim);
        cJSON_AddItemToObject(r, "initializer_range", cJSON_CreateRaw("0.02"));
        cJSON_AddNumberToObject(r, "intermediate_size", hp->n_ff);
        cJSON_AddNumberToObject(r, "max_position_embeddings", hp->n_ctx_train > 0 ? hp->n_ctx_train : 2048);
        cJSON_AddStringToObject(r, "model_type", "bitnet");
        cJSON_AddItemToObject(r, "rms_norm_eps", json_float(hp->rms_eps));
        cJSON_AddNumberToObject(r, "num_attention_heads", hp->n_head);
        cJSON_AddNumberToObject(r, "num_hidden_layers", hp->n_layer);
        cJSON_AddNumberToObject(r, "num_key_value_heads", hp->n_head_kv);
        cJSON_AddItemToObject(r, "rope_theta", json_float(hp->rope_theta));
        cJSON_AddBoolToObject(r, "tie_word_embeddings", 1);
        cJSON_AddStringToObject(r, "torch_dtype", "bfloat16");
        cJSON_AddBoolToObject(r, "use_cache", 1);
        cJSON_AddNumberToObject(r, "vocab_size", hp->n_vocab);
        cJSON_AddStringToObject(qc, "quant_method", "bitnet");
        cJSON_AddStringToObject(qc, "linear_class", "autobitlinear");
        cJSON_AddStringToObject(qc, "quantization_mode", form == BN_HF_FORM_PACKED ? "offline" : "online");
        cJSON_AddItemToObject(r, "quantization_config", qc);
        qc = NULL;
    }
    jbuf jb = {0};
    if (ok) { jprint(&jb, r, 0); jput(&jb, "\n"); }
    char *text = ok && !jb.oom ? jb.p : NULL;
    if (!text) free(jb.p);
    cJSON_Delete(arch);
    cJSON_Delete(qc);
    cJSON_Delete(r);
    if (!text) return bn_fail(BN_ERR_NOMEM, "out of memory writing config.json");
    char path[PATH_MAX];
    bn_status st = join(path, sizeof path, dir, "config.json");
    if (st == BN_OK) st = write_atomic(path, text, strlen(text));
    free(text);
    return st;
}

/* Copy the HF tokenizer files (and generation_config.json) of a source folder. */
static bn_status copy_companions(const bn_model *m, const char *dir, int *n_tok) {
    *n_tok = 0;
    struct stat sb;
    if (!m->tokenizer_path || stat(m->tokenizer_path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return BN_OK;
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "generation_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[PATH_MAX], dst[PATH_MAX];
        bn_status st = join(src, sizeof src, m->tokenizer_path, files[i]);
        if (st == BN_OK) st = join(dst, sizeof dst, dir, files[i]);
        if (st != BN_OK) return st;
        if (stat(src, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        char *buf = NULL;
        size_t len = 0;
        if ((st = bn_read_file(src, (size_t)1 << 30, &buf, &len)) != BN_OK) return st;
        st = write_atomic(dst, buf, len);
        free(buf);
        if (st != BN_OK) return st;
        if (!strncmp(files[i], "tokenizer", 9)) (*n_tok)++;
    }
    return BN_OK;
}

static bn_status check_form(const bn_model *m, bn_hf_form form) {
    if (m->hp.arch != BN_ARCH_BITNET_B158 || m->hp.act != BN_ACT_RELU2)
        return bn_fail(BN_ERR_UNSUPPORTED,
                       "only BitNet b1.58 models (relu2, sub-norms) can be written as BitNetForCausalLM folders");
    if (m->lora) return bn_fail(BN_ERR_UNSUPPORTED, "a model with a LoRA adapter applied cannot be exported; merge it first");
    if (form == BN_HF_FORM_BF16 && (!m->st || strcmp(m->source, "hf-masters") != 0))
        return bn_fail(BN_ERR_UNSUPPORTED,
                       "hf-bf16 needs the float master weights, but this model (%s) holds ternary weights only. "
                       "Writing W = t*beta as masters would not give the same model back: online quantization "
                       "recomputes beta' = mean|t*beta| = beta*mean|t|, which differs from beta wherever a tensor "
                       "has zeros. Export --to hf-packed instead, or convert from a folder with f32/bf16 masters "
                       "(e.g. what `bitnet train --save` writes)",
                       m->source[0] ? m->source : "unknown source");
    return BN_OK;
}

bn_status bn_model_save_hf(const bn_model *m, const char *dir, bn_hf_form form, int *n_tok_files) {
    if (!m || !dir) return bn_fail(BN_ERR_INVALID_ARG, "bn_model_save_hf: model and dir are required");
    if (n_tok_files) *n_tok_files = 0;
    bn_status st = check_form(m, form);
    if (st != BN_OK) return st;
    /* Refuse to overwrite the folder we read from: its tensors are mapped. */
    char rin[PATH_MAX], rout[PATH_MAX];
    if (m->path && realpath(m->path, rin) && realpath(dir, rout) && !strcmp(rin, rout))
        return bn_fail(BN_ERR_INVALID_ARG, "%s: cannot export into the source folder", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return bn_fail(BN_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return bn_fail(BN_ERR_IO, "%s is not a folder", dir);

    hf_out o = {0};
    bn_st_writer *w = NULL;
    st = form == BN_HF_FORM_PACKED ? collect_packed(m, &o) : collect_masters(m, &o);
    /* HF's serializer writes tensors sorted by name; do the same. */
    if (st == BN_OK) qsort(o.t, o.n, sizeof *o.t, cmp_tensor);
    if (st == BN_OK) st = bn_st_writer_create(&w);
    if (st == BN_OK) st = bn_st_writer_add_metadata(w, "format", "pt");
    for (size_t i = 0; st == BN_OK && i < o.n; i++) {
        const hf_tensor *t = &o.t[i];
        st = bn_st_writer_add(w, t->name, t->dtype, t->n_dims, t->shape, t->data, t->nbytes);
    }
    char path[PATH_MAX];
    if (st == BN_OK) st = join(path, sizeof path, dir, "model.safetensors");
    if (st == BN_OK) st = bn_st_writer_write(w, path);
    bn_st_writer_free(w);
    bn_alloc_list_free(&o.bufs);
    free(o.t);
    int n_tok = 0;
    if (st == BN_OK) st = write_config(m, dir, form);
    if (st == BN_OK) st = copy_companions(m, dir, &n_tok);
    if (st == BN_OK && n_tok_files) *n_tok_files = n_tok;
    if (st != BN_OK) bn_error_prefix("%s", dir);
    return st;
}
