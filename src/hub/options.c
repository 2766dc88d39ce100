/* options.c — hub options: the one place the environment is read, and the
 * resolution of the options into a session (endpoint, cache folder). */
#include "hub/hub.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BN_HUB_DEFAULT_ENDPOINT "https://huggingface.co"

static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

bn_hub_options bn_hub_default_options(void) {
    bn_hub_options o;
    memset(&o, 0, sizeof o);
    o.endpoint = env_nonempty("HF_ENDPOINT");
    o.token = env_nonempty("HF_TOKEN");
    o.token_path = env_nonempty("HF_TOKEN_PATH");
    o.cache_dir = env_nonempty("HF_HUB_CACHE");
    o.hf_home = env_nonempty("HF_HOME");
    o.xdg_cache_home = env_nonempty("XDG_CACHE_HOME");
    o.home = env_nonempty("HOME");
    const char *off = env_nonempty("HF_HUB_OFFLINE");
    /* the same truthy spellings huggingface_hub accepts */
    o.offline = off && (!strcmp(off, "1") || !strcasecmp(off, "on") || !strcasecmp(off, "yes") ||
                        !strcasecmp(off, "true"));
    o.progress = true;
    o.retries = 2;
    o.size_cap = 0;
    return o;
}

bn_status bn_hub_cache_dir(const bn_hub_options *o, char **dir) {
    if (!o || !dir) return bn_fail(BN_ERR_INVALID_ARG, "bn_hub_cache_dir: NULL argument");
    char *d;
    if (o->cache_dir && *o->cache_dir) d = bn_strdup(o->cache_dir);
    else if (o->hf_home && *o->hf_home) d = bn_hub_fmt("%s/hub", o->hf_home);
    else if (o->xdg_cache_home && *o->xdg_cache_home) d = bn_hub_fmt("%s/huggingface/hub", o->xdg_cache_home);
    else if (o->home && *o->home) d = bn_hub_fmt("%s/.cache/huggingface/hub", o->home);
    else
        return bn_fail(BN_ERR_INVALID_ARG,
                       "no model cache folder: set HF_HOME or HF_HUB_CACHE (or pass --cache-dir)");
    if (!d) return BN_ERR_NOMEM;
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/') d[--n] = '\0';
    *dir = d;
    return BN_OK;
}

/* The token `hf auth login` saved ({HF_HOME}/token); absent is fine. */
static void read_token_file(bn_hub_session *s, const bn_hub_options *o) {
    char *path = NULL;
    if (o->token_path && *o->token_path) path = bn_strdup(o->token_path);
    else if (o->hf_home && *o->hf_home) path = bn_hub_fmt("%s/token", o->hf_home);
    else if (o->xdg_cache_home && *o->xdg_cache_home) path = bn_hub_fmt("%s/huggingface/token", o->xdg_cache_home);
    else if (o->home && *o->home) path = bn_hub_fmt("%s/.cache/huggingface/token", o->home);
    char *buf = NULL;
    size_t n = 0;
    if (path && bn_hub_exists(path) && bn_read_file(path, 4096, &buf, &n) == BN_OK) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = '\0';
        /* a header value: refuse anything that could smuggle another header */
        bool ok = n > 0;
        for (size_t i = 0; i < n && ok; i++) ok = buf[i] > 0x20 && buf[i] < 0x7f;
        if (ok) { s->token_buf = buf; s->token = buf; buf = NULL; }
    }
    free(buf);
    free(path);
    bn_error_clear();
}

bn_status bn_hub_session_init(bn_hub_session *s, const bn_hub_options *o) {
    memset(s, 0, sizeof *s);
    bn_hub_options def;
    if (!o) {
        /* NULL options: plain defaults without environment (the library reads
         * none); only an explicit cache would make this usable, so fail. */
        memset(&def, 0, sizeof def);
        def.retries = 2;
        o = &def;
    }
    const char *ep = o->endpoint && *o->endpoint ? o->endpoint : BN_HUB_DEFAULT_ENDPOINT;
    if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
        return bn_fail(BN_ERR_INVALID_ARG, "hub endpoint must start with http:// or https://, got '%s'", ep);
    s->endpoint = bn_strdup(ep);
    if (!s->endpoint) return BN_ERR_NOMEM;
    size_t n = strlen(s->endpoint);
    while (n > 0 && s->endpoint[n - 1] == '/') s->endpoint[--n] = '\0';
    bn_status st = bn_hub_cache_dir(o, &s->cache);
    if (st) { bn_hub_session_free(s); return st; }
    s->token = o->token && *o->token ? o->token : NULL;
    for (const char *c = s->token; c && *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            bn_hub_session_free(s);
            return bn_fail(BN_ERR_INVALID_ARG, "the hub token (HF_TOKEN) contains spaces or control characters");
        }
    if (!s->token) read_token_file(s, o);
    s->offline = o->offline;
    s->progress = o->progress && isatty(STDERR_FILENO);
    s->retries = o->retries < 0 ? 0 : o->retries > 100 ? 100 : o->retries;
    s->size_cap = o->size_cap;
    return BN_OK;
}

void bn_hub_session_free(bn_hub_session *s) {
    free(s->endpoint);
    free(s->cache);
    free(s->token_buf);
    memset(s, 0, sizeof *s);
}
