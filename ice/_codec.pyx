# The STUN / ChannelData wire codec (RFC 8489, RFC 8656 section 12).
#
# A Message owns one buffer holding the encoded message exactly as it goes
# on the wire, plus an index of (type, offset, length) for its attributes.
# Adding an attribute appends to the buffer and keeps the header length in
# step, so bytes(msg) is a copy, never a serialisation. MESSAGE-INTEGRITY(-SHA256)
# and FINGERPRINT are computed over the buffer in place, with the length field
# patched to the value RFC 8489 sections 14.5-14.7 prescribe while hashing.

cimport cython
from cpython.exc cimport PyErr_Clear, PyErr_ExceptionMatches, PyErr_SetObject
from cpython.ref cimport Py_INCREF
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport (
    PyBUF_FORMAT,
    PyBUF_ND,
    PyBUF_SIMPLE,
    PyBUF_STRIDES,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport Py_TPFLAGS_HEAPTYPE, Py_TYPE, PyObject, PyTypeObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

cdef extern from "_fastcall.h":
    int ice_type_set(object type, object name, object value) except -1
    object ice_fastcall_function(const char *name, void *fn, const char *doc)
    int ice_type_set_method(object type, const char *name, void *fn, int flags,
                            const char *doc) except -1
    enum:
        METH_O
        METH_FASTCALL
    void ice_set_allocator(object type, void *alloc, void *free)
    void ice_set_dealloc(object type, void *dealloc)
    size_t ice_pointer_slot(const void *a, const void *b, int bits)

cdef extern from "Python.h":
    str PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object text)
    # Redeclared without an exception clause: the decoder's refusals are
    # returned as -1 with the error set, never raised through Cython.
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer *view, int flags) noexcept
    void _decref "Py_DECREF"(PyObject *obj) noexcept
    PyObject *_bytes_from "PyBytes_FromStringAndSize"(const char *data, Py_ssize_t n) noexcept
    PyObject *_long_from "PyLong_FromLong"(long value) noexcept
    PyObject *_pack2 "PyTuple_Pack"(Py_ssize_t n, PyObject *a, PyObject *b) noexcept
    int _is_true "PyObject_IsTrue"(PyObject *obj) noexcept
    int _ascii_equal "PyUnicode_CompareWithASCIIString"(PyObject *text, const char *ascii) noexcept

cdef extern from *:
    """
    static PyObject *ice_new_instance(PyTypeObject *type, PyObject *no_args)
    {
        return type->tp_new(type, no_args, NULL);
    }
    """
    PyObject *ice_new_instance(PyTypeObject *type, object no_args) noexcept

cdef extern from "_refusal.h":
    int ice_refuse(object error, const char *fmt, ...) noexcept
    const char *ice_class_name(object obj) noexcept
    const char *ice_type_name(object type) noexcept
    int ice_refuse_no_memory() noexcept
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memmove, memset

from ice._wire cimport load16, load32, store16, store32, padded

from ice._crc cimport crc32_update

import os
import socket

from ice._errors import DecodeError, FingerprintError, IntegrityError

# The classes the refusing paths set without a look-up (see _refusal.h).
cdef object _DecodeError = DecodeError
cdef object _IntegrityError = IntegrityError
cdef object _FingerprintError = FingerprintError
cdef object _TypeError = TypeError
cdef object _BufferError = BufferError


cdef extern from "_sha.h":
    void ice_hmac_sha1_init(ice_hmac_sha1_key *k, const uint8_t *key, size_t key_len) nogil
    void ice_hmac_sha256_init(ice_hmac_sha256_key *k, const uint8_t *key, size_t key_len) nogil
    void ice_hmac_sha1(const ice_hmac_sha1_key *k, const uint8_t *msg, size_t length,
                       uint8_t *out) nogil
    void ice_hmac_sha256(const ice_hmac_sha256_key *k, const uint8_t *msg, size_t length,
                         uint8_t *out) nogil
    void ice_sha1(const uint8_t *msg, size_t length, uint8_t *out) nogil
    void ice_sha256(const uint8_t *msg, size_t length, uint8_t *out) nogil
    const char *ice_sha_backend() nogil
    const char *ice_sha_compiled() nogil
    int ice_sha_available() nogil
    int ice_sha_hardware() nogil
    int ice_sha_use(const char *name) nogil
    int ice_ct_compare(const uint8_t *a, const uint8_t *b, size_t length) nogil


cdef enum:
    MAGIC_COOKIE = 0x2112A442
    MAX_BODY = 0xFFFF
    ATTR_MESSAGE_INTEGRITY = 0x0008
    ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C
    ATTR_FINGERPRINT = 0x8028
    SEAL_NONE = 0
    SEAL_SHA1 = 1
    SEAL_SHA256 = 2
    SEAL_FINGERPRINT = 3
    POOL_SIZE = 12 * 128
    KEY_CACHE_LIMIT = 1024

cdef uint32_t FINGERPRINT_XOR = 0x5354554E

# Comprehension-required attributes (< 0x8000) this package understands, as a
# bitmap over 0x00-0x3F: every one registered by RFC 8489, 8656, 6062, 8445
# and 5780 lies in that range. Anything else below 0x8000 is reported by
# Message.unknown_attributes so a server can answer 420.
cdef uint64_t KNOWN_REQUIRED = 0
for _known in (0x01, 0x03, 0x06, 0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x12, 0x13, 0x14, 0x15, 0x16,
               0x17, 0x18, 0x19, 0x1A, 0x1C, 0x1D, 0x1E, 0x20, 0x22, 0x24, 0x25, 0x26, 0x27,
               0x2A):
    KNOWN_REQUIRED |= (<uint64_t>1) << _known
del _known

# RFC 7983 first-byte ranges for demultiplexing one UDP port.
cdef enum:
    PACKET_STUN = 0
    PACKET_ZRTP = 1
    PACKET_DTLS = 2
    PACKET_CHANNEL_DATA = 3
    PACKET_RTP = 4
    PACKET_UNKNOWN = 5

_urandom = os.urandom
_inet_pton = socket.inet_pton
_inet_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6


# ---------------------------------------------------------------- buffers

cdef inline int acquire(object data, Py_buffer *view, str what) except -1:
    try:
        PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    except TypeError:
        raise TypeError(f"{what} takes a bytes-like object, not {type(data).__name__}") from None
    return 0


# ---------------------------------------------------------------- message type

cpdef int message_type(int method, int cls) except -1:
    """Compose a message type from a 12-bit method and a 2-bit class (RFC 8489 section 5)."""
    if method < 0 or method > 0xFFF:
        raise ValueError(f"method 0x{method:x} does not fit in 12 bits")
    if cls < 0 or cls > 3:
        raise ValueError(f"class {cls} is not one of 0-3")
    return compose_type(method, cls)


cdef inline uint16_t compose_type(uint16_t method, uint16_t cls) noexcept nogil:
    return ((method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2)
            | ((cls & 1) << 4) | ((cls & 2) << 7))


cdef inline uint16_t type_method(uint16_t t) noexcept nogil:
    return (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80)


cdef inline uint16_t type_class(uint16_t t) noexcept nogil:
    return ((t >> 4) & 1) | ((t >> 7) & 2)


# ---------------------------------------------------------------- transaction IDs

# os.urandom costs ~450 ns a call; transaction IDs are drawn from a pool
# refilled from it 128 IDs at a time. The pool is dropped in a forked child
# so parent and child never hand out the same IDs.
cdef uint8_t _pool[POOL_SIZE]
cdef Py_ssize_t _pool_pos = POOL_SIZE


cdef int fill_transaction_id(uint8_t *out) except -1:
    global _pool_pos
    cdef bytes fresh
    if _pool_pos + 12 > POOL_SIZE:
        fresh = _urandom(POOL_SIZE)
        memcpy(_pool, PyBytes_AS_STRING(fresh), POOL_SIZE)
        _pool_pos = 0
    memcpy(out, _pool + _pool_pos, 12)
    memset(_pool + _pool_pos, 0, 12)
    _pool_pos += 12
    return 0


def _drop_transaction_id_pool():
    global _pool_pos
    memset(_pool, 0, POOL_SIZE)
    _pool_pos = POOL_SIZE


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_transaction_id_pool)


def new_transaction_id():
    """96 random bits from the operating system's CSPRNG (RFC 8489 section 6)."""
    cdef uint8_t tid[12]
    fill_transaction_id(tid)
    return PyBytes_FromStringAndSize(<char *>tid, 12)


# ---------------------------------------------------------------- integrity keys

@cython.no_gc  # its one reference is an exact bytes: no cycle can pass through it
cdef class IntegrityKey:
    """A MESSAGE-INTEGRITY key with its HMAC states computed once.

    ICE and TURN sign every message of a session with one key, so the two
    SHA compressions that RFC 2104 spends on the padded key are paid once
    here instead of on every message.
    """

    def __init__(self, key):
        if isinstance(key, str):
            raise TypeError(
                "an integrity key is bytes: use ice.short_term_key(password) or "
                "ice.long_term_key(username, realm, password)"
            )
        if not PyObject_CheckBuffer(key):
            # bytes(5) would be five zero bytes: a key nobody meant
            raise TypeError(f"an integrity key is bytes, not {type(key).__name__}")
        self.key = bytes(key)
        ice_hmac_sha1_init(&self._sha1, <const uint8_t *>PyBytes_AS_STRING(self.key),
                           len(self.key))
        self._sha256_ready = False

    cdef ice_hmac_sha256_key *sha256_state(self) noexcept:
        if not self._sha256_ready:
            ice_hmac_sha256_init(&self._sha256, <const uint8_t *>PyBytes_AS_STRING(self.key),
                                 len(self.key))
            self._sha256_ready = True
        return &self._sha256

    def __repr__(self):
        return f"<IntegrityKey {len(self.key)} bytes>"

    def __eq__(self, other):
        if isinstance(other, IntegrityKey):
            return self.key == (<IntegrityKey>other).key
        return NotImplemented

    def __hash__(self):
        return hash(self.key)


cdef dict _key_cache = {}
# The bytes object asked for last and its key: a session passes the same
# object for every message, which one pointer comparison recognises.
cdef object _last_key_bytes = None
cdef IntegrityKey _last_key = None


cdef IntegrityKey as_integrity_key(object key):
    """The cached IntegrityKey for a bytes key (or the IntegrityKey itself)."""
    global _last_key_bytes, _last_key
    if type(key) is IntegrityKey:
        return <IntegrityKey>key
    if key is _last_key_bytes:
        return _last_key
    cdef object found = _key_cache.get(key) if type(key) is bytes else None
    if found is not None:
        _last_key_bytes, _last_key = key, <IntegrityKey>found
        return <IntegrityKey>found
    cdef IntegrityKey made = IntegrityKey(key)
    if len(_key_cache) >= KEY_CACHE_LIMIT:
        _key_cache.clear()
    _key_cache[made.key] = made
    if type(key) is bytes:
        _last_key_bytes, _last_key = key, made
    return made


def hmac_sha1(key, data):
    """HMAC-SHA1 through the compiled path (exposed for tests)."""
    cdef IntegrityKey k = as_integrity_key(key)
    cdef bytes raw = _as_bytes(data)
    cdef uint8_t out[20]
    ice_hmac_sha1(&k._sha1, <const uint8_t *>PyBytes_AS_STRING(raw), len(raw), out)
    return PyBytes_FromStringAndSize(<char *>out, 20)


def hmac_sha256(key, data):
    """HMAC-SHA256 through the compiled path (exposed for tests)."""
    cdef IntegrityKey k = as_integrity_key(key)
    cdef bytes raw = _as_bytes(data)
    cdef uint8_t out[32]
    ice_hmac_sha256(k.sha256_state(), <const uint8_t *>PyBytes_AS_STRING(raw), len(raw), out)
    return PyBytes_FromStringAndSize(<char *>out, 32)


cdef bytes _as_bytes(object data):
    return data if type(data) is bytes else bytes(data)


def sha_hardware():
    """True when HMAC runs on the CPU's SHA instructions."""
    return ice_sha_hardware() != 0


def sha_backends():
    """The SHA code paths this build runs on this CPU, the default first.

    ``"x86-sha-ni"`` or ``"arm-crypto"`` when the build has it and the CPU
    reports the instructions, then ``"portable"`` (always there).
    """
    cdef const char *hw = ice_sha_compiled()
    if hw != NULL and ice_sha_available():
        return (hw.decode("ascii"), "portable")
    return ("portable",)


def _sha_use(name):
    """Switch every SHA-1 / SHA-256 to one of `sha_backends()` (None: the default).

    For tests, which compare the paths; not thread-safe. Raises ValueError,
    changing nothing, for a path this build or this CPU does not have.
    """
    global SHA_BACKEND
    cdef bytes raw
    cdef int rc
    if name is None:
        rc = ice_sha_use(NULL)
    else:
        raw = str(name).encode("ascii")
        rc = ice_sha_use(raw)
    if rc != 0:
        raise ValueError(f"SHA backend {name!r} is not available here; these are: {sha_backends()}")
    SHA_BACKEND = ice_sha_backend().decode("ascii")


def _sha1(data):
    """SHA-1 digest on the path in use (tests compare it with hashlib)."""
    cdef bytes raw = _as_bytes(data)
    cdef uint8_t out[20]
    ice_sha1(<const uint8_t *>PyBytes_AS_STRING(raw), len(raw), out)
    return PyBytes_FromStringAndSize(<char *>out, 20)


def _sha256(data):
    """SHA-256 digest on the path in use (tests compare it with hashlib)."""
    cdef bytes raw = _as_bytes(data)
    cdef uint8_t out[32]
    ice_sha256(<const uint8_t *>PyBytes_AS_STRING(raw), len(raw), out)
    return PyBytes_FromStringAndSize(<char *>out, 32)


#: The SHA code path in use: "x86-sha-ni", "arm-crypto" or "portable" (the
#: CPU is probed here, once).
SHA_BACKEND = ice_sha_backend().decode("ascii")

#: The SHA code paths compiled into this build, whatever the CPU: the hardware
#: one first when there is one (none in an ICE_PORTABLE=1 build).
SHA_COMPILED = (
    (ice_sha_compiled().decode("ascii"), "portable") if ice_sha_compiled() != NULL else ("portable",)
)


# ---------------------------------------------------------------- addresses

cdef int parse_ipv4(str host, uint8_t *out) noexcept:
    """Dotted-quad fast path; 0 when host is not one."""
    cdef Py_ssize_t n = len(host), i
    cdef Py_UCS4 c
    cdef int part = 0, value = 0, digits = 0
    if n < 7 or n > 15:
        return 0
    for i in range(n):
        c = host[i]
        if c == '.':
            if digits == 0 or part == 3:
                return 0
            out[part] = <uint8_t>value
            part += 1
            value = 0
            digits = 0
        elif '0' <= c <= '9':
            if digits and value == 0:
                return 0  # leading zeros are ambiguous (octal in some parsers)
            value = value * 10 + (<int>c - 48)
            digits += 1
            if value > 255:
                return 0
        else:
            return 0
    if part != 3 or digits == 0:
        return 0
    out[3] = <uint8_t>value
    return 1


cdef int parse_ip(object host, uint8_t *out) except 0:
    """Write the address into out (4 or 16 bytes); return FAMILY_IPV4/FAMILY_IPV6."""
    cdef bytes packed
    if type(host) is str:
        if parse_ipv4(<str>host, out):
            return FAMILY_IPV4
        if ":" in host:
            try:
                packed = _inet_pton(_AF_INET6, host)
            except (OSError, ValueError):
                pass
            else:
                memcpy(out, PyBytes_AS_STRING(packed), 16)
                return FAMILY_IPV6
        raise ValueError(f"{host!r} is not an IPv4 or IPv6 address")
    packed_attr = getattr(host, "packed", None)  # ipaddress.IPv4Address / IPv6Address
    if type(packed_attr) is bytes and len(packed_attr) in (4, 16):
        memcpy(out, PyBytes_AS_STRING(packed_attr), len(packed_attr))
        return FAMILY_IPV4 if len(packed_attr) == 4 else FAMILY_IPV6
    raise TypeError(f"an IP address is a str or an ipaddress object, not {type(host).__name__}")


# The text of the IPv4 addresses formatted last, by their last byte: a client
# reads its one mapped address again and again, a server its clients' addresses.
cdef enum:
    HOST_CACHE_SIZE = 64
cdef uint32_t _host_cache_ip[HOST_CACHE_SIZE]
cdef list _host_cache_text = [None] * HOST_CACHE_SIZE


cdef str format_ip(int family, const uint8_t *ip):
    cdef char text[16]
    cdef int n = 0, i, v
    cdef uint32_t packed
    cdef Py_ssize_t slot
    if family == FAMILY_IPV6:
        return _inet_ntop(_AF_INET6, PyBytes_FromStringAndSize(<const char *>ip, 16))
    packed = load32(ip)
    slot = ip[3] % HOST_CACHE_SIZE
    cached = _host_cache_text[slot]
    if cached is not None and _host_cache_ip[slot] == packed:
        return <str>cached
    for i in range(4):
        v = ip[i]
        if v >= 100:
            text[n] = <char>(48 + v // 100)
            n += 1
        if v >= 10:
            text[n] = <char>(48 + (v // 10) % 10)
            n += 1
        text[n] = <char>(48 + v % 10)
        n += 1
        if i < 3:
            text[n] = b'.'
            n += 1
    # An ASCII str filled in place: no UTF-8 decoder between the digits and the str.
    cdef str host = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(host), text, n)
    _host_cache_ip[slot] = packed
    _host_cache_text[slot] = host
    return host


cdef int refuse_text(const uint8_t *data, Py_ssize_t length, object owner) except -1:
    """Set DecodeError saying why data is not UTF-8, naming owner (a class or
    an instance), and return -1: the caller raises it, and no traceback entry
    is made here."""
    cdef Py_ssize_t at = 0
    cdef const char *why = ice_utf8_error(data, length, &at)
    cdef object cls = owner if isinstance(owner, type) else type(owner)
    if why == NULL:  # decode_or_none and ice_utf8_error disagree: a bug here, not input
        why = b"invalid"
    return ice_refuse(_DecodeError, "%s is not valid UTF-8: %s at byte %zd of %zd",
                      ice_type_name(cls), why, at, length)


cdef str decode_text(const uint8_t *data, Py_ssize_t length, object owner):
    """UTF-8 text of an attribute; DecodeError names owner (a class or instance) if invalid."""
    cdef str text = decode_or_none(data, length)
    if text is None:
        refuse_text(data, length, owner)
    return text


# ---------------------------------------------------------------- Message

cdef class Attribute:
    """Base of the typed attributes: value classes with add_to(msg) and get_from(msg)."""

    cdef int _apply(self, Message msg) except -1:
        raise NotImplementedError(f"{type(self).__name__} cannot be added to a message")

    def add_to(self, Message msg not None):
        """Append this attribute to msg."""
        self._apply(msg)


cdef class Message:
    """A STUN message: one owned buffer plus an index of its attributes."""

    def __cinit__(self):
        self._buf = self._inline_buf
        self._capacity = INLINE_BUFFER
        self._attrs = self._inline_attrs
        self._attrs_capacity = INLINE_ATTRS
        self._nattrs = 0
        self._size = HEADER_SIZE
        self._seal = SEAL_NONE
        self._exports = 0
        memset(self._buf, 0, HEADER_SIZE)
        store32(self._buf + 4, MAGIC_COOKIE)

    def __init__(self, int type=0x0001, transaction_id=None):
        self.type = type
        if transaction_id is None:
            fill_transaction_id(self._buf + 8)
        else:
            self.transaction_id = transaction_id

    # No __dealloc__: _message_dealloc below is the type's tp_dealloc.

    # -- construction

    # Message.decode(data) and msg.parse(data) are C functions set on the class
    # below (_decode, _parse_method): a refusal adds no traceback entry.

    @cython.final
    cdef int _parse_object(self, object data) except -1:
        return self._parse_data(data)

    @cython.final
    cdef int _parse_data(self, object data) noexcept:
        """_parse_or_empty of any bytes-like object: 0, or -1 with the error set."""
        cdef Py_buffer view
        cdef int result
        if type(data) is bytes:  # what sockets hand over: no buffer to acquire and release
            return self._parse_or_empty(<const uint8_t *>PyBytes_AS_STRING(data),
                                        PyBytes_GET_SIZE(data))
        if _get_buffer(data, &view, PyBUF_SIMPLE) < 0:
            if not PyErr_ExceptionMatches(_TypeError):
                return -1
            PyErr_Clear()
            return ice_refuse(_TypeError, "Message.decode takes a bytes-like object, not %s",
                              ice_class_name(data))
        result = self._parse_or_empty(<const uint8_t *>view.buf, view.len)
        PyBuffer_Release(&view)
        return result

    @cython.final
    cdef int _parse_or_empty(self, const uint8_t *data, Py_ssize_t length) noexcept:
        """_parse, leaving a header-only message when the bytes are refused."""
        if self._parse(data, length) == 0:
            return 0
        self._size = HEADER_SIZE
        self._nattrs = 0
        self._seal = SEAL_NONE
        self._set_length(0)
        return -1

    @cython.final
    cdef int _parse(self, const uint8_t *data, Py_ssize_t n) noexcept:
        """0, or -1 with DecodeError set (MemoryError or BufferError when the buffer
        cannot grow): returned, never raised, so a refusal costs no traceback."""
        cdef Py_ssize_t body, pos, length, step
        cdef uint16_t attr_type
        cdef int seal = SEAL_NONE
        cdef bint indexed
        self._nattrs = 0
        self._size = HEADER_SIZE
        self._seal = SEAL_NONE
        if n < HEADER_SIZE:
            return ice_refuse(_DecodeError, "%zd bytes is shorter than the 20-byte STUN header", n)
        if data[0] & 0xC0:
            return ice_refuse(_DecodeError,
                              "the two most significant bits of a STUN message must be zero")
        if load32(data + 4) != MAGIC_COOKIE:
            return ice_refuse(_DecodeError, "no magic cookie: not an RFC 5389/8489 STUN message")
        body = load16(data + 2)
        if body & 3:
            return ice_refuse(_DecodeError, "message length %zd is not a multiple of 4", body)
        if HEADER_SIZE + body != n:
            return ice_refuse(_DecodeError,
                              "header announces %zd bytes of attributes but %zd follow it",
                              body, n - HEADER_SIZE)
        if n > self._capacity and self._reserve_or_refuse(n - self._size) < 0:
            return -1
        memmove(self._buf, data, n)  # data may be this very buffer (msg.parse(msg))
        self._size = n
        pos = HEADER_SIZE
        while pos < n:
            if n - pos < 4:
                return ice_refuse(_DecodeError, "truncated attribute header at offset %zd", pos)
            attr_type = load16(self._buf + pos)
            length = load16(self._buf + pos + 2)
            step = 4 + padded(length)
            if pos + step > n:
                return ice_refuse(
                    _DecodeError,
                    "attribute 0x%04x at offset %zd claims %zd bytes, past the end of the message",
                    <unsigned int>attr_type, pos, length,
                )
            if seal == SEAL_FINGERPRINT:
                return ice_refuse(_DecodeError, "FINGERPRINT must be the last attribute")
            # Indexed unless it follows MESSAGE-INTEGRITY(-SHA256), which RFC 8489
            # 14.5/14.6 say to ignore. One place pushes, so the push is inlined.
            indexed = seal == SEAL_NONE
            if attr_type == ATTR_FINGERPRINT:
                if length != 4:
                    return ice_refuse(_DecodeError, "FINGERPRINT is 4 bytes, not %zd", length)
                seal = SEAL_FINGERPRINT
                indexed = True
            elif attr_type == ATTR_MESSAGE_INTEGRITY:
                if length != 20:
                    return ice_refuse(_DecodeError, "MESSAGE-INTEGRITY is 20 bytes, not %zd", length)
                if seal == SEAL_NONE:
                    seal = SEAL_SHA1
            elif attr_type == ATTR_MESSAGE_INTEGRITY_SHA256:
                if length < 16 or length > 32 or length & 3:
                    return ice_refuse(
                        _DecodeError,
                        "MESSAGE-INTEGRITY-SHA256 is 16 to 32 bytes in steps of 4, not %zd",
                        length,
                    )
                if seal < SEAL_SHA256:
                    seal = SEAL_SHA256
                    indexed = True
            if indexed:
                if self._nattrs == self._attrs_capacity and self._grow_attrs_or_refuse() < 0:
                    return -1
                self._attrs[self._nattrs].type = attr_type
                self._attrs[self._nattrs].offset = <uint32_t>(pos + 4)
                self._attrs[self._nattrs].length = <uint16_t>length
                self._nattrs += 1
            pos += step
        self._seal = seal
        return 0

    # -- buffer management

    @cython.final
    cdef int _reserve_bytes(self, Py_ssize_t extra) except -1:
        return self._reserve_or_refuse(extra)

    @cython.final
    cdef int _reserve_or_refuse(self, Py_ssize_t extra) noexcept:
        cdef Py_ssize_t need = self._size + extra
        cdef Py_ssize_t capacity
        cdef uint8_t *grown
        if need <= self._capacity:
            return 0
        if self._exports:
            return ice_refuse(_BufferError, "cannot grow a Message while a memoryview of it is alive")
        capacity = max(need, 2 * self._capacity)
        if self._buf == self._inline_buf:
            grown = <uint8_t *>PyMem_Malloc(capacity)
            if grown != NULL:
                memcpy(grown, self._buf, self._size)
        else:
            grown = <uint8_t *>PyMem_Realloc(self._buf, capacity)
        if grown == NULL:
            return ice_refuse_no_memory()
        self._buf = grown
        self._capacity = capacity
        return 0

    @cython.final
    cdef int _push_ref(self, uint16_t attr_type, Py_ssize_t offset, Py_ssize_t length) except -1:
        # Kept this small so that the C compiler inlines it into the parse loop.
        if self._nattrs == self._attrs_capacity:
            self._grow_attrs()
        self._attrs[self._nattrs].type = attr_type
        self._attrs[self._nattrs].offset = <uint32_t>offset
        self._attrs[self._nattrs].length = <uint16_t>length
        self._nattrs += 1
        return 0

    @cython.final
    cdef int _grow_attrs(self) except -1:
        return self._grow_attrs_or_refuse()

    @cython.final
    cdef int _grow_attrs_or_refuse(self) noexcept:
        cdef Py_ssize_t capacity = 2 * self._attrs_capacity
        cdef AttrRef *grown
        if self._attrs == self._inline_attrs:
            grown = <AttrRef *>PyMem_Malloc(capacity * sizeof(AttrRef))
            if grown != NULL:
                memcpy(grown, self._attrs, self._nattrs * sizeof(AttrRef))
        else:
            grown = <AttrRef *>PyMem_Realloc(self._attrs, capacity * sizeof(AttrRef))
        if grown == NULL:
            return ice_refuse_no_memory()
        self._attrs = grown
        self._attrs_capacity = capacity
        return 0

    @cython.final
    cdef void _set_length(self, Py_ssize_t body) noexcept:
        store16(self._buf + 2, <uint16_t>body)

    @cython.final
    cdef uint8_t *_append(self, uint16_t attr_type, Py_ssize_t length) except NULL:
        """Append an attribute header and zeroed padding; return where the value goes."""
        cdef Py_ssize_t step = 4 + padded(length)
        cdef uint8_t *p
        if length > 0xFFFF or self._size - HEADER_SIZE + step > MAX_BODY:
            raise ValueError("a STUN message cannot carry more than 65,535 bytes of attributes")
        if self._seal != SEAL_NONE:
            if self._seal == SEAL_FINGERPRINT or not (
                attr_type == ATTR_FINGERPRINT
                or (attr_type == ATTR_MESSAGE_INTEGRITY_SHA256 and self._seal == SEAL_SHA1)
            ):
                raise ValueError(
                    f"cannot add attribute 0x{attr_type:04x}: the message is already sealed by "
                    f"{('MESSAGE-INTEGRITY', 'MESSAGE-INTEGRITY-SHA256', 'FINGERPRINT')[self._seal - 1]}"
                )
        if self._size + step > self._capacity:
            self._reserve_bytes(step)
        p = self._buf + self._size
        if step > 4:
            store32(p + step - 4, 0)  # padding, and the last value word the caller overwrites
        store16(p, attr_type)
        store16(p + 2, <uint16_t>length)
        self._push_ref(attr_type, self._size + 4, length)
        self._size += step
        self._set_length(self._size - HEADER_SIZE)
        if attr_type == ATTR_FINGERPRINT:
            self._seal = SEAL_FINGERPRINT
        elif attr_type == ATTR_MESSAGE_INTEGRITY_SHA256:
            self._seal = SEAL_SHA256
        elif attr_type == ATTR_MESSAGE_INTEGRITY:
            self._seal = SEAL_SHA1
        return p + 4

    @cython.final
    cdef int _add_raw(self, uint16_t attr_type, const uint8_t *value, Py_ssize_t length) except -1:
        cdef uint8_t *p = self._append(attr_type, length)
        if length:
            memcpy(p, value, length)
        return 0

    @cython.final
    cdef Py_ssize_t _find(self, uint16_t attr_type) noexcept:
        cdef Py_ssize_t i
        for i in range(self._nattrs):
            if self._attrs[i].type == attr_type:
                return i
        return -1

    # -- header

    @property
    def type(self):
        """The 14-bit message type (method and class interleaved)."""
        return load16(self._buf)

    @type.setter
    def type(self, int value):
        if value < 0 or value > 0x3FFF:
            raise ValueError(f"message type 0x{value:x} does not fit in 14 bits")
        store16(self._buf, <uint16_t>value)

    @property
    def method(self):
        """The 12-bit method (1 = Binding, 3 = Allocate, ...)."""
        return type_method(load16(self._buf))

    @property
    def cls(self):
        """The class: 0 request, 1 indication, 2 success response, 3 error response."""
        return type_class(load16(self._buf))

    @property
    def transaction_id(self):
        """The 96-bit transaction ID as 12 bytes."""
        return PyBytes_FromStringAndSize(<char *>self._buf + 8, 12)

    @transaction_id.setter
    def transaction_id(self, value):
        self._set_transaction_id(value)

    cdef int _set_transaction_id(self, object value) except -1:
        cdef bytes tid = _as_bytes(value)
        if len(tid) != 12:
            raise ValueError(f"a transaction ID is 12 bytes, not {len(tid)}")
        memcpy(self._buf + 8, PyBytes_AS_STRING(tid), 12)
        return 0

    def new_transaction_id(self):
        """Give this message a fresh random transaction ID."""
        fill_transaction_id(self._buf + 8)

    @property
    def length(self):
        """The header's length field: bytes of attributes after the header."""
        return self._size - HEADER_SIZE

    # -- attributes

    def add(self, int attr_type, value):
        """Append a raw attribute value (padding is added)."""
        cdef bytes raw = _as_bytes(value)
        cdef Py_ssize_t n = len(raw)
        if attr_type < 0 or attr_type > 0xFFFF:
            raise ValueError(f"attribute type 0x{attr_type:x} does not fit in 16 bits")
        if (attr_type == ATTR_MESSAGE_INTEGRITY and n != 20
                or attr_type == ATTR_MESSAGE_INTEGRITY_SHA256 and (n < 16 or n > 32 or n & 3)
                or attr_type == ATTR_FINGERPRINT and n != 4):
            raise ValueError(f"{n} bytes is not a valid length for attribute 0x{attr_type:04x}")
        self._add_raw(<uint16_t>attr_type, <const uint8_t *>PyBytes_AS_STRING(raw), len(raw))

    def get(self, int attr_type):
        """The value of the first attribute of that type, or None."""
        cdef Py_ssize_t i
        for i in range(self._nattrs):
            if self._attrs[i].type == attr_type:
                return PyBytes_FromStringAndSize(
                    <char *>self._buf + self._attrs[i].offset, self._attrs[i].length
                )
        return None

    def get_all(self, int attr_type):
        """The values of every attribute of that type, in order."""
        cdef Py_ssize_t i
        return [
            PyBytes_FromStringAndSize(<char *>self._buf + self._attrs[i].offset,
                                      self._attrs[i].length)
            for i in range(self._nattrs) if self._attrs[i].type == attr_type
        ]

    def __contains__(self, int attr_type):
        return self._find(<uint16_t>attr_type) >= 0 if 0 <= attr_type <= 0xFFFF else False

    @property
    def attributes(self):
        """Every indexed attribute as (type, value) in wire order."""
        cdef Py_ssize_t i
        return [
            (self._attrs[i].type,
             PyBytes_FromStringAndSize(<char *>self._buf + self._attrs[i].offset,
                                       self._attrs[i].length))
            for i in range(self._nattrs)
        ]

    def __len__(self):
        return self._size

    @property
    def unknown_attributes(self):
        """Comprehension-required attribute types this codec does not know (for a 420)."""
        cdef Py_ssize_t i
        cdef uint16_t t
        cdef list unknown = []
        for i in range(self._nattrs):
            t = self._attrs[i].type
            if t < 0x8000 and not (t < 64 and (KNOWN_REQUIRED >> t) & 1):
                if t not in unknown:
                    unknown.append(t)
        return tuple(unknown)

    def reset(self):
        """Drop every attribute; keep the type and transaction ID."""
        self._size = HEADER_SIZE
        self._nattrs = 0
        self._seal = SEAL_NONE
        self._set_length(0)

    def copy(self):
        """An independent copy of this message."""
        cdef Message other = Message.__new__(Message)
        if self._size > other._capacity:
            other._reserve_bytes(self._size - other._size)
        memcpy(other._buf, self._buf, self._size)
        other._size = self._size
        other._seal = self._seal
        cdef Py_ssize_t i
        for i in range(self._nattrs):
            other._push_ref(self._attrs[i].type, self._attrs[i].offset, self._attrs[i].length)
        return other

    @property
    def raw(self):
        """The wire bytes (a copy); the fastest way to get them, as bytes(msg) costs a lookup."""
        return PyBytes_FromStringAndSize(<char *>self._buf, self._size)

    def __getbuffer__(self, Py_buffer *view, int flags):
        # Read-only view of the wire bytes: sock.sendto(msg, addr) and bytes(msg)
        # copy straight from the owned buffer.
        if flags & PyBUF_WRITABLE:
            raise BufferError("a Message exposes a read-only buffer")
        view.buf = self._buf
        view.obj = self
        view.len = self._size
        view.readonly = 1
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = &view.len if flags & PyBUF_ND else NULL
        view.strides = &view.itemsize if flags & PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        cdef Message o = <Message>other
        return o._size == self._size and memcmp(o._buf, self._buf, self._size) == 0

    __hash__ = None

    def __repr__(self):
        from ice.constants import AttrType, Method, MessageClass  # repr only: not a hot path

        def name(enum, value):
            try:
                return enum(value).name
            except ValueError:
                return f"0x{value:04x}"

        attrs = ", ".join(name(AttrType, t) for t, _ in self.attributes)
        return (
            f"<Message {name(Method, self.method)} {name(MessageClass, self.cls)} "
            f"tid={self.transaction_id.hex()} [{attrs}]>"
        )

    # -- addresses

    cdef int _add_address(self, uint16_t attr_type, int family, const uint8_t *ip,
                          uint16_t port, bint xored) except -1:
        cdef Py_ssize_t ip_len = 4 if family == FAMILY_IPV4 else 16
        cdef uint8_t *p = self._append(attr_type, 4 + ip_len)
        cdef uint64_t a, b, ka, kb
        cdef uint32_t v4
        p[0] = 0
        p[1] = <uint8_t>family
        if not xored:
            store16(p + 2, port)
            memcpy(p + 4, ip, ip_len)
        elif family == FAMILY_IPV4:
            store16(p + 2, port ^ <uint16_t>(MAGIC_COOKIE >> 16))
            v4 = load32(ip) ^ MAGIC_COOKIE
            store32(p + 4, v4)
        else:
            store16(p + 2, port ^ <uint16_t>(MAGIC_COOKIE >> 16))
            # cookie || transaction ID is bytes 4..19 of the header: XOR 64 bits at a time.
            memcpy(&a, ip, 8)
            memcpy(&b, ip + 8, 8)
            memcpy(&ka, self._buf + 4, 8)
            memcpy(&kb, self._buf + 12, 8)
            a ^= ka
            b ^= kb
            memcpy(p + 4, &a, 8)
            memcpy(p + 12, &b, 8)
        return 0

    cdef int _get_address(self, uint16_t attr_type, int *family, uint8_t *ip,
                          uint16_t *port, bint xored) except -1:
        """0 found, 1 absent; DecodeError when the value is malformed."""
        cdef Py_ssize_t i = self._find(attr_type)
        cdef const uint8_t *p
        cdef Py_ssize_t length
        cdef uint64_t a, b, ka, kb
        if i < 0:
            return 1
        p = self._buf + self._attrs[i].offset
        length = self._attrs[i].length
        # Refused by return, not raise: the caller's frame is the only one made.
        if length < 4:
            return ice_refuse(_DecodeError, "address attribute 0x%04x is %zd bytes",
                              <unsigned int>attr_type, length)
        family[0] = p[1]
        if p[1] == FAMILY_IPV4:
            if length != 8:
                return ice_refuse(_DecodeError, "IPv4 address attribute is 8 bytes, not %zd", length)
        elif p[1] == FAMILY_IPV6:
            if length != 20:
                return ice_refuse(_DecodeError, "IPv6 address attribute is 20 bytes, not %zd", length)
        else:
            return ice_refuse(_DecodeError, "address family 0x%02x is neither IPv4 (1) nor IPv6 (2)",
                              <unsigned int>p[1])
        port[0] = load16(p + 2)
        if not xored:
            memcpy(ip, p + 4, length - 4)
            return 0
        port[0] ^= <uint16_t>(MAGIC_COOKIE >> 16)
        if p[1] == FAMILY_IPV4:
            store32(ip, load32(p + 4) ^ MAGIC_COOKIE)
        else:
            memcpy(&a, p + 4, 8)
            memcpy(&b, p + 12, 8)
            memcpy(&ka, self._buf + 4, 8)
            memcpy(&kb, self._buf + 12, 8)
            a ^= ka
            b ^= kb
            memcpy(ip, &a, 8)
            memcpy(ip + 8, &b, 8)
        return 0

    # -- integrity and fingerprint

    cdef int _add_integrity_sha1(self, IntegrityKey key) except -1:
        cdef Py_ssize_t start = self._size
        cdef uint8_t *p = self._append(ATTR_MESSAGE_INTEGRITY, 20)
        # The header length already counts the new attribute, as RFC 8489 14.5 wants.
        ice_hmac_sha1(&key._sha1, self._buf, start, p)
        return 0

    cdef int _add_integrity_sha256(self, IntegrityKey key, Py_ssize_t length) except -1:
        cdef uint8_t digest[32]
        cdef Py_ssize_t start = self._size
        if length < 16 or length > 32 or length & 3:
            raise ValueError(f"MESSAGE-INTEGRITY-SHA256 is 16 to 32 bytes in steps of 4, not {length}")
        cdef uint8_t *p = self._append(ATTR_MESSAGE_INTEGRITY_SHA256, length)
        ice_hmac_sha256(key.sha256_state(), self._buf, start, digest)
        memcpy(p, digest, length)
        return 0

    cdef int _add_fingerprint(self) except -1:
        cdef Py_ssize_t start = self._size
        cdef uint8_t *p = self._append(ATTR_FINGERPRINT, 4)
        store32(p, crc32_update(0, self._buf, start) ^ FINGERPRINT_XOR)
        return 0

    def add_integrity(self, key):
        """Append MESSAGE-INTEGRITY (HMAC-SHA1) with key (bytes or IntegrityKey)."""
        self._add_integrity_sha1(as_integrity_key(key))

    def add_integrity_sha256(self, key, Py_ssize_t length=32):
        """Append MESSAGE-INTEGRITY-SHA256, optionally truncated to length bytes."""
        self._add_integrity_sha256(as_integrity_key(key), length)

    def add_fingerprint(self):
        """Append FINGERPRINT (CRC-32 of the message XOR 0x5354554e)."""
        self._add_fingerprint()

    # check_integrity, check_integrity_sha256 and check_fingerprint are C methods,
    # set on the class below: a wrong MESSAGE-INTEGRITY or FINGERPRINT is what a
    # server refuses most, and returning the refusal costs no traceback entry.

    @cython.final
    cdef int _check_integrity_sha1(self, object key) noexcept:
        cdef IntegrityKey k = _integrity_key_or_none(key)
        cdef Py_ssize_t i
        cdef uint8_t digest[20]
        cdef uint32_t offset
        cdef uint16_t saved
        if k is None:
            return -1
        i = self._find(ATTR_MESSAGE_INTEGRITY)
        if i < 0:
            return ice_refuse(_IntegrityError, "the message has no MESSAGE-INTEGRITY")
        offset = self._attrs[i].offset
        saved = load16(self._buf + 2)
        self._set_length(offset + 20 - HEADER_SIZE)
        ice_hmac_sha1(&k._sha1, self._buf, offset - 4, digest)
        store16(self._buf + 2, saved)
        if ice_ct_compare(digest, self._buf + offset, 20) != 0:
            return ice_refuse(_IntegrityError, "MESSAGE-INTEGRITY does not match the key")
        return 0

    @cython.final
    cdef int _check_integrity_sha256(self, object key) noexcept:
        cdef IntegrityKey k = _integrity_key_or_none(key)
        cdef Py_ssize_t i
        cdef uint8_t digest[32]
        cdef uint32_t offset
        cdef uint16_t saved, length
        if k is None:
            return -1
        i = self._find(ATTR_MESSAGE_INTEGRITY_SHA256)
        if i < 0:
            return ice_refuse(_IntegrityError, "the message has no MESSAGE-INTEGRITY-SHA256")
        offset = self._attrs[i].offset
        length = self._attrs[i].length
        saved = load16(self._buf + 2)
        self._set_length(offset + length - HEADER_SIZE)
        ice_hmac_sha256(k.sha256_state(), self._buf, offset - 4, digest)
        store16(self._buf + 2, saved)
        if ice_ct_compare(digest, self._buf + offset, length) != 0:
            return ice_refuse(_IntegrityError, "MESSAGE-INTEGRITY-SHA256 does not match the key")
        return 0

    @cython.final
    cdef int _check_fingerprint(self) noexcept:
        cdef Py_ssize_t i = self._find(ATTR_FINGERPRINT)
        cdef uint32_t offset
        if i < 0:
            return ice_refuse(_FingerprintError, "the message has no FINGERPRINT")
        offset = self._attrs[i].offset
        if crc32_update(0, self._buf, offset - 4) ^ FINGERPRINT_XOR != load32(self._buf + offset):
            return ice_refuse(_FingerprintError, "FINGERPRINT does not match the message")
        return 0


cdef IntegrityKey _integrity_key_or_none(object key):
    """as_integrity_key, or None with the error set (a str, a non-buffer): it
    catches what it refuses, so it never raises into the noexcept checks. The
    two cases a session passes are looked at before the try, which costs an
    exception-state save on entry, on the path every ICE check takes."""
    if type(key) is IntegrityKey:
        return <IntegrityKey>key
    if key is _last_key_bytes:
        return _last_key
    try:
        return as_integrity_key(key)
    except BaseException as exc:
        PyErr_SetObject(type(exc), exc)
        return None


cdef inline PyObject *_none_or_null(int result) noexcept:
    if result < 0:
        return NULL
    Py_INCREF(None)
    return <PyObject *>None


cdef PyObject *_check_integrity(PyObject *self, PyObject *key) noexcept:
    return _none_or_null((<Message>self)._check_integrity_sha1(<object>key))


cdef PyObject *_check_integrity_sha256(PyObject *self, PyObject *key) noexcept:
    return _none_or_null((<Message>self)._check_integrity_sha256(<object>key))


cdef PyObject *_check_fingerprint(PyObject *self, PyObject **args, Py_ssize_t nargs) noexcept:
    # METH_FASTCALL, not METH_NOARGS: CPython 3.11 specializes a call of the
    # bound method (msg.check_fingerprint kept and called) for the former only.
    if nargs:
        ice_refuse(_TypeError, "check_fingerprint() takes no arguments (%zd given)", nargs)
        return NULL
    return _none_or_null((<Message>self)._check_fingerprint())


cdef PyObject *_parse_method(PyObject *self, PyObject *data) noexcept:
    return _none_or_null((<Message>self)._parse_data(<object>data))


ice_type_set_method(
    Message, "check_integrity", <void *>_check_integrity, METH_O,
    b"check_integrity($self, key, /)\n--\n\n"
    b"Verify MESSAGE-INTEGRITY; raises IntegrityError when absent or wrong.",
)
ice_type_set_method(
    Message, "check_integrity_sha256", <void *>_check_integrity_sha256, METH_O,
    b"check_integrity_sha256($self, key, /)\n--\n\n"
    b"Verify MESSAGE-INTEGRITY-SHA256; raises IntegrityError when absent or wrong.",
)
ice_type_set_method(
    Message, "check_fingerprint", <void *>_check_fingerprint, METH_FASTCALL,
    b"check_fingerprint($self, /)\n--\n\n"
    b"Verify FINGERPRINT; raises FingerprintError when absent or wrong.",
)
ice_type_set_method(
    Message, "parse", <void *>_parse_method, METH_O,
    b"parse($self, data, /)\n--\n\n"
    b"Replace this message with one decoded from data, reusing the buffer; "
    b"raises DecodeError (leaving it header-only).",
)


# Messages come and go once per datagram: recycled ones spare the allocator.
# Cython's own free list would clear all ~380 bytes of the object on every
# reuse (the inline buffer and index included); __cinit__ sets every field a
# message reads, so a recycled object is handed out as it is.
cdef extern from "Python.h":
    PyObject *PyType_GenericAlloc(PyTypeObject *type, Py_ssize_t nitems) except NULL
    PyObject *PyObject_Init(PyObject *op, PyTypeObject *type)
    void PyObject_Free(void *p)

cdef enum:
    RECYCLED_MESSAGES = 16
cdef PyObject *_recycled[RECYCLED_MESSAGES]
cdef int _n_recycled = 0


cdef PyObject *_message_alloc(PyTypeObject *type, Py_ssize_t nitems) except NULL:
    global _n_recycled
    if type == <PyTypeObject *>Message and _n_recycled:
        _n_recycled -= 1
        return PyObject_Init(_recycled[_n_recycled], type)
    return PyType_GenericAlloc(type, nitems)


cdef void _message_dealloc(PyObject *obj) noexcept:
    # What a __dealloc__ would do, without the exception save and restore
    # Cython wraps around one (nothing here can raise). A Python subclass's
    # deallocator calls this one too.
    if (<Message>obj)._buf != (<Message>obj)._inline_buf:
        PyMem_Free((<Message>obj)._buf)
    if (<Message>obj)._attrs != (<Message>obj)._inline_attrs:
        PyMem_Free((<Message>obj)._attrs)
    Py_TYPE(<object>obj).tp_free(obj)


cdef void _message_free(void *obj) noexcept:
    # Only Message itself comes here: a Python subclass has its own tp_free.
    global _n_recycled
    if _n_recycled < RECYCLED_MESSAGES:
        _recycled[_n_recycled] = <PyObject *>obj
        _n_recycled += 1
    else:
        PyObject_Free(obj)


ice_set_allocator(Message, <void *>_message_alloc, <void *>_message_free)
ice_set_dealloc(Message, <void *>_message_dealloc)


cdef object _build(object module, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    """Message.build(type, *setters, transaction_id=None), called the fastcall
    way: the setters are read from the caller's argument array."""
    cdef Py_ssize_t i
    cdef object transaction_id = None
    cdef object name
    if kwnames != NULL:
        for i in range(PyTuple_GET_SIZE(<object>kwnames)):
            name = <object>PyTuple_GET_ITEM(<object>kwnames, i)
            if name != "transaction_id":
                raise TypeError(f"build() got an unexpected keyword argument {name!r}")
            transaction_id = <object>args[nargs + i]
    if nargs < 1:
        raise TypeError("build() missing required argument 'type' (pos 1)")
    cdef int msg_type = <object>args[0]
    if msg_type < 0 or msg_type > 0x3FFF:
        raise ValueError(f"message type 0x{msg_type:x} does not fit in 14 bits")
    cdef Message msg = Message.__new__(Message)
    store16(msg._buf, <uint16_t>msg_type)
    if transaction_id is None:
        fill_transaction_id(msg._buf + 8)
    else:
        msg._set_transaction_id(transaction_id)
    for i in range(1, nargs):
        setter = <object>args[i]
        if _is_attribute(setter):
            (<Attribute>setter)._apply(msg)
        else:
            setter.add_to(msg)
    return msg


# The static (C-defined, never freed) Attribute classes seen in build, by
# address: isinstance walks the class's MRO, about 3 ns a setter.
cdef enum:
    ATTRIBUTE_CLASS_BITS = 6
cdef PyTypeObject *_attribute_classes[1 << ATTRIBUTE_CLASS_BITS]


cdef inline bint _is_attribute(object obj):
    cdef PyTypeObject *cls = Py_TYPE(obj)
    cdef size_t slot = ice_pointer_slot(cls, NULL, ATTRIBUTE_CLASS_BITS)
    if _attribute_classes[slot] == cls:
        return True
    if not isinstance(obj, Attribute):
        return False
    if not (cls.tp_flags & Py_TPFLAGS_HEAPTYPE):
        _attribute_classes[slot] = cls
    return True


# The C strings a function object points at, alive as long as the module.
cdef bytes _BUILD_NAME = b"build"
cdef bytes _BUILD_DOC = (
    b"build(type, *setters, transaction_id=None)\n--\n\n"
    b"Message(type) with each setter's add_to(msg) applied in order."
)
ice_type_set(Message, "build", ice_fastcall_function(_BUILD_NAME, <void *>_build, _BUILD_DOC))

cdef PyObject *_decode(object module, PyObject **args, Py_ssize_t nargs,
                       PyObject *kwnames) noexcept:
    """Message.decode(data), called the fastcall way. Every refusal is returned
    as NULL with the error set, so DecodeError leaves no traceback entry of
    this module behind: a malformed datagram costs a C builtin's raise."""
    cdef PyTypeObject *cls = <PyTypeObject *>Message
    cdef PyObject *msg
    if nargs != 1 or kwnames != NULL:
        ice_refuse(_TypeError, "Message.decode() takes exactly one positional argument")
        return NULL
    msg = ice_new_instance(cls, _NO_ARGS)
    if msg == NULL:
        return NULL
    if (<Message>msg)._parse_data(<object>args[0]) < 0:
        _decref(msg)
        return NULL
    return msg


cdef tuple _NO_ARGS = ()
cdef bytes _DECODE_NAME = b"decode"
cdef bytes _DECODE_DOC = (
    b"decode(data, /)\n--\n\n"
    b"Decode one STUN message from any bytes-like object; raises DecodeError."
)
# A plain function in the class dict, not a staticmethod: that is a
# descriptor, so ``Message.decode(data)`` was a full attribute look-up on every
# call, where a plain class attribute is read from the interpreter's cache.
ice_type_set(Message, "decode", ice_fastcall_function(_DECODE_NAME, <void *>_decode, _DECODE_DOC))


# ---------------------------------------------------------------- demultiplexing

globals().update(
    PACKET_STUN=PACKET_STUN, PACKET_ZRTP=PACKET_ZRTP, PACKET_DTLS=PACKET_DTLS,
    PACKET_CHANNEL_DATA=PACKET_CHANNEL_DATA, PACKET_RTP=PACKET_RTP, PACKET_UNKNOWN=PACKET_UNKNOWN,
)

cdef int classify_bytes(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef uint8_t first
    if n == 0:
        return PACKET_UNKNOWN
    first = p[0]
    if first <= 3:
        return PACKET_STUN if n >= HEADER_SIZE and load32(p + 4) == MAGIC_COOKIE else PACKET_UNKNOWN
    if 16 <= first <= 19:
        return PACKET_ZRTP
    if 20 <= first <= 63:
        return PACKET_DTLS
    if 64 <= first <= 79:
        return PACKET_CHANNEL_DATA if n >= 4 else PACKET_UNKNOWN
    if 128 <= first <= 191:
        return PACKET_RTP
    return PACKET_UNKNOWN


def classify(data):
    """Which protocol a datagram on a shared port carries (RFC 7983 first byte).

    Returns one of PACKET_STUN, PACKET_ZRTP, PACKET_DTLS, PACKET_CHANNEL_DATA,
    PACKET_RTP, PACKET_UNKNOWN. STUN also needs the magic cookie, so a
    first byte of 0-3 without it is PACKET_UNKNOWN.
    """
    cdef Py_buffer view
    acquire(data, &view, "classify")
    cdef int kind = classify_bytes(<const uint8_t *>view.buf, view.len)
    PyBuffer_Release(&view)
    return kind


def is_stun(data):
    """True for a datagram that looks like STUN: first bits 00, a cookie, length fits."""
    cdef Py_buffer view
    acquire(data, &view, "is_stun")
    cdef const uint8_t *p = <const uint8_t *>view.buf
    cdef bint found = (view.len >= HEADER_SIZE and p[0] <= 3 and load32(p + 4) == MAGIC_COOKIE
                       and HEADER_SIZE + load16(p + 2) == view.len)
    PyBuffer_Release(&view)
    return found


def is_channel_data(data):
    """True for a datagram that looks like TURN ChannelData (RFC 8656 section 12.4)."""
    cdef Py_buffer view
    acquire(data, &view, "is_channel_data")
    cdef const uint8_t *p = <const uint8_t *>view.buf
    cdef bint found = view.len >= 4 and 0x40 <= p[0] <= 0x4F and 4 + load16(p + 2) <= view.len
    PyBuffer_Release(&view)
    return found


def stream_frame_length(data, bint rfc5766=False):
    """Bytes the next STUN or ChannelData frame occupies at the start of a stream buffer.

    Returns None while fewer than 4 bytes are there (the length is not known
    yet). ChannelData over TCP/TLS is padded to 4 bytes (RFC 8656 12.5).
    Raises DecodeError when the stream carries neither. ``rfc5766`` also
    takes RFC 5766's channel numbers 0x5000-0x7FFF (a TURN server's clients).
    """
    cdef Py_buffer view
    acquire(data, &view, "stream_frame_length")
    cdef const uint8_t *p = <const uint8_t *>view.buf
    cdef Py_ssize_t n = view.len
    cdef uint8_t first = p[0] if n else 0
    cdef Py_ssize_t length = load16(p + 2) if n >= 4 else 0
    PyBuffer_Release(&view)
    if n < 4:
        return None
    if first <= 3:
        return HEADER_SIZE + length
    if 0x40 <= first <= (0x7F if rfc5766 else 0x4F):
        return 4 + padded(length)
    raise DecodeError(f"stream byte 0x{first:02x} starts neither STUN nor ChannelData")


# ---------------------------------------------------------------- ChannelData

def encode_channel_data(int number, data, bint stream=False, bint rfc5766=False):
    """ChannelData framing (RFC 8656 12.4); stream=True pads to 4 bytes for TCP/TLS.

    ``rfc5766`` allows RFC 5766's channel numbers up to 0x7FFF.
    """
    cdef int last = 0x7FFF if rfc5766 else 0x4FFF
    if number < 0x4000 or number > last:
        raise ValueError(f"channel number 0x{number:x} is outside 0x4000-0x{last:X}")
    cdef Py_buffer view
    acquire(data, &view, "encode_channel_data")
    cdef Py_ssize_t n = view.len
    cdef Py_ssize_t total = 4 + (padded(n) if stream else n)
    cdef bytes out
    cdef uint8_t *p
    try:
        if n > 0xFFFF:
            raise ValueError(f"ChannelData carries at most 65,535 bytes, not {n}")
        out = PyBytes_FromStringAndSize(NULL, total)
        p = <uint8_t *>PyBytes_AS_STRING(out)
        store16(p, <uint16_t>number)
        store16(p + 2, <uint16_t>n)
        memcpy(p + 4, view.buf, n)
        memset(p + 4 + n, 0, total - 4 - n)
    finally:
        PyBuffer_Release(&view)
    return out


cdef PyObject *_decode_channel_data(object module, PyObject **args, Py_ssize_t nargs,
                                    PyObject *kwnames) noexcept:
    """decode_channel_data(data, stream=False, rfc5766=False), the fastcall way:
    a refusal is returned as NULL with DecodeError set, no traceback entry."""
    cdef PyObject *given[3]
    cdef Py_ssize_t i, k, nkw = 0 if kwnames == NULL else PyTuple_GET_SIZE(<object>kwnames)
    cdef int stream = 0, rfc5766 = 0
    cdef Py_buffer view
    cdef PyObject *result
    if nargs > 3:
        ice_refuse(_TypeError, "decode_channel_data() takes at most 3 arguments (%zd given)",
                   nargs)
        return NULL
    given[0] = given[1] = given[2] = NULL
    for i in range(nargs):
        given[i] = args[i]
    for i in range(nkw):
        name = <PyObject *>PyTuple_GET_ITEM(<object>kwnames, i)
        for k in range(3):
            if _ascii_equal(name, _CHANNEL_DATA_ARGS[k]) == 0:
                break
        else:
            ice_refuse(_TypeError, "decode_channel_data() got an unexpected keyword argument")
            return NULL
        if given[k] != NULL:
            ice_refuse(_TypeError, "decode_channel_data() got multiple values for argument '%s'",
                       _CHANNEL_DATA_ARGS[k])
            return NULL
        given[k] = args[nargs + i]
    if given[0] == NULL:
        ice_refuse(_TypeError, "decode_channel_data() missing required argument 'data'")
        return NULL
    if given[1] != NULL:
        stream = _is_true(given[1])
        if stream < 0:
            return NULL
    if given[2] != NULL:
        rfc5766 = _is_true(given[2])
        if rfc5766 < 0:
            return NULL
    data = <object>given[0]
    if type(data) is bytes:  # what sockets hand over: no buffer to acquire and release
        return _unframe_channel_data(<const uint8_t *>PyBytes_AS_STRING(data),
                                     PyBytes_GET_SIZE(data), stream, rfc5766)
    if _get_buffer(data, &view, PyBUF_SIMPLE) < 0:
        if not PyErr_ExceptionMatches(_TypeError):
            return NULL
        PyErr_Clear()
        ice_refuse(_TypeError, "decode_channel_data takes a bytes-like object, not %s",
                   ice_class_name(data))
        return NULL
    result = _unframe_channel_data(<const uint8_t *>view.buf, view.len, stream, rfc5766)
    PyBuffer_Release(&view)
    return result


cdef const char *_CHANNEL_DATA_ARGS[3]
_CHANNEL_DATA_ARGS[0] = "data"
_CHANNEL_DATA_ARGS[1] = "stream"
_CHANNEL_DATA_ARGS[2] = "rfc5766"
cdef bytes _DECODE_CHANNEL_DATA_NAME = b"decode_channel_data"
cdef bytes _DECODE_CHANNEL_DATA_DOC = (
    b"decode_channel_data(data, stream=False, rfc5766=False)\n--\n\n"
    b"(channel number, payload) from one ChannelData message; raises DecodeError.\n\n"
    b"Over UDP the datagram may carry up to 3 bytes of padding after the\n"
    b"payload (RFC 8656 12.5 lets senders add it); over a stream (stream=True)\n"
    b"the padding must be there, as the frame length is rounded up to 4.\n"
    b"``rfc5766`` accepts RFC 5766's channel numbers up to 0x7FFF."
)
decode_channel_data = ice_fastcall_function(
    _DECODE_CHANNEL_DATA_NAME, <void *>_decode_channel_data, _DECODE_CHANNEL_DATA_DOC
)


# Channel numbers as ints, made once each and kept: 0x4000 and up are not
# among CPython's small ints, and a client sees the same few on every datagram.
cdef PyObject *_channel_ints[0x1000]


cdef PyObject *_unframe_channel_data(const uint8_t *p, Py_ssize_t n, bint stream,
                                     bint rfc5766) noexcept:
    cdef uint16_t last = 0x7FFF if rfc5766 else 0x4FFF
    cdef Py_ssize_t length
    cdef uint16_t number
    cdef PyObject *channel
    cdef PyObject *payload
    cdef PyObject *pair
    if n < 4:
        ice_refuse(_DecodeError, "%zd bytes is shorter than the 4-byte ChannelData header", n)
        return NULL
    number = load16(p)
    if number < 0x4000 or number > last:
        ice_refuse(_DecodeError, "channel number 0x%04x is outside 0x4000-0x%s",
                   <unsigned int>number, <const char *>("7FFF" if rfc5766 else "4FFF"))
        return NULL
    length = load16(p + 2)
    if 4 + length > n:
        ice_refuse(_DecodeError, "ChannelData announces %zd bytes but carries %zd", length, n - 4)
        return NULL
    if stream and n != 4 + padded(length):
        ice_refuse(_DecodeError, "a stream ChannelData frame of %zd bytes is %zd bytes long, not %zd",
                   length, 4 + padded(length), n)
        return NULL
    if not stream and n > 4 + padded(length):
        ice_refuse(_DecodeError, "%zd bytes trail a %zd-byte ChannelData payload",
                   n - 4 - length, length)
        return NULL
    payload = _bytes_from(<const char *>p + 4, length)
    if payload == NULL:
        return NULL
    if number <= 0x4FFF:
        channel = _channel_ints[number - 0x4000]
        if channel == NULL:
            channel = _channel_ints[number - 0x4000] = _long_from(number)
            if channel == NULL:
                _decref(payload)
                return NULL
        Py_INCREF(<object>channel)
    else:  # RFC 5766's upper range: rare, not kept
        channel = _long_from(number)
        if channel == NULL:
            _decref(payload)
            return NULL
    pair = _pack2(2, channel, payload)
    _decref(channel)
    _decref(payload)
    return pair
