/* tokenizer.c — building a tokenizer (the part every vocab loader shares):
 * token storage, the bytes -> id and merge tables, the special-token list,
 * and the public accessors. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

const char bn_llama3_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char bn_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---------------------------------------------------------------- hashing */

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 16;
    while (c < n && c < (1u << 31)) c <<= 1;
    return c;
}

int32_t bn_tok_find_any(const bn_tokenizer *t, const char *s, size_t n) {
    for (int32_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special_ids[k];
        if (t->len[id] == n && memcmp(t->blob + t->off[id], s, n) == 0) return id;
    }
    return bn_tok_lookup(t, s, n);
}

static bn_status pair_map_grow(bn_pair_map *m, uint32_t cap) {
    uint64_t *keys = bn_calloc(cap, sizeof *keys);
    int32_t *rank = bn_malloc((size_t)cap * sizeof *rank);
    int32_t *res = bn_malloc((size_t)cap * sizeof *res);
    if (!keys || !rank || !res) {
        free(keys); free(rank); free(res);
        return BN_ERR_NOMEM;
    }
    uint32_t mask = cap - 1;
    for (uint32_t i = 0; m->keys && i <= m->mask; i++) {
        if (!m->keys[i]) continue;
        uint32_t j = (uint32_t)bn_tok_mix64(m->keys[i]) & mask;
        while (keys[j]) j = (j + 1) & mask;
        keys[j] = m->keys[i];
        rank[j] = m->rank[i];
        res[j] = m->result[i];
    }
    free(m->keys); free(m->rank); free(m->result);
    m->keys = keys; m->rank = rank; m->result = res; m->mask = mask;
    return BN_OK;
}

bn_status bn_tok_reserve_merges(bn_tokenizer *t, uint32_t n) {
    uint32_t cap = pow2_at_least((uint64_t)n * 2 + 2);
    if (t->pairs.keys && cap <= t->pairs.mask + 1) return BN_OK;
    bn_status st = pair_map_grow(&t->pairs, cap);
    if (st) return st;
    if (n > t->cap_merges) {
        int32_t *l = realloc(t->merge_l, (size_t)n * sizeof *l);
        if (l) t->merge_l = l;
        int32_t *r = realloc(t->merge_r, (size_t)n * sizeof *r);
        if (r) t->merge_r = r;
        if (!l || !r) return bn_fail(BN_ERR_NOMEM, "out of memory for %u merges", n);
        t->cap_merges = n;
    }
    return BN_OK;
}

bn_status bn_tok_add_merge(bn_tokenizer *t, int32_t left, int32_t right, int32_t result) {
    if (left < 0 || right < 0 || result < 0 || left >= t->n_vocab || right >= t->n_vocab ||
        result >= t->n_vocab)
        return bn_fail(BN_ERR_FORMAT, "merge refers to a token id out of range");
    if (t->n_merges >= (uint32_t)INT32_MAX - 1) return bn_fail(BN_ERR_FORMAT, "too many merges");
    if (!t->pairs.keys || (uint64_t)(t->pairs.count + 1) * 2 > (uint64_t)t->pairs.mask + 1 ||
        t->n_merges >= t->cap_merges) {
        uint64_t want = (uint64_t)t->n_merges * 2 + 1024;
        if (want > (uint64_t)INT32_MAX) want = INT32_MAX;
        bn_status st = bn_tok_reserve_merges(t, (uint32_t)want);
        if (st) return st;
    }
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    uint32_t i = (uint32_t)bn_tok_mix64(key) & t->pairs.mask;
    while (t->pairs.keys[i]) {
        if (t->pairs.keys[i] == key) return BN_OK; /* duplicate rule: first (lowest rank) wins */
        i = (i + 1) & t->pairs.mask;
    }
    t->pairs.keys[i] = key;
    t->pairs.rank[i] = (int32_t)t->n_merges;
    t->pairs.result[i] = result;
    t->pairs.count++;
    t->merge_l[t->n_merges] = left;
    t->merge_r[t->n_merges] = right;
    t->n_merges++;
    return BN_OK;
}

/* ---------------------------------------------------------------- building */

bn_status bn_tok_alloc(int32_t n, size_t blob_cap, bn_tokenizer **out) {
    *out = NULL;
    if (n <= 0 || n > (1 << 24)) return bn_fail(BN_ERR_FORMAT, "vocabulary size %d out of range", n);
    bn_tokenizer *t = bn_calloc(1, sizeof *t);
    if (!t) return BN_ERR_NOMEM;
    t->n_vocab = n;
    t->off = bn_calloc((size_t)n, sizeof *t->off);
    t->len = bn_calloc((size_t)n, sizeof *t->len);
    t->type = bn_malloc((size_t)n);
    t->rank = bn_malloc((size_t)n * sizeof *t->rank);
    t->blob = bn_malloc(blob_cap ? blob_cap : 1);
    if (!t->off || !t->len || !t->type || !t->rank || !t->blob) {
        bn_tokenizer_free(t);
        return BN_ERR_NOMEM;
    }
    memset(t->type, BN_TOKTYPE_UNUSED, (size_t)n);
    for (int32_t i = 0; i < n; i++) t->rank[i] = INT32_MAX;
    t->bos_id = t->eos_id = t->eot_id = t->eom_id = t->eog_extra = t->unk_id = -1;
    t->blob_cap = blob_cap ? blob_cap : 1;
    t->ignore_merges = true;
    *out = t;
    return BN_OK;
}

bn_status bn_tok_set(bn_tokenizer *t, int32_t id, const void *bytes, size_t len, int type) {
    if (id < 0 || id >= t->n_vocab) return bn_fail(BN_ERR_FORMAT, "token id %d out of range", id);
    size_t used = t->blob_used, cap = t->blob_cap;
    if (len > (1u << 20)) return bn_fail(BN_ERR_FORMAT, "token %d is absurdly long (%zu bytes)", id, len);
    if (used + len > cap) {
        size_t ncap = cap * 2 + len + 1024;
        if (ncap > (size_t)INT32_MAX) return bn_fail(BN_ERR_FORMAT, "vocabulary text too large");
        char *b = realloc(t->blob, ncap);
        if (!b) return bn_fail(BN_ERR_NOMEM, "out of memory for vocabulary text");
        t->blob = b;
        t->blob_cap = ncap;
    }
    if (len) memcpy(t->blob + used, bytes, len);
    t->off[id] = (uint32_t)used;
    t->len[id] = (uint32_t)len;
    t->type[id] = (uint8_t)type;
    t->blob_used = used + len;
    return BN_OK;
}

static bool is_special_type(uint8_t ty) {
    return ty == BN_TOKTYPE_CONTROL || ty == BN_TOKTYPE_USER_DEFINED;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const bn_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint8_t fx = (uint8_t)t->blob[t->off[x]], fy = (uint8_t)t->blob[t->off[y]];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (t->len[x] != t->len[y]) return t->len[x] > t->len[y] ? -1 : 1; /* longest first */
    return x < y ? -1 : x > y;
}

/* PCRE2's \s is the Z categories plus \t\n\v\f\r; the reference's (Rust
 * regex, White_Space) also includes U+0085. Rewrite \s / \S so the two
 * agree (SPEC §4: U+0085 is whitespace, U+FEFF is not). */
static char *adapt_pattern(const char *p) {
    size_t n = strlen(p);
    char *o = bn_malloc(n * 12 + 1);
    if (!o) return NULL;
    size_t k = 0;
    int depth = 0; /* inside [...] */
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n) {
            char c = p[i + 1];
            if (c == 's') {
                const char *r = depth ? "\\s\\x{85}" : "[\\s\\x{85}]";
                memcpy(o + k, r, strlen(r)); k += strlen(r);
            } else if (c == 'S' && !depth) {
                memcpy(o + k, "[^\\s\\x{85}]", 11); k += 11;
            } else {
                o[k++] = p[i]; o[k++] = c;
            }
            i++;
            continue;
        }
        if (p[i] == '[' && !depth) depth = 1;
        else if (p[i] == ']' && depth) depth = 0;
        o[k++] = p[i];
    }
    o[k] = 0;
    return o;
}

static bn_status compile_pattern(bn_tokenizer *t, const char *pattern) {
    t->pattern = bn_strdup(pattern);
    char *adapted = adapt_pattern(pattern);
    if (!t->pattern || !adapted) { free(adapted); return BN_ERR_NOMEM; }
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)adapted, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &eoff, NULL);
    free(adapted);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return bn_fail(BN_ERR_UNSUPPORTED, "pre-tokenizer regex does not compile (%s at %zu): %s",
                       (const char *)msg, (size_t)eoff, pattern);
    }
    /* JIT is an optimisation: if it is unavailable the interpreter is used. */
    t->re_jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    t->re = re;
    return BN_OK;
}

static int32_t find_named(const bn_tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = bn_tok_find_any(t, *names, strlen(*names));
        if (id >= 0) return id;
    }
    return -1;
}

bn_status bn_tok_finish(bn_tokenizer *t, const char *pattern) {
    /* bytes -> id over mergeable tokens; the first id wins on duplicates */
    uint32_t cap = pow2_at_least((uint64_t)t->n_vocab * 2);
    t->map.slots = bn_malloc((size_t)cap * sizeof *t->map.slots);
    if (!t->map.slots) return BN_ERR_NOMEM;
    for (uint32_t i = 0; i < cap; i++) t->map.slots[i] = (bn_tok_slot){0, -1};
    t->map.mask = cap - 1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    int32_t n_special = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->type[id];
        if (is_special_type(ty)) {
            if (t->len[id]) n_special++;
            continue;
        }
        /* byte tokens (SPM's <0xNN>) are only a fallback, never looked up as text */
        if (ty == BN_TOKTYPE_BYTE && t->len[id] == 1 && t->byte_id[(uint8_t)t->blob[t->off[id]]] < 0)
            t->byte_id[(uint8_t)t->blob[t->off[id]]] = id;
        if (ty != BN_TOKTYPE_NORMAL) continue;
        if (!t->len[id]) continue;
        if (bn_tok_lookup(t, t->blob + t->off[id], t->len[id]) >= 0) continue;
        uint64_t h = bn_tok_hash_bytes((const uint8_t *)t->blob + t->off[id], t->len[id]);
        uint32_t i = (uint32_t)h & t->map.mask;
        while (t->map.slots[i].id >= 0) i = (i + 1) & t->map.mask;
        t->map.slots[i] = (bn_tok_slot){(uint32_t)(h >> 32), id};
    }
    /* single-byte normal tokens stand for their byte where no byte token does */
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0) t->byte_id[b] = bn_tok_lookup(t, &(char){(char)b}, 1);
    /* special tokens, grouped by first byte, longest first */
    t->special_ids = bn_malloc((size_t)(n_special ? n_special : 1) * sizeof(int32_t));
    if (!t->special_ids) return BN_ERR_NOMEM;
    t->n_special = 0;
    t->n_user_defined = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (is_special_type(t->type[id]) && t->len[id]) {
            t->special_ids[t->n_special++] = id;
            t->n_user_defined += t->type[id] == BN_TOKTYPE_USER_DEFINED;
        }
    qsort_r(t->special_ids, (size_t)t->n_special, sizeof(int32_t), cmp_special, t);
    memset(t->special_first, 0, sizeof t->special_first);
    for (int32_t k = 0; k < t->n_special; k++)
        t->special_first[(uint8_t)t->blob[t->off[t->special_ids[k]]] + 1]++;
    for (int b = 0; b < 256; b++) t->special_first[b + 1] += t->special_first[b];

    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<|startoftext|>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", NULL};
    static const char *const eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", NULL};
    static const char *const eom_names[] = {"<|eom_id|>", NULL};
    if (t->bos_id < 0) t->bos_id = find_named(t, bos_names);
    if (t->eos_id < 0) t->eos_id = find_named(t, eos_names);
    if (t->eot_id < 0) t->eot_id = find_named(t, eot_names);
    if (t->eom_id < 0) t->eom_id = find_named(t, eom_names);
    if (t->kind == BN_TOK_SPM) return BN_OK; /* no regex pre-tokenizer */
    return compile_pattern(t, pattern ? pattern : bn_llama3_pattern);
}

/* ---------------------------------------------------------------- public */

void bn_tokenizer_free(bn_tokenizer *t) {
    if (!t) return;
    free(t->score);
    free(t->blob); free(t->off); free(t->len); free(t->type); free(t->rank);
    free(t->map.slots);
    free(t->pairs.keys); free(t->pairs.rank); free(t->pairs.result);
    free(t->merge_l); free(t->merge_r);
    free(t->special_ids);
    if (t->re) pcre2_code_free((pcre2_code *)t->re);
    free(t->pattern);
    free(t->chat_template);
    free(t);
}

int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t bn_tokenizer_bos(const bn_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t bn_tokenizer_eos(const bn_tokenizer *t) { return t ? t->eos_id : -1; }
int32_t bn_tokenizer_eot(const bn_tokenizer *t) { return t ? t->eot_id : -1; }

bool bn_tokenizer_is_eog(const bn_tokenizer *t, int32_t id) {
    return t && id >= 0 && (id == t->eos_id || id == t->eot_id || id == t->eom_id || id == t->eog_extra);
}

bool bn_tokenizer_is_special(const bn_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && is_special_type(t->type[id]);
}

int32_t bn_tokenizer_find(const bn_tokenizer *t, const char *s) {
    return t && s ? bn_tok_find_any(t, s, strlen(s)) : -1;
}

const char *bn_tokenizer_chat_template(const bn_tokenizer *t) { return t ? t->chat_template : NULL; }

const char *bn_token_to_piece(const bn_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->len[id];
    return t->blob + t->off[id];
}

bn_status bn_idbuf_push(bn_idbuf *b, int32_t id) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        int32_t *v = realloc(b->v, nc * sizeof *v);
        if (!v) return bn_fail(BN_ERR_NOMEM, "out of memory for token ids");
        b->v = v;
        b->cap = nc;
    }
    b->v[b->n++] = id;
    return BN_OK;
}
