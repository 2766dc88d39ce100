/* cmd_data.c — `bitnet data prepare`: tokenize a corpus (.txt, or .jsonl with
 * a "text" field per line) into token shards for `bitnet train --data`:
 * DIR/train.bin, DIR/val.bin (the last --val-fraction of the tokens, as
 * nanoGPT splits) and DIR/meta.json. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "train/train.h"

#define CMD "data"

static void usage(FILE *f) {
    fprintf(f,
        "usage: bitnet data prepare -t TOKENIZER -i CORPUS -o DIR [--val-fraction F]\n\n"
        "Tokenizes CORPUS into binary shards for 'bitnet train --data DIR'.\n"
        "  -t TOKENIZER      'bytes' (byte-level, vocabulary 256) or a tokenizer\n"
        "                    (tokenizer.json, tiktoken file, .gguf or HF folder)\n"
        "  -i CORPUS         a text file, or .jsonl with one {\"text\": ...} per line\n"
        "                    (documents are separated by EOS, or a newline for bytes)\n"
        "  -o DIR            output folder: train.bin, val.bin, meta.json\n"
        "  --val-fraction F  held-out share taken from the end (default 0.1)\n"
        "Shard format: 32-byte header (\"BNTOK\", version 1, bytes per id 2|4, count,\n"
        "vocabulary size), then little-endian uint16 or uint32 ids.\n");
}

typedef struct ids { uint32_t *v; size_t n, cap; } ids;

static bool push(ids *a, const int32_t *x, size_t n) {
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 1 << 16;
        while (cap < a->n + n) cap *= 2;
        uint32_t *nv = realloc(a->v, cap * sizeof *nv);
        if (!nv) return false;
        a->v = nv;
        a->cap = cap;
    }
    for (size_t i = 0; i < n; i++) a->v[a->n++] = (uint32_t)x[i];
    return true;
}

static bn_status encode(const bn_tokenizer *tok, const char *s, size_t len, ids *out) {
    if (!tok) {
        int32_t buf[4096];
        for (size_t i = 0; i < len;) {
            size_t k = 0;
            while (k < 4096 && i < len) buf[k++] = (uint8_t)s[i++];
            if (!push(out, buf, k)) return bn_fail(BN_ERR_NOMEM, "out of memory");
        }
        return BN_OK;
    }
    int32_t *v = NULL;
    size_t n = 0;
    bn_status st = bn_tokenize(tok, s, len, false, false, &v, &n);
    if (st == BN_OK && !push(out, v, n)) st = bn_fail(BN_ERR_NOMEM, "out of memory");
    free(v);
    return st;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int prepare(int argc, char **argv) {
    const char *tk = NULL, *in = NULL, *outdir = NULL;
    double vf = 0.1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
        if (!strcmp(a, "-t") || !strcmp(a, "--tokenizer")) { if (!(v = bn_cli_value(CMD, argc, argv, &i))) return 2; tk = v; }
        else if (!strcmp(a, "-i") || !strcmp(a, "--input")) { if (!(v = bn_cli_value(CMD, argc, argv, &i))) return 2; in = v; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { if (!(v = bn_cli_value(CMD, argc, argv, &i))) return 2; outdir = v; }
        else if (!strcmp(a, "--val-fraction")) {
            if (!(v = bn_cli_value(CMD, argc, argv, &i)) || !bn_cli_parse_float(CMD, a, v, &vf)) return 2;
            if (!(vf >= 0 && vf < 1)) return bn_cli_usage_error(CMD, "--val-fraction must be in [0, 1)");
        } else return bn_cli_usage_error(CMD, "unknown option '%s'", a);
    }
    if (!tk || !in || !outdir) return bn_cli_usage_error(CMD, "prepare needs -t, -i and -o");
    bn_tokenizer *tok = NULL;
    bool bytes = !strcmp(tk, "bytes");
    if (!bytes && bn_tokenizer_load(tk, &tok) != BN_OK) return bn_cli_fail(tk);
    uint32_t vocab = bytes ? 256 : (uint32_t)bn_tokenizer_n_vocab(tok);
    int32_t eos = bytes ? '\n' : bn_tokenizer_eos(tok);
    char *text = NULL;
    size_t len = 0;
    ids all = {0};
    int rc = 0;
    size_t docs = 0;
    if (bn_read_file(in, (size_t)8 << 30, &text, &len) != BN_OK) { rc = bn_cli_fail("corpus"); goto done; }
    if (ends_with(in, ".jsonl")) {
        char *line = text;
        size_t lineno = 0;
        while (line && *line) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            lineno++;
            if (line[strspn(line, " \t\r")]) {
                cJSON *j = cJSON_Parse(line);
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
                if (!cJSON_IsString(t)) {
                    cJSON_Delete(j);
                    fprintf(stderr, "bitnet data: %s:%zu: not a JSON object with a \"text\" "
                            "string\n", in, lineno);
                    rc = 1;
                    goto done;
                }
                bn_status st = encode(tok, t->valuestring, strlen(t->valuestring), &all);
                cJSON_Delete(j);
                if (st != BN_OK) { rc = bn_cli_fail("tokenize"); goto done; }
                if (eos >= 0 && !push(&all, &eos, 1)) { rc = bn_cli_fail("tokenize"); goto done; }
                docs++;
            }
            line = nl ? nl + 1 : NULL;
        }
    } else {
        if (encode(tok, text, len, &all) != BN_OK) { rc = bn_cli_fail("tokenize"); goto done; }
        docs = len > 0;
    }
    if (all.n == 0) {
        fprintf(stderr, "bitnet data: %s: the corpus is empty: nothing to train on\n", in);
        rc = 1;
        goto done;
    }
    size_t n_train = (size_t)((double)all.n * (1.0 - vf));
    if (n_train < 2) {
        fprintf(stderr, "bitnet data: %s: only %zu tokens for training: the corpus is too short\n",
                in, n_train);
        rc = 1;
        goto done;
    }
    if (mkdir(outdir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "bitnet data: %s: %s\n", outdir, strerror(errno));
        rc = 1;
        goto done;
    }
    char p[4096];
    snprintf(p, sizeof p, "%s/train.bin", outdir);
    if (bn_tr_shard_write(p, all.v, n_train, vocab) != BN_OK) { rc = bn_cli_fail("write"); goto done; }
    snprintf(p, sizeof p, "%s/val.bin", outdir);
    if (bn_tr_shard_write(p, all.v + n_train, all.n - n_train, vocab) != BN_OK) {
        rc = bn_cli_fail("write");
        goto done;
    }
    {
        char absbuf[PATH_MAX];
        const char *tname = bytes ? "bytes" : (realpath(tk, absbuf) ? absbuf : tk);
        cJSON *meta = cJSON_CreateObject();
        cJSON_AddStringToObject(meta, "tokenizer", tname);
        cJSON_AddNumberToObject(meta, "vocab_size", vocab);
        cJSON_AddStringToObject(meta, "source", in);
        cJSON_AddNumberToObject(meta, "documents", (double)docs);
        cJSON_AddNumberToObject(meta, "train_tokens", (double)n_train);
        cJSON_AddNumberToObject(meta, "val_tokens", (double)(all.n - n_train));
        cJSON_AddNumberToObject(meta, "val_fraction", vf);
        char *js = cJSON_Print(meta);
        cJSON_Delete(meta);
        snprintf(p, sizeof p, "%s/meta.json", outdir);
        const void *parts[1] = {js};
        size_t sizes[1] = {js ? strlen(js) : 0};
        bn_status st = js ? bn_tr_write_atomic(p, parts, sizes, 1) : bn_fail(BN_ERR_NOMEM, "meta.json");
        free(js);
        if (st != BN_OK) { rc = bn_cli_fail("write"); goto done; }
    }
    printf("%s: %zu tokens (vocabulary %u): train %zu, val %zu -> %s\n", in, all.n, vocab,
           n_train, all.n - n_train, outdir);
done:
    free(all.v);
    free(text);
    bn_tokenizer_free(tok);
    return rc;
}

int bn_cmd_data(int argc, char **argv) {
    if (argc < 2 || bn_cli_is_help(argv[1])) { usage(argc < 2 ? stderr : stdout); return argc < 2 ? 2 : 0; }
    if (!strcmp(argv[1], "prepare")) return prepare(argc, argv);
    return bn_cli_usage_error(CMD, "unknown action '%s' (prepare)", argv[1]);
}
