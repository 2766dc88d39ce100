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

/* Move the k first (in cand_before order) of c[0..n) to c[0..k), unordered.
 * Iterative quickselect with median-of-three pivots. */
static void select_top(bn_cand *c, int32_t n, int32_t k) {
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (cand_before(&c[mid], &c[lo])) cand_swap(&c[mid], &c[lo]);
        if (cand_before(&c[hi], &c[lo])) cand_swap(&c[hi], &c[lo]);
        if (cand_before(&c[hi], &c[mid])) cand_swap(&c[hi], &c[mid]);
        bn_cand pivot = c[mid];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (cand_before(&c[i], &pivot)) i++;
            while (cand_before(&pivot, &c[j])) j--;
            if (i <= j) { cand_swap(&c[i], &c[j]); i++; j--; }
        }
        /* now c[lo..j] <= pivot <= c[i..hi] in order; the k-th is in one side */
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

/* max-heap on cand_before (root = first in order) */
static void heap_down(bn_cand *c, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cand_before(&c[l], &c[m])) m = l;
        if (r < n && cand_before(&c[r], &c[m])) m = r;
        if (m == i) return;
        cand_swap(&c[i], &c[m]);
        i = m;
    }
}

/* ---- log-probabilities */

static void fill_info(const float *w, int32_t n_vocab, int32_t token, int32_t n_top, bn_sample_info *info) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (w[i] > mx) mx = w[i];
    double sum = 0.0;
    if (isfinite(mx))
        for (int32_t i = 0; i < n_vocab; i++)
            if (w[i] > -INFINITY) sum += exp((double)w[i] - (double)mx);
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

    /* candidates: every token whose adjusted logit is a number above -inf */
    bn_cand *c = s->cand;
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (w[i] > -INFINITY) c[n++] = (bn_cand){i, w[i], 0.0};
    if (n == 0) return bn_fail(BN_ERR_INVALID_ARG, "sampler: every token is banned (all logits are -inf or NaN)");

    int32_t token;
    if (p->temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (cand_before(&c[i], &c[best])) best = i;
        token = c[best].id;
    } else {
        bool sorted = false;
        /* top-k: the k best, sorted */
        if (p->top_k > 0 && p->top_k < n) {
            select_top(c, n, p->top_k);
            n = p->top_k;
            qsort(c, (size_t)n, sizeof *c, cand_cmp);
            sorted = true;
        }
        /* softmax with temperature over the survivors (in double: exact
         * enough that excluded tokens are truly excluded below) */
        float mx = -INFINITY;
        for (int32_t i = 0; i < n; i++)
            if (c[i].logit > mx) mx = c[i].logit;
        double inv_t = 1.0 / (double)p->temperature;
        double sum = 0.0;
        for (int32_t i = 0; i < n; i++) {
            double e = isinf(mx) ? (c[i].logit == mx ? 1.0 : 0.0) : exp(((double)c[i].logit - (double)mx) * inv_t);
            c[i].p = e;
            sum += e;
        }
        /* top-p: the smallest best-first prefix whose mass reaches top_p */
        if (p->top_p < 1.0f && n > 1) {
            if (!sorted) {
                /* heap extraction: only as many pops as the nucleus needs */
                for (int32_t i = n / 2 - 1; i >= 0; i--) heap_down(c, n, i);
                double target = (double)p->top_p * sum, cum = 0.0;
                int32_t kept = 0, heap_n = n;
                while (heap_n > 0) {
                    bn_cand top = c[0];
                    c[0] = c[heap_n - 1];
                    heap_n--;
                    heap_down(c, heap_n, 0);
                    /* popped items go to the end, in reverse: fix order below */
                    c[heap_n] = top;
                    kept++;
                    cum += top.p;
                    if (cum >= target) break;
                }
                /* the kept ones are c[n-kept .. n) in reverse order */
                for (int32_t i = 0; i < kept / 2; i++) cand_swap(&c[n - kept + i], &c[n - 1 - i]);
                memmove(c, c + (n - kept), sizeof *c * (size_t)kept);
                n = kept;
            } else {
                double target = (double)p->top_p * sum, cum = 0.0;
                int32_t kept = 0;
                while (kept < n) {
                    cum += c[kept].p;
                    kept++;
                    if (cum >= target) break;
                }
                n = kept;
            }
            sorted = true;
        }
        /* min-p: keep tokens with p >= min_p * p_max (relative, so the
         * renormalisation after top-p does not matter) */
        if (p->min_p > 0.0f && n > 1) {
            double pmax = 0.0;
            for (int32_t i = 0; i < n; i++)
                if (c[i].p > pmax) pmax = c[i].p;
            double thr = (double)p->min_p * pmax;
            int32_t m = 0;
            for (int32_t i = 0; i < n; i++)
                if (c[i].p >= thr) c[m++] = c[i];
            n = m;
        }
        /* draw */
        sum = 0.0;
        for (int32_t i = 0; i < n; i++) sum += c[i].p;
        double r = bn_rng_uniform(&s->rng) * sum;
        int32_t pick = -1;
        double cum = 0.0;
        for (int32_t i = 0; i < n; i++) {
            if (c[i].p <= 0.0) continue;
            pick = i;
            cum += c[i].p;
            if (r < cum) break;
        }
        if (pick < 0) pick = 0; /* every survivor underflowed: cannot happen (max has p=1) */
        token = c[pick].id;
    }
    if (info) fill_info(w, n_vocab, token, n_top, info);
    *out_token = token;
    return BN_OK;
}
