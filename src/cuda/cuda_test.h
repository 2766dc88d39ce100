/* cuda_test.h — kernel-level entry points of the CUDA backend for
 * tests/test_cuda.c: each runs one kernel on host inputs and returns host
 * outputs, so it can be compared with the scalar reference (ref.c). */
#ifndef BN_CUDA_TEST_H
#define BN_CUDA_TEST_H

#include "model/model.h"

/* RMSNorm (w may be NULL: none) fused with int8 quantization of n rows of
 * x [n, k]: q [n, bn_pad_k(k)], xs [n], xsum [n]. */
bn_status bn_cuda_test_norm_quant(const float *x, int k, int n, const float *w, float eps, int8_t *q, float *xs,
                                  int32_t *xsum);

/* Ternary product of T2R W [M, k] with q [n, bn_pad_k(k)]:
 * y [n, M] = (W q) * w_scale * xs. gemm: true for the int8 tensor-core path
 * (cuBLAS), false for the dp4a kernel. */
bn_status bn_cuda_test_tgemm(const uint8_t *W, int M, int k, const int8_t *q, const float *xs, const int32_t *xsum,
                             int n, float w_scale, bool gemm, float *y);

/* Device-to-device copy bandwidth in GB/s (bytes read + written per second)
 * over a buffer of `bytes`, best of `reps` copies. */
bn_status bn_cuda_copy_bandwidth(size_t bytes, int reps, double *gbps);

/* Time the decode GEMV (one token) on an [M, k] ternary matrix: mean
 * microseconds per call over iters back-to-back launches, plain (us) and
 * with programmatic dependent launch (us_pdl); GB/s of weight bytes. */
bn_status bn_cuda_bench_tgemv(int M, int k, int iters, double *us, double *us_pdl, double *gbps);

#endif
