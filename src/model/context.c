/* context.c — contexts: creation, batches, logits, cache management. */
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef BITNET_CUDA
#include "cuda/cuda_backend.h"
#endif

bn_context_params bn_context_default_params(void) {
    bn_context_params p;
    memset(&p, 0, sizeof p);
    p.n_ctx = 0;
    p.n_seq_max = 1;
    p.n_batch = 512;
    p.n_threads = 0;
    p.device = BN_DEVICE_CPU;
    p.logger.min_level = BN_LOG_WARN;
    return p;
}

/* The CUDA backend copies logits into this buffer every step: page-locked,
 * the copy takes the DMA engine's direct path (a pageable target is staged
 * through a driver buffer at a fraction of the bandwidth: 33 MB per step at
 * 64 sequences). Unpinned buffers still work, only slower. */
static void logits_unpin(bn_context *c) {
#ifdef BITNET_CUDA
    if (c->logits_pinned) bn_cuda_unpin(c->logits);
#endif
    c->logits_pinned = false;
}

void bn_context_free(bn_context *c) {
    if (!c) return;
    logits_unpin(c);
#ifdef BITNET_CUDA
    bn_cuda_free(c->cuda);
#endif
    void *bufs[] = {c->k_cache, c->v_cache, c->seq_len, c->x, c->xb, c->q, c->kx, c->vx, c->att,
                    c->gate, c->up, c->q8, c->q8_scale, c->q8_sum, c->att_ws, c->att_lim, c->att_part, c->att_blk, c->rope_inv_freq, c->rope_cs,
                    c->logits, c->logit_row};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) bn_aligned_free(bufs[i]);
    free(c);
}

static void *zalloc(size_t n, size_t sz, bool *ok) {
    uint64_t total;
    if (!bn_mul_ok(n, sz, &total)) {
        bn_fail(BN_ERR_NOMEM, "buffer size overflows");
        *ok = false;
        return NULL;
    }
    void *p = bn_aligned_alloc(64, (size_t)total);
    if (!p) *ok = false;
    else memset(p, 0, (size_t)total);
    return p;
}

bn_status bn_context_create(const bn_model *m, const bn_context_params *params, bn_context **out) {
    if (!m || !out) return bn_fail(BN_ERR_INVALID_ARG, "bn_context_create: model and out are required");
    *out = NULL;
    bn_context_params p = params ? *params : bn_context_default_params();
#ifndef BITNET_CUDA
    if (p.device == BN_DEVICE_CUDA)
        return bn_fail(BN_ERR_UNSUPPORTED, "this build of libbitnet has no CUDA backend (build with -DBITNET_CUDA=ON)");
#endif
    if (p.n_ctx < 0 || p.n_seq_max < 0 || p.n_batch < 0 || p.n_threads < 0)
        return bn_fail(BN_ERR_INVALID_ARG, "context parameters must not be negative");
    if (p.kv_type != BN_KV_F32 && p.kv_type != BN_KV_F16)
        return bn_fail(BN_ERR_INVALID_ARG, "unknown KV cache type %d (BN_KV_F32 or BN_KV_F16)", (int)p.kv_type);
    const bn_hparams *hp = &m->hp;
    bn_context *c = calloc(1, sizeof *c);
    if (!c) return bn_fail(BN_ERR_NOMEM, "out of memory");
    c->m = m;
    c->k = p.kernels ? bn_kernels_by_name(p.kernels) : bn_kernels_best();
    if (!c->k) {
        bn_fail(BN_ERR_UNSUPPORTED, "kernel set '%s' is unknown or not supported by this CPU", p.kernels);
        free(c);
        return BN_ERR_UNSUPPORTED;
    }
    c->n_ctx = p.n_ctx ? p.n_ctx : hp->n_ctx_train;
    c->n_seq = p.n_seq_max ? p.n_seq_max : 1;
    c->n_chunk = p.n_batch ? p.n_batch : 512;
    c->n_threads = p.n_threads ? p.n_threads : bn_cpu_count();
    c->all_logits = p.all_logits;
    c->logger = p.logger;
    const size_t e = (size_t)hp->n_embd, f = (size_t)hp->n_ff, kvd = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    const size_t nb = (size_t)c->n_chunk;
    const size_t kp = (size_t)bn_pad_k(hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd);
    uint64_t cache_elems = (uint64_t)c->n_seq * (uint64_t)hp->n_layer;
    bool ok = bn_mul_ok(cache_elems, (uint64_t)c->n_ctx, &cache_elems) && bn_mul_ok(cache_elems, kvd, &cache_elems);
    if (!ok) {
        bn_fail(BN_ERR_NOMEM, "KV cache size overflows (n_ctx %d x %d sequences)", c->n_ctx, c->n_seq);
        free(c);
        return BN_ERR_NOMEM;
    }
    c->seq_len = zalloc((size_t)c->n_seq, sizeof(int32_t), &ok);
    /* The CUDA backend keeps caches and scratch on the GPU: none here. */
    const bool host = p.device != BN_DEVICE_CUDA;
    if (host) {
    c->kv_f16 = p.kv_type == BN_KV_F16;
    c->kv_bytes = c->kv_f16 ? sizeof(uint16_t) : sizeof(float);
    c->k_cache = zalloc(cache_elems, c->kv_bytes, &ok);
    c->v_cache = zalloc(cache_elems, c->kv_bytes, &ok);
    c->x = zalloc(nb * e, sizeof(float), &ok);
    c->xb = zalloc(nb * (f > e ? f : e), sizeof(float), &ok);
    c->q = zalloc(nb * e, sizeof(float), &ok);
    c->kx = zalloc(nb * kvd, sizeof(float), &ok);
    c->vx = zalloc(nb * kvd, sizeof(float), &ok);
    c->att = zalloc(nb * e, sizeof(float), &ok);
    c->gate = zalloc(nb * f, sizeof(float), &ok);
    c->up = zalloc(nb * f, sizeof(float), &ok);
    c->q8 = zalloc(nb * kp, 1, &ok);
    c->q8_scale = zalloc(nb, sizeof(float), &ok);
    c->q8_sum = zalloc(nb, sizeof(int32_t), &ok);
    {
        const int group = hp->n_head / hp->n_head_kv;
        const size_t hd = (size_t)hp->head_dim;
        c->att_qb = group >= BN_ATT_ROWS ? 1 : BN_ATT_ROWS / group;
        c->att_rows = c->att_qb * group;
        const size_t R = (size_t)c->att_rows, T = (size_t)c->n_threads;
        c->att_ws_stride = R * (2 * hd + BN_ATTN_TILE + 2) + (c->kv_f16 ? 2 * BN_ATTN_TILE * hd : 0);
        c->att_ws = zalloc(T, c->att_ws_stride * sizeof(float), &ok);
        c->att_lim = zalloc(T * 2 * R, sizeof(int32_t), &ok); /* limits + per-tile limits (f16) */
        c->att_part = zalloc((size_t)BN_ATT_PARTS(T) * R, (hd + 2) * sizeof(float), &ok);
        c->att_blk = zalloc(nb, sizeof(int32_t), &ok);
        c->attn = bn_attn_select(c->k);
    }
    c->rope_inv_freq = zalloc((size_t)hp->head_dim / 2, sizeof(float), &ok);
    c->rope_cs = zalloc(nb * (size_t)hp->head_dim, sizeof(float), &ok);
    /* inv_freq[i] = theta^(-2i/d), computed as transformers does in f32 */
    for (int i = 0; ok && i < hp->head_dim / 2; i++)
        c->rope_inv_freq[i] = 1.0f / powf(hp->rope_theta, (float)(2 * i) / (float)hp->head_dim);
    }
    if (!ok) {
        bn_error_prefix("creating a context (n_ctx %d, %d sequences, batch %d)", c->n_ctx, c->n_seq, c->n_chunk);
        bn_context_free(c);
        return BN_ERR_NOMEM;
    }
#ifdef BITNET_CUDA
    if (p.device == BN_DEVICE_CUDA) {
        const uint32_t cflags = p.cuda_flags | (p.kv_type == BN_KV_F16 ? BN_CUDA_KV_F16 : 0u);
        bn_status cst = bn_cuda_create(m, c->n_ctx, c->n_seq, c->n_chunk, cflags, &c->cuda);
        if (cst != BN_OK) {
            bn_context_free(c);
            return cst;
        }
    }
#endif
    bn_log(&c->logger, BN_LOG_INFO, "context: n_ctx %d, %d sequences, KV cache %.1f MiB (%s), kernels %s, %d threads",
           c->n_ctx, c->n_seq, 2.0 * (double)cache_elems * (p.kv_type == BN_KV_F16 ? 2 : 4) / (1 << 20),
           p.kv_type == BN_KV_F16 ? "f16" : "f32", c->k->name, c->n_threads);
    *out = c;
    return BN_OK;
}

int32_t bn_context_n_ctx(const bn_context *c) { return c->n_ctx; }

int32_t bn_seq_length(const bn_context *c, int32_t seq) {
    return (seq >= 0 && seq < c->n_seq) ? c->seq_len[seq] : -1;
}

bn_status bn_seq_truncate(bn_context *c, int32_t seq, int32_t n_keep) {
    if (seq < 0 || seq >= c->n_seq) return bn_fail(BN_ERR_INVALID_ARG, "sequence id %d out of range [0, %d)", seq, c->n_seq);
    if (n_keep < 0) return bn_fail(BN_ERR_INVALID_ARG, "cannot keep a negative number of positions");
    if (n_keep < c->seq_len[seq]) c->seq_len[seq] = n_keep;
    return BN_OK;
}

bn_status bn_seq_copy(bn_context *c, int32_t src, int32_t dst, int32_t n) {
    if (src < 0 || src >= c->n_seq || dst < 0 || dst >= c->n_seq)
        return bn_fail(BN_ERR_INVALID_ARG, "sequence ids %d -> %d out of range [0, %d)", src, dst, c->n_seq);
    if (n < 0 || n > c->seq_len[src])
        return bn_fail(BN_ERR_INVALID_ARG, "cannot copy %d positions from a sequence of %d", n, c->seq_len[src]);
    if (src == dst) {
        c->seq_len[dst] = n;
        return BN_OK;
    }
#ifdef BITNET_CUDA
    if (c->cuda) {
        bn_status st = bn_cuda_seq_copy(c->cuda, src, dst, n);
        if (st == BN_OK) c->seq_len[dst] = n;
        return st;
    }
#endif
    const size_t kvd = (size_t)c->m->hp.n_head_kv * (size_t)c->m->hp.head_dim;
    for (int l = 0; l < c->m->hp.n_layer; l++) {
        const size_t to = bn_kv_offset(c, dst, l, 0) * c->kv_bytes, from = bn_kv_offset(c, src, l, 0) * c->kv_bytes;
        memcpy((char *)c->k_cache + to, (const char *)c->k_cache + from, (size_t)n * kvd * c->kv_bytes);
        memcpy((char *)c->v_cache + to, (const char *)c->v_cache + from, (size_t)n * kvd * c->kv_bytes);
    }
    c->seq_len[dst] = n;
    return BN_OK;
}

bn_status bn_context_set_hidden_dump(bn_context *c, float *buf, int32_t max_tokens) {
    c->hidden_dump = buf;
    c->hidden_max = buf ? max_tokens : 0;
    return BN_OK;
}

const float *bn_get_logits(const bn_context *c, int32_t i) {
    if (i < 0 || i >= c->n_tokens_last || c->logit_row[i] < 0) return NULL;
    const int32_t r = c->logit_row[i];
    float *row = c->logits + (size_t)r * (size_t)c->m->hp.n_vocab;
#ifdef BITNET_CUDA
    /* deferred rows are copied on the first read of any of them, all at
     * once (one copy for the batch, as before deferral; a sampled row's
     * candidates were read on the device); the host buffer is a cache of
     * the device rows, hence the cast */
    if (c->logits_deferred) {
        if (bn_cuda_logits_fetch(c->cuda, c->logits) != BN_OK) return NULL;
        ((bn_context *)c)->logits_deferred = false;
    }
#endif
    return row;
}

bn_status bn_context_top_k(bn_context *c, int32_t i, const bn_logit_adjust *adj, int32_t k, int32_t *ids,
                           float *logits, int32_t *n) {
#ifdef BITNET_CUDA
    if (c && i >= 0 && i < c->n_tokens_last && c->logit_row[i] >= 0 && c->logits_deferred) {
        bn_status st = bn_cuda_top_k(c->cuda, c->logit_row[i], adj, k, ids, logits, n);
        if (st == BN_OK) c->n_device_samples++;
        return st;
    }
#else
    (void)c, (void)i, (void)adj, (void)k, (void)ids, (void)logits, (void)n;
#endif
    return BN_ERR_UNSUPPORTED;
}

static bn_status ensure_logits(bn_context *c, int32_t n_tokens, int32_t n_rows) {
    if ((size_t)n_tokens > c->logit_row_cap) {
        bn_aligned_free(c->logit_row);
        c->logit_row = bn_aligned_alloc(64, (size_t)n_tokens * sizeof(int32_t));
        c->logit_row_cap = c->logit_row ? (size_t)n_tokens : 0;
        if (!c->logit_row) return BN_ERR_NOMEM;
    }
    if ((size_t)n_rows > c->logits_cap) {
        logits_unpin(c);
        c->logits_deferred = false;
        bn_aligned_free(c->logits);
        const size_t bytes = (size_t)n_rows * (size_t)c->m->hp.n_vocab * sizeof(float);
        c->logits = bn_aligned_alloc(64, bytes);
        c->logits_cap = c->logits ? (size_t)n_rows : 0;
        if (!c->logits) return BN_ERR_NOMEM;
#ifdef BITNET_CUDA
        if (c->cuda) c->logits_pinned = bn_cuda_pin(c->logits, bytes);
#endif
    }
    return BN_OK;
}

bn_status bn_decode(bn_context *c, const bn_batch *b) {
    if (!c || !b || !b->tokens || b->n_tokens <= 0)
        return bn_fail(BN_ERR_INVALID_ARG, "bn_decode: an empty batch");
    const int n = b->n_tokens;
    const bn_hparams *hp = &c->m->hp;
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)n * 2);
    if (!seq) return bn_fail(BN_ERR_NOMEM, "out of memory");
    int32_t *pos = seq + n;
    int32_t *next = calloc((size_t)c->n_seq, sizeof(int32_t));
    bn_status st = next ? BN_OK : bn_fail(BN_ERR_NOMEM, "out of memory");
    /* Validate the whole batch before touching any state. */
    for (int s = 0; st == BN_OK && s < c->n_seq; s++) next[s] = c->seq_len[s];
    for (int i = 0; st == BN_OK && i < n; i++) {
        const int32_t s = b->seq_ids ? b->seq_ids[i] : 0;
        if (b->tokens[i] < 0 || b->tokens[i] >= hp->n_vocab) {
            st = bn_fail(BN_ERR_INVALID_ARG, "token id %d at batch index %d is out of range [0, %d)", b->tokens[i], i, hp->n_vocab);
            break;
        }
        if (s < 0 || s >= c->n_seq) {
            st = bn_fail(BN_ERR_INVALID_ARG, "sequence id %d at batch index %d is out of range [0, %d)", s, i, c->n_seq);
            break;
        }
        const int32_t p = b->positions ? b->positions[i] : next[s];
        if (p != next[s]) {
            st = bn_fail(BN_ERR_INVALID_ARG, "position %d of sequence %d does not continue its cache (next is %d); truncate the sequence first", p, s, next[s]);
            break;
        }
        if (p >= c->n_ctx) {
            st = bn_fail(BN_ERR_CONTEXT_FULL, "sequence %d would exceed the context of %d positions", s, c->n_ctx);
            break;
        }
        seq[i] = s;
        pos[i] = p;
        next[s] = p + 1;
    }
    /* Which rows get logits: requested ones, or the last token of each sequence. */
    int32_t n_rows = 0;
    if (st == BN_OK && (st = ensure_logits(c, n, 0)) == BN_OK) {
        for (int i = 0; i < n; i++) {
            bool want;
            if (c->all_logits) want = true;
            else if (b->want_logits) want = b->want_logits[i] != 0;
            else {
                want = true;
                for (int j = i + 1; j < n; j++) if (seq[j] == seq[i]) { want = false; break; }
            }
            c->logit_row[i] = want ? n_rows++ : -1;
        }
        st = ensure_logits(c, n, n_rows > 0 ? n_rows : 1);
    }
    c->n_tokens_last = st == BN_OK ? n : 0;
    c->logits_deferred = false;
    for (int c0 = 0; st == BN_OK && c0 < n; c0 += c->n_chunk) {
        const int cn = n - c0 < c->n_chunk ? n - c0 : c->n_chunk;
#ifdef BITNET_CUDA
        if (c->cuda) {
            /* a one-chunk batch (decode steps) leaves its logits on the GPU:
             * bn_sample then moves k candidates, not whole rows */
            bool deferred = false;
            st = bn_cuda_forward_chunk(c->cuda, cn, b->tokens + c0, seq + c0, pos + c0, c->logit_row + c0, c->logits,
                                       n <= c->n_chunk, &deferred);
            if (st == BN_OK && deferred) c->logits_deferred = true;
            for (int i = 0; st == BN_OK && i < cn; i++)
                if (pos[c0 + i] + 1 > c->seq_len[seq[c0 + i]]) c->seq_len[seq[c0 + i]] = pos[c0 + i] + 1;
            continue;
        }
#endif
        st = bn_forward_chunk(c, cn, b->tokens + c0, seq + c0, pos + c0, c->logit_row + c0, c0);
    }
    if (st != BN_OK) c->n_tokens_last = 0;
    free(next);
    free(seq);
    return st;
}
