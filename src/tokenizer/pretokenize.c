/* pretokenize.c — text -> ids: special-token splitting, the regex
 * pre-tokenizer, and BPE of each pre-token.
 *
 * Invalid UTF-8: the reference (tiktoken) works on Unicode strings, so it
 * never sees invalid bytes in ordinary use. We keep every byte: the input is
 * cut into maximal valid UTF-8 runs, each run is pre-tokenized by the regex
 * on its own (as if it were a whole string), and each maximal run of invalid
 * bytes is one pre-token that goes through BPE like any other (so a
 * truncated character such as E2 80 can still become one token). Valid text
 * gets exactly the reference's ids; decode(encode(x)) == x for any bytes. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static bn_status emit_piece(const bn_tokenizer *t, const uint8_t *s, size_t n,
                            bn_bpe_scratch *sc, bn_idbuf *out) {
    if (n == 0) return BN_OK;
    /* A pre-token that is itself a token is emitted whole (tiktoken, and HF
     * with ignore_merges); single bytes always are. */
    if (t->ignore_merges || n == 1) {
        int32_t id = bn_tok_lookup(t, s, n);
        if (id >= 0) return bn_idbuf_push(out, id);
    }
    return bn_bpe_piece(t, s, n, INT32_MAX, sc, out);
}

/* Pre-tokenize one valid UTF-8 run with the regex. */
static bn_status encode_valid_run(const bn_tokenizer *t, const uint8_t *s, size_t n,
                                  pcre2_match_data *md, bn_bpe_scratch *sc, bn_idbuf *out) {
    const pcre2_code *re = t->re;
    size_t pos = 0;
    while (pos < n) {
        /* The run was validated already: skip PCRE2's O(n) check per call
         * (pcre2_jit_match never checks). */
        int rc = t->re_jit ? pcre2_jit_match(re, s, n, pos, 0, md, NULL)
                           : pcre2_match(re, s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        size_t ms, me;
        if (rc == PCRE2_ERROR_NOMATCH) {
            ms = me = n;
        } else if (rc < 0) {
            /* JIT stack exhausted or another limit: retry with the interpreter */
            rc = pcre2_match(re, s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) {
                ms = me = n;
            } else if (rc < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return bn_fail(BN_ERR_INTERNAL, "pre-tokenizer regex failed: %s", (const char *)msg);
            } else {
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                ms = ov[0]; me = ov[1];
            }
        } else {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0]; me = ov[1];
        }
        /* Text the regex skipped (none for the LLaMA 3 pattern, which
         * matches every character) is still encoded: nothing is dropped. */
        if (ms > pos) {
            bn_status st = emit_piece(t, s + pos, ms - pos, sc, out);
            if (st) return st;
        }
        if (me <= ms) { /* empty match: step over one character */
            if (ms >= n) break;
            size_t l = bn_utf8_valid_len(s + ms, n - ms);
            me = ms + (l ? l : 1);
        }
        bn_status st = emit_piece(t, s + ms, me - ms, sc, out);
        if (st) return st;
        pos = me;
    }
    return BN_OK;
}

bn_status bn_encode_ordinary(const bn_tokenizer *t, const char *text, size_t len,
                             bn_bpe_scratch *sc, bn_idbuf *out) {
    if (t->kind == BN_TOK_SPM) return bn_spm_encode(t, text, len, false, out);
    if (!t->re) return bn_fail(BN_ERR_INVALID_ARG, "tokenizer has no pre-tokenizer");
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return bn_fail(BN_ERR_NOMEM, "out of memory for regex match data");
    const uint8_t *s = (const uint8_t *)text;
    size_t pos = 0;
    bn_status st = BN_OK;
    while (pos < len && st == BN_OK) {
        size_t v = bn_utf8_valid_prefix(s + pos, len - pos);
        if (v) {
            st = encode_valid_run(t, s + pos, v, md, sc, out);
            pos += v;
            continue;
        }
        size_t e = pos + 1;
        while (e < len && bn_utf8_valid_len(s + e, len - e) == 0) e++;
        st = emit_piece(t, s + pos, e - pos, sc, out);
        pos = e;
    }
    pcre2_match_data_free(md);
    return st;
}

/* Longest special token starting at s[0..n), or -1. Added (user-defined)
 * tokens always match, as in HF tokenizers and llama.cpp; control tokens
 * only when special parsing is asked for. */
static int32_t match_special(const bn_tokenizer *t, const char *s, size_t n, bool parse_special) {
    uint8_t b = (uint8_t)s[0];
    for (int32_t k = t->special_first[b]; k < t->special_first[b + 1]; k++) {
        int32_t id = t->special_ids[k];
        size_t l = t->len[id];
        if (!parse_special && t->type[id] == BN_TOKTYPE_CONTROL) continue;
        if (l <= n && memcmp(t->blob + t->off[id], s, l) == 0) return id;
    }
    return -1;
}

/* One fragment of text between special tokens. SPM (as llama.cpp) puts a
 * space before the first fragment and before any that follows a special
 * token. */
static bn_status encode_fragment(const bn_tokenizer *t, const char *s, size_t n, bool prev_special,
                                 bn_bpe_scratch *sc, bn_idbuf *out) {
    if (n == 0) return BN_OK;
    if (t->kind == BN_TOK_SPM) return bn_spm_encode(t, s, n, t->add_space_prefix && prev_special, out);
    return bn_encode_ordinary(t, s, n, sc, out);
}

bn_status bn_tokenize(const bn_tokenizer *t, const char *text, size_t len, bool add_bos,
                      bool parse_special, int32_t **ids, size_t *n_ids) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || (!text && len) || !ids || !n_ids) return bn_fail(BN_ERR_INVALID_ARG, "bn_tokenize: NULL argument");
    bn_idbuf out = {0};
    bn_bpe_scratch sc = {0};
    bn_status st = BN_OK;
    if (add_bos) {
        if (t->bos_id < 0) {
            st = bn_fail(BN_ERR_UNSUPPORTED, "the tokenizer has no BOS token");
            goto done;
        }
        st = bn_idbuf_push(&out, t->bos_id);
        if (st) goto done;
    }
    bool prev_special = true;
    if (t->n_special && (parse_special || t->n_user_defined)) {
        size_t seg = 0, i = 0;
        while (i < len) {
            uint8_t b = (uint8_t)text[i];
            if (t->special_first[b] == t->special_first[b + 1]) { i++; continue; }
            int32_t id = match_special(t, text + i, len - i, parse_special);
            if (id < 0) { i++; continue; }
            if (i > seg) {
                st = encode_fragment(t, text + seg, i - seg, prev_special, &sc, &out);
                if (st) goto done;
            }
            st = bn_idbuf_push(&out, id);
            if (st) goto done;
            prev_special = true;
            i += t->len[id];
            seg = i;
        }
        if (len > seg) st = encode_fragment(t, text + seg, len - seg, prev_special, &sc, &out);
    } else {
        st = encode_fragment(t, text, len, prev_special, &sc, &out);
    }
done:
    bn_bpe_scratch_free(&sc);
    if (st) {
        free(out.v);
        return st;
    }
    if (!out.v) out.v = malloc(sizeof(int32_t)); /* a valid pointer even for no ids */
    if (!out.v) return bn_fail(BN_ERR_NOMEM, "out of memory");
    *ids = out.v;
    *n_ids = out.n;
    return BN_OK;
}
