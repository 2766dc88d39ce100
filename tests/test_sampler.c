/* test_sampler.c — the sampler against its formulas: greedy, temperature,
 * top-k / top-p / min-p (never an excluded token, frequencies match the
 * renormalised distribution), seeds, penalties, logit bias, logprobs; and the
 * text streamer (whole UTF-8 characters, no stop-string leaks). */
#include <math.h>
#include <string.h>

#include "bitnet.h"
#include "generate/generate_internal.h"
#include "harness.h"

#define NDRAW 20000

static bn_sampler *make(bn_sampler_params p) {
    bn_sampler *s = NULL;
    CHECK_OK(bn_sampler_create(&p, &s));
    return s;
}

static bn_sampler_params plain(float temp, uint64_t seed) {
    bn_sampler_params p = bn_sampler_default_params();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

/* logits whose softmax is the given probabilities */
static void logits_from_probs(const double *pr, int n, float *out) {
    for (int i = 0; i < n; i++) out[i] = pr[i] > 0 ? (float)log(pr[i]) : -INFINITY;
}

/* Draw NDRAW tokens; return the chi-square statistic of the counts against
 * expected[] (probabilities, zero = must never appear: counts there fail). */
static double draw_chi2(bn_sampler *s, const float *logits, int n, const double *expected, int *n_excluded_hits) {
    int counts[64] = {0};
    *n_excluded_hits = 0;
    for (int d = 0; d < NDRAW; d++) {
        int32_t t = -1;
        bn_sampler_sample(s, logits, n, NULL, 0, 0, NULL, &t);
        if (t < 0 || t >= n) { (*n_excluded_hits)++; continue; }
        counts[t]++;
    }
    double chi2 = 0;
    for (int i = 0; i < n; i++) {
        if (expected[i] == 0) { *n_excluded_hits += counts[i]; continue; }
        double e = expected[i] * NDRAW;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    return chi2;
}

/* generous bound for a chi-square with df degrees of freedom (~6 sigma) */
static double chi2_bound(int df) { return df + 6.0 * sqrt(2.0 * df) + 6.0; }

static void test_greedy(void) {
    float l[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, -INFINITY};
    bn_sampler *s = make(plain(0.0f, 1));
    int32_t t = -1;
    CHECK_OK(bn_sampler_sample(s, l, 6, NULL, 0, 0, NULL, &t));
    CHECK_MSG(t == 1, "greedy tie should pick the lowest id 1, got %d", (int)t);
    /* NaN is never chosen */
    float ln[3] = {NAN, -5.0f, -6.0f};
    CHECK_OK(bn_sampler_sample(s, ln, 3, NULL, 0, 0, NULL, &t));
    CHECK(t == 1);
    /* all banned -> error, not a token */
    float lb[2] = {-INFINITY, NAN};
    CHECK(bn_sampler_sample(s, lb, 2, NULL, 0, 0, NULL, &t) == BN_ERR_INVALID_ARG);
    CHECK(bn_sampler_sample(s, l, 0, NULL, 0, 0, NULL, &t) == BN_ERR_INVALID_ARG);
    bn_sampler_free(s);
}

static void test_temperature_to_zero_is_greedy(void) {
    bn_rng r;
    bn_rng_seed(&r, 7);
    bn_sampler *g = make(plain(0.0f, 3));
    bn_sampler *c = make(plain(1e-3f, 3)); /* 0.02 / 1e-3: odds e^-20 */
    int mismatch = 0;
    float l[100];
    for (int trial = 0; trial < 300; trial++) {
        for (int i = 0; i < 100; i++) l[i] = (float)(bn_rng_uniform(&r) * 20.0 - 10.0);
        /* keep the runner-up 0.02 below the top: at temperature 1e-3 its
         * odds are then at most e^-20 */
        int i1 = 0;
        for (int i = 1; i < 100; i++) if (l[i] > l[i1]) i1 = i;
        for (int i = 0; i < 100; i++) if (i != i1 && l[i] > l[i1] - 0.02f) l[i] = l[i1] - 0.02f;
        int32_t a = -1, b = -2;
        bn_sampler_sample(g, l, 100, NULL, 0, 0, NULL, &a);
        bn_sampler_sample(c, l, 100, NULL, 0, 0, NULL, &b);
        /* the argmax by hand */
        int best = 0;
        for (int i = 1; i < 100; i++) if (l[i] > l[best]) best = i;
        if (a != best || b != best) mismatch++;
    }
    CHECK_MSG(mismatch == 0, "%d of 300 trials: temperature 1e-3 / 0 differ from argmax", mismatch);
    bn_sampler_free(g);
    bn_sampler_free(c);
}

static void test_seed_reproduces(void) {
    float l[50];
    for (int i = 0; i < 50; i++) l[i] = (float)((i * 37) % 11) * 0.3f;
    int32_t a[200], b[200], c[200];
    bn_sampler *s1 = make(plain(1.0f, 1234));
    bn_sampler *s2 = make(plain(1.0f, 1234));
    bn_sampler *s3 = make(plain(1.0f, 1235));
    for (int i = 0; i < 200; i++) {
        bn_sampler_sample(s1, l, 50, NULL, 0, 0, NULL, &a[i]);
        bn_sampler_sample(s2, l, 50, NULL, 0, 0, NULL, &b[i]);
        bn_sampler_sample(s3, l, 50, NULL, 0, 0, NULL, &c[i]);
    }
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(memcmp(a, c, sizeof a) != 0);
    /* reseeding restarts the sequence */
    bn_sampler_reseed(s1, 1234);
    int32_t t;
    bn_sampler_sample(s1, l, 50, NULL, 0, 0, NULL, &t);
    CHECK(t == a[0]);
    bn_sampler_free(s1);
    bn_sampler_free(s2);
    bn_sampler_free(s3);
}

/* probabilities put on scrambled ids so no step can rely on id order */
static const double base_p[10] = {0.05, 0.30, 0.02, 0.10, 0.15, 0.01, 0.25, 0.04, 0.03, 0.05};

static void test_top_k(void) {
    float l[10];
    logits_from_probs(base_p, 10, l);
    bn_sampler_params p = plain(1.0f, 11);
    p.top_k = 3; /* ids 1 (0.30), 6 (0.25), 4 (0.15) */
    bn_sampler *s = make(p);
    double exp_p[10] = {0};
    exp_p[1] = 0.30 / 0.70; exp_p[6] = 0.25 / 0.70; exp_p[4] = 0.15 / 0.70;
    int bad;
    double chi2 = draw_chi2(s, l, 10, exp_p, &bad);
    CHECK_MSG(bad == 0, "top-k emitted %d excluded tokens", bad);
    CHECK_MSG(chi2 < chi2_bound(2), "top-k chi2 %.2f >= %.2f", chi2, chi2_bound(2));
    /* the test can fail: against the un-renormalised full distribution the
     * frequencies are far off */
    int bad2;
    double chi2_wrong = draw_chi2(s, l, 10, base_p, &bad2);
    CHECK_MSG(chi2_wrong > 1000, "sanity: chi2 vs wrong distribution only %.1f", chi2_wrong);
    bn_sampler_free(s);
}

static void test_top_k_with_temperature(void) {
    float l[10];
    logits_from_probs(base_p, 10, l);
    bn_sampler_params p = plain(0.5f, 12);
    p.top_k = 4; /* 1, 6, 4, 3 */
    bn_sampler *s = make(p);
    double exp_p[10] = {0}, z = 0;
    int keep[4] = {1, 6, 4, 3};
    for (int i = 0; i < 4; i++) z += pow(base_p[keep[i]], 2.0);
    for (int i = 0; i < 4; i++) exp_p[keep[i]] = pow(base_p[keep[i]], 2.0) / z; /* p^(1/T) */
    int bad;
    double chi2 = draw_chi2(s, l, 10, exp_p, &bad);
    CHECK(bad == 0);
    CHECK_MSG(chi2 < chi2_bound(3), "top-k+temp chi2 %.2f", chi2);
    bn_sampler_free(s);
}

static void test_top_p(void) {
    float l[10];
    logits_from_probs(base_p, 10, l);
    /* sorted: 0.30 (1), 0.25 (6), 0.15 (4), 0.10 (3), ... cumulative 0.30,
     * 0.55, 0.70, 0.80: top_p 0.75 keeps 4 tokens */
    for (int with_k = 0; with_k < 2; with_k++) {
        bn_sampler_params p = plain(1.0f, 13);
        p.top_p = 0.75f;
        if (with_k) p.top_k = 8; /* after top-k the survivors come sorted */
        bn_sampler *s = make(p);
        double exp_p[10] = {0};
        exp_p[1] = 0.30 / 0.80; exp_p[6] = 0.25 / 0.80; exp_p[4] = 0.15 / 0.80; exp_p[3] = 0.10 / 0.80;
        int bad;
        double chi2 = draw_chi2(s, l, 10, exp_p, &bad);
        CHECK_MSG(bad == 0, "top-p (top_k %d) emitted %d excluded tokens", p.top_k, bad);
        CHECK_MSG(chi2 < chi2_bound(3), "top-p chi2 %.2f", chi2);
        bn_sampler_free(s);
    }
    /* a tiny top_p keeps only the best */
    bn_sampler_params p = plain(1.0f, 14);
    p.top_p = 0.01f;
    bn_sampler *s = make(p);
    int ok = 1;
    for (int d = 0; d < 1000; d++) {
        int32_t t;
        bn_sampler_sample(s, l, 10, NULL, 0, 0, NULL, &t);
        ok &= t == 1;
    }
    CHECK(ok);
    bn_sampler_free(s);
}

static void test_min_p(void) {
    float l[10];
    logits_from_probs(base_p, 10, l);
    bn_sampler_params p = plain(1.0f, 15);
    p.min_p = 0.3f; /* threshold 0.09: keeps 1, 6, 4, 3 */
    bn_sampler *s = make(p);
    double exp_p[10] = {0};
    exp_p[1] = 0.30 / 0.80; exp_p[6] = 0.25 / 0.80; exp_p[4] = 0.15 / 0.80; exp_p[3] = 0.10 / 0.80;
    int bad;
    double chi2 = draw_chi2(s, l, 10, exp_p, &bad);
    CHECK_MSG(bad == 0, "min-p emitted %d excluded tokens", bad);
    CHECK_MSG(chi2 < chi2_bound(3), "min-p chi2 %.2f", chi2);
    bn_sampler_free(s);
}

static void test_chain(void) {
    /* top-k 6 keeps 1,6,4,3,0,9 (0.05 twice; 7 = 0.04 is out); temperature 1; top-p 0.9 over the renormalised six (sum 0.90): cumulative
     * 0.333, 0.611, 0.778, 0.889, 0.944 -> keeps 1,6,4,3,0; min-p 0.3 of 0.30
     * = 0.09 drops 0 (0.05): keeps 1,6,4,3. */
    float l[10];
    logits_from_probs(base_p, 10, l);
    bn_sampler_params p = plain(1.0f, 16);
    p.top_k = 6;
    p.top_p = 0.9f;
    p.min_p = 0.3f;
    bn_sampler *s = make(p);
    double exp_p[10] = {0};
    exp_p[1] = 0.30 / 0.80; exp_p[6] = 0.25 / 0.80; exp_p[4] = 0.15 / 0.80; exp_p[3] = 0.10 / 0.80;
    int bad;
    double chi2 = draw_chi2(s, l, 10, exp_p, &bad);
    CHECK_MSG(bad == 0, "chain emitted %d excluded tokens", bad);
    CHECK_MSG(chi2 < chi2_bound(3), "chain chi2 %.2f", chi2);
    bn_sampler_free(s);
}

static const float *g_sort_logits;
static int by_logit_desc(const void *a, const void *b) {
    float x = g_sort_logits[*(const int *)a], y = g_sort_logits[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : 0;
}

static void test_large_vocab_top_p(void) {
    /* a realistic vocabulary: 128256 random logits; top_p 0.5 must keep
     * exactly the best prefix whose mass reaches 0.5 */
    enum { N = 128256 };
    float *l = malloc(sizeof *l * N);
    bn_rng r;
    bn_rng_seed(&r, 99);
    for (int i = 0; i < N; i++) l[i] = (float)(bn_rng_uniform(&r) * 12.0);
    /* allowed set by hand: sort probabilities */
    double z = 0;
    for (int i = 0; i < N; i++) z += exp(l[i] - 12.0);
    char *allowed = calloc(N, 1);
    int *order = malloc(sizeof *order * N);
    for (int i = 0; i < N; i++) order[i] = i;
    g_sort_logits = l;
    qsort(order, N, sizeof *order, by_logit_desc);
    double cum = 0;
    int n_allowed = 0;
    for (int k = 0; k < N && cum < 0.5; k++) {
        allowed[order[k]] = 1;
        cum += exp(l[order[k]] - 12.0) / z;
        n_allowed++;
    }
    free(order);
    bn_sampler_params p = plain(1.0f, 17);
    p.top_p = 0.5f;
    bn_sampler *s = make(p);
    int bad = 0;
    for (int d = 0; d < 40; d++) {
        int32_t t;
        bn_sampler_sample(s, l, N, NULL, 0, 0, NULL, &t);
        if (!allowed[t]) bad++;
    }
    CHECK_MSG(bad == 0, "%d draws outside the nucleus of %d tokens", bad, n_allowed);
    bn_sampler_free(s);
    free(allowed);
    free(l);
}

static void test_penalties(void) {
    float l[8] = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.0f, 0.0f, 4.0f};
    int32_t hist[] = {0, 1, 1, 3, 6, 1, 9999, -5};
    bn_sampler_params p = plain(0.0f, 1);
    p.repeat_penalty = 1.25f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.repeat_last_n = -1;
    bn_sampler *s = make(p);
    float w[8];
    memcpy(w, l, sizeof w);
    CHECK_OK(bn_sampler_adjust(s, w, 8, hist, 8));
    /* token 0: count 1, positive: 2/1.25 - 0.5 - 0.25 = 0.85 */
    CHECK(fabsf(w[0] - (2.0f / 1.25f - 0.5f - 0.25f)) < 1e-6f);
    /* token 1: count 3, negative: -1*1.25 - 0.5 - 0.75 = -2.5 */
    CHECK(fabsf(w[1] - (-1.0f * 1.25f - 0.5f - 0.75f)) < 1e-6f);
    CHECK(fabsf(w[3] - (3.0f / 1.25f - 0.5f - 0.25f)) < 1e-6f);
    /* token 6: logit 0: 0*1.25 - 0.75 */
    CHECK(fabsf(w[6] - (-0.75f)) < 1e-6f);
    /* untouched ones (out-of-range history ids are ignored) */
    CHECK(w[2] == 0.5f && w[4] == -2.0f && w[5] == 1.0f && w[7] == 4.0f);

    /* window: only the last 2 history ids (6, 1... here hist tail is 9999,-5
     * so use a clean history) */
    bn_sampler_free(s);
    p.repeat_last_n = 2;
    s = make(p);
    int32_t h2[] = {0, 1, 1, 3};
    memcpy(w, l, sizeof w);
    CHECK_OK(bn_sampler_adjust(s, w, 8, h2, 4));
    CHECK(w[0] == 2.0f);                                  /* outside the window */
    CHECK(fabsf(w[1] - (-1.0f * 1.25f - 0.5f - 0.25f)) < 1e-6f); /* counted once */
    CHECK(fabsf(w[3] - (3.0f / 1.25f - 0.75f)) < 1e-6f);
    /* greedy follows the adjusted logits: 7 (4.0) stays best unless penalised */
    int32_t h3[] = {7, 7, 7, 7};
    int32_t t;
    CHECK_OK(bn_sampler_sample(s, l, 8, h3, 4, 0, NULL, &t));
    /* 7: 4/1.25 - 0.5 - 0.5 = 2.2 < 3.0 of token 3 */
    CHECK_MSG(t == 3, "penalised greedy picked %d", (int)t);
    bn_sampler_free(s);

    /* penalties change the sampled distribution as the formula says */
    double pr[4] = {0.4, 0.3, 0.2, 0.1};
    float l4[4];
    logits_from_probs(pr, 4, l4);
    bn_sampler_params q = plain(1.0f, 21);
    q.frequency_penalty = 0.5f;
    q.repeat_last_n = -1;
    s = make(q);
    int32_t h4[] = {0, 0};
    double e[4], zz = 0;
    for (int i = 0; i < 4; i++) { e[i] = pr[i] * (i == 0 ? exp(-1.0) : 1.0); zz += e[i]; }
    for (int i = 0; i < 4; i++) e[i] /= zz;
    int counts[4] = {0};
    for (int d = 0; d < NDRAW; d++) {
        bn_sampler_sample(s, l4, 4, h4, 2, 0, NULL, &t);
        counts[t]++;
    }
    double chi2 = 0;
    for (int i = 0; i < 4; i++) chi2 += (counts[i] - e[i] * NDRAW) * (counts[i] - e[i] * NDRAW) / (e[i] * NDRAW);
    CHECK_MSG(chi2 < chi2_bound(3), "frequency penalty distribution chi2 %.2f", chi2);
    bn_sampler_free(s);
}

static void test_logit_bias(void) {
    float l[5] = {1.0f, 5.0f, 4.9f, 0.0f, -1.0f};
    bn_logit_bias b[2] = {{1, -INFINITY}, {4, 2.5f}};
    bn_sampler_params p = plain(0.0f, 1);
    p.logit_bias = b;
    p.n_logit_bias = 2;
    bn_sampler *s = make(p);
    b[0].bias = 0; /* the sampler copied the list */
    int32_t t;
    CHECK_OK(bn_sampler_sample(s, l, 5, NULL, 0, 0, NULL, &t));
    CHECK(t == 2);
    float w[5];
    memcpy(w, l, sizeof w);
    bn_sampler_adjust(s, w, 5, NULL, 0);
    CHECK(isinf(w[1]) && w[1] < 0);
    CHECK(w[4] == 1.5f);
    bn_sampler_free(s);
    /* sampling at high temperature never picks a banned token */
    b[0].bias = -INFINITY;
    p = plain(2.0f, 5);
    p.logit_bias = b;
    p.n_logit_bias = 1;
    s = make(p);
    int hits = 0;
    for (int d = 0; d < NDRAW; d++) {
        bn_sampler_sample(s, l, 5, NULL, 0, 0, NULL, &t);
        hits += t == 1;
    }
    CHECK_MSG(hits == 0, "banned token drawn %d times", hits);
    bn_sampler_free(s);
    /* invalid entries are refused */
    bn_logit_bias bad = {-1, 1.0f};
    p.logit_bias = &bad;
    bn_sampler *x = NULL;
    CHECK(bn_sampler_create(&p, &x) == BN_ERR_INVALID_ARG && x == NULL);
}

static void test_logprobs(void) {
    float l[6] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f};
    bn_sampler *s = make(plain(0.0f, 1));
    bn_sample_info info;
    int32_t t;
    CHECK_OK(bn_sampler_sample(s, l, 6, NULL, 0, 3, &info, &t));
    double z = 0;
    for (int i = 0; i < 6; i++) z += exp(l[i]);
    CHECK(t == 1 && info.token == 1);
    CHECK(fabs(info.logprob - (3.0 - log(z))) < 1e-5);
    CHECK(info.n_top == 3);
    CHECK(info.top[0].token == 1 && info.top[1].token == 3 && info.top[2].token == 2);
    CHECK(fabs(info.top[2].logprob - (2.0 - log(z))) < 1e-5);
    bn_sampler_free(s);
}

/* ---- streamer */

static void push_str(bn_streamer *st, const char *s, char *acc) {
    const char *out;
    size_t n;
    bn_streamer_push(st, s, strlen(s), &out, &n);
    strncat(acc, out ? out : "", n);
}

static void test_utf8_hold(void) {
    CHECK(bn_utf8_complete_prefix("ab\xC3", 3) == 2);
    CHECK(bn_utf8_complete_prefix("ab\xC3\xA9", 4) == 4);
    CHECK(bn_utf8_complete_prefix("\xE2\x82", 2) == 0);
    CHECK(bn_utf8_complete_prefix("\xE2\x82\xAC", 3) == 3);
    CHECK(bn_utf8_complete_prefix("\xF0\x9F\x98", 3) == 0);
    CHECK(bn_utf8_complete_prefix("x\x80", 2) == 2); /* stray continuation: released */
    bn_streamer st;
    bn_streamer_init(&st, NULL, 0);
    const char *out;
    size_t n;
    bn_streamer_push(&st, "h\xE2", 2, &out, &n);
    CHECK(n == 1 && out[0] == 'h');
    bn_streamer_push(&st, "\x82", 1, &out, &n);
    CHECK(n == 0);
    bn_streamer_push(&st, "\xAC!", 2, &out, &n);
    CHECK(n == 4 && !memcmp(out, "\xE2\x82\xAC!", 4));
    bn_streamer_free(&st);
}

static void test_stop_strings(void) {
    const char *stops[] = {"</s>", "STOP"};
    bn_streamer st;
    bn_streamer_init(&st, stops, 2);
    char acc[256] = "";
    push_str(&st, "Hello <", acc);
    CHECK_MSG(!strcmp(acc, "Hello "), "got '%s'", acc);     /* '<' held */
    push_str(&st, "b> ST", acc);
    CHECK_MSG(!strcmp(acc, "Hello <b> "), "got '%s'", acc); /* "ST" held */
    push_str(&st, "O", acc);
    CHECK(!strcmp(acc, "Hello <b> "));
    push_str(&st, "P and more", acc);
    CHECK(st.stopped && st.stop_index == 1);
    CHECK_MSG(!strcmp(acc, "Hello <b> "), "stop string leaked: '%s'", acc);
    CHECK(!strcmp(st.text, "Hello <b> ") && st.len == 10);
    const char *out;
    size_t n;
    bn_streamer_flush(&st, &out, &n);
    CHECK(n == 0);
    bn_streamer_free(&st);

    /* a held prefix that turns out not to be a stop string is released */
    bn_streamer_init(&st, stops, 2);
    acc[0] = '\0';
    push_str(&st, "a</", acc);
    CHECK(!strcmp(acc, "a"));
    push_str(&st, "x", acc);
    CHECK(!strcmp(acc, "a</x"));
    push_str(&st, "</s", acc);
    bn_streamer_flush(&st, &out, &n);
    strncat(acc, out, n);
    CHECK(!strcmp(acc, "a</x</s") && !st.stopped);
    bn_streamer_free(&st);

    /* the earliest match wins when one push completes two */
    bn_streamer_init(&st, stops, 2);
    acc[0] = '\0';
    push_str(&st, "xSTOP</s>", acc);
    CHECK(st.stopped && st.stop_index == 1 && !strcmp(acc, "x"));
    bn_streamer_free(&st);
}

int main(void) {
    RUN(test_greedy);
    RUN(test_temperature_to_zero_is_greedy);
    RUN(test_seed_reproduces);
    RUN(test_top_k);
    RUN(test_top_k_with_temperature);
    RUN(test_top_p);
    RUN(test_min_p);
    RUN(test_chain);
    RUN(test_large_vocab_top_p);
    RUN(test_penalties);
    RUN(test_logit_bias);
    RUN(test_logprobs);
    RUN(test_utf8_hold);
    RUN(test_stop_strings);
    return bn_test_finish("test_sampler");
}
