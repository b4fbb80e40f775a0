"""Typed STUN/TURN/ICE attributes.

Every attribute is a small immutable value class with the same trio:

- ``attr.add_to(msg)`` appends it to a :class:`ice.Message`;
- ``Cls.get_from(msg)`` returns the first one in a message, ``None`` when
  absent, and raises :class:`ice.DecodeError` when it is malformed;
- ``MessageIntegrity(key).check(msg)``, ``MessageIntegritySha256(key).check(msg)``
  and ``Fingerprint.check(msg)`` verify the message.

Any of them can be passed to ``Message.build(type, *attributes)``. The classes
are compiled (``_attrs_stun``: RFC 8489, 8445, 5780; ``_attrs_turn``: RFC 8656,
6156, 6062) and all share the shapes in ``_attrs_base``.
"""

from ice._attrs_base import (
    AddressAttribute,
    BytesAttribute,
    ErrorCodeShape,
    FamilyAttribute,
    FlagAttribute,
    TextAttribute,
    Uint32Attribute,
    Uint64Attribute,
    XorAddressAttribute,
)
from ice._attrs_stun import (
    AlternateDomain,
    AlternateServer,
    ChangeRequest,
    ErrorCodeAttribute,
    Fingerprint,
    IceControlled,
    IceControlling,
    MappedAddress,
    MessageIntegrity,
    MessageIntegritySha256,
    Nonce,
    OtherAddress,
    Padding,
    PasswordAlgorithm,
    PasswordAlgorithms,
    Priority,
    Realm,
    ResponseOrigin,
    ResponsePort,
    Software,
    UnknownAttributes,
    UseCandidate,
    UserHash,
    Username,
    XorMappedAddress,
)
from ice._attrs_turn import (
    AdditionalAddressFamily,
    AddressErrorCode,
    ChannelNumber,
    ConnectionId,
    Data,
    DontFragment,
    EvenPort,
    Icmp,
    Lifetime,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    XorPeerAddress,
    XorRelayedAddress,
)
from ice._codec import Attribute

#: Every concrete attribute class, by the attribute type it encodes.
BY_TYPE: dict[int, type[Attribute]] = {
    cls.TYPE: cls  # type: ignore[attr-defined]
    for cls in (
        AdditionalAddressFamily, AddressErrorCode, AlternateDomain, AlternateServer,
        ChangeRequest, ChannelNumber, ConnectionId, Data, DontFragment, ErrorCodeAttribute,
        EvenPort, Fingerprint, IceControlled, IceControlling, Icmp, Lifetime, MappedAddress,
        MessageIntegrity, MessageIntegritySha256, Nonce, OtherAddress, Padding,
        PasswordAlgorithm, PasswordAlgorithms, Priority, Realm, RequestedAddressFamily,
        RequestedTransport, ReservationToken, ResponseOrigin, ResponsePort, Software,
        UnknownAttributes, UseCandidate, UserHash, Username, XorMappedAddress, XorPeerAddress,
        XorRelayedAddress,
    )
}

__all__ = [
    "BY_TYPE",
    "AdditionalAddressFamily",
    "AddressAttribute",
    "AddressErrorCode",
    "AlternateDomain",
    "AlternateServer",
    "Attribute",
    "BytesAttribute",
    "ChangeRequest",
    "ChannelNumber",
    "ConnectionId",
    "Data",
    "DontFragment",
    "ErrorCodeAttribute",
    "ErrorCodeShape",
    "EvenPort",
    "FamilyAttribute",
    "Fingerprint",
    "FlagAttribute",
    "IceControlled",
    "IceControlling",
    "Icmp",
    "Lifetime",
    "MappedAddress",
    "MessageIntegrity",
    "MessageIntegritySha256",
    "Nonce",
    "OtherAddress",
    "Padding",
    "PasswordAlgorithm",
    "PasswordAlgorithms",
    "Priority",
    "Realm",
    "RequestedAddressFamily",
    "RequestedTransport",
    "ReservationToken",
    "ResponseOrigin",
    "ResponsePort",
    "Software",
    "TextAttribute",
    "Uint32Attribute",
    "Uint64Attribute",
    "UnknownAttributes",
    "UseCandidate",
    "UserHash",
    "Username",
    "XorAddressAttribute",
    "XorMappedAddress",
    "XorPeerAddress",
    "XorRelayedAddress",
]
