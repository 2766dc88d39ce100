/* generate_internal.h — pieces of src/generate shared between its files and
 * its tests: the random generator, sampler candidates, the text streamer
 * that holds back partial UTF-8 and possible stop-string starts. */
#ifndef BN_GENERATE_INTERNAL_H
#define BN_GENERATE_INTERNAL_H

#include "core/core.h"

/* xoshiro256** */
typedef struct bn_rng {
    uint64_t s[4];
} bn_rng;

void     bn_rng_seed(bn_rng *r, uint64_t seed);
uint64_t bn_rng_next(bn_rng *r);
double   bn_rng_uniform(bn_rng *r); /* [0, 1), 53 bits */

typedef struct bn_cand {
    int32_t id;
    float   logit;
    double  p;     /* unnormalised probability after temperature */
} bn_cand;

/* The sampler's pipeline from a candidate set chosen elsewhere (the CUDA
 * backend's top-k): c[0..n) are the n best adjusted logits (bias and
 * penalties applied), ordered higher logit first, then lower id, exactly as
 * bn_sampler_sample's own top-k would leave them; greedy takes c[0]. The
 * draw consumes the sampler's random stream as bn_sampler_sample does, so
 * both give the same token for the same logits and seed. */
bn_status bn_sampler_finish(bn_sampler *s, bn_cand *c, int32_t n, int32_t *out_token);

/* The penalized tokens of a history: distinct ids in the repeat window,
 * in first-seen order, with their counts; 0 when no penalty is on, -1 when
 * more than cap. (The logit of each is then adjusted as bn_sampler_adjust
 * does: repeat penalty, then presence + frequency x count.) */
int32_t bn_sampler_penalized(const bn_sampler *s, const int32_t *history, int32_t n_history, int32_t n_vocab,
                             int32_t *tokens, int32_t *counts, int32_t cap);

/* ---- text streamer
 * Bytes of each token are pushed; text is released only when it is whole
 * UTF-8 characters and cannot be the start of a stop string. The whole text
 * (up to a matched stop string) is kept for the result. */
typedef struct bn_streamer {
    const char *const *stop;
    int32_t            n_stop;
    char              *text;     /* all accepted text                        */
    size_t             len, cap;
    size_t             emitted;  /* text[0..emitted) was released            */
    bool               stopped;  /* a stop string matched; text cut there    */
    int32_t            stop_index;
} bn_streamer;

void      bn_streamer_init(bn_streamer *st, const char *const *stop, int32_t n_stop);
void      bn_streamer_free(bn_streamer *st);
/* Append bytes; then *out and *out_len give the newly releasable text (points into
 * st->text, valid until the next call). Sets st->stopped on a match. */
bn_status bn_streamer_push(bn_streamer *st, const char *bytes, size_t n, const char **out, size_t *out_len);
/* Release everything still held (end of generation). */
void      bn_streamer_flush(bn_streamer *st, const char **out, size_t *out_len);

/* Length of the longest prefix of s[0..n) that ends on a complete UTF-8
 * character boundary: an incomplete multi-byte sequence at the end is
 * excluded; invalid bytes count as complete (they will never complete). */
size_t bn_utf8_complete_prefix(const char *s, size_t n);

#endif /* BN_GENERATE_INTERNAL_H */
