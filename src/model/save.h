/* save.h — options for writing models (GGUF). */
#ifndef BN_SAVE_H
#define BN_SAVE_H

#include "formats/gguf.h"
#include "model.h"

typedef struct bn_save_options {
    bool    set_embd_type; /* false: F16 token embeddings (as bitnet.cpp) */
    bn_type embd_type;     /* F32, F16 or BF16 when set_embd_type        */
    /* Called after the hyper-parameters are written: add tokenizer or other
     * metadata (e.g. the tokenizer's bn_tokenizer_write_gguf). */
    bn_status (*add_metadata)(bn_gguf_writer *w, void *user);
    void *user;
} bn_save_options;

bn_status bn_model_save_gguf_ex(const bn_model *m, const char *path, const bn_save_options *opt);

/* save_hf.c — Hugging Face BitNet folders (config.json as
 * microsoft/bitnet-b1.58-2B-4T writes it + model.safetensors), tokenizer
 * files copied from an HF source folder. */
typedef enum bn_hf_form {
    BN_HF_FORM_PACKED = 0, /* U8 [out/4, in] + weight_scale [1] (BF16 when the scale is a
                            * BF16 value, else F32), quantization_mode offline          */
    BN_HF_FORM_BF16 = 1,   /* BF16 float masters, quantization_mode online; needs a source
                            * that holds masters (HF folder with f32/bf16/f16 linears)     */
} bn_hf_form;

/* Write `dir` (created if missing). *n_tok_files (may be NULL) receives how
 * many tokenizer files were copied (0: the source had none to copy, e.g. GGUF). */
bn_status bn_model_save_hf(const bn_model *m, const char *dir, bn_hf_form form, int *n_tok_files);

#endif
