/* sft.c — supervised fine-tuning data: JSONL lines of {"text": ...} or
 * {"messages": [...]}; chats are rendered with a chat template and only the
 * assistant replies are scored. */
#include "train/lora.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bn_tr_sft_free(bn_tr_sft_data *d) {
    if (!d) return;
    for (int32_t i = 0; i < d->n_ex; i++) {
        free(d->ex[i].ids);
        free(d->ex[i].score);
    }
    free(d->ex);
    memset(d, 0, sizeof *d);
}

/* ids of text (tok) or its bytes (tok NULL) */
static bn_status encode(const bn_tokenizer *tok, const char *text, size_t len, bool bos,
                        int32_t **ids, size_t *n) {
    if (tok) return bn_tokenize(tok, text, len, bos, false, ids, n);
    *ids = bn_malloc(sizeof(int32_t) * (len ? len : 1));
    if (!*ids) return BN_ERR_NOMEM;
    for (size_t i = 0; i < len; i++) (*ids)[i] = (uint8_t)text[i];
    *n = len;
    return BN_OK;
}

/* render msgs[0..n) (ids, or text bytes for a byte model) */
static bn_status render(const bn_tokenizer *tok, const char *tmpl, const bn_chat_message *msgs,
                        size_t n, bool gen, int32_t **ids, size_t *n_ids) {
    if (tok) return bn_chat_render_ids(tok, tmpl, msgs, n, gen, ids, n_ids);
    char *text = NULL;
    bn_status st = bn_chat_render_text(tmpl, msgs, n, gen, &text);
    if (st != BN_OK) return st;
    st = encode(NULL, text, strlen(text), false, ids, n_ids);
    free(text);
    return st;
}

static bn_status chat_example(const cJSON *arr, const bn_tokenizer *tok, const char *tmpl,
                              bn_tr_sft_example *ex) {
    const int n = cJSON_GetArraySize(arr);
    if (n <= 0 || n > 4096) return bn_fail(BN_ERR_FORMAT, "\"messages\" must hold 1..4096 messages");
    bn_chat_message *msgs = bn_calloc((size_t)n, sizeof *msgs);
    if (!msgs) return BN_ERR_NOMEM;
    bn_status st = BN_OK;
    int i = 0, n_asst = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            st = bn_fail(BN_ERR_FORMAT, "message %d needs string \"role\" and \"content\"", i + 1);
            break;
        }
        if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
            strcmp(role->valuestring, "assistant")) {
            st = bn_fail(BN_ERR_FORMAT, "message %d: role '%.32s' (system, user or assistant)",
                         i + 1, role->valuestring);
            break;
        }
        n_asst += !strcmp(role->valuestring, "assistant");
        msgs[i++] = (bn_chat_message){role->valuestring, content->valuestring};
    }
    if (st == BN_OK && !n_asst) st = bn_fail(BN_ERR_FORMAT, "no assistant message to learn from");
    int32_t *all = NULL;
    size_t n_all = 0;
    if (st == BN_OK) st = render(tok, tmpl, msgs, (size_t)n, false, &all, &n_all);
    uint8_t *score = st == BN_OK ? bn_calloc(n_all ? n_all : 1, 1) : NULL;
    if (st == BN_OK && !score) st = BN_ERR_NOMEM;
    /* an assistant reply = render(msgs[..j], no prompt) minus
     * render(msgs[..j), generation prompt); both must be prefixes of all */
    for (int j = 0; j < n && st == BN_OK; j++) {
        if (strcmp(msgs[j].role, "assistant")) continue;
        int32_t *pre = NULL, *upto = NULL;
        size_t n_pre = 0, n_upto = 0;
        st = render(tok, tmpl, msgs, (size_t)j, true, &pre, &n_pre);
        if (st == BN_OK) st = render(tok, tmpl, msgs, (size_t)j + 1, false, &upto, &n_upto);
        if (st == BN_OK && (n_pre > n_upto || n_upto > n_all ||
                            memcmp(pre, all, n_pre * sizeof *pre) ||
                            memcmp(upto, all, n_upto * sizeof *upto)))
            st = bn_fail(BN_ERR_UNSUPPORTED, "the chat template does not tokenize message %d as "
                         "a prefix of the whole chat; cannot find the assistant tokens", j + 1);
        for (size_t t = n_pre; st == BN_OK && t < n_upto; t++) score[t] = 1;
        free(pre);
        free(upto);
    }
    free(msgs);
    if (st != BN_OK) { free(all); free(score); return st; }
    ex->ids = all;
    ex->score = score;
    ex->n = (int32_t)n_all;
    return BN_OK;
}

static bn_status text_example(const cJSON *text, const bn_tokenizer *tok, bn_tr_sft_example *ex) {
    int32_t *ids = NULL;
    size_t n = 0;
    const size_t len = strlen(text->valuestring);
    bool bos = tok && bn_tokenizer_bos(tok) >= 0;
    bn_status st = encode(tok, text->valuestring, len, bos, &ids, &n);
    if (st != BN_OK) return st;
    /* end with EOS so the model learns where a text stops */
    int32_t eos = tok ? bn_tokenizer_eos(tok) : -1;
    if (eos >= 0) {
        int32_t *g = realloc(ids, sizeof(int32_t) * (n + 1));
        if (!g) { free(ids); return bn_fail(BN_ERR_NOMEM, "out of memory"); }
        ids = g;
        ids[n++] = eos;
    }
    ex->score = bn_malloc(n ? n : 1);
    if (!ex->score) { free(ids); return BN_ERR_NOMEM; }
    memset(ex->score, 1, n);
    if (bos && n) ex->score[0] = 0;
    ex->ids = ids;
    ex->n = (int32_t)n;
    return BN_OK;
}

bn_status bn_tr_sft_parse(const char *text, size_t len, const char *name, const bn_tokenizer *tok,
                          const char *tmpl, int32_t vocab, bn_tr_sft_data *out) {
    memset(out, 0, sizeof *out);
    if (!tmpl) tmpl = "chatml";
    bn_status st = BN_OK;
    size_t cap = 0;
    long line_no = 0;
    const char *p = text, *end = text + len;
    while (p < end && st == BN_OK) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line_no++;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q == le) { p = le + 1; continue; }  /* blank line */
        cJSON *obj = cJSON_ParseWithLength(p, (size_t)(le - p));
        bn_tr_sft_example ex = {0};
        if (!obj || !cJSON_IsObject(obj)) {
            st = bn_fail(BN_ERR_FORMAT, "%s:%ld: not a JSON object", name, line_no);
        } else {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "text");
            const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
            bool inner = true;
            if (cJSON_IsString(t)) st = text_example(t, tok, &ex);
            else if (cJSON_IsArray(msgs)) st = chat_example(msgs, tok, tmpl, &ex);
            else inner = false, st = bn_fail(BN_ERR_FORMAT, "%s:%ld: the line has neither \"text\" (a string) "
                              "nor \"messages\" (an array)", name, line_no);
            if (st != BN_OK && inner) bn_error_prefix("%s:%ld", name, line_no);
        }
        cJSON_Delete(obj);
        for (int32_t i = 0; st == BN_OK && i < ex.n; i++)
            if (ex.ids[i] < 0 || ex.ids[i] >= vocab)
                st = bn_fail(BN_ERR_SHAPE, "%s:%ld: token id %d is outside the model's "
                             "vocabulary (%d): tokenizer and model do not match", name, line_no,
                             ex.ids[i], vocab);
        if (st == BN_OK && ex.n >= 2) {
            if ((size_t)out->n_ex == cap) {
                size_t nc = cap ? 2 * cap : 64;
                bn_tr_sft_example *g = realloc(out->ex, nc * sizeof *g);
                if (!g) st = bn_fail(BN_ERR_NOMEM, "out of memory");
                else { out->ex = g; cap = nc; }
            }
            if (st == BN_OK) {
                out->ex[out->n_ex++] = ex;
                out->n_tokens += ex.n;
                for (int32_t i = 1; i < ex.n; i++) out->n_scored += ex.score[i];
                ex.ids = NULL;
                ex.score = NULL;
            }
        }
        free(ex.ids);
        free(ex.score);
        if (out->n_ex > (1 << 24)) st = bn_fail(BN_ERR_NOMEM, "%s: too many examples", name);
        p = le + 1;
    }
    if (st == BN_OK && !out->n_ex) st = bn_fail(BN_ERR_FORMAT, "%s: no examples", name);
    if (st == BN_OK && !out->n_scored)
        st = bn_fail(BN_ERR_FORMAT, "%s: no tokens to learn from (no assistant replies?)", name);
    if (st != BN_OK) bn_tr_sft_free(out);
    return st;
}

bn_status bn_tr_sft_load(const char *path, const bn_tokenizer *tok, const char *tmpl,
                         int32_t vocab, bn_tr_sft_data *out) {
    char *text = NULL;
    size_t len = 0;
    bn_status st = bn_read_file(path, (size_t)1 << 31, &text, &len);
    if (st != BN_OK) return st;
    st = bn_tr_sft_parse(text, len, path, tok, tmpl, vocab, out);
    free(text);
    return st;
}

void bn_tr_sft_batch(const bn_tr_sft_data *d, bn_tr_rng *rng, int B, int T, int32_t *tokens,
                     int32_t *targets) {
    for (int b = 0; b < B; b++) {
        const bn_tr_sft_example *ex = &d->ex[bn_tr_rng_below(rng, (uint64_t)d->n_ex)];
        int32_t *tk = tokens + (size_t)b * T, *tg = targets + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            tk[t] = t < ex->n ? ex->ids[t] : 0;
            tg[t] = t + 1 < ex->n && ex->score[t + 1] ? ex->ids[t + 1] : -1;
        }
    }
}
