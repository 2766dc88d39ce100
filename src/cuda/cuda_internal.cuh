/* cuda_internal.cuh — kernels of the CUDA backend and their launchers,
 * shared by cuda_backend.cu (the forward pass) and cuda_test_hooks.cu. */
#ifndef BN_CUDA_INTERNAL_CUH
#define BN_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

extern "C" {
#include "cuda/cuda_backend.h"
}

/* Launchers take `pdl`: launch with programmatic dependent launch (sm_90+;
 * the kernel may start while its predecessor on the stream still runs). */

/* Record a CUDA / cuBLAS failure as a bn_status with a readable message. */
bn_status bn_cuda_fail(cudaError_t e, const char *what);
bn_status bn_cublas_fail(cublasStatus_t e, const char *what);
#define BN_CU(expr, what) do { cudaError_t e_ = (expr); if (e_ != cudaSuccess) return bn_cuda_fail(e_, what); } while (0)
#define BN_CB(expr, what) do { cublasStatus_t e_ = (expr); if (e_ != CUBLAS_STATUS_SUCCESS) return bn_cublas_fail(e_, what); } while (0)

/* Embedding type tags on the device (what bn_type the table was in). */
enum { BN_CU_F32 = 0, BN_CU_F16 = 1, BN_CU_BF16 = 2 };

/* A ternary linear on the device: T2R rows as 16-byte chunks (Kp/64 per
 * row; 2-bit codes 0b11 rewritten to 0b01 at upload so a code is 0, 1 or 2
 * and w = code - 1), one f32 scale per output row (so that q|k|v and
 * gate|up can be concatenated into one matrix with their own scales). */
typedef struct bn_cu_linear {
    const uint4  *w;
    const float  *rscale;
    const int8_t *w8;  /* [M, Kp] int8 copy for the tensor-core GEMM, or NULL */
    int           M, K, Kp;
} bn_cu_linear;

/* Activation buffer: n rows of Kp int8 codes, one scale and code sum each. */
typedef struct bn_cu_act {
    int8_t *q;
    float  *xs;
    int    *xsum;
} bn_cu_act;

/* Fused (optional RMSNorm) + per-token int8 quantization of n rows.
 * in row r: x[r*ldx + i], i < k. up != NULL: the value is act(x)*up (gate/up
 * of the FFN, act 0 = relu^2, 1 = silu) with up at the same row stride.
 * w == NULL: no normalization. Output rows have stride bn_pad_k(k). */
void bn_cu_norm_quant(cudaStream_t st, bool pdl, const float *x, int ldx, const float *up, int act, const float *w, int k,
                      float eps, int n, bn_cu_act a);

/* Sanitize codes 0b11 -> 0b01 over nwords 32-bit words in place. */
void bn_cu_sanitize(cudaStream_t st, uint32_t *w, size_t nwords);
/* T2R rows [M, Kp/4 bytes] -> int8 weights (code - 1) [M, Kp]. */
void bn_cu_expand(cudaStream_t st, const uint8_t *W, int M, int Kp, int8_t *out);

/* y[t*ldy + m] (=, or += when add) (sum_k W[m,k] q[t,k]) * rscale[m] * xs[t]
 * for the n tokens: dp4a kernel (weights read once per tile of 8 tokens). */
void bn_cu_tgemv(cudaStream_t st, bool pdl, const bn_cu_linear *L, bn_cu_act a, int n, float *y, int ldy, bool add);

/* The one-token product with the input's (RMSNorm +) quantization fused
 * in (inputs as bn_cu_norm_quant's, one row): y[m] (=, +=) W(q(x))[m].
 * Returns false (nothing launched) when the row does not fit shared memory. */
bool bn_cu_tgemv_fused(cudaStream_t st, bool pdl, const bn_cu_linear *L, const float *x, const float *up, int act,
                       const float *nw, int k, float eps, float *y, bool add);

/* Same product through int8 tensor cores: cuBLAS int8 GEMM of L->w8 (or of
 * W expanded into `wexp` [M, Kp] when there is no resident int8 copy) into
 * `acc` ([n, M] int32), then the scale. */
bn_status bn_cu_tgemm_cublas(cudaStream_t st, bool pdl, cublasHandle_t h, const bn_cu_linear *L, bn_cu_act a, int n,
                             int8_t *wexp, int32_t *acc, float *y, int ldy, bool add);

/* Embedding rows of tokens tok[0..n) into x [n, e] f32. */
void bn_cu_embed(cudaStream_t st, const void *E, int et, int e, const int *tok, int n, float *x);

/* RoPE on q and k inside qkv rows ([q | k | v], stride ld), then k and v
 * stored as f16 into the caches at (seq, layer, pos). */
typedef struct bn_cu_kv {
    void *k, *v;            /* [n_seq][n_layer][n_ctx][kvd], f32 or f16 */
    int   f16;              /* element type: 1 = f16, 0 = f32           */
    int   n_layer, n_ctx, n_head, n_head_kv, head_dim;
} bn_cu_kv;
void bn_cu_rope_store(cudaStream_t st, bool pdl, float *qkv, int ld, const float *inv_freq, const int *pos, const int *seq,
                      int n, const bn_cu_kv *kv, int layer);

/* Causal GQA attention of n tokens over their caches (positions 0..pos),
 * split over the KV axis in pieces of split_len (flash-decoding), then
 * combined: out [n, n_head*head_dim]. part: n*n_head*n_split*(head_dim+2)
 * floats; counters: n*n_head ints, zero (and left zero). */
void bn_cu_attention(cudaStream_t st, bool pdl, const float *qkv, int ld, const int *pos, const int *seq, int n,
                     const bn_cu_kv *kv, int layer, int split_len, int n_split, float *part, int *counters,
                     float *out, int ldo, const float *inv_freq);
/* inv_freq != NULL (n == 1 only): RoPE and the cache store fused in, no
 * bn_cu_rope_store before it. */

/* A layer on the device: q|k|v and gate|up concatenated. */
typedef struct bn_cu_layer {
    const float *attn_norm, *attn_sub, *ffn_norm, *ffn_sub;
    bn_cu_linear qkv, o, gu, down;
} bn_cu_layer;

/* Arguments of the persistent batch-1 decode kernel (cuda_persist.cu). */
typedef struct bn_cu_persist {
    const bn_cu_layer *layers; /* device copy of the layer table            */
    int          n_layer, e, f, qd, act;
    float        eps, scale;   /* RMSNorm eps, 1/sqrt(head_dim)             */
    const void  *embd;
    int          embd_type;
    const int   *tok, *seq, *pos;
    float       *x, *qkv, *att, *gu, *part;
    int         *counters;
    bn_cu_kv     kv;
    int          split_len, n_split;
    const float *inv_freq;
    unsigned    *bar;          /* grid barrier counter (zeroed per launch)  */
    int          slot_bytes[4], q_off, a_off, s_off, l_off, rs_off, xo_off; /* shared memory layout */
    int          stage_pos;    /* K/V positions staged per chunk            */
    int          variant;      /* experiments: bit 0 release-add barrier,
                                  bit 1 cp.async weight copies (v4) instead
                                  of TMA bulk copies                        */
    unsigned long long *trace; /* NULL, or BN_CU_NSTAMP %globaltimer stamps
                                  per (block, layer) (bn_cuda_trace_decode) */
} bn_cu_persist;
#define BN_CU_NSTAMP 21

/* Size the persistent kernel for these layers: grid (one block per SM) and
 * shared memory; fills P's layout fields. BN_ERR_UNSUPPORTED when a layer's
 * weight slices do not fit (the caller keeps the separate kernels). */
bn_status bn_cu_persist_plan(const bn_cu_layer *host_layers, int n_layer, int max_k, int head_dim, int split_len,
                             bn_cu_persist *P, int *grid, size_t *smem);
/* One batch-1 decode step through every layer (x holds the last hidden
 * state afterwards); zeroes P->bar first. Cooperative launch. */
void bn_cu_persist_launch(cudaStream_t st, const bn_cu_persist *P, int grid, size_t smem);

/* int8 head: RMSNorm + int8 quantization of the gathered rows (q [cnt, kp],
 * xs [cnt]), then logits [cnt, V] from signed 8-bit codes [V, kp] with an
 * f16 scale per 64 codes (bn_qhead's numerics). bn_cu_qhead returns false
 * (nothing launched) for rows longer than 8192. */
void bn_cu_head_quant(cudaStream_t st, const float *x, int e, const int *rows, int cnt, const float *w, float eps,
                      int8_t *q, float *xs);
bool bn_cu_qhead(cudaStream_t st, const int8_t *codes, const __half *scales, int V, int kp, const int8_t *q,
                 const float *xs, int cnt, float *logits);
/* Flip the top bit of every byte (unsigned code u = c + 128 -> signed c). */
void bn_cu_xor80(cudaStream_t st, uint32_t *p, size_t nwords);

/* Final RMSNorm of the gathered rows x[rows[j]] into f16 h [cnt, e]. */
void bn_cu_head_norm(cudaStream_t st, bool pdl, const float *x, int e, const int *rows, int cnt, const float *w, float eps,
                     __half *h);

/* Device top-k of a logits row for sampling (cuda_sample.cu). */
#define BN_CU_TOPK_MAX BN_TOPK_DEVICE_MAX
#define BN_CU_TOPK_KEYS 4096 /* candidates merged in the second pass:
                                blocks(V) x k must fit                     */
typedef struct bn_cu_adjust_dev {
    const int   *bias_tok, *pen_tok, *pen_cnt;
    const float *bias;
    int          nb, np;
    float        rp, presence, frequency;
} bn_cu_adjust_dev;
int   bn_cu_topk_blocks(int V);
/* Adjust row in place (bias, penalties), then its best k as keys[0..k)
 * (0 where fewer than k entries are above -inf); keys1: blocks(V) x k. */
void  bn_cu_topk(cudaStream_t st, float *row, int V, const bn_cu_adjust_dev *a, int k, unsigned long long *keys1,
                 unsigned long long *keys);
float bn_cu_key_logit(unsigned long long key);
int   bn_cu_key_id(unsigned long long key);

#endif
