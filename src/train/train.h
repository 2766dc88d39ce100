/* train.h — quantization-aware training of BitNet b1.58 models on the CPU.
 *
 * Layout conventions (all row-major float32):
 *  - activations are [N, D] with N = B*T tokens (token n is position n % T of
 *    sequence n / T);
 *  - linear weights are [out, in] as in Hugging Face checkpoints;
 *  - every op's backward sits next to its forward in ops_*.c; backward
 *    functions write (=) input gradients and accumulate (+=) parameter
 *    gradients, so micro-batches accumulate naturally.
 * Numerics follow transformers' BitNetForCausalLM with AutoBitLinear in online
 * mode (see tests/data/train-tiny/README.md and SPEC §2). */
#ifndef BN_TRAIN_H
#define BN_TRAIN_H

#include "core/core.h"

/* ------------------------------------------------------------------- ops */

/* y = w * (x * rsqrt(mean(x^2) + eps)); rstd[n] keeps the row factor. */
void bn_tr_rmsnorm_fwd(const float *x, const float *w, float *y, float *rstd,
                       int n, int d, float eps);
/* dx = d/dx (written), dw += d/dw. */
void bn_tr_rmsnorm_bwd(const float *x, const float *w, const float *rstd, const float *dy,
                       float *dx, float *dw, int n, int d);

/* Per-token int8 activation quantizer (dequantized): x_q = c / s with
 * s = (1/max(|x|max, 1e-5)) * 127 and c = clamp(rint(x*s), -128, 127).
 * quant=false copies x. */
void bn_tr_actquant(const float *x, float *xq, int n, int d, bool quant);
/* Per-tensor ternary weight quantizer (dequantized): W_q = c / s with
 * s = 1/max(mean|W|, 1e-5), c = clamp(rint(W*s), -1, 1). Returns mean|W|.
 * quant=false copies W. */
float bn_tr_weightquant(const float *w, float *wq, size_t n, bool quant);
/* Row-major sgemm (op = transpose when ta/tb) split over the OpenMP threads,
 * each block one OpenBLAS call. The trainer expects OpenBLAS to run
 * single-threaded (openblas_set_num_threads(1), as `bitnet train` does) and
 * OpenMP to provide the parallelism; otherwise both thread pools compete. */
void bn_tr_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
/* y[n,out] = xq[n,in] . wq[out,in]^T */
void bn_tr_linear_fwd(const float *xq, const float *wq, float *y, int n, int in, int out);
/* Straight-through backward: dx (=, or += if accum) = dy . wq ; dw += dy^T . xq. */
void bn_tr_linear_bwd(const float *xq, const float *wq, const float *dy, float *dx,
                      float *dw, int n, int in, int out, bool accum_dx);

/* Token embedding: y[n] = E[ids[n]]; backward scatter-adds into dE. */
void bn_tr_embed_fwd(const float *E, const int32_t *ids, float *y, int n, int d);
void bn_tr_embed_bwd(const int32_t *ids, const float *dy, float *dE, int n, int d);

/* RoPE tables for positions 0..T-1: cos/sin [T, hd] (rotate_half layout, the
 * hd/2 frequencies duplicated). */
void bn_tr_rope_table(float *cos_t, float *sin_t, int T, int hd, float theta);
/* In-place rotation of x [n, nheads*hd]; token n has position n % T.
 * inverse=true applies the transposed rotation (the backward). */
void bn_tr_rope(float *x, const float *cos_t, const float *sin_t, int n, int T,
                int nheads, int hd, bool inverse);

/* Causal grouped-query attention for B sequences of T tokens.
 * q [B*T, nh*hd], k/v [B*T, nkv*hd], out [B*T, nh*hd], P [B, nh, T, T]
 * (softmax probabilities, kept for the backward; the upper triangle is 0). */
void bn_tr_attn_fwd(const float *q, const float *k, const float *v, float *P, float *out,
                    int B, int T, int nh, int nkv, int hd);
/* dq, dk, dv are written (=). */
bn_status bn_tr_attn_bwd(const float *q, const float *k, const float *v, const float *P,
                    const float *dout, float *dq, float *dk, float *dv,
                    int B, int T, int nh, int nkv, int hd);

/* m = relu(g)^2 * u, elementwise over n values. */
void bn_tr_relu2_fwd(const float *g, const float *u, float *m, size_t n);
void bn_tr_relu2_bwd(const float *g, const float *u, const float *dm, float *dg, float *du,
                     size_t n);

/* Fused softmax + cross-entropy over logits [n, V] with targets [n]
 * (a negative target is ignored). Returns the summed loss (double);
 * dlogits (may alias logits) = (softmax - onehot) * scale. *n_valid counts
 * the used rows. */
double bn_tr_xent(const float *logits, const int32_t *targets, float *dlogits, int n, int V,
                  float scale, int *n_valid);

/* ----------------------------------------------------------------- model */

typedef struct bn_tr_config {
    int32_t vocab, hidden, ffn, layers, heads, kv_heads, head_dim;
    float   eps, rope_theta;
    int32_t max_pos;  /* max_position_embeddings (only recorded) */
    int32_t bos_id, eos_id;
} bn_tr_config;

/* Checks that shapes are positive and consistent (hidden = heads*head_dim,
 * heads % kv_heads == 0, head_dim even ...). */
bn_status bn_tr_config_check(const bn_tr_config *c);
/* Parse an HF config.json text (BitNet/LLaMA keys). */
bn_status bn_tr_config_from_json(const char *json, bn_tr_config *c);
/* Read DIR/config.json or a config.json path. */
bn_status bn_tr_config_load(const char *path, bn_tr_config *c);
/* Serialise as an HF config.json (BitNetForCausalLM, online quantization). */
char *bn_tr_config_to_json(const bn_tr_config *c);
/* Named shapes: "tiny" (the fixture's), "small" (~4M), "medium" (~20M). */
bn_status bn_tr_config_preset(const char *name, bn_tr_config *c);

enum { BN_TR_MAX_NAME = 96 };

typedef struct bn_tr_param {
    char    name[BN_TR_MAX_NAME];
    int     n_dims;
    int64_t shape[2];
    size_t  off, n;   /* offset/count in the flat parameter array */
    bool    decay;    /* 2-D tensors get weight decay */
} bn_tr_param;

/* per-layer tensor slots, in checkpoint order */
enum {
    BN_TR_Q = 0, BN_TR_K, BN_TR_V, BN_TR_O, BN_TR_ATTN_SUB_NORM,
    BN_TR_GATE, BN_TR_UP, BN_TR_DOWN, BN_TR_FFN_SUB_NORM,
    BN_TR_IN_NORM, BN_TR_POST_NORM, BN_TR_PER_LAYER
};

typedef struct bn_tr_acts bn_tr_acts;

typedef struct bn_tr_model {
    bn_tr_config cfg;
    bool         quant;     /* false: fp32 baseline (no quantizers) */
    int          n_tensors;
    bn_tr_param *params;
    size_t       n_params;  /* total floats */
    float       *w;         /* latent weights [n_params] */
    float       *g;         /* gradients [n_params] */
    float       *wq;        /* quantized (dequantized) linear weights, same offsets */
    bn_tr_acts  *acts;      /* activations of the last forward */
    double       t_gemm;    /* seconds spent in the linear-layer sgemm calls */
    bool         is_view;   /* shares w/g/wq with another model */
} bn_tr_model;

bn_status bn_tr_model_create(const bn_tr_config *cfg, bool quant, bn_tr_model **out);
void      bn_tr_model_free(bn_tr_model *m);
/* A second handle on the same weights with its own activations (for eval or
 * sampling at another batch shape without disturbing the training buffers).
 * Free with bn_tr_model_free (the weights stay with src). */
bn_status bn_tr_model_view(const bn_tr_model *src, bn_tr_model **out);
/* Tensor index helpers. */
int   bn_tr_tensor_embed(void);
int   bn_tr_tensor_layer(const bn_tr_model *m, int layer, int slot);
int   bn_tr_tensor_final_norm(const bn_tr_model *m);
int   bn_tr_find_tensor(const bn_tr_model *m, const char *name); /* -1 if absent */
static inline float *bn_tr_w(const bn_tr_model *m, int t) { return m->w + m->params[t].off; }
static inline float *bn_tr_g(const bn_tr_model *m, int t) { return m->g + m->params[t].off; }

/* Random initialisation (std 0.02 for linears/embedding, 1 for norms). */
void bn_tr_model_init_random(bn_tr_model *m, uint64_t seed);
void bn_tr_zero_grad(bn_tr_model *m);

/* Forward over tokens [B, T] with targets [B, T] (may be NULL: no loss).
 * Keeps activations for bn_tr_backward. Returns the summed loss in *loss_sum
 * and the number of scored tokens in *n_tok. If logits_out is non-NULL the
 * logits [B*T, V] are copied there. loss_scale multiplies dlogits (use
 * 1/total_tokens to get the gradient of the mean loss). */
bn_status bn_tr_forward(bn_tr_model *m, const int32_t *tokens, const int32_t *targets,
                        int B, int T, float loss_scale, double *loss_sum, int *n_tok,
                        float *logits_out);
/* Accumulates gradients of the last forward into m->g. */
bn_status bn_tr_backward(bn_tr_model *m);
/* Logits for generation: like forward without targets, returns pointer to
 * the internal logits [B*T, V] (valid until the next call). */
const float *bn_tr_logits(const bn_tr_model *m);

/* Global L2 norm of the gradients (double accumulation). */
double bn_tr_grad_norm(const bn_tr_model *m);
/* FLOPs of one forward+backward of B*T tokens (matrix products only). */
double bn_tr_flops_per_step(const bn_tr_config *c, int B, int T);

/* Load initial weights from an HF folder or .safetensors file (F32/BF16/F16);
 * every tensor of the model must be present with the right shape. */
bn_status bn_tr_load_safetensors(bn_tr_model *m, const char *path);
/* Save latent weights as f32 safetensors to the file path, or, if path is an
 * existing folder or ends in '/', as path/model.safetensors + path/config.json. */
bn_status bn_tr_save_safetensors(const bn_tr_model *m, const char *path);

/* ------------------------------------------------------------- optimizer */

typedef struct bn_tr_adamw {
    double lr, beta1, beta2, eps, weight_decay;
    int64_t step;       /* number of updates done */
    size_t  n;
    float  *m, *v;      /* moments [n] */
} bn_tr_adamw;

bn_status bn_tr_adamw_init(bn_tr_adamw *opt, size_t n);
void      bn_tr_adamw_free(bn_tr_adamw *opt);
/* One torch.optim.AdamW step (single-tensor path) with the given lr and
 * weight decay (applied only to decay tensors). */
void bn_tr_adamw_step(bn_tr_adamw *opt, bn_tr_model *m, double lr, double wd);
/* Scale all gradients by f. */
void bn_tr_scale_grads(bn_tr_model *m, float f);

/* -------------------------------------------------------------- schedule */

typedef enum bn_tr_sched_kind {
    BN_TR_SCHED_CONSTANT = 0, BN_TR_SCHED_COSINE, BN_TR_SCHED_LINEAR,
    BN_TR_SCHED_WSD, BN_TR_SCHED_TWO_STAGE
} bn_tr_sched_kind;

typedef struct bn_tr_schedule {
    bn_tr_sched_kind kind;
    double  lr;            /* peak */
    double  min_lr;        /* floor of the decays (default lr/10) */
    int64_t warmup, total;
    double  wsd_decay_frac;   /* WSD: fraction of steps in the final decay (0.2) */
    double  stage2_lr_frac;   /* two-stage: stage-2 peak as a fraction of lr (0.5) */
    double  weight_decay;
} bn_tr_schedule;

bn_status bn_tr_schedule_parse(const char *name, bn_tr_sched_kind *kind);
const char *bn_tr_schedule_name(bn_tr_sched_kind kind);
/* lr and weight decay for update `step` (0-based). */
void bn_tr_schedule_at(const bn_tr_schedule *s, int64_t step, double *lr, double *wd);

/* ------------------------------------------------------------------ data */

/* xoshiro256** with splitmix64 seeding: small state, easy to checkpoint. */
typedef struct bn_tr_rng { uint64_t s[4]; } bn_tr_rng;
void     bn_tr_rng_seed(bn_tr_rng *r, uint64_t seed);
uint64_t bn_tr_rng_next(bn_tr_rng *r);
double   bn_tr_rng_uniform(bn_tr_rng *r);  /* [0,1) */
float    bn_tr_rng_normal(bn_tr_rng *r);
uint64_t bn_tr_rng_below(bn_tr_rng *r, uint64_t n);  /* [0,n), n > 0 */

/* Token shard: 32-byte header "BNTOK\0\0\0", u32 version (1), u32 bytes per
 * id (2 or 4), u64 count, u32 vocab size, u32 reserved; then the ids. */
#define BN_TR_SHARD_MAGIC "BNTOK\0\0\0"
enum { BN_TR_SHARD_HEADER = 32, BN_TR_SHARD_VERSION = 1 };

bn_status bn_tr_shard_write(const char *path, const uint32_t *ids, uint64_t n, uint32_t vocab);

typedef struct bn_tr_shard {
    bn_mmap  map;
    uint32_t width, vocab;
    uint64_t count;
    const uint8_t *ids;
} bn_tr_shard;

bn_status bn_tr_shard_open(const char *path, bn_tr_shard *s);
void      bn_tr_shard_close(bn_tr_shard *s);
static inline uint32_t bn_tr_shard_get(const bn_tr_shard *s, uint64_t i) {
    if (s->width == 2) return (uint32_t)s->ids[2 * i] | ((uint32_t)s->ids[2 * i + 1] << 8);
    const uint8_t *p = s->ids + 4 * i;
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
/* Fill tokens [B, T] and targets [B, T] from random windows of T+1 ids. */
bn_status bn_tr_shard_sample(const bn_tr_shard *s, bn_tr_rng *rng, int B, int T,
                             int32_t *tokens, int32_t *targets);

/* ------------------------------------------------------------ checkpoint */

/* Everything needed to continue bit-exactly. */
typedef struct bn_tr_state {
    int64_t   step;      /* optimizer steps done */
    bn_tr_rng data_rng;  /* training-window sampler position */
    bn_tr_rng aux_rng;   /* sampling/eval randomness */
    double    tokens_seen;
} bn_tr_state;

/* Atomic (tmp + fsync + rename). */
bn_status bn_tr_checkpoint_save(const char *path, const bn_tr_model *m, const bn_tr_adamw *opt,
                                const bn_tr_state *st);
/* m must already have the checkpoint's shape (checked); opt is initialised. */
bn_status bn_tr_checkpoint_load(const char *path, bn_tr_model *m, bn_tr_adamw *opt,
                                bn_tr_state *st);
/* Read only the config stored in a checkpoint. */
bn_status bn_tr_checkpoint_peek(const char *path, bn_tr_config *cfg, bool *quant);

/* Write a file atomically: path.tmp, fsync, rename, fsync of the folder. */
bn_status bn_tr_write_atomic(const char *path, const void *const *parts, const size_t *sizes,
                             int n_parts);

#endif /* BN_TRAIN_H */
