/* core.h — internal foundation shared by every layer: errors, logging,
 * allocation, memory-mapped files, f16/bf16 conversion, the type table. */
#ifndef BN_CORE_H
#define BN_CORE_H

#include "bitnet.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define BN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define BN_PRINTF(a, b)
#endif

/* ---- errors: record a message for bn_last_error() and return the code. */
bn_status bn_fail(bn_status st, const char *fmt, ...) BN_PRINTF(2, 3);
/* Prefix the current message with "<prefix>: " (e.g. the file name). */
void bn_error_prefix(const char *fmt, ...) BN_PRINTF(1, 2);
void bn_error_clear(void);

/* ---- logging through a bn_logger (NULL fn: stderr). */
void bn_log(const bn_logger *lg, bn_log_level lvl, const char *fmt, ...) BN_PRINTF(3, 4);

/* ---- allocation. Sizes above BN_MAX_ALLOC are refused as absurd. */
#define BN_MAX_ALLOC ((size_t)64 << 30)
void *bn_malloc(size_t n);            /* NULL + error on failure           */
void *bn_calloc(size_t n, size_t sz); /* overflow-checked                  */
void *bn_aligned_alloc(size_t align, size_t n); /* free with bn_aligned_free */
void  bn_aligned_free(void *p);
char *bn_strdup(const char *s);

/* Overflow-checked arithmetic: return false on overflow. */
static inline bool bn_mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool bn_add_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* ---- read-only file mapping (whole file). */
typedef struct bn_mmap {
    const uint8_t *data;
    size_t         size;
    bool           mapped;  /* false: data was read into a heap buffer   */
} bn_mmap;

bn_status bn_mmap_open(const char *path, bool use_mmap, bn_mmap *out);
void      bn_mmap_close(bn_mmap *m);

/* Read a whole (small) file into a NUL-terminated heap buffer. */
bn_status bn_read_file(const char *path, size_t max_size, char **out, size_t *out_len);

/* ---- f16 / bf16 (round to nearest even; NaN stays NaN, Inf stays Inf). */
float    bn_f16_to_f32(uint16_t h);
uint16_t bn_f32_to_f16(float f);
float    bn_bf16_to_f32(uint16_t h);
uint16_t bn_f32_to_bf16(float f);
void bn_f16_to_f32_row(const uint16_t *src, float *dst, size_t n);
void bn_f32_to_f16_row(const float *src, uint16_t *dst, size_t n);
void bn_bf16_to_f32_row(const uint16_t *src, float *dst, size_t n);

/* ---- type table. */
typedef struct bn_type_traits {
    const char *name;
    int32_t     block_size;  /* elements per block                         */
    int32_t     type_size;   /* bytes per block                            */
    bool        ternary;
} bn_type_traits;

/* NULL for unknown types. */
const bn_type_traits *bn_type_get(bn_type t);
/* Bytes of a tensor of n elements (for I2_S: n/4 + 32, bitnet.cpp's size).
 * Returns false if n is not a multiple of the block size or on overflow. */
bool bn_type_nbytes(bn_type t, uint64_t n, uint64_t *out);

/* Upper bound of the values in a JSON text (1 + openings + commas outside
 * strings). cJSON spends ~80 bytes per value, so callers refuse absurd
 * documents (a 100 MB "0,0,..." would cost 4 GB) before parsing them. */
size_t bn_json_value_bound(const char *text, size_t len);

/* Number of online CPUs (>= 1). */
int bn_cpu_count(void);

/* Monotonic clock in seconds. */
double bn_time_s(void);

#endif /* BN_CORE_H */
