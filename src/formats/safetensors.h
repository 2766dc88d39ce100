/* safetensors.h — safetensors reader (header JSON via cJSON, zero-copy
 * tensor data over mmap), single files and sharded checkpoints
 * (model.safetensors.index.json), plus a small writer. */
#ifndef BN_SAFETENSORS_H
#define BN_SAFETENSORS_H

#include "core/core.h"

#define BN_ST_MAX_DIMS 8

typedef struct bn_st_tensor {
    const char    *name;    /* NUL-terminated, owned by the set */
    bn_type        dtype;   /* F32 F16 BF16 U8 I8 I16 I32 I64 BOOL F64 */
    uint32_t       n_dims;
    uint64_t       shape[BN_ST_MAX_DIMS]; /* row-major, shape[0] outermost (as in the file) */
    uint64_t       n_elems;
    uint64_t       nbytes;
    const uint8_t *data;    /* zero-copy pointer into the mapping */
    int32_t        shard;   /* index of the file it came from */
} bn_st_tensor;

typedef struct bn_st_set bn_st_set;

/* Open one .safetensors file, or a folder: then model.safetensors, or the
 * shards listed in model.safetensors.index.json, or every *.safetensors. */
bn_status bn_st_open(const char *path, bn_st_set **out);
/* Parse a single safetensors image held in memory (used by the fuzzer). */
bn_status bn_st_parse(const uint8_t *buf, size_t size, const char *name, bn_st_set **out);
void      bn_st_free(bn_st_set *s);

size_t              bn_st_count(const bn_st_set *s);
const bn_st_tensor *bn_st_at(const bn_st_set *s, size_t i);
const bn_st_tensor *bn_st_find(const bn_st_set *s, const char *name); /* NULL if absent */
/* __metadata__ string value, or NULL. */
const char         *bn_st_metadata(const bn_st_set *s, const char *key);
/* All __metadata__ entries, sorted by key (shards merged; first shard wins). */
size_t              bn_st_metadata_count(const bn_st_set *s);
bool                bn_st_metadata_at(const bn_st_set *s, size_t i, const char **key, const char **value);
/* The files the set was read from (bn_st_tensor.shard indexes these). */
size_t              bn_st_shard_count(const bn_st_set *s);
const char         *bn_st_shard_path(const bn_st_set *s, size_t i);

/* Writer: tensors are written in the order added; data is not copied. */
typedef struct bn_st_writer bn_st_writer;
bn_status bn_st_writer_create(bn_st_writer **out);
void      bn_st_writer_free(bn_st_writer *w);
bn_status bn_st_writer_add(bn_st_writer *w, const char *name, bn_type dtype, uint32_t n_dims,
                           const uint64_t *shape, const void *data, uint64_t nbytes);
bn_status bn_st_writer_add_metadata(bn_st_writer *w, const char *key, const char *value);
bn_status bn_st_writer_write(bn_st_writer *w, const char *path); /* atomic: tmp + fsync + rename */

#endif /* BN_SAFETENSORS_H */
