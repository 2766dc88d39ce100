/* tq_encode.h — encoders for ggml's block formats that `bitnet quantize`
 * writes: the ternary TQ2_0 / TQ1_0 (from T2R rows + one scale) and the head
 * formats Q8_0 / Q6_K (from f32 rows). Each is the exact inverse of the
 * decoder in model/load_gguf_tq.c and produces the bytes llama.cpp's
 * reference quantizers (quantize_row_*_ref) produce for the same values. */
#ifndef BN_TQ_ENCODE_H
#define BN_TQ_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_QK_K         256 /* ggml super-block (TQ1_0, TQ2_0, Q6_K)   */
#define BN_TQ2_0_BYTES  66  /* qs[64], f16 d                            */
#define BN_TQ1_0_BYTES  54  /* qs[48], qh[4], f16 d                     */
#define BN_Q8_0_BLOCK   32
#define BN_Q8_0_BYTES   34  /* f16 d, int8 qs[32]                       */
#define BN_Q6_K_BYTES   210 /* ql[128], qh[64], int8 scales[16], f16 d  */

/* One T2R row of n_in elements (n_in % 256 == 0) -> n_in/256 TQ2_0 or TQ1_0
 * blocks at dst. d16 is the tensor's scale as f16 bits; blocks whose 256
 * codes are all zero get d = 0 (what ggml's absmax quantizer writes, so files
 * match llama-quantize's byte for byte). Code 3 (a non-canonical zero in
 * T2R) is written as 0. Returns true if any code in the row is non-zero. */
bool bn_tq2_0_encode_row(const uint8_t *t2r, int n_in, uint16_t d16, uint8_t *dst);
bool bn_tq1_0_encode_row(const uint8_t *t2r, int n_in, uint16_t d16, uint8_t *dst);

/* n floats (n % 32 == 0) -> n/32 Q8_0 blocks (ggml: d = absmax/127,
 * q = roundf(x / d) with the reciprocal taken once). */
void bn_q8_0_quantize_row(const float *x, int64_t n, uint8_t *dst);
/* n floats (n % 256 == 0) -> n/256 Q6_K blocks (ggml's reference search of
 * 16-element sub-block scales, no importance weights). */
void bn_q6_k_quantize_row(const float *x, int64_t n, uint8_t *dst);

#endif
