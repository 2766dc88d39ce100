/* cli_model.c — how every command that takes -m MODEL loads it: a local
 * .gguf file or Hugging Face folder, or "hf:ORG/NAME[/FILE][@REV]" fetched
 * through the hub cache (HF_* environment variables apply). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bn_status bn_cli_load_model_path(const char *spec, bn_model **out, char **resolved) {
    return bn_cli_load_model_opts(spec, 0, out, resolved);
}

bool bn_cli_parse_head(const char *cmd, const char *s, int *bits) {
    static const struct { const char *name; int bits; } forms[] = {{"f16", 0}, {"exact", 0}, {"q8", 8}, {"q6", 6}, {"q4", 4}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        if (!strcmp(s, forms[i].name)) { *bits = forms[i].bits; return true; }
    bn_cli_usage_error(cmd, "--head must be f16 (the file's type, exact), q8, q6 or q4; got '%s'", s);
    return false;
}

bn_status bn_cli_load_model_opts(const char *spec, int head_bits, bn_model **out, char **resolved) {
    return bn_cli_load_model_ex(spec, head_bits, true, out, resolved);
}

bn_status bn_cli_load_model_ex(const char *spec, int head_bits, bool use_mmap, bn_model **out, char **resolved) {
    if (resolved) *resolved = NULL;
    bn_hub_options ho = bn_hub_default_options();
    char *path = NULL;
    bn_status st = bn_hub_resolve_model(spec, &ho, &path);
    if (st) return st;
    bn_model_params mp = bn_model_default_params();
    mp.head_bits = head_bits;
    mp.use_mmap = use_mmap;
    st = bn_model_load(path, &mp, out);
    if (st == BN_OK && resolved) *resolved = path;
    else free(path);
    return st;
}

bn_status bn_cli_load_model(const char *spec, bn_model **out) {
    return bn_cli_load_model_path(spec, out, NULL);
}
