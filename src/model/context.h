/* context.h — per-context state: KV caches of every sequence, scratch
 * buffers for one chunk of tokens, the kernel table and thread count. */
#ifndef BN_CONTEXT_H
#define BN_CONTEXT_H

#include "logit_adjust.h"
#include "model.h"

struct bn_context {
    const bn_model   *m;
    const bn_kernels *k;
    int32_t n_ctx, n_seq, n_chunk, n_threads;
    bool    all_logits;
    bn_logger logger;

    /* KV cache: [n_seq][n_layer][n_ctx][kv_dim] elements of kv_bytes (f32,
     * or f16 with kv_f16), K and V apart; bn_kv_offset counts elements. */
    void    *k_cache, *v_cache;
    bool     kv_f16;
    size_t   kv_bytes;
    int32_t *seq_len;          /* [n_seq] cached positions per sequence */

    /* scratch for one chunk of n_chunk tokens */
    float   *x;      /* [n_chunk, n_embd] residual stream          */
    float   *xb;     /* [n_chunk, max(n_embd, n_ff)] normed input  */
    float   *q;      /* [n_chunk, n_embd]                          */
    float   *kx, *vx;/* [n_chunk, kv_dim]                          */
    float   *att;    /* [n_chunk, n_embd]                          */
    float   *gate, *up; /* [n_chunk, n_ff]                         */
    int8_t  *q8;     /* [n_chunk, Kp_max] quantized activations    */
    float   *q8_scale; /* [n_chunk]                                */
    int32_t *q8_sum;   /* [n_chunk]                                */
    /* blocked attention (forward.c): query blocks of att_qb tokens x the
     * query heads of one KV head = att_rows rows; per thread a workspace of
     * att_ws_stride floats (packed Q, acc, score tile, mx, sum) and att_rows
     * limits; att_part holds the states of position ranges run apart
     * (BN_ATT_PARTS(n_threads) slots of att_rows * (head_dim + 2) floats). */
    bn_attn_fn attn;
    int32_t  att_qb, att_rows;
    size_t   att_ws_stride;
    float   *att_ws;        /* (+ 2 * BN_ATTN_TILE * head_dim: f16 tiles) */
    int32_t *att_lim;
    float   *att_part;
    int32_t *att_blk;   /* [n_chunk] first token of each query block   */
    float   *rope_inv_freq; /* [head_dim/2], computed once         */
    float   *rope_cs;  /* [n_chunk, head_dim] cos | sin per token  */

    /* results of the last bn_decode */
    float   *logits;       /* [n_rows, n_vocab]                    */
    size_t   logits_cap;   /* rows allocated                       */
    bool     logits_pinned; /* page-locked for the CUDA backend's copies */
    bool     logits_deferred; /* CUDA: the rows are still on the device
                                 (copied on the first bn_get_logits) */
    int64_t  n_device_samples; /* candidate sets chosen on the GPU (tests) */
    int32_t *logit_row;    /* [n_tokens] row index or -1           */
    int32_t  n_tokens_last;
    size_t   logit_row_cap;

    struct bn_cuda_state *cuda; /* non-NULL: the CUDA backend runs it */

    float   *hidden_dump;  /* optional [n_layer+2, max, n_embd]    */
    int32_t  hidden_max;
};

/* The k best adjusted logits of batch token i, chosen where they are (the
 * CUDA backend, rows not yet copied to the host): see bn_cuda_top_k.
 * BN_ERR_UNSUPPORTED (nothing set as error) when the row is on the host or
 * the request does not fit: sample the host row then. */
bn_status bn_context_top_k(bn_context *c, int32_t i, const bn_logit_adjust *adj, int32_t k, int32_t *ids,
                           float *logits, int32_t *n);

/* Run one chunk of tokens through the network (forward.c). tokens, seq,
 * pos: [n]; out_rows[i] >= 0 asks for logits of token i into that row. */
bn_status bn_forward_chunk(bn_context *c, int n, const int32_t *tokens, const int32_t *seq, const int32_t *pos,
                           const int32_t *out_rows, int32_t dump_offset);

/* Slots for partial attention states: long contexts at small batches are
 * cut into at most this many (block, KV head, range) tasks. */
#define BN_ATT_PARTS(nt) (8 * (nt))

/* Query rows (tokens x query heads of one KV head) that walk the K/V
 * positions together: each K/V tile (and its f16 widening) serves them all.
 * 64 rows (acc 32 KiB at head dim 128, from L2) beat 16 (acc in L1) by 4-17 %
 * in prompt speed at 512-4096 positions on Zen 4 (bench_ctx, both caches). */
#ifndef BN_ATT_ROWS
#define BN_ATT_ROWS 64
#endif

static inline size_t bn_kv_offset(const bn_context *c, int seq, int layer, int pos) {
    const size_t kvd = (size_t)c->m->hp.n_head_kv * (size_t)c->m->hp.head_dim;
    return (((size_t)seq * (size_t)c->m->hp.n_layer + (size_t)layer) * (size_t)c->n_ctx + (size_t)pos) * kvd;
}

#endif
