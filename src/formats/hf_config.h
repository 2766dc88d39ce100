/* hf_config.h — read a Hugging Face BitNet config.json. */
#ifndef BN_HF_CONFIG_H
#define BN_HF_CONFIG_H

#include "model/model.h"

typedef enum bn_linear_class {
    BN_LINEAR_AUTOBITLINEAR = 0, /* stored weight_scale is multiplied */
    BN_LINEAR_BITLINEAR = 1,     /* stored weight_scale is divided    */
} bn_linear_class;

typedef struct bn_hf_config {
    bn_hparams      hp;
    bn_linear_class linear_class;
    bool            online;      /* quantization_mode "online": bf16/f32 masters */
    bool            tied;        /* tie_word_embeddings                */
} bn_hf_config;

/* Parse config.json text; `name` is used in messages. Accepts rope_theta or
 * rope_parameters.rope_theta, and derives head_dim = hidden / heads. */
bn_status bn_hf_config_parse(const char *json, const char *name, bn_hf_config *out);
bn_status bn_hf_config_load(const char *dir, bn_hf_config *out);

#endif
