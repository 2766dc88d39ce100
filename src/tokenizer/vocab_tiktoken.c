/* vocab_tiktoken.c — load a tiktoken ranks file ("base64(bytes) rank" per
 * line; the rank is the token id and the merge priority) and add LLaMA 3's
 * 256 special tokens after the ranked ones.
 *
 * Special-token names follow the list in Meta's original Llama 3
 * tokenizer.py, which is also the list in Microsoft's BitNet
 * gpu/tokenizer.py that ships this very file for BitNet b1.58 2B4T:
 * 128000 <|begin_of_text|>, 128001 <|end_of_text|>, 128002..128005
 * <|reserved_special_token_0..3|>, 128006 <|start_header_id|>, 128007
 * <|end_header_id|>, 128008 <|reserved_special_token_4|>, 128009 <|eot_id|>,
 * 128010..128255 <|reserved_special_token_5..250|>. (Llama 3.1 renamed
 * 128004/128005/128008/128010; the ids that matter here are the same.) */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#define N_LLAMA3_SPECIAL 256
#define MAX_TIKTOKEN_BYTES ((size_t)256 << 20)

static int b64val(uint8_t c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decode standard base64 with '=' padding; false on malformed input. */
static bool b64_decode(const char *s, size_t n, uint8_t *out, size_t *out_n) {
    if (n % 4) return false;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            uint8_t c = (uint8_t)s[i + k];
            if (c == '=' && i + 4 == n && k >= 2) { v[k] = 0; pad++; continue; }
            if (pad) return false; /* data after padding */
            v[k] = b64val(c);
            if (v[k] < 0) return false;
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (uint8_t)(x >> 16);
        if (pad < 2) out[o++] = (uint8_t)(x >> 8);
        if (pad < 1) out[o++] = (uint8_t)x;
    }
    *out_n = o;
    return true;
}

typedef struct tk_line {
    const char *b64;
    size_t      b64_len;
    int64_t     rank;
} tk_line;

static const char *special_name(int k, char *buf, size_t cap) {
    static const char *const fixed[10] = {
        "<|begin_of_text|>", "<|end_of_text|>", NULL, NULL, NULL, NULL,
        "<|start_header_id|>", "<|end_header_id|>", NULL, "<|eot_id|>",
    };
    if (k < 10 && fixed[k]) return fixed[k];
    int r = k < 6 ? k - 2 : k == 8 ? 4 : k - 5;
    snprintf(buf, cap, "<|reserved_special_token_%d|>", r);
    return buf;
}

bn_status bn_tokenizer_parse_tiktoken(const char *buf, size_t n, const char *name, bn_tokenizer **out) {
    *out = NULL;
    /* pass 1: count lines, validate, find the largest rank */
    size_t n_lines = 0;
    for (size_t i = 0; i < n; i++) n_lines += buf[i] == '\n';
    n_lines++;
    tk_line *lines = bn_calloc(n_lines, sizeof *lines);
    if (!lines) return BN_ERR_NOMEM;
    size_t nl = 0, lineno = 0;
    int64_t max_rank = -1;
    bn_status st = BN_OK;
    for (size_t p = 0; p < n;) {
        size_t e = p;
        while (e < n && buf[e] != '\n') e++;
        lineno++;
        size_t le = e;
        if (le > p && buf[le - 1] == '\r') le--;
        if (le > p) {
            size_t sp = p;
            while (sp < le && buf[sp] != ' ') sp++;
            if (sp == le || sp == p) {
                st = bn_fail(BN_ERR_FORMAT, "%s:%zu: expected 'base64 rank'", name, lineno);
                goto fail;
            }
            int64_t r = 0;
            size_t d = sp + 1;
            if (d == le) {
                st = bn_fail(BN_ERR_FORMAT, "%s:%zu: missing rank", name, lineno);
                goto fail;
            }
            for (; d < le; d++) {
                if (buf[d] < '0' || buf[d] > '9' || r > (1 << 24)) {
                    st = bn_fail(BN_ERR_FORMAT, "%s:%zu: bad rank", name, lineno);
                    goto fail;
                }
                r = r * 10 + (buf[d] - '0');
            }
            if (r >= (1 << 24)) {
                st = bn_fail(BN_ERR_FORMAT, "%s:%zu: rank %lld out of range", name, lineno, (long long)r);
                goto fail;
            }
            lines[nl].b64 = buf + p;
            lines[nl].b64_len = sp - p;
            lines[nl].rank = r;
            nl++;
            if (r > max_rank) max_rank = r;
        }
        p = e + 1;
    }
    if (nl == 0) {
        st = bn_fail(BN_ERR_FORMAT, "%s: no tokens", name);
        goto fail;
    }
    /* Real files are dense (rank = line number); a few gaps are tolerated,
     * but a tiny file claiming rank 16,000,000 must not cost gigabytes. */
    if ((uint64_t)max_rank >= (uint64_t)nl + 65536) {
        st = bn_fail(BN_ERR_FORMAT, "%s: ranks go up to %lld for only %zu tokens", name, (long long)max_rank, nl);
        goto fail;
    }
    int32_t n_base = (int32_t)max_rank + 1;
    bn_tokenizer *t;
    st = bn_tok_alloc(n_base + N_LLAMA3_SPECIAL, n + (size_t)N_LLAMA3_SPECIAL * 32, &t);
    if (st) goto fail;
    *out = t;
    /* Tokens must be appended in id order: sort lines by rank via a slot map. */
    int32_t *slot = bn_malloc((size_t)n_base * sizeof *slot);
    uint8_t *tmp = bn_malloc(4096);
    if (!slot || !tmp) {
        free(slot); free(tmp);
        st = BN_ERR_NOMEM;
        goto fail;
    }
    for (int32_t i = 0; i < n_base; i++) slot[i] = -1;
    for (size_t i = 0; i < nl; i++) {
        if (slot[lines[i].rank] >= 0) {
            st = bn_fail(BN_ERR_FORMAT, "%s: rank %lld appears twice", name, (long long)lines[i].rank);
            break;
        }
        slot[lines[i].rank] = (int32_t)i;
    }
    for (int32_t id = 0; id < n_base && !st; id++) {
        if (slot[id] < 0) continue; /* a gap: stays an unused, empty token */
        const tk_line *L = &lines[slot[id]];
        size_t bl;
        if (L->b64_len > 4096 || !b64_decode(L->b64, L->b64_len, tmp, &bl) || bl == 0) {
            st = bn_fail(BN_ERR_FORMAT, "%s: bad base64 for rank %d", name, id);
            break;
        }
        st = bn_tok_set(t, id, tmp, bl, BN_TOKTYPE_NORMAL);
        t->rank[id] = id;
    }
    free(slot);
    free(tmp);
    if (st) goto fail;
    for (int k = 0; k < N_LLAMA3_SPECIAL; k++) {
        char nb[64];
        const char *s = special_name(k, nb, sizeof nb);
        st = bn_tok_set(t, n_base + k, s, strlen(s), BN_TOKTYPE_CONTROL);
        if (st) goto fail;
    }
    t->mode = BN_BPE_RANKS;
    t->ignore_merges = true;
    snprintf(t->pre_name, sizeof t->pre_name, "llama-bpe");
    st = bn_tok_finish(t, NULL);
    if (st) goto fail;
    free(lines);
    return BN_OK;
fail:
    free(lines);
    bn_tokenizer_free(*out);
    *out = NULL;
    return st;
}

bn_status bn_tokenizer_load_tiktoken(const char *path, bn_tokenizer **out) {
    char *buf;
    size_t n;
    *out = NULL;
    bn_status st = bn_read_file(path, MAX_TIKTOKEN_BYTES, &buf, &n);
    if (st) return st;
    st = bn_tokenizer_parse_tiktoken(buf, n, path, out);
    free(buf);
    return st;
}
