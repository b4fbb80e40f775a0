# Attribute shapes: address, XOR address, text, bytes, 32/64-bit integer,
# flag, address family and error code. A concrete attribute is a subclass
# that sets TYPE (and, for text and bytes, the size limits of its RFC); all
# encoding and strict decoding lives here, once.

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport Py_TPFLAGS_HEAPTYPE, Py_TYPE, PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_FromObject, PyUnicode_AsUTF8String
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from ice._wire cimport load16, load32, same_bytes, store32

from ice._codec cimport (
    FAMILY_IPV4,
    FAMILY_IPV6,
    Attribute,
    Message,
    decode_or_none,
    decode_text,
    format_ip,
    parse_ip,
    refuse_text,
)

from types import BuiltinMethodType, ClassMethodDescriptorType

from ice._errors import DecodeError
from ice.constants import default_reason

cdef extern from "Python.h":
    void PyErr_SetObject(object error, object value)

cdef extern from "_refusal.h":
    # Returns -1 with error(message) set: see _refusal.h.
    int ice_refuse(object error, const char *fmt, ...) noexcept
    # The same, for raising: the -1 is an error to Cython.
    int ice_raise "ice_refuse"(object error, const char *fmt, ...) except -1
    const char *ice_class_name(object obj) noexcept
    const char *ice_type_name(object type) noexcept

cdef extern from "_fastcall.h":
    void ice_set_vectorcall(object type, void *fn)
    int ice_has_vectorcall(object type)
    object ice_type_call(object type, PyObject **args, size_t nargsf, PyObject *kwnames)
    int ice_type_set(object type, object name, object value) except -1
    ctypedef struct PyMemberDef:
        pass
    int ice_type_set_member(object type, PyMemberDef *member, const char *name,
                            Py_ssize_t offset, const char *doc) except -1
    bint ice_class_int_cached(PyTypeObject *type, PyObject *name, Py_ssize_t *value)
    void ice_class_int_store(PyTypeObject *type, PyObject *name, Py_ssize_t value)
    PyObject *ice_no_args_tuple
    void *ice_text_install(void *init)
    PyObject *ice_made_find(PyObject *type, PyObject *value)
    PyObject *ice_read_find(object type)
    void ice_read_keep(object instance)
    void ice_made_keep(PyObject *type, PyObject *value, PyObject *instance)
    void *ice_bytes_install(void *init)
    void *ice_uint32_install(void *init)
    void *ice_uint64_install(void *init)
    Py_ssize_t PyVectorcall_NARGS(size_t nargsf)

# code - 300 -> (reason, its UTF-8), so ErrorCodeAttribute(438) costs no encoding
# (and, indexed by the C int, no int object either).
cdef list _default_reasons = [None] * 400

cdef tuple _NO_ARGS = ()
ice_no_args_tuple = <PyObject *>_NO_ARGS


cdef object new_instance(type cls):
    """cls.__new__(cls) without a Python-level call (get_from runs per message)."""
    return (<PyTypeObject *>cls).tp_new(cls, <PyObject *>_NO_ARGS, NULL)


cdef extern from "Python.h":
    int PyType_IsSubtype(PyTypeObject *a, PyTypeObject *b)
    bint PyUnicode_IS_COMPACT_ASCII(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    void *PyUnicode_DATA(object text)
    # The type-attribute lookup CPython itself uses (with its method cache):
    # a few ns, where getattr(cls, "TYPE") costs ~20 on every add_to/get_from.
    PyObject *_PyType_Lookup(PyTypeObject *type, object name)

cdef str _TYPE = "TYPE"


cdef Py_ssize_t class_int(object cls, str name) except -1:
    """An int class attribute (TYPE, MAX_BYTES, SIZE) of cls, or of obj's class."""
    cdef Py_ssize_t value
    if not isinstance(cls, type):
        cls = type(cls)
    if ice_class_int_cached(<PyTypeObject *>cls, <PyObject *>name, &value):
        return value
    cdef PyObject *found = _PyType_Lookup(<PyTypeObject *>cls, name)
    if found == NULL:
        raise TypeError(f"{(<type>cls).__name__} does not define {name}")
    value = <object>found
    ice_class_int_store(<PyTypeObject *>cls, <PyObject *>name, value)
    return value


cdef uint16_t attr_type_of(object cls) except? 0:
    return <uint16_t>class_int(cls, _TYPE)


cdef uint16_t wire_type(Attribute attr) except? 0:
    if attr._wire_type:
        return attr._wire_type
    cdef uint16_t attr_type = attr_type_of(attr)
    # The package's classes are static types, whose TYPE CPython will not let
    # anybody reassign: their instances keep it. A program's own subclass may
    # change its TYPE, so its instances look it up each time.
    if not (Py_TYPE(attr).tp_flags & Py_TPFLAGS_HEAPTYPE):
        attr._wire_type = attr_type
    return attr_type


cdef Py_ssize_t find_value(Message msg, uint16_t attr_type, const uint8_t **value) noexcept:
    """Length of the first attribute of attr_type (value set to it), or -1."""
    cdef Py_ssize_t i = msg._find(attr_type)
    if i < 0:
        return -1
    value[0] = msg._buf + msg._attrs[i].offset
    return msg._attrs[i].length


cdef str _name(object obj):
    return type(obj).__name__


# ---------------------------------------------------------------- addresses

# Attributes are made and dropped once per message: the shapes whose only
# references are exact str/bytes (no cycle can pass through them) stay out of
# the cyclic garbage collector (no GC header, no tracking per object).
@cython.no_gc
cdef class AddressAttribute(Attribute):
    """A transport address: family, IP and port (RFC 8489 14.1 MAPPED-ADDRESS shape)."""

    def __init__(self, host, int port):
        _address_init(self, host, port)

    cdef bint _xored(self) noexcept:
        return False

    @property
    def host(self):
        """The IP address as text ('192.0.2.1', '2001:db8::1')."""
        if self._host is None:
            self._host = format_ip(self.family, self._ip)
        return self._host

    @property
    def port(self):
        """The port, 0-65535."""
        return port_int(self._port)

    @property
    def packed(self):
        """The IP address in network byte order (4 or 16 bytes)."""
        return PyBytes_FromStringAndSize(<char *>self._ip, 4 if self.family == FAMILY_IPV4 else 16)

    @property
    def address(self):
        """(host, port), as the socket module wants it."""
        if self._host is None:
            self._host = format_ip(self.family, self._ip)
        return (self._host, port_int(self._port))

    cdef int _apply(self, Message msg) except -1:
        return msg._add_address(wire_type(self), self.family, self._ip, <uint16_t>self._port,
                                self._xored())

    @classmethod
    def get_from(cls, Message msg not None):
        """The first such attribute in msg, or None; DecodeError if it is malformed."""
        cdef int family
        cdef uint16_t port
        cdef uint8_t ip[16]
        cdef bint xored = PyType_IsSubtype(<PyTypeObject *>cls, <PyTypeObject *>XorAddressAttribute)
        if msg._get_address(attr_type_of(cls), &family, ip, &port, xored) == 1:
            return None
        cdef Py_ssize_t ip_len = 4 if family == FAMILY_IPV4 else 16
        cdef AddressAttribute attr
        cdef PyObject *last = ice_read_find(cls)
        if last != NULL:
            attr = <AddressAttribute>last
            if attr.family == family and attr._port == port and memcmp(attr._ip, ip, ip_len) == 0:
                return attr
        attr = new_instance(cls)
        attr.family = family
        attr._port = port
        memcpy(attr._ip, ip, ip_len)
        ice_read_keep(attr)
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        cdef AddressAttribute o = <AddressAttribute>other
        return (o.family == self.family and o._port == self._port
                and memcmp(o._ip, self._ip, 4 if self.family == FAMILY_IPV4 else 16) == 0)

    def __hash__(self):
        return hash((type(self), self.packed, self._port))

    def __repr__(self):
        return f"{_name(self)}(host={self.host!r}, port={self.port})"


# Port numbers above 256 (CPython's small ints) by their low byte: reading
# the same address again gives the same int instead of a new one.
cdef int _port_keys[256]
_port_keys[:] = [-1] * 256
cdef list _port_ints = [None] * 256


cdef object port_int(int port):
    cdef int slot = port & 255
    if _port_keys[slot] == port:
        return _port_ints[slot]
    cdef object value = port
    _port_ints[slot] = value
    _port_keys[slot] = port
    return value


cdef int _address_init(AddressAttribute self, object host, int port) except -1:
    if port < 0 or port > 0xFFFF:
        raise ValueError(f"port {port} is outside 0-65535")
    self.family = parse_ip(host, self._ip)
    self._port = port
    self._host = host if type(host) is str and self.family == FAMILY_IPV4 else None
    return 0


cdef object _address_call(PyObject *cls, PyObject **args, size_t nargsf, PyObject *kwnames):
    if kwnames == NULL and PyVectorcall_NARGS(nargsf) == 2:
        attr = <AddressAttribute>new_instance(<type>cls)
        _address_init(attr, <object>args[0], <object>args[1])
        return attr
    return ice_type_call(<object>cls, args, nargsf, kwnames)


@cython.no_gc
cdef class XorAddressAttribute(AddressAttribute):
    """A transport address XORed with the magic cookie and transaction ID (RFC 8489 14.2)."""

    cdef bint _xored(self) noexcept:
        return True


# ---------------------------------------------------------------- text and bytes

@cython.no_gc
cdef class TextAttribute(Attribute):
    """UTF-8 text of bounded size (USERNAME, REALM, NONCE, SOFTWARE, ...).

    The wire bytes are kept as they came, so a value is echoed back exactly
    (a NONCE, say) even before anybody looks at it as text. Made from a str,
    the text is kept instead, and written into a message straight from the
    str's own UTF-8 (no bytes object in between).
    MAX_BYTES and MAX_CHARS are the limits of the attribute's RFC.

    A class the RFC makes UTF-8 only (USERNAME, REALM, SOFTWARE,
    ALTERNATE-DOMAIN: `utf8_only`) refuses bytes that are not: DecodeError
    from get_from, ValueError when made. Its ``value`` is then a plain
    member, which CPython reads in place (~1 ns, against ~18 for this
    property, which it calls through the generic getattr).
    """

    MAX_BYTES = 763
    MAX_CHARS = 128

    def __init__(self, value):
        _text_init(self, value)

    @property
    def value(self):
        """The text; DecodeError if the peer sent bytes that are not UTF-8."""
        if self._text is None:
            self._text = decode_text(<const uint8_t *>PyBytes_AS_STRING(self._raw),
                                     len(self._raw), self)
        return self._text

    @property
    def raw(self):
        """The UTF-8 bytes, as they go on the wire."""
        return self._raw_bytes()

    cdef bytes _raw_bytes(self):
        if self._raw is None:
            self._raw = PyUnicode_AsUTF8String(self._text)
        return self._raw

    cdef int _apply(self, Message msg) except -1:
        cdef const char *utf8
        cdef Py_ssize_t n
        if self._raw is not None:
            return msg._add_raw(wire_type(self), <const uint8_t *>PyBytes_AS_STRING(self._raw),
                                len(self._raw))
        utf8 = PyUnicode_AsUTF8AndSize(self._text, &n)
        return msg._add_raw(wire_type(self), <const uint8_t *>utf8, n)

    @classmethod
    def get_from(cls, Message msg not None):
        """The first such attribute in msg, or None; DecodeError if it is too long."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        cdef PyObject *last = ice_read_find(cls)
        if last != NULL and _same_text(<TextAttribute>last, p, n):
            return <object>last  # its length passed the check below when it was read
        cdef Py_ssize_t limit = class_int(cls, _MAX_BYTES)
        if n > limit:
            ice_raise(_DecodeError, "%s is at most %zd bytes, not %zd", ice_type_name(cls), limit, n)
        # Most text is read as text: decode it now, straight from the message,
        # and make the bytes only if asked (UTF-8 that decodes strictly encodes
        # back to the same bytes). Bytes that do not decode are kept as they came.
        cdef str text = decode_or_none(p, n)
        if text is None and _is_utf8_only(cls):
            refuse_text(p, n, cls)
        cdef TextAttribute attr = new_instance(cls)
        attr._text = text
        if text is None:
            attr._raw = PyBytes_FromStringAndSize(<const char *>p, n)
        ice_read_keep(attr)
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<TextAttribute>other)._raw_bytes() == self._raw_bytes()

    def __hash__(self):
        return hash((type(self), self._raw_bytes()))

    def __str__(self):
        return self.value

    def __repr__(self):
        try:
            return f"{_name(self)}({self.value!r})"
        except DecodeError:
            return f"{_name(self)}({self._raw!r})"


cdef bint _same_text(TextAttribute attr, const uint8_t *p, Py_ssize_t n) except -1:
    """Whether attr carries exactly these wire bytes."""
    cdef const char *utf8
    cdef Py_ssize_t length
    if attr._raw is not None:
        return PyBytes_GET_SIZE(attr._raw) == n and same_bytes(PyBytes_AS_STRING(attr._raw), p, n)
    if PyUnicode_IS_COMPACT_ASCII(attr._text):  # its characters are its UTF-8
        return PyUnicode_GET_LENGTH(attr._text) == n and same_bytes(PyUnicode_DATA(attr._text), p, n)
    utf8 = PyUnicode_AsUTF8AndSize(attr._text, &length)  # made once, kept by the str
    return length == n and same_bytes(utf8, p, n)


cdef int _refuse(object error, str text) noexcept:
    """Set error(text) and return -1: what ``raise`` does, but returned, so that the
    refusing function adds no traceback entry (each costs a frame object: a
    hostile oversized value is refused at the price of one)."""
    PyErr_SetObject(error, text)
    return -1


# The classes the refusing paths set without a look-up (see _refusal.h).
cdef object _ValueError = ValueError
cdef object _DecodeError = DecodeError
cdef str _MAX_CHARS = "MAX_CHARS"
cdef str _MAX_BYTES = "MAX_BYTES"

cdef extern from *:
    """
    #define ICE_TEXT_OFFSET offsetof(struct __pyx_obj_3ice_11_attrs_base_TextAttribute, _text)
    """
    Py_ssize_t ICE_TEXT_OFFSET

# The members utf8_only made: a class whose value resolves to one of them
# has its text from the start (_text is never None).
cdef PyMemberDef _utf8_value_member
cdef set _utf8_values = set()


cdef int utf8_only(type cls) except -1:
    """Make cls (a TextAttribute class) take only UTF-8, as its RFC says: bytes
    that are not are malformed (DecodeError from get_from, ValueError when
    made), and .value becomes a read-only member over the text."""
    if not issubclass(cls, TextAttribute):
        raise TypeError(f"{cls.__name__} is not a TextAttribute")
    ice_type_set_member(cls, &_utf8_value_member, "value", ICE_TEXT_OFFSET, "The text.")
    _utf8_values.add(cls.__dict__["value"])
    return 0


cdef bint _is_utf8_only(type cls) except -1:
    # Asked only of bytes that do not decode: the rare path.
    found = _PyType_Lookup(<PyTypeObject *>cls, "value")
    return found != NULL and <object>found in _utf8_values


cdef int _text_init(TextAttribute self, object value) except -1:
    cdef bytes raw
    cdef Py_ssize_t limit, n
    if type(value) is str:
        limit = class_int(self, _MAX_CHARS)
        if len(<str>value) > limit:
            return ice_refuse(_ValueError, "%s is at most %zd characters, not %zd",
                              ice_class_name(self), limit, len(<str>value))
        # The str caches its UTF-8 (for ASCII it is the str's own data): no copy here.
        PyUnicode_AsUTF8AndSize(value, &n)
        limit = class_int(self, _MAX_BYTES)
        if n > limit:
            return ice_refuse(_ValueError, "%s is at most %zd bytes, not %zd",
                              ice_class_name(self), limit, n)
        self._text = value
        return 0
    if isinstance(value, str):
        limit = class_int(self, _MAX_CHARS)
        if len(<str>value) > limit:
            return ice_refuse(_ValueError, "%s is at most %zd characters, not %zd",
                              ice_class_name(self), limit, len(<str>value))
        raw = PyUnicode_AsUTF8String(value)
    elif isinstance(value, (bytes, bytearray)):
        # The length before any copy: an oversized value costs only the error.
        limit = class_int(self, _MAX_BYTES)
        n = len(value)
        if n > limit:
            return ice_refuse(_ValueError, "%s is at most %zd bytes, not %zd",
                              ice_class_name(self), limit, n)
        raw = value if type(value) is bytes else bytes(value)
    elif isinstance(value, memoryview):
        raw = bytes(value)
    else:
        return _refuse(TypeError, f"{_name(self)} takes str or bytes, not {type(value).__name__}")
    limit = class_int(self, _MAX_BYTES)
    if len(raw) > limit:
        return ice_refuse(_ValueError, "%s is at most %zd bytes, not %zd",
                          ice_class_name(self), limit, len(raw))
    self._text = decode_or_none(<const uint8_t *>PyBytes_AS_STRING(raw), len(raw))
    if self._text is None and _is_utf8_only(type(self)):
        shown = repr(raw[:24]) + ("..." if len(raw) > 24 else "")
        return _refuse(ValueError, f"{_name(self)} is UTF-8 text only, and {shown} is not UTF-8")
    self._raw = raw
    return 0


@cython.no_gc
cdef class BytesAttribute(Attribute):
    """Opaque bytes; SIZE fixes the length when the RFC does (0: any length)."""

    SIZE = 0

    def __init__(self, value):
        _bytes_init(self, value)

    cdef int _apply(self, Message msg) except -1:
        return msg._add_raw(wire_type(self), <const uint8_t *>PyBytes_AS_STRING(self.value),
                            len(self.value))

    @classmethod
    def get_from(cls, Message msg not None):
        """The first such attribute in msg, or None; DecodeError on a wrong size."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        cdef Py_ssize_t size
        if n < 0:
            return None
        size = class_int(cls, "SIZE")
        if size and n != size:
            ice_raise(_DecodeError, "%s is %zd bytes, not %zd", ice_type_name(cls), size, n)
        cdef BytesAttribute attr = new_instance(cls)
        attr.value = PyBytes_FromStringAndSize(<const char *>p, n)
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<BytesAttribute>other).value == self.value

    def __hash__(self):
        return hash((type(self), self.value))

    def __repr__(self):
        return f"{_name(self)}({self.value!r})"


cdef str _SIZE = "SIZE"


cdef int _bytes_init(BytesAttribute self, object value) except -1:
    cdef bytes raw = value if type(value) is bytes else bytes(value)
    cdef Py_ssize_t size = class_int(self, _SIZE)
    if size and len(raw) != size:
        return ice_refuse(_ValueError, "%s is %zd bytes, not %zd", ice_class_name(self), size, len(raw))
    if len(raw) > 0xFFFF:
        return ice_refuse(_ValueError, "%s is at most 65,535 bytes, not %zd",
                          ice_class_name(self), len(raw))
    self.value = raw
    return 0


# ---------------------------------------------------------------- integers and flags

# The value is kept twice: as a C integer for the wire, and as the int object
# that .value is (a member: see _value_members), made when the instance is.
@cython.no_gc  # its one object is an exact int
cdef class Uint32Attribute(Attribute):
    """A 32-bit unsigned integer (PRIORITY, LIFETIME, CONNECTION-ID)."""

    def __init__(self, value):
        _uint32_init(self, value)

    cdef int _apply(self, Message msg) except -1:
        cdef uint8_t raw[4]
        store32(raw, self._value)
        return msg._add_raw(wire_type(self), raw, 4)

    @classmethod
    def get_from(cls, Message msg not None):
        """The first such attribute in msg, or None; DecodeError unless it is 4 bytes."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n != 4:
            ice_raise(_DecodeError, "%s is 4 bytes, not %zd", ice_type_name(cls), n)
        cdef PyObject *last = ice_read_find(cls)
        if last != NULL and (<Uint32Attribute>last)._value == load32(p):
            return <object>last
        cdef Uint32Attribute attr = new_instance(cls)
        attr._value = load32(p)
        attr._int = attr._value
        ice_read_keep(attr)
        return attr

    def __int__(self):
        return self._value

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<Uint32Attribute>other)._value == self._value

    def __hash__(self):
        return hash((type(self), self._value))

    def __repr__(self):
        return f"{_name(self)}({self._value})"


cdef int _uint32_init(Uint32Attribute self, object value) except -1:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{_name(self)} is a 32-bit unsigned value, not {value}")
    self._value = value
    self._int = value if type(value) is int else self._value  # an IntEnum or bool: an int
    return 0


cdef inline object _kept_for_int(PyObject *cls, PyObject *value):
    # Only an exact int is kept for, as ICE_KEEPS_INT does for the one-argument
    # shapes: immutable, and what a session passes again (401); an IntEnum
    # member is made afresh.
    if type(<object>value) is not int:
        return None
    return kept_instance(cls, value)


cdef inline void _keep_for_int(PyObject *cls, PyObject *value, object made) noexcept:
    if type(<object>value) is int:
        keep_instance(cls, value, made)


@cython.no_gc  # its one object is an exact int
cdef class Uint64Attribute(Attribute):
    """A 64-bit unsigned integer (the ICE-CONTROLLING/CONTROLLED tie-breaker)."""

    def __init__(self, value):
        _uint64_init(self, value)

    cdef int _apply(self, Message msg) except -1:
        cdef uint8_t raw[8]
        store32(raw, <uint32_t>(self._value >> 32))
        store32(raw + 4, <uint32_t>self._value)
        return msg._add_raw(wire_type(self), raw, 8)

    @classmethod
    def get_from(cls, Message msg not None):
        """The first such attribute in msg, or None; DecodeError unless it is 8 bytes."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n != 8:
            ice_raise(_DecodeError, "%s is 8 bytes, not %zd", ice_type_name(cls), n)
        cdef uint64_t value = (<uint64_t>load32(p) << 32) | load32(p + 4)
        cdef PyObject *last = ice_read_find(cls)
        if last != NULL and (<Uint64Attribute>last)._value == value:
            return <object>last
        cdef Uint64Attribute attr = new_instance(cls)
        attr._value = value
        attr._int = value
        ice_read_keep(attr)
        return attr

    def __int__(self):
        return self._value

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<Uint64Attribute>other)._value == self._value

    def __hash__(self):
        return hash((type(self), self._value))

    def __repr__(self):
        return f"{_name(self)}({self._value})"


cdef int _uint64_init(Uint64Attribute self, object value) except -1:
    if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"{_name(self)} is a 64-bit unsigned value, not {value}")
    self._value = value
    self._int = value if type(value) is int else self._value  # an IntEnum or bool: an int
    return 0


cdef extern from *:
    """
    #define ICE_UINT32_INT offsetof(struct __pyx_obj_3ice_11_attrs_base_Uint32Attribute, _int)
    #define ICE_UINT64_INT offsetof(struct __pyx_obj_3ice_11_attrs_base_Uint64Attribute, _int)
    """
    Py_ssize_t ICE_UINT32_INT
    Py_ssize_t ICE_UINT64_INT

# .value of the integer attributes is a read-only member over _int, which every
# instance has from the start (__init__, get_from): CPython reads a member in
# place where a property costs a generic getattr and a call (_fastcall.h). The
# definitions live as long as the classes.
cdef PyMemberDef _value_members[2]
ice_type_set_member(Uint32Attribute, &_value_members[0], "value", ICE_UINT32_INT, "The value, an int.")
ice_type_set_member(Uint64Attribute, &_value_members[1], "value", ICE_UINT64_INT, "The value, an int.")


cdef class FlagAttribute(Attribute):
    """An attribute whose presence is its meaning (USE-CANDIDATE, DONT-FRAGMENT)."""

    cdef int _apply(self, Message msg) except -1:
        msg._append(wire_type(self), 0)
        return 0

    @classmethod
    def get_from(cls, Message msg not None):
        """An instance when msg carries the flag, else None; DecodeError unless it is empty."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n != 0:
            ice_raise(_DecodeError, "%s has no value, but %zd bytes came", ice_type_name(cls), n)
        return new_instance(cls)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return True

    def __hash__(self):
        return hash(type(self))

    def __repr__(self):
        return f"{_name(self)}()"


cdef class FamilyAttribute(Attribute):
    """An address family byte and 3 reserved bytes (REQUESTED-ADDRESS-FAMILY shape)."""

    def __init__(self, int family):
        _family_init(self, family)

    cdef int _apply(self, Message msg) except -1:
        cdef uint8_t raw[4]
        raw[0] = <uint8_t>self.family
        raw[1] = raw[2] = raw[3] = 0
        return msg._add_raw(wire_type(self), raw, 4)

    @classmethod
    def get_from(cls, Message msg not None):
        """The first such attribute in msg, or None; DecodeError if it is malformed."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n != 4:
            ice_raise(_DecodeError, "%s is 4 bytes, not %zd", ice_type_name(cls), n)
        if p[0] != FAMILY_IPV4 and p[0] != FAMILY_IPV6:
            raise DecodeError(f"address family 0x{p[0]:02x} is neither IPv4 (1) nor IPv6 (2)")
        cdef FamilyAttribute attr = new_instance(cls)
        attr.family = p[0]
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<FamilyAttribute>other).family == self.family

    def __hash__(self):
        return hash((type(self), self.family))

    def __repr__(self):
        return f"{_name(self)}({self.family})"


cdef int _family_init(FamilyAttribute self, int family) except -1:
    if family != FAMILY_IPV4 and family != FAMILY_IPV6:
        raise ValueError(f"address family {family} is neither IPv4 (1) nor IPv6 (2)")
    self.family = family
    return 0


cdef object _family_call(PyObject *cls, PyObject **args, size_t nargsf, PyObject *kwnames):
    if kwnames == NULL and PyVectorcall_NARGS(nargsf) == 1:
        attr = <FamilyAttribute>new_instance(<type>cls)
        _family_init(attr, <object>args[0])
        return attr
    return ice_type_call(<object>cls, args, nargsf, kwnames)


# ---------------------------------------------------------------- error codes

@cython.no_gc
cdef class ErrorCodeShape(Attribute):
    """Class/number and a UTF-8 reason (ERROR-CODE, RFC 8489 14.8).

    The first byte is reserved in ERROR-CODE and carries the address family
    in ADDRESS-ERROR-CODE, whose class overrides _keeps_first_byte().
    """

    def __init__(self, int code, reason=None):
        _error_code_init(self, code, reason)

    cdef int _apply(self, Message msg) except -1:
        cdef Py_ssize_t n = len(self._reason_raw)
        cdef uint8_t *p = msg._append(wire_type(self), 4 + n)
        p[0] = self._first
        p[1] = 0
        p[2] = <uint8_t>(self.code // 100)
        p[3] = <uint8_t>(self.code % 100)
        memcpy(p + 4, PyBytes_AS_STRING(self._reason_raw), n)
        return 0

    cdef bint _keeps_first_byte(self) noexcept:
        return False

    @property
    def reason(self):
        """The reason phrase; DecodeError if the peer sent bytes that are not UTF-8."""
        if self._reason is None:
            self._reason = decode_text(<const uint8_t *>PyBytes_AS_STRING(self._reason_raw),
                                       len(self._reason_raw), self)
        return self._reason

    @classmethod
    def get_from(cls, Message msg not None):
        """The first such attribute in msg, or None; DecodeError if it is malformed."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n < 4:
            ice_raise(_DecodeError, "%s is at least 4 bytes, not %zd", ice_type_name(cls), n)
        if n > 4 + 763:
            ice_raise(_DecodeError, "%s reason is at most 763 bytes, not %zd", ice_type_name(cls), n - 4)
        cdef int klass = p[2] & 0x07
        if klass < 3 or klass > 6 or p[3] > 99:
            raise DecodeError(f"{cls.__name__} class {klass} number {p[3]} is not a 300-699 code")
        cdef ErrorCodeShape attr
        cdef PyObject *last = ice_read_find(cls)
        if last != NULL:
            attr = <ErrorCodeShape>last
            if (attr.code == klass * 100 + p[3]
                    and attr._first == (p[0] if attr._keeps_first_byte() else 0)
                    and PyBytes_GET_SIZE(attr._reason_raw) == n - 4
                    and memcmp(PyBytes_AS_STRING(attr._reason_raw), p + 4, n - 4) == 0):
                return attr
        cdef str reason = decode_or_none(p + 4, n - 4)
        if reason is None:  # strict: a bad reason is a bad message
            refuse_text(p + 4, n - 4, cls)
        attr = new_instance(cls)
        attr.code = klass * 100 + p[3]
        attr._reason_raw = PyBytes_FromStringAndSize(<const char *>p + 4, n - 4)
        attr._reason = reason
        attr._first = p[0] if attr._keeps_first_byte() else 0
        ice_read_keep(attr)
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        cdef ErrorCodeShape o = <ErrorCodeShape>other
        return (o.code == self.code and o._reason_raw == self._reason_raw
                and o._first == self._first)

    def __hash__(self):
        return hash((type(self), self.code, self._reason_raw, self._first))

    def __repr__(self):
        return f"{_name(self)}({self.code}, {self.reason!r})"


cdef int _error_code_init(ErrorCodeShape self, int code, object reason) except -1:
    if code < 300 or code > 699:
        raise ValueError(f"an error code is 300-699, not {code}")
    self.code = code
    if reason is None:
        cached = _default_reasons[code - 300]
        if cached is None:
            text = default_reason(code)
            cached = _default_reasons[code - 300] = (text, text.encode("utf-8"))
        self._reason, self._reason_raw = <tuple>cached
        return 0
    self._reason = reason if type(reason) is str else PyUnicode_FromObject(reason)
    self._reason_raw = PyUnicode_AsUTF8String(self._reason)
    if len(self._reason_raw) > 763 or len(self._reason) > 128:
        raise ValueError("an error reason is at most 128 characters and 763 bytes")
    return 0


cdef object _error_code_call(PyObject *cls, PyObject **args, size_t nargsf, PyObject *kwnames):
    cdef Py_ssize_t n = PyVectorcall_NARGS(nargsf)
    if kwnames == NULL and n == 1:
        kept = _kept_for_int(cls, args[0])
        if kept is not None:
            return kept
    if kwnames == NULL and (n == 1 or n == 2):
        attr = <ErrorCodeShape>new_instance(<type>cls)
        _error_code_init(attr, <object>args[0], <object>args[1] if n == 2 else None)
        if n == 1:
            _keep_for_int(cls, args[0], attr)
        return attr
    return ice_type_call(<object>cls, args, nargsf, kwnames)


cdef object _no_args_call(PyObject *cls, PyObject **args, size_t nargsf, PyObject *kwnames):
    # A class without values (Fingerprint, UseCandidate): one instance, kept.
    if kwnames == NULL and PyVectorcall_NARGS(nargsf) == 0:
        made = kept_instance(cls, cls)
        if made is None:
            made = new_instance(<type>cls)
            keep_instance(cls, cls, made)
        return made
    return ice_type_call(<object>cls, args, nargsf, kwnames)


# ---------------------------------------------------------------- fast calls

cdef str _INIT = "__init__"


cdef type _init_owner(type cls):
    """The class whose __init__ cls runs (object when none of its own classes has one)."""
    for klass in cls.__mro__:
        if _INIT in (<type>klass).__dict__:
            return klass
    return object


cdef void *_shape_call(type owner):
    if owner is TextAttribute:
        return ice_text_install(<void *>_text_init)
    if owner is AddressAttribute:
        return <void *>_address_call
    if owner is BytesAttribute:
        return ice_bytes_install(<void *>_bytes_init)
    if owner is Uint32Attribute:
        return ice_uint32_install(<void *>_uint32_init)
    if owner is Uint64Attribute:
        return ice_uint64_install(<void *>_uint64_init)
    if owner is FamilyAttribute:
        return <void *>_family_call
    if owner is ErrorCodeShape:
        return <void *>_error_code_call
    if owner is object:
        return <void *>_no_args_call
    return NULL


cdef object _classmethod_of(type klass, str name, object member):
    """The classmethod a class attribute is, or None: a classmethod descriptor, or
    the method such a descriptor bound to klass when klass was set up here."""
    if type(member) is ClassMethodDescriptorType:
        return member
    if type(member) is BuiltinMethodType and getattr(member, "__self__", None) is klass:
        for base in klass.__mro__[1:]:
            found = (<type>base).__dict__.get(name)
            if type(found) is ClassMethodDescriptorType:
                return found
    return None


def _bind_classmethods(type cls):
    """Put in cls's own dictionary each classmethod it inherits, bound to cls.

    CPython binds a classmethod anew (an allocation) on every ``Username.get_from``;
    a method already bound and kept in the class is a plain attribute, which the
    interpreter's specialized method loads read from a cache. Attribute's
    __init_subclass__ calls this for every subclass made in Python, so that
    ``Sub.get_from`` makes a Sub there too.
    """
    cdef set seen = set()
    for klass in cls.__mro__:
        for name, member in list((<type>klass).__dict__.items()):
            if name in seen:
                continue
            seen.add(name)
            method = _classmethod_of(klass, name, member)
            if method is not None:
                ice_type_set(cls, name, method.__get__(None, cls))


def _attribute_init_subclass(cls, **kwargs):
    """Attribute.__init_subclass__: a subclass made in Python gets its inherited
    classmethods bound to it, as install_fast_calls binds them for ours."""
    super(Attribute, cls).__init_subclass__(**kwargs)
    _bind_classmethods(cls)


# An extension class cannot define __init_subclass__ in its body; put it there.
ice_type_set(Attribute, "__init_subclass__", classmethod(_attribute_init_subclass))


cdef int install_fast_calls(dict namespace) except -1:
    """Give the attribute classes of a module their C constructors and classmethods.

    A class gets a vectorcall constructor when the __init__ it runs is one
    of the shapes' above (or none at all); each classmethod it has (get_from,
    of_length, ...) is bound to it once (_bind_classmethods).
    """
    cdef void *fn
    for obj in list(namespace.values()):
        if not (isinstance(obj, type) and issubclass(obj, Attribute)):
            continue
        fn = _shape_call(_init_owner(obj))
        if fn != NULL:
            ice_set_vectorcall(obj, fn)
        _bind_classmethods(obj)
    return 0


cdef Py_ssize_t positional_count(size_t nargsf, PyObject *kwnames) noexcept:
    return -1 if kwnames != NULL else PyVectorcall_NARGS(nargsf)


cdef object kept_instance(PyObject *cls, PyObject *value):
    cdef PyObject *kept = ice_made_find(cls, value)
    if kept == NULL:
        return None
    made = <object>kept
    Py_DECREF(made)
    return made


cdef void keep_instance(PyObject *cls, PyObject *value, object instance) noexcept:
    ice_made_keep(cls, value, <PyObject *>instance)


cdef object generic_call(PyObject *cls, PyObject **args, size_t nargsf, PyObject *kwnames):
    return ice_type_call(<object>cls, args, nargsf, kwnames)


def _has_fast_call(type cls):
    """Whether calling cls runs one of the C constructors above (for tests)."""
    return ice_has_vectorcall(cls) != 0


cdef int install_constructor(type cls, void *fn) except -1:
    """A vectorcall constructor for a class whose own __init__ it mirrors."""
    if _init_owner(cls) is not cls:
        raise TypeError(f"{cls.__name__} does not define the __init__ a fast call mirrors")
    ice_set_vectorcall(cls, fn)
    return 0
