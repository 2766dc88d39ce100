/* bench_kernels.c — ternary GEMV / GEMM and head timings at the 2B4T shapes,
 * 1 and 2 OpenMP threads splitting rows [m0, m1) as the forward pass does,
 * next to two ceilings measured in the same run: a streaming read (GB/s,
 * all threads) and a plain AVX-512 VNNI multiply-accumulate loop.
 *
 *   bench_kernels [-t tables] [-r reps] [-n tokens] [-s shapes] [--gemv|--gemm]
 *                 [--huge] [--quick]
 * Times are the best of the repetitions (medians in parentheses).
 *     -t  comma list of tables (default: every one this CPU supports but ref);
 *         NAME/4 times the table's tgemm4 on T2R4 weights (use with --gemv)
 *     -n  prefill tokens for the GEMM (default 128)
 *     -s  shapes to run, digits 0-3 (default 0123: q/o, k/v, gate/up, down)
 *     --gemv / --gemm  only that half of each shape's line (no head either)
 *     --huge  weight pool on 2 MiB transparent huge pages (as --no-mmap
 *             loads do); default 4 KiB pages, like an mmapped model file
 *
 * GEMV reads weights from a pool larger than the last-level cache (the real
 * decode streams 0.5 GB of weights per token), so GB/s is DRAM bandwidth;
 * the GEMM too takes a different copy each repetition (prefill reads each
 * matrix once per batch). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/core.h"
#include "kernels/kernels.h"

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t rnd(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
/* Best (smallest) time of the repetitions: on a machine shared with other
 * work it is the estimate least disturbed by them; the median is printed
 * too. */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
static double best(double *v, int n) {
    double b = v[0];
    for (int i = 1; i < n; i++) if (v[i] < b) b = v[i];
    return b;
}

/* ---- ceilings */

#if defined(__x86_64__)
#include <immintrin.h>
/* One thread's slice, 256-bit loads, four independent sums. */
__attribute__((target("avx2"))) static uint64_t read_slice(const uint64_t *p, size_t n) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256((const __m256i *)(p + i)));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256((const __m256i *)(p + i + 4)));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256((const __m256i *)(p + i + 8)));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256((const __m256i *)(p + i + 12)));
    }
    s0 = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t t[4];
    _mm256_storeu_si256((__m256i *)t, s0);
    uint64_t r = t[0] + t[1] + t[2] + t[3];
    for (; i < n; i++) r += p[i];
    return r;
}
/* The same over four equal parts read side by side (more misses in flight,
 * like a kernel reading several rows at once). n: multiple of 64. */
__attribute__((target("avx2"))) static uint64_t read_slice4(const uint64_t *p, size_t n) {
    const size_t q = n / 4 / 4 * 4;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < q; i += 4) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256((const __m256i *)(p + i)));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256((const __m256i *)(p + q + i)));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256((const __m256i *)(p + 2 * q + i)));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256((const __m256i *)(p + 3 * q + i)));
    }
    s0 = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t t[4];
    _mm256_storeu_si256((__m256i *)t, s0);
    uint64_t r = t[0] + t[1] + t[2] + t[3];
    for (size_t i = 4 * q; i < n; i++) r += p[i];
    return r;
}
#else
static uint64_t read_slice(const uint64_t *p, size_t n) {
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++) r += p[i];
    return r;
}
static uint64_t read_slice4(const uint64_t *p, size_t n) { return read_slice(p, n); }
#endif

/* Streaming read: every thread sums its slice of a buffer far larger than
 * the caches, as one stream or four side by side (alternate repetitions).
 * Returns GB/s over all threads (best of reps and of both forms). */
static double stream_read_gbs(const uint64_t *buf, size_t n, int threads, int reps) {
    double best = 0;
    volatile uint64_t sink = 0;
    for (int r = 0; r < reps; r++) {
        const double t0 = bn_time_s();
        uint64_t total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            const int t = omp_get_thread_num(), T = omp_get_num_threads();
            const size_t a = n * (size_t)t / (size_t)T / 16 * 16, b = t == T - 1 ? n : n * (size_t)(t + 1) / (size_t)T / 16 * 16;
            total += (r & 1) ? read_slice4(buf + a, b - a) : read_slice(buf + a, b - a);
        }
        const double dt = bn_time_s() - t0;
        sink += total;
        const double gbs = (double)(n * 8) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    (void)sink;
    return best;
}

#if defined(__x86_64__)
/* VNNI peak: 24 independent vpdpbusd chains per thread (named variables:
 * GCC keeps an array of vectors in memory). */
#define VP_REP(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
                  X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
__attribute__((target("avx512f,avx512vnni"))) static uint64_t vnni_loop(long iters) {
    const __m512i x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(2);
#define VP_DECL(i) __m512i a##i = _mm512_set1_epi32(i);
    VP_REP(VP_DECL)
    for (long it = 0; it < iters; it++) {
#define VP_STEP(i) a##i = _mm512_dpbusd_epi32(a##i, x, y); __asm__ volatile("" : "+v"(a##i));
        VP_REP(VP_STEP)
    }
    __m512i s = _mm512_setzero_si512();
#define VP_SUM(i) s = _mm512_add_epi32(s, a##i);
    VP_REP(VP_SUM)
    return (uint64_t)_mm512_reduce_add_epi32(s);
}
/* Best of many short bursts (~0.1 ms each): robust to other work on the
 * machine taking the core now and then. */
static double vnni_peak_gmacs(int threads) {
    const long iters = 20000;
    volatile uint64_t sink = 0;
    double best = 0;
    for (int r = 0; r < 300; r++) {
        const double t0 = bn_time_s();
        uint64_t tot = 0;
#pragma omp parallel num_threads(threads) reduction(+ : tot)
        tot += vnni_loop(iters);
        const double dt = bn_time_s() - t0;
        sink += tot;
        const double g = (double)iters * 24 * 64 * threads / dt / 1e9;
        if (g > best) best = g;
    }
    (void)sink;
    return best;
}
#endif

/* ---- kernel runs */

/* A/B builds may link a second, older copy of a kernel file with its table
 * function renamed (-Dbn_kernels_avx512=bn_kernels_avx512_old): then
 * "-t avx512,old512" times both in one run. Weak: absent in normal builds. */
extern const bn_kernels *bn_kernels_avx512_old(void) __attribute__((weak));
extern const bn_kernels *bn_kernels_avx2_old(void) __attribute__((weak));
static const bn_kernels *table_by_name(const char *name) {
    /* "avx512/4": the table's tgemm4 on T2R4 data timed as its tgemm (the
     * pool's random bytes serve as T2R4 weights as well as T2R) */
    static bn_kernels t4[8];
    static int nt4 = 0;
    const size_t len = strlen(name);
    if (len > 2 && !strcmp(name + len - 2, "/4") && nt4 < 8) {
        char base[32];
        snprintf(base, sizeof base, "%.*s", (int)(len - 2), name);
        const bn_kernels *k = table_by_name(base);
        if (!k || !k->tgemm4) return NULL;
        t4[nt4] = *k;
        t4[nt4].tgemm = k->tgemm4;
        return &t4[nt4++];
    }
    if (!strcmp(name, "old512")) return bn_kernels_avx512_old && bn_kernels_by_name("avx512") ? bn_kernels_avx512_old() : NULL;
    if (!strcmp(name, "old2")) return bn_kernels_avx2_old && bn_kernels_by_name("avx2") ? bn_kernels_avx2_old() : NULL;
    return bn_kernels_by_name(name);
}

typedef struct shape { const char *name; int m, k; } shape;
static const shape shapes[] = {
    {"attn q/o 2560x2560", 2560, 2560},
    {"attn k/v  640x2560", 640, 2560},
    {"ffn gate/up 6912x2560", 6912, 2560},
    {"ffn down 2560x6912", 2560, 6912},
};

/* One call split over `threads` threads in 16-row tiles (as forward.c). */
static void run_split(const bn_kernels *kt, const uint8_t *w, int m, int k, const int8_t *q,
                      size_t ldq, const float *xs, const int32_t *xu, int n, float *y, int threads) {
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int tiles = (m + 15) / 16;
        const int m0 = (int)((long)tiles * t / T) * 16;
        int m1 = (int)((long)tiles * (t + 1) / T) * 16;
        if (m1 > m) m1 = m;
        if (m0 < m1) kt->tgemm(w, k, q, ldq, xs, xu, n, 0.5f, y, (size_t)m, m0, m1);
    }
}

int main(int argc, char **argv) {
    const char *tables = NULL;
    int reps = 5, ntok = 128, quick = 0, only = 0 /* 1 gemv, 2 gemm */, huge = 0;
    const char *shape_sel = "0123";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) tables = argv[++i];
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) ntok = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) shape_sel = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--gemv")) only = 1, quick = 1;
        else if (!strcmp(argv[i], "--gemm")) only = 2, quick = 1;
        else if (!strcmp(argv[i], "--huge")) huge = 1;
        else {
            fprintf(stderr, "usage: %s [-t avx512,avx2,ref] [-r reps] [-n tokens] [-s 0123] "
                    "[--gemv|--gemm] [--huge] [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64; /* the timing arrays */
    if (ntok < 2) ntok = 2;
    const char *names[8];
    int nnames = 0;
    static char tbuf[256];
    snprintf(tbuf, sizeof tbuf, "%s", tables ? tables : "avx512,avx2");
    for (char *s = strtok(tbuf, ","); s && nnames < 8; s = strtok(NULL, ",")) names[nnames++] = s;

    const int max_threads = bn_cpu_count() < 2 ? 1 : 2;
    printf("# bench_kernels: %d cpus, best table %s\n", bn_cpu_count(), bn_kernels_best()->name);

    /* ceilings */
    const size_t pool_bytes = (size_t)(quick ? 256 : 512) << 20;
    uint64_t *pool = bn_aligned_alloc(huge ? (size_t)2 << 20 : 64, pool_bytes);
    if (!pool) { fprintf(stderr, "out of memory\n"); return 1; }
#ifdef MADV_HUGEPAGE
    if (huge) madvise(pool, pool_bytes, MADV_HUGEPAGE);
#endif
    for (size_t i = 0; i < pool_bytes / 8; i++) pool[i] = rnd(); /* random codes, also GEMV weights */
    /* the GEMV weights come from this pool: clear each 0b11 code's high bit
     * so the weights are valid ternary (0b11 would read as 0 anyway) */
    {
        uint8_t *p = (uint8_t *)pool;
        for (size_t i = 0; i < pool_bytes; i++) p[i] = (uint8_t)(p[i] & ~((p[i] << 1) & 0xAA));
    }
    double bw[3] = {0};
    for (int t = 1; t <= max_threads; t++) bw[t] = stream_read_gbs(pool, pool_bytes / 8, t, 8);
    printf("stream read: 1 thread %.1f GB/s, %d threads %.1f GB/s\n", bw[1], max_threads, bw[max_threads]);
#if defined(__x86_64__)
    bn_cpu_features f;
    bn_cpu_detect(&f);
    if (f.avx512f && f.avx512vnni) {
        const double p1 = vnni_peak_gmacs(1), p2 = max_threads > 1 ? vnni_peak_gmacs(2) : p1;
        printf("vnni peak (vpdpbusd zmm loop): 1 thread %.0f GMAC/s, %d threads %.0f GMAC/s\n",
               p1, max_threads, p2);
    }
#endif

    /* the linear shapes: the tables' repetitions interleave (table A, table
     * B, stream read, A, B, ...) so that all see the same machine load; the
     * "% of read" uses the best streaming read taken between them */
    const bn_kernels *kts[8];
    int nk = 0;
    const char *labels[8];
    for (int ti = 0; ti < nnames; ti++) {
        const bn_kernels *kt = table_by_name(names[ti]);
        if (!kt) { printf("[%s: not supported here]\n", names[ti]); continue; }
        labels[nk] = names[ti];
        kts[nk++] = kt;
    }
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0] && nk > 0; si++) {
        if (!strchr(shape_sel, (int)('0' + si))) continue;
        const shape sh = shapes[si];
        const int kp = bn_pad_k(sh.k);
        const size_t wbytes = bn_t2r_row_bytes(sh.k) * (size_t)sh.m;
        const int copies = (int)(pool_bytes / wbytes);
        /* activations for up to ntok tokens */
        float *x = malloc(sizeof(float) * (size_t)sh.k * (size_t)ntok);
        int8_t *q = bn_aligned_alloc(64, (size_t)kp * (size_t)ntok);
        float *xs = malloc(sizeof(float) * (size_t)ntok);
        int32_t *xu = malloc(sizeof(int32_t) * (size_t)ntok);
        float *y = malloc(sizeof(float) * (size_t)sh.m * (size_t)ntok);
        for (size_t i = 0; i < (size_t)sh.k * (size_t)ntok; i++)
            x[i] = (float)((int64_t)(rnd() % 2001) - 1000) / 300.0f;
        kts[0]->quantize_act(x, (size_t)sh.k, sh.k, ntok, q, (size_t)kp, xs, xu);
        for (int t = 1; t <= max_threads; t++) {
            double tv[8][64], tg[8][64], sbw = 0;
            int c = 0;
            const int calls = copies < 40 ? copies : 40;
            for (int r = 0; r < reps; r++) {
                for (int ki = 0; ki < nk; ki++) {
                    /* GEMV: walk through the pool so every call streams from DRAM */
                    tv[ki][r] = tg[ki][r] = 1.0;
                    if (only != 2) {
                        const double t0 = bn_time_s();
                        for (int i = 0; i < calls; i++, c = (c + 1) % copies)
                            run_split(kts[ki], (const uint8_t *)pool + (size_t)c * wbytes, sh.m, sh.k,
                                      q, (size_t)kp, xs, xu, 1, y, t);
                        tv[ki][r] = (bn_time_s() - t0) / calls;
                    }
                    /* GEMM: a different weight copy each time, from DRAM as
                     * in a prefill (each matrix is read once per batch) */
                    if (only != 1) {
                        const double t0 = bn_time_s();
                        run_split(kts[ki], (const uint8_t *)pool + (size_t)c * wbytes, sh.m, sh.k, q,
                                  (size_t)kp, xs, xu, ntok, y, t);
                        tg[ki][r] = bn_time_s() - t0;
                        c = (c + 1) % copies;
                    }
                }
                if (only != 2) { /* a 64 MiB read between the repetitions */
                    const size_t part = ((size_t)64 << 20) / 8, off = (size_t)r % (pool_bytes / 8 / part) * part;
                    const double g = stream_read_gbs(pool + off, part, t, 1);
                    if (g > sbw) sbw = g;
                }
            }
            for (int ki = 0; ki < nk; ki++) {
                const double gv = best(tv[ki], reps), gvm = median(tv[ki], reps);
                const double gg = best(tg[ki], reps), ggm = median(tg[ki], reps);
                printf("%-8s %-22s %dT", labels[ki], sh.name, t);
                if (only != 2)
                    printf("  GEMV %7.1f us %5.1f GB/s (%3.0f%% of read %4.1f; median %5.1f)", gv * 1e6,
                           (double)wbytes / gv / 1e9, 100.0 * (double)wbytes / gv / 1e9 / sbw, sbw,
                           (double)wbytes / gvm / 1e9);
                if (only != 1)
                    printf("  GEMM n=%d %7.2f ms %5.0f GMAC/s (median %5.0f)", ntok, gg * 1e3,
                           (double)sh.m * sh.k * ntok / gg / 1e9, (double)sh.m * sh.k * ntok / ggm / 1e9);
                printf("\n");
            }
        }
        free(x);
        bn_aligned_free(q);
        free(xs);
        free(xu);
        free(y);
    }

    for (int ti = 0; ti < nk && !quick; ti++) {
        const bn_kernels *kt = kts[ti];
        printf("\n== table %s: heads\n", labels[ti]);
        /* the tied head, F16 [128256, 2560], one token: bandwidth bound */
        if (!quick) {
            const int V = 128256, E = 2560;
            const size_t hb = (size_t)V * E * 2;
            uint16_t *emb = bn_aligned_alloc(64, hb);
            float *h = malloc(sizeof(float) * E * 4), *lg = malloc(sizeof(float) * (size_t)V * 4);
            if (emb && h && lg) {
                for (size_t i = 0; i < (size_t)V * E; i++) emb[i] = bn_f32_to_f16((float)((int)(rnd() % 2001) - 1000) / 20000.0f);
                for (int i = 0; i < E * 4; i++) h[i] = (float)((int)(rnd() % 2001) - 1000) / 100.0f;
                for (int t = 1; t <= max_threads; t++) {
                    double th[16];
                    const int hr = reps < 16 ? reps : 16;
                    for (int r = 0; r < hr; r++) {
                        const double t0 = bn_time_s();
#pragma omp parallel num_threads(t)
                        {
                            const int i = omp_get_thread_num(), T = omp_get_num_threads();
                            kt->head(emb, BN_TYPE_F16, E, h, E, 1, lg, V, (int)((long)V * i / T), (int)((long)V * (i + 1) / T));
                        }
                        th[r] = bn_time_s() - t0;
                    }
                    const double m = best(th, hr);
                    printf("head F16 128256x2560 %dT  1 token %7.2f ms %6.1f GB/s (%3.0f%% of read bw)\n", t,
                           m * 1e3, (double)hb / m / 1e9, 100.0 * (double)hb / m / 1e9 / bw[t]);
                }
            }
            /* quantized heads: 1024 distinct rows quantized, then repeated */
            const int bits_list[3] = {8, 6, 4};
            for (int bi = 0; bi < 3 && emb && h && lg && kt->qhead; bi++) {
                bn_qhead Q = {.bits = bits_list[bi], .n_vocab = V, .n_embd = E,
                              .nblk = bn_pad_k(E) / BN_QH_BLOCK,
                              .row_bytes = bn_qhead_row_bytes(bits_list[bi], E)};
                uint16_t *sc = bn_aligned_alloc(64, sizeof(uint16_t) * (size_t)Q.nblk * V);
                uint8_t *cd = bn_aligned_alloc(64, Q.row_bytes * (size_t)V);
                int8_t *hq = bn_aligned_alloc(64, (size_t)bn_pad_k(E));
                float hs, row[2560];
                if (!sc || !cd || !hq) break;
                for (int v = 0; v < V; v++) {
                    if (v < 1024) {
                        bn_f16_to_f32_row(emb + (size_t)v * E, row, (size_t)E);
                        bn_qhead_quantize_row(Q.bits, row, E, sc + (size_t)v * Q.nblk, cd + (size_t)v * Q.row_bytes);
                    } else {
                        memcpy(sc + (size_t)v * Q.nblk, sc + (size_t)(v % 1024) * Q.nblk, sizeof(uint16_t) * (size_t)Q.nblk);
                        memcpy(cd + (size_t)v * Q.row_bytes, cd + (size_t)(v % 1024) * Q.row_bytes, Q.row_bytes);
                    }
                }
                Q.scales = sc;
                Q.codes = cd;
                const double qb = (double)Q.row_bytes * V + 2.0 * Q.nblk * V;
                for (int t = 1; t <= max_threads; t++) {
                    double th[16];
                    const int hr = reps < 16 ? reps : 16;
                    for (int r = 0; r < hr; r++) {
                        const double t0 = bn_time_s();
                        kt->quantize_act(h, (size_t)E, E, 1, hq, (size_t)bn_pad_k(E), &hs, NULL);
#pragma omp parallel num_threads(t)
                        {
                            const int i = omp_get_thread_num(), T = omp_get_num_threads();
                            kt->qhead(&Q, hq, (size_t)bn_pad_k(E), &hs, 1, lg, V, (int)((long)V * i / T), (int)((long)V * (i + 1) / T));
                        }
                        th[r] = bn_time_s() - t0;
                    }
                    const double m = best(th, hr);
                    printf("head Q%d (f16 scales/64) %dT  1 token %7.2f ms %6.1f GB/s (%3.0f%% of read bw), %.0f MB\n",
                           Q.bits, t, m * 1e3, qb / m / 1e9, 100.0 * qb / m / 1e9 / bw[t], qb / 1e6);
                }
                bn_aligned_free(sc);
                bn_aligned_free(cd);
                bn_aligned_free(hq);
            }
            bn_aligned_free(emb);
            free(h);
            free(lg);
        }
    }
    bn_aligned_free(pool);
    return 0;
}
