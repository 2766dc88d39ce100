/* metrics.c — counters, gauges and histograms of the server, rendered in the
 * Prometheus text exposition format for GET /metrics. One mutex: updates
 * are a few additions, far cheaper than anything a request does. */
#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int status_codes[BN_SRV_N_STATUS] = {200, 400, 401, 403, 404, 405, 408, 413, 429, 500, 503, 0};
static const char *const ep_names[BN_EP_COUNT] = {
    "/v1/chat/completions", "/v1/completions", "/v1/models", "/health",
    "/tokenize", "/detokenize", "/metrics", "other"};
/* seconds: from 5 ms to 30 s */
static const double buckets[BN_SRV_N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                 1, 2.5, 5, 10, 15, 20, 30};

void bn_srv_metrics_init(bn_srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void bn_srv_metrics_free(bn_srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

void bn_srv_metrics_request(bn_srv_metrics *m, bn_srv_endpoint ep, int status) {
    if (!m) return;
    if ((int)ep < 0 || ep >= BN_EP_COUNT) ep = BN_EP_OTHER;
    int k = BN_SRV_N_STATUS - 1; /* "other" */
    for (int i = 0; i < BN_SRV_N_STATUS - 1; i++)
        if (status_codes[i] == status) { k = i; break; }
    pthread_mutex_lock(&m->mu);
    m->requests[ep][k]++;
    pthread_mutex_unlock(&m->mu);
}

static void histo_add(bn_srv_histo *h, double v) {
    int k = BN_SRV_N_BUCKETS;
    for (int i = 0; i < BN_SRV_N_BUCKETS; i++)
        if (v <= buckets[i]) { k = i; break; }
    h->counts[k]++;
    h->sum += v;
    h->n++;
}

void bn_srv_metrics_ttft(bn_srv_metrics *m, double s) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    histo_add(&m->ttft, s);
    pthread_mutex_unlock(&m->mu);
}

void bn_srv_metrics_token_latency(bn_srv_metrics *m, double s) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    histo_add(&m->token_latency, s);
    pthread_mutex_unlock(&m->mu);
}

void bn_srv_metrics_tokens(bn_srv_metrics *m, int64_t prompt, int64_t cached, int64_t generated) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (uint64_t)prompt;
    m->cached_prompt_tokens += (uint64_t)cached;
    m->generated_tokens += (uint64_t)generated;
    pthread_mutex_unlock(&m->mu);
}

void bn_srv_metrics_gauges(bn_srv_metrics *m, int64_t queue, int64_t active, int64_t kv_used, int64_t kv_total) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->queue_depth = queue;
    m->active_slots = active;
    m->kv_used = kv_used;
    m->kv_total = kv_total;
    pthread_mutex_unlock(&m->mu);
}

typedef struct sbuf {
    char  *p;
    size_t len, cap;
    bool   oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) BN_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = true; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t cap = b->cap * 2 + (size_t)n + 64;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = true; return; }
        b->p = q;
        b->cap = cap;
    }
}

static void histo_render(sbuf *b, const char *name, const char *help, const bn_srv_histo *h) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < BN_SRV_N_BUCKETS; i++) {
        cum += h->counts[i];
        sb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, buckets[i], (unsigned long long)cum);
    }
    cum += h->counts[BN_SRV_N_BUCKETS];
    sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    sb_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->n);
}

bn_status bn_srv_metrics_render(bn_srv_metrics *m, char **out, size_t *len) {
    sbuf b = {malloc(4096), 0, 4096, false};
    if (!b.p) return bn_fail(BN_ERR_NOMEM, "out of memory");
    b.p[0] = '\0';
    pthread_mutex_lock(&m->mu);
    bn_srv_metrics c = *m; /* a consistent snapshot; render without the lock */
    pthread_mutex_unlock(&m->mu);

    sb_printf(&b, "# HELP bitnet_requests_total HTTP requests by endpoint and status.\n"
                  "# TYPE bitnet_requests_total counter\n");
    for (int e = 0; e < BN_EP_COUNT; e++)
        for (int k = 0; k < BN_SRV_N_STATUS; k++) {
            if (!c.requests[e][k]) continue;
            char code[8];
            if (status_codes[k]) snprintf(code, sizeof code, "%d", status_codes[k]);
            else snprintf(code, sizeof code, "other");
            sb_printf(&b, "bitnet_requests_total{endpoint=\"%s\",status=\"%s\"} %llu\n", ep_names[e], code,
                      (unsigned long long)c.requests[e][k]);
        }
    sb_printf(&b, "# HELP bitnet_prompt_tokens_total Prompt tokens of finished requests.\n"
                  "# TYPE bitnet_prompt_tokens_total counter\nbitnet_prompt_tokens_total %llu\n",
              (unsigned long long)c.prompt_tokens);
    sb_printf(&b, "# HELP bitnet_prompt_tokens_cached_total Prompt tokens reused from a slot's cache.\n"
                  "# TYPE bitnet_prompt_tokens_cached_total counter\nbitnet_prompt_tokens_cached_total %llu\n",
              (unsigned long long)c.cached_prompt_tokens);
    sb_printf(&b, "# HELP bitnet_generated_tokens_total Generated tokens.\n"
                  "# TYPE bitnet_generated_tokens_total counter\nbitnet_generated_tokens_total %llu\n",
              (unsigned long long)c.generated_tokens);
    histo_render(&b, "bitnet_time_to_first_token_seconds", "Time from arrival to the first generated token.", &c.ttft);
    histo_render(&b, "bitnet_token_latency_seconds", "Time between consecutive generated tokens of a request.",
                 &c.token_latency);
    sb_printf(&b, "# HELP bitnet_queue_depth Requests waiting for a slot.\n# TYPE bitnet_queue_depth gauge\n"
                  "bitnet_queue_depth %lld\n", (long long)c.queue_depth);
    sb_printf(&b, "# HELP bitnet_active_slots Slots running a request.\n# TYPE bitnet_active_slots gauge\n"
                  "bitnet_active_slots %lld\n", (long long)c.active_slots);
    sb_printf(&b, "# HELP bitnet_kv_cache_used_positions Positions held in the KV cache (all slots).\n"
                  "# TYPE bitnet_kv_cache_used_positions gauge\nbitnet_kv_cache_used_positions %lld\n",
              (long long)c.kv_used);
    sb_printf(&b, "# HELP bitnet_kv_cache_capacity_positions Positions the KV cache holds (all slots).\n"
                  "# TYPE bitnet_kv_cache_capacity_positions gauge\nbitnet_kv_cache_capacity_positions %lld\n",
              (long long)c.kv_total);
    if (b.oom) {
        free(b.p);
        return bn_fail(BN_ERR_NOMEM, "out of memory rendering metrics");
    }
    *out = b.p;
    *len = b.len;
    return BN_OK;
}
