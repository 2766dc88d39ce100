/* usage.c — usage metering per key and UTC day. Each finished request is
 * one UPSERT committed on its own (autocommit = one transaction), so once
 * the response is sent its usage is on disk; a killed server loses nothing
 * that finished. */
#include "server/keydb_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bn_status bn_usage_record(bn_keydb *db, int64_t key_id, int64_t prompt_tokens, int64_t completion_tokens) {
    if (!db) return BN_OK;
    bn_status st = BN_OK;
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db->db,
                           "INSERT INTO usage(key_id, day, requests, prompt_tokens, completion_tokens) "
                           "VALUES(?, strftime('%Y-%m-%d','now'), 1, ?, ?) "
                           "ON CONFLICT(key_id, day) DO UPDATE SET requests = requests + 1, "
                           "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
                           "completion_tokens = completion_tokens + excluded.completion_tokens",
                           -1, &q, NULL) != SQLITE_OK) {
        st = bn_keydb_sqlfail(db, "record usage");
    } else {
        sqlite3_bind_int64(q, 1, key_id);
        sqlite3_bind_int64(q, 2, prompt_tokens);
        sqlite3_bind_int64(q, 3, completion_tokens);
        if (sqlite3_step(q) != SQLITE_DONE) st = bn_keydb_sqlfail(db, "record usage");
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&db->mu);
    return st;
}

bn_status bn_usage_query(bn_keydb *db, const char *name, const char *since, bn_usage_row **rows, size_t *n) {
    *rows = NULL;
    *n = 0;
    bn_status st = BN_OK;
    size_t cap = 0;
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db->db,
                           "SELECT k.name, u.day, u.requests, u.prompt_tokens, u.completion_tokens "
                           "FROM usage u JOIN keys k ON k.id = u.key_id "
                           "WHERE (?1 IS NULL OR k.name = ?1) AND (?2 IS NULL OR u.day >= ?2) "
                           "ORDER BY u.day, k.name",
                           -1, &q, NULL) != SQLITE_OK) {
        st = bn_keydb_sqlfail(db, "query usage");
        goto out;
    }
    if (name) sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
    if (since) sqlite3_bind_text(q, 2, since, -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            bn_usage_row *v = realloc(*rows, sizeof *v * cap);
            if (!v) { st = bn_fail(BN_ERR_NOMEM, "out of memory"); goto out; }
            *rows = v;
        }
        bn_usage_row *r = &(*rows)[(*n)++];
        memset(r, 0, sizeof *r);
        const unsigned char *k = sqlite3_column_text(q, 0), *d = sqlite3_column_text(q, 1);
        snprintf(r->name, sizeof r->name, "%s", k ? (const char *)k : "");
        snprintf(r->day, sizeof r->day, "%s", d ? (const char *)d : "");
        r->requests = sqlite3_column_int64(q, 2);
        r->prompt_tokens = sqlite3_column_int64(q, 3);
        r->completion_tokens = sqlite3_column_int64(q, 4);
    }
    if (rc != SQLITE_DONE) st = bn_keydb_sqlfail(db, "query usage");
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(&db->mu);
    if (st) { free(*rows); *rows = NULL; *n = 0; }
    return st;
}
