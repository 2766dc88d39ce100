/* gen_common.c — helpers shared by the generate, chat and perplexity commands. */
#include "gen_common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool float_flag(const char *cmd, const char *flag, const char *v, float lo, float hi, float *out) {
    double d;
    if (!bn_cli_parse_float(cmd, flag, v, &d)) return false;
    if (!(d >= lo && d <= hi)) {
        bn_cli_usage_error(cmd, "%s must be in [%g, %g], got %s", flag, (double)lo, (double)hi, v);
        return false;
    }
    *out = (float)d;
    return true;
}

bool bn_gen_sampling_flag(const char *cmd, int argc, char **argv, int *i,
                          bn_sampler_params *sp, bool *seed_set, bool *ok) {
    const char *a = argv[*i];
    static const char *const flags[] = {"--temp", "--temperature", "--top-k", "--top-p", "--min-p",
                                        "--repeat-penalty", "--repeat-last-n", "--presence-penalty",
                                        "--frequency-penalty", "--seed", "--logit-bias", NULL};
    bool known = false;
    for (int k = 0; flags[k]; k++) known |= !strcmp(a, flags[k]);
    if (!known) return false;
    *ok = false;
    const char *v = bn_cli_value(cmd, argc, argv, i);
    if (!v) return true;
    long l;
    if (!strcmp(a, "--temp") || !strcmp(a, "--temperature")) *ok = float_flag(cmd, a, v, 0.0f, 100.0f, &sp->temperature);
    else if (!strcmp(a, "--top-p")) *ok = float_flag(cmd, a, v, 0.0f, 1.0f, &sp->top_p);
    else if (!strcmp(a, "--min-p")) *ok = float_flag(cmd, a, v, 0.0f, 1.0f, &sp->min_p);
    else if (!strcmp(a, "--repeat-penalty")) *ok = float_flag(cmd, a, v, 1e-3f, 100.0f, &sp->repeat_penalty);
    else if (!strcmp(a, "--presence-penalty")) *ok = float_flag(cmd, a, v, -100.0f, 100.0f, &sp->presence_penalty);
    else if (!strcmp(a, "--frequency-penalty")) *ok = float_flag(cmd, a, v, -100.0f, 100.0f, &sp->frequency_penalty);
    else if (!strcmp(a, "--top-k")) {
        if ((*ok = bn_cli_parse_int(cmd, a, v, 0, INT32_MAX, &l))) sp->top_k = (int32_t)l;
    } else if (!strcmp(a, "--repeat-last-n")) {
        if ((*ok = bn_cli_parse_int(cmd, a, v, -1, INT32_MAX, &l))) sp->repeat_last_n = (int32_t)l;
    } else if (!strcmp(a, "--logit-bias")) {
        /* ID=BIAS, repeatable; the list grows in a static-free heap array
         * owned by the caller's params (freed with bn_gen_sampling_free) */
        char *end;
        errno = 0;
        long id = strtol(v, &end, 10);
        double b = 0;
        if (errno || end == v || *end != '=' || id < 0 || id > INT32_MAX || !bn_cli_parse_float(cmd, a, end + 1, &b) ||
            isnan(b)) {
            if (!(errno || end == v || *end != '=' || id < 0 || id > INT32_MAX)) return true; /* already reported */
            bn_cli_usage_error(cmd, "--logit-bias expects ID=BIAS (BIAS may be -inf), got '%s'", v);
            return true;
        }
        bn_logit_bias *list = realloc((void *)sp->logit_bias, sizeof *list * ((size_t)sp->n_logit_bias + 1));
        if (!list) { fprintf(stderr, "bitnet %s: out of memory\n", cmd); return true; }
        list[sp->n_logit_bias].token = (int32_t)id;
        list[sp->n_logit_bias].bias = (float)b;
        sp->logit_bias = list;
        sp->n_logit_bias++;
        *ok = true;
    } else if (!strcmp(a, "--seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-') bn_cli_usage_error(cmd, "--seed expects a non-negative integer, got '%s'", v);
        else { sp->seed = s; *seed_set = true; *ok = true; }
    }
    return true;
}

void bn_gen_sampling_help(FILE *f) {
    fprintf(f,
            "sampling (order: bias, penalties, top-k, temperature, top-p, min-p):\n"
            "  --temp T              temperature; 0 = greedy (default 0.8)\n"
            "  --top-k K             keep the K most likely (0 = off, default 40)\n"
            "  --top-p P             nucleus: smallest set with mass >= P (1 = off, default 0.95)\n"
            "  --min-p P             drop tokens below P x the top probability (default 0.05)\n"
            "  --repeat-penalty R    CTRL-style repetition penalty (1 = off)\n"
            "  --repeat-last-n N     history window of the penalties (default 64, -1 = all)\n"
            "  --presence-penalty X  logit -= X if the token appeared\n"
            "  --frequency-penalty X logit -= X x times it appeared\n"
            "  --seed S              random seed (default: from the clock; printed)\n"
            "  --logit-bias ID=B     add B to token ID's logit first (-inf bans it; repeatable)\n");
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 if invalid. */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
    unsigned char b = s[0];
    if (b < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (b >= 0xC2 && b <= 0xDF) need = 2;
    else if (b >= 0xE0 && b <= 0xEF) { need = 3; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { need = 4; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
    else return 0;
    if (n < need || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < need; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    return need;
}

char *bn_gen_utf8_clean(const char *text, size_t len) {
    if (len > ((size_t)1 << 30)) return NULL;
    char *out = malloc(len * 3 + 1); /* each bad byte becomes 3 bytes */
    if (!out) return NULL;
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t k = utf8_valid_len(s + i, len - i);
        if (k) { memcpy(out + o, s + i, k); o += k; i += k; }
        else { memcpy(out + o, "\xEF\xBF\xBD", 3); o += 3; i++; }
    }
    out[o] = '\0';
    return out;
}

double bn_gen_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void bn_gen_sampling_free(bn_sampler_params *sp) {
    free((void *)sp->logit_bias);
    sp->logit_bias = NULL;
    sp->n_logit_bias = 0;
}

uint64_t bn_gen_random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    return s % 1000000000000ull; /* short enough to retype */
}

bool bn_gen_load_tokenizer(const char *cmd, const char *model_path, const char *tok_path, bn_tokenizer **out) {
    *out = NULL;
    if (tok_path) {
        if (bn_tokenizer_load(tok_path, out) == BN_OK) return true;
        fprintf(stderr, "bitnet %s: %s: %s\n", cmd, tok_path, bn_last_error());
        return false;
    }
    if (model_path && bn_tokenizer_load(model_path, out) != BN_OK) *out = NULL; /* the model carries none */
    return true;
}

static bool ids_error(const char *cmd, const char *path, const char *msg, size_t index) {
    fprintf(stderr, "bitnet %s: %s: %s (token %zu)\n", cmd, path, msg, index);
    return false;
}

bool bn_gen_read_ids_file(const char *cmd, const char *path, int32_t **ids, int64_t *n) {
    *ids = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bitnet %s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return false;
    }
    size_t cap = 1024, cnt = 0;
    int32_t *v = malloc(cap * sizeof *v);
    size_t len = strlen(path);
    bool bin = len > 4 && !strcmp(path + len - 4, ".bin");
    bool ok = v != NULL;
    if (!ok) fprintf(stderr, "bitnet %s: out of memory\n", cmd);
    while (ok) {
        long long x;
        if (bin) {
            int32_t y;
            if (fread(&y, sizeof y, 1, f) != 1) break;
            x = y;
        } else {
            int c;
            while ((c = fgetc(f)) != EOF && (c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t')) {}
            if (c == EOF) break;
            ungetc(c, f);
            if (fscanf(f, "%lld", &x) != 1) { ok = ids_error(cmd, path, "expected an integer token id", cnt); break; }
        }
        if (x < 0 || x > INT32_MAX) { ok = ids_error(cmd, path, "token id out of range", cnt); break; }
        if (cnt == cap) {
            int32_t *nv = cap < ((size_t)1 << 30) ? realloc(v, 2 * cap * sizeof *v) : NULL;
            if (!nv) { ok = ids_error(cmd, path, "too many ids / out of memory", cnt); break; }
            v = nv;
            cap *= 2;
        }
        v[cnt++] = (int32_t)x;
    }
    fclose(f);
    if (!ok) { free(v); return false; }
    *ids = v;
    *n = (int64_t)cnt;
    return true;
}

bn_status bn_gen_context(const bn_model *model, int32_t n_ctx, int32_t n_seq, int32_t n_threads,
                         const bn_cli_device *dev, bn_context **out) {
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_seq_max = n_seq;
    cp.n_threads = n_threads;
    bn_cli_device_apply(dev, &cp);
    return bn_context_create(model, &cp, out);
}
