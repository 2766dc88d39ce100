/* cli_model.c — how every command that takes -m MODEL loads it. */
#include "cli.h"

bn_status bn_cli_load_model(const char *spec, bn_model **out) {
    bn_model_params mp = bn_model_default_params();
    return bn_model_load(spec, &mp, out);
}
