/* cuda_kernels.cu — the device kernels of the forward pass. Numerics follow
 * src/kernels/ref.c: f32 everywhere except the optional f16 KV cache and the f16
 * head; the int8 quantization uses the same two roundings and half-even
 * rint so codes agree with the CPU path (up to f32 summation order in the
 * RMSNorm). */
#include <stdio.h>

#include "cuda_internal.cuh"
#include "cuda_reduce.cuh"

extern "C" {
#include "core/core.h"
}

bn_status bn_cuda_fail(cudaError_t e, const char *what) {
    return bn_fail(BN_ERR_INTERNAL, "cuda: %s: %s", what, cudaGetErrorString(e));
}

bn_status bn_cublas_fail(cublasStatus_t e, const char *what) {
    return bn_fail(BN_ERR_INTERNAL, "cublas: %s: status %d", what, (int)e);
}

namespace {

/* Programmatic dependent launch (sm_90+): a kernel launched with the PDL
 * attribute may start while its predecessor runs; griddep_wait() blocks
 * until the predecessor grid has completed and its writes are visible, and
 * griddep_launch() lets the successor start launching. Every kernel waits
 * before it reads anything a predecessor wrote (and before any early exit,
 * so completion stays ordered down the chain); the GEMV streams its
 * weights in before waiting. No-ops on older GPUs. */
__device__ __forceinline__ void griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void griddep_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}


__device__ __forceinline__ float act_value(const float *x, const float *up, int act, int i) {
    const float g = x[i];
    if (!up) return g;
    if (act == 0) {
        const float r = g > 0.0f ? g : 0.0f;
        return __fmul_rn(__fmul_rn(r, r), up[i]);
    }
    return __fmul_rn(__fdiv_rn(g, 1.0f + expf(-g)), up[i]);
}

/* One block per token: (RMSNorm) -> absmax -> int8 codes, as ref.c. */
__global__ void k_norm_quant(const float *x, int ldx, const float *up, int act, const float *w, int k, int kp,
                             float eps, int8_t *q, float *xs, int *xsum) {
    __shared__ float sh[32];
    __shared__ int ish[32];
    griddep_wait();
    griddep_launch();
    const int t = blockIdx.x;
    const float *xr = x + (size_t)t * ldx;
    const float *ur = up ? up + (size_t)t * ldx : nullptr;
    float inv = 1.0f;
    if (w) {
        float ss = 0.0f;
        for (int i = threadIdx.x; i < k; i += blockDim.x) {
            const float v = act_value(xr, ur, act, i);
            ss = __fadd_rn(ss, __fmul_rn(v, v));
        }
        ss = block_sum(ss, sh);
        inv = __fdiv_rn(1.0f, sqrtf(__fadd_rn(__fdiv_rn(ss, (float)k), eps)));
    }
    float amax = 0.0f;
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        float v = act_value(xr, ur, act, i);
        if (w) v = __fmul_rn(w[i], __fmul_rn(v, inv));
        amax = fmaxf(amax, fabsf(v));
    }
    amax = fmaxf(block_max(amax, sh), 1e-5f);
    const float s = __fmul_rn(__fdiv_rn(1.0f, amax), 127.0f);
    int8_t *qr = q + (size_t)t * kp;
    int sum = 0;
    for (int i = threadIdx.x; i < kp; i += blockDim.x) {
        int c = 0;
        if (i < k) {
            float v = act_value(xr, ur, act, i);
            if (w) v = __fmul_rn(w[i], __fmul_rn(v, inv));
            const float r = fminf(fmaxf(rintf(__fmul_rn(v, s)), -128.0f), 127.0f);
            c = (int)r;
        }
        qr[i] = (int8_t)c;
        sum += c;
    }
    sum = block_isum(sum, ish);
    if (threadIdx.x == 0) {
        xs[t] = __fdiv_rn(1.0f, s);
        xsum[t] = sum;
    }
}

/* The same with the row held in registers (VPT values per thread, 1024
 * threads): one pass over global memory instead of three, so the block is
 * not serialized on load latency (v1 took 12-28 us per call at batch 1). */
template <int VPT>
__global__ void __launch_bounds__(1024) k_norm_quant_reg(const float *x, int ldx, const float *up, int act,
                                                         const float *w, int k, int kp, float eps, int8_t *q,
                                                         float *xs, int *xsum) {
    __shared__ float sh[32];
    __shared__ int ish[32];
    griddep_wait();
    griddep_launch();
    const int t = blockIdx.x;
    const float *xr = x + (size_t)t * ldx;
    const float *ur = up ? up + (size_t)t * ldx : nullptr;
    float v[VPT];
#pragma unroll
    for (int j = 0; j < VPT; j++) {
        const int i = threadIdx.x + j * 1024;
        v[j] = i < k ? act_value(xr, ur, act, i) : 0.0f;
    }
    if (w) {
        float ss = 0.0f;
#pragma unroll
        for (int j = 0; j < VPT; j++) ss = __fadd_rn(ss, __fmul_rn(v[j], v[j]));
        ss = block_sum(ss, sh);
        const float inv = __fdiv_rn(1.0f, sqrtf(__fadd_rn(__fdiv_rn(ss, (float)k), eps)));
#pragma unroll
        for (int j = 0; j < VPT; j++) {
            const int i = threadIdx.x + j * 1024;
            if (i < k) v[j] = __fmul_rn(w[i], __fmul_rn(v[j], inv));
        }
    }
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < VPT; j++) amax = fmaxf(amax, fabsf(v[j]));
    amax = fmaxf(block_max(amax, sh), 1e-5f);
    const float s = __fmul_rn(__fdiv_rn(1.0f, amax), 127.0f);
    int8_t *qr = q + (size_t)t * kp;
    int sum = 0;
#pragma unroll
    for (int j = 0; j < VPT; j++) {
        const int i = threadIdx.x + j * 1024;
        if (i < kp) {
            const int c = i < k ? (int)fminf(fmaxf(rintf(__fmul_rn(v[j], s)), -128.0f), 127.0f) : 0;
            qr[i] = (int8_t)c;
            sum += c;
        }
    }
    sum = block_isum(sum, ish);
    if (threadIdx.x == 0) {
        xs[t] = __fdiv_rn(1.0f, s);
        xsum[t] = sum;
    }
}

__global__ void k_sanitize(uint32_t *w, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t v = w[i];
        const uint32_t three = v & (v >> 1) & 0x55555555u; /* low bit of every 0b11 field */
        w[i] = v ^ (three << 1);                           /* 0b11 -> 0b01 */
    }
}

/* Ternary x int8 for a tile of up to NT tokens. LPR lanes per output row
 * (8, 16 or 32: enough that a row's chunks fit one pass of U = 8 loads per
 * lane), 128-thread blocks; each lane's loads are all issued before any
 * arithmetic (v1, one warp per row and at most 2 loads in flight at
 * K = 2560, reached ~30% of the copy bandwidth), and the first pass is
 * issued before griddep_wait(), overlapping the previous kernel. A row's
 * chunks are contiguous, so a row's lanes read LPR*16 contiguous bytes per
 * load. Chunk c holds bytes 16(c&1).. of T2R block c>>1: elements
 * base + 32g + [0,16) in bit pair 6-2g, so each 32-bit word x 4 groups
 * feeds 4 dp4a with int8 words of q at base + 32g. Codes are unsigned
 * (0..2): the true dot is sum(code*q) - sum(q). */
template <int NT, bool ADD, int LPR>
__global__ void __launch_bounds__(128) k_tgemv(const uint4 *__restrict__ W, int M, int cpr,
                                                const float *__restrict__ rscale, const int8_t *__restrict__ q, int ldq,
                                                const float *__restrict__ xs, const int *__restrict__ xsum, int n,
                                                float *__restrict__ y, int ldy) {
    constexpr int U = 8, RPW = 32 / LPR; /* rows per warp */
    const int lane = threadIdx.x & 31, sl = lane % LPR;
    const int row = (blockIdx.x * 4 + (threadIdx.x >> 5)) * RPW + lane / LPR;
    const bool ok = row < M;
    const int t0 = blockIdx.y * NT;
    int acc[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) acc[j] = 0;
    const uint4 *wr = W + (size_t)(ok ? row : 0) * cpr;
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int c = u * LPR + sl;
        if (ok && c < cpr) wv[u] = __ldg(wr + c);
    }
    griddep_wait();
    griddep_launch();
    const int nt = min(NT, n - t0);
    for (int c0 = 0; c0 < cpr; c0 += LPR * U) {
        if (c0 > 0) {
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int c = c0 + u * LPR + sl;
                if (ok && c < cpr) wv[u] = __ldg(wr + c);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + u * LPR + sl;
            if (!ok || c >= cpr) break;
            const int base = (c >> 1) * 128 + (c & 1) * 16;
#pragma unroll
            for (int j = 0; j < NT; j++) {
                if (j >= nt) break;
                const int8_t *qr = q + (size_t)(t0 + j) * ldq + base;
#pragma unroll
                for (int g = 0; g < 4; g++) {
                    const int4 a = *reinterpret_cast<const int4 *>(qr + g * 32);
                    const int sh = 6 - 2 * g;
                    int s = acc[j];
                    s = __dp4a((int)((wv[u].x >> sh) & 0x03030303u), a.x, s);
                    s = __dp4a((int)((wv[u].y >> sh) & 0x03030303u), a.y, s);
                    s = __dp4a((int)((wv[u].z >> sh) & 0x03030303u), a.z, s);
                    s = __dp4a((int)((wv[u].w >> sh) & 0x03030303u), a.w, s);
                    acc[j] = s;
                }
            }
        }
    }
    const float rs = ok ? rscale[row] : 0.0f;
#pragma unroll
    for (int j = 0; j < NT; j++) {
        int tot = acc[j];
#pragma unroll
        for (int o = LPR / 2; o; o >>= 1) tot += __shfl_xor_sync(0xffffffffu, tot, o);
        if (ok && sl == 0 && j < nt) {
            const int t = t0 + j;
            const float r = __fmul_rn(__fmul_rn((float)(tot - xsum[t]), rs), xs[t]);
            float *dst = y + (size_t)t * ldy + row;
            *dst = ADD ? __fadd_rn(*dst, r) : r;
        }
    }
}

/* The decode GEMV (one token) with the producer's (RMSNorm +) int8
 * quantization fused in as a prologue: every block normalizes and quantizes
 * the input row itself into shared memory (the row is in L2; the weight
 * loads of the first pass are already in flight), so the separate
 * norm_quant kernel and its launch (~5 us each, 4 per layer) disappear.
 * Same numerics as k_norm_quant_reg up to the f32 order of the sum of
 * squares. Dynamic shared memory: k floats + kp bytes. */
template <bool ADD, int LPR>
__global__ void __launch_bounds__(128) k_tgemv_fused(const uint4 *__restrict__ W, int M, int cpr,
                                                      const float *__restrict__ rscale, const float *x,
                                                      const float *up, int act, const float *nw, int k, float eps,
                                                      float *__restrict__ y) {
    constexpr int U = 8, RPW = 32 / LPR;
    extern __shared__ float fsm[];
    __shared__ float red[32];
    __shared__ int ired[32];
    const int kp = cpr * 64;
    float *xv = fsm;
    int8_t *qs = reinterpret_cast<int8_t *>(fsm + k);
    const int lane = threadIdx.x & 31, sl = lane % LPR;
    const int row = (blockIdx.x * 4 + (threadIdx.x >> 5)) * RPW + lane / LPR;
    const bool ok = row < M;
    const uint4 *wr = W + (size_t)(ok ? row : 0) * cpr;
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int c = u * LPR + sl;
        if (ok && c < cpr) wv[u] = __ldg(wr + c);
    }
    const float rs = ok ? rscale[row] : 0.0f;
    griddep_wait();
    griddep_launch();
    /* prologue: the row into shared memory, (norm,) quantize */
    float ss = 0.0f;
#pragma unroll 4
    for (int i = threadIdx.x; i < k; i += 128) {
        const float v = act_value(x, up, act, i);
        xv[i] = v;
        ss = __fadd_rn(ss, __fmul_rn(v, v));
    }
    float inv = 1.0f;
    if (nw) {
        ss = block_sum(ss, red);
        inv = __fdiv_rn(1.0f, sqrtf(__fadd_rn(__fdiv_rn(ss, (float)k), eps)));
    }
    float amax = 0.0f;
#pragma unroll 4
    for (int i = threadIdx.x; i < k; i += 128) {
        float v = xv[i];
        if (nw) {
            v = __fmul_rn(nw[i], __fmul_rn(v, inv));
            xv[i] = v;
        }
        amax = fmaxf(amax, fabsf(v));
    }
    amax = fmaxf(block_max(amax, red), 1e-5f);
    const float s = __fmul_rn(__fdiv_rn(1.0f, amax), 127.0f);
    int sum = 0;
    for (int i = threadIdx.x; i < kp; i += 128) {
        const int c = i < k ? (int)fminf(fmaxf(rintf(__fmul_rn(xv[i], s)), -128.0f), 127.0f) : 0;
        qs[i] = (int8_t)c;
        sum += c;
    }
    sum = block_isum(sum, ired); /* its barriers also publish qs */
    const float xs = __fdiv_rn(1.0f, s);
    int acc = 0;
    for (int c0 = 0; c0 < cpr; c0 += LPR * U) {
        if (c0 > 0) {
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int c = c0 + u * LPR + sl;
                if (ok && c < cpr) wv[u] = __ldg(wr + c);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + u * LPR + sl;
            if (!ok || c >= cpr) break;
            const int8_t *qr = qs + (c >> 1) * 128 + (c & 1) * 16;
#pragma unroll
            for (int g = 0; g < 4; g++) {
                const int4 a = *reinterpret_cast<const int4 *>(qr + g * 32);
                const int sh = 6 - 2 * g;
                acc = __dp4a((int)((wv[u].x >> sh) & 0x03030303u), a.x, acc);
                acc = __dp4a((int)((wv[u].y >> sh) & 0x03030303u), a.y, acc);
                acc = __dp4a((int)((wv[u].z >> sh) & 0x03030303u), a.z, acc);
                acc = __dp4a((int)((wv[u].w >> sh) & 0x03030303u), a.w, acc);
            }
        }
    }
#pragma unroll
    for (int o = LPR / 2; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (ok && sl == 0) {
        const float r = __fmul_rn(__fmul_rn((float)(acc - sum), rs), xs);
        y[row] = ADD ? __fadd_rn(y[row], r) : r;
    }
}

/* One thread per weight byte: four int8 weights (code - 1) out. */
__global__ void k_expand(const uint8_t *W, size_t nbytes, int rb, int kp, int8_t *out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < nbytes; i += (size_t)gridDim.x * blockDim.x) {
        const size_t row = i / rb;
        const int b = (int)(i % rb), blk = b >> 5, j = b & 31;
        const int v = W[i];
        int8_t *o = out + row * kp + blk * 128 + j;
        o[0] = (int8_t)(((v >> 6) & 3) - 1);
        o[32] = (int8_t)(((v >> 4) & 3) - 1);
        o[64] = (int8_t)(((v >> 2) & 3) - 1);
        o[96] = (int8_t)((v & 3) - 1);
    }
}

template <bool ADD>
__global__ void k_scale_out(const int32_t *acc, int M, int n, const float *rscale, const float *xs, float *y, int ldy) {
    griddep_wait();
    griddep_launch();
    const size_t total = (size_t)M * n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int t = (int)(i / M), m = (int)(i % M);
        const float r = __fmul_rn(__fmul_rn((float)acc[i], rscale[m]), xs[t]);
        float *dst = y + (size_t)t * ldy + m;
        *dst = ADD ? __fadd_rn(*dst, r) : r;
    }
}

__device__ __forceinline__ void kv_put(float *p, float v) { *p = v; }
__device__ __forceinline__ void kv_put(__half *p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ float2 kv_get2(const float *p) { return *reinterpret_cast<const float2 *>(p); }
__device__ __forceinline__ float2 kv_get2(const __half *p) { return __half22float2(*reinterpret_cast<const __half2 *>(p)); }
__device__ __forceinline__ float kv_get(const float *p) { return *p; }
__device__ __forceinline__ float kv_get(const __half *p) { return __half2float(*p); }

__global__ void k_embed(const void *E, int et, int e, const int *tok, float *x) {
    griddep_wait();
    griddep_launch();
    const int t = blockIdx.x;
    const size_t base = (size_t)tok[t] * e;
    float *xr = x + (size_t)t * e;
    for (int i = threadIdx.x; i < e; i += blockDim.x) {
        float v;
        if (et == BN_CU_F16) v = __half2float(((const __half *)E)[base + i]);
        else if (et == BN_CU_BF16) v = __uint_as_float((uint32_t)((const uint16_t *)E)[base + i] << 16);
        else v = ((const float *)E)[base + i];
        xr[i] = v;
    }
}

/* grid (n, ceil((pairs + kvd) / 128)): one rotation pair (q heads, then k
 * heads into the cache) or one v element per thread (v1 looped in one
 * block per token: 9 us at batch 1). */
template <typename T>
__global__ void k_rope_store(float *qkv, int ld, const float *inv_freq, const int *pos, const int *seq, bn_cu_kv kv,
                             int layer) {
    griddep_wait();
    griddep_launch();
    const int t = blockIdx.x, p = pos[t], hd = kv.head_dim, half = hd / 2;
    const int qd = kv.n_head * hd, kvd = kv.n_head_kv * hd;
    const int pairs = (kv.n_head + kv.n_head_kv) * half;
    const int w = blockIdx.y * blockDim.x + threadIdx.x;
    float *row = qkv + (size_t)t * ld;
    const size_t off = (((size_t)seq[t] * kv.n_layer + layer) * kv.n_ctx + p) * kvd;
    T *K = (T *)kv.k + off, *Vc = (T *)kv.v + off;
    if (w < pairs) {
        const int h = w / half, i = w % half;
        const float ang = __fmul_rn((float)p, inv_freq[i]);
        const float c = cosf(ang), s = sinf(ang);
        float *v = row + (size_t)h * hd; /* q heads, then k heads (contiguous) */
        const float a = v[i], b = v[i + half];
        const float r0 = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
        const float r1 = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
        if (h < kv.n_head) {
            v[i] = r0;
            v[i + half] = r1;
        } else {
            const int kh = h - kv.n_head;
            kv_put(K + (size_t)kh * hd + i, r0);
            kv_put(K + (size_t)kh * hd + i + half, r1);
        }
    } else if (w - pairs < kvd) {
        kv_put(Vc + (w - pairs), row[qd + kvd + (w - pairs)]);
    }
}

/* grid (n_split, n_head, n): scores of one split in shared memory, its own
 * max and exp-sum, unnormalized P.V. A lone split writes the normalized
 * output; otherwise each split writes (o[hd], m, l) and the last split of
 * its (token, head) to finish (a counter, reset by that block) combines
 * them, so no second kernel is launched (v1: a combine kernel, 4 us). */
template <typename T, bool ROPE>
__global__ void k_attn_split(const float *qkv, int ld, const int *pos, const int *seq, bn_cu_kv kv, int layer,
                             int split_len, int n_split, float scale, float *part, int *counters, float *att,
                             int ldo, const float *inv_freq) {
    extern __shared__ float smem[];
    __shared__ float red[32];
    __shared__ int last;
    griddep_wait();
    griddep_launch();
    const int sp = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    const int hd = kv.head_dim, kvd = kv.n_head_kv * hd, kvh = h / (kv.n_head / kv.n_head_kv);
    const int n_kv = pos[t] + 1, start = sp * split_len;
    const int ns = (n_kv + split_len - 1) / split_len;
    if (sp >= ns) return; /* only splits holding positions 0..pos take part */
    const int len = min(split_len, n_kv - start);
    float *qs = smem, *s = smem + hd, *ks = smem + hd + split_len;
    const float *qr = qkv + (size_t)t * ld + (size_t)h * hd;
    /* ROPE (one token): RoPE fused in. q is rotated on load, the token's own
     * k (rotated) and v come from the qkv row instead of the cache, and one
     * block per kv head (the first q head of its group, in the last split)
     * stores them into the cache for later steps. No block of this launch
     * reads the cache at position pos, so there is no race. */
    const float *vrow = qkv + (size_t)t * ld + (size_t)(kv.n_head * hd + kvd) + (size_t)kvh * hd;
    const size_t base = (((size_t)seq[t] * kv.n_layer + layer) * kv.n_ctx) * kvd + (size_t)kvh * hd;
    if (ROPE) {
        const int half = hd / 2, p = n_kv - 1;
        const float *kr0 = qkv + (size_t)t * ld + (size_t)kv.n_head * hd + (size_t)kvh * hd;
        for (int i = threadIdx.x; i < half; i += blockDim.x) {
            const float ang = __fmul_rn((float)p, inv_freq[i]);
            const float c = cosf(ang), sn = sinf(ang);
            float a = qr[i], b = qr[i + half];
            qs[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, sn));
            qs[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, sn));
            a = kr0[i];
            b = kr0[i + half];
            ks[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, sn));
            ks[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, sn));
        }
        __syncthreads();
        if (sp == ns - 1 && h % (kv.n_head / kv.n_head_kv) == 0) {
            T *Kc = (T *)kv.k + base + (size_t)p * kvd, *Vc = (T *)kv.v + base + (size_t)p * kvd;
            for (int d = threadIdx.x; d < hd; d += blockDim.x) {
                kv_put(Kc + d, ks[d]);
                kv_put(Vc + d, vrow[d]);
            }
        }
    } else {
        for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qr[d];
        __syncthreads();
    }
    const T *K = (const T *)kv.k + base, *V = (const T *)kv.v + base;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int j = warp; j < len; j += nw) {
        const T *kr = K + (size_t)(start + j) * kvd;
        const bool own = ROPE && start + j == n_kv - 1;
        float dot = 0.0f;
        for (int d2 = lane; d2 < hd / 2; d2 += 32) {
            const float2 kf = own ? make_float2(ks[2 * d2], ks[2 * d2 + 1]) : kv_get2(kr + 2 * d2);
            dot += qs[2 * d2] * kf.x + qs[2 * d2 + 1] * kf.y;
        }
        dot = warp_sum(dot);
        if (lane == 0) s[j] = dot * scale;
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < len; j += blockDim.x) mx = fmaxf(mx, s[j]);
    mx = block_max(mx, red);
    float l = 0.0f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        const float e = expf(s[j] - mx);
        s[j] = e;
        l += e;
    }
    l = block_sum(l, red); /* ends with a barrier after the s[] writes */
    __syncthreads();
    float *dst = att + (size_t)t * ldo + (size_t)h * hd;
    float *part_th = part + ((size_t)t * kv.n_head + h) * n_split * (size_t)(hd + 2);
    float *out = part_th + (size_t)sp * (hd + 2);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        const int jn = ROPE && sp == ns - 1 ? len - 1 : len; /* ROPE: the last position from vrow */
        for (int j = 0; j < jn; j++) acc += s[j] * kv_get(V + (size_t)(start + j) * kvd + d);
        if (jn < len) acc += s[len - 1] * vrow[d];
        if (ns == 1) dst[d] = acc * (1.0f / l);
        else out[d] = acc;
    }
    if (ns == 1) return;
    if (threadIdx.x == 0) {
        out[hd] = mx;
        out[hd + 1] = l;
    }
    __threadfence(); /* partials visible device-wide before counting */
    __syncthreads();
    if (threadIdx.x == 0) {
        int *c = counters + (size_t)t * kv.n_head + h;
        last = atomicAdd(c, 1) == ns - 1;
        if (last) *c = 0; /* ready for the next step (graph replays) */
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    float M = -INFINITY;
    for (int i = 0; i < ns; i++) M = fmaxf(M, __ldcg(part_th + (size_t)i * (hd + 2) + hd));
    float L = 0.0f;
    for (int i = 0; i < ns; i++)
        L += __ldcg(part_th + (size_t)i * (hd + 2) + hd + 1) * expf(__ldcg(part_th + (size_t)i * (hd + 2) + hd) - M);
    const float inv = 1.0f / L;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int i = 0; i < ns; i++)
            acc += __ldcg(part_th + (size_t)i * (hd + 2) + d) * expf(__ldcg(part_th + (size_t)i * (hd + 2) + hd) - M);
        dst[d] = acc * inv;
    }
}

__global__ void k_head_norm(const float *x, int e, const int *rows, const float *w, float eps, __half *h) {
    __shared__ float sh[32];
    griddep_wait();
    griddep_launch();
    const int j = blockIdx.x;
    const float *xr = x + (size_t)rows[j] * e;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < e; i += blockDim.x) ss = __fadd_rn(ss, __fmul_rn(xr[i], xr[i]));
    ss = block_sum(ss, sh);
    const float inv = __fdiv_rn(1.0f, sqrtf(__fadd_rn(__fdiv_rn(ss, (float)e), eps)));
    for (int i = threadIdx.x; i < e; i += blockDim.x)
        h[(size_t)j * e + i] = __float2half_rn(__fmul_rn(w[i], __fmul_rn(xr[i], inv)));
}

int grid_for(size_t n, int threads) {
    size_t g = (n + threads - 1) / threads;
    return (int)(g > 65535 * 4 ? 65535 * 4 : (g ? g : 1));
}

} // namespace

/* Launch k on st, with the programmatic-dependent-launch attribute when pdl. */
template <typename... KArgs, typename... Args>
static void launch(bool pdl, cudaStream_t st, dim3 grid, dim3 block, size_t smem, void (*k)(KArgs...),
                   Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    cudaLaunchKernelEx(&cfg, k, (KArgs)args...);
}

void bn_cu_norm_quant(cudaStream_t st, bool pdl, const float *x, int ldx, const float *up, int act, const float *w,
                      int k, float eps, int n, bn_cu_act a) {
    const int kp = bn_pad_k(k);
    const dim3 g((unsigned)n), b1(1024);
    if (kp <= 1024) launch(pdl, st, g, b1, 0, k_norm_quant_reg<1>, x, ldx, up, act, w, k, kp, eps, a.q, a.xs, a.xsum);
    else if (kp <= 2048) launch(pdl, st, g, b1, 0, k_norm_quant_reg<2>, x, ldx, up, act, w, k, kp, eps, a.q, a.xs, a.xsum);
    else if (kp <= 4096) launch(pdl, st, g, b1, 0, k_norm_quant_reg<4>, x, ldx, up, act, w, k, kp, eps, a.q, a.xs, a.xsum);
    else if (kp <= 8192) launch(pdl, st, g, b1, 0, k_norm_quant_reg<8>, x, ldx, up, act, w, k, kp, eps, a.q, a.xs, a.xsum);
    else launch(pdl, st, g, dim3(256), 0, k_norm_quant, x, ldx, up, act, w, k, kp, eps, a.q, a.xs, a.xsum);
}

void bn_cu_sanitize(cudaStream_t st, uint32_t *w, size_t nwords) {
    k_sanitize<<<grid_for(nwords, 256), 256, 0, st>>>(w, nwords);
}

template <int NT, int LPR>
static void tgemv_lpr(cudaStream_t st, bool pdl, const bn_cu_linear *L, bn_cu_act a, int n, float *y, int ldy,
                      bool add) {
    const int rows_per_block = 4 * (32 / LPR);
    const dim3 grid((unsigned)((L->M + rows_per_block - 1) / rows_per_block), (unsigned)((n + NT - 1) / NT));
    const int cpr = L->Kp / 64;
    if (add)
        launch(pdl, st, grid, dim3(128), 0, k_tgemv<NT, true, LPR>, L->w, L->M, cpr, L->rscale, (const int8_t *)a.q,
               L->Kp, (const float *)a.xs, (const int *)a.xsum, n, y, ldy);
    else
        launch(pdl, st, grid, dim3(128), 0, k_tgemv<NT, false, LPR>, L->w, L->M, cpr, L->rscale, (const int8_t *)a.q,
               L->Kp, (const float *)a.xs, (const int *)a.xsum, n, y, ldy);
}

template <int NT>
static void tgemv_nt(cudaStream_t st, bool pdl, const bn_cu_linear *L, bn_cu_act a, int n, float *y, int ldy,
                     bool add) {
    const int cpr = L->Kp / 64; /* lanes per row: a row in one pass of 8 loads per lane */
    if (cpr <= 64) tgemv_lpr<NT, 8>(st, pdl, L, a, n, y, ldy, add);
    else if (cpr <= 128) tgemv_lpr<NT, 16>(st, pdl, L, a, n, y, ldy, add);
    else tgemv_lpr<NT, 32>(st, pdl, L, a, n, y, ldy, add);
}

template <int LPR>
static void tgemv_fused_lpr(cudaStream_t st, bool pdl, const bn_cu_linear *L, const float *x, const float *up, int act,
                            const float *nw, int k, float eps, float *y, bool add) {
    const int rows_per_block = 4 * (32 / LPR);
    const dim3 grid((unsigned)((L->M + rows_per_block - 1) / rows_per_block));
    const int cpr = L->Kp / 64;
    const size_t smem = (size_t)k * 4 + (size_t)L->Kp;
    if (add)
        launch(pdl, st, grid, dim3(128), smem, k_tgemv_fused<true, LPR>, L->w, L->M, cpr, L->rscale, x, up, act, nw, k,
               eps, y);
    else
        launch(pdl, st, grid, dim3(128), smem, k_tgemv_fused<false, LPR>, L->w, L->M, cpr, L->rscale, x, up, act, nw, k,
               eps, y);
}

bool bn_cu_tgemv_fused(cudaStream_t st, bool pdl, const bn_cu_linear *L, const float *x, const float *up, int act,
                       const float *nw, int k, float eps, float *y, bool add) {
    if ((size_t)k * 4 + (size_t)L->Kp > 46 * 1024 || k > L->Kp) return false;
    const int cpr = L->Kp / 64;
    if (cpr <= 64) tgemv_fused_lpr<8>(st, pdl, L, x, up, act, nw, k, eps, y, add);
    else if (cpr <= 128) tgemv_fused_lpr<16>(st, pdl, L, x, up, act, nw, k, eps, y, add);
    else tgemv_fused_lpr<32>(st, pdl, L, x, up, act, nw, k, eps, y, add);
    return true;
}

void bn_cu_tgemv(cudaStream_t st, bool pdl, const bn_cu_linear *L, bn_cu_act a, int n, float *y, int ldy, bool add) {
    if (n == 1) tgemv_nt<1>(st, pdl, L, a, n, y, ldy, add);
    else if (n == 2) tgemv_nt<2>(st, pdl, L, a, n, y, ldy, add);
    else if (n <= 4) tgemv_nt<4>(st, pdl, L, a, n, y, ldy, add);
    else tgemv_nt<8>(st, pdl, L, a, n, y, ldy, add);
}

bn_status bn_cu_tgemm_cublas(cudaStream_t st, bool pdl, cublasHandle_t h, const bn_cu_linear *L, bn_cu_act a, int n,
                             int8_t *wexp, int32_t *acc, float *y, int ldy, bool add) {
    const int8_t *w8 = L->w8;
    if (!w8) {
        bn_cu_expand(st, (const uint8_t *)L->w, L->M, L->Kp, wexp);
        w8 = wexp;
    }
    /* Column-major view: W^T is [Kp, M] (lda Kp), q is [Kp, n] (ldb Kp);
     * C = W q^T is [M, n] col-major = [n, M] row-major. */
    const int32_t one = 1, zero = 0;
    BN_CB(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, L->M, n, L->Kp, &one, w8, CUDA_R_8I, L->Kp, a.q, CUDA_R_8I,
                       L->Kp, &zero, acc, CUDA_R_32I, L->M, CUBLAS_COMPUTE_32I, CUBLAS_GEMM_DEFAULT),
          "int8 GEMM");
    const size_t total = (size_t)L->M * n;
    const dim3 g((unsigned)grid_for(total, 256)), b(256);
    if (add) launch(pdl, st, g, b, 0, k_scale_out<true>, (const int32_t *)acc, L->M, n, L->rscale, (const float *)a.xs, y, ldy);
    else launch(pdl, st, g, b, 0, k_scale_out<false>, (const int32_t *)acc, L->M, n, L->rscale, (const float *)a.xs, y, ldy);
    return BN_OK;
}

void bn_cu_expand(cudaStream_t st, const uint8_t *W, int M, int Kp, int8_t *out) {
    const int rb = Kp / 4;
    const size_t nbytes = (size_t)M * rb;
    k_expand<<<grid_for(nbytes, 256), 256, 0, st>>>(W, nbytes, rb, Kp, out);
}

void bn_cu_embed(cudaStream_t st, const void *E, int et, int e, const int *tok, int n, float *x) {
    k_embed<<<n, 256, 0, st>>>(E, et, e, tok, x);
}

void bn_cu_rope_store(cudaStream_t st, bool pdl, float *qkv, int ld, const float *inv_freq, const int *pos,
                      const int *seq, int n, const bn_cu_kv *kv, int layer) {
    const int items = (kv->n_head + kv->n_head_kv) * (kv->head_dim / 2) + kv->n_head_kv * kv->head_dim;
    const dim3 grid((unsigned)n, (unsigned)((items + 127) / 128));
    if (kv->f16) launch(pdl, st, grid, dim3(128), 0, k_rope_store<__half>, qkv, ld, inv_freq, pos, seq, *kv, layer);
    else launch(pdl, st, grid, dim3(128), 0, k_rope_store<float>, qkv, ld, inv_freq, pos, seq, *kv, layer);
}

void bn_cu_attention(cudaStream_t st, bool pdl, const float *qkv, int ld, const int *pos, const int *seq, int n,
                     const bn_cu_kv *kv, int layer, int split_len, int n_split, float *part, int *counters,
                     float *out, int ldo, const float *inv_freq) {
    const dim3 grid((unsigned)n_split, (unsigned)kv->n_head, (unsigned)n);
    const bool rope = inv_freq != NULL;
    const size_t smem = (size_t)(kv->head_dim * (rope ? 2 : 1) + split_len) * sizeof(float);
    const float scale = 1.0f / sqrtf((float)kv->head_dim);
    const dim3 b(128);
    if (kv->f16 && rope)
        launch(pdl, st, grid, b, smem, k_attn_split<__half, true>, qkv, ld, pos, seq, *kv, layer, split_len, n_split,
               scale, part, counters, out, ldo, inv_freq);
    else if (kv->f16)
        launch(pdl, st, grid, b, smem, k_attn_split<__half, false>, qkv, ld, pos, seq, *kv, layer, split_len, n_split,
               scale, part, counters, out, ldo, inv_freq);
    else if (rope)
        launch(pdl, st, grid, b, smem, k_attn_split<float, true>, qkv, ld, pos, seq, *kv, layer, split_len, n_split,
               scale, part, counters, out, ldo, inv_freq);
    else
        launch(pdl, st, grid, b, smem, k_attn_split<float, false>, qkv, ld, pos, seq, *kv, layer, split_len, n_split,
               scale, part, counters, out, ldo, inv_freq);
}

void bn_cu_head_norm(cudaStream_t st, bool pdl, const float *x, int e, const int *rows, int cnt, const float *w,
                     float eps, __half *h) {
    launch(pdl, st, dim3((unsigned)cnt), dim3(256), 0, k_head_norm, x, e, rows, w, eps, h);
}
