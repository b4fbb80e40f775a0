/* Strict UTF-8 (RFC 3629) for attribute text, without exceptions.
 *
 * A server reads USERNAME, REALM and NONCE from whatever arrives. Decoding
 * them strictly made a UnicodeDecodeError for each malformed one (with a copy
 * of the bytes), and the text paths made it twice, so refusing a non-UTF-8
 * USERNAME cost seven times CPython's cheapest raise.
 *
 * Decoded with "surrogateescape" instead, bytes never raise: valid UTF-8
 * decodes exactly as strictly, and each byte that is not becomes one of
 * U+DC80..U+DCFF, which strict UTF-8 cannot encode (RFC 3629 excludes the
 * surrogates). So the text holds such a character if and only if the bytes
 * were not strict UTF-8; text of one byte per character never does.
 *
 * ice_utf8_error says why and where, in CPython's words, for the message. */
#ifndef ICE_UTF8_H
#define ICE_UTF8_H

#include <Python.h>
#include <stdint.h>

/* Whether text decoded with "surrogateescape" escaped a byte. */
static inline int ice_text_escaped(PyObject *text)
{
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_ssize_t i;
    if (kind == PyUnicode_1BYTE_KIND)
        return 0;
    for (i = 0; i < n; i++) {
        const Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c >= 0xDC80 && c <= 0xDCFF)
            return 1;
    }
    return 0;
}

/* Why p[0:n] is not strict UTF-8, and the offset of the sequence at fault;
 * NULL when it is. */
static inline const char *ice_utf8_error(const uint8_t *p, Py_ssize_t n, Py_ssize_t *at)
{
    Py_ssize_t i = 0, k, more;
    uint8_t lo, hi;
    while (i < n) {
        const uint8_t c = p[i];
        lo = 0x80;
        hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0; /* not overlong */
            else if (c == 0xED)
                hi = 0x9F; /* not a surrogate */
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90; /* not overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* not above U+10FFFF */
        } else {
            *at = i;
            return "invalid start byte";
        }
        for (k = 1; k <= more; k++) {
            if (i + k >= n) {
                *at = i;
                return "unexpected end of data";
            }
            if (p[i + k] < (k == 1 ? lo : 0x80) || p[i + k] > (k == 1 ? hi : 0xBF)) {
                *at = i;
                return "invalid continuation byte";
            }
        }
        i += more + 1;
    }
    return NULL;
}

#endif
