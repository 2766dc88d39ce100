/* cmd_finetune.c — `bitnet finetune`: supervised fine-tuning of a BitNet
 * b1.58 model on JSONL data, with LoRA adapters (default) or full
 * fine-tuning with frozen tensors; saves a PEFT adapter, a merged model, or
 * the fine-tuned model; optional before/after evaluation. */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "train/lora.h"

#define CMD "finetune"
enum { MAX_FREEZE = 64 };

static void usage(FILE *f) {
    fprintf(f,
        "usage: bitnet finetune -m BASE --data train.jsonl [options]\n\n"
        "Supervised fine-tuning. JSONL lines: {\"text\": ...} (every token learned) or\n"
        "{\"messages\": [{\"role\": ..., \"content\": ...}, ...]} rendered with the chat template,\n"
        "learning only the assistant replies.\n\n"
        "  -m BASE               HF folder with latent f32/bf16 masters (best), or any model\n"
        "                        bitnet loads (GGUF, packed HF: its ternary weights * scale)\n"
        "  --data FILE           training JSONL\n"
        "  --tokenizer PATH|bytes  (default: the base's; 'bytes' for a byte-level model)\n"
        "  --template NAME       chatml | llama3 | bitnet (default: the model's, as in generate;\n"
        "                        chatml as plain text for a byte-level model)\n"
        "LoRA (the default): y = BitLinear(x) + alpha/r * B(A(x)), base frozen and ternary,\n"
        "the adapter in f32 on the unquantized input x\n"
        "  --lora-rank R (8)  --lora-alpha A (2R)  --lora-targets q,k,v,o,gate,up,down (all)\n"
        "  --lora DIR            start from this adapter (PEFT folder) instead of a new one\n"
        "  --merge-aware         train the adapter through the quantizer: the forward uses\n"
        "                        ternary(W + alpha/r B A) on int8 x (straight-through), which is\n"
        "                        exactly the model --merge writes (for a ternary merged model;\n"
        "                        such an adapter is not meant for --lora at inference)\n"
        "full fine-tuning:\n"
        "  --full                train all weights (quantization-aware) ...\n"
        "  --freeze PATTERN      ... except tensors matching this HF-name glob (repeatable),\n"
        "                        e.g. 'model.embed_tokens.*' or 'model.layers.*.mlp.*'\n"
        "optimization:\n"
        "  --steps N (100; 0 = no training)  --lr X (1e-3 LoRA, 1e-4 full)  --warmup N (0)\n"
        "  --lr-schedule constant|cosine|linear (constant)  --weight-decay X (0)\n"
        "  --batch B (8)  --seq T (128)  --grad-clip X (1.0)  --seed N (1)  --threads N\n"
        "output:\n"
        "  --save OUT            LoRA: the adapter folder (adapter_config.json +\n"
        "                        adapter_model.safetensors); full or --merge: the model, an HF\n"
        "                        folder (f32 latent + config.json + tokenizer) or OUT.gguf\n"
        "  --merge               fold the adapter into the latent weights, W' = W + alpha/r B A\n"
        "                        (re-quantized to ternary when the model is loaded)\n"
        "  --adapter-out DIR     with --merge: also keep the adapter\n"
        "  --eval FILE           JSONL chats: before and after training, greedy-decode the last\n"
        "                        assistant reply of each and report exact matches, token\n"
        "                        accuracy and loss on the replies\n"
        "  --print-every N (10)  --log FILE (JSONL per step)  --quiet\n");
}

typedef struct opts {
    const char *model, *data, *tokenizer, *tmpl, *targets, *lora, *save, *adapter_out, *eval,
        *log, *sched;
    const char *freeze[MAX_FREEZE];
    int n_freeze;
    bool full, merge, quiet, merge_aware;
    long rank, steps, warmup, B, T, threads, print_every;
    double alpha, lr, wd, clip;
    unsigned long long seed;
} opts;

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.targets = "all", .rank = 8, .alpha = -1, .steps = 100, .B = 8, .T = 128,
                .lr = -1, .clip = 1.0, .seed = 1, .print_every = 10, .sched = "constant"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
#define STR(flag, field) if (!strcmp(a, flag)) { if (!(v = bn_cli_value(CMD, argc, argv, &i))) return 2; o->field = v; continue; }
#define INT(flag, field, lo, hi) if (!strcmp(a, flag)) { if (!(v = bn_cli_value(CMD, argc, argv, &i)) || !bn_cli_parse_int(CMD, flag, v, lo, hi, &o->field)) return 2; continue; }
#define DBL(flag, field) if (!strcmp(a, flag)) { if (!(v = bn_cli_value(CMD, argc, argv, &i)) || !bn_cli_parse_float(CMD, flag, v, &o->field)) return 2; continue; }
        STR("-m", model) STR("--model", model) STR("--data", data) STR("--tokenizer", tokenizer)
        STR("--template", tmpl) STR("--lora-targets", targets) STR("--lora", lora)
        STR("--save", save) STR("--adapter-out", adapter_out) STR("--eval", eval) STR("--log", log)
        STR("--lr-schedule", sched)
        INT("--lora-rank", rank, 1, 1 << 20) INT("--steps", steps, 0, 1L << 40)
        INT("--warmup", warmup, 0, 1L << 40) INT("--batch", B, 1, 1 << 16) INT("--seq", T, 2, 1 << 16)
        INT("--threads", threads, 0, 4096) INT("--print-every", print_every, 0, 1L << 40)
        DBL("--lora-alpha", alpha) DBL("--lr", lr) DBL("--weight-decay", wd) DBL("--grad-clip", clip)
        if (!strcmp(a, "--seed")) {
            long s;
            if (!(v = bn_cli_value(CMD, argc, argv, &i)) || !bn_cli_parse_int(CMD, a, v, 0, LONG_MAX, &s)) return 2;
            o->seed = (unsigned long long)s;
            continue;
        }
        if (!strcmp(a, "--freeze")) {
            if (!(v = bn_cli_value(CMD, argc, argv, &i))) return 2;
            if (o->n_freeze == MAX_FREEZE) return bn_cli_usage_error(CMD, "too many --freeze patterns");
            o->freeze[o->n_freeze++] = v;
            o->full = true;
            continue;
        }
        if (!strcmp(a, "--full")) { o->full = true; continue; }
        if (!strcmp(a, "--merge")) { o->merge = true; continue; }
        if (!strcmp(a, "--merge-aware")) { o->merge_aware = true; continue; }
        if (!strcmp(a, "--quiet")) { o->quiet = true; continue; }
#undef STR
#undef INT
#undef DBL
        return bn_cli_usage_error(CMD, "unknown option '%s'", a);
    }
    if (!o->model) return bn_cli_usage_error(CMD, "give the base model with -m");
    if (!o->data && o->steps > 0) return bn_cli_usage_error(CMD, "give the training data with --data (or --steps 0)");
    if (o->full && (o->lora || o->merge || o->merge_aware))
        return bn_cli_usage_error(CMD, "--full/--freeze train the model itself; --lora, --merge and --merge-aware are for adapters");
    if (o->merge && !o->save) return bn_cli_usage_error(CMD, "--merge needs --save OUT for the merged model");
    if (o->alpha < 0) o->alpha = 2.0 * (double)o->rank;
    if (o->lr < 0) o->lr = o->full ? 1e-4 : 1e-3;
    if (!(o->lr >= 0) || !(o->wd >= 0) || !(o->clip >= 0) || !(o->alpha > 0))
        return bn_cli_usage_error(CMD, "lr, weight decay and grad clip must be >= 0, alpha > 0");
    return -1;
}

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}
static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The base: latent masters from an HF folder when it has them, else whatever
 * bitnet loads, as ternary * scale. */
static bn_status load_base(const char *spec, bn_tr_model **out, char **resolved, bool *latent) {
    *out = NULL;
    *latent = false;
    bn_model *bm = NULL;
    if (is_dir(spec)) {
        bn_tr_config c;
        if (bn_tr_config_load(spec, &c) == BN_OK) {
            bn_tr_model *m = NULL;
            bn_status st = bn_tr_model_create(&c, true, &m);
            if (st != BN_OK) return st;
            if (bn_tr_load_safetensors(m, spec) == BN_OK) {
                *out = m;
                *latent = true;
                *resolved = strdup(spec);
                return *resolved ? BN_OK : BN_ERR_NOMEM;
            }
            bn_tr_model_free(m);
        }
    }
    bn_status st = bn_cli_load_model_path(spec, &bm, resolved);
    if (st != BN_OK) return st;
    st = bn_tr_model_from_bn_model(bm, out);
    bn_model_free(bm);
    if (st != BN_OK) bn_error_prefix("%s", spec);
    return st;
}

typedef struct ctx {
    opts *o;
    bn_tr_model *m;
    bn_tr_lora *lo;   /* NULL in full fine-tuning */
} ctx;

static bn_status fwd(ctx *c, const int32_t *tok, const int32_t *tgt, int B, int T, float scale,
                     double *loss, int *n) {
    if (c->lo) return bn_tr_lora_forward(c->m, c->lo, tok, tgt, B, T, scale, loss, n, NULL);
    return bn_tr_forward(c->m, tok, tgt, B, T, scale, loss, n, NULL);
}
static const float *logits(ctx *c);

/* Evaluation over chats: the last scored run of each example is the reply. */
typedef struct eval_res { int n, exact; double tok_acc, loss; } eval_res;

static bn_status evaluate(ctx *c, const bn_tr_sft_data *ev, int T, eval_res *r) {
    *r = (eval_res){0};
    const int V = c->m->cfg.vocab;
    int64_t n_tok = 0, n_hit = 0;
    double loss = 0;
    int32_t *tok = bn_malloc(sizeof(int32_t) * (size_t)T), *tgt = bn_malloc(sizeof(int32_t) * (size_t)T);
    bn_status st = tok && tgt ? BN_OK : BN_ERR_NOMEM;
    for (int e = 0; e < ev->n_ex && st == BN_OK; e++) {
        const bn_tr_sft_example *x = &ev->ex[e];
        int end = x->n;
        while (end > 0 && !x->score[end - 1]) end--;
        int s0 = end;
        while (s0 > 0 && x->score[s0 - 1]) s0--;
        if (s0 < 1 || end > T) continue;  /* no reply, or too long for --seq */
        /* teacher-forced: loss and argmax accuracy on the reply */
        for (int t = 0; t < T; t++) {
            tok[t] = t < x->n ? x->ids[t] : 0;
            tgt[t] = t + 1 < end && t + 1 >= s0 ? x->ids[t + 1] : -1;
        }
        double ls = 0;
        int nv = 0;
        st = fwd(c, tok, tgt, 1, T, 1.0f, &ls, &nv);
        if (st != BN_OK) break;
        const float *lg = logits(c);
        loss += ls;
        for (int t = s0 - 1; t < end - 1; t++) {
            const float *row = lg + (size_t)t * V;
            int best = 0;
            for (int v = 1; v < V; v++) if (row[v] > row[best]) best = v;
            n_hit += best == x->ids[t + 1];
            n_tok++;
        }
        /* greedy decode of the whole reply from the prompt alone */
        int len = s0;
        for (int t = 0; t < T; t++) tok[t] = t < s0 ? x->ids[t] : 0;
        bool ok = true;
        while (len < end && ok) {
            st = fwd(c, tok, NULL, 1, T, 1.0f, NULL, NULL);
            if (st != BN_OK) break;
            const float *row = logits(c) + (size_t)(len - 1) * V;
            int best = 0;
            for (int v = 1; v < V; v++) if (row[v] > row[best]) best = v;
            ok = best == x->ids[len];
            tok[len++] = best;
        }
        r->exact += ok && st == BN_OK;
        r->n++;
    }
    free(tok);
    free(tgt);
    r->tok_acc = n_tok ? (double)n_hit / (double)n_tok : 0;
    r->loss = n_tok ? loss / (double)n_tok : 0;
    return st;
}

static const float *logits(ctx *c) {
    return c->lo ? bn_tr_lora_logits(c->lo) : bn_tr_logits(c->m);
}

static bn_status copy_file(const char *from, const char *to) {
    char *buf = NULL;
    size_t len = 0;
    bn_status st = bn_read_file(from, (size_t)1 << 30, &buf, &len);
    if (st != BN_OK) return st;
    const void *parts[1] = {buf};
    size_t sizes[1] = {len};
    st = bn_tr_write_atomic(to, parts, sizes, 1);
    free(buf);
    return st;
}

/* The tokenizer files of an HF base folder go next to a saved model. */
static void copy_tokenizer(const char *base, const char *dir) {
    if (!is_dir(base)) return;
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", base, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        struct stat sb;
        if (stat(a, &sb) == 0 && copy_file(a, b) != BN_OK)
            fprintf(stderr, "bitnet finetune: warning: cannot copy %s: %s\n", a, bn_last_error());
    }
}

/* Save the trainer's latent weights: an HF folder (+ tokenizer files), or a
 * GGUF through the project's loader and writer (ternary re-quantization). */
static bn_status save_model(const bn_tr_model *m, const char *base, const char *out) {
    if (!ends_with(out, ".gguf")) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/", out);
        bn_status st = bn_tr_save_safetensors(m, dir);
        if (st == BN_OK) copy_tokenizer(base, out);
        return st;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp-hf/", out);
    bn_status st = bn_tr_save_safetensors(m, tmp);
    if (st != BN_OK) return st;
    tmp[strlen(tmp) - 1] = 0;
    copy_tokenizer(base, tmp);
    bn_model *bm = NULL;
    st = bn_model_load(tmp, NULL, &bm);
    if (st == BN_OK) st = bn_model_save_gguf(bm, out);
    bn_model_free(bm);
    /* remove the temporary folder */
    static const char *const files[] = {"model.safetensors", "config.json", "tokenizer.json",
                                        "tokenizer_config.json", "special_tokens_map.json",
                                        "generation_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", tmp, files[i]);
        remove(p);
    }
    rmdir(tmp);
    return st;
}

static void print_eval(const char *when, const eval_res *r) {
    fprintf(stderr, "eval %s: exact %d/%d (%.1f%%), reply token accuracy %.1f%%, reply loss %.4f\n",
            when, r->exact, r->n, r->n ? 100.0 * r->exact / r->n : 0.0, 100.0 * r->tok_acc, r->loss);
}

int bn_cmd_finetune(int argc, char **argv) {
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    rc = 1;
    /* as in `bitnet train`: OpenMP threads, OpenBLAS single-threaded
     * (bn_tr_sgemm splits the products over the OpenMP threads) */
    if (o.threads > 0) omp_set_num_threads((int)o.threads);
    openblas_set_num_threads(1);
    ctx c = {.o = &o};
    char *resolved = NULL;
    bn_tokenizer *tok = NULL;
    bn_tr_sft_data data = {0}, ev = {0};
    bn_tr_adamw opt = {0};
    bool *frozen = NULL, latent = false;
    int32_t *tokens = NULL, *targets = NULL;
    FILE *logf = NULL;
    const int B = (int)o.B, T = (int)o.T;

    if (load_base(o.model, &c.m, &resolved, &latent) != BN_OK) { bn_cli_fail(o.model); goto out; }
    const bn_tr_config *cfg = &c.m->cfg;
    if (!o.quiet)
        fprintf(stderr, "base %s: %s, %d layers, hidden %d, ffn %d, vocab %d\n", o.model,
                latent ? "latent masters" : "ternary weights * scale", cfg->layers, cfg->hidden,
                cfg->ffn, cfg->vocab);

    /* tokenizer and chat template */
    const char *tmpl = o.tmpl;
    if (o.tokenizer && !strcmp(o.tokenizer, "bytes")) {
        if (cfg->vocab < 256) { fprintf(stderr, "bitnet finetune: a byte-level model needs vocab >= 256\n"); goto out; }
    } else if (bn_tokenizer_load(o.tokenizer ? o.tokenizer : resolved, &tok) != BN_OK) {
        if (o.tokenizer || cfg->vocab != 256) { bn_cli_fail("cannot load the tokenizer"); goto out; }
        if (!o.quiet) fprintf(stderr, "no tokenizer with the base and vocab 256: byte-level text\n");
    }
    /* the same default as generate and chat: the model's template, else bitnet;
     * a byte-level model gets chatml as plain text */
    if (!tmpl && tok) tmpl = bn_chat_template_detect(bn_tokenizer_chat_template(tok), "bitnet-b1.58");
    if (!tmpl) tmpl = tok ? "bitnet" : "chatml";
    if (!bn_chat_template_known(tmpl)) {
        bn_cli_usage_error(CMD, "unknown chat template '%s' (chatml, llama3, bitnet)", tmpl);
        rc = 2;
        goto out;
    }

    if (o.data && o.steps > 0) {
        if (bn_tr_sft_load(o.data, tok, tmpl, cfg->vocab, &data) != BN_OK) { bn_cli_fail("training data"); goto out; }
        int trunc = 0, usable = 0;
        for (int i = 0; i < data.n_ex; i++) {
            trunc += data.ex[i].n > T;
            bool any = false;
            for (int t = 1; t < T && t < data.ex[i].n && !any; t++) any = data.ex[i].score[t];
            usable += any;
        }
        if (!usable) {
            fprintf(stderr, "bitnet finetune: %s: no example has a token to learn within the first "
                    "--seq %d tokens\n", o.data, T);
            goto out;
        }
        if (!o.quiet)
            fprintf(stderr, "data %s: %d examples, %lld tokens, %lld scored (template %s)%s\n",
                    o.data, data.n_ex, (long long)data.n_tokens, (long long)data.n_scored, tmpl,
                    trunc ? ", some cut at --seq" : "");
        if (trunc) fprintf(stderr, "bitnet finetune: warning: %d examples are longer than --seq %d and are cut\n", trunc, T);
    }
    if (o.eval && bn_tr_sft_load(o.eval, tok, tmpl, cfg->vocab, &ev) != BN_OK) { bn_cli_fail("eval data"); goto out; }

    if (!o.full) {
        if (o.lora) {
            if (bn_tr_lora_load(cfg, o.lora, &c.lo) != BN_OK) { bn_cli_fail(o.lora); goto out; }
        } else {
            unsigned mask;
            if (bn_lora_parse_targets(o.targets, &mask) != BN_OK) {
                fprintf(stderr, "bitnet finetune: %s\n", bn_last_error());
                rc = 2;
                goto out;
            }
            if (bn_tr_lora_create(cfg, (int32_t)o.rank, (float)o.alpha, mask, o.seed, &c.lo) != BN_OK) {
                fprintf(stderr, "bitnet finetune: %s\n", bn_last_error());
                rc = 2;
                goto out;
            }
        }
        c.lo->merge_aware = o.merge_aware;
        if (!o.quiet)
            fprintf(stderr, "LoRA%s: rank %d, alpha %g, %d adapters, %zu trainable parameters "
                    "(base %zu frozen)\n", o.merge_aware ? " (merge-aware)" : "", c.lo->rank, c.lo->alpha, c.lo->n_pairs, c.lo->n,
                    c.m->n_params);
    } else {
        frozen = bn_calloc((size_t)c.m->n_tensors, 1);
        int nf = 0;
        if (!frozen || bn_tr_freeze(c.m, o.freeze, o.n_freeze, frozen, &nf) != BN_OK) {
            fprintf(stderr, "bitnet finetune: %s\n", bn_last_error());
            rc = 2;
            goto out;
        }
        size_t ntrain = 0;
        for (int t = 0; t < c.m->n_tensors; t++) {
            /* a frozen tensor gets zero gradients and no decay: AdamW leaves it bit-identical */
            if (frozen[t]) c.m->params[t].decay = false;
            else ntrain += c.m->params[t].n;
        }
        if (bn_tr_adamw_init(&opt, c.m->n_params) != BN_OK) { bn_cli_fail("optimizer"); goto out; }
        opt.beta1 = 0.9; opt.beta2 = 0.95; opt.eps = 1e-8;
        if (!o.quiet)
            fprintf(stderr, "full fine-tuning: %zu of %zu parameters trained, %d tensors frozen\n",
                    ntrain, c.m->n_params, nf);
    }

    eval_res before = {0}, after = {0};
    if (o.eval) {
        if (evaluate(&c, &ev, T, &before) != BN_OK) { bn_cli_fail("eval"); goto out; }
        print_eval("before", &before);
    }

    tokens = bn_malloc(sizeof(int32_t) * (size_t)B * T);
    targets = bn_malloc(sizeof(int32_t) * (size_t)B * T);
    if (!tokens || !targets) { bn_cli_fail("batch"); goto out; }
    if (o.log && !(logf = fopen(o.log, "w"))) {
        fprintf(stderr, "bitnet finetune: %s: %s\n", o.log, strerror(errno));
        goto out;
    }
    bn_tr_schedule sch = {.lr = o.lr, .min_lr = o.lr / 10, .warmup = o.warmup, .total = o.steps,
                          .wsd_decay_frac = 0.2, .stage2_lr_frac = 0.5, .weight_decay = o.wd};
    if (bn_tr_schedule_parse(o.sched, &sch.kind) != BN_OK) {
        bn_cli_usage_error(CMD, "%s", bn_last_error());
        rc = 2;
        goto out;
    }
    bn_tr_rng rng;
    bn_tr_rng_seed(&rng, o.seed ^ 0x5f7e1u);
    double t0 = bn_time_s();
    for (long step = 0; step < o.steps; step++) {
        bn_tr_sft_batch(&data, &rng, B, T, tokens, targets);
        int nvalid = 0;
        for (int i = 0; i < B * T; i++) nvalid += targets[i] >= 0;
        if (!nvalid) { step--; continue; }  /* every picked reply lies past --seq: draw again */
        double loss = 0;
        int n = 0;
        bn_status st = fwd(&c, tokens, targets, B, T, 1.0f / (float)nvalid, &loss, &n);
        if (st == BN_OK) {
            if (c.lo) { bn_tr_lora_zero_grad(c.lo); st = bn_tr_lora_backward(c.m, c.lo); }
            else { bn_tr_zero_grad(c.m); st = bn_tr_backward(c.m); }
        }
        if (st != BN_OK) { bn_cli_fail("training step"); goto out; }
        if (!isfinite(loss)) { fprintf(stderr, "bitnet finetune: loss is not finite at step %ld\n", step + 1); goto out; }
        double lr, wd;
        bn_tr_schedule_at(&sch, step, &lr, &wd);
        double gn;
        if (c.lo) {
            gn = bn_tr_lora_grad_norm(c.lo);
            if (o.clip > 0 && gn > o.clip)
                for (size_t i = 0; i < c.lo->n; i++) c.lo->g[i] *= (float)(o.clip / gn);
            bn_tr_lora_adamw_step(c.lo, lr, wd);
        } else {
            for (int t = 0; t < c.m->n_tensors; t++)
                if (frozen[t]) memset(bn_tr_g(c.m, t), 0, sizeof(float) * c.m->params[t].n);
            gn = bn_tr_grad_norm(c.m);
            if (o.clip > 0 && gn > o.clip) bn_tr_scale_grads(c.m, (float)(o.clip / gn));
            bn_tr_adamw_step(&opt, c.m, lr, wd);
        }
        double ml = loss / n;
        if (logf) fprintf(logf, "{\"step\": %ld, \"loss\": %.6f, \"grad_norm\": %.6f, \"lr\": %.6g}\n",
                          step + 1, ml, gn, lr);
        if (!o.quiet && o.print_every && ((step + 1) % o.print_every == 0 || step + 1 == o.steps))
            fprintf(stderr, "step %ld/%ld  loss %.4f  grad %.3f  lr %.2e  %.1fs\n", step + 1,
                    o.steps, ml, gn, lr, bn_time_s() - t0);
    }
    if (o.eval && o.steps > 0) {
        if (evaluate(&c, &ev, T, &after) != BN_OK) { bn_cli_fail("eval"); goto out; }
        print_eval("after", &after);
    }

    if (o.save) {
        bn_status st = BN_OK;
        if (c.lo && !o.merge) {
            st = bn_tr_lora_save(c.lo, o.save, resolved);
        } else {
            if (c.lo) {
                if (o.adapter_out) st = bn_tr_lora_save(c.lo, o.adapter_out, resolved);
                if (st == BN_OK) bn_tr_lora_merge(c.m, c.lo);
            }
            if (st == BN_OK) st = save_model(c.m, resolved, o.save);
        }
        if (st != BN_OK) { bn_cli_fail(o.save); goto out; }
        if (!o.quiet) fprintf(stderr, "saved %s%s\n", o.save, c.lo && !o.merge ? " (adapter)" : "");
    }
    rc = 0;
out:
    if (logf) fclose(logf);
    free(tokens);
    free(targets);
    free(frozen);
    bn_tr_adamw_free(&opt);
    bn_tr_sft_free(&data);
    bn_tr_sft_free(&ev);
    bn_tokenizer_free(tok);
    bn_tr_lora_free(c.lo);
    bn_tr_model_free(c.m);
    free(resolved);
    return rc;
}
