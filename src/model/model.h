/* model.h — the one in-memory form of a BitNet model, whatever it was
 * loaded from (HF packed, HF bf16 masters, GGUF I2_S). */
#ifndef BN_MODEL_H
#define BN_MODEL_H

#include "core/core.h"
#include "kernels/kernels.h"

typedef enum bn_arch {
    BN_ARCH_BITNET_B158 = 0, /* 2B4T: relu^2 FFN, sub-norms              */
    BN_ARCH_BITNET_1BIT = 1, /* 1bitLLM "bitnet": SiLU gate              */
} bn_arch;

typedef enum bn_act { BN_ACT_RELU2 = 0, BN_ACT_SILU = 1 } bn_act;

typedef struct bn_hparams {
    bn_arch arch;
    bn_act  act;
    int32_t n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim;
    int32_t n_ctx_train;
    float   rms_eps;
    float   rope_theta;
    int32_t bos_id, eos_id;
} bn_hparams;

/* Check consistency (positive dims, heads divide, head_dim even, ...). */
bn_status bn_hparams_validate(const bn_hparams *hp);

/* A ternary linear: W [n_out, n_in] in the T2R layout of kernels.h.
 * y = (q . W) * scale * x_scale. */
typedef struct bn_linear {
    int32_t        n_in, n_out;
    const uint8_t *w;      /* [n_out, bn_t2r_row_bytes(n_in)]           */
    float          scale;  /* multiplier (beta)                          */
    const uint8_t *w4;     /* T2R4 decode copy of w (repack), or NULL    */
} bn_linear;

typedef struct bn_layer {
    const float *attn_norm;     /* [n_embd]                              */
    bn_linear    wq, wk, wv, wo;
    const float *attn_sub_norm; /* [n_embd] (NULL for arch bitnet)       */
    const float *ffn_norm;      /* [n_embd]                              */
    bn_linear    w_gate, w_up, w_down;
    const float *ffn_sub_norm;  /* [n_ff] (NULL for arch bitnet)         */
} bn_layer;

/* Owned allocations are kept in a list so one free releases them all. */
typedef struct bn_alloc_list {
    void  **ptrs;
    size_t  n, cap;
} bn_alloc_list;

void *bn_alloc_list_add(bn_alloc_list *l, size_t align, size_t size); /* zeroed */
void  bn_alloc_list_free(bn_alloc_list *l);

struct bn_model {
    bn_hparams  hp;
    bn_layer   *layers;       /* [n_layer]                              */
    const void *tok_embd;     /* [n_vocab, n_embd] of type embd_type; tied head */
    bn_type     embd_type;    /* F32, F16 or BF16                       */
    const float *output_norm; /* [n_embd]                               */
    bn_qhead     qhead;       /* quantized head when qhead.bits != 0    */
    void        *qhead_storage;

    /* provenance and storage */
    char           source[16];  /* "gguf" | "hf-packed" | "hf-bf16" | "hf-f32" */
    char          *path;
    bn_alloc_list  owned;
    struct bn_gguf   *gguf;     /* kept open when weights are mapped     */
    struct bn_st_set *st;
    /* tokenizer metadata source for convert / the tokenizer loader */
    char          *tokenizer_path; /* gguf file or HF folder; NULL if none */
    bn_logger      logger;
    struct bn_lora_set *lora;   /* inference LoRA adapter (lora_apply.c), NULL if none */
};

/* Loaders (load_gguf.c, load_hf.c) fill a zeroed bn_model. */
bn_status bn_model_load_gguf(bn_model *m, const char *path, const bn_model_params *p);
bn_status bn_model_load_hf(bn_model *m, const char *dir, const bn_model_params *p);

/* Allocate the layer array and check shapes of one linear. */
bn_status bn_model_alloc_layers(bn_model *m);
bn_status bn_linear_check(const bn_linear *l, const char *name, int32_t n_in, int32_t n_out);

/* random.c: a model of the given hyper-parameters with random ternary weights. */
bn_status bn_model_random(const bn_hparams *hp, uint64_t seed, bn_model **out);
void      bn_hparams_preset(bn_random_shape shape, bn_hparams *hp);

#endif /* BN_MODEL_H */
