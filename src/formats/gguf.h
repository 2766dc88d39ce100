/* gguf.h — GGUF v2/v3 reader (zero-copy over a bn_mmap) and writer.
 *
 * The reader validates everything against the file size before use: magic,
 * version, counts, string lengths, array sizes, nesting, tensor dims, types,
 * offsets and sizes (overflow-checked), and refuses absurd allocations. */
#ifndef BN_GGUF_H
#define BN_GGUF_H

#include "core/core.h"

typedef enum bn_gguf_vtype {
    BN_GGUF_UINT8 = 0, BN_GGUF_INT8 = 1, BN_GGUF_UINT16 = 2, BN_GGUF_INT16 = 3,
    BN_GGUF_UINT32 = 4, BN_GGUF_INT32 = 5, BN_GGUF_FLOAT32 = 6, BN_GGUF_BOOL = 7,
    BN_GGUF_STRING = 8, BN_GGUF_ARRAY = 9, BN_GGUF_UINT64 = 10, BN_GGUF_INT64 = 11,
    BN_GGUF_FLOAT64 = 12,
} bn_gguf_vtype;

typedef struct bn_gguf_str {
    uint64_t    len;
    const char *data;  /* NOT NUL-terminated; points into the file or writer-owned memory */
} bn_gguf_str;

typedef struct bn_gguf_value bn_gguf_value;
struct bn_gguf_value {
    bn_gguf_vtype type;
    union {
        uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
        float f32; bool b; uint64_t u64; int64_t i64; double f64;
        bn_gguf_str str;
        struct {
            bn_gguf_vtype  elem_type;
            uint64_t       n;
            /* Scalars: packed little-endian elements (n * elem size bytes).
             * Strings: array of n bn_gguf_str.  Arrays: array of n
             * bn_gguf_value (nested). */
            const void    *data;
        } arr;
    } v;
};

typedef struct bn_gguf_kv {
    bn_gguf_str   key;
    bn_gguf_value value;
} bn_gguf_kv;

#define BN_GGUF_MAX_DIMS 4

typedef struct bn_gguf_tensor {
    bn_gguf_str    name;
    uint32_t       n_dims;
    uint64_t       ne[BN_GGUF_MAX_DIMS]; /* ne[0] = contiguous (innermost) dim; unused = 1 */
    uint32_t       type;                 /* raw ggml type id as stored */
    uint64_t       offset;               /* relative to the data section */
    uint64_t       nbytes;               /* bytes available for this tensor (validated) */
    const uint8_t *data;                 /* zero-copy pointer into the mapping */
} bn_gguf_tensor;

typedef struct bn_gguf bn_gguf;

/* Parse a GGUF held in memory (e.g. a bn_mmap). The buffer must outlive the
 * handle. `name` is used only in error messages. Interprets type ids 36..39
 * as bitnet.cpp's (I2_S = 36) when general.architecture is a bitnet one. */
bn_status bn_gguf_parse(const uint8_t *buf, size_t size, const char *name, bn_gguf **out);
/* Open a file by path (mmap, zero copy); the handle owns the mapping. */
bn_status bn_gguf_open(const char *path, bn_gguf **out);
/* use_mmap false: read the file into (huge-page advised) memory instead. */
bn_status bn_gguf_open_ex(const char *path, bool use_mmap, bn_gguf **out);
void      bn_gguf_free(bn_gguf *g);

uint32_t bn_gguf_version(const bn_gguf *g);
uint32_t bn_gguf_alignment(const bn_gguf *g);
uint64_t bn_gguf_n_kv(const bn_gguf *g);
const bn_gguf_kv *bn_gguf_kv_at(const bn_gguf *g, uint64_t i);
const bn_gguf_value *bn_gguf_find(const bn_gguf *g, const char *key); /* NULL if absent */
uint64_t bn_gguf_n_tensors(const bn_gguf *g);
const bn_gguf_tensor *bn_gguf_tensor_at(const bn_gguf *g, uint64_t i);
const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name);

/* Typed getters: false if absent or of another type (integers widen between
 * any integer types when the value fits; get_f32 also takes an f64). */
bool bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out);
bool bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out);
/* Copies into buf (NUL-terminated, truncated to cap). */
bool bn_gguf_get_str(const bn_gguf *g, const char *key, char *buf, size_t cap);

/* Helpers for string arrays: element i of an array-of-strings value. */
bool bn_gguf_arr_str(const bn_gguf_value *v, uint64_t i, bn_gguf_str *out);

/* ---- additions (helpers shared by reader, writer and tools). */
/* Bytes of one scalar of type t; 0 for STRING, ARRAY and unknown types. */
size_t      bn_gguf_vtype_size(bn_gguf_vtype t);
const char *bn_gguf_vtype_name(bn_gguf_vtype t); /* "u32", "string", "array", ... */
/* True for the architectures whose files use bitnet.cpp's type ids
 * (I2_S = 36): "bitnet-b1.58", "bitnet-25", "bitnet" and any "bitnet*". */
bool        bn_gguf_arch_is_bitnet(const char *arch, size_t len);
bool        bn_gguf_is_bitnet(const bn_gguf *g);
/* File offset of the (aligned) tensor data section. */
uint64_t    bn_gguf_data_offset(const bn_gguf *g);
/* Like bn_gguf_get_u32 for 64-bit values (unsigned, integers widen). */
bool        bn_gguf_get_u64(const bn_gguf *g, const char *key, uint64_t *out);
bool        bn_gguf_get_bool(const bn_gguf *g, const char *key, bool *out);
/* Integer array element i widened to int64 (false if not an integer array,
 * out of range, or a u64 element above INT64_MAX). */
bool        bn_gguf_arr_int(const bn_gguf_value *v, uint64_t i, int64_t *out);
/* Name of a tensor type id as the file means it ("I2_S" only for bitnet). */
const char *bn_gguf_type_name(uint32_t type, bool bitnet);

/* ---- writer: collect metadata and tensors, then write the file. */
typedef struct bn_gguf_writer bn_gguf_writer;

bn_status bn_gguf_writer_create(bn_gguf_writer **out);
void      bn_gguf_writer_free(bn_gguf_writer *w);
void      bn_gguf_writer_set_alignment(bn_gguf_writer *w, uint32_t align); /* default 32 */
/* Values are deep-copied (strings and arrays, nested arrays included). */
bn_status bn_gguf_writer_add_kv(bn_gguf_writer *w, const char *key, const bn_gguf_value *v);
bn_status bn_gguf_writer_add_u32(bn_gguf_writer *w, const char *key, uint32_t v);
bn_status bn_gguf_writer_add_f32(bn_gguf_writer *w, const char *key, float v);
bn_status bn_gguf_writer_add_str(bn_gguf_writer *w, const char *key, const char *v);
bn_status bn_gguf_writer_add_str_arr(bn_gguf_writer *w, const char *key, const char *const *v,
                                     const uint64_t *lens /* NULL: strlen */, uint64_t n);
bn_status bn_gguf_writer_add_arr(bn_gguf_writer *w, const char *key, bn_gguf_vtype elem,
                                 const void *data, uint64_t n);
/* Tensor data is NOT copied: it must stay valid until bn_gguf_writer_write.
 * ne[0] is the contiguous dim. nbytes is the exact payload size. */
bn_status bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const uint64_t *ne,
                                    const void *data, uint64_t nbytes);
/* Writes to path + ".tmp", fsyncs, renames into place. */
bn_status bn_gguf_writer_write(bn_gguf_writer *w, const char *path);

#endif /* BN_GGUF_H */
