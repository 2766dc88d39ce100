/* bench_ctx.c — prompt and generation speed against context length, through
 * the public API only: for each length L, prefill L tokens (in batches of
 * -b), then generate -n tokens one at a time on top of those L positions.
 * Shows whether attention over a long KV cache makes speed collapse.
 *
 *   bench_ctx -m MODEL [-t threads] [-c 128,512,1024,2048,4096] [-n 32] [-b 512] [-r 1] [--kv f16] [--json]
 *
 * pp L = L / (time to prefill all L tokens) — the average over a prompt of
 * that length, later batches attending to more positions than earlier ones.
 * tg @L = n / (time of n single-token steps starting at depth L). With -r > 1
 * the median of the repetitions is printed. Tokens are pseudo-random ids. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define MAX_LENS 32

int main(int argc, char **argv) {
    const char *model_path = NULL, *lens_arg = "128,256,512,1024,2048,4096";
    int threads = 2, n_gen = 32, n_batch = 512, reps = 1, json = 0, kv_f16 = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-c") && i + 1 < argc) lens_arg = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) n_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--kv") && i + 1 < argc && (!strcmp(argv[i + 1], "f16") || !strcmp(argv[i + 1], "f32")))
            kv_f16 = !strcmp(argv[++i], "f16");
        else {
            fprintf(stderr, "usage: %s -m MODEL [-t threads] [-c L1,L2,...] [-n gen] [-b batch] [-r reps] [--kv f32|f16] [--json]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!model_path || threads < 1 || threads > 1024 || n_gen < 1 || n_gen > 4096 || n_batch < 1 ||
        n_batch > 65536 || reps < 1 || reps > 100) {
        fprintf(stderr, "bench_ctx: need -m MODEL; -t 1..1024, -n 1..4096, -b 1..65536, -r 1..100\n");
        return 2;
    }
    int lens[MAX_LENS], n_lens = 0, max_len = 0;
    {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", lens_arg);
        for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
            const long v = strtol(s, NULL, 10);
            if (v < 1 || v > (1 << 20) || n_lens == MAX_LENS) {
                fprintf(stderr, "bench_ctx: bad -c list '%s' (1..1048576, at most %d values)\n", lens_arg, MAX_LENS);
                return 2;
            }
            lens[n_lens++] = (int)v;
            if (v > max_len) max_len = (int)v;
        }
        if (!n_lens) {
            fprintf(stderr, "bench_ctx: empty -c list\n");
            return 2;
        }
    }

    bn_model *m = NULL;
    bn_context *c = NULL;
    int rc = 1;
    int32_t *toks = NULL;
    double *pp = NULL, *tg = NULL;
    bn_model_params mp = bn_model_default_params();
    if (bn_model_load(model_path, &mp, &m) != BN_OK) {
        fprintf(stderr, "bench_ctx: cannot load %s: %s\n", model_path, bn_last_error());
        goto done;
    }
    bn_model_info info;
    bn_model_get_info(m, &info);
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = max_len + n_gen + 1;
    cp.n_seq_max = 1;
    cp.n_batch = n_batch;
    cp.n_threads = threads;
    cp.kv_type = kv_f16 ? BN_KV_F16 : BN_KV_F32;
    if (bn_context_create(m, &cp, &c) != BN_OK) {
        fprintf(stderr, "bench_ctx: context: %s\n", bn_last_error());
        goto done;
    }
    toks = malloc(sizeof(int32_t) * (size_t)(max_len + n_gen));
    pp = calloc((size_t)reps, sizeof(double));
    tg = calloc((size_t)reps, sizeof(double));
    if (!toks || !pp || !tg) {
        fprintf(stderr, "bench_ctx: out of memory\n");
        goto done;
    }
    uint64_t rng = 0x243f6a8885a308d3ull;
    for (int i = 0; i < max_len + n_gen; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % (uint64_t)info.n_vocab);
    }
    { /* warm-up: touch every weight once */
        bn_batch w = {.n_tokens = 1, .tokens = toks};
        if (bn_decode(c, &w) != BN_OK) goto decode_fail;
    }
    if (!json)
        printf("model %s, %d threads, batch %d, %d generated tokens per length, KV cache %s\n", model_path, threads,
               n_batch, n_gen, kv_f16 ? "f16" : "f32");
    if (!json) printf("%8s %12s %12s\n", "ctx", "pp tok/s", "tg@ctx tok/s");
    if (json)
        printf("{\"model\":\"%s\",\"threads\":%d,\"n_batch\":%d,\"n_gen\":%d,\"kv\":\"%s\",\"rows\":[", model_path, threads,
               n_batch, n_gen, kv_f16 ? "f16" : "f32");
    for (int li = 0; li < n_lens; li++) {
        const int L = lens[li];
        for (int r = 0; r < reps; r++) {
            if (bn_seq_truncate(c, 0, 0) != BN_OK) goto decode_fail;
            double t0 = now_s();
            for (int p = 0; p < L; p += n_batch) {
                bn_batch b = {.n_tokens = L - p < n_batch ? L - p : n_batch, .tokens = toks + p};
                if (bn_decode(c, &b) != BN_OK) goto decode_fail;
            }
            pp[r] = L / (now_s() - t0);
            t0 = now_s();
            for (int g = 0; g < n_gen; g++) {
                bn_batch b = {.n_tokens = 1, .tokens = toks + L + g};
                if (bn_decode(c, &b) != BN_OK) goto decode_fail;
            }
            tg[r] = n_gen / (now_s() - t0);
        }
        const double mpp = median(pp, reps), mtg = median(tg, reps);
        if (json) printf("%s{\"ctx\":%d,\"pp_tok_s\":%.3f,\"tg_tok_s\":%.3f}", li ? "," : "", L, mpp, mtg);
        else printf("%8d %12.2f %12.2f\n", L, mpp, mtg);
        fflush(stdout);
    }
    if (json) printf("]}\n");
    rc = 0;
    goto done;
decode_fail:
    fprintf(stderr, "bench_ctx: decode: %s\n", bn_last_error());
done:
    free(toks);
    free(pp);
    free(tg);
    bn_context_free(c);
    bn_model_free(m);
    return rc;
}
