/* http.c — the HTTP side of `bitnet serve` on libmicrohttpd, one thread per
 * connection: a connection thread may block while its request is generated
 * (non-streaming) or while it waits for the next tokens (SSE, from a
 * content-reader callback). A request's thread watches its socket while it
 * waits, so a client that goes away cancels its own generation only. The
 * model loads in the background: /health answers 503 until it is ready. */
#include "server/server.h"

#include <microhttpd.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct bn_server {
    bn_srv_config     cfg;
    char             *s_model, *s_tok, *s_name, *s_tmpl, *s_host, *s_keys, *s_kernels;
    struct MHD_Daemon *d;
    int               port;
    atomic_int        state;          /* 0 loading, 1 ready, -1 failed      */
    char              load_err[512];
    pthread_t         loader;
    bool              loader_started;
    bn_model         *model;
    bn_tokenizer     *tok;
    bn_sched         *sched;
    bn_oai_ctx        oai;
    char              tmpl[32];
    bn_keydb         *keys;
    bn_ratelimit     *rl;
    bn_srv_metrics    metrics;
    atomic_int        draining;
    atomic_int        active;         /* requests between arrival and completion */
};

void bn_srv_config_default(bn_srv_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8080;
    c->parallel = 4;
    c->n_ctx = 2048;
    c->n_batch = 512;
    c->max_queue = 64;
    c->max_body = 1u << 20;
    c->timeout_s = 30;
    c->logger.min_level = BN_LOG_INFO;
}

/* ---------------------------------------------------------------- per request */

typedef struct conn {
    bn_server      *srv;
    bn_srv_endpoint ep;
    atomic_int      refs;        /* request (con_cls) + streaming response   */
    char           *body;
    size_t          len, cap;
    bool            too_big, answered;
    bool            has_key;
    bn_key_info     key;
    bn_oai_request  oai;
    bool            submitted, usage_done;
    MHD_socket      fd;
    /* streaming */
    char           *out;
    size_t          out_len, out_off, out_cap;
    size_t          text_sent;
    int32_t         toks_sent;
    bool            first_sent, stream_done;
} conn;

static bool peer_gone(MHD_socket fd) {
    if (fd == MHD_INVALID_SOCKET) return false;
    struct pollfd p = {fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Record usage and charge the rate window once the request is done. */
static void record_usage(conn *c) {
    if (c->usage_done || !c->submitted) return;
    c->usage_done = true;
    bn_srv_req *r = c->oai.req;
    if (!c->has_key || !c->srv->keys) return;
    if (bn_usage_record(c->srv->keys, c->key.id, r->n_prompt, r->n_gen))
        bn_log(&c->srv->cfg.logger, BN_LOG_ERROR, "usage not recorded: %s", bn_last_error());
    if (c->key.tpm > 0) bn_ratelimit_charge(c->srv->rl, c->key.id, (int64_t)r->n_prompt + r->n_gen, bn_time_s());
}

/* Wait until the request is done (news_only: or has new output), at most
 * max_ms (< 0: no limit). Returns 1 when there is something, 0 on time-out,
 * -1 if the client went away (then the request is cancelled, which the
 * scheduler notices at its next step). */
static int wait_done_or_news(conn *c, bool news_only, long max_ms) {
    bn_srv_req *r = c->oai.req;
    double t_end = max_ms >= 0 ? bn_time_s() + (double)max_ms / 1000.0 : 0;
    double t_check = bn_time_s();
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (r->state == BN_REQ_DONE) break;
        if (news_only && (r->text_len > c->text_sent || (r->keep_tokens && r->n_toks > c->toks_sent))) break;
        if (max_ms >= 0 && bn_time_s() >= t_end) {
            pthread_mutex_unlock(&r->mu);
            return 0;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        /* every 100 ms, whether or not tokens arrived meanwhile */
        double now = bn_time_s();
        if (now - t_check < 0.1) continue;
        t_check = now;
        if (peer_gone(c->fd)) {
            pthread_mutex_unlock(&r->mu);
            atomic_store(&r->cancel, 1);
            bn_sched_wake(c->srv->sched);
            return -1;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return 1;
}

static void conn_release(conn *c) {
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    if (c->submitted) {
        bn_srv_req *r = c->oai.req;
        pthread_mutex_lock(&r->mu);
        bool done = r->state == BN_REQ_DONE;
        pthread_mutex_unlock(&r->mu);
        if (!done) {
            atomic_store(&r->cancel, 1);
            bn_sched_wake(c->srv->sched);
            pthread_mutex_lock(&r->mu);
            while (r->state != BN_REQ_DONE) pthread_cond_wait(&r->cv, &r->mu);
            pthread_mutex_unlock(&r->mu);
        }
        record_usage(c);
    }
    bn_oai_request_free(&c->oai);
    free(c->body);
    free(c->out);
    atomic_fetch_sub(&c->srv->active, 1);
    free(c);
}

/* ---------------------------------------------------------------- responses */

/* Tell clients how long an idle kept-alive connection lives here: a client
 * that reuses a pooled socket just as our idle timeout closes it sees a
 * connection reset (undici, the OpenAI SDK's transport, honours this hint
 * and retires sockets a second early). */
static void add_keepalive_hint(struct MHD_Response *resp, const bn_server *s) {
    char v[32];
    snprintf(v, sizeof v, "timeout=%d", s->cfg.timeout_s > 0 ? s->cfg.timeout_s : 30);
    MHD_add_response_header(resp, "Keep-Alive", v);
}

static enum MHD_Result send_buf(conn *c, struct MHD_Connection *mc, int status, const char *ctype, char *body,
                                size_t len, int retry_after) {
    c->answered = true;
    if (!body) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        body = strdup(oom);
        if (!body) return MHD_NO;
        len = strlen(body);
        status = 500;
        ctype = "application/json";
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    add_keepalive_hint(resp, c->srv);
    if (retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(mc, (unsigned)status, resp);
    MHD_destroy_response(resp);
    bn_srv_metrics_request(&c->srv->metrics, c->ep, status);
    return ret;
}

static enum MHD_Result send_json(conn *c, struct MHD_Connection *mc, int status, char *json) {
    return send_buf(c, mc, status, "application/json", json, json ? strlen(json) : 0, 0);
}

static enum MHD_Result send_error(conn *c, struct MHD_Connection *mc, const bn_oai_error *e, int retry_after) {
    char *j = bn_oai_error_json(e);
    return send_buf(c, mc, e->http, "application/json", j, j ? strlen(j) : 0, retry_after);
}

static enum MHD_Result send_err(conn *c, struct MHD_Connection *mc, int status, const char *type,
                                const char *code, const char *msg) {
    bn_oai_error e;
    bn_oai_set_error(&e, status, type, code, NULL, "%s", msg);
    return send_error(c, mc, &e, 0);
}

/* ---------------------------------------------------------------- streaming */

static bool out_append(conn *c, const char *a, size_t an, const char *b, size_t bn, const char *z, size_t zn) {
    size_t need = c->out_len + an + bn + zn;
    if (need > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < need) cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o) return false;
        c->out = o;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, a, an);
    memcpy(c->out + c->out_len + an, b, bn);
    memcpy(c->out + c->out_len + an + bn, z, zn);
    c->out_len = need;
    return true;
}

static bool sse_event(conn *c, char *json) {
    if (!json) return false;
    bool ok = out_append(c, "data: ", 6, json, strlen(json), "\n\n", 2);
    free(json);
    return ok;
}

/* Fill c->out with the next events; false on an allocation failure. */
static bool stream_fill(conn *c) {
    bn_server *s = c->srv;
    bn_srv_req *r = c->oai.req;
    c->out_len = c->out_off = 0;
    if (!c->first_sent) {
        c->first_sent = true;
        if (c->oai.kind == BN_OAI_CHAT) return sse_event(c, bn_oai_chunk(&s->oai, &c->oai, "", 0, NULL, 0, NULL, true));
    }
    /* copy what is new under the lock, build JSON outside it */
    pthread_mutex_lock(&r->mu);
    size_t tn = r->text_len - c->text_sent;
    char *text = tn ? malloc(tn) : NULL;
    if (text) memcpy(text, r->text + c->text_sent, tn);
    int32_t kn = r->keep_tokens ? r->n_toks - c->toks_sent : 0;
    bn_srv_tok *toks = kn > 0 ? malloc(sizeof *toks * (size_t)kn) : NULL;
    if (toks) memcpy(toks, r->toks + c->toks_sent, sizeof *toks * (size_t)kn);
    bool done = r->state == BN_REQ_DONE;
    pthread_mutex_unlock(&r->mu);
    bool ok = (tn == 0 || text) && (kn <= 0 || toks);
    if (ok && (tn > 0 || kn > 0)) {
        c->text_sent += tn;
        c->toks_sent += kn > 0 ? kn : 0;
        ok = sse_event(c, bn_oai_chunk(&s->oai, &c->oai, text, tn, toks, kn > 0 ? kn : 0, NULL, false));
    }
    free(text);
    free(toks);
    if (ok && done) {
        c->stream_done = true;
        if (r->status) {
            bn_oai_error e;
            bn_oai_set_error(&e, 500, "server_error", "generation_failed", NULL, "%s", r->error);
            ok = sse_event(c, bn_oai_error_json(&e));
        } else {
            /* usage is on disk before the client can see the end */
            record_usage(c);
            ok = sse_event(c, bn_oai_chunk(&s->oai, &c->oai, NULL, 0, NULL, 0, bn_oai_finish_name(r->finish), false));
            if (ok && c->oai.include_usage) ok = sse_event(c, bn_oai_usage_chunk(&s->oai, &c->oai));
        }
        if (ok) ok = out_append(c, "data: [DONE]\n\n", 14, "", 0, "", 0);
    }
    return ok;
}

static long keepalive_ms(const conn *c) {
    long t = (long)c->srv->cfg.timeout_s * 1000 / 3;
    return t < 200 ? 200 : t > 10000 ? 10000 : t;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    conn *c = cls;
    while (c->out_off >= c->out_len) {
        if (c->stream_done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (c->first_sent) {
            /* while a request waits in the queue or a long prompt is read,
             * send SSE comments: they keep the connection active (the idle
             * timeout is for dead clients) and show that we are alive */
            int w = wait_done_or_news(c, true, keepalive_ms(c));
            if (w < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (w == 0) {
                static const char ping[] = ": keep-alive\n\n";
                c->out_len = c->out_off = 0;
                if (!out_append(c, ping, sizeof ping - 1, "", 0, "", 0)) return MHD_CONTENT_READER_END_WITH_ERROR;
                continue;
            }
        }
        if (!stream_fill(c)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = c->out_len - c->out_off;
    if (n > max) n = max;
    memcpy(buf, c->out + c->out_off, n);
    c->out_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) { conn_release(cls); }

/* ---------------------------------------------------------------- endpoints */

static bool authorize(conn *c, struct MHD_Connection *mc, enum MHD_Result *ret) {
    bn_server *s = c->srv;
    if (!s->keys) return true;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) {
        *ret = send_err(c, mc, 401, "invalid_request_error", "missing_api_key",
                        "an API key is required: send 'Authorization: Bearer KEY'");
        return false;
    }
    const char *k = h + 7;
    while (*k == ' ') k++;
    bool found = false;
    if (bn_keydb_lookup(s->keys, k, &c->key, &found)) {
        *ret = send_err(c, mc, 500, "server_error", NULL, bn_last_error());
        return false;
    }
    if (!found) {
        *ret = send_err(c, mc, 401, "invalid_request_error", "invalid_api_key", "the API key is not valid (unknown or revoked)");
        return false;
    }
    c->has_key = true;
    return true;
}

static enum MHD_Result handle_generate(conn *c, struct MHD_Connection *mc, bn_oai_kind kind) {
    bn_server *s = c->srv;
    enum MHD_Result ret;
    if (!authorize(c, mc, &ret)) return ret;
    if (atomic_load(&s->draining))
        return send_err(c, mc, 503, "server_error", "shutting_down", "the server is shutting down");
    if (atomic_load(&s->state) != 1)
        return send_err(c, mc, 503, "server_error", "model_loading", "the model is still loading; retry shortly");
    int retry = 0;
    if (c->has_key && !bn_ratelimit_admit(s->rl, &c->key, bn_time_s(), &retry)) {
        bn_oai_error e;
        bn_oai_set_error(&e, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                         "rate limit of key '%s' reached (%lld requests/min, %lld tokens/min); retry in %d s",
                         c->key.name, (long long)c->key.rpm, (long long)c->key.tpm, retry);
        return send_error(c, mc, &e, retry);
    }
    bn_oai_error e;
    if (!bn_oai_parse(&s->oai, kind, c->body ? c->body : "", c->len, &c->oai, &e)) return send_error(c, mc, &e, 0);
    bn_status st = bn_sched_submit(s->sched, c->oai.req);
    if (st) return send_err(c, mc, 503, "server_error", st == BN_ERR_CANCELLED ? "shutting_down" : "server_busy",
                            bn_last_error());
    c->submitted = true;
    if (c->oai.stream) {
        atomic_fetch_add(&c->refs, 1);
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8192, stream_read, c, stream_free);
        if (!resp) {
            atomic_fetch_sub(&c->refs, 1);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        add_keepalive_hint(resp, s);
        c->answered = true;
        ret = MHD_queue_response(mc, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        bn_srv_metrics_request(&s->metrics, c->ep, 200);
        return ret;
    }
    /* The connection's idle timeout guards against clients that stall while
     * sending; while we compute, the client is legitimately silent. */
    MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)0);
    if (wait_done_or_news(c, false, -1) < 0) return MHD_NO; /* client gone: close */
    MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)c->srv->cfg.timeout_s);
    bn_srv_req *r = c->oai.req;
    if (r->status) return send_err(c, mc, 500, "server_error", "generation_failed", r->error);
    record_usage(c);
    return send_json(c, mc, 200, bn_oai_response(&s->oai, &c->oai));
}

static enum MHD_Result handle_tokens(conn *c, struct MHD_Connection *mc, bool tokenize) {
    bn_server *s = c->srv;
    enum MHD_Result ret;
    if (!authorize(c, mc, &ret)) return ret;
    if (atomic_load(&s->state) != 1)
        return send_err(c, mc, 503, "server_error", "model_loading", "the model is still loading; retry shortly");
    bn_oai_error e;
    char *out = NULL;
    bool ok = tokenize ? bn_oai_tokenize(&s->oai, c->body ? c->body : "", c->len, &out, &e)
                       : bn_oai_detokenize(&s->oai, c->body ? c->body : "", c->len, &out, &e);
    return ok ? send_json(c, mc, 200, out) : send_error(c, mc, &e, 0);
}

static enum MHD_Result dispatch(conn *c, struct MHD_Connection *mc, const char *url, const char *method) {
    bn_server *s = c->srv;
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    switch (c->ep) {
    case BN_EP_HEALTH: {
        if (!get) break;
        int st = atomic_load(&s->state);
        const char *body = st == 1 ? "{\"status\":\"ok\"}" : st == 0 ? "{\"status\":\"loading\"}" : "{\"status\":\"error\"}";
        return send_json(c, mc, st == 1 ? 200 : 503, strdup(body));
    }
    case BN_EP_METRICS: {
        if (!get) break;
        char *text = NULL;
        size_t len = 0;
        if (bn_srv_metrics_render(&s->metrics, &text, &len)) text = NULL;
        return send_buf(c, mc, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, 0);
    }
    case BN_EP_MODELS: {
        if (!get) break;
        enum MHD_Result ret;
        if (!authorize(c, mc, &ret)) return ret;
        if (atomic_load(&s->state) != 1)
            return send_err(c, mc, 503, "server_error", "model_loading", "the model is still loading; retry shortly");
        return send_json(c, mc, 200, bn_oai_models(&s->oai));
    }
    case BN_EP_CHAT:
        if (post) return handle_generate(c, mc, BN_OAI_CHAT);
        break;
    case BN_EP_COMPLETIONS:
        if (post) return handle_generate(c, mc, BN_OAI_COMPLETION);
        break;
    case BN_EP_TOKENIZE:
    case BN_EP_DETOKENIZE:
        if (post) return handle_tokens(c, mc, c->ep == BN_EP_TOKENIZE);
        break;
    case BN_EP_OTHER:
    case BN_EP_COUNT: {
        char msg[300];
        snprintf(msg, sizeof msg, "no such endpoint: %.200s %.40s", method, url);
        return send_err(c, mc, 404, "invalid_request_error", "not_found", msg);
    }
    }
    char msg[300];
    snprintf(msg, sizeof msg, "%.40s is not allowed on %.200s", method, url);
    return send_err(c, mc, 405, "invalid_request_error", "method_not_allowed", msg);
}

static bn_srv_endpoint endpoint_of(const char *url) {
    static const struct { const char *path; bn_srv_endpoint ep; } map[] = {
        {"/v1/chat/completions", BN_EP_CHAT}, {"/chat/completions", BN_EP_CHAT},
        {"/v1/completions", BN_EP_COMPLETIONS}, {"/completions", BN_EP_COMPLETIONS},
        {"/v1/models", BN_EP_MODELS}, {"/models", BN_EP_MODELS}, {"/health", BN_EP_HEALTH},
        {"/tokenize", BN_EP_TOKENIZE}, {"/detokenize", BN_EP_DETOKENIZE}, {"/metrics", BN_EP_METRICS}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(url, map[i].path)) return map[i].ep;
    return BN_EP_OTHER;
}

static enum MHD_Result send_413(conn *c, struct MHD_Connection *mc) {
    char msg[128];
    snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes", c->srv->cfg.max_body);
    return send_err(c, mc, 413, "invalid_request_error", "request_too_large", msg);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    bn_server *s = cls;
    conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->srv = s;
        c->ep = endpoint_of(url);
        atomic_init(&c->refs, 1);
        atomic_fetch_add(&s->active, 1);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
        *con_cls = c;
        /* refuse an announced oversized body before reading it */
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno || end == cl || v > s->cfg.max_body) c->too_big = true;
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->answered) return MHD_YES;
        if (!c->too_big && c->len + n > s->cfg.max_body) {
            c->too_big = true;
            free(c->body);
            c->body = NULL;
            c->cap = 0;
        }
        if (c->too_big) {
            /* An oversized body is read and dropped, so the client, still
             * sending, sees the 413 instead of a reset connection; past
             * 8x the limit we answer at once and close. */
            c->len += n;
            if (c->len > 8 * s->cfg.max_body) return send_413(c, mc);
            return MHD_YES;
        }
        if (c->len + n + 1 > c->cap) {
            size_t cap = c->cap ? c->cap : 4096;
            while (cap < c->len + n + 1) cap *= 2;
            char *b = realloc(c->body, cap);
            if (!b) return MHD_NO;
            c->body = b;
            c->cap = cap;
        }
        memcpy(c->body + c->len, upload, n);
        c->len += n;
        c->body[c->len] = '\0';
        return MHD_YES;
    }
    if (c->answered) return MHD_YES;
    if (c->too_big) return send_413(c, mc);
    return dispatch(c, mc, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode why) {
    (void)cls;
    (void)mc;
    (void)why;
    conn *c = *con_cls;
    *con_cls = NULL;
    if (c) conn_release(c);
}

/* ---------------------------------------------------------------- lifecycle */

static void *loader_main(void *arg) {
    bn_server *s = arg;
    const bn_srv_config *cfg = &s->cfg;
    bn_model_params mp = bn_model_default_params();
    mp.use_mmap = !cfg->no_mmap;
    mp.head_bits = cfg->head_bits;
    mp.repack = cfg->repack;
    mp.logger = cfg->logger;
    bn_status st = bn_model_load(cfg->model_path, &mp, &s->model);
    if (!st) {
        const char *tp = cfg->tokenizer_path ? cfg->tokenizer_path : cfg->model_path;
        st = bn_tokenizer_load(tp, &s->tok);
        if (st && !cfg->tokenizer_path)
            st = bn_fail(BN_ERR_NOT_FOUND, "%s carries no tokenizer (%s): pass --tokenizer FILE", cfg->model_path,
                         bn_last_error());
    }
    bn_model_info mi;
    if (!st) {
        bn_model_get_info(s->model, &mi);
        if (bn_tokenizer_n_vocab(s->tok) > mi.n_vocab)
            st = bn_fail(BN_ERR_SHAPE, "the tokenizer has %d tokens but the model only %d",
                         (int)bn_tokenizer_n_vocab(s->tok), (int)mi.n_vocab);
    }
    if (!st) {
        const char *t = cfg->chat_template;
        if (t && !bn_chat_template_known(t)) st = bn_fail(BN_ERR_INVALID_ARG, "unknown chat template '%s'", t);
        if (!t) t = bn_chat_template_detect(bn_tokenizer_chat_template(s->tok), mi.arch);
        snprintf(s->tmpl, sizeof s->tmpl, "%s", t ? t : "chatml");
    }
    if (!st) {
        bn_sched_params sp = {0};
        sp.model = s->model;
        sp.tok = s->tok;
        sp.n_slots = cfg->parallel;
        sp.n_ctx = cfg->n_ctx;
        sp.n_batch = cfg->n_batch;
        sp.n_threads = cfg->n_threads;
        sp.max_queue = cfg->max_queue;
        sp.kernels = cfg->kernels;
        sp.device = cfg->device;
        sp.cuda_flags = cfg->cuda_flags;
        sp.kv_type = cfg->kv_type;
        sp.metrics = &s->metrics;
        sp.logger = cfg->logger;
        st = bn_sched_create(&sp, &s->sched);
    }
    if (st) {
        snprintf(s->load_err, sizeof s->load_err, "%s", bn_last_error());
        atomic_store(&s->state, -1);
        return NULL;
    }
    s->oai.tok = s->tok;
    s->oai.chat_template = s->tmpl;
    s->oai.model_name = s->s_name;
    s->oai.n_ctx = bn_sched_n_ctx(s->sched);
    s->oai.n_vocab = mi.n_vocab;
    s->oai.created = (int64_t)time(NULL);
    int32_t cand[4] = {mi.eos_id, bn_tokenizer_eos(s->tok), bn_tokenizer_eot(s->tok), -1};
    for (int i = 0; i < 3; i++) {
        bool dup = cand[i] < 0;
        for (int32_t k = 0; k < s->oai.n_eog && !dup; k++) dup = s->oai.eog[k] == cand[i];
        if (!dup) s->oai.eog[s->oai.n_eog++] = cand[i];
    }
    bn_log(&cfg->logger, BN_LOG_INFO, "model '%s' ready: %d slots x %d positions, chat template %s", s->s_name,
           cfg->parallel, (int)s->oai.n_ctx, s->tmpl);
    atomic_store(&s->state, 1);
    return NULL;
}

static bool is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

static char *dup_or_null(const char *s, bool *oom) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = true;
    return d;
}

static void server_free(bn_server *s) {
    if (!s) return;
    if (s->loader_started) pthread_join(s->loader, NULL);
    bn_sched_free(s->sched);
    bn_tokenizer_free(s->tok);
    bn_model_free(s->model);
    bn_keydb_close(s->keys);
    bn_ratelimit_free(s->rl);
    bn_srv_metrics_free(&s->metrics);
    free(s->s_model);
    free(s->s_tok);
    free(s->s_name);
    free(s->s_tmpl);
    free(s->s_host);
    free(s->s_keys);
    free(s->s_kernels);
    free(s);
}

bn_status bn_server_start(const bn_srv_config *cfg, bn_server **out) {
    if (!cfg || !cfg->model_path || !out) return bn_fail(BN_ERR_INVALID_ARG, "serve: a model is required");
    if (cfg->parallel < 1 || cfg->parallel > 256) return bn_fail(BN_ERR_INVALID_ARG, "--parallel must be in [1, 256]");
    if (cfg->n_ctx < 8) return bn_fail(BN_ERR_INVALID_ARG, "--ctx must be at least 8");
    if (cfg->max_queue < 1) return bn_fail(BN_ERR_INVALID_ARG, "--max-queue must be at least 1");
    if (cfg->port < 0 || cfg->port > 65535) return bn_fail(BN_ERR_INVALID_ARG, "--port must be in [0, 65535]");
    bn_server *s = calloc(1, sizeof *s);
    if (!s) return bn_fail(BN_ERR_NOMEM, "out of memory");
    bn_srv_metrics_init(&s->metrics);
    atomic_init(&s->state, 0);
    atomic_init(&s->draining, 0);
    atomic_init(&s->active, 0);
    s->cfg = *cfg;
    bool oom = false;
    s->cfg.model_path = s->s_model = dup_or_null(cfg->model_path, &oom);
    s->cfg.tokenizer_path = s->s_tok = dup_or_null(cfg->tokenizer_path, &oom);
    s->cfg.chat_template = s->s_tmpl = dup_or_null(cfg->chat_template, &oom);
    s->cfg.host = s->s_host = dup_or_null(cfg->host ? cfg->host : "127.0.0.1", &oom);
    s->cfg.keys_db = s->s_keys = dup_or_null(cfg->keys_db, &oom);
    s->cfg.kernels = s->s_kernels = dup_or_null(cfg->kernels, &oom);
    if (cfg->model_name) {
        s->s_name = dup_or_null(cfg->model_name, &oom);
    } else {
        /* the file or folder name, without a trailing slash */
        const char *p = cfg->model_path;
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/') n--;
        size_t b = n;
        while (b > 0 && p[b - 1] != '/') b--;
        s->s_name = strndup(p + b, n - b);
        if (!s->s_name) oom = true;
    }
    bn_status st = BN_OK;
    if (oom) { st = bn_fail(BN_ERR_NOMEM, "out of memory"); goto fail; }

    /* where to listen */
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gai = getaddrinfo(s->cfg.host, port, &hints, &ai);
    if (gai || !ai) {
        st = bn_fail(BN_ERR_INVALID_ARG, "--host %s: %s", s->cfg.host, gai_strerror(gai));
        goto fail;
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen < sizeof addr ? ai->ai_addrlen : sizeof addr);
    freeaddrinfo(ai);
    if (!s->cfg.keys_db && !is_loopback((struct sockaddr *)&addr) && !cfg->insecure_no_auth) {
        st = bn_fail(BN_ERR_INVALID_ARG,
                     "refusing to listen on %s without API keys: anyone who can reach it could use the model; "
                     "pass --keys-db FILE (see 'bitnet keys create') or, if that is really meant, --insecure-no-auth",
                     s->cfg.host);
        goto fail;
    }
    if (s->cfg.keys_db) {
        if ((st = bn_keydb_open(s->cfg.keys_db, false, &s->keys))) goto fail;
        if ((st = bn_ratelimit_create(&s->rl))) goto fail;
    }

    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
    if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(cfg->timeout_s > 0 ? cfg->timeout_s : 30),
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(cfg->max_queue + cfg->parallel + 64),
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
                            MHD_OPTION_END);
    if (!s->d) {
        st = bn_fail(BN_ERR_IO, "cannot listen on %s:%d: %s", s->cfg.host, cfg->port, strerror(errno));
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    if (pthread_create(&s->loader, NULL, loader_main, s)) {
        st = bn_fail(BN_ERR_INTERNAL, "cannot start the model loader thread");
        MHD_stop_daemon(s->d);
        goto fail;
    }
    s->loader_started = true;
    *out = s;
    return BN_OK;
fail:
    server_free(s);
    return st;
}

int bn_server_state(bn_server *s, char *err, size_t err_size) {
    int st = atomic_load(&s->state);
    if (st < 0 && err && err_size) snprintf(err, err_size, "%s", s->load_err);
    return st;
}

int bn_server_port(const bn_server *s) { return s->port; }

void bn_server_shutdown(bn_server *s) {
    if (!s) return;
    /* stop accepting connections, refuse new work on open ones, let every
     * request in flight finish, then stop */
    MHD_socket lfd = MHD_quiesce_daemon(s->d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    atomic_store(&s->draining, 1);
    while (atomic_load(&s->active) > 0) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->d);
    server_free(s);
}
