/* cuda_test_hooks.cu — the kernel-level entry points of cuda_test.h. */
#include "cuda_internal.cuh"

extern "C" {
#include "core/core.h"
#include "cuda/cuda_test.h"
}

namespace {
/* Device buffers freed on scope exit, so every early return cleans up. */
struct dbufs {
    void *p[8] = {};
    int   n = 0;
    ~dbufs() {
        for (int i = 0; i < n; i++) cudaFree(p[i]);
    }
    bool get(void **out, size_t bytes) {
        if (cudaMalloc(out, bytes ? bytes : 1) != cudaSuccess) return false;
        p[n++] = *out;
        return true;
    }
};
} // namespace

extern "C" bn_status bn_cuda_test_norm_quant(const float *x, int k, int n, const float *w, float eps, int8_t *q,
                                             float *xs, int32_t *xsum) {
    const int kp = bn_pad_k(k);
    dbufs b;
    float *dx = NULL, *dw = NULL;
    bn_cu_act a = {};
    if (!b.get((void **)&dx, (size_t)n * k * 4) || (w && !b.get((void **)&dw, (size_t)k * 4)) ||
        !b.get((void **)&a.q, (size_t)n * kp) || !b.get((void **)&a.xs, (size_t)n * 4) ||
        !b.get((void **)&a.xsum, (size_t)n * 4))
        return bn_fail(BN_ERR_NOMEM, "cuda: test buffers");
    BN_CU(cudaMemcpy(dx, x, (size_t)n * k * 4, cudaMemcpyHostToDevice), "upload");
    if (w) BN_CU(cudaMemcpy(dw, w, (size_t)k * 4, cudaMemcpyHostToDevice), "upload");
    bn_cu_norm_quant(0, false, dx, k, NULL, 0, dw, k, eps, n, a);
    BN_CU(cudaGetLastError(), "norm_quant launch");
    BN_CU(cudaMemcpy(q, a.q, (size_t)n * kp, cudaMemcpyDeviceToHost), "download");
    BN_CU(cudaMemcpy(xs, a.xs, (size_t)n * 4, cudaMemcpyDeviceToHost), "download");
    BN_CU(cudaMemcpy(xsum, a.xsum, (size_t)n * 4, cudaMemcpyDeviceToHost), "download");
    return BN_OK;
}

extern "C" bn_status bn_cuda_test_tgemm(const uint8_t *W, int M, int k, const int8_t *q, const float *xs,
                                        const int32_t *xsum, int n, float w_scale, bool gemm, float *y) {
    const int kp = bn_pad_k(k);
    const size_t wb = (size_t)M * bn_t2r_row_bytes(k);
    dbufs b;
    bn_cu_linear L = {};
    bn_cu_act a = {};
    float *dy = NULL, *ds = NULL;
    int8_t *wexp = NULL;
    int32_t *acc = NULL;
    if (!b.get((void **)&L.w, wb) || !b.get((void **)&ds, (size_t)M * 4) || !b.get((void **)&a.q, (size_t)n * kp) ||
        !b.get((void **)&a.xs, (size_t)n * 4) || !b.get((void **)&a.xsum, (size_t)n * 4) ||
        !b.get((void **)&dy, (size_t)n * M * 4) || !b.get((void **)&wexp, (size_t)M * kp) ||
        !b.get((void **)&acc, (size_t)n * M * 4))
        return bn_fail(BN_ERR_NOMEM, "cuda: test buffers");
    L.rscale = ds;
    L.M = M;
    L.K = k;
    L.Kp = kp;
    float *hs = (float *)malloc((size_t)M * 4);
    if (!hs) return bn_fail(BN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < M; i++) hs[i] = w_scale;
    cudaError_t ce = cudaMemcpy(ds, hs, (size_t)M * 4, cudaMemcpyHostToDevice);
    free(hs);
    BN_CU(ce, "upload");
    BN_CU(cudaMemcpy((void *)L.w, W, wb, cudaMemcpyHostToDevice), "upload");
    bn_cu_sanitize(0, (uint32_t *)L.w, wb / 4);
    BN_CU(cudaMemcpy(a.q, q, (size_t)n * kp, cudaMemcpyHostToDevice), "upload");
    BN_CU(cudaMemcpy(a.xs, xs, (size_t)n * 4, cudaMemcpyHostToDevice), "upload");
    BN_CU(cudaMemcpy(a.xsum, xsum, (size_t)n * 4, cudaMemcpyHostToDevice), "upload");
    if (gemm) {
        cublasHandle_t h;
        BN_CB(cublasCreate(&h), "handle");
        bn_status st = bn_cu_tgemm_cublas(0, false, h, &L, a, n, wexp, acc, dy, M, false);
        cublasDestroy(h);
        if (st != BN_OK) return st;
    } else {
        bn_cu_tgemv(0, false, &L, a, n, dy, M, false);
    }
    BN_CU(cudaGetLastError(), "tgemm launch");
    BN_CU(cudaMemcpy(y, dy, (size_t)n * M * 4, cudaMemcpyDeviceToHost), "download");
    return BN_OK;
}

extern "C" bn_status bn_cuda_copy_bandwidth(size_t bytes, int reps, double *gbps) {
    dbufs b;
    void *src = NULL, *dst = NULL;
    if (!b.get(&src, bytes) || !b.get(&dst, bytes)) return bn_fail(BN_ERR_NOMEM, "cuda: bandwidth buffers");
    BN_CU(cudaMemset(src, 1, bytes), "memset");
    cudaEvent_t e0, e1;
    BN_CU(cudaEventCreate(&e0), "event");
    BN_CU(cudaEventCreate(&e1), "event");
    float best = 1e30f;
    for (int r = 0; r < reps + 1; r++) {
        cudaEventRecord(e0);
        cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        if (r > 0 && ms < best) best = ms; /* the first copy is a warm-up */
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    BN_CU(cudaGetLastError(), "copy");
    *gbps = 2.0 * (double)bytes / (best * 1e-3) / 1e9;
    return BN_OK;
}

extern "C" bn_status bn_cuda_bench_tgemv(int M, int k, int iters, double *us, double *us_pdl, double *gbps) {
    const int kp = bn_pad_k(k);
    const size_t wb = (size_t)M * bn_t2r_row_bytes(k);
    dbufs b;
    bn_cu_linear L = {};
    bn_cu_act a = {};
    float *dy = NULL, *ds = NULL;
    if (!b.get((void **)&L.w, wb) || !b.get((void **)&ds, (size_t)M * 4) || !b.get((void **)&a.q, (size_t)kp) ||
        !b.get((void **)&a.xs, 4) || !b.get((void **)&a.xsum, 4) || !b.get((void **)&dy, (size_t)M * 4))
        return bn_fail(BN_ERR_NOMEM, "cuda: bench buffers");
    BN_CU(cudaMemset((void *)L.w, 0x96, wb), "memset"); /* codes 2,1,1,2 */
    BN_CU(cudaMemset(ds, 0, (size_t)M * 4), "memset");
    BN_CU(cudaMemset(a.q, 1, (size_t)kp), "memset");
    BN_CU(cudaMemset(a.xs, 0, 4), "memset");
    BN_CU(cudaMemset(a.xsum, 0, 4), "memset");
    L.rscale = ds;
    L.M = M;
    L.K = k;
    L.Kp = kp;
    cudaStream_t st;
    BN_CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "stream");
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    double res[2];
    for (int pdl = 0; pdl < 2; pdl++) {
        for (int i = 0; i < 10; i++) bn_cu_tgemv(st, pdl, &L, a, 1, dy, M, false);
        cudaEventRecord(e0, st);
        for (int i = 0; i < iters; i++) bn_cu_tgemv(st, pdl, &L, a, 1, dy, M, false);
        cudaEventRecord(e1, st);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        res[pdl] = ms * 1e3 / iters;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaStreamDestroy(st);
    BN_CU(cudaGetLastError(), "bench");
    *us = res[0];
    *us_pdl = res[1];
    *gbps = (double)wb / (res[0] * 1e-6) / 1e9;
    return BN_OK;
}
