/* lora_apply.c — read a PEFT LoRA adapter folder and attach it to a loaded
 * model for inference (bn_model_apply_lora); forward.c calls
 * bn_lora_linear_add after each targeted BitLinear. */
#include "model/lora_apply.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"
#include "model/model.h"

static const char *const k_short[BN_LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
static const char *const k_module[BN_LORA_N_TARGETS] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                        "gate_proj", "up_proj", "down_proj"};
static const char *const k_path[BN_LORA_N_TARGETS] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};

const char *bn_lora_target_short(int t) { return t >= 0 && t < BN_LORA_N_TARGETS ? k_short[t] : "?"; }
const char *bn_lora_target_module(int t) { return t >= 0 && t < BN_LORA_N_TARGETS ? k_module[t] : "?"; }
const char *bn_lora_target_path(int t) { return t >= 0 && t < BN_LORA_N_TARGETS ? k_path[t] : "?"; }

static int target_of(const char *s, size_t len) {
    for (int t = 0; t < BN_LORA_N_TARGETS; t++)
        if ((strlen(k_short[t]) == len && !strncmp(s, k_short[t], len)) ||
            (strlen(k_module[t]) == len && !strncmp(s, k_module[t], len)))
            return t;
    return -1;
}

bn_status bn_lora_parse_targets(const char *csv, unsigned *mask) {
    *mask = 0;
    if (!csv || !*csv) return bn_fail(BN_ERR_INVALID_ARG, "no LoRA targets given");
    if (!strcmp(csv, "all")) { *mask = (1u << BN_LORA_N_TARGETS) - 1; return BN_OK; }
    const char *p = csv;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int t = target_of(p, len);
        if (t < 0)
            return bn_fail(BN_ERR_INVALID_ARG, "unknown LoRA target '%.*s' (use q,k,v,o,gate,up,"
                           "down, their *_proj names, or all)", (int)(len > 64 ? 64 : len), p);
        *mask |= 1u << t;
        if (!e) break;
        p = e + 1;
    }
    return BN_OK;
}

void bn_lora_file_free(bn_lora_file *f) {
    if (!f) return;
    free(f->pairs);
    free(f->data);
    memset(f, 0, sizeof *f);
}

static bn_status read_config(const char *dir, bn_lora_file *f) {
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    char *text = NULL;
    size_t len = 0;
    bn_status st = bn_read_file(path, 1 << 20, &text, &len);
    if (st != BN_OK) return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bn_fail(BN_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "peft_type");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "r");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "lora_alpha");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(root, "target_modules");
    const cJSON *bm = cJSON_GetObjectItemCaseSensitive(root, "base_model_name_or_path");
    st = BN_OK;
    if (pt && (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA")))
        st = bn_fail(BN_ERR_UNSUPPORTED, "%s: peft_type is not LORA", path);
    else if (!cJSON_IsNumber(r) || r->valuedouble != floor(r->valuedouble) || r->valuedouble < 1 ||
             r->valuedouble > 65536)
        st = bn_fail(BN_ERR_FORMAT, "%s: 'r' must be an integer in 1..65536", path);
    else if (a && (!cJSON_IsNumber(a) || !isfinite(a->valuedouble)))
        st = bn_fail(BN_ERR_FORMAT, "%s: 'lora_alpha' must be a number", path);
    if (st == BN_OK) {
        f->rank = (int32_t)r->valuedouble;
        f->alpha = a ? (float)a->valuedouble : 8.0f; /* PEFT's default */
        if (cJSON_IsString(bm)) snprintf(f->base, sizeof f->base, "%s", bm->valuestring);
        const cJSON *it;
        if (cJSON_IsString(tm)) {
            int t = target_of(tm->valuestring, strlen(tm->valuestring));
            if (t < 0) st = bn_fail(BN_ERR_UNSUPPORTED, "%s: unknown target module '%.64s'", path,
                                    tm->valuestring);
            else f->targets |= 1u << t;
        } else if (cJSON_IsArray(tm)) {
            cJSON_ArrayForEach(it, tm) {
                int t = cJSON_IsString(it) ? target_of(it->valuestring, strlen(it->valuestring)) : -1;
                if (t < 0) {
                    st = bn_fail(BN_ERR_UNSUPPORTED, "%s: unknown target module '%.64s' (this "
                                 "model has q_proj k_proj v_proj o_proj gate_proj up_proj "
                                 "down_proj)", path, cJSON_IsString(it) ? it->valuestring : "?");
                    break;
                }
                f->targets |= 1u << t;
            }
        }
    }
    cJSON_Delete(root);
    return st;
}

/* "base_model.model.model.layers.<L>.<path>.lora_<A|B>.weight" */
static bool parse_name(const char *name, int *layer, int *target, int *is_b) {
    static const char pre[] = "base_model.model.model.layers.";
    if (strncmp(name, pre, sizeof pre - 1)) return false;
    const char *p = name + sizeof pre - 1;
    char *end;
    long l = strtol(p, &end, 10);
    if (end == p || *end != '.' || l < 0 || l > 100000) return false;
    p = end + 1;
    for (int t = 0; t < BN_LORA_N_TARGETS; t++) {
        size_t n = strlen(k_path[t]);
        if (strncmp(p, k_path[t], n)) continue;
        const char *s = p + n;
        if (!strcmp(s, ".lora_A.weight")) *is_b = 0;
        else if (!strcmp(s, ".lora_B.weight")) *is_b = 1;
        else return false;
        *layer = (int)l;
        *target = t;
        return true;
    }
    return false;
}

static bn_status copy_f32(const bn_st_tensor *x, float *dst) {
    const size_t n = (size_t)x->n_elems;
    if (x->dtype == BN_TYPE_F32 && x->nbytes == 4 * (uint64_t)n) { memcpy(dst, x->data, 4 * n); return BN_OK; }
    if ((x->dtype == BN_TYPE_BF16 || x->dtype == BN_TYPE_F16) && x->nbytes == 2 * (uint64_t)n) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, x->data + 2 * i, 2);
            dst[i] = x->dtype == BN_TYPE_BF16 ? bn_bf16_to_f32(h) : bn_f16_to_f32(h);
        }
        return BN_OK;
    }
    return bn_fail(BN_ERR_UNSUPPORTED, "tensor '%s': dtype %s with %llu bytes (want F32/BF16/F16)",
                   x->name, bn_type_name(x->dtype), (unsigned long long)x->nbytes);
}

bn_status bn_lora_file_read(const char *dir, bn_lora_file *f) {
    memset(f, 0, sizeof *f);
    bn_status st = read_config(dir, f);
    if (st != BN_OK) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    bn_st_set *set = NULL;
    st = bn_st_open(path, &set);
    if (st != BN_OK) return st;
    const size_t nt = bn_st_count(set);
    /* pass 1: names, shapes, the total size */
    int max_layer = -1;
    uint64_t total = 0;
    for (size_t i = 0; i < nt && st == BN_OK; i++) {
        const bn_st_tensor *x = bn_st_at(set, i);
        int l, t, b;
        if (!parse_name(x->name, &l, &t, &b)) {
            st = bn_fail(BN_ERR_FORMAT, "%s: tensor '%.200s' is not a LoRA weight of a BitNet "
                         "projection", path, x->name);
            break;
        }
        if (x->n_dims != 2 || x->shape[0] == 0 || x->shape[1] == 0 || x->shape[0] > (1u << 20) ||
            x->shape[1] > (1u << 20) || x->shape[b ? 1 : 0] != (uint64_t)f->rank) {
            st = bn_fail(BN_ERR_SHAPE, "%s: tensor '%s' must be %s with r = %d", path, x->name,
                         b ? "[out, r]" : "[r, in]", f->rank);
            break;
        }
        if (l > max_layer) max_layer = l;
        total += x->n_elems;
        if (!(f->targets & (1u << t)))
            st = bn_fail(BN_ERR_FORMAT, "%s: tensor '%s' targets %s, which adapter_config.json "
                         "does not list", path, x->name, k_module[t]);
    }
    if (st == BN_OK && max_layer < 0)
        st = bn_fail(BN_ERR_FORMAT, "%s: no LoRA tensors", path);
    if (st == BN_OK && total > BN_MAX_ALLOC / sizeof(float))
        st = bn_fail(BN_ERR_NOMEM, "%s: adapter too large", path);
    int32_t *index = NULL;
    size_t nslot = (size_t)(max_layer + 1) * BN_LORA_N_TARGETS;
    if (st == BN_OK) {
        index = bn_malloc(sizeof(int32_t) * nslot);
        f->pairs = bn_calloc(nt, sizeof *f->pairs);
        f->data = bn_malloc(sizeof(float) * (size_t)total);
        if (!index || !f->pairs || !f->data) st = BN_ERR_NOMEM;
    }
    if (st == BN_OK) {
        for (size_t i = 0; i < nslot; i++) index[i] = -1;
        float *dst = f->data;
        for (size_t i = 0; i < nt && st == BN_OK; i++) {
            const bn_st_tensor *x = bn_st_at(set, i);
            int l, t, b;
            parse_name(x->name, &l, &t, &b);
            size_t s = (size_t)l * BN_LORA_N_TARGETS + (size_t)t;
            if (index[s] < 0) {
                index[s] = f->n_pairs;
                f->pairs[f->n_pairs++] = (bn_lora_pair){.layer = l, .target = t, .in = -1, .out = -1};
            }
            bn_lora_pair *p = &f->pairs[index[s]];
            if (b ? p->B != NULL : p->A != NULL) {
                st = bn_fail(BN_ERR_FORMAT, "%s: tensor '%s' appears twice", path, x->name);
                break;
            }
            st = copy_f32(x, dst);
            if (b) { p->B = dst; p->out = (int32_t)x->shape[0]; }
            else   { p->A = dst; p->in = (int32_t)x->shape[1]; }
            dst += x->n_elems;
        }
        for (int32_t i = 0; i < f->n_pairs && st == BN_OK; i++)
            if (!f->pairs[i].A || !f->pairs[i].B)
                st = bn_fail(BN_ERR_FORMAT, "%s: layer %d %s has lora_%s but not lora_%s", path,
                             f->pairs[i].layer, k_module[f->pairs[i].target],
                             f->pairs[i].A ? "A" : "B", f->pairs[i].A ? "B" : "A");
    }
    free(index);
    bn_st_free(set);
    if (st != BN_OK) bn_lora_file_free(f);
    return st;
}

static const bn_linear *model_linear(const bn_model *m, int layer, int t) {
    const bn_layer *L = &m->layers[layer];
    const bn_linear *ls[BN_LORA_N_TARGETS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate,
                                              &L->w_up, &L->w_down};
    return ls[t];
}

bn_status bn_model_apply_lora(bn_model *m, const char *adapter_dir, float scale) {
    if (!m || !adapter_dir) return bn_fail(BN_ERR_INVALID_ARG, "apply_lora: NULL argument");
    if (m->lora) return bn_fail(BN_ERR_INVALID_ARG, "an adapter is already applied to this model");
    if (!isfinite(scale)) return bn_fail(BN_ERR_INVALID_ARG, "LoRA scale must be finite");
    bn_lora_file f;
    bn_status st = bn_lora_file_read(adapter_dir, &f);
    if (st != BN_OK) return st;
    for (int32_t i = 0; i < f.n_pairs && st == BN_OK; i++) {
        const bn_lora_pair *p = &f.pairs[i];
        if (p->layer >= m->hp.n_layer) {
            st = bn_fail(BN_ERR_SHAPE, "the adapter has layer %d but the model has %d layers "
                         "(an adapter for another base?)", p->layer, m->hp.n_layer);
            break;
        }
        const bn_linear *l = model_linear(m, p->layer, p->target);
        if (l->n_in != p->in || l->n_out != p->out)
            st = bn_fail(BN_ERR_SHAPE, "layer %d %s: the adapter is for a [%d, %d] weight but "
                         "the model's is [%d, %d] (an adapter for another base?)",
                         p->layer, k_module[p->target], p->out, p->in, l->n_out, l->n_in);
    }
    /* everything the model keeps goes to its owned list: bn_model_free releases it */
    size_t total = 0;
    for (int32_t i = 0; i < f.n_pairs; i++)
        total += (size_t)f.rank * ((size_t)f.pairs[i].in + (size_t)f.pairs[i].out);
    if (st == BN_OK) {
        const size_t ns = (size_t)m->hp.n_layer * BN_LORA_N_TARGETS;
        bn_lora_set *s = bn_alloc_list_add(&m->owned, 16, sizeof *s);
        const bn_lora_pair **slot = s ? bn_alloc_list_add(&m->owned, 16, ns * sizeof *slot) : NULL;
        bn_lora_pair *pairs = slot ? bn_alloc_list_add(&m->owned, 16, (size_t)f.n_pairs * sizeof *pairs) : NULL;
        float *data = pairs ? bn_alloc_list_add(&m->owned, 64, total * sizeof(float)) : NULL;
        if (!data) st = BN_ERR_NOMEM;
        else {
            float *d = data;
            for (int32_t i = 0; i < f.n_pairs; i++) {
                const bn_lora_pair *p = &f.pairs[i];
                const size_t na = (size_t)f.rank * (size_t)p->in, nb = (size_t)p->out * (size_t)f.rank;
                pairs[i] = *p;
                pairs[i].A = memcpy(d, p->A, na * sizeof(float));
                pairs[i].B = memcpy(d + na, p->B, nb * sizeof(float));
                d += na + nb;
                slot[(size_t)p->layer * BN_LORA_N_TARGETS + p->target] = &pairs[i];
            }
            s->rank = f.rank;
            s->alpha = f.alpha;
            s->scale = scale * f.alpha / (float)f.rank;
            s->targets = f.targets;
            s->n_layer = m->hp.n_layer;
            s->n_pairs = f.n_pairs;
            s->pairs = pairs;
            s->slot = slot;
            m->lora = s;
        }
    }
    bn_lora_file_free(&f);
    return st;
}

bn_status bn_lora_linear_add(const bn_model *m, int layer, int target, const float *x, int n,
                             float *y) {
    const bn_lora_set *s = m->lora;
    if (!s || layer >= s->n_layer || n <= 0) return BN_OK;
    const bn_lora_pair *p = s->slot[(size_t)layer * BN_LORA_N_TARGETS + target];
    if (!p) return BN_OK;
    float *u = bn_malloc(sizeof(float) * (size_t)n * (size_t)s->rank);
    if (!u) return BN_ERR_NOMEM;
    /* u = x A^T [n, r]; y += scale * u B^T [n, out] — plain f32 */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, s->rank, p->in, 1.0f, x, p->in, p->A,
                p->in, 0.0f, u, s->rank);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, p->out, s->rank, s->scale, u, s->rank,
                p->B, s->rank, 1.0f, y, p->out);
    free(u);
    return BN_OK;
}
