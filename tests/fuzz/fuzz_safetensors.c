/* fuzz_safetensors.c — libFuzzer target for the safetensors parser: any
 * input must parse or fail cleanly; on success every tensor's bytes must
 * lie inside the input (touching first and last byte lets ASan check). */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_st_set *s = NULL;
    if (bn_st_parse(data, size, "fuzz.safetensors", &s) != BN_OK) {
        if (s) __builtin_trap();                 /* failure must not hand out a set */
        if (!bn_last_error()[0]) __builtin_trap(); /* and must say why */
        return 0;
    }
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < bn_st_count(s); i++) {
        const bn_st_tensor *t = bn_st_at(s, i);
        if (t->nbytes) {
            if (t->data < data || t->data + t->nbytes > data + size) __builtin_trap();
            sink ^= t->data[0];
            sink ^= t->data[t->nbytes - 1];
        }
        if (bn_st_find(s, t->name) != t) __builtin_trap();
    }
    for (size_t i = 0; i < bn_st_metadata_count(s); i++) {
        const char *k, *v;
        if (!bn_st_metadata_at(s, i, &k, &v) || bn_st_metadata(s, k) != v) __builtin_trap();
    }
    (void)sink;
    bn_st_free(s);
    return 0;
}
