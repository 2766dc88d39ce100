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
    int32_t   head_bits;  /* tied output head: 0 = the file's type (exact),
                             8, 6 or 4 = rows quantized at load (fewer bytes
                             per decoded token, see docs/PERFORMANCE.md)     */
    bool      repack;     /* also keep a decode copy of every ternary matrix
                             (4 rows interleaved, huge pages): faster
                             1-3-token steps on x86, +1 x the ternary bytes
                             (0.52 GB for 2B4T); results are unchanged      */
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
    uint64_t weight_bytes;     /* bytes a decode step reads: ternary linears,
                                  norms and the whole tied head            */
    int32_t  head_bits;        /* 0: head in embd_type, else 8/6/4-bit rows */
} bn_model_info;

void bn_model_get_info(const bn_model *model, bn_model_info *info);

/* Write the model as GGUF (architecture bitnet-b1.58, I2_S linears, as
 * bitnet.cpp writes it). */
bn_status bn_model_save_gguf(const bn_model *model, const char *path);

/* Attach a LoRA adapter (a PEFT folder: adapter_config.json +
 * adapter_model.safetensors) for inference: each targeted BitLinear then adds
 * scale * (alpha/r) * B (A x), in f32 on the unquantized input x. Shapes are
 * checked against the model (an adapter for another base fails). One adapter
 * per model; apply it before creating contexts. (src/model/lora_apply.c) */
bn_status bn_model_apply_lora(bn_model *model, const char *adapter_dir, float scale);

typedef enum bn_random_shape { BN_SHAPE_TINY = 0, BN_SHAPE_2B4T = 1 } bn_random_shape;
/* Write a model of the given shape with random ternary weights as GGUF. */
bn_status bn_random_model_write(bn_random_shape shape, uint64_t seed,
                                const char *path);

/* ---------------------------------------------------------------- context */

typedef enum bn_device { BN_DEVICE_CPU = 0, BN_DEVICE_CUDA = 1 } bn_device;

/* Element type of the KV cache. f32 keeps transformers' numbers; f16 halves
 * the cache (memory, and the bytes a long-context decode step reads) at a
 * small cost in logit accuracy (docs/PERFORMANCE.md). */
typedef enum bn_kv_type { BN_KV_F32 = 0, BN_KV_F16 = 1 } bn_kv_type;

typedef struct bn_context_params {
    int32_t   n_ctx;       /* positions per sequence; 0 = model's training ctx */
    int32_t   n_seq_max;   /* independent sequences (each has its own cache)  */
    int32_t   n_batch;     /* max tokens per bn_decode call                    */
    int32_t   n_threads;   /* 0 = number of online CPUs                        */
    bn_device device;
    bool      all_logits;  /* keep logits of every token, not only requested  */
    const char *kernels;   /* CPU kernel set: NULL = best for this CPU, or
                              "ref" (scalar oracle), "avx2", "avx512"        */
    bn_logger logger;
    uint32_t  cuda_flags;  /* BN_CUDA_* bits (device CUDA only); 0 = defaults */
    bn_kv_type kv_type;    /* KV cache elements, on either device (f32)     */
} bn_context_params;

/* CUDA backend switches (bn_context_params.cuda_flags; docs/CUDA_NOTES.md). */
enum {
    BN_CUDA_KV_F16        = 1u << 0, /* f16 KV cache: half the memory, looser logits   */
    BN_CUDA_NO_INT8_COPY  = 1u << 1, /* no resident int8 weights (GEMMs expand per call) */
    BN_CUDA_NO_PDL        = 1u << 2, /* no programmatic dependent launch               */
    BN_CUDA_FUSE_NORM     = 1u << 3, /* norm+quantize as the decode GEMV's prologue    */
    BN_CUDA_NO_FUSE_ROPE  = 1u << 4, /* RoPE + KV store as a kernel of its own         */
    BN_CUDA_NO_PERSISTENT = 1u << 5  /* batch-1 decode by separate kernels, not one
                                        persistent kernel per step                    */
};

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

/* Byte-level BPE (LLaMA 3 style). Token "pieces" are raw bytes: a token may
 * hold part of a UTF-8 character. */
typedef struct bn_tokenizer bn_tokenizer;

/* path: a tiktoken ranks file (base64 + rank per line; LLaMA 3 special
 * tokens 128000..128255 are added), a Hugging Face tokenizer.json, a .gguf
 * file (tokenizer.ggml.*), or a Hugging Face model folder (its
 * tokenizer.json and tokenizer_config.json). */
bn_status bn_tokenizer_load(const char *path, bn_tokenizer **out);
void      bn_tokenizer_free(bn_tokenizer *tok);

int32_t bn_tokenizer_n_vocab(const bn_tokenizer *tok);
int32_t bn_tokenizer_bos(const bn_tokenizer *tok);  /* -1 if none */
int32_t bn_tokenizer_eos(const bn_tokenizer *tok);  /* -1 if none */
int32_t bn_tokenizer_eot(const bn_tokenizer *tok);  /* end of turn, -1 if none */
/* True for tokens that end generation (eos, eot, eom). */
bool    bn_tokenizer_is_eog(const bn_tokenizer *tok, int32_t id);
/* True for control / added tokens (<|begin_of_text|> ...). */
bool    bn_tokenizer_is_special(const bn_tokenizer *tok, int32_t id);
/* Id of the token whose text is exactly s (special tokens included), -1 if none. */
int32_t bn_tokenizer_find(const bn_tokenizer *tok, const char *s);
/* Chat template stored with the vocabulary (GGUF tokenizer.chat_template or
 * tokenizer_config.json chat_template), NULL if none. */
const char *bn_tokenizer_chat_template(const bn_tokenizer *tok);

/* Encode len bytes of text (any bytes; invalid UTF-8 is kept losslessly).
 * add_bos prepends the BOS token; parse_special makes special-token text
 * such as "<|eot_id|>" map to its id (otherwise it is plain text).
 * *ids is allocated: release with free(). */
bn_status bn_tokenize(const bn_tokenizer *tok, const char *text, size_t len,
                      bool add_bos, bool parse_special, int32_t **ids, size_t *n_ids);

/* Raw bytes of a token (special tokens give their text); NULL if id is out
 * of range. */
const char *bn_token_to_piece(const bn_tokenizer *tok, int32_t id, size_t *len);

/* Concatenate the pieces of ids; with skip_special, control tokens produce
 * nothing. *text is NUL-terminated, allocated: release with free(). */
bn_status bn_detokenize(const bn_tokenizer *tok, const int32_t *ids, size_t n,
                        bool skip_special, char **text, size_t *len);

/* Streaming decoder: holds back an incomplete UTF-8 sequence at the end of
 * the output until the token that completes it arrives, so every chunk it
 * returns ends on a character boundary. Bytes that can never become valid
 * UTF-8 are passed through unchanged (decoding stays lossless); flush emits
 * whatever is still held back, also unchanged. */
typedef struct bn_detok_stream bn_detok_stream;
bn_status bn_detok_stream_create(const bn_tokenizer *tok, bool skip_special,
                                 bn_detok_stream **out);
void      bn_detok_stream_free(bn_detok_stream *s);
void      bn_detok_stream_reset(bn_detok_stream *s);
/* Returns the bytes ready to emit (*len may be 0); the pointer is valid
 * until the next call on s. */
bn_status bn_detok_stream_push(bn_detok_stream *s, int32_t id, const char **text, size_t *len);
bn_status bn_detok_stream_flush(bn_detok_stream *s, const char **text, size_t *len);

/* ---- chat templates */

typedef struct bn_chat_message {
    const char *role;     /* "system" | "user" | "assistant" (others: chatml/llama3 only) */
    const char *content;
} bn_chat_message;

/* Built-in templates:
 *  "bitnet" — BitNet b1.58 2B4T (Microsoft's ChatFormat): <|begin_of_text|>,
 *             then "System: " / "User: " / "Assistant: " + content.strip()
 *             + <|eot_id|> per message, "Assistant: " to prompt a reply.
 *             Header and content are tokenized separately, as Microsoft does.
 *  "llama3" — <|begin_of_text|> <|start_header_id|>role<|end_header_id|>\n\n
 *             content.strip() <|eot_id|> ...
 *  "chatml" — <|im_start|>role\ncontent<|im_end|>\n ...
 * Message text is never parsed for special tokens. *ids: release with free(). */
bn_status bn_chat_render_ids(const bn_tokenizer *tok, const char *tmpl,
                             const bn_chat_message *msgs, size_t n_msgs,
                             bool add_generation_prompt, int32_t **ids, size_t *n_ids);
/* The same conversation as text (for display and logs). *text: free(). */
bn_status bn_chat_render_text(const char *tmpl, const bn_chat_message *msgs, size_t n_msgs,
                              bool add_generation_prompt, char **text);
/* Pick a built-in template from metadata: the chat template text (GGUF
 * tokenizer.chat_template or tokenizer_config.json's; may be NULL) and the
 * architecture name (may be NULL). Returns "chatml", "llama3", "bitnet", or
 * NULL if nothing matches. */
const char *bn_chat_template_detect(const char *template_text, const char *arch);
/* True if name is a built-in template. */
bool bn_chat_template_known(const char *name);

/* ---------------------------------------------------------------- sampling */
/* (section owned by src/generate) */

/* Sampling turns a row of logits into one token id. The pipeline, in order:
 *   logit bias -> penalties (repetition, presence, frequency) -> top-k ->
 *   softmax with temperature -> top-p -> min-p -> draw.
 * temperature <= 0 means greedy: the argmax of the adjusted logits (ties go
 * to the lowest id). Each sampler owns its random generator (xoshiro256**
 * seeded from `seed`), so the same seed and inputs give the same ids. */

typedef struct bn_logit_bias {
    int32_t token;
    float   bias;              /* added to the logit; -INFINITY bans the token */
} bn_logit_bias;

typedef struct bn_sampler_params {
    float    temperature;      /* <= 0: greedy                                 */
    int32_t  top_k;            /* <= 0: off                                    */
    float    top_p;            /* >= 1: off                                    */
    float    min_p;            /* <= 0: off (relative to the top probability)  */
    float    repeat_penalty;   /* 1: off. llama.cpp/CTRL: positive logits are
                                  divided by it, negative ones multiplied      */
    int32_t  repeat_last_n;    /* history window of all penalties; -1: all    */
    float    presence_penalty; /* OpenAI: logit -= presence * (count > 0)      */
    float    frequency_penalty;/*          logit -= frequency * count          */
    const bn_logit_bias *logit_bias;  /* copied by bn_sampler_create           */
    int32_t  n_logit_bias;
    uint64_t seed;
} bn_sampler_params;

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, no penalties
 * (repeat_last_n 64), seed 0. */
bn_sampler_params bn_sampler_default_params(void);

typedef struct bn_sampler bn_sampler;

bn_status bn_sampler_create(const bn_sampler_params *params, bn_sampler **out);
void      bn_sampler_free(bn_sampler *s);
/* Restart the random sequence from a seed. */
void      bn_sampler_reseed(bn_sampler *s, uint64_t seed);
const bn_sampler_params *bn_sampler_get_params(const bn_sampler *s);

#define BN_MAX_TOP_LOGPROBS 20

typedef struct bn_token_logprob {
    int32_t token;
    float   logprob;
} bn_token_logprob;

/* Log-probabilities come from the adjusted logits (after bias and penalties)
 * at temperature 1, before any truncation: the model's distribution as the
 * sampler saw it. top[] is sorted by decreasing logprob (ties: lower id). */
typedef struct bn_sample_info {
    int32_t          token;
    float            logprob;
    int32_t          n_top;
    bn_token_logprob top[BN_MAX_TOP_LOGPROBS];
} bn_sample_info;

/* Apply logit bias and penalties to logits[n_vocab] in place. history holds
 * the ids seen so far (prompt and generated, oldest first); only the last
 * repeat_last_n of them count. */
bn_status bn_sampler_adjust(const bn_sampler *s, float *logits, int32_t n_vocab,
                            const int32_t *history, int32_t n_history);

/* Choose a token from logits[n_vocab] (not modified). info may be NULL;
 * n_top (0..BN_MAX_TOP_LOGPROBS) top alternatives are reported in it.
 * Fails if every token is banned or n_vocab is not positive. */
bn_status bn_sampler_sample(bn_sampler *s, const float *logits, int32_t n_vocab,
                            const int32_t *history, int32_t n_history,
                            int32_t n_top, bn_sample_info *info, int32_t *out_token);

/* Sample from the logits of token i of the context's last batch: the same
 * token as bn_sampler_sample on bn_get_logits(ctx, i). On the CUDA backend
 * a decode step's logits stay on the GPU, and greedy or top-k (k <= 64)
 * sampling without info chooses the k candidates there (bias and penalties
 * applied on the device): k (id, logit) pairs cross the bus instead of the
 * row, and the rest of the pipeline runs on them. Anything else (no top-k,
 * log-probabilities) reads the row. */
bn_status bn_sample(bn_context *ctx, int32_t i, bn_sampler *s, const int32_t *history, int32_t n_history,
                    int32_t n_top, bn_sample_info *info, int32_t *out_token);

/* ---------------------------------------------------------------- generate */

/* A cancellation flag that another thread (or a signal handler: setting it
 * is a lock-free atomic store) can raise while a generation runs. */
typedef struct bn_cancel bn_cancel;
bn_status bn_cancel_create(bn_cancel **out);
void      bn_cancel_free(bn_cancel *c);
void      bn_cancel_request(bn_cancel *c);
void      bn_cancel_reset(bn_cancel *c);
bool      bn_cancel_requested(const bn_cancel *c);

typedef struct bn_tokenizer bn_tokenizer;

typedef enum bn_finish_reason {
    BN_FINISH_NONE = 0,       /* not finished (or failed)                     */
    BN_FINISH_STOP,           /* a stop token or stop string                  */
    BN_FINISH_LENGTH,         /* max_tokens or the context is full            */
    BN_FINISH_CANCELLED,      /* the callback returned false or bn_cancel     */
} bn_finish_reason;

const char *bn_finish_reason_name(bn_finish_reason r); /* "stop" | "length" | ... */

/* Called once per generated token. piece/len: text that became final with
 * this token, always whole UTF-8 characters (bytes of an incomplete character
 * or of a possible stop-string start are held back; len may be 0). A last
 * call with token -1 flushes held-back text, if any, when generation ends.
 * info is the token's sample info when params.logprobs or n_top_logprobs
 * asked for it, else NULL (and NULL on the flush call). Return false to stop. */
typedef bool (*bn_token_callback)(const char *piece, size_t len, int32_t token,
                                  const bn_sample_info *info, void *user);

typedef struct bn_generate_params {
    int32_t            max_tokens;   /* new tokens; <= 0: until the context is full */
    const char *const *stop;         /* stop strings (not part of the output)  */
    int32_t            n_stop;
    const int32_t     *stop_ids;     /* extra stop tokens                      */
    int32_t            n_stop_ids;
    bool               ignore_eos;   /* don't stop on the model's / tokenizer's
                                        end tokens                              */
    int32_t            seq_id;       /* the context sequence to use            */
    bool               logprobs;     /* pass sample info (logprob) to the callback */
    int32_t            n_top_logprobs; /* 0..BN_MAX_TOP_LOGPROBS alternatives too */
    int32_t            n_batch;      /* max tokens per bn_decode; 0: 512        */
    bn_cancel         *cancel;       /* may be NULL                             */
} bn_generate_params;

bn_generate_params bn_generate_default_params(void);

typedef struct bn_generate_result {
    bn_status        status;       /* per request in bn_generate_batch        */
    char             error[256];   /* message when status != BN_OK            */
    int32_t         *ids;          /* [n_gen] every sampled id, a stop token included */
    int32_t          n_prompt;
    int32_t          n_gen;
    char            *text;         /* NUL-terminated generated text without the
                                      stop token/string; NULL without tokenizer */
    size_t           text_len;
    bn_finish_reason finish;
    double           ttft_s;       /* start -> first token sampled            */
    double           prompt_s;     /* prompt processing time                  */
    double           gen_s;        /* first token -> last token               */
    double           prompt_tps;   /* n_prompt / prompt_s                     */
    double           gen_tps;      /* (n_gen - 1) / gen_s: decode steps/s     */
} bn_generate_result;

/* Release ids and text; call it after every bn_generate / bn_generate_batch,
 * successful or not (a failure may leave partial results). */
void bn_generate_result_free(bn_generate_result *r);

/* Generate after `prompt` (appended to what sequence seq_id already holds in
 * the cache, so a chat can keep its history). The last sampled token is not
 * decoded: after the call the cache holds the prompt and n_gen - 1 tokens.
 * The sampler sees the generated ids (and the prompt) as penalty history.
 * tok may be NULL (ids only: no text, no stop strings). A prompt that does not
 * fit the context fails with BN_ERR_CONTEXT_FULL; an empty prompt on an empty
 * sequence fails with BN_ERR_INVALID_ARG. */
bn_status bn_generate(bn_context *ctx, const bn_model *model, const bn_tokenizer *tok,
                      bn_sampler *sampler, const int32_t *prompt, int32_t n_prompt,
                      const bn_generate_params *params, bn_token_callback cb, void *user,
                      bn_generate_result *result);

/* One request of a batched generation: every active sequence advances by one
 * token per bn_decode call. Each request uses its own params.seq_id (they
 * must differ) and its own sampler. */
typedef struct bn_generate_request {
    const int32_t     *prompt;
    int32_t            n_prompt;
    bn_sampler        *sampler;
    bn_generate_params params;
    bn_token_callback  cb;
    void              *user;
} bn_generate_request;

/* Per-request failures (e.g. a prompt too long) are reported in
 * results[i].status/error and the others still run; the call itself fails
 * only when the batch cannot run at all (bad arguments, a decode error). */
bn_status bn_generate_batch(bn_context *ctx, const bn_model *model, const bn_tokenizer *tok,
                            const bn_generate_request *reqs, int32_t n_req,
                            bn_generate_result *results);

/* -------------------------------------------------------------- perplexity */

/* llama.cpp's method: the ids are cut into n_ids / n_ctx non-overlapping
 * windows of n_ctx tokens; the first token of each window is replaced by
 * BOS when bos_id >= 0; the logits of positions n_ctx/2 .. n_ctx-2 score the
 * next token (n_ctx - n_ctx/2 - 1 per window). */
typedef struct bn_perplexity_params {
    int32_t n_ctx;        /* window; must be <= the context's n_ctx           */
    int32_t bos_id;       /* -1: keep the first token                          */
    int32_t n_batch;      /* tokens per bn_decode; 0: 512                      */
    int32_t max_chunks;   /* <= 0: all                                        */
    int32_t seq_id;
    /* called after each window; return false to stop early */
    bool  (*progress)(int32_t chunk, int32_t n_chunks, double ppl, double err, void *user);
    void   *user;
} bn_perplexity_params;

typedef struct bn_perplexity_result {
    double  ppl;           /* exp(mean NLL)                                    */
    double  ppl_err;       /* ppl * stderr of the mean NLL (llama.cpp's +/-)   */
    double  nll;           /* mean negative log-likelihood                     */
    int64_t n_scored;      /* tokens scored                                    */
    int32_t n_chunks;
} bn_perplexity_result;

bn_perplexity_params bn_perplexity_default_params(void);

bn_status bn_perplexity(bn_context *ctx, const bn_model *model, const int32_t *ids, int64_t n_ids,
                        const bn_perplexity_params *params, bn_perplexity_result *result);

/* ---- hub: models by name */
/* Download models from the Hugging Face Hub (or a mirror) into the cache
 * layout of Python's huggingface_hub ({cache}/models--ORG--NAME/blobs,
 * snapshots/{commit}, refs/{rev}), so files are shared both ways. */

typedef struct bn_hub_options {
    const char *endpoint;   /* NULL: https://huggingface.co                    */
    const char *token;      /* NULL: read token_path (else anonymous: gated and
                               private repos fail)                              */
    const char *token_path; /* NULL: {hf_home}/token, as `hf auth login` or
                               `huggingface-cli login` stores it                */
    const char *cache_dir;  /* NULL: the default below, from the env fields     */
    bool        offline;    /* serve from the cache only, never touch network   */
    bool        progress;   /* progress bar with rate and ETA, only if stderr
                               is a terminal                                    */
    int32_t     retries;    /* extra attempts of an interrupted download, each
                               resuming where the last stopped (HTTP Range)     */
    uint64_t    size_cap;   /* 0: none; else after a pull, evict least recently
                               used other models until the cache fits           */
    /* Captured by bn_hub_default_options (the library itself reads no
     * environment): the default cache is $HF_HUB_CACHE (-> cache_dir), else
     * hf_home/hub, else xdg_cache_home/huggingface/hub, else
     * home/.cache/huggingface/hub. */
    const char *hf_home;
    const char *xdg_cache_home;
    const char *home;
} bn_hub_options;

/* Defaults from the environment: HF_ENDPOINT, HF_TOKEN, HF_TOKEN_PATH,
 * HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HOME, HF_HUB_OFFLINE (1/ON/YES/TRUE). The
 * returned pointers refer to the environment: copy before setenv. */
bn_hub_options bn_hub_default_options(void);

/* The cache folder the options select; *dir is malloc'd. */
bn_status bn_hub_cache_dir(const bn_hub_options *o, char **dir);

/* Make repo ("ORG/NAME") available locally. file NULL: choose — the one
 * .gguf (several: the one named *i2_s*, else the first), else config.json +
 * *.safetensors (+ index, tokenizer, generation config). revision NULL:
 * "main". *local_path (malloc'd) is the file (GGUF or the file asked for)
 * or the snapshot folder (Hugging Face format). A second pull of a revision
 * already cached transfers no file. */
bn_status bn_hub_pull(const char *repo, const char *file, const char *revision,
                      const bn_hub_options *o, char **local_path);

/* Model "spec" as given to -m: "hf:ORG/NAME[/FILE][@REV]" is pulled (or
 * served from the cache) and *local_path is its local path; anything else
 * is a local path and is returned unchanged (copied). */
bn_status bn_hub_resolve_model(const char *spec, const bn_hub_options *o, char **local_path);

typedef struct bn_hub_cached_model {
    char     repo[256];     /* "ORG/NAME"                                     */
    char     refs[256];     /* refs naming a snapshot, comma-separated        */
    char     commit[48];    /* snapshot of "main" (else the newest one)       */
    int32_t  n_snapshots;
    uint64_t size_bytes;    /* bytes of its blobs                             */
    int64_t  last_used;     /* unix seconds: last pull/resolve (or newest file) */
} bn_hub_cached_model;

/* Models in the cache, most recently used first; *out: release with free(). */
bn_status bn_hub_list(const bn_hub_options *o, bn_hub_cached_model **out, size_t *n);
/* Delete a model ("ORG/NAME") and everything cached for it. */
bn_status bn_hub_remove(const char *repo, const bn_hub_options *o);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_H */
