/* cmd_tokenizer.c — `bitnet tokenizer train`: learn a byte-level BPE
 * vocabulary (LLaMA 3 pre-tokenizer) from a text file and write it as a
 * Hugging Face tokenizer.json. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/core.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train.h"

#define CMD "tokenizer"
#define MAX_CORPUS ((size_t)4 << 30)

static void usage(FILE *f) {
    fprintf(f,
        "usage: bitnet tokenizer train -i CORPUS --vocab N -o tokenizer.json\n"
        "                              [--special LIST] [--min-frequency F]\n\n"
        "Learns a byte-level BPE vocabulary with the LLaMA 3 pre-tokenizer and writes it\n"
        "as a Hugging Face tokenizer.json (loadable by bitnet and by HF tokenizers).\n"
        "  -i CORPUS            UTF-8 text file to learn from\n"
        "  --vocab N            total vocabulary: 256 byte tokens + merges + specials\n"
        "  -o FILE              output tokenizer.json\n"
        "  --special LIST       comma-separated special tokens appended after the merges\n"
        "                       (default: <|begin_of_text|>,<|end_of_text|>,<|eot_id|>,\n"
        "                       <|start_header_id|>,<|end_header_id|>; \"\" for none)\n"
        "  --min-frequency F    never merge a pair seen fewer than F times (default 2)\n");
}

/* Split "a,b,c" into a malloc'd array of pointers into the (copied) list. */
static bool split_list(const char *s, char **copy, const char ***items, int32_t *n) {
    *copy = bn_strdup(s);
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    *items = malloc(cap * sizeof **items);
    if (!*copy || !*items) return false;
    *n = 0;
    if (!s[0]) return true;
    for (char *tok = *copy, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next) *next++ = 0;
        (*items)[(*n)++] = tok;
    }
    return true;
}

static int train(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *specials = NULL;
    long vocab = -1, minf = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
        if (!strcmp(a, "-i") || !strcmp(a, "--input")) { if (!(v = bn_cli_value(CMD, argc, argv, &i))) return 2; in = v; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { if (!(v = bn_cli_value(CMD, argc, argv, &i))) return 2; out = v; }
        else if (!strcmp(a, "--special")) { if (!(v = bn_cli_value(CMD, argc, argv, &i))) return 2; specials = v; }
        else if (!strcmp(a, "--vocab") || !strcmp(a, "--vocab-size")) {
            if (!(v = bn_cli_value(CMD, argc, argv, &i)) || !bn_cli_parse_int(CMD, a, v, 1, 1 << 24, &vocab)) return 2;
        } else if (!strcmp(a, "--min-frequency")) {
            if (!(v = bn_cli_value(CMD, argc, argv, &i)) || !bn_cli_parse_int(CMD, a, v, 1, 1L << 40, &minf)) return 2;
        } else return bn_cli_usage_error(CMD, "unknown option '%s'", a);
    }
    if (!in) return bn_cli_usage_error(CMD, "-i CORPUS is required");
    if (!out) return bn_cli_usage_error(CMD, "-o FILE is required");
    if (vocab < 0) return bn_cli_usage_error(CMD, "--vocab N is required");

    char *list_copy = NULL, *text = NULL, *json = NULL;
    const char **items = NULL;
    int rc = 1;
    bn_bpe_train_opts o = {.vocab_size = (int32_t)vocab, .min_frequency = minf};
    if (specials) {
        if (!split_list(specials, &list_copy, &items, &o.n_specials)) { bn_cli_fail("--special"); goto done; }
        o.specials = items;
    } else {
        o.specials = bn_bpe_default_specials;
        o.n_specials = BN_BPE_N_DEFAULT_SPECIALS;
    }
    size_t len = 0, json_len = 0;
    if (bn_read_file(in, MAX_CORPUS, &text, &len)) { rc = bn_cli_fail("corpus"); goto done; }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bn_bpe_train_stats s;
    if (bn_bpe_train(text, len, &o, &json, &json_len, &s)) { rc = bn_cli_fail("tokenizer train"); goto done; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* reload what was written: the file is only reported once it parses */
    bn_tokenizer *tok = NULL;
    if (bn_tokenizer_parse_hfjson(json, json_len, NULL, out, &tok)) { rc = bn_cli_fail("reloading the result"); goto done; }
    bn_tokenizer_free(tok);
    FILE *f = fopen(out, "wb");
    if (!f) { bn_fail(BN_ERR_IO, "cannot create"); rc = bn_cli_fail(out); goto done; }
    bool ok = fwrite(json, 1, json_len, f) == json_len;
    if (fclose(f) != 0) ok = false;
    if (!ok) { bn_fail(BN_ERR_IO, "write failed"); rc = bn_cli_fail(out); goto done; }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr,
            "bitnet tokenizer: %d tokens (256 bytes + %d merges + %d special) in %.2f s\n"
            "  corpus: %llu bytes, %llu pre-tokens (%llu distinct) -> %llu tokens (%.2f bytes/token)\n",
            s.n_vocab, s.n_merges, o.n_specials, secs, (unsigned long long)s.n_bytes,
            (unsigned long long)s.n_pretokens, (unsigned long long)s.n_words, (unsigned long long)s.n_tokens_out,
            s.n_tokens_out ? (double)s.n_bytes / (double)s.n_tokens_out : 0.0);
    if (s.n_vocab < o.vocab_size)
        fprintf(stderr, "  note: no pair occurs %ld times any more; the vocabulary is smaller than %ld\n", minf, vocab);
    rc = 0;
done:
    free(json);
    free(text);
    free(list_copy);
    free(items);
    return rc;
}

int bn_cmd_tokenizer(int argc, char **argv) {
    if (argc < 2 || bn_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return train(argc, argv);
    return bn_cli_usage_error(CMD, "unknown sub-command '%s' (expected: train)", argv[1]);
}
