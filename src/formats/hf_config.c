/* hf_config.c — BitNet config.json (transformers 4.x and 5.x spellings). */
#include "hf_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool get_int(const cJSON *o, const char *key, int32_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (d != floor(d) || d < -2147483648.0 || d > 2147483647.0) return false;
    *out = (int32_t)d;
    return true;
}

static bool get_float(const cJSON *o, const char *key, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return false;
    *out = (float)v->valuedouble;
    return true;
}

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bn_status bn_hf_config_parse(const char *json, const char *name, bn_hf_config *out) {
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bn_fail(BN_ERR_FORMAT, "%s: not a JSON object", name);
    }
    bn_status st = BN_OK;
    bn_hparams *hp = &out->hp;
    const char *model_type = get_str(root, "model_type");
    /* 1bitLLM checkpoints (bitnet_b1_58-large/3B) subclass LLaMA: model_type
     * "llama" with architectures ["BitnetForCausalLM"] (note the lower n). */
    bool bitnet_llama = false;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (cJSON_IsString(a0) && !strcmp(a0->valuestring, "BitnetForCausalLM")) bitnet_llama = true;
    if (model_type && strcmp(model_type, "bitnet") != 0 && !(bitnet_llama && !strcmp(model_type, "llama"))) {
        st = bn_fail(BN_ERR_UNSUPPORTED, "%s: model_type '%s' is not a BitNet model (expected \"bitnet\")", name, model_type);
        goto done;
    }
    static const char *const required[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                                           "num_attention_heads", "vocab_size"};
    int32_t *dst[] = {&hp->n_embd, &hp->n_ff, &hp->n_layer, &hp->n_head, &hp->n_vocab};
    for (size_t i = 0; i < 5; i++) {
        if (!get_int(root, required[i], dst[i])) {
            st = bn_fail(BN_ERR_FORMAT, "%s: missing or non-integer \"%s\"", name, required[i]);
            goto done;
        }
    }
    if (!get_int(root, "num_key_value_heads", &hp->n_head_kv)) hp->n_head_kv = hp->n_head;
    if (hp->n_head <= 0) {
        st = bn_fail(BN_ERR_FORMAT, "%s: num_attention_heads must be positive", name);
        goto done;
    }
    if (!get_int(root, "head_dim", &hp->head_dim)) hp->head_dim = hp->n_embd / hp->n_head;
    if (!get_int(root, "max_position_embeddings", &hp->n_ctx_train)) hp->n_ctx_train = 2048;
    if (!get_float(root, "rms_norm_eps", &hp->rms_eps)) hp->rms_eps = 1e-5f;
    hp->rope_theta = 10000.0f;
    if (!get_float(root, "rope_theta", &hp->rope_theta)) {
        const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
        if (cJSON_IsObject(rp)) get_float(rp, "rope_theta", &hp->rope_theta);
    }
    if (!get_int(root, "bos_token_id", &hp->bos_id)) hp->bos_id = -1;
    if (!get_int(root, "eos_token_id", &hp->eos_id)) {
        /* eos may be a list: take the first */
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
        hp->eos_id = cJSON_IsArray(e) && cJSON_IsNumber(cJSON_GetArrayItem(e, 0))
                         ? (int32_t)cJSON_GetArrayItem(e, 0)->valuedouble : -1;
    }
    const char *act = get_str(root, "hidden_act");
    if (!act || !strcmp(act, "relu2")) {
        hp->act = BN_ACT_RELU2;
        hp->arch = BN_ARCH_BITNET_B158;
    } else if (!strcmp(act, "silu")) {
        hp->act = BN_ACT_SILU;
        hp->arch = BN_ARCH_BITNET_1BIT;
    } else {
        st = bn_fail(BN_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (relu2 or silu)", name, act);
        goto done;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    out->tied = tie ? cJSON_IsTrue(tie) : true;

    out->linear_class = BN_LINEAR_BITLINEAR; /* transformers' default when absent */
    out->online = false;
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (cJSON_IsObject(qc)) {
        const char *lc = get_str(qc, "linear_class");
        if (lc) {
            if (!strcmp(lc, "autobitlinear")) out->linear_class = BN_LINEAR_AUTOBITLINEAR;
            else if (!strcmp(lc, "bitlinear")) out->linear_class = BN_LINEAR_BITLINEAR;
            else {
                st = bn_fail(BN_ERR_UNSUPPORTED, "%s: unknown quantization_config.linear_class '%s' (autobitlinear or bitlinear)", name, lc);
                goto done;
            }
        }
        const char *mode = get_str(qc, "quantization_mode");
        if (mode) {
            if (!strcmp(mode, "online")) out->online = true;
            else if (strcmp(mode, "offline") != 0) {
                st = bn_fail(BN_ERR_UNSUPPORTED, "%s: unknown quantization_mode '%s'", name, mode);
                goto done;
            }
        }
    } else {
        out->online = true; /* no quantization config: float masters */
    }
    st = bn_hparams_validate(hp);
    if (st != BN_OK) bn_error_prefix("%s", name);
done:
    cJSON_Delete(root);
    return st;
}

bn_status bn_hf_config_load(const char *dir, bn_hf_config *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = NULL;
    bn_status st = bn_read_file(path, 1 << 20, &text, NULL);
    if (st != BN_OK) return st;
    st = bn_hf_config_parse(text, path, out);
    free(text);
    return st;
}
