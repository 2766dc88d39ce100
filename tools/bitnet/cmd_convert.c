/* cmd_convert.c — `bitnet convert`: any loadable model -> GGUF as bitnet.cpp
 * writes it (architecture bitnet-b1.58, I2_S linears), tokenizer included. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model/model.h"
#include "model/save.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet convert IN OUT.gguf [--type i2_s] [--embd-type f16|bf16|f32]\n"
            "       bitnet convert IN OUT_DIR --to hf-packed|hf-bf16\n\n"
            "Converts a model (Hugging Face folder: packed or bf16/f32 masters; or GGUF) to a\n"
            "GGUF file with architecture bitnet-b1.58 and I2_S ternary weights, as bitnet.cpp\n"
            "writes it. The tokenizer (tokenizer.json or GGUF vocabulary) is carried over.\n"
            "  --type T         weight form of the linears: i2_s (default)\n"
            "  --embd-type T    token embeddings / tied head: f16 (default, as bitnet.cpp), bf16, f32\n"
            "  --no-tokenizer   do not embed the tokenizer\n"
            "  --to FORM        gguf (default), or a Hugging Face folder OUT_DIR (config.json +\n"
            "                   model.safetensors + the source folder's tokenizer files):\n"
            "                   hf-packed  U8 packed ternary + BF16 weight_scale (quantization_mode offline)\n"
            "                   hf-bf16    BF16 float masters (quantization_mode online); needs a\n"
            "                              source with masters (bf16/f32 HF folder, `bitnet train --save`)\n");
}

static bn_status add_tokenizer(bn_gguf_writer *w, void *user) {
    return bn_tokenizer_write_gguf((const bn_tokenizer *)user, w);
}

/* --to hf-packed|hf-bf16: a Hugging Face folder (model/save_hf.c). */
static int convert_hf(const char *in, const char *out, bn_hf_form form) {
    bn_model *m = NULL;
    double t0 = bn_time_s();
    int n_tok = 0, rc = 1;
    fprintf(stderr, "bitnet convert: loading %s\n", in);
    if (bn_cli_load_model(in, &m) != BN_OK) { bn_cli_fail("cannot load model"); goto done; }
    fprintf(stderr, "bitnet convert: writing %s (%s)\n", out, form == BN_HF_FORM_BF16 ? "hf-bf16" : "hf-packed");
    if (bn_model_save_hf(m, out, form, &n_tok) != BN_OK) { bn_cli_fail("convert"); goto done; }
    if (!n_tok)
        fprintf(stderr, "bitnet convert: no tokenizer files copied (the source is not an HF folder with "
                        "tokenizer.json; there is no tokenizer.json writer for other sources)\n");
    fprintf(stderr, "bitnet convert: done in %.1f s\n", bn_time_s() - t0);
    rc = 0;
done:
    bn_model_free(m);
    return rc;
}

int bn_cmd_convert(int argc, char **argv) {
    const char *cmd = "convert", *in = NULL, *out = NULL, *type = "i2_s", *embd = "f16", *to = "gguf";
    bool with_tok = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (bn_cli_is_help(a)) { usage(stdout); return 0; }
        else if (!strcmp(a, "--type")) { if (!(type = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--embd-type")) { if (!(embd = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--no-tokenizer")) with_tok = false;
        else if (!strcmp(a, "--to")) { if (!(to = bn_cli_value(cmd, argc, argv, &i))) return 2; }
        else if (a[0] == '-' && a[1]) return bn_cli_usage_error(cmd, "unknown option '%s'", a);
        else if (!in) in = a;
        else if (!out) out = a;
        else return bn_cli_usage_error(cmd, "unexpected argument '%s'", a);
    }
    if (!in || !out) return bn_cli_usage_error(cmd, "IN and OUT.gguf are required");
    if (strcmp(to, "gguf") != 0) {
        if (strcmp(to, "hf-packed") != 0 && strcmp(to, "hf-bf16") != 0)
            return bn_cli_usage_error(cmd, "--to '%s' is not one of gguf, hf-packed, hf-bf16", to);
        return convert_hf(in, out, !strcmp(to, "hf-bf16") ? BN_HF_FORM_BF16 : BN_HF_FORM_PACKED);
    }
    if (strcmp(type, "i2_s") != 0 && strcmp(type, "I2_S") != 0)
        return bn_cli_usage_error(cmd, "--type '%s' is not supported (i2_s)", type);
    bn_save_options opt = {.set_embd_type = true};
    if (!strcmp(embd, "f16")) opt.embd_type = BN_TYPE_F16;
    else if (!strcmp(embd, "bf16")) opt.embd_type = BN_TYPE_BF16;
    else if (!strcmp(embd, "f32")) opt.embd_type = BN_TYPE_F32;
    else return bn_cli_usage_error(cmd, "--embd-type '%s' is not one of f16, bf16, f32", embd);

    bn_model *m = NULL;
    bn_tokenizer *tok = NULL;
    int rc = 1;
    double t0 = bn_time_s();
    fprintf(stderr, "bitnet convert: loading %s\n", in);
    if (bn_cli_load_model(in, &m) != BN_OK) { bn_cli_fail("cannot load model"); goto done; }
    if (with_tok && m->tokenizer_path) {
        if (bn_tokenizer_load(m->tokenizer_path, &tok) != BN_OK) {
            /* A folder without tokenizer files is still a model. */
            fprintf(stderr, "bitnet convert: no tokenizer carried over (%s)\n", bn_last_error());
            tok = NULL;
        } else {
            opt.add_metadata = add_tokenizer;
            opt.user = tok;
        }
    }
    fprintf(stderr, "bitnet convert: writing %s (I2_S, %s embeddings%s)\n", out, embd, tok ? ", with tokenizer" : "");
    if (bn_model_save_gguf_ex(m, out, &opt) != BN_OK) { bn_cli_fail("convert"); goto done; }
    fprintf(stderr, "bitnet convert: done in %.1f s\n", bn_time_s() - t0);
    rc = 0;
done:
    bn_tokenizer_free(tok);
    bn_model_free(m);
    return rc;
}
