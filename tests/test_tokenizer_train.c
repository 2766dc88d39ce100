/* test_tokenizer_train.c — byte-level BPE training (src/tokenizer/train_bpe.c).
 *
 * Reference: the merges Hugging Face tokenizers' BpeTrainer (npm tokenizers
 * 0.23.2, Rust core) learned on tests/data/tokenizer_train/shakespeare_oneline.txt
 * with the LLaMA 3 Split + ByteLevel pre-tokenizer, min_frequency 0 and no
 * vocabulary limit: all 1409 rules, in order, including the many count-1
 * ties (broken by the smaller pair of ids). Then round trips: text ->
 * ids -> text, tokenizer.json and GGUF reloads with identical ids, and the
 * encoder reproducing the training segmentation. */
#include "harness.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train.h"

static char *g_corpus;   /* the Shakespeare line */
static size_t g_corpus_n;

/* Text the round trips use besides the corpus: newlines, CRLF, tabs,
 * digits, non-ASCII letters, emoji, and bytes that are not UTF-8. */
static const char *const g_extra[] = {
    "Once upon a time, there was a little girl named Lily.\n\nShe liked to play outside.\n",
    "Line one\r\nLine two\r\n\tindented\t\ttabs  and   spaces   \n",
    "Numbers: 1 12 123 1234 12345 3.14159 -42 1,000,000\n",
    "Grüße aus Köln — naïve café, façade; Ελληνικά; русский текст; 日本語のテキスト。\n",
    "Emoji: 😀 🦙 👨‍👩‍👧 and symbols ©®™ €£¥\n",
    "Contractions: I'm, you're, it's, we'll, they've, he'd, DON'T, I'LL\n",
    "bad bytes: \xff\xfe \xc3( \xe2\x82 truncated \xf0\x9f\x98 end\n",
    "<|begin_of_text|>special text inside<|eot_id|> and <|end_of_text|>\n",
};
#define N_EXTRA (sizeof g_extra / sizeof g_extra[0])

/* corpus + the extra strings, as one training text */
static char *training_text(size_t *n) {
    size_t total = g_corpus_n + 1;
    for (size_t i = 0; i < N_EXTRA; i++) total += strlen(g_extra[i]);
    char *t = malloc(total + 1);
    memcpy(t, g_corpus, g_corpus_n);
    size_t o = g_corpus_n;
    t[o++] = '\n';
    for (size_t i = 0; i < N_EXTRA; i++) {
        memcpy(t + o, g_extra[i], strlen(g_extra[i]));
        o += strlen(g_extra[i]);
    }
    t[o] = 0;
    *n = o;
    return t;
}

static bn_status train(const char *text, size_t n, int32_t vocab, int64_t minf, const char *const *sp,
                       int32_t nsp, char **json, size_t *json_len, bn_bpe_train_stats *stats) {
    bn_bpe_train_opts o = {.vocab_size = vocab, .specials = sp, .n_specials = nsp, .min_frequency = minf};
    return bn_bpe_train(text, n, &o, json, json_len, stats);
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* ------------------------------------------------------------ HF reference */

static void test_merges_match_hf(void) {
    size_t ref_n = 0;
    char *ref = bn_test_read(bn_test_src("tests/data/tokenizer_train/shakespeare_oneline.hf_merges.txt"), &ref_n);
    CHECK(ref != NULL);
    if (!ref) return;
    char *z = realloc(ref, ref_n + 1); /* bn_test_read does not NUL-terminate */
    if (!z) { free(ref); return; }
    ref = z;
    ref[ref_n] = 0;
    char *json = NULL;
    size_t json_len = 0;
    bn_bpe_train_stats s;
    CHECK_OK(train(g_corpus, g_corpus_n, 1 << 20, 1, NULL, 0, &json, &json_len, &s));
    CHECK(s.n_merges == 1409);
    CHECK(s.n_vocab == 256 + 1409);
    CHECK(s.n_bytes == g_corpus_n);
    /* every pre-token merged into one token: min frequency 1, no vocab limit */
    CHECK(s.n_tokens_out == s.n_pretokens);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "merges");
    CHECK(cJSON_GetArraySize(merges) == 1409);
    int k = 0, mismatches = 0;
    char *line = ref;
    const cJSON *it;
    cJSON_ArrayForEach(it, merges) {
        char *nl = line ? strchr(line, '\n') : NULL;
        if (nl) *nl = 0;
        if (!line || !cJSON_IsString(it) || strcmp(it->valuestring, line)) {
            if (mismatches++ < 3)
                fprintf(stderr, "merge %d: got '%s', HF '%s'\n", k, cJSON_IsString(it) ? it->valuestring : "?",
                        line ? line : "(none)");
        }
        line = nl ? nl + 1 : NULL;
        k++;
    }
    CHECK_MSG(mismatches == 0, "%d of %d merges differ from HF tokenizers", mismatches, k);
    CHECK(line && *line == 0); /* the reference has no more rules */
    /* the byte tokens come first, in the GPT-2 byte-to-unicode order */
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "vocab");
    CHECK(cJSON_GetObjectItemCaseSensitive(vocab, "!")->valueint == 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(vocab, "\xc4\xa0")->valueint == 220); /* U+0120 = ' ' */
    CHECK(cJSON_GetObjectItemCaseSensitive(vocab, "\xc4\x8a")->valueint == 198); /* U+010A = '\n' */
    cJSON_Delete(root);
    free(json);
    free(ref);
}

/* ------------------------------------------------------------ round trips */

static void test_roundtrip_and_reload(void) {
    enum { V = 640, SP = V - 5 }; /* specials at SP .. V-1 */
    size_t n = 0;
    char *text = training_text(&n);
    char *json = NULL;
    size_t json_len = 0;
    bn_bpe_train_stats s;
    CHECK_OK(train(text, n, V, 2, bn_bpe_default_specials, BN_BPE_N_DEFAULT_SPECIALS, &json, &json_len, &s));
    CHECK(s.n_vocab == V);
    CHECK(s.n_merges >= V - 256 - 5); /* duplicates of a token's bytes would add rules, not ids */
    bn_tokenizer *tok = NULL;
    CHECK_OK(bn_tokenizer_parse_hfjson(json, json_len, NULL, "trained", &tok));
    if (!tok) { free(json); free(text); return; }
    CHECK(bn_tokenizer_n_vocab(tok) == V);
    /* the specials follow the merged tokens, in the order given */
    for (int k = 0; k < BN_BPE_N_DEFAULT_SPECIALS; k++) {
        CHECK(bn_tokenizer_find(tok, bn_bpe_default_specials[k]) == SP + k);
        CHECK(bn_tokenizer_is_special(tok, SP + k));
    }
    CHECK(bn_tokenizer_bos(tok) == SP);
    CHECK(bn_tokenizer_eos(tok) == SP + 1);
    CHECK(bn_tokenizer_eot(tok) == SP + 2);

    /* every training string round-trips */
    int32_t *ids = NULL;
    size_t nid = 0;
    for (size_t i = 0; i < N_EXTRA; i++) {
        const char *x = g_extra[i];
        CHECK_OK(bn_tokenize(tok, x, strlen(x), false, true, &ids, &nid));
        char *back = NULL;
        size_t bn = 0;
        CHECK_OK(bn_detokenize(tok, ids, nid, false, &back, &bn));
        CHECK_MSG(back && bn == strlen(x) && !memcmp(back, x, bn), "round trip of extra string %zu", i);
        free(back);
        free(ids);
    }
    /* the whole corpus: round trip, and the merges compress it (text parsed
     * without specials: its special-token text is ordinary text here) */
    CHECK_OK(bn_tokenize(tok, text, n, false, false, &ids, &nid));
    char *back = NULL;
    size_t bn = 0;
    CHECK_OK(bn_detokenize(tok, ids, nid, false, &back, &bn));
    CHECK(back && bn == n && !memcmp(back, text, n));
    free(back);
    double ratio = nid ? (double)n / (double)nid : 0;
    fprintf(stderr, "   %zu bytes -> %zu tokens (%.2f bytes/token); training segmentation %llu tokens\n", n, nid,
            ratio, (unsigned long long)s.n_tokens_out);
    CHECK_MSG(ratio > 2.3, "compression %.2f bytes/token", ratio);
    /* encoding applies the merges in training order: it reproduces the
     * training segmentation exactly, once the special-token text (which
     * training skipped) is parsed as the 3 special tokens it is */
    free(ids);
    CHECK_OK(bn_tokenize(tok, text, n, false, true, &ids, &nid));
    CHECK_MSG(nid == s.n_tokens_out + 3, "%zu tokens, training segmentation %llu + 3", nid,
              (unsigned long long)s.n_tokens_out);
    /* the same corpus as bytes with no merges: a 261-token vocabulary */
    {
        char *j0 = NULL;
        size_t j0n = 0;
        bn_bpe_train_stats s0;
        CHECK_OK(train(text, n, 261, 2, bn_bpe_default_specials, 5, &j0, &j0n, &s0));
        CHECK(s0.n_merges == 0 && s0.n_vocab == 261 && s0.n_tokens_out == s0.n_bytes);
        bn_tokenizer *t0 = NULL;
        CHECK_OK(bn_tokenizer_parse_hfjson(j0, j0n, NULL, "bytes", &t0));
        int32_t *i0 = NULL;
        size_t n0 = 0;
        if (t0) CHECK_OK(bn_tokenize(t0, text, n, false, false, &i0, &n0));
        CHECK(n0 == n);
        free(i0);
        bn_tokenizer_free(t0);
        free(j0);
    }

    /* tokenizer.json written to a file reloads with identical ids */
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", bn_test_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(json, 1, json_len, f) == json_len);
        fclose(f);
    }
    bn_tokenizer *t2 = NULL;
    CHECK_OK(bn_tokenizer_load(path, &t2));
    int32_t *ids2 = NULL;
    size_t nid2 = 0;
    if (t2) {
        CHECK(bn_tokenizer_n_vocab(t2) == V);
        CHECK_OK(bn_tokenize(t2, text, n, false, true, &ids2, &nid2));
        free(ids);
        CHECK_OK(bn_tokenize(tok, text, n, false, true, &ids, &nid));
        CHECK(same_ids(ids, nid, ids2, nid2));
        free(ids2);
    }

    /* ... and so does a GGUF that embeds it */
    snprintf(path, sizeof path, "%s/trained.gguf", bn_test_tmpdir());
    bn_gguf_writer *w = NULL;
    CHECK_OK(bn_gguf_writer_create(&w));
    if (w) {
        CHECK_OK(bn_gguf_writer_add_str(w, "general.architecture", "bitnet-b1.58"));
        CHECK_OK(bn_tokenizer_write_gguf(tok, w));
        CHECK_OK(bn_gguf_writer_write(w, path));
        bn_gguf_writer_free(w);
    }
    bn_tokenizer *t3 = NULL;
    CHECK_OK(bn_tokenizer_load(path, &t3));
    if (t3) {
        CHECK(bn_tokenizer_n_vocab(t3) == V);
        CHECK(bn_tokenizer_bos(t3) == SP && bn_tokenizer_eos(t3) == SP + 1 && bn_tokenizer_eot(t3) == SP + 2);
        CHECK(bn_tokenizer_is_special(t3, V - 1));
        int32_t *ids3 = NULL;
        size_t nid3 = 0;
        CHECK_OK(bn_tokenize(t3, text, n, false, true, &ids3, &nid3));
        CHECK(same_ids(ids, nid, ids3, nid3));
        /* special parsing: the special text became its ids */
        bool saw_eot = false;
        for (size_t i = 0; i < nid3; i++) saw_eot |= ids3[i] == SP + 2;
        CHECK(saw_eot);
        free(ids3);
    }
    free(ids);
    bn_tokenizer_free(t3);
    bn_tokenizer_free(t2);
    bn_tokenizer_free(tok);
    free(json);
    free(text);
}

/* Training is deterministic, and a smaller vocabulary is a prefix of a
 * larger one (same rules, in the same order). */
static void test_deterministic_prefix(void) {
    char *a = NULL, *b = NULL;
    size_t an = 0, bn = 0;
    CHECK_OK(train(g_corpus, g_corpus_n, 400, 2, NULL, 0, &a, &an, NULL));
    CHECK_OK(train(g_corpus, g_corpus_n, 600, 2, NULL, 0, &b, &bn, NULL));
    cJSON *ra = a ? cJSON_Parse(a) : NULL, *rb = b ? cJSON_Parse(b) : NULL;
    const cJSON *ma = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ra, "model"), "merges");
    const cJSON *mb = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rb, "model"), "merges");
    CHECK(cJSON_GetArraySize(ma) == 144);
    CHECK(cJSON_GetArraySize(mb) >= 344 - 4);
    bool prefix = true;
    for (int i = 0; i < cJSON_GetArraySize(ma); i++)
        prefix &= !strcmp(cJSON_GetArrayItem(ma, i)->valuestring, cJSON_GetArrayItem(mb, i)->valuestring);
    CHECK(prefix);
    cJSON_Delete(ra);
    cJSON_Delete(rb);
    free(a);
    free(b);
    /* min frequency: a high bar stops early with a smaller vocabulary */
    bn_bpe_train_stats s;
    CHECK_OK(train(g_corpus, g_corpus_n, 5000, 50, NULL, 0, &a, &an, &s));
    CHECK(s.n_vocab < 5000 && s.n_merges > 0 && s.n_vocab == 256 + s.n_merges);
    free(a);
}

/* ------------------------------------------------------------ bad input */

static void test_bad_input(void) {
    char *json = NULL;
    size_t jl = 0;
    const char *sp[] = {"<|a|>", "<|b|>"};
    CHECK(train("", 0, 1000, 2, NULL, 0, &json, &jl, NULL) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "empty") != NULL);
    CHECK(json == NULL);
    /* only special-token text: nothing to learn from */
    CHECK(train("<|a|><|b|><|a|>", 15, 1000, 2, sp, 2, &json, &jl, NULL) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "empty") != NULL);
    /* vocabulary too small for the bytes and the specials */
    CHECK(train("hello", 5, 257, 2, sp, 2, &json, &jl, NULL) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "at least 258") != NULL);
    CHECK(train("hello", 5, 255, 2, NULL, 0, &json, &jl, NULL) == BN_ERR_INVALID_ARG);
    CHECK(train("hello", 5, (1 << 24) + 1, 2, NULL, 0, &json, &jl, NULL) == BN_ERR_INVALID_ARG);
    /* bad special tokens and options */
    const char *dup[] = {"<|a|>", "<|a|>"};
    CHECK(train("hello", 5, 1000, 2, dup, 2, &json, &jl, NULL) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "twice") != NULL);
    const char *empty[] = {""};
    CHECK(train("hello", 5, 1000, 2, empty, 1, &json, &jl, NULL) == BN_ERR_INVALID_ARG);
    const char *bad8[] = {"<\xff>"};
    CHECK(train("hello", 5, 1000, 2, bad8, 1, &json, &jl, NULL) == BN_ERR_INVALID_ARG);
    CHECK(train("hello", 5, 1000, 0, NULL, 0, &json, &jl, NULL) == BN_ERR_INVALID_ARG);
    CHECK(train(NULL, 5, 1000, 2, NULL, 0, &json, &jl, NULL) == BN_ERR_INVALID_ARG);
    CHECK(json == NULL);
    /* exactly 256 + specials: valid, no merges */
    bn_bpe_train_stats s;
    CHECK_OK(train("hello hello", 11, 258, 1, sp, 2, &json, &jl, &s));
    CHECK(s.n_merges == 0 && s.n_vocab == 258);
    free(json);
    /* a single repeated byte (pairs that overlap) and invalid UTF-8 only */
    CHECK_OK(train("aaaaaaaaaaaaaaaa", 16, 300, 1, NULL, 0, &json, &jl, &s));
    CHECK(s.n_merges == 4 && s.n_tokens_out == 1); /* aa, aaaa, a^8, a^16 */
    bn_tokenizer *t = NULL;
    CHECK_OK(bn_tokenizer_parse_hfjson(json, jl, NULL, "a", &t));
    int32_t *ids = NULL;
    size_t n = 0;
    if (t) CHECK_OK(bn_tokenize(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 35, false, false, &ids, &n));
    CHECK(n == 4); /* one pre-token of 35 = 16 + 16 + 2 + 1: a^16 a^16 aa a */
    free(ids);
    bn_tokenizer_free(t);
    free(json);
    CHECK_OK(train("\xff\xfe\xff\xfe \xff\xfe", 7, 300, 2, NULL, 0, &json, &jl, &s));
    CHECK(s.n_merges >= 1);
    free(json);
}

int main(void) {
    g_corpus = bn_test_read(bn_test_src("tests/data/tokenizer_train/shakespeare_oneline.txt"), &g_corpus_n);
    CHECK(g_corpus != NULL && g_corpus_n == 8949);
    if (!g_corpus) return bn_test_finish("tokenizer_train");
    RUN(test_merges_match_hf);
    RUN(test_roundtrip_and_reload);
    RUN(test_deterministic_prefix);
    RUN(test_bad_input);
    free(g_corpus);
    return bn_test_finish("tokenizer_train");
}
