"""Cross-checks with aioice's STUN codec (`aioice.stun`): real third-party code.

Every message in MESSAGES is built twice, once by each library, from the same
content in the same order, and:

- the two encodings are byte for byte identical;
- ours decodes in aioice to the same attribute values, and aioice accepts
  our MESSAGE-INTEGRITY and FINGERPRINT;
- aioice's decodes in ours to the same typed attributes, and our
  check_integrity / check_fingerprint accept its seals;
- a tampered message is rejected by both.

How aioice verifies (read from its stun.py): up to 0.9 `parse_message(data,
integrity_key=key)` raises ValueError on a bad MESSAGE-INTEGRITY; from 0.10
`parse_message(data)` only checks FINGERPRINT (ValueError) and
`Message.check_message_integrity(key)` returns a bool. `aioice_parse` below
hides the difference: it raises ValueError on either bad seal.
"""

from __future__ import annotations

import inspect
import ipaddress
import string
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ice
from ice import attrs
from ice.constants import MessageClass, Method, message_type

stun = pytest.importorskip("aioice.stun")

pytestmark = pytest.mark.interop

SHORT_KEY = ice.short_term_key("8hhY5rbrDeMYUzVOL0z9O0KA")
LONG_KEY = ice.long_term_key("alice", "example.org", "secret")
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")

_TAKES_KEY = "integrity_key" in inspect.signature(stun.parse_message).parameters


def aioice_parse(data: bytes, key: bytes | None = None) -> Any:
    """aioice's parse_message, raising ValueError on a bad FINGERPRINT or
    MESSAGE-INTEGRITY whichever aioice version is installed."""
    if _TAKES_KEY:  # aioice < 0.10
        return stun.parse_message(data, integrity_key=key)
    message = stun.parse_message(data)
    if key is not None and not message.check_message_integrity(key):
        raise ValueError("aioice: MESSAGE-INTEGRITY does not match")
    return message


def aioice_rejects(data: bytes, key: bytes | None, need_fingerprint: bool) -> bool:
    """aioice refuses the message, or (need_fingerprint) does not find FINGERPRINT.

    aioice does not require FINGERPRINT: garble an attribute length so that
    its walk skips the FINGERPRINT and it parses without one. An ICE agent
    that requires FINGERPRINT (RFC 8445 7.2.2) would still drop that.
    """
    try:
        message = aioice_parse(data, key)
    except Exception:  # ValueError on a bad seal; struct.error etc. on garbled framing
        return True
    return need_fingerprint and "FINGERPRINT" not in message.attributes


def ours_rejects(data: bytes, key: bytes | None, need_fingerprint: bool) -> bool:
    """Ours refuses the message (check_fingerprint raises when FINGERPRINT is absent)."""
    try:
        msg = ice.Message.decode(data)
        if need_fingerprint:
            msg.check_fingerprint()
        if key is not None:
            msg.check_integrity(key)
    except (ice.DecodeError, ice.IntegrityError, ice.FingerprintError):
        return True
    return False


# ---------------------------------------------------------------- the shared table


@dataclass(frozen=True)
class Item:
    """One attribute: its aioice name and value, and our typed attribute."""

    name: str
    value: Any
    ours: ice.attrs.Attribute


@dataclass(frozen=True)
class Case:
    id: str
    method: Method
    cls: MessageClass
    items: tuple[Item, ...]
    key: bytes | None  # MESSAGE-INTEGRITY (+ FINGERPRINT) with this key
    fingerprint: bool  # FINGERPRINT alone when key is None


def _item(name: str, value: Any, ours: Any) -> Item:
    return Item(name, value, ours)


IPV6_MAPPED = ("2001:db8:1234:5678:11:2233:4455:6677", 32853)

MESSAGES = [
    Case(
        "ice-binding-request",
        Method.BINDING,
        MessageClass.REQUEST,
        (
            _item("USERNAME", "evtj:h6vY", attrs.Username("evtj:h6vY")),
            _item("PRIORITY", 0x6E0001FF, attrs.Priority(0x6E0001FF)),
            _item("ICE-CONTROLLING", 0x932FF9B151263B36, attrs.IceControlling(0x932FF9B151263B36)),
            _item("USE-CANDIDATE", None, attrs.UseCandidate()),
        ),
        SHORT_KEY,
        True,
    ),
    Case(
        "ice-binding-request-controlled",
        Method.BINDING,
        MessageClass.REQUEST,
        (
            _item("SOFTWARE", "STUN test client", attrs.Software("STUN test client")),
            _item("PRIORITY", 1, attrs.Priority(1)),
            _item("ICE-CONTROLLED", 2**64 - 1, attrs.IceControlled(2**64 - 1)),
            _item("USERNAME", "h\u00e9llo:w\u00f6rld", attrs.Username("h\u00e9llo:w\u00f6rld")),
        ),
        SHORT_KEY,
        True,
    ),
    Case(
        "binding-success-ipv4",
        Method.BINDING,
        MessageClass.SUCCESS_RESPONSE,
        (
            _item(
                "XOR-MAPPED-ADDRESS",
                ("192.0.2.1", 32853),
                attrs.XorMappedAddress("192.0.2.1", 32853),
            ),
            _item("MAPPED-ADDRESS", ("192.0.2.1", 32853), attrs.MappedAddress("192.0.2.1", 32853)),
            _item("SOFTWARE", "test vector", attrs.Software("test vector")),
        ),
        None,
        True,
    ),
    Case(
        "binding-success-ipv6",
        Method.BINDING,
        MessageClass.SUCCESS_RESPONSE,
        (
            _item("XOR-MAPPED-ADDRESS", IPV6_MAPPED, attrs.XorMappedAddress(*IPV6_MAPPED)),
            _item(
                "RESPONSE-ORIGIN", ("2001:db8::1", 3478), attrs.ResponseOrigin("2001:db8::1", 3478)
            ),
            _item(
                "OTHER-ADDRESS", ("198.51.100.7", 3479), attrs.OtherAddress("198.51.100.7", 3479)
            ),
        ),
        SHORT_KEY,
        True,
    ),
    Case(
        "binding-request-change-request",
        Method.BINDING,
        MessageClass.REQUEST,
        (_item("CHANGE-REQUEST", 0x06, attrs.ChangeRequest(change_ip=True, change_port=True)),),
        None,
        False,
    ),
    Case(
        "binding-error-487",
        Method.BINDING,
        MessageClass.ERROR_RESPONSE,
        (
            _item(
                "ERROR-CODE", (487, "Role Conflict"), attrs.ErrorCodeAttribute(487, "Role Conflict")
            ),
        ),
        SHORT_KEY,
        True,
    ),
    Case(
        "allocate-request",
        Method.ALLOCATE,
        MessageClass.REQUEST,
        (
            _item("REQUESTED-TRANSPORT", 17 << 24, attrs.RequestedTransport(17)),
            _item("LIFETIME", 3600, attrs.Lifetime(3600)),
            _item("USERNAME", "alice", attrs.Username("alice")),
            _item("REALM", "example.org", attrs.Realm("example.org")),
            _item(
                "NONCE",
                b"f//499k954d6OL34oL9FSTvy64sA",
                attrs.Nonce("f//499k954d6OL34oL9FSTvy64sA"),
            ),
        ),
        LONG_KEY,
        True,
    ),
    Case(
        "allocate-error-401",
        Method.ALLOCATE,
        MessageClass.ERROR_RESPONSE,
        (
            _item("ERROR-CODE", (401, "Unauthenticated"), attrs.ErrorCodeAttribute(401)),
            _item("REALM", "example.org", attrs.Realm("example.org")),
            _item(
                "NONCE",
                b"obMatJos2AAACf//499k954d6OL34oL9",
                attrs.Nonce(b"obMatJos2AAACf//499k954d6OL34oL9"),
            ),
        ),
        None,
        True,
    ),
    Case(
        "allocate-success",
        Method.ALLOCATE,
        MessageClass.SUCCESS_RESPONSE,
        (
            _item(
                "XOR-RELAYED-ADDRESS",
                ("203.0.113.9", 49152),
                attrs.XorRelayedAddress("203.0.113.9", 49152),
            ),
            _item(
                "XOR-MAPPED-ADDRESS",
                ("198.51.100.2", 40000),
                attrs.XorMappedAddress("198.51.100.2", 40000),
            ),
            _item("LIFETIME", 600, attrs.Lifetime(600)),
        ),
        LONG_KEY,
        True,
    ),
    Case(
        "allocate-success-ipv6",
        Method.ALLOCATE,
        MessageClass.SUCCESS_RESPONSE,
        (
            _item(
                "XOR-RELAYED-ADDRESS",
                ("2001:db8::7", 65535),
                attrs.XorRelayedAddress("2001:db8::7", 65535),
            ),
            _item("LIFETIME", 0, attrs.Lifetime(0)),
        ),
        LONG_KEY,
        True,
    ),
    Case(
        "send-indication",
        Method.SEND,
        MessageClass.INDICATION,
        (
            _item("XOR-PEER-ADDRESS", ("::1", 5000), attrs.XorPeerAddress("::1", 5000)),
            _item("DATA", b"\x00payload\xff", attrs.Data(b"\x00payload\xff")),
        ),
        None,
        False,
    ),
    Case(
        "data-indication",
        Method.DATA,
        MessageClass.INDICATION,
        (
            _item("XOR-PEER-ADDRESS", ("192.0.2.77", 1), attrs.XorPeerAddress("192.0.2.77", 1)),
            _item("DATA", bytes(range(256)) * 3, attrs.Data(bytes(range(256)) * 3)),
        ),
        None,
        True,
    ),
    Case(
        "channel-bind-request",
        Method.CHANNEL_BIND,
        MessageClass.REQUEST,
        (
            _item("CHANNEL-NUMBER", 0x4001, attrs.ChannelNumber(0x4001)),
            _item(
                "XOR-PEER-ADDRESS", ("192.0.2.15", 9000), attrs.XorPeerAddress("192.0.2.15", 9000)
            ),
            _item("USERNAME", "alice", attrs.Username("alice")),
            _item("REALM", "example.org", attrs.Realm("example.org")),
            _item("NONCE", b"n0nce", attrs.Nonce("n0nce")),
        ),
        LONG_KEY,
        True,
    ),
    Case(
        "channel-bind-success",
        Method.CHANNEL_BIND,
        MessageClass.SUCCESS_RESPONSE,
        (),
        LONG_KEY,
        True,
    ),
]


def build_ours(case: Case) -> ice.Message:
    msg = ice.Message(message_type(case.method, case.cls), TID)
    for item in case.items:
        item.ours.add_to(msg)
    if case.key is not None:
        msg.add_integrity(case.key)
    if case.key is not None or case.fingerprint:
        msg.add_fingerprint()
    return msg


def build_theirs(case: Case) -> Any:
    message = stun.Message(
        stun.Method(case.method),
        stun.Class((case.cls & 1) << 4 | (case.cls & 2) << 7),
        transaction_id=TID,
        attributes={item.name: item.value for item in case.items},
    )
    if case.key is not None:
        message.add_message_integrity(case.key)  # adds FINGERPRINT too
    elif case.fingerprint:
        message.add_fingerprint()
    return message


def _normal(value: Any) -> Any:
    """(host, port) with the host as an ipaddress object: text forms of IPv6 may differ."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        try:
            return (ipaddress.ip_address(value[0]), value[1])
        except ValueError:
            return value
    return value


ids = [case.id for case in MESSAGES]


@pytest.mark.parametrize("case", MESSAGES, ids=ids)
def test_both_libraries_encode_the_same_bytes(case: Case) -> None:
    assert build_ours(case).raw == bytes(build_theirs(case))


@pytest.mark.parametrize("case", MESSAGES, ids=ids)
def test_ours_decodes_and_verifies_in_aioice(case: Case) -> None:
    ours = build_ours(case)

    theirs = aioice_parse(ours.raw, case.key)  # raises on a bad FINGERPRINT / MI

    assert theirs.transaction_id == TID
    assert theirs.message_method == case.method
    assert theirs.message_class == build_theirs(case).message_class
    values = {name: _normal(v) for name, v in theirs.attributes.items()}
    seals = {"MESSAGE-INTEGRITY", "FINGERPRINT"}
    assert {n: v for n, v in values.items() if n not in seals} == {
        item.name: _normal(item.value) for item in case.items
    }
    assert list(theirs.attributes)[: len(case.items)] == [item.name for item in case.items]
    if case.key is not None:
        assert theirs.attributes["MESSAGE-INTEGRITY"] == ice.MessageIntegrity.get_from(ours)
        assert theirs.check_message_integrity(case.key)
        assert not theirs.check_message_integrity(case.key + b"x")
    if case.key is not None or case.fingerprint:
        assert theirs.attributes["FINGERPRINT"] == ice.Fingerprint.get_from(ours)
    else:
        assert "FINGERPRINT" not in theirs.attributes


@pytest.mark.parametrize("case", MESSAGES, ids=ids)
def test_aioice_messages_decode_and_verify_in_ours(case: Case) -> None:
    theirs = build_theirs(case)

    ours = ice.Message.decode(bytes(theirs))

    assert (ours.method, ours.cls, ours.transaction_id) == (case.method, case.cls, TID)
    for item in case.items:
        got = type(item.ours).get_from(ours)
        assert got == item.ours, item.name
        if isinstance(got, ice.attrs.AddressAttribute):
            assert _normal(got.address) == _normal(item.value)
    if case.key is not None:
        ours.check_integrity(case.key)
        ice.MessageIntegrity(case.key).check(ours)
        assert ice.MessageIntegrity.get_from(ours) == theirs.attributes["MESSAGE-INTEGRITY"]
        with pytest.raises(ice.IntegrityError):
            ours.check_integrity(case.key + b"x")
    else:
        with pytest.raises(ice.IntegrityError):
            ours.check_integrity(SHORT_KEY)
    if case.key is not None or case.fingerprint:
        ours.check_fingerprint()
        assert ice.Fingerprint.get_from(ours) == theirs.attributes["FINGERPRINT"]
    else:
        with pytest.raises(ice.FingerprintError):
            ours.check_fingerprint()


SEALED = [case for case in MESSAGES if case.key is not None]


@pytest.mark.parametrize("with_fingerprint", [True, False], ids=["mi+fp", "mi-only"])
@pytest.mark.parametrize("case", SEALED, ids=[case.id for case in SEALED])
def test_every_bit_flip_under_message_integrity_is_rejected_by_both(
    case: Case, with_fingerprint: bool
) -> None:
    msg = ice.Message(message_type(case.method, case.cls), TID)
    for item in case.items:
        item.ours.add_to(msg)
    msg.add_integrity(case.key)  # type: ignore[arg-type]
    if with_fingerprint:
        msg.add_fingerprint()
    wire = msg.raw
    mac_end = len(wire) - (8 if with_fingerprint else 0)
    mi_length_field = (mac_end - 22, mac_end - 21)
    assert not aioice_rejects(wire, case.key, with_fingerprint)
    assert not ours_rejects(wire, case.key, with_fingerprint)

    for bit in range(mac_end * 8):
        tampered = bytearray(wire)
        tampered[bit // 8] ^= 0x80 >> (bit % 8)
        assert ours_rejects(bytes(tampered), case.key, with_fingerprint), ("ours", bit)
        # aioice slices the MAC out without checking the MESSAGE-INTEGRITY
        # length field, so with the length's top bit flipped it still finds a
        # valid MAC: everything else must break it.
        if bit // 8 not in mi_length_field:
            assert aioice_rejects(bytes(tampered), case.key, with_fingerprint), ("aioice", bit)


@pytest.mark.parametrize(
    ("seal", "length_field"),
    [(ice.MessageIntegrity(SHORT_KEY), -22), (ice.Fingerprint(), -6)],
    ids=["message-integrity", "fingerprint"],
)
def test_ours_rejects_a_seal_length_that_aioice_ignores(seal: Any, length_field: int) -> None:
    """The aioice leniency the bit-flip tests work around: ours is strict."""
    msg = ice.Message.build(ice.BINDING_REQUEST, ice.Username("a:b"), seal, transaction_id=TID)
    wire = bytearray(msg.raw)
    wire[length_field] ^= 0x80  # 20 -> 0x8014, 4 -> 0x8004
    is_mi = isinstance(seal, ice.MessageIntegrity)
    assert not aioice_rejects(bytes(wire), SHORT_KEY if is_mi else None, not is_mi)
    with pytest.raises(ice.DecodeError):
        ice.Message.decode(wire)


FINGERPRINTED = [case for case in MESSAGES if case.key is None and case.fingerprint]


@pytest.mark.parametrize("case", FINGERPRINTED, ids=[case.id for case in FINGERPRINTED])
def test_every_bit_flip_under_fingerprint_is_rejected_by_both(case: Case) -> None:
    wire = bytes(build_theirs(case))
    fingerprint_length_field = (len(wire) - 6, len(wire) - 5)
    for bit in range(len(wire) * 8):
        tampered = bytearray(wire)
        tampered[bit // 8] ^= 0x80 >> (bit % 8)
        assert ours_rejects(bytes(tampered), None, need_fingerprint=True), ("ours", bit)
        # aioice ignores the FINGERPRINT length as it does the MI one (see above)
        if bit // 8 not in fingerprint_length_field:
            assert aioice_rejects(bytes(tampered), None, need_fingerprint=True), ("aioice", bit)


def test_a_tampered_username_is_rejected_by_both() -> None:
    case = MESSAGES[0]
    wire = bytearray(build_ours(case).raw)
    wire[24] ^= 0x20  # "evtj" -> "Evtj"

    with pytest.raises(ValueError, match="fingerprint"):
        stun.parse_message(bytes(wire))
    tampered = ice.Message.decode(wire)
    assert ice.Username.get_from(tampered) == ice.Username("Evtj:h6vY")
    with pytest.raises(ice.FingerprintError):
        tampered.check_fingerprint()
    with pytest.raises(ice.IntegrityError):
        tampered.check_integrity(SHORT_KEY)


# ---------------------------------------------------------------- random ICE checks


hosts = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)


@settings(max_examples=150, deadline=None)
@given(
    tid=st.binary(min_size=12, max_size=12),
    username=st.text(st.characters(codec="utf-8"), max_size=60),
    priority=st.integers(0, 2**32 - 1),
    controlling=st.booleans(),
    tie_breaker=st.integers(0, 2**64 - 1),
    use_candidate=st.booleans(),
    password=st.text(string.ascii_letters + string.digits + "+/", min_size=22, max_size=256),
    mapped=st.tuples(hosts, st.integers(0, 0xFFFF)),
)
def test_random_ice_checks_are_identical_in_both_libraries(
    tid: bytes,
    username: str,
    priority: int,
    controlling: bool,
    tie_breaker: int,
    use_candidate: bool,
    password: str,
    mapped: tuple[str, int],
) -> None:
    key = ice.short_term_key(password)
    role, role_name = (
        (ice.IceControlling, "ICE-CONTROLLING")
        if controlling
        else (ice.IceControlled, "ICE-CONTROLLED")
    )
    request = [
        ("USERNAME", username, ice.Username(username)),
        ("PRIORITY", priority, ice.Priority(priority)),
        (role_name, tie_breaker, role(tie_breaker)),
    ]
    if use_candidate:
        request.append(("USE-CANDIDATE", None, ice.UseCandidate()))
    response = [("XOR-MAPPED-ADDRESS", mapped, ice.XorMappedAddress(*mapped))]

    for method_class, items in ((stun.Class.REQUEST, request), (stun.Class.RESPONSE, response)):
        theirs = stun.Message(
            stun.Method.BINDING,
            method_class,
            transaction_id=tid,
            attributes={name: value for name, value, _ in items},
        )
        theirs.add_message_integrity(key)
        ours = ice.Message.build(
            stun.Method.BINDING | method_class,
            *(attr for _, _, attr in items),
            ice.MessageIntegrity(key),
            ice.Fingerprint(),
            transaction_id=tid,
        )
        assert ours.raw == bytes(theirs)

        parsed = aioice_parse(ours.raw, key)
        assert {
            n: _normal(v)
            for n, v in parsed.attributes.items()
            if n not in ("MESSAGE-INTEGRITY", "FINGERPRINT")
        } == {name: _normal(value) for name, value, _ in items}
        decoded = ice.Message.decode(bytes(theirs))
        decoded.check_integrity(key)
        decoded.check_fingerprint()
        for _, _, attr in items:
            assert type(attr).get_from(decoded) == attr
