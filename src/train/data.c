/* data.c — token shards (header + uint16/uint32 ids) and the window sampler. */
#include "train/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bn_status bn_tr_shard_write(const char *path, const uint32_t *ids, uint64_t n, uint32_t vocab) {
    uint32_t width = vocab <= 65536 ? 2 : 4;
    uint8_t hdr[BN_TR_SHARD_HEADER] = {0};
    uint32_t ver = BN_TR_SHARD_VERSION, res = 0;
    memcpy(hdr, BN_TR_SHARD_MAGIC, 8);
    memcpy(hdr + 8, &ver, 4);
    memcpy(hdr + 12, &width, 4);
    memcpy(hdr + 16, &n, 8);
    memcpy(hdr + 24, &vocab, 4);
    memcpy(hdr + 28, &res, 4);
    uint64_t bytes;
    if (!bn_mul_ok(n, width, &bytes) || bytes > BN_MAX_ALLOC)
        return bn_fail(BN_ERR_NOMEM, "shard of %llu ids is too large", (unsigned long long)n);
    uint8_t *body = bn_malloc(bytes ? bytes : 1);
    if (!body) return BN_ERR_NOMEM;
    for (uint64_t i = 0; i < n; i++) {
        if (ids[i] >= vocab) {
            free(body);
            return bn_fail(BN_ERR_INVALID_ARG, "token id %u >= vocab %u", ids[i], vocab);
        }
        if (width == 2) { body[2 * i] = (uint8_t)ids[i]; body[2 * i + 1] = (uint8_t)(ids[i] >> 8); }
        else memcpy(body + 4 * i, &ids[i], 4);
    }
    const void *parts[2] = {hdr, body};
    size_t sizes[2] = {sizeof hdr, (size_t)bytes};
    bn_status st = bn_tr_write_atomic(path, parts, sizes, 2);
    free(body);
    return st;
}

bn_status bn_tr_shard_open(const char *path, bn_tr_shard *s) {
    memset(s, 0, sizeof *s);
    bn_status st = bn_mmap_open(path, true, &s->map);
    if (st != BN_OK) return st;
    const uint8_t *d = s->map.data;
    uint32_t ver, res;
    if (s->map.size < BN_TR_SHARD_HEADER || memcmp(d, BN_TR_SHARD_MAGIC, 8)) {
        st = bn_fail(BN_ERR_FORMAT, "%s: not a token shard (bad magic)", path);
        goto fail;
    }
    memcpy(&ver, d + 8, 4);
    memcpy(&s->width, d + 12, 4);
    memcpy(&s->count, d + 16, 8);
    memcpy(&s->vocab, d + 24, 4);
    memcpy(&res, d + 28, 4);
    if (ver != BN_TR_SHARD_VERSION) {
        st = bn_fail(BN_ERR_UNSUPPORTED, "%s: shard version %u", path, ver);
        goto fail;
    }
    uint64_t bytes;
    if ((s->width != 2 && s->width != 4) || !bn_mul_ok(s->count, s->width, &bytes) ||
        bytes != s->map.size - BN_TR_SHARD_HEADER) {
        st = bn_fail(BN_ERR_FORMAT, "%s: header (%llu ids of %u bytes) does not match the file "
                     "size %zu", path, (unsigned long long)s->count, s->width, s->map.size);
        goto fail;
    }
    s->ids = d + BN_TR_SHARD_HEADER;
    for (uint64_t i = 0; i < s->count; i++)
        if (bn_tr_shard_get(s, i) >= s->vocab) {
            st = bn_fail(BN_ERR_FORMAT, "%s: id %u at %llu is >= the vocabulary size %u", path,
                         bn_tr_shard_get(s, i), (unsigned long long)i, s->vocab);
            goto fail;
        }
    return BN_OK;
fail:
    bn_mmap_close(&s->map);
    memset(s, 0, sizeof *s);
    return st;
}

void bn_tr_shard_close(bn_tr_shard *s) {
    bn_mmap_close(&s->map);
    memset(s, 0, sizeof *s);
}

bn_status bn_tr_shard_sample(const bn_tr_shard *s, bn_tr_rng *rng, int B, int T,
                             int32_t *tokens, int32_t *targets) {
    if (s->count < (uint64_t)T + 1)
        return bn_fail(BN_ERR_INVALID_ARG, "the split has %llu tokens, fewer than one window of "
                       "%d + 1", (unsigned long long)s->count, T);
    uint64_t span = s->count - (uint64_t)T;  /* start offsets 0 .. count-T-1 */
    for (int b = 0; b < B; b++) {
        uint64_t off = bn_tr_rng_below(rng, span);
        for (int t = 0; t < T; t++) {
            tokens[(size_t)b * T + t] = (int32_t)bn_tr_shard_get(s, off + t);
            targets[(size_t)b * T + t] = (int32_t)bn_tr_shard_get(s, off + t + 1);
        }
    }
    return BN_OK;
}
