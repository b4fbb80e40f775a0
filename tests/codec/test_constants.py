"""ice.constants against the IANA "STUN Parameters" registry and RFC 8489 section 5."""

from __future__ import annotations

import pytest

from ice.constants import (
    ALLOCATE_ERROR,
    ALLOCATE_INDICATION,
    ALLOCATE_REQUEST,
    ALLOCATE_SUCCESS,
    BINDING_ERROR,
    BINDING_INDICATION,
    BINDING_REQUEST,
    BINDING_SUCCESS,
    CHANNEL_BIND_ERROR,
    CHANNEL_BIND_INDICATION,
    CHANNEL_BIND_REQUEST,
    CHANNEL_BIND_SUCCESS,
    CHANNEL_NUMBER_MAX,
    CHANNEL_NUMBER_MIN,
    CONNECT_ERROR,
    CONNECT_INDICATION,
    CONNECT_REQUEST,
    CONNECT_SUCCESS,
    CONNECTION_ATTEMPT_INDICATION,
    CONNECTION_BIND_ERROR,
    CONNECTION_BIND_INDICATION,
    CONNECTION_BIND_REQUEST,
    CONNECTION_BIND_SUCCESS,
    CREATE_PERMISSION_ERROR,
    CREATE_PERMISSION_INDICATION,
    CREATE_PERMISSION_REQUEST,
    CREATE_PERMISSION_SUCCESS,
    DATA_INDICATION,
    FINGERPRINT_XOR,
    HEADER_SIZE,
    MAGIC_COOKIE,
    REFRESH_ERROR,
    REFRESH_INDICATION,
    REFRESH_REQUEST,
    REFRESH_SUCCESS,
    SEND_INDICATION,
    AddressFamily,
    AttrType,
    ErrorCode,
    MessageClass,
    Method,
    PasswordAlgorithmId,
    TransportProtocol,
    default_reason,
    is_comprehension_required,
    message_type,
    split_message_type,
)

# ---------------------------------------------------------------------------
# The registry, copied from https://www.iana.org/assignments/stun-parameters
# (last updated 2024-12-20).  "Reserved" and "Unassigned" rows are omitted
# except where noted.
# ---------------------------------------------------------------------------

# STUN Methods: (value, name, reference)
IANA_METHODS = [
    (0x001, "Binding", "RFC8489"),
    (0x003, "Allocate", "RFC8656"),
    (0x004, "Refresh", "RFC8656"),
    (0x006, "Send", "RFC8656"),
    (0x007, "Data", "RFC8656"),
    (0x008, "CreatePermission", "RFC8656"),
    (0x009, "ChannelBind", "RFC8656"),
    (0x00A, "Connect", "RFC6062"),
    (0x00B, "ConnectionBind", "RFC6062"),
    (0x00C, "ConnectionAttempt", "RFC6062"),
    (0x080, "GOOG-PING", "Jonas_Oreland"),
]
IANA_RESERVED_METHODS = [0x000, 0x002]  # 0x002: "Reserved; was SharedSecret prior to [RFC5389]"

# STUN Attributes: (value, name, reference)
IANA_ATTRIBUTES = [
    (0x0001, "MAPPED-ADDRESS", "RFC8489"),
    (0x0006, "USERNAME", "RFC8489"),
    (0x0008, "MESSAGE-INTEGRITY", "RFC8489"),
    (0x0009, "ERROR-CODE", "RFC8489"),
    (0x000A, "UNKNOWN-ATTRIBUTES", "RFC8489"),
    (0x000C, "CHANNEL-NUMBER", "RFC8656"),
    (0x000D, "LIFETIME", "RFC8656"),
    (0x0012, "XOR-PEER-ADDRESS", "RFC8656"),
    (0x0013, "DATA", "RFC8656"),
    (0x0014, "REALM", "RFC8489"),
    (0x0015, "NONCE", "RFC8489"),
    (0x0016, "XOR-RELAYED-ADDRESS", "RFC8656"),
    (0x0017, "REQUESTED-ADDRESS-FAMILY", "RFC8656"),
    (0x0018, "EVEN-PORT", "RFC8656"),
    (0x0019, "REQUESTED-TRANSPORT", "RFC8656"),
    (0x001A, "DONT-FRAGMENT", "RFC8656"),
    (0x001B, "ACCESS-TOKEN", "RFC7635"),
    (0x001C, "MESSAGE-INTEGRITY-SHA256", "RFC8489"),
    (0x001D, "PASSWORD-ALGORITHM", "RFC8489"),
    (0x001E, "USERHASH", "RFC8489"),
    (0x0020, "XOR-MAPPED-ADDRESS", "RFC8489"),
    (0x0022, "RESERVATION-TOKEN", "RFC8656"),
    (0x0024, "PRIORITY", "RFC8445"),
    (0x0025, "USE-CANDIDATE", "RFC8445"),
    (0x0026, "PADDING", "RFC5780"),
    (0x0027, "RESPONSE-PORT", "RFC5780"),
    (0x002A, "CONNECTION-ID", "RFC6062"),
    (0x8000, "ADDITIONAL-ADDRESS-FAMILY", "RFC8656"),
    (0x8001, "ADDRESS-ERROR-CODE", "RFC8656"),
    (0x8002, "PASSWORD-ALGORITHMS", "RFC8489"),
    (0x8003, "ALTERNATE-DOMAIN", "RFC8489"),
    (0x8004, "ICMP", "RFC8656"),
    (0x8022, "SOFTWARE", "RFC8489"),
    (0x8023, "ALTERNATE-SERVER", "RFC8489"),
    (0x8025, "TRANSACTION_TRANSMIT_COUNTER", "RFC7982"),
    (0x8027, "CACHE-TIMEOUT", "RFC5780"),
    (0x8028, "FINGERPRINT", "RFC8489"),
    (0x8029, "ICE-CONTROLLED", "RFC8445"),
    (0x802A, "ICE-CONTROLLING", "RFC8445"),
    (0x802B, "RESPONSE-ORIGIN", "RFC5780"),
    (0x802C, "OTHER-ADDRESS", "RFC5780"),
    (0x802D, "ECN-CHECK STUN", "RFC6679"),
    (0x802E, "THIRD-PARTY-AUTHORIZATION", "RFC7635"),
    (0x8030, "MOBILITY-TICKET", "RFC8016"),
    (0xC000, "CISCO-STUN-FLOWDATA", "Dan_Wing"),
    (0xC001, "ENF-FLOW-DESCRIPTION", "Pål_Erik_Martinsen"),
    (0xC002, "ENF-NETWORK-STATUS", "Pål_Erik_Martinsen"),
    (0xC003, "CISCO-WEBEX-FLOW-INFO", "Stefano_Giorcelli"),
    (0xC056, "CITRIX-TRANSACTION-ID", "Paras_Babbar"),
    (0xC057, "GOOG-NETWORK-INFO", "Jonas_Oreland"),
    (0xC058, "GOOG-LAST-ICE-CHECK-RECEIVED", "Jonas_Oreland"),
    (0xC059, "GOOG-MISC-INFO", "Jonas_Oreland"),
    (0xC05A, "GOOG-OBSOLETE-1", "Jonas_Oreland"),
    (0xC05B, "GOOG-CONNECTION-ID", "Jonas_Oreland"),
    (0xC05C, "GOOG-DELTA", "Jonas_Oreland"),
    (0xC05D, "GOOG-DELTA-ACK", "Jonas_Oreland"),
    (0xC05E, "GOOG-DELTA-SYNC-REQ", "Jonas_Oreland"),
    (0xC060, "GOOG-MESSAGE-INTEGRITY-32", "Jonas_Oreland"),
    (0xC070, "META-DTLS-IN-STUN", "draft-hancke-webrtc-sped"),
    (0xC071, "META-DTLS-IN-STUN-ACKNOWLEDGEMENT", "draft-hancke-webrtc-sped"),
]
# Reserved rows: the RFC 3489 attributes (RFC 8489 section 18.3.1) and
# TURN's old BANDWIDTH / TIMER-VAL (RFC 8656).
IANA_RESERVED_ATTRIBUTES = [0x0000, 0x0002, 0x0004, 0x0005, 0x0007, 0x000B, 0x0010, 0x0021]
# 0x0003 reads "Reserved; was CHANGE-REQUEST prior to [RFC5389]" since
# RFC 8489, but RFC 5780 still defines CHANGE-REQUEST there; ice keeps it.
CHANGE_REQUEST = (0x0003, "CHANGE-REQUEST", "RFC5780")

# STUN Error Codes: (value, recommended reason phrase, reference)
IANA_ERROR_CODES = [
    (300, "Try Alternate", "RFC8489"),
    (400, "Bad Request", "RFC8489"),
    (401, "Unauthenticated", "RFC8489"),
    (403, "Forbidden", "RFC8656"),
    (405, "Mobility Forbidden", "RFC8016"),
    (420, "Unknown Attribute", "RFC8489"),
    (437, "Allocation Mismatch", "RFC8656"),
    (438, "Stale Nonce", "RFC8489"),
    (440, "Address Family not Supported", "RFC8656"),
    (441, "Wrong Credentials", "RFC8656"),
    (442, "Unsupported Transport Protocol", "RFC8656"),
    (443, "Peer Address Family Mismatch", "RFC8656"),
    (446, "Connection Already Exists", "RFC6062"),
    (447, "Connection Timeout or Failure", "RFC6062"),
    (486, "Allocation Quota Reached", "RFC8656"),
    (487, "Role Conflict", "RFC8445"),
    (500, "Server Error", "RFC8489"),
    (508, "Insufficient Capacity", "RFC8656"),
]

# STUN Password Algorithms
IANA_PASSWORD_ALGORITHMS = [(0x0001, "MD5", "RFC8489"), (0x0002, "SHA-256", "RFC8489")]


def _member_name(iana_name: str) -> str:
    return iana_name.replace("-", "_").replace(" ", "_").upper()


# --- methods ------------------------------------------------------------------


@pytest.mark.parametrize(("value", "name", "ref"), IANA_METHODS)
def test_method_registered(value: int, name: str, ref: str) -> None:
    assert Method(value).iana_name == name, ref


def test_methods_are_exactly_the_registry() -> None:
    assert sorted(int(m) for m in Method) == [v for v, _, _ in IANA_METHODS]
    for value in IANA_RESERVED_METHODS:
        with pytest.raises(ValueError):
            Method(value)


def test_method_names() -> None:
    assert int(Method.BINDING) == 0x001
    assert int(Method.ALLOCATE) == 0x003
    assert int(Method.REFRESH) == 0x004
    assert int(Method.SEND) == 0x006
    assert int(Method.DATA) == 0x007
    assert int(Method.CREATE_PERMISSION) == 0x008
    assert int(Method.CHANNEL_BIND) == 0x009
    assert int(Method.CONNECT) == 0x00A
    assert int(Method.CONNECTION_BIND) == 0x00B
    assert int(Method.CONNECTION_ATTEMPT) == 0x00C
    assert int(Method.GOOG_PING) == 0x080


# --- attributes ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "name", "ref"), IANA_ATTRIBUTES)
def test_attribute_registered(value: int, name: str, ref: str) -> None:
    attr = AttrType(value)
    assert attr.iana_name == name, ref
    expected_member = "ECN_CHECK" if value == 0x802D else _member_name(name)
    assert attr.name == expected_member


def test_attributes_are_exactly_the_registry() -> None:
    registered = sorted([v for v, _, _ in IANA_ATTRIBUTES] + [CHANGE_REQUEST[0]])
    assert sorted(int(a) for a in AttrType) == registered
    for value in IANA_RESERVED_ATTRIBUTES:
        with pytest.raises(ValueError):
            AttrType(value)


def test_change_request_kept_for_rfc5780() -> None:
    assert int(AttrType.CHANGE_REQUEST) == 0x0003
    assert AttrType.CHANGE_REQUEST.iana_name == CHANGE_REQUEST[1]


def test_attribute_names_used_by_the_brief() -> None:
    assert int(AttrType.XOR_MAPPED_ADDRESS) == 0x0020
    assert int(AttrType.MESSAGE_INTEGRITY_SHA256) == 0x001C
    assert int(AttrType.ICE_CONTROLLING) == 0x802A
    assert int(AttrType.ECN_CHECK) == 0x802D
    assert int(AttrType.TRANSACTION_TRANSMIT_COUNTER) == 0x8025


def test_comprehension_required() -> None:
    for value in (0x0000, 0x0001, 0x002A, 0x4000, 0x7FFF):
        assert is_comprehension_required(value)
    for value in (0x8000, 0x8028, 0xC000, 0xFFFF):
        assert not is_comprehension_required(value)
    for attr in AttrType:
        assert attr.comprehension_required == (attr < 0x8000)
        assert is_comprehension_required(attr) == attr.comprehension_required
    for bad in (-1, 0x10000):
        with pytest.raises(ValueError):
            is_comprehension_required(bad)


# --- error codes --------------------------------------------------------------


@pytest.mark.parametrize(("code", "reason", "ref"), IANA_ERROR_CODES)
def test_error_code_registered(code: int, reason: str, ref: str) -> None:
    assert ErrorCode(code).reason == reason, ref
    assert default_reason(code) == reason


def test_error_codes_are_exactly_the_registry() -> None:
    assert sorted({int(e) for e in ErrorCode}) == [c for c, _, _ in IANA_ERROR_CODES]


def test_error_code_names() -> None:
    assert int(ErrorCode.TRY_ALTERNATE) == 300
    assert int(ErrorCode.BAD_REQUEST) == 400
    assert ErrorCode["UNAUTHORIZED"] is ErrorCode["UNAUTHENTICATED"] is ErrorCode(401)
    assert int(ErrorCode.UNAUTHORIZED) == 401
    assert ErrorCode.UNAUTHORIZED.reason == "Unauthenticated"
    assert ErrorCode(401).name == "UNAUTHENTICATED"
    assert int(ErrorCode.FORBIDDEN) == 403
    assert int(ErrorCode.UNKNOWN_ATTRIBUTE) == 420
    assert int(ErrorCode.ALLOCATION_MISMATCH) == 437
    assert int(ErrorCode.STALE_NONCE) == 438
    assert int(ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED) == 440
    assert int(ErrorCode.WRONG_CREDENTIALS) == 441
    assert int(ErrorCode.UNSUPPORTED_TRANSPORT_PROTOCOL) == 442
    assert int(ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH) == 443
    assert int(ErrorCode.CONNECTION_ALREADY_EXISTS) == 446
    assert int(ErrorCode.CONNECTION_TIMEOUT_OR_FAILURE) == 447
    assert int(ErrorCode.ALLOCATION_QUOTA_REACHED) == 486
    assert int(ErrorCode.ROLE_CONFLICT) == 487
    assert int(ErrorCode.SERVER_ERROR) == 500
    assert int(ErrorCode.INSUFFICIENT_CAPACITY) == 508


def test_default_reason_unregistered() -> None:
    for code in (0, 299, 301, 402, 404, 430, 439, 488, 599, 600, 699, 700):
        assert default_reason(code) == ""


# --- small registries ---------------------------------------------------------


def test_password_algorithms() -> None:
    assert [(int(a), a.name) for a in PasswordAlgorithmId] == [
        (v, n.replace("-", "")) for v, n, _ in IANA_PASSWORD_ALGORITHMS
    ]


def test_address_family_and_transport() -> None:
    assert int(AddressFamily.IPV4) == 0x01
    assert int(AddressFamily.IPV6) == 0x02
    assert int(TransportProtocol.UDP) == 17
    assert int(TransportProtocol.TCP) == 6


def test_fixed_numbers() -> None:
    assert MAGIC_COOKIE == 0x2112A442
    assert FINGERPRINT_XOR == 0x5354554E
    assert HEADER_SIZE == 20
    assert (CHANNEL_NUMBER_MIN, CHANNEL_NUMBER_MAX) == (0x4000, 0x4FFF)


# --- message type -------------------------------------------------------------


def _reference_message_type(method: int, cls: int) -> int:
    """RFC 8489 figure 3 bit by bit, independently of ice.constants."""
    m = [(method >> i) & 1 for i in range(12)]
    c = [(cls >> i) & 1 for i in range(2)]
    # bit position (0 = least significant) of each field in the 14-bit type
    bits = {0: m[0], 1: m[1], 2: m[2], 3: m[3], 4: c[0], 5: m[4], 6: m[5], 7: m[6], 8: c[1]}
    bits.update({9: m[7], 10: m[8], 11: m[9], 12: m[10], 13: m[11]})
    return sum(bit << pos for pos, bit in bits.items())


def test_message_type_round_trip_all() -> None:
    seen = set()
    for method in range(0x1000):
        for cls in range(4):
            t = message_type(method, cls)
            assert t == _reference_message_type(method, cls)
            assert 0 <= t <= 0x3FFF
            assert split_message_type(t) == (method, cls)
            seen.add(t)
    assert len(seen) == 0x4000  # a bijection onto all 14-bit types
    for t in range(0x4000):
        assert message_type(*split_message_type(t)) == t


def test_message_type_known_values() -> None:
    # RFC 8489 section 5: "a Binding request has class=0b00 (request) and
    # method=0b000000000001 (Binding) and is encoded into the first 16 bits
    # as 0x0001.  A Binding response has class=0b10 (success response) and
    # method=0b000000000001, and is encoded into the first 16 bits as 0x0101."
    assert message_type(Method.BINDING, MessageClass.REQUEST) == 0x0001
    assert message_type(Method.BINDING, MessageClass.SUCCESS_RESPONSE) == 0x0101
    assert message_type(0b000000000001, 0b10) == 0x0101
    assert message_type(Method.BINDING, MessageClass.ERROR_RESPONSE) == 0x0111
    assert message_type(Method.BINDING, MessageClass.INDICATION) == 0x0011
    assert message_type(Method.ALLOCATE, MessageClass.REQUEST) == 0x0003
    assert message_type(Method.ALLOCATE, MessageClass.ERROR_RESPONSE) == 0x0113
    assert message_type(Method.SEND, MessageClass.INDICATION) == 0x0016
    assert message_type(Method.DATA, MessageClass.INDICATION) == 0x0017
    assert message_type(Method.GOOG_PING, MessageClass.REQUEST) == 0x0200
    assert message_type(0xFFF, 0b11) == 0x3FFF
    assert split_message_type(0x0113) == (Method.ALLOCATE, MessageClass.ERROR_RESPONSE)
    method, cls = split_message_type(0x0101)
    assert cls is MessageClass.SUCCESS_RESPONSE
    assert method == Method.BINDING


def test_message_type_constants() -> None:
    expected = {
        "BINDING": (BINDING_REQUEST, BINDING_INDICATION, BINDING_SUCCESS, BINDING_ERROR),
        "ALLOCATE": (ALLOCATE_REQUEST, ALLOCATE_INDICATION, ALLOCATE_SUCCESS, ALLOCATE_ERROR),
        "REFRESH": (REFRESH_REQUEST, REFRESH_INDICATION, REFRESH_SUCCESS, REFRESH_ERROR),
        "CREATE_PERMISSION": (
            CREATE_PERMISSION_REQUEST,
            CREATE_PERMISSION_INDICATION,
            CREATE_PERMISSION_SUCCESS,
            CREATE_PERMISSION_ERROR,
        ),
        "CHANNEL_BIND": (
            CHANNEL_BIND_REQUEST,
            CHANNEL_BIND_INDICATION,
            CHANNEL_BIND_SUCCESS,
            CHANNEL_BIND_ERROR,
        ),
        "CONNECT": (CONNECT_REQUEST, CONNECT_INDICATION, CONNECT_SUCCESS, CONNECT_ERROR),
        "CONNECTION_BIND": (
            CONNECTION_BIND_REQUEST,
            CONNECTION_BIND_INDICATION,
            CONNECTION_BIND_SUCCESS,
            CONNECTION_BIND_ERROR,
        ),
    }
    for name, types in expected.items():
        method = Method[name]
        # request 0x0000, indication 0x0010, success 0x0100, error 0x0110 + method bits
        low = (method & 0xF) | ((method & 0x70) << 1) | ((method & 0xF80) << 2)
        assert types == (low, low | 0x0010, low | 0x0100, low | 0x0110), name
    assert (BINDING_REQUEST, BINDING_INDICATION, BINDING_SUCCESS, BINDING_ERROR) == (
        0x0001,
        0x0011,
        0x0101,
        0x0111,
    )
    assert (ALLOCATE_REQUEST, ALLOCATE_SUCCESS, ALLOCATE_ERROR) == (0x0003, 0x0103, 0x0113)
    assert (REFRESH_REQUEST, REFRESH_SUCCESS, REFRESH_ERROR) == (0x0004, 0x0104, 0x0114)
    assert (CREATE_PERMISSION_REQUEST, CREATE_PERMISSION_SUCCESS) == (0x0008, 0x0108)
    assert (CHANNEL_BIND_REQUEST, CHANNEL_BIND_SUCCESS, CHANNEL_BIND_ERROR) == (
        0x0009,
        0x0109,
        0x0119,
    )
    assert (CONNECT_REQUEST, CONNECT_SUCCESS, CONNECT_ERROR) == (0x000A, 0x010A, 0x011A)
    assert (CONNECTION_BIND_REQUEST, CONNECTION_BIND_SUCCESS) == (0x000B, 0x010B)
    assert SEND_INDICATION == 0x0016
    assert DATA_INDICATION == 0x0017
    assert CONNECTION_ATTEMPT_INDICATION == 0x001C


@pytest.mark.parametrize(("method", "cls"), [(-1, 0), (0x1000, 0), (0x001, -1), (0x001, 4)])
def test_message_type_range_errors(method: int, cls: int) -> None:
    with pytest.raises(ValueError):
        message_type(method, cls)


@pytest.mark.parametrize("t", [-1, 0x4000, 0x8001, 0xFFFF])
def test_split_message_type_range_errors(t: int) -> None:
    with pytest.raises(ValueError):
        split_message_type(t)
