/* cuda_reduce.cuh — warp- and block-wide reductions shared by the kernels.
 * The block versions assume blockDim.x <= 1024 (sh holds 32 values) and give
 * every thread the result; warps that hold zeros leave the xor tree's result
 * as for a smaller block, which the attention kernels rely on. */
#ifndef BN_CUDA_REDUCE_CUH
#define BN_CUDA_REDUCE_CUH

static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
static __device__ __forceinline__ int warp_isum(int v) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
/* One tree for the three block reductions: each warp reduces, lane 0 of every
 * warp parks its value in sh, and warp-level again over the parked values. */
template <typename T, T (*warp_op)(T)>
static __device__ __forceinline__ T block_reduce(T v, T *sh, T identity) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_op(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : identity;
    return warp_op(v);
}
static __device__ float block_sum(float v, float *sh) { return block_reduce<float, warp_sum>(v, sh, 0.0f); }
static __device__ float block_max(float v, float *sh) { return block_reduce<float, warp_max>(v, sh, -INFINITY); }
static __device__ int block_isum(int v, int *sh) { return block_reduce<int, warp_isum>(v, sh, 0); }
static __device__ __forceinline__ unsigned long long warp_umax64(unsigned long long v) {
    for (int o = 16; o; o >>= 1) {
        const unsigned long long w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}
static __device__ unsigned long long block_umax64(unsigned long long v, unsigned long long *sh) {
    return block_reduce<unsigned long long, warp_umax64>(v, sh, 0ull);
}

#endif
