/* ratelimit.c — per-key requests-per-minute and tokens-per-minute limits
 * over a sliding 60-second window, kept in memory (a restart forgets the
 * window, which only ever errs towards admitting). */
#include "server/server.h"

#include <stdlib.h>
#include <string.h>

#define WINDOW_S 60.0

typedef struct rl_event {
    double  t;
    int64_t tokens;   /* 0 for a request admission                           */
} rl_event;

typedef struct rl_key {
    int64_t   id;
    rl_event *req, *tok;   /* rings of events inside the window                */
    size_t    n_req, cap_req, n_tok, cap_tok;
} rl_key;

struct bn_ratelimit {
    pthread_mutex_t mu;
    rl_key         *keys;
    size_t          n, cap;
};

bn_status bn_ratelimit_create(bn_ratelimit **out) {
    bn_ratelimit *rl = bn_calloc(1, sizeof *rl);
    if (!rl) return BN_ERR_NOMEM;
    pthread_mutex_init(&rl->mu, NULL);
    *out = rl;
    return BN_OK;
}

void bn_ratelimit_free(bn_ratelimit *rl) {
    if (!rl) return;
    for (size_t i = 0; i < rl->n; i++) {
        free(rl->keys[i].req);
        free(rl->keys[i].tok);
    }
    free(rl->keys);
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

static rl_key *find_key(bn_ratelimit *rl, int64_t id) {
    for (size_t i = 0; i < rl->n; i++)
        if (rl->keys[i].id == id) return &rl->keys[i];
    if (rl->n == rl->cap) {
        size_t cap = rl->cap ? rl->cap * 2 : 8;
        rl_key *k = realloc(rl->keys, sizeof *k * cap);
        if (!k) return NULL;
        rl->keys = k;
        rl->cap = cap;
    }
    rl_key *k = &rl->keys[rl->n++];
    memset(k, 0, sizeof *k);
    k->id = id;
    return k;
}

/* Drop events older than the window (arrays are in time order). */
static void expire(rl_event *v, size_t *n, double now) {
    size_t k = 0;
    while (k < *n && v[k].t <= now - WINDOW_S) k++;
    if (k) {
        memmove(v, v + k, sizeof *v * (*n - k));
        *n -= k;
    }
}

static bool push(rl_event **v, size_t *n, size_t *cap, double t, int64_t tokens) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        rl_event *e = realloc(*v, sizeof *e * c);
        if (!e) return false;
        *v = e;
        *cap = c;
    }
    (*v)[(*n)++] = (rl_event){t, tokens};
    return true;
}

static int wait_s(double oldest, double now) {
    double w = oldest + WINDOW_S - now;
    int s = (int)w + 1;
    return s < 1 ? 1 : s;
}

bool bn_ratelimit_admit(bn_ratelimit *rl, const bn_key_info *key, double now, int *retry_after) {
    *retry_after = 0;
    if (!rl || (key->rpm <= 0 && key->tpm <= 0)) return true;
    bool ok = true;
    pthread_mutex_lock(&rl->mu);
    rl_key *k = find_key(rl, key->id);
    if (!k) goto out; /* out of memory: do not punish the client */
    expire(k->req, &k->n_req, now);
    expire(k->tok, &k->n_tok, now);
    if (key->rpm > 0 && (int64_t)k->n_req >= key->rpm) {
        ok = false;
        *retry_after = wait_s(k->req[0].t, now);
        goto out;
    }
    if (key->tpm > 0) {
        /* the tokens already charged in the window; wait until enough expire */
        int64_t used = 0;
        for (size_t i = 0; i < k->n_tok; i++) used += k->tok[i].tokens;
        if (used >= key->tpm) {
            int64_t need = used - key->tpm + 1;
            size_t i = 0;
            while (i < k->n_tok && need > 0) need -= k->tok[i++].tokens;
            ok = false;
            *retry_after = wait_s(k->tok[i ? i - 1 : 0].t, now);
            goto out;
        }
    }
    if (key->rpm > 0) push(&k->req, &k->n_req, &k->cap_req, now, 0);
out:
    pthread_mutex_unlock(&rl->mu);
    return ok;
}

void bn_ratelimit_charge(bn_ratelimit *rl, int64_t key_id, int64_t tokens, double now) {
    if (!rl || tokens <= 0) return;
    pthread_mutex_lock(&rl->mu);
    rl_key *k = find_key(rl, key_id);
    if (k) {
        expire(k->tok, &k->n_tok, now);
        push(&k->tok, &k->n_tok, &k->cap_tok, now, tokens);
    }
    pthread_mutex_unlock(&rl->mu);
}
