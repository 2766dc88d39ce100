/* safetensors.c — safetensors reader (single files, folders, sharded
 * checkpoints) and writer.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON (an
 * object: tensor name -> {dtype, shape, data_offsets}, plus an optional
 * "__metadata__" object of strings), then the data section. Offsets are
 * relative to the start of the data section.
 *
 * Everything in a file is untrusted: the header length is bounded, the JSON
 * is parsed from a NUL-terminated private copy, every number must be an
 * exact non-negative integer, shape products and byte counts are overflow-
 * checked, offsets must lie inside the data section and match the shape, and
 * tensors may not overlap. Names are checked for uniqueness with a sort
 * (never a quadratic scan), so hostile headers with millions of entries
 * cost O(n log n). Tensor data is never copied: bn_st_tensor.data points
 * into the file mapping. */
#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Same limit as the reference implementation: a larger header is hostile. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
#define ST_MAX_INDEX  ((size_t)100 * 1000 * 1000)
#define ST_MAX_SHARDS 100000
/* ~9 values per tensor entry: room for ~400k tensors in one header. */
#define ST_MAX_JSON_VALUES ((size_t)4 << 20)
/* Largest integer a JSON number (an IEEE double in cJSON) holds exactly. */
#define ST_MAX_EXACT 9007199254740992.0

static const struct {
    const char *name;
    bn_type     type;
} st_dtypes[] = {
    {"BF16", BN_TYPE_BF16}, {"F16", BN_TYPE_F16}, {"F32", BN_TYPE_F32}, {"F64", BN_TYPE_F64},
    {"U8", BN_TYPE_U8},     {"I8", BN_TYPE_I8},   {"I16", BN_TYPE_I16}, {"I32", BN_TYPE_I32},
    {"I64", BN_TYPE_I64},   {"BOOL", BN_TYPE_BOOL},
};
#define ST_N_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

static const char *st_dtype_name(bn_type t) {
    for (size_t i = 0; i < ST_N_DTYPES; i++)
        if (st_dtypes[i].type == t) return st_dtypes[i].name;
    return NULL;
}

static bool st_dtype_parse(const char *s, bn_type *out) {
    for (size_t i = 0; i < ST_N_DTYPES; i++)
        if (!strcmp(st_dtypes[i].name, s)) {
            *out = st_dtypes[i].type;
            return true;
        }
    return false;
}

static uint64_t st_dtype_size(bn_type t) {
    const bn_type_traits *tr = bn_type_get(t);
    return tr ? (uint64_t)tr->type_size : 0;
}

/* Grow a heap array to hold at least `need` elements of `elem` bytes. */
static bool st_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) return false;
        nc *= 2;
    }
    if (nc > SIZE_MAX / elem || nc * elem > BN_MAX_ALLOC) {
        bn_fail(BN_ERR_NOMEM, "refusing to allocate %zu entries", nc);
        return false;
    }
    void *q = realloc(*p, nc * elem);
    if (!q) {
        bn_fail(BN_ERR_NOMEM, "out of memory (%zu entries)", nc);
        return false;
    }
    *p = q;
    *cap = nc;
    return true;
}

/* ------------------------------------------------------------------ set */

typedef struct st_shard {
    char   *path;  /* used in messages; for folders the full path */
    bn_mmap map;   /* all zero when the caller owns the buffer (bn_st_parse) */
} st_shard;

typedef struct st_meta {
    char  *key;
    char  *value;
    size_t shard;  /* first shard wins when several carry the same key */
    size_t seq;    /* insertion order, for a deterministic sort */
} st_meta;

struct bn_st_set {
    st_shard     *shards;
    size_t        n_shards, cap_shards;
    bn_st_tensor *tensors;
    size_t        n_tensors, cap_tensors;
    size_t       *by_name;  /* tensor indices sorted by name */
    st_meta      *meta;     /* sorted by key after st_finish */
    size_t        n_meta, cap_meta;
};

static bn_st_set *st_set_new(void) {
    bn_st_set *s = bn_calloc(1, sizeof *s);
    return s;
}

void bn_st_free(bn_st_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_shards; i++) {
        bn_mmap_close(&s->shards[i].map);
        free(s->shards[i].path);
    }
    for (size_t i = 0; i < s->n_tensors; i++) free((char *)s->tensors[i].name);
    for (size_t i = 0; i < s->n_meta; i++) {
        free(s->meta[i].key);
        free(s->meta[i].value);
    }
    free(s->shards);
    free(s->tensors);
    free(s->by_name);
    free(s->meta);
    free(s);
}

static bn_status st_add_shard(bn_st_set *s, const char *path, size_t *idx) {
    if (s->n_shards >= ST_MAX_SHARDS)
        return bn_fail(BN_ERR_FORMAT, "%s: too many shards (limit %d)", path, ST_MAX_SHARDS);
    if (!st_grow((void **)&s->shards, &s->cap_shards, s->n_shards + 1, sizeof *s->shards))
        return BN_ERR_NOMEM;
    char *p = bn_strdup(path);
    if (!p) return BN_ERR_NOMEM;
    memset(&s->shards[s->n_shards], 0, sizeof s->shards[0]);
    s->shards[s->n_shards].path = p;
    *idx = s->n_shards++;
    return BN_OK;
}

/* ------------------------------------------------------------- parsing */

static uint64_t st_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static bool st_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Parse JSON text of exactly `len` bytes (NUL-terminated at text[len]);
 * only whitespace may follow the value. On failure *err_at is the offset
 * (or SIZE_MAX when the document has too many values). */
static cJSON *st_json_parse(const char *text, size_t len, size_t *err_at) {
    if (bn_json_value_bound(text, len) > ST_MAX_JSON_VALUES) {
        *err_at = SIZE_MAX;
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        *err_at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        return NULL;
    }
    const char *p = end ? end : text + len;
    while (p < text + len && st_is_space(*p)) p++;
    if (p < text + len) {
        cJSON_Delete(root);
        *err_at = (size_t)(p - text);
        return NULL;
    }
    return root;
}

typedef enum { ST_NUM_OK, ST_NUM_NOT_NUMBER, ST_NUM_NEGATIVE, ST_NUM_FRACTION, ST_NUM_TOO_BIG } st_num;

static st_num st_json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return ST_NUM_NOT_NUMBER;
    double d = v->valuedouble;
    if (d < 0.0) return ST_NUM_NEGATIVE;
    if (!(d <= ST_MAX_EXACT)) return ST_NUM_TOO_BIG;  /* also catches NaN */
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return ST_NUM_FRACTION;
    *out = u;
    return ST_NUM_OK;
}

static const char *st_num_problem(st_num r) {
    switch (r) {
    case ST_NUM_NOT_NUMBER: return "is not a number";
    case ST_NUM_NEGATIVE: return "is negative";
    case ST_NUM_FRACTION: return "is not an integer";
    case ST_NUM_TOO_BIG: return "is too large";
    case ST_NUM_OK: break;
    }
    return "is invalid";
}

/* Messages quote names with a bounded width so that a hostile 1 MB name
 * cannot crowd out the file name and the problem. */
#define ST_Q "%.160s"

static bn_status st_parse_metadata(bn_st_set *s, const char *file, const cJSON *m, size_t shard) {
    if (!cJSON_IsObject(m)) return bn_fail(BN_ERR_FORMAT, "%s: \"__metadata__\" is not an object", file);
    for (const cJSON *e = m->child; e; e = e->next) {
        if (!e->string) return bn_fail(BN_ERR_FORMAT, "%s: \"__metadata__\" has an entry without a key", file);
        if (!cJSON_IsString(e) || !e->valuestring)
            return bn_fail(BN_ERR_FORMAT, "%s: \"__metadata__\" value of '" ST_Q "' is not a string", file,
                           e->string);
        if (!st_grow((void **)&s->meta, &s->cap_meta, s->n_meta + 1, sizeof *s->meta)) {
            bn_error_prefix("%s", file);
            return BN_ERR_NOMEM;
        }
        st_meta *mm = &s->meta[s->n_meta];
        mm->key = bn_strdup(e->string);
        mm->value = bn_strdup(e->valuestring);
        mm->shard = shard;
        mm->seq = s->n_meta;
        if (!mm->key || !mm->value) {
            free(mm->key);
            free(mm->value);
            return BN_ERR_NOMEM;
        }
        s->n_meta++;
    }
    return BN_OK;
}

/* One tensor entry of a header: validate and append to the set. */
static bn_status st_parse_entry(bn_st_set *s, const char *file, const cJSON *e, const uint8_t *data,
                                uint64_t data_size, size_t shard) {
    const char *name = e->string;
    if (!name || !name[0]) return bn_fail(BN_ERR_FORMAT, "%s: header has a tensor with an empty name", file);
    if (!cJSON_IsObject(e))
        return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': entry is not an object", file, name);

    bn_st_tensor t;
    memset(&t, 0, sizeof t);
    t.shard = (int32_t)shard;

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!dt) return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': missing \"dtype\"", file, name);
    if (!cJSON_IsString(dt) || !dt->valuestring)
        return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': \"dtype\" is not a string", file, name);
    if (!st_dtype_parse(dt->valuestring, &t.dtype))
        return bn_fail(BN_ERR_UNSUPPORTED,
                       "%s: tensor '" ST_Q "': unsupported dtype '%.32s' "
                       "(supported: BF16 F16 F32 F64 U8 I8 I16 I32 I64 BOOL)",
                       file, name, dt->valuestring);

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!sh) return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': missing \"shape\"", file, name);
    if (!cJSON_IsArray(sh))
        return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': \"shape\" is not an array", file, name);
    uint64_t n = 1;
    for (const cJSON *d = sh->child; d; d = d->next) {
        if (t.n_dims == BN_ST_MAX_DIMS)
            return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': more than %d dimensions", file, name,
                           BN_ST_MAX_DIMS);
        uint64_t v;
        st_num r = st_json_u64(d, &v);
        if (r != ST_NUM_OK)
            return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': shape dimension %u %s", file, name,
                           t.n_dims, st_num_problem(r));
        if (!bn_mul_ok(n, v, &n))
            return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': shape element count overflows", file, name);
        t.shape[t.n_dims++] = v;
    }
    t.n_elems = n;
    if (!bn_mul_ok(n, st_dtype_size(t.dtype), &t.nbytes))
        return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': byte size overflows", file, name);

    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!off) return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': missing \"data_offsets\"", file, name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': \"data_offsets\" is not an array [begin, end]",
                       file, name);
    uint64_t begin, end;
    st_num rb = st_json_u64(off->child, &begin);
    if (rb != ST_NUM_OK)
        return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': data_offsets begin %s", file, name,
                       st_num_problem(rb));
    st_num re = st_json_u64(off->child->next, &end);
    if (re != ST_NUM_OK)
        return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': data_offsets end %s", file, name,
                       st_num_problem(re));
    if (begin > end)
        return bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "': data_offsets begin %" PRIu64 " > end %" PRIu64,
                       file, name, begin, end);
    if (end > data_size)
        return bn_fail(BN_ERR_FORMAT,
                       "%s: tensor '" ST_Q "': data_offsets end %" PRIu64
                       " is past the end of the data section (%" PRIu64 " bytes; file truncated?)",
                       file, name, end, data_size);
    if (end - begin != t.nbytes)
        return bn_fail(BN_ERR_FORMAT,
                       "%s: tensor '" ST_Q "': data_offsets span %" PRIu64 " bytes but dtype %s and shape "
                       "need %" PRIu64,
                       file, name, end - begin, st_dtype_name(t.dtype), t.nbytes);
    t.data = data + begin;

    if (!st_grow((void **)&s->tensors, &s->cap_tensors, s->n_tensors + 1, sizeof *s->tensors)) {
        bn_error_prefix("%s", file);
        return BN_ERR_NOMEM;
    }
    t.name = bn_strdup(name);
    if (!t.name) return BN_ERR_NOMEM;
    s->tensors[s->n_tensors++] = t;
    return BN_OK;
}

static int st_cmp_by_data(const void *a, const void *b, void *ctx) {
    const bn_st_tensor *t = ctx;
    const uint8_t *pa = t[*(const size_t *)a].data, *pb = t[*(const size_t *)b].data;
    return pa < pb ? -1 : pa > pb;
}

/* Tensors of one shard [first, n) must not share bytes. */
static bn_status st_check_overlap(bn_st_set *s, size_t first, const char *file) {
    size_t n = s->n_tensors - first;
    if (n < 2) return BN_OK;
    size_t *idx = bn_calloc(n, sizeof *idx);
    if (!idx) return BN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) idx[i] = first + i;
    qsort_r(idx, n, sizeof *idx, st_cmp_by_data, s->tensors);
    bn_status st = BN_OK;
    const uint8_t *max_end = NULL;
    const char *max_name = NULL;
    for (size_t i = 0; i < n; i++) {
        const bn_st_tensor *t = &s->tensors[idx[i]];
        if (t->nbytes == 0) continue;
        if (max_end && t->data < max_end) {
            st = bn_fail(BN_ERR_FORMAT, "%s: tensors '" ST_Q "' and '" ST_Q "' overlap in the data section",
                         file, max_name, t->name);
            break;
        }
        max_end = t->data + t->nbytes;
        max_name = t->name;
    }
    free(idx);
    return st;
}

/* Parse one safetensors image into shard `shard` of the set. */
static bn_status st_parse_shard(bn_st_set *s, const uint8_t *buf, size_t size, size_t shard) {
    const char *file = s->shards[shard].path;
    if (size < 8)
        return bn_fail(BN_ERR_FORMAT, "%s: too small for a safetensors file (%zu bytes; the header length alone is 8)",
                       file, size);
    uint64_t hlen = st_le64(buf);
    if (hlen > ST_MAX_HEADER)
        return bn_fail(BN_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes",
                       file, hlen, ST_MAX_HEADER);
    if (hlen > size - 8)
        return bn_fail(BN_ERR_FORMAT,
                       "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes; truncated?)",
                       file, hlen, size);
    if (hlen < 2) return bn_fail(BN_ERR_FORMAT, "%s: header is empty (length %" PRIu64 ")", file, hlen);

    /* Private NUL-terminated copy: the JSON parser then never reads past
     * the header, whatever the bytes are. */
    char *text = bn_malloc((size_t)hlen + 1);
    if (!text) {
        bn_error_prefix("%s", file);
        return BN_ERR_NOMEM;
    }
    memcpy(text, buf + 8, (size_t)hlen);
    text[hlen] = '\0';
    size_t err_at = 0;
    cJSON *root = st_json_parse(text, (size_t)hlen, &err_at);
    free(text);
    if (!root && err_at == SIZE_MAX)
        return bn_fail(BN_ERR_FORMAT, "%s: header has more than %zu JSON values; refusing to parse it", file,
                       ST_MAX_JSON_VALUES);
    if (!root)
        return bn_fail(BN_ERR_FORMAT, "%s: header is not valid JSON (error at header byte %zu)", file, err_at);

    bn_status st = BN_OK;
    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_size = (uint64_t)size - 8 - hlen;
    size_t first = s->n_tensors;
    bool seen_meta = false;
    if (!cJSON_IsObject(root)) {
        st = bn_fail(BN_ERR_FORMAT, "%s: header is not a JSON object", file);
        goto done;
    }
    for (const cJSON *e = root->child; e && st == BN_OK; e = e->next) {
        if (e->string && !strcmp(e->string, "__metadata__")) {
            if (seen_meta) st = bn_fail(BN_ERR_FORMAT, "%s: header has two \"__metadata__\" entries", file);
            else st = st_parse_metadata(s, file, e, shard);
            seen_meta = true;
        } else {
            st = st_parse_entry(s, file, e, data, data_size, shard);
        }
    }
    if (st == BN_OK) st = st_check_overlap(s, first, file);
done:
    cJSON_Delete(root);
    return st;
}

static int st_cmp_by_name(const void *a, const void *b, void *ctx) {
    const bn_st_tensor *t = ctx;
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    int c = strcmp(t[ia].name, t[ib].name);
    return c ? c : (ia < ib ? -1 : ia > ib);
}

static int st_cmp_meta(const void *a, const void *b) {
    const st_meta *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* After all shards: index names (unique across shards), sort metadata
 * (first shard wins; a key twice in one file is an error). */
static bn_status st_finish(bn_st_set *s) {
    if (s->n_tensors) {
        s->by_name = bn_calloc(s->n_tensors, sizeof *s->by_name);
        if (!s->by_name) return BN_ERR_NOMEM;
        for (size_t i = 0; i < s->n_tensors; i++) s->by_name[i] = i;
        qsort_r(s->by_name, s->n_tensors, sizeof *s->by_name, st_cmp_by_name, s->tensors);
        for (size_t i = 1; i < s->n_tensors; i++) {
            const bn_st_tensor *a = &s->tensors[s->by_name[i - 1]], *b = &s->tensors[s->by_name[i]];
            if (strcmp(a->name, b->name)) continue;
            if (a->shard == b->shard)
                return bn_fail(BN_ERR_FORMAT, "%s: duplicate tensor name '" ST_Q "'", s->shards[a->shard].path,
                               a->name);
            return bn_fail(BN_ERR_FORMAT, "tensor '" ST_Q "' appears in two shards: %s and %s", a->name,
                           s->shards[a->shard].path, s->shards[b->shard].path);
        }
    }
    if (s->n_meta) {
        qsort(s->meta, s->n_meta, sizeof *s->meta, st_cmp_meta);
        size_t w = 0;
        for (size_t i = 0; i < s->n_meta; i++) {
            if (w && !strcmp(s->meta[w - 1].key, s->meta[i].key)) {
                if (s->meta[w - 1].shard == s->meta[i].shard)
                    return bn_fail(BN_ERR_FORMAT, "%s: \"__metadata__\" has key '" ST_Q "' twice",
                                   s->shards[s->meta[i].shard].path, s->meta[i].key);
                free(s->meta[i].key);
                free(s->meta[i].value);
                continue;
            }
            s->meta[w++] = s->meta[i];
        }
        s->n_meta = w;
    }
    return BN_OK;
}

bn_status bn_st_parse(const uint8_t *buf, size_t size, const char *name, bn_st_set **out) {
    if (!out) return bn_fail(BN_ERR_INVALID_ARG, "bn_st_parse: out is NULL");
    *out = NULL;
    if (!buf && size) return bn_fail(BN_ERR_INVALID_ARG, "bn_st_parse: buffer is NULL");
    static const uint8_t empty[1] = {0};
    if (!buf) buf = empty;
    bn_st_set *s = st_set_new();
    if (!s) return BN_ERR_NOMEM;
    size_t idx = 0;
    bn_status st = st_add_shard(s, name ? name : "<memory>", &idx);
    if (st == BN_OK) st = st_parse_shard(s, buf, size, idx);
    if (st == BN_OK) st = st_finish(s);
    if (st != BN_OK) {
        bn_st_free(s);
        return st;
    }
    *out = s;
    return BN_OK;
}

/* Map a file and parse it as the next shard. */
static bn_status st_open_file(bn_st_set *s, const char *path) {
    size_t idx = 0;
    bn_status st = st_add_shard(s, path, &idx);
    if (st != BN_OK) return st;
    st = bn_mmap_open(path, true, &s->shards[idx].map);
    if (st != BN_OK) return st;
    return st_parse_shard(s, s->shards[idx].map.data, s->shards[idx].map.size, idx);
}

static char *st_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = bn_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

/* Regular files only (symlinks followed, as in the Hub cache): opening a
 * FIFO planted in a folder would block. */
static bool st_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* ---------------------------------------------------------- index.json */

typedef struct st_wm {
    const char *tensor;
    const char *file;
} st_wm;

static int st_cmp_wm(const void *a, const void *b) {
    return strcmp(((const st_wm *)a)->tensor, ((const st_wm *)b)->tensor);
}

static int st_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard name from the index must name a file inside the folder. */
static bool st_plain_name(const char *f) {
    if (!f[0] || !strcmp(f, ".") || !strcmp(f, "..")) return false;
    return !strchr(f, '/') && !strchr(f, '\\');
}

static bn_status st_open_index(bn_st_set *s, const char *dir, const char *ipath) {
    char *text = NULL;
    size_t len = 0;
    bn_status st = bn_read_file(ipath, ST_MAX_INDEX, &text, &len);
    if (st != BN_OK) return st;
    size_t err_at = 0;
    cJSON *root = st_json_parse(text, len, &err_at);
    free(text);
    if (!root && err_at == SIZE_MAX)
        return bn_fail(BN_ERR_FORMAT, "%s: more than %zu JSON values; refusing to parse it", ipath,
                       ST_MAX_JSON_VALUES);
    if (!root) return bn_fail(BN_ERR_FORMAT, "%s: not valid JSON (error at byte %zu)", ipath, err_at);

    st_wm *wm = NULL;
    const char **files = NULL;
    size_t n = 0, n_files = 0;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(map)) {
        st = bn_fail(BN_ERR_FORMAT, "%s: no \"weight_map\" object", ipath);
        goto done;
    }
    for (const cJSON *e = map->child; e; e = e->next) n++;
    if (n == 0) {
        st = bn_fail(BN_ERR_FORMAT, "%s: \"weight_map\" is empty", ipath);
        goto done;
    }
    wm = bn_calloc(n, sizeof *wm);
    files = bn_calloc(n, sizeof *files);
    if (!wm || !files) {
        st = BN_ERR_NOMEM;
        goto done;
    }
    size_t i = 0;
    for (const cJSON *e = map->child; e; e = e->next, i++) {
        if (!e->string || !e->string[0]) {
            st = bn_fail(BN_ERR_FORMAT, "%s: \"weight_map\" has an empty tensor name", ipath);
            goto done;
        }
        if (!cJSON_IsString(e) || !e->valuestring) {
            st = bn_fail(BN_ERR_FORMAT, "%s: \"weight_map\" entry '" ST_Q "' is not a file name string", ipath,
                         e->string);
            goto done;
        }
        if (!st_plain_name(e->valuestring)) {
            st = bn_fail(BN_ERR_FORMAT,
                         "%s: tensor '" ST_Q "' maps to '" ST_Q "', which is not a plain file name in the folder",
                         ipath, e->string, e->valuestring);
            goto done;
        }
        wm[i].tensor = e->string;
        wm[i].file = e->valuestring;
        files[i] = e->valuestring;
    }
    qsort(wm, n, sizeof *wm, st_cmp_wm);
    for (i = 1; i < n; i++)
        if (!strcmp(wm[i - 1].tensor, wm[i].tensor)) {
            st = bn_fail(BN_ERR_FORMAT, "%s: \"weight_map\" lists tensor '" ST_Q "' twice", ipath, wm[i].tensor);
            goto done;
        }
    /* Shards in sorted name order, each opened once. */
    qsort(files, n, sizeof *files, st_cmp_str);
    for (i = 0; i < n; i++)
        if (!n_files || strcmp(files[n_files - 1], files[i])) files[n_files++] = files[i];
    for (i = 0; i < n_files && st == BN_OK; i++) {
        char *p = st_join(dir, files[i]);
        if (!p) {
            st = BN_ERR_NOMEM;
            break;
        }
        if (!st_is_file(p))
            st = bn_fail(BN_ERR_NOT_FOUND, "%s: shard '" ST_Q "' does not exist (or is not a regular file)", ipath,
                         files[i]);
        else st = st_open_file(s, p);
        free(p);
    }
    if (st == BN_OK) st = st_finish(s);
    if (st != BN_OK) goto done;

    /* The index and the shards must agree exactly. */
    for (i = 0; i < n; i++) {
        const bn_st_tensor *t = bn_st_find(s, wm[i].tensor);
        if (!t) {
            st = bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "' is mapped to '" ST_Q "' but that shard lacks it",
                         ipath, wm[i].tensor, wm[i].file);
            goto done;
        }
        const char *sp = s->shards[t->shard].path;
        size_t fl = strlen(wm[i].file), pl = strlen(sp);
        if (pl < fl || strcmp(sp + pl - fl, wm[i].file) || (pl > fl && sp[pl - fl - 1] != '/')) {
            st = bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "' is mapped to '" ST_Q "' but found in %s", ipath,
                         wm[i].tensor, wm[i].file, sp);
            goto done;
        }
    }
    if (s->n_tensors != n) {
        for (i = 0; i < s->n_tensors; i++) {
            st_wm key = {s->tensors[i].name, NULL};
            if (!bsearch(&key, wm, n, sizeof *wm, st_cmp_wm)) {
                st = bn_fail(BN_ERR_FORMAT, "%s: tensor '" ST_Q "' is not listed in %s",
                             s->shards[s->tensors[i].shard].path, s->tensors[i].name, ipath);
                goto done;
            }
        }
    }
done:
    free(wm);
    free(files);
    cJSON_Delete(root);
    return st;
}

static bool st_has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a > b && !strcmp(s + a - b, suf);
}

/* Every regular *.safetensors file of a folder, sorted by name. */
static bn_status st_open_glob(bn_st_set *s, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return bn_fail(BN_ERR_IO, "%s: cannot list folder: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    bn_status st = BN_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!st_has_suffix(de->d_name, ".safetensors") || de->d_name[0] == '.') continue;
        char *full = st_join(dir, de->d_name);
        bool regular = full && st_is_file(full);
        free(full);
        if (!regular) continue;
        if (n >= ST_MAX_SHARDS) {
            st = bn_fail(BN_ERR_FORMAT, "%s: more than %d .safetensors files", dir, ST_MAX_SHARDS);
            break;
        }
        if (!st_grow((void **)&names, &cap, n + 1, sizeof *names)) {
            st = BN_ERR_NOMEM;
            break;
        }
        if (!(names[n] = bn_strdup(de->d_name))) {
            st = BN_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (st == BN_OK && n == 0)
        st = bn_fail(BN_ERR_NOT_FOUND,
                     "%s: no model.safetensors.index.json, model.safetensors or *.safetensors in the folder", dir);
    if (st == BN_OK) qsort(names, n, sizeof *names, st_cmp_str);
    for (size_t i = 0; i < n && st == BN_OK; i++) {
        char *p = st_join(dir, names[i]);
        if (!p) st = BN_ERR_NOMEM;
        else st = st_open_file(s, p);
        free(p);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (st == BN_OK) st = st_finish(s);
    return st;
}

bn_status bn_st_open(const char *path, bn_st_set **out) {
    if (!out) return bn_fail(BN_ERR_INVALID_ARG, "bn_st_open: out is NULL");
    *out = NULL;
    if (!path || !path[0]) return bn_fail(BN_ERR_INVALID_ARG, "bn_st_open: empty path");
    struct stat sb;
    if (stat(path, &sb) != 0) return bn_fail(BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    bn_st_set *s = st_set_new();
    if (!s) return BN_ERR_NOMEM;
    bn_status st;
    if (S_ISDIR(sb.st_mode)) {
        char *ipath = st_join(path, "model.safetensors.index.json");
        char *single = st_join(path, "model.safetensors");
        if (!ipath || !single) st = BN_ERR_NOMEM;
        else if (st_is_file(ipath)) st = st_open_index(s, path, ipath);
        else if (st_is_file(single)) {
            st = st_open_file(s, single);
            if (st == BN_OK) st = st_finish(s);
        } else st = st_open_glob(s, path);
        free(ipath);
        free(single);
    } else if (!S_ISREG(sb.st_mode)) {
        st = bn_fail(BN_ERR_IO, "%s: not a regular file or a folder", path);
    } else {
        st = st_open_file(s, path);
        if (st == BN_OK) st = st_finish(s);
    }
    if (st != BN_OK) {
        bn_st_free(s);
        return st;
    }
    *out = s;
    return BN_OK;
}

/* ------------------------------------------------------------- queries */

size_t bn_st_count(const bn_st_set *s) { return s ? s->n_tensors : 0; }

const bn_st_tensor *bn_st_at(const bn_st_set *s, size_t i) {
    return s && i < s->n_tensors ? &s->tensors[i] : NULL;
}

const bn_st_tensor *bn_st_find(const bn_st_set *s, const char *name) {
    if (!s || !name || !s->by_name) return NULL;
    size_t lo = 0, hi = s->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const bn_st_tensor *t = &s->tensors[s->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *bn_st_metadata(const bn_st_set *s, const char *key) {
    if (!s || !key) return NULL;
    size_t lo = 0, hi = s->n_meta;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, s->meta[mid].key);
        if (c == 0) return s->meta[mid].value;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

size_t bn_st_metadata_count(const bn_st_set *s) { return s ? s->n_meta : 0; }

bool bn_st_metadata_at(const bn_st_set *s, size_t i, const char **key, const char **value) {
    if (!s || i >= s->n_meta) return false;
    if (key) *key = s->meta[i].key;
    if (value) *value = s->meta[i].value;
    return true;
}

size_t bn_st_shard_count(const bn_st_set *s) { return s ? s->n_shards : 0; }

const char *bn_st_shard_path(const bn_st_set *s, size_t i) {
    return s && i < s->n_shards ? s->shards[i].path : NULL;
}

/* -------------------------------------------------------------- writer */

typedef struct st_wtensor {
    char          *name;
    bn_type        dtype;
    uint32_t       n_dims;
    uint64_t       shape[BN_ST_MAX_DIMS];
    const uint8_t *data;
    uint64_t       nbytes;
} st_wtensor;

struct bn_st_writer {
    st_wtensor *t;
    size_t      n, cap;
    st_meta    *meta;
    size_t      n_meta, cap_meta;
};

bn_status bn_st_writer_create(bn_st_writer **out) {
    if (!out) return bn_fail(BN_ERR_INVALID_ARG, "bn_st_writer_create: out is NULL");
    *out = bn_calloc(1, sizeof **out);
    return *out ? BN_OK : BN_ERR_NOMEM;
}

void bn_st_writer_free(bn_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->t);
    free(w->meta);
    free(w);
}

bn_status bn_st_writer_add(bn_st_writer *w, const char *name, bn_type dtype, uint32_t n_dims,
                           const uint64_t *shape, const void *data, uint64_t nbytes) {
    if (!w || !name) return bn_fail(BN_ERR_INVALID_ARG, "bn_st_writer_add: NULL writer or name");
    if (!name[0] || !strcmp(name, "__metadata__"))
        return bn_fail(BN_ERR_INVALID_ARG, "safetensors writer: invalid tensor name '%s'", name);
    if (!st_dtype_name(dtype))
        return bn_fail(BN_ERR_UNSUPPORTED, "safetensors writer: tensor '" ST_Q "': type %s has no safetensors dtype",
                       name, bn_type_name(dtype));
    if (n_dims > BN_ST_MAX_DIMS || (n_dims && !shape))
        return bn_fail(BN_ERR_INVALID_ARG, "safetensors writer: tensor '" ST_Q "': bad shape (%u dims)", name,
                       n_dims);
    uint64_t n = 1, want;
    for (uint32_t i = 0; i < n_dims; i++)
        if (!bn_mul_ok(n, shape[i], &n))
            return bn_fail(BN_ERR_INVALID_ARG, "safetensors writer: tensor '" ST_Q "': shape overflows", name);
    if (!bn_mul_ok(n, st_dtype_size(dtype), &want) || want != nbytes)
        return bn_fail(BN_ERR_INVALID_ARG,
                       "safetensors writer: tensor '" ST_Q "': %" PRIu64 " bytes given, shape and dtype need %" PRIu64,
                       name, nbytes, want);
    if (nbytes && !data)
        return bn_fail(BN_ERR_INVALID_ARG, "safetensors writer: tensor '" ST_Q "': data is NULL", name);
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return bn_fail(BN_ERR_INVALID_ARG, "safetensors writer: tensor '" ST_Q "' added twice", name);
    if (!st_grow((void **)&w->t, &w->cap, w->n + 1, sizeof *w->t)) return BN_ERR_NOMEM;
    st_wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = bn_strdup(name))) return BN_ERR_NOMEM;
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (uint32_t i = 0; i < n_dims; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    w->n++;
    return BN_OK;
}

bn_status bn_st_writer_add_metadata(bn_st_writer *w, const char *key, const char *value) {
    if (!w || !key || !value) return bn_fail(BN_ERR_INVALID_ARG, "bn_st_writer_add_metadata: NULL argument");
    for (size_t i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[i].key, key))
            return bn_fail(BN_ERR_INVALID_ARG, "safetensors writer: metadata key '" ST_Q "' added twice", key);
    if (!st_grow((void **)&w->meta, &w->cap_meta, w->n_meta + 1, sizeof *w->meta)) return BN_ERR_NOMEM;
    st_meta *m = &w->meta[w->n_meta];
    memset(m, 0, sizeof *m);
    m->key = bn_strdup(key);
    m->value = bn_strdup(value);
    if (!m->key || !m->value) {
        free(m->key);
        free(m->value);
        return BN_ERR_NOMEM;
    }
    w->n_meta++;
    return BN_OK;
}

/* Integers go in as raw JSON text: cJSON's numbers are doubles and would
 * print large offsets in exponent form. */
static cJSON *st_raw_u64(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_CreateRaw(buf);
}

static char *st_build_header(const bn_st_writer *w) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    bool ok = true;
    if (w->n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (size_t i = 0; ok && i < w->n_meta; i++)
            ok = cJSON_AddStringToObject(m, w->meta[i].key, w->meta[i].value) != NULL;
    }
    uint64_t off = 0;
    for (size_t i = 0; ok && i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = shape ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        ok = offs && cJSON_AddStringToObject(e, "dtype", st_dtype_name(t->dtype));
        for (uint32_t d = 0; ok && d < t->n_dims; d++) ok = cJSON_AddItemToArray(shape, st_raw_u64(t->shape[d]));
        uint64_t end = 0;
        ok = ok && bn_add_ok(off, t->nbytes, &end);
        ok = ok && cJSON_AddItemToArray(offs, st_raw_u64(off)) && cJSON_AddItemToArray(offs, st_raw_u64(end));
        off = end;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

static bn_status st_write_all(int fd, const void *buf, uint64_t n, const char *path) {
    const uint8_t *p = buf;
    while (n) {
        size_t chunk = n > ((uint64_t)1 << 30) ? ((size_t)1 << 30) : (size_t)n;
        ssize_t r = write(fd, p, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return bn_fail(BN_ERR_IO, "%s: write failed: %s", path, r < 0 ? strerror(errno) : "no progress");
        p += r;
        n -= (uint64_t)r;
    }
    return BN_OK;
}

/* fsync the folder so that the rename itself is durable. */
static void st_sync_dir(const char *path) {
    char *dir = bn_strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        if (slash == dir) slash[1] = '\0';
        else *slash = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

bn_status bn_st_writer_write(bn_st_writer *w, const char *path) {
    if (!w || !path || !path[0]) return bn_fail(BN_ERR_INVALID_ARG, "bn_st_writer_write: NULL writer or path");
    char *json = st_build_header(w);
    if (!json) return bn_fail(BN_ERR_NOMEM, "%s: cannot build the safetensors header", path);
    size_t jlen = strlen(json);
    /* Pad with spaces so the data section starts 8-byte aligned. */
    size_t pad = (8 - (jlen % 8)) % 8;
    uint64_t hlen = (uint64_t)jlen + pad;
    if (hlen > ST_MAX_HEADER) {
        cJSON_free(json);
        return bn_fail(BN_ERR_INVALID_ARG, "%s: header of %" PRIu64 " bytes exceeds the safetensors limit", path, hlen);
    }
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)(hlen >> (8 * i));
    static const char spaces[8] = "        ";

    size_t plen = strlen(path);
    char *tmp = bn_malloc(plen + 16);
    if (!tmp) {
        cJSON_free(json);
        return BN_ERR_NOMEM;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        bn_status st = bn_fail(BN_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        cJSON_free(json);
        free(tmp);
        return st;
    }
    (void)fchmod(fd, 0644);
    bn_status st = st_write_all(fd, lenbuf, 8, tmp);
    if (st == BN_OK) st = st_write_all(fd, json, jlen, tmp);
    if (st == BN_OK) st = st_write_all(fd, spaces, pad, tmp);
    for (size_t i = 0; i < w->n && st == BN_OK; i++) st = st_write_all(fd, w->t[i].data, w->t[i].nbytes, tmp);
    cJSON_free(json);
    if (st == BN_OK && fsync(fd) != 0) st = bn_fail(BN_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == BN_OK) st = bn_fail(BN_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (st == BN_OK && rename(tmp, path) != 0)
        st = bn_fail(BN_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (st != BN_OK) unlink(tmp);
    else st_sync_dir(path);
    free(tmp);
    return st;
}
