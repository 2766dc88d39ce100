/* cli_model.c — how every command that takes -m MODEL loads it: a local
 * .gguf file or Hugging Face folder, or "hf:ORG/NAME[/FILE][@REV]" fetched
 * through the hub cache (HF_* environment variables apply). */
#include <stdlib.h>

#include "cli.h"

bn_status bn_cli_load_model_path(const char *spec, bn_model **out, char **resolved) {
    if (resolved) *resolved = NULL;
    bn_hub_options ho = bn_hub_default_options();
    char *path = NULL;
    bn_status st = bn_hub_resolve_model(spec, &ho, &path);
    if (st) return st;
    bn_model_params mp = bn_model_default_params();
    st = bn_model_load(path, &mp, out);
    if (st == BN_OK && resolved) *resolved = path;
    else free(path);
    return st;
}

bn_status bn_cli_load_model(const char *spec, bn_model **out) {
    return bn_cli_load_model_path(spec, out, NULL);
}
