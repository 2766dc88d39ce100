/* test_tokenizer.c — the LLaMA 3 tokenizer against reference ids, loaded
 * from every source (tiktoken ranks, a GGUF we write, tokenizer.json), plus
 * lossless round trips, special tokens, and the streaming decoder. */
#include "harness.h"

#include "bitnet.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TD "tests/data/tokenizer/"

static bn_tokenizer *g_tik;   /* from llama3.tiktoken */
static bn_tokenizer *g_gguf;  /* from a GGUF written by bn_tokenizer_write_gguf */
static bn_tokenizer *g_hf;    /* from a tokenizer.json generated from the same vocab */

/* ---- fixtures */

static int32_t *read_ids(const char *path, size_t *n) {
    size_t len;
    char *s = bn_test_read(bn_test_src(path), &len);
    if (!s) return NULL;
    size_t cap = 1024, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    for (size_t i = 0; i < len;) {
        while (i < len && (s[i] < '0' || s[i] > '9')) i++;
        if (i >= len) break;
        long x = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') x = x * 10 + (s[i++] - '0');
        if (k == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[k++] = (int32_t)x;
    }
    free(s);
    *n = k;
    return v;
}

/* .inp: strings separated by "\n__ggml_vocab_test__\n"; .out: one line of ids each. */
typedef struct vec_case { char *text; size_t len; int32_t *ids; size_t n; } vec_case;

static vec_case *read_vectors(const char *base, size_t *n_cases) {
    char p[256];
    snprintf(p, sizeof p, "%s.inp", base);
    size_t il, ol;
    char *inp = bn_test_read(bn_test_src(p), &il);
    snprintf(p, sizeof p, "%s.out", base);
    char *out = bn_test_read(bn_test_src(p), &ol);
    if (!inp || !out) { free(inp); free(out); *n_cases = 0; return NULL; }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t sl = strlen(sep), cap = 64, k = 0;
    vec_case *c = calloc(cap, sizeof *c);
    size_t pos = 0, opos = 0;
    while (pos < il) {
        char *e = memmem(inp + pos, il - pos, sep, sl);
        if (!e) break;
        if (k == cap) c = realloc(c, (cap *= 2) * sizeof *c);
        c[k].len = (size_t)(e - (inp + pos));
        c[k].text = malloc(c[k].len + 1);
        memcpy(c[k].text, inp + pos, c[k].len);
        c[k].text[c[k].len] = 0;
        pos = (size_t)(e - inp) + sl;
        /* the matching .out line */
        size_t le = opos;
        while (le < ol && out[le] != '\n') le++;
        c[k].ids = malloc((le - opos + 1) * sizeof(int32_t));
        c[k].n = 0;
        for (size_t i = opos; i < le;) {
            while (i < le && out[i] == ' ') i++;
            if (i >= le) break;
            long x = 0;
            while (i < le && out[i] >= '0' && out[i] <= '9') x = x * 10 + (out[i++] - '0');
            c[k].ids[c[k].n++] = (int32_t)x;
        }
        opos = le + 1;
        k++;
    }
    free(inp);
    free(out);
    *n_cases = k;
    return c;
}

static void free_vectors(vec_case *c, size_t n) {
    for (size_t i = 0; i < n; i++) { free(c[i].text); free(c[i].ids); }
    free(c);
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb, size_t *first_diff) {
    size_t m = na < nb ? na : nb, i = 0;
    while (i < m && a[i] == b[i]) i++;
    *first_diff = i;
    return na == nb && i == m;
}

/* ---- checks shared by every source */

static void check_vectors(bn_tokenizer *t, const char *base, const char *label) {
    size_t nc;
    vec_case *c = read_vectors(base, &nc);
    CHECK_MSG(nc > 10, "%s: no vectors read from %s", label, base);
    int bad = 0;
    for (size_t i = 0; i < nc; i++) {
        int32_t *ids;
        size_t n, d;
        CHECK_OK(bn_tokenize(t, c[i].text, c[i].len, false, false, &ids, &n));
        bool ok = same_ids(ids, n, c[i].ids, c[i].n, &d);
        CHECK_MSG(ok, "%s %s case %zu: %zu ids vs %zu expected, first difference at %zu (\"%.40s\")",
                  label, base, i, n, c[i].n, d, c[i].text);
        bad += !ok;
        char *back;
        size_t bl;
        CHECK_OK(bn_detokenize(t, ids, n, false, &back, &bl));
        CHECK_MSG(bl == c[i].len && !memcmp(back, c[i].text, bl), "%s: decode(encode(case %zu)) differs", label, i);
        free(back);
        free(ids);
    }
    fprintf(stderr, "   %s %s: %zu strings, %d mismatches\n", label, base, nc, bad);
    free_vectors(c, nc);
}

static void check_corpus(bn_tokenizer *t, const char *text_file, const char *ids_file, const char *label) {
    size_t len, ne, n, d;
    char *text = bn_test_read(bn_test_src(text_file), &len);
    int32_t *expect = read_ids(ids_file, &ne);
    CHECK(text && expect && ne > 1000);
    if (!text || !expect) { free(text); free(expect); return; }
    int32_t *ids;
    double t0 = bn_time_s();
    CHECK_OK(bn_tokenize(t, text, len, false, false, &ids, &n));
    double dt = bn_time_s() - t0;
    bool ok = same_ids(ids, n, expect, ne, &d);
    CHECK_MSG(ok, "%s %s: %zu ids vs %zu expected; first difference at %zu (%d vs %d)", label, text_file, n, ne,
              d, d < n ? ids[d] : -1, d < ne ? expect[d] : -1);
    fprintf(stderr, "   %s %s: %zu bytes -> %zu ids (%s), %.1f ms\n", label, text_file, len, n,
            ok ? "identical" : "DIFFERENT", dt * 1e3);
    char *back;
    size_t bl;
    CHECK_OK(bn_detokenize(t, ids, n, false, &back, &bl));
    CHECK_MSG(bl == len && !memcmp(back, text, len), "%s: decode(encode(%s)) != text", label, text_file);
    free(back);
    free(ids);
    free(expect);
    free(text);
}

static void check_all_vectors(bn_tokenizer *t, const char *label) {
    check_vectors(t, TD "ggml-vocab-llama-bpe.gguf", label);
    check_vectors(t, TD "extra", label);
}

/* ---- tests */

static void test_tiktoken_load(void) {
    double t0 = bn_time_s();
    CHECK_OK(bn_tokenizer_load(bn_test_src(TD "llama3.tiktoken"), &g_tik));
    if (!g_tik) return;
    fprintf(stderr, "   loaded llama3.tiktoken in %.1f ms\n", (bn_time_s() - t0) * 1e3);
    CHECK(bn_tokenizer_n_vocab(g_tik) == 128256);
    CHECK(bn_tokenizer_bos(g_tik) == 128000);
    CHECK(bn_tokenizer_eos(g_tik) == 128001);
    CHECK(bn_tokenizer_eot(g_tik) == 128009);
    CHECK(bn_tokenizer_is_eog(g_tik, 128009) && bn_tokenizer_is_eog(g_tik, 128001));
    CHECK(!bn_tokenizer_is_eog(g_tik, 128000) && !bn_tokenizer_is_eog(g_tik, 13));
    CHECK(bn_tokenizer_find(g_tik, "<|start_header_id|>") == 128006);
    CHECK(bn_tokenizer_find(g_tik, "<|end_header_id|>") == 128007);
    CHECK(bn_tokenizer_find(g_tik, "<|reserved_special_token_4|>") == 128008);
    CHECK(bn_tokenizer_find(g_tik, "<|reserved_special_token_250|>") == 128255);
    CHECK(bn_tokenizer_find(g_tik, "Hello") == 9906);
    CHECK(bn_tokenizer_is_special(g_tik, 128000) && !bn_tokenizer_is_special(g_tik, 9906));
    size_t l;
    const char *p = bn_token_to_piece(g_tik, 9906, &l);
    CHECK(p && l == 5 && !memcmp(p, "Hello", 5));
    p = bn_token_to_piece(g_tik, 128009, &l);
    CHECK(p && l == 10 && !memcmp(p, "<|eot_id|>", 10));
    CHECK(bn_token_to_piece(g_tik, 128256, &l) == NULL && l == 0);
    CHECK(bn_token_to_piece(g_tik, -1, NULL) == NULL);
}

static void test_tiktoken_ids(void) {
    if (!g_tik) return;
    check_all_vectors(g_tik, "tiktoken");
    check_corpus(g_tik, TD "tinyshakespeare.txt", TD "tinyshakespeare.llama3.ids", "tiktoken");
    check_corpus(g_tik, TD "tinystories_val_sample.txt", TD "tinystories_val_sample.llama3.ids", "tiktoken");
}

static void test_gguf_roundtrip(void) {
    if (!g_tik) return;
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.gguf", bn_test_tmpdir());
    bn_gguf_writer *w = NULL;
    CHECK_OK(bn_gguf_writer_create(&w));
    if (!w) return;
    CHECK_OK(bn_gguf_writer_add_str(w, "general.architecture", "bitnet-b1.58"));
    double t0 = bn_time_s();
    CHECK_OK(bn_tokenizer_write_gguf(g_tik, w));
    CHECK_OK(bn_gguf_writer_write(w, path));
    bn_gguf_writer_free(w);
    fprintf(stderr, "   wrote the vocabulary as GGUF in %.1f ms\n", (bn_time_s() - t0) * 1e3);

    /* the file has what llama.cpp expects */
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open(path, &g));
    if (g) {
        char s[64];
        CHECK(bn_gguf_get_str(g, "tokenizer.ggml.model", s, sizeof s) && !strcmp(s, "gpt2"));
        CHECK(bn_gguf_get_str(g, "tokenizer.ggml.pre", s, sizeof s) && !strcmp(s, "llama-bpe"));
        const bn_gguf_value *m = bn_gguf_find(g, "tokenizer.ggml.merges");
        /* every two-token split of every token, as HF's converter writes
         * them: 280,147 rules, the count in Meta's tokenizer.json */
        CHECK_MSG(m && m->type == BN_GGUF_ARRAY && m->v.arr.n == 280147, "%llu merges",
                  m ? (unsigned long long)m->v.arr.n : 0ull);
        bn_gguf_str ms;
        /* LLaMA 3's first merge is "Ġ Ġ" (two spaces), as in its tokenizer.json */
        CHECK(m && bn_gguf_arr_str(m, 0, &ms) && ms.len == 5 && !memcmp(ms.data, "\xc4\xa0 \xc4\xa0", 5));
        const bn_gguf_value *tk = bn_gguf_find(g, "tokenizer.ggml.tokens");
        CHECK(tk && bn_gguf_arr_str(tk, 220, &ms) && ms.len == 2 && !memcmp(ms.data, "\xc4\xa0", 2));
        CHECK(tk && bn_gguf_arr_str(tk, 128009, &ms) && ms.len == 10 && !memcmp(ms.data, "<|eot_id|>", 10));
        uint32_t v;
        CHECK(bn_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &v) && v == 128000);
        CHECK(bn_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &v) && v == 128001);
        CHECK(bn_gguf_get_u32(g, "tokenizer.ggml.eot_token_id", &v) && v == 128009);
        bn_gguf_free(g);
    }
    t0 = bn_time_s();
    CHECK_OK(bn_tokenizer_load(path, &g_gguf));
    if (!g_gguf) return;
    fprintf(stderr, "   loaded it back in %.1f ms\n", (bn_time_s() - t0) * 1e3);
    CHECK(bn_tokenizer_n_vocab(g_gguf) == 128256);
    int diff = 0;
    for (int32_t i = 0; i < 128256; i++) {
        size_t la, lb;
        const char *a = bn_token_to_piece(g_tik, i, &la), *b = bn_token_to_piece(g_gguf, i, &lb);
        diff += la != lb || memcmp(a, b, la) || bn_tokenizer_is_special(g_tik, i) != bn_tokenizer_is_special(g_gguf, i);
    }
    CHECK_MSG(diff == 0, "%d tokens differ after the GGUF round trip", diff);
    CHECK(bn_tokenizer_bos(g_gguf) == 128000 && bn_tokenizer_eos(g_gguf) == 128001 && bn_tokenizer_eot(g_gguf) == 128009);
    check_all_vectors(g_gguf, "gguf");
    check_corpus(g_gguf, TD "tinyshakespeare.txt", TD "tinyshakespeare.llama3.ids", "gguf");
    check_corpus(g_gguf, TD "tinystories_val_sample.txt", TD "tinystories_val_sample.llama3.ids", "gguf");
}

/* JSON string literal of raw bytes (byte-level strings are valid UTF-8). */
static size_t json_str(char *o, const char *s, size_t n) {
    size_t k = 0;
    o[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { o[k++] = '\\'; o[k++] = (char)c; }
        else if (c < 0x20) k += (size_t)sprintf(o + k, "\\u%04x", c);
        else o[k++] = (char)c;
    }
    o[k++] = '"';
    return k;
}

/* A full tokenizer.json written from the tiktoken vocabulary (byte-level
 * token strings, the 256 specials as added tokens), with one merge per token
 * derived by BPE (bn_tok_derive_merges) instead of the GGUF writer's
 * all-splits list: both must give the reference ids. */
static void test_hfjson_full(void) {
    if (!g_tik) return;
    const bn_tokenizer *t = g_tik;
    int32_t n = t->n_vocab;
    int32_t *left = malloc((size_t)n * sizeof *left), *right = malloc((size_t)n * sizeof *right);
    CHECK_OK(bn_tok_derive_merges(t, left, right));
    size_t cap = 64u << 20, k = 0;
    char *j = malloc(cap), *tmp = malloc(4096), *tmp2 = malloc(4096);
    k += (size_t)sprintf(j + k, "{\"version\":\"1.0\",\"added_tokens\":[");
    for (int32_t i = 128000; i < n; i++) {
        k += (size_t)sprintf(j + k, "%s{\"id\":%d,\"content\":", i > 128000 ? "," : "", i);
        k += json_str(j + k, t->blob + t->off[i], t->len[i]);
        k += (size_t)sprintf(j + k, ",\"special\":true}");
    }
    k += (size_t)sprintf(j + k, "],\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                                "\"pattern\":{\"Regex\":");
    /* the regex as JSON (backslashes escaped) */
    k += json_str(j + k, bn_llama3_pattern, strlen(bn_llama3_pattern));
    k += (size_t)sprintf(j + k, "},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
                                "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]},"
                                "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,\"vocab\":{");
    for (int32_t i = 0; i < 128000; i++) {
        size_t l = bn_bytelevel_encode((const uint8_t *)t->blob + t->off[i], t->len[i], tmp);
        if (i) j[k++] = ',';
        k += json_str(j + k, tmp, l);
        k += (size_t)sprintf(j + k, ":%d", i);
    }
    k += (size_t)sprintf(j + k, "},\"merges\":[");
    int first = 1;
    for (int32_t i = 0; i < 128000; i++) {
        if (left[i] < 0) continue;
        size_t la = bn_bytelevel_encode((const uint8_t *)t->blob + t->off[left[i]], t->len[left[i]], tmp);
        size_t lb = bn_bytelevel_encode((const uint8_t *)t->blob + t->off[right[i]], t->len[right[i]], tmp2);
        if (!first) j[k++] = ',';
        first = 0;
        /* the newer ["left", "right"] form */
        j[k++] = '[';
        k += json_str(j + k, tmp, la);
        j[k++] = ',';
        k += json_str(j + k, tmp2, lb);
        j[k++] = ']';
    }
    k += (size_t)sprintf(j + k, "]}}");
    CHECK(k < cap);
    const char *cfg = "{\"bos_token\":\"<|begin_of_text|>\",\"eos_token\":{\"content\":\"<|eot_id|>\"},"
                      "\"chat_template\":\"{{ 'User: ' }}\"}";
    CHECK_OK(bn_tokenizer_parse_hfjson(j, k, cfg, "generated tokenizer.json", &g_hf));
    free(j); free(tmp); free(tmp2); free(left); free(right);
    if (!g_hf) return;
    CHECK(bn_tokenizer_n_vocab(g_hf) == 128256);
    CHECK(bn_tokenizer_bos(g_hf) == 128000);
    CHECK(bn_tokenizer_eos(g_hf) == 128009);          /* from tokenizer_config.json */
    CHECK(bn_tokenizer_is_eog(g_hf, 128001));         /* still ends generation       */
    CHECK(bn_tokenizer_chat_template(g_hf) && !strcmp(bn_tokenizer_chat_template(g_hf), "{{ 'User: ' }}"));
    check_all_vectors(g_hf, "tokenizer.json");
    check_corpus(g_hf, TD "tinystories_val_sample.txt", TD "tinystories_val_sample.llama3.ids", "tokenizer.json");
}

/* A tiny hand-written model folder (tests/data/tokenizer/tiny/): ids worked
 * out by hand from its merges. */
static void test_hfjson_tiny(void) {
    bn_tokenizer *t = NULL;
    CHECK_OK(bn_tokenizer_load(bn_test_src(TD "tiny"), &t));
    if (!t) return;
    int32_t *ids;
    size_t n;
    /* vocab: a..e = 0..4, "Ġ" (space) 5, "ab" 6, "abc" 7, "Ġa" 8, "Ġab" 9,
     * "cd" 10, "dd" 11; merges by rank: a b, Ġ a, ab c, Ġa b, d d, c d.
     * GPT-2 regex: "abcd" | " abd" | " dd".
     *  "abcd": a-b (0) -> ab-c (2) -> [abc, d]; c-d (5) lost its c.   = 7 3
     *  " abd": a-b (0) beats Ġ-a (1) -> [Ġ, ab, d]; no "Ġ ab" rule.   = 5 6 3
     *  " dd":  d-d (4) -> [Ġ, dd].                                     = 5 11 */
    CHECK_OK(bn_tokenize(t, "abcd abd dd", 11, false, false, &ids, &n));
    int32_t expect[] = {7, 3, 5, 6, 3, 5, 11};
    size_t d;
    CHECK_MSG(same_ids(ids, n, expect, 7, &d), "tiny tokenizer.json: %zu ids, first difference at %zu", n, d);
    free(ids);
    CHECK(bn_chat_template_detect(bn_tokenizer_chat_template(t), NULL) &&
          !strcmp(bn_chat_template_detect(bn_tokenizer_chat_template(t), NULL), "chatml"));
    /* added special token, parsed only when asked */
    CHECK_OK(bn_tokenize(t, "<eos>a", 6, false, true, &ids, &n));
    CHECK(n == 2 && ids[0] == 12 && ids[1] == 0);
    free(ids);
    CHECK(bn_tokenizer_eos(t) == 12);
    /* a byte the vocabulary lacks is an error, not a crash or a silent drop */
    CHECK(bn_tokenize(t, "z", 1, false, false, &ids, &n) == BN_ERR_UNSUPPORTED);
    bn_tokenizer_free(t);
}

static void test_special_tokens(void) {
    if (!g_tik) return;
    const char *s = "<|begin_of_text|>Hi<|eot_id|><|not_special|>";
    int32_t *ids;
    size_t n;
    CHECK_OK(bn_tokenize(g_tik, s, strlen(s), false, true, &ids, &n));
    CHECK(n >= 3 && ids[0] == 128000 && ids[1] == 13347 && ids[2] == 128009);
    for (size_t i = 3; i < n; i++) CHECK(ids[i] < 128000);
    free(ids);
    /* as plain text: no special ids at all */
    CHECK_OK(bn_tokenize(g_tik, s, strlen(s), true, false, &ids, &n));
    CHECK(n > 3 && ids[0] == 128000);
    for (size_t i = 1; i < n; i++) CHECK(ids[i] < 128000);
    char *back;
    size_t bl;
    CHECK_OK(bn_detokenize(g_tik, ids + 1, n - 1, false, &back, &bl));
    CHECK(bl == strlen(s) && !memcmp(back, s, bl));
    free(back);
    free(ids);
    /* empty input */
    CHECK_OK(bn_tokenize(g_tik, "", 0, false, false, &ids, &n));
    CHECK(n == 0 && ids);
    free(ids);
    CHECK_OK(bn_tokenize(g_tik, "", 0, true, false, &ids, &n));
    CHECK(n == 1 && ids[0] == 128000);
    free(ids);
    /* skip_special drops control tokens in decode */
    int32_t seq[] = {128000, 9906, 128009};
    CHECK_OK(bn_detokenize(g_tik, seq, 3, true, &back, &bl));
    CHECK(bl == 5 && !strcmp(back, "Hello"));
    free(back);
    CHECK(bn_detokenize(g_tik, (int32_t[]){128256}, 1, false, &back, &bl) == BN_ERR_INVALID_ARG);
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

/* Any bytes, invalid UTF-8 included, come back unchanged. */
static void test_random_bytes(void) {
    bn_tokenizer *tk[3] = {g_tik, g_gguf, g_hf};
    uint64_t seed = 0x1234567;
    static const char *frag[] = {"\xe2\x80", "\xe2\x80\x99", "\xf0\x9f", "\xf0\x9f\x98\x80", "\xc3", "\xa9",
                                 " ", "  ", "\n", "\r\n", "'s", "abc", "123456", "\xed\xa0\x80", "\xc0\xaf",
                                 "\xf4\x90\x80\x80", "\xef\xbb\xbf", "\xc2\x85", "<|eot_id|>", "\t"};
    int fails = 0;
    for (int it = 0; it < 600; it++) {
        char buf[512];
        size_t len = rng_next(&seed) % 300, k = 0;
        int mode = it % 3;
        while (k < len) {
            if (mode == 0) buf[k++] = (char)(rng_next(&seed) & 0xff);            /* raw bytes  */
            else if (mode == 1) buf[k++] = (char)(0x80 | (rng_next(&seed) & 0x7f)); /* high bytes */
            else { /* fragments that straddle characters */
                const char *f = frag[rng_next(&seed) % (sizeof frag / sizeof *frag)];
                size_t fl = strlen(f);
                if (k + fl > sizeof buf) break;
                memcpy(buf + k, f, fl);
                k += fl;
            }
        }
        for (int s = 0; s < 3; s++) {
            if (!tk[s]) continue;
            int32_t *ids;
            size_t n;
            char *back;
            size_t bl;
            if (bn_tokenize(tk[s], buf, k, false, it & 1, &ids, &n) != BN_OK) { fails++; continue; }
            if (bn_detokenize(tk[s], ids, n, false, &back, &bl) != BN_OK) { fails++; free(ids); continue; }
            fails += bl != k || memcmp(back, buf, k);
            /* the three sources agree */
            if (s == 0) {
                for (int o = 1; o < 3; o++) {
                    if (!tk[o]) continue;
                    int32_t *ids2;
                    size_t n2, d;
                    if (bn_tokenize(tk[o], buf, k, false, it & 1, &ids2, &n2) == BN_OK) {
                        fails += !same_ids(ids, n, ids2, n2, &d);
                        free(ids2);
                    } else fails++;
                }
            }
            free(back);
            free(ids);
        }
    }
    CHECK_MSG(fails == 0, "%d random strings did not round-trip or sources disagreed", fails);
}

static bool valid_utf8(const char *s, size_t n) {
    return bn_utf8_valid_prefix((const uint8_t *)s, n) == n;
}

static void test_stream_decoder(void) {
    if (!g_tik) return;
    size_t len;
    /* emoji, CJK, Devanagari...: many characters split across tokens */
    char *text = bn_test_read(bn_test_src(TD "extra.inp"), &len);
    if (!text) { CHECK(0); return; }
    int32_t *ids;
    size_t n;
    CHECK_OK(bn_tokenize(g_tik, text, len, false, false, &ids, &n));
    bn_detok_stream *st = NULL;
    CHECK_OK(bn_detok_stream_create(g_tik, false, &st));
    if (!st) return;
    char *acc = malloc(len + 64);
    size_t al = 0;
    int bad_chunks = 0, held = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t pl;
        CHECK_OK(bn_detok_stream_push(st, ids[i], &p, &pl));
        size_t tl;
        bn_token_to_piece(g_tik, ids[i], &tl);
        held += pl < tl;
        bad_chunks += !valid_utf8(p, pl); /* only whole characters come out */
        memcpy(acc + al, p, pl);
        al += pl;
    }
    const char *p;
    size_t pl;
    CHECK_OK(bn_detok_stream_flush(st, &p, &pl));
    memcpy(acc + al, p, pl);
    al += pl;
    CHECK(al == len && !memcmp(acc, text, len));
    CHECK_MSG(bad_chunks == 0, "%d chunks were not whole UTF-8 characters", bad_chunks);
    CHECK_MSG(held > 0, "no token ever needed holding back (the test would not catch anything)");
    fprintf(stderr, "   stream: %zu tokens, %d pushes held bytes back, all chunks valid UTF-8\n", n, held);

    /* "é" split into its two bytes: nothing, then the whole character */
    int32_t c3 = bn_tokenizer_find(g_tik, "\xc3"), a9 = bn_tokenizer_find(g_tik, "\xa9");
    CHECK(c3 >= 0 && a9 >= 0);
    bn_detok_stream_reset(st);
    CHECK_OK(bn_detok_stream_push(st, c3, &p, &pl));
    CHECK(pl == 0);
    CHECK_OK(bn_detok_stream_push(st, a9, &p, &pl));
    CHECK(pl == 2 && !memcmp(p, "\xc3\xa9", 2));
    /* an incomplete sequence followed by ASCII is released as is */
    CHECK_OK(bn_detok_stream_push(st, c3, &p, &pl));
    CHECK(pl == 0);
    CHECK_OK(bn_detok_stream_push(st, bn_tokenizer_find(g_tik, "A"), &p, &pl));
    CHECK(pl == 2 && !memcmp(p, "\xc3" "A", 2));
    /* flush releases a dangling lead byte unchanged */
    CHECK_OK(bn_detok_stream_push(st, c3, &p, &pl));
    CHECK(pl == 0);
    CHECK_OK(bn_detok_stream_flush(st, &p, &pl));
    CHECK(pl == 1 && (unsigned char)p[0] == 0xc3);
    bn_detok_stream_free(st);
    free(acc);
    free(ids);
    free(text);
}

static void test_utf8_helpers(void) {
    CHECK(bn_utf8_incomplete_tail((const uint8_t *)"a\xe2\x80", 3) == 2);
    CHECK(bn_utf8_incomplete_tail((const uint8_t *)"a\xe2", 2) == 1);
    CHECK(bn_utf8_incomplete_tail((const uint8_t *)"a\xe2\x80\x99", 4) == 0);
    CHECK(bn_utf8_incomplete_tail((const uint8_t *)"\xed\xa0", 2) == 0); /* surrogate: never valid */
    CHECK(bn_utf8_incomplete_tail((const uint8_t *)"\xf4\x90", 2) == 0); /* > U+10FFFF */
    CHECK(bn_utf8_incomplete_tail((const uint8_t *)"\xf0\x9f\x98", 3) == 3);
    CHECK(bn_utf8_valid_prefix((const uint8_t *)"ab\xc0\xaf", 4) == 2);
    for (int b = 0; b < 256; b++) CHECK(bn_unicode_to_byte(bn_byte_to_unicode((uint8_t)b)) == b);
    CHECK(bn_byte_to_unicode(' ') == 0x120 && bn_byte_to_unicode('\n') == 0x10A && bn_byte_to_unicode('A') == 'A');
}

static void test_bad_input(void) {
    bn_tokenizer *t = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/bad.tiktoken", bn_test_tmpdir());
    FILE *f = fopen(path, "wb");
    fputs("QQ== 0\n!!!! 1\n", f);
    fclose(f);
    CHECK(bn_tokenizer_load(path, &t) == BN_ERR_FORMAT && !t);
    fprintf(stderr, "   bad base64: %s\n", bn_last_error());
    f = fopen(path, "wb");
    fputs("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", f);
    fclose(f);
    CHECK(bn_tokenizer_load(path, &t) == BN_ERR_UNSUPPORTED && !t);
    fprintf(stderr, "   unknown type: %s\n", bn_last_error());
    f = fopen(path, "wb");
    fputs("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"decoder\":{\"type\":\"ByteLevel\"}}", f);
    fclose(f);
    CHECK(bn_tokenizer_load(path, &t) == BN_ERR_FORMAT && !t);
    fprintf(stderr, "   missing merges: %s\n", bn_last_error());
    CHECK(bn_tokenizer_load("/nonexistent/tok.json", &t) != BN_OK && !t);

    /* GGUF: unknown tokenizer model, missing merges */
    bn_gguf_writer *w;
    snprintf(path, sizeof path, "%s/bad.gguf", bn_test_tmpdir());
    CHECK_OK(bn_gguf_writer_create(&w));
    bn_gguf_writer_add_str(w, "tokenizer.ggml.model", "wordpiece");
    CHECK_OK(bn_gguf_writer_write(w, path));
    bn_gguf_writer_free(w);
    CHECK(bn_tokenizer_load(path, &t) == BN_ERR_UNSUPPORTED && !t);
    fprintf(stderr, "   gguf unknown model: %s\n", bn_last_error());
    CHECK_OK(bn_gguf_writer_create(&w));
    bn_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    const char *toks[] = {"a", "b"};
    bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, NULL, 2);
    CHECK_OK(bn_gguf_writer_write(w, path));
    bn_gguf_writer_free(w);
    CHECK(bn_tokenizer_load(path, &t) == BN_ERR_FORMAT && !t);
    fprintf(stderr, "   gguf missing merges: %s\n", bn_last_error());
}

/* A tiny GGUF "llama" (SentencePiece-style) vocabulary; ids worked out by
 * hand with llama.cpp's algorithm (highest score first, byte fallback). */
static void write_spm_gguf(const char *path) {
    const char *toks[268];
    char bytes[256][8];
    float scores[268];
    int32_t types[268];
    toks[0] = "<unk>"; types[0] = 2;
    toks[1] = "<s>"; types[1] = 3;
    toks[2] = "</s>"; types[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[3 + b] = bytes[b];
        types[3 + b] = 6;
    }
    static const char *norm[] = {"\xe2\x96\x81", "a", "b", "c", "ab", "\xe2\x96\x81" "a", "\xe2\x96\x81" "ab", "bc",
                                 "\xe2\x96\x81" "c"};
    static const float sc[] = {-1, -2, -3, -4, -5, -6, -7, -0.5f, -8};
    for (int i = 0; i < 9; i++) {
        toks[259 + i] = norm[i];
        types[259 + i] = 1;
        scores[259 + i] = sc[i];
    }
    for (int i = 0; i < 259; i++) scores[i] = 0;
    bn_gguf_writer *w;
    CHECK_OK(bn_gguf_writer_create(&w));
    CHECK_OK(bn_gguf_writer_add_str(w, "general.architecture", "bitnet"));
    CHECK_OK(bn_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama"));
    CHECK_OK(bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, NULL, 268));
    CHECK_OK(bn_gguf_writer_add_arr(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, scores, 268));
    CHECK_OK(bn_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types, 268));
    CHECK_OK(bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1));
    CHECK_OK(bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2));
    CHECK_OK(bn_gguf_writer_write(w, path));
    bn_gguf_writer_free(w);
}

static void check_spm(bn_tokenizer *t, const char *label) {
    int32_t *ids;
    size_t n, d;
    /* " abc abc": "bc" (-0.5) merges first, leftmost first; then " a" (-6)
     * twice; "ab" (-5) lost its b. */
    CHECK_OK(bn_tokenize(t, "abc abc", 7, false, false, &ids, &n));
    int32_t e1[] = {264, 266, 264, 266};
    CHECK_MSG(same_ids(ids, n, e1, 4, &d), "%s: abc abc, first difference at %zu", label, d);
    char *back;
    size_t bl;
    CHECK_OK(bn_detokenize(t, ids, n, false, &back, &bl));
    CHECK(bl == 7 && !memcmp(back, "abc abc", 7)); /* the added space is taken off again */
    free(back);
    free(ids);
    /* a character with no token falls back to its bytes */
    CHECK_OK(bn_tokenize(t, "\xc3\xa9", 2, true, false, &ids, &n));
    int32_t e2[] = {1, 259, 3 + 0xc3, 3 + 0xa9};
    CHECK_MSG(same_ids(ids, n, e2, 4, &d), "%s: e-acute, first difference at %zu", label, d);
    CHECK_OK(bn_detokenize(t, ids, n, true, &back, &bl));
    CHECK(bl == 2 && !memcmp(back, "\xc3\xa9", 2));
    free(back);
    free(ids);
    /* after a special token the fragment gets the space prefix again;
     * " ab": "ab" (-5) before " a" (-6), then " ab" (-7) */
    CHECK_OK(bn_tokenize(t, "<s>ab", 5, false, true, &ids, &n));
    int32_t e3[] = {1, 265};
    CHECK_MSG(same_ids(ids, n, e3, 2, &d), "%s: <s>ab, first difference at %zu", label, d);
    free(ids);
    CHECK(bn_tokenizer_bos(t) == 1 && bn_tokenizer_eos(t) == 2 && bn_tokenizer_is_eog(t, 2));
    /* random bytes round-trip (plain text, no specials) */
    uint64_t seed = 99;
    int bad = 0;
    for (int it = 0; it < 200; it++) {
        char buf[64];
        size_t k = rng_next(&seed) % sizeof buf;
        for (size_t i = 0; i < k; i++) buf[i] = "abc \xc3\xa9\xe2\x80z"[rng_next(&seed) % 10];
        if (bn_tokenize(t, buf, k, false, false, &ids, &n) != BN_OK) { bad++; continue; }
        if (bn_detokenize(t, ids, n, false, &back, &bl) != BN_OK) { bad++; free(ids); continue; }
        bad += bl != k || memcmp(back, buf, k);
        free(back);
        free(ids);
    }
    CHECK_MSG(bad == 0, "%s: %d SPM strings did not round-trip", label, bad);
}

static void test_spm(void) {
    char path[512], path2[512];
    snprintf(path, sizeof path, "%s/spm.gguf", bn_test_tmpdir());
    snprintf(path2, sizeof path2, "%s/spm2.gguf", bn_test_tmpdir());
    write_spm_gguf(path);
    bn_tokenizer *t = NULL, *t2 = NULL;
    CHECK_OK(bn_tokenizer_load(path, &t));
    if (!t) return;
    check_spm(t, "spm");
    /* written back by bn_tokenizer_write_gguf and loaded again */
    bn_gguf_writer *w;
    CHECK_OK(bn_gguf_writer_create(&w));
    CHECK_OK(bn_tokenizer_write_gguf(t, w));
    CHECK_OK(bn_gguf_writer_write(w, path2));
    bn_gguf_writer_free(w);
    CHECK_OK(bn_tokenizer_load(path2, &t2));
    if (t2) check_spm(t2, "spm rewritten");
    bn_tokenizer_free(t2);
    bn_tokenizer_free(t);
}

/* A SentencePiece BPE model trained here (spm_train 0.1.97, LLaMA's options:
 * byte fallback, dummy prefix, identity normalization, whitespace kept),
 * exported as "piece<TAB>score" and written as a GGUF "llama" vocabulary
 * the way llama.cpp's converter does; ids must equal spm_encode's for every
 * line of spm/cases.txt. */
static void test_spm_sentencepiece(void) {
    size_t vl, cl;
    char *voc = bn_test_read(bn_test_src(TD "spm/vocab.tsv"), &vl);
    char *cases = bn_test_read(bn_test_src(TD "spm/cases.txt"), &cl);
    size_t ne;
    int32_t *flat = NULL;
    CHECK(voc && cases);
    if (!voc || !cases) { free(voc); free(cases); return; }
    const char **toks = malloc(4096 * sizeof *toks);
    uint64_t *lens = malloc(4096 * sizeof *lens);
    float *scores = malloc(4096 * sizeof *scores);
    int32_t *types = malloc(4096 * sizeof *types);
    int n = 0;
    for (char *p = voc; p < voc + vl && n < 4096;) {
        char *tab = memchr(p, '\t', (size_t)(voc + vl - p)), *nl = memchr(p, '\n', (size_t)(voc + vl - p));
        if (!tab || !nl || tab > nl) break;
        toks[n] = p;
        lens[n] = (uint64_t)(tab - p);
        *nl = 0;
        scores[n] = strtof(tab + 1, NULL);
        types[n] = n == 0 ? 2 : n <= 2 ? 3 : (lens[n] == 6 && !memcmp(p, "<0x", 3)) ? 6 : 1;
        n++;
        p = nl + 1;
    }
    CHECK(n == 2000);
    char path[512];
    snprintf(path, sizeof path, "%s/spm_trained.gguf", bn_test_tmpdir());
    bn_gguf_writer *w;
    CHECK_OK(bn_gguf_writer_create(&w));
    CHECK_OK(bn_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama"));
    CHECK_OK(bn_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, lens, (uint64_t)n));
    CHECK_OK(bn_gguf_writer_add_arr(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, scores, (uint64_t)n));
    CHECK_OK(bn_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types, (uint64_t)n));
    CHECK_OK(bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1));
    CHECK_OK(bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2));
    CHECK_OK(bn_gguf_writer_write(w, path));
    bn_gguf_writer_free(w);
    free(toks); free(lens); free(scores); free(types); free(voc);
    bn_tokenizer *t = NULL;
    CHECK_OK(bn_tokenizer_load(path, &t));
    /* expected ids: one line per case */
    size_t il;
    char *idtext = bn_test_read(bn_test_src(TD "spm/cases.ids"), &il);
    if (!t || !idtext) { CHECK(0); free(cases); free(idtext); bn_tokenizer_free(t); return; }
    int bad = 0, n_cases = 0, rt_bad = 0;
    char *cp = cases, *ip = idtext;
    while (cp < cases + cl && ip < idtext + il) {
        char *ce = memchr(cp, '\n', (size_t)(cases + cl - cp)), *ie = memchr(ip, '\n', (size_t)(idtext + il - ip));
        if (!ce || !ie) break;
        ne = 0;
        free(flat);
        flat = malloc(((size_t)(ie - ip) + 1) * sizeof *flat);
        for (char *q = ip; q < ie;) {
            while (q < ie && *q == ' ') q++;
            if (q >= ie) break;
            flat[ne++] = (int32_t)strtol(q, &q, 10);
        }
        int32_t *ids;
        size_t k, d;
        CHECK_OK(bn_tokenize(t, cp, (size_t)(ce - cp), false, false, &ids, &k));
        if (!same_ids(ids, k, flat, ne, &d)) {
            if (bad < 3) fprintf(stderr, "   spm case %d \"%.*s\": %zu ids vs %zu, first difference at %zu\n", n_cases,
                                 (int)(ce - cp), cp, k, ne, d);
            bad++;
        }
        char *back;
        size_t bl;
        CHECK_OK(bn_detokenize(t, ids, k, false, &back, &bl));
        rt_bad += bl != (size_t)(ce - cp) || memcmp(back, cp, bl);
        free(back);
        free(ids);
        n_cases++;
        cp = ce + 1;
        ip = ie + 1;
    }
    free(flat);
    CHECK(n_cases == 264);
    CHECK_MSG(bad == 0, "%d of %d lines differ from spm_encode", bad, n_cases);
    CHECK_MSG(rt_bad == 0, "%d lines did not round-trip", rt_bad);
    fprintf(stderr, "   sentencepiece: %d lines, %d differ from spm_encode, %d round-trip failures\n", n_cases, bad, rt_bad);
    free(cases);
    free(idtext);
    bn_tokenizer_free(t);
}

/* Run a shell command, return its stdout (malloc'd) and exit status. */
static char *run_cmd(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    if (!p) { *status = -1; return NULL; }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    *status = pclose(p);
    return buf;
}

/* The CLI: bitnet tokenize / detokenize, from the ranks file and from a GGUF (-m). */
static void test_cli(void) {
    const char *exe = getenv("BN_BITNET");
    if (!exe) { fprintf(stderr, "   BN_BITNET not set: CLI not tested\n"); return; }
    char in[512], cmd[2048];
    snprintf(in, sizeof in, "%s/cli_in.txt", bn_test_tmpdir());
    FILE *f = fopen(in, "wb");
    fputs("Hello world! <|eot_id|> \xc3\xa9\xe2\x80", f); /* ends in a truncated character */
    fclose(f);
    int st;
    snprintf(cmd, sizeof cmd, "'%s' tokenize --tokenizer '%s' < '%s'", exe, bn_test_src(TD "llama3.tiktoken"), in);
    char *out = run_cmd(cmd, &st);
    /* ids cross-checked with the library (and "Hello" " world" "!" per tiktoken) */
    CHECK_MSG(st == 0 && out && !strncmp(out, "9906 1917 0 ", 12), "tokenize printed '%s'", out ? out : "");
    int32_t *ids;
    size_t n;
    size_t len;
    char *text = bn_test_read(in, &len);
    CHECK_OK(bn_tokenize(g_tik, text, len, false, false, &ids, &n));
    char expect[1024];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)snprintf(expect + k, sizeof expect - k, i ? " %d" : "%d", ids[i]);
    snprintf(expect + k, sizeof expect - k, "\n");
    CHECK_MSG(out && !strcmp(out, expect), "CLI '%s' vs library '%s'", out ? out : "", expect);
    free(ids);
    /* the ids back through detokenize give the bytes back */
    char ids_path[512];
    snprintf(ids_path, sizeof ids_path, "%s/cli_ids.txt", bn_test_tmpdir());
    f = fopen(ids_path, "wb");
    fputs(out ? out : "", f);
    fclose(f);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' detokenize --tokenizer '%s' < '%s'", exe, bn_test_src(TD "llama3.tiktoken"), ids_path);
    out = run_cmd(cmd, &st);
    CHECK(st == 0 && out && strlen(out) == len && !memcmp(out, text, len));
    free(out);
    /* --json --bos --special, vocabulary from a GGUF through -m */
    char gguf[512];
    snprintf(gguf, sizeof gguf, "%s/vocab.gguf", bn_test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' --json --bos --special < '%s'", exe, gguf, in);
    out = run_cmd(cmd, &st);
    CHECK_MSG(st == 0 && out && strstr(out, "[{\"id\": 128000, \"piece\": \"<|begin_of_text|>\"}, {\"id\": 9906, \"piece\": \"Hello\"}") == out,
              "json: %s", out ? out : "");
    CHECK(out && strstr(out, "{\"id\": 128009, \"piece\": \"<|eot_id|>\"}"));
    CHECK(out && strstr(out, "\\\\xe2\\\\x80")); /* the truncated character, escaped */
    free(out);
    /* errors: exit status != 0 and nothing on stdout */
    snprintf(cmd, sizeof cmd, "echo '5 x' | '%s' detokenize -t '%s' 2>/dev/null", exe, bn_test_src(TD "llama3.tiktoken"));
    out = run_cmd(cmd, &st);
    CHECK(st != 0 && out && !out[0]);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' tokenize < /dev/null 2>/dev/null", exe);
    out = run_cmd(cmd, &st);
    CHECK(st != 0);
    free(out);
    free(text);
}

int main(void) {
    RUN(test_utf8_helpers);
    RUN(test_tiktoken_load);
    RUN(test_tiktoken_ids);
    RUN(test_special_tokens);
    RUN(test_gguf_roundtrip);
    RUN(test_hfjson_full);
    RUN(test_hfjson_tiny);
    RUN(test_random_bytes);
    RUN(test_stream_decoder);
    RUN(test_bad_input);
    RUN(test_cli);
    RUN(test_spm);
    RUN(test_spm_sentencepiece);
    bn_tokenizer_free(g_tik);
    bn_tokenizer_free(g_gguf);
    bn_tokenizer_free(g_hf);
    return bn_test_finish("test_tokenizer");
}
