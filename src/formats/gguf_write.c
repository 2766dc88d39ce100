/* gguf_write.c — GGUF v3 writer: collect metadata (deep-copied) and tensors
 * (by reference), then write the file atomically (path.tmp, fsync, rename).
 *
 * The layout follows what ggml's own reader demands, so that other GGUF
 * readers accept our files: tensor data in the order of the info table, each
 * tensor at the next multiple of the alignment, padding after every tensor
 * (the last one included), names shorter than 64 bytes, and
 * general.alignment written as u32 whenever it is not the default 32. */
#include "formats/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_MAX_DEPTH      8
#define GGUF_MAX_ALIGN      (1u << 20)
#define GGUF_MAX_NAME       63 /* ggml's GGML_MAX_NAME (64) counts the NUL */

typedef struct wblob {
    struct wblob *next;
} wblob;
#define WBLOB_HDR ((sizeof(wblob) + 15) & ~(size_t)15)

typedef struct wtensor {
    bn_gguf_str name;
    uint32_t    n_dims, type;
    uint64_t    ne[BN_GGUF_MAX_DIMS];
    const void *data;
    uint64_t    nbytes;
} wtensor;

struct bn_gguf_writer {
    wblob      *blobs; /* every deep copy, freed together */
    bn_gguf_kv *kv;
    size_t      n_kv, cap_kv;
    wtensor    *t;
    size_t      n_t, cap_t;
    uint32_t    align;
    bool        align_set;
};

static void *w_alloc(bn_gguf_writer *w, uint64_t n) {
    if (n > BN_MAX_ALLOC) {
        bn_fail(BN_ERR_NOMEM, "gguf writer: refusing to allocate %" PRIu64 " bytes", n);
        return NULL;
    }
    wblob *b = bn_malloc(WBLOB_HDR + (size_t)n);
    if (!b) return NULL;
    b->next = w->blobs;
    w->blobs = b;
    return (char *)b + WBLOB_HDR;
}

static bool grow(void **p, size_t *cap, size_t n, size_t sz) {
    if (n < *cap) return true;
    size_t nc = *cap ? *cap * 2 : 16;
    void *q = realloc(*p, nc * sz);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

bn_status bn_gguf_writer_create(bn_gguf_writer **out) {
    *out = bn_calloc(1, sizeof **out);
    if (!*out) return BN_ERR_NOMEM;
    (*out)->align = 32;
    return BN_OK;
}

void bn_gguf_writer_free(bn_gguf_writer *w) {
    if (!w) return;
    for (wblob *b = w->blobs; b;) {
        wblob *n = b->next;
        free(b);
        b = n;
    }
    free(w->kv);
    free(w->t);
    free(w);
}

void bn_gguf_writer_set_alignment(bn_gguf_writer *w, uint32_t align) {
    w->align = align; /* validated when writing */
    w->align_set = true;
}

static bn_status copy_str(bn_gguf_writer *w, const bn_gguf_str *src, bn_gguf_str *dst) {
    if (src->len && !src->data) return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: string of %" PRIu64 " bytes has no data", src->len);
    char *p = w_alloc(w, src->len + 1);
    if (!p) return BN_ERR_NOMEM;
    if (src->len) memcpy(p, src->data, (size_t)src->len);
    p[src->len] = '\0';
    dst->len = src->len;
    dst->data = p;
    return BN_OK;
}

/* Deep copy of an array body (elements and nested arrays). */
static bn_status copy_array(bn_gguf_writer *w, const bn_gguf_value *src, int depth, bn_gguf_value *dst) {
    if (depth > GGUF_MAX_DEPTH)
        return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: arrays nested deeper than %d levels", GGUF_MAX_DEPTH);
    bn_gguf_vtype et = src->v.arr.elem_type;
    uint64_t n = src->v.arr.n;
    if ((unsigned)et > BN_GGUF_FLOAT64)
        return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: array element type %u is not a GGUF value type", (unsigned)et);
    dst->type = BN_GGUF_ARRAY;
    dst->v.arr.elem_type = et;
    dst->v.arr.n = n;
    dst->v.arr.data = NULL;
    if (n == 0) return BN_OK;
    if (!src->v.arr.data) return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: array of %" PRIu64 " elements has no data", n);
    size_t esz = bn_gguf_vtype_size(et);
    size_t unit = esz ? esz : et == BN_GGUF_STRING ? sizeof(bn_gguf_str) : sizeof(bn_gguf_value);
    uint64_t bytes;
    if (!bn_mul_ok(n, unit, &bytes)) return bn_fail(BN_ERR_NOMEM, "gguf writer: array of %" PRIu64 " elements overflows", n);
    void *p = w_alloc(w, bytes);
    if (!p) return BN_ERR_NOMEM;
    dst->v.arr.data = p;
    bn_status s;
    if (esz) {
        memcpy(p, src->v.arr.data, (size_t)bytes);
    } else if (et == BN_GGUF_STRING) {
        const bn_gguf_str *a = src->v.arr.data;
        for (uint64_t i = 0; i < n; i++)
            if ((s = copy_str(w, &a[i], &((bn_gguf_str *)p)[i]))) return s;
    } else {
        const bn_gguf_value *a = src->v.arr.data;
        for (uint64_t i = 0; i < n; i++) {
            if (a[i].type != BN_GGUF_ARRAY)
                return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: element %" PRIu64 " of an array of arrays has type %s",
                               i, bn_gguf_vtype_name(a[i].type));
            if ((s = copy_array(w, &a[i], depth + 1, &((bn_gguf_value *)p)[i]))) return s;
        }
    }
    return BN_OK;
}

bn_status bn_gguf_writer_add_kv(bn_gguf_writer *w, const char *key, const bn_gguf_value *v) {
    size_t klen = key ? strlen(key) : 0;
    if (!klen) return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: empty key");
    for (size_t i = 0; i < w->n_kv; i++)
        if (w->kv[i].key.len == klen && memcmp(w->kv[i].key.data, key, klen) == 0)
            return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: duplicate key '%s'", key);
    if ((unsigned)v->type > BN_GGUF_FLOAT64)
        return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: key '%s': value type %u is not a GGUF value type", key,
                       (unsigned)v->type);
    if (!grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv))
        return bn_fail(BN_ERR_NOMEM, "gguf writer: out of memory");
    bn_gguf_kv kv;
    memset(&kv, 0, sizeof kv);
    bn_gguf_str ks = {klen, key};
    bn_status s = copy_str(w, &ks, &kv.key);
    if (s) return s;
    if (v->type == BN_GGUF_STRING) s = copy_str(w, &v->v.str, &kv.value.v.str);
    else if (v->type == BN_GGUF_ARRAY) s = copy_array(w, v, 1, &kv.value);
    else kv.value.v = v->v;
    if (s) {
        bn_error_prefix("gguf writer: key '%s'", key);
        return s;
    }
    kv.value.type = v->type;
    w->kv[w->n_kv++] = kv;
    return BN_OK;
}

bn_status bn_gguf_writer_add_u32(bn_gguf_writer *w, const char *key, uint32_t v) {
    bn_gguf_value val = {.type = BN_GGUF_UINT32, .v.u32 = v};
    return bn_gguf_writer_add_kv(w, key, &val);
}

bn_status bn_gguf_writer_add_f32(bn_gguf_writer *w, const char *key, float v) {
    bn_gguf_value val = {.type = BN_GGUF_FLOAT32, .v.f32 = v};
    return bn_gguf_writer_add_kv(w, key, &val);
}

bn_status bn_gguf_writer_add_str(bn_gguf_writer *w, const char *key, const char *v) {
    bn_gguf_value val = {.type = BN_GGUF_STRING, .v.str = {v ? strlen(v) : 0, v}};
    return bn_gguf_writer_add_kv(w, key, &val);
}

bn_status bn_gguf_writer_add_str_arr(bn_gguf_writer *w, const char *key, const char *const *v,
                                     const uint64_t *lens, uint64_t n) {
    uint64_t bytes;
    if (!bn_mul_ok(n, sizeof(bn_gguf_str), &bytes) || bytes > BN_MAX_ALLOC)
        return bn_fail(BN_ERR_NOMEM, "gguf writer: key '%s': %" PRIu64 " strings is too many", key, n);
    bn_gguf_str *tmp = n ? bn_malloc((size_t)bytes) : NULL;
    if (n && !tmp) return BN_ERR_NOMEM;
    for (uint64_t i = 0; i < n; i++) {
        tmp[i].data = v[i];
        tmp[i].len = lens ? lens[i] : v[i] ? strlen(v[i]) : 0;
    }
    bn_gguf_value val = {.type = BN_GGUF_ARRAY, .v.arr = {BN_GGUF_STRING, n, tmp}};
    bn_status s = bn_gguf_writer_add_kv(w, key, &val);
    free(tmp);
    return s;
}

bn_status bn_gguf_writer_add_arr(bn_gguf_writer *w, const char *key, bn_gguf_vtype elem, const void *data,
                                 uint64_t n) {
    bn_gguf_value val = {.type = BN_GGUF_ARRAY, .v.arr = {elem, n, data}};
    return bn_gguf_writer_add_kv(w, key, &val);
}

bn_status bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                    const uint64_t *ne, const void *data, uint64_t nbytes) {
    size_t len = name ? strlen(name) : 0;
    if (!len || len > GGUF_MAX_NAME)
        return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: tensor name '%s' must be 1 to %d bytes long", name ? name : "",
                       GGUF_MAX_NAME);
    for (size_t i = 0; i < w->n_t; i++)
        if (w->t[i].name.len == len && memcmp(w->t[i].name.data, name, len) == 0)
            return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: duplicate tensor name '%s'", name);
    if (n_dims < 1 || n_dims > BN_GGUF_MAX_DIMS)
        return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: tensor '%s': %" PRIu32 " dimensions (1 to %d allowed)", name,
                       n_dims, BN_GGUF_MAX_DIMS);
    const bn_type_traits *tr = type < BN_TYPE_U8 ? bn_type_get((bn_type)type) : NULL;
    if (!tr)
        return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: tensor '%s': type id %" PRIu32 " is not a GGUF tensor type",
                       name, type);
    wtensor t = {.n_dims = n_dims, .type = type, .data = data, .nbytes = nbytes};
    uint64_t nel = 1;
    for (uint32_t d = 0; d < BN_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (!t.ne[d] || !bn_mul_ok(nel, t.ne[d], &nel) || nel > (uint64_t)INT64_MAX)
            return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: tensor '%s': dimension %" PRIu32 " (%" PRIu64
                           ") is 0 or overflows the element count", name, d, t.ne[d]);
    }
    uint64_t want;
    if ((type != BN_TYPE_I2_S && t.ne[0] % (uint64_t)tr->block_size) || !bn_type_nbytes((bn_type)type, nel, &want))
        return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: tensor '%s': shape does not fit %s blocks of %" PRId32, name,
                       tr->name, tr->block_size);
    if (want != nbytes)
        return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: tensor '%s': %" PRIu64 " bytes given, %s x %" PRIu64
                       " needs %" PRIu64, name, nbytes, tr->name, nel, want);
    if (nbytes && !data) return bn_fail(BN_ERR_INVALID_ARG, "gguf writer: tensor '%s' has no data", name);
    if (!grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t))
        return bn_fail(BN_ERR_NOMEM, "gguf writer: out of memory");
    bn_gguf_str ns = {len, name};
    bn_status s = copy_str(w, &ns, &t.name);
    if (s) return s;
    w->t[w->n_t++] = t;
    return BN_OK;
}

/* ------------------------------------------------------------- the output */

typedef struct wout {
    int         fd;
    const char *path;
    bn_status   st;
    size_t      n;
    uint64_t    total; /* bytes accepted so far, for the padding */
    uint8_t     buf[1 << 16];
} wout;

static void out_flush(wout *o) {
    size_t done = 0;
    while (o->st == BN_OK && done < o->n) {
        ssize_t r = write(o->fd, o->buf + done, o->n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) o->st = bn_fail(BN_ERR_IO, "%s: write failed: %s", o->path, r < 0 ? strerror(errno) : "no progress");
        else done += (size_t)r;
    }
    o->n = 0;
}

static void out_bytes(wout *o, const void *p, uint64_t n) {
    const uint8_t *s = p;
    while (n && o->st == BN_OK) {
        if (o->n == sizeof o->buf) out_flush(o);
        size_t k = sizeof o->buf - o->n;
        if (k > n) k = (size_t)n;
        memcpy(o->buf + o->n, s, k);
        o->n += k;
        o->total += k;
        s += k;
        n -= k;
    }
}

static void out_zeros(wout *o, uint64_t n) {
    static const uint8_t z[256];
    while (n) {
        uint64_t k = n < sizeof z ? n : sizeof z;
        out_bytes(o, z, k);
        n -= k;
    }
}

static void out_u32(wout *o, uint32_t v) { out_bytes(o, &v, 4); } /* little-endian host */
static void out_u64(wout *o, uint64_t v) { out_bytes(o, &v, 8); }
static void out_str(wout *o, const bn_gguf_str *s) {
    out_u64(o, s->len);
    out_bytes(o, s->data, s->len);
}

static void out_array(wout *o, const bn_gguf_value *v) {
    out_u32(o, (uint32_t)v->v.arr.elem_type);
    out_u64(o, v->v.arr.n);
    size_t esz = bn_gguf_vtype_size(v->v.arr.elem_type);
    if (!v->v.arr.n) return;
    if (esz) out_bytes(o, v->v.arr.data, v->v.arr.n * esz);
    else if (v->v.arr.elem_type == BN_GGUF_STRING)
        for (uint64_t i = 0; i < v->v.arr.n; i++) out_str(o, &((const bn_gguf_str *)v->v.arr.data)[i]);
    else
        for (uint64_t i = 0; i < v->v.arr.n; i++) out_array(o, &((const bn_gguf_value *)v->v.arr.data)[i]);
}

static void out_value(wout *o, const bn_gguf_value *v) {
    out_u32(o, (uint32_t)v->type);
    if (v->type == BN_GGUF_STRING) out_str(o, &v->v.str);
    else if (v->type == BN_GGUF_ARRAY) out_array(o, v);
    else if (v->type == BN_GGUF_BOOL) {
        uint8_t b = v->v.b ? 1 : 0;
        out_bytes(o, &b, 1);
    } else out_bytes(o, &v->v, bn_gguf_vtype_size(v->type));
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static const bn_gguf_value *w_find(const bn_gguf_writer *w, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < w->n_kv; i++)
        if (w->kv[i].key.len == n && memcmp(w->kv[i].key.data, key, n) == 0) return &w->kv[i].value;
    return NULL;
}

/* Settles the alignment from set_alignment and/or a general.alignment kv,
 * and checks I2_S tensors against the architecture. */
static bn_status w_check(bn_gguf_writer *w, const char *path) {
    const bn_gguf_value *al = w_find(w, "general.alignment");
    if (al) {
        if (al->type != BN_GGUF_UINT32)
            return bn_fail(BN_ERR_INVALID_ARG, "%s: general.alignment must be u32, not %s", path,
                           bn_gguf_vtype_name(al->type));
        if (w->align_set && w->align != al->v.u32)
            return bn_fail(BN_ERR_INVALID_ARG, "%s: alignment %" PRIu32 " disagrees with general.alignment = %" PRIu32,
                           path, w->align, al->v.u32);
        w->align = al->v.u32;
    }
    if (!w->align || (w->align & (w->align - 1)) || w->align > GGUF_MAX_ALIGN)
        return bn_fail(BN_ERR_INVALID_ARG, "%s: alignment %" PRIu32 " is not a power of two up to %u", path, w->align,
                       GGUF_MAX_ALIGN);
    if (!al && w->align != 32) {
        bn_status s = bn_gguf_writer_add_u32(w, "general.alignment", w->align);
        if (s) return s;
    }
    const bn_gguf_value *arch = w_find(w, "general.architecture");
    if (arch && arch->type != BN_GGUF_STRING)
        return bn_fail(BN_ERR_INVALID_ARG, "%s: general.architecture must be a string", path);
    bool bitnet = arch && bn_gguf_arch_is_bitnet(arch->v.str.data, (size_t)arch->v.str.len);
    for (size_t i = 0; i < w->n_t; i++)
        if (w->t[i].type == BN_TYPE_I2_S && !bitnet)
            return bn_fail(BN_ERR_INVALID_ARG, "%s: tensor '%s' is I2_S, which needs a bitnet general.architecture",
                           path, w->t[i].name.data);
    return BN_OK;
}

bn_status bn_gguf_writer_write(bn_gguf_writer *w, const char *path) {
    bn_status s = w_check(w, path);
    if (s) return s;
    size_t plen = strlen(path);
    char *tmp = bn_malloc(plen + 5);
    if (!tmp) return BN_ERR_NOMEM;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    wout *o = bn_malloc(sizeof *o);
    if (!o) {
        free(tmp);
        return BN_ERR_NOMEM;
    }
    o->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    o->path = tmp;
    o->st = BN_OK;
    o->n = 0;
    o->total = 0;
    if (o->fd < 0) {
        s = bn_fail(BN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(o);
        free(tmp);
        return s;
    }

    out_bytes(o, "GGUF", 4);
    out_u32(o, 3);
    out_u64(o, w->n_t);
    out_u64(o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        out_str(o, &w->kv[i].key);
        out_value(o, &w->kv[i].value);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        out_str(o, &t->name);
        out_u32(o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) out_u64(o, t->ne[d]);
        out_u32(o, t->type);
        out_u64(o, off);
        off = pad_to(off + t->nbytes, w->align);
    }
    /* pad the header so the data section starts aligned */
    out_zeros(o, pad_to(o->total, w->align) - o->total);
    for (size_t i = 0; i < w->n_t; i++) {
        out_bytes(o, w->t[i].data, w->t[i].nbytes);
        out_zeros(o, pad_to(w->t[i].nbytes, w->align) - w->t[i].nbytes);
    }
    out_flush(o);
    s = o->st;
    if (!s && fsync(o->fd) != 0) s = bn_fail(BN_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(o->fd) != 0 && !s) s = bn_fail(BN_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!s && rename(tmp, path) != 0) s = bn_fail(BN_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (s) unlink(tmp);
    else {
        /* make the rename itself durable */
        char *dir = bn_strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
            int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                (void)fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
    free(o);
    free(tmp);
    return s;
}
