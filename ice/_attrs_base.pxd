# Attribute shapes shared by the concrete attribute modules (_attrs_stun,
# _attrs_turn): each concrete class is one of these plus a TYPE.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from ice._codec cimport Attribute, Message


cdef object new_instance(type cls)
cdef Py_ssize_t class_int(object cls, str name) except -1
cdef uint16_t attr_type_of(object cls) except? 0
cdef Py_ssize_t find_value(Message msg, uint16_t attr_type, const uint8_t **value) noexcept


cdef class AddressAttribute(Attribute):
    cdef readonly int family
    cdef readonly int port
    cdef uint8_t _ip[16]
    cdef object _host
    cdef bint _xored(self) noexcept


cdef class XorAddressAttribute(AddressAttribute):
    pass


cdef class TextAttribute(Attribute):
    cdef readonly bytes raw


cdef class BytesAttribute(Attribute):
    cdef readonly bytes value


cdef class Uint32Attribute(Attribute):
    cdef readonly uint32_t value


cdef class Uint64Attribute(Attribute):
    cdef readonly uint64_t value


cdef class FlagAttribute(Attribute):
    pass


cdef class FamilyAttribute(Attribute):
    cdef readonly int family


cdef class ErrorCodeShape(Attribute):
    cdef readonly int code
    cdef object _reason      # str, decoded from _reason_raw on first use
    cdef bytes _reason_raw
    cdef uint8_t _first      # reserved in ERROR-CODE, the family in ADDRESS-ERROR-CODE
    cdef bint _keeps_first_byte(self) noexcept
