/* fuzz_openai.c — libFuzzer target for the server's request parsing
 * (src/server/openai.c), without a model. Mode by the first byte:
 *   0  the rest is a /v1/chat/completions body,
 *   1  a /v1/completions body,
 *   2  a /tokenize body, 3 a /detokenize body.
 * Every call must either succeed or fill a bn_oai_error whose JSON renders;
 * a parsed request must hold a prompt of 1..n_ctx in-vocabulary ids, and
 * the responses built from it (the prompt's ids played back as "generated"
 * tokens, so logprobs and invalid UTF-8 are exercised) must render as JSON
 * that keeps every byte of the text.
 * The tokenizer (a tiny chatml BPE) is read once from $BN_SOURCE_DIR
 * (default: .)/tests/data/server/tokenizer. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bitnet.h"
#include "server/server.h"

static bn_tokenizer *tok;
static bn_oai_ctx ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *root = getenv("BN_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/server/tokenizer", root ? root : ".");
    if (bn_tokenizer_load(path, &tok) != BN_OK) {
        fprintf(stderr, "fuzz_openai: %s (set BN_SOURCE_DIR to the repo)\n", bn_last_error());
        abort();
    }
    ctx.tok = tok;
    ctx.chat_template = bn_chat_template_detect(bn_tokenizer_chat_template(tok), NULL);
    if (!ctx.chat_template) ctx.chat_template = "chatml";
    ctx.model_name = "fuzz";
    ctx.n_ctx = 64; /* small, so the context-length checks are reached */
    ctx.n_vocab = bn_tokenizer_n_vocab(tok);
    ctx.created = 1;
    return 0;
}

static void check_error(const bn_oai_error *e) {
    if (e->http < 400 || e->http > 599) abort();
    char *j = bn_oai_error_json(e);
    free(j); /* NULL only when out of memory */
}

/* Play the prompt back as the "output" and render every response form. */
static void render(bn_oai_request *o) {
    bn_srv_req *r = o->req;
    int32_t n = r->n_prompt;
    r->toks = calloc((size_t)n, sizeof *r->toks);
    if (!r->toks) return;
    for (int32_t i = 0; i < n; i++) {
        bn_srv_tok *t = &r->toks[i];
        t->id = r->prompt[i];
        t->logprob = i == 0 ? -INFINITY : -0.5f * (float)i;
        t->n_top = r->n_top;
        for (int32_t k = 0; k < t->n_top; k++) {
            t->top[k].token = (r->prompt[i] + k) % ctx.n_vocab;
            t->top[k].logprob = -(float)k;
        }
    }
    r->n_toks = n;
    if (bn_detokenize(tok, r->prompt, (size_t)n, false, &r->text, &r->text_len) != BN_OK) return;
    r->n_gen = n;
    r->finish = BN_FINISH_LENGTH;
    char *s = bn_oai_response(&ctx, o);
    if (s) { /* no byte of the text may be lost (invalid ones become U+FFFD) */
        cJSON *j = cJSON_Parse(s);
        if (!j) abort();
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        const cJSON *t = o->kind == BN_OAI_CHAT
                             ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ch, "message"), "content")
                             : cJSON_GetObjectItemCaseSensitive(ch, "text");
        if (!cJSON_IsString(t) || strlen(t->valuestring) < r->text_len) abort();
        cJSON_Delete(j);
    }
    free(s);
    s = bn_oai_chunk(&ctx, o, r->text, r->text_len, r->toks, r->n_toks, "stop", true);
    free(s);
    s = bn_oai_usage_chunk(&ctx, o);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    bn_oai_error err;
    memset(&err, 0, sizeof err);
    int mode = data[0] % 4;
    if (mode < 2) {
        bn_oai_request o;
        if (!bn_oai_parse(&ctx, mode == 0 ? BN_OAI_CHAT : BN_OAI_COMPLETION, body, len, &o, &err)) {
            if (o.req) abort(); /* a failed parse owns nothing */
            check_error(&err);
            return 0;
        }
        bn_srv_req *r = o.req;
        if (!r || r->n_prompt < 1 || r->n_prompt > ctx.n_ctx || r->max_tokens < 0 || r->max_tokens > ctx.n_ctx)
            abort();
        for (int32_t i = 0; i < r->n_prompt; i++)
            if (r->prompt[i] < 0 || r->prompt[i] >= ctx.n_vocab) abort();
        for (int32_t i = 0; i < r->sp.n_logit_bias; i++)
            if (r->sp.logit_bias[i].token < 0 || r->sp.logit_bias[i].token >= ctx.n_vocab) abort();
        if (r->n_top < 0 || r->n_top > BN_MAX_TOP_LOGPROBS) abort();
        render(&o);
        bn_oai_request_free(&o);
        return 0;
    }
    char *out = NULL;
    bool ok = mode == 2 ? bn_oai_tokenize(&ctx, body, len, &out, &err) : bn_oai_detokenize(&ctx, body, len, &out, &err);
    if (ok && !out) abort();
    if (!ok) check_error(&err);
    free(out);
    return 0;
}
