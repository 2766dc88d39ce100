/* random.c — models with random ternary weights of real shapes, for
 * benchmarks and tests (`bitnet random-model`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* splitmix64: a small, seedable generator (no global state). */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float uniform(uint64_t *s) { return (float)(next_u64(s) >> 40) / 16777216.0f; }

static float gaussian(uint64_t *s) {
    float u1 = uniform(s), u2 = uniform(s);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

static bn_status random_linear(bn_model *m, uint64_t *rng, int32_t n_in, int32_t n_out, bn_linear *l) {
    const size_t rb = bn_t2r_row_bytes(n_in);
    uint8_t *w = bn_alloc_list_add(&m->owned, 64, rb * (size_t)n_out);
    if (!w) return BN_ERR_NOMEM;
    for (int r = 0; r < n_out; r++) {
        uint8_t *row = w + (size_t)r * rb;
        memset(row, 0x55, rb);
        uint64_t bits = 0;
        int left = 0;
        for (int c = 0; c < n_in; c++) {
            /* uniform over {-1, 0, +1} from 2-bit draws, rejecting 3 */
            int v;
            do {
                if (!left) { bits = next_u64(rng); left = 32; }
                v = (int)(bits & 3);
                bits >>= 2;
                left--;
            } while (v == 3);
            bn_t2r_set(row, c, v - 1);
        }
    }
    l->n_in = n_in;
    l->n_out = n_out;
    l->w = w;
    /* keep activations O(1) through the stack: scale ~ 1/sqrt(2/3 n_in) */
    l->scale = 1.0f / sqrtf(0.6667f * (float)n_in);
    return BN_OK;
}

static float *random_norm(bn_model *m, uint64_t *rng, int32_t n) {
    float *v = bn_alloc_list_add(&m->owned, 64, (size_t)n * 4);
    if (v) for (int i = 0; i < n; i++) v[i] = 0.75f + 0.5f * uniform(rng);
    return v;
}

bn_status bn_model_random(const bn_hparams *hp, uint64_t seed, bn_model **out) {
    bn_status st = bn_hparams_validate(hp);
    if (st) return st;
    bn_model *m = calloc(1, sizeof *m);
    if (!m) return bn_fail(BN_ERR_NOMEM, "out of memory");
    m->hp = *hp;
    uint64_t rng = seed;
    const size_t n_emb = (size_t)hp->n_vocab * (size_t)hp->n_embd;
    uint16_t *emb = bn_alloc_list_add(&m->owned, 64, n_emb * 2);
    if (!emb) { st = BN_ERR_NOMEM; goto fail; }
    for (size_t i = 0; i < n_emb; i++) emb[i] = bn_f32_to_f16(0.05f * gaussian(&rng));
    m->tok_embd = emb;
    m->embd_type = BN_TYPE_F16;
    if (!(m->output_norm = random_norm(m, &rng, hp->n_embd))) { st = BN_ERR_NOMEM; goto fail; }
    if ((st = bn_model_alloc_layers(m))) goto fail;
    const int32_t e = hp->n_embd, kv = hp->n_head_kv * hp->head_dim, f = hp->n_ff;
    for (int i = 0; i < hp->n_layer; i++) {
        bn_layer *L = &m->layers[i];
        if (!(L->attn_norm = random_norm(m, &rng, e)) || !(L->ffn_norm = random_norm(m, &rng, e)) ||
            !(L->attn_sub_norm = random_norm(m, &rng, e)) || !(L->ffn_sub_norm = random_norm(m, &rng, f))) {
            st = BN_ERR_NOMEM;
            goto fail;
        }
        if ((st = random_linear(m, &rng, e, e, &L->wq)) || (st = random_linear(m, &rng, e, kv, &L->wk)) ||
            (st = random_linear(m, &rng, e, kv, &L->wv)) || (st = random_linear(m, &rng, e, e, &L->wo)) ||
            (st = random_linear(m, &rng, e, f, &L->w_gate)) || (st = random_linear(m, &rng, e, f, &L->w_up)) ||
            (st = random_linear(m, &rng, f, e, &L->w_down)))
            goto fail;
    }
    snprintf(m->source, sizeof m->source, "random");
    *out = m;
    return BN_OK;
fail:
    bn_model_free(m);
    return st;
}

void bn_hparams_preset(bn_random_shape shape, bn_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->arch = BN_ARCH_BITNET_B158;
    hp->act = BN_ACT_RELU2;
    hp->rms_eps = 1e-5f;
    hp->rope_theta = 500000.0f;
    if (shape == BN_SHAPE_2B4T) {
        hp->n_vocab = 128256; hp->n_embd = 2560; hp->n_ff = 6912; hp->n_layer = 30;
        hp->n_head = 20; hp->n_head_kv = 5; hp->head_dim = 128; hp->n_ctx_train = 4096;
        hp->bos_id = 128000; hp->eos_id = 128001;
    } else {
        hp->n_vocab = 512; hp->n_embd = 256; hp->n_ff = 512; hp->n_layer = 4;
        hp->n_head = 8; hp->n_head_kv = 2; hp->head_dim = 32; hp->n_ctx_train = 4096;
        hp->bos_id = 510; hp->eos_id = 511;
    }
}

bn_status bn_random_model_write(bn_random_shape shape, uint64_t seed, const char *path) {
    bn_hparams hp;
    bn_hparams_preset(shape, &hp);
    bn_model *m = NULL;
    bn_status st = bn_model_random(&hp, seed, &m);
    if (st) return st;
    st = bn_model_save_gguf(m, path);
    bn_model_free(m);
    return st;
}
