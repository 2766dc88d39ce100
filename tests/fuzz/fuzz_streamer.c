/* fuzz_streamer.c — libFuzzer target for the generation text streamer and
 * the sampler.
 * Input: byte 0 = number of stop strings (0..3), then the stop strings and
 * the token pieces, all separated by 0xFF bytes. Invariants:
 *   - the released chunks concatenate to a prefix of the pushed bytes, and
 *     with the final flush to the streamer's text exactly;
 *   - the text is the pushed bytes cut at the first stop-string match, and
 *     no released chunk sequence ever contains a stop string;
 *   - no chunk released before the flush ends inside a UTF-8 character
 *     (a lead byte followed, in the final text, by its continuation bytes).
 * The remaining bytes, read as logits, must sample a token that is in range
 * and not banned. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "generate/generate_internal.h"

static void check(bool ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int n_stop = data[0] % 4;
    char *buf = malloc(size + 1);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    /* split on 0xFF */
    const char *parts[512];
    size_t lens[512];
    int np = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size - 1 && np < 512; i++) {
        if (i == size - 1 || (uint8_t)buf[i] == 0xFF) {
            parts[np] = buf + start;
            lens[np] = i - start;
            np++;
            start = i + 1;
        }
    }
    char *stops[3];
    int ns = 0;
    for (; ns < n_stop && ns < np; ns++) {
        stops[ns] = malloc(lens[ns] + 1);
        memcpy(stops[ns], parts[ns], lens[ns]);
        stops[ns][lens[ns]] = '\0'; /* a stop string ends at its first NUL */
    }
    bn_streamer st;
    bn_streamer_init(&st, (const char *const *)stops, ns);
    char *pushed = malloc(size + 1), *released = malloc(size + 1);
    size_t n_pushed = 0, n_rel = 0, cuts[512];
    int n_cuts = 0;
    for (int k = ns; k < np; k++) {
        const char *out;
        size_t n;
        if (bn_streamer_push(&st, parts[k], lens[k], &out, &n) != BN_OK) abort();
        if (!st.stopped) { memcpy(pushed + n_pushed, parts[k], lens[k]); n_pushed += lens[k]; }
        if (n) {
            memcpy(released + n_rel, out, n);
            n_rel += n;
            cuts[n_cuts++] = n_rel;
        }
        if (st.stopped) break;
    }
    check(n_rel <= st.len && !memcmp(released, st.text ? st.text : "", n_rel));
    const char *out;
    size_t n;
    bn_streamer_flush(&st, &out, &n);
    if (n) { memcpy(released + n_rel, out, n); n_rel += n; }
    check(n_rel == st.len && (n_rel == 0 || !memcmp(released, st.text, n_rel)));
    if (!st.stopped) check(n_rel == n_pushed && !memcmp(released, pushed, n_pushed));
    released[n_rel] = '\0';
    for (int k = 0; k < n_cuts; k++) {
        const unsigned char *t = (const unsigned char *)released;
        size_t c = cuts[k];
        if (c >= n_rel) continue;
        for (size_t b = 1; b <= 3 && b <= c; b++) {
            unsigned char lead = t[c - b];
            if ((lead & 0xC0) == 0x80) continue;
            size_t need = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 && lead < 0xF0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 1;
            bool whole = need > b && c - b + need <= n_rel;
            for (size_t j = 1; whole && j < need; j++) whole = (t[c - b + j] & 0xC0) == 0x80;
            check(!whole); /* a character split by a release */
            break;
        }
    }
    for (int k = 0; k < ns; k++)
        if (stops[k][0]) check(memmem(released, n_rel, stops[k], strlen(stops[k])) == NULL);

    /* the sampler on arbitrary floats */
    size_t nf = (size - 1) / sizeof(float);
    if (nf > 0 && nf <= 4096) {
        float *lg = malloc(nf * sizeof *lg);
        memcpy(lg, data + 1, nf * sizeof *lg);
        bn_sampler_params p = bn_sampler_default_params();
        p.temperature = (float)(data[0] % 5) * 0.5f;
        p.top_k = data[0] % 7;
        bn_sampler *s = NULL;
        if (bn_sampler_create(&p, &s) == BN_OK) {
            int32_t t = -1;
            bn_sample_info info;
            if (bn_sampler_sample(s, lg, (int32_t)nf, NULL, 0, 3, &info, &t) == BN_OK)
                check(t >= 0 && (size_t)t < nf && lg[t] > -INFINITY && !isnan(lg[t]));
            bn_sampler_free(s);
        }
        free(lg);
    }

    bn_streamer_free(&st);
    for (int k = 0; k < ns; k++) free(stops[k]);
    free(pushed);
    free(released);
    free(buf);
    return 0;
}
