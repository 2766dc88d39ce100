/* fuzz_gguf.c — libFuzzer target for the GGUF reader: parse the input, then
 * walk every kv (nested arrays and string arrays included) and touch the
 * first and last byte of every tensor, so ASan sees any pointer that the
 * parser let out of the buffer. */
#include <stdint.h>
#include <string.h>

#include "formats/gguf.h"

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n) {
    if (!n) return;
    sink ^= ((const uint8_t *)p)[0];
    sink ^= ((const uint8_t *)p)[n - 1];
}

static void walk_value(const bn_gguf_value *v) {
    if (v->type == BN_GGUF_STRING) {
        touch(v->v.str.data, v->v.str.len);
        return;
    }
    if (v->type != BN_GGUF_ARRAY) return;
    uint64_t n = v->v.arr.n;
    size_t esz = bn_gguf_vtype_size(v->v.arr.elem_type);
    if (esz) {
        touch(v->v.arr.data, n * esz);
        int64_t x;
        if (n) (void)bn_gguf_arr_int(v, n - 1, &x);
    } else if (v->v.arr.elem_type == BN_GGUF_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            bn_gguf_str s;
            if (bn_gguf_arr_str(v, i, &s)) touch(s.data, s.len);
        }
    } else {
        for (uint64_t i = 0; i < n; i++) walk_value(&((const bn_gguf_value *)v->v.arr.data)[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_gguf *g = NULL;
    if (bn_gguf_parse(data, size, "fuzz.gguf", &g) != BN_OK) return 0;
    for (uint64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        const bn_gguf_kv *kv = bn_gguf_kv_at(g, i);
        touch(kv->key.data, kv->key.len);
        walk_value(&kv->value);
    }
    for (uint64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        touch(t->name.data, t->name.len);
        touch(t->data, t->nbytes);
        char name[80];
        size_t n = t->name.len < sizeof name - 1 ? (size_t)t->name.len : sizeof name - 1;
        memcpy(name, t->name.data, n);
        name[n] = '\0';
        (void)bn_gguf_find_tensor(g, name);
    }
    uint32_t u;
    char buf[16];
    (void)bn_gguf_get_u32(g, "general.alignment", &u);
    (void)bn_gguf_get_str(g, "general.architecture", buf, sizeof buf);
    bn_gguf_free(g);
    return 0;
}
