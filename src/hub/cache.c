/* cache.c — the huggingface_hub cache layout:
 *   {cache}/models--ORG--NAME/blobs/{etag}            file contents
 *                             snapshots/{commit}/{file} -> ../../blobs/{etag}
 *                             refs/{rev}               commit sha (40 hex)
 *                             .bitnet_last_used        our LRU stamp (mtime)
 *   {cache}/.locks/models--ORG--NAME/{etag}.lock       download locks
 * plus listing, removal and least-recently-used eviction. */
#include "hub/hub.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BN_HUB_STAMP ".bitnet_last_used"

static char *folder_name(const char *repo) {
    /* "ORG/NAME" -> "models--ORG--NAME" */
    size_t n = strlen(repo), slashes = 0;
    for (size_t i = 0; i < n; i++) slashes += repo[i] == '/';
    char *d = bn_malloc(8 + n + slashes + 1);
    if (!d) return NULL;
    memcpy(d, "models--", 8);
    char *p = d + 8;
    for (size_t i = 0; i < n; i++) {
        if (repo[i] == '/') { *p++ = '-'; *p++ = '-'; }
        else *p++ = repo[i];
    }
    *p = '\0';
    return d;
}

char *bn_hub_repo_dir(const bn_hub_session *s, const char *repo) {
    char *f = folder_name(repo);
    if (!f) return NULL;
    char *d = bn_hub_fmt("%s/%s", s->cache, f);
    free(f);
    return d;
}

bn_status bn_hub_read_ref(const char *repo_dir, const char *rev, char out[41]) {
    char *p = bn_hub_fmt("%s/refs/%s", repo_dir, rev);
    if (!p) return BN_ERR_NOMEM;
    char *buf = NULL;
    size_t n = 0;
    bn_status st = bn_hub_exists(p) ? bn_read_file(p, 4096, &buf, &n) : BN_ERR_NOT_FOUND;
    free(p);
    if (st == BN_ERR_NOT_FOUND) return bn_fail(BN_ERR_NOT_FOUND, "no ref %s cached", rev);
    if (st) return st;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = '\0';
    bool ok = n == 40 && bn_hub_is_hex(buf, 40);
    if (ok) memcpy(out, buf, 41);
    free(buf);
    return ok ? BN_OK : bn_fail(BN_ERR_FORMAT, "cached ref %s of %s is not a commit sha", rev, repo_dir);
}

bn_status bn_hub_write_ref(const char *repo_dir, const char *rev, const char *commit) {
    char *p = bn_hub_fmt("%s/refs/%s", repo_dir, rev);
    if (!p) return BN_ERR_NOMEM;
    char *slash = strrchr(p, '/');
    *slash = '\0';
    bn_status st = bn_hub_mkdirs(p);   /* rev may be "refs/pr/1" */
    *slash = '/';
    if (!st) st = bn_hub_write_atomic(p, commit, strlen(commit));
    free(p);
    return st;
}

bn_status bn_hub_link_snapshot(const char *repo_dir, const char *commit, const char *file, const char *etag) {
    char *link = bn_hub_fmt("%s/snapshots/%s/%s", repo_dir, commit, file);
    if (!link) return BN_ERR_NOMEM;
    /* one "../" per folder between the link and the repo folder */
    size_t depth = 2;
    for (const char *c = file; *c; c++) depth += *c == '/';
    char *target = bn_malloc(3 * depth + 6 + strlen(etag) + 1);
    if (!target) { free(link); return BN_ERR_NOMEM; }
    char *t = target;
    for (size_t i = 0; i < depth; i++) { memcpy(t, "../", 3); t += 3; }
    sprintf(t, "blobs/%s", etag);

    bn_status st = BN_OK;
    char cur[4096];
    ssize_t cn = readlink(link, cur, sizeof cur - 1);
    if (cn >= 0) {
        cur[cn] = '\0';
        if (!strcmp(cur, target)) goto done;   /* already in place */
    }
    char *slash = strrchr(link, '/');
    *slash = '\0';
    st = bn_hub_mkdirs(link);
    *slash = '/';
    if (st) goto done;
    /* create under a temporary name, then rename over: atomic replacement */
    char *tmp = bn_hub_tmp_name(link);
    if (!tmp) { st = BN_ERR_NOMEM; goto done; }
    unlink(tmp);
    if (symlink(target, tmp) != 0) st = bn_fail(BN_ERR_IO, "cannot create link %s: %s", tmp, strerror(errno));
    else if (rename(tmp, link) != 0) {
        st = bn_fail(BN_ERR_IO, "cannot create link %s: %s", link, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
done:
    free(target);
    free(link);
    return st;
}

void bn_hub_touch_used(const char *repo_dir) {
    char *p = bn_hub_fmt("%s/" BN_HUB_STAMP, repo_dir);
    if (!p) return;
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        futimens(fd, NULL);   /* now */
        close(fd);
    }
    free(p);
}

/* ---- listing */

static int64_t mtime_of(const struct stat *sb) { return (int64_t)sb->st_mtim.tv_sec; }

/* Fill one entry from a models--* folder; false if it is not a model. */
static bool scan_repo(const char *cache, const char *dname, bn_hub_cached_model *m) {
    memset(m, 0, sizeof *m);
    const char *rest = dname + 8;
    size_t j = 0;
    for (size_t i = 0; rest[i]; i++) {
        if (j + 2 >= sizeof m->repo) return false;
        if (rest[i] == '-' && rest[i + 1] == '-') { m->repo[j++] = '/'; i++; }
        else m->repo[j++] = rest[i];
    }
    m->repo[j] = '\0';
    if (!bn_hub_valid_repo(m->repo)) return false;

    char *dir = bn_hub_fmt("%s/%s", cache, dname);
    if (!dir) return false;
    struct stat sb;
    int64_t newest = 0;
    char path[4096];

    snprintf(path, sizeof path, "%s/blobs", dir);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "%s/blobs/%s", dir, de->d_name);
            if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                m->size_bytes += (uint64_t)sb.st_size;
                if (mtime_of(&sb) > newest) newest = mtime_of(&sb);
            }
        }
        closedir(d);
    }
    int64_t newest_snap = -1;
    snprintf(path, sizeof path, "%s/snapshots", dir);
    d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "%s/snapshots/%s", dir, de->d_name);
            if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
                m->n_snapshots++;
                size_t len = strlen(de->d_name);
                if (mtime_of(&sb) > newest_snap && len < sizeof m->commit) {
                    newest_snap = mtime_of(&sb);
                    memcpy(m->commit, de->d_name, len + 1);
                }
            }
        }
        closedir(d);
    }
    snprintf(path, sizeof path, "%s/refs", dir);
    d = opendir(path);
    if (d) {
        struct dirent *de;
        size_t used = 0;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            size_t n = strlen(de->d_name);
            if (used + n + 2 < sizeof m->refs) {
                if (used) m->refs[used++] = ',';
                memcpy(m->refs + used, de->d_name, n + 1);
                used += n;
            }
        }
        closedir(d);
    }
    char main_commit[41];
    if (bn_hub_read_ref(dir, "main", main_commit) == BN_OK) memcpy(m->commit, main_commit, 41);
    snprintf(path, sizeof path, "%s/" BN_HUB_STAMP, dir);
    m->last_used = stat(path, &sb) == 0 ? mtime_of(&sb) : newest;
    free(dir);
    return true;
}

static int by_used_desc(const void *a, const void *b) {
    const bn_hub_cached_model *x = a, *y = b;
    if (x->last_used != y->last_used) return x->last_used > y->last_used ? -1 : 1;
    return strcmp(x->repo, y->repo);
}

static bn_status list_cache(const char *cache, bn_hub_cached_model **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(cache);
    if (!d) {
        if (errno == ENOENT) return BN_OK;   /* no cache yet: no models */
        return bn_fail(BN_ERR_IO, "cannot read the model cache %s: %s", cache, strerror(errno));
    }
    bn_hub_cached_model *v = NULL;
    size_t n = 0, cap = 0;
    bn_status st = BN_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "models--", 8) != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            bn_hub_cached_model *nv = bn_calloc(cap, sizeof *nv);
            if (!nv) { st = BN_ERR_NOMEM; break; }
            if (n) memcpy(nv, v, n * sizeof *v);
            free(v);
            v = nv;
        }
        if (scan_repo(cache, de->d_name, &v[n])) n++;
    }
    closedir(d);
    if (st) { free(v); return st; }
    if (n) qsort(v, n, sizeof *v, by_used_desc);
    *out = v;
    *n_out = n;
    return BN_OK;
}

bn_status bn_hub_list(const bn_hub_options *o, bn_hub_cached_model **out, size_t *n) {
    if (!out || !n) return bn_fail(BN_ERR_INVALID_ARG, "bn_hub_list: NULL argument");
    char *cache;
    bn_status st = bn_hub_cache_dir(o, &cache);
    if (st) return st;
    st = list_cache(cache, out, n);
    free(cache);
    return st;
}

static bn_status remove_repo(const char *cache, const char *repo) {
    char *f = folder_name(repo);
    if (!f) return BN_ERR_NOMEM;
    char *dir = bn_hub_fmt("%s/%s", cache, f);
    char *locks = bn_hub_fmt("%s/.locks/%s", cache, f);
    free(f);
    bn_status st = dir && locks ? BN_OK : BN_ERR_NOMEM;
    if (!st) {
        struct stat sb;
        if (lstat(dir, &sb) != 0)
            st = bn_fail(BN_ERR_NOT_FOUND, "%s is not in the model cache %s (see 'bitnet models list')", repo, cache);
        else if ((st = bn_hub_rmtree(dir)) == BN_OK)
            bn_hub_rmtree(locks);
    }
    free(dir);
    free(locks);
    return st;
}

bn_status bn_hub_remove(const char *repo, const bn_hub_options *o) {
    if (!bn_hub_valid_repo(repo))
        return bn_fail(BN_ERR_INVALID_ARG, "not a model name: '%s' (expected ORG/NAME)", repo ? repo : "(null)");
    char *cache;
    bn_status st = bn_hub_cache_dir(o, &cache);
    if (st) return st;
    st = remove_repo(cache, repo);
    free(cache);
    return st;
}

bn_status bn_hub_evict(const bn_hub_session *s, const char *keep_repo_dir, uint64_t cap) {
    bn_hub_cached_model *v;
    size_t n;
    bn_status st = list_cache(s->cache, &v, &n);
    if (st) return st;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += v[i].size_bytes;
    /* v is most recent first: evict from the end */
    for (size_t i = n; i-- > 0 && total > cap;) {
        char *dir = bn_hub_repo_dir(s, v[i].repo);
        if (!dir) { st = BN_ERR_NOMEM; break; }
        bool keep = !strcmp(dir, keep_repo_dir);
        free(dir);
        if (keep) continue;
        st = remove_repo(s->cache, v[i].repo);
        if (st) break;
        total -= v[i].size_bytes;
    }
    free(v);
    return st;
}
