/* Refusing input at the price of CPython's cheapest raise.
 *
 * A server meets malformed datagrams at line rate, so turning one away must
 * cost what a C builtin's raise costs, not more. Two things made it cost
 * three to four times that:
 *
 * - Cython records a traceback entry in every one of its functions an
 *   exception passes through (a code object and a frame each: ~120 ns a
 *   level), and the decoder was four levels deep.
 * - The messages were f-strings: a str per number and a join (~90 ns).
 *
 * So the refusing paths are written to return -1 (or NULL) with the exception
 * set, never through Cython's raise, up to a C-level entry point; and
 * ice_refuse builds its message in a stack buffer. The message keeps the
 * detail a person debugging a peer needs (what, where, how long).
 *
 * ice_refuse(type, fmt, ...) understands %zd (Py_ssize_t), %0Nx (unsigned
 * int, at least N hex digits, N = 1-8), %s (const char *, UTF-8) and %%:
 * what the refusal messages use. */
#ifndef ICE_REFUSAL_H
#define ICE_REFUSAL_H

#include <Python.h>
#include <stdarg.h>
#include <string.h>

#define ICE_REFUSAL_MAX 512

static char *ice_refusal_put(char *out, char *end, const char *text, size_t n)
{
    if (n > (size_t)(end - out))
        n = (size_t)(end - out);
    memcpy(out, text, n);
    return out + n;
}

static char *ice_refusal_unsigned(char *out, char *end, unsigned long long v, int base, int width)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v);
    while (n < width && n < (int)sizeof(digits))
        digits[n++] = '0';
    while (n && out < end)
        *out++ = digits[--n];
    return out;
}

static char *ice_refusal_signed(char *out, char *end, long long v)
{
    if (v >= 0)
        return ice_refusal_unsigned(out, end, (unsigned long long)v, 10, 0);
    if (out < end)
        *out++ = '-';
    return ice_refusal_unsigned(out, end, 0ULL - (unsigned long long)v, 10, 0);
}

static PyObject *ice_refusal_text(const char *fmt, va_list ap)
{
    char buf[ICE_REFUSAL_MAX];
    char *out = buf, *end = buf + sizeof(buf);
    const char *p = fmt;
    while (*p && out < end) {
        if (*p != '%') {
            const char *next = strchr(p, '%');
            size_t n = next ? (size_t)(next - p) : strlen(p);
            out = ice_refusal_put(out, end, p, n);
            p += n;
            continue;
        }
        p++;
        if (p[0] == 'z' && p[1] == 'd') {
            out = ice_refusal_signed(out, end, va_arg(ap, Py_ssize_t));
            p += 2;
        } else if (p[0] == '0' && p[1] >= '1' && p[1] <= '8' && p[2] == 'x') {
            out = ice_refusal_unsigned(out, end, va_arg(ap, unsigned int), 16, p[1] - '0');
            p += 3;
        } else if (p[0] == 's') {
            const char *s = va_arg(ap, const char *);
            out = ice_refusal_put(out, end, s, strlen(s));
            p += 1;
        } else if (p[0] == '%') {
            *out++ = '%';
            p += 1;
        } else {
            /* A format this helper does not know is a bug here, not input. */
            PyErr_Format(PyExc_SystemError, "ice_refuse: unknown format in %s", fmt);
            return NULL;
        }
    }
    return PyUnicode_DecodeUTF8(buf, out - buf, "replace");
}

/* Set type(message) and return -1. */
static int ice_refuse(PyObject *type, const char *fmt, ...)
{
    PyObject *text;
    va_list ap;
    va_start(ap, fmt);
    text = ice_refusal_text(fmt, ap);
    va_end(ap);
    if (text != NULL) {
        PyErr_SetObject(type, text);
        Py_DECREF(text);
    }
    return -1;
}

/* A class's name as cls.__name__ reads it (tp_name without its module), and
 * the name of obj's class. */
static inline const char *ice_type_name(PyObject *type)
{
    const char *name = ((PyTypeObject *)type)->tp_name;
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

static inline const char *ice_class_name(PyObject *obj)
{
    return ice_type_name((PyObject *)Py_TYPE(obj));
}

static inline int ice_refuse_no_memory(void)
{
    PyErr_NoMemory();
    return -1;
}

#endif
