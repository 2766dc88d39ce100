/* test_core.c — f16/bf16 conversion, type table, errors, mmap. */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "harness.h"

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static void test_f16_exhaustive_roundtrip(void) {
    /* every finite f16 converts to f32 and back unchanged; NaNs stay NaN */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bn_f16_to_f32((uint16_t)h);
        uint16_t back = bn_f32_to_f16(f);
        if (isnan(f)) { if (!isnan(bn_f16_to_f32(back))) bad++; }
        else if (back != h) bad++;
    }
    CHECK_MSG(bad == 0, "%d f16 values did not round-trip", bad);
}

static void test_f16_rounding(void) {
    CHECK(bn_f32_to_f16(1.0f) == 0x3c00);
    CHECK(bn_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(bn_f32_to_f16(65520.0f) == 0x7c00);          /* ties to even -> Inf */
    CHECK(bn_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(bn_f32_to_f16(INFINITY) == 0x7c00);
    CHECK(bn_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK((bn_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (bn_f32_to_f16(NAN) & 0x3ff));
    /* 1 + 2^-11 is halfway between 1 and 1+2^-10: ties to even -> 1 */
    CHECK(bn_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);
    CHECK(bn_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01);
    CHECK(bn_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);  /* tie, odd -> up */
    /* subnormals */
    CHECK(bn_f32_to_f16(0x1p-24f) == 0x0001);
    CHECK(bn_f32_to_f16(0x1p-25f) == 0x0000);            /* tie to even (0) */
    CHECK(bn_f32_to_f16(0x1.8p-25f) == 0x0001);
    CHECK(bn_f32_to_f16(3 * 0x1p-25f) == 0x0002);        /* 1.5 ulp: tie -> even 2 */
    CHECK(bn_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(bn_f16_to_f32(0x8000) == 0.0f && signbit(bn_f16_to_f32(0x8000)));
}

static void test_bf16(void) {
    CHECK(bn_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(bits(bn_bf16_to_f32(0x3f80)) == bits(1.0f));
    /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even -> 1 */
    CHECK(bn_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);
    CHECK(bn_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);
    CHECK(bn_f32_to_bf16(INFINITY) == 0x7f80);
    CHECK(isnan(bn_bf16_to_f32(bn_f32_to_bf16(NAN))));
    CHECK(bn_f32_to_bf16(3.4028235e38f) == 0x7f80); /* FLT_MAX rounds to Inf */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bn_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && bn_f32_to_bf16(f) != h) bad++;
    }
    CHECK(bad == 0);
}

static void test_types(void) {
    uint64_t nb;
    CHECK(bn_type_nbytes(BN_TYPE_I2_S, 2560ull * 2560, &nb) && nb == 2560ull * 2560 / 4 + 32);
    CHECK(bn_type_nbytes(BN_TYPE_F16, 10, &nb) && nb == 20);
    CHECK(bn_type_nbytes(BN_TYPE_TQ2_0, 512, &nb) && nb == 2 * 66);
    CHECK(!bn_type_nbytes(BN_TYPE_TQ2_0, 100, &nb));
    CHECK(!bn_type_nbytes(BN_TYPE_F32, UINT64_MAX / 2, &nb));
    CHECK(!strcmp(bn_type_name(BN_TYPE_I2_S), "I2_S"));
    CHECK(bn_type_get((bn_type)77) == NULL);
}

static void test_errors_and_files(void) {
    bn_mmap m;
    bn_status st = bn_mmap_open("/nonexistent/file.gguf", true, &m);
    CHECK(st == BN_ERR_IO);
    CHECK(strstr(bn_last_error(), "/nonexistent/file.gguf") != NULL);
    CHECK(bn_malloc(BN_MAX_ALLOC + 1) == NULL);
    CHECK(strstr(bn_last_error(), "refusing") != NULL);
    CHECK_OK(bn_mmap_open(bn_test_src("CMakeLists.txt"), true, &m));
    CHECK(m.size > 100 && !memcmp(m.data, "cmake_minimum_required", 22));
    bn_mmap_close(&m);
}

int main(void) {
    RUN(test_f16_exhaustive_roundtrip);
    RUN(test_f16_rounding);
    RUN(test_bf16);
    RUN(test_types);
    RUN(test_errors_and_files);
    return bn_test_finish("test_core");
}
