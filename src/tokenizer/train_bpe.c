/* train_bpe.c — learn a byte-level BPE vocabulary from a corpus.
 *
 * The corpus is cut at special-token text, pre-tokenized with the project's
 * LLaMA 3 regex (the tokenizer's own compiled pattern, so training and
 * encoding split text identically), and counted as distinct pre-tokens
 * ("words"). Every word starts as its bytes; the 256 byte tokens come first,
 * in the GPT-2 byte-to-unicode order that Hugging Face's trainer and Meta's
 * LLaMA 3 vocabulary use. Then, repeatedly, the most frequent adjacent pair
 * (ties: the smaller (left, right) ids, as HF's trainer) becomes a new token.
 *
 * Efficiency: pair counts live in a hash table and are updated incrementally
 * — only words that contain the merged pair are rewritten (each pair keeps a
 * list of the words it occurs in) — and the next pair comes from a max-heap
 * with lazy invalidation: existing pairs' counts only fall, so an entry whose
 * stored count is stale is re-pushed with the current one when popped. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <cjson/cJSON.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/train.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>

const char *const bn_bpe_default_specials[] = {
    "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
};

#define MAX_VOCAB (1 << 24)
#define MAX_SPECIAL_LEN 1024

/* Grow a malloc'd array to hold at least `need` elements (capacity doubles). */
static bool grow(void **p, uint64_t *cap, uint64_t need, size_t elsz) {
    if (need <= *cap) return true;
    uint64_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    uint64_t bytes;
    if (!bn_mul_ok(nc, elsz, &bytes) || bytes > BN_MAX_ALLOC) return false;
    void *q = realloc(*p, (size_t)bytes);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 64;
    while (c < n && c < (1u << 31)) c <<= 1;
    return c;
}

typedef struct heap_ent {
    int64_t  count;
    uint32_t pair;
} heap_ent;

typedef struct trainer {
    /* distinct pre-tokens: bytes in an arena, hash table of index + 1 */
    uint8_t  *wbytes;
    uint64_t  wbytes_n, wbytes_cap;
    uint64_t *woff, *whash;
    uint32_t *wlen;
    int64_t  *wcount;
    uint64_t  nw, wcap, woff_cap, whash_cap, wlen_cap, wcount_cap;
    uint32_t *wslots, wmask;

    /* each word as token ids, rewritten in place as pairs merge */
    int32_t  *syms;
    uint64_t *soff;
    uint32_t *slen;
    uint32_t *stamp; /* last merge step that visited the word */

    /* pairs: hash (left << 32 | right) + 1 -> index */
    uint64_t *pkeys;
    uint32_t *pidx, pmask;
    int32_t  *pl, *pr;
    int64_t  *pcount;
    uint32_t *phead;   /* first node of the pair's word list (index + 1, 0 = none) */
    uint32_t *plastw;  /* last word added to the list (+1): no repeats in a row  */
    uint32_t *ptouch;  /* merge step that last raised the count                  */
    uint64_t  np, pcap[7];

    /* word-list nodes (append only) */
    uint32_t *nword, *nnext;
    uint64_t  nn, ncap[2];

    heap_ent *heap;
    uint64_t  nh, hcap;

    uint32_t *touched;
    uint64_t  ntouched, tcap;

    /* tokens: bytes in an arena, with a bytes -> id table */
    uint8_t  *tbytes;
    uint64_t  tbytes_n, tbytes_cap;
    uint64_t *toff;
    uint32_t *tlen;
    int32_t   ntok;
    int32_t  *tslots;
    uint32_t  tmask;
    int32_t  *ml, *mr; /* merge rules in order (more than the new ids when a
                        * merge spells an existing token: HF reuses its id) */
    int32_t   nmerge;
    uint64_t  mcap[2];

    uint64_t n_bytes, n_pretokens;
} trainer;

static void trainer_free(trainer *t) {
    free(t->wbytes); free(t->woff); free(t->whash); free(t->wlen); free(t->wcount); free(t->wslots);
    free(t->syms); free(t->soff); free(t->slen); free(t->stamp);
    free(t->pkeys); free(t->pidx); free(t->pl); free(t->pr); free(t->pcount);
    free(t->phead); free(t->plastw); free(t->ptouch);
    free(t->nword); free(t->nnext); free(t->heap); free(t->touched);
    free(t->tbytes); free(t->toff); free(t->tlen); free(t->tslots); free(t->ml); free(t->mr);
}

/* ---------------------------------------------------------------- words */

static bn_status word_rehash(trainer *t, uint32_t cap) {
    uint32_t *s = bn_calloc(cap, sizeof *s);
    if (!s) return BN_ERR_NOMEM;
    uint32_t mask = cap - 1;
    for (uint64_t w = 0; w < t->nw; w++) {
        uint32_t i = (uint32_t)t->whash[w] & mask;
        while (s[i]) i = (i + 1) & mask;
        s[i] = (uint32_t)w + 1;
    }
    free(t->wslots);
    t->wslots = s;
    t->wmask = mask;
    return BN_OK;
}

static bn_status add_word(trainer *t, const uint8_t *s, size_t n) {
    if (n == 0) return BN_OK;
    t->n_pretokens++;
    t->n_bytes += n;
    if (n > UINT32_MAX / 2) return bn_fail(BN_ERR_UNSUPPORTED, "a pre-token of %zu bytes is too long", n);
    uint64_t h = bn_tok_hash_bytes(s, n);
    uint32_t i = (uint32_t)h & t->wmask;
    for (uint32_t k; (k = t->wslots[i]) != 0; i = (i + 1) & t->wmask) {
        uint32_t w = k - 1;
        if (t->whash[w] == h && t->wlen[w] == n && !memcmp(t->wbytes + t->woff[w], s, n)) {
            t->wcount[w]++;
            return BN_OK;
        }
    }
    if (t->nw >= UINT32_MAX / 4) return bn_fail(BN_ERR_UNSUPPORTED, "too many distinct pre-tokens");
    uint64_t w = t->nw;
    if (!grow((void **)&t->wbytes, &t->wbytes_cap, t->wbytes_n + n, 1) ||
        !grow((void **)&t->woff, &t->woff_cap, w + 1, sizeof *t->woff) ||
        !grow((void **)&t->whash, &t->whash_cap, w + 1, sizeof *t->whash) ||
        !grow((void **)&t->wlen, &t->wlen_cap, w + 1, sizeof *t->wlen) ||
        !grow((void **)&t->wcount, &t->wcount_cap, w + 1, sizeof *t->wcount))
        return bn_fail(BN_ERR_NOMEM, "out of memory for the word counts");
    memcpy(t->wbytes + t->wbytes_n, s, n);
    t->woff[w] = t->wbytes_n;
    t->wbytes_n += n;
    t->whash[w] = h;
    t->wlen[w] = (uint32_t)n;
    t->wcount[w] = 1;
    t->wslots[i] = (uint32_t)w + 1;
    t->nw++;
    if (t->nw * 2 > (uint64_t)t->wmask + 1) return word_rehash(t, (t->wmask + 1) * 2);
    return BN_OK;
}

/* Pre-tokenize one valid UTF-8 run as the encoder does (pretokenize.c):
 * text the regex skips is a piece too, so nothing is dropped. */
static bn_status split_valid_run(trainer *t, const bn_tokenizer *tk, const uint8_t *s, size_t n,
                                 pcre2_match_data *md) {
    const pcre2_code *re = tk->re;
    size_t pos = 0;
    while (pos < n) {
        int rc = tk->re_jit ? pcre2_jit_match(re, s, n, pos, 0, md, NULL)
                            : pcre2_match(re, s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) /* a JIT limit: the interpreter instead */
            rc = pcre2_match(re, s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        size_t ms = n, me = n;
        if (rc >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
        } else if (rc != PCRE2_ERROR_NOMATCH) {
            return bn_fail(BN_ERR_INTERNAL, "pre-tokenizer regex failed (%d)", rc);
        }
        bn_status st = add_word(t, s + pos, ms - pos);
        if (st) return st;
        if (me <= ms) {
            if (ms >= n) break;
            size_t l = bn_utf8_valid_len(s + ms, n - ms);
            me = ms + (l ? l : 1);
        }
        st = add_word(t, s + ms, me - ms);
        if (st) return st;
        pos = me;
    }
    return BN_OK;
}

/* Ordinary text (no special tokens in it): valid runs through the regex,
 * each maximal run of invalid bytes one piece, as the encoder splits it. */
static bn_status split_text(trainer *t, const bn_tokenizer *tk, const uint8_t *s, size_t len,
                            pcre2_match_data *md) {
    size_t pos = 0;
    while (pos < len) {
        size_t v = bn_utf8_valid_prefix(s + pos, len - pos);
        bn_status st;
        if (v) {
            st = split_valid_run(t, tk, s + pos, v, md);
            pos += v;
        } else {
            size_t e = pos + 1;
            while (e < len && bn_utf8_valid_len(s + e, len - e) == 0) e++;
            st = add_word(t, s + pos, e - pos);
            pos = e;
        }
        if (st) return st;
    }
    return BN_OK;
}

/* Count the corpus's pre-tokens; special-token text separates fragments. */
static bn_status count_words(trainer *t, const bn_tokenizer *tk, const char *text, size_t len,
                             const bn_bpe_train_opts *o) {
    bool first[256] = {0};
    for (int32_t k = 0; k < o->n_specials; k++) first[(uint8_t)o->specials[k][0]] = true;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return bn_fail(BN_ERR_NOMEM, "out of memory for regex match data");
    const uint8_t *s = (const uint8_t *)text;
    size_t seg = 0, i = 0;
    bn_status st = BN_OK;
    while (i < len && !st) {
        size_t best = 0;
        if (first[s[i]]) {
            for (int32_t k = 0; k < o->n_specials; k++) {
                size_t l = strlen(o->specials[k]);
                if (l > best && l <= len - i && !memcmp(s + i, o->specials[k], l)) best = l;
            }
        }
        if (!best) { i++; continue; }
        st = split_text(t, tk, s + seg, i - seg, md);
        i += best;
        seg = i;
    }
    if (!st && len > seg) st = split_text(t, tk, s + seg, len - seg, md);
    pcre2_match_data_free(md);
    return st;
}

/* ---------------------------------------------------------------- tokens */

static int32_t tok_find(const trainer *t, const uint8_t *s, size_t n, uint32_t *slot) {
    uint64_t h = bn_tok_hash_bytes(s, n);
    uint32_t i = (uint32_t)h & t->tmask;
    for (int32_t id; (id = t->tslots[i]) >= 0; i = (i + 1) & t->tmask)
        if (t->tlen[id] == n && !memcmp(t->tbytes + t->toff[id], s, n)) return id;
    if (slot) *slot = i;
    return -1;
}

/* The token for a[..] + b[..]: an existing one with those bytes, or a new id. */
static bn_status tok_concat(trainer *t, int32_t a, int32_t b, int32_t *out) {
    uint64_t la = t->tlen[a], lb = t->tlen[b];
    if (la + lb > (1u << 20)) return bn_fail(BN_ERR_UNSUPPORTED, "a merged token grew beyond 1 MiB");
    if (!grow((void **)&t->tbytes, &t->tbytes_cap, t->tbytes_n + la + lb, 1))
        return bn_fail(BN_ERR_NOMEM, "out of memory for token text");
    uint8_t *dst = t->tbytes + t->tbytes_n;
    memcpy(dst, t->tbytes + t->toff[a], la);
    memcpy(dst + la, t->tbytes + t->toff[b], lb);
    uint32_t slot = 0;
    int32_t id = tok_find(t, dst, la + lb, &slot);
    if (id < 0) {
        id = t->ntok++;
        t->toff[id] = t->tbytes_n;
        t->tlen[id] = (uint32_t)(la + lb);
        t->tbytes_n += la + lb;
        t->tslots[slot] = id;
    }
    *out = id;
    return BN_OK;
}

/* ---------------------------------------------------------------- pairs */

static bn_status pair_rehash(trainer *t, uint32_t cap) {
    uint64_t *k = bn_calloc(cap, sizeof *k);
    uint32_t *x = bn_malloc((size_t)cap * sizeof *x);
    if (!k || !x) { free(k); free(x); return BN_ERR_NOMEM; }
    uint32_t mask = cap - 1;
    for (uint64_t p = 0; p < t->np; p++) {
        uint64_t key = (((uint64_t)(uint32_t)t->pl[p] << 32) | (uint32_t)t->pr[p]) + 1;
        uint32_t i = (uint32_t)bn_tok_mix64(key) & mask;
        while (k[i]) i = (i + 1) & mask;
        k[i] = key;
        x[i] = (uint32_t)p;
    }
    free(t->pkeys); free(t->pidx);
    t->pkeys = k; t->pidx = x; t->pmask = mask;
    return BN_OK;
}

/* Index of pair (a, b), created with count 0 if new. */
static bn_status pair_get(trainer *t, int32_t a, int32_t b, uint32_t *out) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint32_t i = (uint32_t)bn_tok_mix64(key) & t->pmask;
    for (; t->pkeys[i]; i = (i + 1) & t->pmask)
        if (t->pkeys[i] == key) { *out = t->pidx[i]; return BN_OK; }
    uint64_t p = t->np;
    if (p >= UINT32_MAX / 4) return bn_fail(BN_ERR_UNSUPPORTED, "too many distinct pairs");
    if (!grow((void **)&t->pl, &t->pcap[0], p + 1, sizeof *t->pl) ||
        !grow((void **)&t->pr, &t->pcap[1], p + 1, sizeof *t->pr) ||
        !grow((void **)&t->pcount, &t->pcap[2], p + 1, sizeof *t->pcount) ||
        !grow((void **)&t->phead, &t->pcap[3], p + 1, sizeof *t->phead) ||
        !grow((void **)&t->plastw, &t->pcap[4], p + 1, sizeof *t->plastw) ||
        !grow((void **)&t->ptouch, &t->pcap[5], p + 1, sizeof *t->ptouch))
        return bn_fail(BN_ERR_NOMEM, "out of memory for pair counts");
    t->pl[p] = a; t->pr[p] = b; t->pcount[p] = 0;
    t->phead[p] = 0; t->plastw[p] = 0; t->ptouch[p] = 0;
    t->pkeys[i] = key;
    t->pidx[i] = (uint32_t)p;
    t->np++;
    *out = (uint32_t)p;
    if (t->np * 2 > (uint64_t)t->pmask + 1) return pair_rehash(t, (t->pmask + 1) * 2);
    return BN_OK;
}

/* Note that word w contains pair p (unless it was the last word noted). */
static bn_status pair_note_word(trainer *t, uint32_t p, uint32_t w) {
    if (t->plastw[p] == w + 1) return BN_OK;
    if (t->nn >= UINT32_MAX - 1) return bn_fail(BN_ERR_UNSUPPORTED, "corpus too large for the pair index");
    if (!grow((void **)&t->nword, &t->ncap[0], t->nn + 1, sizeof *t->nword) ||
        !grow((void **)&t->nnext, &t->ncap[1], t->nn + 1, sizeof *t->nnext))
        return bn_fail(BN_ERR_NOMEM, "out of memory for the pair index");
    t->nword[t->nn] = w;
    t->nnext[t->nn] = t->phead[p];
    t->phead[p] = (uint32_t)++t->nn;
    t->plastw[p] = w + 1;
    return BN_OK;
}

/* ---------------------------------------------------------------- heap */

/* a before b: more frequent, then smaller (left, right). */
static bool heap_before(const trainer *t, heap_ent a, heap_ent b) {
    if (a.count != b.count) return a.count > b.count;
    if (t->pl[a.pair] != t->pl[b.pair]) return t->pl[a.pair] < t->pl[b.pair];
    return t->pr[a.pair] < t->pr[b.pair];
}

static bn_status heap_push(trainer *t, int64_t count, uint32_t p) {
    if (!grow((void **)&t->heap, &t->hcap, t->nh + 1, sizeof *t->heap))
        return bn_fail(BN_ERR_NOMEM, "out of memory for the pair queue");
    heap_ent e = {count, p};
    uint64_t i = t->nh++;
    while (i > 0) {
        uint64_t up = (i - 1) / 2;
        if (!heap_before(t, e, t->heap[up])) break;
        t->heap[i] = t->heap[up];
        i = up;
    }
    t->heap[i] = e;
    return BN_OK;
}

static heap_ent heap_pop(trainer *t) {
    heap_ent top = t->heap[0], last = t->heap[--t->nh];
    uint64_t i = 0, n = t->nh;
    for (;;) {
        uint64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(t, t->heap[c + 1], t->heap[c])) c++;
        if (!heap_before(t, t->heap[c], last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = last;
    return top;
}

/* ---------------------------------------------------------------- merging */

/* Replace every (a, b) in word w by nt (left to right, non-overlapping) and
 * move the word's pair counts from the old spelling to the new one. */
static bn_status merge_word(trainer *t, uint32_t w, int32_t a, int32_t b, int32_t nt, uint32_t step) {
    int32_t *s = t->syms + t->soff[w];
    uint32_t n = t->slen[w], i, j;
    for (i = 0; i + 1 < n; i++)
        if (s[i] == a && s[i + 1] == b) break;
    if (i + 1 >= n) return BN_OK; /* a stale entry in the pair's word list */
    int64_t c = t->wcount[w];
    uint32_t p;
    bn_status st;
    for (i = 0; i + 1 < n; i++) {
        if ((st = pair_get(t, s[i], s[i + 1], &p))) return st;
        t->pcount[p] -= c;
    }
    for (i = j = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) { s[j++] = nt; i += 2; }
        else s[j++] = s[i++];
    }
    t->slen[w] = n = j;
    for (i = 0; i + 1 < n; i++) {
        if ((st = pair_get(t, s[i], s[i + 1], &p))) return st;
        t->pcount[p] += c;
        if (s[i] != nt && s[i + 1] != nt) continue; /* an old pair: the word is in its list */
        if ((st = pair_note_word(t, p, w))) return st;
        if (t->ptouch[p] != step) {
            t->ptouch[p] = step;
            if (!grow((void **)&t->touched, &t->tcap, t->ntouched + 1, sizeof *t->touched))
                return bn_fail(BN_ERR_NOMEM, "out of memory");
            t->touched[t->ntouched++] = p;
        }
    }
    return BN_OK;
}

static bn_status learn(trainer *t, int32_t target, int64_t min_freq) {
    bn_status st;
    /* initial spelling: bytes as the byte tokens; every pair counted */
    int32_t byte_tok[256];
    for (int32_t id = 0; id < 256; id++) byte_tok[t->tbytes[t->toff[id]]] = id;
    t->syms = bn_malloc((size_t)(t->wbytes_n ? t->wbytes_n : 1) * sizeof *t->syms);
    t->soff = bn_malloc((size_t)t->nw * sizeof *t->soff);
    t->slen = bn_malloc((size_t)t->nw * sizeof *t->slen);
    t->stamp = bn_calloc((size_t)t->nw, sizeof *t->stamp);
    if (!t->syms || !t->soff || !t->slen || !t->stamp) return BN_ERR_NOMEM;
    if ((st = pair_rehash(t, pow2_at_least(t->wbytes_n / 4 + 64)))) return st;
    for (uint64_t w = 0; w < t->nw; w++) {
        t->soff[w] = t->woff[w];
        t->slen[w] = t->wlen[w];
        int32_t *s = t->syms + t->soff[w];
        for (uint32_t i = 0; i < t->wlen[w]; i++) s[i] = byte_tok[t->wbytes[t->woff[w] + i]];
        for (uint32_t i = 0; i + 1 < t->wlen[w]; i++) {
            uint32_t p;
            if ((st = pair_get(t, s[i], s[i + 1], &p))) return st;
            t->pcount[p] += t->wcount[w];
            if ((st = pair_note_word(t, p, (uint32_t)w))) return st;
        }
    }
    for (uint64_t p = 0; p < t->np; p++)
        if ((st = heap_push(t, t->pcount[p], (uint32_t)p))) return st;

    uint32_t step = 0;
    while (t->ntok < target && t->nh) {
        heap_ent e = heap_pop(t);
        uint32_t p = e.pair;
        if (t->pcount[p] != e.count) { /* stale: requeue with the current count */
            if (t->pcount[p] > 0 && (st = heap_push(t, t->pcount[p], p))) return st;
            continue;
        }
        if (e.count < min_freq || e.count <= 0) break;
        int32_t a = t->pl[p], b = t->pr[p], nt = -1;
        if ((st = tok_concat(t, a, b, &nt))) return st;
        if (t->nmerge == INT32_MAX ||
            !grow((void **)&t->ml, &t->mcap[0], (uint64_t)t->nmerge + 1, sizeof *t->ml) ||
            !grow((void **)&t->mr, &t->mcap[1], (uint64_t)t->nmerge + 1, sizeof *t->mr))
            return bn_fail(BN_ERR_NOMEM, "out of memory for merge rules");
        t->ml[t->nmerge] = a;
        t->mr[t->nmerge] = b;
        t->nmerge++;
        step++;
        t->ntouched = 0;
        /* walk the list as it stood: merging prepends nodes for new pairs only */
        for (uint32_t k = t->phead[p]; k; k = t->nnext[k - 1]) {
            uint32_t w = t->nword[k - 1];
            if (t->stamp[w] == step) continue;
            t->stamp[w] = step;
            if ((st = merge_word(t, w, a, b, nt, step))) return st;
        }
        for (uint64_t k = 0; k < t->ntouched; k++) {
            uint32_t q = t->touched[k];
            if (t->pcount[q] > 0 && (st = heap_push(t, t->pcount[q], q))) return st;
        }
    }
    return BN_OK;
}

/* ---------------------------------------------------------------- output */

static cJSON *added_token(int32_t id, const char *content) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddFalseToObject(o, "single_word");
    cJSON_AddFalseToObject(o, "lstrip");
    cJSON_AddFalseToObject(o, "rstrip");
    cJSON_AddFalseToObject(o, "normalized");
    cJSON_AddTrueToObject(o, "special");
    return o;
}

static cJSON *bytelevel_step(bool prefix, bool trim, bool regex) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", prefix);
    cJSON_AddBoolToObject(o, "trim_offsets", trim);
    cJSON_AddBoolToObject(o, "use_regex", regex);
    return o;
}

/* The post-processor Meta's file has: BOS before every sequence. */
static cJSON *post_processor(const char *bos, int32_t bos_id) {
    cJSON *pp = cJSON_CreateObject(), *procs = cJSON_AddArrayToObject(pp, "processors");
    cJSON_AddStringToObject(pp, "type", "Sequence");
    cJSON_AddItemToArray(procs, bytelevel_step(true, false, true));
    if (!bos) return pp;
    cJSON *tp = cJSON_CreateObject();
    cJSON_AddItemToArray(procs, tp);
    cJSON_AddStringToObject(tp, "type", "TemplateProcessing");
    const char *seqs[2] = {"A", "B"};
    for (int which = 0; which < 2; which++) {
        cJSON *arr = cJSON_AddArrayToObject(tp, which ? "pair" : "single");
        for (int k = 0; k <= which; k++) {
            cJSON *sp = cJSON_CreateObject(), *spi = cJSON_AddObjectToObject(sp, "SpecialToken");
            cJSON_AddStringToObject(spi, "id", bos);
            cJSON_AddNumberToObject(spi, "type_id", k);
            cJSON_AddItemToArray(arr, sp);
            cJSON *sq = cJSON_CreateObject(), *sqi = cJSON_AddObjectToObject(sq, "Sequence");
            cJSON_AddStringToObject(sqi, "id", seqs[k]);
            cJSON_AddNumberToObject(sqi, "type_id", k);
            cJSON_AddItemToArray(arr, sq);
        }
    }
    cJSON *stoks = cJSON_AddObjectToObject(tp, "special_tokens");
    cJSON *b = cJSON_AddObjectToObject(stoks, bos);
    cJSON_AddStringToObject(b, "id", bos);
    cJSON_AddItemToObject(b, "ids", cJSON_CreateIntArray(&(int){bos_id}, 1));
    cJSON_AddItemToObject(b, "tokens", cJSON_CreateStringArray(&bos, 1));
    return pp;
}

/* tokenizer.json laid out as Meta's LLaMA 3 file (tokenizers 0.19+). */
static bn_status render_json(const trainer *t, const bn_bpe_train_opts *o, char **json, size_t *json_len) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return BN_ERR_NOMEM;
    bn_status st = BN_OK;
    size_t maxlen = 0;
    for (int32_t id = 0; id < t->ntok; id++)
        if (t->tlen[id] > maxlen) maxlen = t->tlen[id];
    char *buf = bn_malloc(maxlen * 4 + 4);
    if (!buf) { cJSON_Delete(root); return BN_ERR_NOMEM; }

    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    const char *bos = NULL;
    int32_t bos_id = -1;
    for (int32_t k = 0; k < o->n_specials; k++) {
        cJSON_AddItemToArray(added, added_token(t->ntok + k, o->specials[k]));
        if (!strcmp(o->specials[k], "<|begin_of_text|>")) { bos = o->specials[k]; bos_id = t->ntok + k; }
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *steps = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddItemToArray(steps, split);
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", bn_llama3_pattern);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddItemToArray(steps, bytelevel_step(false, true, false));
    cJSON_AddItemToObject(root, "post_processor", post_processor(bos, bos_id));
    cJSON_AddItemToObject(root, "decoder", bytelevel_step(true, true, true));

    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddFalseToObject(model, "fuse_unk");
    cJSON_AddFalseToObject(model, "byte_fallback");
    cJSON_AddTrueToObject(model, "ignore_merges");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (int32_t id = 0; id < t->ntok && vocab; id++) {
        size_t n = bn_bytelevel_encode(t->tbytes + t->toff[id], t->tlen[id], buf);
        buf[n] = 0;
        cJSON *num = cJSON_CreateNumber(id);
        if (!num) { st = BN_ERR_NOMEM; break; }
        cJSON_AddItemToObject(vocab, buf, num);
    }
    for (int32_t k = 0; k < t->nmerge && merges && !st; k++) {
        /* "left right": byte-level strings never contain a space (U+0120 stands for it) */
        size_t n = bn_bytelevel_encode(t->tbytes + t->toff[t->ml[k]], t->tlen[t->ml[k]], buf);
        buf[n++] = ' ';
        n += bn_bytelevel_encode(t->tbytes + t->toff[t->mr[k]], t->tlen[t->mr[k]], buf + n);
        buf[n] = 0;
        cJSON *s = cJSON_CreateString(buf);
        if (!s) { st = BN_ERR_NOMEM; break; }
        cJSON_AddItemToArray(merges, s);
    }
    free(buf);
    if (!st && (!vocab || !merges || !model || !split)) st = BN_ERR_NOMEM;
    char *text = st ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    if (st) return bn_fail(st, "out of memory rendering tokenizer.json");
    if (!text) return bn_fail(BN_ERR_NOMEM, "out of memory rendering tokenizer.json");
    *json = text;
    *json_len = strlen(text);
    return BN_OK;
}

/* ---------------------------------------------------------------- entry */

static bn_status check_opts(const bn_bpe_train_opts *o) {
    if (o->n_specials < 0 || (o->n_specials && !o->specials))
        return bn_fail(BN_ERR_INVALID_ARG, "bad special-token list");
    for (int32_t k = 0; k < o->n_specials; k++) {
        const char *s = o->specials[k];
        if (!s || !s[0]) return bn_fail(BN_ERR_INVALID_ARG, "special token %d is empty", k + 1);
        if (strlen(s) > MAX_SPECIAL_LEN)
            return bn_fail(BN_ERR_INVALID_ARG, "special token %d is longer than %d bytes", k + 1, MAX_SPECIAL_LEN);
        if (bn_utf8_valid_prefix((const uint8_t *)s, strlen(s)) != strlen(s))
            return bn_fail(BN_ERR_INVALID_ARG, "special token '%s' is not valid UTF-8", s);
        for (int32_t j = 0; j < k; j++)
            if (!strcmp(s, o->specials[j])) return bn_fail(BN_ERR_INVALID_ARG, "special token '%s' is listed twice", s);
    }
    if (o->vocab_size > MAX_VOCAB)
        return bn_fail(BN_ERR_INVALID_ARG, "vocabulary size %d is above the limit %d", o->vocab_size, MAX_VOCAB);
    if (o->vocab_size < 256 + o->n_specials)
        return bn_fail(BN_ERR_INVALID_ARG,
                       "vocabulary size %d is too small: it must hold the 256 byte tokens and the %d special "
                       "tokens (at least %d)", o->vocab_size, o->n_specials, 256 + o->n_specials);
    if (o->min_frequency < 1) return bn_fail(BN_ERR_INVALID_ARG, "min frequency must be at least 1");
    return BN_OK;
}

bn_status bn_bpe_train(const char *text, size_t len, const bn_bpe_train_opts *o, char **json,
                       size_t *json_len, bn_bpe_train_stats *stats) {
    if (json) *json = NULL;
    if (json_len) *json_len = 0;
    if (stats) memset(stats, 0, sizeof *stats);
    if (!o || !json || !json_len || (!text && len))
        return bn_fail(BN_ERR_INVALID_ARG, "bn_bpe_train: NULL argument");
    bn_status st = check_opts(o);
    if (st) return st;

    /* The project's byte-level pre-tokenizer: a 256-token tokenizer built
     * with the LLaMA 3 pattern, used here only for its compiled regex. */
    bn_tokenizer *tk = NULL;
    trainer t = {0};
    int32_t target = o->vocab_size - o->n_specials;
    if ((st = bn_tok_alloc(256, 256, &tk))) goto done;
    for (int b = 0; b < 256 && !st; b++) st = bn_tok_set(tk, b, &(uint8_t){(uint8_t)b}, 1, BN_TOKTYPE_NORMAL);
    if (st || (st = bn_tok_finish(tk, NULL))) goto done;

    if ((st = word_rehash(&t, 1024))) goto done;
    if ((st = count_words(&t, tk, text, len, o))) goto done;
    if (t.nw == 0) {
        st = bn_fail(BN_ERR_INVALID_ARG, "the corpus is empty (no text outside special tokens)");
        goto done;
    }

    /* byte tokens, ordered by the codepoint that stands for each byte */
    t.toff = bn_malloc((size_t)target * sizeof *t.toff);
    t.tlen = bn_malloc((size_t)target * sizeof *t.tlen);
    uint32_t tcap = pow2_at_least((uint64_t)target * 2);
    t.tslots = bn_malloc((size_t)tcap * sizeof *t.tslots);
    if (!t.toff || !t.tlen || !t.tslots ||
        !grow((void **)&t.tbytes, &t.tbytes_cap, 256, 1)) {
        st = bn_fail(BN_ERR_NOMEM, "out of memory for the vocabulary");
        goto done;
    }
    for (uint32_t i = 0; i < tcap; i++) t.tslots[i] = -1;
    t.tmask = tcap - 1;
    for (uint32_t cp = 0, id = 0; cp < 512 && id < 256; cp++) {
        int b = bn_unicode_to_byte(cp);
        if (b < 0) continue;
        uint32_t slot = 0;
        t.tbytes[id] = (uint8_t)b;
        t.toff[id] = id;
        t.tlen[id] = 1;
        (void)tok_find(&t, t.tbytes + id, 1, &slot);
        t.tslots[slot] = (int32_t)id;
        id++;
    }
    t.tbytes_n = 256;
    t.ntok = 256;

    if ((st = learn(&t, target, o->min_frequency))) goto done;
    if ((st = render_json(&t, o, json, json_len))) goto done;
    if (stats) {
        stats->n_bytes = t.n_bytes;
        stats->n_pretokens = t.n_pretokens;
        stats->n_words = t.nw;
        for (uint64_t w = 0; w < t.nw; w++) stats->n_tokens_out += (uint64_t)t.wcount[w] * t.slen[w];
        stats->n_merges = t.nmerge;
        stats->n_vocab = t.ntok + o->n_specials;
    }
done:
    if (st == BN_ERR_NOMEM && !bn_last_error()[0]) bn_fail(st, "out of memory training the tokenizer");
    trainer_free(&t);
    bn_tokenizer_free(tk);
    return st;
}
