/* utf8.c — strict UTF-8 scanning and the GPT-2 byte <-> unicode map used by
 * byte-level vocabularies (tokenizer.json, GGUF) to spell raw bytes. */
#include "tokenizer/tokenizer.h"

#include <string.h>

size_t bn_utf8_get(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

size_t bn_utf8_valid_len(const uint8_t *s, size_t n) {
    uint32_t cp;
    return bn_utf8_get(s, n, &cp);
}

size_t bn_utf8_valid_prefix(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }  /* ASCII fast path */
        size_t l = bn_utf8_valid_len(s + i, n - i);
        if (!l) break;
        i += l;
    }
    return i;
}

/* Could s[0..k) (k < needed length) still be completed into a valid
 * character? Checks the lead byte and the second-byte ranges that rule out
 * overlongs, surrogates and values above U+10FFFF. */
static bool utf8_viable_prefix(const uint8_t *s, size_t k, size_t *need) {
    uint8_t c = s[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return false;
    if (k >= len) return false;
    if (k >= 2 && (s[1] < lo || s[1] > hi)) return false;
    for (size_t i = 2; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return false;
    *need = len;
    return true;
}

size_t bn_utf8_incomplete_tail(const uint8_t *s, size_t n) {
    /* A lead byte is at most 3 bytes before the end. */
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        const uint8_t *p = s + n - k;
        if ((*p & 0xC0) == 0x80) continue;  /* continuation: look further back */
        size_t need;
        return utf8_viable_prefix(p, k, &need) ? k : 0;
    }
    return 0;
}

size_t bn_utf8_put(uint32_t cp, char *buf) {
    if (cp < 0x80) { buf[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        buf[0] = (char)(0xC0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = (char)(0xF0 | (cp >> 18));
    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2's map: printable Latin-1 bytes (33..126, 161..172, 174..255) stand
 * for themselves; the other 68 bytes are given codepoints 256, 257, ... in
 * byte order, so that every byte is a visible, non-space character. */
static bool byte_is_self(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
}

/* The 68 remapped bytes in order are 0..32, 127..160 and 173. */
uint32_t bn_byte_to_unicode(uint8_t b) {
    if (byte_is_self(b)) return b;
    if (b <= 32) return 256u + b;
    if (b >= 127 && b <= 160) return 256u + 33u + (b - 127u);
    return 256u + 67u; /* 173 */
}

int bn_unicode_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_self(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(127 + (k - 33));
    return 173;
}

bool bn_bytelevel_decode(const char *s, size_t n, char *out, size_t *out_n) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = bn_utf8_get(u + i, n - i, &cp);
        if (!l) return false;
        int b = bn_unicode_to_byte(cp);
        if (b < 0) return false;
        out[o++] = (char)b;
        i += l;
    }
    *out_n = o;
    return true;
}

size_t bn_bytelevel_encode(const uint8_t *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) o += bn_utf8_put(bn_byte_to_unicode(s[i]), out + o);
    return o;
}
