/* model.c — model lifetime, hyper-parameter checks, info. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"

bn_status bn_hparams_validate(const bn_hparams *hp) {
    if (hp->n_vocab <= 0 || hp->n_embd <= 0 || hp->n_ff <= 0 || hp->n_layer <= 0 ||
        hp->n_head <= 0 || hp->n_head_kv <= 0 || hp->head_dim <= 0)
        return bn_fail(BN_ERR_SHAPE, "hyper-parameters must be positive (vocab %d, embd %d, ff %d, layers %d, heads %d/%d, head_dim %d)",
                       hp->n_vocab, hp->n_embd, hp->n_ff, hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim);
    if (hp->n_embd > (1 << 16) || hp->n_ff > (1 << 18) || hp->n_layer > 1024 || hp->n_vocab > (1 << 24) ||
        hp->n_head > 1024)
        return bn_fail(BN_ERR_SHAPE, "hyper-parameters are implausibly large (embd %d, ff %d, layers %d, vocab %d, heads %d)",
                       hp->n_embd, hp->n_ff, hp->n_layer, hp->n_vocab, hp->n_head);
    if (hp->n_head % hp->n_head_kv)
        return bn_fail(BN_ERR_SHAPE, "%d attention heads are not a multiple of %d kv heads", hp->n_head, hp->n_head_kv);
    if (hp->head_dim % 2)
        return bn_fail(BN_ERR_SHAPE, "head_dim %d must be even for RoPE", hp->head_dim);
    if (hp->n_head * hp->head_dim != hp->n_embd)
        return bn_fail(BN_ERR_SHAPE, "heads x head_dim = %d x %d does not equal hidden size %d", hp->n_head, hp->head_dim, hp->n_embd);
    if (hp->n_ctx_train <= 0) return bn_fail(BN_ERR_SHAPE, "context length must be positive");
    if (!(hp->rms_eps > 0.0f) || !(hp->rope_theta > 0.0f))
        return bn_fail(BN_ERR_SHAPE, "rms_norm_eps and rope_theta must be positive");
    return BN_OK;
}

/* Allocate (zeroed if `zero`) and own. */
static void *alloc_list_new(bn_alloc_list *l, size_t align, size_t size, bool zero) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void **np = realloc(l->ptrs, cap * sizeof *np);
        if (!np) {
            bn_fail(BN_ERR_NOMEM, "out of memory");
            return NULL;
        }
        l->ptrs = np;
        l->cap = cap;
    }
    void *p = bn_aligned_alloc(align, size);
    if (!p) return NULL;
    if (zero) memset(p, 0, size);
    l->ptrs[l->n++] = p;
    return p;
}

void *bn_alloc_list_add(bn_alloc_list *l, size_t align, size_t size) { return alloc_list_new(l, align, size, true); }

void bn_alloc_list_free(bn_alloc_list *l) {
    for (size_t i = 0; i < l->n; i++) bn_aligned_free(l->ptrs[i]);
    free(l->ptrs);
    memset(l, 0, sizeof *l);
}

bn_status bn_model_alloc_layers(bn_model *m) {
    m->layers = bn_alloc_list_add(&m->owned, 64, sizeof(bn_layer) * (size_t)m->hp.n_layer);
    return m->layers ? BN_OK : BN_ERR_NOMEM;
}

bn_status bn_linear_check(const bn_linear *l, const char *name, int32_t n_in, int32_t n_out) {
    if (l->n_in != n_in || l->n_out != n_out)
        return bn_fail(BN_ERR_SHAPE, "tensor %s has shape [%d out, %d in], expected [%d, %d]", name, l->n_out,
                       l->n_in, n_out, n_in);
    if (!l->w) return bn_fail(BN_ERR_NOT_FOUND, "tensor %s is missing", name);
    return BN_OK;
}

/* The T2R4 decode copy of one linear, owned by the model: 2 MiB-aligned and
 * advised for huge pages (the GEMV's one stream then crosses no 4 KiB page). */
static bn_status repack_linear(bn_model *m, bn_linear *l) {
    const size_t n = bn_t2r4_bytes(l->n_out, l->n_in), huge = (size_t)2 << 20;
    uint8_t *p = alloc_list_new(&m->owned, n >= huge ? huge : 64, n, false); /* untouched: advise first */
    if (!p) return BN_ERR_NOMEM;
#ifdef MADV_HUGEPAGE
    if (n >= huge) madvise(p, n / huge * huge, MADV_HUGEPAGE);
#endif
    bn_t2r4_pack(l->w, l->n_out, l->n_in, p);
    l->w4 = p;
    return BN_OK;
}

static bn_status repack_model(bn_model *m) {
    size_t bytes = 0;
    for (int i = 0; i < m->hp.n_layer; i++) {
        bn_layer *L = &m->layers[i];
        bn_linear *ls[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t j = 0; j < sizeof ls / sizeof ls[0]; j++) {
            bn_status st = repack_linear(m, ls[j]);
            if (st != BN_OK) return bn_fail(st, "repacking layer %d for decode: out of memory", i);
            bytes += bn_t2r4_bytes(ls[j]->n_out, ls[j]->n_in);
        }
    }
    bn_log(&m->logger, BN_LOG_INFO, "repacked the ternary weights for decode: %.1f MB", (double)bytes / 1e6);
    return BN_OK;
}

bn_model_params bn_model_default_params(void) {
    bn_model_params p;
    memset(&p, 0, sizeof p);
    p.use_mmap = true;
    p.logger.min_level = BN_LOG_WARN;
    return p;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bn_status bn_model_load(const char *path, const bn_model_params *params, bn_model **out) {
    if (!path || !out) return bn_fail(BN_ERR_INVALID_ARG, "bn_model_load: path and out are required");
    *out = NULL;
    bn_model_params p = params ? *params : bn_model_default_params();
    bn_model *m = calloc(1, sizeof *m);
    if (!m) return bn_fail(BN_ERR_NOMEM, "out of memory");
    m->logger = p.logger;
    m->path = bn_strdup(path);
    bn_status st = m->path ? BN_OK : BN_ERR_NOMEM;
    if (st == BN_OK) st = is_dir(path) ? bn_model_load_hf(m, path, &p) : bn_model_load_gguf(m, path, &p);
    if (st == BN_OK && p.head_bits) {
        if (p.head_bits != 8 && p.head_bits != 6 && p.head_bits != 4)
            st = bn_fail(BN_ERR_INVALID_ARG, "head_bits must be 0, 8, 6 or 4, got %d", p.head_bits);
        else
            st = bn_qhead_build(m->tok_embd, m->embd_type, m->hp.n_vocab, m->hp.n_embd, p.head_bits, bn_cpu_count(),
                                &m->qhead, &m->qhead_storage);
    }
    if (st == BN_OK && p.repack) st = repack_model(m);
    if (st != BN_OK) {
        bn_model_free(m);
        return st;
    }
    *out = m;
    return BN_OK;
}

void bn_model_free(bn_model *m) {
    if (!m) return;
    bn_alloc_list_free(&m->owned);
    bn_aligned_free(m->qhead_storage);
    bn_gguf_free(m->gguf);
    bn_st_free(m->st);
    free(m->path);
    free(m->tokenizer_path);
    free(m);
}

void bn_model_get_info(const bn_model *m, bn_model_info *info) {
    memset(info, 0, sizeof *info);
    const bn_hparams *hp = &m->hp;
    snprintf(info->arch, sizeof info->arch, "%s", hp->arch == BN_ARCH_BITNET_B158 ? "bitnet-b1.58" : "bitnet");
    info->n_vocab = hp->n_vocab;
    info->n_embd = hp->n_embd;
    info->n_ff = hp->n_ff;
    info->n_layer = hp->n_layer;
    info->n_head = hp->n_head;
    info->n_head_kv = hp->n_head_kv;
    info->head_dim = hp->head_dim;
    info->n_ctx_train = hp->n_ctx_train;
    info->rms_eps = hp->rms_eps;
    info->rope_theta = hp->rope_theta;
    info->bos_id = hp->bos_id;
    info->eos_id = hp->eos_id;
    info->embd_type = m->embd_type;
    const uint64_t e = (uint64_t)hp->n_embd, f = (uint64_t)hp->n_ff, kv = (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim;
    const uint64_t per_layer_lin = e * e * 2 + e * kv * 2 + e * f * 3;
    const uint64_t per_layer_norm = e * 3 + f;
    info->n_params = (uint64_t)hp->n_layer * (per_layer_lin + per_layer_norm) + (uint64_t)hp->n_vocab * e + e;
    uint64_t lin_bytes = 0;
    for (int i = 0; i < hp->n_layer; i++) {
        const bn_layer *L = &m->layers[i];
        const bn_linear *ls[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int j = 0; j < 7; j++) lin_bytes += bn_t2r_row_bytes(ls[j]->n_in) * (uint64_t)ls[j]->n_out;
    }
    const uint64_t esz = m->embd_type == BN_TYPE_F32 ? 4 : 2;
    const uint64_t head_bytes = m->qhead.bits ? (uint64_t)bn_qhead_bytes(&m->qhead) : (uint64_t)hp->n_vocab * e * esz;
    info->head_bits = m->qhead.bits;
    info->weight_bytes = lin_bytes + head_bytes + (uint64_t)hp->n_layer * per_layer_norm * 4 + e * 4;
}
