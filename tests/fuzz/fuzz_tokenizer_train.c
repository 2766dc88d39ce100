/* fuzz_tokenizer_train.c — libFuzzer target for BPE training.
 * The first byte picks the vocabulary size (256 + 2 specials + 0..255 merges)
 * and the minimum pair frequency (1 or 2); the rest is the corpus, any bytes.
 * Training must fail cleanly (empty corpus) or give a tokenizer.json that
 * parses, is no larger than asked, encodes the corpus in no more tokens
 * than the trained segmentation (+ the special tokens parsed in it) and
 * decodes it back byte for byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 1 << 16) return 0;
    static const char *const sp[] = {"<|s|>", "<|e|>"};
    bn_bpe_train_opts o = {.vocab_size = 258 + data[0], .specials = sp, .n_specials = 2,
                           .min_frequency = 1 + (data[0] & 1)};
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    char *json = NULL;
    size_t jl = 0;
    bn_bpe_train_stats s;
    if (bn_bpe_train(text, n, &o, &json, &jl, &s) != BN_OK) return 0;
    if (s.n_vocab > o.vocab_size || s.n_vocab < 258 || s.n_tokens_out > s.n_bytes) abort();
    bn_tokenizer *t = NULL;
    if (bn_tokenizer_parse_hfjson(json, jl, NULL, "fuzz", &t) != BN_OK) abort();
    if (bn_tokenizer_n_vocab(t) != s.n_vocab) abort();
    int32_t *ids = NULL;
    size_t k = 0;
    if (bn_tokenize(t, text, n, false, true, &ids, &k) != BN_OK) abort();
    size_t n_special = 0;
    for (size_t i = 0; i < k; i++) n_special += bn_tokenizer_is_special(t, ids[i]);
    /* encoding replays the merges in training order; a pre-token that is
     * itself a token (ignore_merges) can only make it shorter */
    if (k > s.n_tokens_out + n_special) abort();
    char *back = NULL;
    size_t bl = 0;
    if (bn_detokenize(t, ids, k, false, &back, &bl) != BN_OK || bl != n || memcmp(back, text, n)) abort();
    free(back);
    free(ids);
    bn_tokenizer_free(t);
    free(json);
    return 0;
}
