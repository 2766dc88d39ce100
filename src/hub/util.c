/* util.c — strings, name validation and file-system helpers for the hub. */
#include "hub/hub.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *bn_hub_fmt(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { bn_fail(BN_ERR_INTERNAL, "format error"); return NULL; }
    char *s = bn_malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *bn_hub_urlenc(const char *s, bool keep_slash) {
    static const char hx[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = bn_malloc(3 * n + 1);
    if (!o) return NULL;
    char *p = o;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                     *c == '-' || *c == '_' || *c == '.' || *c == '~' || (keep_slash && *c == '/');
        if (plain) *p++ = (char)*c;
        else { *p++ = '%'; *p++ = hx[*c >> 4]; *p++ = hx[*c & 15]; }
    }
    *p = '\0';
    return o;
}

bool bn_hub_is_hex(const char *s, size_t n) {
    size_t i = 0;
    for (; s[i] && i <= n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return i == n;
}

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

bool bn_hub_valid_repo(const char *repo) {
    if (!repo) return false;
    size_t n = strlen(repo);
    if (n == 0 || n > 200 || strstr(repo, "--") || strstr(repo, "..")) return false;
    int slashes = 0;
    for (size_t i = 0; i < n; i++) {
        if (repo[i] == '/') {
            if (++slashes > 1 || i == 0 || i + 1 == n) return false;
        } else if (!name_char(repo[i])) {
            return false;
        }
    }
    return repo[0] != '.' && repo[0] != '-';
}

bool bn_hub_valid_file(const char *file) {
    if (!file) return false;
    size_t n = strlen(file);
    if (n == 0 || n > 1000 || file[0] == '/') return false;
    const char *part = file;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)file[i];
        if (c == '/' || c == '\0') {
            size_t len = (size_t)(file + i - part);
            if (len == 0 || (len == 1 && part[0] == '.') || (len == 2 && part[0] == '.' && part[1] == '.'))
                return false;
            part = file + i + 1;
        } else if (c < 0x20 || c == 0x7f || c == '\\') {
            return false;
        }
    }
    return true;
}

bool bn_hub_valid_revision(const char *rev) {
    if (!rev) return false;
    size_t n = strlen(rev);
    if (n == 0 || n > 200 || strstr(rev, "..") || rev[0] == '/' || rev[n - 1] == '/' || strstr(rev, "//"))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char(rev[i]) && rev[i] != '/') return false;
    return true;
}

bn_status bn_hub_mkdirs(const char *path) {
    char *p = bn_strdup(path);
    if (!p) return BN_ERR_NOMEM;
    for (char *c = p + 1;; c++) {
        if (*c == '/' || *c == '\0') {
            char save = *c;
            *c = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                bn_status st = bn_fail(BN_ERR_IO, "cannot create folder %s: %s", p, strerror(errno));
                free(p);
                return st;
            }
            *c = save;
            if (!save) break;
        }
    }
    free(p);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return bn_fail(BN_ERR_IO, "%s exists and is not a folder", path);
    return BN_OK;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)ftw;
    int r = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    return r != 0 && errno != ENOENT ? -1 : 0;
}

bn_status bn_hub_rmtree(const char *path) {
    /* FTW_PHYS: never follow a symlink out of the tree being removed. */
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        return bn_fail(BN_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return BN_OK;
}

bn_status bn_hub_write_atomic(const char *path, const char *data, size_t n) {
    char *tmp = bn_hub_tmp_name(path);
    if (!tmp) return BN_ERR_NOMEM;
    bn_status st = BN_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = bn_fail(BN_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    } else {
        ssize_t w = write(fd, data, n);
        int e = errno;
        if (close(fd) != 0 || w != (ssize_t)n)
            st = bn_fail(BN_ERR_IO, "cannot write %s: %s", tmp, strerror(w < 0 ? e : ENOSPC));
        else if (rename(tmp, path) != 0)
            st = bn_fail(BN_ERR_IO, "cannot rename %s: %s", tmp, strerror(errno));
        if (st) unlink(tmp);
    }
    free(tmp);
    return st;
}

char *bn_hub_tmp_name(const char *path) {
    /* process and thread id: two pulls racing on one file never share it */
    return bn_hub_fmt("%s.tmp.%ld.%ld", path, (long)getpid(), (long)gettid());
}

bool bn_hub_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}
