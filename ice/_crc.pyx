"""CRC-32 (ISO-HDLC / zlib / IEEE 802.3; reflected polynomial 0xEDB88320).

STUN FINGERPRINT (RFC 8489, section 14.7) is this CRC over the message up to
the FINGERPRINT attribute, XORed with 0x5354554e; the XOR is the caller's job.

C level, from another extension::

    from ice._crc cimport crc32_update
    crc = crc32_update(0, ptr, n)        # == zlib.crc32(data)
    crc = crc32_update(crc, ptr2, n2)    # == zlib.crc32(data2, crc): chaining

Python level: ``crc32(data, value=0) -> int``, a drop-in for ``zlib.crc32``.

The kernel is table-driven slicing-by-16 (16 KiB of tables), then one
8-byte and one 4-byte step and single bytes for the tail. Measured here it is
about twice as fast as slicing-by-8 at every length from 20 bytes up, because
the loop is bound by the latency of the table lookups that depend on the CRC
register, one round per 16 bytes instead of per 8. It reads the input a byte
at a time (the C compiler fuses the byte loads into word loads where the
target allows unaligned access), so it needs no alignment and gives the same
result on little- and big-endian hosts. The tables are static C arrays filled
once, at import.

On x86-64 CPUs with PCLMULQDQ (every one since 2010) runs of 64 bytes or
more are folded by carry-less multiplication instead (ice/_crc_clmul.h), and
the table kernel finishes the last 0-15 bytes. ``BACKEND`` names the path in
use ("x86-pclmul" or "table"); a portable build (ICE_PORTABLE=1) has only
the table.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_Clear
from cpython.long cimport PyLong_AsUnsignedLongMask
from libc.stdint cimport uint8_t, uint32_t

cdef extern from "_crc_clmul.h":
    int ice_crc_clmul_available() noexcept nogil
    uint32_t ice_crc_clmul_fold(const uint8_t *p, size_t length, uint32_t reg) noexcept nogil
    const char *ICE_CRC_CLMUL_NAME

cdef extern from "Python.h":
    # Redeclared without an exception clause, so that a refusal (such as a
    # non-contiguous memoryview asked for a simple buffer) can be answered
    # by copying instead of raising.
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer *view, int flags) noexcept

# Inputs at least this long are processed with the GIL released (zlib does
# the same above 5 KiB); below it, releasing costs more than it gains.
cdef size_t _NOGIL_MIN = 8192

# Below this many bytes the table kernel alone is faster than a fold, which
# needs 64 to start its four lanes.
cdef size_t _CLMUL_MIN = 64
cdef bint _clmul = ice_crc_clmul_available()

# _T[0] is the classic byte-at-a-time table; _T[k][b] is the CRC register
# contribution of byte b followed by k zero bytes.
cdef uint32_t _T[16][256]


cdef void _init_tables() noexcept nogil:
    cdef uint32_t c
    cdef int i, j, k
    for i in range(256):
        c = <uint32_t>i
        for j in range(8):
            if c & 1:
                c = (c >> 1) ^ 0xEDB88320U
            else:
                c >>= 1
        _T[0][i] = c
    for i in range(256):
        c = _T[0][i]
        for k in range(1, 16):
            c = _T[0][c & 0xFF] ^ (c >> 8)
            _T[k][i] = c


_init_tables()


cdef inline uint32_t _le32(const uint8_t *p) noexcept nogil:
    # Endian-independent little-endian load; GCC/Clang turn it into one mov.
    return ((<uint32_t>p[0]) | (<uint32_t>p[1] << 8)
            | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24))


cdef uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t length) noexcept nogil:
    """Continue a CRC-32: same contract as zlib.crc32(data, crc); 0 starts one."""
    cdef const uint8_t *p = data
    cdef uint32_t c = ~crc
    cdef size_t folded
    if _clmul and length >= _CLMUL_MIN:
        folded = length & ~(<size_t>15)
        c = ice_crc_clmul_fold(p, folded, c)
        p += folded
        length -= folded
    while length >= 16:
        c ^= _le32(p)
        c = (_T[15][c & 0xFF] ^ _T[14][(c >> 8) & 0xFF] ^ _T[13][(c >> 16) & 0xFF] ^ _T[12][c >> 24]
             ^ _T[11][p[4]] ^ _T[10][p[5]] ^ _T[9][p[6]] ^ _T[8][p[7]]
             ^ _T[7][p[8]] ^ _T[6][p[9]] ^ _T[5][p[10]] ^ _T[4][p[11]]
             ^ _T[3][p[12]] ^ _T[2][p[13]] ^ _T[1][p[14]] ^ _T[0][p[15]])
        p += 16
        length -= 16
    if length >= 8:
        c ^= _le32(p)
        c = (_T[7][c & 0xFF] ^ _T[6][(c >> 8) & 0xFF] ^ _T[5][(c >> 16) & 0xFF] ^ _T[4][c >> 24]
             ^ _T[3][p[4]] ^ _T[2][p[5]] ^ _T[1][p[6]] ^ _T[0][p[7]])
        p += 8
        length -= 8
    if length >= 4:
        c ^= _le32(p)
        c = _T[3][c & 0xFF] ^ _T[2][(c >> 8) & 0xFF] ^ _T[1][(c >> 16) & 0xFF] ^ _T[0][c >> 24]
        p += 4
        length -= 4
    while length:
        c = _T[0][(c ^ p[0]) & 0xFF] ^ (c >> 8)
        p += 1
        length -= 1
    return ~c


cdef inline uint32_t _crc_maybe_nogil(uint32_t crc, const uint8_t *data, size_t length) noexcept:
    if length >= _NOGIL_MIN:
        with nogil:
            crc = crc32_update(crc, data, length)
        return crc
    return crc32_update(crc, data, length)


def crc32(data, value=0):
    """CRC-32 of ``data`` continued from ``value``, exactly as ``zlib.crc32``:
    the result is an unsigned 32-bit int, ``value`` is a previous result (0
    to start) and is taken modulo 2**32, and
    ``crc32(b, crc32(a)) == crc32(a + b)``.

    ``data`` is any object supporting the buffer protocol (bytes, bytearray,
    memoryview, array.array, mmap, ...); its raw bytes are used whatever its
    item format. A non-contiguous buffer (for example ``memoryview(b)[::2]``)
    is accepted and copied first (zlib.crc32 refuses it); an object without
    the buffer protocol (str, int, None) raises TypeError.
    """
    cdef uint32_t start = <uint32_t>PyLong_AsUnsignedLongMask(value)
    cdef Py_buffer view
    cdef uint32_t result
    if PyBytes_CheckExact(data):
        return _crc_maybe_nogil(start, <const uint8_t *>PyBytes_AS_STRING(data),
                                <size_t>PyBytes_GET_SIZE(data))
    if not PyObject_CheckBuffer(data):
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")
    if _get_buffer(data, &view, PyBUF_SIMPLE) != 0:
        # The exporter refused a plain contiguous byte view: copy through a
        # full memoryview, which re-raises if the object cannot export at all.
        PyErr_Clear()
        data = memoryview(data).tobytes()
        return _crc_maybe_nogil(start, <const uint8_t *>PyBytes_AS_STRING(data),
                                <size_t>PyBytes_GET_SIZE(data))
    result = _crc_maybe_nogil(start, <const uint8_t *>view.buf, <size_t>view.len)
    PyBuffer_Release(&view)
    return result


def _backend():
    return ICE_CRC_CLMUL_NAME.decode("ascii") if _clmul else "table"


BACKEND = _backend()


def _use(str name):
    """Switch the kernel ("x86-pclmul" where available, or "table"), so that
    tests check both against zlib on a machine that has the instructions."""
    global _clmul, BACKEND
    if name == "table":
        _clmul = False
    elif name and name == ICE_CRC_CLMUL_NAME.decode("ascii") and ice_crc_clmul_available():
        _clmul = True
    else:
        raise ValueError(f"no CRC-32 backend {name!r} on this machine")
    BACKEND = _backend()
