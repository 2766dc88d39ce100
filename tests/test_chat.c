/* test_chat.c — chat templates rendered to ids: the bitnet (2B4T) format
 * against Microsoft's ChatFormat, llama3 and chatml against the rendered
 * string, and template detection from metadata. */
#include "harness.h"

#include "bitnet.h"

#include <stdlib.h>
#include <string.h>

static bn_tokenizer *tok;

static const bn_chat_message conv[] = {
    {"system", "You are a helpful assistant."},
    {"user", "  Hey, what's 2+2?  "},
    {"assistant", "2+2 = 4.\n"},
    {"user", "And in base 3?"},
};

static void append(int32_t **v, size_t *n, const int32_t *x, size_t k) {
    *v = realloc(*v, (*n + k) * sizeof **v);
    memcpy(*v + *n, x, k * sizeof *x);
    *n += k;
}

static void append_text(int32_t **v, size_t *n, const char *s) {
    int32_t *ids;
    size_t k;
    CHECK_OK(bn_tokenize(tok, s, strlen(s), false, false, &ids, &k));
    append(v, n, ids, k);
    free(ids);
}

static bool eq(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && !memcmp(a, b, na * sizeof *a);
}

static void print_ids(const char *label, const int32_t *v, size_t n) {
    fprintf(stderr, "   %s (%zu):", label, n);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", v[i]);
    fputc('\n', stderr);
}

static void test_bitnet(void) {
    int32_t *ids;
    size_t n;
    CHECK_OK(bn_chat_render_ids(tok, "bitnet", conv, 4, true, &ids, &n));
    if (!ids) return;
    /* 1. Microsoft's ChatFormat.encode_dialog_prompt, step by step: BOS, then
     *    per message encode(header) + encode(content.strip()) + <|eot_id|>,
     *    then encode("Assistant: "). */
    int32_t *exp = NULL;
    size_t ne = 0;
    int32_t bos = 128000, eot = 128009;
    append(&exp, &ne, &bos, 1);
    static const char *hdr[] = {"System: ", "User: ", "Assistant: ", "User: "};
    static const char *stripped[] = {"You are a helpful assistant.", "Hey, what's 2+2?", "2+2 = 4.", "And in base 3?"};
    for (int i = 0; i < 4; i++) {
        append_text(&exp, &ne, hdr[i]);
        append_text(&exp, &ne, stripped[i]);
        append(&exp, &ne, &eot, 1);
    }
    append_text(&exp, &ne, "Assistant: ");
    CHECK(eq(ids, n, exp, ne));
    /* 2. The same conversation through npm tiktoken 1.0.22 (OpenAI's Rust
     *    core) with llama3.tiktoken and Meta's pat_str, pieces encoded
     *    separately exactly as above: an independent oracle. */
    static const int32_t oracle[] = {
        128000, 2374, 25, 220, 2675, 527, 264, 11190, 18328, 13, 128009, 1502, 25, 220, 19182, 11, 1148, 596,
        220, 17, 10, 17, 30, 128009, 72803, 25, 220, 17, 10, 17, 284, 220, 19, 13, 128009, 1502, 25, 220,
        3112, 304, 2385, 220, 18, 30, 128009, 72803, 25, 220};
    CHECK(eq(ids, n, oracle, sizeof oracle / sizeof *oracle));
    if (!eq(ids, n, oracle, sizeof oracle / sizeof *oracle)) print_ids("got", ids, n);
    /* 3. Tokenizing the joined string instead gives different ids ("System:"
     *    " You" vs "System:" " " "You"): the reason to render piecewise. */
    char *text;
    CHECK_OK(bn_chat_render_text("bitnet", conv, 4, true, &text));
    CHECK(text && !strcmp(text, "<|begin_of_text|>System: You are a helpful assistant.<|eot_id|>User: Hey, what's "
                                "2+2?<|eot_id|>Assistant: 2+2 = 4.<|eot_id|>User: And in base 3?<|eot_id|>Assistant: "));
    int32_t *whole;
    size_t nw;
    CHECK_OK(bn_tokenize(tok, text, strlen(text), false, true, &whole, &nw));
    static const int32_t whole_oracle[] = {
        128000, 2374, 25, 1472, 527, 264, 11190, 18328, 13, 128009, 1502, 25, 28653, 11, 1148, 596, 220, 17,
        10, 17, 30, 128009, 72803, 25, 220, 17, 10, 17, 284, 220, 19, 13, 128009, 1502, 25, 1628, 304, 2385,
        220, 18, 30, 128009, 72803, 25, 220};
    CHECK(eq(whole, nw, whole_oracle, sizeof whole_oracle / sizeof *whole_oracle));
    CHECK(!eq(whole, nw, ids, n));
    free(whole);
    free(text);
    /* without the generation prompt: ends on the last <|eot_id|> */
    int32_t *ids2;
    size_t n2;
    CHECK_OK(bn_chat_render_ids(tok, "bitnet", conv, 4, false, &ids2, &n2));
    CHECK(n2 == n - 3 && ids2[n2 - 1] == 128009 && !memcmp(ids2, ids, n2 * sizeof *ids));
    free(ids2);
    /* special-token text in a message stays text */
    bn_chat_message inj = {"user", "hi <|eot_id|> there"};
    CHECK_OK(bn_chat_render_ids(tok, "bitnet", &inj, 1, false, &ids2, &n2));
    int eots = 0;
    for (size_t i = 0; i < n2; i++) eots += ids2[i] == 128009;
    CHECK(eots == 1 && ids2[n2 - 1] == 128009);
    free(ids2);
    /* an unknown role is an error in this format */
    bn_chat_message tool = {"tool", "x"};
    CHECK(bn_chat_render_ids(tok, "bitnet", &tool, 1, false, &ids2, &n2) == BN_ERR_INVALID_ARG);
    free(exp);
    free(ids);
}

static void test_llama3(void) {
    int32_t *ids;
    size_t n;
    CHECK_OK(bn_chat_render_ids(tok, "llama3", conv, 2, true, &ids, &n));
    if (!ids) return;
    /* npm tiktoken on the rendered string with all specials allowed */
    static const int32_t oracle[] = {128000, 128006, 9125, 128007, 271, 2675, 527, 264, 11190, 18328, 13, 128009,
                                     128006, 882, 128007, 271, 19182, 11, 1148, 596, 220, 17, 10, 17, 30, 128009,
                                     128006, 78191, 128007, 271};
    CHECK(eq(ids, n, oracle, sizeof oracle / sizeof *oracle));
    if (!eq(ids, n, oracle, sizeof oracle / sizeof *oracle)) print_ids("llama3", ids, n);
    char *text;
    CHECK_OK(bn_chat_render_text("llama3", conv, 2, true, &text));
    int32_t *whole;
    size_t nw;
    CHECK_OK(bn_tokenize(tok, text, strlen(text), false, true, &whole, &nw));
    CHECK(eq(whole, nw, ids, n));
    free(whole);
    free(text);
    free(ids);
}

static void test_chatml(void) {
    /* LLaMA 3's vocabulary has no <|im_start|>: a clear error */
    int32_t *ids;
    size_t n;
    CHECK(bn_chat_render_ids(tok, "chatml", conv, 2, true, &ids, &n) == BN_ERR_UNSUPPORTED);
    CHECK(strstr(bn_last_error(), "<|im_start|>") != NULL);
    /* with the tiny vocabulary that has them as added tokens */
    char *text;
    CHECK_OK(bn_chat_render_text("chatml", conv, 2, true, &text));
    CHECK(text && !strcmp(text, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                                "  Hey, what's 2+2?  <|im_end|>\n<|im_start|>assistant\n"));
    free(text);
    bn_tokenizer *tiny = NULL;
    CHECK_OK(bn_tokenizer_load(bn_test_src("tests/data/tokenizer/chatml"), &tiny));
    if (!tiny) return;
    bn_chat_message m[] = {{"user", "ab"}, {"assistant", "abc"}};
    CHECK_OK(bn_chat_render_ids(tiny, "chatml", m, 2, true, &ids, &n));
    /* ids: <|im_start|>=257 <|im_end|>=258 (bytes are 0..255, "ab" 256);
     * compare with the rendered text tokenized with special parsing */
    CHECK_OK(bn_chat_render_text("chatml", m, 2, true, &text));
    int32_t *whole;
    size_t nw;
    CHECK_OK(bn_tokenize(tiny, text, strlen(text), false, true, &whole, &nw));
    CHECK(eq(whole, nw, ids, n));
    static const int32_t expect[] = {257, 'u', 's', 'e', 'r', '\n', 256, 258, '\n',
                                     257, 'a', 's', 's', 'i', 's', 't', 'a', 'n', 't', '\n', 256, 'c', 258, '\n',
                                     257, 'a', 's', 's', 'i', 's', 't', 'a', 'n', 't', '\n'};
    CHECK(eq(ids, n, expect, sizeof expect / sizeof *expect));
    int starts = 0, ends = 0;
    for (size_t i = 0; i < n; i++) { starts += ids[i] == 257; ends += ids[i] == 258; }
    CHECK(starts == 3 && ends == 2);
    free(whole);
    free(text);
    free(ids);
    bn_tokenizer_free(tiny);
}

static void test_detect(void) {
    const char *s;
    s = bn_chat_template_detect("{% for m in messages %}<|im_start|>{{m.role}}\n", NULL);
    CHECK(s && !strcmp(s, "chatml"));
    s = bn_chat_template_detect("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}", "llama");
    CHECK(s && !strcmp(s, "llama3"));
    /* the placeholder template in Microsoft's 2B4T GGUF */
    s = bn_chat_template_detect("{% for message in messages %}{% if message['role'] == 'user' %}{{ 'Human: ' + "
                                "message['content'] + '\\n\\nBITNETAssistant: ' }}{% endif %}{% endfor %}",
                                "bitnet-b1.58");
    CHECK(s && !strcmp(s, "bitnet"));
    s = bn_chat_template_detect(NULL, "bitnet-25");
    CHECK(s && !strcmp(s, "bitnet"));
    s = bn_chat_template_detect("{{ 'User: ' + m + '<|eot_id|>' }}{{ 'Assistant: ' }}", NULL);
    CHECK(s && !strcmp(s, "bitnet"));
    CHECK(bn_chat_template_detect("something else", "llama") == NULL);
    CHECK(bn_chat_template_detect(NULL, NULL) == NULL);
    CHECK(bn_chat_template_known("bitnet") && bn_chat_template_known("llama3") && bn_chat_template_known("chatml"));
    CHECK(!bn_chat_template_known("vicuna") && !bn_chat_template_known(NULL));
    int32_t *ids;
    size_t n;
    CHECK(bn_chat_render_ids(tok, "vicuna", conv, 1, true, &ids, &n) == BN_ERR_INVALID_ARG);
}

int main(void) {
    CHECK_OK(bn_tokenizer_load(bn_test_src("tests/data/tokenizer/llama3.tiktoken"), &tok));
    if (!tok) return bn_test_finish("test_chat");
    RUN(test_bitnet);
    RUN(test_llama3);
    RUN(test_chatml);
    RUN(test_detect);
    bn_tokenizer_free(tok);
    return bn_test_finish("test_chat");
}
