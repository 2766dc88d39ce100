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

/* y[n, l->n_out] = l(q8) for the n quantized rows; rows split over threads. */
static void linear(bn_context *c, const bn_linear *l, int n, float *y) {
    const size_t kp = (size_t)bn_pad_k(l->n_in);
    const int nt = c->n_threads;
    const bn_kernels *k = c->k;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        /* Contiguous row ranges, multiples of 16 rows so SIMD tiles stay whole. */
        const int tiles = (l->n_out + 15) / 16;
        const int m0 = (int)((long)tiles * t / T) * 16;
        int m1 = (int)((long)tiles * (t + 1) / T) * 16;
        if (m1 > l->n_out) m1 = l->n_out;
        if (m0 < m1)
            k->tgemm(l->w, l->n_in, c->q8, kp, c->q8_scale, c->q8_sum, n, l->scale, y, (size_t)l->n_out, m0, m1);
    }
}

/* RMSNorm of n rows. The sum of squares stays sequential on purpose: its
 * last bit feeds the int8 rounding of the next BitLinear, and reordering it
 * was seen to flip codes against transformers (hf-tiny bf16, seq33). */
static void rmsnorm_rows(const float *x, const float *w, int n, int dim, float eps, float *out) {
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * dim;
        float *o = out + (size_t)i * dim;
        float ss = 0.0f;
        for (int j = 0; j < dim; j++) ss += xr[j] * xr[j];
        const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
#pragma omp simd
        for (int j = 0; j < dim; j++) o[j] = w[j] * (xr[j] * inv);
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

/* One query head over n_kv cached positions (vectorized bn_ref_attend_head). */
static void attend_head(const float *q, const float *K, const float *V, size_t ld, int n_kv, int hd, float scale,
                        float *p, float *out) {
    float mx = -INFINITY;
    for (int t = 0; t < n_kv; t++) {
        const float *kr = K + (size_t)t * ld;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int d = 0; d < hd; d++) dot += q[d] * kr[d];
        p[t] = dot * scale;
        mx = fmaxf(mx, p[t]);
    }
    float sum = 0.0f;
    for (int t = 0; t < n_kv; t++) {
        p[t] = expf(p[t] - mx);
        sum += p[t];
    }
    const float inv = 1.0f / sum;
    for (int d = 0; d < hd; d++) out[d] = 0.0f;
    for (int t = 0; t < n_kv; t++) {
        const float *vr = V + (size_t)t * ld;
        const float w = p[t] * inv;
#pragma omp simd
        for (int d = 0; d < hd; d++) out[d] += w * vr[d];
    }
}

static void attention(bn_context *c, int layer, int n, const int32_t *seq, const int32_t *pos) {
    const bn_hparams *hp = &c->m->hp;
    const int hd = hp->head_dim, nh = hp->n_head, group = hp->n_head / hp->n_head_kv;
    const size_t kvd = (size_t)hp->n_head_kv * (size_t)hd;
    const float scale = 1.0f / sqrtf((float)hd);
    /* RoPE on q and k, then append k, v to each sequence's cache. */
    for (int i = 0; i < n; i++) {
        const float *cs = c->rope_cs + (size_t)i * hd;
        rope_apply(c->q + (size_t)i * hp->n_embd, nh, hd, cs);
        rope_apply(c->kx + (size_t)i * kvd, hp->n_head_kv, hd, cs);
        memcpy(c->k_cache + bn_kv_offset(c, seq[i], layer, pos[i]), c->kx + (size_t)i * kvd, kvd * 4);
        memcpy(c->v_cache + bn_kv_offset(c, seq[i], layer, pos[i]), c->vx + (size_t)i * kvd, kvd * 4);
    }
    const int work = n * nh;
#pragma omp parallel for num_threads(c->n_threads) schedule(dynamic, 1)
    for (int w = 0; w < work; w++) {
        const int i = w / nh, h = w % nh, kvh = h / group;
        float *scratch = c->att_scratch + (size_t)omp_get_thread_num() * (size_t)c->n_ctx;
        const size_t base = bn_kv_offset(c, seq[i], layer, 0) + (size_t)kvh * hd;
        attend_head(c->q + (size_t)i * hp->n_embd + (size_t)h * hd, c->k_cache + base, c->v_cache + base, kvd,
                    pos[i] + 1, hd, scale, scratch, c->att + (size_t)i * hp->n_embd + (size_t)h * hd);
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
        rmsnorm_rows(c->x, L->attn_norm, n, e, eps, c->xb);
        quantize(c, c->xb, (size_t)e, e, n);
        linear(c, &L->wq, n, c->q);
        LORA_ADD(BN_LORA_Q, c->xb, c->q);
        linear(c, &L->wk, n, c->kx);
        LORA_ADD(BN_LORA_K, c->xb, c->kx);
        linear(c, &L->wv, n, c->vx);
        LORA_ADD(BN_LORA_V, c->xb, c->vx);
        attention(c, l, n, seq, pos);
        if (L->attn_sub_norm) {
            rmsnorm_rows(c->att, L->attn_sub_norm, n, e, eps, c->xb);
            quantize(c, c->xb, (size_t)e, e, n);
        } else {
            quantize(c, c->att, (size_t)e, e, n);
        }
        linear(c, &L->wo, n, c->q); /* q is free now: reuse it for the output */
        LORA_ADD(BN_LORA_O, L->attn_sub_norm ? c->xb : c->att, c->q);
        for (size_t i = 0; i < (size_t)n * e; i++) c->x[i] += c->q[i];

        /* feed-forward block: one int8 quantization shared by gate and up */
        rmsnorm_rows(c->x, L->ffn_norm, n, e, eps, c->xb);
        quantize(c, c->xb, (size_t)e, e, n);
        linear(c, &L->w_gate, n, c->gate);
        LORA_ADD(BN_LORA_GATE, c->xb, c->gate);
        linear(c, &L->w_up, n, c->up);
        LORA_ADD(BN_LORA_UP, c->xb, c->up);
        for (int i = 0; i < n; i++) {
            float *g = c->gate + (size_t)i * f, *u = c->up + (size_t)i * f;
            if (hp->act == BN_ACT_RELU2) bn_ref_relu2_mul(g, u, f, g);
            else bn_ref_silu_mul(g, u, f, g);
        }
        if (L->ffn_sub_norm) {
            rmsnorm_rows(c->gate, L->ffn_sub_norm, n, f, eps, c->xb);
            quantize(c, c->xb, (size_t)f, f, n);
        } else {
            quantize(c, c->gate, (size_t)f, f, n);
        }
        linear(c, &L->w_down, n, c->q);
        LORA_ADD(BN_LORA_DOWN, L->ffn_sub_norm ? c->xb : c->gate, c->q);
        for (size_t i = 0; i < (size_t)n * e; i++) c->x[i] += c->q[i];
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
