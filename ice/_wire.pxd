# Network byte order on raw pointers, shared by every compiled module
# (cimport-only: inline functions compiled into each user).

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy


cdef inline uint16_t load16(const uint8_t *p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t load32(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void store16(uint8_t *p, uint16_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 8)
    p[1] = <uint8_t>v


cdef inline void store32(uint8_t *p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24)
    p[1] = <uint8_t>(v >> 16)
    p[2] = <uint8_t>(v >> 8)
    p[3] = <uint8_t>v


cdef inline Py_ssize_t padded(Py_ssize_t n) noexcept nogil:
    """n rounded up to the 4-byte boundary STUN aligns attributes on."""
    return (n + 3) & ~3


cdef inline bint same_bytes(const void *a, const void *b, Py_ssize_t n) noexcept nogil:
    """memcmp(a, b, n) == 0 without a library call for the short values attributes
    carry: two overlapping 8-byte loads cover 8-16 bytes. Not constant-time."""
    cdef uint64_t x0, x1, y0, y1
    cdef uint32_t u0, u1, v0, v1
    if n > 16:
        return memcmp(a, b, n) == 0
    if n >= 8:
        memcpy(&x0, a, 8)
        memcpy(&y0, b, 8)
        memcpy(&x1, <const char *>a + n - 8, 8)
        memcpy(&y1, <const char *>b + n - 8, 8)
        return ((x0 ^ y0) | (x1 ^ y1)) == 0
    if n >= 4:
        memcpy(&u0, a, 4)
        memcpy(&v0, b, 4)
        memcpy(&u1, <const char *>a + n - 4, 4)
        memcpy(&v1, <const char *>b + n - 4, 4)
        return ((u0 ^ v0) | (u1 ^ v1)) == 0
    return n == 0 or memcmp(a, b, n) == 0
