/* cmd_quantize.c — `bitnet quantize IN OUT.gguf --type i2_s|tq2_0|tq1_0`:
 * rewrite a model's ternary linears in another GGUF form (llama-quantize's
 * job, for ternary models) and its tied head in a chosen type; the writer is
 * model/save_quant.c. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/save_quant.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet quantize IN OUT.gguf [--type i2_s|tq2_0|tq1_0] [--head f16|bf16|f32|q8_0|q6_k]\n"
            "                       [--threads N] [--arch NAME] [--tokenizer PATH] [--json]\n\n"
            "Rewrites a BitNet b1.58 model (GGUF I2_S/TQ1_0/TQ2_0/F16/F32 from bitnet.cpp, llama.cpp\n"
            "or bitnet; or a Hugging Face folder) as a GGUF file with its ternary linears in the\n"
            "chosen form. The ternary codes are kept exactly; tokenizer and metadata are carried over.\n"
            "  --type T     linears (default i2_s):\n"
            "               i2_s   bitnet.cpp's I2_S (what `bitnet convert` writes): 2 bits per weight,\n"
            "                      the f32 scale kept exactly; bitnet.cpp and bitnet run it\n"
            "                      (llama.cpp has no I2_S)\n"
            "               tq2_0  ggml's TQ2_0 (2.06 bits per weight, 256-element blocks)\n"
            "               tq1_0  ggml's TQ1_0 (1.69 bits per weight, base-3 packing)\n"
            "                      TQ blocks store the scale as f16: tq2_0/tq1_0 round each\n"
            "                      linear's per-tensor scale to f16 (relative change below 2^-11,\n"
            "                      logits move accordingly; codes are unchanged). llama.cpp loads\n"
            "                      them only under architecture \"bitnet\" (see --arch)\n"
            "  --head T     tied token embedding / output head: f16, bf16, f32, q8_0 or q6_k (ggml's\n"
            "               block formats, as llama-quantize writes them). Default: the source's\n"
            "               type when it is one of these (copied verbatim), else f16\n"
            "  --threads N  encoding threads (default: all CPUs)\n"
            "  --arch NAME  general.architecture to write. Default: bitnet-b1.58 for a BitNet b1.58\n"
            "               2B4T (ReLU^2 FFN) model, for every --type (bitnet.cpp's name and ours);\n"
            "               bitnet for a 1bitLLM (SiLU FFN) model, which can only be written so.\n"
            "               --arch bitnet on a 2B4T model makes the file loadable by llama.cpp (whose\n"
            "               only BitNet name it is), but llama.cpp, bitnet.cpp and bitnet all run\n"
            "               architecture \"bitnet\" with a SiLU-gated FFN: a DIFFERENT model from the\n"
            "               2B4T weights, with other logits. Use it only to feed llama.cpp knowingly.\n"
            "  --tokenizer PATH  take the tokenizer from PATH instead of IN: a .gguf file (its\n"
            "               tokenizer.* keys copied as stored), tokenizer.json or an HF folder\n"
            "  --json       print a JSON summary on stdout\n"
            "The file is written as OUT.gguf.tmp and renamed when complete; on any error no OUT file\n"
            "is left behind.\n");
}

/* A GGUF architecture name: it prefixes keys ("<arch>.block_count"), so
 * letters, digits, '-', '_' and inner dots ("bitnet-b1.58"), 1..31 bytes. */
static bool arch_name_ok(const char *a) {
    const size_t n = strlen(a);
    if (n == 0 || n > 31 || a[0] == '.' || a[n - 1] == '.') return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)a[i]) && a[i] != '-' && a[i] != '_' && a[i] != '.') return false;
    return true;
}

static bool parse_type(const char *s, bn_type *t) {
    if (!strcasecmp(s, "i2_s")) *t = BN_TYPE_I2_S;
    else if (!strcasecmp(s, "tq2_0")) *t = BN_TYPE_TQ2_0;
    else if (!strcasecmp(s, "tq1_0")) *t = BN_TYPE_TQ1_0;
    else return false;
    return true;
}

static bool parse_head(const char *s, bn_type *t) {
    if (!strcasecmp(s, "f16")) *t = BN_TYPE_F16;
    else if (!strcasecmp(s, "bf16")) *t = BN_TYPE_BF16;
    else if (!strcasecmp(s, "f32")) *t = BN_TYPE_F32;
    else if (!strcasecmp(s, "q8_0")) *t = BN_TYPE_Q8_0;
    else if (!strcasecmp(s, "q6_k")) *t = BN_TYPE_Q6_K;
    else return false;
    return true;
}

typedef struct tok_src {
    bn_tokenizer *tok;  /* written with bn_tokenizer_write_gguf, or */
    bn_gguf      *gguf; /* whose tokenizer.* keys are copied as stored */
} tok_src;

static bn_status add_tokenizer(bn_gguf_writer *w, void *user) {
    const tok_src *t = user;
    if (t->tok) return bn_tokenizer_write_gguf(t->tok, w);
    int n = 0;
    for (uint64_t i = 0; i < bn_gguf_n_kv(t->gguf); i++) {
        const bn_gguf_kv *kv = bn_gguf_kv_at(t->gguf, i);
        char key[256];
        if (kv->key.len < 10 || kv->key.len >= sizeof key || memcmp(kv->key.data, "tokenizer.", 10) != 0) continue;
        memcpy(key, kv->key.data, (size_t)kv->key.len);
        key[kv->key.len] = '\0';
        bn_status st = bn_gguf_writer_add_kv(w, key, &kv->value);
        if (st) return st;
        n++;
    }
    if (!n) return bn_fail(BN_ERR_NOT_FOUND, "--tokenizer: the GGUF file has no tokenizer.* metadata");
    return BN_OK;
}

typedef struct prog {
    bool   tty;
    int    last_tenth;
    double t0, last;
} prog;

/* One line rewritten in place on a terminal; otherwise a line per tenth of
 * the tensors, or after 5 s without one. */
static void on_progress(int done, int total, const char *name, void *user) {
    prog *p = user;
    if (p->tty) {
        fprintf(stderr, "\rbitnet quantize: [%4d/%d] %-32s", done, total, name);
        if (done == total) fputc('\n', stderr);
    } else {
        const int tenth = done * 10 / total;
        const double now = bn_time_s();
        if (tenth == p->last_tenth && now - p->last < 5.0) return;
        p->last_tenth = tenth;
        p->last = now;
        fprintf(stderr, "bitnet quantize: [%4d/%d] %3d%% %s (%.1f s)\n", done, total, done * 100 / total, name,
                bn_time_s() - p->t0);
    }
}

static const char *lower_name(bn_type t) {
    switch (t) {
    case BN_TYPE_I2_S: return "i2_s";
    case BN_TYPE_TQ2_0: return "tq2_0";
    case BN_TYPE_TQ1_0: return "tq1_0";
    case BN_TYPE_F16: return "f16";
    case BN_TYPE_BF16: return "bf16";
    case BN_TYPE_F32: return "f32";
    case BN_TYPE_Q8_0: return "q8_0";
    case BN_TYPE_Q6_K: return "q6_k";
    default: return bn_type_name(t);
    }
}

static void print_json(const char *in, const char *out, bn_type lt, bn_type ht, const bn_quant_stats *s, long long size,
                       double secs) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "input", in);
    cJSON_AddStringToObject(o, "output", out);
    cJSON_AddStringToObject(o, "type", lower_name(lt));
    cJSON_AddStringToObject(o, "head", lower_name(ht));
    cJSON_AddStringToObject(o, "head_source", lower_name(s->head_src_type));
    cJSON_AddBoolToObject(o, "head_copied", s->head_copied);
    cJSON_AddStringToObject(o, "architecture", s->arch);
    cJSON_AddNumberToObject(o, "tensors", s->n_tensors);
    cJSON_AddNumberToObject(o, "linears", s->n_linears);
    cJSON_AddNumberToObject(o, "scales_rounded", s->n_scale_rounded);
    cJSON_AddNumberToObject(o, "max_scale_rel_change", s->max_scale_rel_err);
    cJSON_AddNumberToObject(o, "bytes", (double)size);
    cJSON_AddNumberToObject(o, "seconds", secs);
    char *txt = cJSON_PrintUnformatted(o);
    if (txt) printf("%s\n", txt);
    free(txt);
    cJSON_Delete(o);
}

int bn_cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize", *in = NULL, *out = NULL, *type = "i2_s", *head = NULL, *arch = NULL, *tok_path = NULL, *v;
    long threads = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
        else if (!strcmp(a, "--type")) { if (!(type = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--head")) { if (!(head = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--arch")) { if (!(arch = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--tokenizer")) { if (!(tok_path = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!(v = bn_cli_value(cmd, argc, argv, &i)) || !bn_cli_parse_int(cmd, a, v, 1, 1024, &threads)) return 2;
        }
        else if (!strcmp(a, "--json")) json = true;
        else if (a[0] == '-' && a[1]) return bn_cli_usage_error(cmd, "unknown option '%s'", a);
        else if (!in) in = a;
        else if (!out) out = a;
        else return bn_cli_usage_error(cmd, "unexpected argument '%s'", a);
    }
    if (!in || !out) return bn_cli_usage_error(cmd, "IN and OUT.gguf are required");
    bn_quant_options o = {.n_threads = (int)threads, .arch = arch};
    if (!parse_type(type, &o.linear_type))
        return bn_cli_usage_error(cmd, "--type '%s' is not one of i2_s, tq2_0, tq1_0", type);
    if (head && !parse_head(head, &o.head_type))
        return bn_cli_usage_error(cmd, "--head '%s' is not one of f16, bf16, f32, q8_0, q6_k", head);
    if (arch && !arch_name_ok(arch))
        return bn_cli_usage_error(cmd, "--arch '%s' is not an architecture name", arch);

    bn_model *m = NULL;
    tok_src ts = {0};
    int rc = 1;
    const double t0 = bn_time_s();
    fprintf(stderr, "bitnet quantize: loading %s\n", in);
    if (bn_cli_load_model(in, &m) != BN_OK) { bn_cli_fail("cannot load model"); goto done; }
    if (!head) { /* keep the source's head type when we can write it */
        const bn_type src = bn_quant_source_head_type(m);
        o.head_type = src == BN_TYPE_F32 || src == BN_TYPE_BF16 || src == BN_TYPE_Q8_0 || src == BN_TYPE_Q6_K
                          ? src : BN_TYPE_F16;
    }
    if (tok_path) {
        const size_t n = strlen(tok_path);
        bn_status st = n > 5 && !strcmp(tok_path + n - 5, ".gguf") ? bn_gguf_open(tok_path, &ts.gguf)
                                                                  : bn_tokenizer_load(tok_path, &ts.tok);
        if (st != BN_OK) { bn_cli_fail("--tokenizer"); goto done; }
        o.add_metadata = add_tokenizer;
        o.user = &ts;
        o.replace_tokenizer = true;
    } else if (!m->gguf && m->tokenizer_path) { /* GGUF sources: their tokenizer keys are copied as stored */
        if (bn_tokenizer_load(m->tokenizer_path, &ts.tok) != BN_OK) {
            fprintf(stderr, "bitnet quantize: no tokenizer carried over (%s)\n", bn_last_error());
            ts.tok = NULL;
        } else {
            o.add_metadata = add_tokenizer;
            o.user = &ts;
        }
    }
    if (arch && !strcmp(arch, "bitnet") && m->hp.act == BN_ACT_RELU2)
        fprintf(stderr, "bitnet quantize: warning: architecture \"bitnet\" means a SiLU FFN to llama.cpp, bitnet.cpp\n"
                        "  and bitnet; this ReLU^2 (2B4T) model will compute other logits from the file\n");
    prog p = {.tty = isatty(2) != 0, .last_tenth = -1, .t0 = t0, .last = bn_time_s()};
    o.progress = on_progress;
    o.progress_user = &p;
    fprintf(stderr, "bitnet quantize: writing %s (%s linears, %s head, architecture %s%s)\n", out,
            bn_type_name(o.linear_type), bn_type_name(o.head_type), arch ? arch : bn_quant_default_arch(m),
            o.add_metadata || (m->gguf && bn_gguf_find(m->gguf, "tokenizer.ggml.tokens")) ? "" : ", no tokenizer");
    bn_quant_stats s;
    if (bn_model_save_quant(m, out, &o, &s) != BN_OK) {
        if (p.tty) fputc('\n', stderr);
        bn_cli_fail("quantize");
        goto done;
    }
    struct stat sb;
    const long long size = stat(out, &sb) == 0 ? (long long)sb.st_size : -1;
    const double secs = bn_time_s() - t0;
    if (o.linear_type != BN_TYPE_I2_S)
        fprintf(stderr, "bitnet quantize: %d of %d linear scales rounded to f16 (largest relative change %.3g)\n",
                s.n_scale_rounded, s.n_linears, s.max_scale_rel_err);
    fprintf(stderr, "bitnet quantize: wrote %s: %d tensors, %.1f MB, head %s%s, in %.1f s\n", out, s.n_tensors,
            (double)size / 1e6, bn_type_name(o.head_type), s.head_copied ? " (copied)" : "", secs);
    if (json) print_json(in, out, o.linear_type, o.head_type, &s, size, secs);
    rc = 0;
done:
    bn_tokenizer_free(ts.tok);
    bn_gguf_free(ts.gguf);
    bn_model_free(m);
    return rc;
}
