/* cmd_perplexity.c — `bitnet perplexity`: llama.cpp's perplexity method
 * (non-overlapping windows, BOS first, second half scored) over a text file
 * or pre-tokenized ids. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gen_common.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet perplexity -m MODEL (-f TEXT_FILE | --ids-file FILE) [options]\n\n"
            "Cuts the tokens into non-overlapping windows of --ctx tokens, puts BOS first\n"
            "in each window and scores the second half of each (llama.cpp's method).\n"
            "  -m MODEL          .gguf file, Hugging Face folder, or hf:ORG/NAME\n"
            "  -f FILE           text to score (tokenized with BOS, as llama.cpp does)\n"
            "  --ids-file FILE   token ids instead: int32 little-endian if FILE ends in .bin,\n"
            "                    else integers separated by spaces, commas or newlines\n"
            "  --tokenizer FILE  tokenizer to use instead of the model's own\n"
            "  --ctx N           window size (default 512)\n"
            "  --batch N         tokens per decode call (default: the whole window)\n"
            "  --chunks N        score at most N windows\n"
            "  --no-bos          keep the first token of each window (no BOS replacement)\n"
            "  -t N              threads (default: all CPUs)\n"
            BN_CLI_DEVICE_HELP
            BN_CLI_MODEL_HELP
            "Prints the running PPL after each window and 'Final estimate: PPL = X +/- E'.\n");
}

static bool on_chunk(int32_t chunk, int32_t n_chunks, double ppl, double err, void *user) {
    (void)user;
    (void)err;
    printf("[%d]%.4f,", (int)chunk, ppl);
    if (chunk == n_chunks) printf("\n");
    fflush(stdout);
    return true;
}

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            char *t = cap < ((size_t)1 << 31) ? realloc(buf, cap * 2) : NULL;
            if (!t) { free(buf); buf = NULL; break; }
            buf = t;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) { buf[n] = '\0'; *len = n; }
    return buf;
}

int bn_cmd_perplexity(int argc, char **argv) {
    const char *cmd = "perplexity", *model_spec = NULL, *text_path = NULL, *ids_path = NULL, *tok_path = NULL;
    long ctx = 512, batch = 0, chunks = 0, threads = 0;
    bn_cli_device dev = {BN_DEVICE_CPU, 0, BN_KV_F32};
    int dv;
    bool no_bos = false;
    bn_cli_model_opts mo = BN_CLI_MODEL_OPTS_INIT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!(model_spec = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { if (!(text_path = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--ids-file")) { if (!(ids_path = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--tokenizer")) { if (!(tok_path = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 4, 1 << 20, &ctx)) return 2;
        } else if (!strcmp(a, "--batch") || !strcmp(a, "-b")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 1 << 20, &batch)) return 2;
        } else if (!strcmp(a, "--chunks")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, INT32_MAX, &chunks)) return 2;
        } else if ((dv = bn_cli_device_option(cmd, argc, argv, &i, &dev)) != 0) {
            if (dv < 0) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "--no-bos")) no_bos = true;
        else if ((dv = bn_cli_model_option(cmd, argc, argv, &i, &mo)) != 0) {
            if (dv < 0) return 2;
        } else return bn_cli_usage_error(cmd, "unknown option '%s'", a);
    }
    if (!model_spec) return bn_cli_usage_error(cmd, "-m MODEL is required");
    if (!!text_path + !!ids_path != 1) return bn_cli_usage_error(cmd, "give exactly one of -f FILE or --ids-file FILE");

    int rc = 1;
    bn_model *model = NULL;
    char *model_path = NULL;
    bn_tokenizer *tok = NULL;
    bn_context *cx = NULL;
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    if (bn_cli_load_model_with(model_spec, &mo, &model, &model_path) != BN_OK) { bn_cli_fail(model_spec); goto out; }
    bn_model_info mi;
    bn_model_get_info(model, &mi);
    if (!bn_gen_load_tokenizer(cmd, model_path, tok_path, &tok)) goto out;
    if (ids_path) {
        if (!bn_gen_read_ids_file(cmd, ids_path, &ids, &n_ids)) goto out;
    } else {
        if (!tok) { fprintf(stderr, "bitnet perplexity: the model has no tokenizer: pass --tokenizer FILE or --ids-file\n"); goto out; }
        size_t len = 0, nn = 0;
        char *text = read_text(text_path, &len);
        if (!text) { fprintf(stderr, "bitnet perplexity: cannot read %s: %s\n", text_path, strerror(errno)); goto out; }
        double t0 = bn_gen_now();
        bn_status st = bn_tokenize(tok, text, len, bn_tokenizer_bos(tok) >= 0, false, &ids, &nn);
        free(text);
        if (st) { bn_cli_fail("tokenizing"); goto out; }
        n_ids = (int64_t)nn;
        fprintf(stderr, "bitnet perplexity: %s: %lld tokens (tokenized in %.2f s)\n", text_path, (long long)n_ids,
                bn_gen_now() - t0);
    }
    if (n_ids < ctx) {
        fprintf(stderr, "bitnet perplexity: %lld tokens are fewer than one window of --ctx %ld\n", (long long)n_ids, ctx);
        goto out;
    }
    if (bn_gen_context(model, (int32_t)ctx, 1, (int32_t)threads, &dev, &cx) != BN_OK) { bn_cli_fail("creating the context"); goto out; }
    bn_perplexity_params pp = bn_perplexity_default_params();
    pp.n_ctx = (int32_t)ctx;
    int32_t bos = tok ? bn_tokenizer_bos(tok) : mi.bos_id;
    pp.bos_id = no_bos ? -1 : bos;
    pp.n_batch = (int32_t)batch;
    pp.max_chunks = (int32_t)chunks;
    pp.progress = on_chunk;
    int64_t n_chunks = n_ids / ctx;
    if (chunks > 0 && n_chunks > chunks) n_chunks = chunks;
    fprintf(stderr, "bitnet perplexity: %lld windows of %ld tokens, %ld scored per window, BOS %s\n",
            (long long)n_chunks, ctx, ctx - ctx / 2 - 1, pp.bos_id >= 0 ? "replaces the first token" : "not used");
    double t0 = bn_gen_now();
    bn_perplexity_result r;
    if (bn_perplexity(cx, model, ids, n_ids, &pp, &r) != BN_OK) { printf("\n"); bn_cli_fail("perplexity"); goto out; }
    double dt = bn_gen_now() - t0;
    printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
    fprintf(stderr, "bitnet perplexity: %lld tokens scored in %d windows, %.2f s (%.1f tok/s evaluated)\n",
            (long long)r.n_scored, (int)r.n_chunks, dt, dt > 0 ? (double)r.n_chunks * (double)ctx / dt : 0.0);
    rc = 0;
out:
    free(ids);
    bn_context_free(cx);
    bn_tokenizer_free(tok);
    bn_model_free(model);
    free(model_path);
    return rc;
}
