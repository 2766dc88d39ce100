/* checkpoint.c — training checkpoints: latent weights, AdamW moments, step,
 * RNG states and data position in one file written atomically, so a run can
 * stop anywhere and continue bit-exactly.
 *
 * Layout (little-endian): "BNTRCKPT" | u32 version | u32 quant |
 * 10 x i32 config ints | 2 x f32 (eps, rope_theta) | i64 step |
 * 8 x u64 rng states (data, aux) | f64 tokens seen | u64 n_params |
 * f32 weights[n] | f32 m[n] | f32 v[n] | u64 FNV-1a of everything before. */
#include "train/train.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CK_MAGIC "BNTRCKPT"
enum { CK_VERSION = 1, CK_HEADER = 8 + 4 + 4 + 40 + 8 + 8 + 64 + 8 + 8 };

bn_status bn_tr_write_atomic(const char *path, const void *const *parts, const size_t *sizes,
                             int n_parts) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return bn_fail(BN_ERR_INVALID_ARG, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return bn_fail(BN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    for (int i = 0; i < n_parts; i++) {
        const uint8_t *p = parts[i];
        size_t left = sizes[i];
        while (left) {
            ssize_t w = write(fd, p, left > (1u << 30) ? (1u << 30) : left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                int e = errno;
                close(fd);
                unlink(tmp);
                return bn_fail(BN_ERR_IO, "%s: write failed: %s", tmp, strerror(e));
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return bn_fail(BN_ERR_IO, "%s: fsync/close failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return bn_fail(BN_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    /* make the rename itself durable */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    return BN_OK;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}
#define FNV0 0xcbf29ce484222325ull

static void put(uint8_t **p, const void *v, size_t n) { memcpy(*p, v, n); *p += n; }
static void get(const uint8_t **p, void *v, size_t n) { memcpy(v, *p, n); *p += n; }

static void cfg_ints(const bn_tr_config *c, int32_t out[10]) {
    int32_t v[10] = {c->vocab, c->hidden, c->ffn, c->layers, c->heads, c->kv_heads,
                     c->head_dim, c->max_pos, c->bos_id, c->eos_id};
    memcpy(out, v, sizeof v);
}

bn_status bn_tr_checkpoint_save(const char *path, const bn_tr_model *m, const bn_tr_adamw *opt,
                                const bn_tr_state *st) {
    uint8_t hdr[CK_HEADER], *p = hdr;
    uint32_t ver = CK_VERSION, q = m->quant;
    int32_t ci[10];
    cfg_ints(&m->cfg, ci);
    uint64_t n = m->n_params;
    put(&p, CK_MAGIC, 8);
    put(&p, &ver, 4);
    put(&p, &q, 4);
    put(&p, ci, 40);
    put(&p, &m->cfg.eps, 4);
    put(&p, &m->cfg.rope_theta, 4);
    put(&p, &st->step, 8);
    put(&p, st->data_rng.s, 32);
    put(&p, st->aux_rng.s, 32);
    put(&p, &st->tokens_seen, 8);
    put(&p, &n, 8);
    if (opt->n != m->n_params)
        return bn_fail(BN_ERR_INTERNAL, "optimizer has %zu values, model %zu", opt->n, m->n_params);
    uint64_t h = fnv(FNV0, hdr, sizeof hdr);
    h = fnv(h, m->w, 4 * n);
    h = fnv(h, opt->m, 4 * n);
    h = fnv(h, opt->v, 4 * n);
    const void *parts[5] = {hdr, m->w, opt->m, opt->v, &h};
    size_t sizes[5] = {sizeof hdr, 4 * n, 4 * n, 4 * n, 8};
    return bn_tr_write_atomic(path, parts, sizes, 5);
}

static bn_status read_header(const bn_mmap *mp, const char *path, bn_tr_config *cfg, bool *quant,
                             bn_tr_state *st, uint64_t *n) {
    if (mp->size < CK_HEADER + 8 || memcmp(mp->data, CK_MAGIC, 8))
        return bn_fail(BN_ERR_FORMAT, "%s: not a bitnet training checkpoint", path);
    const uint8_t *p = mp->data + 8;
    uint32_t ver, q;
    int32_t ci[10];
    get(&p, &ver, 4);
    if (ver != CK_VERSION)
        return bn_fail(BN_ERR_UNSUPPORTED, "%s: checkpoint version %u (expected %u)", path, ver,
                       CK_VERSION);
    get(&p, &q, 4);
    get(&p, ci, 40);
    bn_tr_config c = {ci[0], ci[1], ci[2], ci[3], ci[4], ci[5], ci[6], 0, 0, ci[7], ci[8], ci[9]};
    get(&p, &c.eps, 4);
    get(&p, &c.rope_theta, 4);
    bn_tr_state s;
    get(&p, &s.step, 8);
    get(&p, s.data_rng.s, 32);
    get(&p, s.aux_rng.s, 32);
    get(&p, &s.tokens_seen, 8);
    get(&p, n, 8);
    bn_status e = bn_tr_config_check(&c);
    if (e != BN_OK) { bn_error_prefix("%s", path); return BN_ERR_FORMAT; }
    uint64_t body;
    if (!bn_mul_ok(*n, 12, &body) || body > mp->size || mp->size - body != CK_HEADER + 8)
        return bn_fail(BN_ERR_FORMAT, "%s: size %zu does not match %llu parameters", path,
                       mp->size, (unsigned long long)*n);
    if (cfg) *cfg = c;
    if (quant) *quant = q != 0;
    if (st) *st = s;
    return BN_OK;
}

bn_status bn_tr_checkpoint_peek(const char *path, bn_tr_config *cfg, bool *quant) {
    bn_mmap mp;
    bn_status st = bn_mmap_open(path, true, &mp);
    if (st != BN_OK) return st;
    uint64_t n;
    st = read_header(&mp, path, cfg, quant, NULL, &n);
    bn_mmap_close(&mp);
    return st;
}

bn_status bn_tr_checkpoint_load(const char *path, bn_tr_model *m, bn_tr_adamw *opt,
                                bn_tr_state *out) {
    bn_mmap mp;
    bn_status st = bn_mmap_open(path, true, &mp);
    if (st != BN_OK) return st;
    bn_tr_config c = {0};
    bool q = false;
    bn_tr_state s = {0};
    uint64_t n = 0;
    st = read_header(&mp, path, &c, &q, &s, &n);
    if (st != BN_OK) goto done;
    const bn_tr_config *mc = &m->cfg;
    if (c.vocab != mc->vocab || c.hidden != mc->hidden || c.ffn != mc->ffn ||
        c.layers != mc->layers || c.heads != mc->heads || c.kv_heads != mc->kv_heads ||
        c.head_dim != mc->head_dim || n != m->n_params) {
        st = bn_fail(BN_ERR_SHAPE, "%s: checkpoint shape (vocab %d, hidden %d, ffn %d, layers %d, "
                     "heads %d/%d) differs from the model's (vocab %d, hidden %d, ffn %d, "
                     "layers %d, heads %d/%d)", path, c.vocab, c.hidden, c.ffn, c.layers,
                     c.heads, c.kv_heads, mc->vocab, mc->hidden, mc->ffn, mc->layers,
                     mc->heads, mc->kv_heads);
        goto done;
    }
    uint64_t h = fnv(FNV0, mp.data, mp.size - 8), stored;
    memcpy(&stored, mp.data + mp.size - 8, 8);
    if (h != stored) {
        st = bn_fail(BN_ERR_FORMAT, "%s: checksum mismatch (file damaged)", path);
        goto done;
    }
    if (opt->n != n) {
        st = bn_fail(BN_ERR_INTERNAL, "optimizer not initialised for %llu values",
                     (unsigned long long)n);
        goto done;
    }
    const uint8_t *p = mp.data + CK_HEADER;
    memcpy(m->w, p, 4 * n);
    memcpy(opt->m, p + 4 * n, 4 * n);
    memcpy(opt->v, p + 8 * n, 4 * n);
    opt->step = s.step;
    m->quant = q;
    *out = s;
done:
    bn_mmap_close(&mp);
    return st;
}
