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

/* Load with the tied head as the file stores it (head_bits 0) or quantized
 * to 8/6/4-bit rows; --head f16|q8|q6|q4 is parsed by bn_cli_parse_head. */
bn_status bn_cli_load_model_opts(const char *spec, int head_bits, bn_model **out, char **resolved);
bool bn_cli_parse_head(const char *cmd, const char *s, int *bits);
/* As bn_cli_load_model_opts; use_mmap false reads the file into memory. */
bn_status bn_cli_load_model_ex(const char *spec, int head_bits, bool use_mmap, bn_model **out, char **resolved);

/* Load the model named by -m (a .gguf file or a Hugging Face folder). */
bn_status bn_cli_load_model(const char *spec, bn_model **out);
/* The same, also returning the local path it resolved to (malloc'd). */
bn_status bn_cli_load_model_path(const char *spec, bn_model **out, char **resolved);

/* Fetch the value of a flag that takes one: advances *i. */
const char *bn_cli_value(const char *cmd, int argc, char **argv, int *i);

#endif
