/* fuzz_hub_listing.c — libFuzzer target for what the hub client takes from
 * the network before it touches the disk: the model listing JSON and the
 * file choice over its names. Any input must parse or fail with a message;
 * every accepted name must be a safe relative path, and the chosen files
 * must come from the listing. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char commit[41], **names = NULL;
    size_t n = 0;
    if (bn_hub_parse_listing((const char *)data, size, commit, &names, &n) != BN_OK) {
        if (names || !bn_last_error()[0]) __builtin_trap();
        return 0;
    }
    if (strlen(commit) != 40 || !bn_hub_is_hex(commit, 40)) __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        const char *s = names[i];
        if (!bn_hub_valid_file(s) || s[0] == '/') __builtin_trap();
        /* no path component may be "." or ".." (or empty) */
        for (const char *p = s;;) {
            size_t len = strcspn(p, "/");
            if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) __builtin_trap();
            if (!p[len]) break;
            p += len + 1;
        }
    }
    bn_hub_files f;
    if (bn_hub_select("fuzz/repo", (const char *const *)names, n, NULL, &f) == BN_OK) {
        if (f.n == 0) __builtin_trap();
        for (size_t k = 0; k < f.n; k++) {
            bool found = false;
            for (size_t i = 0; i < n && !found; i++) found = !strcmp(f.names[k], names[i]);
            if (!found) __builtin_trap();
        }
        bn_hub_files_free(&f);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return 0;
}
