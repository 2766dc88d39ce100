/* main.c — the bitnet command-line program: dispatch to sub-commands. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
#define BN_COMMAND(name, fn, summary) {name, fn, summary},
#include "commands.def"
#undef BN_COMMAND
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void print_help(FILE *f) {
    fprintf(f, "bitnet %s — run, serve and train ternary (BitNet b1.58) language models\n\n",
            bn_version_string());
    fprintf(f, "usage: bitnet <command> [options]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-14s %s\n", "help", "this list; 'bitnet <command> --help' for one command");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "help") || bn_cli_is_help(argv[1])) {
        if (argc >= 3 && !strcmp(argv[1], "help")) {
            for (int i = 0; i < N_COMMANDS; i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    char *hargv[] = {argv[2], "--help", NULL};
                    return commands[i].fn(2, hargv);
                }
        }
        print_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("bitnet %s\n", bn_version_string());
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "bitnet: unknown command '%s'; see 'bitnet help'\n", argv[1]);
    return 2;
}

int bn_cli_fail(const char *what) {
    fprintf(stderr, "bitnet: %s: %s\n", what, bn_last_error());
    return 1;
}

int bn_cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bitnet %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "; see 'bitnet %s --help'\n", cmd);
    va_end(ap);
    return 2;
}

bool bn_cli_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

bool bn_cli_parse_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        bn_cli_usage_error(cmd, "%s expects an integer in [%ld, %ld], got '%s'", flag, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool bn_cli_parse_float(const char *cmd, const char *flag, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) {
        bn_cli_usage_error(cmd, "%s expects a number, got '%s'", flag, s);
        return false;
    }
    *out = v;
    return true;
}

bool bn_cli_parse_ids(const char *cmd, const char *s, int32_t **ids, int *n) {
    int cap = 16, cnt = 0;
    int32_t *v = malloc(sizeof *v * (size_t)cap);
    const char *p = s;
    while (v && *p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 0 || x > INT32_MAX) {
            free(v);
            bn_cli_usage_error(cmd, "--ids expects comma-separated non-negative integers, got '%s'", s);
            return false;
        }
        if (cnt == cap) {
            cap *= 2;
            int32_t *nv = realloc(v, sizeof *v * (size_t)cap);
            if (!nv) { free(v); v = NULL; break; }
            v = nv;
        }
        v[cnt++] = (int32_t)x;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    if (!v) { fprintf(stderr, "bitnet %s: out of memory\n", cmd); return false; }
    if (cnt == 0) { free(v); bn_cli_usage_error(cmd, "--ids is empty"); return false; }
    *ids = v;
    *n = cnt;
    return true;
}

const char *bn_cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        bn_cli_usage_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}
