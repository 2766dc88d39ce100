/* select.c — read the Hub's file listing and choose the files a model needs. */
#include "hub/hub.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BN_HUB_MAX_FILES 100000

void bn_hub_files_free(bn_hub_files *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free(f->names[i]);
    free(f->names);
    memset(f, 0, sizeof *f);
}

bn_status bn_hub_parse_listing(const char *json, size_t n, char commit[41], char ***names_out, size_t *n_names) {
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!root) return bn_fail(BN_ERR_FORMAT, "the hub's model listing is not valid JSON");
    bn_status st = BN_OK;
    char **names = NULL;
    size_t cnt = 0;
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(root, "sha");
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(root, "siblings");
    if (!cJSON_IsString(sha) || !bn_hub_is_hex(sha->valuestring, 40)) {
        st = bn_fail(BN_ERR_FORMAT, "the hub's model listing has no commit sha");
        goto out;
    }
    if (!cJSON_IsArray(sib)) {
        st = bn_fail(BN_ERR_FORMAT, "the hub's model listing has no file list (\"siblings\")");
        goto out;
    }
    int total = cJSON_GetArraySize(sib);
    if (total < 0 || total > BN_HUB_MAX_FILES) {
        st = bn_fail(BN_ERR_FORMAT, "the hub's model listing names %d files (limit %d)", total, BN_HUB_MAX_FILES);
        goto out;
    }
    names = bn_calloc((size_t)total + 1, sizeof *names);
    if (!names) { st = BN_ERR_NOMEM; goto out; }
    const cJSON *it;
    cJSON_ArrayForEach(it, sib) {
        const cJSON *rf = cJSON_GetObjectItemCaseSensitive(it, "rfilename");
        /* names that could escape the snapshot folder are skipped, never used */
        if (!cJSON_IsString(rf) || !bn_hub_valid_file(rf->valuestring)) continue;
        if (!(names[cnt] = bn_strdup(rf->valuestring))) { st = BN_ERR_NOMEM; goto out; }
        cnt++;
    }
    for (int i = 0; i < 40; i++) {
        char c = sha->valuestring[i];
        commit[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    }
    commit[40] = '\0';
out:
    cJSON_Delete(root);
    if (st) {
        for (size_t i = 0; i < cnt; i++) free(names[i]);
        free(names);
        return st;
    }
    *names_out = names;
    *n_names = cnt;
    return BN_OK;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

static bool contains_ci(const char *s, const char *needle) {
    size_t m = strlen(needle);
    for (; *s; s++)
        if (!strncasecmp(s, needle, m)) return true;
    return false;
}

static bn_status add(bn_hub_files *f, const char *name) {
    char **nv = realloc(f->names, (f->n + 1) * sizeof *nv);
    if (!nv) return bn_fail(BN_ERR_NOMEM, "out of memory");
    f->names = nv;
    if (!(f->names[f->n] = bn_strdup(name))) return BN_ERR_NOMEM;
    f->n++;
    return BN_OK;
}

/* Up to a few names of a kind, for error messages. */
static void some_names(const char *const *all, size_t n, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && i < 12; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", all[i]);
        if (w < 0 || (size_t)w >= cap - used) break; /* truncated: buf is full */
        used += (size_t)w;
    }
    used = strlen(buf); /* a truncated snprintf filled more than `used` says */
    if (n > 12 && used + sizeof ", ..." <= cap) memcpy(buf + used, ", ...", sizeof ", ...");
}

bn_status bn_hub_select(const char *repo, const char *const *all, size_t n_all, const char *file,
                        bn_hub_files *out) {
    memset(out, 0, sizeof *out);
    char names[1024];
    if (file) {
        for (size_t i = 0; i < n_all; i++)
            if (!strcmp(all[i], file)) return add(out, file);
        some_names(all, n_all, names, sizeof names);
        return bn_fail(BN_ERR_NOT_FOUND, "file not found in the repository: %s has no %s (files: %s)",
                       repo, file, names);
    }
    /* GGUF: one file holds everything. Several: bitnet's own I2_S first. */
    const char *gguf = NULL;
    size_t n_gguf = 0;
    for (size_t i = 0; i < n_all; i++) {
        if (!ends_with(all[i], ".gguf")) continue;
        n_gguf++;
        if (!gguf || (contains_ci(all[i], "i2_s") && !contains_ci(gguf, "i2_s"))) gguf = all[i];
    }
    if (gguf) return add(out, gguf);
    /* Hugging Face format: config + weights + tokenizer, as a folder */
    bool config = false, weights = false;
    for (size_t i = 0; i < n_all; i++) {
        config |= !strcmp(all[i], "config.json");
        weights |= ends_with(all[i], ".safetensors") && !strchr(all[i], '/');
    }
    if (!config || !weights) {
        some_names(all, n_all, names, sizeof names);
        return bn_fail(BN_ERR_UNSUPPORTED,
                       "%s holds no .gguf file and no config.json + *.safetensors model (files: %s); "
                       "name a file with --file", repo, names);
    }
    static const char *extra[] = {"config.json", "model.safetensors.index.json", "tokenizer.json",
                                  "tokenizer_config.json", "generation_config.json",
                                  "special_tokens_map.json", "chat_template.jinja"};
    out->folder = true;
    for (size_t i = 0; i < n_all; i++) {
        bool want = ends_with(all[i], ".safetensors") && !strchr(all[i], '/');
        for (size_t k = 0; k < sizeof extra / sizeof extra[0] && !want; k++) want = !strcmp(all[i], extra[k]);
        if (want) {
            bn_status st = add(out, all[i]);
            if (st) { bn_hub_files_free(out); return st; }
        }
    }
    return BN_OK;
}
