/* decode.c — ids -> bytes, whole or streamed.
 *
 * Decoding is lossless: the output is the concatenation of the tokens' raw
 * bytes. The streaming decoder only delays bytes: it holds back a UTF-8
 * sequence that is incomplete but could still be completed by later tokens,
 * so each chunk it returns ends on a character boundary. Bytes that can
 * never be part of valid UTF-8 are returned as they are rather than replaced
 * by U+FFFD, so the concatenated stream always equals bn_detokenize's output
 * (callers that need valid UTF-8, e.g. JSON writers, sanitize at their end). */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

bn_status bn_detokenize(const bn_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                        char **text, size_t *len) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || (!ids && n) || !text) return bn_fail(BN_ERR_INVALID_ARG, "bn_detokenize: NULL argument");
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return bn_fail(BN_ERR_INVALID_ARG, "token id %d out of range [0, %d)", ids[i], t->n_vocab);
        if (skip_special && bn_tokenizer_is_special(t, ids[i])) continue;
        total += t->len[ids[i]];
    }
    if (total >= BN_MAX_ALLOC) return bn_fail(BN_ERR_NOMEM, "decoded text too large");
    char *out = bn_malloc((size_t)total + 1);
    if (!out) return BN_ERR_NOMEM;
    size_t o = 0;
    /* SPM puts a space before the text it encodes: the first text token
     * gives it back (as llama.cpp's detokenizer does). */
    bool strip = t->kind == BN_TOK_SPM && t->add_space_prefix;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (bn_tokenizer_is_special(t, id)) {
            if (skip_special) continue;
        } else if (strip) {
            strip = false;
            if (t->len[id] && t->blob[t->off[id]] == ' ') {
                memcpy(out + o, t->blob + t->off[id] + 1, t->len[id] - 1);
                o += t->len[id] - 1;
                continue;
            }
        }
        memcpy(out + o, t->blob + t->off[id], t->len[id]);
        o += t->len[id];
    }
    out[o] = 0;
    *text = out;
    if (len) *len = o;
    return BN_OK;
}

struct bn_detok_stream {
    const bn_tokenizer *tok;
    bool   skip_special;
    char  *buf;        /* [0, held) bytes held back from the previous call,
                        * then the bytes of the new token                  */
    size_t held, cap;
    char  *out;        /* what the last call returned                      */
    size_t out_cap;
};

bn_status bn_detok_stream_create(const bn_tokenizer *tok, bool skip_special, bn_detok_stream **out) {
    *out = NULL;
    if (!tok) return bn_fail(BN_ERR_INVALID_ARG, "bn_detok_stream_create: NULL tokenizer");
    bn_detok_stream *s = bn_calloc(1, sizeof *s);
    if (!s) return BN_ERR_NOMEM;
    s->tok = tok;
    s->skip_special = skip_special;
    *out = s;
    return BN_OK;
}

void bn_detok_stream_free(bn_detok_stream *s) {
    if (!s) return;
    free(s->buf);
    free(s->out);
    free(s);
}

void bn_detok_stream_reset(bn_detok_stream *s) {
    if (s) s->held = 0;
}

static bool reserve(char **p, size_t *cap, size_t n) {
    if (n <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < n) c *= 2;
    char *q = realloc(*p, c);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

bn_status bn_detok_stream_push(bn_detok_stream *s, int32_t id, const char **text, size_t *len) {
    *text = "";
    *len = 0;
    const bn_tokenizer *t = s->tok;
    if (id < 0 || id >= t->n_vocab)
        return bn_fail(BN_ERR_INVALID_ARG, "token id %d out of range [0, %d)", id, t->n_vocab);
    if (s->skip_special && bn_tokenizer_is_special(t, id)) return BN_OK;
    size_t pl = t->len[id];
    size_t total = s->held + pl;
    if (!reserve(&s->buf, &s->cap, total) || !reserve(&s->out, &s->out_cap, total + 1))
        return bn_fail(BN_ERR_NOMEM, "out of memory in the streaming decoder");
    memcpy(s->buf + s->held, t->blob + t->off[id], pl);
    size_t keep = bn_utf8_incomplete_tail((const uint8_t *)s->buf, total);
    size_t ready = total - keep;
    memcpy(s->out, s->buf, ready);
    s->out[ready] = 0;
    memmove(s->buf, s->buf + ready, keep);
    s->held = keep;
    *text = s->out;
    *len = ready;
    return BN_OK;
}

bn_status bn_detok_stream_flush(bn_detok_stream *s, const char **text, size_t *len) {
    *text = "";
    *len = 0;
    if (!s->held) return BN_OK;
    if (!reserve(&s->out, &s->out_cap, s->held + 1))
        return bn_fail(BN_ERR_NOMEM, "out of memory in the streaming decoder");
    memcpy(s->out, s->buf, s->held);
    s->out[s->held] = 0;
    *text = s->out;
    *len = s->held;
    s->held = 0;
    return BN_OK;
}
