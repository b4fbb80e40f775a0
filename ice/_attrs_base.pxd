# Attribute shapes shared by the concrete attribute modules (_attrs_stun,
# _attrs_turn): each concrete class is one of these plus a TYPE.

from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from ice._codec cimport Attribute, Message


cdef object new_instance(type cls)
cdef Py_ssize_t class_int(object cls, str name) except -1
cdef uint16_t attr_type_of(object cls) except? 0
cdef uint16_t wire_type(Attribute attr) except? 0  # attr_type_of(attr), kept on attr
cdef Py_ssize_t find_value(Message msg, uint16_t attr_type, const uint8_t **value) noexcept


cdef class AddressAttribute(Attribute):
    cdef readonly int family
    cdef int _port
    cdef uint8_t _ip[16]
    cdef str _host            # the text form, once made (None until then)
    cdef bint _xored(self) noexcept


cdef class XorAddressAttribute(AddressAttribute):
    pass


cdef class TextAttribute(Attribute):
    cdef bytes _raw          # the UTF-8, or None until asked for (made from _text)
    cdef str _text           # the text, or None until decoded (from _raw)
    cdef bytes _raw_bytes(self)


cdef class BytesAttribute(Attribute):
    cdef readonly bytes value


cdef class Uint32Attribute(Attribute):
    cdef uint32_t _value
    cdef object _int         # _value as an int: .value (a member, never None)


cdef class Uint64Attribute(Attribute):
    cdef uint64_t _value
    cdef object _int         # _value as an int: .value (a member, never None)


cdef class FlagAttribute(Attribute):
    pass


cdef class FamilyAttribute(Attribute):
    cdef readonly int family


cdef class ErrorCodeShape(Attribute):
    cdef readonly int code
    cdef str _reason         # decoded from _reason_raw on first use
    cdef bytes _reason_raw
    cdef uint8_t _first      # reserved in ERROR-CODE, the family in ADDRESS-ERROR-CODE
    cdef bint _keeps_first_byte(self) noexcept


# Called once at the end of each attribute module, on its namespace: C-level
# constructors (tp_vectorcall) and per-class bound classmethods.
cdef int install_fast_calls(dict namespace) except -1
# A TextAttribute class whose RFC allows UTF-8 only (see TextAttribute).
cdef int utf8_only(type cls) except -1
cdef int install_constructor(type cls, void *fn) except -1
# For a class's own vectorcall constructor: how many positional arguments
# came (-1 when there are keywords: leave those to generic_call), and what
# calling the class does without one (type.__call__).
cdef Py_ssize_t positional_count(size_t nargsf, PyObject *kwnames) noexcept
cdef object generic_call(PyObject *cls, PyObject **args, size_t nargsf, PyObject *kwnames)
# The instance a class made last for this very value object, or None; and
# keeping one (attribute instances are immutable: see ice_made_* in _fastcall.h).
cdef object kept_instance(PyObject *cls, PyObject *value)
cdef void keep_instance(PyObject *cls, PyObject *value, object instance) noexcept
