/* Dequantize token_embd.weight rows with ggml itself (reference for test_gguf_tq). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ggml.h"
#include "gguf.h"
int main(int argc, char **argv) {
    struct ggml_context *ctx = NULL;
    struct gguf_init_params ip = {.no_alloc = false, .ctx = &ctx};
    struct gguf_context *g = gguf_init_from_file(argv[1], ip);
    if (!g) return 1;
    struct ggml_tensor *t = ggml_get_tensor(ctx, argv[2]);
    if (!t) return 2;
    int64_t n0 = t->ne[0];
    size_t rs = ggml_row_size(t->type, n0);
    FILE *f = fopen(argv[3], "wb");
    float *row = malloc(n0 * 4);
    for (int i = 4; i < argc; i++) {
        int r = atoi(argv[i]);
        ggml_get_type_traits(t->type)->to_float((const char *)t->data + r * rs, row, n0);
        fwrite(row, 4, n0, f);
    }
    fclose(f);
    fprintf(stderr, "%s %s ne0=%lld rows=%d\n", ggml_type_name(t->type), argv[2], (long long)n0, argc - 4);
    return 0;
}
