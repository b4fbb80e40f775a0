"""Hypothesis properties: every attribute round-trips, and no input crashes the decoder."""

from __future__ import annotations

import contextlib
import ipaddress
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ice
from ice import _codec, attrs, constants

ipv4 = st.ip_addresses(v=4)
ipv6 = st.ip_addresses(v=6)
hosts = st.one_of(ipv4, ipv6, ipv4.map(str), ipv6.map(str))
ports = st.integers(0, 0xFFFF)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
family = st.sampled_from([1, 2])
keys = st.binary(min_size=1, max_size=100)


def text(max_chars: int, max_bytes: int) -> st.SearchStrategy[str]:
    return st.text(max_size=max_chars).filter(lambda s: len(s.encode()) <= max_bytes)


# One strategy per attribute class: each draws a ready-made attribute.
STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    **{
        cls: st.builds(cls, hosts, ports)
        for cls in (
            attrs.MappedAddress,
            attrs.XorMappedAddress,
            attrs.AlternateServer,
            attrs.ResponseOrigin,
            attrs.OtherAddress,
            attrs.XorPeerAddress,
            attrs.XorRelayedAddress,
        )
    },
    attrs.Username: st.builds(attrs.Username, text(512, 512)),
    attrs.Realm: st.builds(attrs.Realm, text(128, 763)),
    attrs.Nonce: st.builds(attrs.Nonce, st.one_of(text(128, 763), st.binary(max_size=763))),
    attrs.Software: st.builds(attrs.Software, text(128, 763)),
    attrs.AlternateDomain: st.builds(attrs.AlternateDomain, text(255, 255)),
    attrs.UserHash: st.builds(attrs.UserHash, st.binary(min_size=32, max_size=32)),
    attrs.Data: st.builds(attrs.Data, st.binary(max_size=2000)),
    attrs.ReservationToken: st.builds(attrs.ReservationToken, st.binary(min_size=8, max_size=8)),
    attrs.Padding: st.builds(attrs.Padding, st.binary(max_size=600)),
    attrs.Priority: st.builds(attrs.Priority, u32),
    attrs.Lifetime: st.builds(attrs.Lifetime, u32),
    attrs.ConnectionId: st.builds(attrs.ConnectionId, u32),
    attrs.IceControlled: st.builds(attrs.IceControlled, u64),
    attrs.IceControlling: st.builds(attrs.IceControlling, u64),
    attrs.UseCandidate: st.just(attrs.UseCandidate()),
    attrs.DontFragment: st.just(attrs.DontFragment()),
    attrs.ErrorCodeAttribute: st.builds(
        attrs.ErrorCodeAttribute, st.integers(300, 699), st.one_of(st.none(), text(128, 763))
    ),
    attrs.AddressErrorCode: st.builds(
        attrs.AddressErrorCode, family, st.integers(300, 699), st.one_of(st.none(), text(128, 763))
    ),
    attrs.UnknownAttributes: st.builds(
        attrs.UnknownAttributes, st.lists(st.integers(0, 0xFFFF), max_size=40)
    ),
    attrs.PasswordAlgorithm: st.builds(
        attrs.PasswordAlgorithm, st.integers(0, 0xFFFF), st.binary(max_size=40)
    ),
    attrs.PasswordAlgorithms: st.builds(
        attrs.PasswordAlgorithms,
        st.lists(
            st.one_of(
                st.integers(0, 0xFFFF),
                st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=20)),
            ),
            max_size=8,
        ),
    ),
    attrs.ChannelNumber: st.builds(attrs.ChannelNumber, st.integers(0x4000, 0x4FFF)),
    attrs.RequestedAddressFamily: st.builds(attrs.RequestedAddressFamily, family),
    attrs.AdditionalAddressFamily: st.builds(attrs.AdditionalAddressFamily, family),
    attrs.EvenPort: st.builds(attrs.EvenPort, st.booleans()),
    attrs.RequestedTransport: st.builds(attrs.RequestedTransport, st.integers(0, 255)),
    attrs.Icmp: st.builds(attrs.Icmp, st.integers(0, 127), st.integers(0, 511), u32),
    attrs.ChangeRequest: st.builds(attrs.ChangeRequest, st.booleans(), st.booleans()),
    attrs.ResponsePort: st.builds(attrs.ResponsePort, ports),
}
SEALS = {attrs.MessageIntegrity, attrs.MessageIntegritySha256, attrs.Fingerprint}
tids = st.binary(min_size=12, max_size=12)


def test_every_attribute_class_has_a_strategy() -> None:
    assert set(attrs.BY_TYPE.values()) == set(STRATEGIES) | SEALS


@pytest.mark.parametrize("cls", sorted(STRATEGIES, key=lambda c: c.__name__))
def test_attribute_round_trips(cls: type) -> None:
    @settings(max_examples=60, deadline=None)
    @given(attr=STRATEGIES[cls], tid=tids, msg_type=st.integers(0, 0x3FFF))
    def round_trip(attr: Any, tid: bytes, msg_type: int) -> None:
        msg = ice.Message(msg_type, tid)
        attr.add_to(msg)
        decoded = ice.Message.decode(bytes(msg))
        again = cls.get_from(decoded)
        assert again == attr
        assert hash(again) == hash(attr)
        assert cls.get_from(ice.Message(msg_type, tid)) is None

    round_trip()


@settings(max_examples=100, deadline=None)
@given(
    tid=tids,
    msg_type=st.integers(0, 0x3FFF),
    raw=st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=100)), max_size=12),
    key=keys,
    seal=st.sampled_from(["none", "sha1", "sha256", "both"]),
    fingerprint=st.booleans(),
)
def test_whole_messages_round_trip(
    tid: bytes,
    msg_type: int,
    raw: list[tuple[int, bytes]],
    key: bytes,
    seal: str,
    fingerprint: bool,
) -> None:
    seal_types = {0x0008, 0x001C, 0x8028}
    raw = [(t, v) for t, v in raw if t not in seal_types]
    msg = ice.Message(msg_type, tid)
    for attr_type, value in raw:
        msg.add(attr_type, value)
    if seal in ("sha1", "both"):
        msg.add_integrity(key)
    if seal in ("sha256", "both"):
        msg.add_integrity_sha256(key)
    if fingerprint:
        msg.add_fingerprint()

    decoded = ice.Message.decode(bytes(msg))

    assert decoded == msg
    assert decoded.attributes[: len(raw)] == raw
    assert (decoded.type, decoded.transaction_id) == (msg_type, tid)
    if seal in ("sha1", "both"):
        decoded.check_integrity(key)
    if seal in ("sha256", "both"):
        decoded.check_integrity_sha256(key)
    if fingerprint:
        decoded.check_fingerprint()


def _only_decode_errors(call: Callable[[], object]) -> None:
    with contextlib.suppress(ice.DecodeError):
        call()


def _exercise(data: bytes) -> None:
    """Everything a receiver may do with untrusted bytes: only DecodeError may escape."""
    _only_decode_errors(lambda: ice.decode_channel_data(data))
    _only_decode_errors(lambda: ice.decode_channel_data(data, stream=True))
    _only_decode_errors(lambda: ice.stream_frame_length(data))
    ice.classify(data)
    ice.is_stun(data)
    ice.is_channel_data(data)
    try:
        msg = ice.Message.decode(data)
    except ice.DecodeError:
        return
    for cls in attrs.BY_TYPE.values():
        _only_decode_errors(lambda cls=cls: cls.get_from(msg))  # type: ignore[misc]
    for cls in (attrs.Username, attrs.Realm, attrs.Nonce, attrs.Software):
        _only_decode_errors(lambda cls=cls: getattr(cls.get_from(msg), "value", None))
    assert all(t < 0x8000 for t in msg.unknown_attributes)
    for check in (
        msg.check_fingerprint,
        lambda: msg.check_integrity(b"k"),
        lambda: msg.check_integrity_sha256(b"k"),
    ):
        with contextlib.suppress(ice.FingerprintError, ice.IntegrityError):
            check()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_nothing_but_decode_error(data: bytes) -> None:
    _exercise(data)


VALID = ice.Message.build(
    constants.ALLOCATE_SUCCESS,
    ice.XorRelayedAddress("2001:db8::7", 3478),
    ice.XorMappedAddress("192.0.2.7", 40000),
    ice.ErrorCodeAttribute(438),
    ice.UnknownAttributes([0x7777]),
    ice.PasswordAlgorithms(),
    ice.Lifetime(600),
    ice.Nonce("abc"),
    ice.MessageIntegrity(b"key"),
    ice.Fingerprint(),
).raw


@settings(max_examples=500, deadline=None)
@given(
    flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)), max_size=4),
    cut=st.integers(0, len(VALID)),
    length=st.one_of(st.none(), st.integers(0, 0xFFFF)),
)
def test_mutated_messages_raise_nothing_but_decode_error(
    flips: list[tuple[int, int]], cut: int, length: int | None
) -> None:
    data = bytearray(VALID[:cut])
    for position, mask in flips:
        if position < len(data):
            data[position] ^= mask
    if length is not None and len(data) >= 4:
        data[2:4] = struct.pack(">H", length)
    _exercise(bytes(data))


@settings(max_examples=200, deadline=None)
@given(tid=tids, host=st.one_of(ipv4, ipv6), port=ports)
def test_xor_address_matches_an_independent_computation(
    tid: bytes, host: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    msg = ice.Message(1, tid)
    ice.XorMappedAddress(str(host), port).add_to(msg)
    value = msg.get(constants.AttrType.XOR_MAPPED_ADDRESS)

    cookie = struct.pack(">I", constants.MAGIC_COOKIE)
    mask = cookie if host.version == 4 else cookie + tid
    expected = (
        bytes([0, 1 if host.version == 4 else 2])
        + struct.pack(">H", port ^ 0x2112)
        + bytes(a ^ b for a, b in zip(host.packed, mask, strict=True))
    )
    assert value == expected


def test_compiled_and_python_message_type_agree_on_every_input() -> None:
    for method in range(0x1000):
        for cls in range(4):
            t = constants.message_type(method, cls)
            assert _codec.message_type(method, cls) == t
            assert constants.split_message_type(t) == (method, cls)
    msg = ice.Message(constants.message_type(0xABC, 3))
    assert (msg.method, msg.cls) == (0xABC, 3)
