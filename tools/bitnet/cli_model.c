/* cli_model.c — how every command that takes -m MODEL loads it: a local
 * .gguf file or Hugging Face folder, or "hf:ORG/NAME[/FILE][@REV]" fetched
 * through the hub cache (HF_* environment variables apply). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bn_status bn_cli_load_model_path(const char *spec, bn_model **out, char **resolved) {
    const bn_cli_model_opts o = BN_CLI_MODEL_OPTS_INIT;
    return bn_cli_load_model_with(spec, &o, out, resolved);
}

int bn_cli_model_option(const char *cmd, int argc, char **argv, int *i, bn_cli_model_opts *o) {
    const char *a = argv[*i], *v;
    if (!strcmp(a, "--head")) {
        if (!(v = bn_cli_value(cmd, argc, argv, i)) || !bn_cli_parse_head(cmd, v, &o->head_bits)) return -1;
        return 1;
    }
    if (!strcmp(a, "--no-mmap")) { o->use_mmap = false; return 1; }
    if (!strcmp(a, "--repack")) { o->repack = true; return 1; }
    return 0;
}

bool bn_cli_parse_head(const char *cmd, const char *s, int *bits) {
    static const struct { const char *name; int bits; } forms[] = {{"f16", 0}, {"exact", 0}, {"q8", 8}, {"q6", 6}, {"q4", 4}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        if (!strcmp(s, forms[i].name)) { *bits = forms[i].bits; return true; }
    bn_cli_usage_error(cmd, "--head must be f16 (the file's type, exact), q8, q6 or q4; got '%s'", s);
    return false;
}

bn_status bn_cli_load_model_with(const char *spec, const bn_cli_model_opts *o, bn_model **out, char **resolved) {
    if (resolved) *resolved = NULL;
    bn_hub_options ho = bn_hub_default_options();
    char *path = NULL;
    bn_status st = bn_hub_resolve_model(spec, &ho, &path);
    if (st) return st;
    bn_model_params mp = bn_model_default_params();
    mp.head_bits = o->head_bits;
    mp.use_mmap = o->use_mmap;
    mp.repack = o->repack;
    st = bn_model_load(path, &mp, out);
    if (st == BN_OK && resolved) *resolved = path;
    else free(path);
    return st;
}

bn_status bn_cli_load_model(const char *spec, bn_model **out) {
    return bn_cli_load_model_path(spec, out, NULL);
}
