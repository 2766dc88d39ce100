/* cmd_tokenize.c — `bitnet tokenize` (text on stdin -> ids) and
 * `bitnet detokenize` (ids on stdin -> text). The vocabulary comes from
 * --tokenizer FILE or straight from a model (-m: .gguf or HF folder) without
 * loading any weights. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *p = cap > ((size_t)1 << 31) ? NULL : realloc(buf, cap *= 2);
            if (!p) { free(buf); return NULL; }
            buf = p;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
    }
    *len = n;
    return buf;
}

typedef struct tok_args {
    const char *tok_path, *model;
    bool json, bos, special, skip_special;
} tok_args;

static int parse(const char *cmd, int argc, char **argv, tok_args *a, bool encode) {
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--tokenizer") || !strcmp(f, "-t")) {
            if (!(a->tok_path = bn_cli_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(f, "-m") || !strcmp(f, "--model")) {
            if (!(a->model = bn_cli_value(cmd, argc, argv, &i))) return 2;
        } else if (encode && !strcmp(f, "--json")) a->json = true;
        else if (encode && !strcmp(f, "--bos")) a->bos = true;
        else if (encode && !strcmp(f, "--special")) a->special = true;
        else if (!encode && !strcmp(f, "--skip-special")) a->skip_special = true;
        else return bn_cli_usage_error(cmd, "unknown option '%s'", f);
    }
    if (!a->tok_path == !a->model) return bn_cli_usage_error(cmd, "give one of --tokenizer FILE or -m MODEL");
    return 0;
}

/* A piece as JSON string content: UTF-8 kept, control characters and bytes
 * that are not valid UTF-8 escaped ("\u00XX" for controls, "\\xXX" for raw
 * bytes, so that the output stays valid JSON and the bytes stay visible). */
static void json_piece(FILE *f, const unsigned char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') { fputc('\\', f); fputc(c, f); i++; continue; }
        if (c == '\n') { fputs("\\n", f); i++; continue; }
        if (c == '\r') { fputs("\\r", f); i++; continue; }
        if (c == '\t') { fputs("\\t", f); i++; continue; }
        if (c < 0x20 || c == 0x7f) { fprintf(f, "\\u%04x", c); i++; continue; }
        if (c < 0x80) { fputc(c, f); i++; continue; }
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        bool ok = len && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = (s[i + k] & 0xC0) == 0x80;
        if (ok && len == 3) {
            unsigned cp = (c & 0x0Fu) << 12 | (s[i + 1] & 0x3Fu) << 6 | (s[i + 2] & 0x3Fu);
            ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
        } else if (ok && len == 4) {
            unsigned cp = (c & 0x07u) << 18 | (s[i + 1] & 0x3Fu) << 12 | (s[i + 2] & 0x3Fu) << 6 | (s[i + 3] & 0x3Fu);
            ok = cp >= 0x10000 && cp <= 0x10FFFF;
        }
        if (ok) { fwrite(s + i, 1, len, f); i += len; }
        else { fprintf(f, "\\\\x%02x", c); i++; }
    }
    fputc('"', f);
}

static int load(const char *cmd, const tok_args *a, bn_tokenizer **tok) {
    const char *p = a->tok_path ? a->tok_path : a->model;
    if (bn_tokenizer_load(p, tok) != BN_OK) {
        char what[128];
        snprintf(what, sizeof what, "%s: loading the tokenizer", cmd);
        return bn_cli_fail(what);
    }
    return 0;
}

int bn_cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize";
    if (argc > 1 && bn_cli_is_help(argv[1])) {
        printf("usage: bitnet tokenize (--tokenizer FILE | -m MODEL) [--json] [--bos] [--special] < text\n\n"
               "Prints the token ids of stdin (all of it, bytes as they are) on one line.\n"
               "  --tokenizer FILE  tiktoken ranks file, tokenizer.json, .gguf, or HF folder\n"
               "  -m MODEL          take the tokenizer from a model (.gguf or HF folder)\n"
               "  --json            print [{\"id\": N, \"piece\": \"...\"}, ...] instead\n"
               "                    (bytes that are not valid UTF-8 appear as \\\\xNN)\n"
               "  --bos             prepend the BOS token\n"
               "  --special         treat special-token text such as <|eot_id|> as that token\n");
        return 0;
    }
    tok_args a = {0};
    int rc = parse(cmd, argc, argv, &a, true);
    if (rc) return rc;
    bn_tokenizer *tok = NULL;
    if ((rc = load(cmd, &a, &tok))) return rc;
    size_t len;
    char *text = read_stdin(&len);
    if (!text) {
        bn_tokenizer_free(tok);
        fprintf(stderr, "bitnet tokenize: cannot read stdin\n");
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (bn_tokenize(tok, text, len, a.bos, a.special, &ids, &n) != BN_OK) {
        free(text);
        bn_tokenizer_free(tok);
        return bn_cli_fail("tokenize");
    }
    if (a.json) {
        fputc('[', stdout);
        for (size_t i = 0; i < n; i++) {
            size_t pl;
            const char *p = bn_token_to_piece(tok, ids[i], &pl);
            printf("%s{\"id\": %d, \"piece\": ", i ? ", " : "", ids[i]);
            json_piece(stdout, (const unsigned char *)p, pl);
            fputc('}', stdout);
        }
        fputs("]\n", stdout);
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        fputc('\n', stdout);
    }
    free(ids);
    free(text);
    bn_tokenizer_free(tok);
    return ferror(stdout) ? 1 : 0;
}

int bn_cmd_detokenize(int argc, char **argv) {
    const char *cmd = "detokenize";
    if (argc > 1 && bn_cli_is_help(argv[1])) {
        printf("usage: bitnet detokenize (--tokenizer FILE | -m MODEL) [--skip-special] < ids\n\n"
               "Reads token ids (separated by whitespace or commas; '[' and ']' are ignored)\n"
               "and prints the text they stand for, byte for byte, with no newline added.\n"
               "  --skip-special    leave out control tokens such as <|eot_id|>\n");
        return 0;
    }
    tok_args a = {0};
    int rc = parse(cmd, argc, argv, &a, false);
    if (rc) return rc;
    bn_tokenizer *tok = NULL;
    if ((rc = load(cmd, &a, &tok))) return rc;
    size_t len;
    char *in = read_stdin(&len);
    int32_t *ids = in ? malloc((len / 2 + 1) * sizeof *ids) : NULL;
    if (!in || !ids) {
        free(in);
        bn_tokenizer_free(tok);
        fprintf(stderr, "bitnet detokenize: cannot read stdin\n");
        return 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        char c = in[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '[' || c == ']') { i++; continue; }
        if (c < '0' || c > '9') {
            fprintf(stderr, "bitnet detokenize: unexpected character '%c' at byte %zu of the input\n", c, i);
            rc = 1;
            break;
        }
        long long v = 0;
        while (i < len && in[i] >= '0' && in[i] <= '9' && v <= INT32_MAX) v = v * 10 + (in[i++] - '0');
        if (v >= bn_tokenizer_n_vocab(tok)) {
            fprintf(stderr, "bitnet detokenize: token id %lld is out of range (vocabulary of %d)\n", v,
                    bn_tokenizer_n_vocab(tok));
            rc = 1;
            break;
        }
        ids[n++] = (int32_t)v;
    }
    if (!rc) {
        char *text;
        size_t tl;
        if (bn_detokenize(tok, ids, n, a.skip_special, &text, &tl) != BN_OK) rc = bn_cli_fail("detokenize");
        else {
            fwrite(text, 1, tl, stdout);
            free(text);
        }
    }
    free(ids);
    free(in);
    bn_tokenizer_free(tok);
    return rc ? rc : ferror(stdout) ? 1 : 0;
}
