/* kernels.h — the compute kernels of the forward pass.
 *
 * Every operation has a scalar reference in ref.c (the oracle, kept forever)
 * and optionally faster versions (cpu_avx2.c, cpu_avx512.c, cuda/) with the
 * SAME signature; dispatch.c picks one table per CPU at context creation and
 * tests compare each against the reference on random data.
 *
 * Ternary weight layout ("T2R": ternary 2-bit rows), used for every linear:
 *   W is [M rows (outputs), K cols (inputs)]. Each row is padded with zeros to
 *   Kp = round_up(K, 128) and cut into Kp/128 blocks of 32 bytes. Codes are
 *   bitnet.cpp's I2_S: 0b00 = -1, 0b01 = 0, 0b10 = +1 (0b11 reads as 0).
 *   In block byte b (0..31): bits 7:6 = element b, bits 5:4 = element b+32,
 *   bits 3:2 = element b+64, bits 1:0 = element b+96.
 *   Row stride = Kp/4 bytes. When K % 128 == 0 this is byte-identical to a
 *   bitnet.cpp I2_S tensor (minus its 32-byte tail), so GGUF files map
 *   zero-copy.
 *
 * Activations are quantized per token to int8 with the row zero-padded to Kp:
 *   s = (1 / max(absmax, 1e-5)) * 127   (two f32 roundings, as transformers)
 *   q = clamp(rint(x * s), -128, 127)   (round half to even)
 *   x_scale = 1 / s  (multiply the integer dot by it)
 *   x_sum   = sum of q (lets kernels use unsigned codes: w = code - 1)
 */
#ifndef BN_KERNELS_H
#define BN_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet.h"

#define BN_QK 128 /* ternary block: elements per 32-byte block */

static inline int bn_pad_k(int k) { return (k + BN_QK - 1) / BN_QK * BN_QK; }
static inline size_t bn_t2r_row_bytes(int k) { return (size_t)bn_pad_k(k) / 4; }

/* Decode/encode one ternary element of a T2R row. */
static inline int bn_t2r_get(const uint8_t *row, int k) {
    int blk = k / BN_QK, j = k % BN_QK;
    int byte = j % 32, grp = j / 32;
    int code = (row[blk * 32 + byte] >> (6 - 2 * grp)) & 3;
    return code == 3 ? 0 : code - 1;
}
static inline void bn_t2r_set(uint8_t *row, int k, int w /* -1,0,1 */) {
    int blk = k / BN_QK, j = k % BN_QK;
    int byte = j % 32, grp = j / 32, sh = 6 - 2 * grp;
    uint8_t *p = &row[blk * 32 + byte];
    *p = (uint8_t)((*p & ~(3 << sh)) | ((w + 1) << sh));
}

/* Quantize n_tokens rows of x [n_tokens, k] (row stride ldx) to int8 rows of
 * length bn_pad_k(k) (stride ldq, zero-padded), one scale and sum per token. */
typedef void (*bn_quantize_act_fn)(const float *x, size_t ldx, int k, int n_tokens,
                                   int8_t *q, size_t ldq, float *x_scale, int32_t *x_sum);

/* Ternary x int8 product for output rows [m0, m1):
 *   y[n*ldy + m] = (sum_k W[m,k] * q[n*ldq + k]) * w_scale * x_scale[n]
 * W: T2R [M, k] with row stride bn_t2r_row_bytes(k); q: [n_tokens, Kp]. The
 * integer sum is exact (int32). n_tokens == 1 is the decode GEMV.
 * SIMD versions read q up to Kp and need q[k..Kp) == 0 (quantize_act writes
 * it so); they use x_sum (unsigned codes: sum W*q = sum code*q - x_sum) and
 * compute it from q when x_sum is NULL. While running they may use the
 * y[n*ldy + m], m in [m0, m1), entries they own as int32 scratch. */
typedef void (*bn_tgemm_fn)(const uint8_t *W, int k, const int8_t *q, size_t ldq,
                            const float *x_scale, const int32_t *x_sum, int n_tokens,
                            float w_scale, float *y, size_t ldy, int m0, int m1);

/* Dense head: logits[n*ldl + v] = dot(E[v, :], h[n*ldh + :]) for v in [v0, v1).
 * E: [n_vocab, n_embd] rows in type et (F32, F16 or BF16). */
typedef void (*bn_head_fn)(const void *E, bn_type et, int n_embd, const float *h, size_t ldh,
                           int n_tokens, float *logits, size_t ldl, int v0, int v1);

/* Quantized head ("QH", ref_extra.c): each row of E [n_vocab, n_embd] is
 * zero-padded to Kp = bn_pad_k(n_embd) and cut into blocks of BN_QH_BLOCK
 * elements with one f16 scale d each; the codes c are signed, |c| <= qmax
 * (127, 31 or 7 for 8, 6 or 4 bits), stored unsigned as u = c + off (off =
 * 128, 32, 8) so that SIMD can use u8 x s8 products. Code bytes per row:
 *   8 bits: Kp bytes, byte i = u_i.
 *   4 bits: Kp/2 bytes; per 128 elements 64 bytes, byte j = u_j | u_{j+64} << 4.
 *   6 bits: 3Kp/4 bytes; per 128 elements the 4-bit layout of the low nibbles
 *           (64 bytes) then 32 bytes of high 2-bit pairs, T2R order: byte j
 *           bits 7:6 = element j, 5:4 = j+32, 3:2 = j+64, 1:0 = j+96.
 * The hidden state is quantized per token like the ternary activations
 * (quantize_act: hq, h_scale). Logits (exact integer block sums, then f32):
 *   logits[n*ldl + v] = (sum_b (float)(sum_{i in b} c_vi * hq_ni) * d_vb) * h_scale[n]
 * with the block terms added in block order (SIMD may reorder that f32 sum). */
#define BN_QH_BLOCK 64
typedef struct bn_qhead {
    int             bits;      /* 8, 6 or 4                                 */
    int             n_vocab, n_embd;
    int             nblk;      /* Kp / BN_QH_BLOCK                          */
    size_t          row_bytes; /* code bytes per row                        */
    const uint16_t *scales;    /* [n_vocab][nblk] f16                       */
    const uint8_t  *codes;     /* [n_vocab][row_bytes]                      */
} bn_qhead;

/* Bytes of codes per row for `bits`, 0 if bits is not 8, 6 or 4. */
size_t bn_qhead_row_bytes(int bits, int n_embd);
/* Quantize one f32 row (n_embd values) into nblk f16 scales and row codes:
 * per block d = f16(absmax / qmax), c = clamp(rint(x / d), -qmax, qmax)
 * (c = 0 where d is 0 or not finite; NaN inputs give -qmax). */
void bn_qhead_quantize_row(int bits, const float *x, int n_embd, uint16_t *scales, uint8_t *codes);

/* Quantize a whole embedding matrix E [n_vocab, n_embd] (F32, F16 or BF16)
 * into *out with n_threads threads (qhead.c). *storage is the one allocation
 * behind out->scales and out->codes: free it with bn_aligned_free. */
bn_status bn_qhead_build(const void *E, bn_type et, int n_vocab, int n_embd, int bits,
                         int n_threads, bn_qhead *out, void **storage);
/* Bytes a quantized head reads per token (scales + codes). */
size_t bn_qhead_bytes(const bn_qhead *q);

/* hq: [n_tokens, Kp] from quantize_act(h) (zero-padded; values in
 * [-127, 127] except for NaN inputs), h_scale its scales. */
typedef void (*bn_qhead_fn)(const bn_qhead *E, const int8_t *hq, size_t ldq,
                            const float *h_scale, int n_tokens, float *logits, size_t ldl,
                            int v0, int v1);

/* "T2R4": an optional decode copy of a T2R matrix, built once at load time
 * (t2r4.c), table-independent. Rows are taken in groups of 4 (M padded to
 * a multiple of 4 with zero-weight rows); a group holds the same bytes as
 * its 4 T2R rows (4 x row stride), reordered so that the GEMV reads one
 * sequential stream: per pair p of 128-element blocks, 64 bytes of row 0,
 * then rows 1, 2, 3 (256 bytes), and for an odd block count the last block
 * as 32 bytes of each row. Codes 0b11 are stored as 0b01 (weight 0).
 * Why: reading the 4 rows of a group side by side from T2R is 4 short
 * streams that hardware prefetchers follow badly; one stream reaches the
 * read bandwidth without software prefetch (about +8-10 % decode). */
size_t bn_t2r4_bytes(int m, int k);                      /* round_up(m, 4) * row stride */
void bn_t2r4_pack(const uint8_t *W, int m, int k, uint8_t *out);
/* A packed copy in a new allocation (huge-page advised); free it with
 * bn_aligned_free. */
bn_status bn_t2r4_new(const uint8_t *W, int m, int k, uint8_t **out);
/* Pointer to the 32-byte block b of row r of a T2R4 matrix. */
static inline const uint8_t *bn_t2r4_block(const uint8_t *W4, int k, int r, int b) {
    const size_t rb = bn_t2r_row_bytes(k);
    const int nblk = bn_pad_k(k) / BN_QK, npair = nblk / 2;
    const uint8_t *g = W4 + (size_t)(r / 4) * 4 * rb;
    if (b / 2 < npair) return g + 256 * (size_t)(b / 2) + 64 * (r % 4) + 32 * (b % 2);
    return g + 256 * (size_t)npair + 32 * (r % 4);
}
void bn_ref_tgemm4(const uint8_t *W4, int k, const int8_t *q, size_t ldq,
                   const float *x_scale, const int32_t *x_sum, int n_tokens,
                   float w_scale, float *y, size_t ldy, int m0, int m1);

typedef struct bn_kernels {
    const char         *name;      /* "ref", "avx2", "avx512vnni", ... */
    bn_quantize_act_fn  quantize_act;
    bn_tgemm_fn         tgemm;
    bn_head_fn          head;
    bn_qhead_fn         qhead;     /* quantized head (8/6/4-bit rows)  */
    /* tgemm on a T2R4 copy (W = the copy, same results as tgemm on the T2R
     * original); meant for decode (n_tokens 1-3), correct for any n. */
    bn_tgemm_fn         tgemm4;
    /* f16 <-> f32 rows (the f16 KV cache), round to nearest even */
    void (*f16_to_f32)(const uint16_t *src, float *dst, size_t n);
    void (*f32_to_f16)(const float *src, uint16_t *dst, size_t n);
} bn_kernels;

/* ---- CPU features (cpu_features.c): cpuid, and xgetbv to know that the OS
 * saves the wide registers. All false on non-x86 builds. */
typedef struct bn_cpu_features {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512vbmi;
    bool avx_vnni, gfni;
} bn_cpu_features;
void bn_cpu_detect(bn_cpu_features *f);

/* SIMD tables (cpu_avx2.c, cpu_avx512.c): NULL when not compiled in. Use
 * them only when the CPU has the features: bn_kernels_by_name checks. */
const bn_kernels *bn_kernels_avx2(void);   /* AVX2 + FMA + F16C            */
const bn_kernels *bn_kernels_avx512(void); /* AVX-512 F/BW/VL/DQ + VNNI    */

/* The scalar reference table, and the best table for this CPU. */
const bn_kernels *bn_kernels_ref(void);
const bn_kernels *bn_kernels_best(void);
/* Table by name ("ref", "avx2", "avx512" or its table name "avx512vnni");
 * NULL if unknown or unsupported here. */
const bn_kernels *bn_kernels_by_name(const char *name);

/* ---- scalar reference operations (ref.c), one function per operation. */
void bn_ref_quantize_act(const float *x, size_t ldx, int k, int n_tokens,
                         int8_t *q, size_t ldq, float *x_scale, int32_t *x_sum);
void bn_ref_tgemm(const uint8_t *W, int k, const int8_t *q, size_t ldq,
                  const float *x_scale, const int32_t *x_sum, int n_tokens,
                  float w_scale, float *y, size_t ldy, int m0, int m1);
void bn_ref_head(const void *E, bn_type et, int n_embd, const float *h, size_t ldh,
                 int n_tokens, float *logits, size_t ldl, int v0, int v1);

/* ---- reference versions of later kernels (ref_extra.c) */
void bn_ref_qhead(const bn_qhead *E, const int8_t *hq, size_t ldq, const float *h_scale,
                  int n_tokens, float *logits, size_t ldl, int v0, int v1);
/* Code u (unsigned, with offset) of element i of a QH row. */
int bn_qhead_get_u(int bits, const uint8_t *row, int i);

/* ss[r] = sum of x[r*ld + i]^2 over i < n, as bn_ref_rmsnorm sums (in order, f32) */
void bn_sum_squares_rows(const float *x, size_t ld, int rows, int n, float *ss);
/* out[i] = w[i] * x[i] / sqrt(mean(x^2) + eps), f32 throughout. */
void bn_ref_rmsnorm(const float *x, const float *w, int n, float eps, float *out);
/* Embedding row of token `id` from E [n_vocab, n_embd] of type et into out. */
void bn_ref_embed(const void *E, bn_type et, int n_embd, int32_t id, float *out);
/* NeoX rotate-half RoPE on one head vector of size head_dim in place. */
void bn_ref_rope(float *v, int head_dim, int pos, float theta);
/* out[i] = relu(gate[i])^2 * up[i]. */
void bn_ref_relu2_mul(const float *gate, const float *up, int n, float *out);
/* out[i] = silu(gate[i]) * up[i] (older `bitnet` arch). */
void bn_ref_silu_mul(const float *gate, const float *up, int n, float *out);
/* In-place softmax over n values, f32. */
void bn_ref_softmax(float *x, int n);
/* One query head over n_kv cached positions:
 * out[d] = sum_t softmax_t(q . K[t] * scale) * V[t][d].
 * K, V rows of head_dim floats with row stride ld (f32 cache). scratch: n_kv floats. */
void bn_ref_attend_head(const float *q, const float *K, const float *V, size_t ld,
                        int n_kv, int head_dim, float scale, float *scratch, float *out);

/* ---- blocked attention with an online softmax (attention.c; SIMD versions
 * in attention_avx2.c, attention_avx512.c). nq query rows Q [nq, hd] (packed,
 * stride hd) that share one KV head attend to cached positions [t0, t1) of K
 * and V (rows of hd floats, row stride ld); row r uses only positions
 * t < lim[r] (causal), and rows [t0, t1) must hold cached values (t1 <= the
 * largest lim). Per row a running state is updated, so that consecutive calls
 * over consecutive ranges, or bn_attn_merge of disjoint ranges, give
 *   mx[r]  = max of the scores q.k * scale seen (start -INFINITY),
 *   sum[r] = sum of exp(score - mx[r]),
 *   acc[r*hd + d] = sum of exp(score - mx[r]) * V[t][d];
 * out = acc / sum (bn_attn_finish) is softmax(q K^T * scale) V, equal to
 * bn_ref_attend_head up to float reordering. scratch: nq * BN_ATTN_TILE floats. */
#define BN_ATTN_TILE 64
typedef void (*bn_attn_fn)(const float *Q, int nq, const int32_t *lim, const float *K, const float *V, size_t ld,
                           int t0, int t1, int hd, float scale, float *mx, float *sum, float *acc, float *scratch);
void bn_ref_attn(const float *Q, int nq, const int32_t *lim, const float *K, const float *V, size_t ld, int t0,
                 int t1, int hd, float scale, float *mx, float *sum, float *acc, float *scratch);
/* Start state of nq rows: mx = -inf, sum = 0, acc = 0. */
void bn_attn_init(int nq, int hd, float *mx, float *sum, float *acc);
/* Fold the state of another position range (mx2, sum2, acc2) into mx, sum, acc. */
void bn_attn_merge(int nq, int hd, float *mx, float *sum, float *acc, const float *mx2, const float *sum2,
                   const float *acc2);
/* out[d] = acc[d] / sum for one row (0 for a row that saw no position). */
void bn_attn_finish(int hd, float sum, const float *acc, float *out);
/* The same over an f16 cache (K, V: rows of hd halves, stride ld): each tile
 * of BN_ATTN_TILE positions is widened into kv_tile (2 * BN_ATTN_TILE * hd
 * floats) with k->f16_to_f32 and handed to the f32 kernel f; lim_tile: nq
 * ints. Equal to f on the widened cache. */
void bn_attn_f16(const bn_kernels *k, bn_attn_fn f, const float *Q, int nq, const int32_t *lim, const uint16_t *K,
                 const uint16_t *V, size_t ld, int t0, int t1, int hd, float scale, float *mx, float *sum, float *acc,
                 float *scratch, float *kv_tile, int32_t *lim_tile);
/* SIMD versions (NULL when not compiled in), and the one matching a table. */
bn_attn_fn bn_attn_avx2(void);
bn_attn_fn bn_attn_avx512(void);
bn_attn_fn bn_attn_select(const bn_kernels *k);

#endif /* BN_KERNELS_H */
