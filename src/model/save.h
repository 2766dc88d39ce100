/* save.h — options for writing models (GGUF). */
#ifndef BN_SAVE_H
#define BN_SAVE_H

#include "formats/gguf.h"
#include "model.h"

typedef struct bn_save_options {
    bool    set_embd_type; /* false: F16 token embeddings (as bitnet.cpp) */
    bn_type embd_type;     /* F32, F16 or BF16 when set_embd_type        */
    /* Called after the hyper-parameters are written: add tokenizer or other
     * metadata (e.g. the tokenizer's bn_tokenizer_write_gguf). */
    bn_status (*add_metadata)(bn_gguf_writer *w, void *user);
    void *user;
} bn_save_options;

bn_status bn_model_save_gguf_ex(const bn_model *m, const char *path, const bn_save_options *opt);

#endif
