/* cuda_opts.c — `--cuda OPTS` (see cuda_opts.h). */
#include "cuda_opts.h"

#include <stdio.h>
#include <string.h>

#include "bitnet.h"

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
