/* bandwidth.c — streaming-read bandwidth with N threads, the ceiling that
 * decode speed is compared against (bytes per token x tokens/s over this).
 *
 *   bandwidth [-t threads] [-m MiB] [-r reps] [--json]
 *     -t  OpenMP threads (default 2), -m buffer size in MiB (default 1024,
 *     far above any last-level cache), -r timed passes (default 7).
 *
 * Every thread sums its own contiguous slice (the way a row-split GEMV reads
 * its weight rows), with AVX2 loads and four independent accumulators where
 * the CPU has AVX2 so the loop itself is never the bottleneck. The buffer is
 * written once first so every page is resident; then one untimed pass, then
 * the timed ones. Prints best and median GB/s (1 GB = 1e9 bytes). */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* n is a multiple of 16 words (128 bytes) */
static uint64_t sum_plain(const uint64_t *p, size_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i < n; i += 4) {
        a += p[i];
        b += p[i + 1];
        c += p[i + 2];
        d += p[i + 3];
    }
    return a + b + c + d;
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i < n; i += 16) {
        a = _mm256_add_epi64(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_load_si256((const __m256i *)(p + i + 4)));
        c = _mm256_add_epi64(c, _mm256_load_si256((const __m256i *)(p + i + 8)));
        d = _mm256_add_epi64(d, _mm256_load_si256((const __m256i *)(p + i + 12)));
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, a);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#endif

int main(int argc, char **argv) {
    int threads = 2, reps = 7, json = 0;
    long mib = 1024;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) mib = atol(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "usage: %s [-t threads] [-m MiB] [-r reps] [--json]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || mib < 1 || mib > (1L << 20) || reps < 1 || reps > 1000) {
        fprintf(stderr, "bandwidth: -t 1..256, -m 1..1048576, -r 1..1000\n");
        return 2;
    }
    const size_t bytes = (size_t)mib << 20, n = bytes / 8;
    uint64_t *buf = aligned_alloc(64, bytes);
    if (!buf) {
        fprintf(stderr, "bandwidth: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    int use_avx2 = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2");
#endif
    /* first touch by the threads that will read, so pages are resident */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9e3779b97f4a7c15ull;

    double *gbs = calloc((size_t)reps, sizeof *gbs);
    if (!gbs) {
        free(buf);
        return 1;
    }
    volatile uint64_t sink = 0;
    for (int r = -1; r < reps; r++) {
        uint64_t total = 0;
        const double t0 = now_s();
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            const size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
            const size_t a = n / 16 * t / T * 16, b = n / 16 * (t + 1) / T * 16;
#if defined(__x86_64__)
            total += use_avx2 ? sum_avx2(buf + a, b - a) : sum_plain(buf + a, b - a);
#else
            total += sum_plain(buf + a, b - a);
#endif
        }
        const double dt = now_s() - t0;
        sink += total;
        if (r >= 0) gbs[r] = (double)(n / 16 * 16 * 8) / dt / 1e9;
    }
    (void)sink;
    qsort(gbs, (size_t)reps, sizeof *gbs, cmp_d);
    const double best = gbs[reps - 1], median = gbs[reps / 2];
    if (json)
        printf("{\"threads\": %d, \"mib\": %ld, \"reps\": %d, \"best_gbs\": %.2f, \"median_gbs\": %.2f}\n",
               threads, mib, reps, best, median);
    else
        printf("stream read: %d threads, %ld MiB, %d reps: best %.2f GB/s, median %.2f GB/s\n", threads, mib,
               reps, best, median);
    free(gbs);
    free(buf);
    return 0;
}
