/* forward.c — the BitNet b1.58 forward pass over one chunk of tokens.
 *
 *   x = embed[id]
 *   per layer:
 *     h = rmsnorm(x) * attn_norm          -> int8 once -> q, k, v (ternary)
 *     rope(q, k); cache k, v; o = softmax(q k^T / sqrt(d), causal) v   (GQA)
 *     x += Wo(int8(rmsnorm(o) * attn_sub_norm))
 *     h = rmsnorm(x) * ffn_norm            -> int8 once -> gate, up
 *     x += Wdown(int8(rmsnorm(relu(gate)^2 * up) * ffn_sub_norm))
 *   logits = (rmsnorm(x) * output_norm) @ embed^T    (tied head, f32 math)
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "context.h"
#include "lora_apply.h"

/* LoRA adapter term after a targeted BitLinear (lora_apply.c); f32 on the
 * unquantized input. No-op without an adapter. */
#define LORA_ADD(t, xin, y) \
    do { \
        if (m->lora) { \
            bn_status s_ = bn_lora_linear_add(m, l, (t), (xin), n, (y)); \
            if (s_ != BN_OK) return s_; \
        } \
    } while (0)

/* Quantize n rows of `in` (width k, stride ld) into the context's int8 buffer. */
static void quantize(bn_context *c, const float *in, size_t ld, int k, int n) {
    const size_t kp = (size_t)bn_pad_k(k);
    c->k->quantize_act(in, ld, k, n, c->q8, kp, c->q8_scale, c->q8_sum);
}

/* Output rows [m0, m1) of y[n, l->n_out] = l(q8) for the n quantized rows;
 * decode steps read the T2R4 copy when the model was loaded with repack
 * (the same results: tests/test_model.c). */
static void linear_rows(bn_context *c, const bn_linear *l, int n, float *y, int m0, int m1) {
    if (m0 >= m1) return;
    const bool copy = l->w4 && n <= 3 && c->k->tgemm4;
    (copy ? c->k->tgemm4 : c->k->tgemm)(copy ? l->w4 : l->w, l->n_in, c->q8, (size_t)bn_pad_k(l->n_in), c->q8_scale,
                                        c->q8_sum, n, l->scale, y, (size_t)l->n_out, m0, m1);
}

/* Tile range [a, b) of thread t of T over `tiles` tiles. */
static void split(int tiles, int t, int T, int *a, int *b) {
    *a = (int)((long)tiles * t / T);
    *b = (int)((long)tiles * (t + 1) / T);
}

/* Work on 16-row output tiles [a, b) (SIMD tiles stay whole). */
typedef void (*tile_work)(bn_context *c, const void *arg, int n, int a, int b);

/* Prompts (n >= DYN_MIN_TOKENS) take tiles in chunks of DYN_TILES from a
 * shared counter: on a shared host one vCPU can run slower than the other
 * for a while, and with a static split the faster one waited (libgomp's
 * barrier was 4-5 % of pp512). Decode keeps one contiguous range per thread,
 * which its GEMV streams with prefetch. One parallel region either way. */
#define DYN_MIN_TOKENS 16
#define DYN_TILES 8
static void parallel_tiles(bn_context *c, int tiles, int n, tile_work work, const void *arg) {
#pragma omp parallel num_threads(c->n_threads)
    {
        if (n >= DYN_MIN_TOKENS) {
            const int chunks = (tiles + DYN_TILES - 1) / DYN_TILES;
#pragma omp for schedule(dynamic, 1)
            for (int ch = 0; ch < chunks; ch++)
                work(c, arg, n, ch * DYN_TILES, (ch + 1) * DYN_TILES < tiles ? (ch + 1) * DYN_TILES : tiles);
        } else {
            int a, b;
            split(tiles, omp_get_thread_num(), omp_get_num_threads(), &a, &b);
            if (a < b) work(c, arg, n, a, b);
        }
    }
}

/* ys[j] = ls[j](q8) for cnt linears that read the same quantized input
 * (q|k|v): their tiles are concatenated into one range, so that a step pays
 * one fork/join, not three, and the threads finish together. */
typedef struct {
    int cnt;
    const bn_linear *const *ls;
    float *const *ys;
} multi_arg;

static void multi_work(bn_context *c, const void *arg, int n, int a, int b) {
    const multi_arg *m = arg;
    for (int j = 0, off = 0; j < m->cnt; j++) {
        const int tiles = (m->ls[j]->n_out + 15) / 16;
        const int lo = a > off ? a : off, hi = b < off + tiles ? b : off + tiles;
        if (lo < hi) {
            const int m1 = (hi - off) * 16;
            linear_rows(c, m->ls[j], n, m->ys[j], (lo - off) * 16, m1 < m->ls[j]->n_out ? m1 : m->ls[j]->n_out);
        }
        off += tiles;
    }
}

static void linear_multi(bn_context *c, int cnt, const bn_linear *const *ls, float *const *ys, int n) {
    int total = 0;
    for (int j = 0; j < cnt; j++) total += (ls[j]->n_out + 15) / 16;
    const multi_arg arg = {cnt, ls, ys};
    parallel_tiles(c, total, n, multi_work, &arg);
}

/* y = l(q8), then x += y (the residual add) on the same output columns right
 * after computing them. With a LoRA adapter the add waits for the adapter
 * term (add = false). */
typedef struct {
    const bn_linear *l;
    float *y, *x;
    bool add;
} residual_arg;

static void residual_work(bn_context *c, const void *arg, int n, int a, int b) {
    const residual_arg *r = arg;
    const int M = r->l->n_out, m0 = a * 16, m1 = b * 16 < M ? b * 16 : M;
    linear_rows(c, r->l, n, r->y, m0, m1);
    for (int i = 0; r->add && i < n; i++) {
        float *xr = r->x + (size_t)i * M;
        const float *yr = r->y + (size_t)i * M;
#pragma omp simd
        for (int j = m0; j < m1; j++) xr[j] += yr[j];
    }
}

static void linear_residual(bn_context *c, const bn_linear *l, int n, float *y, float *x, bool add) {
    const residual_arg arg = {l, y, x, add};
    parallel_tiles(c, (l->n_out + 15) / 16, n, residual_work, &arg);
}

/* gate and up (same width) on the SAME columns, then the activation on them
 * right away (elementwise: the same bits as after a barrier). With a LoRA
 * adapter the activation waits for the adapter terms (act = false). A
 * prompt's gate and up outputs (n x 6912 floats each) do not fit in L2: the
 * columns go in blocks of GU_BLOCK, activated while they are still cached
 * (an activation pass over the whole arrays cost 7 % of pp128). */
#define GU_BLOCK 128
typedef struct {
    const bn_layer *L;
    bool act;
} gate_up_arg;

static void gate_up_work(bn_context *c, const void *arg, int n, int a, int b) {
    const gate_up_arg *g = arg;
    const int f = g->L->w_gate.n_out, m0 = a * 16, m1 = b * 16 < f ? b * 16 : f;
    const bool relu2 = c->m->hp.act == BN_ACT_RELU2;
    const int blk = n >= 16 ? GU_BLOCK : f; /* decode: one block keeps the GEMV streaming */
    for (int c0 = m0; c0 < m1; c0 += blk) {
        const int c1 = m1 - c0 < blk ? m1 : c0 + blk;
        linear_rows(c, &g->L->w_gate, n, c->gate, c0, c1);
        linear_rows(c, &g->L->w_up, n, c->up, c0, c1);
        for (int i = 0; g->act && i < n; i++) {
            float *gr = c->gate + (size_t)i * f + c0, *u = c->up + (size_t)i * f + c0;
            if (relu2) bn_ref_relu2_mul(gr, u, c1 - c0, gr);
            else bn_ref_silu_mul(gr, u, c1 - c0, gr);
        }
    }
}

static void gate_up(bn_context *c, const bn_layer *L, int n, bool act) {
    const gate_up_arg arg = {L, act};
    parallel_tiles(c, (L->w_gate.n_out + 15) / 16, n, gate_up_work, &arg);
}

/* RMSNorm with w (none if w is NULL) then int8 quantization of n rows into
 * the context's q8 buffers. Rows go to threads in groups of 4, whose sums of
 * squares run interleaved; each row's arithmetic is bn_ref_rmsnorm's (the
 * same bits on any thread count). */
static void norm_quantize(bn_context *c, const float *in, const float *w, int n, int dim, float *normed) {
    const float eps = c->m->hp.rms_eps;
    const size_t kp = (size_t)bn_pad_k(dim);
    const bn_kernels *k = c->k;
    const int groups = (n + 3) / 4;
#pragma omp parallel for num_threads(c->n_threads) schedule(static) if (n >= 4)
    for (int g = 0; g < groups; g++) {
        const int r0 = 4 * g, rows = n - r0 < 4 ? n - r0 : 4;
        float ss[4];
        if (w) bn_sum_squares_rows(in + (size_t)r0 * dim, (size_t)dim, rows, dim, ss);
        for (int i = r0; i < r0 + rows; i++) {
            const float *src = in + (size_t)i * dim;
            if (w) {
                float *o = normed + (size_t)i * dim;
                const float inv = 1.0f / sqrtf(ss[i - r0] / (float)dim + eps);
#pragma omp simd
                for (int j = 0; j < dim; j++) o[j] = w[j] * (src[j] * inv);
                src = o;
            }
            k->quantize_act(src, (size_t)dim, dim, 1, c->q8 + (size_t)i * kp, kp, c->q8_scale + i, c->q8_sum + i);
        }
    }
}

/* cos/sin of pos * inv_freq for every token of the chunk, shared by all
 * heads and layers (same f32 expressions as bn_ref_rope). */
static void rope_tables(bn_context *c, int n, const int32_t *pos) {
    const int half = c->m->hp.head_dim / 2;
    for (int i = 0; i < n; i++) {
        float *cs = c->rope_cs + (size_t)i * 2 * half;
        for (int j = 0; j < half; j++) {
            const float ang = (float)pos[i] * c->rope_inv_freq[j];
            cs[j] = cosf(ang);
            cs[half + j] = sinf(ang);
        }
    }
}

/* NeoX rotate-half on n_heads consecutive head vectors of one token. */
static void rope_apply(float *v, int n_heads, int hd, const float *cs) {
    const int half = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * hd;
#pragma omp simd
        for (int j = 0; j < half; j++) {
            const float a = x[j], b = x[j + half], co = cs[j], si = cs[half + j];
            x[j] = a * co - b * si;
            x[j + half] = b * co + a * si;
        }
    }
}

/* Query blocks: runs of up to att_qb consecutive chunk tokens of one
 * sequence; their rows (tokens x the query heads of one KV head) walk the
 * cached positions together. Returns the number of blocks. */
static int query_blocks(bn_context *c, int n, const int32_t *seq) {
    int nb = 0;
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && j - i < c->att_qb && seq[j] == seq[i]) j++;
        c->att_blk[nb++] = i;
        i = j;
    }
    return nb;
}

static void attention(bn_context *c, int layer, int n, const int32_t *seq, const int32_t *pos) {
    const bn_hparams *hp = &c->m->hp;
    const int hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv, group = hp->n_head / hp->n_head_kv;
    const int e = hp->n_embd;
    const size_t kvd = (size_t)nkv * (size_t)hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const int nb = query_blocks(c, n, seq);
    const int T = c->n_threads, R = c->att_rows, units = nb * nkv;
    /* Few (block, KV head) units (decode): cut each block's positions into S
     * ranges of >= 256 so that every thread has work; merged afterwards. */
    int S = 1;
    if (units < 4 * T) {
        int maxlen = 0;
        for (int i = 0; i < n; i++)
            if (pos[i] + 1 > maxlen) maxlen = pos[i] + 1;
        S = BN_ATT_PARTS(T) / units;
        if (S > (maxlen + 255) / 256) S = (maxlen + 255) / 256;
        if (S < 1) S = 1;
    }
    const int tasks = units * S;
    const size_t part = (size_t)R * (size_t)(hd + 2);
#pragma omp parallel num_threads(T)
    {
        const int th = omp_get_thread_num();
        float *ws = c->att_ws + (size_t)th * c->att_ws_stride;
        float *qp = ws, *acc = qp + (size_t)R * hd, *tile = acc + (size_t)R * hd;
        float *mx = tile + (size_t)R * BN_ATTN_TILE, *sum = mx + R, *kv_tile = sum + R;
        int32_t *lim = c->att_lim + (size_t)th * 2 * R;
        /* RoPE on q and k, then append k, v to each sequence's cache (the
         * implicit barrier after this loop: every block sees its positions). */
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            const float *cs = c->rope_cs + (size_t)i * hd;
            rope_apply(c->q + (size_t)i * e, nh, hd, cs);
            rope_apply(c->kx + (size_t)i * kvd, nkv, hd, cs);
            const size_t at = bn_kv_offset(c, seq[i], layer, pos[i]);
            if (c->kv_f16) {
                c->k->f32_to_f16(c->kx + (size_t)i * kvd, (uint16_t *)c->k_cache + at, kvd);
                c->k->f32_to_f16(c->vx + (size_t)i * kvd, (uint16_t *)c->v_cache + at, kvd);
            } else {
                memcpy((float *)c->k_cache + at, c->kx + (size_t)i * kvd, kvd * 4);
                memcpy((float *)c->v_cache + at, c->vx + (size_t)i * kvd, kvd * 4);
            }
        }
        /* largest first: a prompt's later blocks attend to more positions,
         * and taken last they left one thread working alone at the end */
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < tasks; it++) {
            const int task = tasks - 1 - it;
            const int u = task / S, s = task % S, b = u / nkv, kvh = u % nkv;
            const int i0 = c->att_blk[b], i1 = b + 1 < nb ? c->att_blk[b + 1] : n, nq = (i1 - i0) * group;
            int maxlim = 0;
            for (int i = i0; i < i1; i++) {
                for (int g = 0; g < group; g++) {
                    const int r = (i - i0) * group + g;
                    memcpy(qp + (size_t)r * hd, c->q + (size_t)i * e + (size_t)(kvh * group + g) * hd, sizeof(float) * hd);
                    lim[r] = pos[i] + 1;
                }
                if (pos[i] + 1 > maxlim) maxlim = pos[i] + 1;
            }
            const int t0 = (int)((long)maxlim * s / S), t1 = (int)((long)maxlim * (s + 1) / S);
            const size_t base = bn_kv_offset(c, seq[i0], layer, 0) + (size_t)kvh * hd;
            float *pm = mx, *ps = sum, *pa = acc;
            if (S > 1) {
                pm = c->att_part + (size_t)task * part;
                ps = pm + R;
                pa = ps + R;
            }
            bn_attn_init(nq, hd, pm, ps, pa);
            if (c->kv_f16)
                bn_attn_f16(c->k, c->attn, qp, nq, lim, (const uint16_t *)c->k_cache + base,
                            (const uint16_t *)c->v_cache + base, kvd, t0, t1, hd, scale, pm, ps, pa, tile, kv_tile,
                            lim + R);
            else
                c->attn(qp, nq, lim, (const float *)c->k_cache + base, (const float *)c->v_cache + base, kvd, t0, t1,
                        hd, scale, pm, ps, pa, tile);
            if (S == 1)
                for (int r = 0; r < nq; r++)
                    bn_attn_finish(hd, ps[r], pa + (size_t)r * hd,
                                   c->att + (size_t)(i0 + r / group) * e + (size_t)(kvh * group + r % group) * hd);
        }
        if (S > 1) {
#pragma omp for schedule(static)
            for (int u = 0; u < units; u++) {
                const int b = u / nkv, kvh = u % nkv;
                const int i0 = c->att_blk[b], i1 = b + 1 < nb ? c->att_blk[b + 1] : n, nq = (i1 - i0) * group;
                float *pm = c->att_part + (size_t)u * S * part, *ps = pm + R, *pa = ps + R;
                for (int s = 1; s < S; s++) {
                    const float *qm = pm + (size_t)s * part;
                    bn_attn_merge(nq, hd, pm, ps, pa, qm, qm + R, qm + 2 * R);
                }
                for (int r = 0; r < nq; r++)
                    bn_attn_finish(hd, ps[r], pa + (size_t)r * hd,
                                   c->att + (size_t)(i0 + r / group) * e + (size_t)(kvh * group + r % group) * hd);
            }
        }
    }
}

static void dump_hidden(bn_context *c, int slot, int n, int32_t dump_offset, const float *src) {
    const int e = c->m->hp.n_embd;
    for (int i = 0; i < n; i++) {
        const int t = dump_offset + i;
        if (t >= c->hidden_max) break;
        memcpy(c->hidden_dump + ((size_t)slot * (size_t)c->hidden_max + (size_t)t) * (size_t)e, src + (size_t)i * e,
               (size_t)e * 4);
    }
}

static void head(bn_context *c, int n, const int32_t *out_rows) {
    const bn_model *m = c->m;
    const int e = m->hp.n_embd, V = m->hp.n_vocab;
    /* Gather the rows that want logits, normed, into xb. */
    int cnt = 0;
    int32_t rows[n];
    for (int i = 0; i < n; i++) {
        if (out_rows[i] < 0) continue;
        bn_ref_rmsnorm(c->x + (size_t)i * e, m->output_norm, e, m->hp.rms_eps, c->xb + (size_t)cnt * e);
        rows[cnt++] = out_rows[i];
    }
    if (!cnt) return;
    /* Rows needing logits are consecutive in the output (assigned in order). */
    float *dst = c->logits + (size_t)rows[0] * (size_t)V;
    const bn_kernels *k = c->k;
    const bool quantized = m->qhead.bits != 0;
    if (quantized) quantize(c, c->xb, (size_t)e, e, cnt); /* int8 hidden for the 8/6/4-bit head */
    const size_t kp = (size_t)bn_pad_k(e);
#pragma omp parallel num_threads(c->n_threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int v0 = (int)((long)V * t / T), v1 = (int)((long)V * (t + 1) / T);
        if (quantized) k->qhead(&m->qhead, c->q8, kp, c->q8_scale, cnt, dst, (size_t)V, v0, v1);
        else k->head(m->tok_embd, m->embd_type, e, c->xb, (size_t)e, cnt, dst, (size_t)V, v0, v1);
    }
}

bn_status bn_forward_chunk(bn_context *c, int n, const int32_t *tokens, const int32_t *seq, const int32_t *pos,
                           const int32_t *out_rows, int32_t dump_offset) {
    const bn_model *m = c->m;
    const bn_hparams *hp = &m->hp;
    const int e = hp->n_embd, f = hp->n_ff;
    const float eps = hp->rms_eps;
    const bool dump = c->hidden_dump && dump_offset < c->hidden_max;

    for (int i = 0; i < n; i++) bn_ref_embed(m->tok_embd, m->embd_type, e, tokens[i], c->x + (size_t)i * e);
    rope_tables(c, n, pos);
    if (dump) dump_hidden(c, 0, n, dump_offset, c->x);

    for (int l = 0; l < hp->n_layer; l++) {
        const bn_layer *L = &m->layers[l];
        /* attention block: one int8 quantization shared by q, k, v */
        norm_quantize(c, c->x, L->attn_norm, n, e, c->xb);
        {
            const bn_linear *ls[3] = {&L->wq, &L->wk, &L->wv};
            float *const ys[3] = {c->q, c->kx, c->vx};
            linear_multi(c, 3, ls, ys, n);
        }
        LORA_ADD(BN_LORA_Q, c->xb, c->q);
        LORA_ADD(BN_LORA_K, c->xb, c->kx);
        LORA_ADD(BN_LORA_V, c->xb, c->vx);
        attention(c, l, n, seq, pos);
        norm_quantize(c, c->att, L->attn_sub_norm, n, e, c->xb);
        linear_residual(c, &L->wo, n, c->q, c->x, !m->lora); /* q is free now: reuse it for the output */
        if (m->lora) {
            LORA_ADD(BN_LORA_O, L->attn_sub_norm ? c->xb : c->att, c->q);
            for (size_t i = 0; i < (size_t)n * e; i++) c->x[i] += c->q[i];
        }

        /* feed-forward block: one int8 quantization shared by gate and up */
        norm_quantize(c, c->x, L->ffn_norm, n, e, c->xb);
        gate_up(c, L, n, !m->lora);
        if (m->lora) {
            LORA_ADD(BN_LORA_GATE, c->xb, c->gate);
            LORA_ADD(BN_LORA_UP, c->xb, c->up);
            for (int i = 0; i < n; i++) {
                float *g = c->gate + (size_t)i * f, *u = c->up + (size_t)i * f;
                if (hp->act == BN_ACT_RELU2) bn_ref_relu2_mul(g, u, f, g);
                else bn_ref_silu_mul(g, u, f, g);
            }
        }
        norm_quantize(c, c->gate, L->ffn_sub_norm, n, f, c->xb);
        linear_residual(c, &L->w_down, n, c->q, c->x, !m->lora);
        if (m->lora) {
            LORA_ADD(BN_LORA_DOWN, L->ffn_sub_norm ? c->xb : c->gate, c->q);
            for (size_t i = 0; i < (size_t)n * e; i++) c->x[i] += c->q[i];
        }
        if (dump) dump_hidden(c, l + 1, n, dump_offset, c->x);
    }
    if (dump) {
        for (int i = 0; i < n; i++) bn_ref_rmsnorm(c->x + (size_t)i * e, m->output_norm, e, eps, c->xb + (size_t)i * e);
        dump_hidden(c, hp->n_layer + 1, n, dump_offset, c->xb);
    }
    head(c, n, out_rows);
    for (int i = 0; i < n; i++)
        if (pos[i] + 1 > c->seq_len[seq[i]]) c->seq_len[seq[i]] = pos[i] + 1;
    return BN_OK;
}
