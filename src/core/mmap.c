/* mmap.c — read-only whole-file mapping, with a read() fallback. */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static bn_status read_all(int fd, uint8_t *buf, size_t n, const char *path) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return bn_fail(BN_ERR_IO, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "unexpected end of file");
        got += (size_t)r;
    }
    return BN_OK;
}

bn_status bn_mmap_open(const char *path, bool use_mmap, bn_mmap *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_fail(BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return bn_fail(BN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return bn_fail(BN_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        static const uint8_t empty[1] = {0};
        out->data = empty;
        out->size = 0;
        return BN_OK;
    }
    if (use_mmap) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            close(fd);
            out->data = p;
            out->size = size;
            out->mapped = true;
            return BN_OK;
        }
    }
    /* Heap copy: 2 MiB-aligned and advised for transparent huge pages, so
     * streaming weight reads are not cut at every 4 KiB page (hardware
     * prefetchers stop at page boundaries) and the TLB covers the model. */
    uint8_t *buf = NULL;
    const size_t huge = (size_t)2 << 20;
    if (size >= huge) {
        void *p = NULL;
        if (posix_memalign(&p, huge, (size + huge - 1) / huge * huge) == 0) {
            buf = p;
#ifdef MADV_HUGEPAGE
            madvise(buf, (size + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
        }
    }
    if (!buf) buf = bn_malloc(size);
    if (!buf) {
        close(fd);
        bn_error_prefix("%s", path);
        return BN_ERR_NOMEM;
    }
    bn_status s = read_all(fd, buf, size, path);
    close(fd);
    if (s != BN_OK) {
        free(buf);
        return s;
    }
    out->data = buf;
    out->size = size;
    return BN_OK;
}

void bn_mmap_close(bn_mmap *m) {
    if (!m || !m->data) return;
    if (m->mapped) munmap((void *)m->data, m->size);
    else if (m->size) free((void *)m->data);
    memset(m, 0, sizeof *m);
}

bn_status bn_read_file(const char *path, size_t max_size, char **out, size_t *out_len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return bn_fail(BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return bn_fail(BN_ERR_IO, "%s: cannot seek", path);
    }
    long sz = ftell(f);
    if (sz < 0 || (size_t)sz > max_size) {
        fclose(f);
        return bn_fail(BN_ERR_FORMAT, "%s: file size %ld exceeds the limit of %zu bytes", path, sz, max_size);
    }
    rewind(f);
    char *buf = bn_malloc((size_t)sz + 1);
    if (!buf) {
        fclose(f);
        return BN_ERR_NOMEM;
    }
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f);
        free(buf);
        return bn_fail(BN_ERR_IO, "%s: read failed", path);
    }
    fclose(f);
    buf[sz] = '\0';
    *out = buf;
    if (out_len) *out_len = (size_t)sz;
    return BN_OK;
}
