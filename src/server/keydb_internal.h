/* keydb_internal.h — the keys database handle, shared by keys.c and usage.c. */
#ifndef BN_KEYDB_INTERNAL_H
#define BN_KEYDB_INTERNAL_H

#include "server/server.h"

#include <sqlite3.h>

struct bn_keydb {
    sqlite3        *db;
    char           *path;
    pthread_mutex_t mu;   /* one statement at a time on the shared connection */
};

/* bn_fail with SQLite's message, prefixed by the file and what failed. */
bn_status bn_keydb_sqlfail(bn_keydb *db, const char *what);

#endif
