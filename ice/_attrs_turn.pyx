# TURN attributes: RFC 8656 (and RFC 5766 before it), RFC 6156 address
# families, RFC 6062 TCP connections.

from cpython.bytes cimport PyBytes_AS_STRING
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t

from ice._wire cimport load16, load32, store16, store32

from ice._attrs_base cimport (
    BytesAttribute,
    ErrorCodeShape,
    FamilyAttribute,
    FlagAttribute,
    Uint32Attribute,
    XorAddressAttribute,
    attr_type_of,
    find_value,
    generic_call,
    install_constructor,
    install_fast_calls,
    new_instance,
    positional_count,
    wire_type,
)
from ice._codec cimport FAMILY_IPV4, FAMILY_IPV6, Attribute, Message

from ice._errors import DecodeError
from ice.constants import AttrType, TransportProtocol


cdef class ChannelNumber(Attribute):
    """CHANNEL-NUMBER (RFC 8656 18.1): a channel in 0x4000-0x4FFF, then 2 reserved bytes."""
    TYPE = AttrType.CHANNEL_NUMBER
    cdef readonly int number

    def __init__(self, int number):
        _channel_number_init(self, number)

    cdef int _apply(self, Message msg) except -1:
        cdef uint8_t *p = msg._append(wire_type(self), 4)
        store16(p, <uint16_t>self.number)
        p[2] = p[3] = 0
        return 0

    @classmethod
    def get_from(cls, Message msg not None):
        """The first CHANNEL-NUMBER in msg, or None; DecodeError if malformed or out of range."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n != 4:
            raise DecodeError(f"CHANNEL-NUMBER is 4 bytes, not {n}")
        cdef uint16_t number = load16(p)
        if number < 0x4000 or number > 0x4FFF:
            raise DecodeError(f"channel number 0x{number:04x} is outside 0x4000-0x4FFF")
        cdef ChannelNumber attr = new_instance(cls)
        attr.number = number
        return attr

    def __int__(self):
        return self.number

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<ChannelNumber>other).number == self.number

    def __hash__(self):
        return hash((type(self), self.number))

    def __repr__(self):
        return f"ChannelNumber(0x{self.number:04x})"


cdef class Lifetime(Uint32Attribute):
    """LIFETIME (RFC 8656 18.2): seconds until the allocation expires without a refresh."""
    TYPE = AttrType.LIFETIME


cdef class XorPeerAddress(XorAddressAttribute):
    """XOR-PEER-ADDRESS (RFC 8656 18.3): a peer as seen from the relay."""
    TYPE = AttrType.XOR_PEER_ADDRESS


cdef class Data(BytesAttribute):
    """DATA (RFC 8656 18.4): the application data of a Send or Data indication."""
    TYPE = AttrType.DATA


cdef class XorRelayedAddress(XorAddressAttribute):
    """XOR-RELAYED-ADDRESS (RFC 8656 18.5): the relayed transport address allocated."""
    TYPE = AttrType.XOR_RELAYED_ADDRESS


cdef class RequestedAddressFamily(FamilyAttribute):
    """REQUESTED-ADDRESS-FAMILY (RFC 8656 18.6, RFC 6156): IPv4 (1) or IPv6 (2) relay."""
    TYPE = AttrType.REQUESTED_ADDRESS_FAMILY


cdef class AdditionalAddressFamily(FamilyAttribute):
    """ADDITIONAL-ADDRESS-FAMILY (RFC 8656 18.11): ask for an IPv6 relay as well.

    RFC 8656 only allows IPv6 here; a server answers 400 to anything else,
    so the decoder accepts both families and leaves that check to it.
    """
    TYPE = AttrType.ADDITIONAL_ADDRESS_FAMILY

    def __init__(self, int family=FAMILY_IPV6):
        FamilyAttribute.__init__(self, family)


cdef class EvenPort(Attribute):
    """EVEN-PORT (RFC 8656 18.7): an even relay port, optionally reserving the next one."""
    TYPE = AttrType.EVEN_PORT
    cdef readonly bint reserve

    def __init__(self, bint reserve=False):
        self.reserve = reserve

    cdef int _apply(self, Message msg) except -1:
        cdef uint8_t *p = msg._append(wire_type(self), 1)
        p[0] = 0x80 if self.reserve else 0
        return 0

    @classmethod
    def get_from(cls, Message msg not None):
        """The first EVEN-PORT in msg, or None; DecodeError unless it is 1 byte."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n != 1:
            raise DecodeError(f"EVEN-PORT is 1 byte, not {n}")
        cdef EvenPort attr = new_instance(cls)
        attr.reserve = (p[0] & 0x80) != 0
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<EvenPort>other).reserve == self.reserve

    def __hash__(self):
        return hash((type(self), self.reserve))

    def __repr__(self):
        return f"EvenPort(reserve={self.reserve})"


cdef class RequestedTransport(Attribute):
    """REQUESTED-TRANSPORT (RFC 8656 18.8): the relay's protocol, 17 (UDP) or 6 (TCP, RFC 6062)."""
    TYPE = AttrType.REQUESTED_TRANSPORT
    cdef readonly int protocol

    def __init__(self, int protocol=TransportProtocol.UDP):
        if protocol < 0 or protocol > 255:
            raise ValueError(f"protocol {protocol} does not fit in 8 bits")
        self.protocol = protocol

    cdef int _apply(self, Message msg) except -1:
        cdef uint8_t *p = msg._append(wire_type(self), 4)
        p[0] = <uint8_t>self.protocol
        p[1] = p[2] = p[3] = 0
        return 0

    @classmethod
    def get_from(cls, Message msg not None):
        """The first REQUESTED-TRANSPORT in msg, or None; DecodeError unless it is 4 bytes."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n != 4:
            raise DecodeError(f"REQUESTED-TRANSPORT is 4 bytes, not {n}")
        cdef RequestedTransport attr = new_instance(cls)
        attr.protocol = p[0]
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<RequestedTransport>other).protocol == self.protocol

    def __hash__(self):
        return hash((type(self), self.protocol))

    def __repr__(self):
        return f"RequestedTransport({self.protocol})"


cdef class DontFragment(FlagAttribute):
    """DONT-FRAGMENT (RFC 8656 18.9): set DF on the relayed datagrams."""
    TYPE = AttrType.DONT_FRAGMENT


cdef class ReservationToken(BytesAttribute):
    """RESERVATION-TOKEN (RFC 8656 18.10): 8 bytes naming a reserved relay port."""
    TYPE = AttrType.RESERVATION_TOKEN
    SIZE = 8


cdef class AddressErrorCode(ErrorCodeShape):
    """ADDRESS-ERROR-CODE (RFC 8656 18.12): why one family of a dual allocation failed."""
    TYPE = AttrType.ADDRESS_ERROR_CODE

    def __init__(self, int family, int code, reason=None):
        if family != FAMILY_IPV4 and family != FAMILY_IPV6:
            raise ValueError(f"address family {family} is neither IPv4 (1) nor IPv6 (2)")
        ErrorCodeShape.__init__(self, code, reason)
        self._first = <uint8_t>family

    cdef bint _keeps_first_byte(self) noexcept:
        return True

    @property
    def family(self):
        return self._first

    def __repr__(self):
        return f"AddressErrorCode({self._first}, {self.code}, {self.reason!r})"


cdef class Icmp(Attribute):
    """ICMP (RFC 8656 18.13): an ICMP error the relay got for a datagram it sent.

    After 2 reserved bytes come a 7-bit ICMP type, a 9-bit code and 4 bytes
    of error data (the next-hop MTU for "packet too big"; zero otherwise).
    """
    TYPE = AttrType.ICMP
    cdef readonly int icmp_type
    cdef readonly int code
    cdef readonly uint32_t error_data

    def __init__(self, int icmp_type, int code, uint32_t error_data=0):
        if icmp_type < 0 or icmp_type > 127:
            raise ValueError(f"the ICMP attribute holds a 7-bit type, not {icmp_type}")
        if code < 0 or code > 511:
            raise ValueError(f"the ICMP attribute holds a 9-bit code, not {code}")
        self.icmp_type = icmp_type
        self.code = code
        self.error_data = error_data

    cdef int _apply(self, Message msg) except -1:
        cdef uint8_t *p = msg._append(wire_type(self), 8)
        p[0] = p[1] = 0
        store16(p + 2, <uint16_t>((self.icmp_type << 9) | self.code))
        store32(p + 4, self.error_data)
        return 0

    @classmethod
    def get_from(cls, Message msg not None):
        """The first ICMP in msg, or None; DecodeError unless it is 8 bytes."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n != 8:
            raise DecodeError(f"ICMP is 8 bytes, not {n}")
        cdef Icmp attr = new_instance(cls)
        attr.icmp_type = load16(p + 2) >> 9
        attr.code = load16(p + 2) & 0x1FF
        attr.error_data = load32(p + 4)
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        cdef Icmp o = <Icmp>other
        return (o.icmp_type == self.icmp_type and o.code == self.code
                and o.error_data == self.error_data)

    def __hash__(self):
        return hash((type(self), self.icmp_type, self.code, self.error_data))

    def __repr__(self):
        return f"Icmp(icmp_type={self.icmp_type}, code={self.code}, error_data={self.error_data})"


cdef class ConnectionId(Uint32Attribute):
    """CONNECTION-ID (RFC 6062 6.2.1): names a peer TCP connection of a TCP allocation."""
    TYPE = AttrType.CONNECTION_ID


cdef int _channel_number_init(ChannelNumber self, int number) except -1:
    if number < 0x4000 or number > 0x4FFF:
        raise ValueError(f"channel number 0x{number:x} is outside 0x4000-0x4FFF")
    self.number = number
    return 0


cdef object _channel_number_call(PyObject *cls, PyObject **args, size_t nargsf, PyObject *kwnames):
    if positional_count(nargsf, kwnames) == 1:
        attr = <ChannelNumber>new_instance(<type>cls)
        _channel_number_init(attr, <object>args[0])
        return attr
    return generic_call(cls, args, nargsf, kwnames)


install_fast_calls(globals())
install_constructor(ChannelNumber, <void *>_channel_number_call)
