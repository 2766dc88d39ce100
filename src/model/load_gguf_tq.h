/* load_gguf_tq.h — import of llama.cpp's (ggml's) block types at GGUF load:
 * TQ1_0 / TQ2_0 ternary linears into T2R + one scale, and Q8_0 / Q6_K token
 * embeddings (the tied head) dequantized to f32. */
#ifndef BN_LOAD_GGUF_TQ_H
#define BN_LOAD_GGUF_TQ_H

#include "formats/gguf.h"

/* True for TQ1_0 and TQ2_0. */
bool bn_gguf_is_tq(uint32_t type);

/* Decode a TQ1_0 / TQ2_0 tensor of shape [n_in (contiguous), n_out] into T2R
 * rows w (n_out * bn_t2r_row_bytes(n_in) bytes, zeroed by the caller) and the
 * per-tensor scale. ggml stores one f16 scale per 256-block (d = f16(absmax));
 * BitNet weights have one scale per tensor, so every block with a nonzero
 * weight must carry the same f16 scale (all-zero blocks may carry any, e.g. 0)
 * and TQ2_0's fourth code (+2d) is refused: the result is then exactly the
 * tensor ggml would dequantize. `name` is used in error messages. */
bn_status bn_gguf_tq_to_t2r(const bn_gguf_tensor *t, const char *name, int32_t n_in, int32_t n_out, uint8_t *w,
                            float *scale);

/* llama.cpp's "bitnet" architecture (1bitLLM models) may carry an output
 * multiplier "<linear>.scale" per linear: one element (F32; F16/BF16 taken
 * too), applied as ggml_mul(W x, scale) after the matmul. *out = its value
 * (1 and *present = false when absent). allowed = false (other
 * architectures): refuse one (BN_ERR_UNSUPPORTED) rather than run without it.
 * Zero, negative and non-finite values are refused. weight_name ends in
 * ".weight". */
bn_status bn_gguf_output_scale(const bn_gguf *g, const char *weight_name, bool allowed, float *out, bool *present);

/* True for the types bn_gguf_dequant_f32 reads (Q8_0, Q6_K). */
bool bn_gguf_is_dequant(uint32_t type);

/* Dequantize the first n elements of a Q8_0 / Q6_K tensor into out, with
 * ggml's formulas and operation order (the same f32 values llama.cpp gets). */
bn_status bn_gguf_dequant_f32(const bn_gguf_tensor *t, const char *name, uint64_t n, float *out);

#endif /* BN_LOAD_GGUF_TQ_H */
