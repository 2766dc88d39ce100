/* test_lora.c — LoRA fine-tuning: gradients of A and B against finite
 * differences, the zero adapter is the base bit for bit, PEFT save/load round
 * trip, the inference engine with --lora against the trainer's forward, the
 * merged model, SFT data masking, freezing globs, and bad input. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <omp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "formats/safetensors.h"
#include "harness.h"
#include "train/lora.h"

#define BASE "tests/data/train-tiny/model"

static bn_tr_model *load_base(bool quant) {
    bn_tr_config c;
    bn_tr_model *m = NULL;
    if (bn_tr_config_load(bn_test_src(BASE), &c) != BN_OK) return NULL;
    if (bn_tr_model_create(&c, quant, &m) != BN_OK) return NULL;
    if (bn_tr_load_safetensors(m, bn_test_src(BASE)) != BN_OK) { bn_tr_model_free(m); return NULL; }
    return m;
}

static void fill_tokens(int32_t *tok, int32_t *tgt, int n, uint64_t seed) {
    bn_tr_rng r;
    bn_tr_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        tok[i] = (int32_t)bn_tr_rng_below(&r, 256);
        tgt[i] = (int32_t)bn_tr_rng_below(&r, 256);
    }
}

/* Random B so that dA is not zero. */
static void randomize_b(bn_tr_lora *a, uint64_t seed, float sd) {
    bn_tr_rng r;
    bn_tr_rng_seed(&r, seed);
    for (int i = 0; i < a->n_pairs; i++)
        for (size_t j = 0; j < (size_t)a->rank * a->pairs[i].out; j++)
            a->pairs[i].B[j] = sd * bn_tr_rng_normal(&r);
}

/* dL/dA and dL/dB against central differences of the mean loss, in the f32
 * model without quantizers (the quantized forward is piecewise constant in
 * its int8 codes, so differences there measure rounding flips). */
static void test_grad_fd(void) {
    bn_tr_model *m = load_base(false);
    CHECK(m != NULL);
    if (!m) return;
    bn_tr_lora *a = NULL;
    CHECK_OK(bn_tr_lora_create(&m->cfg, 4, 8.0f, (1u << BN_LORA_N_TARGETS) - 1, 7, &a));
    if (!a) { bn_tr_model_free(m); return; }
    randomize_b(a, 3, 0.05f);
    enum { B = 2, T = 12 };
    int32_t tok[B * T], tgt[B * T];
    fill_tokens(tok, tgt, B * T, 11);
    double loss;
    int n;
    bn_tr_lora_zero_grad(a);
    CHECK_OK(bn_tr_lora_forward(m, a, tok, tgt, B, T, 1.0f / (B * T), &loss, &n, NULL));
    CHECK_OK(bn_tr_lora_backward(m, a));
    double worst = 0, gmax = 0, num = 0, den = 0;
    int checked = 0;
    bn_tr_rng r;
    bn_tr_rng_seed(&r, 5);
    for (int k = 0; k < 80; k++) {
        size_t i = (size_t)bn_tr_rng_below(&r, a->n);
        const float h = 1e-2f, w0 = a->p[i];
        double lp, lm;
        a->p[i] = w0 + h;
        bn_tr_lora_forward(m, a, tok, tgt, B, T, 1.0f, &lp, &n, NULL);
        a->p[i] = w0 - h;
        bn_tr_lora_forward(m, a, tok, tgt, B, T, 1.0f, &lm, &n, NULL);
        a->p[i] = w0;
        double fd = (lp - lm) / (2.0 * h) / (B * T), an = a->g[i];
        double err = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-3);
        if (err > worst) worst = err;
        num += (fd - an) * (fd - an);
        den += an * an;
        if (fabs(an) > gmax) gmax = fabs(an);
        checked++;
    }
    fprintf(stderr, "   %d coordinates of A and B: |fd - g| / |g| = %.2e, worst coordinate %.2e "
            "(largest |g| %.2e)\n", checked, sqrt(num / den), worst, gmax);
    CHECK_MSG(sqrt(num / den) < 1e-2, "finite differences disagree: %g", sqrt(num / den));
    CHECK_MSG(worst < 2e-2, "finite differences disagree: %g", worst);
    CHECK(gmax > 1e-4);
    bn_tr_lora_free(a);
    bn_tr_model_free(m);
}

/* A fresh adapter (B = 0) leaves the quantized model unchanged, bit for bit. */
static void test_zero_adapter_is_base(void) {
    bn_tr_model *m = load_base(true);
    CHECK(m != NULL);
    if (!m) return;
    bn_tr_lora *a = NULL;
    CHECK_OK(bn_tr_lora_create(&m->cfg, 8, 16.0f, (1u << BN_LORA_N_TARGETS) - 1, 1, &a));
    enum { B = 2, T = 16 };
    int32_t tok[B * T], tgt[B * T];
    fill_tokens(tok, tgt, B * T, 2);
    const size_t nl = (size_t)B * T * m->cfg.vocab;
    float *l1 = malloc(nl * 4), *l2 = malloc(nl * 4);
    double s1, s2;
    int n1, n2;
    CHECK_OK(bn_tr_forward(m, tok, tgt, B, T, 1.0f, &s1, &n1, l1));
    CHECK_OK(bn_tr_lora_forward(m, a, tok, tgt, B, T, 1.0f, &s2, &n2, l2));
    CHECK(memcmp(l1, l2, nl * 4) == 0);
    CHECK(s1 == s2 && n1 == n2);
    free(l1);
    free(l2);
    bn_tr_lora_free(a);
    bn_tr_model_free(m);
}

/* Engine logits of tokens [0..n) at every position. */
static float *engine_logits(const bn_model *bm, const int32_t *tok, int n, int V) {
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = n;
    cp.n_batch = n;
    cp.n_threads = 1;
    cp.all_logits = true;
    bn_context *ctx = NULL;
    if (bn_context_create(bm, &cp, &ctx) != BN_OK) return NULL;
    int8_t want[64];
    for (int i = 0; i < n; i++) want[i] = 1;
    bn_batch b = {.n_tokens = n, .tokens = tok, .want_logits = want};
    float *out = NULL;
    if (bn_decode(ctx, &b) == BN_OK) {
        out = malloc(sizeof(float) * (size_t)n * V);
        for (int i = 0; i < n; i++) memcpy(out + (size_t)i * V, bn_get_logits(ctx, i), sizeof(float) * V);
    }
    bn_context_free(ctx);
    return out;
}

/* SPEC §2: per position mean|d| < 0.1, max|d| < 3% of max|ref|, argmax equal
 * where the reference's top-2 margin exceeds 0.5. Returns the worst figures. */
static bool spec_close(const float *ref, const float *got, int n, int V, double *worst_mean,
                       double *worst_rel, int *argmax_bad) {
    *worst_mean = 0;
    *worst_rel = 0;
    *argmax_bad = 0;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        const float *r = ref + (size_t)i * V, *g = got + (size_t)i * V;
        double sum = 0, mx = 0, rmax = 0;
        int a1 = 0, a2 = -1, ag = 0;
        for (int v = 0; v < V; v++) {
            double d = fabs((double)r[v] - g[v]);
            sum += d;
            if (d > mx) mx = d;
            if (fabs(r[v]) > rmax) rmax = fabs(r[v]);
            if (g[v] > g[ag]) ag = v;
            if (r[v] > r[a1]) { a2 = a1; a1 = v; }
            else if (a2 < 0 || r[v] > r[a2]) a2 = v;
        }
        if (sum / V > *worst_mean) *worst_mean = sum / V;
        if (mx / rmax > *worst_rel) *worst_rel = mx / rmax;
        if (sum / V >= 0.1 || mx >= 0.03 * rmax) ok = false;
        if (a2 >= 0 && r[a1] - r[a2] > 0.5 && ag != a1) { ok = false; (*argmax_bad)++; }
    }
    return ok;
}

/* Train a few steps so the adapter does something, then: PEFT layout on disk,
 * load back, engine + adapter vs trainer + adapter, and the merge. */
static void test_save_apply_merge(void) {
    bn_tr_model *m = load_base(true);
    CHECK(m != NULL);
    if (!m) return;
    bn_tr_lora *a = NULL;
    CHECK_OK(bn_tr_lora_create(&m->cfg, 4, 8.0f, (1u << BN_LORA_N_TARGETS) - 1, 9, &a));
    randomize_b(a, 4, 0.05f);
    enum { T = 24 };
    const int V = m->cfg.vocab;
    int32_t tok[T], tgt[T];
    fill_tokens(tok, tgt, T, 21);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/adapter", bn_test_tmpdir());
    CHECK_OK(bn_tr_lora_save(a, dir, "tests/data/train-tiny/model"));

    /* PEFT names, shapes and config */
    char p[600];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    bn_st_set *set = NULL;
    CHECK_OK(bn_st_open(p, &set));
    if (set) {
        const bn_st_tensor *ta = bn_st_find(set, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
        const bn_st_tensor *tb = bn_st_find(set, "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
        CHECK(ta && ta->n_dims == 2 && ta->shape[0] == 4 && ta->shape[1] == 64 && ta->dtype == BN_TYPE_F32);
        CHECK(tb && tb->n_dims == 2 && tb->shape[0] == 64 && tb->shape[1] == 4);
        CHECK(bn_st_count(set) == 2 * 7 * 2);
        bn_st_free(set);
    }
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    size_t len;
    char *js = bn_test_read(p, &len);
    cJSON *cj = js ? cJSON_ParseWithLength(js, len) : NULL;
    CHECK(cj != NULL);
    if (cj) {
        CHECK(!strcmp(cJSON_GetObjectItem(cj, "peft_type")->valuestring, "LORA"));
        CHECK(cJSON_GetObjectItem(cj, "r")->valuedouble == 4);
        CHECK(cJSON_GetObjectItem(cj, "lora_alpha")->valuedouble == 8);
        CHECK(!strcmp(cJSON_GetObjectItem(cj, "bias")->valuestring, "none"));
        CHECK(!strcmp(cJSON_GetObjectItem(cj, "task_type")->valuestring, "CAUSAL_LM"));
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(cj, "target_modules")) == 7);
        CHECK(!strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(cj, "target_modules"), 0)->valuestring, "q_proj"));
    }
    cJSON_Delete(cj);
    free(js);

    /* round trip */
    bn_tr_lora *b = NULL;
    CHECK_OK(bn_tr_lora_load(&m->cfg, dir, &b));
    CHECK(b && b->n == a->n && memcmp(b->p, a->p, a->n * 4) == 0 && b->scale == a->scale);
    bn_tr_lora_free(b);

    /* trainer (quantized forward + adapter) vs engine (-m BASE --lora) */
    float *ref = malloc(sizeof(float) * T * V);
    double ls;
    int nn;
    CHECK_OK(bn_tr_lora_forward(m, a, tok, tgt, 1, T, 1.0f, &ls, &nn, ref));
    bn_model *bm = NULL;
    CHECK_OK(bn_model_load(bn_test_src(BASE), NULL, &bm));
    float *base_l = bm ? engine_logits(bm, tok, T, V) : NULL;
    CHECK_OK(bn_model_apply_lora(bm, dir, 1.0f));
    CHECK(bn_model_apply_lora(bm, dir, 1.0f) != BN_OK);  /* only one adapter */
    float *got = bm ? engine_logits(bm, tok, T, V) : NULL;
    CHECK(got != NULL && base_l != NULL);
    double wm, wr;
    int ab;
    if (got) {
        bool ok = spec_close(ref, got, T, V, &wm, &wr, &ab);
        fprintf(stderr, "   engine+adapter vs trainer+adapter: mean|d| %.4f, max|d|/max|ref| %.4f, argmax flips %d\n",
                wm, wr, ab);
        CHECK(ok);
        /* and the adapter does change the output */
        double dsum = 0;
        for (int i = 0; i < T * V; i++) dsum += fabs((double)got[i] - base_l[i]);
        fprintf(stderr, "   adapter effect: mean|logit change| %.4f\n", dsum / (T * V));
        CHECK(dsum / (T * V) > 0.01);
    }
    bn_model_free(bm);

    /* merge: W' = W + alpha/r B A, saved as an HF folder, loaded by the engine
     * (absmean ternary at load); compared with the trainer's quantized forward
     * of the same merged latent weights. */
    bn_tr_lora_merge(m, a);
    float *mref = malloc(sizeof(float) * T * V);
    CHECK_OK(bn_tr_forward(m, tok, tgt, 1, T, 1.0f, &ls, &nn, mref));
    char mdir[600];
    snprintf(mdir, sizeof mdir, "%s/merged/", bn_test_tmpdir());
    CHECK_OK(bn_tr_save_safetensors(m, mdir));
    bn_model *mm = NULL;
    CHECK_OK(bn_model_load(mdir, NULL, &mm));
    float *mgot = mm ? engine_logits(mm, tok, T, V) : NULL;
    CHECK(mgot != NULL);
    if (mgot && got) {
        bool ok = spec_close(mref, mgot, T, V, &wm, &wr, &ab);
        fprintf(stderr, "   merged engine vs merged trainer forward: mean|d| %.4f, max rel %.4f, argmax flips %d\n",
                wm, wr, ab);
        CHECK(ok);
        /* for the record: merged (re-quantized) vs base + f32 adapter */
        spec_close(got, mgot, T, V, &wm, &wr, &ab);
        fprintf(stderr, "   merged vs base+adapter (re-quantization): mean|d| %.4f, max rel %.4f, argmax flips %d\n",
                wm, wr, ab);
    }
    bn_model_free(mm);
    free(ref);
    free(got);
    free(base_l);
    free(mref);
    free(mgot);
    bn_tr_lora_free(a);
    bn_tr_model_free(m);
}

/* Merge-aware: the forward is exactly the merged model's, and the adapter
 * gradients are the chain rule through the trainer's own straight-through
 * dW of the merged weight: dB = s dW A^T, dA = s B^T dW. */
static void test_merge_aware(void) {
    bn_tr_model *m = load_base(true), *mm = load_base(true);
    CHECK(m && mm);
    if (!m || !mm) { bn_tr_model_free(m); bn_tr_model_free(mm); return; }
    bn_tr_lora *a = NULL;
    CHECK_OK(bn_tr_lora_create(&m->cfg, 4, 8.0f, (1u << BN_LORA_Q) | (1u << BN_LORA_DOWN), 3, &a));
    if (!a) return;
    randomize_b(a, 6, 0.01f);
    a->merge_aware = true;
    enum { B = 2, T = 12 };
    const int V = m->cfg.vocab;
    int32_t tok[B * T], tgt[B * T];
    fill_tokens(tok, tgt, B * T, 31);
    float *l1 = malloc(sizeof(float) * B * T * V), *l2 = malloc(sizeof(float) * B * T * V);
    double s1, s2;
    int n1, n2;
    bn_tr_lora_zero_grad(a);
    CHECK_OK(bn_tr_lora_forward(m, a, tok, tgt, B, T, 1.0f / (B * T), &s1, &n1, l1));
    CHECK_OK(bn_tr_lora_backward(m, a));
    bn_tr_lora_merge(mm, a);
    bn_tr_zero_grad(mm);
    CHECK_OK(bn_tr_forward(mm, tok, tgt, B, T, 1.0f / (B * T), &s2, &n2, l2));
    CHECK_OK(bn_tr_backward(mm));
    CHECK(memcmp(l1, l2, sizeof(float) * B * T * V) == 0 && s1 == s2);
    double num = 0, den = 0;
    for (int i = 0; i < a->n_pairs; i++) {
        const bn_lora_pair *p = &a->pairs[i];
        const float *dW = bn_tr_g(mm, bn_tr_tensor_layer(mm, p->layer, bn_tr_lora_slot(p->target)));
        const float *gB = a->g + (p->B - a->p), *gA = a->g + (p->A - a->p);
        for (int o = 0; o < p->out; o++)
            for (int r = 0; r < a->rank; r++) {
                double e = 0;
                for (int k = 0; k < p->in; k++) e += (double)dW[(size_t)o * p->in + k] * p->A[(size_t)r * p->in + k];
                e *= a->scale;
                num += (e - gB[o * a->rank + r]) * (e - gB[o * a->rank + r]);
                den += e * e;
            }
        for (int r = 0; r < a->rank; r++)
            for (int k = 0; k < p->in; k++) {
                double e = 0;
                for (int o = 0; o < p->out; o++) e += (double)p->B[(size_t)o * a->rank + r] * dW[(size_t)o * p->in + k];
                e *= a->scale;
                num += (e - gA[(size_t)r * p->in + k]) * (e - gA[(size_t)r * p->in + k]);
                den += e * e;
            }
    }
    fprintf(stderr, "   merge-aware: logits equal the merged model's; |g - chain rule| / |g| = %.2e\n",
            sqrt(num / den));
    CHECK(den > 0 && sqrt(num / den) < 1e-5);
    free(l1);
    free(l2);
    bn_tr_lora_free(a);
    bn_tr_model_free(m);
    bn_tr_model_free(mm);
}

/* A ternary base (no masters) as ternary * scale: the trainer's quantizer
 * must give back the engine's model. */
static void test_from_ternary(void) {
    bn_model *bm = NULL;
    CHECK_OK(bn_model_load(bn_test_src(BASE), NULL, &bm));
    if (!bm) return;
    bn_tr_model *m = NULL;
    CHECK_OK(bn_tr_model_from_bn_model(bm, &m));
    if (m) {
        enum { T = 20 };
        const int V = m->cfg.vocab;
        int32_t tok[T], tgt[T];
        fill_tokens(tok, tgt, T, 8);
        float *ref = malloc(sizeof(float) * T * V);
        double ls;
        int nn;
        CHECK_OK(bn_tr_forward(m, tok, tgt, 1, T, 1.0f, &ls, &nn, ref));
        float *got = engine_logits(bm, tok, T, V);
        double wm = 0, wr = 0;
        int ab = 0;
        CHECK(got && spec_close(ref, got, T, V, &wm, &wr, &ab));
        fprintf(stderr, "   trainer from ternary vs engine: mean|d| %.4f, max rel %.4f\n", wm, wr);
        free(ref);
        free(got);
        bn_tr_model_free(m);
    }
    bn_model_free(bm);
}

static void test_sft_masking(void) {
    const char *jl =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"2+3\"}, {\"role\": \"assistant\", \"content\": \"A: 5\"}]}\n"
        "\n"
        "{\"text\": \"abc\"}\n";
    bn_tr_sft_data d;
    CHECK_OK(bn_tr_sft_parse(jl, strlen(jl), "t.jsonl", NULL, "chatml", 256, &d));
    CHECK(d.n_ex == 2);
    if (d.n_ex == 2) {
        /* byte model: the scored bytes are exactly the reply and its end of turn */
        char s[128];
        int k = 0;
        for (int i = 0; i < d.ex[0].n && k < 127; i++)
            if (d.ex[0].score[i]) s[k++] = (char)d.ex[0].ids[i];
        s[k] = 0;
        CHECK_MSG(!strcmp(s, "A: 5<|im_end|>\n"), "scored '%s'", s);
        CHECK(d.ex[1].n == 3 && d.ex[1].score[1] && d.ex[1].score[2]);
        /* batch: targets only where scored */
        bn_tr_rng r;
        bn_tr_rng_seed(&r, 1);
        enum { TT = 128 };
        int32_t tok[2 * TT], tgt[2 * TT];
        bn_tr_sft_batch(&d, &r, 2, TT, tok, tgt);
        for (int b = 0; b < 2; b++) {
            int n = 0;
            for (int t = 0; t < TT; t++) n += tgt[b * TT + t] >= 0;
            CHECK_MSG(n == 15 || n == 2, "%d targets", n);
        }
    }
    bn_tr_sft_free(&d);

    /* with a real tokenizer and its chat template */
    bn_tokenizer *tok = NULL;
    CHECK_OK(bn_tokenizer_load(bn_test_src("tests/data/tokenizer/chatml"), &tok));
    if (tok) {
        CHECK_OK(bn_tr_sft_parse(jl, strlen(jl), "t.jsonl", tok, "chatml", bn_tokenizer_n_vocab(tok), &d));
        if (d.n_ex == 2) {
            int32_t ids[64];
            int k = 0;
            for (int i = 0; i < d.ex[0].n && k < 64; i++)
                if (d.ex[0].score[i]) ids[k++] = d.ex[0].ids[i];
            char *txt = NULL;
            size_t tl;
            CHECK_OK(bn_detokenize(tok, ids, (size_t)k, false, &txt, &tl));
            CHECK_MSG(txt && !strcmp(txt, "A: 5<|im_end|>\n"), "scored '%s'", txt ? txt : "");
            free(txt);
        }
        bn_tr_sft_free(&d);
        bn_tokenizer_free(tok);
    }
}

static void test_freeze(void) {
    CHECK(bn_tr_glob("model.layers.*.mlp.*", "model.layers.3.mlp.up_proj.weight"));
    CHECK(!bn_tr_glob("model.layers.*.mlp.*", "model.layers.3.self_attn.q_proj.weight"));
    CHECK(bn_tr_glob("*norm*", "model.norm.weight"));
    CHECK(bn_tr_glob("model.layers.?.input_layernorm.weight", "model.layers.1.input_layernorm.weight"));
    CHECK(!bn_tr_glob("model.embed", "model.embed_tokens.weight"));
    bn_tr_model *m = load_base(true);
    if (!m) return;
    bool fr[64];
    int n = 0;
    const char *pats[] = {"model.layers.*.mlp.*", "model.embed_tokens.*"};
    CHECK_OK(bn_tr_freeze(m, pats, 2, fr, &n));
    CHECK(n == 2 * 4 + 1);
    CHECK(fr[bn_tr_find_tensor(m, "model.layers.1.mlp.ffn_sub_norm.weight")]);
    CHECK(!fr[bn_tr_find_tensor(m, "model.layers.1.self_attn.o_proj.weight")]);
    const char *bad[] = {"model.layers.*.attention.*"};
    CHECK(bn_tr_freeze(m, bad, 1, fr, &n) == BN_ERR_INVALID_ARG);
    bn_tr_model_free(m);
}

static void test_bad_input(void) {
    bn_tr_config c;
    CHECK_OK(bn_tr_config_preset("tiny", &c));
    bn_tr_lora *a = NULL;
    /* rank larger than the layer: k/v are [32, 64] in the tiny shape */
    CHECK(bn_tr_lora_create(&c, 33, 1.0f, 1u << BN_LORA_K, 1, &a) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "larger than the k_proj layer [32, 64]") != NULL);
    CHECK_OK(bn_tr_lora_create(&c, 32, 1.0f, 1u << BN_LORA_K, 1, &a));
    bn_tr_lora_free(a);
    a = NULL;
    /* unknown target names */
    unsigned mask;
    CHECK(bn_lora_parse_targets("q,qkv", &mask) == BN_ERR_INVALID_ARG);
    CHECK(strstr(bn_last_error(), "'qkv'") != NULL);
    CHECK_OK(bn_lora_parse_targets("q_proj,v,down", &mask));
    CHECK(mask == ((1u << BN_LORA_Q) | (1u << BN_LORA_V) | (1u << BN_LORA_DOWN)));
    /* JSONL line without text or messages: its line number */
    const char *jl = "{\"text\": \"ok\"}\n\n{\"prompt\": \"x\"}\n";
    bn_tr_sft_data d;
    CHECK(bn_tr_sft_parse(jl, strlen(jl), "train.jsonl", NULL, "chatml", 256, &d) == BN_ERR_FORMAT);
    CHECK_MSG(strstr(bn_last_error(), "train.jsonl:3:") != NULL, "%s", bn_last_error());
    const char *jl2 = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n";
    CHECK(bn_tr_sft_parse(jl2, strlen(jl2), "x.jsonl", NULL, "chatml", 256, &d) == BN_ERR_FORMAT);
    CHECK(strstr(bn_last_error(), "x.jsonl:1") && strstr(bn_last_error(), "no assistant"));
    CHECK(bn_tr_sft_parse("not json\n", 9, "y.jsonl", NULL, "chatml", 256, &d) == BN_ERR_FORMAT);
    CHECK(strstr(bn_last_error(), "y.jsonl:1:") != NULL);

    /* an adapter for another base: hidden 32 instead of 64 */
    bn_tr_config other = c;
    other.hidden = 32;
    other.heads = 2;
    CHECK_OK(bn_tr_lora_create(&other, 4, 8.0f, (1u << BN_LORA_Q) | (1u << BN_LORA_V), 1, &a));
    char dir[512];
    snprintf(dir, sizeof dir, "%s/other", bn_test_tmpdir());
    CHECK_OK(bn_tr_lora_save(a, dir, "other"));
    bn_tr_lora_free(a);
    bn_model *bm = NULL;
    CHECK_OK(bn_model_load(bn_test_src(BASE), NULL, &bm));
    if (bm) {
        CHECK(bn_model_apply_lora(bm, dir, 1.0f) == BN_ERR_SHAPE);
        CHECK_MSG(strstr(bn_last_error(), "another base"), "%s", bn_last_error());
        bn_model_free(bm);
    }
    bn_tr_config base;
    CHECK_OK(bn_tr_config_load(bn_test_src(BASE), &base));
    CHECK(bn_tr_lora_load(&base, dir, &a) == BN_ERR_SHAPE);
    /* a missing adapter folder */
    CHECK(bn_tr_lora_load(&base, "/nonexistent/adapter", &a) != BN_OK);
}

int main(void) {
    /* one thread: the suite runs on 2 shared cores */
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    RUN(test_grad_fd);
    RUN(test_zero_adapter_is_base);
    RUN(test_save_apply_merge);
    RUN(test_merge_aware);
    RUN(test_from_ternary);
    RUN(test_sft_masking);
    RUN(test_freeze);
    RUN(test_bad_input);
    return bn_test_finish("lora");
}
