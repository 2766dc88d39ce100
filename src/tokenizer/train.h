/* train.h — training a byte-level BPE vocabulary (LLaMA 3 pre-tokenizer)
 * from a text corpus, written as a Hugging Face tokenizer.json. */
#ifndef BN_TOKENIZER_TRAIN_H
#define BN_TOKENIZER_TRAIN_H

#include "core/core.h"

/* The special tokens used when none are chosen (LLaMA 3's first five). */
extern const char *const bn_bpe_default_specials[];
#define BN_BPE_N_DEFAULT_SPECIALS 5

typedef struct bn_bpe_train_opts {
    int32_t            vocab_size;    /* total: 256 bytes + merges + specials          */
    const char *const *specials;      /* appended after the merged tokens, in order    */
    int32_t            n_specials;
    int64_t            min_frequency; /* a pair seen fewer times is never merged (>= 1) */
} bn_bpe_train_opts;

typedef struct bn_bpe_train_stats {
    uint64_t n_bytes;      /* corpus bytes outside special-token text              */
    uint64_t n_pretokens;  /* pre-tokens (regex pieces) in the corpus              */
    uint64_t n_words;      /* distinct pre-tokens                                  */
    uint64_t n_tokens_out; /* the corpus as trained tokens (pre-tokens merged)     */
    int32_t  n_merges;     /* merge rules learned                                  */
    int32_t  n_vocab;      /* final vocabulary size (< vocab_size if pairs ran out) */
} bn_bpe_train_stats;

/* Learn merges from text[0..len) and render the vocabulary as tokenizer.json
 * text (*json: malloc'd, NUL-terminated, *json_len bytes). Stops early (a
 * smaller vocabulary) when no pair occurs min_frequency times. stats may be
 * NULL. Text equal to a special token is a boundary and is not learned from. */
bn_status bn_bpe_train(const char *text, size_t len, const bn_bpe_train_opts *opts,
                       char **json, size_t *json_len, bn_bpe_train_stats *stats);

#endif /* BN_TOKENIZER_TRAIN_H */
