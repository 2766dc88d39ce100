/* cuda_backend.cu — the CUDA backend: weights uploaded once (one arena, plus
 * an int8 copy for tensor-core GEMMs when there is room), KV caches of every
 * sequence (f32, or f16 with BN_CUDA_KV_F16), scratch for one chunk, and
 * the forward pass as a sequence of kernels on one stream. Per step the host
 * sends the token ids / sequence ids / positions / logit rows in one copy and
 * gets the requested logits back in one copy; nothing else crosses the bus.
 * Steps of up to BN_CU_GRAPH_MAX_N tokens are replayed from CUDA graphs; a
 * one-token step runs all layers as one persistent kernel (cuda_persist.cu)
 * unless BN_CUDA_NO_PERSISTENT. The head: f16 (cuBLAS) or the model's 8-bit
 * quantized head. Switches: bn_context_params.cuda_flags (no environment).
 * Kernel versions and their measurements: docs/CUDA_NOTES.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.cuh"

extern "C" {
#include "core/core.h"
}

#define BN_CU_GEMM_MIN_N 65   /* tensor-core GEMM from this many tokens when the
                                 int8 weights are expanded per call ...      */
#define BN_CU_GEMM_MIN_N8 5   /* ... and from this many with a resident copy  */
#define BN_CU_GRAPH_MAX_N 64  /* steps of at most this many tokens use graphs */
#define BN_CU_HEAD_ROWS 64    /* logits rows per head GEMM                    */
#define BN_CU_NGRAPH 8
/* Flash-decoding splits of the attention positions. A step of at most
 * BN_CU_DEC_MAX_N tokens (decode) cuts them finer, so that its few heads
 * spread over more blocks: 32 positions lifted batch-1 decode from 559 to
 * 603 tokens/s (persistent kernel) and 482 to 570 (separate kernels) on an
 * H100 at 128 positions, but slowed a 2048-token prefill from 7.9k to 5.7k
 * tokens/s (more partial states to merge), hence two lengths. Longer
 * splits, in multiples of 64, once the context needs more than the cap. */
#define BN_CU_SPLIT_LEN 256
#define BN_CU_MAX_SPLITS 32
#define BN_CU_SPLIT_DEC 32
#define BN_CU_MAX_SPLITS_DEC 128
#define BN_CU_DEC_MAX_N 4

typedef struct bn_cu_graph {
    int             n, cnt;
    cudaGraphExec_t exec;
} bn_cu_graph;

struct bn_cuda_state {
    const bn_model *m;
    int             n_ctx, n_seq, n_chunk;
    int             dev;
    cudaStream_t    st;
    cublasHandle_t  blas;
    void           *blas_ws;
    /* weights */
    char           *arena;
    size_t          arena_bytes;
    bn_cu_layer    *layers;
    const void     *embd;     /* gather table, in its source type          */
    int             embd_type;
    const __half   *head;     /* [n_vocab, n_embd] f16 (same as embd if F16) */
    const float    *out_norm, *inv_freq;
    int8_t         *w8arena;  /* resident int8 weights (GEMM path), or NULL  */
    size_t          w8_bytes;
    /* KV cache */
    bn_cu_kv        kv;
    size_t          kv_bytes;
    /* scratch */
    float          *x, *qkv, *att, *gu, *part, *logits;
    int            *counters; /* attention split counters [n_chunk][n_head] */
    __half         *hn;
    bn_cu_act       act;
    int            *in;       /* tok | seq | pos | rows, n_chunk each        */
    int            *h_in;     /* pinned staging of the same                  */
    int8_t         *wexp;     /* expanded weights for the GEMM path          */
    int32_t        *gacc;
    size_t          ws_bytes;
    int             split_len, n_split;         /* prefill                        */
    int             split_dec, n_split_dec;     /* steps of <= BN_CU_DEC_MAX_N    */
    bool            gemm_ok;
    int             gemm_min_n;
    bool            pdl;      /* programmatic dependent launch (sm_90+)     */
    bool            fuse;     /* decode GEMVs quantize their own input      */
    bool            fuse_rope;/* decode attention does RoPE + the KV store  */
    uint32_t        flags;    /* BN_CUDA_* of the context parameters        */
    /* batch-1 decode as one persistent kernel (v4), when it fits */
    bool            persist;
    bn_cu_persist   P;
    int             p_grid;
    size_t          p_smem;
    bn_cu_layer    *d_layers; /* device copy of the layer table             */
    unsigned       *bar;
    /* int8 head (model loaded with head_bits 8): signed codes + f16 scales */
    int8_t         *qh_codes;
    __half         *qh_scales;
    int8_t         *hq;       /* quantized head input [rows, Kp(e)]         */
    float          *hxs;
    bn_cu_graph     graphs[BN_CU_NGRAPH];
    int             n_graphs;
    bool            graphs_off;
    /* deferred logits: device row j of `logits` is host row lazy_dst[j] */
    int            *lazy_dst;
    int             lazy_n;
    /* sampling (cuda_sample.cu): an adjusted copy of a row, the candidate
     * keys of both passes, the adjustment lists (pinned staging + device) */
    float          *srow;
    unsigned long long *keys1, *keys, *h_keys;
    int            *d_adj, *h_adj;
};

#define BN_CU_ADJ_MAX 4096 /* bias + penalty entries per sampled row */

extern "C" bn_status bn_cuda_probe(char *desc, size_t cap) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        return bn_fail(BN_ERR_UNSUPPORTED, "no CUDA GPU is available (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "device count 0");
    }
    cudaDeviceProp p;
    BN_CU(cudaGetDeviceProperties(&p, 0), "device properties");
    if (p.major < 6) return bn_fail(BN_ERR_UNSUPPORTED, "GPU %s (sm_%d%d) lacks dp4a (needs sm_61+)", p.name, p.major, p.minor);
    if (desc && cap) snprintf(desc, cap, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor, p.totalGlobalMem / 1073741824.0);
    return BN_OK;
}

/* ---- upload */

static size_t align_up(size_t n) { return (n + 255) & ~(size_t)255; }

static size_t linear_bytes(int M, int K) { return align_up((size_t)M * bn_t2r_row_bytes(K)) + align_up((size_t)M * 4); }

static bn_status upload_linear(bn_cuda_state *s, char **cur, const bn_linear *const *parts, int np, bn_cu_linear *out,
                               float *hscale) {
    const int K = parts[0]->n_in;
    const size_t rb = bn_t2r_row_bytes(K);
    int M = 0;
    for (int i = 0; i < np; i++) {
        if (parts[i]->n_in != K) return bn_fail(BN_ERR_SHAPE, "cuda: fused linears disagree on n_in");
        M += parts[i]->n_out;
    }
    char *w = *cur;
    size_t off = 0;
    int r = 0;
    for (int i = 0; i < np; i++) {
        const size_t b = (size_t)parts[i]->n_out * rb;
        BN_CU(cudaMemcpyAsync(w + off, parts[i]->w, b, cudaMemcpyHostToDevice, s->st), "uploading weights");
        off += b;
        for (int j = 0; j < parts[i]->n_out; j++) hscale[r++] = parts[i]->scale;
    }
    bn_cu_sanitize(s->st, (uint32_t *)w, off / 4);
    float *sc = (float *)(w + align_up(off));
    BN_CU(cudaMemcpyAsync(sc, hscale, (size_t)M * 4, cudaMemcpyHostToDevice, s->st), "uploading scales");
    /* hscale is reused by the next call: wait for this copy */
    BN_CU(cudaStreamSynchronize(s->st), "uploading scales");
    out->w = (const uint4 *)w;
    out->rscale = sc;
    out->M = M;
    out->K = K;
    out->Kp = bn_pad_k(K);
    *cur = w + align_up(off) + align_up((size_t)M * 4);
    return BN_OK;
}

static bn_status upload_floats(bn_cuda_state *s, char **cur, const float *src, size_t n, const float **out) {
    float *d = (float *)*cur;
    BN_CU(cudaMemcpyAsync(d, src, n * 4, cudaMemcpyHostToDevice, s->st), "uploading norms");
    *cur += align_up(n * 4);
    *out = d;
    return BN_OK;
}

static float embd_value(const bn_model *m, size_t i) {
    switch (m->embd_type) {
    case BN_TYPE_F16: return bn_f16_to_f32(((const uint16_t *)m->tok_embd)[i]);
    case BN_TYPE_BF16: return bn_bf16_to_f32(((const uint16_t *)m->tok_embd)[i]);
    default: return ((const float *)m->tok_embd)[i];
    }
}

static bn_status upload_model(bn_cuda_state *s) {
    const bn_model *m = s->m;
    const bn_hparams *hp = &m->hp;
    const int e = hp->n_embd, f = hp->n_ff, L = hp->n_layer;
    const size_t V = (size_t)hp->n_vocab;
    const size_t esz = m->embd_type == BN_TYPE_F32 ? 4 : 2;
    const bool sub = hp->arch == BN_ARCH_BITNET_B158;
    size_t total = 0;
    int max_rows = 0;
    for (int l = 0; l < L; l++) {
        const bn_layer *ly = &m->layers[l];
        const int mq = ly->wq.n_out + ly->wk.n_out + ly->wv.n_out, mg = ly->w_gate.n_out + ly->w_up.n_out;
        total += linear_bytes(mq, e) + linear_bytes(ly->wo.n_out, ly->wo.n_in) + linear_bytes(mg, e) +
                 linear_bytes(ly->w_down.n_out, ly->w_down.n_in);
        total += 2 * align_up((size_t)e * 4) + (ly->attn_sub_norm ? align_up((size_t)e * 4) : 0) +
                 (ly->ffn_sub_norm ? align_up((size_t)f * 4) : 0);
        if (mq > max_rows) max_rows = mq;
        if (mg > max_rows) max_rows = mg;
        if (ly->w_down.n_out > max_rows) max_rows = ly->w_down.n_out;
    }
    (void)sub;
    const bool q8 = m->qhead.bits == 8;
    if (m->qhead.bits && !q8)
        return bn_fail(BN_ERR_UNSUPPORTED, "cuda: the quantized head must have 8-bit rows (--head q8), not %d", m->qhead.bits);
    const size_t kpe = (size_t)bn_pad_k(e);
    total += align_up(V * e * esz);
    if (q8) total += align_up(V * kpe) + align_up(V * (kpe / 64) * 2);
    else if (m->embd_type != BN_TYPE_F16) total += align_up(V * e * 2);
    total += align_up((size_t)e * 4) + align_up((size_t)hp->head_dim * 2);
    BN_CU(cudaMalloc((void **)&s->arena, total), "allocating weights");
    s->arena_bytes = total;
    char *cur = s->arena;
    float *hscale = (float *)malloc((size_t)max_rows * 4);
    s->layers = (bn_cu_layer *)calloc((size_t)L, sizeof(bn_cu_layer));
    if (!hscale || !s->layers) {
        free(hscale);
        return bn_fail(BN_ERR_NOMEM, "out of memory");
    }
    bn_status st = BN_OK;
    for (int l = 0; st == BN_OK && l < L; l++) {
        const bn_layer *ly = &m->layers[l];
        bn_cu_layer *d = &s->layers[l];
        const bn_linear *qkv[3] = {&ly->wq, &ly->wk, &ly->wv}, *o[1] = {&ly->wo}, *gu[2] = {&ly->w_gate, &ly->w_up},
                        *dn[1] = {&ly->w_down};
        if ((st = upload_linear(s, &cur, qkv, 3, &d->qkv, hscale)) != BN_OK) break;
        if ((st = upload_linear(s, &cur, o, 1, &d->o, hscale)) != BN_OK) break;
        if ((st = upload_linear(s, &cur, gu, 2, &d->gu, hscale)) != BN_OK) break;
        if ((st = upload_linear(s, &cur, dn, 1, &d->down, hscale)) != BN_OK) break;
        if ((st = upload_floats(s, &cur, ly->attn_norm, (size_t)e, &d->attn_norm)) != BN_OK) break;
        if ((st = upload_floats(s, &cur, ly->ffn_norm, (size_t)e, &d->ffn_norm)) != BN_OK) break;
        if (ly->attn_sub_norm && (st = upload_floats(s, &cur, ly->attn_sub_norm, (size_t)e, &d->attn_sub)) != BN_OK) break;
        if (ly->ffn_sub_norm && (st = upload_floats(s, &cur, ly->ffn_sub_norm, (size_t)f, &d->ffn_sub)) != BN_OK) break;
    }
    free(hscale);
    if (st != BN_OK) return st;
    if ((st = upload_floats(s, &cur, m->output_norm, (size_t)e, &s->out_norm)) != BN_OK) return st;
    /* inv_freq exactly as ref.c computes it, on the host */
    float invf[512];
    const int half = hp->head_dim / 2;
    if (half > 512) return bn_fail(BN_ERR_UNSUPPORTED, "cuda: head_dim %d is too large", hp->head_dim);
    for (int i = 0; i < half; i++) invf[i] = 1.0f / powf(hp->rope_theta, (float)(2 * i) / (float)hp->head_dim);
    if ((st = upload_floats(s, &cur, invf, (size_t)half, &s->inv_freq)) != BN_OK) return st;
    /* embedding table as is (exact gather), plus an f16 copy for the head */
    char *E = cur;
    BN_CU(cudaMemcpyAsync(E, m->tok_embd, V * e * esz, cudaMemcpyHostToDevice, s->st), "uploading the embeddings");
    cur += align_up(V * e * esz);
    s->embd = E;
    s->embd_type = m->embd_type == BN_TYPE_F16 ? BN_CU_F16 : m->embd_type == BN_TYPE_BF16 ? BN_CU_BF16 : BN_CU_F32;
    if (q8) {
        /* the CPU's 8-bit head rows (u = c + 128) as signed codes */
        if (m->qhead.row_bytes != kpe || m->qhead.nblk != (int)(kpe / 64))
            return bn_fail(BN_ERR_SHAPE, "cuda: unexpected quantized head layout");
        s->qh_codes = (int8_t *)cur;
        BN_CU(cudaMemcpyAsync(cur, m->qhead.codes, V * kpe, cudaMemcpyHostToDevice, s->st), "uploading the int8 head");
        bn_cu_xor80(s->st, (uint32_t *)cur, V * kpe / 4);
        cur += align_up(V * kpe);
        s->qh_scales = (__half *)cur;
        BN_CU(cudaMemcpyAsync(cur, m->qhead.scales, V * (kpe / 64) * 2, cudaMemcpyHostToDevice, s->st),
              "uploading the int8 head");
        cur += align_up(V * (kpe / 64) * 2);
    } else if (m->embd_type == BN_TYPE_F16) {
        s->head = (const __half *)E;
    } else {
        /* convert on the host in row slabs through one bounded buffer */
        const size_t slab = 4096;
        uint16_t *tmp = (uint16_t *)malloc(slab * e * 2);
        if (!tmp) return bn_fail(BN_ERR_NOMEM, "out of memory");
        __half *H = (__half *)cur;
        for (size_t r0 = 0; st == BN_OK && r0 < V; r0 += slab) {
            const size_t nr = V - r0 < slab ? V - r0 : slab;
            for (size_t i = 0; i < nr * e; i++) tmp[i] = bn_f32_to_f16(embd_value(m, r0 * e + i));
            cudaError_t ce = cudaMemcpy(H + r0 * e, tmp, nr * e * 2, cudaMemcpyHostToDevice);
            if (ce != cudaSuccess) st = bn_cuda_fail(ce, "uploading the head");
        }
        free(tmp);
        if (st != BN_OK) return st;
        s->head = H;
        cur += align_up(V * e * 2);
    }
    BN_CU(cudaStreamSynchronize(s->st), "uploading the model");
    return BN_OK;
}

/* Keep an int8 copy of every ternary matrix (4x the 2-bit bytes) for the
 * tensor-core GEMM of batched decode and prefill, when the GPU has room
 * for it with 2 GiB to spare; BN_CUDA_NO_INT8_COPY turns it off. */
static bn_status make_int8_copy(bn_cuda_state *s) {
    if (s->flags & BN_CUDA_NO_INT8_COPY) return BN_OK;
    const int L = s->m->hp.n_layer;
    size_t total = 0;
    for (int l = 0; l < L; l++) {
        const bn_cu_layer *ly = &s->layers[l];
        const bn_cu_linear *ls[4] = {&ly->qkv, &ly->o, &ly->gu, &ly->down};
        for (int i = 0; i < 4; i++) total += align_up((size_t)ls[i]->M * ls[i]->Kp);
    }
    size_t fr = 0, tot = 0;
    BN_CU(cudaMemGetInfo(&fr, &tot), "memory info");
    if (fr < total + ((size_t)2 << 30)) {
        bn_log(&s->m->logger, BN_LOG_INFO, "cuda: no room for int8 weights (%.1f MiB); GEMMs expand per call",
               total / 1048576.0);
        return BN_OK;
    }
    BN_CU(cudaMalloc((void **)&s->w8arena, total), "allocating int8 weights");
    s->w8_bytes = total;
    int8_t *cur = s->w8arena;
    for (int l = 0; l < L; l++) {
        bn_cu_layer *ly = &s->layers[l];
        bn_cu_linear *ls[4] = {&ly->qkv, &ly->o, &ly->gu, &ly->down};
        for (int i = 0; i < 4; i++) {
            bn_cu_expand(s->st, (const uint8_t *)ls[i]->w, ls[i]->M, ls[i]->Kp, cur);
            ls[i]->w8 = cur;
            cur += align_up((size_t)ls[i]->M * ls[i]->Kp);
        }
    }
    BN_CU(cudaStreamSynchronize(s->st), "expanding int8 weights");
    return BN_OK;
}

/* ---- create / free */

extern "C" void bn_cuda_free(bn_cuda_state *s) {
    if (!s) return;
    for (int i = 0; i < s->n_graphs; i++) cudaGraphExecDestroy(s->graphs[i].exec);
    if (s->blas) cublasDestroy(s->blas);
    void *dbufs[] = {s->d_layers, s->bar, s->hq, s->hxs, s->arena, s->w8arena, s->kv.k, s->kv.v, s->x, s->qkv, s->att, s->gu, s->part, s->counters, s->logits, s->hn,
                     s->act.q, s->act.xs, s->act.xsum, s->in, s->wexp, s->gacc, s->blas_ws, s->srow, s->keys1, s->keys, s->d_adj};
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++)
        if (dbufs[i]) cudaFree(dbufs[i]);
    if (s->h_in) cudaFreeHost(s->h_in);
    if (s->h_keys) cudaFreeHost(s->h_keys);
    if (s->h_adj) cudaFreeHost(s->h_adj);
    free(s->lazy_dst);
    if (s->st) cudaStreamDestroy(s->st);
    free(s->layers);
    free(s);
}

static bn_status dalloc(void **p, uint64_t n, size_t *acc, const char *what) {
    BN_CU(cudaMalloc(p, n ? n : 1), what);
    *acc += n;
    return BN_OK;
}

/* The persistent batch-1 kernel, when the GPU has cooperative launch and a
 * layer's weight slices fit its shared memory; otherwise (logged) batch-1
 * steps keep the separate kernels. */
static bn_status plan_persistent(bn_cuda_state *s) {
    const bn_hparams *hp = &s->m->hp;
    bn_cu_persist *P = &s->P;
    memset(P, 0, sizeof *P);
    const int maxk = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    if (hp->n_embd % 4 || hp->n_ff % 4 || (hp->n_head * hp->head_dim) % 4) {
        bn_log(&s->m->logger, BN_LOG_INFO, "cuda: batch-1 decode by separate kernels (rows not a multiple of 4)");
        return BN_OK;
    }
    bn_status st = bn_cu_persist_plan(s->layers, hp->n_layer, maxk, hp->head_dim, s->split_dec, P, &s->p_grid,
                                      &s->p_smem);
    if (st != BN_OK) {
        bn_log(&s->m->logger, BN_LOG_INFO, "cuda: batch-1 decode by separate kernels (%s)", bn_last_error());
        return BN_OK;
    }
    BN_CU(cudaMalloc((void **)&s->d_layers, (size_t)hp->n_layer * sizeof(bn_cu_layer)), "allocating the layer table");
    BN_CU(cudaMemcpy(s->d_layers, s->layers, (size_t)hp->n_layer * sizeof(bn_cu_layer), cudaMemcpyHostToDevice),
          "uploading the layer table");
    BN_CU(cudaMalloc((void **)&s->bar, sizeof(unsigned)), "allocating the grid barrier");
    P->layers = s->d_layers;
    P->n_layer = hp->n_layer;
    P->e = hp->n_embd;
    P->f = hp->n_ff;
    P->qd = hp->n_head * hp->head_dim;
    P->act = hp->act == BN_ACT_RELU2 ? 0 : 1;
    P->eps = hp->rms_eps;
    P->scale = 1.0f / sqrtf((float)hp->head_dim);
    P->embd = s->embd;
    P->embd_type = s->embd_type;
    P->tok = s->in;
    P->seq = s->in + s->n_chunk;
    P->pos = s->in + 2 * s->n_chunk;
    P->x = s->x;
    P->qkv = s->qkv;
    P->att = s->att;
    P->gu = s->gu;
    P->part = s->part;
    P->counters = s->counters;
    P->kv = s->kv;
    P->split_len = s->split_dec; /* batch 1: the decode splits, as the separate path */
    P->n_split = s->n_split_dec;
    P->inv_freq = s->inv_freq;
    P->bar = s->bar;
    s->persist = true;
    return BN_OK;
}

/* Positions per split: `len`, or longer (a multiple of 64) when n_ctx would
 * need more than max_splits splits. */
static int split_length(int n_ctx, int len, int max_splits) {
    if ((n_ctx + len - 1) / len <= max_splits) return len;
    return ((n_ctx + max_splits - 1) / max_splits + 63) / 64 * 64;
}

static bn_status create_buffers(bn_cuda_state *s) {
    const bn_hparams *hp = &s->m->hp;
    const uint64_t nc = (uint64_t)s->n_chunk, e = (uint64_t)hp->n_embd, f = (uint64_t)hp->n_ff;
    const uint64_t qd = (uint64_t)hp->n_head * hp->head_dim, kvd = (uint64_t)hp->n_head_kv * hp->head_dim;
    const uint64_t kpmax = (uint64_t)bn_pad_k(hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd);
    /* KV cache: [n_seq][n_layer][n_ctx][kvd], K and V apart. f32 by default:
     * on the hf-tiny fixtures an f16 cache alone moves logits past the SPEC
     * §2 tolerance (mean |d| 0.19; the CPU path with f16-rounded K/V shows
     * the same), so f16 (half the memory) is opt-in: BN_CUDA_KV_F16. */
    s->kv.f16 = (s->flags & BN_CUDA_KV_F16) != 0;
    uint64_t kv = 0;
    if (!bn_mul_ok((uint64_t)s->n_seq * hp->n_layer, (uint64_t)s->n_ctx, &kv) ||
        !bn_mul_ok(kv, kvd * (s->kv.f16 ? 2 : 4), &kv))
        return bn_fail(BN_ERR_NOMEM, "cuda: KV cache size overflows");
    size_t kvb = 0, ws = 0;
    bn_status st;
    if ((st = dalloc((void **)&s->kv.k, kv, &kvb, "allocating the K cache")) != BN_OK) return st;
    if ((st = dalloc((void **)&s->kv.v, kv, &kvb, "allocating the V cache")) != BN_OK) return st;
    s->kv_bytes = kvb;
    s->kv.n_layer = hp->n_layer;
    s->kv.n_ctx = s->n_ctx;
    s->kv.n_head = hp->n_head;
    s->kv.n_head_kv = hp->n_head_kv;
    s->kv.head_dim = hp->head_dim;
    s->split_len = split_length(s->n_ctx, BN_CU_SPLIT_LEN, BN_CU_MAX_SPLITS);
    s->split_dec = split_length(s->n_ctx, BN_CU_SPLIT_DEC, BN_CU_MAX_SPLITS_DEC);
    if ((size_t)(s->split_len + 2 * hp->head_dim) * 4 > 46 * 1024 ||
        (size_t)(s->split_dec + 2 * hp->head_dim) * 4 > 46 * 1024)
        return bn_fail(BN_ERR_UNSUPPORTED, "cuda: n_ctx %d is too long for the attention kernel", s->n_ctx);
    s->n_split = (s->n_ctx + s->split_len - 1) / s->split_len;
    s->n_split_dec = (s->n_ctx + s->split_dec - 1) / s->split_dec;
    const uint64_t nc_dec = nc < BN_CU_DEC_MAX_N ? nc : BN_CU_DEC_MAX_N;
    uint64_t part = nc * hp->n_head * s->n_split * (uint64_t)(hp->head_dim + 2);
    if (nc_dec * hp->n_head * s->n_split_dec * (uint64_t)(hp->head_dim + 2) > part)
        part = nc_dec * hp->n_head * s->n_split_dec * (uint64_t)(hp->head_dim + 2);
    const uint64_t hrows = nc < BN_CU_HEAD_ROWS ? nc : BN_CU_HEAD_ROWS;
    struct { void **p; uint64_t n; const char *what; } b[] = {
        {(void **)&s->x, nc * e * 4, "x"},
        {(void **)&s->qkv, nc * (qd + 2 * kvd) * 4, "qkv"},
        {(void **)&s->att, nc * qd * 4, "att"},
        {(void **)&s->gu, nc * 2 * f * 4, "gate/up"},
        {(void **)&s->part, part * 4, "attention partials"},
        {(void **)&s->counters, nc * hp->n_head * 4, "attention counters"},
        {(void **)&s->logits, hrows * (uint64_t)hp->n_vocab * 4, "logits"},
        {(void **)&s->hn, hrows * e * 2, "head input"},
        {(void **)&s->act.q, nc * kpmax, "int8 activations"},
        {(void **)&s->act.xs, nc * 4, "scales"},
        {(void **)&s->act.xsum, nc * 4, "sums"},
        {(void **)&s->in, nc * 4 * 4, "step inputs"},
        {(void **)&s->srow, (uint64_t)hp->n_vocab * 4, "sampling row"},
        {(void **)&s->keys1, (uint64_t)BN_CU_TOPK_KEYS * 8, "sampling candidates"},
        {(void **)&s->keys, (uint64_t)BN_CU_TOPK_MAX * 8, "sampling candidates"},
        {(void **)&s->d_adj, (uint64_t)BN_CU_ADJ_MAX * 4 * 4, "sampling adjustments"},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if ((st = dalloc(b[i].p, b[i].n, &ws, b[i].what)) != BN_OK) return st;
    BN_CU(cudaMemsetAsync(s->counters, 0, nc * hp->n_head * 4, s->st), "clearing counters");
    if (s->n_chunk >= s->gemm_min_n) {
        uint64_t mx = 0;
        int max_m = 0;
        for (int l = 0; l < hp->n_layer; l++) {
            const bn_cu_layer *ly = &s->layers[l];
            const bn_cu_linear *ls[4] = {&ly->qkv, &ly->o, &ly->gu, &ly->down};
            for (int i = 0; i < 4; i++) {
                if ((uint64_t)ls[i]->M * ls[i]->Kp > mx) mx = (uint64_t)ls[i]->M * ls[i]->Kp;
                if (ls[i]->M > max_m) max_m = ls[i]->M;
            }
        }
        if (!s->w8arena && (st = dalloc((void **)&s->wexp, mx, &ws, "expanded weights")) != BN_OK) return st;
        if ((st = dalloc((void **)&s->gacc, nc * (uint64_t)max_m * 4, &ws, "GEMM accumulators")) != BN_OK) return st;
    }
    const size_t blas_ws = 32u << 20;
    if ((st = dalloc(&s->blas_ws, blas_ws, &ws, "cuBLAS workspace")) != BN_OK) return st;
    BN_CB(cublasSetWorkspace(s->blas, s->blas_ws, blas_ws), "workspace");
    BN_CU(cudaMallocHost((void **)&s->h_in, (size_t)nc * 4 * 4), "pinned staging");
    BN_CU(cudaMallocHost((void **)&s->h_keys, (size_t)BN_CU_TOPK_MAX * 8), "pinned staging");
    BN_CU(cudaMallocHost((void **)&s->h_adj, (size_t)BN_CU_ADJ_MAX * 4 * 4), "pinned staging");
    s->lazy_dst = (int *)malloc((size_t)hrows * sizeof(int));
    if (!s->lazy_dst) return bn_fail(BN_ERR_NOMEM, "out of memory");
    if (s->qh_codes) {
        if ((st = dalloc((void **)&s->hq, hrows * kpmax, &ws, "head input")) != BN_OK) return st;
        if ((st = dalloc((void **)&s->hxs, hrows * 4, &ws, "head scales")) != BN_OK) return st;
    }
    if (!(s->flags & BN_CUDA_NO_PERSISTENT)) {
        if ((st = plan_persistent(s)) != BN_OK) return st;
        ws += s->persist ? sizeof(unsigned) + (size_t)hp->n_layer * sizeof(bn_cu_layer) : 0;
    }
    s->ws_bytes = ws;
    return BN_OK;
}

extern "C" bn_status bn_cuda_create(const bn_model *m, int32_t n_ctx, int32_t n_seq, int32_t n_chunk,
                                    uint32_t flags, bn_cuda_state **out) {
    *out = NULL;
    char desc[256];
    bn_status st = bn_cuda_probe(desc, sizeof desc);
    if (st != BN_OK) return st;
    const bn_hparams *hp = &m->hp;
    if (hp->head_dim % 2 || hp->n_head % hp->n_head_kv || n_ctx <= 0 || n_seq <= 0 || n_chunk <= 0)
        return bn_fail(BN_ERR_INVALID_ARG, "cuda: unusable shapes");
    bn_cuda_state *s = (bn_cuda_state *)calloc(1, sizeof *s);
    if (!s) return bn_fail(BN_ERR_NOMEM, "out of memory");
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_seq = n_seq;
    s->n_chunk = n_chunk;
    s->flags = flags;
    cudaError_t ce = cudaSetDevice(0);
    if (ce == cudaSuccess) ce = cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking);
    if (ce != cudaSuccess) st = bn_cuda_fail(ce, "creating a stream");
    if (st == BN_OK && cublasCreate(&s->blas) != CUBLAS_STATUS_SUCCESS) {
        s->blas = NULL;
        st = bn_fail(BN_ERR_INTERNAL, "cublas: cannot create a handle");
    }
    if (st == BN_OK && cublasSetStream(s->blas, s->st) != CUBLAS_STATUS_SUCCESS)
        st = bn_fail(BN_ERR_INTERNAL, "cublas: cannot set the stream");
    if (st == BN_OK) {
        /* PDL on Hopper and later unless BN_CUDA_NO_PDL */
        cudaDeviceProp p;
        s->pdl = cudaGetDeviceProperties(&p, 0) == cudaSuccess && p.major >= 9 && !(flags & BN_CUDA_NO_PDL);
        /* One-token fusions of the separate-kernel path (docs/CUDA_NOTES.md
         * v3): RoPE + KV store inside attention pays (7 us vs 4 + 6) and is
         * on unless BN_CUDA_NO_FUSE_ROPE; norm+quantize as a GEMV prologue
         * measured slower and is opt-in (BN_CUDA_FUSE_NORM). */
        s->fuse = (flags & BN_CUDA_FUSE_NORM) != 0;
        s->fuse_rope = !(flags & BN_CUDA_NO_FUSE_ROPE);
    }
    if (st == BN_OK) st = upload_model(s);
    if (st == BN_OK) st = make_int8_copy(s);
    s->gemm_min_n = s->w8arena ? BN_CU_GEMM_MIN_N8 : BN_CU_GEMM_MIN_N;
    if (st == BN_OK) st = create_buffers(s);
    s->gemm_ok = s->gacc != NULL;
    if (st != BN_OK) {
        bn_error_prefix("CUDA backend on %s", desc);
        bn_cuda_free(s);
        return st;
    }
    bn_log(&m->logger, BN_LOG_INFO,
           "cuda: %s: weights %.1f MiB (+ %.1f MiB int8 copy for GEMMs), KV cache %.1f MiB (%s, %d x %d positions), "
           "workspace %.1f MiB; head %s; batch-1 decode %s",
           desc, s->arena_bytes / 1048576.0, s->w8_bytes / 1048576.0, s->kv_bytes / 1048576.0, s->kv.f16 ? "f16" : "f32",
           n_seq, n_ctx, s->ws_bytes / 1048576.0, s->qh_codes ? "int8" : "f16",
           s->persist ? "persistent kernel" : "separate kernels");
    *out = s;
    return BN_OK;
}

/* ---- the forward pass */

static bn_status linear(bn_cuda_state *s, const bn_cu_linear *L, int n, float *y, int ldy, bool add) {
    if (n >= s->gemm_min_n && s->gemm_ok) {
        bn_status st = bn_cu_tgemm_cublas(s->st, s->pdl, s->blas, L, s->act, n, s->wexp, s->gacc, y, ldy, add);
        if (st == BN_OK) return BN_OK;
        /* int8 GEMM unavailable: stay on the dp4a kernel from now on */
        s->gemm_ok = false;
        bn_log(&s->m->logger, BN_LOG_WARN, "cuda: %s; using the dp4a kernel for prefill", bn_last_error());
    }
    bn_cu_tgemv(s->st, s->pdl, L, s->act, n, y, ldy, add);
    return BN_OK;
}

/* (RMSNorm +) quantize the n input rows, then the linear: two kernels, or
 * for one token with BN_CUDA_FUSE_NORM one fused kernel. */
static bn_status norm_linear(bn_cuda_state *s, const bn_cu_linear *L, int n, const float *x, int ldx, const float *up,
                             int act, const float *nw, int k, float *y, int ldy, bool add) {
    if (n == 1 && s->fuse && bn_cu_tgemv_fused(s->st, s->pdl, L, x, up, act, nw, k, s->m->hp.rms_eps, y, add))
        return BN_OK;
    bn_cu_norm_quant(s->st, s->pdl, x, ldx, up, act, nw, k, s->m->hp.rms_eps, n, s->act);
    return linear(s, L, n, y, ldy, add);
}

/* Everything from the embedding to the head's device logits (cnt rows of
 * the current group), on the stream; graph-capturable for n <= GRAPH_MAX_N. */
static bn_status run_layers(bn_cuda_state *s, int n) {
    const bn_hparams *hp = &s->m->hp;
    const int e = hp->n_embd, f = hp->n_ff, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    const int ldqkv = qd + 2 * kvd;
    const int *tok = s->in, *seq = s->in + s->n_chunk, *pos = s->in + 2 * s->n_chunk;
    const int act = hp->act == BN_ACT_RELU2 ? 0 : 1;
    bn_status st = BN_OK;
    if (n == 1 && s->persist) {
        bn_cu_persist_launch(s->st, &s->P, s->p_grid, s->p_smem);
        return BN_OK;
    }
    bn_cu_embed(s->st, s->embd, s->embd_type, e, tok, n, s->x);
    for (int l = 0; st == BN_OK && l < hp->n_layer; l++) {
        const bn_cu_layer *L = &s->layers[l];
        if ((st = norm_linear(s, &L->qkv, n, s->x, e, NULL, 0, L->attn_norm, e, s->qkv, ldqkv, false)) != BN_OK) break;
        const bool fused_rope = n == 1 && s->fuse_rope;
        if (!fused_rope) bn_cu_rope_store(s->st, s->pdl, s->qkv, ldqkv, s->inv_freq, pos, seq, n, &s->kv, l);
        const bool dec = n <= BN_CU_DEC_MAX_N;
        bn_cu_attention(s->st, s->pdl, s->qkv, ldqkv, pos, seq, n, &s->kv, l, dec ? s->split_dec : s->split_len,
                        dec ? s->n_split_dec : s->n_split, s->part, s->counters, s->att, qd,
                        fused_rope ? s->inv_freq : NULL);
        if ((st = norm_linear(s, &L->o, n, s->att, qd, NULL, 0, L->attn_sub, qd, s->x, e, true)) != BN_OK) break;
        if ((st = norm_linear(s, &L->gu, n, s->x, e, NULL, 0, L->ffn_norm, e, s->gu, 2 * f, false)) != BN_OK) break;
        if ((st = norm_linear(s, &L->down, n, s->gu, 2 * f, s->gu + f, act, L->ffn_sub, f, s->x, e, true)) != BN_OK)
            break;
    }
    return st;
}

static bn_status run_head(bn_cuda_state *s, int r0, int cnt) {
    const bn_hparams *hp = &s->m->hp;
    const int *rows = s->in + 3 * s->n_chunk + r0;
    if (s->qh_codes) {
        const int kp = bn_pad_k(hp->n_embd);
        bn_cu_head_quant(s->st, s->x, hp->n_embd, rows, cnt, s->out_norm, hp->rms_eps, s->hq, s->hxs);
        if (!bn_cu_qhead(s->st, s->qh_codes, s->qh_scales, hp->n_vocab, kp, s->hq, s->hxs, cnt, s->logits))
            return bn_fail(BN_ERR_UNSUPPORTED, "cuda: n_embd %d is too wide for the int8 head", hp->n_embd);
        return BN_OK;
    }
    bn_cu_head_norm(s->st, s->pdl, s->x, hp->n_embd, rows, cnt, s->out_norm, hp->rms_eps, s->hn);
    const float one = 1.0f, zero = 0.0f;
    BN_CB(cublasGemmEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, hp->n_vocab, cnt, hp->n_embd, &one, s->head, CUDA_R_16F,
                       hp->n_embd, s->hn, CUDA_R_16F, hp->n_embd, &zero, s->logits, CUDA_R_32F, hp->n_vocab,
                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "head GEMM");
    return BN_OK;
}

/* The graph of a step of n tokens with cnt logit rows, captured on first use. */
static cudaGraphExec_t graph_for(bn_cuda_state *s, int n, int cnt) {
    if (s->graphs_off || n > BN_CU_GRAPH_MAX_N || cnt > BN_CU_HEAD_ROWS) return NULL;
    for (int i = 0; i < s->n_graphs; i++)
        if (s->graphs[i].n == n && s->graphs[i].cnt == cnt) return s->graphs[i].exec;
    if (s->n_graphs == BN_CU_NGRAPH) {
        cudaGraphExecDestroy(s->graphs[0].exec);
        memmove(s->graphs, s->graphs + 1, sizeof s->graphs[0] * (BN_CU_NGRAPH - 1));
        s->n_graphs--;
    }
    cudaGraph_t g = NULL;
    cudaGraphExec_t ex = NULL;
    if (cudaStreamBeginCapture(s->st, cudaStreamCaptureModeThreadLocal) != cudaSuccess) goto fail;
    {
        bn_status st = run_layers(s, n);
        if (st == BN_OK && cnt > 0) st = run_head(s, 0, cnt);
        cudaError_t ce = cudaStreamEndCapture(s->st, &g);
        if (st != BN_OK || ce != cudaSuccess || !g) goto fail;
    }
    if (cudaGraphInstantiate(&ex, g, 0) != cudaSuccess) goto fail;
    cudaGraphDestroy(g);
    s->graphs[s->n_graphs].n = n;
    s->graphs[s->n_graphs].cnt = cnt;
    s->graphs[s->n_graphs].exec = ex;
    s->n_graphs++;
    return ex;
fail:
    if (g) cudaGraphDestroy(g);
    (void)cudaGetLastError();
    s->graphs_off = true;
    bn_log(&s->m->logger, BN_LOG_WARN, "cuda: graph capture failed; launching kernels directly");
    return NULL;
}

extern "C" bn_status bn_cuda_forward_chunk(bn_cuda_state *s, int n, const int32_t *tokens, const int32_t *seq,
                                           const int32_t *pos, const int32_t *out_rows, float *logits, bool defer,
                                           bool *deferred) {
    *deferred = false;
    s->lazy_n = 0; /* the device rows of the last call are overwritten now */
    if (n <= 0 || n > s->n_chunk) return bn_fail(BN_ERR_INVALID_ARG, "cuda: %d tokens in a chunk of %d", n, s->n_chunk);
    const int nc = s->n_chunk;
    const size_t V = (size_t)s->m->hp.n_vocab;
    int *h = s->h_in, cnt = 0;
    memcpy(h, tokens, (size_t)n * 4);
    memcpy(h + nc, seq, (size_t)n * 4);
    memcpy(h + 2 * nc, pos, (size_t)n * 4);
    int32_t *dst_row = (int32_t *)malloc((size_t)n * 4);
    if (!dst_row) return bn_fail(BN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        if (out_rows[i] >= 0) {
            h[3 * nc + cnt] = i;
            dst_row[cnt++] = out_rows[i];
        }
    bn_status st = BN_OK;
    cudaError_t ce = cudaMemcpyAsync(s->in, h, (size_t)nc * 4 * 4, cudaMemcpyHostToDevice, s->st);
    if (ce != cudaSuccess) st = bn_cuda_fail(ce, "sending the step inputs");
    cudaGraphExec_t g = st == BN_OK ? graph_for(s, n, cnt) : NULL;
    int done = 0; /* logit rows already computed on the device */
    if (st == BN_OK && g) {
        ce = cudaGraphLaunch(g, s->st);
        if (ce != cudaSuccess) st = bn_cuda_fail(ce, "launching the decode graph");
        done = cnt;
    } else if (st == BN_OK) {
        st = run_layers(s, n);
        if (st == BN_OK && cnt > 0) {
            const int c0 = cnt < BN_CU_HEAD_ROWS ? cnt : BN_CU_HEAD_ROWS;
            st = run_head(s, 0, c0);
            done = c0;
        }
    }
    /* rows that one head pass computed may stay where they are */
    if (st == BN_OK && defer && cnt > 0 && done == cnt) {
        memcpy(s->lazy_dst, dst_row, (size_t)cnt * sizeof(int));
        s->lazy_n = cnt;
        *deferred = true;
        cnt = 0;
    }
    /* copy the computed rows back, then the remaining groups of rows */
    for (int r0 = 0; st == BN_OK && r0 < cnt;) {
        const int rn = done - r0;
        for (int j = 0; st == BN_OK && j < rn;) {
            int k = 1; /* runs of consecutive destination rows in one copy */
            while (j + k < rn && dst_row[r0 + j + k] == dst_row[r0 + j] + k) k++;
            ce = cudaMemcpyAsync(logits + (size_t)dst_row[r0 + j] * V, s->logits + (size_t)j * V, (size_t)k * V * 4,
                                 cudaMemcpyDeviceToHost, s->st);
            if (ce != cudaSuccess) st = bn_cuda_fail(ce, "reading logits");
            j += k;
        }
        r0 = done;
        if (st == BN_OK && r0 < cnt) {
            const int c1 = cnt - r0 < BN_CU_HEAD_ROWS ? cnt - r0 : BN_CU_HEAD_ROWS;
            st = run_head(s, r0, c1);
            done = r0 + c1;
        }
    }
    ce = cudaStreamSynchronize(s->st);
    if (st == BN_OK && ce != cudaSuccess) st = bn_cuda_fail(ce, "forward pass");
    if (st == BN_OK && (ce = cudaGetLastError()) != cudaSuccess) st = bn_cuda_fail(ce, "forward pass");
    free(dst_row);
    return st;
}

extern "C" bn_status bn_cuda_seq_copy(bn_cuda_state *s, int32_t src, int32_t dst, int32_t n) {
    if (src < 0 || src >= s->n_seq || dst < 0 || dst >= s->n_seq || n < 0 || n > s->n_ctx)
        return bn_fail(BN_ERR_INVALID_ARG, "cuda: bad sequence copy %d -> %d (%d positions)", src, dst, n);
    const size_t kvd = (size_t)s->kv.n_head_kv * s->kv.head_dim, es = s->kv.f16 ? 2 : 4;
    char *K = (char *)s->kv.k, *Vc = (char *)s->kv.v;
    for (int l = 0; l < s->kv.n_layer; l++) {
        const size_t so = (((size_t)src * s->kv.n_layer + l) * s->n_ctx) * kvd * es;
        const size_t d0 = (((size_t)dst * s->kv.n_layer + l) * s->n_ctx) * kvd * es;
        BN_CU(cudaMemcpyAsync(K + d0, K + so, (size_t)n * kvd * es, cudaMemcpyDeviceToDevice, s->st), "copying K");
        BN_CU(cudaMemcpyAsync(Vc + d0, Vc + so, (size_t)n * kvd * es, cudaMemcpyDeviceToDevice, s->st), "copying V");
    }
    BN_CU(cudaStreamSynchronize(s->st), "copying a sequence");
    return BN_OK;
}

static int lazy_index(const bn_cuda_state *s, int32_t row) {
    for (int j = 0; j < s->lazy_n; j++)
        if (s->lazy_dst[j] == row) return j;
    return -1;
}

extern "C" bn_status bn_cuda_logits_fetch(bn_cuda_state *s, float *logits) {
    const size_t V = (size_t)s->m->hp.n_vocab;
    cudaError_t ce = cudaSuccess;
    for (int j = 0; ce == cudaSuccess && j < s->lazy_n;) {
        int k = 1;
        while (j + k < s->lazy_n && s->lazy_dst[j + k] == s->lazy_dst[j] + k) k++;
        ce = cudaMemcpyAsync(logits + (size_t)s->lazy_dst[j] * V, s->logits + (size_t)j * V, (size_t)k * V * 4,
                             cudaMemcpyDeviceToHost, s->st);
        j += k;
    }
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(s->st);
    return ce == cudaSuccess ? BN_OK : bn_cuda_fail(ce, "reading logits");
}

extern "C" bn_status bn_cuda_top_k(bn_cuda_state *s, int32_t row, const bn_logit_adjust *a, int32_t k, int32_t *ids,
                                   float *logits, int32_t *n) {
    const int j = lazy_index(s, row);
    const int V = s->m->hp.n_vocab;
    *n = 0;
    if (j < 0 || k < 1 || k > BN_CU_TOPK_MAX || bn_cu_topk_blocks(V) * k > BN_CU_TOPK_KEYS ||
        a->n_bias < 0 || a->n_pen < 0 || a->n_bias > BN_CU_ADJ_MAX || a->n_pen > BN_CU_ADJ_MAX)
        return BN_ERR_UNSUPPORTED; /* the caller samples the host row */
    for (int i = 0; i < a->n_bias; i++)
        if (a->bias_tok[i] < 0 || a->bias_tok[i] >= V) return bn_fail(BN_ERR_INVALID_ARG, "cuda: bias token out of range");
    for (int i = 0; i < a->n_pen; i++)
        if (a->pen_tok[i] < 0 || a->pen_tok[i] >= V) return bn_fail(BN_ERR_INVALID_ARG, "cuda: penalized token out of range");
    /* staging: bias tokens | penalized tokens | counts | biases, ADJ_MAX each */
    int *h = s->h_adj;
    if (a->n_bias) {
        memcpy(h, a->bias_tok, (size_t)a->n_bias * 4);
        memcpy(h + 3 * BN_CU_ADJ_MAX, a->bias, (size_t)a->n_bias * 4);
    }
    if (a->n_pen) {
        memcpy(h + BN_CU_ADJ_MAX, a->pen_tok, (size_t)a->n_pen * 4);
        memcpy(h + 2 * BN_CU_ADJ_MAX, a->pen_cnt, (size_t)a->n_pen * 4);
    }
    cudaError_t ce = cudaMemcpyAsync(s->srow, s->logits + (size_t)j * V, (size_t)V * 4, cudaMemcpyDeviceToDevice, s->st);
    if (ce == cudaSuccess && a->n_bias + a->n_pen > 0)
        ce = cudaMemcpyAsync(s->d_adj, h, (size_t)BN_CU_ADJ_MAX * 4 * 4, cudaMemcpyHostToDevice, s->st);
    if (ce != cudaSuccess) return bn_cuda_fail(ce, "sampling");
    const bn_cu_adjust_dev d = {s->d_adj, s->d_adj + BN_CU_ADJ_MAX, s->d_adj + 2 * BN_CU_ADJ_MAX,
                                (const float *)(s->d_adj + 3 * BN_CU_ADJ_MAX), a->n_bias, a->n_pen,
                                a->repeat_penalty, a->presence, a->frequency};
    bn_cu_topk(s->st, s->srow, V, &d, k, s->keys1, s->keys);
    ce = cudaMemcpyAsync(s->h_keys, s->keys, (size_t)k * 8, cudaMemcpyDeviceToHost, s->st);
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(s->st);
    if (ce == cudaSuccess) ce = cudaGetLastError();
    if (ce != cudaSuccess) return bn_cuda_fail(ce, "sampling");
    int m = 0;
    while (m < k && s->h_keys[m]) {
        ids[m] = bn_cu_key_id(s->h_keys[m]);
        logits[m] = bn_cu_key_logit(s->h_keys[m]);
        m++;
    }
    *n = m;
    return BN_OK;
}

extern "C" bool bn_cuda_pin(void *p, size_t bytes) {
    if (!p || !bytes) return false;
    if (cudaHostRegister(p, bytes, cudaHostRegisterDefault) != cudaSuccess) {
        (void)cudaGetLastError(); /* not sticky: leave the buffer pageable */
        return false;
    }
    return true;
}

extern "C" void bn_cuda_unpin(void *p) {
    if (p && cudaHostUnregister(p) != cudaSuccess) (void)cudaGetLastError();
}

/* ---- instrumentation (bench_cuda_bw): where a persistent step's time goes */

extern "C" bn_status bn_cuda_trace_decode(bn_cuda_state *s, int steps, int variant, double *mean_us, double *crit_us,
                                          double *kernel_us) {
    if (!s->persist) return bn_fail(BN_ERR_UNSUPPORTED, "cuda: no persistent kernel in this context");
    if (steps < 1 || steps > s->n_ctx) return bn_fail(BN_ERR_INVALID_ARG, "cuda: trace of %d steps", steps);
    const int L = s->m->hp.n_layer, G = s->p_grid, nc = s->n_chunk, NS = BN_CU_NSTAMP;
    const size_t nst = (size_t)G * L * NS;
    unsigned long long *d = NULL, *h = (unsigned long long *)malloc((nst + 4) * 8);
    double *cnt = (double *)calloc(NS, sizeof(double));
    if (!h || !cnt) {
        free(h);
        free(cnt);
        return bn_fail(BN_ERR_NOMEM, "out of memory");
    }
    bn_status st = BN_OK;
    cudaEvent_t e0 = NULL, e1 = NULL;
    cudaError_t ce = cudaMalloc((void **)&d, (nst + 4) * 8);
    if (ce == cudaSuccess) ce = cudaEventCreate(&e0);
    if (ce == cudaSuccess) ce = cudaEventCreate(&e1);
    for (int k = 0; k < NS; k++) mean_us[k] = crit_us[k] = 0;
    double ksum = 0, mhz = 0;
    bn_cu_persist P = s->P;
    P.variant = variant;
    for (int it = 0; ce == cudaSuccess && it < steps; it++) {
        s->h_in[0] = 1 + it % 100;
        s->h_in[nc] = 0;
        s->h_in[2 * nc] = it;
        ce = cudaMemcpyAsync(s->in, s->h_in, (size_t)nc * 16, cudaMemcpyHostToDevice, s->st);
        P.trace = NULL;
        if (ce == cudaSuccess) ce = cudaEventRecord(e0, s->st);
        bn_cu_persist_launch(s->st, &P, s->p_grid, s->p_smem);
        if (ce == cudaSuccess) ce = cudaEventRecord(e1, s->st);
        if (ce == cudaSuccess) ce = cudaEventSynchronize(e1);
        float ms = 0;
        if (ce == cudaSuccess) ce = cudaEventElapsedTime(&ms, e0, e1);
        ksum += ms * 1000.0;
        P.trace = d; /* the same position again, with stamps */
        bn_cu_persist_launch(s->st, &P, s->p_grid, s->p_smem);
        if (ce == cudaSuccess) ce = cudaMemcpyAsync(h, d, (nst + 4) * 8, cudaMemcpyDeviceToHost, s->st);
        if (ce == cudaSuccess) ce = cudaStreamSynchronize(s->st);
        if (ce != cudaSuccess) break;
        if (h[nst + 2] > h[nst]) mhz += (double)(h[nst + 3] - h[nst + 1]) * 1000.0 / (double)(h[nst + 2] - h[nst]);
        for (int l = 0; l < L; l++)
            for (int k = 0; k < NS; k++) {
                if (k == NS - 1 && l == L - 1) continue;
                unsigned long long mx0 = 0, mx1 = 0;
                for (int b = 0; b < G; b++) {
                    const unsigned long long *t = h + ((size_t)b * L + l) * NS;
                    const unsigned long long t0 = t[k], t1 = k < NS - 1 ? t[k + 1] : t[NS]; /* t[NS]: next layer's 0 */
                    mean_us[k] += (double)(t1 - t0) / 1000.0;
                    if (t0 > mx0) mx0 = t0;
                    if (t1 > mx1) mx1 = t1;
                }
                crit_us[k] += (double)(mx1 - mx0) / 1000.0;
                cnt[k] += 1;
            }
    }
    if (ce != cudaSuccess) st = bn_cuda_fail(ce, "tracing the persistent kernel");
    for (int k = 0; k < NS; k++)
        if (cnt[k] > 0) {
            mean_us[k] /= cnt[k] * G;
            crit_us[k] /= cnt[k];
        }
    *kernel_us = ksum / steps;
    bn_log(&s->m->logger, BN_LOG_INFO, "cuda: persistent kernel traced: SM clock %.0f MHz during the steps (block 0)",
           mhz / steps);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(d);
    free(h);
    free(cnt);
    return st;
}
