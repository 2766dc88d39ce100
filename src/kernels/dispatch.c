/* dispatch.c — pick a kernel table by runtime CPU features. Detection is a
 * few cpuid instructions, so it is simply redone on each call (no cached
 * global state); callers pick their table once, at context creation. */
#include "kernels.h"

#include <string.h>

#include "core/core.h"

static const bn_kernels ref_table = {
    .name = "ref",
    .quantize_act = bn_ref_quantize_act,
    .tgemm = bn_ref_tgemm,
    .head = bn_ref_head,
    .qhead = bn_ref_qhead,
    .tgemm4 = bn_ref_tgemm4,
    .f16_to_f32 = bn_f16_to_f32_row,
    .f32_to_f16 = bn_f32_to_f16_row,
};

const bn_kernels *bn_kernels_ref(void) { return &ref_table; }

static bool has_avx2(const bn_cpu_features *f) { return f->avx2 && f->fma && f->f16c; }

static bool has_avx512(const bn_cpu_features *f) {
    return has_avx2(f) && f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq &&
           f->avx512vnni;
}

const bn_kernels *bn_kernels_by_name(const char *name) {
    if (!name) return NULL;
    bn_cpu_features f;
    bn_cpu_detect(&f);
    if (!strcmp(name, "ref")) return &ref_table;
    if (!strcmp(name, "avx2")) return has_avx2(&f) ? bn_kernels_avx2() : NULL;
    if (!strcmp(name, "avx512") || !strcmp(name, "avx512vnni"))
        return has_avx512(&f) ? bn_kernels_avx512() : NULL;
    return NULL;
}

const bn_kernels *bn_kernels_best(void) {
    const bn_kernels *k = bn_kernels_by_name("avx512");
    if (!k) k = bn_kernels_by_name("avx2");
    return k ? k : &ref_table;
}
