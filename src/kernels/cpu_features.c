/* cpu_features.c — runtime x86 feature detection: cpuid says what the CPU
 * has, xgetbv says whether the OS saves the YMM/ZMM/opmask state (without
 * it the instructions fault even when cpuid lists them). */
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xcr0(void) {
    uint32_t lo, hi;
    /* xgetbv by opcode bytes would also do; the mnemonic needs no -mxsave */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

void bn_cpu_detect(bn_cpu_features *f) {
    memset(f, 0, sizeof *f);
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    const unsigned max_leaf = a;
    __cpuid(1, a, b, c, d);
    const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return;
    const uint64_t x = xcr0();
    const bool ymm_ok = (x & 0x6) == 0x6;   /* SSE + AVX state               */
    const bool zmm_ok = (x & 0xe6) == 0xe6; /* + opmask, ZMM0-15 hi, ZMM16-31 */
    if (!ymm_ok) return;
    f->fma = (c >> 12) & 1;
    f->f16c = (c >> 29) & 1;
    if (max_leaf < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    f->avx2 = (b >> 5) & 1;
    f->gfni = (c >> 8) & 1;
    if (zmm_ok) {
        f->avx512f = (b >> 16) & 1;
        f->avx512dq = (b >> 17) & 1;
        f->avx512bw = (b >> 30) & 1;
        f->avx512vl = (b >> 31) & 1;
        f->avx512vbmi = (c >> 1) & 1;
        f->avx512vnni = (c >> 11) & 1;
    }
    unsigned max_sub = a;
    if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        f->avx_vnni = (a >> 4) & 1;
    }
}

#else

void bn_cpu_detect(bn_cpu_features *f) { memset(f, 0, sizeof *f); }

#endif
