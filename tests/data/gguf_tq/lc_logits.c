/* lc_logits.c — llama.cpp's logits for a list of token ids (all positions), the oracle of
 * tiny1-silu.lc.f32 (see tests/data/SOURCES.md). Not part of the build:
 *   L=/tmp/peers/lcpp; gcc lc_logits.c -I$L/include -I$L/ggml/include -L$L/build/bin -lllama
 *   ./a.out MODEL 510,1,5,77,300,2,511,128 OUT.f32 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llama.h"
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: lc_logits MODEL IDS OUT\n"); return 1; }
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    if (!m) return 2;
    int32_t ids[256]; int n = 0;
    for (char *s = strtok(argv[2], ","); s && n < 256; s = strtok(NULL, ",")) ids[n++] = atoi(s);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 64; cp.n_batch = 64; cp.n_threads = 2; cp.n_threads_batch = 2;
    struct llama_context *c = llama_init_from_model(m, cp);
    if (!c) return 3;
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) { b.token[i] = ids[i]; b.pos[i] = i; b.n_seq_id[i] = 1; b.seq_id[i][0] = 0; b.logits[i] = 1; }
    b.n_tokens = n;
    if (llama_decode(c, b)) return 4;
    const int V = llama_vocab_n_tokens(llama_model_get_vocab(m));
    FILE *f = fopen(argv[3], "wb");
    for (int i = 0; i < n; i++) {
        const float *l = llama_get_logits_ith(c, i);
        fwrite(l, 4, V, f);
        int am = 0; for (int v = 1; v < V; v++) if (l[v] > l[am]) am = v;
        printf("pos %d: argmax %d (%.4f), logit[0..3] = %.4f %.4f %.4f %.4f\n", i, am, l[am], l[0], l[1], l[2], l[3]);
    }
    fclose(f);
    llama_batch_free(b); llama_free(c); llama_model_free(m);
    return 0;
}
