/* utf8.c — UTF-8 checks for the HTTP side: request bodies must be valid
 * UTF-8 (RFC 8259), and generated text (a random or small model may emit
 * any bytes) is repaired with U+FFFD before it goes into JSON. */
#include "server/server.h"

#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s[0..n), 0 if invalid or cut. */
static size_t seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c == 0xE0) { need = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) need = 3;
    else if (c == 0xED) { need = 3; hi = 0x9F; } /* no surrogates */
    else if (c >= 0xEE && c <= 0xEF) need = 3;
    else if (c == 0xF0) { need = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) need = 4;
    else if (c == 0xF4) { need = 4; hi = 0x8F; }
    else return 0;
    if (n < need) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return need;
}

bool bn_srv_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = seq_len(p + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

bn_status bn_srv_utf8_sanitize(const char *s, size_t n, char **out, size_t *out_len) {
    /* worst case: every byte becomes the 3 bytes of U+FFFD */
    if (n > SIZE_MAX / 3 - 1) return bn_fail(BN_ERR_NOMEM, "text too long");
    char *o = malloc(n * 3 + 1);
    if (!o) return bn_fail(BN_ERR_NOMEM, "out of memory");
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, j = 0;
    while (i < n) {
        size_t k = seq_len(p + i, n - i);
        if (k) {
            memcpy(o + j, p + i, k);
            j += k;
            i += k;
        } else {
            memcpy(o + j, "\xEF\xBF\xBD", 3);
            j += 3;
            i++;
        }
    }
    o[j] = '\0';
    *out = o;
    *out_len = j;
    return BN_OK;
}
