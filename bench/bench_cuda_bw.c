/* bench_cuda_bw.c — the GPU roofline for `bitnet bench --device cuda`:
 * device-to-device copy bandwidth, and with a MODEL the bytes one decode
 * step must read on the GPU (2-bit weights, f16 head, norms) and the tokens/s
 * that bound gives; the backend's memory report is logged as well.
 * With a MODEL it also traces the persistent batch-1 kernel (where a step's
 * time goes, phase by phase; bn_cuda_trace_decode).
 * usage: bench_cuda_bw [MODEL [STEPS]]. Exits 77 without CUDA. */
#include <stdio.h>
#include <stdlib.h>

#include "bitnet.h"
#ifdef BITNET_CUDA
#include "cuda/cuda_backend.h"
#include "cuda/cuda_test.h"
#include "model/context.h"
#include "model/model.h"
#endif

#define BN_CU_NSTAMP_ 21 /* phases traced per layer (BN_CU_NSTAMP of cuda_internal.cuh) */

int main(int argc, char **argv) {
#ifdef BITNET_CUDA
    char desc[256];
    if (bn_cuda_probe(desc, sizeof desc) != BN_OK) {
        fprintf(stderr, "bench_cuda_bw: %s\n", bn_last_error());
        return 77;
    }
    double gbps = 0;
    const size_t bytes = (size_t)2 << 30;
    if (bn_cuda_copy_bandwidth(bytes, 10, &gbps) != BN_OK) {
        fprintf(stderr, "bench_cuda_bw: %s\n", bn_last_error());
        return 1;
    }
    printf("%s: cudaMemcpy device-to-device of 2 GiB: %.1f GB/s (bytes read + written per second)\n", desc, gbps);
    /* the decode GEMV alone on the 2B4T shapes (q|k|v, o, gate|up, down) */
    const int shapes[4][2] = {{3840, 2560}, {2560, 2560}, {13824, 2560}, {2560, 6912}};
    for (int i = 0; i < 4; i++) {
        double us = 0, us_pdl = 0, gb = 0;
        if (bn_cuda_bench_tgemv(shapes[i][0], shapes[i][1], 200, &us, &us_pdl, &gb) == BN_OK)
            printf("tgemv %5d x %4d: %6.2f us (%4.0f GB/s of weights), back-to-back with PDL %6.2f us\n", shapes[i][0],
                   shapes[i][1], us, gb, us_pdl);
    }
    if (argc < 2) return 0;
    bn_model_params mp = bn_model_default_params();
    mp.logger.min_level = BN_LOG_INFO;
    bn_model *m = NULL;
    if (bn_model_load(argv[1], &mp, &m) != BN_OK) {
        fprintf(stderr, "bench_cuda_bw: %s\n", bn_last_error());
        return 1;
    }
    const bn_hparams *hp = &m->hp;
    double step = (double)hp->n_vocab * hp->n_embd * 2 + (double)hp->n_embd * 4; /* f16 head + final norm */
    for (int l = 0; l < hp->n_layer; l++) {
        const bn_layer *L = &m->layers[l];
        const bn_linear *ls[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) step += (double)ls[i]->n_out * (double)bn_t2r_row_bytes(ls[i]->n_in) + 4;
        step += (double)(3 * hp->n_embd + hp->n_ff) * 4; /* norms */
    }
    printf("decode step reads %.1f MB of weights -> roofline %.0f tokens/s at batch 1\n", step / 1e6, gbps * 1e9 / step);
    /* a context logs the backend's memory use (weights, KV cache, workspace) */
    bn_context_params cp = bn_context_default_params();
    cp.device = BN_DEVICE_CUDA;
    cp.n_ctx = 4096;
    cp.n_batch = 512;
    cp.logger = mp.logger;
    bn_context *c = NULL;
    if (bn_context_create(m, &cp, &c) != BN_OK) fprintf(stderr, "bench_cuda_bw: %s\n", bn_last_error());
    static const char *names[BN_CU_NSTAMP_] = {
        "attn norm: load row", " sum of squares", " absmax", " codes + sum", "wait qkv weights", "qkv GEMV",
        "barrier (+ next copy)", "attention", "barrier", "sub-norm+quant", "o GEMV (+wait)", "barrier (+ next copy)",
        "ffn norm+quant", "gate|up GEMV, act*up", "barrier (+ next copy)", "down norm: load h", " sum of squares",
        " absmax", " codes + sum", "down GEMV (+wait)", "barrier (+ next copy)"};
    const int steps = argc > 2 ? atoi(argv[2]) : 128;
    /* variant 0: the default (TMA weight copies, fence + atomic barrier);
     * 1: release-add barrier; 2: v4's cp.async copies */
    static const int variants[] = {0, 1, 2};
    for (int vi = 0; c && vi < 3; vi++) {
        const int var = variants[vi];
        double mean[BN_CU_NSTAMP_], crit[BN_CU_NSTAMP_], kus = 0;
        if (bn_cuda_trace_decode(c->cuda, steps, var, mean, crit, &kus) != BN_OK) {
            fprintf(stderr, "bench_cuda_bw: %s\n", bn_last_error());
            break;
        }
        double sum = 0;
        for (int k = 0; k < BN_CU_NSTAMP_; k++) sum += crit[k];
        printf("persistent kernel (variant %d, positions 0..%d): %.1f us per step alone (%.1f tokens/s without the head)\n",
               var, steps - 1, kus, 1e6 / kus);
        printf("  per layer (traced): %.2f us; phase: mean per block / last-in to last-out\n", sum);
        for (int k = 0; k < BN_CU_NSTAMP_; k++) printf("  %-22s %7.2f %7.2f us\n", names[k], mean[k], crit[k]);
    }
    bn_context_free(c);
    bn_model_free(m);
    return 0;
#else
    (void)argc;
    (void)argv;
    fprintf(stderr, "bench_cuda_bw: built without -DBITNET_CUDA=ON\n");
    return 77;
#endif
}
