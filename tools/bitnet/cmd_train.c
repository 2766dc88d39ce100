/* cmd_train.c — `bitnet train`: quantization-aware training of a BitNet
 * b1.58 model on the CPU (fp32 latent weights, AdamW, LR schedules, gradient
 * accumulation, eval, samples, JSONL log, atomic checkpoints, exact resume). */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "train/train.h"

#define CMD "train"

static void usage(FILE *f) {
    fprintf(f,
        "usage: bitnet train [model] [data] [options]\n\n"
        "Quantization-aware training of a BitNet b1.58 model (absmean ternary weights and\n"
        "per-token int8 activations with straight-through gradients, as transformers'\n"
        "AutoBitLinear in online mode), fp32 latent weights, AdamW.\n\n"
        "model (one of):\n"
        "  --init DIR            start from an HF folder (config.json + safetensors, f32/bf16/f16)\n"
        "  --config FILE         shape from an HF config.json, random init\n"
        "  --preset NAME         tiny | small (~2.8M) | medium (~11M), random init\n"
        "  --resume CKPT         continue a checkpoint bit-exactly (same options otherwise)\n"
        "  --no-quant            plain fp32 linears (baseline without quantization)\n"
        "  --seed N              init / sampling seed (default 1)\n"
        "data (one of):\n"
        "  --batch-file FILE     a fixed int32 [B, T+1] batch used at every step\n"
        "  --data DIR            shards from 'bitnet data prepare' (train.bin, val.bin)\n"
        "  --batch B --seq T     sequences per micro-batch and tokens per sequence\n"
        "  --accum K             micro-batches per optimizer step (gradient accumulation)\n"
        "  --tokens-per-step N   alternatively: accumulate to N tokens per step\n"
        "optimization:\n"
        "  --steps N  --lr X  --min-lr X (default lr/10)  --warmup N\n"
        "  --lr-schedule constant|cosine|linear|wsd|two-stage  (two-stage = BitNet's: peak,\n"
        "                        then a lower second stage from the midpoint, weight decay off)\n"
        "  --wsd-decay F (0.2)  --stage2-lr F (0.5)\n"
        "  --weight-decay X (0.1, 2-D tensors only)  --beta1 X (0.9)  --beta2 X (0.95)\n"
        "  --eps X (1e-8)  --grad-clip X (1.0; 0 = off)\n"
        "output:\n"
        "  --log FILE            JSONL, one object per step: step, loss, grad_norm, lr, ...\n"
        "  --save OUT            final latent weights (f32 safetensors) to the file OUT, or,\n"
        "                        if OUT is a folder or ends in /, OUT/model.safetensors +\n"
        "                        config.json\n"
        "  --ckpt FILE --ckpt-every N   checkpoints (weights, moments, step, RNG, data position)\n"
        "  --stop-at N           stop after update N (the schedule still spans --steps)\n"
        "  --eval-every N --eval-batches K   held-out loss on val.bin\n"
        "  --sample-every M --sample-len L --temperature X   print a text sample\n"
        "  --print-every N       progress line period on stderr\n"
        "  --threads N           OpenMP and OpenBLAS threads (bit-exact resume needs the same N)\n"
        "  --inject-nan-at N     testing: poison a weight so that step N's loss is NaN\n"
        "  --quiet\n");
}

typedef struct opts {
    const char *init, *config, *preset, *resume, *batch_file, *data, *log, *save, *ckpt;
    bool no_quant, quiet;
    long B, T, accum, tokens_per_step, steps, warmup, ckpt_every, stop_at, eval_every,
         eval_batches, sample_every, sample_len, print_every, threads, inject_nan_at;
    unsigned long long seed;
    double lr, min_lr, wd, beta1, beta2, eps, clip, wsd_decay, stage2, temperature;
    const char *sched;
} opts;

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.B = 8, .T = 128, .accum = 1, .steps = 100, .eval_batches = 8,
                .sample_len = 200, .seed = 1, .lr = 1e-3, .min_lr = -1, .wd = 0.1,
                .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .clip = 1.0, .wsd_decay = 0.2,
                .stage2 = 0.5, .temperature = 0.8, .sched = "constant", .print_every = 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
#define STR(flag, field) if (!strcmp(a, flag)) { if (!(v = bn_cli_value(CMD, argc, argv, &i))) return 2; o->field = v; continue; }
#define INT(flag, field, lo, hi) if (!strcmp(a, flag)) { if (!(v = bn_cli_value(CMD, argc, argv, &i)) || !bn_cli_parse_int(CMD, flag, v, lo, hi, &o->field)) return 2; continue; }
#define DBL(flag, field) if (!strcmp(a, flag)) { if (!(v = bn_cli_value(CMD, argc, argv, &i)) || !bn_cli_parse_float(CMD, flag, v, &o->field)) return 2; continue; }
        STR("--init", init) STR("--config", config) STR("--preset", preset)
        STR("--resume", resume) STR("--batch-file", batch_file) STR("--data", data)
        STR("--log", log) STR("--save", save) STR("--ckpt", ckpt) STR("--lr-schedule", sched)
        INT("--batch", B, 1, 1 << 16) INT("--seq", T, 1, 1 << 16) INT("--accum", accum, 1, 1 << 16)
        INT("--tokens-per-step", tokens_per_step, 1, 1L << 40) INT("--steps", steps, 1, 1L << 40)
        INT("--warmup", warmup, 0, 1L << 40) INT("--ckpt-every", ckpt_every, 0, 1L << 40)
        INT("--stop-at", stop_at, 0, 1L << 40) INT("--eval-every", eval_every, 0, 1L << 40)
        INT("--eval-batches", eval_batches, 1, 1 << 20)
        INT("--sample-every", sample_every, 0, 1L << 40) INT("--sample-len", sample_len, 1, 1 << 20)
        INT("--print-every", print_every, 0, 1L << 40) INT("--threads", threads, 0, 4096)
        INT("--inject-nan-at", inject_nan_at, 0, 1L << 40)
        DBL("--lr", lr) DBL("--min-lr", min_lr) DBL("--weight-decay", wd) DBL("--beta1", beta1)
        DBL("--beta2", beta2) DBL("--eps", eps) DBL("--grad-clip", clip)
        DBL("--wsd-decay", wsd_decay) DBL("--stage2-lr", stage2) DBL("--temperature", temperature)
        if (!strcmp(a, "--seed")) {
            long s;
            if (!(v = bn_cli_value(CMD, argc, argv, &i)) || !bn_cli_parse_int(CMD, a, v, 0, LONG_MAX, &s)) return 2;
            o->seed = (unsigned long long)s;
            continue;
        }
        if (!strcmp(a, "--no-quant")) { o->no_quant = true; continue; }
        if (!strcmp(a, "--quiet")) { o->quiet = true; continue; }
#undef STR
#undef INT
#undef DBL
        return bn_cli_usage_error(CMD, "unknown option '%s'", a);
    }
    int nsrc = !!o->init + !!o->config + !!o->preset;
    if (nsrc > 1 || (nsrc == 0 && !o->resume) || (o->resume && o->init))
        return bn_cli_usage_error(CMD, "give one of --init, --config, --preset, or --resume "
                                  "(optionally with the --config/--preset it must match)");
    if (!!o->batch_file + !!o->data != 1)
        return bn_cli_usage_error(CMD, "give exactly one of --batch-file, --data");
    if (!(o->lr >= 0) || !(o->wd >= 0) || !(o->beta1 >= 0 && o->beta1 < 1) ||
        !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps >= 0) || !(o->clip >= 0))
        return bn_cli_usage_error(CMD, "lr, weight decay, eps and grad clip must be >= 0 and "
                                  "betas in [0, 1)");
    if (o->min_lr < 0) o->min_lr = o->lr / 10;
    if (o->tokens_per_step) {
        long per = o->B * o->T;
        o->accum = (o->tokens_per_step + per - 1) / per;
    }
    if (o->eval_every && !o->data)
        return bn_cli_usage_error(CMD, "--eval-every needs --data (a held-out split)");
    return -1;
}

/* Fixed batch: int32 [B, T+1] -> tokens/targets [B, T]. */
static bn_status read_batch_file(const char *path, int B, int T, int32_t *tok, int32_t *tgt) {
    char *buf = NULL;
    size_t len = 0, want = (size_t)B * (size_t)(T + 1) * 4;
    bn_status st = bn_read_file(path, (size_t)1 << 30, &buf, &len);
    if (st != BN_OK) return st;
    if (len != want) {
        free(buf);
        return bn_fail(BN_ERR_SHAPE, "%s: %zu bytes, but --batch %d --seq %d needs int32 [%d, %d] "
                       "= %zu bytes", path, len, B, T, B, T + 1, want);
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            memcpy(&tok[(size_t)b * T + t], buf + 4 * ((size_t)b * (T + 1) + t), 4);
            memcpy(&tgt[(size_t)b * T + t], buf + 4 * ((size_t)b * (T + 1) + t + 1), 4);
        }
    free(buf);
    return BN_OK;
}

typedef struct run {
    opts *o;
    bn_tr_model *m;
    bn_tr_adamw opt;
    bn_tr_state st;
    bn_tr_shard train, val;
    bool have_val;
    char tokenizer[1024];  /* "bytes" or a tokenizer path, from meta.json */
    bn_tokenizer *tok;
    FILE *log;
    int64_t last_good_ckpt;
} run;

static bn_status open_data(run *r) {
    char p[4096];
    snprintf(p, sizeof p, "%s/train.bin", r->o->data);
    bn_status st = bn_tr_shard_open(p, &r->train);
    if (st != BN_OK) return st;
    if (r->train.count < (uint64_t)r->o->T + 1)
        return bn_fail(BN_ERR_INVALID_ARG, "%s: %llu tokens, too short for one window of "
                       "--seq %ld + 1", p, (unsigned long long)r->train.count, r->o->T);
    snprintf(p, sizeof p, "%s/val.bin", r->o->data);
    struct stat sb;
    if (stat(p, &sb) == 0) {
        st = bn_tr_shard_open(p, &r->val);
        if (st != BN_OK) return st;
        r->have_val = r->val.count >= (uint64_t)r->o->T + 1;
        if (!r->have_val && r->o->eval_every)
            return bn_fail(BN_ERR_INVALID_ARG, "%s: %llu tokens, too short for one eval window "
                           "of --seq %ld + 1", p, (unsigned long long)r->val.count, r->o->T);
    } else if (r->o->eval_every) {
        return bn_fail(BN_ERR_NOT_FOUND, "%s: no held-out split for --eval-every", p);
    }
    snprintf(p, sizeof p, "%s/meta.json", r->o->data);
    char *meta = NULL;
    snprintf(r->tokenizer, sizeof r->tokenizer, "bytes");
    if (bn_read_file(p, 1 << 20, &meta, NULL) == BN_OK) {
        const char *k = strstr(meta, "\"tokenizer\"");
        const char *q1 = k ? strchr(k + 11, '"') : NULL, *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
        if (q1 && q2 && (size_t)(q2 - q1 - 1) < sizeof r->tokenizer)
            snprintf(r->tokenizer, sizeof r->tokenizer, "%.*s", (int)(q2 - q1 - 1), q1 + 1);
        free(meta);
    }
    bn_error_clear();
    return BN_OK;
}

static bn_status build_model(run *r) {
    opts *o = r->o;
    bn_tr_config cfg;
    bool quant = !o->no_quant;
    bn_status st;
    if (o->resume) {
        bool cq;
        st = bn_tr_checkpoint_peek(o->resume, &cfg, &cq);
        if (st != BN_OK) return st;
        /* an explicit shape must match the checkpoint's (checked when loading) */
        if (o->config) st = bn_tr_config_load(o->config, &cfg);
        else if (o->preset) st = bn_tr_config_preset(o->preset, &cfg);
        if (st == BN_OK && o->preset && o->data) cfg.vocab = (int32_t)r->train.vocab;
        if (st != BN_OK) return st;
        if (cq != quant)
            return bn_fail(BN_ERR_INVALID_ARG, "%s was trained %s quantization; %s --no-quant",
                           o->resume, cq ? "with" : "without", cq ? "drop" : "add");
    } else if (o->init) {
        st = bn_tr_config_load(o->init, &cfg);
    } else if (o->config) {
        st = bn_tr_config_load(o->config, &cfg);
    } else {
        st = bn_tr_config_preset(o->preset, &cfg);
        /* a preset takes the data's vocabulary */
        if (st == BN_OK && o->data) cfg.vocab = (int32_t)r->train.vocab;
    }
    if (st != BN_OK) return st;
    if (o->data && r->train.vocab > (uint32_t)cfg.vocab)
        return bn_fail(BN_ERR_SHAPE, "the data's vocabulary (%u) is larger than the model's "
                       "vocab_size (%d)", r->train.vocab, cfg.vocab);
    st = bn_tr_model_create(&cfg, quant, &r->m);
    if (st != BN_OK) return st;
    st = bn_tr_adamw_init(&r->opt, r->m->n_params);
    if (st != BN_OK) return st;
    r->opt.beta1 = o->beta1;
    r->opt.beta2 = o->beta2;
    r->opt.eps = o->eps;
    bn_tr_rng_seed(&r->st.data_rng, o->seed * 2 + 1);
    bn_tr_rng_seed(&r->st.aux_rng, o->seed * 2 + 2);
    if (o->resume) {
        st = bn_tr_checkpoint_load(o->resume, r->m, &r->opt, &r->st);
        r->last_good_ckpt = r->st.step;
    } else if (o->init) {
        st = bn_tr_load_safetensors(r->m, o->init);
    } else {
        bn_tr_model_init_random(r->m, o->seed);
    }
    return st;
}

/* Held-out loss over a fixed set of windows (same windows every time). */
static bn_status evaluate(run *r, double *out) {
    bn_tr_model *v = NULL;
    bn_status st = bn_tr_model_view(r->m, &v);
    if (st != BN_OK) return st;
    int B = (int)r->o->B, T = (int)r->o->T;
    int32_t *tok = bn_malloc(sizeof(int32_t) * (size_t)B * T * 2);
    if (!tok) { bn_tr_model_free(v); return BN_ERR_NOMEM; }
    bn_tr_rng er;
    bn_tr_rng_seed(&er, 0x5eed0e7a1ull);
    double sum = 0;
    long cnt = 0;
    for (long k = 0; k < r->o->eval_batches && st == BN_OK; k++) {
        st = bn_tr_shard_sample(&r->val, &er, B, T, tok, tok + (size_t)B * T);
        double ls = 0;
        int nt = 0;
        if (st == BN_OK) st = bn_tr_forward(v, tok, tok + (size_t)B * T, B, T, 0, &ls, &nt, NULL);
        sum += ls;
        cnt += nt;
    }
    free(tok);
    bn_tr_model_free(v);
    *out = cnt ? sum / (double)cnt : NAN;
    return st;
}

/* Text sample: recompute the window for each new token (small models only). */
static void sample_text(run *r) {
    int T = (int)r->o->T, L = (int)r->o->sample_len, V = r->m->cfg.vocab;
    bn_tr_model *v = NULL;
    if (bn_tr_model_view(r->m, &v) != BN_OK) return;
    int32_t *ctx = calloc((size_t)T, sizeof(int32_t));
    int32_t *out = calloc((size_t)L + 1, sizeof(int32_t));
    double *pr = malloc(sizeof(double) * (size_t)V);
    if (!ctx || !out || !pr) goto done;
    int n = 1;
    ctx[0] = !strcmp(r->tokenizer, "bytes") ? '\n' : (r->m->cfg.bos_id >= 0 ? r->m->cfg.bos_id : 0);
    for (int i = 0; i < L; i++) {
        if (bn_tr_forward(v, ctx, NULL, 1, T, 0, NULL, NULL, NULL) != BN_OK) goto done;
        const float *lg = bn_tr_logits(v) + (size_t)(n - 1) * V;
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, lg[j]);
        double temp = r->o->temperature > 0 ? r->o->temperature : 1e-6;
        for (int j = 0; j < V; j++) s += pr[j] = exp((lg[j] - mx) / temp);
        double u = bn_tr_rng_uniform(&r->st.aux_rng) * s;
        int id = V - 1;
        for (int j = 0; j < V; j++) { u -= pr[j]; if (u < 0) { id = j; break; } }
        out[i] = id;
        if (n == T) { memmove(ctx, ctx + 1, sizeof(int32_t) * (size_t)(T - 1)); n--; }
        ctx[n++] = id;
    }
    fprintf(stderr, "---- sample at step %lld ----\n", (long long)r->st.step);
    if (!strcmp(r->tokenizer, "bytes")) {
        for (int i = 0; i < L; i++) fputc(out[i] & 0xff, stderr);
    } else if (r->tok) {
        char *text = NULL;
        size_t len = 0;
        if (bn_detokenize(r->tok, out, (size_t)L, true, &text, &len) == BN_OK)
            fwrite(text, 1, len, stderr);
        free(text);
    }
    fprintf(stderr, "\n----\n");
done:
    free(ctx);
    free(out);
    free(pr);
    bn_tr_model_free(v);
}

static void fmt_time(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e9) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm%02lds", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

/* OpenBLAS sgemm rate at the model's largest linear shape, timed now: split
 * over the OpenMP threads as training does (own = false), or with OpenBLAS's
 * own threads (own = true). */
static double sgemm_rate(int M, int N, int K, bool own) {
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)N * K, 4), *c = calloc((size_t)M * N, 4);
    double gf = 0;
    if (a && b && c) {
        for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 5) * 0.1f;
        if (own) openblas_set_num_threads(omp_get_max_threads());
        bn_tr_sgemm(false, true, M, N, K, 1, a, K, b, K, 0, c, N);
        int reps = 0;
        double t0 = bn_time_s(), t;
        do {
            if (own) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
            else bn_tr_sgemm(false, true, M, N, K, 1, a, K, b, K, 0, c, N);
            reps++;
        } while ((t = bn_time_s() - t0) < 1.0);
        gf = 2.0 * M * N * K * reps / t / 1e9;
        if (own) openblas_set_num_threads(1);
    }
    free(a);
    free(b);
    free(c);
    return gf;
}

static bool weights_finite(const bn_tr_model *m) {
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(m->w[i])) return false;
    return true;
}

static int train_loop(run *r) {
    opts *o = r->o;
    bn_tr_model *m = r->m;
    const int B = (int)o->B, T = (int)o->T, K = (int)o->accum;
    const size_t BT = (size_t)B * T;
    int32_t *tok = bn_malloc(sizeof(int32_t) * BT * 2);
    if (!tok) return bn_cli_fail("train");
    int32_t *tgt = tok + BT;
    if (o->batch_file && read_batch_file(o->batch_file, B, T, tok, tgt) != BN_OK) {
        free(tok);
        return bn_cli_fail("train");
    }
    bn_tr_schedule sch = {.lr = o->lr, .min_lr = o->min_lr, .warmup = o->warmup,
                          .total = o->steps, .wsd_decay_frac = o->wsd_decay,
                          .stage2_lr_frac = o->stage2, .weight_decay = o->wd};
    if (bn_tr_schedule_parse(o->sched, &sch.kind) != BN_OK) { free(tok); return bn_cli_fail("train"); }
    const int64_t end = o->stop_at > 0 && o->stop_at < o->steps ? o->stop_at : o->steps;
    const int64_t first = r->st.step;
    long pe = o->print_every ? o->print_every : (o->steps >= 100 ? o->steps / 100 : 1);
    const double t0 = bn_time_s(), flops = bn_tr_flops_per_step(&m->cfg, B, T) * K;
    double t_gemm0 = m->t_gemm;
    int rc = 0;
    if (!o->quiet)
        fprintf(stderr, "bitnet train: %zu parameters (%s), %d layers, hidden %d; %d x %d tokens x "
                "%d micro-batches per step; steps %lld..%lld of %ld\n", m->n_params,
                m->quant ? "ternary QAT" : "fp32, no quantization", m->cfg.layers, m->cfg.hidden,
                B, T, K, (long long)first + 1, (long long)end, o->steps);
    for (int64_t step = first; step < end; step++) {
        double lr, wd;
        bn_tr_schedule_at(&sch, step, &lr, &wd);
        if (o->inject_nan_at == step + 1) bn_tr_w(m, bn_tr_tensor_final_norm(m))[0] = NAN;
        bn_tr_zero_grad(m);
        double lsum = 0;
        long ntok = 0;
        for (int k = 0; k < K; k++) {
            if (o->data && bn_tr_shard_sample(&r->train, &r->st.data_rng, B, T, tok, tgt) != BN_OK) {
                rc = bn_cli_fail("train");
                goto out;
            }
            double ls = 0;
            int nt = 0;
            if (bn_tr_forward(m, tok, tgt, B, T, 1.0f / (float)(BT * (size_t)K), &ls, &nt, NULL) != BN_OK ||
                bn_tr_backward(m) != BN_OK) {
                rc = bn_cli_fail("train");
                goto out;
            }
            lsum += ls;
            ntok += nt;
        }
        float loss = (float)(lsum / (double)(ntok ? ntok : 1));
        double gn = bn_tr_grad_norm(m);
        if (!isfinite(loss) || !isfinite(gn)) {
            fprintf(stderr, "bitnet train: the %s is %s at step %lld; stopping without an update. ",
                    isfinite(loss) ? "gradient norm" : "loss", isnan(isfinite(loss) ? gn : loss) ?
                    "NaN" : "infinite", (long long)step + 1);
            if (o->ckpt && r->last_good_ckpt > 0)
                fprintf(stderr, "The last good checkpoint is %s (step %lld).\n", o->ckpt,
                        (long long)r->last_good_ckpt);
            else
                fprintf(stderr, "No checkpoint was written.\n");
            rc = 1;
            goto out;
        }
        if (o->clip > 0 && gn > o->clip) bn_tr_scale_grads(m, (float)(o->clip / gn));
        bn_tr_adamw_step(&r->opt, m, lr, wd);
        r->st.step = step + 1;
        r->st.tokens_seen += (double)ntok;
        double el = bn_time_s() - t0;
        double done = (double)(r->st.step - first);
        double tps = (double)BT * K * done / el;
        double val = NAN;
        if (o->eval_every && (r->st.step % o->eval_every == 0 || r->st.step == end)) {
            if (evaluate(r, &val) != BN_OK) { rc = bn_cli_fail("eval"); goto out; }
        }
        if (r->log) {
            fprintf(r->log, "{\"step\":%lld,\"loss\":%.9g,\"grad_norm\":%.9g,\"lr\":%.9g,"
                    "\"wd\":%.9g,\"tokens\":%.0f,\"elapsed\":%.3f,\"tok_per_s\":%.1f",
                    (long long)r->st.step, loss, gn, lr, wd, r->st.tokens_seen, el, tps);
            if (!isnan(val)) fprintf(r->log, ",\"val_loss\":%.9g", val);
            fprintf(r->log, "}\n");
            fflush(r->log);
        }
        if (!o->quiet && (r->st.step % pe == 0 || r->st.step == end || !isnan(val))) {
            char e1[32], e2[32];
            fmt_time(el, e1, sizeof e1);
            fmt_time(el / done * (double)(end - r->st.step), e2, sizeof e2);
            fprintf(stderr, "step %lld/%ld  loss %.4f", (long long)r->st.step, o->steps, loss);
            if (!isnan(val)) fprintf(stderr, "  val %.4f", val);
            fprintf(stderr, "  lr %.3g  gnorm %.3f  %.0f tok/s  elapsed %s  ETA %s\n", lr, gn, tps,
                    e1, e2);
        }
        if (o->sample_every && r->st.step % o->sample_every == 0) sample_text(r);
        if (o->ckpt && ((o->ckpt_every && r->st.step % o->ckpt_every == 0) || r->st.step == end)) {
            /* an update can overflow the weights before any loss shows it: never
             * replace a good checkpoint by one holding Inf/NaN */
            if (!weights_finite(m)) {
                fprintf(stderr, "bitnet train: the weights hold Inf/NaN after step %lld; stopping. ",
                        (long long)r->st.step);
                if (r->last_good_ckpt > 0)
                    fprintf(stderr, "The last good checkpoint is %s (step %lld).\n", o->ckpt,
                            (long long)r->last_good_ckpt);
                else
                    fprintf(stderr, "No checkpoint was written.\n");
                rc = 1;
                goto out;
            }
            if (bn_tr_checkpoint_save(o->ckpt, m, &r->opt, &r->st) != BN_OK) {
                rc = bn_cli_fail("checkpoint");
                goto out;
            }
            r->last_good_ckpt = r->st.step;
        }
    }
    {
        double el = bn_time_s() - t0, n = (double)(end - first), tg = m->t_gemm - t_gemm0;
        if (!o->quiet && n > 0) {
            const bn_tr_config *c = &m->cfg;
            double rate = sgemm_rate(B * T, c->ffn, c->hidden, false);
            double rate_own = sgemm_rate(B * T, c->ffn, c->hidden, true);
            fprintf(stderr, "bitnet train: %lld steps in %.1f s: %.0f tokens/s; linear layers "
                    "%.2f GFLOP/s overall, %.2f GFLOP/s inside their sgemm calls (%.0f%% of the "
                    "time); OpenBLAS sgemm %dx%dx%d alone, %d threads: %.2f GFLOP/s (split as in "
                    "training), %.2f GFLOP/s (OpenBLAS's own threads)\n", (long long)n, el,
                    (double)BT * K * n / el, flops * n / el / 1e9, tg > 0 ? flops * n / tg / 1e9 : 0,
                    100 * tg / el, B * T, c->ffn, c->hidden, omp_get_max_threads(), rate, rate_own);
            if (r->log) {
                fprintf(r->log, "{\"summary\":true,\"steps\":%lld,\"seconds\":%.3f,"
                        "\"tok_per_s\":%.1f,\"gflops_overall\":%.3f,\"gflops_gemm\":%.3f,"
                        "\"gemm_time_frac\":%.4f,\"sgemm_gflops\":%.3f,\"sgemm_gflops_own_threads\":%.3f,"
                        "\"threads\":%d}\n", (long long)n, el,
                        (double)BT * K * n / el, flops * n / el / 1e9,
                        tg > 0 ? flops * n / tg / 1e9 : 0, tg / el, rate, rate_own,
                        omp_get_max_threads());
                fflush(r->log);
            }
        }
    }
    if (o->save && !weights_finite(m)) {
        fprintf(stderr, "bitnet train: the weights hold Inf/NaN; not saving %s\n", o->save);
        rc = 1;
    } else if (o->save && bn_tr_save_safetensors(m, o->save) != BN_OK) {
        rc = bn_cli_fail("save");
    }
out:
    free(tok);
    return rc;
}

int bn_cmd_train(int argc, char **argv) {
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    /* OpenMP provides all the parallelism (bn_tr_sgemm splits the products);
     * OpenBLAS runs single-threaded inside it */
    openblas_set_num_threads(1);
    if (o.threads > 0) omp_set_num_threads((int)o.threads);
    run r = {.o = &o};
    rc = 0;
    if (o.data && open_data(&r) != BN_OK) { rc = bn_cli_fail("data"); goto done; }
    if (build_model(&r) != BN_OK) { rc = bn_cli_fail("model"); goto done; }
    if (o.T > r.m->cfg.max_pos && r.m->cfg.max_pos > 0 && !o.quiet)
        fprintf(stderr, "bitnet train: warning: --seq %ld exceeds max_position_embeddings %d\n",
                o.T, r.m->cfg.max_pos);
    if (o.data && strcmp(r.tokenizer, "bytes") && o.sample_every &&
        bn_tokenizer_load(r.tokenizer, &r.tok) != BN_OK) {
        fprintf(stderr, "bitnet train: warning: cannot load tokenizer %s for samples: %s\n",
                r.tokenizer, bn_last_error());
        o.sample_every = 0;
    }
    if (o.log) {
        r.log = fopen(o.log, o.resume ? "a" : "w");
        if (!r.log) {
            fprintf(stderr, "bitnet train: %s: %s\n", o.log, strerror(errno));
            rc = 1;
            goto done;
        }
    }
    rc = train_loop(&r);
done:
    if (r.log) fclose(r.log);
    bn_tokenizer_free(r.tok);
    bn_tr_adamw_free(&r.opt);
    bn_tr_model_free(r.m);
    bn_tr_shard_close(&r.train);
    bn_tr_shard_close(&r.val);
    return rc;
}
