/* io_safetensors.c — initial weights from, and final latent weights to,
 * safetensors (HF tensor names). */
#include "train/train.h"
#include "formats/safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bn_status bn_tr_load_safetensors(bn_tr_model *m, const char *path) {
    bn_st_set *set = NULL;
    bn_status st = bn_st_open(path, &set);
    if (st != BN_OK) return st;
    for (int t = 0; t < m->n_tensors && st == BN_OK; t++) {
        const bn_tr_param *p = &m->params[t];
        const bn_st_tensor *x = bn_st_find(set, p->name);
        if (!x) {
            st = bn_fail(BN_ERR_NOT_FOUND, "%s: tensor '%s' is missing", path, p->name);
            break;
        }
        bool ok = (int)x->n_dims == p->n_dims && x->shape[0] == (uint64_t)p->shape[0] &&
                  (p->n_dims == 1 || x->shape[1] == (uint64_t)p->shape[1]);
        if (!ok) {
            st = bn_fail(BN_ERR_SHAPE, "%s: tensor '%s' has shape [%llu%s%llu], the config "
                         "needs [%lld, %lld]", path, p->name, (unsigned long long)x->shape[0],
                         x->n_dims > 1 ? ", " : " ", x->n_dims > 1 ?
                         (unsigned long long)x->shape[1] : 0ull,
                         (long long)p->shape[0], (long long)p->shape[1]);
            break;
        }
        float *w = bn_tr_w(m, t);
        const uint8_t *d = x->data;
        switch (x->dtype) {
        case BN_TYPE_F32:
            if (x->nbytes != 4 * p->n) goto bad;
            memcpy(w, d, 4 * p->n);
            break;
        case BN_TYPE_BF16:
        case BN_TYPE_F16:
            if (x->nbytes != 2 * p->n) goto bad;
            for (size_t i = 0; i < p->n; i++) {
                uint16_t h;
                memcpy(&h, d + 2 * i, 2);
                w[i] = x->dtype == BN_TYPE_BF16 ? bn_bf16_to_f32(h) : bn_f16_to_f32(h);
            }
            break;
        default:
            st = bn_fail(BN_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; latent weights "
                         "must be F32, BF16 or F16 (a packed checkpoint cannot be trained)",
                         path, p->name, bn_type_name(x->dtype));
        }
        continue;
    bad:
        st = bn_fail(BN_ERR_FORMAT, "%s: tensor '%s' has %llu bytes for %zu values", path,
                     p->name, (unsigned long long)x->nbytes, p->n);
    }
    bn_st_free(set);
    return st;
}

bn_status bn_tr_save_safetensors(const bn_tr_model *m, const char *path) {
    char file[4096];
    /* a folder if it exists as one or ends in '/', otherwise a file path */
    struct stat sb;
    size_t pl = strlen(path);
    bool folder = (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) || (pl && path[pl - 1] == '/');
    if (folder) {
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return bn_fail(BN_ERR_IO, "%s: cannot create folder: %s", path, strerror(errno));
        snprintf(file, sizeof file, "%s/model.safetensors", path);
    } else {
        snprintf(file, sizeof file, "%s", path);
    }
    bn_st_writer *w = NULL;
    bn_status st = bn_st_writer_create(&w);
    if (st != BN_OK) return st;
    st = bn_st_writer_add_metadata(w, "format", "pt");
    for (int t = 0; t < m->n_tensors && st == BN_OK; t++) {
        const bn_tr_param *p = &m->params[t];
        uint64_t shape[2] = {(uint64_t)p->shape[0], (uint64_t)p->shape[1]};
        st = bn_st_writer_add(w, p->name, BN_TYPE_F32, (uint32_t)p->n_dims, shape,
                              m->w + p->off, 4 * (uint64_t)p->n);
    }
    if (st == BN_OK) st = bn_st_writer_write(w, file);
    bn_st_writer_free(w);
    if (st != BN_OK || !folder) return st;
    char *json = bn_tr_config_to_json(&m->cfg);
    if (!json) return bn_fail(BN_ERR_NOMEM, "cannot serialise config.json");
    snprintf(file, sizeof file, "%s/config.json", path);
    const void *parts[1] = {json};
    size_t sizes[1] = {strlen(json)};
    st = bn_tr_write_atomic(file, parts, sizes, 1);
    free(json);
    return st;
}
