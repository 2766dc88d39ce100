/* cmd_random_model.c — `bitnet random-model`: real shapes, random ternary
 * weights, for benchmarks. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/core.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet random-model --shape 2b4t|tiny -o FILE.gguf [--seed N]\n\n"
            "Writes a GGUF model with random ternary weights: 2b4t has the exact shapes of\n"
            "microsoft/bitnet-b1.58-2B-4T (30 layers, 2560 hidden, 6912 ffn, vocab 128256),\n"
            "tiny those of the test fixture (4 layers, 256 hidden, vocab 512).\n");
}

int bn_cmd_random_model(int argc, char **argv) {
    const char *cmd = "random-model", *shape = NULL, *out = NULL, *v;
    long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
        else if (!strcmp(a, "--shape")) { if (!(shape = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-o")) { if (!(out = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--seed")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 0, 0x7fffffffL, &seed)) return 2;
        } else return bn_cli_usage_error(cmd, "unknown option '%s'", a);
    }
    if (!shape || !out) return bn_cli_usage_error(cmd, "--shape and -o are required");
    bn_random_shape s;
    if (!strcmp(shape, "2b4t")) s = BN_SHAPE_2B4T;
    else if (!strcmp(shape, "tiny")) s = BN_SHAPE_TINY;
    else return bn_cli_usage_error(cmd, "--shape must be 2b4t or tiny, got '%s'", shape);
    double t0 = bn_time_s();
    if (bn_random_model_write(s, (uint64_t)seed, out) != BN_OK) return bn_cli_fail(out);
    fprintf(stderr, "bitnet random-model: wrote %s (%s, seed %ld) in %.1f s\n", out, shape, seed, bn_time_s() - t0);
    return 0;
}
