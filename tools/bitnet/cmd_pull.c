/* cmd_pull.c — bitnet pull: download a model from the Hugging Face Hub into
 * the shared cache and print its local path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet pull REPO [options]\n"
            "  Download a model (ORG/NAME, or hf:ORG/NAME[/FILE][@REV]) from the Hugging Face Hub\n"
            "  into the local cache shared with Python's huggingface_hub, and print its path:\n"
            "  the .gguf file, or the snapshot folder of a config.json + safetensors model.\n"
            "options:\n"
            "  --file NAME            this file of the repository (default: the one .gguf, preferring\n"
            "                         *i2_s*; else config.json + *.safetensors + tokenizer files)\n"
            "  --revision REV         branch, tag or commit (default: main)\n"
            "  --cache-dir DIR        cache folder (default: $HF_HUB_CACHE, $HF_HOME/hub,\n"
            "                         ~/.cache/huggingface/hub)\n"
            "  --endpoint URL         hub or mirror (default: $HF_ENDPOINT or https://huggingface.co)\n"
            "  --offline              use the cache only (also HF_HUB_OFFLINE=1)\n"
            "  --max-cache-size SIZE  then evict least recently used other models until the cache\n"
            "                         holds at most SIZE bytes (suffixes K, M, G, T: powers of 1024)\n"
            "  --retries N            resume an interrupted download up to N times (default 2)\n"
            "  --quiet                no progress bar\n"
            "environment: HF_TOKEN (gated or private models), HF_ENDPOINT, HF_HOME, HF_HUB_CACHE,\n"
            "             HF_HUB_OFFLINE\n");
}

/* "10G" -> bytes; false if malformed or overflowing. */
static bool parse_size(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-') return false;
    int shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return false;
    }
    if (*end == 'i' && shift) end++;
    if ((*end == 'B' || *end == 'b') && end[1] == '\0') end++;
    if (*end) return false;
    if (shift && v > (UINT64_MAX >> shift)) return false;
    *out = (uint64_t)v << shift;
    return true;
}

int bn_cmd_pull(int argc, char **argv) {
    const char *cmd = "pull";
    bn_hub_options o = bn_hub_default_options();
    const char *repo = NULL, *file = NULL, *rev = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
        if (!strcmp(a, "--file")) { if (!(file = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--revision")) { if (!(rev = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--cache-dir")) { if (!(o.cache_dir = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--endpoint")) { if (!(o.endpoint = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--offline")) o.offline = true;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) o.progress = false;
        else if (!strcmp(a, "--max-cache-size")) {
            const char *v = bn_cli_value(cmd, argc, argv, &i);
            if (!v) return 2;
            if (!parse_size(v, &o.size_cap) || o.size_cap == 0)
                return bn_cli_usage_error(cmd, "--max-cache-size expects a positive size such as 20G, got '%s'", v);
        } else if (!strcmp(a, "--retries")) {
            const char *v = bn_cli_value(cmd, argc, argv, &i);
            long n;
            if (!v || !bn_cli_parse_int(cmd, "--retries", v, 0, 100, &n)) return 2;
            o.retries = (int32_t)n;
        } else if (a[0] == '-') {
            return bn_cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (!repo) {
            repo = a;
        } else {
            return bn_cli_usage_error(cmd, "one repository at a time ('%s' is extra)", a);
        }
    }
    if (!repo) return bn_cli_usage_error(cmd, "name a repository, e.g. microsoft/bitnet-b1.58-2B-4T-gguf");
    char *path = NULL;
    bn_status st;
    if (!strncmp(repo, "hf:", 3)) {
        if (file || rev) return bn_cli_usage_error(cmd, "--file/--revision cannot be combined with an hf: name");
        st = bn_hub_resolve_model(repo, &o, &path);
    } else {
        st = bn_hub_pull(repo, file, rev, &o, &path);
    }
    if (st) return bn_cli_fail("pull");
    printf("%s\n", path);
    free(path);
    return 0;
}
