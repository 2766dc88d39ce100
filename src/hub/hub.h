/* hub.h — internals of the Hugging Face Hub client: SHA-256, HTTP over
 * libcurl, the huggingface_hub cache layout, choosing a model's files.
 *
 * Everything that comes from the network (JSON listings, headers, file
 * names, etags) is untrusted: names are validated before they become paths
 * and sizes are checked before they are believed. */
#ifndef BN_HUB_H
#define BN_HUB_H

#include "core/core.h"

#include <stdio.h>

/* ---- SHA-256 (sha256.c) */
typedef struct bn_sha256 {
    uint32_t h[8];
    uint64_t len;       /* bytes hashed so far */
    uint8_t  buf[64];
    size_t   n;         /* bytes waiting in buf */
} bn_sha256;

void bn_sha256_init(bn_sha256 *s);
void bn_sha256_update(bn_sha256 *s, const void *data, size_t n);
void bn_sha256_final(bn_sha256 *s, uint8_t out[32]);
void bn_sha256_hex(const uint8_t d[32], char out[65]);
/* Hash everything in fd from offset 0 (leaves the offset at the end). */
bn_status bn_sha256_fd(int fd, bn_sha256 *s, uint64_t *n_bytes);

/* ---- small helpers (util.c) */
/* printf into a malloc'd string; NULL + error on failure. */
char *bn_hub_fmt(const char *fmt, ...) BN_PRINTF(1, 2);
/* Percent-encode for a URL path; keep_slash leaves '/' as is. */
char *bn_hub_urlenc(const char *s, bool keep_slash);
bool bn_hub_is_hex(const char *s, size_t n);          /* exactly n hex digits */
/* "ORG/NAME" or "NAME": letters, digits, '.', '_', '-'; no "--" or "..". */
bool bn_hub_valid_repo(const char *repo);
/* A relative path inside a repo: no "..", no empty/absolute parts, no
 * backslash or control characters. */
bool bn_hub_valid_file(const char *file);
/* Branch, tag or commit: letters, digits, '.', '_', '-', '/'; no "..". */
bool bn_hub_valid_revision(const char *rev);
/* mkdir -p (mode 0755). */
bn_status bn_hub_mkdirs(const char *path);
/* rm -rf without following symlinks. */
bn_status bn_hub_rmtree(const char *path);
/* Write a small file atomically (temp file + rename). */
bn_status bn_hub_write_atomic(const char *path, const char *data, size_t n);
bool bn_hub_exists(const char *path);   /* stat() succeeds (follows links) */
/* "{path}.tmp.{pid}.{tid}": a temporary name unique to the calling thread. */
char *bn_hub_tmp_name(const char *path);

/* ---- a pull in progress: resolved options */
typedef struct bn_hub_session {
    char       *endpoint;   /* no trailing slash */
    const char *token;      /* NULL: anonymous */
    char       *token_buf;  /* owns token when read from a file */
    char       *cache;      /* cache root */
    bool        offline;
    bool        progress;   /* asked for and stderr is a terminal */
    int32_t     retries;
    uint64_t    size_cap;
} bn_hub_session;

bn_status bn_hub_session_init(bn_hub_session *s, const bn_hub_options *o);
void      bn_hub_session_free(bn_hub_session *s);

/* ---- HTTP (http.c) */
typedef struct bn_hub_resp {
    long    status;          /* HTTP status of the final response; 0: none */
    char   *location;        /* Location (redirects)                       */
    char   *etag;            /* ETag                                       */
    char   *linked_etag;     /* X-Linked-Etag (LFS: sha256 of the content) */
    char   *repo_commit;     /* X-Repo-Commit                              */
    char   *error_code;      /* X-Error-Code (RepoNotFound, GatedRepo ...) */
    char   *error_message;   /* X-Error-Message                            */
    char   *content_range;   /* Content-Range                              */
    int64_t content_length;  /* -1 if unknown */
    int64_t linked_size;     /* X-Linked-Size, -1 if unknown */
    bool    transport_error; /* no HTTP answer (connect, reset, timeout)   */
    bool    partial;         /* body cut short: worth resuming            */
} bn_hub_resp;

void bn_hub_resp_free(bn_hub_resp *r);

/* HEAD without following redirects (the Hub's redirect carries the
 * metadata). BN_OK whenever an HTTP answer arrived (check r->status). */
bn_status bn_hub_http_head(const bn_hub_session *s, const char *url, bn_hub_resp *r);
/* GET a small body (at most max bytes) into a malloc'd NUL-terminated buffer. */
bn_status bn_hub_http_get_mem(const bn_hub_session *s, const char *url, size_t max,
                              char **body, size_t *n, bn_hub_resp *r);

/* GET into fd (which holds *have bytes already: a Range request resumes
 * after them). *have and hash follow the bytes on disk, also on failure. If
 * the server ignores the Range the file is restarted. expected: total size
 * or -1. label: name for the progress bar. */
bn_status bn_hub_http_get_file(const bn_hub_session *s, const char *url, int fd,
                               uint64_t *have, bn_sha256 *hash, int64_t expected,
                               const char *label, bn_hub_resp *r);

/* A readable error for an HTTP answer that is not a success. what: the URL
 * or "REPO/FILE"; repo: for hints. */
bn_status bn_hub_http_error(const bn_hub_session *s, const bn_hub_resp *r,
                            const char *what, const char *repo);

/* ---- cache layout (cache.c) */
/* {cache}/models--ORG--NAME */
char *bn_hub_repo_dir(const bn_hub_session *s, const char *repo);
/* Commit a ref points at (out: 40 hex + NUL); BN_ERR_NOT_FOUND if none. */
bn_status bn_hub_read_ref(const char *repo_dir, const char *rev, char out[41]);
bn_status bn_hub_write_ref(const char *repo_dir, const char *rev, const char *commit);
/* snapshots/{commit}/{file} -> ../../blobs/{etag} (relative symlink). */
bn_status bn_hub_link_snapshot(const char *repo_dir, const char *commit,
                               const char *file, const char *etag);
/* Touch {repo_dir}/.bitnet_last_used. */
void bn_hub_touch_used(const char *repo_dir);
/* Evict least recently used models other than keep_repo_dir until the
 * cache holds at most cap bytes. */
bn_status bn_hub_evict(const bn_hub_session *s, const char *keep_repo_dir, uint64_t cap);

/* ---- choosing files (select.c) */
typedef struct bn_hub_files {
    char  **names;
    size_t  n;
    bool    folder;   /* Hugging Face format: the result is the snapshot folder */
} bn_hub_files;

void bn_hub_files_free(bn_hub_files *f);
/* From the repo's file names pick what a model needs (see bn_hub_pull);
 * file: an explicit choice (checked against the list). */
bn_status bn_hub_select(const char *repo, const char *const *all, size_t n_all,
                        const char *file, bn_hub_files *out);

/* Parse GET /api/models/{repo}/revision/{rev}: commit sha (out: 40 hex)
 * and the file names (validated). */
bn_status bn_hub_parse_listing(const char *json, size_t n, char commit[41],
                               char ***names, size_t *n_names);

#endif /* BN_HUB_H */
