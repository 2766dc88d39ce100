/* vocab_gguf.c — the vocabulary in GGUF metadata (tokenizer.ggml.*), read
 * and written the way llama.cpp does for byte-level BPE (model "gpt2"):
 * tokens are GPT-2 byte-level strings, merges are "left right" strings in
 * rank order, special tokens are stored as their literal text. */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>

/* Pre-tokenizer names (tokenizer.ggml.pre) that use the LLaMA 3 regex and
 * emit a pre-token that is a whole token as is. */
static bool pre_is_llama3(const char *pre) {
    static const char *const names[] = {"llama-bpe", "llama3", "llama-v3", "smaug-bpe", "dbrx", "falcon3", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(pre, names[i])) return true;
    return false;
}

/* Raw bytes of a stored token string: byte-level strings are decoded; text
 * that is not byte-level (special tokens) is kept literally. */
static bn_status add_token(bn_tokenizer *t, int32_t id, const char *s, size_t n, int type, char **tmp,
                           size_t *tmp_cap) {
    if (n > *tmp_cap) {
        char *p = realloc(*tmp, n);
        if (!p) return bn_fail(BN_ERR_NOMEM, "out of memory");
        *tmp = p;
        *tmp_cap = n;
    }
    size_t bl;
    if ((type == BN_TOKTYPE_NORMAL || type == BN_TOKTYPE_UNKNOWN) && bn_bytelevel_decode(s, n, *tmp, &bl))
        return bn_tok_set(t, id, *tmp, bl, type);
    return bn_tok_set(t, id, s, n, type);
}

static int32_t lookup_bytelevel(const bn_tokenizer *t, const char *s, size_t n, char *tmp) {
    size_t bl;
    if (!bn_bytelevel_decode(s, n, tmp, &bl)) return -1;
    return bn_tok_lookup(t, tmp, bl);
}

bn_status bn_tok_add_merge_str(bn_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn,
                               char *tmp /* >= ln + rn bytes */) {
    int32_t a = lookup_bytelevel(t, l, ln, tmp);
    int32_t b = lookup_bytelevel(t, r, rn, tmp);
    if (a < 0 || b < 0) return BN_OK; /* refers to no token: cannot fire */
    memcpy(tmp, t->blob + t->off[a], t->len[a]);
    memcpy(tmp + t->len[a], t->blob + t->off[b], t->len[b]);
    int32_t c = bn_tok_lookup(t, tmp, (size_t)t->len[a] + t->len[b]);
    if (c < 0) return BN_OK; /* result not in the vocabulary: cannot fire */
    return bn_tok_add_merge(t, a, b, c);
}

bn_status bn_gguf_vocab_open(const bn_gguf *g, bn_gguf_vocab *v, bn_tokenizer **out) {
    *out = NULL;
    v->toks = bn_gguf_find(g, "tokenizer.ggml.tokens");
    if (!v->toks || v->toks->type != BN_GGUF_ARRAY || v->toks->v.arr.elem_type != BN_GGUF_STRING)
        return bn_fail(BN_ERR_FORMAT, "tokenizer.ggml.tokens missing or not a string array");
    const uint64_t nt = v->n = v->toks->v.arr.n;
    if (nt == 0 || nt > (1u << 24)) return bn_fail(BN_ERR_FORMAT, "vocabulary size %llu out of range", (unsigned long long)nt);
    v->types = bn_gguf_find(g, "tokenizer.ggml.token_type");
    if (v->types && (v->types->type != BN_GGUF_ARRAY || v->types->v.arr.n != nt))
        return bn_fail(BN_ERR_FORMAT, "tokenizer.ggml.token_type has %llu entries for %llu tokens",
                       v->types->type == BN_GGUF_ARRAY ? (unsigned long long)v->types->v.arr.n : 0ull,
                       (unsigned long long)nt);
    uint64_t blob = 0;
    for (uint64_t i = 0; i < nt; i++) {
        bn_gguf_str s;
        if (!bn_gguf_arr_str(v->toks, i, &s)) return bn_fail(BN_ERR_FORMAT, "bad token string %llu", (unsigned long long)i);
        blob += s.len;
    }
    return bn_tok_alloc((int32_t)nt, (size_t)(blob < BN_MAX_ALLOC ? blob : 0), out);
}

bn_status bn_gguf_vocab_token(const bn_gguf_vocab *v, uint64_t i, bn_gguf_str *s, int *type) {
    int64_t ty = BN_TOKTYPE_NORMAL;
    if (!bn_gguf_arr_str(v->toks, i, s)) return bn_fail(BN_ERR_FORMAT, "bad token string %llu", (unsigned long long)i);
    if (v->types && !bn_gguf_arr_int(v->types, i, &ty))
        return bn_fail(BN_ERR_FORMAT, "tokenizer.ggml.token_type is not an integer array");
    *type = ty < 1 || ty > 6 ? BN_TOKTYPE_NORMAL : (int)ty;
    return BN_OK;
}

void bn_gguf_vocab_special_ids(const bn_gguf *g, const bn_gguf_vocab *v, bn_tokenizer *t) {
    static const char *const keys[3] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                        "tokenizer.ggml.eot_token_id"};
    int32_t *dst[3] = {&t->bos_id, &t->eos_id, &t->eot_id};
    uint32_t id;
    for (int k = 0; k < 3; k++)
        if (bn_gguf_get_u32(g, keys[k], &id) && id < v->n) *dst[k] = (int32_t)id;
}

bn_status bn_tokenizer_from_gguf(const bn_gguf *g, bn_tokenizer **out) {
    *out = NULL;
    char model[32] = "", pre[32] = "";
    if (!bn_gguf_get_str(g, "tokenizer.ggml.model", model, sizeof model))
        return bn_fail(BN_ERR_NOT_FOUND, "no tokenizer in this GGUF (tokenizer.ggml.model missing)");
    if (!strcmp(model, "llama")) {
        bn_status st = bn_tokenizer_from_gguf_spm(g, out);
        if (!st) {
            bn_gguf_get_str(g, "general.architecture", (*out)->arch, sizeof (*out)->arch);
            const bn_gguf_value *ct = bn_gguf_find(g, "tokenizer.chat_template");
            if (ct && ct->type == BN_GGUF_STRING && ct->v.str.len < (1u << 20)) {
                (*out)->chat_template = bn_malloc((size_t)ct->v.str.len + 1);
                if ((*out)->chat_template) {
                    memcpy((*out)->chat_template, ct->v.str.data, (size_t)ct->v.str.len);
                    (*out)->chat_template[ct->v.str.len] = 0;
                }
            }
        }
        return st;
    }
    if (strcmp(model, "gpt2"))
        return bn_fail(BN_ERR_UNSUPPORTED, "unknown GGUF tokenizer model '%s' (supported: gpt2, llama)", model);
    bn_gguf_get_str(g, "tokenizer.ggml.pre", pre, sizeof pre);

    const bn_gguf_value *merges = bn_gguf_find(g, "tokenizer.ggml.merges");
    if (!merges || merges->type != BN_GGUF_ARRAY || merges->v.arr.elem_type != BN_GGUF_STRING)
        return bn_fail(BN_ERR_FORMAT, "tokenizer.ggml.merges missing or not a string array "
                                      "(a gpt2 tokenizer needs its merges)");
    if (merges->v.arr.n > (uint64_t)INT32_MAX / 2) return bn_fail(BN_ERR_FORMAT, "too many merges");

    bn_gguf_vocab voc;
    bn_tokenizer *t;
    bn_status st = bn_gguf_vocab_open(g, &voc, &t);
    if (st) return st;
    const uint64_t nt = voc.n;
    char *tmp = NULL;
    size_t tmp_cap = 0;
    for (uint64_t i = 0; i < nt && !st; i++) {
        bn_gguf_str s;
        int ty;
        if ((st = bn_gguf_vocab_token(&voc, i, &s, &ty))) break;
        st = add_token(t, (int32_t)i, s.data, (size_t)s.len, ty, &tmp, &tmp_cap);
    }
    uint32_t v;
    if (!st) {
        bn_gguf_vocab_special_ids(g, &voc, t);
        if (bn_gguf_get_u32(g, "tokenizer.ggml.eom_token_id", &v) && v < nt) t->eom_id = (int32_t)v;
        bool llama3 = !pre[0] || pre_is_llama3(pre);
        t->mode = BN_BPE_MERGES;
        t->ignore_merges = llama3;
        snprintf(t->pre_name, sizeof t->pre_name, "%s", pre[0] ? pre : "llama-bpe");
        st = bn_tok_finish(t, llama3 ? bn_llama3_pattern : bn_gpt2_pattern);
    }
    if (!st) st = bn_tok_reserve_merges(t, (uint32_t)merges->v.arr.n + 1);
    for (uint64_t i = 0; i < merges->v.arr.n && !st; i++) {
        bn_gguf_str s;
        if (!bn_gguf_arr_str(merges, i, &s)) {
            st = bn_fail(BN_ERR_FORMAT, "bad merge string %llu", (unsigned long long)i);
            break;
        }
        const char *sp = s.len ? memchr(s.data + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!sp) {
            st = bn_fail(BN_ERR_FORMAT, "merge %llu is not 'left right'", (unsigned long long)i);
            break;
        }
        if (s.len > tmp_cap) {
            char *p = realloc(tmp, (size_t)s.len);
            if (!p) { st = bn_fail(BN_ERR_NOMEM, "out of memory"); break; }
            tmp = p;
            tmp_cap = (size_t)s.len;
        }
        size_t ln = (size_t)(sp - s.data);
        st = bn_tok_add_merge_str(t, s.data, ln, sp + 1, (size_t)s.len - ln - 1, tmp);
    }
    free(tmp);
    if (!st) {
        const bn_gguf_value *ct = bn_gguf_find(g, "tokenizer.chat_template");
        if (ct && ct->type == BN_GGUF_STRING && ct->v.str.len < (1u << 20)) {
            t->chat_template = bn_malloc((size_t)ct->v.str.len + 1);
            if (!t->chat_template) st = BN_ERR_NOMEM;
            else {
                memcpy(t->chat_template, ct->v.str.data, (size_t)ct->v.str.len);
                t->chat_template[ct->v.str.len] = 0;
            }
        }
        bn_gguf_get_str(g, "general.architecture", t->arch, sizeof t->arch);
    }
    if (st) {
        bn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return BN_OK;
}

bn_status bn_tokenizer_load_gguf(const char *path, bn_tokenizer **out) {
    bn_gguf *g;
    *out = NULL;
    bn_status st = bn_gguf_open(path, &g);
    if (st) return st;
    st = bn_tokenizer_from_gguf(g, out);
    bn_gguf_free(g);
    if (st) bn_error_prefix("%s", path);
    return st;
}

/* ---- writing */

bn_status bn_tok_derive_merges(const bn_tokenizer *t, int32_t *left, int32_t *right) {
    bn_bpe_scratch sc = {0};
    bn_idbuf ids = {0};
    bn_status st = BN_OK;
    for (int32_t id = 0; id < t->n_vocab && !st; id++) {
        left[id] = right[id] = -1;
        if (t->type[id] != BN_TOKTYPE_NORMAL || t->len[id] < 2) continue;
        if (t->mode == BN_BPE_RANKS) {
            ids.n = 0;
            st = bn_bpe_piece(t, (const uint8_t *)t->blob + t->off[id], t->len[id], t->rank[id], &sc, &ids);
            if (!st && ids.n == 2) {
                left[id] = ids.v[0];
                right[id] = ids.v[1];
            }
        }
    }
    bn_bpe_scratch_free(&sc);
    free(ids.v);
    return st;
}

/* Byte-level spelling of token id (special and unused tokens: literal). */
static size_t spell(const bn_tokenizer *t, int32_t id, char *out) {
    const char *s = t->blob + t->off[id];
    size_t n = t->len[id];
    if (t->type[id] == BN_TOKTYPE_NORMAL || t->type[id] == BN_TOKTYPE_BYTE || t->type[id] == BN_TOKTYPE_UNKNOWN)
        return bn_bytelevel_encode((const uint8_t *)s, n, out);
    memcpy(out, s, n);
    return n;
}

/* A merge rule of a RANKS-mode vocabulary: its result token's rank orders
 * it, then the ranks of its halves (as Hugging Face's tiktoken converter). */
typedef struct merge_rule { int32_t rank, rl, rr, l, r; } merge_rule;
static int cmp_rule(const void *a, const void *b) {
    const merge_rule *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    if (x->rl != y->rl) return x->rl < y->rl ? -1 : 1;
    return (x->rr > y->rr) - (x->rr < y->rr);
}

/* Every split of every normal token into two tokens becomes a rule ranked
 * by the token's rank. A pair then merges in exactly the situations where
 * tiktoken (which ranks the concatenation) merges it, and the list is the
 * one Hugging Face's converter makes (280,147 rules for LLaMA 3, the count
 * in Meta's tokenizer.json). One BPE-derived split per token would leave
 * 678 LLaMA 3 tokens without any rule. */
static bn_status all_split_rules(const bn_tokenizer *t, merge_rule **out, uint32_t *n_out) {
    size_t cap = 1024, n = 0;
    merge_rule *v = bn_malloc(cap * sizeof *v);
    if (!v) return BN_ERR_NOMEM;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->type[id] != BN_TOKTYPE_NORMAL || t->len[id] < 2 || t->rank[id] == INT32_MAX) continue;
        const char *s = t->blob + t->off[id];
        for (uint32_t k = 1; k < t->len[id]; k++) {
            int32_t a = bn_tok_lookup(t, s, k), b = bn_tok_lookup(t, s + k, t->len[id] - k);
            if (a < 0 || b < 0) continue;
            if (n == cap) {
                merge_rule *p = realloc(v, (cap *= 2) * sizeof *v);
                if (!p) { free(v); return bn_fail(BN_ERR_NOMEM, "out of memory for merges"); }
                v = p;
            }
            v[n++] = (merge_rule){t->rank[id], t->rank[a], t->rank[b], a, b};
        }
    }
    if (n > (size_t)INT32_MAX) { free(v); return bn_fail(BN_ERR_FORMAT, "too many merges"); }
    qsort(v, n, sizeof *v, cmp_rule);
    *out = v;
    *n_out = (uint32_t)n;
    return BN_OK;
}

/* SPM: tokens with " " spelled "▁", byte tokens as <0xNN>, and scores. */
static bn_status write_spm(const bn_tokenizer *t, bn_gguf_writer *w) {
    int32_t n = t->n_vocab;
    bn_status st = BN_OK;
    char **strs = bn_calloc((size_t)n, sizeof *strs);
    uint64_t *lens = bn_calloc((size_t)n, sizeof *lens);
    int32_t *types = bn_malloc((size_t)n * sizeof *types);
    if (!strs || !lens || !types) { st = BN_ERR_NOMEM; goto done; }
    for (int32_t i = 0; i < n && !st; i++) {
        const char *s = t->blob + t->off[i];
        size_t l = t->len[i], o = 0;
        types[i] = t->type[i];
        strs[i] = bn_malloc(l * 3 + 8);
        if (!strs[i]) { st = BN_ERR_NOMEM; break; }
        if (t->type[i] == BN_TOKTYPE_BYTE && l == 1) o = (size_t)sprintf(strs[i], "<0x%02X>", (uint8_t)s[0]);
        else if (t->type[i] == BN_TOKTYPE_CONTROL || t->type[i] == BN_TOKTYPE_UNKNOWN) { memcpy(strs[i], s, l); o = l; }
        else
            for (size_t k = 0; k < l; k++) {
                if (s[k] == ' ') { memcpy(strs[i] + o, "\xe2\x96\x81", 3); o += 3; }
                else strs[i][o++] = s[k];
            }
        lens[i] = o;
    }
    if (!st) st = bn_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    if (!st) st = bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)strs, lens, (uint64_t)n);
    if (!st) st = bn_gguf_writer_add_arr(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, t->score, (uint64_t)n);
    if (!st) st = bn_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types, (uint64_t)n);
    if (!st && t->bos_id >= 0) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos_id);
    if (!st && t->eos_id >= 0) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos_id);
    if (!st && t->unk_id >= 0) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk_id);
    if (!st) {
        bn_gguf_value v = {.type = BN_GGUF_BOOL, .v.b = t->add_space_prefix};
        st = bn_gguf_writer_add_kv(w, "tokenizer.ggml.add_space_prefix", &v);
    }
done:
    if (strs)
        for (int32_t i = 0; i < n; i++) free(strs[i]);
    free(strs); free(lens); free(types);
    return st;
}

bn_status bn_tokenizer_write_gguf(const bn_tokenizer *t, bn_gguf_writer *w) {
    if (!t || !w) return bn_fail(BN_ERR_INVALID_ARG, "bn_tokenizer_write_gguf: NULL argument");
    if (t->kind == BN_TOK_SPM) return write_spm(t, w);
    int32_t n = t->n_vocab;
    bn_status st = BN_OK;
    char **strs = bn_calloc((size_t)n, sizeof *strs);
    uint64_t *lens = bn_calloc((size_t)n, sizeof *lens);
    int32_t *types = bn_malloc((size_t)n * sizeof *types);
    merge_rule *rules = NULL;
    char **mstr = NULL;
    uint64_t *mlen = NULL;
    uint32_t nm = 0;
    char *arena = NULL, *marena = NULL; /* one block for all strings: far fewer allocations */
    if (!strs || !lens || !types) { st = BN_ERR_NOMEM; goto done; }
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total += (size_t)t->len[i] * 2;
    arena = bn_malloc(total + 1);
    if (!arena) { st = BN_ERR_NOMEM; goto done; }
    total = 0;
    for (int32_t i = 0; i < n; i++) {
        strs[i] = arena + total;
        lens[i] = spell(t, i, strs[i]);
        total += lens[i];
        types[i] = t->type[i];
    }
    /* merges in rank order */
    if (t->mode == BN_BPE_RANKS) {
        st = all_split_rules(t, &rules, &nm);
        if (st) goto done;
    } else {
        nm = t->n_merges;
    }
    mstr = bn_calloc(nm ? nm : 1, sizeof *mstr);
    mlen = bn_calloc(nm ? nm : 1, sizeof *mlen);
    if (!mstr || !mlen) { st = BN_ERR_NOMEM; goto done; }
    total = 0;
    for (uint32_t k = 0; k < nm; k++) {
        int32_t a = t->mode == BN_BPE_RANKS ? rules[k].l : t->merge_l[k];
        int32_t b = t->mode == BN_BPE_RANKS ? rules[k].r : t->merge_r[k];
        total += ((size_t)t->len[a] + t->len[b]) * 2 + 1;
    }
    marena = bn_malloc(total + 1);
    if (!marena) { st = BN_ERR_NOMEM; goto done; }
    total = 0;
    for (uint32_t k = 0; k < nm; k++) {
        int32_t a = t->mode == BN_BPE_RANKS ? rules[k].l : t->merge_l[k];
        int32_t b = t->mode == BN_BPE_RANKS ? rules[k].r : t->merge_r[k];
        mstr[k] = marena + total;
        size_t o = spell(t, a, mstr[k]);
        mstr[k][o++] = ' ';
        o += spell(t, b, mstr[k] + o);
        mlen[k] = o;
        total += o;
    }
    st = bn_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    if (!st) st = bn_gguf_writer_add_str(w, "tokenizer.ggml.pre", t->pre_name[0] ? t->pre_name : "llama-bpe");
    if (!st) st = bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)strs, lens, (uint64_t)n);
    if (!st) st = bn_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types, (uint64_t)n);
    if (!st) st = bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", (const char *const *)mstr, mlen, nm);
    if (!st && t->bos_id >= 0) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos_id);
    if (!st && t->eos_id >= 0) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos_id);
    if (!st && t->eot_id >= 0) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)t->eot_id);
    if (!st && t->eom_id >= 0) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eom_token_id", (uint32_t)t->eom_id);
    if (!st) {
        bn_gguf_value v = {.type = BN_GGUF_BOOL, .v.b = t->bos_id >= 0};
        st = bn_gguf_writer_add_kv(w, "tokenizer.ggml.add_bos_token", &v);
    }
done:
    free(arena); free(marena);
    free(strs); free(lens); free(types); free(rules); free(mstr); free(mlen);
    return st;
}
