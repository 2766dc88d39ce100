/* vocab_hfjson.c — load a Hugging Face tokenizer.json (byte-level BPE:
 * model.type "BPE" with a ByteLevel pre-tokenizer or decoder), optionally
 * with its tokenizer_config.json (bos/eos names, chat template), or a model
 * folder holding both. */
#include <cjson/cJSON.h>

#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>

#define MAX_JSON_BYTES ((size_t)1 << 30)

/* The regex of a Split pre-tokenizer anywhere in the tree, or NULL; sets
 * *bytelevel if a ByteLevel step is present, *bl_regex if it applies the
 * GPT-2 regex itself (use_regex). */
static const char *find_split_regex(const cJSON *pt, bool *bytelevel, bool *bl_regex) {
    if (!cJSON_IsObject(pt)) return NULL;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pt, "type"));
    if (type && !strcmp(type, "ByteLevel")) {
        *bytelevel = true;
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(pt, "use_regex");
        if (!ur || cJSON_IsTrue(ur)) *bl_regex = true;
    }
    if (type && !strcmp(type, "Split")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(pt, "pattern");
        const char *re = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "Regex"));
        if (re) return re;
    }
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
    const char *found = NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, seq) {
        const char *r = find_split_regex(it, bytelevel, bl_regex);
        if (r && !found) found = r;
    }
    return found;
}

/* "bos_token": "<s>" or {"content": "<s>", ...} */
static const char *token_name(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "content"));
}

static char *config_chat_template(const cJSON *cfg) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(v)) return bn_strdup(v->valuestring);
    /* a list of named templates: take "default", else the first */
    const cJSON *it, *first = NULL;
    cJSON_ArrayForEach(it, v) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
        const char *tmpl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "template"));
        if (!tmpl) continue;
        if (!first) first = it;
        if (name && !strcmp(name, "default")) return bn_strdup(tmpl);
    }
    return first ? bn_strdup(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "template"))) : NULL;
}

static bn_status parse(const cJSON *root, const cJSON *cfg, const char *name, bn_tokenizer **out) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "type"));
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(model)) return bn_fail(BN_ERR_FORMAT, "%s: no \"model\" object", name);
    if (!mtype || strcmp(mtype, "BPE"))
        return bn_fail(BN_ERR_UNSUPPORTED, "%s: tokenizer model type '%s' is not supported (only BPE)", name,
                       mtype ? mtype : "?");
    if (!cJSON_IsObject(vocab)) return bn_fail(BN_ERR_FORMAT, "%s: model.vocab missing", name);
    if (!cJSON_IsArray(merges)) return bn_fail(BN_ERR_FORMAT, "%s: model.merges missing (BPE needs merges)", name);

    bool bytelevel = false, bl_regex = false;
    const char *regex = find_split_regex(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &bytelevel, &bl_regex);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const char *dtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(dec, "type"));
    if (dtype && !strcmp(dtype, "ByteLevel")) bytelevel = true;
    if (!bytelevel)
        return bn_fail(BN_ERR_UNSUPPORTED, "%s: only byte-level BPE tokenizers are supported (no ByteLevel step)", name);
    if (!regex) regex = bl_regex ? bn_gpt2_pattern : bn_llama3_pattern;

    /* size: the largest id in vocab and added_tokens */
    int64_t max_id = -1;
    uint64_t blob = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (1 << 24) ||
            it->valuedouble != (double)(int64_t)it->valuedouble)
            return bn_fail(BN_ERR_FORMAT, "%s: vocab entry with a bad id", name);
        if ((int64_t)it->valuedouble > max_id) max_id = (int64_t)it->valuedouble;
        blob += strlen(it->string);
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    cJSON_ArrayForEach(it, added) {
        const cJSON *idv = cJSON_GetObjectItemCaseSensitive(it, "id");
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "content"));
        if (!cJSON_IsNumber(idv) || idv->valuedouble < 0 || idv->valuedouble >= (1 << 24) || !content)
            return bn_fail(BN_ERR_FORMAT, "%s: added token with a bad id or content", name);
        if ((int64_t)idv->valuedouble > max_id) max_id = (int64_t)idv->valuedouble;
        blob += strlen(content);
    }
    if (max_id < 0) return bn_fail(BN_ERR_FORMAT, "%s: empty vocabulary", name);
    /* ids are dense in real files; refuse a handful of entries claiming huge ids */
    int n_entries = cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added);
    if ((uint64_t)max_id >= (uint64_t)n_entries + 65536)
        return bn_fail(BN_ERR_FORMAT, "%s: token ids go up to %lld for only %d entries", name, (long long)max_id, n_entries);
    bn_tokenizer *t;
    bn_status st = bn_tok_alloc((int32_t)max_id + 1, (size_t)blob + 16, &t);
    if (st) return st;
    char *tmp = NULL;
    size_t tmp_cap = 0;
    cJSON_ArrayForEach(it, vocab) {
        size_t n = strlen(it->string), bl;
        if (n + 1 > tmp_cap) {
            free(tmp);
            tmp_cap = n + 256;
            tmp = bn_malloc(tmp_cap);
            if (!tmp) { st = BN_ERR_NOMEM; break; }
        }
        int32_t id = (int32_t)it->valuedouble;
        if (bn_bytelevel_decode(it->string, n, tmp, &bl)) st = bn_tok_set(t, id, tmp, bl, BN_TOKTYPE_NORMAL);
        else st = bn_tok_set(t, id, it->string, n, BN_TOKTYPE_NORMAL); /* not byte-level: literal */
        if (st) break;
    }
    if (!st) {
        cJSON_ArrayForEach(it, added) {
            int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
            const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "content"));
            bool special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"));
            st = bn_tok_set(t, id, content, strlen(content), special ? BN_TOKTYPE_CONTROL : BN_TOKTYPE_USER_DEFINED);
            if (st) break;
        }
    }
    if (!st && cfg) {
        const char *bos = token_name(cfg, "bos_token"), *eos = token_name(cfg, "eos_token");
        /* resolved after finish (needs the lookup tables); keep the names */
        t->chat_template = config_chat_template(cfg);
        t->mode = BN_BPE_MERGES;
        t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
        st = bn_tok_finish(t, regex);
        if (!st && bos && bn_tok_find_any(t, bos, strlen(bos)) >= 0) t->bos_id = bn_tok_find_any(t, bos, strlen(bos));
        int32_t named = t->eos_id;
        if (!st && eos && bn_tok_find_any(t, eos, strlen(eos)) >= 0) t->eos_id = bn_tok_find_any(t, eos, strlen(eos));
        if (named != t->eos_id) t->eog_extra = named;
    } else if (!st) {
        t->mode = BN_BPE_MERGES;
        t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
        st = bn_tok_finish(t, regex);
    }
    if (!st) st = bn_tok_reserve_merges(t, (uint32_t)cJSON_GetArraySize(merges) + 1);
    if (!st) {
        cJSON_ArrayForEach(it, merges) {
            /* "left right" (older files) or ["left", "right"] (newer) */
            const char *l, *r;
            size_t ln, rn;
            if (cJSON_IsString(it)) {
                const char *s = it->valuestring, *sp = strchr(s[0] ? s + 1 : s, ' ');
                if (!sp) { st = bn_fail(BN_ERR_FORMAT, "%s: merge '%s' is not 'left right'", name, s); break; }
                l = s; ln = (size_t)(sp - s); r = sp + 1; rn = strlen(r);
            } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                       cJSON_IsString(cJSON_GetArrayItem(it, 0)) && cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
                l = cJSON_GetArrayItem(it, 0)->valuestring; ln = strlen(l);
                r = cJSON_GetArrayItem(it, 1)->valuestring; rn = strlen(r);
            } else {
                st = bn_fail(BN_ERR_FORMAT, "%s: malformed merge entry", name);
                break;
            }
            if (ln + rn + 1 > tmp_cap) {
                free(tmp);
                tmp_cap = ln + rn + 256;
                tmp = bn_malloc(tmp_cap);
                if (!tmp) { st = BN_ERR_NOMEM; break; }
            }
            st = bn_tok_add_merge_str(t, l, ln, r, rn, tmp);
            if (st) break;
        }
    }
    free(tmp);
    if (st) {
        bn_tokenizer_free(t);
        return st;
    }
    snprintf(t->pre_name, sizeof t->pre_name, "%s", strcmp(regex, bn_gpt2_pattern) ? "llama-bpe" : "gpt-2");
    *out = t;
    return BN_OK;
}

bn_status bn_tokenizer_parse_hfjson(const char *json, size_t n, const char *config_json, const char *name,
                                    bn_tokenizer **out) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!root) return bn_fail(BN_ERR_FORMAT, "%s: not valid JSON", name);
    cJSON *cfg = config_json ? cJSON_Parse(config_json) : NULL;
    bn_status st = parse(root, cfg, name, out);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return st;
}

static bool file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

bn_status bn_tokenizer_load_hf_dir(const char *dir, bn_tokenizer **out) {
    *out = NULL;
    size_t dl = strlen(dir);
    char *p = bn_malloc(dl + 64);
    if (!p) return BN_ERR_NOMEM;
    snprintf(p, dl + 64, "%s/tokenizer.json", dir);
    if (!file_exists(p)) {
        /* Microsoft's BitNet GPU folder ships the tiktoken ranks file as
         * tokenizer.model (a SentencePiece protobuf would start with a byte
         * below 0x20 and is refused by the tiktoken parser). */
        snprintf(p, dl + 64, "%s/tokenizer.model", dir);
        if (file_exists(p)) {
            bn_status st = bn_tokenizer_load_tiktoken(p, out);
            free(p);
            return st;
        }
        free(p);
        return bn_fail(BN_ERR_NOT_FOUND, "%s: no tokenizer.json (or tiktoken tokenizer.model) in this folder", dir);
    }
    char *json = NULL, *cfg = NULL, *conf = NULL;
    size_t n;
    bn_status st = bn_read_file(p, MAX_JSON_BYTES, &json, &n);
    snprintf(p, dl + 64, "%s/tokenizer_config.json", dir);
    if (!st && file_exists(p)) st = bn_read_file(p, 64 << 20, &cfg, NULL);
    if (!st) {
        snprintf(p, dl + 64, "%s/tokenizer.json", dir);
        st = bn_tokenizer_parse_hfjson(json, n, cfg, p, out);
    }
    /* the architecture (for choosing a chat template) from config.json */
    snprintf(p, dl + 64, "%s/config.json", dir);
    if (!st && file_exists(p) && bn_read_file(p, 16 << 20, &conf, NULL) == BN_OK) {
        cJSON *c = cJSON_Parse(conf);
        const char *mt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "model_type"));
        if (mt) snprintf((*out)->arch, sizeof (*out)->arch, "%s", mt);
        cJSON_Delete(c);
        bn_error_clear();
    }
    free(conf);
    free(json);
    free(cfg);
    free(p);
    return st;
}

/* ---- the one public entry point for every source */

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bn_status bn_tokenizer_load(const char *path, bn_tokenizer **out) {
    if (!out) return bn_fail(BN_ERR_INVALID_ARG, "bn_tokenizer_load: NULL out");
    *out = NULL;
    if (!path) return bn_fail(BN_ERR_INVALID_ARG, "bn_tokenizer_load: NULL path");
    if (is_dir(path)) return bn_tokenizer_load_hf_dir(path, out);
    FILE *f = fopen(path, "rb");
    if (!f) return bn_fail(BN_ERR_IO, "%s: cannot open", path);
    char head[64];
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    if (n >= 4 && !memcmp(head, "GGUF", 4)) return bn_tokenizer_load_gguf(path, out);
    size_t i = 0;
    while (i < n && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t')) i++;
    if (i < n && head[i] == '{') {
        char *json;
        size_t len;
        bn_status st = bn_read_file(path, MAX_JSON_BYTES, &json, &len);
        if (st) return st;
        /* a tokenizer_config.json beside it gives bos/eos and the template */
        char *cfg = NULL;
        size_t pl = strlen(path);
        char *cp = bn_malloc(pl + 32);
        if (cp) {
            memcpy(cp, path, pl + 1);
            char *slash = strrchr(cp, '/');
            snprintf(slash ? slash + 1 : cp, pl + 32 - (size_t)(slash ? slash + 1 - cp : 0), "tokenizer_config.json");
            if (file_exists(cp) && bn_read_file(cp, 64 << 20, &cfg, NULL) != BN_OK) cfg = NULL;
        }
        st = bn_tokenizer_parse_hfjson(json, len, cfg, path, out);
        free(cp);
        free(cfg);
        free(json);
        return st;
    }
    if (n == 0) return bn_fail(BN_ERR_FORMAT, "%s: empty file", path);
    return bn_tokenizer_load_tiktoken(path, out);
}
