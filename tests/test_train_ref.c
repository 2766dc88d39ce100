/* test_train_ref.c — the whole training step against transformers
 * (tests/data/train-tiny, from ../shared/fixtures/train-tiny): step-0 logits,
 * loss and every parameter gradient, then 10 AdamW steps (losses, grad
 * norms, parameters after step 1 and at the end). */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "train/train.h"
#include "harness.h"

#define DIR "tests/data/train-tiny/"

static float *read_f32(const char *rel, size_t want) {
    size_t n = 0;
    float *p = bn_test_read(bn_test_src(rel), &n);
    if (!p || n != want * 4) {
        fprintf(stderr, "cannot read %s (%zu bytes, want %zu)\n", rel, n, want * 4);
        free(p);
        return NULL;
    }
    return p;
}

/* load one raw f32 file per tensor from a folder into dst (flat layout) */
static bool load_dir(const bn_tr_model *m, const char *sub, float *dst) {
    for (int t = 0; t < m->n_tensors; t++) {
        char rel[512];
        snprintf(rel, sizeof rel, DIR "%s/%s.bin", sub, m->params[t].name);
        float *p = read_f32(rel, m->params[t].n);
        if (!p) return false;
        memcpy(dst + m->params[t].off, p, 4 * m->params[t].n);
        free(p);
    }
    return true;
}

static bn_tr_model *make_model(int32_t *tokens, int32_t *targets) {
    bn_tr_config cfg;
    CHECK_OK(bn_tr_config_load(bn_test_src(DIR "model/config.json"), &cfg));
    bn_tr_config pre;
    CHECK_OK(bn_tr_config_preset("tiny", &pre));
    CHECK(cfg.hidden == pre.hidden && cfg.ffn == pre.ffn && cfg.kv_heads == pre.kv_heads);
    bn_tr_model *m = NULL;
    CHECK_OK(bn_tr_model_create(&cfg, true, &m));
    if (!m) return NULL;
    CHECK(m->n_tensors == 24);
    /* the bf16 master checkpoint holds exactly the f32 initial values */
    bn_status st = bn_tr_load_safetensors(m, bn_test_src(DIR "model"));
    CHECK_OK(st);
    if (st != BN_OK) { bn_tr_model_free(m); return NULL; }
    size_t n = 0;
    int32_t *tok = bn_test_read(bn_test_src(DIR "batch/tokens.bin"), &n);
    CHECK(tok && n == 4 * 2 * 17);
    if (!tok || n != 4 * 2 * 17) { free(tok); bn_tr_model_free(m); return NULL; }
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 16; t++) {
            tokens[b * 16 + t] = tok[b * 17 + t];
            targets[b * 16 + t] = tok[b * 17 + t + 1];
        }
    free(tok);
    return m;
}

static void test_step0(void) {
    int32_t tokens[32], targets[32];
    bn_tr_model *m = make_model(tokens, targets);
    if (!m) { CHECK(0); return; }
    float *logits = malloc(sizeof(float) * 32 * 256);
    double ls = 0;
    int nt = 0;
    bn_tr_zero_grad(m);
    CHECK_OK(bn_tr_forward(m, tokens, targets, 2, 16, 1.0f / 32, &ls, &nt, logits));
    CHECK(nt == 32);
    float *rl = read_f32(DIR "step0/logits.bin", 32 * 256), *rloss = read_f32(DIR "step0/loss.bin", 1);
    if (rl && rloss) {
        double md = 0, mx = 0;
        for (int i = 0; i < 32 * 256; i++) {
            md = fmax(md, fabs((double)logits[i] - rl[i]));
            mx = fmax(mx, fabs((double)rl[i]));
        }
        double loss = (float)(ls / nt);
        fprintf(stderr, "   step-0 loss %.7f (ref %.7f, diff %.2e); logits max|d| %.2e (rel %.2e)\n",
                loss, rloss[0], loss - rloss[0], md, md / mx);
        CHECK(fabs(loss - rloss[0]) < 2e-6);
        CHECK(md / mx < 2e-6);
    } else CHECK(0);
    free(rl);
    free(rloss);
    CHECK_OK(bn_tr_backward(m));
    float *rg = malloc(sizeof(float) * m->n_params);
    if (load_dir(m, "grads_step0", rg)) {
        double worst = 0, num = 0, den = 0;
        const char *wn = "";
        for (int t = 0; t < m->n_tensors; t++) {
            const bn_tr_param *p = &m->params[t];
            double md = 0, mg = 0;
            for (size_t i = 0; i < p->n; i++) {
                double d = (double)m->g[p->off + i] - rg[p->off + i];
                md = fmax(md, fabs(d));
                mg = fmax(mg, fabs((double)rg[p->off + i]));
                num += d * d;
                den += (double)rg[p->off + i] * rg[p->off + i];
            }
            double rel = md / (mg > 0 ? mg : 1);
            fprintf(stderr, "   grad %-48s max|d|/max|g| %.2e\n", p->name, rel);
            if (rel > worst) { worst = rel; wn = p->name; }
            CHECK_MSG(rel < 1e-4, "%s gradient rel err %.3e", p->name, rel);
        }
        fprintf(stderr, "   gradients: worst %s %.2e; global rel L2 %.2e\n", wn, worst,
                sqrt(num / den));
        CHECK(sqrt(num / den) < 1e-5);
        float *gn = read_f32(DIR "train/grad_norms.bin", 10);
        if (gn) {
            double g = bn_tr_grad_norm(m);
            fprintf(stderr, "   step-0 grad norm %.7f (ref %.7f)\n", g, gn[0]);
            CHECK(fabs(g - gn[0]) < 1e-5 * gn[0]);
        }
        free(gn);
    } else CHECK(0);
    free(rg);
    free(logits);
    bn_tr_model_free(m);
}

static void compare_params(const bn_tr_model *m, const char *sub, const float *before,
                           double tol_upd_max, double tol_upd_l2) {
    float *ref = malloc(sizeof(float) * m->n_params);
    if (!load_dir(m, sub, ref)) { CHECK(0); free(ref); return; }
    double worst = 0, num = 0, den = 0;
    const char *wn = "";
    for (int t = 0; t < m->n_tensors; t++) {
        const bn_tr_param *p = &m->params[t];
        double md = 0, mu = 0;
        for (size_t i = 0; i < p->n; i++) {
            size_t k = p->off + i;
            double d = (double)m->w[k] - ref[k], u = (double)ref[k] - before[k];
            md = fmax(md, fabs(d));
            mu = fmax(mu, fabs(u));
            num += d * d;
            den += u * u;
        }
        double rel = md / (mu > 0 ? mu : 1);
        if (rel > worst) { worst = rel; wn = p->name; }
    }
    double l2 = sqrt(num / den);
    fprintf(stderr, "   %s: worst tensor %s max|d| = %.2e of its largest update; "
            "rel L2 to the update %.2e\n", sub, wn, worst, l2);
    CHECK(worst < tol_upd_max);
    CHECK(l2 < tol_upd_l2);
    free(ref);
}

static void test_ten_steps(void) {
    int32_t tokens[32], targets[32];
    bn_tr_model *m = make_model(tokens, targets);
    if (!m) { CHECK(0); return; }
    bn_tr_adamw opt = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    CHECK_OK(bn_tr_adamw_init(&opt, m->n_params));
    float *init = malloc(sizeof(float) * m->n_params);
    memcpy(init, m->w, sizeof(float) * m->n_params);
    float *losses = read_f32(DIR "train/losses.bin", 10), *gn = read_f32(DIR "train/grad_norms.bin", 10);
    float *last = read_f32(DIR "train/loss_after_last_step.bin", 1);
    if (!losses || !gn || !last) { CHECK(0); goto out; }
    double maxdl = 0, maxdg = 0;
    for (int s = 0; s < 10; s++) {
        double ls;
        int nt;
        bn_tr_zero_grad(m);
        CHECK_OK(bn_tr_forward(m, tokens, targets, 2, 16, 1.0f / 32, &ls, &nt, NULL));
        CHECK_OK(bn_tr_backward(m));
        float loss = (float)(ls / nt);
        double g = bn_tr_grad_norm(m);
        fprintf(stderr, "   step %d loss %.7f (ref %.7f, d %+.1e) grad norm %.7f (ref %.7f)\n", s,
                loss, losses[s], loss - losses[s], g, gn[s]);
        maxdl = fmax(maxdl, fabs(loss - losses[s]));
        maxdg = fmax(maxdg, fabs(g - gn[s]) / gn[s]);
        if (s == 0) CHECK(fabs(loss - losses[0]) < 2e-6);
        bn_tr_adamw_step(&opt, m, 1e-3, 0.1);
        if (s == 0) compare_params(m, "params_after_step1", init, 0.05, 1e-3);
    }
    double ls;
    int nt;
    CHECK_OK(bn_tr_forward(m, tokens, targets, 2, 16, 1.0f / 32, &ls, &nt, NULL));
    fprintf(stderr, "   loss after the last step %.7f (ref %.7f); max |d loss| %.2e, max rel d "
            "grad norm %.2e\n", ls / nt, last[0], maxdl, maxdg);
    /* CPU vs GPU in the fixture: losses within 7.1e-5 (a transient int8 rounding
     * flip at step 3, which this engine may reproduce too depending on the
     * sgemm summation order), grad norms within 8.9e-6 */
    CHECK(maxdl < 2e-4);
    CHECK(maxdg < 5e-5);
    CHECK(fabs(ls / nt - last[0]) < 2e-4);
    compare_params(m, "params_final", init, 0.05, 1e-3);
out:
    free(losses);
    free(gn);
    free(last);
    free(init);
    bn_tr_adamw_free(&opt);
    bn_tr_model_free(m);
}

int main(void) {
    openblas_set_num_threads(1);  /* the trainer parallelises with OpenMP (train.h) */
    RUN(test_step0);
    RUN(test_ten_steps);
    return bn_test_finish("test_train_ref");
}
