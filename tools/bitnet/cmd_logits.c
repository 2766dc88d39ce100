/* cmd_logits.c — `bitnet logits`: raw next-token logits for given ids. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cuda_opts.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet logits -m MODEL --ids 1,2,3 [--prefill N] [-o FILE] [options]\n\n"
            "Writes little-endian float32 logits [n_ids x n_vocab], one row per position.\n"
            "  -m MODEL          .gguf file or Hugging Face folder\n"
            "  --ids LIST        comma-separated token ids\n"
            "  --prefill N       first N ids as one batch, the rest one at a time through\n"
            "                    the KV cache (default: all ids in one batch)\n"
            "  -o FILE           output file (default: stdout when not a terminal;\n"
            "                    on a terminal a short table of the top tokens is printed)\n"
            "  -t N              threads (default: all CPUs)\n"
            BN_CLI_DEVICE_HELP
            "  --kernels NAME    ref | avx2 | avx512 (default: best for this CPU)\n"
            BN_CLI_MODEL_HELP
            "  --lora DIR        apply a LoRA adapter (PEFT folder: bitnet finetune --save)\n"
            "  --dump-hidden F   also write hidden states float32 [n_layer+2, n_ids, n_embd]\n");
}

static void print_top(const float *row, int n_vocab, int pos) {
    int best[5] = {-1, -1, -1, -1, -1};
    for (int v = 0; v < n_vocab; v++) {
        for (int j = 0; j < 5; j++) {
            if (best[j] < 0 || row[v] > row[best[j]]) {
                memmove(best + j + 1, best + j, sizeof(int) * (size_t)(4 - j));
                best[j] = v;
                break;
            }
        }
    }
    printf("pos %3d:", pos);
    for (int j = 0; j < 5 && best[j] >= 0; j++) printf("  %d (%.3f)", best[j], row[best[j]]);
    printf("\n");
}

int bn_cmd_logits(int argc, char **argv) {
    const char *cmd = "logits", *model_path = NULL, *out_path = NULL, *kernels = NULL, *dump_path = NULL;
    int32_t *ids = NULL;
    int n_ids = 0;
    long prefill = -1, threads = 0;
    bn_cli_device dev = {BN_DEVICE_CPU, 0, BN_KV_F32};
    int dv;
    bn_cli_model_opts mo = BN_CLI_MODEL_OPTS_INIT;
    int rc = 2;
    const char *lora_path = NULL; /* --lora: adapter folder */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (bn_cli_is_help(a)) { usage(stdout); free(ids); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!(model_path = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--ids")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i))) goto out;
            free(ids);
            ids = NULL;
            if (!bn_cli_parse_ids(cmd, v, &ids, &n_ids)) goto out;
        } else if (!strcmp(a, "--prefill")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 0, 1 << 30, &prefill)) goto out;
        } else if (!strcmp(a, "-o")) { if (!(out_path = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if ((dv = bn_cli_device_option(cmd, argc, argv, &i, &dev)) != 0) {
            if (dv < 0) goto out;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 1024, &threads)) goto out;
        } else if (!strcmp(a, "--kernels")) { if (!(kernels = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if ((dv = bn_cli_model_option(cmd, argc, argv, &i, &mo)) != 0) {
            if (dv < 0) goto out;
        } else if (!strcmp(a, "--dump-hidden")) { if (!(dump_path = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--lora")) { if (!(lora_path = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else { bn_cli_usage_error(cmd, "unknown option '%s'", a); goto out; }
    }
    if (!model_path) { bn_cli_usage_error(cmd, "-m MODEL is required"); goto out; }
    if (!ids) { bn_cli_usage_error(cmd, "--ids is required"); goto out; }
    if (prefill < 0 || prefill > n_ids) prefill = n_ids;
    if (prefill == 0) prefill = 1;

    rc = 1;
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    float *out = NULL, *hidden = NULL;
    FILE *f = NULL;
    if (bn_cli_load_model_with(model_path, &mo, &model, NULL) != BN_OK) { bn_cli_fail("cannot load model"); goto out; }
    if (lora_path && bn_model_apply_lora(model, lora_path, 1.0f) != BN_OK) { bn_cli_fail(lora_path); goto out; }
    bn_model_info info;
    bn_model_get_info(model, &info);
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = n_ids;
    cp.n_batch = (int32_t)prefill;
    cp.n_threads = (int32_t)threads;
    cp.all_logits = true;
    cp.kernels = kernels;
    bn_cli_device_apply(&dev, &cp);
    if (bn_context_create(model, &cp, &ctx) != BN_OK) { bn_cli_fail("context"); goto cleanup; }
    const size_t V = (size_t)info.n_vocab;
    out = malloc(sizeof(float) * V * (size_t)n_ids);
    if (!out) { fprintf(stderr, "bitnet logits: out of memory\n"); goto cleanup; }
    if (dump_path) {
        hidden = calloc((size_t)(info.n_layer + 2) * (size_t)n_ids * (size_t)info.n_embd, sizeof(float));
        if (!hidden) { fprintf(stderr, "bitnet logits: out of memory\n"); goto cleanup; }
        bn_context_set_hidden_dump(ctx, hidden, (int32_t)prefill);
    }
    /* one batch of `prefill` ids, then the rest one at a time */
    bn_batch b = {.n_tokens = (int32_t)prefill, .tokens = ids};
    if (bn_decode(ctx, &b) != BN_OK) { bn_cli_fail("decode"); goto cleanup; }
    for (int i = 0; i < prefill; i++) memcpy(out + (size_t)i * V, bn_get_logits(ctx, i), V * sizeof(float));
    for (int i = (int)prefill; i < n_ids; i++) {
        bn_batch one = {.n_tokens = 1, .tokens = ids + i};
        if (bn_decode(ctx, &one) != BN_OK) { bn_cli_fail("decode"); goto cleanup; }
        memcpy(out + (size_t)i * V, bn_get_logits(ctx, 0), V * sizeof(float));
    }
    if (!out_path && isatty(STDOUT_FILENO)) {
        for (int i = 0; i < n_ids; i++) print_top(out + (size_t)i * V, info.n_vocab, i);
    } else {
        f = out_path ? fopen(out_path, "wb") : stdout;
        if (!f || fwrite(out, sizeof(float) * V, (size_t)n_ids, f) != (size_t)n_ids) {
            fprintf(stderr, "bitnet logits: cannot write %s\n", out_path ? out_path : "stdout");
            goto cleanup;
        }
    }
    if (dump_path) {
        /* the dump holds the first `prefill` positions (the batched ones) */
        FILE *hf = fopen(dump_path, "wb");
        const size_t e = (size_t)info.n_embd;
        bool ok = hf != NULL;
        for (int s = 0; ok && s < info.n_layer + 2; s++)
            ok = fwrite(hidden + (size_t)s * (size_t)prefill * e, sizeof(float) * e, (size_t)prefill, hf) == (size_t)prefill;
        if (hf) fclose(hf);
        if (!ok) { fprintf(stderr, "bitnet logits: cannot write %s\n", dump_path); goto cleanup; }
    }
    rc = 0;
cleanup:
    if (f && f != stdout) fclose(f);
    free(out);
    free(hidden);
    bn_context_free(ctx);
    bn_model_free(model);
out:
    free(ids);
    return rc;
}
