/* cuda_opts.h — `--cuda OPTS` of the CLI: a comma list of CUDA backend
 * switches, turned into bn_context_params.cuda_flags (BN_CUDA_*). */
#ifndef BN_CLI_CUDA_OPTS_H
#define BN_CLI_CUDA_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#define BN_CLI_CUDA_OPTS_HELP \
    "  --cuda OPTS   CUDA switches, comma-separated: kv-f16, no-int8-copy, no-pdl,\n" \
    "                separate (no persistent batch-1 kernel), fuse-norm, no-fuse-rope\n"

/* Parse v into *flags; false (with a usage message on stderr) if a name is
 * unknown. */
bool bn_cli_parse_cuda_flags(const char *cmd, const char *v, uint32_t *flags);

#endif
