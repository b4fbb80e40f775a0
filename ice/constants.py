"""STUN/TURN/ICE protocol numbers, matching the IANA registry.

Everything here mirrors the IANA "Session Traversal Utilities for NAT (STUN)
Parameters" registry (last updated 2024-12-20 when this file was written):
the STUN Methods, STUN Attributes, STUN Error Codes and STUN Password
Algorithms sub-registries, plus the message-type bit layout of RFC 8489
section 5 and a few fixed numbers of RFC 8489 and RFC 8656.

Only *registered* values are enum members.  Values the registry lists as
"Reserved" (0x002 SharedSecret, the RFC 3489 attributes 0x0002, 0x0004,
0x0005, 0x0007, 0x000B, TURN's old BANDWIDTH 0x0010 and TIMER-VAL 0x0021)
are not, with one deliberate exception: CHANGE-REQUEST 0x0003, see
`AttrType.CHANGE_REQUEST`.

Pure Python with no imports from the rest of the package, so every layer can
use it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "ALLOCATE_ERROR",
    "ALLOCATE_INDICATION",
    "ALLOCATE_REQUEST",
    "ALLOCATE_SUCCESS",
    "BINDING_ERROR",
    "BINDING_INDICATION",
    "BINDING_REQUEST",
    "BINDING_SUCCESS",
    "CHANNEL_BIND_ERROR",
    "CHANNEL_BIND_INDICATION",
    "CHANNEL_BIND_REQUEST",
    "CHANNEL_BIND_SUCCESS",
    "CHANNEL_NUMBER_MAX",
    "CHANNEL_NUMBER_MIN",
    "CONNECTION_ATTEMPT_INDICATION",
    "CONNECTION_BIND_ERROR",
    "CONNECTION_BIND_INDICATION",
    "CONNECTION_BIND_REQUEST",
    "CONNECTION_BIND_SUCCESS",
    "CONNECT_ERROR",
    "CONNECT_INDICATION",
    "CONNECT_REQUEST",
    "CONNECT_SUCCESS",
    "CREATE_PERMISSION_ERROR",
    "CREATE_PERMISSION_INDICATION",
    "CREATE_PERMISSION_REQUEST",
    "CREATE_PERMISSION_SUCCESS",
    "DATA_INDICATION",
    "FINGERPRINT_XOR",
    "HEADER_SIZE",
    "MAGIC_COOKIE",
    "REFRESH_ERROR",
    "REFRESH_INDICATION",
    "REFRESH_REQUEST",
    "REFRESH_SUCCESS",
    "SEND_INDICATION",
    "AddressFamily",
    "AttrType",
    "ErrorCode",
    "MessageClass",
    "Method",
    "PasswordAlgorithmId",
    "TransportProtocol",
    "default_reason",
    "is_comprehension_required",
    "message_type",
    "split_message_type",
]


# --------------------------------------------------------------------------
# Fixed numbers
# --------------------------------------------------------------------------

#: RFC 8489 section 5: the fixed value of the second 32-bit header word.
MAGIC_COOKIE: Final = 0x2112A442
#: RFC 8489 section 14.7: the CRC-32 of FINGERPRINT is XOR'ed with this.
FINGERPRINT_XOR: Final = 0x5354554E
#: RFC 8489 section 5: type (2) + length (2) + cookie (4) + transaction ID (12).
HEADER_SIZE: Final = 20
#: RFC 8656 section 12: channel numbers a client may bind.  (RFC 5766 allowed
#: up to 0x7FFF; RFC 8656 reserved 0x5000-0x7FFF for RFC 7983 demultiplexing.)
CHANNEL_NUMBER_MIN: Final = 0x4000
CHANNEL_NUMBER_MAX: Final = 0x4FFF

#: Attribute types below this are comprehension-required (RFC 8489 section 18.3).
_COMPREHENSION_OPTIONAL_START: Final = 0x8000


# --------------------------------------------------------------------------
# Methods and classes
# --------------------------------------------------------------------------


class Method(IntEnum):
    """STUN methods (IANA "STUN Methods"; 12-bit values).

    0x000 is reserved and 0x002 is "Reserved; was SharedSecret prior to
    RFC 5389"; neither is a member.  0x100-0xFFF are reserved by RFC 7983
    (their message types would collide with DTLS/SRTP demultiplexing).
    """

    BINDING = 0x001  # RFC 8489
    ALLOCATE = 0x003  # RFC 8656
    REFRESH = 0x004  # RFC 8656
    SEND = 0x006  # RFC 8656 (indication only)
    DATA = 0x007  # RFC 8656 (indication only)
    CREATE_PERMISSION = 0x008  # RFC 8656
    CHANNEL_BIND = 0x009  # RFC 8656
    CONNECT = 0x00A  # RFC 6062
    CONNECTION_BIND = 0x00B  # RFC 6062
    CONNECTION_ATTEMPT = 0x00C  # RFC 6062 (indication only)
    GOOG_PING = 0x080  # Expert Review [Jonas_Oreland]

    @property
    def iana_name(self) -> str:
        """The method's name exactly as the IANA registry spells it."""
        return _METHOD_NAMES[self]


_METHOD_NAMES: Final[dict[int, str]] = {
    Method.BINDING: "Binding",
    Method.ALLOCATE: "Allocate",
    Method.REFRESH: "Refresh",
    Method.SEND: "Send",
    Method.DATA: "Data",
    Method.CREATE_PERMISSION: "CreatePermission",
    Method.CHANNEL_BIND: "ChannelBind",
    Method.CONNECT: "Connect",
    Method.CONNECTION_BIND: "ConnectionBind",
    Method.CONNECTION_ATTEMPT: "ConnectionAttempt",
    Method.GOOG_PING: "GOOG-PING",
}


class MessageClass(IntEnum):
    """The 2-bit message class C1C0 (RFC 8489 section 5)."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS_RESPONSE = 0b10
    ERROR_RESPONSE = 0b11


def message_type(method: int, cls: int) -> int:
    """Interleave a 12-bit method and a 2-bit class into a 14-bit message type.

    RFC 8489 section 5, figure 3: bits 0-3 hold M0-M3, bit 4 holds C0,
    bits 5-7 hold M4-M6, bit 8 holds C1 and bits 9-13 hold M7-M11.
    ``message_type(Method.BINDING, MessageClass.SUCCESS_RESPONSE) == 0x0101``.

    Raises ValueError if ``method`` is not in 0..0xFFF or ``cls`` not in 0..3.
    """
    if not 0 <= method <= 0xFFF:
        raise ValueError(f"STUN method {method!r} is outside 0x000-0xFFF")
    if not 0 <= cls <= 0b11:
        raise ValueError(f"STUN message class {cls!r} is outside 0-3")
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((cls & 0b01) << 4)
        | ((cls & 0b10) << 7)
    )


def split_message_type(t: int) -> tuple[int, int]:
    """Split a 14-bit message type into ``(method, cls)``; the inverse of `message_type`.

    ``cls`` is returned as a `MessageClass`; ``method`` as a plain int, since it
    need not be a registered `Method`.  Raises ValueError if ``t`` is not in
    0..0x3FFF (the two most significant bits of a STUN message are zero).
    """
    if not 0 <= t <= 0x3FFF:
        raise ValueError(f"STUN message type {t!r} is outside 0x0000-0x3FFF")
    method = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80)
    cls = ((t >> 4) & 0b01) | ((t >> 7) & 0b10)
    return method, MessageClass(cls)


_REQ: Final = MessageClass.REQUEST
_IND: Final = MessageClass.INDICATION
_OK: Final = MessageClass.SUCCESS_RESPONSE
_ERR: Final = MessageClass.ERROR_RESPONSE

# The message types used everywhere (values in the comments, checked by tests).
BINDING_REQUEST: Final = message_type(Method.BINDING, _REQ)  # 0x0001
BINDING_INDICATION: Final = message_type(Method.BINDING, _IND)  # 0x0011
BINDING_SUCCESS: Final = message_type(Method.BINDING, _OK)  # 0x0101
BINDING_ERROR: Final = message_type(Method.BINDING, _ERR)  # 0x0111

ALLOCATE_REQUEST: Final = message_type(Method.ALLOCATE, _REQ)  # 0x0003
ALLOCATE_INDICATION: Final = message_type(Method.ALLOCATE, _IND)  # 0x0013
ALLOCATE_SUCCESS: Final = message_type(Method.ALLOCATE, _OK)  # 0x0103
ALLOCATE_ERROR: Final = message_type(Method.ALLOCATE, _ERR)  # 0x0113

REFRESH_REQUEST: Final = message_type(Method.REFRESH, _REQ)  # 0x0004
REFRESH_INDICATION: Final = message_type(Method.REFRESH, _IND)  # 0x0014
REFRESH_SUCCESS: Final = message_type(Method.REFRESH, _OK)  # 0x0104
REFRESH_ERROR: Final = message_type(Method.REFRESH, _ERR)  # 0x0114

CREATE_PERMISSION_REQUEST: Final = message_type(Method.CREATE_PERMISSION, _REQ)  # 0x0008
CREATE_PERMISSION_INDICATION: Final = message_type(Method.CREATE_PERMISSION, _IND)  # 0x0018
CREATE_PERMISSION_SUCCESS: Final = message_type(Method.CREATE_PERMISSION, _OK)  # 0x0108
CREATE_PERMISSION_ERROR: Final = message_type(Method.CREATE_PERMISSION, _ERR)  # 0x0118

CHANNEL_BIND_REQUEST: Final = message_type(Method.CHANNEL_BIND, _REQ)  # 0x0009
CHANNEL_BIND_INDICATION: Final = message_type(Method.CHANNEL_BIND, _IND)  # 0x0019
CHANNEL_BIND_SUCCESS: Final = message_type(Method.CHANNEL_BIND, _OK)  # 0x0109
CHANNEL_BIND_ERROR: Final = message_type(Method.CHANNEL_BIND, _ERR)  # 0x0119

CONNECT_REQUEST: Final = message_type(Method.CONNECT, _REQ)  # 0x000A
CONNECT_INDICATION: Final = message_type(Method.CONNECT, _IND)  # 0x001A
CONNECT_SUCCESS: Final = message_type(Method.CONNECT, _OK)  # 0x010A
CONNECT_ERROR: Final = message_type(Method.CONNECT, _ERR)  # 0x011A

CONNECTION_BIND_REQUEST: Final = message_type(Method.CONNECTION_BIND, _REQ)  # 0x000B
CONNECTION_BIND_INDICATION: Final = message_type(Method.CONNECTION_BIND, _IND)  # 0x001B
CONNECTION_BIND_SUCCESS: Final = message_type(Method.CONNECTION_BIND, _OK)  # 0x010B
CONNECTION_BIND_ERROR: Final = message_type(Method.CONNECTION_BIND, _ERR)  # 0x011B

SEND_INDICATION: Final = message_type(Method.SEND, _IND)  # 0x0016
DATA_INDICATION: Final = message_type(Method.DATA, _IND)  # 0x0017
CONNECTION_ATTEMPT_INDICATION: Final = message_type(Method.CONNECTION_ATTEMPT, _IND)  # 0x001C


# --------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------


class AttrType(IntEnum):
    """STUN attribute types (IANA "STUN Attributes"; 16-bit values).

    0x0000-0x7FFF are comprehension-required, 0x8000-0xFFFF
    comprehension-optional (RFC 8489 section 18.3).  Every attribute the
    registry currently assigns is a member; `iana_name` gives the
    registry's spelling.
    """

    # Comprehension-required, IETF Review (0x0000-0x3FFF)
    MAPPED_ADDRESS = 0x0001  # RFC 8489
    # RFC 5780 section 7.2 defines CHANGE-REQUEST as 0x0003 and NAT behaviour
    # discovery (RFC 5780, coturn, every "NAT type" tool) still uses it, but
    # RFC 8489 section 18.3.1 renamed the registry entry to "Reserved; was
    # CHANGE-REQUEST prior to [RFC5389]".  Kept because the NAT discovery
    # machine needs it.
    CHANGE_REQUEST = 0x0003  # RFC 5780 (registry: reserved)
    USERNAME = 0x0006  # RFC 8489
    MESSAGE_INTEGRITY = 0x0008  # RFC 8489
    ERROR_CODE = 0x0009  # RFC 8489
    UNKNOWN_ATTRIBUTES = 0x000A  # RFC 8489
    CHANNEL_NUMBER = 0x000C  # RFC 8656
    LIFETIME = 0x000D  # RFC 8656
    XOR_PEER_ADDRESS = 0x0012  # RFC 8656
    DATA = 0x0013  # RFC 8656
    REALM = 0x0014  # RFC 8489
    NONCE = 0x0015  # RFC 8489
    XOR_RELAYED_ADDRESS = 0x0016  # RFC 8656
    REQUESTED_ADDRESS_FAMILY = 0x0017  # RFC 8656
    EVEN_PORT = 0x0018  # RFC 8656
    REQUESTED_TRANSPORT = 0x0019  # RFC 8656
    DONT_FRAGMENT = 0x001A  # RFC 8656
    ACCESS_TOKEN = 0x001B  # RFC 7635
    MESSAGE_INTEGRITY_SHA256 = 0x001C  # RFC 8489
    PASSWORD_ALGORITHM = 0x001D  # RFC 8489
    USERHASH = 0x001E  # RFC 8489
    XOR_MAPPED_ADDRESS = 0x0020  # RFC 8489
    RESERVATION_TOKEN = 0x0022  # RFC 8656
    PRIORITY = 0x0024  # RFC 8445
    USE_CANDIDATE = 0x0025  # RFC 8445
    PADDING = 0x0026  # RFC 5780
    RESPONSE_PORT = 0x0027  # RFC 5780
    CONNECTION_ID = 0x002A  # RFC 6062

    # Comprehension-optional, IETF Review (0x8000-0xBFFF)
    ADDITIONAL_ADDRESS_FAMILY = 0x8000  # RFC 8656
    ADDRESS_ERROR_CODE = 0x8001  # RFC 8656
    PASSWORD_ALGORITHMS = 0x8002  # RFC 8489
    ALTERNATE_DOMAIN = 0x8003  # RFC 8489
    ICMP = 0x8004  # RFC 8656
    SOFTWARE = 0x8022  # RFC 8489
    ALTERNATE_SERVER = 0x8023  # RFC 8489
    TRANSACTION_TRANSMIT_COUNTER = 0x8025  # RFC 7982
    CACHE_TIMEOUT = 0x8027  # RFC 5780
    FINGERPRINT = 0x8028  # RFC 8489
    ICE_CONTROLLED = 0x8029  # RFC 8445
    ICE_CONTROLLING = 0x802A  # RFC 8445
    RESPONSE_ORIGIN = 0x802B  # RFC 5780
    OTHER_ADDRESS = 0x802C  # RFC 5780
    ECN_CHECK = 0x802D  # RFC 6679 (registry name: "ECN-CHECK STUN")
    THIRD_PARTY_AUTHORIZATION = 0x802E  # RFC 7635
    MOBILITY_TICKET = 0x8030  # RFC 8016

    # Comprehension-optional, Expert Review (0xC000-0xFFFF)
    CISCO_STUN_FLOWDATA = 0xC000  # [Dan_Wing]
    ENF_FLOW_DESCRIPTION = 0xC001  # [Pål_Erik_Martinsen]
    ENF_NETWORK_STATUS = 0xC002  # [Pål_Erik_Martinsen]
    CISCO_WEBEX_FLOW_INFO = 0xC003  # [Stefano_Giorcelli]
    CITRIX_TRANSACTION_ID = 0xC056  # [Paras_Babbar]
    GOOG_NETWORK_INFO = 0xC057  # [Jonas_Oreland]
    GOOG_LAST_ICE_CHECK_RECEIVED = 0xC058  # [Jonas_Oreland]
    GOOG_MISC_INFO = 0xC059  # [Jonas_Oreland]
    GOOG_OBSOLETE_1 = 0xC05A  # [Jonas_Oreland]
    GOOG_CONNECTION_ID = 0xC05B  # [Jonas_Oreland]
    GOOG_DELTA = 0xC05C  # [Jonas_Oreland]
    GOOG_DELTA_ACK = 0xC05D  # [Jonas_Oreland]
    GOOG_DELTA_SYNC_REQ = 0xC05E  # [Jonas_Oreland]
    GOOG_MESSAGE_INTEGRITY_32 = 0xC060  # [Jonas_Oreland]
    META_DTLS_IN_STUN = 0xC070  # draft-hancke-webrtc-sped
    META_DTLS_IN_STUN_ACKNOWLEDGEMENT = 0xC071  # draft-hancke-webrtc-sped

    @property
    def iana_name(self) -> str:
        """The attribute's name exactly as the IANA registry spells it."""
        return _ATTR_NAMES.get(self, self.name.replace("_", "-"))

    @property
    def comprehension_required(self) -> bool:
        """True for 0x0000-0x7FFF: an agent must understand it or answer 420."""
        return self < _COMPREHENSION_OPTIONAL_START


# Registry spellings that are not simply the member name with "-" for "_".
_ATTR_NAMES: Final[dict[int, str]] = {
    AttrType.TRANSACTION_TRANSMIT_COUNTER: "TRANSACTION_TRANSMIT_COUNTER",
    AttrType.ECN_CHECK: "ECN-CHECK STUN",
}


def is_comprehension_required(attr_type: int) -> bool:
    """True if ``attr_type`` is in the comprehension-required range 0x0000-0x7FFF.

    Works for any 16-bit value, registered or not; raises ValueError outside
    0..0xFFFF.
    """
    if not 0 <= attr_type <= 0xFFFF:
        raise ValueError(f"STUN attribute type {attr_type!r} is outside 0x0000-0xFFFF")
    return attr_type < _COMPREHENSION_OPTIONAL_START


# --------------------------------------------------------------------------
# Error codes
# --------------------------------------------------------------------------


class ErrorCode(IntEnum):
    """STUN error codes (IANA "STUN Error Codes"; 300-699).

    `reason` is the recommended reason phrase from the registry.  RFC 8489
    section 18.4 renamed 401 from "Unauthorized" to "Unauthenticated";
    `UNAUTHORIZED` is kept as an alias of `UNAUTHENTICATED`.
    """

    TRY_ALTERNATE = 300  # RFC 8489
    BAD_REQUEST = 400  # RFC 8489
    UNAUTHENTICATED = 401  # RFC 8489 (RFC 5389: "Unauthorized")
    UNAUTHORIZED = 401  # alias, the RFC 5389 name
    FORBIDDEN = 403  # RFC 8656
    MOBILITY_FORBIDDEN = 405  # RFC 8016
    UNKNOWN_ATTRIBUTE = 420  # RFC 8489
    ALLOCATION_MISMATCH = 437  # RFC 8656
    STALE_NONCE = 438  # RFC 8489
    ADDRESS_FAMILY_NOT_SUPPORTED = 440  # RFC 8656
    WRONG_CREDENTIALS = 441  # RFC 8656
    UNSUPPORTED_TRANSPORT_PROTOCOL = 442  # RFC 8656
    PEER_ADDRESS_FAMILY_MISMATCH = 443  # RFC 8656
    CONNECTION_ALREADY_EXISTS = 446  # RFC 6062
    CONNECTION_TIMEOUT_OR_FAILURE = 447  # RFC 6062
    ALLOCATION_QUOTA_REACHED = 486  # RFC 8656
    ROLE_CONFLICT = 487  # RFC 8445
    SERVER_ERROR = 500  # RFC 8489
    INSUFFICIENT_CAPACITY = 508  # RFC 8656

    @property
    def reason(self) -> str:
        """The registry's recommended reason phrase, e.g. "Stale Nonce"."""
        return _REASONS[self]


_REASONS: Final[dict[int, str]] = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthenticated",
    403: "Forbidden",
    405: "Mobility Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    446: "Connection Already Exists",
    447: "Connection Timeout or Failure",
    486: "Allocation Quota Reached",
    487: "Role Conflict",
    500: "Server Error",
    508: "Insufficient Capacity",
}


def default_reason(code: int) -> str:
    """The recommended reason phrase for ``code``, or "" if it is not registered."""
    return _REASONS.get(code, "")


# --------------------------------------------------------------------------
# Small registries
# --------------------------------------------------------------------------


class PasswordAlgorithmId(IntEnum):
    """IANA "STUN Password Algorithms" (RFC 8489 section 18.5)."""

    MD5 = 0x0001
    SHA256 = 0x0002


class AddressFamily(IntEnum):
    """The Family octet of (XOR-)MAPPED-ADDRESS and REQUESTED-ADDRESS-FAMILY."""

    IPV4 = 0x01
    IPV6 = 0x02


class TransportProtocol(IntEnum):
    """IP protocol numbers carried in REQUESTED-TRANSPORT (RFC 8656, RFC 6062)."""

    TCP = 6
    UDP = 17
