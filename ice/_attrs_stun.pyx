# STUN attributes of RFC 8489 (plus ICE's, RFC 8445, and NAT behaviour
# discovery's, RFC 5780). Each class is a shape from _attrs_base and a TYPE,
# unless its wire format is its own.

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint8_t, uint16_t, uint32_t

from ice._wire cimport load16, load32, store16

from ice._attrs_base cimport (
    AddressAttribute,
    BytesAttribute,
    ErrorCodeShape,
    FlagAttribute,
    TextAttribute,
    Uint32Attribute,
    Uint64Attribute,
    XorAddressAttribute,
    attr_type_of,
    find_value,
    generic_call,
    install_constructor,
    install_fast_calls,
    keep_instance,
    kept_instance,
    new_instance,
    positional_count,
    utf8_only,
    wire_type,
)
from ice._codec cimport Attribute, IntegrityKey, Message, as_integrity_key

from ice._errors import DecodeError, FingerprintError, IntegrityError
from ice.constants import AttrType, PasswordAlgorithmId


# ---------------------------------------------------------------- addresses

cdef class MappedAddress(AddressAttribute):
    """MAPPED-ADDRESS (RFC 8489 14.1): the reflexive address, for RFC 3489 clients."""
    TYPE = AttrType.MAPPED_ADDRESS


cdef class XorMappedAddress(XorAddressAttribute):
    """XOR-MAPPED-ADDRESS (RFC 8489 14.2): the client's server-reflexive address."""
    TYPE = AttrType.XOR_MAPPED_ADDRESS


cdef class AlternateServer(AddressAttribute):
    """ALTERNATE-SERVER (RFC 8489 14.15): where a 300 Try Alternate points."""
    TYPE = AttrType.ALTERNATE_SERVER


cdef class ResponseOrigin(AddressAttribute):
    """RESPONSE-ORIGIN (RFC 5780 7.3): the address the response was sent from."""
    TYPE = AttrType.RESPONSE_ORIGIN


cdef class OtherAddress(AddressAttribute):
    """OTHER-ADDRESS (RFC 5780 7.4): the server's alternate IP and port."""
    TYPE = AttrType.OTHER_ADDRESS


# ---------------------------------------------------------------- text

cdef class Username(TextAttribute):
    """USERNAME (RFC 8489 14.3): less than 513 bytes of UTF-8."""
    TYPE = AttrType.USERNAME
    MAX_BYTES = 512
    MAX_CHARS = 512


cdef class Realm(TextAttribute):
    """REALM (RFC 8489 14.9): fewer than 128 characters, at most 763 bytes."""
    TYPE = AttrType.REALM


cdef class Nonce(TextAttribute):
    """NONCE (RFC 8489 14.10): fewer than 128 characters, at most 763 bytes."""
    TYPE = AttrType.NONCE


cdef class Software(TextAttribute):
    """SOFTWARE (RFC 8489 14.14): fewer than 128 characters, at most 763 bytes."""
    TYPE = AttrType.SOFTWARE


cdef class AlternateDomain(TextAttribute):
    """ALTERNATE-DOMAIN (RFC 8489 14.16): the TLS server name for ALTERNATE-SERVER."""
    TYPE = AttrType.ALTERNATE_DOMAIN
    MAX_BYTES = 255
    MAX_CHARS = 255


cdef class UserHash(BytesAttribute):
    """USERHASH (RFC 8489 14.4): SHA-256(username ":" realm), 32 bytes."""
    TYPE = AttrType.USERHASH
    SIZE = 32


# ---------------------------------------------------------------- errors

cdef class ErrorCodeAttribute(ErrorCodeShape):
    """ERROR-CODE (RFC 8489 14.8): a 300-699 code and a reason phrase.

    ErrorCodeAttribute(438) takes the RFC's recommended reason ("Stale Nonce").
    """
    TYPE = AttrType.ERROR_CODE


cdef class UnknownAttributes(Attribute):
    """UNKNOWN-ATTRIBUTES (RFC 8489 14.13): the types a 420 response did not understand."""
    TYPE = AttrType.UNKNOWN_ATTRIBUTES
    cdef readonly tuple types

    def __init__(self, types):
        types = tuple(types)
        for t in types:
            if not 0 <= t <= 0xFFFF:
                raise ValueError(f"attribute type {t} does not fit in 16 bits")
        if len(types) > 0x7FFF:
            raise ValueError("too many attribute types for one UNKNOWN-ATTRIBUTES")
        self.types = types

    cdef int _apply(self, Message msg) except -1:
        cdef Py_ssize_t i, n = len(self.types)
        cdef uint8_t *p = msg._append(wire_type(self), 2 * n)
        for i in range(n):
            store16(p + 2 * i, <uint16_t>self.types[i])
        return 0

    @classmethod
    def get_from(cls, Message msg not None):
        """The first UNKNOWN-ATTRIBUTES in msg, or None; DecodeError on an odd length."""
        cdef const uint8_t *p
        cdef Py_ssize_t i, n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n & 1:
            raise DecodeError(f"UNKNOWN-ATTRIBUTES holds 16-bit types, but is {n} bytes")
        cdef UnknownAttributes attr = new_instance(cls)
        cdef tuple types = PyTuple_New(n // 2)
        cdef object item
        for i in range(n // 2):
            item = load16(p + 2 * i)
            Py_INCREF(item)  # PyTuple_SET_ITEM steals a reference
            PyTuple_SET_ITEM(types, i, item)
        attr.types = types
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<UnknownAttributes>other).types == self.types

    def __hash__(self):
        return hash((type(self), self.types))

    def __repr__(self):
        return f"UnknownAttributes({', '.join(f'0x{t:04x}' for t in self.types)})"


# ---------------------------------------------------------------- password algorithms

cdef bytes _encode_algorithm(object algorithm, object parameters):
    cdef bytes params = bytes(parameters)
    if not 0 <= algorithm <= 0xFFFF:
        raise ValueError(f"password algorithm {algorithm} does not fit in 16 bits")
    if len(params) > 0xFFFF:
        raise ValueError("password algorithm parameters are at most 65,535 bytes")
    cdef Py_ssize_t n = len(params)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 4 + ((n + 3) & ~3))
    cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
    store16(p, <uint16_t>algorithm)
    store16(p + 2, <uint16_t>n)
    for i in range(4, len(out)):
        p[i] = 0
    for i in range(n):
        p[4 + i] = params[i]
    return out


cdef tuple _decode_algorithms(const uint8_t *p, Py_ssize_t n, str what):
    cdef list found = []
    cdef Py_ssize_t pos = 0, length
    while pos < n:
        if n - pos < 4:
            raise DecodeError(f"{what}: truncated algorithm entry")
        length = load16(p + pos + 2)
        if pos + 4 + length > n:
            raise DecodeError(f"{what}: algorithm parameters run past the attribute")
        found.append((
            load16(p + pos),
            PyBytes_FromStringAndSize(<const char *>p + pos + 4, length),
        ))
        pos += 4 + ((length + 3) & ~3)
    if pos != n:
        raise DecodeError(f"{what}: algorithm parameters are not padded to 4 bytes")
    return tuple(found)


cdef class PasswordAlgorithm(Attribute):
    """PASSWORD-ALGORITHM (RFC 8489 14.12): the algorithm a request's key used."""
    TYPE = AttrType.PASSWORD_ALGORITHM
    cdef readonly int algorithm
    cdef readonly bytes parameters

    def __init__(self, int algorithm=PasswordAlgorithmId.SHA256, parameters=b""):
        self.algorithm = algorithm
        self.parameters = bytes(parameters)
        _encode_algorithm(algorithm, self.parameters)  # validates

    cdef int _apply(self, Message msg) except -1:
        cdef bytes raw = _encode_algorithm(self.algorithm, self.parameters)
        # The value is the unpadded entry; the message pads it.
        return msg._add_raw(wire_type(self), <const uint8_t *>PyBytes_AS_STRING(raw),
                            4 + len(self.parameters))

    @classmethod
    def get_from(cls, Message msg not None):
        """The first PASSWORD-ALGORITHM in msg, or None; DecodeError if malformed."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n < 4 or 4 + load16(p + 2) != n:
            raise DecodeError("PASSWORD-ALGORITHM length does not match its parameters")
        cdef PasswordAlgorithm attr = new_instance(cls)
        attr.algorithm = load16(p)
        attr.parameters = PyBytes_FromStringAndSize(<const char *>p + 4, n - 4)
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        cdef PasswordAlgorithm o = <PasswordAlgorithm>other
        return o.algorithm == self.algorithm and o.parameters == self.parameters

    def __hash__(self):
        return hash((type(self), self.algorithm, self.parameters))

    def __repr__(self):
        return f"PasswordAlgorithm({self.algorithm}, {self.parameters!r})"


cdef class PasswordAlgorithms(Attribute):
    """PASSWORD-ALGORITHMS (RFC 8489 14.11): the algorithms a server offers, in order.

    algorithms is a sequence of algorithm numbers or (algorithm, parameters) pairs.
    """
    TYPE = AttrType.PASSWORD_ALGORITHMS
    cdef readonly tuple algorithms

    def __init__(self, algorithms=(PasswordAlgorithmId.SHA256, PasswordAlgorithmId.MD5)):
        entries = []
        for entry in algorithms:
            if isinstance(entry, tuple):
                algorithm, parameters = entry
            else:
                algorithm, parameters = entry, b""
            _encode_algorithm(algorithm, parameters)
            entries.append((int(algorithm), bytes(parameters)))
        self.algorithms = tuple(entries)

    cdef int _apply(self, Message msg) except -1:
        cdef bytes raw = b"".join([_encode_algorithm(a, p) for a, p in self.algorithms])
        return msg._add_raw(wire_type(self), <const uint8_t *>PyBytes_AS_STRING(raw), len(raw))

    @classmethod
    def get_from(cls, Message msg not None):
        """The first PASSWORD-ALGORITHMS in msg, or None; DecodeError if malformed."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        cdef PasswordAlgorithms attr = new_instance(cls)
        attr.algorithms = _decode_algorithms(p, n, "PASSWORD-ALGORITHMS")
        return attr

    @property
    def ids(self):
        """Just the algorithm numbers, in the server's order of preference."""
        return tuple([a for a, _ in self.algorithms])

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<PasswordAlgorithms>other).algorithms == self.algorithms

    def __hash__(self):
        return hash((type(self), self.algorithms))

    def __repr__(self):
        return f"PasswordAlgorithms({self.algorithms!r})"


# ---------------------------------------------------------------- integrity and fingerprint

@cython.no_gc  # one IntegrityKey, which holds one exact bytes
cdef class MessageIntegrity(Attribute):
    """MESSAGE-INTEGRITY (RFC 8489 14.5): HMAC-SHA1 of the message with a key.

    The key is bytes: ice.short_term_key(password) for ICE-style
    credentials, ice.long_term_key(username, realm, password) for TURN.
    Its HMAC states are computed once here, so keep the object for a session.
    """
    TYPE = AttrType.MESSAGE_INTEGRITY
    cdef readonly IntegrityKey integrity_key

    def __init__(self, key):
        self.integrity_key = as_integrity_key(key)

    @property
    def key(self):
        return self.integrity_key.key

    cdef int _apply(self, Message msg) except -1:
        return msg._add_integrity_sha1(self.integrity_key)

    def check(self, Message msg not None):
        """Verify msg's MESSAGE-INTEGRITY with this key; raises IntegrityError."""
        msg.check_integrity(self.integrity_key)

    @staticmethod
    def get_from(Message msg not None):
        """The 20-byte HMAC carried by msg, or None."""
        return msg.get(AttrType.MESSAGE_INTEGRITY)

    def __repr__(self):
        return f"MessageIntegrity(<{len(self.integrity_key.key)}-byte key>)"


cdef class MessageIntegritySha256(Attribute):
    """MESSAGE-INTEGRITY-SHA256 (RFC 8489 14.6): HMAC-SHA256, 16-32 bytes (default 32)."""
    TYPE = AttrType.MESSAGE_INTEGRITY_SHA256
    cdef readonly IntegrityKey integrity_key
    cdef readonly int length

    def __init__(self, key, int length=32):
        if length < 16 or length > 32 or length & 3:
            raise ValueError(f"MESSAGE-INTEGRITY-SHA256 is 16 to 32 bytes in steps of 4, not {length}")
        self.integrity_key = as_integrity_key(key)
        self.length = length

    @property
    def key(self):
        return self.integrity_key.key

    cdef int _apply(self, Message msg) except -1:
        return msg._add_integrity_sha256(self.integrity_key, self.length)

    def check(self, Message msg not None):
        """Verify msg's MESSAGE-INTEGRITY-SHA256 with this key; raises IntegrityError."""
        msg.check_integrity_sha256(self.integrity_key)

    @staticmethod
    def get_from(Message msg not None):
        """The (possibly truncated) HMAC carried by msg, or None."""
        return msg.get(AttrType.MESSAGE_INTEGRITY_SHA256)

    def __repr__(self):
        return f"MessageIntegritySha256(<{len(self.integrity_key.key)}-byte key>, {self.length})"


cdef class Fingerprint(Attribute):
    """FINGERPRINT (RFC 8489 14.7): CRC-32 of the message XOR 0x5354554e, always last."""
    TYPE = AttrType.FINGERPRINT

    cdef int _apply(self, Message msg) except -1:
        return msg._add_fingerprint()

    @staticmethod
    def check(Message msg not None):
        """Verify msg's FINGERPRINT; raises FingerprintError."""
        msg.check_fingerprint()

    @staticmethod
    def get_from(Message msg not None):
        """The 32-bit FINGERPRINT value carried by msg, or None."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, AttrType.FINGERPRINT, &p)
        return load32(p) if n == 4 else None

    def __eq__(self, other):
        return type(other) is type(self) or NotImplemented

    def __hash__(self):
        return hash(type(self))

    def __repr__(self):
        return "Fingerprint()"


# ---------------------------------------------------------------- ICE (RFC 8445 section 16.1)

cdef class Priority(Uint32Attribute):
    """PRIORITY: the priority a peer-reflexive candidate learned from this check would get."""
    TYPE = AttrType.PRIORITY


cdef class UseCandidate(FlagAttribute):
    """USE-CANDIDATE: the controlling agent nominates this pair."""
    TYPE = AttrType.USE_CANDIDATE


cdef class IceControlled(Uint64Attribute):
    """ICE-CONTROLLED: the sender is controlled; the value is its tie-breaker."""
    TYPE = AttrType.ICE_CONTROLLED


cdef class IceControlling(Uint64Attribute):
    """ICE-CONTROLLING: the sender is controlling; the value is its tie-breaker."""
    TYPE = AttrType.ICE_CONTROLLING


# ---------------------------------------------------------------- NAT behaviour discovery (RFC 5780)

cdef class ChangeRequest(Attribute):
    """CHANGE-REQUEST (RFC 5780 7.2): answer from the other IP and/or port."""
    TYPE = AttrType.CHANGE_REQUEST
    cdef readonly bint change_ip
    cdef readonly bint change_port

    def __init__(self, bint change_ip=False, bint change_port=False):
        self.change_ip = change_ip
        self.change_port = change_port

    cdef int _apply(self, Message msg) except -1:
        cdef uint8_t *p = msg._append(wire_type(self), 4)
        p[0] = p[1] = p[2] = 0
        p[3] = (0x04 if self.change_ip else 0) | (0x02 if self.change_port else 0)
        return 0

    @classmethod
    def get_from(cls, Message msg not None):
        """The first CHANGE-REQUEST in msg, or None; DecodeError unless it is 4 bytes."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n != 4:
            raise DecodeError(f"CHANGE-REQUEST is 4 bytes, not {n}")
        cdef ChangeRequest attr = new_instance(cls)
        attr.change_ip = (p[3] & 0x04) != 0
        attr.change_port = (p[3] & 0x02) != 0
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        cdef ChangeRequest o = <ChangeRequest>other
        return o.change_ip == self.change_ip and o.change_port == self.change_port

    def __hash__(self):
        return hash((type(self), self.change_ip, self.change_port))

    def __repr__(self):
        return f"ChangeRequest(change_ip={self.change_ip}, change_port={self.change_port})"


cdef class ResponsePort(Attribute):
    """RESPONSE-PORT (RFC 5780 7.5): send the response to this port instead."""
    TYPE = AttrType.RESPONSE_PORT
    cdef readonly int port

    def __init__(self, int port):
        if port < 0 or port > 0xFFFF:
            raise ValueError(f"port {port} is outside 0-65535")
        self.port = port

    cdef int _apply(self, Message msg) except -1:
        cdef uint8_t *p = msg._append(wire_type(self), 4)
        store16(p, <uint16_t>self.port)
        p[2] = p[3] = 0
        return 0

    @classmethod
    def get_from(cls, Message msg not None):
        """The first RESPONSE-PORT in msg, or None; DecodeError unless it is 4 bytes."""
        cdef const uint8_t *p
        cdef Py_ssize_t n = find_value(msg, attr_type_of(cls), &p)
        if n < 0:
            return None
        if n != 4:
            raise DecodeError(f"RESPONSE-PORT is 4 bytes, not {n}")
        cdef ResponsePort attr = new_instance(cls)
        attr.port = load16(p)
        return attr

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (<ResponsePort>other).port == self.port

    def __hash__(self):
        return hash((type(self), self.port))

    def __repr__(self):
        return f"ResponsePort({self.port})"


cdef class Padding(BytesAttribute):
    """PADDING (RFC 5780 7.6): filler that makes a request as large as its response."""
    TYPE = AttrType.PADDING

    @classmethod
    def of_length(cls, int length):
        """PADDING of length zero bytes (the content is meaningless)."""
        return cls(bytes(length))


cdef object _integrity_call(PyObject *cls, PyObject **args, size_t nargsf, PyObject *kwnames):
    # MessageIntegrity(key), as its __init__: one per message in the plain way of
    # signing, where the key is the session's same bytes (or IntegrityKey) every time.
    cdef object key
    if positional_count(nargsf, kwnames) == 1:
        key = <object>args[0]
        if type(key) is bytes or type(key) is IntegrityKey:
            kept = kept_instance(cls, args[0])
            if kept is not None:
                return kept
        attr = <MessageIntegrity>new_instance(<type>cls)
        attr.integrity_key = as_integrity_key(key)
        if type(key) is bytes or type(key) is IntegrityKey:
            keep_instance(cls, args[0], attr)
        return attr
    return generic_call(cls, args, nargsf, kwnames)


install_fast_calls(globals())
# RFC 8489 14.3, 14.9, 14.14, 14.16: UTF-8 only. NONCE takes any bytes (a
# server's, echoed exactly as it came).
for _cls in (Username, Realm, Software, AlternateDomain):
    utf8_only(_cls)
del _cls
install_constructor(MessageIntegrity, <void *>_integrity_call)
