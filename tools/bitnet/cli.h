/* cli.h — shared helpers for the bitnet command-line program. */
#ifndef BN_CLI_H
#define BN_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bitnet.h"

#define BN_COMMAND(name, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef BN_COMMAND

/* Print "bitnet: <what>: <bn_last_error()>" to stderr; returns 1. */
int bn_cli_fail(const char *what);
/* Print a usage error ("bitnet <cmd>: <msg>; see bitnet <cmd> --help"); returns 2. */
int bn_cli_usage_error(const char *cmd, const char *fmt, ...);

/* True if argv[i] is -h / --help. */
bool bn_cli_is_help(const char *arg);

/* Parse helpers: return false (after printing a usage error) if invalid. */
bool bn_cli_parse_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);
bool bn_cli_parse_float(const char *cmd, const char *flag, const char *s, double *out);
/* "1,2,3" -> malloc'd int32 array. */
bool bn_cli_parse_ids(const char *cmd, const char *s, int32_t **ids, int *n);

/* How the commands that run a model load it: `--head f16|q8|q6|q4` (the tied
 * head as stored, or rows quantized at load), `--no-mmap` (read the file into
 * huge-page memory instead of mapping it), `--repack` (a decode copy of the
 * ternary weights). */
typedef struct bn_cli_model_opts {
    int  head_bits; /* 0 = as stored */
    bool use_mmap;
    bool repack;
} bn_cli_model_opts;
#define BN_CLI_MODEL_OPTS_INIT {0, true, false}
#define BN_CLI_MODEL_HELP \
    "  --head H          tied head: f16 (as stored, exact; default) | q8 | q6 | q4 (quantized at load)\n" \
    "  --no-mmap         read the weights into (huge-page) memory instead of mapping the file\n" \
    "  --repack          keep a decode copy of the ternary weights (+1x their size, faster decode)\n"
/* If argv[*i] is one of those, take it (and its value): 1; another option: 0;
 * a bad value: -1 (the usage error is printed). */
int bn_cli_model_option(const char *cmd, int argc, char **argv, int *i, bn_cli_model_opts *o);
bool bn_cli_parse_head(const char *cmd, const char *s, int *bits);
/* Load -m with those options; resolved (may be NULL): the local path (malloc'd). */
bn_status bn_cli_load_model_with(const char *spec, const bn_cli_model_opts *o, bn_model **out, char **resolved);

/* Load the model named by -m (a .gguf file or a Hugging Face folder). */
bn_status bn_cli_load_model(const char *spec, bn_model **out);
/* The same, also returning the local path it resolved to (malloc'd). */
bn_status bn_cli_load_model_path(const char *spec, bn_model **out, char **resolved);

/* Fetch the value of a flag that takes one: advances *i. */
const char *bn_cli_value(const char *cmd, int argc, char **argv, int *i);

#endif
