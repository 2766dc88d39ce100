/* keys.c — the API-key database (SQLite, WAL journal). A key is shown once
 * when created; only its SHA-256 is stored, so a leaked database does not
 * leak usable keys. Usage rows live in the same file (usage.c). */
#include "server/server.h"
#include "server/keydb_internal.h"
#include "hub/hub.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const schema =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', 'bitnet-keys-1');"
    "CREATE TABLE IF NOT EXISTS keys("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  hash TEXT NOT NULL UNIQUE,"   /* sha256 hex of the whole key */
    "  prefix TEXT NOT NULL,"
    "  rpm INTEGER NOT NULL DEFAULT 0,"
    "  tpm INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL,"
    "  revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS usage("
    "  key_id INTEGER NOT NULL REFERENCES keys(id),"
    "  day TEXT NOT NULL,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(key_id, day));";

bn_status bn_keydb_sqlfail(bn_keydb *db, const char *what) {
    return bn_fail(BN_ERR_IO, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->db));
}

bn_status bn_keydb_open(const char *path, bool create, bn_keydb **out) {
    if (!path || !out) return bn_fail(BN_ERR_INVALID_ARG, "keys database: path is required");
    *out = NULL;
    if (!create && access(path, F_OK) != 0)
        return bn_fail(BN_ERR_NOT_FOUND, "%s: no keys database (create one with 'bitnet keys create')", path);
    bn_keydb *db = bn_calloc(1, sizeof *db);
    if (!db) return BN_ERR_NOMEM;
    db->path = bn_strdup(path);
    pthread_mutex_init(&db->mu, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    bn_status st = BN_OK;
    if (!db->path) { st = BN_ERR_NOMEM; goto fail; }
    if (sqlite3_open_v2(path, &db->db, flags, NULL) != SQLITE_OK) {
        st = bn_fail(BN_ERR_IO, "%s: cannot open the keys database: %s", path,
                     db->db ? sqlite3_errmsg(db->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(db->db, 5000);
    /* WAL: readers (bitnet usage, keys list) never block the server; with
     * synchronous=NORMAL a commit survives a killed process (the WAL is in
     * the OS before COMMIT returns); FULL adds an fsync per commit so it
     * also survives power loss — we pay that, it is one per request. */
    if (sqlite3_exec(db->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        st = bn_keydb_sqlfail(db, "cannot set up the schema");
        goto fail;
    }
    *out = db;
    return BN_OK;
fail:
    bn_keydb_close(db);
    return st;
}

void bn_keydb_close(bn_keydb *db) {
    if (!db) return;
    if (db->db) sqlite3_close(db->db);
    pthread_mutex_destroy(&db->mu);
    free(db->path);
    free(db);
}

static void hash_key(const char *key, char hex[65]) {
    bn_sha256 h;
    uint8_t d[32];
    bn_sha256_init(&h);
    bn_sha256_update(&h, key, strlen(key));
    bn_sha256_final(&h, d);
    bn_sha256_hex(d, hex);
}

static bn_status random_bytes(uint8_t *buf, size_t n) {
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_fail(BN_ERR_IO, "/dev/urandom: %s", strerror(errno));
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            close(fd);
            return bn_fail(BN_ERR_IO, "/dev/urandom: short read");
        }
        got += (size_t)k;
    }
    close(fd);
    return BN_OK;
}

bn_status bn_keydb_create(bn_keydb *db, const char *name, int64_t rpm, int64_t tpm, char key_out[72]) {
    if (!name || !*name || strlen(name) >= sizeof ((bn_key_info *)0)->name)
        return bn_fail(BN_ERR_INVALID_ARG, "a key needs a name of 1 to 127 characters");
    if (rpm < 0 || tpm < 0) return bn_fail(BN_ERR_INVALID_ARG, "rate limits must not be negative");
    uint8_t raw[32];
    bn_status st = random_bytes(raw, sizeof raw);
    if (st) return st;
    char key[72] = "bn-";
    for (size_t i = 0; i < sizeof raw; i++) snprintf(key + 3 + 2 * i, 3, "%02x", raw[i]);
    char hex[65], prefix[16];
    hash_key(key, hex);
    snprintf(prefix, sizeof prefix, "%.10s", key);
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db->db, "INSERT INTO keys(name, hash, prefix, rpm, tpm, created) VALUES(?,?,?,?,?,strftime('%s','now'))",
                           -1, &q, NULL) != SQLITE_OK) {
        st = bn_keydb_sqlfail(db, "insert");
    } else {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, hex, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 3, prefix, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 4, rpm);
        sqlite3_bind_int64(q, 5, tpm);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_CONSTRAINT)
            st = bn_fail(BN_ERR_INVALID_ARG, "a key named '%s' already exists (revoked keys keep their name)", name);
        else if (rc != SQLITE_DONE)
            st = bn_keydb_sqlfail(db, "insert");
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&db->mu);
    if (!st) memcpy(key_out, key, sizeof key);
    memset(key, 0, sizeof key);
    return st;
}

static void row_to_info(sqlite3_stmt *q, bn_key_info *k) {
    memset(k, 0, sizeof *k);
    k->id = sqlite3_column_int64(q, 0);
    const unsigned char *n = sqlite3_column_text(q, 1), *p = sqlite3_column_text(q, 2);
    snprintf(k->name, sizeof k->name, "%s", n ? (const char *)n : "");
    snprintf(k->prefix, sizeof k->prefix, "%s", p ? (const char *)p : "");
    k->rpm = sqlite3_column_int64(q, 3);
    k->tpm = sqlite3_column_int64(q, 4);
    k->created = sqlite3_column_int64(q, 5);
    k->revoked = sqlite3_column_int64(q, 6) != 0;
}

#define KEY_COLS "id, name, prefix, rpm, tpm, created, revoked"

bn_status bn_keydb_list(bn_keydb *db, bn_key_info **out, size_t *n) {
    *out = NULL;
    *n = 0;
    bn_status st = BN_OK;
    size_t cap = 0;
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db->db, "SELECT " KEY_COLS " FROM keys ORDER BY id", -1, &q, NULL) != SQLITE_OK) {
        st = bn_keydb_sqlfail(db, "list");
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            bn_key_info *v = realloc(*out, sizeof *v * cap);
            if (!v) { st = bn_fail(BN_ERR_NOMEM, "out of memory"); goto out; }
            *out = v;
        }
        row_to_info(q, &(*out)[(*n)++]);
    }
    if (rc != SQLITE_DONE) st = bn_keydb_sqlfail(db, "list");
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(&db->mu);
    if (st) { free(*out); *out = NULL; *n = 0; }
    return st;
}

bn_status bn_keydb_revoke(bn_keydb *db, const char *name) {
    bn_status st = BN_OK;
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db->db, "UPDATE keys SET revoked = 1 WHERE name = ?", -1, &q, NULL) != SQLITE_OK) {
        st = bn_keydb_sqlfail(db, "revoke");
    } else {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(q) != SQLITE_DONE) st = bn_keydb_sqlfail(db, "revoke");
        else if (sqlite3_changes(db->db) == 0) st = bn_fail(BN_ERR_NOT_FOUND, "no key named '%s'", name);
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&db->mu);
    return st;
}

bn_status bn_keydb_lookup(bn_keydb *db, const char *key, bn_key_info *out, bool *found) {
    *found = false;
    if (!key || strlen(key) > 256) return BN_OK;
    char hex[65];
    hash_key(key, hex);
    bn_status st = BN_OK;
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db->db, "SELECT " KEY_COLS " FROM keys WHERE hash = ? AND revoked = 0", -1, &q,
                           NULL) != SQLITE_OK) {
        st = bn_keydb_sqlfail(db, "lookup");
    } else {
        sqlite3_bind_text(q, 1, hex, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            row_to_info(q, out);
            *found = true;
        } else if (rc != SQLITE_DONE) {
            st = bn_keydb_sqlfail(db, "lookup");
        }
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&db->mu);
    return st;
}
