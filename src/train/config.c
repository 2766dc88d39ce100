/* config.c — model shape for training: HF config.json keys, presets, checks. */
#include "train/train.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bn_status bn_tr_config_check(const bn_tr_config *c) {
    const int64_t lim = 1 << 20;
    if (c->vocab <= 0 || c->vocab > (1 << 24) || c->hidden <= 0 || c->hidden > lim ||
        c->ffn <= 0 || c->ffn > lim || c->layers <= 0 || c->layers > 1024 ||
        c->heads <= 0 || c->heads > 4096 || c->kv_heads <= 0 || c->head_dim <= 0)
        return bn_fail(BN_ERR_SHAPE,
                       "config: sizes must be positive and sane (vocab %d, hidden %d, ffn %d, "
                       "layers %d, heads %d, kv heads %d, head_dim %d)",
                       c->vocab, c->hidden, c->ffn, c->layers, c->heads, c->kv_heads, c->head_dim);
    if (c->heads % c->kv_heads)
        return bn_fail(BN_ERR_SHAPE, "config: num_attention_heads (%d) is not a multiple of "
                       "num_key_value_heads (%d)", c->heads, c->kv_heads);
    if ((int64_t)c->heads * c->head_dim != c->hidden)
        return bn_fail(BN_ERR_SHAPE, "config: num_attention_heads (%d) x head_dim (%d) != "
                       "hidden_size (%d) (the attention sub-norm needs them equal)",
                       c->heads, c->head_dim, c->hidden);
    if (c->head_dim % 2)
        return bn_fail(BN_ERR_SHAPE, "config: head_dim (%d) must be even for RoPE", c->head_dim);
    if (!(c->eps > 0) || !isfinite(c->eps) || !(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return bn_fail(BN_ERR_SHAPE, "config: rms_norm_eps and rope_theta must be positive");
    return BN_OK;
}

static bool get_int(const cJSON *root, const char *key, int32_t *out, bool required) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) bn_fail(BN_ERR_FORMAT, "config.json: missing integer key '%s'", key);
        return !required;
    }
    double v = it->valuedouble;
    if (!cJSON_IsNumber(it) || v != floor(v) || v < -1 || v > 2147483647.0) {
        bn_fail(BN_ERR_FORMAT, "config.json: '%s' must be an integer", key);
        return false;
    }
    *out = (int32_t)v;
    return true;
}

bn_status bn_tr_config_from_json(const char *json, bn_tr_config *c) {
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bn_fail(BN_ERR_FORMAT, "config.json is not a JSON object");
    }
    bn_tr_config t = {0};
    t.eps = 1e-5f;
    t.rope_theta = 500000.0f;
    t.max_pos = 4096;
    t.bos_id = t.eos_id = -1;
    t.kv_heads = -1;
    t.head_dim = -1;
    bn_status st = BN_OK;
    if (!get_int(root, "vocab_size", &t.vocab, true) ||
        !get_int(root, "hidden_size", &t.hidden, true) ||
        !get_int(root, "intermediate_size", &t.ffn, true) ||
        !get_int(root, "num_hidden_layers", &t.layers, true) ||
        !get_int(root, "num_attention_heads", &t.heads, true) ||
        !get_int(root, "num_key_value_heads", &t.kv_heads, false) ||
        !get_int(root, "head_dim", &t.head_dim, false) ||
        !get_int(root, "max_position_embeddings", &t.max_pos, false) ||
        !get_int(root, "bos_token_id", &t.bos_id, false) ||
        !get_int(root, "eos_token_id", &t.eos_id, false)) {
        st = BN_ERR_FORMAT;
        goto done;
    }
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "rms_norm_eps");
    if (cJSON_IsNumber(it)) t.eps = (float)it->valuedouble;
    it = cJSON_GetObjectItemCaseSensitive(root, "rope_theta");
    if (cJSON_IsNumber(it)) t.rope_theta = (float)it->valuedouble;
    it = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (it && cJSON_IsFalse(it)) {
        st = bn_fail(BN_ERR_UNSUPPORTED, "config.json: only tied embeddings are supported "
                     "(tie_word_embeddings is false)");
        goto done;
    }
    it = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (cJSON_IsString(it) && strcmp(it->valuestring, "relu2")) {
        st = bn_fail(BN_ERR_UNSUPPORTED, "config.json: hidden_act '%s' (only relu2)", it->valuestring);
        goto done;
    }
    if (t.kv_heads < 0) t.kv_heads = t.heads;
    if (t.head_dim < 0) t.head_dim = t.heads > 0 ? t.hidden / t.heads : 0;
    st = bn_tr_config_check(&t);
    if (st == BN_OK) *c = t;
done:
    cJSON_Delete(root);
    return st;
}

bn_status bn_tr_config_load(const char *path, bn_tr_config *c) {
    char buf[4096];
    struct stat sb;
    size_t pl = strlen(path);
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(buf, sizeof buf, "%s/config.json", path);
    else if (pl > 12 && !strcmp(path + pl - 12, ".safetensors")) {
        /* a weights file: its folder's config.json */
        const char *slash = strrchr(path, '/');
        if (slash) snprintf(buf, sizeof buf, "%.*s/config.json", (int)(slash - path), path);
        else snprintf(buf, sizeof buf, "config.json");
    } else
        snprintf(buf, sizeof buf, "%s", path);
    char *text = NULL;
    size_t len = 0;
    bn_status st = bn_read_file(buf, 1 << 20, &text, &len);
    if (st != BN_OK) return st;
    st = bn_tr_config_from_json(text, c);
    free(text);
    if (st != BN_OK) bn_error_prefix("%s", buf);
    return st;
}

char *bn_tr_config_to_json(const bn_tr_config *c) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("BitNetForCausalLM"));
    if (c->bos_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", c->bos_id);
    if (c->eos_id >= 0) cJSON_AddNumberToObject(r, "eos_token_id", c->eos_id);
    cJSON_AddStringToObject(r, "hidden_act", "relu2");
    cJSON_AddNumberToObject(r, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(r, "intermediate_size", c->ffn);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_pos);
    cJSON_AddStringToObject(r, "model_type", "bitnet");
    cJSON_AddNumberToObject(r, "num_attention_heads", c->heads);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->layers);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->kv_heads);
    cJSON_AddNumberToObject(r, "rms_norm_eps", c->eps);
    cJSON_AddNumberToObject(r, "rope_theta", c->rope_theta);
    cJSON_AddBoolToObject(r, "tie_word_embeddings", 1);
    cJSON_AddStringToObject(r, "torch_dtype", "float32");
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab);
    cJSON *q = cJSON_AddObjectToObject(r, "quantization_config");
    cJSON_AddStringToObject(q, "quant_method", "bitnet");
    cJSON_AddStringToObject(q, "linear_class", "autobitlinear");
    cJSON_AddStringToObject(q, "quantization_mode", "online");
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    return s;
}

bn_status bn_tr_config_preset(const char *name, bn_tr_config *c) {
    bn_tr_config t = {.eps = 1e-5f, .rope_theta = 500000.0f, .max_pos = 4096,
                      .bos_id = -1, .eos_id = -1};
    if (!strcmp(name, "tiny")) {          /* the train-tiny fixture's shape */
        t.vocab = 256; t.hidden = 64; t.ffn = 128; t.layers = 2; t.heads = 4; t.kv_heads = 2;
        t.head_dim = 16;
    } else if (!strcmp(name, "small")) {  /* ~2.8M parameters with a byte vocabulary */
        t.vocab = 256; t.hidden = 256; t.ffn = 640; t.layers = 4; t.heads = 4; t.kv_heads = 2;
        t.head_dim = 64;
        t.rope_theta = 10000.0f;
    } else if (!strcmp(name, "medium")) { /* ~11M */
        t.vocab = 256; t.hidden = 384; t.ffn = 1024; t.layers = 6; t.heads = 6; t.kv_heads = 2;
        t.head_dim = 64;
        t.rope_theta = 10000.0f;
    } else {
        return bn_fail(BN_ERR_INVALID_ARG, "unknown preset '%s' (tiny, small, medium)", name);
    }
    *c = t;
    return BN_OK;
}
