"""Hypothesis properties of the codec.

- every attribute class round-trips through the wire with every field intact
  (and MESSAGE-INTEGRITY(-SHA256) / FINGERPRINT verify, and stop verifying
  after any single bit of what they sign is flipped);
- whole messages of random raw attributes round-trip byte for byte, with
  seals that match an independent HMAC / CRC-32;
- untrusted bytes (random, structured, mutated) raise nothing but
  ice.DecodeError anywhere a receiver may touch them;
- XOR addresses match an independent pure-Python computation;
- the compiled and pure-Python message-type functions agree everywhere.
"""

from __future__ import annotations

import hmac
import ipaddress
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ice
from ice import _codec, attrs, constants

COOKIE = struct.pack(">I", constants.MAGIC_COOKIE)
MI, MI256, FP = 0x0008, 0x001C, 0x8028
SEAL_TYPES = frozenset((MI, MI256, FP))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# ---------------------------------------------------------------- strategies

ipv4 = st.ip_addresses(v=4)
ipv6 = st.ip_addresses(v=6)
ip_objects = st.one_of(ipv4, ipv6)
#: str and ipaddress objects, both families.
hosts = st.one_of(ipv4, ipv6, ipv4.map(str), ipv6.map(str))
ports = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
families = st.sampled_from([1, 2])
error_codes = st.integers(300, 699)
tids = st.binary(min_size=12, max_size=12)
msg_types = st.integers(0, 0x3FFF)
#: empty keys, short keys and keys longer than the SHA block (hashed first by HMAC).
keys = st.binary(max_size=150)
sha256_lengths = st.sampled_from([16, 20, 24, 28, 32])


def _fit(text: str, max_bytes: int) -> str:
    while len(text.encode()) > max_bytes:
        text = text[:-1]
    return text


def text(max_chars: int, max_bytes: int) -> st.SearchStrategy[str]:
    """Any unicode (astral planes, combining marks, NUL...) within both limits,
    with the limits themselves as likely draws."""
    return st.one_of(
        st.text(st.characters(codec="utf-8"), max_size=max_chars).map(lambda s: _fit(s, max_bytes)),
        st.just("x" * min(max_chars, max_bytes)),
        st.just(_fit("\U0001f600" * max_chars, max_bytes)),
        st.just(_fit("\u00e9" * max_chars, max_bytes)),
    )


def text_or_bytes(max_chars: int, max_bytes: int) -> st.SearchStrategy[str | bytes]:
    """Text attributes also take bytes (a NONCE is echoed verbatim, UTF-8 or not)."""
    return st.one_of(text(max_chars, max_bytes), st.binary(max_size=max_bytes))


def text_or_utf8(max_chars: int, max_bytes: int) -> st.SearchStrategy[str | bytes]:
    """What a UTF-8-only text attribute (USERNAME, REALM, ...) takes: text, or its UTF-8."""
    return st.one_of(text(max_chars, max_bytes), text(max_chars, max_bytes).map(str.encode))


def _ip(host: str | IPAddress) -> IPAddress:
    return ipaddress.ip_address(host)


def _raw_text(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _address_fields(host: str | IPAddress, port: int) -> dict[str, Any]:
    ip = _ip(host)
    return {"packed": ip.packed, "port": port, "family": 1 if ip.version == 4 else 2}


def _reason(code: int, reason: str | None) -> str:
    return constants.default_reason(code) if reason is None else reason


def _algorithms(entries: list[int | tuple[int, bytes]]) -> tuple[tuple[int, bytes], ...]:
    return tuple(e if isinstance(e, tuple) else (e, b"") for e in entries)


@dataclass(frozen=True)
class Case:
    """Constructor arguments for one class, and the fields they must produce."""

    args: st.SearchStrategy[tuple[Any, ...]]
    expect: Callable[..., dict[str, Any]]


def _address_case() -> Case:
    return Case(st.tuples(hosts, ports), _address_fields)


def _text_case(max_chars: int, max_bytes: int, *, utf8_only: bool = True) -> Case:
    values = (text_or_utf8 if utf8_only else text_or_bytes)(max_chars, max_bytes)
    return Case(st.tuples(values), lambda v: {"raw": _raw_text(v)})


def _bytes_case(values: st.SearchStrategy[bytes]) -> Case:
    return Case(st.tuples(values), lambda v: {"value": v})


def _int_case(values: st.SearchStrategy[int]) -> Case:
    return Case(st.tuples(values), lambda v: {"value": v})


FLAG = Case(st.just(()), lambda: {})

#: One entry per attribute class: a new attribute cannot be added to BY_TYPE
#: without a round-trip property (test_every_attribute_class_has_a_case).
CASES: dict[type, Case] = {
    attrs.MappedAddress: _address_case(),
    attrs.XorMappedAddress: _address_case(),
    attrs.AlternateServer: _address_case(),
    attrs.ResponseOrigin: _address_case(),
    attrs.OtherAddress: _address_case(),
    attrs.XorPeerAddress: _address_case(),
    attrs.XorRelayedAddress: _address_case(),
    attrs.Username: _text_case(512, 512),
    attrs.Realm: _text_case(128, 763),
    attrs.Nonce: _text_case(128, 763, utf8_only=False),
    attrs.Software: _text_case(128, 763),
    attrs.AlternateDomain: _text_case(255, 255),
    attrs.UserHash: _bytes_case(st.binary(min_size=32, max_size=32)),
    attrs.Data: _bytes_case(st.binary(max_size=1500)),
    attrs.ReservationToken: _bytes_case(st.binary(min_size=8, max_size=8)),
    attrs.Padding: _bytes_case(st.binary(max_size=600)),
    attrs.Priority: _int_case(u32),
    attrs.Lifetime: _int_case(u32),
    attrs.ConnectionId: _int_case(u32),
    attrs.IceControlled: _int_case(u64),
    attrs.IceControlling: _int_case(u64),
    attrs.UseCandidate: FLAG,
    attrs.DontFragment: FLAG,
    attrs.ErrorCodeAttribute: Case(
        st.tuples(error_codes, st.none() | text(128, 763)),
        lambda c, r: {"code": c, "reason": _reason(c, r)},
    ),
    attrs.AddressErrorCode: Case(
        st.tuples(families, error_codes, st.none() | text(128, 763)),
        lambda f, c, r: {"family": f, "code": c, "reason": _reason(c, r)},
    ),
    attrs.UnknownAttributes: Case(
        st.tuples(st.lists(u16, max_size=40)), lambda ts: {"types": tuple(ts)}
    ),
    attrs.PasswordAlgorithm: Case(
        st.tuples(u16, st.binary(max_size=40)),
        lambda a, p: {"algorithm": a, "parameters": p},
    ),
    attrs.PasswordAlgorithms: Case(
        st.tuples(st.lists(u16 | st.tuples(u16, st.binary(max_size=20)), max_size=8)),
        lambda es: {"algorithms": _algorithms(es), "ids": tuple(a for a, _ in _algorithms(es))},
    ),
    attrs.ChannelNumber: Case(st.tuples(st.integers(0x4000, 0x4FFF)), lambda n: {"number": n}),
    attrs.RequestedAddressFamily: Case(st.tuples(families), lambda f: {"family": f}),
    attrs.AdditionalAddressFamily: Case(st.tuples(families), lambda f: {"family": f}),
    attrs.EvenPort: Case(st.tuples(st.booleans()), lambda r: {"reserve": r}),
    attrs.RequestedTransport: Case(st.tuples(u8), lambda p: {"protocol": p}),
    attrs.Icmp: Case(
        st.tuples(st.integers(0, 127), st.integers(0, 511), u32),
        lambda t, c, d: {"icmp_type": t, "code": c, "error_data": d},
    ),
    attrs.ChangeRequest: Case(
        st.tuples(st.booleans(), st.booleans()),
        lambda i, p: {"change_ip": i, "change_port": p},
    ),
    attrs.ResponsePort: Case(st.tuples(ports), lambda p: {"port": p}),
}

#: The seals: their get_from returns the raw MAC / CRC, their test is check().
SEAL_CASES: dict[type, st.SearchStrategy[tuple[Any, ...]]] = {
    attrs.MessageIntegrity: st.tuples(keys),
    attrs.MessageIntegritySha256: st.tuples(keys, sha256_lengths),
    attrs.Fingerprint: st.just(()),
}


def fields(obj: object) -> dict[str, Any]:
    """Every public data field of an attribute (a DecodeError counts as a value).

    Round trips compare these rather than trusting __eq__ alone.
    """
    out: dict[str, Any] = {}
    for name in dir(obj):
        if name.startswith("_") or name.isupper():
            continue
        try:
            value = getattr(obj, name)
        except ice.DecodeError:
            value = ice.DecodeError
        if not callable(value):
            out[name] = value
    return out


def raw_attributes(
    exclude: int | None = None, max_size: int = 16, max_value: int = 60
) -> st.SearchStrategy[list[tuple[int, bytes]]]:
    """Raw (type, value) pairs, no seals, with repeats of a few types likely."""
    types = st.one_of(st.sampled_from([0x0006, 0x0020, 0x8022, 0x7F00, 0xC001]), u16).filter(
        lambda t: t not in SEAL_TYPES and t != exclude
    )
    return st.lists(st.tuples(types, st.binary(max_size=max_value)), max_size=max_size)


# ---------------------------------------------------------------- independent computations


def expected_mac(key: bytes, data: bytes, end: int, alg: str, length: int) -> bytes:
    """HMAC over data[:end], the header length patched to end just after the
    length-byte MAC (RFC 8489 14.5, 14.6), truncated to length."""
    patched = data[:2] + struct.pack(">H", end - 20 + 4 + length) + data[4:end]
    return hmac.digest(key, patched, alg)[:length]


def expected_fingerprint(data: bytes, end: int) -> int:
    """CRC-32 of data[:end] XOR 0x5354554e; the header length already covers FINGERPRINT."""
    return zlib.crc32(data[:end]) ^ 0x5354554E


def attribute_offsets(data: bytes) -> list[tuple[int, int, int]]:
    """(type, offset of the attribute header, value length), by an independent walk."""
    out, pos = [], 20
    while pos < len(data):
        attr_type, length = struct.unpack_from(">HH", data, pos)
        out.append((attr_type, pos, length))
        pos += 4 + (length + 3) // 4 * 4
    assert pos == len(data)
    return out


# ---------------------------------------------------------------- every attribute round-trips


def test_every_attribute_class_has_a_case() -> None:
    assert set(attrs.BY_TYPE.values()) == set(CASES) | set(SEAL_CASES)
    assert not set(CASES) & set(SEAL_CASES)
    for attr_type, cls in attrs.BY_TYPE.items():
        assert attr_type == cls.TYPE  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", sorted(CASES, key=lambda c: c.__name__))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tid=tids, msg_type=msg_types)
def test_attribute_round_trips(cls: Any, data: st.DataObject, tid: bytes, msg_type: int) -> None:
    case = CASES[cls]
    args = data.draw(case.args, label="args")
    attr = cls(*args)
    expected = case.expect(*args)
    assert {name: fields(attr)[name] for name in expected} == expected
    # Other attributes before it (so it sits at any offset, past the inline
    # buffer and index) and a second one of its class after it.
    before = data.draw(raw_attributes(exclude=cls.TYPE), label="before")
    second = cls(*data.draw(case.args, label="second"))

    msg = ice.Message(msg_type, tid)
    for attr_type, value in before:
        msg.add(attr_type, value)
    attr.add_to(msg)
    second.add_to(msg)
    decoded = ice.Message.decode(bytes(msg))

    again = cls.get_from(decoded)
    assert type(again) is cls
    assert again == attr
    assert (again != attr) is False
    assert hash(again) == hash(attr)
    assert fields(again) == fields(attr)
    if isinstance(attr, attrs.AddressAttribute):
        host = args[0]
        assert _ip(again.host) == _ip(host)
        assert again.address == (again.host, args[1])
        if isinstance(host, ipaddress.IPv4Address | str) and _ip(host).version == 4:
            assert again.host == str(host)
    # The first one wins, and the decoded value re-encodes to the same bytes.
    assert decoded.get_all(cls.TYPE)[1] == ice.Message.build(
        msg_type, second, transaction_id=tid
    ).get(cls.TYPE)
    rebuilt = ice.Message.build(msg_type, again, transaction_id=tid)
    assert rebuilt.get(cls.TYPE) == decoded.get(cls.TYPE)
    # Absent: None, not an error.
    without = ice.Message(msg_type, tid)
    for attr_type, value in before:
        without.add(attr_type, value)
    assert cls.get_from(ice.Message.decode(bytes(without))) is None


def _rejected(data: bytes, verify: Callable[[ice.Message], object]) -> bool:
    try:
        msg = ice.Message.decode(data)
    except ice.DecodeError:
        return True
    try:
        verify(msg)
    except (ice.IntegrityError, ice.FingerprintError):
        return True
    return False


@pytest.mark.parametrize("cls", sorted(SEAL_CASES, key=lambda c: c.__name__))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tid=tids, msg_type=msg_types)
def test_seal_round_trips_and_every_bit_flip_breaks_it(
    cls: Any, data: st.DataObject, tid: bytes, msg_type: int
) -> None:
    args = data.draw(SEAL_CASES[cls], label="args")
    before = data.draw(raw_attributes(max_size=6, max_value=30), label="before")
    msg = ice.Message(msg_type, tid)
    for attr_type, value in before:
        msg.add(attr_type, value)
    end = len(msg)  # the seal covers everything before it, then itself
    seal = cls(*args)
    seal.add_to(msg)
    wire = bytes(msg)
    decoded = ice.Message.decode(wire)
    assert decoded.attributes == [*before, (cls.TYPE, wire[end + 4 :][: len(wire) - end - 4])]

    verify: Callable[[ice.Message], object]
    if cls is attrs.Fingerprint:
        verify = attrs.Fingerprint.check
        assert attrs.Fingerprint.get_from(decoded) == expected_fingerprint(wire, end)
        assert seal == attrs.Fingerprint() and hash(seal) == hash(attrs.Fingerprint())
    else:
        key, alg = args[0], "sha1" if cls is attrs.MessageIntegrity else "sha256"
        length = 20 if alg == "sha1" else args[1]
        verify = seal.check
        assert cls.get_from(decoded) == expected_mac(key, wire, end, alg, length)
        seal.check(decoded)
        cls(ice.IntegrityKey(key), *args[1:]).check(decoded)
        with pytest.raises(ice.IntegrityError):
            cls(key + b"!", *args[1:]).check(decoded)  # (HMAC pads keys with zeros)
    verify(decoded)
    assert cls.get_from(ice.Message(msg_type, tid)) is None

    for bit in range(len(wire) * 8):
        flipped = bytearray(wire)
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
        assert _rejected(bytes(flipped), verify), (bit // 8, bit % 8)


# ---------------------------------------------------------------- whole messages


@settings(max_examples=150, deadline=None)
@given(
    tid=tids,
    msg_type=msg_types,
    raw=raw_attributes(max_size=24, max_value=120),
    key=keys,
    seals=st.sampled_from([(), ("sha1",), ("sha256",), ("sha1", "sha256")]),
    sha256_length=sha256_lengths,
    fingerprint=st.booleans(),
)
def test_whole_messages_round_trip(
    tid: bytes,
    msg_type: int,
    raw: list[tuple[int, bytes]],
    key: bytes,
    seals: tuple[str, ...],
    sha256_length: int,
    fingerprint: bool,
) -> None:
    msg = ice.Message(msg_type, tid)
    for attr_type, value in raw:
        msg.add(attr_type, value)
    for alg in seals:
        if alg == "sha1":
            msg.add_integrity(key)
        else:
            msg.add_integrity_sha256(key, sha256_length)
    if fingerprint:
        msg.add_fingerprint()
    wire = bytes(msg)

    decoded = ice.Message.decode(wire)

    assert decoded == msg and decoded.raw == wire == msg.raw
    assert decoded.attributes == msg.attributes
    assert [t for t, _ in decoded.attributes] == [t for t, _ in raw] + [
        {"sha1": MI, "sha256": MI256}[a] for a in seals
    ] + ([FP] if fingerprint else [])
    assert decoded.attributes[: len(raw)] == raw
    assert (decoded.type, decoded.transaction_id) == (msg_type, tid)
    assert (decoded.method, decoded.cls) == constants.split_message_type(msg_type)
    assert len(decoded) == len(wire) and decoded.length == len(wire) - 20
    assert struct.unpack_from(">H", wire, 2)[0] == len(wire) - 20
    for attr_type in {t for t, _ in raw}:
        values = [v for t, v in raw if t == attr_type]
        assert decoded.get(attr_type) == values[0]  # first one wins
        assert decoded.get_all(attr_type) == values
        assert attr_type in decoded
    # The same through a reused object, and a copy.
    reused = ice.Message()
    reused.parse(wire)
    assert reused == decoded and reused.attributes == decoded.attributes
    assert decoded.copy() == decoded

    offsets = {t: (pos, length) for t, pos, length in reversed(attribute_offsets(wire))}
    if "sha1" in seals:
        decoded.check_integrity(key)
        pos, _ = offsets[MI]
        assert decoded.get(MI) == expected_mac(key, wire, pos, "sha1", 20)
        with pytest.raises(ice.IntegrityError):
            decoded.check_integrity(key + b"!")
    if "sha256" in seals:
        decoded.check_integrity_sha256(key)
        pos, length = offsets[MI256]
        assert decoded.get(MI256) == expected_mac(key, wire, pos, "sha256", length)
        with pytest.raises(ice.IntegrityError):
            decoded.check_integrity_sha256(key + b"!")
    if fingerprint:
        decoded.check_fingerprint()
        pos, _ = offsets[FP]
        assert decoded.get(FP) == struct.pack(">I", expected_fingerprint(wire, pos))
    else:
        with pytest.raises(ice.FingerprintError):
            decoded.check_fingerprint()


# ---------------------------------------------------------------- untrusted input


def _only(call: Callable[[], Any], *allowed: type[BaseException]) -> Any:
    try:
        return call()
    except allowed:
        return None


def exercise(data: bytes) -> None:
    """Everything a receiver may do with untrusted bytes: only DecodeError (and,
    from the checks, IntegrityError / FingerprintError) may come out."""
    for stream in (False, True):
        found = _only(lambda s=stream: ice.decode_channel_data(data, stream=s), ice.DecodeError)
        if found is not None:
            number, payload = found
            assert 0x4000 <= number <= 0x4FFF
            assert data[4 : 4 + len(payload)] == payload
            assert ice.encode_channel_data(number, payload, stream=stream) == (
                data if stream else data[: 4 + len(payload)]
            )
    frame = _only(lambda: ice.stream_frame_length(data), ice.DecodeError)
    assert frame is None or (len(data) >= 4 and frame >= 4)
    ice.classify(data)
    ice.is_stun(data)
    ice.is_channel_data(data)

    reused = ice.Message()
    try:
        msg = ice.Message.decode(data)
    except ice.DecodeError:
        with pytest.raises(ice.DecodeError):
            reused.parse(data)
        return
    reused.parse(data)
    assert reused == msg
    assert msg.raw == data and ice.Message.decode(msg.raw) == msg
    # RFC 7983: only methods below 0x100 (first byte 0-3) count as STUN on a shared port
    assert ice.is_stun(data) is (data[0] <= 3)
    assert all(t < 0x8000 for t in msg.unknown_attributes)
    repr(msg)
    for cls in attrs.BY_TYPE.values():
        found = _only(lambda c=cls: c.get_from(msg), ice.DecodeError)
        if found is None or cls in SEAL_CASES:
            continue
        fields(found)  # .value / .reason / .host of bad bytes: DecodeError or a value
        repr(found)
        # Whatever decoded re-encodes to an equal attribute.
        rebuilt = ice.Message.build(msg.type, found, transaction_id=msg.transaction_id)
        assert cls.get_from(ice.Message.decode(rebuilt.raw)) == found
    for check in (
        msg.check_fingerprint,
        lambda: msg.check_integrity(b"k"),
        lambda: msg.check_integrity_sha256(b"k"),
    ):
        _only(check, ice.FingerprintError, ice.IntegrityError)
    assert msg.raw == data  # the checks patch the length field and put it back


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_nothing_but_decode_error(data: bytes) -> None:
    exercise(data)


#: attribute types a decoder has code for, plus anything.
interesting_types = st.one_of(st.sampled_from(sorted(attrs.BY_TYPE)), u16)
#: values around the sizes the classes expect (0, 1, 4, 8, 20, 32, ...).
odd_values = st.one_of(
    st.binary(max_size=40),
    st.integers(0, 40).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    st.sampled_from([0, 1, 2, 4, 8, 16, 20, 24, 32, 36]).map(lambda n: b"\x01" * n),
    st.binary(min_size=760, max_size=770),
)


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """A well-formed header and attribute framing around random values, so the
    bytes get past Message.decode and into every get_from."""
    body = b""
    for attr_type, value in draw(st.lists(st.tuples(interesting_types, odd_values), max_size=8)):
        padding = draw(st.binary(min_size=-len(value) % 4, max_size=-len(value) % 4))
        body += struct.pack(">HH", attr_type, len(value)) + value + padding
    body = body[:0xFFFC]
    header = struct.pack(">HH", draw(msg_types), len(body)) + COOKIE + draw(tids)
    return header + body


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(framed())
def test_framed_random_attributes_raise_nothing_but_decode_error(data: bytes) -> None:
    exercise(data)


@st.composite
def valid_messages(draw: st.DrawFn) -> bytes:
    classes = sorted(CASES, key=lambda c: c.__name__)
    msg = ice.Message(draw(msg_types), draw(tids))
    for cls in draw(st.lists(st.sampled_from(classes), max_size=8)):
        cls(*draw(CASES[cls].args)).add_to(msg)
    if draw(st.booleans()):
        msg.add_integrity(draw(keys))
    if draw(st.booleans()):
        msg.add_integrity_sha256(draw(keys), draw(sha256_lengths))
    if draw(st.booleans()):
        msg.add_fingerprint()
    return msg.raw


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(valid_messages()))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "length", "attr-length", "insert", "delete"]))
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[where] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[where:]
        elif kind == "length" and len(data) >= 4:
            data[2:4] = struct.pack(">H", draw(st.one_of(u16, st.just(max(len(data) - 20, 0)))))
        elif kind == "attr-length" and len(data) >= 24:
            # the length field of one attribute (by the framing of the original)
            spots = [pos for _, pos, _ in _walk_loosely(bytes(data))]
            if spots:
                pos = draw(st.sampled_from(spots))
                data[pos + 2 : pos + 4] = struct.pack(">H", draw(u16))
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[where : where + draw(st.integers(1, 8))]
    return bytes(data)


def _walk_loosely(data: bytes) -> list[tuple[int, int, int]]:
    out, pos = [], 20
    while pos + 4 <= len(data):
        attr_type, length = struct.unpack_from(">HH", data, pos)
        out.append((attr_type, pos, length))
        pos += 4 + (length + 3) // 4 * 4
    return out


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_raise_nothing_but_decode_error(data: bytes) -> None:
    exercise(data)


@settings(max_examples=100, deadline=None)
@given(valid_messages())
def test_valid_messages_survive_the_receiver(data: bytes) -> None:
    exercise(data)


# ---------------------------------------------------------------- XOR addresses


def xor_address_value(tid: bytes, ip: IPAddress, port: int) -> bytes:
    """RFC 8489 14.2, written out: port ^ 0x2112, IPv4 ^ cookie, IPv6 ^ (cookie || tid)."""
    mask = COOKIE if ip.version == 4 else COOKIE + tid
    family = 1 if ip.version == 4 else 2
    xport = port ^ (constants.MAGIC_COOKIE >> 16)
    assert xport == port ^ 0x2112
    return (
        bytes([0, family])
        + struct.pack(">H", xport)
        + bytes(a ^ b for a, b in zip(ip.packed, mask, strict=True))
    )


XOR_CLASSES = [attrs.XorMappedAddress, attrs.XorPeerAddress, attrs.XorRelayedAddress]


@settings(max_examples=300, deadline=None)
@given(
    tid=tids,
    ip=ip_objects,
    as_text=st.booleans(),
    port=ports,
    cls=st.sampled_from(XOR_CLASSES),
)
def test_xor_address_matches_an_independent_computation(
    tid: bytes, ip: IPAddress, as_text: bool, port: int, cls: Any
) -> None:
    msg = ice.Message(constants.BINDING_SUCCESS, tid)
    cls(str(ip) if as_text else ip, port).add_to(msg)
    plain = attrs.MappedAddress(ip, port)
    plain.add_to(msg)

    assert msg.get(cls.TYPE) == xor_address_value(tid, ip, port)
    assert msg.get(attrs.MappedAddress.TYPE) == bytes([0, 1 if ip.version == 4 else 2]) + (
        struct.pack(">H", port) + ip.packed
    )
    # and the other way: an independently XORed value decodes to the address
    raw = ice.Message(constants.BINDING_SUCCESS, tid)
    raw.add(cls.TYPE, xor_address_value(tid, ip, port))
    got = cls.get_from(ice.Message.decode(raw.raw))
    assert (got.packed, got.port, _ip(got.host)) == (ip.packed, port, ip)


# ---------------------------------------------------------------- message types


def test_compiled_and_python_message_type_agree_on_every_input() -> None:
    seen = set()
    for method in range(0x1000):
        for cls in range(4):
            t = constants.message_type(method, cls)
            assert _codec.message_type(method, cls) == t
            assert constants.split_message_type(t) == (method, cls)
            msg = ice.Message(t)
            assert (msg.type, msg.method, msg.cls) == (t, method, cls)
            seen.add(t)
    assert seen == set(range(0x4000))  # a bijection onto every 14-bit type
    for method, cls in [(-1, 0), (0x1000, 0), (0, -1), (0, 4)]:
        with pytest.raises(ValueError):
            _codec.message_type(method, cls)
        with pytest.raises(ValueError):
            constants.message_type(method, cls)


def test_decoded_header_gives_method_and_class_for_every_type() -> None:
    header = bytearray(struct.pack(">HH", 0, 0) + COOKIE + bytes(12))
    msg = ice.Message()
    for t in range(0x4000):
        header[0:2] = struct.pack(">H", t)
        msg.parse(header)
        assert (msg.method, msg.cls) == constants.split_message_type(t)
