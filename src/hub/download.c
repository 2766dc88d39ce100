/* download.c — bn_hub_pull: list the repo at a revision, choose the files,
 * download what the cache lacks (resumable, verified, renamed into place
 * atomically) and link the snapshot; and offline resolution from the cache.
 *
 * Per file, as huggingface_hub does: HEAD {endpoint}/{repo}/resolve/{commit}/{file}
 * without following redirects. The answer names the blob: X-Linked-Etag
 * (large files in LFS: the sha256 of the content, with X-Linked-Size and a
 * redirect to a CDN) or ETag (small files: a git sha1). */
#include "hub/hub.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BN_HUB_MAX_LISTING ((size_t)64 << 20)

/* ETag header value -> blob name: drop W/ and quotes; refuse anything that
 * is not a plain token (it becomes a file name). */
static char *blob_name(const char *etag) {
    if (!etag) return NULL;
    if (!strncmp(etag, "W/", 2)) etag += 2;
    size_t n = strlen(etag);
    if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') { etag++; n -= 2; }
    if (n == 0 || n > 128) return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = etag[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return NULL;
    }
    char *b = bn_malloc(n + 1);
    if (!b) return NULL;
    memcpy(b, etag, n);
    b[n] = '\0';
    return b;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Transient failures (no answer, or a 5xx) are tried again, with backoff. */
static bool transient(bn_status st, const bn_hub_resp *r) {
    return (st && r->transport_error) || (!st && r->status >= 500);
}

static bn_status head_retry(const bn_hub_session *s, const char *url, bn_hub_resp *r) {
    for (int attempt = 0;; attempt++) {
        bn_status st = bn_hub_http_head(s, url, r);
        if (!transient(st, r) || attempt >= s->retries) return st;
        sleep_s(0.25 * (attempt + 1));
    }
}

/* Where the file's bytes come from, and what they must be. */
typedef struct file_meta {
    char   *url;      /* download URL (the CDN after a redirect) */
    char   *etag;     /* blob name */
    int64_t size;     /* -1 unknown */
} file_meta;

static bn_status head_meta(const bn_hub_session *s, const char *repo, const char *commit, const char *file,
                           file_meta *m) {
    memset(m, 0, sizeof *m);
    char *fenc = bn_hub_urlenc(file, true);
    char *url = fenc ? bn_hub_fmt("%s/%s/resolve/%s/%s", s->endpoint, repo, commit, fenc) : NULL;
    free(fenc);
    if (!url) return BN_ERR_NOMEM;
    char *what = bn_hub_fmt("%s/%s", repo, file);
    if (!what) { free(url); return BN_ERR_NOMEM; }
    bn_hub_resp r = {0};
    bn_hub_resp_free(&r);
    bn_status st = BN_OK;
    for (int hop = 0;; hop++) {
        st = head_retry(s, url, &r);
        if (st) break;
        bool redirect = r.status == 301 || r.status == 302 || r.status == 303 || r.status == 307 || r.status == 308;
        if (redirect && r.location && r.location[0] == '/' && hop < 5) {
            /* a relative redirect: the repo was renamed; ask again there */
            char *next = bn_hub_fmt("%s%s", s->endpoint, r.location);
            if (!next) { st = BN_ERR_NOMEM; break; }
            free(url);
            url = next;
            continue;
        }
        if (redirect && r.location) {
            m->url = bn_strdup(r.location);
            m->size = r.linked_size;
        } else if (r.status == 200) {
            m->url = bn_strdup(url);
            m->size = r.linked_size >= 0 ? r.linked_size : r.content_length;
        } else {
            st = bn_hub_http_error(s, &r, what, repo);
            break;
        }
        if (!m->url) { st = BN_ERR_NOMEM; break; }
        m->etag = blob_name(r.linked_etag ? r.linked_etag : r.etag);
        if (!m->etag)
            st = bn_fail(BN_ERR_FORMAT, "the server sent no usable ETag for %s: is %s a Hugging Face Hub "
                         "(HF_ENDPOINT)?", what, s->endpoint);
        break;
    }
    bn_hub_resp_free(&r);
    free(url);
    free(what);
    if (st) { free(m->url); free(m->etag); memset(m, 0, sizeof *m); }
    return st;
}

/* Download into blobs/{etag}.incomplete (resuming), verify, rename. */
static bn_status download_blob(const bn_hub_session *s, const char *repo, const char *file, const file_meta *m,
                               const char *blob) {
    char *part = bn_hub_fmt("%s.incomplete", blob);
    if (!part) return BN_ERR_NOMEM;
    bn_status st = BN_OK;
    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = bn_fail(BN_ERR_IO, "cannot write %s: %s", part, strerror(errno));
        free(part);
        return st;
    }
    bn_sha256 hash;
    uint64_t have = 0;
    bn_sha256_init(&hash);
    st = bn_sha256_fd(fd, &hash, &have);   /* bytes of an earlier attempt */
    if (!st && m->size >= 0 && have > (uint64_t)m->size) {
        if (ftruncate(fd, 0) != 0) st = bn_fail(BN_ERR_IO, "cannot truncate %s: %s", part, strerror(errno));
        have = 0;
        bn_sha256_init(&hash);
    }
    for (int attempt = 0; !st; attempt++) {
        if (m->size >= 0 && have == (uint64_t)m->size) break;
        bn_hub_resp r = {0};
        bn_hub_resp_free(&r);
        st = bn_hub_http_get_file(s, m->url, fd, &have, &hash, m->size, file, &r);
        bool retry = false;
        if (!st && r.status == 416 && m->size < 0 && have > 0) {
            /* size unknown and every byte already here: verified below */
            bn_hub_resp_free(&r);
            break;
        }
        if (!st && r.status != 200 && r.status != 206) {
            st = bn_hub_http_error(s, &r, file, repo);
        } else if (!st && m->size >= 0 && have < (uint64_t)m->size) {
            st = bn_fail(BN_ERR_IO, "download of %s ended early (%" PRIu64 " of %" PRId64 " bytes); pulling again resumes",
                         file, have, m->size);
            retry = true;
        } else if (st && r.partial) {
            retry = true;
        } else if (!st) {
            bn_hub_resp_free(&r);
            break;
        }
        bn_hub_resp_free(&r);
        if (!retry || attempt >= s->retries) break;
        /* back off a little, then resume from what is on disk */
        sleep_s(0.25 * (attempt + 1));
        struct stat sb;
        if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size != have) {
            bn_sha256_init(&hash);
            if (bn_sha256_fd(fd, &hash, &have)) break;
        }
        st = BN_OK;
    }
    if (!st && fsync(fd) != 0) st = bn_fail(BN_ERR_IO, "cannot write %s: %s", part, strerror(errno));
    if (close(fd) != 0 && !st) st = bn_fail(BN_ERR_IO, "cannot write %s: %s", part, strerror(errno));
    if (st) { free(part); return st; }   /* .incomplete stays: the next pull resumes */

    uint8_t dg[32];
    char hex[65];
    bn_sha256_final(&hash, dg);
    bn_sha256_hex(dg, hex);
    if (m->size >= 0 && have != (uint64_t)m->size) {
        unlink(part);
        st = bn_fail(BN_ERR_FORMAT, "size mismatch for %s/%s: got %" PRIu64 " bytes, the hub says %" PRId64
                     "; the download was deleted, pull again", repo, file, have, m->size);
    } else if (bn_hub_is_hex(m->etag, 64) && strcasecmp(hex, m->etag) != 0) {
        /* large files are named by their sha256: anything else is corrupt */
        unlink(part);
        st = bn_fail(BN_ERR_FORMAT, "sha256 mismatch for %s/%s: expected %s, got %s; the corrupted download "
                     "was deleted, pull again (if it persists, the server at %s sends bad data)",
                     repo, file, m->etag, hex, s->endpoint);
    } else if (rename(part, blob) != 0) {
        st = bn_fail(BN_ERR_IO, "cannot move %s into place: %s", part, strerror(errno));
    }
    free(part);
    return st;
}

/* Make snapshots/{commit}/{file} available. */
static bn_status fetch_file(const bn_hub_session *s, const char *repo, const char *repo_dir, const char *commit,
                            const char *file) {
    file_meta m;
    bn_status st = head_meta(s, repo, commit, file, &m);
    if (st) return st;
    char *blobs = bn_hub_fmt("%s/blobs", repo_dir);
    char *blob = bn_hub_fmt("%s/blobs/%s", repo_dir, m.etag);
    char *lockdir = bn_hub_fmt("%s/.locks/%s", s->cache, strrchr(repo_dir, '/') + 1);
    char *lock = lockdir ? bn_hub_fmt("%s/%s.lock", lockdir, m.etag) : NULL;
    int lfd = -1;
    if (!blobs || !blob || !lock) { st = BN_ERR_NOMEM; goto out; }
    struct stat sb;
    if (stat(blob, &sb) == 0 && (m.size < 0 || sb.st_size == m.size)) goto link;   /* shared blob */
    if ((st = bn_hub_mkdirs(blobs)) || (st = bn_hub_mkdirs(lockdir))) goto out;
    /* the same lock file huggingface_hub uses: one writer per blob, even
     * across our processes and Python's */
    lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0) { st = bn_fail(BN_ERR_IO, "cannot create lock %s: %s", lock, strerror(errno)); goto out; }
    while (flock(lfd, LOCK_EX) != 0) {
        if (errno != EINTR) { st = bn_fail(BN_ERR_IO, "cannot lock %s: %s", lock, strerror(errno)); goto out; }
    }
    if (!(stat(blob, &sb) == 0 && (m.size < 0 || sb.st_size == m.size))) {
        st = download_blob(s, repo, file, &m, blob);
        if (st) goto out;
    }
link:
    st = bn_hub_link_snapshot(repo_dir, commit, file, m.etag);
out:
    if (lfd >= 0) close(lfd);   /* releases the lock */
    free(blobs); free(blob); free(lockdir); free(lock);
    free(m.url); free(m.etag);
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The cached snapshot for rev: its commit (out), or BN_ERR_NOT_FOUND. */
static bn_status cached_commit(const char *repo_dir, const char *rev, char out[41]) {
    if (bn_hub_is_hex(rev, 40)) {
        char *p = bn_hub_fmt("%s/snapshots/%s", repo_dir, rev);
        if (!p) return BN_ERR_NOMEM;
        bool ok = bn_hub_exists(p);
        free(p);
        if (ok) { memcpy(out, rev, 41); return BN_OK; }
    }
    return bn_hub_read_ref(repo_dir, rev, out);
}

static bn_status pull_offline(const bn_hub_session *s, const char *repo, const char *repo_dir, const char *file,
                              const char *rev, char **out) {
    char commit[41];
    bn_status st = cached_commit(repo_dir, rev, commit);
    if (st == BN_ERR_NOT_FOUND)
        return bn_fail(BN_ERR_NOT_FOUND, "offline mode (HF_HUB_OFFLINE): %s@%s is not in the model cache %s; "
                       "pull it once with network access", repo, rev, s->cache);
    if (st) return st;
    char *snap = bn_hub_fmt("%s/snapshots/%s", repo_dir, commit);
    if (!snap) return BN_ERR_NOMEM;
    /* choose among the files that are really there (links that resolve) */
    char **names = NULL;
    size_t n = 0, cap = 0;
    DIR *d = opendir(snap);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) && !st) {
            if (de->d_name[0] == '.') continue;
            char *p = bn_hub_fmt("%s/%s", snap, de->d_name);
            if (!p) { st = BN_ERR_NOMEM; break; }
            bool ok = bn_hub_exists(p);
            free(p);
            if (!ok) continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                char **nv = realloc(names, cap * sizeof *nv);
                if (!nv) { st = bn_fail(BN_ERR_NOMEM, "out of memory"); break; }
                names = nv;
            }
            if (!(names[n] = bn_strdup(de->d_name))) { st = BN_ERR_NOMEM; break; }
            n++;
        }
        closedir(d);
    }
    if (!st && n) qsort(names, n, sizeof *names, cmp_str);
    bn_hub_files files = {0};
    if (!st && file) {
        char *p = bn_hub_fmt("%s/%s", snap, file);
        if (!p) st = BN_ERR_NOMEM;
        else if (!bn_hub_exists(p)) {
            free(p);
            st = bn_fail(BN_ERR_NOT_FOUND, "offline mode (HF_HUB_OFFLINE): %s of %s@%s is not in the model cache "
                         "%s; pull it once with network access", file, repo, rev, s->cache);
        } else *out = p;
    } else if (!st) {
        st = bn_hub_select(repo, (const char *const *)names, n, NULL, &files);
        if (st) bn_error_prefix("offline mode (HF_HUB_OFFLINE), cached snapshot %s", commit);
        else *out = files.folder ? bn_strdup(snap) : bn_hub_fmt("%s/%s", snap, files.names[0]);
        if (!st && !*out) st = BN_ERR_NOMEM;
    }
    bn_hub_files_free(&files);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(snap);
    if (!st) bn_hub_touch_used(repo_dir);
    return st;
}

static bn_status pull_online(const bn_hub_session *s, const char *repo, const char *repo_dir, const char *file,
                             const char *rev, char **out) {
    char *renc = bn_hub_urlenc(rev, false);
    char *url = renc ? bn_hub_fmt("%s/api/models/%s/revision/%s", s->endpoint, repo, renc) : NULL;
    free(renc);
    if (!url) return BN_ERR_NOMEM;
    bn_hub_resp r = {0};
    bn_hub_resp_free(&r);
    char *body = NULL;
    size_t blen = 0;
    bn_status st;
    for (int attempt = 0;; attempt++) {
        st = bn_hub_http_get_mem(s, url, BN_HUB_MAX_LISTING, &body, &blen, &r);
        if (!transient(st, &r) || attempt >= s->retries) break;
        free(body);
        body = NULL;
        sleep_s(0.25 * (attempt + 1));
    }
    free(url);
    if (st && r.transport_error) {
        char commit[41], why[512];
        snprintf(why, sizeof why, "%s", bn_last_error());
        if (cached_commit(repo_dir, rev, commit) == BN_OK)
            st = bn_fail(st, "%s; %s@%s is in the cache: set HF_HUB_OFFLINE=1 to use it without network",
                         why, repo, rev);
        else
            st = bn_fail(st, "%s; check the network connection (or HF_ENDPOINT)", why);
    }
    if (!st && r.status != 200) {
        char *what = bn_hub_fmt("%s (revision %s)", repo, rev);
        st = what ? bn_hub_http_error(s, &r, what, repo) : BN_ERR_NOMEM;
        free(what);
    }
    bn_hub_resp_free(&r);
    if (st) { free(body); return st; }

    char commit[41];
    char **all = NULL;
    size_t n_all = 0;
    st = bn_hub_parse_listing(body, blen, commit, &all, &n_all);
    free(body);
    if (st) return st;
    bn_hub_files files = {0};
    st = bn_hub_select(repo, (const char *const *)all, n_all, file, &files);
    for (size_t i = 0; i < n_all; i++) free(all[i]);
    free(all);
    if (st) return st;

    char *snap = bn_hub_fmt("%s/snapshots/%s", repo_dir, commit);
    if (!snap) st = BN_ERR_NOMEM;
    for (size_t i = 0; !st && i < files.n; i++) {
        char *p = bn_hub_fmt("%s/%s", snap, files.names[i]);
        if (!p) { st = BN_ERR_NOMEM; break; }
        bool have = bn_hub_exists(p);   /* the link resolves: nothing to fetch */
        free(p);
        if (!have) st = fetch_file(s, repo, repo_dir, commit, files.names[i]);
    }
    if (!st && strcmp(rev, commit) != 0) st = bn_hub_write_ref(repo_dir, rev, commit);
    if (!st) {
        *out = files.folder ? bn_strdup(snap) : bn_hub_fmt("%s/%s", snap, files.names[0]);
        if (!*out) st = BN_ERR_NOMEM;
    }
    bn_hub_files_free(&files);
    free(snap);
    if (!st) bn_hub_touch_used(repo_dir);
    return st;
}

bn_status bn_hub_pull(const char *repo, const char *file, const char *revision, const bn_hub_options *o,
                      char **local_path) {
    if (!local_path) return bn_fail(BN_ERR_INVALID_ARG, "bn_hub_pull: NULL local_path");
    *local_path = NULL;
    if (!bn_hub_valid_repo(repo))
        return bn_fail(BN_ERR_INVALID_ARG, "not a model name: '%s' (expected ORG/NAME, e.g. "
                       "microsoft/bitnet-b1.58-2B-4T-gguf)", repo ? repo : "(null)");
    if (file && !bn_hub_valid_file(file))
        return bn_fail(BN_ERR_INVALID_ARG, "not a file name inside a repository: '%s'", file);
    const char *rev = revision && *revision ? revision : "main";
    if (!bn_hub_valid_revision(rev)) return bn_fail(BN_ERR_INVALID_ARG, "not a revision: '%s'", rev);
    bn_hub_session s;
    bn_status st = bn_hub_session_init(&s, o);
    if (st) return st;
    char *repo_dir = bn_hub_repo_dir(&s, repo);
    if (!repo_dir) { bn_hub_session_free(&s); return BN_ERR_NOMEM; }
    st = s.offline ? pull_offline(&s, repo, repo_dir, file, rev, local_path)
                   : pull_online(&s, repo, repo_dir, file, rev, local_path);
    if (!st && s.size_cap && !s.offline) {
        st = bn_hub_evict(&s, repo_dir, s.size_cap);
        if (st) { free(*local_path); *local_path = NULL; }
    }
    free(repo_dir);
    bn_hub_session_free(&s);
    return st;
}

bn_status bn_hub_resolve_model(const char *spec, const bn_hub_options *o, char **local_path) {
    if (!spec || !local_path) return bn_fail(BN_ERR_INVALID_ARG, "bn_hub_resolve_model: NULL argument");
    *local_path = NULL;
    if (strncmp(spec, "hf:", 3) != 0) {
        *local_path = bn_strdup(spec);
        return *local_path ? BN_OK : BN_ERR_NOMEM;
    }
    const char *body = spec + 3;
    if (!strncmp(body, "//", 2)) body += 2;
    char *copy = bn_strdup(body);
    if (!copy) return BN_ERR_NOMEM;
    /* "ORG/NAME[/FILE...][@REV]" */
    char *rev = strrchr(copy, '@');
    if (rev) *rev++ = '\0';
    char *file = NULL, *slash = strchr(copy, '/');
    if (slash && (file = strchr(slash + 1, '/'))) *file++ = '\0';
    bn_status st = bn_hub_pull(copy, file, rev, o, local_path);
    if (st) bn_error_prefix("%s", spec);
    free(copy);
    return st;
}
