/* chat.c — built-in chat templates, rendered straight to ids.
 *
 * Rendering to ids (rather than to a string that is then tokenized with
 * special-token parsing) has two reasons:
 *  - "bitnet": Microsoft's ChatFormat for BitNet b1.58 2B4T tokenizes each
 *    header ("User: ") and each stripped content separately; tokenizing the
 *    joined string gives different ids (" Hey" vs " " + "Hey"), and the
 *    model was trained on the former.
 *  - message text is never scanned for special tokens, so a user typing
 *    "<|eot_id|>" cannot end a turn. For llama3 and chatml the text between
 *    two special tokens is exactly one tokenizer segment either way, so the
 *    ids equal those of the rendered string. */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>

typedef enum { TMPL_BITNET, TMPL_LLAMA3, TMPL_CHATML, TMPL_UNKNOWN } tmpl_kind;

static tmpl_kind kind_of(const char *name) {
    if (!name) return TMPL_UNKNOWN;
    if (!strcmp(name, "bitnet")) return TMPL_BITNET;
    if (!strcmp(name, "llama3")) return TMPL_LLAMA3;
    if (!strcmp(name, "chatml")) return TMPL_CHATML;
    return TMPL_UNKNOWN;
}

bool bn_chat_template_known(const char *name) { return kind_of(name) != TMPL_UNKNOWN; }

const char *bn_chat_template_detect(const char *text, const char *arch) {
    if (text) {
        if (strstr(text, "<|im_start|>")) return "chatml";
        if (strstr(text, "<|start_header_id|>")) return "llama3";
        /* 2B4T's own formats: "User: ... Assistant: " in tokenizer_config.json,
         * and the placeholder "Human: ... BITNETAssistant:" in its GGUF. */
        if (strstr(text, "BITNETAssistant") || (strstr(text, "User: ") && strstr(text, "Assistant: ")))
            return "bitnet";
    }
    if (arch && !strncmp(arch, "bitnet", 6)) return "bitnet";
    return NULL;
}

/* Python's str.isspace() for one codepoint (what content.strip() removes). */
static bool py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* content.strip(): trims leading and trailing whitespace characters. */
static void strip(const char *s, size_t n, size_t *b, size_t *e) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = bn_utf8_get(u + i, n - i, &cp);
        if (!l || !py_isspace(cp)) break;
        i += l;
    }
    size_t j = n;
    while (j > i) {
        /* step back over one character */
        size_t k = j - 1;
        while (k > i && (u[k] & 0xC0) == 0x80 && j - k < 4) k--;
        uint32_t cp;
        size_t l = bn_utf8_get(u + k, j - k, &cp);
        if (l != j - k || !py_isspace(cp)) break;
        j = k;
    }
    *b = i;
    *e = j;
}

typedef struct render {
    const bn_tokenizer *tok;
    bn_idbuf out;
    bn_bpe_scratch sc;
} render;

static bn_status put_text(render *r, const char *s, size_t n) {
    return bn_encode_ordinary(r->tok, s, n, &r->sc, &r->out);
}

static bn_status put_special(render *r, const char *name) {
    int32_t id = bn_tok_find_any(r->tok, name, strlen(name));
    if (id < 0) return bn_fail(BN_ERR_UNSUPPORTED, "chat template needs the token %s, which this vocabulary lacks", name);
    return bn_idbuf_push(&r->out, id);
}

static bn_status put_concat(render *r, const char *a, const char *b, size_t bn) {
    size_t an = strlen(a);
    char *s = bn_malloc(an + bn + 1);
    if (!s) return BN_ERR_NOMEM;
    memcpy(s, a, an);
    memcpy(s + an, b, bn);
    bn_status st = put_text(r, s, an + bn);
    free(s);
    return st;
}

static const char *bitnet_header(const char *role) {
    if (!strcmp(role, "system")) return "System: ";
    if (!strcmp(role, "user")) return "User: ";
    if (!strcmp(role, "assistant")) return "Assistant: ";
    return NULL;
}

static bn_status render_msg(render *r, tmpl_kind k, const bn_chat_message *m) {
    if (!m->role || !m->content) return bn_fail(BN_ERR_INVALID_ARG, "chat message without role or content");
    size_t n = strlen(m->content), b, e;
    bn_status st;
    switch (k) {
    case TMPL_BITNET: {
        const char *h = bitnet_header(m->role);
        if (!h) return bn_fail(BN_ERR_INVALID_ARG, "the bitnet chat format has no role '%s'", m->role);
        strip(m->content, n, &b, &e);
        if ((st = put_text(r, h, strlen(h)))) return st;
        if ((st = put_text(r, m->content + b, e - b))) return st;
        return put_special(r, "<|eot_id|>");
    }
    case TMPL_LLAMA3:
        strip(m->content, n, &b, &e);
        if ((st = put_special(r, "<|start_header_id|>"))) return st;
        if ((st = put_text(r, m->role, strlen(m->role)))) return st;
        if ((st = put_special(r, "<|end_header_id|>"))) return st;
        if ((st = put_concat(r, "\n\n", m->content + b, e - b))) return st;
        return put_special(r, "<|eot_id|>");
    case TMPL_CHATML: {
        if ((st = put_special(r, "<|im_start|>"))) return st;
        size_t rl = strlen(m->role);
        char *s = bn_malloc(rl + 1 + n);
        if (!s) return BN_ERR_NOMEM;
        memcpy(s, m->role, rl);
        s[rl] = '\n';
        memcpy(s + rl + 1, m->content, n);
        st = put_text(r, s, rl + 1 + n);
        free(s);
        if (st) return st;
        if ((st = put_special(r, "<|im_end|>"))) return st;
        return put_text(r, "\n", 1);
    }
    default:
        return bn_fail(BN_ERR_INTERNAL, "bad template kind");
    }
}

bn_status bn_chat_render_ids(const bn_tokenizer *tok, const char *tmpl, const bn_chat_message *msgs, size_t n_msgs,
                             bool add_generation_prompt, int32_t **ids, size_t *n_ids) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!tok || !ids || !n_ids || (!msgs && n_msgs)) return bn_fail(BN_ERR_INVALID_ARG, "bn_chat_render_ids: NULL argument");
    tmpl_kind k = kind_of(tmpl);
    if (k == TMPL_UNKNOWN)
        return bn_fail(BN_ERR_INVALID_ARG, "unknown chat template '%s' (built-in: bitnet, llama3, chatml)",
                       tmpl ? tmpl : "(null)");
    render r = {.tok = tok};
    bn_status st = BN_OK;
    if (k != TMPL_CHATML) st = put_special(&r, "<|begin_of_text|>");
    for (size_t i = 0; i < n_msgs && !st; i++) st = render_msg(&r, k, &msgs[i]);
    if (!st && add_generation_prompt) {
        if (k == TMPL_BITNET) st = put_text(&r, "Assistant: ", 11);
        else if (k == TMPL_LLAMA3) {
            st = put_special(&r, "<|start_header_id|>");
            if (!st) st = put_text(&r, "assistant", 9);
            if (!st) st = put_special(&r, "<|end_header_id|>");
            if (!st) st = put_text(&r, "\n\n", 2);
        } else {
            st = put_special(&r, "<|im_start|>");
            if (!st) st = put_text(&r, "assistant\n", 10);
        }
    }
    bn_bpe_scratch_free(&r.sc);
    if (st) {
        free(r.out.v);
        return st;
    }
    if (!r.out.v && !(r.out.v = malloc(sizeof(int32_t)))) return bn_fail(BN_ERR_NOMEM, "out of memory");
    *ids = r.out.v;
    *n_ids = r.out.n;
    return BN_OK;
}

/* ---- text rendering (display, logs; not used to make ids) */

typedef struct sbuf { char *s; size_t n, cap; bool oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *p = realloc(b->s, c);
        if (!p) { b->oom = true; return; }
        b->s = p;
        b->cap = c;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

bn_status bn_chat_render_text(const char *tmpl, const bn_chat_message *msgs, size_t n_msgs,
                              bool add_generation_prompt, char **text) {
    if (!text || (!msgs && n_msgs)) return bn_fail(BN_ERR_INVALID_ARG, "bn_chat_render_text: NULL argument");
    *text = NULL;
    tmpl_kind k = kind_of(tmpl);
    if (k == TMPL_UNKNOWN)
        return bn_fail(BN_ERR_INVALID_ARG, "unknown chat template '%s' (built-in: bitnet, llama3, chatml)",
                       tmpl ? tmpl : "(null)");
    sbuf b = {0};
    sb_str(&b, k == TMPL_CHATML ? "" : "<|begin_of_text|>");
    for (size_t i = 0; i < n_msgs; i++) {
        const bn_chat_message *m = &msgs[i];
        if (!m->role || !m->content) {
            free(b.s);
            return bn_fail(BN_ERR_INVALID_ARG, "chat message without role or content");
        }
        size_t n = strlen(m->content), s, e;
        strip(m->content, n, &s, &e);
        if (k == TMPL_BITNET) {
            const char *h = bitnet_header(m->role);
            if (!h) {
                free(b.s);
                return bn_fail(BN_ERR_INVALID_ARG, "the bitnet chat format has no role '%s'", m->role);
            }
            sb_str(&b, h);
            sb_put(&b, m->content + s, e - s);
            sb_str(&b, "<|eot_id|>");
        } else if (k == TMPL_LLAMA3) {
            sb_str(&b, "<|start_header_id|>");
            sb_str(&b, m->role);
            sb_str(&b, "<|end_header_id|>\n\n");
            sb_put(&b, m->content + s, e - s);
            sb_str(&b, "<|eot_id|>");
        } else {
            sb_str(&b, "<|im_start|>");
            sb_str(&b, m->role);
            sb_str(&b, "\n");
            sb_str(&b, m->content);
            sb_str(&b, "<|im_end|>\n");
        }
    }
    if (add_generation_prompt)
        sb_str(&b, k == TMPL_BITNET ? "Assistant: "
                   : k == TMPL_LLAMA3 ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                                      : "<|im_start|>assistant\n");
    if (b.oom || !b.s) {
        free(b.s);
        return bn_fail(BN_ERR_NOMEM, "out of memory rendering a chat");
    }
    *text = b.s;
    return BN_OK;
}
