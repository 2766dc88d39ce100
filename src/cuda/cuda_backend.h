/* cuda_backend.h — the CUDA backend as seen from the C side of the library.
 * Compiled only with -DBITNET_CUDA=ON (BITNET_CUDA defined); without it the
 * context refuses BN_DEVICE_CUDA with a clear message.
 *
 * The backend owns device copies of the weights (uploaded once, in a layout
 * of its choice), the KV caches of every sequence and all scratch buffers.
 * The host keeps only the bookkeeping (sequence lengths) in bn_context. */
#ifndef BN_CUDA_BACKEND_H
#define BN_CUDA_BACKEND_H

#include "model/logit_adjust.h"
#include "model/model.h"

typedef struct bn_cuda_state bn_cuda_state;

/* BN_OK if a usable GPU exists; desc receives its name. */
bn_status bn_cuda_probe(char *desc, size_t cap);

/* Upload the model and allocate caches for n_seq sequences of n_ctx
 * positions and chunks of up to n_chunk tokens; flags: BN_CUDA_* of the
 * context parameters (include/bitnet.h). */
bn_status bn_cuda_create(const bn_model *m, int32_t n_ctx, int32_t n_seq, int32_t n_chunk,
                         uint32_t flags, bn_cuda_state **out);
void      bn_cuda_free(bn_cuda_state *s);

/* Same contract as bn_forward_chunk (model/context.h): run n tokens with
 * their sequence ids and positions (already validated), append to the KV
 * caches, and write logits of token i to host row logits[out_rows[i]] when
 * out_rows[i] >= 0. With defer, when the requested rows fit one head pass
 * (<= 64), they stay on the device instead (*deferred = true): read them
 * with bn_cuda_logits_row or sample them with bn_cuda_top_k, until the next
 * forward call. */
bn_status bn_cuda_forward_chunk(bn_cuda_state *s, int n, const int32_t *tokens, const int32_t *seq,
                                const int32_t *pos, const int32_t *out_rows, float *logits, bool defer,
                                bool *deferred);

/* Copy every deferred row to its host row logits[out_rows[i]] (one copy
 * per run of consecutive rows, as an eager call would have). */
bn_status bn_cuda_logits_fetch(bn_cuda_state *s, float *logits);

/* The k (1..BN_TOPK_DEVICE_MAX) best entries of deferred row `row` after adj,
 * higher logit first, then lower id, entries at -inf or NaN left out:
 * ids/logits [k], *n of them valid. The device row is not modified.
 * BN_ERR_UNSUPPORTED (nothing done) when the row or the lists do not fit. */
bn_status bn_cuda_top_k(bn_cuda_state *s, int32_t row, const bn_logit_adjust *adj, int32_t k, int32_t *ids,
                        float *logits, int32_t *n);

/* Instrumentation of the persistent batch-1 kernel (bench_cuda_bw): steps
 * single-token launches at positions 0..steps-1 of sequence 0 (the cache is
 * overwritten), each timed alone (kernel_us: mean) and again with
 * %globaltimer stamps; per phase k < BN_CU_NSTAMP (21, see cuda_persist.cu), mean_us[k]
 * is the mean time a block spends in it and crit_us[k] the time from the
 * last block entering it to the last block leaving it (their sum over k is
 * a layer). variant: experiment bits of the kernel (0 = the default). */
bn_status bn_cuda_trace_decode(bn_cuda_state *s, int steps, int variant, double *mean_us, double *crit_us,
                               double *kernel_us);

/* Page-lock a host buffer that logits are copied into (cudaHostRegister);
 * false leaves it pageable (correct, slower). bn_cuda_unpin before freeing. */
bool bn_cuda_pin(void *p, size_t bytes);
void bn_cuda_unpin(void *p);

/* Copy the first n cached positions of sequence src to dst. */
bn_status bn_cuda_seq_copy(bn_cuda_state *s, int32_t src, int32_t dst, int32_t n);

#endif
