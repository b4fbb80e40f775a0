# C-level surface of the compiled codec, for the attribute modules that
# cimport it. Everything here is also reachable from Python through the
# methods of Message (see _codec.pyi).

cimport cython

from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "_sha.h":
    ctypedef struct ice_hmac_sha1_key:
        pass
    ctypedef struct ice_hmac_sha256_key:
        pass


cdef enum:
    HEADER_SIZE = 20
    INLINE_BUFFER = 192   # bytes stored inside the object before malloc is needed
    INLINE_ATTRS = 12     # index entries stored inside the object
    FAMILY_IPV4 = 0x01
    FAMILY_IPV6 = 0x02


ctypedef struct AttrRef:
    uint16_t type
    uint16_t length
    uint32_t offset       # where the value starts in the buffer


cdef class IntegrityKey:
    """A key with its HMAC inner/outer states precomputed (SHA-1, and SHA-256 on demand)."""
    cdef readonly bytes key
    cdef ice_hmac_sha1_key _sha1
    cdef ice_hmac_sha256_key _sha256
    cdef bint _sha256_ready
    cdef ice_hmac_sha256_key *sha256_state(self) noexcept


cdef IntegrityKey as_integrity_key(object key)


cdef class Message:
    cdef uint8_t *_buf
    cdef Py_ssize_t _size
    cdef Py_ssize_t _capacity
    cdef AttrRef *_attrs
    cdef Py_ssize_t _nattrs
    cdef Py_ssize_t _attrs_capacity
    cdef uint8_t _inline_buf[INLINE_BUFFER]
    cdef AttrRef _inline_attrs[INLINE_ATTRS]
    # What the tail of the message already seals: 0 nothing, 1 MESSAGE-INTEGRITY,
    # 2 MESSAGE-INTEGRITY-SHA256, 3 FINGERPRINT. Attributes after a seal are
    # ignored by receivers (RFC 8489 14.5-14.7), so adding one is refused.
    cdef int _seal
    cdef Py_ssize_t _exports  # live buffer views of _buf: it must not move meanwhile

    # The _or_refuse and _parse* methods return -1 with the error set instead of
    # raising through Cython: a refused datagram costs no traceback entry.
    @cython.final
    cdef int _reserve_bytes(self, Py_ssize_t extra) except -1
    @cython.final
    cdef int _reserve_or_refuse(self, Py_ssize_t extra) noexcept
    @cython.final
    cdef inline int _push_ref(self, uint16_t attr_type, Py_ssize_t offset, Py_ssize_t length) except -1
    @cython.final
    cdef int _grow_attrs(self) except -1
    @cython.final
    cdef int _grow_attrs_or_refuse(self) noexcept
    @cython.final
    cdef uint8_t *_append(self, uint16_t attr_type, Py_ssize_t length) except NULL
    @cython.final
    cdef int _add_raw(self, uint16_t attr_type, const uint8_t *value, Py_ssize_t length) except -1
    @cython.final
    cdef Py_ssize_t _find(self, uint16_t attr_type) noexcept
    @cython.final
    cdef int _parse(self, const uint8_t *data, Py_ssize_t length) noexcept
    @cython.final
    cdef int _parse_object(self, object data) except -1
    @cython.final
    cdef int _parse_data(self, object data) noexcept
    @cython.final
    cdef int _parse_or_empty(self, const uint8_t *data, Py_ssize_t length) noexcept
    @cython.final
    cdef void _set_length(self, Py_ssize_t body) noexcept
    cdef int _add_address(self, uint16_t attr_type, int family, const uint8_t *ip,
                          uint16_t port, bint xored) except -1
    cdef int _get_address(self, uint16_t attr_type, int *family, uint8_t *ip,
                          uint16_t *port, bint xored) except -1
    cdef int _add_integrity_sha1(self, IntegrityKey key) except -1
    cdef int _add_integrity_sha256(self, IntegrityKey key, Py_ssize_t length) except -1
    cdef int _add_fingerprint(self) except -1
    # 0, or -1 with IntegrityError / FingerprintError (or the key's TypeError) set.
    @cython.final
    cdef int _check_integrity_sha1(self, object key) noexcept
    @cython.final
    cdef int _check_integrity_sha256(self, object key) noexcept
    @cython.final
    cdef int _check_fingerprint(self) noexcept
    cdef int _set_transaction_id(self, object value) except -1


cdef class Attribute:
    # The class's TYPE, looked up on the first _apply (0 until then): kept
    # instances (see ice_made_* in _fastcall.h) skip the look-up per message.
    cdef uint16_t _wire_type
    cdef int _apply(self, Message msg) except -1


cdef int parse_ip(object host, uint8_t *out) except 0
cdef str format_ip(int family, const uint8_t *ip)
# Strict UTF-8 of attribute text: None for bytes that are not, and no exception
# made either way (see _utf8.h); inline, as it runs for every text attribute read.
# refuse_text sets the DecodeError that says why and returns -1; decode_text does both.
cdef extern from "_utf8.h":
    int ice_text_escaped(object text) noexcept
    const char *ice_utf8_error(const uint8_t *data, Py_ssize_t length, Py_ssize_t *at) noexcept

cdef inline str decode_or_none(const uint8_t *data, Py_ssize_t length):
    cdef str text = PyUnicode_DecodeUTF8(<const char *>data, length, "surrogateescape")
    return None if ice_text_escaped(text) else text

cdef int refuse_text(const uint8_t *data, Py_ssize_t length, object owner) except -1
cdef str decode_text(const uint8_t *data, Py_ssize_t length, object owner)
