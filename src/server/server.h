/* server.h — internals of `bitnet serve`: an OpenAI-compatible HTTP server
 * (http.c) that turns JSON into requests (openai.c), runs them with
 * continuous batching (scheduler.c), checks API keys and meters usage in
 * SQLite (keys.c, usage.c) and exports Prometheus metrics (metrics.c).
 * Not part of the public API: the CLI (tools/bitnet/cmd_serve.c,
 * cmd_keys.c, cmd_usage.c) is its only user. */
#ifndef BN_SERVER_H
#define BN_SERVER_H

#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* ------------------------------------------------------------- config */

typedef struct bn_srv_config {
    const char *model_path;      /* -m (already resolved to a local path)     */
    const char *tokenizer_path;  /* NULL: the one stored with the model        */
    const char *model_name;      /* id in /v1/models; NULL: file name of -m    */
    const char *chat_template;   /* NULL: detected from the tokenizer          */
    const char *host;            /* "127.0.0.1"                                */
    int         port;            /* 0: any free port (printed on start)        */
    int         parallel;        /* slots = sequences decoded together         */
    int         n_ctx;           /* positions per slot                         */
    int         n_threads;       /* 0: all CPUs                                */
    int         n_batch;         /* tokens per forward step (prompt chunks)    */
    int         max_queue;       /* waiting requests before 503                */
    size_t      max_body;        /* request body limit in bytes (413 above)    */
    int         timeout_s;       /* idle / half-sent connection timeout        */
    const char *keys_db;         /* NULL: no authentication                    */
    bool        insecure_no_auth;/* allow a non-loopback bind without keys     */
    const char *kernels;         /* CPU kernel set (NULL: best)                */
    bn_device   device;          /* CPU (default) or CUDA                      */
    uint32_t    cuda_flags;      /* BN_CUDA_* switches                         */
    bn_kv_type  kv_type;         /* KV cache f32 (default) or f16              */
    int         head_bits;       /* tied head quantized at load (0: as stored) */
    bool        no_mmap;         /* read the weights instead of mapping them   */
    bool        repack;          /* decode copy of the ternary weights         */
    bn_logger   logger;
} bn_srv_config;

void bn_srv_config_default(bn_srv_config *c);

/* ------------------------------------------------------------- utf-8 / text */

/* True if s[0..n) is valid UTF-8 (no surrogates, no overlongs). */
bool bn_srv_utf8_valid(const char *s, size_t n);
/* Append s[0..n) to a growing buffer with invalid bytes replaced by U+FFFD,
 * so generated text can always be put into JSON. */
bn_status bn_srv_utf8_sanitize(const char *s, size_t n, char **out, size_t *out_len);

/* ------------------------------------------------------------- metrics */

typedef enum bn_srv_endpoint {
    BN_EP_CHAT = 0, BN_EP_COMPLETIONS, BN_EP_MODELS, BN_EP_HEALTH, BN_EP_TOKENIZE,
    BN_EP_DETOKENIZE, BN_EP_METRICS, BN_EP_OTHER, BN_EP_COUNT
} bn_srv_endpoint;

#define BN_SRV_N_STATUS 12
#define BN_SRV_N_BUCKETS 14

typedef struct bn_srv_histo {
    uint64_t counts[BN_SRV_N_BUCKETS + 1]; /* last: +Inf               */
    double   sum;
    uint64_t n;
} bn_srv_histo;

typedef struct bn_srv_metrics {
    pthread_mutex_t mu;
    uint64_t requests[BN_EP_COUNT][BN_SRV_N_STATUS];
    uint64_t prompt_tokens, cached_prompt_tokens, generated_tokens;
    bn_srv_histo ttft, token_latency;
    /* gauges, written by the scheduler */
    int64_t queue_depth, active_slots, kv_used, kv_total;
} bn_srv_metrics;

void bn_srv_metrics_init(bn_srv_metrics *m);
void bn_srv_metrics_free(bn_srv_metrics *m);
void bn_srv_metrics_request(bn_srv_metrics *m, bn_srv_endpoint ep, int status);
void bn_srv_metrics_ttft(bn_srv_metrics *m, double s);
void bn_srv_metrics_token_latency(bn_srv_metrics *m, double s);
void bn_srv_metrics_tokens(bn_srv_metrics *m, int64_t prompt, int64_t cached, int64_t generated);
void bn_srv_metrics_gauges(bn_srv_metrics *m, int64_t queue, int64_t active, int64_t kv_used, int64_t kv_total);
/* Prometheus text exposition format; *out: free(). */
bn_status bn_srv_metrics_render(bn_srv_metrics *m, char **out, size_t *len);

/* ------------------------------------------------------------- requests */

typedef enum bn_req_state { BN_REQ_QUEUED = 0, BN_REQ_RUNNING, BN_REQ_DONE } bn_req_state;

/* One generated token as the client may see it (logprobs). */
typedef struct bn_srv_tok {
    int32_t id;
    float   logprob;
    int32_t n_top;
    bn_token_logprob top[BN_MAX_TOP_LOGPROBS];
} bn_srv_tok;

/* A generation request shared by its HTTP connection and the scheduler.
 * The input part is fixed before submission; the output part is guarded by
 * mu and announced on cv. Two references (HTTP side, scheduler): the last
 * bn_srv_req_release frees it. */
typedef struct bn_srv_req {
    /* input */
    int32_t          *prompt;
    int32_t           n_prompt;
    bn_sampler_params sp;            /* sp.logit_bias points into bias     */
    bn_logit_bias    *bias;
    int32_t           max_tokens;    /* <= 0: until the context is full     */
    char            **stop;          /* stop strings                        */
    int32_t           n_stop;
    int32_t           n_top;         /* top logprobs to keep per token      */
    bool              keep_tokens;   /* record bn_srv_tok per token         */

    /* output */
    pthread_mutex_t   mu;
    pthread_cond_t    cv;
    bn_req_state      state;
    char             *text;          /* released text (raw bytes)           */
    size_t            text_len, text_cap;
    bn_srv_tok       *toks;          /* with keep_tokens                    */
    int32_t           n_toks, toks_cap;
    int32_t           n_gen;         /* tokens generated                    */
    int32_t           n_cached;      /* prompt tokens reused from the cache */
    bn_finish_reason  finish;
    bn_status         status;        /* != BN_OK: failed, see error         */
    char              error[256];
    double            t_submit, t_first, t_done;
    atomic_int        cancel;        /* raised by the HTTP side             */
    int               refs;
} bn_srv_req;

bn_srv_req *bn_srv_req_new(void);
void        bn_srv_req_release(bn_srv_req *r);

/* ------------------------------------------------------------- scheduler */

typedef struct bn_sched bn_sched;

typedef struct bn_sched_params {
    const bn_model     *model;
    const bn_tokenizer *tok;       /* may be NULL (ids only)                 */
    int32_t             n_slots;
    int32_t             n_ctx;
    int32_t             n_batch;
    int32_t             n_threads;
    int32_t             max_queue;
    const char         *kernels;
    bn_device           device;
    uint32_t            cuda_flags;
    bn_kv_type          kv_type;
    bn_srv_metrics     *metrics;   /* may be NULL                            */
    bn_logger           logger;
} bn_sched_params;

/* Creates the context (n_slots sequences of n_ctx) and starts the step thread. */
bn_status bn_sched_create(const bn_sched_params *p, bn_sched **out);
/* Stops the thread after the running and queued requests finish, frees. */
void      bn_sched_free(bn_sched *s);
/* Queue a request. BN_ERR_CONTEXT_FULL: the queue is full (the caller
 * answers 503); BN_ERR_CANCELLED: the scheduler is draining. On success
 * the scheduler holds its own reference. */
bn_status bn_sched_submit(bn_sched *s, bn_srv_req *r);
/* Wake the scheduler (after raising a request's cancel flag). */
void      bn_sched_wake(bn_sched *s);
/* Requests queued or running. */
int       bn_sched_inflight(bn_sched *s);
int32_t   bn_sched_n_ctx(const bn_sched *s);

/* ------------------------------------------------------------- keys + usage */

typedef struct bn_keydb bn_keydb;

typedef struct bn_key_info {
    int64_t id;
    char    name[128];
    char    prefix[16];   /* first characters of the key, for display     */
    int64_t rpm, tpm;     /* 0: unlimited                                 */
    int64_t created;      /* unix seconds                                 */
    bool    revoked;
} bn_key_info;

/* Open (create with create=true) a keys database: WAL journal, schema v1. */
bn_status bn_keydb_open(const char *path, bool create, bn_keydb **out);
void      bn_keydb_close(bn_keydb *db);
/* New key "bn-" + 64 hex digits from /dev/urandom; only its SHA-256 is
 * stored. key_out receives the key (the only time it exists in clear). */
bn_status bn_keydb_create(bn_keydb *db, const char *name, int64_t rpm, int64_t tpm,
                          char key_out[72]);
bn_status bn_keydb_list(bn_keydb *db, bn_key_info **out, size_t *n);
bn_status bn_keydb_revoke(bn_keydb *db, const char *name);
/* *found = false for unknown or revoked keys. */
bn_status bn_keydb_lookup(bn_keydb *db, const char *key, bn_key_info *out, bool *found);

typedef struct bn_usage_row {
    char    name[128];
    char    day[16];      /* YYYY-MM-DD (UTC)                             */
    int64_t requests, prompt_tokens, completion_tokens;
} bn_usage_row;

/* Add one finished request to the key's row of the current UTC day, in one
 * transaction (durable once this returns). */
bn_status bn_usage_record(bn_keydb *db, int64_t key_id, int64_t prompt_tokens,
                          int64_t completion_tokens);
/* Rows ordered by day then key; name / since (YYYY-MM-DD) may be NULL. */
bn_status bn_usage_query(bn_keydb *db, const char *name, const char *since,
                         bn_usage_row **rows, size_t *n);

/* Per-key sliding-window limits (requests and tokens per minute), in memory. */
typedef struct bn_ratelimit bn_ratelimit;
bn_status bn_ratelimit_create(bn_ratelimit **out);
void      bn_ratelimit_free(bn_ratelimit *rl);
/* Admit a request of key (counts it) or give the seconds to wait. */
bool      bn_ratelimit_admit(bn_ratelimit *rl, const bn_key_info *key, double now, int *retry_after);
/* Charge tokens a finished request used. */
void      bn_ratelimit_charge(bn_ratelimit *rl, int64_t key_id, int64_t tokens, double now);

/* ------------------------------------------------------------- openai */

typedef enum bn_oai_kind { BN_OAI_CHAT = 0, BN_OAI_COMPLETION } bn_oai_kind;

/* An error as OpenAI shapes it: {"error": {"message", "type", "param", "code"}}. */
typedef struct bn_oai_error {
    int  http;            /* status to answer with                        */
    char type[32];        /* invalid_request_error | authentication_error ... */
    char code[48];
    char param[48];       /* "" if none                                   */
    char message[512];
} bn_oai_error;

void bn_oai_set_error(bn_oai_error *e, int http, const char *type, const char *code,
                      const char *param, const char *fmt, ...) BN_PRINTF(6, 7);
/* *out: free(). NULL only when out of memory. */
char *bn_oai_error_json(const bn_oai_error *e);

/* What the JSON side needs to know about the served model. */
typedef struct bn_oai_ctx {
    const bn_tokenizer *tok;
    const char         *chat_template;  /* built-in template name           */
    const char         *model_name;
    int32_t             n_ctx;
    int32_t             n_vocab;
    int64_t             created;        /* model "created" for /v1/models   */
    int32_t             eog[4];         /* end-of-generation ids (listed in  */
    int32_t             n_eog;          /* /v1/models for clients and tests) */
} bn_oai_ctx;

typedef struct bn_oai_request {
    bn_oai_kind kind;
    bool        stream, include_usage, logprobs;
    int32_t     top_logprobs;
    char        id[48];       /* chatcmpl-... / cmpl-...                   */
    int64_t     created;
    char        user[128];
    bn_srv_req *req;          /* one reference, owned                      */
} bn_oai_request;

/* Validate a request body and turn it into a generation request (prompt
 * tokenized, sampler set). On failure err says what and with which status. */
bool bn_oai_parse(const bn_oai_ctx *c, bn_oai_kind kind, const char *body, size_t len,
                  bn_oai_request *out, bn_oai_error *err);
void bn_oai_request_free(bn_oai_request *o);
/* Whole response of a finished request. */
char *bn_oai_response(const bn_oai_ctx *c, const bn_oai_request *o);
/* One SSE payload: new text, the tokens it came from (for logprobs), the
 * finish reason or NULL; first: the chat role delta. */
char *bn_oai_chunk(const bn_oai_ctx *c, const bn_oai_request *o, const char *text, size_t n,
                   const bn_srv_tok *toks, int32_t n_toks, const char *finish, bool first);
/* The final usage chunk (stream_options.include_usage). */
char *bn_oai_usage_chunk(const bn_oai_ctx *c, const bn_oai_request *o);
char *bn_oai_models(const bn_oai_ctx *c);
/* POST /tokenize {"content": str, "add_special": bool} -> {"tokens": [...]}
 * POST /detokenize {"tokens": [...]} -> {"content": str} */
bool bn_oai_tokenize(const bn_oai_ctx *c, const char *body, size_t len, char **out, bn_oai_error *err);
bool bn_oai_detokenize(const bn_oai_ctx *c, const char *body, size_t len, char **out, bn_oai_error *err);
const char *bn_oai_finish_name(bn_finish_reason f);

/* ------------------------------------------------------------- server */

typedef struct bn_server bn_server;

/* Bind, start answering (/health says 503 while loading), load the model in
 * the background. Fails at once for bad options or a failed bind. */
bn_status bn_server_start(const bn_srv_config *cfg, bn_server **out);
/* 0: loading, 1: ready, -1: the model failed to load (message in *err). */
int       bn_server_state(bn_server *s, char *err, size_t err_size);
int       bn_server_port(const bn_server *s);
/* Stop accepting, let in-flight requests finish, stop, free. */
void      bn_server_shutdown(bn_server *s);

#endif /* BN_SERVER_H */
