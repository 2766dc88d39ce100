/* json_bound.c — a cheap pre-parse bound on the size of a JSON document. */
#include "core.h"

size_t bn_json_value_bound(const char *text, size_t len) {
    size_t n = 1;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        const char c = text[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') in_str = true;
        else if (c == ',' || c == '[' || c == '{') n++;
    }
    return n;
}
