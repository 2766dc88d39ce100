/* cmd_chat.c — `bitnet chat`: an interactive multi-turn conversation.
 *
 * The KV cache of sequence 0 is kept across turns. Each turn the whole
 * conversation is rendered with the chat template; only the part after the
 * longest prefix already in the cache is decoded (normally the end of the
 * last reply and the new user message). Ctrl-C stops the current reply
 * (the conversation goes on); at the input prompt it quits. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen_common.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet chat -m MODEL [--system TEXT] [options]\n\n"
            "Type a message, get a reply. /reset starts over, /quit (or end of input) exits;\n"
            "Ctrl-C stops a reply. When stdin is not a terminal, each line is one user message.\n"
            "  -m MODEL           .gguf file, Hugging Face folder, or hf:ORG/NAME\n"
            "  --tokenizer FILE   tokenizer to use instead of the model's own\n"
            "  --system TEXT      system message\n"
            "  --chat-template N  bitnet | llama3 | chatml (default: from the model)\n"
            "  -n N               max tokens per reply (default -1: until end of turn)\n"
            "  --ctx N            context positions for the whole conversation (default 4096)\n"
            "  -t N               threads (default: all CPUs)\n"
            BN_CLI_DEVICE_HELP
            BN_CLI_MODEL_HELP
            "  -v                 per-reply statistics on stderr\n");
    bn_gen_sampling_help(f);
}

/* Signal state: the handler only touches these (an atomic flag store in
 * bn_cancel_request and sig_atomic_t writes are async-signal-safe). */
static bn_cancel *volatile g_cancel;
static volatile sig_atomic_t g_generating, g_quit;

static void on_sigint(int sig) {
    (void)sig;
    if (g_generating) bn_cancel_request(g_cancel);
    else g_quit = 1;
}

static bool on_piece(const char *piece, size_t len, int32_t token, const bn_sample_info *info, void *user) {
    (void)token;
    (void)info;
    (void)user;
    if (len) { fwrite(piece, 1, len, stdout); fflush(stdout); }
    return true;
}

typedef struct convo {
    bn_chat_message *msgs;
    size_t           n, cap;
    int32_t         *cached;   /* ids held by the cache, in order          */
    size_t           n_cached, cap_cached;
    int32_t          pending;  /* last reply token, sampled but not in the
                                  cache (-1: none, or it ended the turn)   */
    size_t           n_prompt; /* ids fed for the last reply (its prompt)   */
} convo;

static bool add_msg(convo *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        bn_chat_message *m = realloc(c->msgs, nc * sizeof *m);
        if (!m) return false;
        c->msgs = m;
        c->cap = nc;
    }
    char *r = strdup(role), *t = strdup(content);
    if (!r || !t) { free(r); free(t); return false; }
    c->msgs[c->n].role = r;
    c->msgs[c->n].content = t;
    c->n++;
    return true;
}

static void drop_msgs(convo *c, size_t keep) {
    while (c->n > keep) {
        c->n--;
        free((char *)c->msgs[c->n].role);
        free((char *)c->msgs[c->n].content);
    }
}

static bool set_cached(convo *c, const int32_t *a, size_t na, const int32_t *b, size_t nb, size_t total) {
    if (total > na + nb) total = na + nb;
    if (total > c->cap_cached) {
        int32_t *t = realloc(c->cached, total * sizeof *t);
        if (!t) return false;
        c->cached = t;
        c->cap_cached = total;
    }
    size_t from_a = total < na ? total : na;
    if (from_a) memmove(c->cached, a, from_a * sizeof *a);
    if (total > from_a && b) memcpy(c->cached + from_a, b, (total - from_a) * sizeof *b);
    c->n_cached = total;
    return true;
}

static bool is_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na <= nb && (na == 0 || !memcmp(a, b, na * sizeof *a));
}

/* The ids the cache must hold for the next reply, and how many of them it
 * holds already (*keep). Exact path: the previous reply stays as the ids the
 * model generated; only its end-of-message tokens and the new user turn
 * are added — found by rendering the conversation with the last reply
 * emptied (the templates tokenize each content separately, so the parts
 * around a content do not depend on it). Fallback: render everything and
 * reuse the longest common prefix with the cache. */
static bn_status turn_ids(const convo *c, const bn_tokenizer *tok, const char *tmpl,
                          int32_t **out, size_t *n_out, size_t *keep) {
    *out = NULL;
    *n_out = *keep = 0;
    size_t n = c->n; /* msgs[n-1] is the new user message */
    if (c->n_cached > 0 && n >= 2 && !strcmp(c->msgs[n - 2].role, "assistant")) {
        bn_chat_message *m = malloc(n * sizeof *m);
        int32_t *prev = NULL, *pp = NULL, *tt = NULL;
        size_t n_prev = 0, n_pp = 0, n_tt = 0;
        bool ok = m != NULL;
        if (ok) {
            memcpy(m, c->msgs, n * sizeof *m);
            m[n - 2].content = "";
            ok = bn_chat_render_ids(tok, tmpl, m, n - 2, true, &prev, &n_prev) == BN_OK &&
                 bn_chat_render_ids(tok, tmpl, m, n - 1, false, &pp, &n_pp) == BN_OK &&
                 bn_chat_render_ids(tok, tmpl, m, n, true, &tt, &n_tt) == BN_OK;
        }
        /* the cache must still hold the last prompt (then what follows it is
         * the reply); the template parts must nest */
        ok = ok && c->n_prompt > 0 && c->n_cached >= c->n_prompt && is_prefix(prev, n_prev, pp, n_pp) &&
             is_prefix(pp, n_pp, tt, n_tt);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (ok) {
            size_t n_end = n_pp - n_prev, n_turn = n_tt - n_pp;
            n_ids = c->n_cached + (c->pending >= 0) + n_end + n_turn;
            ids = malloc(n_ids * sizeof *ids);
            ok = ids != NULL;
            if (ok) {
                size_t k = 0;
                memcpy(ids, c->cached, c->n_cached * sizeof *ids);
                k += c->n_cached;
                if (c->pending >= 0) ids[k++] = c->pending;
                memcpy(ids + k, pp + n_prev, n_end * sizeof *ids);
                k += n_end;
                memcpy(ids + k, tt + n_pp, n_turn * sizeof *ids);
            }
        }
        free(m);
        free(prev);
        free(pp);
        free(tt);
        if (ok && n_ids > c->n_cached) {
            *out = ids;
            *n_out = n_ids;
            *keep = c->n_cached;
            return BN_OK;
        }
        free(ids);
    }
    size_t n_ids = 0;
    bn_status st = bn_chat_render_ids(tok, tmpl, c->msgs, n, true, out, &n_ids);
    if (st) return st;
    size_t k = 0;
    while (k < c->n_cached && k < n_ids && c->cached[k] == (*out)[k]) k++;
    if (k == n_ids && k > 0) k--; /* at least one token must be decoded for fresh logits */
    *n_out = n_ids;
    *keep = k;
    return BN_OK;
}

int bn_cmd_chat(int argc, char **argv) {
    const char *cmd = "chat", *model_spec = NULL, *tok_path = NULL, *system = NULL, *tmpl = NULL;
    long n_predict = -1, ctx_n = 0, threads = 0;
    bn_cli_device dev = {BN_DEVICE_CPU, 0, BN_KV_F32};
    bn_cli_model_opts mo = BN_CLI_MODEL_OPTS_INIT;
    int dv;
    bool verbose = false, seed_set = false;
    bn_sampler_params sp = bn_sampler_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        bool ok = true;
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
        if (bn_gen_sampling_flag(cmd, argc, argv, &i, &sp, &seed_set, &ok)) { if (!ok) return 2; continue; }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!(model_spec = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--tokenizer")) { if (!(tok_path = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--system")) { if (!(system = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--chat-template")) { if (!(tmpl = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, -1, 1 << 30, &n_predict)) return 2;
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 8, 1 << 24, &ctx_n)) return 2;
        } else if ((dv = bn_cli_device_option(cmd, argc, argv, &i, &dev)) != 0) {
            if (dv < 0) return 2;
        } else if ((dv = bn_cli_model_option(cmd, argc, argv, &i, &mo)) != 0) {
            if (dv < 0) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) verbose = true;
        else return bn_cli_usage_error(cmd, "unknown option '%s'", a);
    }
    if (!model_spec) return bn_cli_usage_error(cmd, "-m MODEL is required");
    if (tmpl && !bn_chat_template_known(tmpl))
        return bn_cli_usage_error(cmd, "unknown chat template '%s' (bitnet, llama3, chatml)", tmpl);

    int rc = 1;
    bn_model *model = NULL;
    char *model_path = NULL, *line = NULL;
    size_t line_cap = 0;
    bn_tokenizer *tok = NULL;
    bn_context *ctx = NULL;
    bn_sampler *smp = NULL;
    bn_cancel *cancel = NULL;
    convo cv;
    memset(&cv, 0, sizeof cv);
    cv.pending = -1;
    struct sigaction old_sa;
    bool sa_set = false;

    if (bn_cli_load_model_with(model_spec, &mo, &model, &model_path) != BN_OK) { bn_cli_fail(model_spec); goto out; }
    if (!bn_gen_load_tokenizer(cmd, model_path, tok_path, &tok)) goto out;
    if (!tok) { fprintf(stderr, "bitnet chat: the model has no tokenizer: pass --tokenizer FILE\n"); goto out; }
    bn_model_info mi;
    bn_model_get_info(model, &mi);
    if (!tmpl) tmpl = bn_chat_template_detect(bn_tokenizer_chat_template(tok), mi.arch);
    if (!tmpl) tmpl = "bitnet";
    if (ctx_n <= 0) ctx_n = mi.n_ctx_train > 0 && mi.n_ctx_train < 4096 ? mi.n_ctx_train : 4096;
    if (bn_gen_context(model, (int32_t)ctx_n, 1, (int32_t)threads, &dev, &ctx) != BN_OK) { bn_cli_fail("creating the context"); goto out; }
    if (!seed_set) sp.seed = bn_gen_random_seed();
    if (bn_sampler_create(&sp, &smp) != BN_OK) { bn_cli_fail("sampler"); goto out; }
    if (bn_cancel_create(&cancel) != BN_OK) { bn_cli_fail("chat"); goto out; }
    if (system && !add_msg(&cv, "system", system)) { fprintf(stderr, "bitnet chat: out of memory\n"); goto out; }
    const size_t n_fixed = cv.n;

    g_cancel = cancel;
    g_generating = 0;
    g_quit = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a read at the prompt returns on Ctrl-C */
    sa_set = sigaction(SIGINT, &sa, &old_sa) == 0;

    const bool tty = isatty(STDIN_FILENO);
    if (tty)
        fprintf(stderr, "bitnet chat: template %s, context %ld, seed %llu. /reset starts over, /quit exits, Ctrl-C stops a reply.\n",
                tmpl, ctx_n, (unsigned long long)sp.seed);
    for (;;) {
        if (tty) { printf("> "); fflush(stdout); }
        errno = 0;
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) {
            if (tty) printf("\n");
            break; /* end of input, or Ctrl-C at the prompt */
        }
        if (g_quit) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            drop_msgs(&cv, n_fixed);
            bn_seq_truncate(ctx, 0, 0);
            cv.n_cached = 0;
            cv.n_prompt = 0;
            cv.pending = -1;
            if (tty) fprintf(stderr, "(conversation reset)\n");
            continue;
        }
        if (!add_msg(&cv, "user", line)) { fprintf(stderr, "bitnet chat: out of memory\n"); goto out; }
        int32_t *ids = NULL;
        size_t n_ids = 0, keep = 0;
        if (turn_ids(&cv, tok, tmpl, &ids, &n_ids, &keep) != BN_OK) {
            fprintf(stderr, "bitnet chat: %s\n", bn_last_error());
            drop_msgs(&cv, cv.n - 1);
            continue;
        }
        if (n_ids >= (size_t)ctx_n) {
            fprintf(stderr, "bitnet chat: the conversation (%zu tokens) no longer fits the context of %ld: /reset to start over\n",
                    n_ids, ctx_n);
            free(ids);
            drop_msgs(&cv, cv.n - 1);
            continue;
        }
        bn_seq_truncate(ctx, 0, (int32_t)keep);
        cv.n_cached = keep;

        bn_generate_params gp = bn_generate_default_params();
        gp.max_tokens = n_predict > 0 ? (int32_t)n_predict : 0;
        gp.cancel = cancel;
        bn_generate_result res;
        bn_cancel_reset(cancel);
        g_generating = 1;
        bn_status st = bn_generate(ctx, model, tok, smp, ids + keep, (int32_t)(n_ids - keep), &gp, on_piece, NULL, &res);
        g_generating = 0;
        printf("\n");
        fflush(stdout);
        if (st != BN_OK) {
            fprintf(stderr, "bitnet chat: %s\n", bn_last_error());
            drop_msgs(&cv, cv.n - 1);
            /* the cache may hold part of the prompt: trust only what it reports */
            int32_t have = bn_seq_length(ctx, 0);
            int32_t none = 0;
            set_cached(&cv, ids, n_ids, &none, 0, have > 0 ? (size_t)have : 0);
            cv.pending = -1;
            cv.n_prompt = 0;
            free(ids);
            bn_generate_result_free(&res);
            continue;
        }
        if (res.finish == BN_FINISH_CANCELLED && tty) fprintf(stderr, "(stopped)\n");
        if (res.finish == BN_FINISH_LENGTH && gp.max_tokens == 0)
            fprintf(stderr, "bitnet chat: the context is full: /reset to start over\n");
        if (verbose)
            fprintf(stderr, "[reused %zu cached tokens, decoded %zu; %d tokens, %.2f tok/s, ttft %.0f ms, %s]\n", keep,
                    n_ids - keep, (int)res.n_gen, res.gen_tps, res.ttft_s * 1e3, bn_finish_reason_name(res.finish));
        bool ok = add_msg(&cv, "assistant", res.text ? res.text : "");
        /* the cache now holds the prompt and all generated ids but the last */
        int32_t have = bn_seq_length(ctx, 0);
        ok = ok && set_cached(&cv, ids, n_ids, res.ids, (size_t)res.n_gen, have > 0 ? (size_t)have : 0);
        /* a reply cut short (length, Ctrl-C) keeps its last token; a stop
         * token is replaced by the template's own end of message */
        cv.n_prompt = cv.n_cached >= n_ids ? n_ids : 0;
        cv.pending = res.n_gen > 0 && res.finish != BN_FINISH_STOP && cv.n_cached == n_ids + (size_t)res.n_gen - 1
                         ? res.ids[res.n_gen - 1] : -1;
        free(ids);
        bn_generate_result_free(&res);
        if (!ok) { fprintf(stderr, "bitnet chat: out of memory\n"); goto out; }
    }
    rc = 0;
out:
    if (sa_set) sigaction(SIGINT, &old_sa, NULL);
    g_cancel = NULL;
    free(line);
    drop_msgs(&cv, 0);
    free(cv.msgs);
    free(cv.cached);
    bn_cancel_free(cancel);
    bn_sampler_free(smp);
    bn_gen_sampling_free(&sp);
    bn_context_free(ctx);
    bn_tokenizer_free(tok);
    bn_model_free(model);
    free(model_path);
    return rc;
}
