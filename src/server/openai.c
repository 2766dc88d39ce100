/* openai.c — JSON <-> requests for the OpenAI-compatible endpoints. Every
 * field is type- and range-checked; a bad one gives an OpenAI-style error
 * naming the parameter. Prompts are tokenized here (on the connection's
 * thread), so the scheduler only ever sees ids that fit the context. */
#include "server/server.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STOP 4
#define MAX_STOP_LEN 256
#define MAX_LOGIT_BIAS 1024
#define MAX_MESSAGES 4096

void bn_oai_set_error(bn_oai_error *e, int http, const char *type, const char *code,
                      const char *param, const char *fmt, ...) {
    e->http = http;
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* A 400 naming a parameter; returns false so parsers can `return BAD(...)`. */
static bool bad_req(bn_oai_error *err, const char *param, const char *code, const char *fmt, ...) BN_PRINTF(4, 5);
static bool bad_req(bn_oai_error *err, const char *param, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bn_oai_set_error(err, 400, "invalid_request_error", code, param, "%s", msg);
    return false;
}
#define BAD(param, code, ...) bad_req(err, param, code, __VA_ARGS__)

static char *print_free(cJSON *j) {
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return s;
}

char *bn_oai_error_json(const bn_oai_error *e) {
    cJSON *root = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(root, "error");
    if (!o) { cJSON_Delete(root); return NULL; }
    char *msg = NULL;
    size_t ml;
    /* messages may quote request text: keep the JSON valid UTF-8 */
    if (bn_srv_utf8_sanitize(e->message, strlen(e->message), &msg, &ml)) msg = NULL;
    cJSON_AddStringToObject(o, "message", msg ? msg : "error");
    free(msg);
    cJSON_AddStringToObject(o, "type", e->type);
    if (e->param[0]) cJSON_AddStringToObject(o, "param", e->param);
    else cJSON_AddNullToObject(o, "param");
    if (e->code[0]) cJSON_AddStringToObject(o, "code", e->code);
    else cJSON_AddNullToObject(o, "code");
    return print_free(root);
}

const char *bn_oai_finish_name(bn_finish_reason f) {
    return f == BN_FINISH_LENGTH ? "length" : "stop";
}

/* ---- field readers: absent or null -> keep the default */

static bool get_number(const cJSON *root, const char *name, double lo, double hi, double *v, bn_oai_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!j || cJSON_IsNull(j)) return true;
    if (!cJSON_IsNumber(j)) return BAD(name, "invalid_type", "'%s' must be a number", name);
    if (!(j->valuedouble >= lo && j->valuedouble <= hi))
        return BAD(name, "invalid_value", "'%s' must be between %g and %g, got %g", name, lo, hi, j->valuedouble);
    *v = j->valuedouble;
    return true;
}

static bool get_int(const cJSON *root, const char *name, double lo, double hi, int64_t *v, bn_oai_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!j || cJSON_IsNull(j)) return true;
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return BAD(name, "invalid_type", "'%s' must be an integer", name);
    if (!(j->valuedouble >= lo && j->valuedouble <= hi))
        return BAD(name, "invalid_value", "'%s' must be between %.0f and %.0f, got %.0f", name, lo, hi, j->valuedouble);
    *v = (int64_t)j->valuedouble;
    return true;
}

static bool get_bool(const cJSON *root, const char *name, bool *v, bn_oai_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!j || cJSON_IsNull(j)) return true;
    if (!cJSON_IsBool(j)) return BAD(name, "invalid_type", "'%s' must be a boolean", name);
    *v = cJSON_IsTrue(j);
    return true;
}

/* ---- prompt building */

static bool tokenize_text(const bn_oai_ctx *c, const char *text, bool add_bos, int32_t **ids, size_t *n,
                          bn_oai_error *err) {
    if (bn_tokenize(c->tok, text, strlen(text), add_bos && bn_tokenizer_bos(c->tok) >= 0, true, ids, n)) {
        bn_oai_set_error(err, 500, "server_error", "tokenizer_failed", NULL, "cannot tokenize: %s", bn_last_error());
        return false;
    }
    return true;
}

static bool completion_prompt(const bn_oai_ctx *c, const cJSON *root, bn_srv_req *r, bn_oai_error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p || cJSON_IsNull(p)) return BAD("prompt", "missing_required_parameter", "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0); /* ["text"]: one prompt */
    size_t n = 0;
    int32_t *ids = NULL;
    if (cJSON_IsString(p)) {
        if (!tokenize_text(c, p->valuestring, true, &ids, &n, err)) return false;
    } else if (cJSON_IsArray(p)) {
        int m = cJSON_GetArraySize(p);
        if (m > 0 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
            return BAD("prompt", "unsupported_value", "only one prompt per request is supported");
        if (m > c->n_ctx)
            return BAD("prompt", "context_length_exceeded",
                       "the prompt has %d tokens but the context holds %d: shorten the prompt", m, (int)c->n_ctx);
        ids = malloc(sizeof *ids * (size_t)(m > 0 ? m : 1));
        if (!ids) { bn_oai_set_error(err, 500, "server_error", NULL, NULL, "out of memory"); return false; }
        const cJSON *it;
        cJSON_ArrayForEach(it, p) {
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
                it->valuedouble >= c->n_vocab) {
                free(ids);
                return BAD("prompt", "invalid_value", "'prompt' must be a string or an array of token ids in [0, %d)",
                           (int)c->n_vocab);
            }
            ids[n++] = (int32_t)it->valuedouble;
        }
    } else {
        return BAD("prompt", "invalid_type", "'prompt' must be a string or an array of token ids");
    }
    r->prompt = ids;
    r->n_prompt = (int32_t)n;
    return true;
}

/* "content": a string or an array of {"type": "text", "text": ...} parts. */
static bool message_text(const cJSON *content, char **out, bn_oai_error *err) {
    if (cJSON_IsString(content)) {
        *out = bn_strdup(content->valuestring);
        return *out != NULL || BAD("messages", "server_error", "out of memory");
    }
    if (!cJSON_IsArray(content))
        return BAD("messages", "invalid_type", "a message's 'content' must be a string or an array of text parts");
    size_t len = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx))
            return BAD("messages", "invalid_value", "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
        len += strlen(tx->valuestring);
    }
    char *s = malloc(len + 1);
    if (!s) return BAD("messages", "server_error", "out of memory");
    size_t k = 0;
    cJSON_ArrayForEach(part, content) {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t m = strlen(t);
        memcpy(s + k, t, m);
        k += m;
    }
    s[k] = '\0';
    *out = s;
    return true;
}

static bool chat_prompt(const bn_oai_ctx *c, const cJSON *root, bn_srv_req *r, bn_oai_error *err) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!msgs || cJSON_IsNull(msgs)) return BAD("messages", "missing_required_parameter", "'messages' is required");
    if (!cJSON_IsArray(msgs)) return BAD("messages", "invalid_type", "'messages' must be an array");
    int n = cJSON_GetArraySize(msgs);
    if (n < 1) return BAD("messages", "invalid_value", "'messages' must hold at least one message");
    if (n > MAX_MESSAGES) return BAD("messages", "invalid_value", "at most %d messages", MAX_MESSAGES);
    bn_chat_message *cm = calloc((size_t)n, sizeof *cm);
    char **texts = calloc((size_t)n, sizeof *texts);
    bool ok = cm && texts;
    if (!ok) bn_oai_set_error(err, 500, "server_error", NULL, NULL, "out of memory");
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        if (!ok) break;
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m)) { ok = BAD("messages", "invalid_type", "messages[%d] must be an object", i); break; }
        if (!cJSON_IsString(role)) { ok = BAD("messages", "invalid_type", "messages[%d].role must be a string", i); break; }
        const char *rl = role->valuestring;
        if (!strcmp(rl, "developer")) rl = "system";
        if (strcmp(rl, "system") && strcmp(rl, "user") && strcmp(rl, "assistant")) {
            ok = BAD("messages", "invalid_value", "messages[%d].role must be system, developer, user or assistant", i);
            break;
        }
        if (!content || cJSON_IsNull(content)) {
            ok = BAD("messages", "missing_required_parameter", "messages[%d].content is required", i);
            break;
        }
        if (!(ok = message_text(content, &texts[i], err))) break;
        cm[i].role = rl;
        cm[i].content = texts[i];
        i++;
    }
    if (ok) {
        size_t nid = 0;
        if (bn_chat_render_ids(c->tok, c->chat_template, cm, (size_t)n, true, &r->prompt, &nid)) {
            bn_oai_set_error(err, 500, "server_error", "template_failed", NULL, "cannot render the chat: %s",
                             bn_last_error());
            ok = false;
        } else {
            r->n_prompt = (int32_t)nid;
        }
    }
    if (texts)
        for (int k = 0; k < n; k++) free(texts[k]);
    free(texts);
    free(cm);
    return ok;
}

static bool parse_stop(const cJSON *root, bn_srv_req *r, bn_oai_error *err) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!s || cJSON_IsNull(s)) return true;
    int n = cJSON_IsString(s) ? 1 : cJSON_IsArray(s) ? cJSON_GetArraySize(s) : -1;
    if (n < 0) return BAD("stop", "invalid_type", "'stop' must be a string or an array of strings");
    if (n > MAX_STOP) return BAD("stop", "invalid_value", "'stop' holds at most %d strings", MAX_STOP);
    r->stop = calloc((size_t)(n ? n : 1), sizeof *r->stop);
    if (!r->stop) return BAD("stop", "server_error", "out of memory");
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_IsString(s) ? s : cJSON_GetArrayItem(s, i);
        if (!cJSON_IsString(it)) return BAD("stop", "invalid_type", "'stop' must be a string or an array of strings");
        size_t l = strlen(it->valuestring);
        if (l == 0 || l > MAX_STOP_LEN)
            return BAD("stop", "invalid_value", "stop strings must have 1 to %d bytes", MAX_STOP_LEN);
        if (!(r->stop[r->n_stop] = bn_strdup(it->valuestring))) return BAD("stop", "server_error", "out of memory");
        r->n_stop++;
    }
    return true;
}

static bool parse_logit_bias(const bn_oai_ctx *c, const cJSON *root, bn_srv_req *r, bn_oai_error *err) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "logit_bias");
    if (!b || cJSON_IsNull(b)) return true;
    if (!cJSON_IsObject(b)) return BAD("logit_bias", "invalid_type", "'logit_bias' must be an object of token id -> bias");
    int n = cJSON_GetArraySize(b);
    if (n > MAX_LOGIT_BIAS) return BAD("logit_bias", "invalid_value", "'logit_bias' holds at most %d entries", MAX_LOGIT_BIAS);
    r->bias = calloc((size_t)(n ? n : 1), sizeof *r->bias);
    if (!r->bias) return BAD("logit_bias", "server_error", "out of memory");
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, b) {
        char *end;
        long id = strtol(it->string, &end, 10);
        if (end == it->string || *end || id < 0 || id >= c->n_vocab)
            return BAD("logit_bias", "invalid_value", "logit_bias key '%s' is not a token id in [0, %d)", it->string,
                       (int)c->n_vocab);
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= -100 && it->valuedouble <= 100))
            return BAD("logit_bias", "invalid_value", "logit_bias values must be numbers in [-100, 100]");
        r->bias[k].token = (int32_t)id;
        /* OpenAI: -100 bans the token, +100 makes it (nearly) certain */
        r->bias[k].bias = it->valuedouble <= -100 ? -INFINITY : (float)it->valuedouble;
        k++;
    }
    r->sp.logit_bias = r->bias;
    r->sp.n_logit_bias = k;
    return true;
}

static uint64_t fresh_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
    x ^= (uint64_t)(uintptr_t)&ts;
    return x;
}

static void make_id(char *out, size_t n, const char *prefix) {
    uint64_t a = fresh_seed(), b = a * 0xBF58476D1CE4E5B9ull ^ (a >> 31);
    snprintf(out, n, "%s%016llx%08llx", prefix, (unsigned long long)a, (unsigned long long)(b & 0xffffffffu));
}

bool bn_oai_parse(const bn_oai_ctx *c, bn_oai_kind kind, const char *body, size_t len,
                  bn_oai_request *out, bn_oai_error *err) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    if (!bn_srv_utf8_valid(body, len))
        return BAD(NULL, "invalid_encoding", "the request body is not valid UTF-8");
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return BAD(NULL, "invalid_json", "the request body is not valid JSON");
    bool ok = false;
    bn_srv_req *r = NULL;
    if (!cJSON_IsObject(root)) { BAD(NULL, "invalid_type", "the request body must be a JSON object"); goto done; }

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!model || cJSON_IsNull(model)) { BAD("model", "missing_required_parameter", "'model' is required"); goto done; }
    if (!cJSON_IsString(model)) { BAD("model", "invalid_type", "'model' must be a string"); goto done; }
    if (strcmp(model->valuestring, c->model_name)) {
        bn_oai_set_error(err, 404, "invalid_request_error", "model_not_found", "model",
                         "the model '%s' does not exist; this server serves '%s'", model->valuestring, c->model_name);
        goto done;
    }

    r = out->req = bn_srv_req_new();
    if (!r) { bn_oai_set_error(err, 500, "server_error", NULL, NULL, "out of memory"); goto done; }
    /* OpenAI's defaults: temperature 1, top_p 1, no other truncation */
    r->sp.temperature = 1.0f;
    r->sp.top_k = 0;
    r->sp.top_p = 1.0f;
    r->sp.min_p = 0.0f;
    r->sp.repeat_penalty = 1.0f;
    r->sp.repeat_last_n = -1;
    r->sp.seed = fresh_seed();

    double temperature = 1, top_p = 1, presence = 0, frequency = 0;
    int64_t max_tokens = -1, seed = -1, n = 1, top_logprobs = 0;
    bool have_seed = false;
    if (!get_number(root, "temperature", 0, 2, &temperature, err) || !get_number(root, "top_p", 0, 1, &top_p, err) ||
        !get_number(root, "presence_penalty", -2, 2, &presence, err) ||
        !get_number(root, "frequency_penalty", -2, 2, &frequency, err) ||
        !get_int(root, "max_tokens", 1, 1e9, &max_tokens, err) ||
        !get_int(root, "max_completion_tokens", 1, 1e9, &max_tokens, err) ||
        !get_int(root, "n", 1, 1, &n, err) || !get_bool(root, "stream", &out->stream, err))
        goto done;
    const cJSON *sj = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (sj && !cJSON_IsNull(sj)) {
        if (!get_int(root, "seed", -9.2e18, 9.2e18, &seed, err)) goto done;
        have_seed = true;
    }
    if (top_p <= 0) { BAD("top_p", "invalid_value", "'top_p' must be greater than 0"); goto done; }
    r->sp.temperature = (float)temperature;
    r->sp.top_p = (float)top_p;
    r->sp.presence_penalty = (float)presence;
    r->sp.frequency_penalty = (float)frequency;
    if (have_seed) r->sp.seed = (uint64_t)seed;
    r->max_tokens = max_tokens > 0 ? (int32_t)(max_tokens > c->n_ctx ? c->n_ctx : max_tokens) : 0;
    if (kind == BN_OAI_COMPLETION && max_tokens < 0) r->max_tokens = 16; /* OpenAI's default for completions */

    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) { BAD("stream_options", "invalid_type", "'stream_options' must be an object"); goto done; }
        if (!out->stream) { BAD("stream_options", "invalid_value", "'stream_options' needs 'stream': true"); goto done; }
        if (!get_bool(so, "include_usage", &out->include_usage, err)) goto done;
    }
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
    if (user && !cJSON_IsNull(user)) {
        if (!cJSON_IsString(user)) { BAD("user", "invalid_type", "'user' must be a string"); goto done; }
        snprintf(out->user, sizeof out->user, "%s", user->valuestring);
    }
    /* logprobs: chat has a boolean + top_logprobs 0..20, completions an integer 0..5 */
    if (kind == BN_OAI_CHAT) {
        if (!get_bool(root, "logprobs", &out->logprobs, err) ||
            !get_int(root, "top_logprobs", 0, BN_MAX_TOP_LOGPROBS, &top_logprobs, err))
            goto done;
        const cJSON *tl = cJSON_GetObjectItemCaseSensitive(root, "top_logprobs");
        if (tl && !cJSON_IsNull(tl) && !out->logprobs) {
            BAD("top_logprobs", "invalid_value", "'top_logprobs' needs 'logprobs': true");
            goto done;
        }
    } else {
        const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
        if (lp && !cJSON_IsNull(lp)) {
            if (!get_int(root, "logprobs", 0, 5, &top_logprobs, err)) goto done;
            out->logprobs = true;
        }
    }
    out->top_logprobs = (int32_t)top_logprobs;
    r->keep_tokens = out->logprobs;
    r->n_top = out->logprobs ? out->top_logprobs : 0;

    if (!parse_stop(root, r, err) || !parse_logit_bias(c, root, r, err)) goto done;
    if (!(kind == BN_OAI_CHAT ? chat_prompt(c, root, r, err) : completion_prompt(c, root, r, err))) goto done;
    if (r->n_prompt <= 0) {
        BAD(kind == BN_OAI_CHAT ? "messages" : "prompt", "invalid_value", "the prompt is empty");
        goto done;
    }
    if (r->n_prompt > c->n_ctx) {
        BAD(kind == BN_OAI_CHAT ? "messages" : "prompt", "context_length_exceeded",
            "this model's context holds %d tokens but the prompt has %d: shorten it", (int)c->n_ctx, (int)r->n_prompt);
        goto done;
    }
    make_id(out->id, sizeof out->id, kind == BN_OAI_CHAT ? "chatcmpl-" : "cmpl-");
    out->created = (int64_t)time(NULL);
    ok = true;
done:
    cJSON_Delete(root);
    if (!ok) {
        bn_srv_req_release(out->req);
        out->req = NULL;
    }
    return ok;
}

void bn_oai_request_free(bn_oai_request *o) {
    if (!o) return;
    bn_srv_req_release(o->req);
    o->req = NULL;
}

/* ---- responses */

static cJSON *add_text(cJSON *obj, const char *name, const char *s, size_t n) {
    char *t = NULL;
    size_t tl;
    if (bn_srv_utf8_sanitize(s ? s : "", s ? n : 0, &t, &tl)) return NULL;
    /* cJSON strings end at a NUL, so a NUL byte in the text (a valid token:
     * byte 0 of a byte-level vocabulary) silently dropped everything after
     * it (found by fuzz_openai); it becomes U+FFFD like other unprintable bytes. */
    size_t z = 0;
    for (size_t i = 0; i < tl; i++) z += t[i] == '\0';
    if (z) {
        char *u = malloc(tl + 2 * z + 1);
        if (!u) { free(t); return NULL; }
        size_t k = 0;
        for (size_t i = 0; i < tl; i++) {
            if (t[i]) u[k++] = t[i];
            else { memcpy(u + k, "\xEF\xBF\xBD", 3); k += 3; }
        }
        u[k] = '\0';
        free(t);
        t = u;
    }
    cJSON *j = cJSON_AddStringToObject(obj, name, t);
    free(t);
    return j;
}

static cJSON *token_bytes(const bn_oai_ctx *c, int32_t id) {
    size_t n = 0;
    const char *p = bn_token_to_piece(c->tok, id, &n);
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; p && a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)p[i]));
    return a;
}

static void add_token_text(const bn_oai_ctx *c, cJSON *obj, const char *name, int32_t id) {
    size_t n = 0;
    const char *p = bn_token_to_piece(c->tok, id, &n);
    add_text(obj, name, p, n);
}

static double lp_value(float lp) { return isfinite(lp) ? lp : -9999.0; }

/* chat: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]} */
static cJSON *chat_logprobs(const bn_oai_ctx *c, const bn_oai_request *o, const bn_srv_tok *t, int32_t n) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(lp, "content");
    for (int32_t i = 0; content && i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        add_token_text(c, e, "token", t[i].id);
        cJSON_AddNumberToObject(e, "logprob", lp_value(t[i].logprob));
        cJSON_AddItemToObject(e, "bytes", token_bytes(c, t[i].id));
        cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int32_t k = 0; top && k < t[i].n_top && k < o->top_logprobs; k++) {
            cJSON *x = cJSON_CreateObject();
            add_token_text(c, x, "token", t[i].top[k].token);
            cJSON_AddNumberToObject(x, "logprob", lp_value(t[i].top[k].logprob));
            cJSON_AddItemToObject(x, "bytes", token_bytes(c, t[i].top[k].token));
            cJSON_AddItemToArray(top, x);
        }
        cJSON_AddItemToArray(content, e);
    }
    return lp;
}

/* completions: {tokens, token_logprobs, top_logprobs: [{tok: lp}], text_offset} */
static cJSON *completion_logprobs(const bn_oai_ctx *c, const bn_oai_request *o, const bn_srv_tok *t, int32_t n,
                                  size_t offset) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *toks = cJSON_AddArrayToObject(lp, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(lp, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(lp, "text_offset");
    if (!toks || !lps || !tops || !offs) return lp;
    for (int32_t i = 0; i < n; i++) {
        size_t pl = 0;
        const char *p = bn_token_to_piece(c->tok, t[i].id, &pl);
        char *s = NULL;
        size_t sl = 0;
        if (bn_srv_utf8_sanitize(p ? p : "", p ? pl : 0, &s, &sl)) continue;
        cJSON_AddItemToArray(toks, cJSON_CreateString(s));
        free(s);
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(lp_value(t[i].logprob)));
        cJSON *top = cJSON_CreateObject();
        for (int32_t k = 0; top && k < t[i].n_top && k < o->top_logprobs; k++) {
            char *ks = NULL;
            size_t kl = 0;
            const char *kp = bn_token_to_piece(c->tok, t[i].top[k].token, &kl);
            if (bn_srv_utf8_sanitize(kp ? kp : "", kp ? kl : 0, &ks, &kl)) continue;
            if (!cJSON_GetObjectItemCaseSensitive(top, ks))
                cJSON_AddNumberToObject(top, ks, lp_value(t[i].top[k].logprob));
            free(ks);
        }
        cJSON_AddItemToArray(tops, top);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        offset += pl;
    }
    return lp;
}

static cJSON *usage_obj(const bn_srv_req *r) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", r->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", r->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", r->n_prompt + r->n_gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    if (d) cJSON_AddNumberToObject(d, "cached_tokens", r->n_cached);
    return u;
}

static cJSON *envelope(const bn_oai_ctx *c, const bn_oai_request *o, const char *object) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", o->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)o->created);
    cJSON_AddStringToObject(root, "model", c->model_name);
    char fp[48];
    snprintf(fp, sizeof fp, "bitnet-%s", bn_version_string());
    cJSON_AddStringToObject(root, "system_fingerprint", fp);
    return root;
}

char *bn_oai_response(const bn_oai_ctx *c, const bn_oai_request *o) {
    const bn_srv_req *r = o->req;
    bool chat = o->kind == BN_OAI_CHAT;
    cJSON *root = envelope(c, o, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    if (chat) {
        cJSON *msg = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        add_text(msg, "content", r->text, r->text_len);
        cJSON_AddNullToObject(msg, "refusal");
    } else {
        add_text(ch, "text", r->text, r->text_len);
    }
    if (o->logprobs)
        cJSON_AddItemToObject(ch, "logprobs", chat ? chat_logprobs(c, o, r->toks, r->n_toks)
                                                   : completion_logprobs(c, o, r->toks, r->n_toks, 0));
    else
        cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", bn_oai_finish_name(r->finish));
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddItemToObject(root, "usage", usage_obj(r));
    return print_free(root);
}

char *bn_oai_chunk(const bn_oai_ctx *c, const bn_oai_request *o, const char *text, size_t n,
                   const bn_srv_tok *toks, int32_t n_toks, const char *finish, bool first) {
    bool chat = o->kind == BN_OAI_CHAT;
    cJSON *root = envelope(c, o, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (first) cJSON_AddStringToObject(d, "role", "assistant");
        if (first || n > 0) add_text(d, "content", text, n);
    } else {
        add_text(ch, "text", text, n);
    }
    if (o->logprobs && n_toks > 0)
        cJSON_AddItemToObject(ch, "logprobs", chat ? chat_logprobs(c, o, toks, n_toks)
                                                   : completion_logprobs(c, o, toks, n_toks, 0));
    else
        cJSON_AddNullToObject(ch, "logprobs");
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    if (o->include_usage) cJSON_AddNullToObject(root, "usage");
    return print_free(root);
}

char *bn_oai_usage_chunk(const bn_oai_ctx *c, const bn_oai_request *o) {
    cJSON *root = envelope(c, o, o->kind == BN_OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(root, "choices");
    cJSON_AddItemToObject(root, "usage", usage_obj(o->req));
    return print_free(root);
}

char *bn_oai_models(const bn_oai_ctx *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", c->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)c->created);
    cJSON_AddStringToObject(m, "owned_by", "bitnet");
    cJSON_AddNumberToObject(m, "context_length", c->n_ctx);
    cJSON *eog = cJSON_AddArrayToObject(m, "end_token_ids");
    for (int32_t i = 0; eog && i < c->n_eog; i++) cJSON_AddItemToArray(eog, cJSON_CreateNumber(c->eog[i]));
    cJSON_AddItemToArray(data, m);
    return print_free(root);
}

static cJSON *parse_object(const char *body, size_t len, bn_oai_error *err) {
    if (!bn_srv_utf8_valid(body, len)) {
        BAD(NULL, "invalid_encoding", "the request body is not valid UTF-8");
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) { BAD(NULL, "invalid_json", "the request body is not valid JSON"); return NULL; }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        BAD(NULL, "invalid_type", "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

bool bn_oai_tokenize(const bn_oai_ctx *c, const char *body, size_t len, char **out, bn_oai_error *err) {
    cJSON *root = parse_object(body, len, err);
    if (!root) return false;
    bool ok = false, add_special = false;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
    if (!content) content = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!content) { BAD("content", "missing_required_parameter", "'content' is required"); goto done; }
    if (!cJSON_IsString(content)) { BAD("content", "invalid_type", "'content' must be a string"); goto done; }
    if (!get_bool(root, "add_special", &add_special, err)) goto done;
    int32_t *ids = NULL;
    size_t n = 0;
    if (!tokenize_text(c, content->valuestring, add_special, &ids, &n, err)) goto done;
    cJSON *res = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(res, "tokens");
    for (size_t i = 0; arr && i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    free(ids);
    *out = print_free(res);
    ok = *out != NULL;
    if (!ok) bn_oai_set_error(err, 500, "server_error", NULL, NULL, "out of memory");
done:
    cJSON_Delete(root);
    return ok;
}

bool bn_oai_detokenize(const bn_oai_ctx *c, const char *body, size_t len, char **out, bn_oai_error *err) {
    cJSON *root = parse_object(body, len, err);
    if (!root) return false;
    bool ok = false;
    int32_t *ids = NULL;
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    if (!toks) { BAD("tokens", "missing_required_parameter", "'tokens' is required"); goto done; }
    if (!cJSON_IsArray(toks)) { BAD("tokens", "invalid_type", "'tokens' must be an array of token ids"); goto done; }
    int n = cJSON_GetArraySize(toks), k = 0;
    ids = malloc(sizeof *ids * (size_t)(n ? n : 1));
    if (!ids) { bn_oai_set_error(err, 500, "server_error", NULL, NULL, "out of memory"); goto done; }
    const cJSON *it;
    cJSON_ArrayForEach(it, toks) {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
            it->valuedouble >= bn_tokenizer_n_vocab(c->tok)) {
            BAD("tokens", "invalid_value", "'tokens' must hold token ids in [0, %d)", (int)bn_tokenizer_n_vocab(c->tok));
            goto done;
        }
        ids[k++] = (int32_t)it->valuedouble;
    }
    char *text = NULL;
    size_t tl = 0;
    if (bn_detokenize(c->tok, ids, (size_t)k, false, &text, &tl)) {
        bn_oai_set_error(err, 500, "server_error", NULL, NULL, "cannot detokenize: %s", bn_last_error());
        goto done;
    }
    cJSON *res = cJSON_CreateObject();
    add_text(res, "content", text, tl);
    free(text);
    *out = print_free(res);
    ok = *out != NULL;
    if (!ok) bn_oai_set_error(err, 500, "server_error", NULL, NULL, "out of memory");
done:
    free(ids);
    cJSON_Delete(root);
    return ok;
}
