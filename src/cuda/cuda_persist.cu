/* cuda_persist.cu — batch-1 decode as ONE persistent kernel per step (v4 in
 * docs/CUDA_NOTES.md), and the int8 head.
 *
 * The persistent kernel runs one 512-thread block per SM (cooperative
 * launch, so all blocks are resident) through every layer, with grid-wide
 * barriers between the phases that depend on each other:
 *   embed | norm+qkv | attention (RoPE, KV store) | norm+o (+x) |
 *   norm+gate|up | relu^2*up, norm+down (+x) | next layer ...
 * Each block owns a contiguous slice of the rows of every linear. Its
 * weight slices (they do not depend on activations) are copied into shared
 * memory by TMA bulk copies one layer ahead: right after a slice is consumed,
 * the copy of the same slice of the next layer is issued, so the weight
 * stream keeps running across barriers and never waits for an activation.
 * The RMSNorm + int8 quantization of a phase's input is computed by every
 * block from the row in L2 (staged through shared memory), with the
 * same per-thread layout and reduction order as k_norm_quant_reg, so the
 * codes are bit-identical to the separate-kernel path; attention keeps
 * k_attn_split's summation order too (see p_attention), so a persistent
 * step gives the same logits as the old path, bit for bit.
 * Data written by other blocks inside the kernel is read with ld.cg (L2)
 * only, never through the non-coherent L1. */
#include "cuda_internal.cuh"
#include "cuda_reduce.cuh"

namespace {

constexpr int PT = 512;  /* threads per block of the persistent kernel      */
constexpr int VT = 1024; /* threads of k_norm_quant_reg, whose order we keep */

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

/* TMA bulk copies (sm_90): one thread issues a slice's copy, the copy
 * engine moves it and completes a transaction count on an mbarrier, so no
 * thread waits on the LSU queue while a slice is in flight (v4.1; measured
 * about as fast as v4's cp.async from every thread, see CUDA_NOTES.md). */
__device__ __forceinline__ unsigned smem_u32(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void mbar_init(unsigned long long *bar) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ void mbar_expect(unsigned long long *bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void tma_load(void *dst, const void *src, unsigned bytes, unsigned long long *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_u32(dst)),
                 "l"(src), "r"(bytes), "r"(smem_u32(bar))
                 : "memory");
}
__device__ __forceinline__ void mbar_wait(unsigned long long *bar, unsigned parity) {
    asm volatile("{\n\t.reg .pred P1;\n\tLAB_WAIT:\n\t"
                 "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n\t"
                 "@P1 bra DONE;\n\tbra LAB_WAIT;\n\tDONE:\n\t}" ::"r"(smem_u32(bar)),
                 "r"(parity)
                 : "memory");
}

/* Grid-wide barrier: a counter that only grows (zeroed before each launch);
 * the k-th barrier waits until it reaches k * gridDim.x. The fence before
 * the arrival publishes the block's writes (ordered by __syncthreads); the
 * acquire load orders the block's later reads after everyone's. Split in
 * two so that a block can issue work between arriving and waiting. */
__device__ __forceinline__ void grid_arrive(unsigned *bar, unsigned &target, int variant) {
    __syncthreads();
    target += gridDim.x;
    if (threadIdx.x == 0) {
        if (variant & 1) { /* release-add: no separate full fence */
            asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(bar) : "memory");
        } else {
            __threadfence();
            atomicAdd(bar, 1u);
        }
    }
}
__device__ __forceinline__ void grid_wait(const unsigned *bar, unsigned target) {
    if (threadIdx.x == 0) {
        unsigned v;
        do {
            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(bar) : "memory");
        } while (v < target);
    }
    __syncthreads();
}
__device__ __forceinline__ void grid_sync(unsigned *bar, unsigned &target, int variant) {
    grid_arrive(bar, target, variant);
    grid_wait(bar, target);
}

__device__ __forceinline__ unsigned long long gtimer() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
    return t;
}

__device__ __forceinline__ float act_cg(const float *x, const float *up, int act, int i) {
    const float g = __ldcg(x + i);
    if (!up) return g;
    const float u = __ldcg(up + i);
    if (act == 0) {
        const float r = g > 0.0f ? g : 0.0f;
        return __fmul_rn(__fmul_rn(r, r), u);
    }
    return __fmul_rn(__fdiv_rn(g, 1.0f + expf(-g)), u);
}

/* k_norm_quant_reg's arithmetic for one row: that kernel runs 1024
 * threads; here each of the PT = 512 threads plays two of them (virtual
 * threads t and t + 512, same lane, warps w and w + 16), so the f32 sum of
 * squares is added in exactly its order (per virtual thread over j, xor tree
 * per virtual warp, xor tree over the 32 warp sums) and the codes are
 * bit-identical. (v4 ran 1024 real threads: capped at 64 registers, it
 * spilled, and with the shared-memory carve-out the spills went to L2.)
 * Codes into q (shared or global); scale and code sum to every thread. */
__device__ __forceinline__ float act_of(float g, float u, int act) {
    if (act == 0) {
        const float r = g > 0.0f ? g : 0.0f;
        return __fmul_rn(__fmul_rn(r, r), u);
    }
    return __fmul_rn(__fdiv_rn(g, 1.0f + expf(-g)), u);
}

/* The input row (act(x)*up when up) into buf with 16-byte loads, 4 per
 * thread in flight before any store (v4.2 loaded 2-3 scalars per element
 * per thread: at 512 threads the down projection's input, 2 x 6912 floats
 * plus the norm weights, was 48 loads per thread and took 8 us). */
__device__ __forceinline__ void stage_row(const float *x, const float *up, int act, int k, float *buf) {
    const int k4 = k / 4;
    const float4 *x4 = reinterpret_cast<const float4 *>(x), *u4 = reinterpret_cast<const float4 *>(up);
    for (int i0 = 0; i0 < k4; i0 += 4 * PT) {
        float4 a[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int i = i0 + u * PT + threadIdx.x;
            if (i < k4) {
                a[u] = __ldcg(x4 + i);
                if (up) {
                    const float4 b = __ldcg(u4 + i);
                    a[u].x = act_of(a[u].x, b.x, act);
                    a[u].y = act_of(a[u].y, b.y, act);
                    a[u].z = act_of(a[u].z, b.z, act);
                    a[u].w = act_of(a[u].w, b.w, act);
                }
            }
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int i = i0 + u * PT + threadIdx.x;
            if (i < k4) reinterpret_cast<float4 *>(buf)[i] = a[u];
        }
    }
    __syncthreads();
}

/* Byte offset of code i in the permuted layout the GEMV reads: for each of
 * the 4 groups g of a chunk, the chunks' 16-byte words side by side
 * (word (g, c) at (g * cpr + c) * 16), so the 8 lanes of a row read 128
 * contiguous bytes (the plain layout put lanes 0, 2, 4, 6 on the same
 * banks: 4-way conflicts on every activation load). */
__device__ __forceinline__ int perm_off(int i, int cpr) {
    const int b = i >> 7, off = i & 127, g = off >> 5, o2 = off & 31;
    return (g * cpr + 2 * b + (o2 >> 4)) * 16 + (o2 & 15);
}

/* Where the next GEMV's row scales come from: n of them, the first na
 * from a, the rest from b (the two halves of a paired slice). */
struct bn_rs_src {
    const float *a, *b;
    int na, n;
    __device__ __forceinline__ float get(int i) const { return __ldg(i < na ? a + i : b + (i - na)); }
};

/* The next GEMV's row scales (rsrc.n of them, may be 0) go to rs on the
 * way: like the norm weights they do not depend on the activations, so
 * their loads are issued before the row's (v4.5: measured neutral against
 * loading them in series; kept because it is the simpler data flow). */
template <int VPT>
__device__ void p_norm_quant(const float *x, const float *up, int act, const float *w, int k, int kp, float eps,
                             int8_t *q, float &xs, int &xsum, float *sh, int *ish, float *buf, bn_rs_src rsrc,
                             float *rs, unsigned long long *ss) {
    /* ss: NULL, or 3 trace slots (bn_cuda_trace_decode): row loaded, sum of
     * squares reduced, absmax reduced */
    /* buf: the row staged in shared memory (k % 4 == 0, 16-byte aligned
     * rows); NULL: scalar loads (k_head_quant) */
    const int rn = rsrc.n;
    const float rsv = threadIdx.x < rn ? rsrc.get(threadIdx.x) : 0.0f;
    float v[2][VPT], wv[2][VPT]; /* the row and the norm weights: all loads in flight at once */
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
        for (int j = 0; j < VPT; j++) {
            const int i = threadIdx.x + h * PT + j * VT;
            wv[h][j] = w && i < k ? __ldg(w + i) : 0.0f;
        }
    if (buf) stage_row(x, up, act, k, buf);
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
        for (int j = 0; j < VPT; j++) {
            const int i = threadIdx.x + h * PT + j * VT;
            v[h][j] = i < k ? (buf ? buf[i] : act_cg(x, up, act, i)) : 0.0f;
        }
    if (threadIdx.x < rn) rs[threadIdx.x] = rsv;
    if (ss && threadIdx.x == 0) ss[0] = gtimer();
    for (int i = threadIdx.x + PT; i < rn; i += PT) rs[i] = rsrc.get(i); /* > PT rows: not on 2B4T */
    if (w) {
        float sq[2] = {0.0f, 0.0f};
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int j = 0; j < VPT; j++) sq[h] = __fadd_rn(sq[h], __fmul_rn(v[h][j], v[h][j]));
        const float a = warp_sum(sq[0]), b = warp_sum(sq[1]);
        const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
        __syncthreads();
        if (lane == 0) {
            sh[wp] = a;
            sh[wp + PT / 32] = b;
        }
        __syncthreads();
        const float tot = warp_sum(sh[lane]);
        if (ss && threadIdx.x == 0) ss[1] = gtimer();
        const float inv = __fdiv_rn(1.0f, sqrtf(__fadd_rn(__fdiv_rn(tot, (float)k), eps)));
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int j = 0; j < VPT; j++) {
                const int i = threadIdx.x + h * PT + j * VT;
                if (i < k) v[h][j] = __fmul_rn(wv[h][j], __fmul_rn(v[h][j], inv));
            }
    }
    else if (ss && threadIdx.x == 0) ss[1] = gtimer();
    float amax = 0.0f;
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
        for (int j = 0; j < VPT; j++) amax = fmaxf(amax, fabsf(v[h][j]));
    amax = fmaxf(block_max(amax, sh), 1e-5f);
    if (ss && threadIdx.x == 0) ss[2] = gtimer();
    const float s = __fmul_rn(__fdiv_rn(1.0f, amax), 127.0f);
    int sum = 0;
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
        for (int j = 0; j < VPT; j++) {
            const int i = threadIdx.x + h * PT + j * VT;
            if (i < kp) {
                const int c = i < k ? (int)fminf(fmaxf(rintf(__fmul_rn(v[h][j], s)), -128.0f), 127.0f) : 0;
                q[buf ? perm_off(i, kp / 64) : i] = (int8_t)c;
                sum += c;
            }
        }
    xsum = block_isum(sum, ish); /* its barriers also publish q */
    xs = __fdiv_rn(1.0f, s);
}

/* buf != NULL: the persistent kernel (row staged in shared memory, codes
 * in the permuted layout); NULL: plain layout (k_head_quant). */
__device__ void p_norm_quant_any(const float *x, const float *up, int act, const float *w, int k, float eps, int8_t *q,
                                 float &xs, int &xsum, float *sh, int *ish, float *buf,
                                 bn_rs_src rsrc = {nullptr, nullptr, 0, 0}, float *rs = nullptr,
                                 unsigned long long *ss = nullptr) {
    const int kp = (k + 127) / 128 * 128;
    if (kp <= VT) p_norm_quant<1>(x, up, act, w, k, kp, eps, q, xs, xsum, sh, ish, buf, rsrc, rs, ss);
    else if (kp <= 2 * VT) p_norm_quant<2>(x, up, act, w, k, kp, eps, q, xs, xsum, sh, ish, buf, rsrc, rs, ss);
    else if (kp <= 4 * VT) p_norm_quant<4>(x, up, act, w, k, kp, eps, q, xs, xsum, sh, ish, buf, rsrc, rs, ss);
    else p_norm_quant<8>(x, up, act, w, k, kp, eps, q, xs, xsum, sh, ish, buf, rsrc, rs, ss);
}

/* Rows [r0, r1) of a linear owned by block b of G. */
__device__ __forceinline__ void row_range(int M, int b, int G, int &r0, int &r1) {
    r0 = (int)((long long)M * b / G);
    r1 = (int)((long long)M * (b + 1) / G);
}

/* This block's rows of a linear: r0 .. r0+n-1, and for the fused gate|up
 * (pair) the same rows of its second half too, so that gate i and up i
 * meet in one block and h = act(gate) * up is formed there (v4.5: the
 * down projection's norm then reads h, 27 KB per block from L2, instead
 * of gate and up, 55 KB, and the activation is computed once, not by
 * every block). Slice row rr < n is row r0 + rr, else r0 + half + rr - n. */
struct bn_slice {
    int r0, n, half;
};
__device__ __forceinline__ bn_slice block_slice(const bn_cu_linear &L, bool pair) {
    bn_slice s;
    int r1;
    row_range(pair ? L.M / 2 : L.M, blockIdx.x, gridDim.x, s.r0, r1);
    s.n = r1 - s.r0;
    s.half = pair ? L.M / 2 : 0;
    return s;
}
__device__ __forceinline__ int slice_rows(const bn_slice &s) { return s.half ? 2 * s.n : s.n; }
__device__ __forceinline__ int slice_row(const bn_slice &s, int rr) { return rr < s.n ? s.r0 + rr : s.r0 + s.half + rr - s.n; }

/* Issue the copy of this block's slice of L into dst, as one commit group
 * (an empty group when L is NULL, to keep the group count uniform). */
__device__ __forceinline__ void prefetch(uint4 *dst, const bn_cu_linear *L, bool tma, unsigned long long *bar,
                                         bool pair = false) {
    if (tma) {
        /* every thread: its generic-proxy reads of the slot (ordered by the
         * caller's __syncthreads) before the async-proxy writes */
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        if (L && threadIdx.x == 0) {
            const bn_slice sl = block_slice(*L, pair);
            const unsigned part = (unsigned)sl.n * (unsigned)(L->Kp / 4);
            mbar_expect(bar, pair ? 2 * part : part);
            for (int h = 0; h < (pair ? 2 : 1); h++) {
                const char *src = reinterpret_cast<const char *>(L->w) + (size_t)(sl.r0 + h * sl.half) * (L->Kp / 4);
                char *d = reinterpret_cast<char *>(dst) + (size_t)h * part;
                for (unsigned o = 0; o < part; o += 32768u)
                    tma_load(d + o, src + o, part - o < 32768u ? part - o : 32768u, bar);
            }
        }
        return;
    }
    if (L) {
        const bn_slice sl = block_slice(*L, pair);
        const int cpr = L->Kp / 64, n = sl.n * cpr;
        for (int h = 0; h < (pair ? 2 : 1); h++) {
            const uint4 *src = L->w + (size_t)(sl.r0 + h * sl.half) * cpr;
            for (int i = threadIdx.x; i < n; i += PT) cp_async16(dst + (size_t)h * n + i, src + i);
        }
    }
    cp_async_commit();
}

/* Wait for the slice of layer l in a slot (TMA: the slot's mbarrier
 * completes once per layer, so phase parity l & 1; cp.async: the oldest of
 * the 4 outstanding groups), then make it visible to the whole block. */
__device__ __forceinline__ void slot_wait(bool tma, unsigned long long *bar, int l) {
    if (tma) mbar_wait(bar, (unsigned)l & 1u);
    else cp_async_wait<3>();
    __syncthreads();
}

/* End of a GEMV phase: refill the slot just read with the next layer's
 * slice, then (sync) cross the grid barrier. With TMA the block arrives at
 * the barrier first and its thread 0 issues the copy while waiting: issued
 * before the arrival, the copy in flight slowed the barrier's fence and
 * atomic by about as much as the copy took (v4.5: 45.6 -> 42.8 us per
 * layer, the barrier after gate|up 4.3 -> 2.9 us; issuing the copies later,
 * during attention, slowed attention by more than it saved). */
__device__ __forceinline__ void refill_and_sync(uint4 *slot, const bn_cu_linear *Ln, bool tma, unsigned long long *mb,
                                                unsigned *bar, unsigned &target, int var, bool sync, bool pair = false) {
    if (!tma || !sync) {
        __syncthreads();
        prefetch(slot, Ln, tma, mb, pair);
        if (sync) grid_sync(bar, target, var);
        return;
    }
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); /* the slot's reads before the copy's writes */
    grid_arrive(bar, target, var);
    prefetch(slot, Ln, tma, mb, pair);
    grid_wait(bar, target);
}

/* The block's rows of y = W q from the slice in shared memory (k_tgemv's
 * arithmetic: exact integer sums, then the same two f32 products). PAIR
 * (the fused gate|up, paired slice): gate and up rows go to scr, and the
 * block writes y[i] = act(gate i) * up i for its rows i (stage_row's
 * arithmetic, so the down projection's input is bit-identical). */
template <int LPR, bool ADD, bool PAIR>
__device__ void p_gemv_lpr(const uint4 *ws, const bn_cu_linear &L, const int8_t *qs, float xs, int xsum, const float *rs,
                           float *xo, float *y, float *scr, int act) {
    const bn_slice bs = block_slice(L, PAIR);
    const int nrows = slice_rows(bs), cpr = L.Kp / 64, sl = threadIdx.x % LPR;
    for (int rb = 0; rb < nrows; rb += PT / LPR) {
        const int rr = rb + threadIdx.x / LPR;
        const bool ok = rr < nrows;
        int acc = 0;
        if (ok) {
            const uint4 *wr = ws + (size_t)rr * cpr;
            for (int c = sl; c < cpr; c += LPR) {
                const uint4 w = wr[c];
                const int4 *q4 = reinterpret_cast<const int4 *>(qs) + c; /* permuted: word (g, c) */
#pragma unroll
                for (int g = 0; g < 4; g++) {
                    const int4 a = q4[g * cpr];
                    const int sh = 6 - 2 * g;
                    acc = __dp4a((int)((w.x >> sh) & 0x03030303u), a.x, acc);
                    acc = __dp4a((int)((w.y >> sh) & 0x03030303u), a.y, acc);
                    acc = __dp4a((int)((w.z >> sh) & 0x03030303u), a.z, acc);
                    acc = __dp4a((int)((w.w >> sh) & 0x03030303u), a.w, acc);
                }
            }
        }
#pragma unroll
        for (int o = LPR / 2; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (ok && sl == 0) {
            const int row = slice_row(bs, rr);
            const float r = __fmul_rn(__fmul_rn((float)(acc - xsum), rs[rr]), xs);
            if (PAIR) {
                scr[rr] = r;
            } else if (ADD) { /* the residual rows this block owns live in xo */
                const float nv = __fadd_rn(xo[rr], r);
                xo[rr] = nv;
                y[row] = nv;
            } else {
                y[row] = r;
            }
        }
    }
    if (PAIR) {
        __syncthreads();
        for (int i = threadIdx.x; i < bs.n; i += PT) y[bs.r0 + i] = act_of(scr[i], scr[bs.n + i], act);
    }
}

/* xo: with ADD, the block's rows of the residual x (y), kept in shared
 * memory across the whole step (o and down share the row partition). */
template <bool ADD, bool PAIR = false>
__device__ void p_gemv(const uint4 *ws, const bn_cu_linear &L, const int8_t *qs, float xs, int xsum, const float *rs,
                       float *xo, float *y, float *scr = nullptr, int act = 0) {
    const int cpr = L.Kp / 64;
    if (cpr <= 64) p_gemv_lpr<8, ADD, PAIR>(ws, L, qs, xs, xsum, rs, xo, y, scr, act);
    else if (cpr <= 128) p_gemv_lpr<16, ADD, PAIR>(ws, L, qs, xs, xsum, rs, xo, y, scr, act);
    else p_gemv_lpr<32, ADD, PAIR>(ws, L, qs, xs, xsum, rs, xo, y, scr, act);
}

/* Norm + quantization of a phase's input, with this block's row scales of
 * the linear L that reads it loaded on the way. */
__device__ __forceinline__ void p_norm_for(const bn_cu_linear &L, const float *x, const float *up, int act,
                                           const float *w, int k, float eps, int8_t *q, float &xs, int &xsum,
                                           float *sh, int *ish, float *buf, float *rs, bool pair = false,
                                           unsigned long long *ss = nullptr) {
    const bn_slice sl = block_slice(L, pair);
    const bn_rs_src src = {L.rscale + sl.r0, L.rscale + sl.r0 + sl.half, sl.n, slice_rows(sl)};
    p_norm_quant_any(x, up, act, w, k, eps, q, xs, xsum, sh, ish, buf, src, rs, ss);
}

__device__ __forceinline__ void kv_put(float *p, float v) { *p = v; }
__device__ __forceinline__ void kv_put(__half *p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ float kv_get(const float *p) { return *p; }
__device__ __forceinline__ float kv_get(const __half *p) { return __half2float(*p); }

/* Rows j0..j0+cn-1 of a K or V cache block (row stride kvd) into stage
 * [cn][hd] as f32, 8 loads in flight per thread before any store (a plain
 * loop waits for each load before the next; note that this alone did not
 * shorten v4b's 12 us attention phase, see CUDA_NOTES.md). Row own_j comes
 * from ks. */
template <typename T>
__device__ __forceinline__ void stage_rows(float *stage, const T *base, int kvd, int hd, int j0, int cn, int own_j,
                                           const float *ks) {
    const int n = cn * hd;
    for (int i0 = 0; i0 < n; i0 += PT * 8) {
        float v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int i = i0 + u * PT + threadIdx.x;
            v[u] = 0.0f;
            if (i < n) {
                const int j = i / hd, d = i - (i / hd) * hd;
                v[u] = j0 + j == own_j ? ks[d] : kv_get(base + (size_t)(j0 + j) * kvd + d);
            }
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int i = i0 + u * PT + threadIdx.x;
            if (i < n) stage[i] = v[u];
        }
    }
}

/* K rows 0..cn-1 and V rows 0..vn-1 (vn <= cn) of a split into kst / vst,
 * all loads issued before any store. K row own_j comes from ks. */
template <typename T>
__device__ __forceinline__ void stage_rows2(float *kst, float *vst, const T *kb, const T *vb, int kvd, int hd, int cn,
                                            int vn, int own_j, const float *ks) {
    const int n = cn * hd, nv = vn * hd;
    for (int i0 = 0; i0 < n; i0 += PT * 8) {
        float kv8[8], vv8[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int i = i0 + u * PT + threadIdx.x;
            kv8[u] = vv8[u] = 0.0f;
            const int j = i / hd, d = i - (i / hd) * hd;
            if (i < n) kv8[u] = j == own_j ? ks[d] : kv_get(kb + (size_t)j * kvd + d);
            if (i < nv) vv8[u] = kv_get(vb + (size_t)j * kvd + d);
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int i = i0 + u * PT + threadIdx.x;
            if (i < n) kst[i] = kv8[u];
            if (i < nv) vst[i] = vv8[u];
        }
    }
}

/* Attention of the step's token (k_attn_split<T, true> with t = 0): work
 * items (head, split) spread over the blocks. Summation orders are those of
 * the 128-thread kernel: a position's dot product by one warp, the exp-sum
 * by threads 0..127 (the other warps add zeros to the xor tree), P.V by one
 * thread per dimension in position order, so the output is bit-identical.
 * The cache rows read here were written by earlier launches (or, for this
 * position, not read at all: the token's own k/v come from the qkv row). */
template <typename T>
__device__ void p_attention(const bn_cu_persist &P, int layer, int pos, int seq, float *smem, float *stage, float *red,
                            int *last) {
    const bn_cu_kv &kv = P.kv;
    const int hd = kv.head_dim, kvd = kv.n_head_kv * hd, grp = kv.n_head / kv.n_head_kv, half = hd / 2;
    const int n_kv = pos + 1, p = n_kv - 1, split_len = P.split_len;
    const int ns = (n_kv + split_len - 1) / split_len;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = PT / 32;
    float *qs = smem, *s = smem + hd, *ks = smem + hd + split_len;
    for (int item = blockIdx.x; item < kv.n_head * ns; item += gridDim.x) {
        const int h = item / ns, sp = item % ns, kvh = h / grp;
        const int start = sp * split_len, len = min(split_len, n_kv - start);
        const float *qr = P.qkv + (size_t)h * hd;
        const float *kr0 = P.qkv + (size_t)kv.n_head * hd + (size_t)kvh * hd;
        const float *vrow = P.qkv + (size_t)(kv.n_head * hd + kvd) + (size_t)kvh * hd;
        const size_t base = (((size_t)seq * kv.n_layer + layer) * kv.n_ctx) * kvd + (size_t)kvh * hd;
        for (int i = threadIdx.x; i < half; i += PT) {
            const float ang = __fmul_rn((float)p, __ldg(P.inv_freq + i));
            const float c = cosf(ang), sn = sinf(ang);
            float a = __ldcg(qr + i), b = __ldcg(qr + i + half);
            qs[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, sn));
            qs[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, sn));
            a = __ldcg(kr0 + i);
            b = __ldcg(kr0 + i + half);
            ks[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, sn));
            ks[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, sn));
        }
        __syncthreads();
        if (sp == ns - 1 && h % grp == 0) {
            T *Kc = (T *)kv.k + base + (size_t)p * kvd, *Vc = (T *)kv.v + base + (size_t)p * kvd;
            for (int d = threadIdx.x; d < hd; d += PT) {
                kv_put(Kc + d, ks[d]);
                kv_put(Vc + d, __ldcg(vrow + d));
            }
        }
        const T *K = (const T *)kv.k + base, *V = (const T *)kv.v + base;
        /* K (then V) rows staged into shared memory P.stage_pos positions at
         * a time by all threads (one round trip per chunk instead of a chain
         * of dependent loads); the arithmetic reads them in the old order. */
        const int CH = P.stage_pos;
        const int jn = sp == ns - 1 ? len - 1 : len; /* last split: the last position's v from vrow */
        float *vstage = stage + (size_t)CH * hd;
        const bool one = len <= CH; /* K and V in one batch of loads */
        for (int j0 = 0; j0 < len; j0 += CH) {
            const int cn = min(CH, len - j0);
            if (one) stage_rows2(stage, vstage, K + (size_t)start * kvd, V + (size_t)start * kvd, kvd, hd, cn, jn,
                                 n_kv - 1 - start, ks);
            else stage_rows(stage, K + (size_t)start * kvd, kvd, hd, j0, cn, n_kv - 1 - start, ks);
            __syncthreads();
            for (int j = warp; j < cn; j += nw) {
                const float *kr = stage + (size_t)j * hd;
                float dot = 0.0f;
                for (int d2 = lane; d2 < hd / 2; d2 += 32) {
                    const float2 kf = make_float2(kr[2 * d2], kr[2 * d2 + 1]);
                    dot += qs[2 * d2] * kf.x + qs[2 * d2 + 1] * kf.y;
                }
                dot = warp_sum(dot);
                if (lane == 0) s[j0 + j] = dot * P.scale;
            }
            __syncthreads();
        }
        float mx = -INFINITY;
        for (int j = threadIdx.x; j < len; j += PT) mx = fmaxf(mx, s[j]);
        mx = block_max(mx, red);
        float l = 0.0f;
        if (threadIdx.x < 128)
            for (int j = threadIdx.x; j < len; j += 128) {
                const float e = expf(s[j] - mx);
                s[j] = e;
                l += e;
            }
        l = block_sum(l, red);
        __syncthreads();
        float *dst = P.att + (size_t)h * hd;
        float *part_th = P.part + (size_t)h * P.n_split * (size_t)(hd + 2);
        float *out = part_th + (size_t)sp * (hd + 2);
        float acc = 0.0f; /* thread d < hd: P.V for dimension d, positions in order */
        if (one) {
            if (threadIdx.x < hd)
                for (int j = 0; j < jn; j++) acc += s[j] * vstage[(size_t)j * hd + threadIdx.x];
        } else {
            for (int j0 = 0; j0 < jn; j0 += CH) {
                const int cn = min(CH, jn - j0);
                stage_rows(stage, V + (size_t)start * kvd, kvd, hd, j0, cn, -1, ks);
                __syncthreads();
                if (threadIdx.x < hd)
                    for (int j = 0; j < cn; j++) acc += s[j0 + j] * stage[(size_t)j * hd + threadIdx.x];
                __syncthreads();
            }
        }
        if (threadIdx.x < hd) {
            const int d = threadIdx.x;
            if (jn < len) acc += s[len - 1] * __ldcg(vrow + d);
            if (ns == 1) dst[d] = acc * (1.0f / l);
            else out[d] = acc;
        }
        if (ns > 1) {
            if (threadIdx.x == 0) {
                out[hd] = mx;
                out[hd + 1] = l;
            }
            __threadfence();
            __syncthreads();
            if (threadIdx.x == 0) {
                int *c = P.counters + h;
                *last = atomicAdd(c, 1) == ns - 1;
                if (*last) *c = 0;
            }
            __syncthreads();
            if (*last) {
                __threadfence();
                float M = -INFINITY;
                for (int i = 0; i < ns; i++) M = fmaxf(M, __ldcg(part_th + (size_t)i * (hd + 2) + hd));
                float L = 0.0f;
                for (int i = 0; i < ns; i++)
                    L += __ldcg(part_th + (size_t)i * (hd + 2) + hd + 1) *
                         expf(__ldcg(part_th + (size_t)i * (hd + 2) + hd) - M);
                const float inv = 1.0f / L;
                for (int d = threadIdx.x; d < hd; d += PT) {
                    float acc = 0.0f;
                    for (int i = 0; i < ns; i++)
                        acc += __ldcg(part_th + (size_t)i * (hd + 2) + d) *
                               expf(__ldcg(part_th + (size_t)i * (hd + 2) + hd) - M);
                    dst[d] = acc * inv;
                }
            }
        }
        __syncthreads(); /* shared scratch reused by the next item */
    }
}

/* TRACE: the instrumented instance (bench_cuda_bw). The production one has
 * no stamp code at all: the trace pointers were live registers, and at the
 * 128-register cap they pushed the kernel's spills from 12/20 to 40/64
 * bytes (ptxas -v, stores/loads). */
template <bool TRACE>
__global__ void __launch_bounds__(PT, 1) k_decode_persist(const bn_cu_persist P) {
    extern __shared__ __align__(16) unsigned char psm[];
    __shared__ float red[32];
    __shared__ int ired[32];
    __shared__ int last;
    __shared__ unsigned long long mbar[4];
    __shared__ int s_in[3]; /* token, sequence, position of the step */
    /* slot i at the sum of the sizes before it (kernel parameters: no
     * registers held across the loop) */
#define SLOT(i) reinterpret_cast<uint4 *>(psm + ((i) > 0 ? P.slot_bytes[0] : 0) + ((i) > 1 ? P.slot_bytes[1] : 0) + \
                                          ((i) > 2 ? P.slot_bytes[2] : 0))
    int8_t *qs = reinterpret_cast<int8_t *>(psm + P.q_off);
    float *ascr = reinterpret_cast<float *>(psm + P.a_off);
    float *stage = reinterpret_cast<float *>(psm + P.s_off);
    float *xo = reinterpret_cast<float *>(psm + P.xo_off); /* own rows of x */
    float *rs = reinterpret_cast<float *>(psm + P.rs_off); /* row scales of the phase */
    if (threadIdx.x == 0) {
        s_in[0] = P.tok[0];
        s_in[1] = P.seq[0];
        s_in[2] = P.pos[0];
    }
    /* the layer table in shared memory: its fields are read on every
     * phase's critical path (a global load each would cost a round trip) */
    bn_cu_layer *lt = reinterpret_cast<bn_cu_layer *>(psm + P.l_off);
    for (int i = threadIdx.x; i < P.n_layer * (int)(sizeof(bn_cu_layer) / 8); i += PT)
        reinterpret_cast<unsigned long long *>(lt)[i] = reinterpret_cast<const unsigned long long *>(P.layers)[i];
    __syncthreads();
    unsigned target = 0;
    const int var = P.variant;
    const bool tma = !(var & 2);
    if (tma && threadIdx.x == 0) {
        for (int i = 0; i < 4; i++) mbar_init(&mbar[i]);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    const bn_cu_layer *L0 = lt;
    prefetch(SLOT(0), &L0->qkv, tma, &mbar[0]);
    prefetch(SLOT(1), &L0->o, tma, &mbar[1]);
    prefetch(SLOT(2), &L0->gu, tma, &mbar[2], true);
    prefetch(SLOT(3), &L0->down, tma, &mbar[3]);
    const int seq = s_in[1], pos = s_in[2];
    {
        /* the embedding row: each block writes its own rows of x (the
         * partition of o and down, whose residual adds it then does) */
        const size_t base = (size_t)s_in[0] * P.e;
        int r0, r1;
        row_range(P.e, blockIdx.x, gridDim.x, r0, r1);
        for (int i = r0 + threadIdx.x; i < r1; i += PT) {
            float v;
            if (P.embd_type == BN_CU_F16) v = __half2float(((const __half *)P.embd)[base + i]);
            else if (P.embd_type == BN_CU_BF16) v = __uint_as_float((uint32_t)((const uint16_t *)P.embd)[base + i] << 16);
            else v = ((const float *)P.embd)[base + i];
            P.x[i] = v;
            xo[i - r0] = v;
        }
    }
    grid_sync(P.bar, target, var);
    float xs;
    int xsum;
    unsigned long long *tr = TRACE && P.trace && threadIdx.x == 0 ? P.trace + (size_t)blockIdx.x * P.n_layer * BN_CU_NSTAMP : nullptr;
#define STAMP(k) do { if (tr) tr[(size_t)l * BN_CU_NSTAMP + (k)] = gtimer(); } while (0)
    /* block 0 also records (time, SM clock) at the start and the end: the
     * SM clock rate during the step */
    unsigned long long *clk = tr && blockIdx.x == 0 ? P.trace + (size_t)gridDim.x * P.n_layer * BN_CU_NSTAMP : nullptr;
    if (clk) {
        clk[0] = gtimer();
        clk[1] = clock64();
    }
    for (int l = 0; l < P.n_layer; l++) {
        const bn_cu_layer *Ly = lt + l;
        const bn_cu_layer *Ln = l + 1 < P.n_layer ? Ly + 1 : nullptr;
        /* norm + q|k|v */
        STAMP(0);
        p_norm_for(Ly->qkv, P.x, nullptr, 0, Ly->attn_norm, P.e, P.eps, qs, xs, xsum, red, ired, stage, rs, false,
                   tr ? tr + (size_t)l * BN_CU_NSTAMP + 1 : nullptr);
        STAMP(4);
        slot_wait(tma, &mbar[0], l);
        STAMP(5);
        p_gemv<false>(SLOT(0), Ly->qkv, qs, xs, xsum, rs, xo, P.qkv);
        STAMP(6);
        refill_and_sync(SLOT(0), Ln ? &Ln->qkv : nullptr, tma, &mbar[0], P.bar, target, var, true);
        STAMP(7);
        /* attention (RoPE and the KV store inside) */
        if (P.kv.f16) p_attention<__half>(P, l, pos, seq, ascr, stage, red, &last);
        else p_attention<float>(P, l, pos, seq, ascr, stage, red, &last);
        STAMP(8);
        grid_sync(P.bar, target, var);
        STAMP(9);
        /* sub-norm + o, added into x */
        p_norm_for(Ly->o, P.att, nullptr, 0, Ly->attn_sub, P.qd, P.eps, qs, xs, xsum, red, ired, stage, rs);
        STAMP(10);
        slot_wait(tma, &mbar[1], l);
        p_gemv<true>(SLOT(1), Ly->o, qs, xs, xsum, rs, xo, P.x);
        STAMP(11);
        refill_and_sync(SLOT(1), Ln ? &Ln->o : nullptr, tma, &mbar[1], P.bar, target, var, true);
        STAMP(12);
        /* norm + gate|up */
        p_norm_for(Ly->gu, P.x, nullptr, 0, Ly->ffn_norm, P.e, P.eps, qs, xs, xsum, red, ired, stage, rs, true);
        STAMP(13);
        slot_wait(tma, &mbar[2], l);
        p_gemv<false, true>(SLOT(2), Ly->gu, qs, xs, xsum, rs, xo, P.gu, stage, P.act);
        STAMP(14);
        refill_and_sync(SLOT(2), Ln ? &Ln->gu : nullptr, tma, &mbar[2], P.bar, target, var, true, true);
        STAMP(15);
        /* act(gate)*up, sub-norm + down, added into x */
        p_norm_for(Ly->down, P.gu, nullptr, 0, Ly->ffn_sub, P.f, P.eps, qs, xs, xsum, red, ired, stage, rs, false,
                   tr ? tr + (size_t)l * BN_CU_NSTAMP + 16 : nullptr);
        STAMP(19);
        slot_wait(tma, &mbar[3], l);
        p_gemv<true>(SLOT(3), Ly->down, qs, xs, xsum, rs, xo, P.x);
        STAMP(20);
        refill_and_sync(SLOT(3), Ln ? &Ln->down : nullptr, tma, &mbar[3], P.bar, target, var, Ln != nullptr);
    }
    if (clk) {
        clk[2] = gtimer();
        clk[3] = clock64();
    }
#undef STAMP
#undef SLOT
    if (!tma) cp_async_wait<0>();
}

/* ---- int8 head */

/* Final RMSNorm of the gathered rows, then int8 quantization (as the CPU
 * path: bn_ref_rmsnorm, then quantize_act of the normed row). */
__global__ void __launch_bounds__(PT) k_head_quant(const float *x, int e, const int *rows, const float *w, float eps,
                                                   int8_t *q, float *xs) {
    __shared__ float sh[32];
    __shared__ int ish[32];
    const int j = blockIdx.x, kp = (e + 127) / 128 * 128;
    float s;
    int sum;
    p_norm_quant_any(x + (size_t)rows[j] * e, nullptr, 0, w, e, eps, q + (size_t)j * kp, s, sum, sh, ish, nullptr);
    if (threadIdx.x == 0) xs[j] = s;
}

/* One warp per vocabulary row: lane l takes the 64-code blocks l, l+32, ...
 * (exact integer block sums, f32 product with the block's f16 scale), then
 * the block terms are added in block order as bn_ref_qhead does. */
template <int KB>
__global__ void __launch_bounds__(256) k_qhead(const int8_t *__restrict__ codes, const __half *__restrict__ scales,
                                               int V, int kp, const int8_t *__restrict__ q, const float *__restrict__ xs,
                                               int cnt, float *__restrict__ logits) {
    const int lane = threadIdx.x & 31, v = blockIdx.x * 8 + (threadIdx.x >> 5);
    if (v >= V) return; /* whole warps leave together */
    const int nblk = kp / 64;
    const uint4 *row = reinterpret_cast<const uint4 *>(codes + (size_t)v * kp);
    uint4 w[KB][4];
    float d[KB];
#pragma unroll
    for (int k = 0; k < KB; k++) {
        const int b = lane + 32 * k;
        if (b < nblk) {
#pragma unroll
            for (int u = 0; u < 4; u++) w[k][u] = __ldg(row + b * 4 + u);
            d[k] = __half2float(scales[(size_t)v * nblk + b]);
        }
    }
    for (int t = 0; t < cnt; t++) {
        const int4 *qr = reinterpret_cast<const int4 *>(q + (size_t)t * kp);
        float f[KB];
#pragma unroll
        for (int k = 0; k < KB; k++) {
            const int b = lane + 32 * k;
            f[k] = 0.0f;
            if (b < nblk) {
                int s = 0;
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    const int4 a = __ldg(qr + b * 4 + u);
                    s = __dp4a((int)w[k][u].x, a.x, s);
                    s = __dp4a((int)w[k][u].y, a.y, s);
                    s = __dp4a((int)w[k][u].z, a.z, s);
                    s = __dp4a((int)w[k][u].w, a.w, s);
                }
                f[k] = __fmul_rn((float)s, d[k]);
            }
        }
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < KB; k++)
            for (int b = 32 * k; b < nblk && b < 32 * (k + 1); b++) acc = __fadd_rn(acc, __shfl_sync(0xffffffffu, f[k], b & 31));
        if (lane == 0) logits[(size_t)t * V + v] = __fmul_rn(acc, xs[t]);
    }
}

/* u = c + 128 stored unsigned -> the signed code, in place. */
__global__ void k_xor80(uint32_t *p, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] ^= 0x80808080u;
}

} // namespace

bn_status bn_cu_persist_plan(const bn_cu_layer *layers, int n_layer, int max_k, int head_dim, int split_len,
                             bn_cu_persist *P, int *grid, size_t *smem) {
    int dev = 0, nsm = 0, coop = 0, optin = 0;
    BN_CU(cudaGetDevice(&dev), "device");
    BN_CU(cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev), "SM count");
    BN_CU(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev), "cooperative launch");
    BN_CU(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "shared memory");
    if (!coop) return bn_fail(BN_ERR_UNSUPPORTED, "cuda: no cooperative launch on this GPU");
    if (head_dim > PT) return bn_fail(BN_ERR_UNSUPPORTED, "cuda: head_dim %d too large for the persistent kernel", head_dim);
    if ((max_k + 127) / 128 * 128 > 8 * VT) return bn_fail(BN_ERR_UNSUPPORTED, "cuda: rows too long for the persistent kernel");
    const int G = nsm;
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        size_t mx = 0;
        for (int l = 0; l < n_layer; l++) {
            const bn_cu_linear *L = i == 0 ? &layers[l].qkv : i == 1 ? &layers[l].o : i == 2 ? &layers[l].gu : &layers[l].down;
            /* gate|up: paired slices (block_slice), the same rows of each half */
            const size_t rows = i == 2 ? 2 * (((size_t)L->M / 2 + G - 1) / G) : ((size_t)L->M + G - 1) / G;
            if (rows * (size_t)L->Kp / 4 > mx) mx = rows * (size_t)L->Kp / 4;
        }
        P->slot_bytes[i] = (int)mx;
        off += mx;
    }
    P->q_off = (int)off;
    off += ((size_t)max_k + 127) / 128 * 128;
    P->a_off = (int)off;
    off += ((size_t)(2 * head_dim + split_len) * 4 + 15) / 16 * 16;
    P->stage_pos = 8192 / head_dim < 64 ? 8192 / head_dim : 64;
    if (P->stage_pos < 1) return bn_fail(BN_ERR_UNSUPPORTED, "cuda: head_dim %d too large", head_dim);
    P->s_off = (int)off;
    {
        const size_t kvb = (size_t)2 * P->stage_pos * head_dim * 4, rowb = ((size_t)max_k + 3) / 4 * 16;
        off += (kvb > rowb ? kvb : rowb + 0);
    }
    P->l_off = (int)off;
    off += (size_t)n_layer * sizeof(bn_cu_layer);
    size_t maxrows = 0;
    for (int l = 0; l < n_layer; l++) {
        const bn_cu_linear *ls[4] = {&layers[l].qkv, &layers[l].o, &layers[l].gu, &layers[l].down};
        for (int i = 0; i < 4; i++) {
            const size_t rows = i == 2 ? 2 * (((size_t)ls[i]->M / 2 + G - 1) / G) : ((size_t)ls[i]->M + G - 1) / G;
            if (rows > maxrows) maxrows = rows;
        }
        if (layers[l].gu.M % 2) return bn_fail(BN_ERR_UNSUPPORTED, "cuda: gate|up of odd height");
        if (layers[l].o.M != layers[0].o.M || layers[l].down.M != layers[0].o.M)
            return bn_fail(BN_ERR_UNSUPPORTED, "cuda: o and down projections of different heights");
    }
    P->rs_off = (int)off;
    off += maxrows * 4;
    P->xo_off = (int)off;
    off += ((size_t)layers[0].o.M + G - 1) / G * 4;
    if (off + 512 > (size_t)optin)
        return bn_fail(BN_ERR_UNSUPPORTED, "cuda: a layer's weight slices need %zu bytes of shared memory per block (%d)",
                       off, optin);
    int per_sm = 0, per_sm_t = 0;
    BN_CU(cudaFuncSetAttribute(k_decode_persist<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)off),
          "persistent kernel shared memory");
    BN_CU(cudaFuncSetAttribute(k_decode_persist<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)off),
          "persistent kernel shared memory");
    BN_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k_decode_persist<false>, PT, off), "occupancy");
    BN_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm_t, k_decode_persist<true>, PT, off), "occupancy");
    if (per_sm < 1 || per_sm_t < 1) return bn_fail(BN_ERR_UNSUPPORTED, "cuda: the persistent kernel does not fit an SM");
    *grid = G;
    *smem = off;
    return BN_OK;
}

void bn_cu_persist_launch(cudaStream_t st, const bn_cu_persist *P, int grid, size_t smem) {
    cudaMemsetAsync(P->bar, 0, sizeof(unsigned), st);
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)grid);
    cfg.blockDim = dim3(PT);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeCooperative;
    at[0].val.cooperative = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    if (P->trace) cudaLaunchKernelEx(&cfg, k_decode_persist<true>, *P);
    else cudaLaunchKernelEx(&cfg, k_decode_persist<false>, *P);
}

void bn_cu_head_quant(cudaStream_t st, const float *x, int e, const int *rows, int cnt, const float *w, float eps,
                      int8_t *q, float *xs) {
    k_head_quant<<<cnt, PT, 0, st>>>(x, e, rows, w, eps, q, xs);
}

bool bn_cu_qhead(cudaStream_t st, const int8_t *codes, const __half *scales, int V, int kp, const int8_t *q,
                 const float *xs, int cnt, float *logits) {
    const dim3 g((unsigned)((V + 7) / 8)), b(256);
    const int nblk = kp / 64;
    if (nblk <= 32) k_qhead<1><<<g, b, 0, st>>>(codes, scales, V, kp, q, xs, cnt, logits);
    else if (nblk <= 64) k_qhead<2><<<g, b, 0, st>>>(codes, scales, V, kp, q, xs, cnt, logits);
    else if (nblk <= 128) k_qhead<4><<<g, b, 0, st>>>(codes, scales, V, kp, q, xs, cnt, logits);
    else return false;
    return true;
}

void bn_cu_xor80(cudaStream_t st, uint32_t *p, size_t nwords) {
    k_xor80<<<1024, 256, 0, st>>>(p, nwords);
}
