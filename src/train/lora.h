/* lora.h — supervised fine-tuning for the trainer: LoRA adapters on the
 * BitLinear projections (base weights frozen and ternary), parameter freezing
 * by name pattern for full fine-tuning, and JSONL chat/text data.
 *
 * LoRA on a BitLinear with latent W [out, in]:
 *     y = BitLinear_W(x) + (alpha / r) * B (A x)
 * A [r, in] (seeded uniform(-1/sqrt(in), 1/sqrt(in)), PEFT's kaiming init),
 * B [out, r] (zeros, so a fresh adapter changes nothing). The adapter path is
 * plain f32 on the BitLinear's unquantized input x (the normed activation
 * before its int8 quantization) — PEFT wraps AutoBitLinear the same way; only
 * the base product sees int8 x ternary. */
#ifndef BN_TRAIN_LORA_H
#define BN_TRAIN_LORA_H

#include "train/train.h"
#include "model/lora_apply.h"

typedef struct bn_tr_lora_acts bn_tr_lora_acts;

typedef struct bn_tr_lora {
    int32_t  rank;
    float    alpha, scale;   /* scale = alpha / rank */
    unsigned targets;        /* bit per BN_LORA_* */
    int32_t  layers;
    int32_t  n_pairs;
    bn_lora_pair *pairs;     /* A/B point into p; gradients at the same offsets in g */
    int32_t *slot;           /* [layers * BN_LORA_N_TARGETS] -> pair index or -1 */
    size_t   n;              /* floats in p (all A and B) */
    float   *p, *g, *m1, *m2;/* params, grads, AdamW moments */
    int64_t  step;
    bn_tr_lora_acts *acts;   /* adapter activations of the last forward (the base's stay in the model) */
    /* merge-aware training: instead of the f32 side path, the forward uses
     * ternary(W + scale * B A) on the int8 input (straight-through gradients),
     * i.e. exactly the model that --merge writes. */
    bool     merge_aware;
} bn_tr_lora;

/* Train slot (BN_TR_Q ...) of a LoRA target. */
int bn_tr_lora_slot(int target);

/* Adapters for the targets of every layer of cfg. Fails if rank < 1 or rank is
 * larger than min(in, out) of a targeted layer. */
bn_status bn_tr_lora_create(const bn_tr_config *cfg, int32_t rank, float alpha, unsigned targets,
                            uint64_t seed, bn_tr_lora **out);
/* Adapters from a PEFT folder, checked against cfg (another base fails). */
bn_status bn_tr_lora_load(const bn_tr_config *cfg, const char *dir, bn_tr_lora **out);
void      bn_tr_lora_free(bn_tr_lora *a);

/* Forward of the frozen model m (its latent weights quantized as in
 * bn_tr_forward) plus the adapters; same contract as bn_tr_forward. With
 * every B = 0 the logits equal bn_tr_forward's. */
bn_status bn_tr_lora_forward(bn_tr_model *m, bn_tr_lora *a, const int32_t *tokens,
                             const int32_t *targets, int B, int T, float loss_scale,
                             double *loss_sum, int *n_tok, float *logits_out);
/* Logits [B*T, V] of the last bn_tr_lora_forward; they live in the model's
 * activations, valid until that model's next forward (LoRA or not). */
const float *bn_tr_lora_logits(const bn_tr_lora *a);
/* Accumulates dA, dB of the last forward into a->g (the base gets none). */
bn_status bn_tr_lora_backward(bn_tr_model *m, bn_tr_lora *a);
void      bn_tr_lora_zero_grad(bn_tr_lora *a);
double    bn_tr_lora_grad_norm(const bn_tr_lora *a);
/* torch.optim.AdamW on the adapter (betas 0.9/0.95, eps 1e-8, decay wd). */
void      bn_tr_lora_adamw_step(bn_tr_lora *a, double lr, double wd);

/* Save as PEFT: DIR/adapter_model.safetensors (f32,
 * base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight ...) and
 * DIR/adapter_config.json (base recorded as base_model_name_or_path). */
bn_status bn_tr_lora_save(const bn_tr_lora *a, const char *dir, const char *base);
/* W_latent += (alpha/r) B A for every adapter (then quantized as usual). */
void      bn_tr_lora_merge(bn_tr_model *m, const bn_tr_lora *a);

struct bn_model;
/* A quantized-training model from a loaded BitNet b1.58 model (any format):
 * latent weights chosen so that the trainer's quantizer reproduces the
 * loaded ternary codes and scales (from_model.c). */
bn_status bn_tr_model_from_bn_model(const struct bn_model *bm, bn_tr_model **out);

/* ----------------------------------------------------------- freezing */

/* Glob match ('*' any run, '?' one char) of an HF tensor name. */
bool bn_tr_glob(const char *pattern, const char *name);
/* frozen[t] = true for the tensors of m whose name matches any pattern;
 * returns the number frozen. A pattern matching nothing fails. */
bn_status bn_tr_freeze(const bn_tr_model *m, const char *const *patterns, int n_patterns,
                       bool *frozen, int *n_frozen);

/* ----------------------------------------------------------- SFT data */

typedef struct bn_tr_sft_example {
    int32_t *ids;    /* tokens */
    uint8_t *score;  /* score[i] = 1: ids[i] is a target (assistant / text token) */
    int32_t  n;
} bn_tr_sft_example;

typedef struct bn_tr_sft_data {
    bn_tr_sft_example *ex;
    int32_t n_ex;
    int64_t n_tokens, n_scored;
    int32_t n_truncated;   /* examples longer than the sequence length */
} bn_tr_sft_data;

/* Parse JSONL: each non-empty line {"text": "..."} (every token scored) or
 * {"messages": [{"role", "content"}...]} rendered with the chat template
 * tmpl (a bn_chat_* built-in) and scored only on the assistant replies
 * (their content and end-of-turn token). tok NULL: a byte-level model
 * (vocab 256), chat rendered as text and encoded as bytes. Errors name the
 * line number. vocab bounds the ids. */
bn_status bn_tr_sft_parse(const char *text, size_t len, const char *name, const bn_tokenizer *tok,
                          const char *tmpl, int32_t vocab, bn_tr_sft_data *out);
bn_status bn_tr_sft_load(const char *path, const bn_tokenizer *tok, const char *tmpl,
                         int32_t vocab, bn_tr_sft_data *out);
void      bn_tr_sft_free(bn_tr_sft_data *d);
/* Fill tokens/targets [B, T] with B examples picked by rng (each from its
 * start, cut at T, padded with target -1); targets[t] = ids[t+1] where
 * score[t+1], else -1. */
void      bn_tr_sft_batch(const bn_tr_sft_data *d, bn_tr_rng *rng, int B, int T, int32_t *tokens,
                          int32_t *targets);

#endif /* BN_TRAIN_LORA_H */
