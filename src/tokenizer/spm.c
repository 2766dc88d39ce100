/* spm.c — SentencePiece-style BPE as GGUF "llama" vocabularies (LLaMA 1/2,
 * 1bitLLM's bitnet_b1_58 models) use it, following llama.cpp's algorithm:
 *  - the text starts as one symbol per UTF-8 character (an invalid byte is a
 *    symbol of its own);
 *  - repeatedly the adjacent pair whose concatenation is a token with the
 *    highest score is merged (ties: leftmost);
 *  - a final symbol that is not a token (a character missing from the
 *    vocabulary) falls back to its bytes' <0xNN> tokens, or to <unk>.
 * Tokens are stored with "▁" turned back into " ", so the text is encoded as
 * is (llama.cpp escapes spaces to "▁" instead; the two agree except on text
 * that contains a literal U+2581). The loader is here too. */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>

typedef struct spm_sym { int32_t start, n, prev, next; } spm_sym;
typedef struct spm_bigram { float score; int32_t left, right, size; } spm_bigram;

/* max-heap on (score, then lower left) */
static bool bigram_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_heap { spm_bigram *v; size_t n, cap; } spm_heap;

static bool heap_push(spm_heap *h, spm_bigram b) {
    if (h->n == h->cap) {
        size_t c = h->cap ? h->cap * 2 : 64;
        spm_bigram *p = realloc(h->v, c * sizeof *p);
        if (!p) return false;
        h->v = p;
        h->cap = c;
    }
    size_t i = h->n++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return true;
}

static spm_bigram heap_pop(spm_heap *h) {
    spm_bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bigram_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static bool try_bigram(const bn_tokenizer *t, const char *s, const spm_sym *sym, int32_t l, int32_t r, spm_heap *h) {
    if (l < 0 || r < 0) return true;
    int32_t size = sym[l].n + sym[r].n;
    int32_t id = bn_tok_lookup(t, s + sym[l].start, (size_t)size);
    if (id < 0) return true;
    return heap_push(h, (spm_bigram){t->score ? t->score[id] : 0.0f, l, r, size});
}

static bn_status emit_symbol(const bn_tokenizer *t, const char *s, size_t n, bn_idbuf *out) {
    int32_t id = bn_tok_lookup(t, s, n);
    if (id >= 0) return bn_idbuf_push(out, id);
    for (size_t i = 0; i < n; i++) {
        int32_t b = t->byte_id[(uint8_t)s[i]];
        if (b < 0) b = t->unk_id;
        if (b < 0) return bn_fail(BN_ERR_UNSUPPORTED, "no token for byte 0x%02x and no <unk> token", (uint8_t)s[i]);
        bn_status st = bn_idbuf_push(out, b);
        if (st) return st;
        if (b == t->unk_id && t->byte_id[(uint8_t)s[i]] < 0) break; /* one <unk> per character */
    }
    return BN_OK;
}

bn_status bn_spm_encode(const bn_tokenizer *t, const char *text, size_t len, bool add_prefix, bn_idbuf *out) {
    if (len > (size_t)INT32_MAX / 2) return bn_fail(BN_ERR_INVALID_ARG, "text too long");
    size_t n = len + (add_prefix ? 1 : 0);
    if (n == 0) return BN_OK;
    char *s = bn_malloc(n);
    spm_sym *sym = bn_malloc(n * sizeof *sym);
    spm_heap h = {0};
    bn_status st = BN_OK;
    if (!s || !sym) { st = BN_ERR_NOMEM; goto done; }
    if (add_prefix) s[0] = ' ';
    memcpy(s + (add_prefix ? 1 : 0), text, len);
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t l = bn_utf8_valid_len((const uint8_t *)s + i, n - i);
        if (!l) l = 1;
        sym[ns] = (spm_sym){(int32_t)i, (int32_t)l, ns - 1, i + l < n ? ns + 1 : -1};
        ns++;
        i += l;
    }
    for (int32_t i = 1; i < ns; i++)
        if (!try_bigram(t, s, sym, i - 1, i, &h)) { st = BN_ERR_NOMEM; goto done; }
    while (h.n) {
        spm_bigram b = heap_pop(&h);
        spm_sym *L = &sym[b.left], *R = &sym[b.right];
        /* stale: one side was merged away or grew since this was queued */
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size || L->next != b.right) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = b.left;
        if (!try_bigram(t, s, sym, L->prev, b.left, &h) || !try_bigram(t, s, sym, b.left, L->next, &h)) {
            st = BN_ERR_NOMEM;
            goto done;
        }
    }
    for (int32_t i = 0; i >= 0 && !st; i = sym[i].next) st = emit_symbol(t, s + sym[i].start, (size_t)sym[i].n, out);
done:
    if (st == BN_ERR_NOMEM && !bn_last_error()[0]) bn_fail(BN_ERR_NOMEM, "out of memory");
    free(s);
    free(sym);
    free(h.v);
    return st;
}

/* ---- loading from GGUF */

/* "<0x41>" -> 0x41 */
static int parse_byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

bn_status bn_tokenizer_from_gguf_spm(const bn_gguf *g, bn_tokenizer **out) {
    *out = NULL;
    bn_gguf_vocab voc;
    bn_tokenizer *t;
    bn_status st = bn_gguf_vocab_open(g, &voc, &t);
    if (st) return st;
    const uint64_t nt = voc.n;
    const bn_gguf_value *scores = bn_gguf_find(g, "tokenizer.ggml.scores");
    if (scores && (scores->type != BN_GGUF_ARRAY || scores->v.arr.elem_type != BN_GGUF_FLOAT32 || scores->v.arr.n != nt)) {
        bn_tokenizer_free(t);
        return bn_fail(BN_ERR_FORMAT, "tokenizer.ggml.scores must be %llu float32 values", (unsigned long long)nt);
    }
    t->kind = BN_TOK_SPM;
    t->add_space_prefix = true;
    t->score = bn_malloc((size_t)nt * sizeof *t->score);
    char *tmp = NULL;
    size_t tmp_cap = 0;
    if (!t->score) st = BN_ERR_NOMEM;
    for (uint64_t i = 0; i < nt && !st; i++) {
        bn_gguf_str s;
        int ty;
        if ((st = bn_gguf_vocab_token(&voc, i, &s, &ty))) break;
        float sc = 0.0f;
        if (scores) memcpy(&sc, (const char *)scores->v.arr.data + i * 4, 4);
        t->score[i] = sc;
        if (ty == BN_TOKTYPE_BYTE) {
            int b = parse_byte_token(s.data, (size_t)s.len);
            if (b < 0) { st = bn_fail(BN_ERR_FORMAT, "byte token %llu is not <0xNN>", (unsigned long long)i); break; }
            uint8_t c = (uint8_t)b;
            st = bn_tok_set(t, (int32_t)i, &c, 1, BN_TOKTYPE_BYTE);
            continue;
        }
        if (ty == BN_TOKTYPE_CONTROL || ty == BN_TOKTYPE_UNKNOWN) {
            st = bn_tok_set(t, (int32_t)i, s.data, (size_t)s.len, ty);
            if (ty == BN_TOKTYPE_UNKNOWN && t->unk_id < 0) t->unk_id = (int32_t)i;
            continue;
        }
        /* "▁" (E2 96 81) stands for a space */
        if (s.len > tmp_cap) {
            char *p = realloc(tmp, (size_t)s.len);
            if (!p) { st = bn_fail(BN_ERR_NOMEM, "out of memory"); break; }
            tmp = p;
            tmp_cap = (size_t)s.len;
        }
        size_t o = 0;
        for (uint64_t k = 0; k < s.len;) {
            if (k + 3 <= s.len && !memcmp(s.data + k, "\xe2\x96\x81", 3)) { tmp[o++] = ' '; k += 3; }
            else tmp[o++] = s.data[k++];
        }
        st = bn_tok_set(t, (int32_t)i, tmp, o, ty);
    }
    free(tmp);
    uint32_t v;
    bool b;
    if (!st) {
        bn_gguf_vocab_special_ids(g, &voc, t);
        if (bn_gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &v) && v < nt) t->unk_id = (int32_t)v;
        if (bn_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b)) t->add_space_prefix = b;
        snprintf(t->pre_name, sizeof t->pre_name, "default");
        st = bn_tok_finish(t, NULL);
    }
    if (st) {
        bn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return BN_OK;
}
