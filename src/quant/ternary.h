/* ternary.h — conversions between ternary weight encodings and the T2R
 * layout of kernels.h, and absmean quantization of float masters. */
#ifndef BN_TERNARY_H
#define BN_TERNARY_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* SPEC §2: beta = max(mean|W|, 1e-5) over the whole tensor (computed in f32
 * with a double accumulator), Wt = clamp(round(W / beta), -1, 1). */
float bn_absmean_scale(const float *w, size_t n);
/* Quantize float rows W [n_out, n_in] into T2R dst (zeroed by the caller). */
void  bn_ternary_quantize_rows(const float *w, int n_out, int n_in, float beta, uint8_t *dst);

/* HF packed U8 [n_out/4, n_in]: byte [r][c] holds rows r, r+n/4, r+n/2,
 * r+3n/4 in bits 1:0, 3:2, 5:4, 7:6; code = w + 1. */
bn_status bn_ternary_from_hf_packed(const uint8_t *src, int n_out, int n_in, uint8_t *dst);
/* The inverse, for writing packed HF checkpoints. */
void      bn_ternary_to_hf_packed(const uint8_t *t2r, int n_out, int n_in, uint8_t *dst);

/* bitnet.cpp I2_S: the flattened tensor in 128-element blocks; when
 * n_in % 128 == 0 it equals T2R, otherwise re-pack row by row. */
void bn_ternary_from_i2s(const uint8_t *src, int n_out, int n_in, uint8_t *dst);
/* T2R -> I2_S bytes (n_out*n_in/4) followed by the 32-byte tail (scale first).
 * Requires n_out*n_in % 128 == 0 (whole blocks; every BitNet shape is). */
void bn_ternary_to_i2s(const uint8_t *t2r, int n_out, int n_in, float scale, uint8_t *dst);

#endif
