/* gguf.c — GGUF v2/v3 reader: a zero-copy parse of a buffer in memory.
 *
 * Every count, length and offset is checked against the bytes that remain
 * before anything is allocated or dereferenced, so a hostile file can only
 * make us allocate a small multiple of its own size. Strings, scalar arrays
 * and tensor data point into the buffer; only the kv/tensor tables, arrays
 * of strings and nested arrays are allocated (from one arena per handle). */
#include "formats/gguf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host (values are read in place)"
#endif

#define GGUF_MAX_DEPTH     8   /* nested arrays: deeper is refused as hostile */
#define GGUF_DEFAULT_ALIGN 32
/* Smallest possible encodings, used to refuse counts that cannot fit. */
#define GGUF_MIN_KV     14 /* key len 8 + >=1 key byte + type 4 + >=1 value byte */
#define GGUF_MIN_TENSOR 24 /* name len 8 + n_dims 4 + type 4 + offset 8 */

/* ------------------------------------------------------------------ arena */

typedef struct arena_blk {
    struct arena_blk *next;
    size_t            used, cap;
} arena_blk;
#define ARENA_HDR ((sizeof(arena_blk) + 15) & ~(size_t)15)

static void *arena_alloc(arena_blk **head, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_blk *b = *head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (64u << 10) ? n : (64u << 10);
        b = bn_malloc(ARENA_HDR + cap);
        if (!b) return NULL;
        b->next = *head;
        b->used = 0;
        b->cap = cap;
        *head = b;
    }
    void *p = (char *)b + ARENA_HDR + b->used;
    b->used += n;
    return p;
}

static void arena_free(arena_blk *b) {
    while (b) {
        arena_blk *n = b->next;
        free(b);
        b = n;
    }
}

/* ------------------------------------------------------------- name index */

/* Open-addressing hash of entry indices (+1, 0 = empty). Entries are kvs or
 * tensors; both start with their bn_gguf_str name, found at base + i*stride.
 * Needed so that duplicate detection stays linear on files with millions of
 * (hostile) entries. */
typedef struct name_index {
    uint64_t   *slot;
    uint64_t    mask;
    const char *base;
    size_t      stride;
} name_index;

static uint64_t hash_bytes(const char *s, uint64_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static const bn_gguf_str *ni_name(const name_index *ix, uint64_t i) {
    return (const bn_gguf_str *)(const void *)(ix->base + i * ix->stride);
}

static bn_status ni_init(name_index *ix, uint64_t n, const void *base, size_t stride) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap <<= 1; /* n is bounded by the file size */
    ix->slot = bn_calloc(cap, sizeof *ix->slot);
    if (!ix->slot) return BN_ERR_NOMEM;
    ix->mask = cap - 1;
    ix->base = base;
    ix->stride = stride;
    return BN_OK;
}

/* Index of the entry named s, or UINT64_MAX. */
static uint64_t ni_find(const name_index *ix, const char *s, uint64_t n) {
    if (!ix->slot) return UINT64_MAX;
    for (uint64_t h = hash_bytes(s, n) & ix->mask;; h = (h + 1) & ix->mask) {
        uint64_t v = ix->slot[h];
        if (!v) return UINT64_MAX;
        const bn_gguf_str *e = ni_name(ix, v - 1);
        if (e->len == n && memcmp(e->data, s, n) == 0) return v - 1;
    }
}

/* Inserts entry i; returns the index of an earlier entry of the same name
 * (not inserted then), or UINT64_MAX. */
static uint64_t ni_insert(name_index *ix, uint64_t i) {
    const bn_gguf_str *k = ni_name(ix, i);
    for (uint64_t h = hash_bytes(k->data, k->len) & ix->mask;; h = (h + 1) & ix->mask) {
        uint64_t v = ix->slot[h];
        if (!v) {
            ix->slot[h] = i + 1;
            return UINT64_MAX;
        }
        const bn_gguf_str *e = ni_name(ix, v - 1);
        if (e->len == k->len && memcmp(e->data, k->data, k->len) == 0) return v - 1;
    }
}

/* ----------------------------------------------------------------- handle */

struct bn_gguf {
    const uint8_t  *buf;
    size_t          size;
    bn_mmap         map; /* owned when opened by path */
    uint32_t        version, alignment;
    bool            bitnet;
    uint64_t        n_kv, n_tensors, data_offset;
    bn_gguf_kv     *kv;
    bn_gguf_tensor *tensors;
    name_index      kv_ix, t_ix;
    arena_blk      *arena;
};

/* ------------------------------------------------------------ value types */

size_t bn_gguf_vtype_size(bn_gguf_vtype t) {
    switch (t) {
    case BN_GGUF_UINT8: case BN_GGUF_INT8: case BN_GGUF_BOOL: return 1;
    case BN_GGUF_UINT16: case BN_GGUF_INT16: return 2;
    case BN_GGUF_UINT32: case BN_GGUF_INT32: case BN_GGUF_FLOAT32: return 4;
    case BN_GGUF_UINT64: case BN_GGUF_INT64: case BN_GGUF_FLOAT64: return 8;
    case BN_GGUF_STRING: case BN_GGUF_ARRAY: return 0;
    }
    return 0;
}

const char *bn_gguf_vtype_name(bn_gguf_vtype t) {
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static bool vtype_valid(uint32_t t) { return t <= BN_GGUF_FLOAT64; }

bool bn_gguf_arch_is_bitnet(const char *arch, size_t len) {
    /* "bitnet-b1.58" (2B4T), "bitnet-25" (older uploads), "bitnet" (1bitLLM) */
    return arch && len >= 6 && memcmp(arch, "bitnet", 6) == 0;
}

/* ------------------------------------------------------------ tensor types */

/* ggml ids known to upstream ggml or bitnet.cpp, for readable messages. */
static const char *ggml_id_name(uint32_t id, bool bitnet) {
    static const char *const up[] = {
        "F32", "F16", "Q4_0", "Q4_1", NULL, NULL, "Q5_0", "Q5_1", "Q8_0", "Q8_1",
        "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
        "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
        "BF16", NULL, NULL, NULL, "TQ1_0", "TQ2_0", NULL, NULL, NULL, "MXFP4"};
    if (bitnet && id >= 36 && id <= 39) {
        static const char *const bn[] = {"I2_S", "I8_S", "TL1", "TL2"};
        return bn[id - 36];
    }
    return id < sizeof up / sizeof up[0] ? up[id] : NULL;
}

const char *bn_gguf_type_name(uint32_t type, bool bitnet) {
    const char *n = ggml_id_name(type, bitnet);
    return n ? n : "unknown";
}

/* A type id this engine can size: in the type table and GGUF-visible, with
 * 36 (I2_S) only in bitnet files. */
static bool type_usable(uint32_t id, bool bitnet) {
    if (id >= BN_TYPE_U8) return false; /* internal-only ids */
    if (id == BN_TYPE_I2_S && !bitnet) return false;
    return bn_type_get((bn_type)id) != NULL;
}

/* ------------------------------------------------------------------ reader */

typedef struct rd {
    const uint8_t *b;
    size_t         n, pos;
    const char    *file;
    bn_gguf       *g;
    /* error context: "header", "key #i 'name'" or "tensor #i 'name'" */
    const char        *sect;
    uint64_t           idx;
    const bn_gguf_str *ename;
} rd;

/* Writes s into out as printable text (at most 80 bytes shown). */
static void printable(char *out, size_t cap, const char *s, uint64_t n) {
    size_t o = 0;
    for (uint64_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 80) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

static bn_status ferr_st(const rd *r, bn_status st, const char *fmt, ...) BN_PRINTF(3, 4);
static bn_status ferr_st(const rd *r, bn_status st, const char *fmt, ...) {
    char msg[640], where[512], nm[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    where[0] = '\0';
    if (r->ename) {
        printable(nm, sizeof nm, r->ename->data, r->ename->len);
        snprintf(where, sizeof where, "%s #%" PRIu64 " '%s': ", r->sect, r->idx, nm);
    } else if (r->sect) {
        snprintf(where, sizeof where, "%s #%" PRIu64 ": ", r->sect, r->idx);
    }
    return bn_fail(st, "%s: %s%s", r->file, where, msg);
}
#define ferr(r, ...) ferr_st((r), BN_ERR_FORMAT, __VA_ARGS__)

static bn_status need(rd *r, uint64_t k, const char *item) {
    if (k > r->n - r->pos)
        return ferr(r, "%s (%" PRIu64 " bytes at offset %zu) extends past end of file (%zu bytes)", item, k,
                    r->pos, r->n);
    return BN_OK;
}

static bn_status rd_u32(rd *r, const char *item, uint32_t *out) {
    bn_status s = need(r, 4, item);
    if (s) return s;
    memcpy(out, r->b + r->pos, 4);
    r->pos += 4;
    return BN_OK;
}

static bn_status rd_u64(rd *r, const char *item, uint64_t *out) {
    bn_status s = need(r, 8, item);
    if (s) return s;
    memcpy(out, r->b + r->pos, 8);
    r->pos += 8;
    return BN_OK;
}

static bn_status rd_str(rd *r, const char *item, bn_gguf_str *out) {
    uint64_t len;
    bn_status s = rd_u64(r, item, &len);
    if (s) return s;
    if ((s = need(r, len, item))) return s;
    out->len = len;
    out->data = (const char *)(r->b + r->pos);
    r->pos += (size_t)len;
    return BN_OK;
}

static void *rd_alloc(rd *r, uint64_t n, size_t sz) {
    uint64_t bytes;
    if (!bn_mul_ok(n, sz, &bytes) || bytes > BN_MAX_ALLOC) {
        ferr_st(r, BN_ERR_NOMEM, "refusing to allocate %" PRIu64 " x %zu bytes", n, sz);
        return NULL;
    }
    void *p = arena_alloc(&r->g->arena, (size_t)bytes);
    if (!p) ferr_st(r, BN_ERR_NOMEM, "out of memory allocating %" PRIu64 " bytes", bytes);
    return p;
}

static bn_status parse_value(rd *r, uint32_t type, int depth, bn_gguf_value *out);

/* Array body: element type, count, elements. depth counts array levels. */
static bn_status parse_array(rd *r, int depth, bn_gguf_value *out) {
    if (depth > GGUF_MAX_DEPTH)
        return ferr(r, "arrays nested deeper than %d levels (at offset %zu)", GGUF_MAX_DEPTH, r->pos);
    uint32_t et;
    uint64_t n;
    bn_status s;
    if ((s = rd_u32(r, "array element type", &et)) || (s = rd_u64(r, "array length", &n))) return s;
    if (!vtype_valid(et)) return ferr(r, "array element type %" PRIu32 " is not a GGUF value type", et);
    out->type = BN_GGUF_ARRAY;
    out->v.arr.elem_type = (bn_gguf_vtype)et;
    out->v.arr.n = n;
    out->v.arr.data = NULL;
    size_t rem = r->n - r->pos;
    size_t esz = bn_gguf_vtype_size((bn_gguf_vtype)et);
    if (esz) {
        uint64_t bytes;
        if (!bn_mul_ok(n, esz, &bytes))
            return ferr(r, "array of %" PRIu64 " %s overflows", n, bn_gguf_vtype_name((bn_gguf_vtype)et));
        if ((s = need(r, bytes, "array data"))) return s;
        out->v.arr.data = r->b + r->pos;
        r->pos += (size_t)bytes;
        return BN_OK;
    }
    /* strings take >= 8 bytes each, nested arrays >= 12: refuse counts that
     * cannot fit before allocating their tables */
    uint64_t min = et == BN_GGUF_STRING ? 8 : 12;
    if (n > rem / min)
        return ferr(r, "array of %" PRIu64 " %ss cannot fit in the %zu bytes left at offset %zu", n,
                    bn_gguf_vtype_name((bn_gguf_vtype)et), rem, r->pos);
    if (n == 0) return BN_OK;
    if (et == BN_GGUF_STRING) {
        bn_gguf_str *v = rd_alloc(r, n, sizeof *v);
        if (!v) return BN_ERR_NOMEM;
        for (uint64_t i = 0; i < n; i++)
            if ((s = rd_str(r, "array string", &v[i]))) return s;
        out->v.arr.data = v;
        return BN_OK;
    }
    bn_gguf_value *v = rd_alloc(r, n, sizeof *v);
    if (!v) return BN_ERR_NOMEM;
    for (uint64_t i = 0; i < n; i++)
        if ((s = parse_array(r, depth + 1, &v[i]))) return s;
    out->v.arr.data = v;
    return BN_OK;
}

static bn_status parse_value(rd *r, uint32_t type, int depth, bn_gguf_value *out) {
    if (!vtype_valid(type)) return ferr(r, "value type %" PRIu32 " is not a GGUF value type", type);
    memset(out, 0, sizeof *out);
    out->type = (bn_gguf_vtype)type;
    if (type == BN_GGUF_STRING) return rd_str(r, "string", &out->v.str);
    if (type == BN_GGUF_ARRAY) return parse_array(r, depth + 1, out);
    size_t sz = bn_gguf_vtype_size(out->type);
    bn_status s = need(r, sz, "value");
    if (s) return s;
    if (type == BN_GGUF_BOOL) out->v.b = r->b[r->pos] != 0;
    else memcpy(&out->v, r->b + r->pos, sz); /* little-endian: low bytes first */
    r->pos += sz;
    return BN_OK;
}

static bn_status parse_kvs(rd *r) {
    bn_gguf *g = r->g;
    bn_status s;
    r->sect = "key";
    for (uint64_t i = 0; i < g->n_kv; i++) {
        bn_gguf_kv *kv = &g->kv[i];
        r->idx = i;
        r->ename = NULL;
        if ((s = rd_str(r, "key name", &kv->key))) return s;
        if (kv->key.len == 0) return ferr(r, "empty key name");
        r->ename = &kv->key;
        uint32_t type;
        if ((s = rd_u32(r, "value type", &type))) return s;
        if ((s = parse_value(r, type, 0, &kv->value))) return s;
        uint64_t prev = ni_insert(&g->kv_ix, i);
        if (prev != UINT64_MAX) return ferr(r, "duplicate key (also key #%" PRIu64 ")", prev);
    }
    r->sect = NULL;
    r->ename = NULL;

    g->alignment = GGUF_DEFAULT_ALIGN;
    const bn_gguf_value *al = bn_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != BN_GGUF_UINT32)
            return ferr(r, "general.alignment has type %s, expected u32", bn_gguf_vtype_name(al->type));
        if (al->v.u32 == 0 || (al->v.u32 & (al->v.u32 - 1)))
            return ferr(r, "general.alignment = %" PRIu32 " is not a power of two", al->v.u32);
        g->alignment = al->v.u32;
    }
    const bn_gguf_value *arch = bn_gguf_find(g, "general.architecture");
    if (arch) {
        if (arch->type != BN_GGUF_STRING)
            return ferr(r, "general.architecture has type %s, expected string", bn_gguf_vtype_name(arch->type));
        g->bitnet = bn_gguf_arch_is_bitnet(arch->v.str.data, (size_t)arch->v.str.len);
    }
    return BN_OK;
}

static bn_status check_type(rd *r, const bn_gguf_tensor *t) {
    bn_gguf *g = r->g;
    if (type_usable(t->type, g->bitnet)) return BN_OK;
    const char *known = ggml_id_name(t->type, g->bitnet);
    if (t->type == BN_TYPE_I2_S && !g->bitnet) {
        char arch[120] = "(none)";
        const bn_gguf_value *a = bn_gguf_find(g, "general.architecture");
        if (a) printable(arch, sizeof arch, a->v.str.data, a->v.str.len);
        return ferr(r, "type id 36 is not a ggml type; it means I2_S only in bitnet.cpp files, "
                       "but general.architecture is '%s'", arch);
    }
    if (known)
        return ferr_st(r, BN_ERR_UNSUPPORTED, "tensor type %s (id %" PRIu32 ") is not supported", known, t->type);
    return ferr(r, "unknown tensor type id %" PRIu32, t->type);
}

static bn_status parse_tensor_infos(rd *r) {
    bn_gguf *g = r->g;
    bn_status s;
    r->sect = "tensor";
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        bn_gguf_tensor *t = &g->tensors[i];
        r->idx = i;
        r->ename = NULL;
        if ((s = rd_str(r, "tensor name", &t->name))) return s;
        r->ename = &t->name;
        if ((s = rd_u32(r, "dimension count", &t->n_dims))) return s;
        if (t->n_dims > BN_GGUF_MAX_DIMS)
            return ferr(r, "%" PRIu32 " dimensions (at most %d supported)", t->n_dims, BN_GGUF_MAX_DIMS);
        uint64_t nel = 1;
        for (uint32_t d = 0; d < BN_GGUF_MAX_DIMS; d++) {
            t->ne[d] = 1;
            if (d >= t->n_dims) continue;
            if ((s = rd_u64(r, "dimension", &t->ne[d]))) return s;
            if (t->ne[d] == 0) return ferr(r, "dimension %" PRIu32 " is 0", d);
            /* ggml keeps counts in int64 */
            if (!bn_mul_ok(nel, t->ne[d], &nel) || nel > (uint64_t)INT64_MAX)
                return ferr(r, "element count overflows at dimension %" PRIu32 " (%" PRIu64 ")", d, t->ne[d]);
        }
        if ((s = rd_u32(r, "tensor type", &t->type))) return s;
        if ((s = check_type(r, t))) return s;
        const bn_type_traits *tr = bn_type_get((bn_type)t->type);
        if (t->type != BN_TYPE_I2_S && t->ne[0] % (uint64_t)tr->block_size)
            return ferr(r, "row length %" PRIu64 " is not a multiple of the %s block size %" PRId32, t->ne[0],
                        tr->name, tr->block_size);
        if (!bn_type_nbytes((bn_type)t->type, nel, &t->nbytes))
            return ferr(r, "%" PRIu64 " elements cannot be stored as %s", nel, tr->name);
        if ((s = rd_u64(r, "tensor data offset", &t->offset))) return s;
        uint64_t prev = ni_insert(&g->t_ix, i);
        if (prev != UINT64_MAX) return ferr(r, "duplicate tensor name (also tensor #%" PRIu64 ")", prev);
    }

    /* the data section starts at the next multiple of the alignment */
    g->data_offset = (r->pos + (g->alignment - 1)) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        bn_gguf_tensor *t = &g->tensors[i];
        r->idx = i;
        r->ename = &t->name;
        if (t->offset % g->alignment)
            return ferr(r, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32, t->offset,
                        g->alignment);
        uint64_t start = 0, end = 0;
        bool in_range = bn_add_ok(g->data_offset, t->offset, &start);
        if (!in_range) start = t->offset; /* shown as given when the sum overflows */
        if (!in_range || !bn_add_ok(start, t->nbytes, &end) || end > g->size)
            return ferr(r, "data [offset %" PRIu64 ", %" PRIu64 " bytes] extends past end of file (%zu bytes)", start,
                        t->nbytes, g->size);
        t->data = g->buf + start;
    }
    r->sect = NULL;
    r->ename = NULL;
    return BN_OK;
}

static bn_status parse_header(rd *r) {
    bn_gguf *g = r->g;
    bn_status s;
    if (r->n < 4) return ferr(r, "file is %zu bytes, too short for a GGUF header", r->n);
    if (memcmp(r->b, "GGUF", 4) != 0)
        return ferr(r, "not a GGUF file (magic bytes %02x %02x %02x %02x, expected \"GGUF\")", r->b[0], r->b[1],
                    r->b[2], r->b[3]);
    r->pos = 4;
    if ((s = rd_u32(r, "version", &g->version))) return s;
    if (g->version == 1)
        return ferr_st(r, BN_ERR_UNSUPPORTED,
                       "GGUF version 1 is not supported (it used 32-bit counts); versions 2 and 3 are");
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && (g->version >> 24) <= 3)
            return ferr_st(r, BN_ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
        return ferr(r, "GGUF version %" PRIu32 " is not supported (versions 2 and 3 are)", g->version);
    }
    if ((s = rd_u64(r, "tensor count", &g->n_tensors)) || (s = rd_u64(r, "key-value count", &g->n_kv))) return s;
    /* refuse counts that cannot fit before allocating their tables */
    size_t rem = r->n - r->pos;
    if (g->n_kv > rem / GGUF_MIN_KV)
        return ferr(r, "key-value count %" PRIu64 " cannot fit in the %zu bytes left", g->n_kv, rem);
    if (g->n_tensors > (rem - g->n_kv * GGUF_MIN_KV) / GGUF_MIN_TENSOR)
        return ferr(r, "tensor count %" PRIu64 " cannot fit in the %zu bytes left after %" PRIu64 " keys",
                    g->n_tensors, rem, g->n_kv);
    return BN_OK;
}

bn_status bn_gguf_parse(const uint8_t *buf, size_t size, const char *name, bn_gguf **out) {
    *out = NULL;
    if (!buf && size) return bn_fail(BN_ERR_INVALID_ARG, "bn_gguf_parse: NULL buffer");
    bn_gguf *g = bn_calloc(1, sizeof *g);
    if (!g) return BN_ERR_NOMEM;
    g->buf = buf;
    g->size = size;
    rd r = {.b = buf, .n = size, .file = name ? name : "<memory>", .g = g};
    bn_status s = parse_header(&r);
    if (!s && g->n_kv) {
        g->kv = rd_alloc(&r, g->n_kv, sizeof *g->kv);
        if (!g->kv) s = BN_ERR_NOMEM;
        else s = ni_init(&g->kv_ix, g->n_kv, g->kv, sizeof *g->kv);
    }
    if (!s) s = parse_kvs(&r);
    if (!s && g->n_tensors) {
        g->tensors = rd_alloc(&r, g->n_tensors, sizeof *g->tensors);
        if (!g->tensors) s = BN_ERR_NOMEM;
        else s = ni_init(&g->t_ix, g->n_tensors, g->tensors, sizeof *g->tensors);
    }
    if (!s) s = parse_tensor_infos(&r);
    if (s) {
        if (s == BN_ERR_NOMEM && !strstr(bn_last_error(), r.file)) bn_error_prefix("%s", r.file);
        bn_gguf_free(g);
        return s;
    }
    *out = g;
    return BN_OK;
}

bn_status bn_gguf_open(const char *path, bn_gguf **out) { return bn_gguf_open_ex(path, true, out); }

bn_status bn_gguf_open_ex(const char *path, bool use_mmap, bn_gguf **out) {
    *out = NULL;
    bn_mmap m;
    bn_status s = bn_mmap_open(path, use_mmap, &m);
    if (s) return s;
    s = bn_gguf_parse(m.data, m.size, path, out);
    if (s) {
        bn_mmap_close(&m);
        return s;
    }
    (*out)->map = m;
    return BN_OK;
}

void bn_gguf_free(bn_gguf *g) {
    if (!g) return;
    arena_free(g->arena);
    free(g->kv_ix.slot);
    free(g->t_ix.slot);
    bn_mmap_close(&g->map);
    free(g);
}

/* ---------------------------------------------------------------- queries */

uint32_t bn_gguf_version(const bn_gguf *g) { return g->version; }
uint32_t bn_gguf_alignment(const bn_gguf *g) { return g->alignment; }
uint64_t bn_gguf_n_kv(const bn_gguf *g) { return g->n_kv; }
uint64_t bn_gguf_n_tensors(const bn_gguf *g) { return g->n_tensors; }
uint64_t bn_gguf_data_offset(const bn_gguf *g) { return g->data_offset; }
bool     bn_gguf_is_bitnet(const bn_gguf *g) { return g->bitnet; }

const bn_gguf_kv *bn_gguf_kv_at(const bn_gguf *g, uint64_t i) { return i < g->n_kv ? &g->kv[i] : NULL; }

const bn_gguf_tensor *bn_gguf_tensor_at(const bn_gguf *g, uint64_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const bn_gguf_value *bn_gguf_find(const bn_gguf *g, const char *key) {
    uint64_t i = ni_find(&g->kv_ix, key, strlen(key));
    return i == UINT64_MAX ? NULL : &g->kv[i].value;
}

const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name) {
    uint64_t i = ni_find(&g->t_ix, name, strlen(name));
    return i == UINT64_MAX ? NULL : &g->tensors[i];
}

/* Reads an integer scalar of any width from p as signed/unsigned 64-bit. */
static bool int_at(bn_gguf_vtype t, const void *p, int64_t *si, uint64_t *ui, bool *is_unsigned) {
    *is_unsigned = true;
    switch (t) {
    case BN_GGUF_UINT8: { uint8_t v; memcpy(&v, p, 1); *ui = v; return true; }
    case BN_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *ui = v; return true; }
    case BN_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *ui = v; return true; }
    case BN_GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); *ui = v; return true; }
    default: break;
    }
    *is_unsigned = false;
    switch (t) {
    case BN_GGUF_INT8: { int8_t v; memcpy(&v, p, 1); *si = v; return true; }
    case BN_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *si = v; return true; }
    case BN_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); *si = v; return true; }
    case BN_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); *si = v; return true; }
    default: return false;
    }
}

static bool get_uint(const bn_gguf *g, const char *key, uint64_t max, uint64_t *out) {
    const bn_gguf_value *v = bn_gguf_find(g, key);
    if (!v) return false;
    int64_t si = 0;
    uint64_t ui = 0;
    bool uns;
    if (!int_at(v->type, &v->v, &si, &ui, &uns)) return false;
    if (!uns) {
        if (si < 0) return false;
        ui = (uint64_t)si;
    }
    if (ui > max) return false;
    *out = ui;
    return true;
}

bool bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out) {
    uint64_t v;
    if (!get_uint(g, key, UINT32_MAX, &v)) return false;
    *out = (uint32_t)v;
    return true;
}

bool bn_gguf_get_u64(const bn_gguf *g, const char *key, uint64_t *out) { return get_uint(g, key, UINT64_MAX, out); }

bool bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out) {
    const bn_gguf_value *v = bn_gguf_find(g, key);
    if (!v) return false;
    if (v->type == BN_GGUF_FLOAT32) *out = v->v.f32;
    else if (v->type == BN_GGUF_FLOAT64) *out = (float)v->v.f64;
    else return false;
    return true;
}

bool bn_gguf_get_bool(const bn_gguf *g, const char *key, bool *out) {
    const bn_gguf_value *v = bn_gguf_find(g, key);
    if (!v || v->type != BN_GGUF_BOOL) return false;
    *out = v->v.b;
    return true;
}

bool bn_gguf_get_str(const bn_gguf *g, const char *key, char *buf, size_t cap) {
    const bn_gguf_value *v = bn_gguf_find(g, key);
    if (!v || v->type != BN_GGUF_STRING || cap == 0) return false;
    size_t n = v->v.str.len < cap - 1 ? (size_t)v->v.str.len : cap - 1;
    if (n) memcpy(buf, v->v.str.data, n);
    buf[n] = '\0';
    return true;
}

bool bn_gguf_arr_str(const bn_gguf_value *v, uint64_t i, bn_gguf_str *out) {
    if (!v || v->type != BN_GGUF_ARRAY || v->v.arr.elem_type != BN_GGUF_STRING || i >= v->v.arr.n) return false;
    *out = ((const bn_gguf_str *)v->v.arr.data)[i];
    return true;
}

bool bn_gguf_arr_int(const bn_gguf_value *v, uint64_t i, int64_t *out) {
    if (!v || v->type != BN_GGUF_ARRAY || i >= v->v.arr.n) return false;
    size_t sz = bn_gguf_vtype_size(v->v.arr.elem_type);
    if (!sz) return false;
    int64_t si = 0;
    uint64_t ui = 0;
    bool uns;
    if (!int_at(v->v.arr.elem_type, (const uint8_t *)v->v.arr.data + i * sz, &si, &ui, &uns)) return false;
    if (uns) {
        if (ui > (uint64_t)INT64_MAX) return false;
        si = (int64_t)ui;
    }
    *out = si;
    return true;
}
