/* test_train_misc.c — the pieces around the training step: LR schedules,
 * gradient accumulation and clipping, a whole-model finite-difference check
 * (no quantization), checkpoints (round trip, damage, shape), token shards
 * and the window sampler (seeded, resumable), config parsing. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "train/train.h"
#include "harness.h"

static void test_schedules(void) {
    bn_tr_schedule s = {.kind = BN_TR_SCHED_COSINE, .lr = 1.0, .min_lr = 0.1, .warmup = 10,
                        .total = 110, .weight_decay = 0.1};
    double lr, wd;
    bn_tr_schedule_at(&s, 0, &lr, &wd);
    CHECK(fabs(lr - 0.1) < 1e-12);            /* warmup: (step+1)/warmup */
    bn_tr_schedule_at(&s, 9, &lr, &wd);
    CHECK(fabs(lr - 1.0) < 1e-12);
    bn_tr_schedule_at(&s, 10, &lr, &wd);
    CHECK(fabs(lr - 1.0) < 1e-12);            /* cosine starts at the peak */
    bn_tr_schedule_at(&s, 109, &lr, &wd);
    CHECK(fabs(lr - 0.1) < 1e-12);            /* and ends at min_lr */
    bn_tr_schedule_at(&s, 60, &lr, &wd);      /* halfway (f = 50/99) */
    CHECK(fabs(lr - (0.1 + 0.45 * (1 + cos(M_PI * 50.0 / 99.0)))) < 1e-12);
    s.kind = BN_TR_SCHED_LINEAR;
    bn_tr_schedule_at(&s, 109, &lr, &wd);
    CHECK(fabs(lr - 0.1) < 1e-12);
    s.kind = BN_TR_SCHED_WSD;                 /* stable until the last 20% */
    bn_tr_schedule_at(&s, 80, &lr, &wd);
    CHECK(fabs(lr - 1.0) < 1e-12);
    bn_tr_schedule_at(&s, 109, &lr, &wd);
    CHECK(fabs(lr - 0.1) < 1e-12);
    bn_tr_schedule_at(&s, 100, &lr, &wd);
    CHECK(lr < 1.0 && lr > 0.1);
    s.kind = BN_TR_SCHED_TWO_STAGE;
    s.stage2_lr_frac = 0.4;
    double lr54, wd54, lr55, wd55;
    bn_tr_schedule_at(&s, 54, &lr54, &wd54);  /* stage 1: weight decay on */
    bn_tr_schedule_at(&s, 55, &lr55, &wd55);  /* midpoint: drop, weight decay off */
    CHECK(wd54 == 0.1 && wd55 == 0);
    CHECK(fabs(lr55 - 0.4) < 1e-12 && lr54 > 0.65);
    bn_tr_schedule_at(&s, 109, &lr, &wd);
    CHECK(fabs(lr - 0.1) < 1e-12 && wd == 0);
    s.kind = BN_TR_SCHED_CONSTANT;
    s.warmup = 0;
    bn_tr_schedule_at(&s, 77, &lr, &wd);
    CHECK(lr == 1.0 && wd == 0.1);
    bn_tr_sched_kind k;
    CHECK(bn_tr_schedule_parse("wsd", &k) == BN_OK && k == BN_TR_SCHED_WSD);
    CHECK(bn_tr_schedule_parse("bitnet", &k) == BN_OK && k == BN_TR_SCHED_TWO_STAGE);
    CHECK(bn_tr_schedule_parse("nope", &k) == BN_ERR_INVALID_ARG);
}

static bn_tr_model *tiny(bool quant, uint64_t seed) {
    bn_tr_config c;
    CHECK_OK(bn_tr_config_preset("tiny", &c));
    bn_tr_model *m = NULL;
    CHECK_OK(bn_tr_model_create(&c, quant, &m));
    if (m) bn_tr_model_init_random(m, seed);
    /* larger weights than the default 0.02 so that gradients are not tiny */
    if (m) for (size_t i = 0; i < m->n_params; i++) m->w[i] *= 3;
    return m;
}

static void make_batch(int32_t *tok, int32_t *tgt, int n, uint64_t seed) {
    bn_tr_rng r;
    bn_tr_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) { tok[i] = (int32_t)bn_tr_rng_below(&r, 256); tgt[i] = (int32_t)bn_tr_rng_below(&r, 256); }
}

/* Accumulating two micro-batches of one sequence equals one batch of two. */
static void test_accumulation(void) {
    bn_tr_model *m = tiny(false, 11);  /* fp32: no int8 flips between batch shapes */
    if (!m) return;
    int32_t tok[2 * 12], tgt[2 * 12];
    make_batch(tok, tgt, 24, 3);
    double l1, l2, l3;
    int n1, n2, n3;
    bn_tr_zero_grad(m);
    CHECK_OK(bn_tr_forward(m, tok, tgt, 2, 12, 1.0f / 24, &l1, &n1, NULL));
    CHECK_OK(bn_tr_backward(m));
    float *g_full = malloc(sizeof(float) * m->n_params);
    memcpy(g_full, m->g, sizeof(float) * m->n_params);
    bn_tr_zero_grad(m);
    CHECK_OK(bn_tr_forward(m, tok, tgt, 1, 12, 1.0f / 24, &l2, &n2, NULL));
    CHECK_OK(bn_tr_backward(m));
    CHECK_OK(bn_tr_forward(m, tok + 12, tgt + 12, 1, 12, 1.0f / 24, &l3, &n3, NULL));
    CHECK_OK(bn_tr_backward(m));
    CHECK(n1 == 24 && n2 + n3 == 24);
    CHECK(fabs(l1 - (l2 + l3)) < 1e-6 * fabs(l1));
    double num = 0, den = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        double d = (double)g_full[i] - m->g[i];
        num += d * d;
        den += (double)g_full[i] * g_full[i];
    }
    fprintf(stderr, "   accumulation vs one batch: gradient rel L2 %.2e\n", sqrt(num / den));
    CHECK(sqrt(num / den) < 1e-5);
    /* clipping: scaling to a target norm */
    double gn = bn_tr_grad_norm(m);
    bn_tr_scale_grads(m, (float)(0.5 / gn));
    CHECK(fabs(bn_tr_grad_norm(m) - 0.5) < 1e-5);
    free(g_full);
    bn_tr_model_free(m);
}

/* Whole-model finite differences with quantization off (the quantizers are
 * piecewise constant; their straight-through backward is checked against
 * transformers in test_train_ref). Covers the tied head + embedding, every
 * norm, attention, RoPE, relu^2 and the loss together. */
static void test_model_fd(void) {
    bn_tr_model *m = tiny(false, 12);
    if (!m) return;
    int32_t tok[2 * 8], tgt[2 * 8];
    make_batch(tok, tgt, 16, 4);
    double ls;
    int nt;
    bn_tr_zero_grad(m);
    CHECK_OK(bn_tr_forward(m, tok, tgt, 2, 8, 1.0f / 16, &ls, &nt, NULL));
    CHECK_OK(bn_tr_backward(m));
    bn_tr_rng r;
    bn_tr_rng_seed(&r, 9);
    double worst = 0;
    int checked = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        const bn_tr_param *p = &m->params[t];
        /* the gradient's largest entry in this tensor sets the scale */
        double gmax = 0;
        for (size_t i = 0; i < p->n; i++) gmax = fmax(gmax, fabs(m->g[p->off + i]));
        for (int s = 0; s < 3; s++) {
            size_t i = p->off + (s == 0 ? 0 : bn_tr_rng_below(&r, p->n));
            if (s == 2) {  /* also the entry with the largest gradient */
                for (size_t j = 0; j < p->n; j++) if (fabs(m->g[p->off + j]) == gmax) { i = p->off + j; break; }
            }
            float old = m->w[i], h = 1e-3f * fmaxf(1.0f, fabsf(old));
            double lp, lm;
            m->w[i] = old + h;
            CHECK_OK(bn_tr_forward(m, tok, tgt, 2, 8, 0, &lp, &nt, NULL));
            m->w[i] = old - h;
            CHECK_OK(bn_tr_forward(m, tok, tgt, 2, 8, 0, &lm, &nt, NULL));
            m->w[i] = old;
            double fd = (lp - lm) / (2.0 * h) / 16, an = m->g[i];
            double rel = fabs(fd - an) / fmax(gmax, 1e-6);
            if (rel > worst) worst = rel;
            CHECK_MSG(rel < 1e-2, "%s[%zu]: analytic %.6g, finite difference %.6g", p->name,
                      i - p->off, an, fd);
            checked++;
        }
    }
    fprintf(stderr, "   whole model (fp32): %d entries, worst |fd - grad| / max|grad| %.2e\n",
            checked, worst);
    bn_tr_model_free(m);
}

static void test_checkpoint(void) {
    bn_tr_model *m = tiny(true, 13), *m2 = tiny(true, 14);
    if (!m || !m2) { bn_tr_model_free(m); bn_tr_model_free(m2); return; }
    bn_tr_adamw o = {0}, o2 = {0};
    CHECK_OK(bn_tr_adamw_init(&o, m->n_params));
    CHECK_OK(bn_tr_adamw_init(&o2, m->n_params));
    for (size_t i = 0; i < m->n_params; i++) { o.m[i] = (float)i; o.v[i] = (float)(2 * i); }
    o.step = 42;
    bn_tr_state st = {.step = 42, .tokens_seen = 1234};
    bn_tr_rng_seed(&st.data_rng, 5);
    bn_tr_rng_seed(&st.aux_rng, 6);
    char path[512];
    snprintf(path, sizeof path, "%s/ck", bn_test_tmpdir());
    CHECK_OK(bn_tr_checkpoint_save(path, m, &o, &st));
    CHECK(access(path, F_OK) == 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);  /* the temporary was renamed away */
    bn_tr_state st2;
    CHECK_OK(bn_tr_checkpoint_load(path, m2, &o2, &st2));
    CHECK(!memcmp(m->w, m2->w, 4 * m->n_params) && !memcmp(o.m, o2.m, 4 * m->n_params) &&
          !memcmp(o.v, o2.v, 4 * m->n_params));
    CHECK(st2.step == 42 && o2.step == 42 && st2.tokens_seen == 1234 &&
          !memcmp(&st2.data_rng, &st.data_rng, sizeof st.data_rng) &&
          !memcmp(&st2.aux_rng, &st.aux_rng, sizeof st.aux_rng));
    /* one flipped byte in the weights is detected */
    size_t n = 0;
    uint8_t *buf = bn_test_read(path, &n);
    if (buf) {
        buf[n / 2] ^= 1;
        char bad[600];
        snprintf(bad, sizeof bad, "%s/bad", bn_test_tmpdir());
        FILE *f = fopen(bad, "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
        CHECK(bn_tr_checkpoint_load(bad, m2, &o2, &st2) == BN_ERR_FORMAT);
        CHECK(strstr(bn_last_error(), "checksum") != NULL);
        free(buf);
    }
    /* another shape is refused */
    bn_tr_config c = m->cfg;
    c.ffn = 96;
    bn_tr_model *m3 = NULL;
    CHECK_OK(bn_tr_model_create(&c, true, &m3));
    bn_tr_adamw o3 = {0};
    if (m3) {
        CHECK_OK(bn_tr_adamw_init(&o3, m3->n_params));
        CHECK(bn_tr_checkpoint_load(path, m3, &o3, &st2) == BN_ERR_SHAPE);
    }
    bn_tr_adamw_free(&o3);
    bn_tr_model_free(m3);
    bn_tr_adamw_free(&o);
    bn_tr_adamw_free(&o2);
    bn_tr_model_free(m);
    bn_tr_model_free(m2);
}

static void test_shards(void) {
    uint32_t ids[1000];
    for (int i = 0; i < 1000; i++) ids[i] = (uint32_t)(i * 37 % 300);
    char p2[512], p4[512];
    snprintf(p2, sizeof p2, "%s/s2.bin", bn_test_tmpdir());
    snprintf(p4, sizeof p4, "%s/s4.bin", bn_test_tmpdir());
    CHECK_OK(bn_tr_shard_write(p2, ids, 1000, 300));
    CHECK_OK(bn_tr_shard_write(p4, ids, 1000, 70000));
    bn_tr_shard a, b;
    CHECK_OK(bn_tr_shard_open(p2, &a));
    CHECK_OK(bn_tr_shard_open(p4, &b));
    CHECK(a.width == 2 && b.width == 4 && a.count == 1000 && a.vocab == 300);
    int bad = 0;
    for (int i = 0; i < 1000; i++) bad += bn_tr_shard_get(&a, i) != ids[i] || bn_tr_shard_get(&b, i) != ids[i];
    CHECK(bad == 0);
    /* sampling: windows are contiguous, targets shifted by one; the RNG state
     * is the data position: copying it reproduces the next batches exactly */
    bn_tr_rng r;
    bn_tr_rng_seed(&r, 77);
    int32_t t1[4 * 16], g1[4 * 16], t2[4 * 16], g2[4 * 16];
    CHECK_OK(bn_tr_shard_sample(&a, &r, 4, 16, t1, g1));
    for (int i = 0; i < 4 * 16; i++)
        if (i % 16 < 15) CHECK(g1[i] == t1[i + 1]);
    bn_tr_rng saved = r;
    CHECK_OK(bn_tr_shard_sample(&a, &r, 4, 16, t1, g1));
    CHECK_OK(bn_tr_shard_sample(&a, &saved, 4, 16, t2, g2));
    CHECK(!memcmp(t1, t2, sizeof t1) && !memcmp(g1, g2, sizeof g1));
    CHECK(bn_tr_shard_sample(&a, &r, 1, 1000, t1, g1) == BN_ERR_INVALID_ARG);  /* too short */
    bn_tr_shard_close(&a);
    bn_tr_shard_close(&b);
    /* a truncated shard is refused */
    size_t n = 0;
    uint8_t *buf = bn_test_read(p2, &n);
    if (buf) {
        FILE *f = fopen(p2, "wb");
        fwrite(buf, 1, n - 3, f);
        fclose(f);
        free(buf);
        CHECK(bn_tr_shard_open(p2, &a) == BN_ERR_FORMAT);
    }
    CHECK(bn_tr_shard_write(p2, ids, 1000, 200) == BN_ERR_INVALID_ARG);  /* id >= vocab */
}

static void test_config(void) {
    bn_tr_config c;
    CHECK_OK(bn_tr_config_from_json("{\"vocab_size\": 100, \"hidden_size\": 32, "
        "\"intermediate_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4}", &c));
    CHECK(c.kv_heads == 4 && c.head_dim == 8 && c.eps == 1e-5f);
    CHECK(bn_tr_config_from_json("{\"vocab_size\": 100, \"hidden_size\": 30, "
        "\"intermediate_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
        "\"head_dim\": 8}", &c) == BN_ERR_SHAPE);
    CHECK(bn_tr_config_from_json("{\"vocab_size\": 100, \"hidden_size\": 32, "
        "\"intermediate_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
        "\"num_key_value_heads\": 3}", &c) == BN_ERR_SHAPE);
    CHECK(bn_tr_config_from_json("{\"vocab_size\": 0, \"hidden_size\": 32, "
        "\"intermediate_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4}", &c) == BN_ERR_SHAPE);
    CHECK(bn_tr_config_from_json("{\"hidden_size\": 32}", &c) == BN_ERR_FORMAT);
    CHECK(bn_tr_config_from_json("[1]", &c) == BN_ERR_FORMAT);
    CHECK(bn_tr_config_from_json("{\"vocab_size\": 100, \"hidden_size\": 32, "
        "\"intermediate_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
        "\"tie_word_embeddings\": false}", &c) == BN_ERR_UNSUPPORTED);
    /* the serialised config parses back to the same shape */
    CHECK_OK(bn_tr_config_preset("small", &c));
    char *js = bn_tr_config_to_json(&c);
    bn_tr_config d;
    CHECK(js && bn_tr_config_from_json(js, &d) == BN_OK);
    CHECK(d.hidden == c.hidden && d.ffn == c.ffn && d.kv_heads == c.kv_heads &&
          d.rope_theta == c.rope_theta && d.head_dim == c.head_dim);
    free(js);
    CHECK(bn_tr_config_preset("huge", &c) == BN_ERR_INVALID_ARG);
}

int main(void) {
    openblas_set_num_threads(1);  /* the trainer parallelises with OpenMP (train.h) */
    RUN(test_schedules);
    RUN(test_accumulation);
    RUN(test_model_fd);
    RUN(test_checkpoint);
    RUN(test_shards);
    RUN(test_config);
    return bn_test_finish("test_train_misc");
}
