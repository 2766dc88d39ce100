/* cuda_opts.c — `--cuda OPTS` (see cuda_opts.h). */
#include "cuda_opts.h"

#include <stdio.h>
#include <string.h>

#include "bitnet.h"
#include "cli.h"

bool bn_cli_parse_cuda_flags(const char *cmd, const char *v, uint32_t *flags) {
    static const struct { const char *name; uint32_t bit; } names[] = {
        {"kv-f16", BN_CUDA_KV_F16},       {"no-int8-copy", BN_CUDA_NO_INT8_COPY}, {"no-pdl", BN_CUDA_NO_PDL},
        {"separate", BN_CUDA_NO_PERSISTENT}, {"fuse-norm", BN_CUDA_FUSE_NORM},   {"no-fuse-rope", BN_CUDA_NO_FUSE_ROPE},
    };
    uint32_t f = 0;
    const char *p = v;
    while (*p) {
        const size_t n = strcspn(p, ",");
        bool found = false;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (n == strlen(names[i].name) && !strncmp(p, names[i].name, n)) {
                f |= names[i].bit;
                found = true;
            }
        if (!found && n) {
            fprintf(stderr, "bitnet %s: unknown --cuda switch '%.*s'\n", cmd, (int)n, p);
            return false;
        }
        p += n;
        if (*p == ',') p++;
    }
    *flags = f;
    return true;
}

int bn_cli_device_option(const char *cmd, int argc, char **argv, int *i, bn_cli_device *d) {
    const char *a = argv[*i], *v;
    if (!strcmp(a, "--device")) {
        if (!(v = bn_cli_value(cmd, argc, argv, i))) return -1;
        if (!strcmp(v, "cpu")) d->device = BN_DEVICE_CPU;
        else if (!strcmp(v, "cuda")) d->device = BN_DEVICE_CUDA;
        else {
            bn_cli_usage_error(cmd, "--device must be cpu or cuda, not '%s'", v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "--kv")) {
        if (!(v = bn_cli_value(cmd, argc, argv, i))) return -1;
        if (!strcmp(v, "f32")) d->kv_type = BN_KV_F32;
        else if (!strcmp(v, "f16")) d->kv_type = BN_KV_F16;
        else {
            bn_cli_usage_error(cmd, "--kv must be f32 or f16, not '%s'", v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "--cuda")) {
        if (!(v = bn_cli_value(cmd, argc, argv, i)) || !bn_cli_parse_cuda_flags(cmd, v, &d->cuda_flags)) return -1;
        return 1;
    }
    return 0;
}

void bn_cli_device_apply(const bn_cli_device *d, bn_context_params *cp) {
    if (!d) return;
    cp->device = d->device;
    cp->cuda_flags = d->cuda_flags;
    cp->kv_type = d->kv_type;
}
