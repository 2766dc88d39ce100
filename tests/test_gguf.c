/* test_gguf.c — GGUF writer -> reader round trip (every metadata value type,
 * every tensor type), v2 reading, and one crafted bad file per check. */
#include <math.h>
#include <string.h>

#include "formats/gguf.h"
#include "harness.h"

/* ------------------------------------------------------------- utilities */

static uint32_t rng_state = 12345;
static uint8_t rnd8(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (uint8_t)(rng_state >> 24);
}

static bool str_eq(bn_gguf_str s, const char *c) { return s.len == strlen(c) && memcmp(s.data, c, s.len) == 0; }

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, 512, "%s/%s", bn_test_tmpdir(), name);
    return b;
}

/* Parses an exact-size heap copy (so ASan sees any over-read); *copy must
 * be freed after the handle. */
static bn_status parse_copy(const uint8_t *p, size_t n, const char *name, bn_gguf **g, uint8_t **copy) {
    *copy = malloc(n ? n : 1);
    if (n) memcpy(*copy, p, n);
    return bn_gguf_parse(*copy, n, name, g);
}

/* ----------------------------------------------------- round trip sample */

typedef struct sample_tensor {
    const char *name;
    uint32_t    type;
    uint32_t    n_dims;
    uint64_t    ne[4];
    uint8_t    *data;
    uint64_t    nbytes;
} sample_tensor;

static sample_tensor tensors[] = {
    {"f32", BN_TYPE_F32, 2, {3, 5}, NULL, 0},
    {"f16", BN_TYPE_F16, 2, {7, 2}, NULL, 0},
    {"bf16", BN_TYPE_BF16, 3, {4, 3, 2}, NULL, 0},
    {"i8", BN_TYPE_I8, 1, {9}, NULL, 0},
    {"i16", BN_TYPE_I16, 2, {5, 3}, NULL, 0},
    {"i32", BN_TYPE_I32, 1, {6}, NULL, 0},
    {"i64", BN_TYPE_I64, 1, {4}, NULL, 0},
    {"f64", BN_TYPE_F64, 2, {3, 2}, NULL, 0},
    {"q8_0", BN_TYPE_Q8_0, 2, {64, 2}, NULL, 0},
    {"q6_k", BN_TYPE_Q6_K, 1, {256}, NULL, 0},
    {"tq1_0", BN_TYPE_TQ1_0, 2, {256, 2}, NULL, 0},
    {"tq2_0", BN_TYPE_TQ2_0, 4, {512, 1, 1, 1}, NULL, 0},
    {"blk.0.attn_q.weight", BN_TYPE_I2_S, 2, {128, 3}, NULL, 0},
};
#define N_TENSORS (sizeof tensors / sizeof tensors[0])

static void make_tensor_data(void) {
    for (size_t i = 0; i < N_TENSORS; i++) {
        sample_tensor *t = &tensors[i];
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) n *= t->ne[d];
        CHECK(bn_type_nbytes((bn_type)t->type, n, &t->nbytes));
        t->data = malloc(t->nbytes);
        for (uint64_t b = 0; b < t->nbytes; b++) t->data[b] = rnd8();
    }
    /* sizes from the type table, spelled out: a wrong table fails here */
    CHECK(tensors[8].nbytes == 4 * 34);        /* Q8_0 128 elements */
    CHECK(tensors[9].nbytes == 210);           /* Q6_K 256 */
    CHECK(tensors[10].nbytes == 2 * 54);       /* TQ1_0 512 */
    CHECK(tensors[11].nbytes == 2 * 66);       /* TQ2_0 512 */
    CHECK(tensors[12].nbytes == 384 / 4 + 32); /* I2_S: n/4 + 32 */
}

static const uint8_t  a_u8[] = {0, 1, 255};
static const int8_t   a_i8[] = {-128, 0, 127};
static const uint16_t a_u16[] = {0, 65535};
static const int16_t  a_i16[] = {-32768, 32767, -1};
static const uint32_t a_u32[] = {0, 4294967295u, 7};
static const int32_t  a_i32[] = {-2147483647 - 1, 2147483647, 0, -5};
static const float    a_f32[] = {1.5f, -0.0f, 3.4e38f};
static const uint8_t  a_bool[] = {1, 0, 1, 1};
static const uint64_t a_u64[] = {UINT64_MAX, 0, 1ull << 40};
static const int64_t  a_i64[] = {INT64_MIN, INT64_MAX, -3};
static const double   a_f64[] = {1e-300, -2.5, 1e300};
static const char    *a_str[] = {"alpha", "", "g\xc3\xa9n\xc3\xa9ral", "with\0nul"};
static const uint64_t a_str_len[] = {5, 0, 10, 8};

static const int32_t n0[] = {1, 2, 3}, n2[] = {4};

/* Adds every metadata value type to w (and the bitnet architecture). */
static void add_metadata(bn_gguf_writer *w) {
    bn_gguf_value v;
    CHECK_OK(bn_gguf_writer_add_str(w, "general.architecture", "bitnet-b1.58"));
#define SCALAR(key, T, field, val) do { memset(&v, 0, sizeof v); v.type = T; v.v.field = val; \
        CHECK_OK(bn_gguf_writer_add_kv(w, key, &v)); } while (0)
    SCALAR("t.u8", BN_GGUF_UINT8, u8, 200);
    SCALAR("t.i8", BN_GGUF_INT8, i8, -100);
    SCALAR("t.u16", BN_GGUF_UINT16, u16, 60000);
    SCALAR("t.i16", BN_GGUF_INT16, i16, -30000);
    CHECK_OK(bn_gguf_writer_add_u32(w, "t.u32", 4000000000u));
    SCALAR("t.i32", BN_GGUF_INT32, i32, -2000000000);
    CHECK_OK(bn_gguf_writer_add_f32(w, "t.f32", 3.14159274f));
    SCALAR("t.bool", BN_GGUF_BOOL, b, true);
    SCALAR("t.bool_false", BN_GGUF_BOOL, b, false);
    SCALAR("t.u64", BN_GGUF_UINT64, u64, (1ull << 60) + 5);
    SCALAR("t.i64", BN_GGUF_INT64, i64, -(1ll << 60));
    SCALAR("t.f64", BN_GGUF_FLOAT64, f64, 2.718281828459045);
#undef SCALAR
    CHECK_OK(bn_gguf_writer_add_str(w, "t.str", "h\xc3\xa9llo, world"));
    CHECK_OK(bn_gguf_writer_add_str(w, "t.str_empty", ""));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_u8", BN_GGUF_UINT8, a_u8, 3));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_i8", BN_GGUF_INT8, a_i8, 3));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_u16", BN_GGUF_UINT16, a_u16, 2));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_i16", BN_GGUF_INT16, a_i16, 3));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_u32", BN_GGUF_UINT32, a_u32, 3));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_i32", BN_GGUF_INT32, a_i32, 4));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_f32", BN_GGUF_FLOAT32, a_f32, 3));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_bool", BN_GGUF_BOOL, a_bool, 4));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_u64", BN_GGUF_UINT64, a_u64, 3));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_i64", BN_GGUF_INT64, a_i64, 3));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_f64", BN_GGUF_FLOAT64, a_f64, 3));
    CHECK_OK(bn_gguf_writer_add_str_arr(w, "t.a_str", a_str, a_str_len, 4));
    CHECK_OK(bn_gguf_writer_add_str_arr(w, "t.a_str_strlen", a_str, NULL, 3));
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_empty", BN_GGUF_UINT32, NULL, 0));
    CHECK_OK(bn_gguf_writer_add_str_arr(w, "t.a_str_empty", NULL, NULL, 0));
    /* [[1,2,3],[],[4]] of i32, and [["x","yy"],[]] of strings */
    bn_gguf_value inner[3] = {
        {.type = BN_GGUF_ARRAY, .v.arr = {BN_GGUF_INT32, 3, n0}},
        {.type = BN_GGUF_ARRAY, .v.arr = {BN_GGUF_INT32, 0, NULL}},
        {.type = BN_GGUF_ARRAY, .v.arr = {BN_GGUF_INT32, 1, n2}},
    };
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_nested", BN_GGUF_ARRAY, inner, 3));
    bn_gguf_str xs[2] = {{1, "x"}, {2, "yy"}};
    bn_gguf_value sinner[2] = {
        {.type = BN_GGUF_ARRAY, .v.arr = {BN_GGUF_STRING, 2, xs}},
        {.type = BN_GGUF_ARRAY, .v.arr = {BN_GGUF_STRING, 0, NULL}},
    };
    CHECK_OK(bn_gguf_writer_add_arr(w, "t.a_nested_str", BN_GGUF_ARRAY, sinner, 2));
    /* 8 levels of arrays (the limit): [[[[[[[[7]]]]]]]] */
    static const uint8_t seven = 7;
    bn_gguf_value lv[8];
    lv[7] = (bn_gguf_value){.type = BN_GGUF_ARRAY, .v.arr = {BN_GGUF_UINT8, 1, &seven}};
    for (int i = 6; i >= 0; i--) lv[i] = (bn_gguf_value){.type = BN_GGUF_ARRAY, .v.arr = {BN_GGUF_ARRAY, 1, &lv[i + 1]}};
    CHECK_OK(bn_gguf_writer_add_kv(w, "t.a_deep8", &lv[0]));
    /* the writer deep-copied: scribbling on the sources must not matter */
    lv[7].v.arr.n = 99;
    xs[0].len = 99;
    inner[0].v.arr.n = 99;
}

static bool scalar_arr_eq(const bn_gguf_value *v, bn_gguf_vtype et, const void *data, uint64_t n) {
    return v && v->type == BN_GGUF_ARRAY && v->v.arr.elem_type == et && v->v.arr.n == n &&
           memcmp(v->v.arr.data, data, n * bn_gguf_vtype_size(et)) == 0;
}

static void check_metadata(const bn_gguf *g) {
    const bn_gguf_value *v;
#define SCALAR(key, T, field, val) do { v = bn_gguf_find(g, key); \
        CHECK_MSG(v && v->type == T && v->v.field == (val), "%s", key); } while (0)
    SCALAR("t.u8", BN_GGUF_UINT8, u8, 200);
    SCALAR("t.i8", BN_GGUF_INT8, i8, -100);
    SCALAR("t.u16", BN_GGUF_UINT16, u16, 60000);
    SCALAR("t.i16", BN_GGUF_INT16, i16, -30000);
    SCALAR("t.u32", BN_GGUF_UINT32, u32, 4000000000u);
    SCALAR("t.i32", BN_GGUF_INT32, i32, -2000000000);
    SCALAR("t.f32", BN_GGUF_FLOAT32, f32, 3.14159274f);
    SCALAR("t.bool", BN_GGUF_BOOL, b, true);
    SCALAR("t.bool_false", BN_GGUF_BOOL, b, false);
    SCALAR("t.u64", BN_GGUF_UINT64, u64, (1ull << 60) + 5);
    SCALAR("t.i64", BN_GGUF_INT64, i64, -(1ll << 60));
    SCALAR("t.f64", BN_GGUF_FLOAT64, f64, 2.718281828459045);
#undef SCALAR
    v = bn_gguf_find(g, "t.str");
    CHECK(v && v->type == BN_GGUF_STRING && str_eq(v->v.str, "h\xc3\xa9llo, world"));
    v = bn_gguf_find(g, "t.str_empty");
    CHECK(v && v->type == BN_GGUF_STRING && v->v.str.len == 0);
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_u8"), BN_GGUF_UINT8, a_u8, 3));
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_i8"), BN_GGUF_INT8, a_i8, 3));
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_u16"), BN_GGUF_UINT16, a_u16, 2));
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_i16"), BN_GGUF_INT16, a_i16, 3));
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_u32"), BN_GGUF_UINT32, a_u32, 3));
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_i32"), BN_GGUF_INT32, a_i32, 4));
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_f32"), BN_GGUF_FLOAT32, a_f32, 3));
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_bool"), BN_GGUF_BOOL, a_bool, 4));
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_u64"), BN_GGUF_UINT64, a_u64, 3));
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_i64"), BN_GGUF_INT64, a_i64, 3));
    CHECK(scalar_arr_eq(bn_gguf_find(g, "t.a_f64"), BN_GGUF_FLOAT64, a_f64, 3));
    v = bn_gguf_find(g, "t.a_str");
    CHECK(v && v->type == BN_GGUF_ARRAY && v->v.arr.elem_type == BN_GGUF_STRING && v->v.arr.n == 4);
    for (uint64_t i = 0; i < 4; i++) {
        bn_gguf_str s;
        CHECK(bn_gguf_arr_str(v, i, &s) && s.len == a_str_len[i] && memcmp(s.data, a_str[i], s.len) == 0);
    }
    bn_gguf_str s;
    CHECK(!bn_gguf_arr_str(v, 4, &s));
    v = bn_gguf_find(g, "t.a_str_strlen");
    CHECK(v && v->v.arr.n == 3 && bn_gguf_arr_str(v, 2, &s) && str_eq(s, "g\xc3\xa9n\xc3\xa9ral"));
    v = bn_gguf_find(g, "t.a_empty");
    CHECK(v && v->type == BN_GGUF_ARRAY && v->v.arr.elem_type == BN_GGUF_UINT32 && v->v.arr.n == 0);
    v = bn_gguf_find(g, "t.a_str_empty");
    CHECK(v && v->type == BN_GGUF_ARRAY && v->v.arr.elem_type == BN_GGUF_STRING && v->v.arr.n == 0);
    v = bn_gguf_find(g, "t.a_nested");
    CHECK(v && v->type == BN_GGUF_ARRAY && v->v.arr.elem_type == BN_GGUF_ARRAY && v->v.arr.n == 3);
    if (v && v->v.arr.n == 3) {
        const bn_gguf_value *in = v->v.arr.data;
        CHECK(scalar_arr_eq(&in[0], BN_GGUF_INT32, n0, 3));
        CHECK(in[1].type == BN_GGUF_ARRAY && in[1].v.arr.elem_type == BN_GGUF_INT32 && in[1].v.arr.n == 0);
        CHECK(scalar_arr_eq(&in[2], BN_GGUF_INT32, n2, 1));
        int64_t x;
        CHECK(bn_gguf_arr_int(&in[0], 2, &x) && x == 3);
        CHECK(!bn_gguf_arr_int(&in[0], 3, &x));
    }
    v = bn_gguf_find(g, "t.a_nested_str");
    CHECK(v && v->type == BN_GGUF_ARRAY && v->v.arr.elem_type == BN_GGUF_ARRAY && v->v.arr.n == 2);
    if (v && v->v.arr.n == 2) {
        const bn_gguf_value *in = v->v.arr.data;
        CHECK(in[0].v.arr.elem_type == BN_GGUF_STRING && in[0].v.arr.n == 2);
        CHECK(bn_gguf_arr_str(&in[0], 1, &s) && str_eq(s, "yy"));
        CHECK(bn_gguf_arr_str(&in[0], 0, &s) && str_eq(s, "x"));
        CHECK(in[1].v.arr.elem_type == BN_GGUF_STRING && in[1].v.arr.n == 0);
    }
    v = bn_gguf_find(g, "t.a_deep8");
    int depth = 0;
    while (v && v->type == BN_GGUF_ARRAY && v->v.arr.n == 1 && v->v.arr.elem_type == BN_GGUF_ARRAY) {
        v = v->v.arr.data;
        depth++;
    }
    CHECK(depth == 7 && v && v->v.arr.elem_type == BN_GGUF_UINT8 && v->v.arr.n == 1 &&
          ((const uint8_t *)v->v.arr.data)[0] == 7);
    /* typed getters */
    uint32_t u32;
    uint64_t u64;
    float f;
    bool b;
    char buf[8];
    CHECK(bn_gguf_get_u32(g, "t.u8", &u32) && u32 == 200);
    CHECK(bn_gguf_get_u32(g, "t.u32", &u32) && u32 == 4000000000u);
    CHECK(!bn_gguf_get_u32(g, "t.i8", &u32));  /* negative */
    CHECK(!bn_gguf_get_u32(g, "t.u64", &u32)); /* does not fit */
    CHECK(bn_gguf_get_u64(g, "t.u64", &u64) && u64 == (1ull << 60) + 5);
    CHECK(!bn_gguf_get_u32(g, "t.str", &u32));
    CHECK(!bn_gguf_get_u32(g, "absent", &u32));
    CHECK(bn_gguf_get_f32(g, "t.f32", &f) && f == 3.14159274f);
    CHECK(bn_gguf_get_bool(g, "t.bool", &b) && b);
    CHECK(bn_gguf_get_str(g, "t.str", buf, sizeof buf) && strcmp(buf, "h\xc3\xa9llo,") == 0); /* truncated */
    CHECK(!bn_gguf_get_str(g, "t.u8", buf, sizeof buf));
}

static void write_sample(const char *path, uint32_t align) {
    bn_gguf_writer *w;
    CHECK_OK(bn_gguf_writer_create(&w));
    if (align != 32) bn_gguf_writer_set_alignment(w, align);
    add_metadata(w);
    for (size_t i = 0; i < N_TENSORS; i++) {
        sample_tensor *t = &tensors[i];
        CHECK_OK(bn_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes));
    }
    CHECK_OK(bn_gguf_writer_write(w, path));
    bn_gguf_writer_free(w);
}

static void check_sample(const bn_gguf *g, uint32_t align, size_t file_size) {
    CHECK(bn_gguf_version(g) == 3);
    CHECK(bn_gguf_alignment(g) == align);
    CHECK(bn_gguf_is_bitnet(g));
    CHECK(bn_gguf_data_offset(g) % align == 0);
    uint32_t al;
    CHECK(align == 32 ? bn_gguf_find(g, "general.alignment") == NULL
                      : bn_gguf_get_u32(g, "general.alignment", &al) && al == align);
    check_metadata(g);
    CHECK(bn_gguf_n_tensors(g) == N_TENSORS);
    const uint8_t *base = bn_gguf_tensor_at(g, 0) ? bn_gguf_tensor_at(g, 0)->data - bn_gguf_tensor_at(g, 0)->offset
                                                     - bn_gguf_data_offset(g) : NULL;
    uint64_t end = 0;
    for (size_t i = 0; i < N_TENSORS; i++) {
        const sample_tensor *want = &tensors[i];
        const bn_gguf_tensor *t = bn_gguf_find_tensor(g, want->name);
        CHECK_MSG(t && t == bn_gguf_tensor_at(g, i), "%s", want->name);
        if (!t) continue;
        CHECK(t->type == want->type && t->n_dims == want->n_dims);
        for (uint32_t d = 0; d < 4; d++) CHECK(t->ne[d] == (d < want->n_dims ? want->ne[d] : 1));
        CHECK(t->nbytes == want->nbytes);
        CHECK_MSG(memcmp(t->data, want->data, want->nbytes) == 0, "%s data", want->name);
        CHECK_MSG(t->offset % align == 0 && (uint64_t)(t->data - base) % align == 0, "%s offset %llu", want->name,
                  (unsigned long long)t->offset);
        CHECK(t->offset >= end); /* in order, no overlap */
        end = t->offset + t->nbytes;
    }
    /* the last tensor is padded too (ggml reads the padded data section) */
    CHECK(file_size == bn_gguf_data_offset(g) + (end + align - 1) / align * align);
    CHECK(bn_gguf_find_tensor(g, "absent") == NULL);
}

static void test_round_trip(void) {
    static const uint32_t aligns[] = {32, 64};
    for (size_t a = 0; a < 2; a++) {
        const char *path = tmp_path(aligns[a] == 32 ? "all32.gguf" : "all64.gguf");
        write_sample(path, aligns[a]);
        bn_gguf *g = NULL;
        CHECK_OK(bn_gguf_open(path, &g));
        if (!g) continue;
        size_t size;
        uint8_t *bytes = bn_test_read(path, &size);
        check_sample(g, aligns[a], size);

        /* copy every kv and tensor of the parsed file (zero-copy values,
         * nested arrays included) into a new writer: same bytes again */
        bn_gguf_writer *w;
        CHECK_OK(bn_gguf_writer_create(&w));
        for (uint64_t i = 0; i < bn_gguf_n_kv(g); i++) {
            const bn_gguf_kv *kv = bn_gguf_kv_at(g, i);
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.data);
            CHECK_OK(bn_gguf_writer_add_kv(w, key, &kv->value));
        }
        for (uint64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
            const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
            CHECK_OK(bn_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes));
        }
        const char *copy = tmp_path("copy.gguf");
        CHECK_OK(bn_gguf_writer_write(w, copy));
        bn_gguf_writer_free(w);
        size_t csize;
        uint8_t *cbytes = bn_test_read(copy, &csize);
        CHECK_MSG(bytes && cbytes && csize == size && memcmp(bytes, cbytes, size) == 0,
                  "rewrite differs (%zu vs %zu bytes)", size, csize);
        fprintf(stderr, "   alignment %u: %zu bytes, %llu keys, %zu tensors, data at %llu\n", aligns[a], size,
                (unsigned long long)bn_gguf_n_kv(g), N_TENSORS, (unsigned long long)bn_gguf_data_offset(g));
        free(cbytes);
        free(bytes);
        bn_gguf_free(g);
    }
}

/* Expected bytes of a tiny file, spelled out by hand: pins the encoding. */
static void test_exact_bytes(void) {
    bn_gguf_writer *w;
    CHECK_OK(bn_gguf_writer_create(&w));
    CHECK_OK(bn_gguf_writer_add_u32(w, "a", 0x01020304));
    static const uint16_t h = 0x3c00; /* 1.0 in f16 */
    uint64_t ne[1] = {1};
    CHECK_OK(bn_gguf_writer_add_tensor(w, "t", BN_TYPE_F16, 1, ne, &h, 2));
    const char *path = tmp_path("tiny.gguf");
    CHECK_OK(bn_gguf_writer_write(w, path));
    bn_gguf_writer_free(w);
    static const uint8_t want[] = {
        'G', 'G', 'U', 'F', 3, 0, 0, 0,                     /* magic, version 3 */
        1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,     /* 1 tensor, 1 kv */
        1, 0, 0, 0, 0, 0, 0, 0, 'a', 4, 0, 0, 0, 4, 3, 2, 1, /* "a": u32 */
        1, 0, 0, 0, 0, 0, 0, 0, 't', 1, 0, 0, 0,            /* "t", 1 dim */
        1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,                 /* ne 1, F16 */
        0, 0, 0, 0, 0, 0, 0, 0,                             /* offset 0 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* pad to 96 */
        0x00, 0x3c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* data + pad */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    size_t n;
    uint8_t *got = bn_test_read(path, &n);
    CHECK_MSG(got && n == sizeof want && memcmp(got, want, n) == 0, "tiny file: %zu bytes, want %zu", n, sizeof want);
    free(got);
}

/* ------------------------------------------------------- crafted files */

typedef struct bb {
    uint8_t *p;
    size_t   n, cap;
} bb;

static void put(bb *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(bb *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bb *b, uint64_t v) { put(b, &v, 8); }
static void put_str(bb *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_hdr(bb *b, uint32_t version, uint64_t n_t, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_t);
    put_u64(b, n_kv);
}
static void put_kv_str(bb *b, const char *k, const char *v) {
    put_str(b, k);
    put_u32(b, BN_GGUF_STRING);
    put_str(b, v);
}
static void put_kv_u32(bb *b, const char *k, uint32_t v) {
    put_str(b, k);
    put_u32(b, BN_GGUF_UINT32);
    put_u32(b, v);
}
static void put_tinfo(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) put_u64(b, ne[i]);
    put_u32(b, type);
    put_u64(b, off);
}
static void put_pad(bb *b, size_t align) {
    static const uint8_t z[64];
    if (b->n % align) put(b, z, align - b->n % align);
}
static void put_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) put(b, "", 1);
}

/* One-tensor file: arch kv, tensor `name` with dims/type/offset, `data` bytes. */
static void craft1(bb *b, const char *arch, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off,
                   size_t data) {
    put_hdr(b, 3, 1, 1);
    put_kv_str(b, "general.architecture", arch);
    put_tinfo(b, "w", n_dims, ne, type, off);
    put_pad(b, 32);
    put_zeros(b, data);
}

static int n_bad;

static void expect_fail(bb *b, bn_status want, const char *needle) {
    bn_gguf *g = NULL;
    uint8_t *copy;
    bn_status s = parse_copy(b->p, b->n, "bad.gguf", &g, &copy);
    const char *msg = bn_last_error();
    n_bad++;
    CHECK_MSG(s != BN_OK && g == NULL, "expected failure containing '%s'", needle);
    if (s != BN_OK) {
        CHECK_MSG(s == want, "status %s, want %s (%s)", bn_status_name(s), bn_status_name(want), msg);
        CHECK_MSG(strncmp(msg, "bad.gguf: ", 10) == 0 && strstr(msg, needle), "message '%s' lacks '%s'", msg, needle);
        CHECK_MSG(!strchr(msg, '\n'), "multi-line message '%s'", msg);
        fprintf(stderr, "   ok: %s\n", msg);
    }
    bn_gguf_free(g);
    free(copy);
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void test_v2_and_versions(void) {
    bb b = {0};
    uint64_t ne[2] = {4, 2};
    /* v2: the same layout as v3 (64-bit counts and lengths) */
    put_hdr(&b, 2, 1, 2);
    put_kv_str(&b, "general.architecture", "llama");
    put_kv_u32(&b, "llama.block_count", 7);
    put_tinfo(&b, "w", 2, ne, BN_TYPE_F32, 0);
    put_pad(&b, 32);
    for (int i = 0; i < 8; i++) {
        float f = (float)i * 0.5f;
        put(&b, &f, 4);
    }
    bn_gguf *g = NULL;
    uint8_t *copy;
    CHECK_OK(parse_copy(b.p, b.n, "v2.gguf", &g, &copy));
    if (g) {
        uint32_t bc;
        CHECK(bn_gguf_version(g) == 2 && bn_gguf_alignment(g) == 32 && !bn_gguf_is_bitnet(g));
        CHECK(bn_gguf_get_u32(g, "llama.block_count", &bc) && bc == 7);
        const bn_gguf_tensor *t = bn_gguf_find_tensor(g, "w");
        float f;
        CHECK(t && t->nbytes == 32 && t->ne[0] == 4 && t->ne[1] == 2);
        if (t) memcpy(&f, t->data + 7 * 4, 4);
        CHECK(t && f == 3.5f);
        bn_gguf_free(g);
    }
    free(copy);
    free(b.p);
    b = (bb){0};

    put(&b, "GGUX", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 0);
    expect_fail(&b, BN_ERR_FORMAT, "not a GGUF file");
    put_hdr(&b, 1, 0, 0);
    expect_fail(&b, BN_ERR_UNSUPPORTED, "version 1 is not supported");
    put_hdr(&b, 4, 0, 0);
    expect_fail(&b, BN_ERR_FORMAT, "version 4 is not supported");
    put_hdr(&b, 3u << 24, 0, 0);
    expect_fail(&b, BN_ERR_UNSUPPORTED, "big-endian");
    put(&b, "GG", 2);
    expect_fail(&b, BN_ERR_FORMAT, "too short");
}

/* Every prefix of a valid file fails cleanly, except those that only cut
 * the padding after the last tensor's data. */
static void test_truncation(void) {
    bn_gguf_writer *w;
    CHECK_OK(bn_gguf_writer_create(&w));
    CHECK_OK(bn_gguf_writer_add_str(w, "general.architecture", "bitnet"));
    CHECK_OK(bn_gguf_writer_add_str_arr(w, "tok", a_str, a_str_len, 4));
    CHECK_OK(bn_gguf_writer_add_arr(w, "a", BN_GGUF_INT64, a_i64, 3));
    bn_gguf_value inner[2] = {{.type = BN_GGUF_ARRAY, .v.arr = {BN_GGUF_INT32, 3, n0}},
                              {.type = BN_GGUF_ARRAY, .v.arr = {BN_GGUF_INT32, 1, n2}}};
    CHECK_OK(bn_gguf_writer_add_arr(w, "nest", BN_GGUF_ARRAY, inner, 2));
    CHECK_OK(bn_gguf_writer_add_f32(w, "f", 1.0f));
    uint64_t ne[2] = {128, 1}, ne2[1] = {3};
    static uint8_t d1[64], d2[12];
    CHECK_OK(bn_gguf_writer_add_tensor(w, "q", BN_TYPE_I2_S, 2, ne, d1, 64));
    CHECK_OK(bn_gguf_writer_add_tensor(w, "n", BN_TYPE_F32, 1, ne2, d2, 12));
    const char *path = tmp_path("trunc.gguf");
    CHECK_OK(bn_gguf_writer_write(w, path));
    bn_gguf_writer_free(w);
    size_t size;
    uint8_t *full = bn_test_read(path, &size);
    if (!full) return;
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_parse(full, size, path, &g));
    const bn_gguf_tensor *last = g ? bn_gguf_tensor_at(g, 1) : NULL;
    size_t need = last ? (size_t)(bn_gguf_data_offset(g) + last->offset + last->nbytes) : size;
    bn_gguf_free(g);
    int wrong = 0, failed = 0;
    for (size_t len = 0; len < size; len++) {
        uint8_t *c = malloc(len ? len : 1);
        memcpy(c, full, len);
        bn_status s = bn_gguf_parse(c, len, "cut.gguf", &g);
        if (len < need) {
            failed++;
            if (s == BN_OK || strncmp(bn_last_error(), "cut.gguf: ", 10) != 0) wrong++;
        } else if (s != BN_OK) wrong++;
        bn_gguf_free(g);
        g = NULL;
        free(c);
    }
    CHECK_MSG(wrong == 0, "%d of %zu prefixes misbehaved", wrong, size);
    CHECK(failed > 200);
    fprintf(stderr, "   %zu prefixes: %d fail cleanly, %zu (padding cut only) parse\n", size, failed,
            size - (size_t)failed);
    free(full);
}

static void test_bad_counts_and_values(void) {
    bb b = {0};
    put_hdr(&b, 3, 0, 1ull << 60);
    expect_fail(&b, BN_ERR_FORMAT, "key-value count 1152921504606846976 cannot fit");
    put_hdr(&b, 3, UINT64_MAX, 0);
    expect_fail(&b, BN_ERR_FORMAT, "tensor count");
    put_hdr(&b, 3, 1000, 1);
    put_kv_u32(&b, "k", 1);
    put_zeros(&b, 100);
    expect_fail(&b, BN_ERR_FORMAT, "tensor count 1000 cannot fit");

    /* key name and string value lengths past the end */
    put_hdr(&b, 3, 0, 1);
    put_u64(&b, 1ull << 40);
    put(&b, "abcdefghijklmnop", 16);
    expect_fail(&b, BN_ERR_FORMAT, "key name (1099511627776 bytes at offset 32) extends past end of file (48 bytes)");
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "general.name");
    put_u32(&b, BN_GGUF_STRING);
    put_u64(&b, 500);
    put(&b, "short", 5);
    put_zeros(&b, 9);
    expect_fail(&b, BN_ERR_FORMAT, "key #0 'general.name': string (500 bytes");
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 13);
    put_zeros(&b, 9);
    expect_fail(&b, BN_ERR_FORMAT, "value type 13 is not a GGUF value type");
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "");
    put_u32(&b, BN_GGUF_UINT8);
    put_zeros(&b, 9);
    expect_fail(&b, BN_ERR_FORMAT, "empty key");

    /* arrays: element count overflow, counts that cannot fit, bad element type */
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, BN_GGUF_ARRAY);
    put_u32(&b, BN_GGUF_UINT64);
    put_u64(&b, 1ull << 62);
    put_zeros(&b, 16);
    expect_fail(&b, BN_ERR_FORMAT, "array of 4611686018427387904 u64 overflows");
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, BN_GGUF_ARRAY);
    put_u32(&b, BN_GGUF_UINT32);
    put_u64(&b, 1ull << 61);
    put_zeros(&b, 16);
    expect_fail(&b, BN_ERR_FORMAT, "array data");
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "tokens");
    put_u32(&b, BN_GGUF_ARRAY);
    put_u32(&b, BN_GGUF_STRING);
    put_u64(&b, 1ull << 59);
    put_zeros(&b, 16);
    expect_fail(&b, BN_ERR_FORMAT, "array of 576460752303423488 strings cannot fit");
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, BN_GGUF_ARRAY);
    put_u32(&b, 77);
    put_u64(&b, 1);
    put_zeros(&b, 16);
    expect_fail(&b, BN_ERR_FORMAT, "array element type 77");

    /* nesting: 9 levels of arrays */
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "deep");
    put_u32(&b, BN_GGUF_ARRAY);
    for (int i = 0; i < 8; i++) {
        put_u32(&b, BN_GGUF_ARRAY);
        put_u64(&b, 1);
    }
    put_u32(&b, BN_GGUF_UINT8);
    put_u64(&b, 1);
    put_zeros(&b, 1);
    expect_fail(&b, BN_ERR_FORMAT, "nested deeper than 8 levels");

    /* duplicate keys */
    put_hdr(&b, 3, 0, 3);
    put_kv_u32(&b, "a", 1);
    put_kv_u32(&b, "b", 1);
    put_kv_u32(&b, "a", 2);
    expect_fail(&b, BN_ERR_FORMAT, "key #2 'a': duplicate key (also key #0)");

    /* alignment: not a power of two, zero, wrong type */
    put_hdr(&b, 3, 0, 1);
    put_kv_u32(&b, "general.alignment", 48);
    expect_fail(&b, BN_ERR_FORMAT, "general.alignment = 48 is not a power of two");
    put_hdr(&b, 3, 0, 1);
    put_kv_u32(&b, "general.alignment", 0);
    expect_fail(&b, BN_ERR_FORMAT, "general.alignment = 0 is not a power of two");
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "general.alignment");
    put_u32(&b, BN_GGUF_UINT64);
    put_u64(&b, 64);
    expect_fail(&b, BN_ERR_FORMAT, "general.alignment has type u64, expected u32");
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "general.architecture");
    put_u32(&b, BN_GGUF_UINT32);
    put_u32(&b, 1);
    expect_fail(&b, BN_ERR_FORMAT, "general.architecture has type u32");

    /* a non-printable key is shown escaped, on one line */
    put_hdr(&b, 3, 0, 2);
    put_kv_u32(&b, "x\ny'", 1);
    put_kv_u32(&b, "x\ny'", 1);
    expect_fail(&b, BN_ERR_FORMAT, "key #1 'x\\x0ay\\x27': duplicate key");
}

static void test_bad_tensors(void) {
    bb b = {0};
    uint64_t ne4[1] = {4};
    /* a correct one first, so the helper itself is known good */
    craft1(&b, "llama", 1, ne4, BN_TYPE_F32, 0, 16);
    bn_gguf *g = NULL;
    uint8_t *copy;
    CHECK_OK(parse_copy(b.p, b.n, "good.gguf", &g, &copy));
    CHECK(g && bn_gguf_n_tensors(g) == 1 && bn_gguf_tensor_at(g, 0)->nbytes == 16);
    bn_gguf_free(g);
    free(copy);
    free(b.p);
    b = (bb){0};

    uint64_t ne128[1] = {128};
    craft1(&b, "llama", 1, ne128, 36, 0, 64);
    expect_fail(&b, BN_ERR_FORMAT, "type id 36 is not a ggml type; it means I2_S only in bitnet.cpp files, "
                                   "but general.architecture is 'llama'");
    craft1(&b, "bitnet-25", 1, ne128, 38, 0, 64);
    expect_fail(&b, BN_ERR_UNSUPPORTED, "tensor type TL1 (id 38) is not supported");
    craft1(&b, "llama", 1, ne128, 39, 0, 64);
    expect_fail(&b, BN_ERR_UNSUPPORTED, "tensor type MXFP4 (id 39) is not supported");
    craft1(&b, "llama", 1, ne128, 2, 0, 64);
    expect_fail(&b, BN_ERR_UNSUPPORTED, "tensor type Q4_0 (id 2)");
    craft1(&b, "llama", 1, ne128, 200, 0, 64);
    expect_fail(&b, BN_ERR_FORMAT, "tensor #0 'w': unknown tensor type id 200");
    craft1(&b, "llama", 1, ne128, BN_TYPE_U8, 0, 64); /* internal-only id */
    expect_fail(&b, BN_ERR_FORMAT, "unknown tensor type id 1000");

    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    craft1(&b, "llama", 5, ne5, BN_TYPE_F32, 0, 4);
    expect_fail(&b, BN_ERR_FORMAT, "5 dimensions (at most 4 supported)");
    uint64_t ne0[2] = {4, 0};
    craft1(&b, "llama", 2, ne0, BN_TYPE_F32, 0, 16);
    expect_fail(&b, BN_ERR_FORMAT, "dimension 1 is 0");
    uint64_t neo[3] = {1ull << 32, 1ull << 32, 2};
    craft1(&b, "llama", 3, neo, BN_TYPE_I8, 0, 16);
    expect_fail(&b, BN_ERR_FORMAT, "element count overflows at dimension 1");
    uint64_t ne63[2] = {1ull << 62, 2}; /* fits in u64 but not in ggml's int64 */
    craft1(&b, "llama", 2, ne63, BN_TYPE_I8, 0, 16);
    expect_fail(&b, BN_ERR_FORMAT, "element count overflows");
    uint64_t nebig[2] = {1ull << 31, 1ull << 31}; /* 2^62 F32 elements: bytes overflow */
    craft1(&b, "llama", 2, nebig, BN_TYPE_F32, 0, 16);
    expect_fail(&b, BN_ERR_FORMAT, "elements cannot be stored as F32");
    uint64_t ne33[2] = {33, 1};
    craft1(&b, "llama", 2, ne33, BN_TYPE_Q8_0, 0, 64);
    expect_fail(&b, BN_ERR_FORMAT, "row length 33 is not a multiple of the Q8_0 block size 32");
    uint64_t ne130[1] = {130};
    craft1(&b, "bitnet", 1, ne130, BN_TYPE_I2_S, 0, 96);
    expect_fail(&b, BN_ERR_FORMAT, "130 elements cannot be stored as I2_S");

    craft1(&b, "llama", 1, ne4, BN_TYPE_F32, 4, 64);
    expect_fail(&b, BN_ERR_FORMAT, "data offset 4 is not a multiple of the alignment 32");
    craft1(&b, "llama", 1, ne4, BN_TYPE_F32, 32, 40);
    expect_fail(&b, BN_ERR_FORMAT, "tensor #0 'w': data [offset 160, 16 bytes] extends past end of file (168 bytes)");
    craft1(&b, "llama", 1, ne4, BN_TYPE_F32, 0, 15);
    expect_fail(&b, BN_ERR_FORMAT, "data [offset 128, 16 bytes] extends past end of file (143 bytes)");
    craft1(&b, "llama", 1, ne4, BN_TYPE_F32, UINT64_MAX - 31, 16);
    expect_fail(&b, BN_ERR_FORMAT, "extends past end of file");

    /* alignment 64 from the kv applies to the offsets */
    put_hdr(&b, 3, 1, 1);
    put_kv_u32(&b, "general.alignment", 64);
    put_tinfo(&b, "w", 1, ne4, BN_TYPE_F32, 32);
    put_pad(&b, 64);
    put_zeros(&b, 128);
    expect_fail(&b, BN_ERR_FORMAT, "data offset 32 is not a multiple of the alignment 64");

    put_hdr(&b, 3, 2, 0);
    put_tinfo(&b, "blk.0.attn_q.weight", 1, ne4, BN_TYPE_F32, 0);
    put_tinfo(&b, "blk.0.attn_q.weight", 1, ne4, BN_TYPE_F32, 32);
    put_pad(&b, 32);
    put_zeros(&b, 64);
    expect_fail(&b, BN_ERR_FORMAT, "tensor #1 'blk.0.attn_q.weight': duplicate tensor name (also tensor #0)");
    put_hdr(&b, 3, 1, 0);
    put_str(&b, "weight");
    put_u32(&b, 1);
    put_u64(&b, 4);
    expect_fail(&b, BN_ERR_FORMAT, "tensor #0 'weight': tensor type (4 bytes at offset 50) extends past end of file");
}

static void test_writer_refuses(void) {
    bn_gguf_writer *w;
    CHECK_OK(bn_gguf_writer_create(&w));
    uint64_t ne[1] = {4};
    static const float d[16]; /* 64 bytes: enough for the I2_S tensor too */
    CHECK(bn_gguf_writer_add_tensor(w, "w", BN_TYPE_F32, 1, ne, d, 15) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "15 bytes given"));
    CHECK_OK(bn_gguf_writer_add_tensor(w, "w", BN_TYPE_F32, 1, ne, d, 16));
    CHECK(bn_gguf_writer_add_tensor(w, "w", BN_TYPE_F32, 1, ne, d, 16) == BN_ERR_INVALID_ARG);
    CHECK(bn_gguf_writer_add_tensor(w, "x", 36, 1, ne, d, 33) == BN_OK); /* I2_S: 4/4 + 32 */
    CHECK_OK(bn_gguf_writer_add_u32(w, "k", 1));
    CHECK(bn_gguf_writer_add_u32(w, "k", 2) == BN_ERR_INVALID_ARG && strstr(bn_last_error(), "duplicate key"));
    /* I2_S needs a bitnet architecture */
    CHECK(bn_gguf_writer_write(w, tmp_path("refused.gguf")) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "needs a bitnet general.architecture"));
    CHECK(bn_test_read(tmp_path("refused.gguf"), NULL) == NULL);
    CHECK(bn_test_read(tmp_path("refused.gguf.tmp"), NULL) == NULL);
    bn_gguf_writer_set_alignment(w, 48);
    CHECK_OK(bn_gguf_writer_add_str(w, "general.architecture", "bitnet"));
    CHECK(bn_gguf_writer_write(w, tmp_path("refused.gguf")) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "alignment 48 is not a power of two"));
    bn_gguf_writer_set_alignment(w, 128);
    CHECK_OK(bn_gguf_writer_write(w, tmp_path("ok128.gguf")));
    CHECK(bn_gguf_writer_write(w, "/nonexistent-dir/x.gguf") == BN_ERR_IO);
    CHECK(strstr(bn_last_error(), "/nonexistent-dir/x.gguf.tmp: cannot create"));
    bn_gguf_writer_free(w);
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open(tmp_path("ok128.gguf"), &g));
    CHECK(g && bn_gguf_alignment(g) == 128 && bn_gguf_find_tensor(g, "x") &&
          bn_gguf_find_tensor(g, "x")->offset == 128);
    bn_gguf_free(g);
    /* opening: the path names the file in the error */
    CHECK(bn_gguf_open(tmp_path("missing.gguf"), &g) == BN_ERR_IO && strstr(bn_last_error(), "missing.gguf"));
}

int main(void) {
    make_tensor_data();
    RUN(test_exact_bytes);
    RUN(test_round_trip);
    RUN(test_v2_and_versions);
    RUN(test_truncation);
    RUN(test_bad_counts_and_values);
    RUN(test_bad_tensors);
    RUN(test_writer_refuses);
    fprintf(stderr, "   %d crafted bad files rejected\n", n_bad);
    for (size_t i = 0; i < N_TENSORS; i++) free(tensors[i].data);
    return bn_test_finish("test_gguf");
}
