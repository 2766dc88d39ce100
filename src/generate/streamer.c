/* streamer.c — releases generated text in whole UTF-8 characters and never
 * lets a (partial) stop string reach the caller. */
#include "generate/generate_internal.h"

#include <stdlib.h>
#include <string.h>

void bn_streamer_init(bn_streamer *st, const char *const *stop, int32_t n_stop) {
    memset(st, 0, sizeof *st);
    st->stop = stop;
    st->n_stop = stop ? n_stop : 0;
    st->stop_index = -1;
}

void bn_streamer_free(bn_streamer *st) {
    free(st->text);
    memset(st, 0, sizeof *st);
}

size_t bn_utf8_complete_prefix(const char *s, size_t n) {
    /* look at the last up-to-3 bytes for a lead byte whose sequence is cut */
    size_t back = n < 4 ? n : 4;
    for (size_t k = 1; k <= back; k++) {
        unsigned char b = (unsigned char)s[n - k];
        if ((b & 0xC0) == 0x80) continue; /* continuation byte: keep looking */
        size_t need = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 && b < 0xF0 ? 3 : b >= 0xC2 && b < 0xE0 ? 2 : 1;
        if (need > k) {
            /* the continuation bytes after the lead must all be valid ones */
            return n - k;
        }
        return n;
    }
    return n; /* only continuation bytes: invalid, release as they are */
}

/* Longest suffix of s[0..n) that is a proper prefix of a stop string. */
static size_t stop_prefix_hold(const bn_streamer *st, const char *s, size_t n) {
    size_t hold = 0;
    for (int32_t i = 0; i < st->n_stop; i++) {
        const char *stop = st->stop[i];
        size_t m = stop ? strlen(stop) : 0;
        if (m == 0) continue;
        size_t maxk = m - 1 < n ? m - 1 : n;
        for (size_t k = maxk; k > hold; k--)
            if (!memcmp(s + n - k, stop, k)) { hold = k; break; }
    }
    return hold;
}

bn_status bn_streamer_push(bn_streamer *st, const char *bytes, size_t n, const char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (st->stopped) return BN_OK;
    if (n > 0) {
        uint64_t need;
        if (!bn_add_ok(st->len, (uint64_t)n + 1, &need)) return bn_fail(BN_ERR_NOMEM, "generated text too long");
        if (need > st->cap) {
            size_t cap = st->cap ? st->cap : 256;
            while (cap < need) cap *= 2;
            char *t = realloc(st->text, cap);
            if (!t) return bn_fail(BN_ERR_NOMEM, "out of memory for generated text");
            st->text = t;
            st->cap = cap;
        }
        memcpy(st->text + st->len, bytes, n);
        st->len += n;
        st->text[st->len] = '\0';
    }
    if (!st->text) return BN_OK;
    /* A stop string can only start in the unreleased part: text that could
     * begin one was held back. The new bytes may complete a match. */
    size_t best = SIZE_MAX;
    int32_t best_i = -1;
    for (int32_t i = 0; i < st->n_stop; i++) {
        const char *stop = st->stop[i];
        size_t m = stop ? strlen(stop) : 0;
        if (m == 0 || st->len - st->emitted < m) continue;
        const char *hit = memmem(st->text + st->emitted, st->len - st->emitted, stop, m);
        if (hit && (size_t)(hit - st->text) < best) { best = (size_t)(hit - st->text); best_i = i; }
    }
    size_t end;
    if (best_i >= 0) {
        st->stopped = true;
        st->stop_index = best_i;
        st->len = best;
        st->text[st->len] = '\0';
        end = st->len;
    } else {
        end = st->len - stop_prefix_hold(st, st->text + st->emitted, st->len - st->emitted);
        end = st->emitted + bn_utf8_complete_prefix(st->text + st->emitted, end - st->emitted);
    }
    if (end > st->emitted) {
        *out = st->text + st->emitted;
        *out_len = end - st->emitted;
        st->emitted = end;
    }
    return BN_OK;
}

void bn_streamer_flush(bn_streamer *st, const char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (st->len > st->emitted) {
        *out = st->text + st->emitted;
        *out_len = st->len - st->emitted;
        st->emitted = st->len;
    }
}
