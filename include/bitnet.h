/*
 * bitnet.h — the one public header of libbitnet, a C engine for ternary
 * (BitNet b1.58) language models.
 *
 * Conventions
 *  - Every fallible call returns a bn_status; BN_OK is 0. On failure a
 *    readable message is available from bn_last_error() (per thread) until
 *    the next failing call on that thread.
 *  - Handles are opaque; every load or create call has a matching free, and
 *    freeing NULL is a no-op.
 *  - The library never exits the process and keeps no hidden global state:
 *    threads, logging and backends are chosen through explicit parameters.
 */
#ifndef BITNET_H
#define BITNET_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BN_VERSION_MAJOR 0
#define BN_VERSION_MINOR 1
#define BN_VERSION_PATCH 0

/* ------------------------------------------------------------------ status */

typedef enum bn_status {
    BN_OK = 0,
    BN_ERR_INVALID_ARG,    /* caller passed something unusable              */
    BN_ERR_IO,             /* open/read/write/mmap failed                   */
    BN_ERR_FORMAT,         /* file is truncated, corrupt or hostile         */
    BN_ERR_UNSUPPORTED,    /* well-formed but not something we can handle   */
    BN_ERR_NOMEM,          /* allocation failed or would be absurd          */
    BN_ERR_NOT_FOUND,      /* a named tensor / key / file does not exist    */
    BN_ERR_SHAPE,          /* tensor shapes disagree with the config        */
    BN_ERR_CONTEXT_FULL,   /* the sequence would exceed the context limit   */
    BN_ERR_CANCELLED,      /* stopped by the caller                         */
    BN_ERR_INTERNAL,
} bn_status;

/* Message of the last failure on the calling thread ("" if none). */
const char *bn_last_error(void);
/* Name of a status code, e.g. "BN_ERR_FORMAT". */
const char *bn_status_name(bn_status st);

const char *bn_version_string(void);

/* ----------------------------------------------------------------- logging */

typedef enum bn_log_level {
    BN_LOG_DEBUG = 0,
    BN_LOG_INFO  = 1,
    BN_LOG_WARN  = 2,
    BN_LOG_ERROR = 3,
    BN_LOG_NONE  = 4,
} bn_log_level;

typedef void (*bn_log_fn)(bn_log_level level, const char *msg, void *user);

/* A logger is passed to the calls that may log (model load, contexts).
 * A NULL callback means: print level >= min_level to stderr. */
typedef struct bn_logger {
    bn_log_fn    fn;
    void        *user;
    bn_log_level min_level;
} bn_logger;

/* ------------------------------------------------------------ tensor types */

/* Tensor element types. The numeric values of the GGUF-visible types equal
 * their ggml type ids; bitnet.cpp's I2_S is 36 (interpreted as such only in
 * files whose architecture is a bitnet one). */
typedef enum bn_type {
    BN_TYPE_F32   = 0,
    BN_TYPE_F16   = 1,
    BN_TYPE_Q8_0  = 8,
    BN_TYPE_Q6_K  = 14,
    BN_TYPE_I8    = 24,
    BN_TYPE_I16   = 25,
    BN_TYPE_I32   = 26,
    BN_TYPE_I64   = 27,
    BN_TYPE_F64   = 28,
    BN_TYPE_BF16  = 30,
    BN_TYPE_TQ1_0 = 34,
    BN_TYPE_TQ2_0 = 35,
    BN_TYPE_I2_S  = 36,
    /* Not GGUF-visible: used for safetensors dtypes and internal layouts. */
    BN_TYPE_U8    = 1000,
    BN_TYPE_BOOL  = 1001,
    BN_TYPE_COUNT_SENTINEL
} bn_type;

const char *bn_type_name(bn_type t);

/* ------------------------------------------------------------------ model */

typedef struct bn_model   bn_model;
typedef struct bn_context bn_context;

typedef struct bn_model_params {
    bool      use_mmap;   /* map weights read-only where the layout allows   */
    bn_logger logger;
} bn_model_params;

bn_model_params bn_model_default_params(void);

/* Load a model from a .gguf file or a Hugging Face folder (config.json +
 * *.safetensors). */
bn_status bn_model_load(const char *path, const bn_model_params *params,
                        bn_model **out);
void      bn_model_free(bn_model *model);

typedef struct bn_model_info {
    char     arch[32];         /* "bitnet-b1.58" | "bitnet"                 */
    int32_t  n_vocab;
    int32_t  n_embd;
    int32_t  n_ff;
    int32_t  n_layer;
    int32_t  n_head;
    int32_t  n_head_kv;
    int32_t  head_dim;
    int32_t  n_ctx_train;
    float    rms_eps;
    float    rope_theta;
    int32_t  bos_id;           /* -1 if unknown */
    int32_t  eos_id;
    bn_type  embd_type;        /* type of the token embedding / tied head   */
    uint64_t n_params;
    uint64_t weight_bytes;     /* bytes the weights occupy                  */
} bn_model_info;

void bn_model_get_info(const bn_model *model, bn_model_info *info);

/* Write the model as GGUF (architecture bitnet-b1.58, I2_S linears, as
 * bitnet.cpp writes it). */
bn_status bn_model_save_gguf(const bn_model *model, const char *path);

typedef enum bn_random_shape { BN_SHAPE_TINY = 0, BN_SHAPE_2B4T = 1 } bn_random_shape;
/* Write a model of the given shape with random ternary weights as GGUF. */
bn_status bn_random_model_write(bn_random_shape shape, uint64_t seed,
                                const char *path);

/* ---------------------------------------------------------------- context */

typedef enum bn_device { BN_DEVICE_CPU = 0, BN_DEVICE_CUDA = 1 } bn_device;

typedef struct bn_context_params {
    int32_t   n_ctx;       /* positions per sequence; 0 = model's training ctx */
    int32_t   n_seq_max;   /* independent sequences (each has its own cache)  */
    int32_t   n_batch;     /* max tokens per bn_decode call                    */
    int32_t   n_threads;   /* 0 = number of online CPUs                        */
    bn_device device;
    bool      all_logits;  /* keep logits of every token, not only requested  */
    bn_logger logger;
} bn_context_params;

bn_context_params bn_context_default_params(void);

bn_status bn_context_create(const bn_model *model, const bn_context_params *params,
                            bn_context **out);
void      bn_context_free(bn_context *ctx);

/* A batch: n tokens, each with its sequence id and position. Positions of a
 * sequence must continue where its cache ends. want_logits[i] (may be NULL:
 * then only the last token of each sequence) selects the rows returned. */
typedef struct bn_batch {
    int32_t        n_tokens;
    const int32_t *tokens;
    const int32_t *seq_ids;     /* NULL: all 0                              */
    const int32_t *positions;   /* NULL: continue each sequence's cache     */
    const int8_t  *want_logits; /* NULL: last token of each sequence        */
} bn_batch;

bn_status bn_decode(bn_context *ctx, const bn_batch *batch);

/* Logits of the i-th token of the last batch ([n_vocab] floats), or NULL if
 * that row was not requested. */
const float *bn_get_logits(const bn_context *ctx, int32_t i);

/* Number of positions cached for a sequence. */
int32_t   bn_seq_length(const bn_context *ctx, int32_t seq_id);
/* Drop cached positions >= n_keep of a sequence (0 clears it). */
bn_status bn_seq_truncate(bn_context *ctx, int32_t seq_id, int32_t n_keep);
/* Copy the first n positions of src's cache into dst (dst is truncated). */
bn_status bn_seq_copy(bn_context *ctx, int32_t src, int32_t dst, int32_t n);

int32_t   bn_context_n_ctx(const bn_context *ctx);

/* Debug: after each bn_decode, hidden states can be captured.
 * buf: [n_layer + 2, n_tokens, n_embd] floats: [0] embeddings, [i] residual
 * after layer i, [n_layer+1] after the final norm. NULL disables. */
bn_status bn_context_set_hidden_dump(bn_context *ctx, float *buf, int32_t max_tokens);

/* -------------------------------------------------------------- tokenizer */
/* (section owned by src/tokenizer) */

/* ---------------------------------------------------------------- sampling */
/* (section owned by src/generate) */

#ifdef __cplusplus
}
#endif
#endif /* BITNET_H */
