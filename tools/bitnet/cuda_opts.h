/* cuda_opts.h — `--cuda OPTS` of the CLI: a comma list of CUDA backend
 * switches, turned into bn_context_params.cuda_flags (BN_CUDA_*). */
#ifndef BN_CLI_CUDA_OPTS_H
#define BN_CLI_CUDA_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet.h"

#define BN_CLI_CUDA_OPTS_HELP \
    "  --cuda OPTS   CUDA switches, comma-separated: kv-f16, no-int8-copy, no-pdl,\n" \
    "                separate (no persistent batch-1 kernel), fuse-norm, no-fuse-rope\n"

/* Parse v into *flags; false (with a usage message on stderr) if a name is
 * unknown. */
bool bn_cli_parse_cuda_flags(const char *cmd, const char *v, uint32_t *flags);

/* `--device cpu|cuda` and `--cuda OPTS`, shared by the commands that run a model. */
typedef struct bn_cli_device {
    bn_device  device;
    uint32_t   cuda_flags;
    bn_kv_type kv_type;
} bn_cli_device;

#define BN_CLI_DEVICE_HELP \
    "  --device D        cpu (default) or cuda (a -DBITNET_CUDA=ON build and a GPU)\n" \
    "  --cuda OPTS       CUDA switches, as in `bitnet bench --help`\n" \
    "  --kv T            KV cache type: f32 (default, exact) or f16 (half the memory)\n"

/* If argv[*i] is --device, --cuda or --kv, take it and its value: 1; another
 * option: 0; a bad value: -1 (the message is printed). */
int bn_cli_device_option(const char *cmd, int argc, char **argv, int *i, bn_cli_device *d);
/* Copy the choice into context parameters. */
void bn_cli_device_apply(const bn_cli_device *d, bn_context_params *cp);

#endif
