/* gen_common.h — helpers shared by the generate, chat and perplexity
 * commands: sampling flags, tokenizer lookup, id files. */
#ifndef BN_GEN_COMMON_H
#define BN_GEN_COMMON_H

#include "cuda_opts.h"
#include "cli.h"

/* If argv[*i] is a sampling flag, consume it (and its value) into sp and
 * return true; *ok becomes false after a usage error. */
bool bn_gen_sampling_flag(const char *cmd, int argc, char **argv, int *i,
                          bn_sampler_params *sp, bool *seed_set, bool *ok);
void bn_gen_sampling_help(FILE *f);
/* Free the --logit-bias list the flags allocated. */
void bn_gen_sampling_free(bn_sampler_params *sp);

/* text[0..len) with every invalid UTF-8 sequence replaced by U+FFFD, as a
 * NUL-terminated malloc'd string (JSON output must be valid UTF-8). */
char *bn_gen_utf8_clean(const char *text, size_t len);

/* Monotonic clock in seconds. */
double bn_gen_now(void);

/* A seed from the clock and the process id (used when --seed is absent). */
uint64_t bn_gen_random_seed(void);

/* The tokenizer for a model: tok_path if given (failure is an error), else
 * the one stored with the model at model_path; *out = NULL (and true) when
 * the model has none. Errors are printed; false is returned. */
bool bn_gen_load_tokenizer(const char *cmd, const char *model_path, const char *tok_path, bn_tokenizer **out);

/* Token ids from a file: raw little-endian int32 if the name ends in ".bin",
 * else integers separated by whitespace or commas. *ids: free(). Errors
 * are printed; false is returned. */
bool bn_gen_read_ids_file(const char *cmd, const char *path, int32_t **ids, int64_t *n);

/* Context for n_seq sequences of n_ctx positions. */
bn_status bn_gen_context(const bn_model *model, int32_t n_ctx, int32_t n_seq, int32_t n_threads,
                         const bn_cli_device *dev, bn_context **out);

#endif
