/* bpe.c — byte-pair merging of one pre-token.
 *
 * The pre-token starts as one part per byte. Repeatedly, the adjacent pair
 * with the lowest rank is merged (ties: leftmost), until no pair merges.
 * Parts live in a doubly linked list indexed by their first byte, so a merge
 * is O(1). Short pieces (the common case) find the minimum by a linear scan;
 * long ones use a binary heap of (rank, position) with lazy invalidation, so
 * a pathological 100 kB "word" costs O(n log n), not O(n^2). */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#define BPE_NONE INT32_MAX
#define BPE_HEAP_MIN 48   /* pieces at least this long use the heap */

void bn_bpe_scratch_free(bn_bpe_scratch *s) {
    free(s->id); free(s->rank); free(s->res); free(s->next); free(s->prev); free(s->heap);
    memset(s, 0, sizeof *s);
}

static bn_status scratch_reserve(bn_bpe_scratch *s, size_t n) {
    if (n <= s->cap) return BN_OK;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    bn_bpe_scratch t = {0};
    t.id = bn_malloc(cap * sizeof(int32_t));
    t.rank = bn_malloc(cap * sizeof(int32_t));
    t.res = bn_malloc(cap * sizeof(int32_t));
    t.next = bn_malloc(cap * sizeof(int32_t));
    t.prev = bn_malloc(cap * sizeof(int32_t));
    t.heap = bn_malloc(cap * 2 * sizeof(uint64_t));
    t.cap = cap;
    if (!t.id || !t.rank || !t.res || !t.next || !t.prev || !t.heap) {
        bn_bpe_scratch_free(&t);
        return BN_ERR_NOMEM;
    }
    bn_bpe_scratch_free(s);
    *s = t;
    return BN_OK;
}

/* Rank (and resulting token) of merging part i with its right neighbour. */
static inline int32_t pair_rank(const bn_tokenizer *t, const uint8_t *s, int32_t n,
                                const bn_bpe_scratch *sc, int32_t i, int32_t max_rank, int32_t *res) {
    int32_t j = sc->next[i];
    if (j >= n) return BPE_NONE;
    if (t->mode == BN_BPE_RANKS) {
        int32_t end = sc->next[j];
        int32_t id = bn_tok_lookup(t, s + i, (size_t)(end - i));
        if (id < 0) return BPE_NONE;
        int32_t r = t->rank[id];
        if (r >= max_rank) return BPE_NONE;
        *res = id;
        return r;
    }
    uint64_t key = (((uint64_t)(uint32_t)sc->id[i] << 32) | (uint32_t)sc->id[j]) + 1;
    const bn_pair_map *m = &t->pairs;
    if (!m->keys) return BPE_NONE;
    uint32_t k = (uint32_t)bn_tok_mix64(key) & m->mask;
    while (m->keys[k]) {
        if (m->keys[k] == key) {
            int32_t r = m->rank[k];
            if (r >= max_rank) return BPE_NONE;
            *res = m->result[k];
            return r;
        }
        k = (k + 1) & m->mask;
    }
    return BPE_NONE;
}

/* ---- min-heap of (rank << 32 | position) */
static inline void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

bn_status bn_bpe_piece(const bn_tokenizer *t, const uint8_t *s, size_t len, int32_t max_rank,
                       bn_bpe_scratch *sc, bn_idbuf *out) {
    if (len == 0) return BN_OK;
    if (len > (size_t)INT32_MAX / 2) return bn_fail(BN_ERR_INVALID_ARG, "text piece too long");
    int32_t n = (int32_t)len;
    for (int32_t i = 0; i < n; i++)
        if (t->byte_id[s[i]] < 0)
            return bn_fail(BN_ERR_UNSUPPORTED, "the vocabulary has no token for byte 0x%02x", s[i]);
    if (n == 1) return bn_idbuf_push(out, t->byte_id[s[0]]);
    bn_status st = scratch_reserve(sc, (size_t)n);
    if (st) return st;
    int32_t *id = sc->id, *rank = sc->rank, *res = sc->res, *next = sc->next, *prev = sc->prev;
    for (int32_t i = 0; i < n; i++) {
        id[i] = t->byte_id[s[i]];
        next[i] = i + 1;
        prev[i] = i - 1;
    }
    for (int32_t i = 0; i < n; i++) rank[i] = pair_rank(t, s, n, sc, i, max_rank, &res[i]);

    if (n < BPE_HEAP_MIN) {
        for (;;) {
            int32_t best = -1, br = BPE_NONE;
            for (int32_t i = 0; i < n; i = next[i])
                if (rank[i] < br) { br = rank[i]; best = i; }
            if (best < 0) break;
            int32_t j = next[best];
            id[best] = res[best];
            next[best] = next[j];
            if (next[j] < n) prev[next[j]] = best;
            rank[best] = pair_rank(t, s, n, sc, best, max_rank, &res[best]);
            if (prev[best] >= 0) rank[prev[best]] = pair_rank(t, s, n, sc, prev[best], max_rank, &res[prev[best]]);
        }
    } else {
        uint64_t *heap = sc->heap;
        size_t hn = 0;
        for (int32_t i = 0; i < n; i++)
            if (rank[i] != BPE_NONE) heap_push(heap, &hn, (uint64_t)(uint32_t)rank[i] << 32 | (uint32_t)i);
        while (hn) {
            uint64_t top = heap_pop(heap, &hn);
            int32_t i = (int32_t)(uint32_t)top, r = (int32_t)(top >> 32);
            if (rank[i] != r) continue; /* stale: part i changed or was absorbed */
            int32_t j = next[i];
            id[i] = res[i];
            next[i] = next[j];
            if (next[j] < n) prev[next[j]] = i;
            rank[j] = -1; /* j no longer starts a part */
            rank[i] = pair_rank(t, s, n, sc, i, max_rank, &res[i]);
            if (rank[i] != BPE_NONE) heap_push(heap, &hn, (uint64_t)(uint32_t)rank[i] << 32 | (uint32_t)i);
            int32_t p = prev[i];
            if (p >= 0) {
                rank[p] = pair_rank(t, s, n, sc, p, max_rank, &res[p]);
                if (rank[p] != BPE_NONE) heap_push(heap, &hn, (uint64_t)(uint32_t)rank[p] << 32 | (uint32_t)p);
            }
            /* The heap holds at most one live entry per part plus stale ones;
             * each merge pushes <= 2, so 2n slots always suffice. */
        }
    }
    for (int32_t i = 0; i < n; i = next[i]) {
        st = bn_idbuf_push(out, id[i]);
        if (st) return st;
    }
    return BN_OK;
}
