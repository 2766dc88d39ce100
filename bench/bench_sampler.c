/* bench_sampler.c — the host sampler on one logits row of a large
 * vocabulary: microseconds per bn_sampler_sample, with and without the
 * log-probabilities (bn_sample_info), for the settings given.
 *
 * usage: bench_sampler [--vocab V] [--top-k K] [--top-p P] [--min-p M] [--temp T] [-r N]
 * Defaults: V 128256 (LLaMA 3), the OpenAI request defaults (top-k 0,
 * top-p 1, min-p 0, temperature 1), 200 samples. Logits are uniform in
 * [-10, 10) from a fixed generator; history: 64 ids (no penalties). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int vocab = 128256, reps = 200;
    bn_sampler_params p = bn_sampler_default_params();
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.temperature = 1.0f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "bench_sampler: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--vocab")) vocab = atoi(v);
        else if (!strcmp(a, "--top-k")) p.top_k = atoi(v);
        else if (!strcmp(a, "--top-p")) p.top_p = (float)atof(v);
        else if (!strcmp(a, "--min-p")) p.min_p = (float)atof(v);
        else if (!strcmp(a, "--temp")) p.temperature = (float)atof(v);
        else if (!strcmp(a, "-r")) reps = atoi(v);
        else { fprintf(stderr, "bench_sampler: unknown option %s\n", a); return 2; }
        i++;
    }
    if (vocab < 2 || reps < 1) { fprintf(stderr, "bench_sampler: bad --vocab or -r\n"); return 2; }
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    if (!logits) return 1;
    uint32_t s = 1;
    for (int i = 0; i < vocab; i++) {
        s = s * 1103515245u + 12345u;
        logits[i] = (float)((s >> 8) % 20000u) / 1000.0f - 10.0f;
    }
    int32_t hist[64];
    for (int i = 0; i < 64; i++) hist[i] = (int32_t)((i * 7919) % vocab);
    printf("vocabulary %d, top-k %d, top-p %.2f, min-p %.2f, temperature %.2f, %d samples\n", vocab, (int)p.top_k,
           p.top_p, p.min_p, p.temperature, reps);
    for (int with_info = 0; with_info < 2; with_info++) {
        bn_sampler *sm = NULL;
        if (bn_sampler_create(&p, &sm) != BN_OK) { fprintf(stderr, "bench_sampler: %s\n", bn_last_error()); return 1; }
        bn_sample_info info;
        int32_t t = 0;
        long sum = 0;
        const double t0 = now_s();
        for (int r = 0; r < reps; r++) {
            if (bn_sampler_sample(sm, logits, vocab, hist, 64, 0, with_info ? &info : NULL, &t) != BN_OK) return 1;
            sum += t;
        }
        printf("%-28s %8.1f us per sample (checksum %ld)\n", with_info ? "with log-probabilities:" : "without log-probabilities:",
               (now_s() - t0) / reps * 1e6, sum);
        bn_sampler_free(sm);
    }
    free(logits);
    return 0;
}
