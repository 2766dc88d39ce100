/* http.c — the few HTTP exchanges the Hub needs, over libcurl: a HEAD that
 * reads the Hub's metadata headers, a small GET into memory (the API
 * listing) and a resumable streaming GET into a file, hashed on the fly. */
#include "hub/hub.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BN_HUB_MAX_HEADER 8192

void bn_hub_resp_free(bn_hub_resp *r) {
    free(r->location); free(r->etag); free(r->linked_etag); free(r->repo_commit);
    free(r->error_code); free(r->error_message); free(r->content_range);
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    r->linked_size = -1;
}

static int64_t parse_i64(const char *v) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 0) return -1;
    return (int64_t)x;
}

/* Keep the headers of the last response only: with redirects followed, a
 * new status line starts a new set. */
static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
    bn_hub_resp *r = ud;
    size_t n = size * nitems;
    if (n >= 5 && !memcmp(buf, "HTTP/", 5)) {
        bool te = r->transport_error, pa = r->partial;
        bn_hub_resp_free(r);
        r->transport_error = te; r->partial = pa;
        return n;
    }
    if (n > BN_HUB_MAX_HEADER) return n;   /* absurd header: ignore it */
    const char *colon = memchr(buf, ':', n);
    if (!colon) return n;
    size_t klen = (size_t)(colon - buf);
    const char *v = colon + 1, *e = buf + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t')) e--;
    char val[BN_HUB_MAX_HEADER + 1];
    memcpy(val, v, (size_t)(e - v));
    val[e - v] = '\0';
    static const struct { const char *name; size_t off; } str_headers[] = {
        {"location", offsetof(bn_hub_resp, location)},
        {"etag", offsetof(bn_hub_resp, etag)},
        {"x-linked-etag", offsetof(bn_hub_resp, linked_etag)},
        {"x-repo-commit", offsetof(bn_hub_resp, repo_commit)},
        {"x-error-code", offsetof(bn_hub_resp, error_code)},
        {"x-error-message", offsetof(bn_hub_resp, error_message)},
        {"content-range", offsetof(bn_hub_resp, content_range)},
    };
    for (size_t i = 0; i < sizeof str_headers / sizeof str_headers[0]; i++) {
        if (strlen(str_headers[i].name) == klen && !strncasecmp(buf, str_headers[i].name, klen)) {
            char **slot = (char **)((char *)r + str_headers[i].off);
            free(*slot);
            *slot = strdup(val);   /* NULL on OOM: treated as absent */
            return n;
        }
    }
    if (klen == 14 && !strncasecmp(buf, "content-length", 14)) r->content_length = parse_i64(val);
    else if (klen == 13 && !strncasecmp(buf, "x-linked-size", 13)) r->linked_size = parse_i64(val);
    return n;
}

typedef struct easy {
    CURL              *c;
    struct curl_slist *hdrs;
    char               err[CURL_ERROR_SIZE];
} easy;

static bn_status easy_open(const bn_hub_session *s, const char *url, bn_hub_resp *r, easy *e) {
    memset(e, 0, sizeof *e);
    bn_hub_resp_free(r);
    e->c = curl_easy_init();
    if (!e->c) return bn_fail(BN_ERR_INTERNAL, "libcurl initialisation failed");
    CURL *c = e->c;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, e->err);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "bitnet/" "0.1; hf_hub-compatible");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    /* a stalled transfer (under 1 byte/s for a minute) is an interruption */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    /* sizes must be those of the stored bytes, never of a compressed form */
    e->hdrs = curl_slist_append(NULL, "Accept-Encoding: identity");
    /* the token goes to the Hub only, never to the CDN a redirect names */
    size_t el = strlen(s->endpoint);
    if (s->token && !strncmp(url, s->endpoint, el) && url[el] == '/') {
        char *auth = bn_hub_fmt("Authorization: Bearer %s", s->token);
        if (!auth) { curl_slist_free_all(e->hdrs); curl_easy_cleanup(c); return BN_ERR_NOMEM; }
        struct curl_slist *h = curl_slist_append(e->hdrs, auth);
        free(auth);
        if (h) e->hdrs = h;
    }
    if (!e->hdrs) { curl_easy_cleanup(c); return bn_fail(BN_ERR_NOMEM, "out of memory (curl headers)"); }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->hdrs);
    return BN_OK;
}

static void easy_close(easy *e) {
    curl_slist_free_all(e->hdrs);
    curl_easy_cleanup(e->c);
}

/* After perform: record status, map a transport failure. */
static bn_status easy_finish(easy *e, CURLcode res, const char *url, bn_hub_resp *r) {
    long code = 0;
    curl_easy_getinfo(e->c, CURLINFO_RESPONSE_CODE, &code);
    r->status = code;
    if (res == CURLE_OK) return BN_OK;
    r->transport_error = true;
    /* a connection that died or stalled may well succeed on a retry */
    r->partial = res == CURLE_PARTIAL_FILE || res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR ||
                 res == CURLE_OPERATION_TIMEDOUT || res == CURLE_GOT_NOTHING ||
                 res == CURLE_COULDNT_CONNECT || res == CURLE_HTTP2 || res == CURLE_HTTP2_STREAM;
    return bn_fail(BN_ERR_IO, "could not reach %s: %s", url, e->err[0] ? e->err : curl_easy_strerror(res));
}

bn_status bn_hub_http_head(const bn_hub_session *s, const char *url, bn_hub_resp *r) {
    easy e;
    bn_status st = easy_open(s, url, r, &e);
    if (st) return st;
    curl_easy_setopt(e.c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(e.c, CURLOPT_FOLLOWLOCATION, 0L);
    st = easy_finish(&e, curl_easy_perform(e.c), url, r);
    easy_close(&e);
    return st;
}

typedef struct membuf { char *p; size_t n, cap, max; bool too_big; } membuf;

static size_t on_mem(char *ptr, size_t size, size_t nmemb, void *ud) {
    membuf *m = ud;
    size_t n = size * nmemb;
    if (n > m->max - m->n) { m->too_big = true; return 0; }
    if (m->n + n + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 16384;
        while (cap < m->n + n + 1) cap *= 2;
        char *q = realloc(m->p, cap);
        if (!q) return 0;
        m->p = q; m->cap = cap;
    }
    memcpy(m->p + m->n, ptr, n);
    m->n += n;
    m->p[m->n] = '\0';
    return n;
}

bn_status bn_hub_http_get_mem(const bn_hub_session *s, const char *url, size_t max,
                              char **body, size_t *n, bn_hub_resp *r) {
    easy e;
    bn_status st = easy_open(s, url, r, &e);
    if (st) return st;
    membuf m = {.max = max};
    curl_easy_setopt(e.c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e.c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e.c, CURLOPT_WRITEFUNCTION, on_mem);
    curl_easy_setopt(e.c, CURLOPT_WRITEDATA, &m);
    CURLcode res = curl_easy_perform(e.c);
    if (m.too_big) {
        st = bn_fail(BN_ERR_FORMAT, "answer from %s is larger than %zu bytes", url, max);
    } else {
        st = easy_finish(&e, res, url, r);
    }
    easy_close(&e);
    if (st) { free(m.p); return st; }
    if (!m.p) { m.p = strdup(""); if (!m.p) return bn_fail(BN_ERR_NOMEM, "out of memory"); }
    *body = m.p;
    *n = m.n;
    return BN_OK;
}

/* ---- streaming download with resume, hashing and a progress bar */

typedef struct filectx {
    const bn_hub_session *s;
    CURL        *c;
    bn_hub_resp *r;
    int          fd;
    uint64_t    *have;
    bn_sha256   *hash;
    int64_t      expected;
    bool         started, reject, too_long, bad_range;
    int          write_errno;
    /* progress */
    const char  *label;
    double       t0, t_last;
    uint64_t     have0;
    bool         bar_shown;
} filectx;

static void human(double b, char *out, size_t n) {
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4) { b /= 1000; i++; }
    snprintf(out, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void progress(filectx *f, bool final) {
    double now = bn_time_s();
    if (!final && now - f->t_last < 0.2) return;
    f->t_last = now;
    double dt = now - f->t0, got = (double)(*f->have - f->have0);
    double rate = dt > 0 ? got / dt : 0;
    char a[32], b[32], rt[32], eta[32] = "--";
    human((double)*f->have, a, sizeof a);
    human(f->expected >= 0 ? (double)f->expected : 0, b, sizeof b);
    human(rate, rt, sizeof rt);
    int pct = f->expected > 0 ? (int)(100.0 * (double)*f->have / (double)f->expected) : 0;
    if (rate > 0 && f->expected >= 0) {
        double left = ((double)f->expected - (double)*f->have) / rate;
        if (left < 0) left = 0;
        snprintf(eta, sizeof eta, "%d:%02d", (int)(left / 60), (int)left % 60);
    }
    int w = 24, fill = pct * w / 100;
    char bar[32];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = '\0';
    fprintf(stderr, "\r%-28.28s %3d%% [%s] %s / %s  %s/s  ETA %s  ", f->label, pct, bar, a, b, rt, eta);
    if (final) fputc('\n', stderr);
    fflush(stderr);
    f->bar_shown = true;
}

static bool write_all(int fd, const char *p, size_t n, int *err) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            *err = errno;
            return false;
        }
        p += w; n -= (size_t)w;
    }
    return true;
}

static size_t on_file(char *ptr, size_t size, size_t nmemb, void *ud) {
    filectx *f = ud;
    size_t n = size * nmemb;
    if (!f->started) {
        f->started = true;
        long code = 0;
        curl_easy_getinfo(f->c, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 300) {
            f->reject = true;       /* an error page: never into the file */
        } else if (code == 206) {
            /* the range must start exactly where our bytes end */
            const char *cr = f->r->content_range;
            char want[48];
            snprintf(want, sizeof want, "bytes %" PRIu64 "-", *f->have);
            if (!cr || strncmp(cr, want, strlen(want)) != 0) { f->bad_range = true; return 0; }
        } else if (*f->have > 0) {
            /* 200 to a Range request: the server sends everything; restart */
            if (ftruncate(f->fd, 0) != 0 || lseek(f->fd, 0, SEEK_SET) != 0) {
                f->write_errno = errno;
                return 0;
            }
            *f->have = 0;
            f->have0 = 0;
            bn_sha256_init(f->hash);
        }
    }
    if (f->reject) return n;
    if (f->expected >= 0 && (uint64_t)f->expected - *f->have < n) { f->too_long = true; return 0; }
    if (!write_all(f->fd, ptr, n, &f->write_errno)) return 0;
    bn_sha256_update(f->hash, ptr, n);
    *f->have += n;
    if (f->s->progress) progress(f, false);
    return n;
}

bn_status bn_hub_http_get_file(const bn_hub_session *s, const char *url, int fd,
                               uint64_t *have, bn_sha256 *hash, int64_t expected,
                               const char *label, bn_hub_resp *r) {
    if (expected >= 0 && *have > (uint64_t)expected)
        return bn_fail(BN_ERR_INTERNAL, "partial download larger than the file");
    easy e;
    bn_status st = easy_open(s, url, r, &e);
    if (st) return st;
    filectx f = {.s = s, .c = e.c, .r = r, .fd = fd, .have = have, .hash = hash, .expected = expected,
                 .label = label, .t0 = bn_time_s(), .have0 = *have};
    char range[48];
    if (*have > 0) {
        snprintf(range, sizeof range, "%" PRIu64 "-", *have);
        curl_easy_setopt(e.c, CURLOPT_RANGE, range);
    }
    curl_easy_setopt(e.c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e.c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e.c, CURLOPT_WRITEFUNCTION, on_file);
    curl_easy_setopt(e.c, CURLOPT_WRITEDATA, &f);
    if (lseek(fd, 0, SEEK_END) < 0) { easy_close(&e); return bn_fail(BN_ERR_IO, "seek: %s", strerror(errno)); }
    CURLcode res = curl_easy_perform(e.c);
    if (f.bar_shown) progress(&f, true);
    long code = 0;
    curl_easy_getinfo(e.c, CURLINFO_RESPONSE_CODE, &code);
    if (f.write_errno == ENOSPC || f.write_errno == EDQUOT || f.write_errno == EFBIG) {
        r->status = code;
        st = bn_fail(BN_ERR_IO,
                     "no room to write %s (%s): free some space (or raise the limit) and pull again; the %"
                     PRIu64 " bytes already downloaded are kept (blobs/*.incomplete) and the download resumes",
                     label, f.write_errno == ENOSPC ? "disk full" : strerror(f.write_errno), *have);
    } else if (f.write_errno) {
        r->status = code;
        st = bn_fail(BN_ERR_IO, "cannot write %s: %s", label, strerror(f.write_errno));
    } else if (f.too_long) {
        r->status = code;
        st = bn_fail(BN_ERR_FORMAT, "server sent more than the announced %" PRId64 " bytes for %s", expected, label);
    } else if (f.bad_range) {
        r->status = code;
        st = bn_fail(BN_ERR_FORMAT, "server answered the resume of %s with a wrong range (%s)", label,
                     r->content_range ? r->content_range : "no Content-Range");
    } else {
        st = easy_finish(&e, res, url, r);
        if (st && r->partial)
            bn_fail(BN_ERR_IO, "download of %s interrupted (%s); %" PRIu64 " bytes kept, pulling again resumes",
                    label, e.err[0] ? e.err : curl_easy_strerror(res), *have);
    }
    easy_close(&e);
    return st;
}

bn_status bn_hub_http_error(const bn_hub_session *s, const bn_hub_resp *r, const char *what, const char *repo) {
    const char *code = r->error_code ? r->error_code : "";
    const char *msg = r->error_message ? r->error_message : "";
    const char *sep = *msg ? " — " : "";
    if (r->status == 401 || r->status == 403) {
        if (!strcmp(code, "RepoNotFound"))
            return bn_fail(BN_ERR_NOT_FOUND,
                           "repository not found: %s (HTTP %ld%s%s); check the name, or if it is private "
                           "set HF_TOKEN to a token that can read it", repo, r->status, sep, msg);
        if (!s->token)
            return bn_fail(BN_ERR_IO,
                           "gated or private: %s (HTTP %ld%s%s); set HF_TOKEN to an access token "
                           "(after accepting the model's terms at %s/%s)", what, r->status, sep, msg,
                           s->endpoint, repo);
        return bn_fail(BN_ERR_IO,
                       "access denied to %s (HTTP %ld%s%s): the token (HF_TOKEN or the saved login) has no access; "
                       "request it at %s/%s", what, r->status, sep, msg, s->endpoint, repo);
    }
    if (r->status == 404) {
        if (!strcmp(code, "RevisionNotFound"))
            return bn_fail(BN_ERR_NOT_FOUND, "revision not found: %s%s%s", what, sep, msg);
        if (!strcmp(code, "EntryNotFound"))
            return bn_fail(BN_ERR_NOT_FOUND, "file not found in the repository: %s%s%s", what, sep, msg);
        return bn_fail(BN_ERR_NOT_FOUND, "repository or file not found: %s%s%s (check the name at %s/%s)",
                       what, sep, msg, s->endpoint, repo);
    }
    if (r->status == 429)
        return bn_fail(BN_ERR_IO, "rate limited by the hub for %s (HTTP 429): wait a little and pull again", what);
    if (r->status >= 500)
        return bn_fail(BN_ERR_IO, "hub server error for %s (HTTP %ld%s%s): try again later", what, r->status, sep, msg);
    return bn_fail(BN_ERR_IO, "unexpected answer for %s: HTTP %ld%s%s", what, r->status, sep, msg);
}
