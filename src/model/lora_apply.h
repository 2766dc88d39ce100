/* lora_apply.h — LoRA adapters in the PEFT layout: target names, reading an
 * adapter folder (adapter_config.json + adapter_model.safetensors), and the
 * inference-time term y += scale * B (A x) added after a targeted BitLinear.
 *
 * The adapter path works on the f32 input of the BitLinear (the normed
 * activation before its int8 quantization), as PEFT does when it wraps
 * transformers' AutoBitLinear; only the base product uses int8 x ternary. */
#ifndef BN_LORA_APPLY_H
#define BN_LORA_APPLY_H

#include "core/core.h"

/* Targets in the order q,k,v,o,gate,up,down (a bit mask uses 1u << t). */
enum { BN_LORA_Q = 0, BN_LORA_K, BN_LORA_V, BN_LORA_O, BN_LORA_GATE, BN_LORA_UP,
       BN_LORA_DOWN, BN_LORA_N_TARGETS };

/* "q" -> "q_proj"; "q_proj"; module path inside a layer: "self_attn.q_proj". */
const char *bn_lora_target_short(int t);
const char *bn_lora_target_module(int t);
const char *bn_lora_target_path(int t);
/* Parse "q,k,v,o,gate,up,down" (short or *_proj names, or "all") into a mask.
 * Unknown names fail with the list of valid ones. */
bn_status bn_lora_parse_targets(const char *csv, unsigned *mask);

/* One adapter pair: A [rank, in], B [out, rank], f32, owned by the file. */
typedef struct bn_lora_pair {
    int32_t layer, target, in, out;
    float  *A, *B;
} bn_lora_pair;

typedef struct bn_lora_file {
    int32_t       rank;
    float         alpha;
    unsigned      targets;    /* from target_modules */
    char          base[512];  /* base_model_name_or_path ("" if absent) */
    int32_t       n_pairs;
    bn_lora_pair *pairs;
    float        *data;       /* one allocation for every A and B */
} bn_lora_file;

/* Read DIR/adapter_config.json and DIR/adapter_model.safetensors (F32, BF16
 * or F16 tensors named base_model.model.model.layers.L.<path>.lora_{A,B}.weight).
 * Checks that every pair is complete and shaped [r, in] / [out, r]; the dims
 * against a model are checked by the caller. */
bn_status bn_lora_file_read(const char *dir, bn_lora_file *f);
void      bn_lora_file_free(bn_lora_file *f);

/* The adapter attached to a bn_model by bn_model_apply_lora. */
typedef struct bn_lora_set {
    int32_t       rank;
    float         alpha;
    float         scale;     /* user scale * alpha / rank */
    unsigned      targets;
    int32_t       n_layer;
    int32_t       n_pairs;
    const bn_lora_pair  *pairs;
    const bn_lora_pair **slot; /* [n_layer * BN_LORA_N_TARGETS], NULL where absent */
} bn_lora_set;

struct bn_model;
/* y[n, out] += scale * (x[n, in] A^T) B^T for the pair at (layer, target), if
 * the model has one (nothing otherwise). x and y are row-major, dense. */
bn_status bn_lora_linear_add(const struct bn_model *m, int layer, int target, const float *x,
                             int n, float *y);

#endif /* BN_LORA_APPLY_H */
