/* tokenizer.h — internal view of the byte-level BPE tokenizer, shared by the
 * vocab loaders (tiktoken, tokenizer.json, GGUF), the encoder, the decoder
 * and the chat templates. The public API is in include/bitnet.h. */
#ifndef BN_TOKENIZER_INTERNAL_H
#define BN_TOKENIZER_INTERNAL_H

#include "core/core.h"
#include "formats/gguf.h"

#include <string.h>

/* Token types, numerically equal to llama.cpp's tokenizer.ggml.token_type. */
enum {
    BN_TOKTYPE_NORMAL = 1,
    BN_TOKTYPE_UNKNOWN = 2,
    BN_TOKTYPE_CONTROL = 3,      /* special: <|begin_of_text|> ...            */
    BN_TOKTYPE_USER_DEFINED = 4, /* added token matched as a whole           */
    BN_TOKTYPE_UNUSED = 5,
    BN_TOKTYPE_BYTE = 6,
};

/* How a pair of adjacent parts is ranked during BPE.
 *  RANKS:  tiktoken — the rank of the token their concatenation is (if any).
 *  MERGES: Hugging Face / GGUF — the index of the merge rule (left, right). */
typedef enum bn_bpe_mode { BN_BPE_RANKS = 0, BN_BPE_MERGES = 1 } bn_bpe_mode;

/* Open-addressing table: token bytes -> id. Each slot keeps the high half
 * of the hash beside the id, so a probe that misses (most BPE lookups do)
 * is settled without touching the token's bytes. */
typedef struct bn_tok_slot {
    uint32_t tag;    /* hash >> 32                                    */
    int32_t  id;     /* -1: empty                                     */
} bn_tok_slot;
typedef struct bn_tok_map {
    bn_tok_slot *slots;
    uint32_t     mask; /* capacity - 1 (capacity is a power of two)   */
} bn_tok_map;

/* Open-addressing table: (left id, right id) -> (rank, merged id). */
typedef struct bn_pair_map {
    uint64_t *keys;  /* (left << 32 | right) + 1; 0 = empty             */
    int32_t  *rank;
    int32_t  *result;
    uint32_t  mask;
    uint32_t  count;
} bn_pair_map;

/* Which algorithm turns text into ids. */
typedef enum bn_tok_kind {
    BN_TOK_BPE = 0,  /* byte-level BPE (tiktoken, tokenizer.json, GGUF gpt2)        */
    BN_TOK_SPM = 1,  /* SentencePiece-style BPE over characters by score, with byte
                      * fallback (GGUF "llama", as llama.cpp implements it)       */
} bn_tok_kind;

struct bn_tokenizer {
    int32_t   n_vocab;
    bn_tok_kind kind;
    float    *score;           /* SPM: merge priority per token (higher first)  */
    bool      add_space_prefix;/* SPM: " " before text at the start / after a special */
    int32_t   unk_id;          /* SPM: for characters with no token and no byte token */
    int32_t   n_user_defined;  /* USER_DEFINED tokens are matched in text always */
    /* Raw bytes of every token: blob[off[i] .. off[i] + len[i]). */
    char     *blob;
    size_t    blob_used, blob_cap;
    uint32_t *off;
    uint32_t *len;
    uint8_t  *type;      /* BN_TOKTYPE_*                                  */
    int32_t  *rank;      /* RANKS mode: merge rank of a normal token; INT32_MAX if none */

    bn_bpe_mode mode;
    bool        ignore_merges; /* a whole pre-token that is a token is emitted as is */
    bn_tok_map  map;           /* bytes -> id for normal (mergeable) tokens        */
    bn_pair_map pairs;         /* MERGES mode                                      */
    int32_t    *merge_l, *merge_r; /* merge rules in rank order (MERGES mode)       */
    uint32_t    n_merges, cap_merges;
    int32_t     byte_id[256];  /* token of each single byte, -1 if none            */

    /* Special tokens (CONTROL / USER_DEFINED) matched in text when asked,
     * grouped by first byte; longest match wins. */
    int32_t  *special_ids;     /* sorted by first byte, then by length desc  */
    int32_t   n_special;
    int32_t   special_first[257]; /* special_ids[special_first[b] .. special_first[b+1]) */

    int32_t   bos_id, eos_id, eot_id, eom_id; /* -1 if none */
    int32_t   eog_extra;       /* the named end-of-text token when the config
                                * chose another eos (e.g. <|eot_id|>), or -1  */

    /* Pre-tokenizer (PCRE2, UTF + UCP, JIT); opaque here. */
    void     *re;              /* pcre2_code_8 *                                     */
    bool      re_jit;          /* JIT-compiled: use pcre2_jit_match                  */
    char     *pattern;         /* the regex source, kept for writing GGUF/debug      */
    char      pre_name[32];    /* GGUF tokenizer.ggml.pre ("llama-bpe")              */
    char     *chat_template;   /* from GGUF / tokenizer_config.json, may be NULL      */
    char      arch[32];        /* general.architecture when loaded from GGUF          */
};

/* The pre-tokenizer regex of LLaMA 3 (SPEC §4). */
extern const char bn_llama3_pattern[];
/* The GPT-2 regex (for tokenizer.json files that use the ByteLevel default). */
extern const char bn_gpt2_pattern[];

/* ---- building a tokenizer (vocab loaders) ------------------------------ */

/* An empty tokenizer with room for n tokens: every token is empty, type
 * UNUSED; fill with bn_tok_set, then call bn_tok_finish. */
bn_status bn_tok_alloc(int32_t n, size_t blob_cap, bn_tokenizer **out);
/* Set token id's bytes and type (the bytes are appended to the blob; setting
 * an id again just points it at the new copy). */
bn_status bn_tok_set(bn_tokenizer *t, int32_t id, const void *bytes, size_t len, int type);
/* Add a merge rule (MERGES mode); rank = order of addition. */
bn_status bn_tok_add_merge(bn_tokenizer *t, int32_t left, int32_t right, int32_t result);
/* Reserve the pair table for about n merges. */
bn_status bn_tok_reserve_merges(bn_tokenizer *t, uint32_t n);
/* Build the lookup tables, byte map, special list, compile the regex
 * (pattern NULL: LLaMA 3), guess bos/eos/eot from token names where unset. */
bn_status bn_tok_finish(bn_tokenizer *t, const char *pattern);

static inline uint64_t bn_tok_mix64(uint64_t h) {
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t bn_tok_hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = 0;
        memcpy(&v, s, n);
        h = (h ^ v) * 0x94d049bb133111ebull;
    }
    return bn_tok_mix64(h);
}

/* Id of the token whose raw bytes are exactly s[0..n) among normal tokens, or -1. */
static inline int32_t bn_tok_lookup(const bn_tokenizer *t, const void *s, size_t n) {
    if (!t->map.slots) return -1;
    uint64_t h = bn_tok_hash_bytes((const uint8_t *)s, n);
    uint32_t i = (uint32_t)h & t->map.mask, tag = (uint32_t)(h >> 32);
    for (;;) {
        bn_tok_slot sl = t->map.slots[i];
        if (sl.id < 0) return -1;
        if (sl.tag == tag && t->len[sl.id] == n && memcmp(t->blob + t->off[sl.id], s, n) == 0) return sl.id;
        i = (i + 1) & t->map.mask;
    }
}
/* Id of any token (special ones included) with exactly this text, or -1. */
int32_t bn_tok_find_any(const bn_tokenizer *t, const char *s, size_t n);

/* ---- loaders ----------------------------------------------------------- */

bn_status bn_tokenizer_load_tiktoken(const char *path, bn_tokenizer **out);
bn_status bn_tokenizer_parse_tiktoken(const char *buf, size_t n, const char *name, bn_tokenizer **out);
/* tokenizer.json (config_json: tokenizer_config.json text or NULL). */
bn_status bn_tokenizer_parse_hfjson(const char *json, size_t n, const char *config_json,
                                    const char *name, bn_tokenizer **out);
bn_status bn_tokenizer_load_hf_dir(const char *dir, bn_tokenizer **out);

bn_status bn_tokenizer_load_gguf(const char *path, bn_tokenizer **out);
/* Add the merge rule "l r" given as byte-level strings; rules naming tokens
 * that do not exist (or whose result does not) are skipped. tmp: scratch of
 * at least ln + rn bytes. Call after bn_tok_finish. */
bn_status bn_tok_add_merge_str(bn_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn, char *tmp);
/* From a parsed GGUF (tokenizer.ggml.*); used by the model loader. */
bn_status bn_tokenizer_from_gguf(const bn_gguf *g, bn_tokenizer **out);
/* Write tokenizer.ggml.{model=gpt2, pre, tokens, token_type, merges,
 * bos/eos/eot ids} (merges derived from the ranks for a tiktoken source). */
bn_status bn_tokenizer_write_gguf(const bn_tokenizer *t, bn_gguf_writer *w);

/* RANKS mode (tiktoken): for each normal token of >= 2 bytes, the two tokens
 * BPE would merge into it (running BPE on its bytes with ranks below its
 * own), as converters from tiktoken do. left[i] = right[i] = -1 where none
 * (and for every token in MERGES mode, whose rules are kept as loaded). */
bn_status bn_tok_derive_merges(const bn_tokenizer *t, int32_t *left, int32_t *right);

/* ---- encoding internals ------------------------------------------------ */

/* A growable id buffer. */
typedef struct bn_idbuf {
    int32_t *v;
    size_t   n, cap;
} bn_idbuf;
bn_status bn_idbuf_push(bn_idbuf *b, int32_t id);

/* Reusable scratch for BPE over one piece. */
typedef struct bn_bpe_scratch {
    int32_t *id, *rank, *res, *next, *prev;
    uint64_t *heap;
    size_t   cap;
} bn_bpe_scratch;
void bn_bpe_scratch_free(bn_bpe_scratch *s);

/* BPE-encode one pre-token (raw bytes) and append its ids. max_rank limits
 * merges to ranks < max_rank (INT32_MAX: no limit; used to derive merges). */
bn_status bn_bpe_piece(const bn_tokenizer *t, const uint8_t *s, size_t n, int32_t max_rank,
                       bn_bpe_scratch *sc, bn_idbuf *out);

/* Encode ordinary text (no special-token parsing), appending to out. */
bn_status bn_encode_ordinary(const bn_tokenizer *t, const char *text, size_t len,
                             bn_bpe_scratch *sc, bn_idbuf *out);
/* SPM: encode one text fragment (add_prefix: put a space before it). */
bn_status bn_spm_encode(const bn_tokenizer *t, const char *text, size_t len, bool add_prefix, bn_idbuf *out);
/* GGUF tokenizer.ggml.model == "llama". */
bn_status bn_tokenizer_from_gguf_spm(const bn_gguf *g, bn_tokenizer **out);

/* The vocabulary arrays every GGUF tokenizer model has (vocab_gguf.c):
 * tokenizer.ggml.tokens (1 .. 2^24 strings) and the optional
 * tokenizer.ggml.token_type (one integer per token). */
typedef struct bn_gguf_vocab {
    const bn_gguf_value *toks, *types;
    uint64_t n;
} bn_gguf_vocab;
/* Validate them and allocate *out for their n tokens (bn_tok_alloc). */
bn_status bn_gguf_vocab_open(const bn_gguf *g, bn_gguf_vocab *v, bn_tokenizer **out);
/* Token i's stored string and type (BN_TOKTYPE_*; values outside 1..6 read as normal). */
bn_status bn_gguf_vocab_token(const bn_gguf_vocab *v, uint64_t i, bn_gguf_str *s, int *type);
/* bos / eos / eot ids from tokenizer.ggml.*_token_id where below v->n. */
void      bn_gguf_vocab_special_ids(const bn_gguf *g, const bn_gguf_vocab *v, bn_tokenizer *t);

/* ---- UTF-8 and the GPT-2 byte <-> unicode map --------------------------- */

/* Length of the valid UTF-8 character starting at s (strict: no overlongs,
 * surrogates, or > U+10FFFF), or 0 if the bytes there are not one. */
size_t bn_utf8_valid_len(const uint8_t *s, size_t n);
/* Length of the longest prefix of s[0..n) made of valid UTF-8 characters. */
size_t bn_utf8_valid_prefix(const uint8_t *s, size_t n);
/* Number of bytes at the end of s[0..n) that form an incomplete (but so far
 * valid) UTF-8 sequence that more bytes could complete; 0 if none. */
size_t bn_utf8_incomplete_tail(const uint8_t *s, size_t n);
/* Append the UTF-8 encoding of cp to buf (returns bytes written, 1..4). */
size_t bn_utf8_put(uint32_t cp, char *buf);
/* Decode one character; returns its length (0 if invalid). */
size_t bn_utf8_get(const uint8_t *s, size_t n, uint32_t *cp);

/* GPT-2 byte-level map: codepoint standing for byte b. */
uint32_t bn_byte_to_unicode(uint8_t b);
/* Inverse: byte for codepoint cp, or -1 if cp stands for no byte. */
int bn_unicode_to_byte(uint32_t cp);
/* Decode a byte-level token string (UTF-8 of mapped codepoints) into raw
 * bytes in out (capacity >= n). Returns false if a codepoint maps to no byte. */
bool bn_bytelevel_decode(const char *s, size_t n, char *out, size_t *out_n);
/* Encode raw bytes as a byte-level string (out capacity >= 2 * n). */
size_t bn_bytelevel_encode(const uint8_t *s, size_t n, char *out);

#endif /* BN_TOKENIZER_INTERNAL_H */
