/* lora.c — LoRA adapters for the trainer: creation (seeded init), AdamW,
 * PEFT save/load, merge into the latent weights; freezing by name glob. */
#include "train/lora.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/safetensors.h"

static const int k_slot[BN_LORA_N_TARGETS] = {BN_TR_Q, BN_TR_K, BN_TR_V, BN_TR_O,
                                              BN_TR_GATE, BN_TR_UP, BN_TR_DOWN};
int bn_tr_lora_slot(int target) { return k_slot[target]; }

/* [out, in] of a target in a config */
static void target_dims(const bn_tr_config *c, int t, int32_t *in, int32_t *out) {
    const int32_t H = c->hidden, F = c->ffn, qs = c->heads * c->head_dim,
                  ks = c->kv_heads * c->head_dim;
    switch (t) {
    case BN_LORA_Q: *in = H; *out = qs; break;
    case BN_LORA_K: case BN_LORA_V: *in = H; *out = ks; break;
    case BN_LORA_O: *in = qs; *out = H; break;
    case BN_LORA_GATE: case BN_LORA_UP: *in = H; *out = F; break;
    default: *in = F; *out = H; break;
    }
}


/* Allocate the layout for cfg/rank/targets; parameters zeroed. */
static bn_status lora_alloc(const bn_tr_config *cfg, int32_t rank, float alpha, unsigned targets,
                            bn_tr_lora **out) {
    *out = NULL;
    if (rank < 1) return bn_fail(BN_ERR_INVALID_ARG, "LoRA rank must be at least 1 (got %d)", rank);
    if (!targets || targets >= (1u << BN_LORA_N_TARGETS))
        return bn_fail(BN_ERR_INVALID_ARG, "no valid LoRA targets");
    if (!(alpha > 0) || !isfinite(alpha))
        return bn_fail(BN_ERR_INVALID_ARG, "LoRA alpha must be positive (got %g)", alpha);
    for (int t = 0; t < BN_LORA_N_TARGETS; t++) {
        if (!(targets & (1u << t))) continue;
        int32_t in, o;
        target_dims(cfg, t, &in, &o);
        if (rank > in || rank > o)
            return bn_fail(BN_ERR_INVALID_ARG, "LoRA rank %d is larger than the %s layer "
                           "[%d, %d] (at most %d)", rank, bn_lora_target_module(t), o, in,
                           in < o ? in : o);
    }
    bn_tr_lora *a = bn_calloc(1, sizeof *a);
    if (!a) return BN_ERR_NOMEM;
    a->rank = rank;
    a->alpha = alpha;
    a->scale = alpha / (float)rank;
    a->targets = targets;
    a->layers = cfg->layers;
    const size_t ns = (size_t)cfg->layers * BN_LORA_N_TARGETS;
    a->slot = bn_malloc(sizeof(int32_t) * ns);
    a->pairs = bn_calloc(ns, sizeof *a->pairs);
    if (!a->slot || !a->pairs) { bn_tr_lora_free(a); return BN_ERR_NOMEM; }
    size_t off = 0;
    for (int l = 0; l < cfg->layers; l++)
        for (int t = 0; t < BN_LORA_N_TARGETS; t++) {
            a->slot[(size_t)l * BN_LORA_N_TARGETS + t] = -1;
            if (!(targets & (1u << t))) continue;
            bn_lora_pair *p = &a->pairs[a->n_pairs];
            p->layer = l;
            p->target = t;
            target_dims(cfg, t, &p->in, &p->out);
            a->slot[(size_t)l * BN_LORA_N_TARGETS + t] = a->n_pairs++;
            off += (size_t)rank * ((size_t)p->in + (size_t)p->out);
        }
    a->n = off;
    a->p = bn_aligned_alloc(64, sizeof(float) * off);
    a->g = bn_aligned_alloc(64, sizeof(float) * off);
    a->m1 = bn_aligned_alloc(64, sizeof(float) * off);
    a->m2 = bn_aligned_alloc(64, sizeof(float) * off);
    if (!a->p || !a->g || !a->m1 || !a->m2) { bn_tr_lora_free(a); return BN_ERR_NOMEM; }
    memset(a->p, 0, sizeof(float) * off);
    memset(a->g, 0, sizeof(float) * off);
    memset(a->m1, 0, sizeof(float) * off);
    memset(a->m2, 0, sizeof(float) * off);
    off = 0;
    for (int i = 0; i < a->n_pairs; i++) {
        bn_lora_pair *p = &a->pairs[i];
        p->A = a->p + off;
        off += (size_t)rank * p->in;
        p->B = a->p + off;
        off += (size_t)rank * p->out;
    }
    *out = a;
    return BN_OK;
}

bn_status bn_tr_lora_create(const bn_tr_config *cfg, int32_t rank, float alpha, unsigned targets,
                            uint64_t seed, bn_tr_lora **out) {
    bn_status st = lora_alloc(cfg, rank, alpha, targets, out);
    if (st != BN_OK) return st;
    bn_tr_lora *a = *out;
    bn_tr_rng r;
    bn_tr_rng_seed(&r, seed);
    for (int i = 0; i < a->n_pairs; i++) {
        bn_lora_pair *p = &a->pairs[i];
        const float bound = 1.0f / sqrtf((float)p->in);
        for (size_t j = 0; j < (size_t)rank * p->in; j++)
            p->A[j] = (float)(2.0 * bn_tr_rng_uniform(&r) - 1.0) * bound;
        /* B stays zero */
    }
    return BN_OK;
}

bn_status bn_tr_lora_load(const bn_tr_config *cfg, const char *dir, bn_tr_lora **out) {
    *out = NULL;
    bn_lora_file f;
    bn_status st = bn_lora_file_read(dir, &f);
    if (st != BN_OK) return st;
    bn_tr_lora *a = NULL;
    st = lora_alloc(cfg, f.rank, f.alpha, f.targets, &a);
    for (int i = 0; i < f.n_pairs && st == BN_OK; i++) {
        const bn_lora_pair *q = &f.pairs[i];
        int s = q->layer < cfg->layers ? a->slot[(size_t)q->layer * BN_LORA_N_TARGETS + q->target] : -1;
        if (s < 0) {
            st = bn_fail(BN_ERR_SHAPE, "layer %d %s is not in the base (%d layers; an adapter "
                         "for another base?)", q->layer, bn_lora_target_module(q->target),
                         cfg->layers);
            break;
        }
        bn_lora_pair *p = &a->pairs[s];
        if (p->in != q->in || p->out != q->out) {
            st = bn_fail(BN_ERR_SHAPE, "layer %d %s: the adapter is for a [%d, %d] weight but "
                         "the base's is [%d, %d] (an adapter for another base?)", q->layer,
                         bn_lora_target_module(q->target), q->out, q->in, p->out, p->in);
            break;
        }
        memcpy(p->A, q->A, sizeof(float) * (size_t)a->rank * p->in);
        memcpy(p->B, q->B, sizeof(float) * (size_t)a->rank * p->out);
    }
    if (st == BN_OK && a->n_pairs != f.n_pairs)
        st = bn_fail(BN_ERR_FORMAT, "%s: the adapter has %d of the %d layer pairs its targets "
                     "name", dir, f.n_pairs, a->n_pairs);
    bn_lora_file_free(&f);
    if (st != BN_OK) { bn_tr_lora_free(a); return st; }
    *out = a;
    return BN_OK;
}

void bn_tr_lora_zero_grad(bn_tr_lora *a) { memset(a->g, 0, sizeof(float) * a->n); }

double bn_tr_lora_grad_norm(const bn_tr_lora *a) {
    double s = 0;
    for (size_t i = 0; i < a->n; i++) s += (double)a->g[i] * a->g[i];
    return sqrt(s);
}

void bn_tr_lora_adamw_step(bn_tr_lora *a, double lr, double wd) {
    const double b1 = 0.9, b2 = 0.95, eps = 1e-8;
    a->step++;
    const double t = (double)a->step;
    const float step_size = (float)(lr / (1.0 - pow(b1, t))),
                bc2_sqrt = (float)sqrt(1.0 - pow(b2, t));
    const float decay = (float)(1.0 - lr * wd);
    for (size_t i = 0; i < a->n; i++) {
        float gi = a->g[i];
        float wi = a->p[i] * decay;
        float mi = a->m1[i] + (float)(1.0 - b1) * (gi - a->m1[i]);
        float vi = a->m2[i] * (float)b2 + (float)(1.0 - b2) * gi * gi;
        a->p[i] = wi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + (float)eps));
        a->m1[i] = mi;
        a->m2[i] = vi;
    }
}

bn_status bn_tr_lora_save(const bn_tr_lora *a, const char *dir, const char *base) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return bn_fail(BN_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    bn_st_writer *w = NULL;
    bn_status st = bn_st_writer_create(&w);
    if (st != BN_OK) return st;
    st = bn_st_writer_add_metadata(w, "format", "pt");
    for (int i = 0; i < a->n_pairs && st == BN_OK; i++) {
        const bn_lora_pair *p = &a->pairs[i];
        char name[256];
        uint64_t sa[2] = {(uint64_t)a->rank, (uint64_t)p->in}, sb[2] = {(uint64_t)p->out,
                                                                           (uint64_t)a->rank};
        snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_A.weight", p->layer,
                 bn_lora_target_path(p->target));
        st = bn_st_writer_add(w, name, BN_TYPE_F32, 2, sa, p->A, 4 * sa[0] * sa[1]);
        if (st != BN_OK) break;
        snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_B.weight", p->layer,
                 bn_lora_target_path(p->target));
        st = bn_st_writer_add(w, name, BN_TYPE_F32, 2, sb, p->B, 4 * sb[0] * sb[1]);
    }
    if (st == BN_OK) st = bn_st_writer_write(w, path);
    bn_st_writer_free(w);
    if (st != BN_OK) return st;

    cJSON *r = cJSON_CreateObject();
    if (!r) return BN_ERR_NOMEM;
    cJSON_AddStringToObject(r, "peft_type", "LORA");
    cJSON_AddStringToObject(r, "task_type", "CAUSAL_LM");
    cJSON_AddStringToObject(r, "base_model_name_or_path", base ? base : "");
    cJSON_AddNumberToObject(r, "r", a->rank);
    cJSON_AddNumberToObject(r, "lora_alpha", a->alpha);
    cJSON_AddNumberToObject(r, "lora_dropout", 0.0);
    cJSON_AddStringToObject(r, "bias", "none");
    cJSON_AddBoolToObject(r, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(r, "inference_mode", 1);
    cJSON_AddBoolToObject(r, "use_rslora", 0);
    cJSON_AddBoolToObject(r, "use_dora", 0);
    cJSON_AddBoolToObject(r, "init_lora_weights", 1); /* PEFT rejects the string "true" */
    cJSON *tm = cJSON_AddArrayToObject(r, "target_modules");
    for (int t = 0; t < BN_LORA_N_TARGETS; t++)
        if (a->targets & (1u << t)) cJSON_AddItemToArray(tm, cJSON_CreateString(bn_lora_target_module(t)));
    cJSON_AddNullToObject(r, "modules_to_save");
    /* not a PEFT key: an adapter trained merge-aware is meant to be merged */
    if (a->merge_aware) cJSON_AddBoolToObject(r, "bitnet_merge_aware", 1);
    char *json = cJSON_Print(r);
    cJSON_Delete(r);
    if (!json) return BN_ERR_NOMEM;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    const void *parts[2] = {json, "\n"};
    size_t sizes[2] = {strlen(json), 1};
    st = bn_tr_write_atomic(path, parts, sizes, 2);
    free(json);
    return st;
}

void bn_tr_lora_merge(bn_tr_model *m, const bn_tr_lora *a) {
    for (int i = 0; i < a->n_pairs; i++) {
        const bn_lora_pair *p = &a->pairs[i];
        float *w = bn_tr_w(m, bn_tr_tensor_layer(m, p->layer, k_slot[p->target]));
        /* W [out, in] += scale * B [out, r] . A [r, in] */
        bn_tr_sgemm(false, false, p->out, p->in, a->rank, a->scale,
                    p->B, a->rank, p->A, p->in, 1.0f, w, p->in);
    }
}

/* ------------------------------------------------------------- freezing */

bool bn_tr_glob(const char *pat, const char *s) {
    /* iterative matcher with one backtrack point for the last '*' */
    const char *star = NULL, *ss = NULL;
    while (*s) {
        if (*pat == '*') { star = pat++; ss = s; continue; }
        if (*pat == '?' || *pat == *s) { pat++; s++; continue; }
        if (star) { pat = star + 1; s = ++ss; continue; }
        return false;
    }
    while (*pat == '*') pat++;
    return !*pat;
}

bn_status bn_tr_freeze(const bn_tr_model *m, const char *const *patterns, int n_patterns,
                       bool *frozen, int *n_frozen) {
    int n = 0;
    for (int t = 0; t < m->n_tensors; t++) frozen[t] = false;
    for (int i = 0; i < n_patterns; i++) {
        int hit = 0;
        for (int t = 0; t < m->n_tensors; t++)
            if (bn_tr_glob(patterns[i], m->params[t].name)) {
                hit++;
                if (!frozen[t]) { frozen[t] = true; n++; }
            }
        if (!hit)
            return bn_fail(BN_ERR_INVALID_ARG, "--freeze '%s' matches no tensor (names look like "
                           "model.layers.0.mlp.up_proj.weight)", patterns[i]);
    }
    *n_frozen = n;
    return BN_OK;
}
