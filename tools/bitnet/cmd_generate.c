/* cmd_generate.c — `bitnet generate`: continue a prompt (text or ids),
 * streaming the text; or run a JSONL file of prompts as one batch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gen_common.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet generate -m MODEL (-p TEXT | --ids 1,2,3 | --file IN.jsonl) [options]\n\n"
            "  -m MODEL            .gguf file, Hugging Face folder, or hf:ORG/NAME\n"
            "  --tokenizer FILE    tokenizer to use instead of the model's own\n"
            "  --lora DIR          apply a LoRA adapter (PEFT folder: bitnet finetune --save)\n"
            "  -p, --prompt TEXT   prompt text (BOS is added; special-token text is parsed)\n"
            "  --prompt-file FILE  read the prompt text from a file\n"
            "  --ids LIST          prompt as comma-separated token ids\n"
            "  --chat              wrap -p as a user message in the chat template\n"
            "  --system TEXT       system message for --chat\n"
            "  --chat-template N   bitnet | llama3 | chatml (default: from the model)\n"
            "  --no-bos            do not add BOS to a text prompt\n"
            "  -n N                tokens to generate (default 128; -1: until the context is full)\n"
            "  --stop STR          stop string (repeatable; not printed)\n"
            "  --ignore-eos        keep going after end-of-text tokens\n"
            "  --print-ids         print the new token ids space-separated on one line\n"
            "  --json              print one JSON object {text, ids, n_prompt, n_gen,\n"
            "                      finish_reason, timings} instead of streaming\n"
            "  --ctx N             context positions (default: prompt + N, at most the model's)\n"
            "  -t N                threads (default: all CPUs)\n"
            BN_CLI_DEVICE_HELP
            BN_CLI_MODEL_HELP
            "batch mode:\n"
            "  --file IN.jsonl     one request per line: {\"id\":..., \"prompt\": \"...\" |\n"
            "                      \"messages\": [{\"role\",\"content\"}...] | \"ids\": [...],\n"
            "                      optional max_tokens, temperature, top_k, top_p, min_p,\n"
            "                      repeat_penalty, presence_penalty, frequency_penalty, seed, stop}\n"
            "  --out OUT.jsonl     results, one line per input line, same id (default: stdout)\n"
            "  --parallel N        sequences decoded together (default: all, at most 16)\n");
    bn_gen_sampling_help(f);
}

typedef struct gen_opts {
    const char *model, *tokenizer, *prompt, *prompt_file, *file, *out, *tmpl, *system;
    int32_t    *ids;
    int         n_ids;
    long        n_predict, ctx, threads, parallel;
    bn_sampler_params sp;
    bool        seed_set, json, print_ids, ignore_eos, no_bos, chat;
    const char **stops;
    int         n_stops;
    bn_cli_device dev;
    bn_cli_model_opts mo;
} gen_opts;

/* ---- shared pieces */

/* id (may be NULL: no id) is taken over and goes first in the object. */
static cJSON *result_json(const bn_generate_result *r, cJSON *id) {
    cJSON *o = cJSON_CreateObject();
    if (id) cJSON_AddItemToObject(o, "id", id);
    if (r->text) {
        char *clean = bn_gen_utf8_clean(r->text, r->text_len);
        cJSON_AddStringToObject(o, "text", clean ? clean : "");
        free(clean);
    }
    cJSON *ids = cJSON_AddArrayToObject(o, "ids");
    for (int32_t i = 0; i < r->n_gen; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->ids[i]));
    cJSON_AddNumberToObject(o, "n_prompt", r->n_prompt);
    cJSON_AddNumberToObject(o, "n_gen", r->n_gen);
    cJSON_AddStringToObject(o, "finish_reason", bn_finish_reason_name(r->finish));
    cJSON *t = cJSON_AddObjectToObject(o, "timings");
    cJSON_AddNumberToObject(t, "ttft_ms", r->ttft_s * 1e3);
    cJSON_AddNumberToObject(t, "prompt_ms", r->prompt_s * 1e3);
    cJSON_AddNumberToObject(t, "gen_ms", r->gen_s * 1e3);
    cJSON_AddNumberToObject(t, "prompt_tokens_per_s", r->prompt_tps);
    cJSON_AddNumberToObject(t, "gen_tokens_per_s", r->gen_tps);
    return o;
}

static const char *pick_template(const bn_tokenizer *tok, const bn_model *model, const char *asked) {
    if (asked) return asked;
    bn_model_info mi;
    bn_model_get_info(model, &mi);
    const char *t = bn_chat_template_detect(bn_tokenizer_chat_template(tok), mi.arch);
    return t ? t : "bitnet";
}

/* Text prompt -> ids. Empty text is refused (there is nothing to continue). */
static bool text_to_ids(const char *cmd, const bn_tokenizer *tok, const char *text, bool add_bos,
                        int32_t **ids, int *n, char *err, size_t errn) {
    if (!tok) { snprintf(err, errn, "the model has no tokenizer: pass --tokenizer FILE or give token ids"); return false; }
    if (!text || !*text) { snprintf(err, errn, "the prompt is empty"); return false; }
    size_t nn = 0;
    if (bn_tokenize(tok, text, strlen(text), add_bos && bn_tokenizer_bos(tok) >= 0, true, ids, &nn) != BN_OK) {
        snprintf(err, errn, "tokenizing the prompt: %s", bn_last_error());
        return false;
    }
    if (nn > INT32_MAX / 2) { free(*ids); *ids = NULL; snprintf(err, errn, "the prompt is too long"); return false; }
    *n = (int)nn;
    (void)cmd;
    return true;
}

static bool chat_to_ids(const bn_tokenizer *tok, const char *tmpl, const bn_chat_message *msgs, size_t n_msgs,
                        int32_t **ids, int *n, char *err, size_t errn) {
    if (!tok) { snprintf(err, errn, "the model has no tokenizer: chat messages need one"); return false; }
    size_t nn = 0;
    if (bn_chat_render_ids(tok, tmpl, msgs, n_msgs, true, ids, &nn) != BN_OK) {
        snprintf(err, errn, "chat template '%s': %s", tmpl, bn_last_error());
        return false;
    }
    *n = (int)nn;
    return true;
}

static int32_t auto_ctx(const bn_model *model, long ctx_flag, int64_t need) {
    bn_model_info mi;
    bn_model_get_info(model, &mi);
    if (ctx_flag > 0) return (int32_t)ctx_flag;
    int32_t train = mi.n_ctx_train > 0 ? mi.n_ctx_train : 4096;
    if (need <= 0 || need > train) return train;
    return (int32_t)need;
}

/* ---- single prompt */

typedef struct stream_state {
    bool print_text, print_ids_live;
    int  n_printed;
} stream_state;

static bool on_token(const char *piece, size_t len, int32_t token, const bn_sample_info *info, void *user) {
    stream_state *s = user;
    (void)info;
    if (s->print_text && len) { fwrite(piece, 1, len, stdout); fflush(stdout); }
    if (s->print_ids_live && token >= 0) {
        printf(s->n_printed++ ? " %d" : "%d", (int)token);
        fflush(stdout);
    }
    return true;
}

static int run_single(const gen_opts *o, bn_model *model, const char *model_path) {
    const char *cmd = "generate";
    int rc = 1;
    bn_tokenizer *tok = NULL;
    bn_context *ctx = NULL;
    bn_sampler *smp = NULL;
    int32_t *ids = NULL;
    int n_ids = 0;
    char *file_text = NULL;
    bn_generate_result res;
    memset(&res, 0, sizeof res);
    char err[512];

    if (!bn_gen_load_tokenizer(cmd, model_path, o->tokenizer, &tok)) goto out;
    if (o->ids) {
        ids = malloc(sizeof *ids * (size_t)o->n_ids);
        if (!ids) { fprintf(stderr, "bitnet generate: out of memory\n"); goto out; }
        memcpy(ids, o->ids, sizeof *ids * (size_t)o->n_ids);
        n_ids = o->n_ids;
    } else {
        const char *text = o->prompt;
        if (o->prompt_file) {
            FILE *f = fopen(o->prompt_file, "rb");
            if (!f) { fprintf(stderr, "bitnet generate: cannot open %s: %s\n", o->prompt_file, strerror(errno)); goto out; }
            size_t cap = 4096, len = 0, got;
            file_text = malloc(cap);
            while (file_text && (got = fread(file_text + len, 1, cap - len - 1, f)) > 0) {
                len += got;
                if (cap - len < 2) {
                    char *t = cap < ((size_t)1 << 30) ? realloc(file_text, cap * 2) : NULL;
                    if (!t) { free(file_text); file_text = NULL; break; }
                    file_text = t;
                    cap *= 2;
                }
            }
            fclose(f);
            if (!file_text) { fprintf(stderr, "bitnet generate: %s: too large\n", o->prompt_file); goto out; }
            file_text[len] = '\0';
            text = file_text;
        }
        bool ok;
        if (o->chat) {
            if (!text || !*text) { fprintf(stderr, "bitnet generate: the prompt is empty\n"); goto out; }
            bn_chat_message msgs[2];
            size_t nm = 0;
            if (o->system) msgs[nm++] = (bn_chat_message){"system", o->system};
            msgs[nm++] = (bn_chat_message){"user", text};
            ok = chat_to_ids(tok, pick_template(tok, model, o->tmpl), msgs, nm, &ids, &n_ids, err, sizeof err);
        } else {
            ok = text_to_ids(cmd, tok, text, !o->no_bos, &ids, &n_ids, err, sizeof err);
        }
        if (!ok) { fprintf(stderr, "bitnet generate: %s\n", err); goto out; }
    }

    int32_t n_ctx = auto_ctx(model, o->ctx, o->n_predict > 0 ? (int64_t)n_ids + o->n_predict : -1);
    if (bn_gen_context(model, n_ctx, 1, (int32_t)o->threads, &o->dev, &ctx) != BN_OK) { bn_cli_fail("creating the context"); goto out; }
    bn_sampler_params sp = o->sp;
    if (!o->seed_set) sp.seed = bn_gen_random_seed();
    if (bn_sampler_create(&sp, &smp) != BN_OK) { bn_cli_fail("sampler"); goto out; }

    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = o->n_predict > 0 ? (int32_t)o->n_predict : 0;
    gp.stop = o->stops;
    gp.n_stop = o->n_stops;
    gp.ignore_eos = o->ignore_eos;
    stream_state ss = {0};
    ss.print_text = !o->json && !o->print_ids && tok;
    ss.print_ids_live = !o->json && (o->print_ids || !tok);
    if (bn_generate(ctx, model, tok, smp, ids, n_ids, &gp, on_token, &ss, &res) != BN_OK) {
        if (ss.n_printed) printf("\n");
        fprintf(stderr, "bitnet generate: %s\n", bn_last_error());
        goto out;
    }
    if (o->json) {
        cJSON *j = result_json(&res, NULL);
        cJSON_AddNumberToObject(j, "seed", (double)sp.seed);
        char *s = cJSON_PrintUnformatted(j);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        if (ss.print_text || ss.print_ids_live) printf("\n");
        fflush(stdout); /* the stats line (stderr) must follow the text on a terminal */
        fprintf(stderr,
                "bitnet generate: prompt %d tokens (%.1f tok/s), generated %d tokens in %.3f s (%.2f tok/s), "
                "ttft %.1f ms, finish %s, seed %llu\n",
                (int)res.n_prompt, res.prompt_tps, (int)res.n_gen, res.gen_s, res.gen_tps, res.ttft_s * 1e3,
                bn_finish_reason_name(res.finish), (unsigned long long)sp.seed);
    }
    rc = 0;
out:
    fflush(stdout);
    bn_generate_result_free(&res);
    bn_sampler_free(smp);
    bn_context_free(ctx);
    bn_tokenizer_free(tok);
    free(ids);
    free(file_text);
    return rc;
}

/* ---- batch mode */

typedef struct job {
    int                line;
    cJSON             *id;         /* copy of the input's id (or NULL)       */
    char               error[512]; /* set: the line failed                   */
    int32_t           *prompt;
    int                n_prompt;
    bn_sampler_params  sp;
    int32_t            max_tokens;
    char             **stops;
    int                n_stops;
    bn_logit_bias     *bias;       /* per-line logit_bias (owned)            */
    bn_sampler        *sampler;
    bn_generate_result res;
    bool               ran;
} job;

static bool json_num(cJSON *o, const char *key, double lo, double hi, double *out, char *err, size_t errn) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return true;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        snprintf(err, errn, "\"%s\" must be a number in [%g, %g]", key, lo, hi);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

/* Fill a job from one parsed line; false with j->error set on a problem. */
static bool parse_job(job *j, cJSON *o, const gen_opts *opt, const bn_tokenizer *tok, const bn_model *model) {
    char *err = j->error;
    size_t errn = sizeof j->error;
    if (!cJSON_IsObject(o)) { snprintf(err, errn, "a line must be a JSON object"); return false; }
    cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (id) j->id = cJSON_Duplicate(id, true);
    cJSON *prompt = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(o, "messages");
    cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "ids");
    if (!!prompt + !!msgs + !!ids != 1) {
        snprintf(err, errn, "exactly one of \"prompt\", \"messages\" or \"ids\" is required");
        return false;
    }
    if (prompt) {
        if (!cJSON_IsString(prompt)) { snprintf(err, errn, "\"prompt\" must be a string"); return false; }
        if (!text_to_ids("generate", tok, prompt->valuestring, !opt->no_bos, &j->prompt, &j->n_prompt, err, errn))
            return false;
    } else if (ids) {
        int n = cJSON_GetArraySize(ids);
        if (!cJSON_IsArray(ids) || n == 0) { snprintf(err, errn, "\"ids\" must be a non-empty array of token ids"); return false; }
        j->prompt = malloc(sizeof *j->prompt * (size_t)n);
        if (!j->prompt) { snprintf(err, errn, "out of memory"); return false; }
        int k = 0;
        cJSON *it;
        cJSON_ArrayForEach(it, ids) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > INT32_MAX ||
                it->valuedouble != (double)(int32_t)it->valuedouble) {
                snprintf(err, errn, "\"ids\"[%d] is not a token id", k);
                return false;
            }
            j->prompt[k++] = (int32_t)it->valuedouble;
        }
        j->n_prompt = n;
    } else {
        int n = cJSON_GetArraySize(msgs);
        if (!cJSON_IsArray(msgs) || n == 0) { snprintf(err, errn, "\"messages\" must be a non-empty array"); return false; }
        bn_chat_message *m = calloc((size_t)n, sizeof *m);
        if (!m) { snprintf(err, errn, "out of memory"); return false; }
        int k = 0;
        cJSON *it;
        bool ok = true;
        cJSON_ArrayForEach(it, msgs) {
            cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
            cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
            if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
                snprintf(err, errn, "\"messages\"[%d] needs string \"role\" and \"content\"", k);
                ok = false;
                break;
            }
            m[k].role = role->valuestring;
            m[k].content = content->valuestring;
            k++;
        }
        if (ok) ok = chat_to_ids(tok, tok ? pick_template(tok, model, opt->tmpl) : "", m, (size_t)n, &j->prompt, &j->n_prompt, err, errn);
        free(m);
        if (!ok) return false;
    }
    /* per-line parameters over the command line's */
    j->sp = opt->sp;
    double v;
    v = opt->n_predict;
    if (!json_num(o, "max_tokens", -1, 1e9, &v, err, errn)) return false;
    j->max_tokens = v > 0 ? (int32_t)v : 0;
    v = j->sp.temperature; if (!json_num(o, "temperature", 0, 100, &v, err, errn)) return false; j->sp.temperature = (float)v;
    v = j->sp.top_k;       if (!json_num(o, "top_k", 0, INT32_MAX, &v, err, errn)) return false; j->sp.top_k = (int32_t)v;
    v = j->sp.top_p;       if (!json_num(o, "top_p", 0, 1, &v, err, errn)) return false; j->sp.top_p = (float)v;
    v = j->sp.min_p;       if (!json_num(o, "min_p", 0, 1, &v, err, errn)) return false; j->sp.min_p = (float)v;
    v = j->sp.repeat_penalty; if (!json_num(o, "repeat_penalty", 1e-3, 100, &v, err, errn)) return false; j->sp.repeat_penalty = (float)v;
    v = j->sp.presence_penalty; if (!json_num(o, "presence_penalty", -100, 100, &v, err, errn)) return false; j->sp.presence_penalty = (float)v;
    v = j->sp.frequency_penalty; if (!json_num(o, "frequency_penalty", -100, 100, &v, err, errn)) return false; j->sp.frequency_penalty = (float)v;
    v = (double)j->sp.seed; if (!json_num(o, "seed", 0, 9007199254740992.0, &v, err, errn)) return false; j->sp.seed = (uint64_t)v;
    cJSON *stop = cJSON_GetObjectItemCaseSensitive(o, "stop");
    if (stop) {
        int n = cJSON_IsString(stop) ? 1 : cJSON_IsArray(stop) ? cJSON_GetArraySize(stop) : -1;
        if (n < 0) { snprintf(err, errn, "\"stop\" must be a string or an array of strings"); return false; }
        j->stops = calloc((size_t)n + 1, sizeof *j->stops);
        if (!j->stops) { snprintf(err, errn, "out of memory"); return false; }
        if (cJSON_IsString(stop)) j->stops[j->n_stops++] = strdup(stop->valuestring);
        else {
            cJSON *it;
            cJSON_ArrayForEach(it, stop) {
                if (!cJSON_IsString(it)) { snprintf(err, errn, "\"stop\" must hold strings"); return false; }
                j->stops[j->n_stops++] = strdup(it->valuestring);
            }
        }
        for (int k = 0; k < j->n_stops; k++)
            if (!j->stops[k]) { snprintf(err, errn, "out of memory"); return false; }
    }
    /* OpenAI form: {"logit_bias": {"TOKEN_ID": BIAS, ...}}; replaces the
     * command line's list */
    cJSON *lb = cJSON_GetObjectItemCaseSensitive(o, "logit_bias");
    if (lb) {
        int n = cJSON_GetArraySize(lb);
        if (!cJSON_IsObject(lb)) { snprintf(err, errn, "\"logit_bias\" must be an object {\"id\": bias}"); return false; }
        j->bias = calloc((size_t)n + 1, sizeof *j->bias);
        if (!j->bias) { snprintf(err, errn, "out of memory"); return false; }
        int k = 0;
        cJSON *it;
        cJSON_ArrayForEach(it, lb) {
            char *end;
            errno = 0;
            long id = strtol(it->string, &end, 10);
            if (errno || end == it->string || *end || id < 0 || id > INT32_MAX || !cJSON_IsNumber(it)) {
                snprintf(err, errn, "\"logit_bias\": bad entry \"%s\"", it->string);
                return false;
            }
            j->bias[k].token = (int32_t)id;
            j->bias[k].bias = (float)it->valuedouble;
            k++;
        }
        j->sp.logit_bias = j->bias;
        j->sp.n_logit_bias = k;
    }
    if (bn_sampler_create(&j->sp, &j->sampler) != BN_OK) {
        snprintf(err, errn, "%s", bn_last_error());
        return false;
    }
    return true;
}

static void free_job(job *j) {
    cJSON_Delete(j->id);
    free(j->prompt);
    for (int k = 0; k < j->n_stops; k++) free(j->stops[k]);
    free(j->stops);
    free(j->bias);
    bn_sampler_free(j->sampler);
    bn_generate_result_free(&j->res);
}

static char *read_line(FILE *f, size_t *len) {
    size_t cap = 256, n = 0;
    char *buf = malloc(cap);
    int c;
    if (!buf) return NULL;
    while ((c = fgetc(f)) != EOF) {
        if (n + 1 >= cap) {
            if (cap >= ((size_t)1 << 28)) { free(buf); return NULL; } /* absurd line */
            char *t = realloc(buf, cap * 2);
            if (!t) { free(buf); return NULL; }
            buf = t;
            cap *= 2;
        }
        if (c == '\n') break;
        buf[n++] = (char)c;
    }
    if (c == EOF && n == 0) { free(buf); return NULL; }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int run_batch(const gen_opts *o, bn_model *model, const char *model_path) {
    const char *cmd = "generate";
    int rc = 1;
    bn_tokenizer *tok = NULL;
    bn_context *ctx = NULL;
    job *jobs = NULL;
    int n_jobs = 0, cap = 0;
    FILE *in = NULL, *out = stdout;
    bn_generate_request *reqs = NULL;
    bn_generate_result *results = NULL;

    if (!bn_gen_load_tokenizer(cmd, model_path, o->tokenizer, &tok)) goto done;
    in = fopen(o->file, "rb");
    if (!in) { fprintf(stderr, "bitnet generate: cannot open %s: %s\n", o->file, strerror(errno)); goto done; }

    /* read and check every line first: a broken line is reported, not fatal */
    int lineno = 0, n_bad = 0;
    uint64_t base_seed = o->seed_set ? o->sp.seed : bn_gen_random_seed();
    for (;;) {
        size_t len = 0;
        char *line = read_line(in, &len);
        if (!line) break;
        lineno++;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == len) { free(line); continue; } /* blank */
        if (n_jobs == cap) {
            int nc = cap ? cap * 2 : 16;
            job *t = realloc(jobs, sizeof *t * (size_t)nc);
            if (!t) { free(line); fprintf(stderr, "bitnet generate: out of memory\n"); goto done; }
            jobs = t;
            cap = nc;
        }
        job *j = &jobs[n_jobs++];
        memset(j, 0, sizeof *j);
        j->line = lineno;
        gen_opts lo = *o;
        lo.sp.seed = base_seed + (uint64_t)lineno; /* distinct, reproducible per line */
        cJSON *obj = cJSON_ParseWithLength(line, len);
        if (!obj) snprintf(j->error, sizeof j->error, "invalid JSON near byte %d",
                           (int)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - line : 0));
        else if (parse_job(j, obj, &lo, tok, model)) j->error[0] = '\0';
        else if (!j->error[0]) snprintf(j->error, sizeof j->error, "invalid request");
        cJSON_Delete(obj);
        free(line);
        if (j->error[0]) {
            n_bad++;
            fprintf(stderr, "bitnet generate: %s:%d: %s\n", o->file, j->line, j->error);
        }
    }
    if (ferror(in)) { fprintf(stderr, "bitnet generate: reading %s failed\n", o->file); goto done; }

    int n_ok = n_jobs - n_bad;
    int64_t need = 0;
    for (int i = 0; i < n_jobs; i++)
        if (!jobs[i].error[0]) {
            int64_t want = jobs[i].max_tokens > 0 ? (int64_t)jobs[i].n_prompt + jobs[i].max_tokens : -1;
            if (want < 0) { need = -1; break; }
            if (want > need) need = want;
        }
    int n_seq = o->parallel > 0 ? (int)o->parallel : 16;
    if (n_seq > n_ok) n_seq = n_ok;
    double t0 = bn_gen_now();
    int64_t total_gen = 0;
    if (n_ok > 0) {
        int32_t n_ctx = auto_ctx(model, o->ctx, need);
        if (bn_gen_context(model, n_ctx, n_seq, (int32_t)o->threads, &o->dev, &ctx) != BN_OK) {
            bn_cli_fail("creating the context");
            goto done;
        }
        reqs = calloc((size_t)n_seq, sizeof *reqs);
        results = calloc((size_t)n_seq, sizeof *results);
        job **wave = calloc((size_t)n_seq, sizeof *wave);
        if (!reqs || !results || !wave) { free(wave); fprintf(stderr, "bitnet generate: out of memory\n"); goto done; }
        int next = 0;
        while (next < n_jobs) {
            int nw = 0;
            while (next < n_jobs && nw < n_seq) {
                job *j = &jobs[next++];
                if (j->error[0]) continue;
                bn_seq_truncate(ctx, nw, 0);
                bn_generate_request *r = &reqs[nw];
                memset(r, 0, sizeof *r);
                r->prompt = j->prompt;
                r->n_prompt = j->n_prompt;
                r->sampler = j->sampler;
                r->params = bn_generate_default_params();
                r->params.max_tokens = j->max_tokens;
                r->params.stop = (const char *const *)j->stops;
                r->params.n_stop = j->n_stops;
                r->params.ignore_eos = o->ignore_eos;
                r->params.seq_id = nw;
                wave[nw++] = j;
            }
            if (nw == 0) break;
            if (bn_generate_batch(ctx, model, tok, reqs, nw, results) != BN_OK) {
                fprintf(stderr, "bitnet generate: batch failed: %s\n", bn_last_error());
                for (int k = 0; k < nw; k++) bn_generate_result_free(&results[k]);
                free(wave);
                goto done;
            }
            for (int k = 0; k < nw; k++) {
                job *j = wave[k];
                j->res = results[k];
                j->ran = true;
                memset(&results[k], 0, sizeof results[k]);
                if (j->res.status != BN_OK) {
                    snprintf(j->error, sizeof j->error, "%s", j->res.error);
                    fprintf(stderr, "bitnet generate: %s:%d: %s\n", o->file, j->line, j->error);
                    n_bad++;
                }
                total_gen += j->res.n_gen;
            }
        }
        free(wave);
    }
    double elapsed = bn_gen_now() - t0;

    if (o->out && !(out = fopen(o->out, "wb"))) {
        out = stdout;
        fprintf(stderr, "bitnet generate: cannot write %s: %s\n", o->out, strerror(errno));
        goto done;
    }
    for (int i = 0; i < n_jobs; i++) {
        job *j = &jobs[i];
        cJSON *id = j->id ? j->id : cJSON_CreateNull();
        j->id = NULL;
        cJSON *obj;
        if (j->error[0]) {
            obj = cJSON_CreateObject();
            cJSON_AddItemToObject(obj, "id", id);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "line", j->line);
            cJSON_AddStringToObject(e, "message", j->error);
            cJSON_AddItemToObject(obj, "error", e);
        } else {
            obj = result_json(&j->res, id);
        }
        char *s = cJSON_PrintUnformatted(obj);
        if (s) fprintf(out, "%s\n", s);
        free(s);
        cJSON_Delete(obj);
    }
    fprintf(stderr, "bitnet generate: %d requests (%d failed) in %.3f s, %lld tokens generated (%.2f tok/s overall), %d in parallel\n",
            n_jobs, n_bad, elapsed, (long long)total_gen, elapsed > 0 ? (double)total_gen / elapsed : 0.0, n_seq);
    rc = n_bad ? 1 : 0; /* the other lines' results are written all the same */
done:
    if (out && out != stdout) {
        if (fclose(out) != 0) { fprintf(stderr, "bitnet generate: writing %s failed\n", o->out); rc = 1; }
    }
    if (in) fclose(in);
    for (int i = 0; i < n_jobs; i++) free_job(&jobs[i]);
    free(jobs);
    free(reqs);
    free(results);
    bn_context_free(ctx);
    bn_tokenizer_free(tok);
    return rc;
}

int bn_cmd_generate(int argc, char **argv) {
    const char *cmd = "generate";
    gen_opts o;
    memset(&o, 0, sizeof o);
    o.mo = (bn_cli_model_opts)BN_CLI_MODEL_OPTS_INIT;
    o.sp = bn_sampler_default_params();
    o.n_predict = 128;
    int rc = 2;
    bn_model *model = NULL;
    char *model_path = NULL;
    const char *lora_path = NULL; /* --lora: adapter folder */
    o.stops = calloc((size_t)argc + 1, sizeof *o.stops);
    if (!o.stops) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int dv;
        bool ok = true;
        if (bn_cli_is_help(a)) { usage(stdout); rc = 0; goto out; }
        if (bn_gen_sampling_flag(cmd, argc, argv, &i, &o.sp, &o.seed_set, &ok)) { if (!ok) goto out; continue; }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!(o.model = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--tokenizer")) { if (!(o.tokenizer = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { if (!(o.prompt = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--prompt-file")) { if (!(o.prompt_file = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--file")) { if (!(o.file = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--out")) { if (!(o.out = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--system")) { if (!(o.system = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--chat-template")) { if (!(o.tmpl = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--stop")) { if (!(o.stops[o.n_stops++] = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--ids")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i))) goto out;
            free(o.ids);
            o.ids = NULL;
            if (!bn_cli_parse_ids(cmd, v, &o.ids, &o.n_ids)) goto out;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict") || !strcmp(a, "--max-tokens")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, -1, 1 << 30, &o.n_predict)) goto out;
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 1 << 24, &o.ctx)) goto out;
        } else if ((dv = bn_cli_device_option(cmd, argc, argv, &i, &o.dev)) != 0) {
            if (dv < 0) goto out;
        } else if ((dv = bn_cli_model_option(cmd, argc, argv, &i, &o.mo)) != 0) {
            if (dv < 0) goto out;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 1024, &o.threads)) goto out;
        } else if (!strcmp(a, "--parallel")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 4096, &o.parallel)) goto out;
        }
        else if (!strcmp(a, "--lora")) { if (!(lora_path = bn_cli_value(cmd, argc, argv, &i))) goto out; }
        else if (!strcmp(a, "--json")) o.json = true;
        else if (!strcmp(a, "--print-ids")) o.print_ids = true;
        else if (!strcmp(a, "--ignore-eos")) o.ignore_eos = true;
        else if (!strcmp(a, "--no-bos")) o.no_bos = true;
        else if (!strcmp(a, "--chat")) o.chat = true;
        else { bn_cli_usage_error(cmd, "unknown option '%s'", a); goto out; }
    }
    if (!o.model) { bn_cli_usage_error(cmd, "-m MODEL is required"); goto out; }
    int n_src = !!o.prompt + !!o.prompt_file + !!o.ids + !!o.file;
    if (n_src != 1) { bn_cli_usage_error(cmd, "give exactly one of -p, --prompt-file, --ids, --file"); goto out; }
    if (o.out && !o.file) { bn_cli_usage_error(cmd, "--out goes with --file"); goto out; }
    if (o.chat && o.ids) { bn_cli_usage_error(cmd, "--chat needs a text prompt"); goto out; }
    if (o.prompt && !*o.prompt) {
        fprintf(stderr, "bitnet generate: the prompt is empty: give some text to continue\n");
        rc = 1;
        goto out;
    }
    rc = 1;
    if (bn_cli_load_model_with(o.model, &o.mo, &model, &model_path) != BN_OK) { bn_cli_fail(o.model); goto out; }
    if (lora_path && bn_model_apply_lora(model, lora_path, 1.0f) != BN_OK) { bn_cli_fail(lora_path); goto out; }
    rc = o.file ? run_batch(&o, model, model_path) : run_single(&o, model, model_path);
out:
    bn_model_free(model);
    free(model_path);
    free(o.ids);
    free(o.stops);
    bn_gen_sampling_free(&o.sp);
    return rc;
}
