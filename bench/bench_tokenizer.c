/* bench_tokenizer.c — encode a file N times with libbitnet's tokenizer and
 * report MB/s and tokens/s (single thread), in the same format as
 * bench/tokenizer_tiktoken.mjs so the two can be read side by side.
 *
 * usage: bench_tokenizer TOKENIZER TEXT_FILE [N]
 *   TOKENIZER: tiktoken ranks file, tokenizer.json, .gguf or HF folder */
#include "bitnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER TEXT_FILE [N]\n", argv[0]);
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 10;
    if (runs < 1) runs = 1;
    double t0 = now();
    bn_tokenizer *tok;
    if (bn_tokenizer_load(argv[1], &tok) != BN_OK) {
        fprintf(stderr, "load: %s\n", bn_last_error());
        return 1;
    }
    double t_load = now() - t0;
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *text = malloc((size_t)len + 1);
    if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) { fprintf(stderr, "read failed\n"); return 1; }
    fclose(f);
    int32_t *ids;
    size_t n;
    if (bn_tokenize(tok, text, (size_t)len, false, false, &ids, &n) != BN_OK) { /* warm-up */
        fprintf(stderr, "tokenize: %s\n", bn_last_error());
        return 1;
    }
    free(ids);
    double best = 1e30;
    t0 = now();
    for (int r = 0; r < runs; r++) {
        double t1 = now();
        if (bn_tokenize(tok, text, (size_t)len, false, false, &ids, &n) != BN_OK) return 1;
        double dt = now() - t1;
        if (dt < best) best = dt;
        free(ids);
    }
    double s = now() - t0;
    const char *base = strrchr(argv[2], '/');
    base = base ? base + 1 : argv[2];
    printf("libbitnet %s: %ld bytes -> %zu tokens, %d runs in %.3f s: %.2f MB/s, %.3f M tokens/s "
           "(best run %.2f MB/s; vocabulary loaded in %.0f ms)\n",
           base, len, n, runs, s, (double)len * runs / s / 1e6, (double)n * runs / s / 1e6,
           (double)len / best / 1e6, t_load * 1e3);
    free(text);
    bn_tokenizer_free(tok);
    return 0;
}
