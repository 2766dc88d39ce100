/* rng.c — xoshiro256** seeded by splitmix64: a 32-byte state that a
 * checkpoint can store to resume sampling exactly. */
#include "train/train.h"

#include <math.h>

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void bn_tr_rng_seed(bn_tr_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t bn_tr_rng_next(bn_tr_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double bn_tr_rng_uniform(bn_tr_rng *r) { return (double)(bn_tr_rng_next(r) >> 11) * 0x1p-53; }

float bn_tr_rng_normal(bn_tr_rng *r) {
    /* Box-Muller; one value per call keeps the state simple */
    double u1 = bn_tr_rng_uniform(r), u2 = bn_tr_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t bn_tr_rng_below(bn_tr_rng *r, uint64_t n) {
    /* rejection sampling: unbiased */
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = bn_tr_rng_next(r); while (x >= lim);
    return x % n;
}
