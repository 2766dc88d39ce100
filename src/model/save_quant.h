/* save_quant.h — write a loaded model as GGUF with a chosen ternary form for
 * the linears and a chosen type for the tied head (`bitnet quantize`). */
#ifndef BN_SAVE_QUANT_H
#define BN_SAVE_QUANT_H

#include "formats/gguf.h"
#include "model.h"

typedef struct bn_quant_options {
    bn_type     linear_type; /* BN_TYPE_I2_S, BN_TYPE_TQ2_0 or BN_TYPE_TQ1_0              */
    bn_type     head_type;   /* F16, BF16, F32, Q8_0 or Q6_K                               */
    const char *arch;        /* NULL: bn_quant_default_arch(m). "bitnet" on a ReLU^2
                              * (2B4T) model makes every reader run a SiLU FFN       */
    int         n_threads;   /* <= 0: all CPUs                                             */
    /* GGUF sources: their metadata (tokenizer.*, general.* ...) is copied
     * except the architecture's own keys, which are written from the model.
     * Other sources: called to add the tokenizer (may be NULL). */
    bn_status (*add_metadata)(bn_gguf_writer *w, void *user);
    void       *user;
    /* true: the tokenizer comes from add_metadata even for a GGUF source,
     * whose tokenizer.* keys are then not copied (bitnet quantize --tokenizer) */
    bool        replace_tokenizer;
    /* Called after each tensor is encoded, and along the way through a
     * re-encoded head (done unchanged, name "token_embd.weight 35%"). May be NULL. */
    void      (*progress)(int done, int total, const char *name, void *user);
    void       *progress_user;
} bn_quant_options;

typedef struct bn_quant_stats {
    int      n_tensors, n_linears;
    int      n_scale_rounded;   /* linears whose scale changed (f16 rounding for TQ)  */
    double   max_scale_rel_err; /* largest |f16(beta) - beta| / beta                  */
    bool     head_copied;       /* head bytes copied unchanged from the source GGUF   */
    bn_type  head_src_type;     /* the head's type in the source                      */
    char     arch[32];          /* general.architecture written                       */
} bn_quant_stats;

/* Default architecture name: "bitnet-b1.58" for a ReLU^2 (2B4T) model,
 * "bitnet" for a SiLU-FFN (1bitLLM) one, for every linear type. */
const char *bn_quant_default_arch(const bn_model *m);
/* Head type of the source: the stored type for GGUF files (F16, BF16, F32,
 * Q8_0, Q6_K), else the loaded table's type. */
bn_type bn_quant_source_head_type(const bn_model *m);

/* Write `path` atomically (path.tmp, then rename; nothing is left on error).
 * stats may be NULL. */
bn_status bn_model_save_quant(const bn_model *m, const char *path, const bn_quant_options *o, bn_quant_stats *stats);

#endif
