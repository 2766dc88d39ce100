/* cmd_models.c — bitnet models: list or remove models in the local cache. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet models list [--json] [--cache-dir DIR]\n"
            "       bitnet models rm ORG/NAME [--cache-dir DIR]\n"
            "       bitnet models dir [--cache-dir DIR]\n"
            "  The model cache is shared with Python's huggingface_hub ($HF_HUB_CACHE, $HF_HOME/hub\n"
            "  or ~/.cache/huggingface/hub). 'list' shows each model's refs, commit, size and last use,\n"
            "  most recent first; 'rm' deletes a model; 'dir' prints the cache folder.\n");
}

static void human(uint64_t b, char *out, size_t n) {
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1000 && i < 4) { v /= 1000; i++; }
    snprintf(out, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static int list(const bn_hub_options *o, bool json) {
    bn_hub_cached_model *m = NULL;
    size_t n = 0;
    if (bn_hub_list(o, &m, &n)) return bn_cli_fail("models list");
    if (json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; arr && i < n; i++) {
            cJSON *e = cJSON_CreateObject();
            if (!e) break;
            cJSON_AddStringToObject(e, "repo", m[i].repo);
            cJSON_AddStringToObject(e, "refs", m[i].refs);
            cJSON_AddStringToObject(e, "commit", m[i].commit);
            cJSON_AddNumberToObject(e, "snapshots", m[i].n_snapshots);
            cJSON_AddNumberToObject(e, "size_bytes", (double)m[i].size_bytes);
            cJSON_AddNumberToObject(e, "last_used", (double)m[i].last_used);
            cJSON_AddItemToArray(arr, e);
        }
        char *s = arr ? cJSON_Print(arr) : NULL;
        cJSON_Delete(arr);
        free(m);
        if (!s) { fprintf(stderr, "bitnet models: out of memory\n"); return 1; }
        printf("%s\n", s);
        free(s);
        return 0;
    }
    if (n == 0) {
        char *dir = NULL;
        if (bn_hub_cache_dir(o, &dir) == BN_OK) fprintf(stderr, "no models in %s\n", dir);
        free(dir);
        free(m);
        return 0;
    }
    printf("%-44s %-12s %-12s %10s  %s\n", "MODEL", "REFS", "COMMIT", "SIZE", "LAST USED");
    for (size_t i = 0; i < n; i++) {
        char sz[32], when[32] = "-";
        human(m[i].size_bytes, sz, sizeof sz);
        time_t t = (time_t)m[i].last_used;
        struct tm tm;
        if (t > 0 && localtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
        printf("%-44s %-12s %-12.12s %10s  %s\n", m[i].repo, m[i].refs[0] ? m[i].refs : "-",
               m[i].commit[0] ? m[i].commit : "-", sz, when);
    }
    free(m);
    return 0;
}

int bn_cmd_models(int argc, char **argv) {
    const char *cmd = "models";
    bn_hub_options o = bn_hub_default_options();
    const char *sub = NULL, *name = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--cache-dir")) { if (!(o.cache_dir = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (a[0] == '-') return bn_cli_usage_error(cmd, "unknown option '%s'", a);
        else if (!sub) sub = a;
        else if (!name) name = a;
        else return bn_cli_usage_error(cmd, "unexpected argument '%s'", a);
    }
    if (!sub || !strcmp(sub, "list") || !strcmp(sub, "ls")) {
        if (name) return bn_cli_usage_error(cmd, "list takes no name");
        return list(&o, json);
    }
    if (!strcmp(sub, "rm") || !strcmp(sub, "remove")) {
        if (!name) return bn_cli_usage_error(cmd, "rm needs a model name (ORG/NAME)");
        if (!strncmp(name, "hf:", 3)) name += 3;
        if (bn_hub_remove(name, &o)) return bn_cli_fail("models rm");
        fprintf(stderr, "removed %s\n", name);
        return 0;
    }
    if (!strcmp(sub, "dir")) {
        char *dir = NULL;
        if (bn_hub_cache_dir(&o, &dir)) return bn_cli_fail("models dir");
        printf("%s\n", dir);
        free(dir);
        return 0;
    }
    return bn_cli_usage_error(cmd, "unknown sub-command '%s' (list, rm, dir)", sub);
}
