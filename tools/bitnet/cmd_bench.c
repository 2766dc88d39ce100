/* cmd_bench.c — `bitnet bench`: prompt-processing and generation speed of a
 * model, like llama-bench's pp/tg, with the memory traffic it implies. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/core.h"
#include "cuda_opts.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet bench -m MODEL [-t N] [-p 128] [-n 64] [-r 5] [--seqs S] [options] [--json]\n\n"
            "Measures prompt processing (one batch of -p tokens) and generation (-n single-token\n"
            "decode steps through the KV cache), -r repetitions each; prints the median and the\n"
            "spread, the bytes a decode step reads and the bandwidth that implies, and memory.\n"
            "  -t N          threads (default: all CPUs)\n"
            "  -p N          prompt tokens (0 skips prompt processing)\n"
            "  -n N          generated tokens (0 skips generation)\n"
            "  -r N          repetitions (default 5)\n"
            "  --seqs S      decode S sequences at once (aggregate tokens/s; default 1)\n"
            "  --device D    cpu (default) or cuda\n"
            BN_CLI_CUDA_OPTS_HELP
            "  --kv T        KV cache f32 (default) or f16\n"
            "  --kernels K   ref | avx2 | avx512 (CPU kernel set; default: best)\n"
            BN_CLI_MODEL_HELP
            "  --json        one JSON object instead of the table\n");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct stats { double median, min, max; } stats;

static stats summarize(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    stats s = {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0], v[n - 1]};
    return s;
}

static long read_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) { v = strtol(line + kl, NULL, 10); break; }
    fclose(f);
    return v;
}

int bn_cmd_bench(int argc, char **argv) {
    const char *cmd = "bench", *model_path = NULL, *kernels = NULL, *device = "cpu", *v;
    long threads = 0, n_prompt = 128, n_gen = 64, reps = 5, seqs = 1;
    bool json = false;
    bn_cli_model_opts mo = BN_CLI_MODEL_OPTS_INIT;
    int mv;
    uint32_t cuda_flags = 0;
    bool kv_f16 = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m")) { if (!(model_path = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-t")) { if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 1024, &threads)) return 2; }
        else if (!strcmp(a, "-p")) { if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 0, 1 << 20, &n_prompt)) return 2; }
        else if (!strcmp(a, "-n")) { if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 0, 1 << 20, &n_gen)) return 2; }
        else if (!strcmp(a, "-r")) { if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 1000, &reps)) return 2; }
        else if (!strcmp(a, "--seqs")) { if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 4096, &seqs)) return 2; }
        else if (!strcmp(a, "--device")) { if (!(device = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--kv")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i))) return 2;
            if (strcmp(v, "f32") && strcmp(v, "f16")) return bn_cli_usage_error(cmd, "--kv must be f32 or f16, not '%s'", v);
            kv_f16 = !strcmp(v, "f16");
        }
        else if (!strcmp(a, "--cuda")) { if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_cuda_flags(cmd, v, &cuda_flags)) return 2; }
        else if (!strcmp(a, "--kernels")) { if (!(kernels = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if ((mv = bn_cli_model_option(cmd, argc, argv, &i, &mo)) != 0) { if (mv < 0) return 2; }
        else if (!strcmp(a, "--json")) json = true;
        else return bn_cli_usage_error(cmd, "unknown option '%s'", a);
    }
    if (!model_path) return bn_cli_usage_error(cmd, "-m MODEL is required");
    if (strcmp(device, "cpu") && strcmp(device, "cuda")) return bn_cli_usage_error(cmd, "--device must be cpu or cuda");
    if (!n_prompt && !n_gen) return bn_cli_usage_error(cmd, "nothing to measure (-p 0 and -n 0)");

    bn_model *m = NULL;
    bn_context *c = NULL;
    int32_t *toks = NULL, *seq_ids = NULL;
    double *pp = NULL, *tg = NULL;
    int rc = 1;
    const int head_bits = mo.head_bits;
    if (bn_cli_load_model_with(model_path, &mo, &m, NULL) != BN_OK) { bn_cli_fail("cannot load model"); goto done; }
    bn_model_info info;
    bn_model_get_info(m, &info);
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = (int32_t)(n_prompt + n_gen + 1);
    cp.n_seq_max = (int32_t)seqs;
    cp.n_batch = (int32_t)(n_prompt > seqs ? n_prompt : seqs);
    cp.n_threads = (int32_t)threads;
    cp.kernels = kernels;
    cp.device = !strcmp(device, "cuda") ? BN_DEVICE_CUDA : BN_DEVICE_CPU;
    cp.cuda_flags = cuda_flags;
    cp.kv_type = kv_f16 ? BN_KV_F16 : BN_KV_F32;
    if (bn_context_create(m, &cp, &c) != BN_OK) { bn_cli_fail("context"); goto done; }
    const long nt = n_prompt > seqs ? n_prompt : seqs;
    toks = malloc(sizeof(int32_t) * (size_t)nt);
    seq_ids = malloc(sizeof(int32_t) * (size_t)nt);
    pp = calloc((size_t)reps, sizeof(double));
    tg = calloc((size_t)reps, sizeof(double));
    if (!toks || !seq_ids || !pp || !tg) { fprintf(stderr, "bitnet bench: out of memory\n"); goto done; }
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (long i = 0; i < nt; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % (uint64_t)info.n_vocab);
    }
    /* warm-up: touch every weight once */
    {
        bn_batch w = {.n_tokens = 1, .tokens = toks};
        if (bn_decode(c, &w) != BN_OK) { bn_cli_fail("decode"); goto done; }
    }
    const bool progress = !json && isatty(STDERR_FILENO);
    for (long r = 0; r < reps; r++) {
        for (long s = 0; s < seqs; s++) bn_seq_truncate(c, (int32_t)s, 0);
        if (n_prompt) {
            bn_batch b = {.n_tokens = (int32_t)n_prompt, .tokens = toks};
            double t0 = bn_time_s();
            if (bn_decode(c, &b) != BN_OK) { bn_cli_fail("decode"); goto done; }
            pp[r] = (double)n_prompt / (bn_time_s() - t0);
            bn_seq_truncate(c, 0, 0);
        }
        if (n_gen) {
            for (long s = 0; s < seqs; s++) seq_ids[s] = (int32_t)s;
            double t0 = bn_time_s();
            for (long i = 0; i < n_gen; i++) {
                bn_batch b = {.n_tokens = (int32_t)seqs, .tokens = toks, .seq_ids = seq_ids};
                if (bn_decode(c, &b) != BN_OK) { bn_cli_fail("decode"); goto done; }
                /* the logits reach the host every step, as for a sampler
                 * that needs whole rows (on CUDA they would otherwise stay
                 * on the GPU, uncounted) */
                if (!bn_get_logits(c, 0)) { bn_cli_fail("logits"); goto done; }
            }
            tg[r] = (double)(n_gen * seqs) / (bn_time_s() - t0);
        }
        /* a progress line only for a person watching: logs get no carriage returns */
        if (progress) fprintf(stderr, "\rbitnet bench: repetition %ld/%ld", r + 1, reps);
    }
    if (progress) fprintf(stderr, "\r%40s\r", "");
    const stats sp = n_prompt ? summarize(pp, (int)reps) : (stats){0, 0, 0};
    const stats sg = n_gen ? summarize(tg, (int)reps) : (stats){0, 0, 0};
    /* a decode step reads every ternary weight, the whole tied head and one embedding row */
    const double step_bytes = (double)info.weight_bytes;
    const double gbps = sg.median / (double)seqs * step_bytes / 1e9;
    const long rss_kb = read_status_kb("VmRSS:"), hwm_kb = read_status_kb("VmHWM:");
    const int thr = threads ? (int)threads : bn_cpu_count();
    if (json) {
        printf("{\"model\":\"%s\",\"device\":\"%s\",\"kv\":\"%s\",\"repack\":%s,\"threads\":%d,\"head_bits\":%d,\"n_prompt\":%ld,\"n_gen\":%ld,\"reps\":%ld,\"seqs\":%ld,"
               "\"pp_tok_s\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},"
               "\"tg_tok_s\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},"
               "\"bytes_per_step\":%.0f,\"read_GBps\":%.3f,\"rss_MiB\":%.1f,\"peak_rss_MiB\":%.1f}\n",
               model_path, device, kv_f16 ? "f16" : "f32", mo.repack ? "true" : "false", thr, head_bits, n_prompt, n_gen, reps, seqs, sp.median, sp.min, sp.max, sg.median, sg.min, sg.max,
               step_bytes, gbps, rss_kb / 1024.0, hwm_kb / 1024.0);
    } else {
        printf("model %s (%s, %.1f MB read per step, head %s), device %s, %d threads\n", model_path, info.arch,
               (double)info.weight_bytes / 1e6, head_bits ? (head_bits == 8 ? "q8" : head_bits == 6 ? "q6" : "q4") : "f16",
               device, thr);
        if (n_prompt)
            printf("pp%-5ld %10.2f tok/s   (min %.2f, max %.2f over %ld runs)\n", n_prompt, sp.median, sp.min, sp.max, reps);
        if (n_gen)
            printf("tg%-5ld %10.2f tok/s   (min %.2f, max %.2f over %ld runs%s)\n", n_gen, sg.median, sg.min, sg.max, reps,
                   seqs > 1 ? ", aggregate over sequences" : "");
        if (n_gen)
            printf("decode reads %.1f MB per step -> %.2f GB/s\n", step_bytes / 1e6, gbps);
        printf("memory: RSS %.1f MiB, peak %.1f MiB\n", rss_kb / 1024.0, hwm_kb / 1024.0);
    }
    rc = 0;
done:
    free(toks);
    free(seq_ids);
    free(pp);
    free(tg);
    bn_context_free(c);
    bn_model_free(m);
    return rc;
}
