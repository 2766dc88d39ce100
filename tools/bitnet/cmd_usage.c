/* cmd_usage.c — `bitnet usage`: requests and tokens per API key and day, as
 * `bitnet serve --keys-db` committed them. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "server/server.h"

static void help(FILE *f) {
    fprintf(f,
            "usage: bitnet usage [--key NAME] [--since YYYY-MM-DD] [--json] [--keys-db FILE]\n\n"
            "Usage per API key and UTC day: requests, prompt and completion tokens\n"
            "(default file: bitnet-keys.db).\n");
}

static bool valid_date(const char *s) {
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
    return true;
}

int bn_cmd_usage(int argc, char **argv) {
    const char *cmd = "usage", *key = NULL, *since = NULL, *db_path = "bitnet-keys.db";
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (bn_cli_is_help(a)) { help(stdout); return 0; }
        if (!strcmp(a, "--key")) { if (!(v = bn_cli_value(cmd, argc, argv, &i))) return 2; key = v; }
        else if (!strcmp(a, "--since")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i))) return 2;
            if (!valid_date(v)) return bn_cli_usage_error(cmd, "--since expects YYYY-MM-DD, got '%s'", v);
            since = v;
        }
        else if (!strcmp(a, "--keys-db")) { if (!(v = bn_cli_value(cmd, argc, argv, &i))) return 2; db_path = v; }
        else if (!strcmp(a, "--json")) json = true;
        else return bn_cli_usage_error(cmd, "unknown option '%s'", a);
    }
    bn_keydb *db = NULL;
    if (bn_keydb_open(db_path, false, &db)) return bn_cli_fail("usage");
    bn_usage_row *rows = NULL;
    size_t n = 0;
    int rc = 0;
    if (bn_usage_query(db, key, since, &rows, &n)) rc = bn_cli_fail("usage");
    else if (json) {
        printf("[");
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"key\":\"", i ? "," : "");
            for (const char *p = rows[i].name; *p; p++) {
                if (*p == '"' || *p == '\\') printf("\\%c", *p);
                else if ((unsigned char)*p < 0x20) printf("\\u%04x", (unsigned char)*p);
                else putchar(*p);
            }
            printf("\",\"day\":\"%s\",\"requests\":%lld,\"prompt_tokens\":%lld,\"completion_tokens\":%lld}", rows[i].day,
                   (long long)rows[i].requests, (long long)rows[i].prompt_tokens, (long long)rows[i].completion_tokens);
        }
        printf("]\n");
    } else {
        long long tr = 0, tp = 0, tc = 0;
        printf("%-10s  %-24s %10s %14s %18s\n", "DAY", "KEY", "REQUESTS", "PROMPT_TOKENS", "COMPLETION_TOKENS");
        for (size_t i = 0; i < n; i++) {
            printf("%-10s  %-24s %10lld %14lld %18lld\n", rows[i].day, rows[i].name, (long long)rows[i].requests,
                   (long long)rows[i].prompt_tokens, (long long)rows[i].completion_tokens);
            tr += rows[i].requests;
            tp += rows[i].prompt_tokens;
            tc += rows[i].completion_tokens;
        }
        printf("%-10s  %-24s %10lld %14lld %18lld\n", "total", "", tr, tp, tc);
    }
    free(rows);
    bn_keydb_close(db);
    return rc;
}
