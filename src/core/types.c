/* types.c — the tensor type table: block size and bytes per block. */
#include "core.h"

#include <stddef.h>

/* I2_S: bitnet.cpp's 2-bit layout, 128-element blocks of 32 bytes, plus a
 * 32-byte tail per tensor holding the f32 scale (see bn_type_nbytes). */
static const struct {
    bn_type        type;
    bn_type_traits traits;
} table[] = {
    {BN_TYPE_F32, {"F32", 1, 4, false}},
    {BN_TYPE_F16, {"F16", 1, 2, false}},
    {BN_TYPE_Q8_0, {"Q8_0", 32, 34, false}},
    {BN_TYPE_Q6_K, {"Q6_K", 256, 210, false}},
    {BN_TYPE_I8, {"I8", 1, 1, false}},
    {BN_TYPE_I16, {"I16", 1, 2, false}},
    {BN_TYPE_I32, {"I32", 1, 4, false}},
    {BN_TYPE_I64, {"I64", 1, 8, false}},
    {BN_TYPE_F64, {"F64", 1, 8, false}},
    {BN_TYPE_BF16, {"BF16", 1, 2, false}},
    {BN_TYPE_TQ1_0, {"TQ1_0", 256, 54, true}},
    {BN_TYPE_TQ2_0, {"TQ2_0", 256, 66, true}},
    {BN_TYPE_I2_S, {"I2_S", 128, 32, true}},
    {BN_TYPE_U8, {"U8", 1, 1, false}},
    {BN_TYPE_BOOL, {"BOOL", 1, 1, false}},
};

const bn_type_traits *bn_type_get(bn_type t) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].type == t) return &table[i].traits;
    return NULL;
}

const char *bn_type_name(bn_type t) {
    const bn_type_traits *tr = bn_type_get(t);
    return tr ? tr->name : "unknown";
}

bool bn_type_nbytes(bn_type t, uint64_t n, uint64_t *out) {
    const bn_type_traits *tr = bn_type_get(t);
    if (!tr) return false;
    if (t == BN_TYPE_I2_S) {
        /* bitnet.cpp: n/4 packed bytes then a 32-byte tail (scale first).
         * Its files do not require whole 128-blocks, only n % 4 == 0. */
        if (n % 4) return false;
        return bn_add_ok(n / 4, 32, out);
    }
    if (n % (uint64_t)tr->block_size) return false;
    return bn_mul_ok(n / (uint64_t)tr->block_size, (uint64_t)tr->type_size, out);
}
