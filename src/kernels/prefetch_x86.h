/* prefetch_x86.h — software prefetch shared by the x86 kernel files (each
 * compiled with its own ISA flags; _mm_prefetch needs only SSE). */
#ifndef BN_KERNELS_PREFETCH_X86_H
#define BN_KERNELS_PREFETCH_X86_H

#include <stddef.h>
#include <stdint.h>
#include <immintrin.h>

/* Prefetch part `part` of `nparts` of the rows of the GEMM panel unpacked
 * next (rows [0, rows) at w, row stride rb, 128-element blocks [b0, b0 + nb)):
 * spread over the token tiles of the current panel, its DRAM / L3 latency
 * hides behind their arithmetic (unprefetched, the unpack's loads stalled for
 * ~10 % of the GEMM's time). */
static inline void bn_prefetch_panel(const uint8_t *w, size_t rb, int rows, int b0, int nb, int part,
                                     int nparts) {
    const int r0 = rows * part / nparts, r1 = rows * (part + 1) / nparts;
    for (int r = r0; r < r1; r++) {
        const char *p = (const char *)(w + (size_t)r * rb + 32 * (size_t)b0);
        for (int o = 0; o < 32 * nb; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
    }
}

#endif
