/* cuda_sample.cu — the device half of sampling: bias and penalties applied
 * to a copy of a logits row, then its k best entries (k <= 64), in the
 * sampler's candidate order (higher logit first, then lower id), so that
 * only k (id, logit) pairs cross the bus instead of the whole row. The host
 * finishes the pipeline (softmax with temperature, top-p, min-p, the draw)
 * on those k candidates with the same code as for a host row. */
#include "cuda_internal.cuh"
#include "cuda_reduce.cuh"

#include <string.h>

namespace {

constexpr int TK_CHUNK = 2048; /* row entries per block of the first pass */
constexpr int TK_T = 1024;

/* A candidate as one 64-bit key whose descending order is the sampler's:
 * the logit's bits made monotone in the upper half, ~id in the lower half
 * (lower id first on equal logits). -inf and NaN are no candidates: key 0. */
__device__ __forceinline__ unsigned long long cand_key(float v, int id) {
    if (!(v > -INFINITY)) return 0ull;
    unsigned u = __float_as_uint(v);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((unsigned long long)u << 32) | (unsigned long long)(~(unsigned)id);
}

/* Sort n (a power of two) keys in shared memory, descending (bitonic). */
__device__ void bitonic_desc(unsigned long long *k, int n) {
    for (int size = 2; size <= n; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            __syncthreads();
            for (int i = threadIdx.x; i < n / 2; i += blockDim.x) {
                const int lo = 2 * i - (i & (stride - 1)), hi = lo + stride;
                const bool desc = (lo & size) == 0;
                const unsigned long long a = k[lo], b = k[hi];
                if ((a < b) == desc) {
                    k[lo] = b;
                    k[hi] = a;
                }
            }
        }
    __syncthreads();
}

/* Logit bias (in list order, repeats add up), then the penalties of each
 * penalized token: the host sampler's arithmetic, rounded the same way
 * (no fused multiply-add). One thread: the lists are short. */
__global__ void k_adjust(float *row, const int *bias_tok, const float *bias, int nb, const int *pen_tok,
                         const int *pen_cnt, int np, float rp, float presence, float frequency) {
    if (threadIdx.x || blockIdx.x) return;
    for (int i = 0; i < nb; i++) row[bias_tok[i]] = __fadd_rn(row[bias_tok[i]], bias[i]);
    for (int i = 0; i < np; i++) {
        float l = row[pen_tok[i]];
        if (rp != 1.0f) l = l > 0.0f ? __fdiv_rn(l, rp) : __fmul_rn(l, rp);
        l = __fsub_rn(l, __fadd_rn(presence, __fmul_rn(frequency, (float)pen_cnt[i])));
        row[pen_tok[i]] = l;
    }
}

__global__ void __launch_bounds__(TK_T) k_topk_blocks(const float *row, int V, int k, unsigned long long *out) {
    __shared__ unsigned long long sk[TK_CHUNK];
    const int base = blockIdx.x * TK_CHUNK;
    for (int i = threadIdx.x; i < TK_CHUNK; i += TK_T) sk[i] = base + i < V ? cand_key(row[base + i], base + i) : 0ull;
    bitonic_desc(sk, TK_CHUNK);
    for (int i = threadIdx.x; i < k; i += TK_T) out[(size_t)blockIdx.x * k + i] = sk[i];
}

__global__ void __launch_bounds__(TK_T) k_topk_merge(const unsigned long long *in, int n, int k,
                                                     unsigned long long *out) {
    __shared__ unsigned long long sk[BN_CU_TOPK_KEYS];
    for (int i = threadIdx.x; i < BN_CU_TOPK_KEYS; i += TK_T) sk[i] = i < n ? in[i] : 0ull;
    bitonic_desc(sk, BN_CU_TOPK_KEYS);
    for (int i = threadIdx.x; i < k; i += TK_T) out[i] = sk[i];
}

/* k = 1 (greedy): the largest key, a reduction instead of a sort. */
__global__ void __launch_bounds__(TK_T) k_argmax_blocks(const float *row, int V, unsigned long long *out) {
    __shared__ unsigned long long sh[32];
    const int base = blockIdx.x * TK_CHUNK;
    unsigned long long v = 0ull;
    for (int i = threadIdx.x; i < TK_CHUNK && base + i < V; i += TK_T) {
        const unsigned long long k = cand_key(row[base + i], base + i);
        v = k > v ? k : v;
    }
    v = block_umax64(v, sh);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
}

__global__ void __launch_bounds__(TK_T) k_argmax_merge(const unsigned long long *in, int n, unsigned long long *out) {
    __shared__ unsigned long long sh[32];
    unsigned long long v = 0ull;
    for (int i = threadIdx.x; i < n; i += TK_T) v = in[i] > v ? in[i] : v;
    v = block_umax64(v, sh);
    if (threadIdx.x == 0) out[0] = v;
}

} // namespace

int bn_cu_topk_blocks(int V) { return (V + TK_CHUNK - 1) / TK_CHUNK; }

void bn_cu_topk(cudaStream_t st, float *row, int V, const bn_cu_adjust_dev *a, int k, unsigned long long *keys1,
                unsigned long long *keys) {
    if (a->nb + a->np > 0)
        k_adjust<<<1, 32, 0, st>>>(row, a->bias_tok, a->bias, a->nb, a->pen_tok, a->pen_cnt, a->np, a->rp, a->presence,
                                   a->frequency);
    const int nb = bn_cu_topk_blocks(V);
    if (k == 1) {
        k_argmax_blocks<<<nb, TK_T, 0, st>>>(row, V, keys1);
        k_argmax_merge<<<1, TK_T, 0, st>>>(keys1, nb, keys);
        return;
    }
    k_topk_blocks<<<nb, TK_T, 0, st>>>(row, V, k, keys1);
    k_topk_merge<<<1, TK_T, 0, st>>>(keys1, nb * k, k, keys);
}

float bn_cu_key_logit(unsigned long long key) {
    unsigned u = (unsigned)(key >> 32);
    u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int bn_cu_key_id(unsigned long long key) { return (int)(~(unsigned)(key & 0xffffffffu)); }
