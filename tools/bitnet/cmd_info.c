/* cmd_info.c — `bitnet info PATH [--json]`: a model's architecture,
 * hyper-parameters, tokenizer summary, tensor table and totals.
 *
 * PATH is a .gguf file, a Hugging Face folder (config.json + safetensors,
 * sharded or not) or a single .safetensors file. Everything is first
 * collected into one JSON document; --json prints it, the text form is
 * rendered from it, so both always say the same thing. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

#define INFO_MAX_CONFIG    ((size_t)16 << 20)
#define INFO_MAX_TOKENIZER ((size_t)64 << 20)
/* LLaMA 3's tokenizer.json has ~1M values; ~80 bytes each in cJSON. */
#define INFO_MAX_JSON_VALUES ((size_t)8 << 20)
/* GGUF arrays up to this many numbers are shown whole, longer ones summarized. */
#define INFO_MAX_ARRAY_SHOWN 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet info PATH [--json]\n\n"
            "Shows a model's architecture, hyper-parameters, tokenizer summary, tensors\n"
            "(name, type, shape, bytes) and totals.\n"
            "  PATH     a .gguf file, a Hugging Face model folder (config.json +\n"
            "           model.safetensors, or shards listed in model.safetensors.index.json),\n"
            "           or a single .safetensors file\n"
            "  --json   print one JSON object instead: format, path, architecture, hparams,\n"
            "           tokenizer, tensors [{name, dtype, shape, bytes}], n_tensors,\n"
            "           n_params, n_bytes\n\n"
            "Shapes: safetensors as stored (outermost dimension first); GGUF in GGUF order\n"
            "(ne[0], the contiguous dimension, first).\n");
}

/* One error line: "bitnet info: PATH: problem" (the message usually starts
 * with the file it is about; don't repeat PATH then). Control characters
 * from hostile names are replaced so the message stays on one line. */
static int info_fail(const char *path, const char *msg) {
    size_t pl = strlen(path);
    fprintf(stderr, "bitnet info: ");
    if (!(strncmp(msg, path, pl) == 0 && msg[pl] == ':')) fprintf(stderr, "%s: ", path);
    for (const char *p = msg; *p; p++) fputc((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p, stderr);
    fputc('\n', stderr);
    return 1;
}

static bool oom(void *p) {
    if (!p) bn_fail(BN_ERR_NOMEM, "out of memory");
    return !p;
}

static cJSON *str_n(const char *s, uint64_t len) {
    char *tmp = malloc((size_t)len + 1);
    if (!tmp) return NULL;
    memcpy(tmp, s, (size_t)len);
    tmp[len] = '\0';
    cJSON *j = cJSON_CreateString(tmp);
    free(tmp);
    return j;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    snprintf(p, a + b + 2, "%s%s%s", dir, a && dir[a - 1] == '/' ? "" : "/", name);
    return p;
}

/* Parse a (small) JSON file; NULL with a message naming it on failure. */
static cJSON *read_json(const char *path, size_t max) {
    char *text = NULL;
    size_t len = 0;
    if (bn_read_file(path, max, &text, &len) != BN_OK) return NULL;
    if (bn_json_value_bound(text, len) > INFO_MAX_JSON_VALUES) {
        free(text);
        bn_fail(BN_ERR_FORMAT, "%s: more than %zu JSON values; refusing to parse it", path, INFO_MAX_JSON_VALUES);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) bn_fail(BN_ERR_FORMAT, "%s: not valid JSON", path);
    return j;
}

/* ------------------------------------------------------------ safetensors */

/* HF packed ternary linears (SPEC 3.1): U8 "<x>.weight" with a sibling
 * "<x>.weight_scale" holds four weights per byte. */
static uint64_t st_params(const bn_st_set *s, const bn_st_tensor *t) {
    if (t->dtype != BN_TYPE_U8) return t->n_elems;
    size_t n = strlen(t->name);
    if (n < 7 || strcmp(t->name + n - 7, ".weight")) return t->n_elems;
    char *scale = malloc(n + 7);
    if (!scale) return t->n_elems;
    snprintf(scale, n + 7, "%s_scale", t->name);
    bool packed = bn_st_find(s, scale) != NULL;
    free(scale);
    return packed ? t->n_elems * 4 : t->n_elems;
}

static bool add_st_tensors(cJSON *doc, const bn_st_set *s) {
    cJSON *arr = cJSON_AddArrayToObject(doc, "tensors");
    if (oom(arr)) return false;
    uint64_t params = 0, elems = 0, bytes = 0;
    for (size_t i = 0; i < bn_st_count(s); i++) {
        const bn_st_tensor *t = bn_st_at(s, i);
        cJSON *o = cJSON_CreateObject();
        if (oom(o)) return false;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "dtype", bn_type_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        if (oom(sh)) return false;
        for (uint32_t d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
        if (bn_st_count(s) > 1 && bn_st_shard_count(s) > 1) cJSON_AddNumberToObject(o, "shard", t->shard);
        params += st_params(s, t);
        elems += t->n_elems;
        bytes += t->nbytes;
    }
    cJSON_AddNumberToObject(doc, "n_tensors", (double)bn_st_count(s));
    cJSON_AddNumberToObject(doc, "n_params", (double)params);
    cJSON_AddNumberToObject(doc, "n_elements", (double)elems);
    cJSON_AddNumberToObject(doc, "n_bytes", (double)bytes);
    return true;
}

/* tokenizer.json: model type, vocab entries, merges, added tokens (only
 * when the file is of a sane size: it is parsed whole). */
static void tokenizer_json_summary(cJSON *tok, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || (uint64_t)sb.st_size > INFO_MAX_TOKENIZER) return;
    cJSON *j = read_json(path, INFO_MAX_TOKENIZER);
    if (!j) {
        cJSON_AddStringToObject(tok, "tokenizer.json_error", bn_last_error());
        return;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (cJSON_IsString(type)) cJSON_AddStringToObject(tok, "model", type->valuestring);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (cJSON_IsObject(vocab) || cJSON_IsArray(vocab))
        cJSON_AddNumberToObject(tok, "n_vocab", cJSON_GetArraySize(vocab));
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (cJSON_IsArray(merges)) cJSON_AddNumberToObject(tok, "n_merges", cJSON_GetArraySize(merges));
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    if (cJSON_IsArray(added)) cJSON_AddNumberToObject(tok, "n_added_tokens", cJSON_GetArraySize(added));
    cJSON_Delete(j);
}

static bn_status info_safetensors(cJSON *doc, const char *path, bool folder) {
    bn_st_set *s = NULL;
    cJSON *config = NULL;
    bn_status st = BN_OK;
    cJSON_AddStringToObject(doc, "format", "safetensors");
    cJSON_AddStringToObject(doc, "path", path);
    if (folder) {
        char *cpath = join(path, "config.json");
        if (oom(cpath)) return BN_ERR_NOMEM;
        if (file_exists(cpath) && !(config = read_json(cpath, INFO_MAX_CONFIG))) st = BN_ERR_FORMAT;
        if (config && !cJSON_IsObject(config)) st = bn_fail(BN_ERR_FORMAT, "%s: not a JSON object", cpath);
        free(cpath);
        if (st != BN_OK) goto done;
    }
    if ((st = bn_st_open(path, &s)) != BN_OK) goto done;

    cJSON *files = cJSON_AddArrayToObject(doc, "files");
    for (size_t i = 0; files && i < bn_st_shard_count(s); i++)
        cJSON_AddItemToArray(files, cJSON_CreateString(bn_st_shard_path(s, i)));

    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(config, "model_type");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(config, "architectures");
    const char *arch = cJSON_IsString(mt) ? mt->valuestring
                       : cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0))
                           ? cJSON_GetArrayItem(archs, 0)->valuestring
                           : "unknown";
    cJSON_AddStringToObject(doc, "architecture", arch);
    cJSON_AddStringToObject(doc, "hparams_source", config ? "config.json" : "none");
    cJSON *hp = config ? cJSON_Duplicate(config, 1) : cJSON_CreateObject();
    if (oom(hp)) { st = BN_ERR_NOMEM; goto done; }
    cJSON_AddItemToObject(doc, "hparams", hp);

    cJSON *tok = cJSON_AddObjectToObject(doc, "tokenizer");
    if (oom(tok)) { st = BN_ERR_NOMEM; goto done; }
    if (folder) {
        static const char *const names[] = {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            char *p = join(path, names[i]);
            if (oom(p)) { st = BN_ERR_NOMEM; goto done; }
            bool have = file_exists(p);
            cJSON_AddBoolToObject(tok, names[i], have);
            if (have && i == 0) tokenizer_json_summary(tok, p);
            free(p);
        }
        static const char *const ids[] = {"bos_token_id", "eos_token_id", "pad_token_id"};
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, ids[i]);
            if (v && !cJSON_IsNull(v)) cJSON_AddItemToObject(tok, ids[i], cJSON_Duplicate(v, 1));
        }
    }
    cJSON *meta = cJSON_AddObjectToObject(doc, "metadata");
    for (size_t i = 0; meta && i < bn_st_metadata_count(s); i++) {
        const char *k, *v;
        if (bn_st_metadata_at(s, i, &k, &v)) cJSON_AddStringToObject(meta, k, v);
    }
    cJSON_AddStringToObject(doc, "shape_order", "as stored, outermost dimension first");
    if (!add_st_tensors(doc, s)) st = BN_ERR_NOMEM;
done:
    cJSON_Delete(config);
    bn_st_free(s);
    return st;
}

/* ------------------------------------------------------------------- GGUF */

/* A scalar value (no arrays) as JSON. */
static cJSON *gguf_scalar(const bn_gguf_value *v) {
    switch (v->type) {
    case BN_GGUF_UINT8: return cJSON_CreateNumber(v->v.u8);
    case BN_GGUF_INT8: return cJSON_CreateNumber(v->v.i8);
    case BN_GGUF_UINT16: return cJSON_CreateNumber(v->v.u16);
    case BN_GGUF_INT16: return cJSON_CreateNumber(v->v.i16);
    case BN_GGUF_UINT32: return cJSON_CreateNumber(v->v.u32);
    case BN_GGUF_INT32: return cJSON_CreateNumber(v->v.i32);
    case BN_GGUF_UINT64: return cJSON_CreateNumber((double)v->v.u64);
    case BN_GGUF_INT64: return cJSON_CreateNumber((double)v->v.i64);
    case BN_GGUF_FLOAT32: return cJSON_CreateNumber(v->v.f32);
    case BN_GGUF_FLOAT64: return cJSON_CreateNumber(v->v.f64);
    case BN_GGUF_BOOL: return cJSON_CreateBool(v->v.b);
    case BN_GGUF_STRING: return str_n(v->v.str.data, v->v.str.len);
    case BN_GGUF_ARRAY: break;
    }
    return NULL;
}

/* Numeric element i of a scalar array. */
static double gguf_arr_num(const bn_gguf_value *v, uint64_t i) {
    const uint8_t *p = (const uint8_t *)v->v.arr.data + i * bn_gguf_vtype_size(v->v.arr.elem_type);
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; uint64_t u64;
            int64_t i64; float f32; double f64; } u;
    memcpy(&u, p, bn_gguf_vtype_size(v->v.arr.elem_type));
    switch (v->v.arr.elem_type) {
    case BN_GGUF_UINT8: return u.u8;
    case BN_GGUF_INT8: return u.i8;
    case BN_GGUF_UINT16: return u.u16;
    case BN_GGUF_INT16: return u.i16;
    case BN_GGUF_UINT32: return u.u32;
    case BN_GGUF_INT32: return u.i32;
    case BN_GGUF_UINT64: return (double)u.u64;
    case BN_GGUF_INT64: return (double)u.i64;
    case BN_GGUF_FLOAT32: return u.f32;
    case BN_GGUF_FLOAT64: return u.f64;
    case BN_GGUF_BOOL: return u.u8 != 0;
    default: return 0;
    }
}

/* A value for display: scalars as they are, short numeric arrays whole,
 * other arrays as "array[<type> x n]". */
static cJSON *gguf_display(const bn_gguf_value *v) {
    if (v->type != BN_GGUF_ARRAY) return gguf_scalar(v);
    bn_gguf_vtype et = v->v.arr.elem_type;
    if (et != BN_GGUF_STRING && et != BN_GGUF_ARRAY && v->v.arr.n <= INFO_MAX_ARRAY_SHOWN) {
        cJSON *a = cJSON_CreateArray();
        for (uint64_t i = 0; a && i < v->v.arr.n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(gguf_arr_num(v, i)));
        return a;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "array[%s x %" PRIu64 "]", bn_gguf_vtype_name(et), v->v.arr.n);
    return cJSON_CreateString(buf);
}

static bool key_has_prefix(const bn_gguf_str *k, const char *prefix) {
    size_t n = strlen(prefix);
    return k->len >= n && memcmp(k->data, prefix, n) == 0;
}

static bn_status info_gguf(cJSON *doc, const char *path) {
    bn_gguf *g = NULL;
    bn_status st = bn_gguf_open(path, &g);
    if (st != BN_OK) return st;
    cJSON_AddStringToObject(doc, "format", "gguf");
    cJSON_AddStringToObject(doc, "path", path);
    cJSON_AddNumberToObject(doc, "gguf_version", bn_gguf_version(g));
    cJSON_AddNumberToObject(doc, "alignment", bn_gguf_alignment(g));
    char arch[128] = "unknown";
    bn_gguf_get_str(g, "general.architecture", arch, sizeof arch);
    cJSON_AddStringToObject(doc, "architecture", arch);

    cJSON *hp = cJSON_AddObjectToObject(doc, "hparams");
    cJSON *tok = cJSON_AddObjectToObject(doc, "tokenizer");
    if (oom(hp) || oom(tok)) { st = BN_ERR_NOMEM; goto done; }
    for (uint64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        const bn_gguf_kv *kv = bn_gguf_kv_at(g, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255), kv->key.data);
        const bn_gguf_value *v = &kv->value;
        if (!key_has_prefix(&kv->key, "tokenizer.")) {
            cJSON_AddItemToObject(hp, key, gguf_display(v));
            continue;
        }
        /* tokenizer.ggml.x -> x; vocab-sized arrays become counts, the chat
         * template its length. */
        const char *shortk = key_has_prefix(&kv->key, "tokenizer.ggml.") ? key + 15 : key + 10;
        if (!strcmp(shortk, "tokens") && v->type == BN_GGUF_ARRAY)
            cJSON_AddNumberToObject(tok, "n_tokens", (double)v->v.arr.n);
        else if (!strcmp(shortk, "merges") && v->type == BN_GGUF_ARRAY)
            cJSON_AddNumberToObject(tok, "n_merges", (double)v->v.arr.n);
        else if (!strcmp(shortk, "chat_template") && v->type == BN_GGUF_STRING)
            cJSON_AddNumberToObject(tok, "chat_template_bytes", (double)v->v.str.len);
        else if (v->type == BN_GGUF_ARRAY && v->v.arr.n > INFO_MAX_ARRAY_SHOWN) {
            char k2[300];
            snprintf(k2, sizeof k2, "n_%s", shortk);
            cJSON_AddNumberToObject(tok, k2, (double)v->v.arr.n);
        } else cJSON_AddItemToObject(tok, shortk, gguf_display(v));
    }
    cJSON_AddStringToObject(doc, "shape_order", "in GGUF order, ne[0] (the contiguous dimension) first");

    cJSON *arr = cJSON_AddArrayToObject(doc, "tensors");
    if (oom(arr)) { st = BN_ERR_NOMEM; goto done; }
    uint64_t params = 0, bytes = 0;
    bool bitnet = bn_gguf_is_bitnet(g);
    for (uint64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        cJSON *o = cJSON_CreateObject();
        if (oom(o)) { st = BN_ERR_NOMEM; goto done; }
        cJSON_AddItemToArray(arr, o);
        cJSON_AddItemToObject(o, "name", str_n(t->name.data, t->name.len));
        cJSON_AddStringToObject(o, "dtype", bn_gguf_type_name(t->type, bitnet));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->ne[d]));
            if (!bn_mul_ok(n, t->ne[d], &n)) n = UINT64_MAX;  /* the reader checks this too */
        }
        cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
        params += n;
        bytes += t->nbytes;
    }
    cJSON_AddNumberToObject(doc, "n_tensors", (double)bn_gguf_n_tensors(g));
    cJSON_AddNumberToObject(doc, "n_params", (double)params);
    cJSON_AddNumberToObject(doc, "n_bytes", (double)bytes);
done:
    bn_gguf_free(g);
    return st;
}

/* ------------------------------------------------------------ text form */

static void put_clean(const char *s) {
    for (; *s; s++) putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static void put_value(const cJSON *v) {
    if (cJSON_IsString(v)) put_clean(v->valuestring);
    else if (cJSON_IsBool(v)) fputs(cJSON_IsTrue(v) ? "true" : "false", stdout);
    else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == (double)(int64_t)d && d > -9e15 && d < 9e15) printf("%" PRId64, (int64_t)d);
        else printf("%g", d);
    } else if (cJSON_IsNull(v)) fputs("null", stdout);
    else {
        char *s = cJSON_PrintUnformatted(v);
        if (s) put_clean(s);
        cJSON_free(s);
    }
}

/* Width of the longest flattened key (for the value column). */
static int key_width(const cJSON *o, int prefix_len) {
    int w = 0;
    for (const cJSON *e = o ? o->child : NULL; e; e = e->next) {
        int n = prefix_len + (prefix_len ? 1 : 0) + (e->string ? (int)strlen(e->string) : 0);
        if (cJSON_IsObject(e) && e->child) n = key_width(e, n);
        if (n > w) w = n;
    }
    return w;
}

/* key/value lines; nested objects flattened as "outer.inner". */
static void put_object(const cJSON *o, const char *prefix, int width, int *lines) {
    for (const cJSON *e = o ? o->child : NULL; e; e = e->next) {
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", e->string ? e->string : "");
        if (cJSON_IsObject(e) && e->child) {
            put_object(e, key, width, lines);
            continue;
        }
        fputs("  ", stdout);
        put_clean(key);
        int pad = width - (int)strlen(key);
        printf("%*s ", pad > 0 ? pad : 0, "");
        put_value(e);
        putchar('\n');
        (*lines)++;
    }
}

static void put_section(const cJSON *doc, const char *key, const char *title) {
    printf("%s\n", title);
    int lines = 0;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(doc, key);
    int w = key_width(o, 0);
    put_object(o, "", w < 20 ? 20 : w > 60 ? 60 : w, &lines);
    if (!lines) printf("  (none)\n");
}

static void put_thousands(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    size_t n = strlen(buf);
    for (size_t i = 0; i < n; i++) {
        putchar(buf[i]);
        if (i + 1 < n && (n - i - 1) % 3 == 0) putchar(',');
    }
}

static void print_text(const cJSON *doc) {
    const char *fmt = cJSON_GetObjectItemCaseSensitive(doc, "format")->valuestring;
    printf("path          ");
    put_clean(cJSON_GetObjectItemCaseSensitive(doc, "path")->valuestring);
    printf("\nformat        %s", fmt);
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(doc, "gguf_version");
    if (ver) printf(" v%d (alignment %d)", ver->valueint, cJSON_GetObjectItemCaseSensitive(doc, "alignment")->valueint);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(doc, "files");
    if (files) {
        int n = cJSON_GetArraySize(files);
        printf(", %d file%s", n, n == 1 ? "" : "s");
        for (const cJSON *f = files->child; f; f = f->next) {
            printf("\n                ");
            put_clean(f->valuestring);
        }
    }
    printf("\narchitecture  ");
    put_clean(cJSON_GetObjectItemCaseSensitive(doc, "architecture")->valuestring);
    putchar('\n');
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(doc, "hparams_source");
    put_section(doc, "hparams",
                src && !strcmp(src->valuestring, "config.json") ? "hyper-parameters (config.json)"
                : src                                           ? "hyper-parameters (no config.json)"
                                                                : "hyper-parameters (GGUF metadata)");
    put_section(doc, "tokenizer", "tokenizer");
    if (cJSON_GetObjectItemCaseSensitive(doc, "metadata")) put_section(doc, "metadata", "metadata (__metadata__)");

    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(doc, "tensors");
    int wname = 4;
    for (const cJSON *t = tensors->child; t; t = t->next) {
        int n = (int)strlen(cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring);
        if (n > wname) wname = n;
    }
    if (wname > 64) wname = 64;
    printf("tensors (shapes %s)\n", cJSON_GetObjectItemCaseSensitive(doc, "shape_order")->valuestring);
    printf("  %-*s  %-6s  %-22s  %s\n", wname, "name", "type", "shape", "bytes");
    for (const cJSON *t = tensors->child; t; t = t->next) {
        char shape[128] = "[";
        size_t k = 1;
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
        for (const cJSON *d = sh->child; d && k < sizeof shape - 24; d = d->next)
            k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%.0f", d == sh->child ? "" : ", ", d->valuedouble);
        snprintf(shape + k, sizeof shape - k, "]");
        printf("  ");
        const char *name = cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring;
        put_clean(name);
        int pad = wname - (int)strlen(name);
        printf("%*s  %-6s  %-22s  ", pad > 0 ? pad : 0, "", cJSON_GetObjectItemCaseSensitive(t, "dtype")->valuestring,
               shape);
        put_thousands((uint64_t)cJSON_GetObjectItemCaseSensitive(t, "bytes")->valuedouble);
        putchar('\n');
    }
    double nb = cJSON_GetObjectItemCaseSensitive(doc, "n_bytes")->valuedouble;
    printf("totals        %d tensors, ", cJSON_GetObjectItemCaseSensitive(doc, "n_tensors")->valueint);
    put_thousands((uint64_t)cJSON_GetObjectItemCaseSensitive(doc, "n_params")->valuedouble);
    printf(" parameters, ");
    put_thousands((uint64_t)nb);
    printf(" bytes (%.2f MiB)\n", nb / (1024.0 * 1024.0));
    if (files && cJSON_GetObjectItemCaseSensitive(doc, "n_elements")->valuedouble !=
                     cJSON_GetObjectItemCaseSensitive(doc, "n_params")->valuedouble)
        printf("              (packed U8 ternary weights count 4 parameters per byte)\n");
}

/* ------------------------------------------------------------------ main */

static bool is_gguf_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char magic[4] = {0};
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && !memcmp(magic, "GGUF", 4);
}

int bn_cmd_info(int argc, char **argv) {
    const char *cmd = "info", *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (bn_cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) json = true;
        else if (argv[i][0] == '-' && argv[i][1]) return bn_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (path) return bn_cli_usage_error(cmd, "more than one PATH ('%s' and '%s')", path, argv[i]);
        else path = argv[i];
    }
    if (!path) return bn_cli_usage_error(cmd, "PATH is missing");

    struct stat sb;
    if (stat(path, &sb) != 0) {
        bn_fail(BN_ERR_IO, "cannot open: %s", strerror(errno));
        return info_fail(path, bn_last_error());
    }
    cJSON *doc = cJSON_CreateObject();
    if (!doc) return info_fail(path, "out of memory");
    bn_status st;
    if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode)) st = bn_fail(BN_ERR_IO, "not a regular file or a folder");
    else if (S_ISDIR(sb.st_mode)) st = info_safetensors(doc, path, true);
    else if (is_gguf_file(path)) st = info_gguf(doc, path);
    else st = info_safetensors(doc, path, false);
    if (st != BN_OK) {
        cJSON_Delete(doc);
        return info_fail(path, bn_last_error());
    }
    if (json) {
        char *s = cJSON_PrintUnformatted(doc);
        if (!s) {
            cJSON_Delete(doc);
            return info_fail(path, "out of memory");
        }
        puts(s);
        cJSON_free(s);
    } else print_text(doc);
    cJSON_Delete(doc);
    return fflush(stdout) == 0 ? 0 : 1;
}
