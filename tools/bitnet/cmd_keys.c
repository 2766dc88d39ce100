/* cmd_keys.c — `bitnet keys create|list|revoke`: API keys of `bitnet serve`.
 * A key is printed once at creation; the database keeps only its SHA-256. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "server/server.h"

#define DEFAULT_DB "bitnet-keys.db"

static void help(FILE *f) {
    fprintf(f,
            "usage: bitnet keys create --name NAME [--rpm N] [--tpm N] [--keys-db FILE]\n"
            "       bitnet keys list [--json] [--keys-db FILE]\n"
            "       bitnet keys revoke NAME [--keys-db FILE]\n\n"
            "API keys for 'bitnet serve --keys-db FILE' (default file: " DEFAULT_DB ").\n"
            "create prints the new key once; only its SHA-256 is stored.\n"
            "  --rpm N   requests per minute (0: unlimited)\n"
            "  --tpm N   prompt + completion tokens per minute (0: unlimited)\n");
}

int bn_cmd_keys(int argc, char **argv) {
    const char *cmd = "keys";
    if (argc < 2 || bn_cli_is_help(argv[1])) {
        help(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *name = NULL, *db_path = DEFAULT_DB;
    long rpm = 0, tpm = 0;
    bool json = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        if (bn_cli_is_help(a)) { help(stdout); return 0; }
        if (!strcmp(a, "--name")) { if (!(v = bn_cli_value(cmd, argc, argv, &i))) return 2; name = v; }
        else if (!strcmp(a, "--keys-db")) { if (!(v = bn_cli_value(cmd, argc, argv, &i))) return 2; db_path = v; }
        else if (!strcmp(a, "--rpm")) { if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 0, 1L << 40, &rpm)) return 2; }
        else if (!strcmp(a, "--tpm")) { if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 0, 1L << 40, &tpm)) return 2; }
        else if (!strcmp(a, "--json")) json = true;
        else if (a[0] != '-' && !name) name = a;
        else return bn_cli_usage_error(cmd, "unknown option '%s'", a);
    }
    bool create = !strcmp(sub, "create");
    if (!create && strcmp(sub, "list") && strcmp(sub, "revoke"))
        return bn_cli_usage_error(cmd, "unknown sub-command '%s' (create | list | revoke)", sub);
    if ((create || !strcmp(sub, "revoke")) && !name) return bn_cli_usage_error(cmd, "%s needs a key name", sub);
    bn_keydb *db = NULL;
    if (bn_keydb_open(db_path, create, &db)) return bn_cli_fail("keys");
    int rc = 0;
    if (create) {
        char key[72];
        if (bn_keydb_create(db, name, rpm, tpm, key)) rc = bn_cli_fail("keys create");
        else {
            printf("%s\n", key);
            fprintf(stderr, "bitnet keys: created key '%s' in %s; it is shown only now: store it safely\n", name, db_path);
            memset(key, 0, sizeof key);
        }
    } else if (!strcmp(sub, "revoke")) {
        if (bn_keydb_revoke(db, name)) rc = bn_cli_fail("keys revoke");
        else fprintf(stderr, "bitnet keys: revoked '%s'\n", name);
    } else {
        bn_key_info *k = NULL;
        size_t n = 0;
        if (bn_keydb_list(db, &k, &n)) rc = bn_cli_fail("keys list");
        else if (json) {
            printf("[");
            for (size_t i = 0; i < n; i++) {
                printf("%s{\"name\":\"", i ? "," : "");
                for (const char *p = k[i].name; *p; p++) {
                    if (*p == '"' || *p == '\\') printf("\\%c", *p);
                    else if ((unsigned char)*p < 0x20) printf("\\u%04x", (unsigned char)*p);
                    else putchar(*p);
                }
                printf("\",\"prefix\":\"%s\",\"rpm\":%lld,\"tpm\":%lld,\"created\":%lld,\"revoked\":%s}", k[i].prefix,
                       (long long)k[i].rpm, (long long)k[i].tpm, (long long)k[i].created, k[i].revoked ? "true" : "false");
            }
            printf("]\n");
        } else {
            printf("%-24s %-12s %8s %10s %-20s %s\n", "NAME", "PREFIX", "RPM", "TPM", "CREATED (UTC)", "STATUS");
            for (size_t i = 0; i < n; i++) {
                char when[32];
                time_t t = (time_t)k[i].created;
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
                printf("%-24s %-12s %8lld %10lld %-20s %s\n", k[i].name, k[i].prefix, (long long)k[i].rpm,
                       (long long)k[i].tpm, when, k[i].revoked ? "revoked" : "active");
            }
        }
        free(k);
    }
    bn_keydb_close(db);
    return rc;
}
