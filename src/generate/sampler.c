/* sampler.c — logits -> one token id: bias, penalties, top-k, temperature,
 * top-p, min-p, draw; plus log-probabilities for the caller.
 *
 * Candidates are kept as (id, logit) pairs. The order that decides ties is
 * always "higher logit first, then lower id", a total order, so every step
 * (selection, sorting, the draw walk) is deterministic for a given seed. */
#include "generate/generate_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bn_sampler {
    bn_sampler_params p;
    bn_logit_bias    *bias;      /* owned copy of p.logit_bias             */
    bn_rng            rng;
    /* scratch, grown on demand to n_vocab */
    int32_t           cap;
    float            *work;      /* [cap] adjusted logits                   */
    bn_cand          *cand;      /* [cap] candidates                        */
    int32_t          *counts;    /* [cap] history counts, kept all-zero     */
};

bn_sampler_params bn_sampler_default_params(void) {
    bn_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    return p;
}

/* ---- random numbers: splitmix64 to seed xoshiro256** */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void bn_rng_seed(bn_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t bn_rng_next(bn_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double bn_rng_uniform(bn_rng *r) { return (double)(bn_rng_next(r) >> 11) * 0x1p-53; }

/* ---- create / free */

bn_status bn_sampler_create(const bn_sampler_params *params, bn_sampler **out) {
    if (!out) return bn_fail(BN_ERR_INVALID_ARG, "bn_sampler_create: out is NULL");
    *out = NULL;
    bn_sampler_params p = params ? *params : bn_sampler_default_params();
    if (isnan(p.temperature) || isnan(p.top_p) || isnan(p.min_p) || isnan(p.repeat_penalty) ||
        isnan(p.presence_penalty) || isnan(p.frequency_penalty))
        return bn_fail(BN_ERR_INVALID_ARG, "sampler: a parameter is NaN");
    if (p.repeat_penalty <= 0.0f || isinf(p.repeat_penalty))
        return bn_fail(BN_ERR_INVALID_ARG, "sampler: repeat_penalty must be positive and finite, got %g",
                       (double)p.repeat_penalty);
    if (p.min_p > 1.0f) return bn_fail(BN_ERR_INVALID_ARG, "sampler: min_p must be <= 1, got %g", (double)p.min_p);
    if (p.repeat_last_n < -1)
        return bn_fail(BN_ERR_INVALID_ARG, "sampler: repeat_last_n must be >= -1, got %d", (int)p.repeat_last_n);
    if (p.n_logit_bias < 0 || (p.n_logit_bias > 0 && !p.logit_bias))
        return bn_fail(BN_ERR_INVALID_ARG, "sampler: bad logit_bias list");
    bn_sampler *s = bn_calloc(1, sizeof *s);
    if (!s) return BN_ERR_NOMEM;
    if (p.n_logit_bias > 0) {
        s->bias = bn_calloc((size_t)p.n_logit_bias, sizeof *s->bias);
        if (!s->bias) { free(s); return BN_ERR_NOMEM; }
        for (int32_t i = 0; i < p.n_logit_bias; i++) {
            if (p.logit_bias[i].token < 0 || isnan(p.logit_bias[i].bias)) {
                free(s->bias);
                free(s);
                return bn_fail(BN_ERR_INVALID_ARG, "sampler: logit_bias entry %d is invalid (token %d)",
                               (int)i, (int)p.logit_bias[i].token);
            }
            s->bias[i] = p.logit_bias[i];
        }
    }
    p.logit_bias = s->bias;
    s->p = p;
    bn_rng_seed(&s->rng, p.seed);
    *out = s;
    return BN_OK;
}

void bn_sampler_free(bn_sampler *s) {
    if (!s) return;
    free(s->bias);
    free(s->work);
    free(s->cand);
    free(s->counts);
    free(s);
}

void bn_sampler_reseed(bn_sampler *s, uint64_t seed) {
    if (!s) return;
    s->p.seed = seed;
    bn_rng_seed(&s->rng, seed);
}

const bn_sampler_params *bn_sampler_get_params(const bn_sampler *s) { return s ? &s->p : NULL; }

static bn_status reserve(bn_sampler *s, int32_t n) {
    if (n <= s->cap) return BN_OK;
    float *w = bn_calloc((size_t)n, sizeof *w);
    bn_cand *c = bn_calloc((size_t)n, sizeof *c);
    int32_t *k = bn_calloc((size_t)n, sizeof *k);
    if (!w || !c || !k) { free(w); free(c); free(k); return BN_ERR_NOMEM; }
    free(s->work); free(s->cand); free(s->counts);
    s->work = w; s->cand = c; s->counts = k;
    s->cap = n;
    return BN_OK;
}

/* ---- bias and penalties */

/* counts must be all-zero on entry and is all-zero again on return. */
static void adjust(const bn_sampler_params *p, int32_t *counts, float *logits, int32_t n_vocab,
                   const int32_t *history, int32_t n_history) {
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        int32_t t = p->logit_bias[i].token;
        if (t >= 0 && t < n_vocab) logits[t] += p->logit_bias[i].bias;
    }
    bool any = p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f;
    if (!any || !history || n_history <= 0 || p->repeat_last_n == 0) return;
    int32_t first = 0;
    if (p->repeat_last_n > 0 && n_history > p->repeat_last_n) first = n_history - p->repeat_last_n;
    for (int32_t i = first; i < n_history; i++) {
        int32_t t = history[i];
        if (t >= 0 && t < n_vocab) counts[t]++;
    }
    for (int32_t i = first; i < n_history; i++) {
        int32_t t = history[i];
        if (t < 0 || t >= n_vocab || counts[t] == 0) continue; /* already done */
        float l = logits[t];
        if (p->repeat_penalty != 1.0f) l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= p->presence_penalty + p->frequency_penalty * (float)counts[t];
        logits[t] = l;
        counts[t] = 0;
    }
}

bn_status bn_sampler_adjust(const bn_sampler *s, float *logits, int32_t n_vocab,
                            const int32_t *history, int32_t n_history) {
    if (!s || !logits || n_vocab <= 0) return bn_fail(BN_ERR_INVALID_ARG, "bn_sampler_adjust: bad arguments");
    int32_t *counts = bn_calloc((size_t)n_vocab, sizeof *counts);
    if (!counts) return BN_ERR_NOMEM;
    adjust(&s->p, counts, logits, n_vocab, history, n_history);
    free(counts);
    return BN_OK;
}

/* ---- candidate ordering helpers */

/* a before b: higher logit, then lower id */
static inline bool cand_before(const bn_cand *a, const bn_cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_cmp(const void *pa, const void *pb) {
    const bn_cand *a = pa, *b = pb;
    if (cand_before(a, b)) return -1;
    if (cand_before(b, a)) return 1;
    return 0;
}

static inline void cand_swap(bn_cand *a, bn_cand *b) { bn_cand t = *a; *a = *b; *b = t; }

/* min-heap on cand_before: the root is the LAST in order (the one to evict) */
static void minheap_down(bn_cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cand_before(&h[m], &h[l])) m = l;
        if (r < n && cand_before(&h[m], &h[r])) m = r;
        if (m == i) return;
        cand_swap(&h[i], &h[m]);
        i = m;
    }
}

static void minheap_up(bn_cand *h, int32_t i) {
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (!cand_before(&h[parent], &h[i])) return;
        cand_swap(&h[parent], &h[i]);
        i = parent;
    }
}

/* The k best of w[0..n_vocab) into c[0..k), sorted best first, in one pass
 * with a heap of k: most tokens are rejected by one comparison. */
static int32_t top_k_scan(const float *w, int32_t n_vocab, int32_t k, bn_cand *c) {
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (!(w[i] > -INFINITY)) continue;
        bn_cand x = {i, w[i], 0.0};
        if (n < k) {
            c[n] = x;
            minheap_up(c, n++);
        } else if (cand_before(&x, &c[0])) {
            c[0] = x;
            minheap_down(c, n, 0);
        }
    }
    qsort(c, (size_t)n, sizeof *c, cand_cmp);
    return n;
}

/* Reorder c[0..n) so that c[0..m) is the smallest best-first set whose
 * probability mass (field p) reaches target, and return m. Quickselect on
 * mass: expected O(n), no full sort; the set is left unordered. */
static int32_t select_mass(bn_cand *c, int32_t n, double target) {
    int32_t lo = 0, hi = n; /* c[0..lo) is taken; the cut lies in [lo, hi) */
    double need = target;
    while (hi - lo > 1) {
        int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
        /* median of three to c[last] as the pivot */
        if (cand_before(&c[mid], &c[lo])) cand_swap(&c[mid], &c[lo]);
        if (cand_before(&c[last], &c[lo])) cand_swap(&c[last], &c[lo]);
        if (cand_before(&c[mid], &c[last])) cand_swap(&c[mid], &c[last]);
        int32_t store = lo;
        double before = 0.0;
        for (int32_t i = lo; i < last; i++)
            if (cand_before(&c[i], &c[last])) {
                before += c[i].p;
                cand_swap(&c[i], &c[store++]);
            }
        cand_swap(&c[store], &c[last]); /* the pivot sits at store */
        if (before >= need) hi = store;                 /* the cut is among the better ones */
        else if (before + c[store].p >= need) return store + 1;
        else { need -= before + c[store].p; lo = store + 1; }
    }
    return hi > lo ? lo + 1 : lo;
}

/* ---- log-probabilities */

static void fill_info(const float *w, int32_t n_vocab, int32_t token, int32_t n_top, bn_sample_info *info) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (w[i] > mx) mx = w[i];
    double sum = 0.0;
    if (isfinite(mx))
        for (int32_t i = 0; i < n_vocab; i++)
            if (w[i] > -INFINITY) sum += (double)expf(w[i] - mx);
    double lse = isfinite(mx) ? (double)mx + log(sum) : mx;
    info->token = token;
    info->logprob = isfinite(lse) && w[token] > -INFINITY ? (float)((double)w[token] - lse) : -INFINITY;
    if (n_top < 0) n_top = 0;
    if (n_top > BN_MAX_TOP_LOGPROBS) n_top = BN_MAX_TOP_LOGPROBS;
    if (n_top > n_vocab) n_top = n_vocab;
    /* insertion into a small sorted list: n_top <= 20 */
    bn_cand top[BN_MAX_TOP_LOGPROBS];
    int32_t nt = 0;
    for (int32_t i = 0; i < n_vocab && n_top > 0; i++) {
        bn_cand c = {i, isnan(w[i]) ? -INFINITY : w[i], 0.0};
        if (nt == n_top && !cand_before(&c, &top[nt - 1])) continue;
        int32_t j = nt < n_top ? nt++ : nt - 1;
        while (j > 0 && cand_before(&c, &top[j - 1])) { top[j] = top[j - 1]; j--; }
        top[j] = c;
    }
    info->n_top = nt;
    for (int32_t i = 0; i < nt; i++) {
        info->top[i].token = top[i].id;
        info->top[i].logprob = isfinite(lse) && top[i].logit > -INFINITY ? (float)((double)top[i].logit - lse)
                                                                        : -INFINITY;
    }
}

static bn_status all_banned(void) {
    return bn_fail(BN_ERR_INVALID_ARG, "sampler: every token is banned (all logits are -inf or NaN)");
}

/* Softmax with temperature over candidates c[0..n) (n > 0), top-p, min-p,
 * then one draw; returns the token. */
static int32_t draw(bn_sampler *s, bn_cand *c, int32_t n) {
    const bn_sampler_params *p = &s->p;
    /* softmax with temperature over the survivors (expf: a token below
     * e^-87 of the best gets 0 and can no longer be drawn; sums in double) */
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit > mx) mx = c[i].logit;
    const float inv_t = 1.0f / p->temperature;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        float e = isinf(mx) ? (c[i].logit == mx ? 1.0f : 0.0f) : expf((c[i].logit - mx) * inv_t);
        c[i].p = e;
        sum += e;
    }
    /* top-p: the smallest best-first set whose mass reaches top_p */
    if (p->top_p < 1.0f && n > 1) n = select_mass(c, n, (double)p->top_p * sum);
    /* min-p: keep tokens with p >= min_p * p_max (relative, so the
     * renormalisation after top-p does not matter) */
    if (p->min_p > 0.0f && n > 1) {
        double pmax = 0.0;
        for (int32_t i = 0; i < n; i++)
            if (c[i].p > pmax) pmax = c[i].p;
        const double thr = (double)p->min_p * pmax;
        int32_t m = 0;
        for (int32_t i = 0; i < n; i++)
            if (c[i].p >= thr) c[m++] = c[i];
        n = m;
    }
    /* draw: walk the survivors; a rounding overshoot lands on the last
     * survivor with mass, never on an excluded token */
    sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += c[i].p;
    const double r = bn_rng_uniform(&s->rng) * sum;
    int32_t pick = 0;
    double cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        if (c[i].p <= 0.0) continue;
        pick = i;
        cum += c[i].p;
        if (r < cum) break;
    }
    return c[pick].id;
}

/* ---- the sampling pipeline */

bn_status bn_sampler_sample(bn_sampler *s, const float *logits, int32_t n_vocab,
                            const int32_t *history, int32_t n_history,
                            int32_t n_top, bn_sample_info *info, int32_t *out_token) {
    if (!s || !logits || !out_token || n_vocab <= 0 || n_history < 0)
        return bn_fail(BN_ERR_INVALID_ARG, "bn_sampler_sample: bad arguments (n_vocab %d)", (int)n_vocab);
    bn_status st = reserve(s, n_vocab);
    if (st) return st;
    const bn_sampler_params *p = &s->p;
    float *w = s->work;
    memcpy(w, logits, sizeof *w * (size_t)n_vocab);
    adjust(p, s->counts, w, n_vocab, history, n_history);

    int32_t token;
    bn_cand *c = s->cand;
    if (p->temperature <= 0.0f) {
        /* greedy: the argmax, ties to the lowest id */
        int32_t best = -1;
        for (int32_t i = 0; i < n_vocab; i++)
            if (w[i] > -INFINITY && (best < 0 || w[i] > w[best])) best = i;
        if (best < 0) return all_banned();
        token = best;
    } else {
        /* candidates: every token whose adjusted logit is a number above
         * -inf; with top-k only the k best, sorted */
        int32_t n = 0;
        if (p->top_k > 0 && p->top_k < n_vocab) {
            n = top_k_scan(w, n_vocab, p->top_k, c);
        } else {
            for (int32_t i = 0; i < n_vocab; i++)
                if (w[i] > -INFINITY) c[n++] = (bn_cand){i, w[i], 0.0};
        }
        if (n == 0) return all_banned();
        token = draw(s, c, n);
    }
    if (info) fill_info(w, n_vocab, token, n_top, info);
    *out_token = token;
    return BN_OK;
}

/* ---- the pipeline from a candidate set chosen elsewhere (the GPU) */

bn_status bn_sampler_finish(bn_sampler *s, bn_cand *c, int32_t n, int32_t *out_token) {
    if (!s || !c || !out_token || n < 0) return bn_fail(BN_ERR_INVALID_ARG, "bn_sampler_finish: bad arguments");
    if (n == 0) return all_banned();
    *out_token = s->p.temperature <= 0.0f ? c[0].id : draw(s, c, n);
    return BN_OK;
}

int32_t bn_sampler_penalized(const bn_sampler *s, const int32_t *history, int32_t n_history, int32_t n_vocab,
                             int32_t *tokens, int32_t *counts, int32_t cap) {
    const bn_sampler_params *p = &s->p;
    const bool any = p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f;
    if (!any || !history || n_history <= 0 || p->repeat_last_n == 0) return 0;
    int32_t first = 0;
    if (p->repeat_last_n > 0 && n_history > p->repeat_last_n) first = n_history - p->repeat_last_n;
    int32_t n = 0;
    for (int32_t i = first; i < n_history; i++) {
        const int32_t t = history[i];
        if (t < 0 || t >= n_vocab) continue;
        int32_t j = 0;
        while (j < n && tokens[j] != t) j++; /* windows are short (64 by default) */
        if (j == n) {
            if (n == cap) return -1;
            tokens[n] = t;
            counts[n++] = 0;
        }
        counts[j]++;
    }
    return n;
}
