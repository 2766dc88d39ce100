/* test_safetensors.c — safetensors writer -> reader round trips, crafted bad
 * headers (each must fail with a message naming the file and the problem),
 * every truncated prefix of a valid file, folders and sharded checkpoints,
 * and the real hf-tiny fixtures. */
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "harness.h"

static const char *tmp_path(const char *rel) {
    static char ring[8][512];
    static int idx = 0;
    char *b = ring[idx++ % 8];
    snprintf(b, sizeof ring[0], "%s/%s", bn_test_tmpdir(), rel);
    return b;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    fputs(text, f);
    fclose(f);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

/* A safetensors image: 8-byte length, header text, `data_size` data bytes
 * (value i & 0xff). Caller frees. */
static uint8_t *image(const char *header, uint64_t hlen_override, size_t data_size, size_t *n) {
    size_t h = strlen(header);
    *n = 8 + h + data_size;
    uint8_t *b = malloc(*n);
    uint64_t hl = hlen_override ? hlen_override : h;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hl >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_size; i++) b[8 + h + i] = (uint8_t)i;
    return b;
}

/* Parse a crafted image, expect failure `want` with all `needles` in the
 * message (and always the file name). */
static void expect_bad(const char *header, uint64_t hlen_override, size_t data_size, bn_status want,
                       const char *needle) {
    size_t n;
    uint8_t *b = image(header, hlen_override, data_size, &n);
    bn_st_set *s = (bn_st_set *)1;
    bn_status st = bn_st_parse(b, n, "bad.safetensors", &s);
    const char *msg = bn_last_error();
    CHECK_MSG(st == want, "header %.80s: got %s (%s), want %s", header, bn_status_name(st), msg,
              bn_status_name(want));
    CHECK(s == NULL);
    CHECK_MSG(strstr(msg, "bad.safetensors") != NULL, "message lacks the file name: %s", msg);
    CHECK_MSG(strstr(msg, needle) != NULL, "message '%s' lacks '%s'", msg, needle);
    if (st == BN_OK) bn_st_free(s);
    free(b);
}

static void test_bad_headers(void) {
    const char *ok_entry = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    /* sanity: the base case parses */
    size_t n;
    uint8_t *b = image(ok_entry, 0, 8, &n);
    bn_st_set *s = NULL;
    CHECK_OK(bn_st_parse(b, n, "ok.safetensors", &s));
    CHECK(bn_st_count(s) == 1);
    bn_st_free(s);
    free(b);

    expect_bad(ok_entry, 1000, 8, BN_ERR_FORMAT, "runs past the end of the file");
    expect_bad(ok_entry, (uint64_t)1 << 62, 8, BN_ERR_FORMAT, "exceeds the limit");
    expect_bad(ok_entry, 100000001, 8, BN_ERR_FORMAT, "exceeds the limit");
    expect_bad("{\"a\": nope}", 0, 0, BN_ERR_FORMAT, "not valid JSON");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 0, 8, BN_ERR_FORMAT,
               "not valid JSON");
    expect_bad("{} x", 0, 0, BN_ERR_FORMAT, "not valid JSON");  /* trailing garbage */
    expect_bad("[1,2]", 0, 0, BN_ERR_FORMAT, "not a JSON object");
    expect_bad("\"str\"", 0, 0, BN_ERR_FORMAT, "not a JSON object");
    expect_bad("", 0, 0, BN_ERR_FORMAT, "header is empty");
    expect_bad("{\"a\":[1]}", 0, 0, BN_ERR_FORMAT, "entry is not an object");
    expect_bad("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, BN_ERR_FORMAT, "missing \"dtype\"");
    expect_bad("{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, BN_ERR_FORMAT,
               "\"dtype\" is not a string");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 0, 8, BN_ERR_FORMAT, "missing \"shape\"");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, 8, BN_ERR_FORMAT, "missing \"data_offsets\"");
    expect_bad("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 0, 2, BN_ERR_UNSUPPORTED,
               "unsupported dtype 'F8_E4M3'");
    expect_bad("{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, BN_ERR_UNSUPPORTED,
               "unsupported dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 7, BN_ERR_FORMAT,
               "past the end of the data section");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 16, BN_ERR_FORMAT,
               "span 8 bytes but dtype F32 and shape need 12");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 0, 16, BN_ERR_FORMAT,
               "begin 8 > end 0");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 0, 8, BN_ERR_FORMAT,
               "not an array [begin, end]");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 0, 8, BN_ERR_FORMAT,
               "begin is negative");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8, BN_ERR_FORMAT,
               "shape dimension 0 is negative");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2, 1.5],\"data_offsets\":[0,8]}}", 0, 8, BN_ERR_FORMAT,
               "shape dimension 1 is not an integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 0, 8, BN_ERR_FORMAT,
               "shape dimension 0 is not a number");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 0, 8, BN_ERR_FORMAT,
               "is too large");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,8]}}", 0, 8, BN_ERR_FORMAT,
               "\"shape\" is not an array");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 0, 8,
               BN_ERR_FORMAT, "shape element count overflows");
    expect_bad("{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,536870912],\"data_offsets\":[0,8]}}", 0, 8,
               BN_ERR_FORMAT, "byte size overflows");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 0, 1,
               BN_ERR_FORMAT, "more than 8 dimensions");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
               "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}",
               0, 4, BN_ERR_FORMAT, "duplicate tensor name 'a'");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}",
               0, 4, BN_ERR_FORMAT, "overlap");
    expect_bad("{\"\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 0, 2, BN_ERR_FORMAT, "empty name");
    expect_bad("{\"__metadata__\":[1]}", 0, 0, BN_ERR_FORMAT, "\"__metadata__\" is not an object");
    expect_bad("{\"__metadata__\":{\"k\":1}}", 0, 0, BN_ERR_FORMAT, "value of 'k' is not a string");
    expect_bad("{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, 0, BN_ERR_FORMAT, "has key 'k' twice");
    expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, 0, BN_ERR_FORMAT, "two \"__metadata__\"");

    /* a header made of millions of tiny values is refused before parsing
     * (cJSON would spend ~80 bytes on each) */
    {
        size_t nz = (size_t)5 << 20;
        char *h = malloc(2 * nz + 64);
        size_t k = (size_t)sprintf(h, "{\"a\":{\"dtype\":\"U8\",\"shape\":[");
        for (size_t i = 0; i < nz; i++) { h[k++] = '0'; h[k++] = ','; }
        k += (size_t)sprintf(h + k - 1, "],\"data_offsets\":[0,0]}}") - 1;
        h[k] = '\0';
        expect_bad(h, 0, 0, BN_ERR_FORMAT, "more than 4194304 JSON values");
        free(h);
    }

    /* shorter than the 8-byte length field */
    uint8_t tiny[5] = {1, 0, 0, 0, 0};
    s = (bn_st_set *)1;
    CHECK(bn_st_parse(tiny, sizeof tiny, "bad.safetensors", &s) == BN_ERR_FORMAT && s == NULL);
    CHECK(strstr(bn_last_error(), "bad.safetensors: too small") != NULL);
    CHECK(bn_st_parse(NULL, 0, "empty.safetensors", &s) == BN_ERR_FORMAT);

    /* accepted oddities: zero-size tensors may share an offset; scalars; gaps */
    b = image("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
              "\"y\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
              "\"x\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[0,4]}}  ",
              0, 16, &n);
    s = NULL;
    CHECK_OK(bn_st_parse(b, n, "odd.safetensors", &s));
    if (s) {
        CHECK(bn_st_count(s) == 3);
        const bn_st_tensor *z = bn_st_find(s, "z"), *y = bn_st_find(s, "y");
        CHECK(z && z->n_elems == 0 && z->nbytes == 0 && z->n_dims == 2 && z->shape[1] == 5);
        CHECK(y && y->n_dims == 0 && y->n_elems == 1 && y->nbytes == 8 && y->dtype == BN_TYPE_I64);
        CHECK(y && y->data == b + n - 8);  /* zero copy */
        CHECK(bn_st_find(s, "w") == NULL);
        CHECK(bn_st_metadata(s, "format") == NULL);
        bn_st_free(s);
    }
    free(b);
}

/* One tensor per dtype, odd shapes included; returns bytes written. */
typedef struct rt_tensor {
    const char *name;
    bn_type     type;
    uint32_t    n_dims;
    uint64_t    shape[BN_ST_MAX_DIMS];
    size_t      esize;
} rt_tensor;

static const rt_tensor rt[] = {
    {"t.bf16", BN_TYPE_BF16, 2, {3, 5}, 2},
    {"t.f16", BN_TYPE_F16, 1, {7}, 2},
    {"t.f32", BN_TYPE_F32, 3, {2, 3, 4}, 4},
    {"t.f64", BN_TYPE_F64, 1, {3}, 8},
    {"t.u8", BN_TYPE_U8, 2, {4, 9}, 1},
    {"t.i8", BN_TYPE_I8, 1, {11}, 1},
    {"t.i16", BN_TYPE_I16, 2, {1, 3}, 2},
    {"t.i32", BN_TYPE_I32, 0, {0}, 4},
    {"t.i64", BN_TYPE_I64, 8, {1, 2, 1, 2, 1, 2, 1, 2}, 8},
    {"t.bool", BN_TYPE_BOOL, 1, {5}, 1},
    {"t.empty", BN_TYPE_F32, 2, {0, 4}, 4},
};
#define N_RT (sizeof rt / sizeof rt[0])

static uint64_t rt_elems(const rt_tensor *t) {
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

static void test_roundtrip_every_dtype(void) {
    uint8_t *bufs[N_RT];
    bn_st_writer *w = NULL;
    CHECK_OK(bn_st_writer_create(&w));
    if (!w) return;
    for (size_t i = 0; i < N_RT; i++) {
        size_t nb = (size_t)rt_elems(&rt[i]) * rt[i].esize;
        bufs[i] = malloc(nb ? nb : 1);
        for (size_t k = 0; k < nb; k++) bufs[i][k] = (uint8_t)(k * 31 + i * 7 + 1);
        CHECK_OK(bn_st_writer_add(w, rt[i].name, rt[i].type, rt[i].n_dims, rt[i].shape, bufs[i], nb));
    }
    CHECK_OK(bn_st_writer_add_metadata(w, "format", "pt"));
    CHECK_OK(bn_st_writer_add_metadata(w, "note", "quote \" and \\ and \xc3\xa9"));
    const char *path = tmp_path("rt.safetensors");
    CHECK_OK(bn_st_writer_write(w, path));
    /* writer refusals */
    uint64_t sh[1] = {4};
    uint8_t four[4] = {0};
    CHECK(bn_st_writer_add(w, "t.f32", BN_TYPE_F32, 1, sh, four, 16) != BN_OK);  /* duplicate */
    CHECK(bn_st_writer_add(w, "x", BN_TYPE_F32, 1, sh, four, 4) != BN_OK);      /* 16 bytes needed */
    CHECK(strstr(bn_last_error(), "4 bytes given, shape and dtype need 16") != NULL);
    CHECK(bn_st_writer_add(w, "x", BN_TYPE_I2_S, 1, sh, four, 4) == BN_ERR_UNSUPPORTED);
    CHECK(bn_st_writer_add(w, "__metadata__", BN_TYPE_U8, 1, sh, four, 4) != BN_OK);
    CHECK(bn_st_writer_add_metadata(w, "format", "again") != BN_OK);
    bn_st_writer_free(w);

    /* raw layout: the data section starts 8-byte aligned, header ends in spaces */
    size_t fsz = 0;
    uint8_t *raw = bn_test_read(path, &fsz);
    CHECK(raw != NULL);
    if (raw) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
        CHECK_MSG(hl % 8 == 0, "header length %" PRIu64 " not a multiple of 8", hl);
        CHECK(raw[8] == '{');
        size_t total = 0;
        for (size_t i = 0; i < N_RT; i++) total += (size_t)rt_elems(&rt[i]) * rt[i].esize;
        CHECK(fsz == 8 + hl + total);
        free(raw);
    }
    /* no temporary left behind */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", bn_test_tmpdir());
    CHECK(system(cmd) != 0);

    bn_st_set *s = NULL;
    CHECK_OK(bn_st_open(path, &s));
    if (s) {
        CHECK(bn_st_count(s) == N_RT);
        CHECK(bn_st_shard_count(s) == 1 && !strcmp(bn_st_shard_path(s, 0), path));
        for (size_t i = 0; i < N_RT; i++) {
            const bn_st_tensor *t = bn_st_at(s, i);  /* written order is kept */
            CHECK(t && !strcmp(t->name, rt[i].name));
            if (!t) continue;
            CHECK(bn_st_find(s, rt[i].name) == t);
            CHECK_MSG(t->dtype == rt[i].type, "%s: dtype %s", t->name, bn_type_name(t->dtype));
            CHECK(t->n_dims == rt[i].n_dims);
            for (uint32_t d = 0; d < t->n_dims; d++) CHECK(t->shape[d] == rt[i].shape[d]);
            CHECK(t->n_elems == rt_elems(&rt[i]));
            CHECK(t->nbytes == rt_elems(&rt[i]) * rt[i].esize);
            CHECK(t->shard == 0);
            CHECK_MSG(t->nbytes == 0 || !memcmp(t->data, bufs[i], (size_t)t->nbytes), "%s: data differs", t->name);
        }
        CHECK(bn_st_at(s, N_RT) == NULL);
        CHECK(bn_st_metadata(s, "format") && !strcmp(bn_st_metadata(s, "format"), "pt"));
        CHECK(bn_st_metadata(s, "note") && !strcmp(bn_st_metadata(s, "note"), "quote \" and \\ and \xc3\xa9"));
        CHECK(bn_st_metadata_count(s) == 2);
        const char *k = NULL, *v = NULL;
        CHECK(bn_st_metadata_at(s, 0, &k, &v) && !strcmp(k, "format") && !strcmp(v, "pt"));
        CHECK(!bn_st_metadata_at(s, 2, &k, &v));
        bn_st_free(s);
    }
    for (size_t i = 0; i < N_RT; i++) free(bufs[i]);

    /* overwrite in place (atomic rename over an existing file) with an empty set */
    CHECK_OK(bn_st_writer_create(&w));
    CHECK_OK(bn_st_writer_write(w, path));
    bn_st_writer_free(w);
    s = NULL;
    CHECK_OK(bn_st_open(path, &s));
    CHECK(s && bn_st_count(s) == 0);
    bn_st_free(s);
}

/* Every proper prefix of a valid file must fail cleanly, naming the file. */
static void test_truncated_prefixes(void) {
    bn_st_writer *w = NULL;
    CHECK_OK(bn_st_writer_create(&w));
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[3] = {0x3f80, 0x4000, 0xc000};
    uint64_t sa[2] = {2, 3}, sb[1] = {3};
    CHECK_OK(bn_st_writer_add(w, "a", BN_TYPE_F32, 2, sa, a, sizeof a));
    CHECK_OK(bn_st_writer_add(w, "b", BN_TYPE_BF16, 1, sb, b, sizeof b));
    CHECK_OK(bn_st_writer_add_metadata(w, "format", "pt"));
    const char *path = tmp_path("small.safetensors");
    CHECK_OK(bn_st_writer_write(w, path));
    bn_st_writer_free(w);
    size_t n = 0;
    uint8_t *full = bn_test_read(path, &n);
    if (!full) { CHECK(full != NULL); return; }
    bn_st_set *s = NULL;
    CHECK_OK(bn_st_parse(full, n, "small.safetensors", &s));
    bn_st_free(s);
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        uint8_t *p = malloc(len ? len : 1);  /* exact size: ASan sees any over-read */
        memcpy(p, full, len);
        s = NULL;
        bn_status st = bn_st_parse(p, len, "small.safetensors", &s);
        if (st == BN_OK || s != NULL || !strstr(bn_last_error(), "small.safetensors: ")) {
            if (bad++ < 3) fprintf(stderr, "prefix %zu: %s %s\n", len, bn_status_name(st), bn_last_error());
            bn_st_free(s);
        }
        free(p);
    }
    CHECK_MSG(bad == 0, "%d of %zu prefixes did not fail cleanly", bad, n);
    fprintf(stderr, "   %zu truncated prefixes rejected\n", n);

    /* and on disk, through bn_st_open */
    const char *tp = tmp_path("trunc.safetensors");
    write_bytes(tp, full, n - 5);
    s = NULL;
    CHECK(bn_st_open(tp, &s) == BN_ERR_FORMAT && s == NULL);
    CHECK_MSG(strstr(bn_last_error(), tp) && strstr(bn_last_error(), "past the end of the data section"), "%s",
              bn_last_error());
    free(full);
}

/* Write one shard holding tensors `names` (each U8 [k+1] with value seed). */
static void write_shard(const char *path, const char *const *names, int n, uint8_t seed) {
    bn_st_writer *w = NULL;
    static uint8_t data[16][16];
    CHECK_OK(bn_st_writer_create(&w));
    for (int i = 0; i < n; i++) {
        uint64_t sh[1] = {(uint64_t)i + 1};
        memset(data[i], seed + i, sizeof data[i]);
        CHECK_OK(bn_st_writer_add(w, names[i], BN_TYPE_U8, 1, sh, data[i], (uint64_t)i + 1));
    }
    CHECK_OK(bn_st_writer_write(w, path));
    bn_st_writer_free(w);
}

static const char *mkfolder(const char *rel) {
    const char *d = tmp_path(rel);
    mkdir(d, 0755);
    return d;
}

static void expect_open_fail(const char *dir, bn_status want, const char *needle) {
    bn_st_set *s = (bn_st_set *)1;
    bn_status st = bn_st_open(dir, &s);
    CHECK_MSG(st == want, "%s: got %s (%s), want %s", dir, bn_status_name(st), bn_last_error(), bn_status_name(want));
    CHECK(s == NULL);
    CHECK_MSG(strstr(bn_last_error(), needle) != NULL, "message '%s' lacks '%s'", bn_last_error(), needle);
    if (st == BN_OK) bn_st_free(s);
}

static void test_sharded(void) {
    char p[640];
    const char *d = mkfolder("sharded");
    const char *s1[] = {"embed", "layer.0"}, *s2[] = {"layer.1"};
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d);
    write_shard(p, s1, 2, 10);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    write_shard(p, s2, 1, 20);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    write_text(p, "{\"metadata\":{\"total_size\":4},\"weight_map\":{"
                  "\"layer.1\":\"model-00002-of-00002.safetensors\","
                  "\"embed\":\"model-00001-of-00002.safetensors\","
                  "\"layer.0\":\"model-00001-of-00002.safetensors\"}}");
    bn_st_set *s = NULL;
    CHECK_OK(bn_st_open(d, &s));
    if (s) {
        CHECK(bn_st_count(s) == 3);
        CHECK(bn_st_shard_count(s) == 2);
        CHECK(strstr(bn_st_shard_path(s, 0), "model-00001-of-00002.safetensors") != NULL);
        const bn_st_tensor *e = bn_st_find(s, "embed"), *l0 = bn_st_find(s, "layer.0"), *l1 = bn_st_find(s, "layer.1");
        CHECK(e && e->shard == 0 && e->nbytes == 1 && e->data[0] == 10);
        CHECK(l0 && l0->shard == 0 && l0->nbytes == 2 && l0->data[0] == 11 && l0->data[1] == 11);
        CHECK(l1 && l1->shard == 1 && l1->nbytes == 1 && l1->data[0] == 20);
        bn_st_free(s);
    }

    /* bad index: a shard name that leaves the folder */
    d = mkfolder("evil");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    write_text(p, "{\"weight_map\":{\"embed\":\"../x.safetensors\"}}");
    expect_open_fail(d, BN_ERR_FORMAT, "not a plain file name");
    write_text(p, "{\"weight_map\":{\"embed\":\"..\"}}");
    expect_open_fail(d, BN_ERR_FORMAT, "not a plain file name");
    write_text(p, "{\"weight_map\":{\"embed\":\"/etc/passwd\"}}");
    expect_open_fail(d, BN_ERR_FORMAT, "not a plain file name");
    write_text(p, "{\"weight_map\":{\"embed\":3}}");
    expect_open_fail(d, BN_ERR_FORMAT, "not a file name string");
    write_text(p, "{\"weight_map\":{}}");
    expect_open_fail(d, BN_ERR_FORMAT, "\"weight_map\" is empty");
    write_text(p, "{\"metadata\":{}}");
    expect_open_fail(d, BN_ERR_FORMAT, "no \"weight_map\" object");
    write_text(p, "{\"weight_map\":");
    expect_open_fail(d, BN_ERR_FORMAT, "model.safetensors.index.json: not valid JSON");

    /* a shard the index names is missing */
    d = mkfolder("missing");
    snprintf(p, sizeof p, "%s/a.safetensors", d);
    write_shard(p, s1, 2, 1);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    write_text(p, "{\"weight_map\":{\"embed\":\"a.safetensors\",\"layer.0\":\"a.safetensors\","
                  "\"layer.1\":\"b.safetensors\"}}");
    expect_open_fail(d, BN_ERR_NOT_FOUND, "shard 'b.safetensors' does not exist");

    /* the same tensor in two shards */
    d = mkfolder("twice");
    snprintf(p, sizeof p, "%s/a.safetensors", d);
    write_shard(p, s1, 2, 1);
    const char *s3[] = {"layer.0", "layer.1"};
    snprintf(p, sizeof p, "%s/b.safetensors", d);
    write_shard(p, s3, 2, 1);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    write_text(p, "{\"weight_map\":{\"embed\":\"a.safetensors\",\"layer.0\":\"a.safetensors\","
                  "\"layer.1\":\"b.safetensors\"}}");
    expect_open_fail(d, BN_ERR_FORMAT, "tensor 'layer.0' appears in two shards");
    /* ... and also without an index (all *.safetensors) */
    unlink(p);
    expect_open_fail(d, BN_ERR_FORMAT, "appears in two shards");

    /* index and shards disagree */
    d = mkfolder("disagree");
    snprintf(p, sizeof p, "%s/a.safetensors", d);
    write_shard(p, s1, 2, 1);
    snprintf(p, sizeof p, "%s/b.safetensors", d);
    write_shard(p, s2, 1, 1);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    write_text(p, "{\"weight_map\":{\"embed\":\"b.safetensors\",\"layer.0\":\"a.safetensors\","
                  "\"layer.1\":\"b.safetensors\"}}");
    expect_open_fail(d, BN_ERR_FORMAT, "tensor 'embed' is mapped to 'b.safetensors' but found in");
    write_text(p, "{\"weight_map\":{\"embed\":\"a.safetensors\",\"layer.0\":\"a.safetensors\","
                  "\"layer.1\":\"b.safetensors\",\"layer.2\":\"b.safetensors\"}}");
    expect_open_fail(d, BN_ERR_FORMAT, "tensor 'layer.2' is mapped to 'b.safetensors' but that shard lacks it");
    write_text(p, "{\"weight_map\":{\"embed\":\"a.safetensors\",\"layer.1\":\"b.safetensors\"}}");
    expect_open_fail(d, BN_ERR_FORMAT, "tensor 'layer.0' is not listed in");
    write_text(p, "{\"weight_map\":{\"embed\":\"a.safetensors\",\"layer.0\":\"a.safetensors\","
                  "\"embed\":\"a.safetensors\",\"layer.1\":\"b.safetensors\"}}");
    expect_open_fail(d, BN_ERR_FORMAT, "lists tensor 'embed' twice");
    /* without the index: every *.safetensors, sorted by name */
    unlink(p);
    s = NULL;
    CHECK_OK(bn_st_open(d, &s));
    if (s) {
        CHECK(bn_st_count(s) == 3 && bn_st_shard_count(s) == 2);
        CHECK(!strcmp(bn_st_at(s, 0)->name, "embed") && !strcmp(bn_st_at(s, 2)->name, "layer.1"));
        CHECK(bn_st_find(s, "layer.1") && bn_st_find(s, "layer.1")->shard == 1);
        bn_st_free(s);
    }
    /* model.safetensors wins over the other files */
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    write_shard(p, s2, 1, 42);
    s = NULL;
    CHECK_OK(bn_st_open(d, &s));
    CHECK(s && bn_st_count(s) == 1 && bn_st_find(s, "layer.1")->data[0] == 42);
    bn_st_free(s);

    /* a folder with nothing to read; a path that does not exist */
    d = mkfolder("nothing");
    expect_open_fail(d, BN_ERR_NOT_FOUND, "no model.safetensors.index.json, model.safetensors or *.safetensors");
    expect_open_fail(tmp_path("no-such-file.safetensors"), BN_ERR_IO, "cannot open");
    /* FIFOs are refused without opening them (opening one would block) */
    d = mkfolder("fifo");
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    CHECK(mkfifo(p, 0644) == 0);
    expect_open_fail(p, BN_ERR_IO, "not a regular file or a folder");
    expect_open_fail(d, BN_ERR_NOT_FOUND, "no model.safetensors.index.json");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    write_text(p, "{\"weight_map\":{\"embed\":\"model.safetensors\"}}");
    expect_open_fail(d, BN_ERR_NOT_FOUND, "shard 'model.safetensors' does not exist (or is not a regular file)");
}

/* The real checkpoints of the hf-tiny fixture (manifest: packed 74 tensors,
 * bf16 46; checked tensor by tensor against the manifest in cli/info.sh). */
static void test_fixtures(void) {
    bn_st_set *s = NULL;
    CHECK_OK(bn_st_open(bn_test_src("tests/data/hf-tiny/packed"), &s));
    if (s) {
        CHECK(bn_st_count(s) == 74);
        const bn_st_tensor *q = bn_st_find(s, "model.layers.0.self_attn.q_proj.weight");
        CHECK(q && q->dtype == BN_TYPE_U8 && q->n_dims == 2 && q->shape[0] == 64 && q->shape[1] == 256);
        const bn_st_tensor *sc = bn_st_find(s, "model.layers.0.self_attn.q_proj.weight_scale");
        /* manifest weight_scales: 0.07958984375 (exact in bf16) */
        CHECK(sc && sc->dtype == BN_TYPE_BF16 && sc->n_elems == 1);
        if (sc) {
            uint16_t h;
            memcpy(&h, sc->data, 2);
            CHECK_MSG(bn_bf16_to_f32(h) == 0.07958984375f, "scale %g", bn_bf16_to_f32(h));
        }
        CHECK(bn_st_metadata(s, "format") && !strcmp(bn_st_metadata(s, "format"), "pt"));
        bn_st_free(s);
    }
    s = NULL;
    CHECK_OK(bn_st_open(bn_test_src("tests/data/hf-tiny/bf16/model.safetensors"), &s));
    if (s) {
        CHECK(bn_st_count(s) == 46);
        const bn_st_tensor *e = bn_st_find(s, "model.embed_tokens.weight");
        CHECK(e && e->dtype == BN_TYPE_BF16 && e->shape[0] == 512 && e->shape[1] == 256 && e->nbytes == 262144);
        bn_st_free(s);
    }
}

int main(void) {
    RUN(test_bad_headers);
    RUN(test_roundtrip_every_dtype);
    RUN(test_truncated_prefixes);
    RUN(test_sharded);
    RUN(test_fixtures);
    return bn_test_finish("test_safetensors");
}
