"""ice.Message (the compiled codec), demultiplexing and TURN ChannelData framing."""

from __future__ import annotations

import hmac
import os
import struct
import zlib
from collections.abc import Callable

import pytest

import ice
from ice import (
    Data,
    DontFragment,
    Fingerprint,
    Message,
    MessageIntegrity,
    MessageIntegritySha256,
    Priority,
    Realm,
    Software,
    UseCandidate,
    Username,
    _codec,
)
from ice.constants import MAGIC_COOKIE, AttrType, MessageClass, Method

TID = bytes(range(1, 13))
KEY = b"secret key"
SOFTWARE = AttrType.SOFTWARE
USERNAME = AttrType.USERNAME


def _attr(attr_type: int, value: bytes) -> bytes:
    return struct.pack(">HH", attr_type, len(value)) + value + bytes(-len(value) % 4)


def _stun(body: bytes, msg_type: int = 0x0001, tid: bytes = TID) -> bytes:
    return struct.pack(">HHI", msg_type, len(body), MAGIC_COOKIE) + tid + body


def _with_length(data: bytes, length: int) -> bytes:
    return data[:2] + struct.pack(">H", length) + data[4:]


def _fingerprint(data: bytes) -> bytes:
    """data + a FINGERPRINT computed with zlib (header length updated first)."""
    data = _with_length(data, len(data) - 20 + 8)
    return data + _attr(AttrType.FINGERPRINT, struct.pack(">I", zlib.crc32(data) ^ 0x5354554E))


def _types(msg: Message) -> list[int]:
    return [t for t, _ in msg.attributes]


# --- message type, method and class ---------------------------------------------------

METHODS = [0x000, 0x001, 0x003, 0x0ABC, 0xFFF, *(1 << bit for bit in range(12))]


@pytest.mark.parametrize("cls", list(MessageClass))
@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"0x{m:03x}")
def test_every_method_bit_round_trips_with_every_class(method: int, cls: int) -> None:
    msg_type = ice.constants.message_type(method, cls)
    assert _codec.message_type(method, cls) == msg_type
    assert ice.constants.split_message_type(msg_type) == (method, cls)

    for msg in (Message(msg_type), Message.build(msg_type), Message.decode(_stun(b"", msg_type))):
        assert (msg.type, msg.method, msg.cls) == (msg_type, method, cls)
        assert bytes(msg)[:2] == struct.pack(">H", msg_type)


@pytest.mark.parametrize(
    ("method", "cls", "msg_type"),
    [
        (Method.BINDING, MessageClass.REQUEST, 0x0001),
        (Method.BINDING, MessageClass.INDICATION, 0x0011),
        (Method.BINDING, MessageClass.SUCCESS_RESPONSE, 0x0101),
        (Method.BINDING, MessageClass.ERROR_RESPONSE, 0x0111),
        (Method.ALLOCATE, MessageClass.REQUEST, 0x0003),
        (0xABC, MessageClass.REQUEST, 0x2A6C),
        (0xABC, MessageClass.INDICATION, 0x2A7C),
        (0xABC, MessageClass.SUCCESS_RESPONSE, 0x2B6C),
        (0xABC, MessageClass.ERROR_RESPONSE, 0x2B7C),
        (0xFFF, MessageClass.ERROR_RESPONSE, 0x3FFF),
    ],
)
def test_message_type_known_answers(method: int, cls: int, msg_type: int) -> None:
    # RFC 8489 figure 3: M11..M7 C1 M6..M4 C0 M3..M0.
    assert _codec.message_type(method, cls) == msg_type
    assert Message(msg_type).method == method


def test_message_type_constants() -> None:
    assert (ice.BINDING_REQUEST, ice.BINDING_INDICATION) == (0x0001, 0x0011)
    assert (ice.BINDING_SUCCESS, ice.BINDING_ERROR) == (0x0101, 0x0111)


@pytest.mark.parametrize(("method", "cls"), [(0x1000, 0), (-1, 0), (1, 4), (1, -1)])
def test_message_type_rejects_out_of_range(method: int, cls: int) -> None:
    with pytest.raises(ValueError):
        _codec.message_type(method, cls)


@pytest.mark.parametrize("bad", [0x4000, 0xFFFF, -1])
def test_type_must_fit_in_14_bits(bad: int) -> None:
    msg = Message(0x0001, TID)
    with pytest.raises(ValueError):
        msg.type = bad
    with pytest.raises(ValueError):
        Message(bad)
    assert msg.type == 0x0001
    msg.type = 0x3FFF
    assert bytes(msg)[:2] == b"\x3f\xff"


# --- header and transaction ID -------------------------------------------------------------


def test_empty_message_header() -> None:
    msg = Message(ice.BINDING_REQUEST, TID)
    assert bytes(msg) == struct.pack(">HHI", 1, 0, MAGIC_COOKIE) + TID
    assert (len(msg), msg.length, msg.attributes) == (20, 0, [])


def test_transaction_id_is_random_by_default() -> None:
    first, second = Message(), Message.build(ice.BINDING_REQUEST)
    assert len(first.transaction_id) == len(second.transaction_id) == 12
    assert first.transaction_id != second.transaction_id


@pytest.mark.parametrize("tid", [TID, bytearray(TID), memoryview(TID)], ids=type)
def test_transaction_id_accepts_bytes_like(tid: bytes) -> None:
    assert Message(1, tid).transaction_id == TID
    assert Message.build(1, transaction_id=tid).transaction_id == TID
    msg = Message()
    msg.transaction_id = tid
    assert msg.transaction_id == TID
    assert bytes(msg)[8:20] == TID


@pytest.mark.parametrize("size", [0, 11, 13, 16])
def test_transaction_id_must_be_12_bytes(size: int) -> None:
    msg = Message(1, TID)
    with pytest.raises(ValueError):
        msg.transaction_id = bytes(size)
    with pytest.raises(ValueError):
        Message(1, bytes(size))
    with pytest.raises(ValueError):
        Message.build(1, transaction_id=bytes(size))
    assert msg.transaction_id == TID


def test_new_transaction_id_keeps_type_and_attributes() -> None:
    msg = Message.build(ice.BINDING_SUCCESS, Software("x"), transaction_id=TID)
    msg.new_transaction_id()
    assert msg.transaction_id != TID
    assert msg.type == ice.BINDING_SUCCESS
    assert msg.attributes == [(SOFTWARE, b"x")]
    assert bytes(msg)[8:20] == msg.transaction_id


def test_ten_thousand_transaction_ids_are_distinct() -> None:
    ids = {ice.new_transaction_id() for _ in range(10_000)}
    ids |= {Message().transaction_id for _ in range(10_000)}
    assert len(ids) == 20_000
    assert all(len(tid) == 12 for tid in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads on 3.12+
def test_forked_child_draws_different_transaction_ids() -> None:
    # IDs come from a pool refilled 128 at a time. Start a fresh pool and
    # draw one, so 127 unused IDs sit in it when we fork: a child that kept
    # the pool would hand out the same next IDs as the parent.
    _codec._drop_transaction_id_pool()
    ice.new_transaction_id()
    count = 100
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: send our IDs to the parent, never return into pytest
        status = 1
        try:
            os.close(read_fd)
            data = b"".join(ice.new_transaction_id() for _ in range(count // 2))
            data += b"".join(Message().transaction_id for _ in range(count - count // 2))
            while data:
                data = data[os.write(write_fd, data) :]
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    received = b""
    with os.fdopen(read_fd, "rb") as pipe:
        received = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = {received[i : i + 12] for i in range(0, len(received), 12)}
    parent = {ice.new_transaction_id() for _ in range(count)}
    assert len(received) == 12 * count
    assert len(child) == count
    assert child.isdisjoint(parent)


# --- adding and looking up attributes -------------------------------------------------------


def test_add_get_get_all_contains_attributes() -> None:
    msg = Message(1, TID)
    msg.add(USERNAME, b"alice")
    msg.add(SOFTWARE, bytearray(b"ice"))
    msg.add(0x8099, memoryview(b"z"))

    assert msg.get(USERNAME) == b"alice"
    assert msg.get(SOFTWARE) == b"ice"
    assert msg.get(0x8099) == b"z"
    assert msg.get(AttrType.REALM) is None
    assert msg.get_all(USERNAME) == [b"alice"]
    assert msg.get_all(AttrType.REALM) == []
    assert USERNAME in msg
    assert 0x8099 in msg
    assert AttrType.REALM not in msg
    assert -1 not in msg
    assert 0x10000 not in msg
    assert msg.attributes == [(USERNAME, b"alice"), (SOFTWARE, b"ice"), (0x8099, b"z")]
    assert bytes(msg) == _stun(
        _attr(USERNAME, b"alice") + _attr(SOFTWARE, b"ice") + _attr(0x8099, b"z")
    )


def test_build_accepts_any_object_with_add_to() -> None:
    class Custom:
        def add_to(self, msg: Message) -> None:
            msg.add(0x8099, b"custom")

    msg = Message.build(1, Software("x"), Custom(), Fingerprint(), transaction_id=TID)
    assert _types(msg) == [SOFTWARE, 0x8099, AttrType.FINGERPRINT]
    Message.decode(bytes(msg)).check_fingerprint()


@pytest.mark.parametrize("bad", [-1, 0x10000])
def test_add_rejects_types_outside_16_bits(bad: int) -> None:
    msg = Message(1, TID)
    with pytest.raises(ValueError):
        msg.add(bad, b"x")
    assert len(msg) == 20


def test_first_attribute_wins_on_duplicates() -> None:
    msg = Message.build(1, Username("first"), Realm("r"), Username("second"), transaction_id=TID)
    assert msg.get(USERNAME) == b"first"
    assert msg.get_all(USERNAME) == [b"first", b"second"]
    assert Username.get_from(msg) == Username("first")
    decoded = Message.decode(bytes(msg))
    assert decoded.get(USERNAME) == b"first"
    assert decoded.get_all(USERNAME) == [b"first", b"second"]
    assert _types(decoded) == [USERNAME, AttrType.REALM, USERNAME]


def test_zero_length_attributes_keep_their_header() -> None:
    # USE-CANDIDATE and DONT-FRAGMENT are empty; so may any raw value be.
    msg = Message.build(1, UseCandidate(), DontFragment(), transaction_id=TID)
    msg.add(0x8099, b"")
    assert bytes(msg) == _stun(
        struct.pack(">HHHHHH", AttrType.USE_CANDIDATE, 0, AttrType.DONT_FRAGMENT, 0, 0x8099, 0)
    )
    decoded = Message.decode(bytes(msg))
    assert decoded.attributes == msg.attributes
    assert UseCandidate.get_from(decoded) == UseCandidate()
    assert DontFragment.get_from(decoded) == DontFragment()
    assert decoded.unknown_attributes == ()


@pytest.mark.parametrize("length", range(9))
def test_padding_bytes_are_zero(length: int) -> None:
    msg = Message(1, TID)
    msg.add(0x8099, b"\xff" * length)
    padded = (length + 3) // 4 * 4
    assert bytes(msg)[20:] == struct.pack(">HH", 0x8099, length) + b"\xff" * length + bytes(
        padded - length
    )
    assert msg.get(0x8099) == b"\xff" * length


def test_padding_is_zero_even_in_a_reused_buffer() -> None:
    # Parse a message whose padding is 0x20 (as in RFC 5769 2.1), then reuse
    # the buffer: the new padding must not inherit those bytes.
    spaces = _stun(struct.pack(">HH", USERNAME, 9) + b"evtj:h6vY   ")
    msg = Message.decode(spaces)
    assert bytes(msg) == spaces
    msg.reset()
    msg.add(USERNAME, b"evtj:h6vY")
    assert bytes(msg) == _stun(struct.pack(">HH", USERNAME, 9) + b"evtj:h6vY\0\0\0")


def test_header_length_tracks_every_add() -> None:
    msg = Message(1, TID)
    expected = 0
    for length in (0, 1, 4, 5, 300, 7):
        msg.add(0x8099, bytes(length))
        expected += 4 + (length + 3) // 4 * 4
        assert msg.length == expected
        assert len(msg) == 20 + expected
        assert struct.unpack_from(">H", bytes(msg), 2)[0] == expected
    msg.add_integrity(KEY)
    msg.add_fingerprint()
    assert msg.length == expected + 24 + 8
    assert struct.unpack_from(">H", bytes(msg), 2)[0] == expected + 32


def test_reset_drops_attributes_and_keeps_type_and_transaction_id() -> None:
    msg = Message.build(ice.BINDING_SUCCESS, Software("x"), Fingerprint(), transaction_id=TID)
    msg.reset()
    assert bytes(msg) == _stun(b"", ice.BINDING_SUCCESS)
    assert (msg.length, msg.attributes, msg.get(SOFTWARE)) == (0, [], None)
    msg.add(SOFTWARE, b"y")  # the FINGERPRINT seal went with it
    assert bytes(msg) == _stun(_attr(SOFTWARE, b"y"), ice.BINDING_SUCCESS)


@pytest.mark.parametrize("count", [1, 40], ids=["inline", "heap"])
def test_copy_is_independent(count: int) -> None:
    original = Message(1, TID)
    for i in range(count):
        original.add(0x8099, bytes([i]) * 20)
    snapshot = bytes(original)

    copy = original.copy()
    assert copy == original
    assert copy.attributes == original.attributes
    copy.add(SOFTWARE, b"copy")
    copy.transaction_id = bytes(12)
    assert bytes(original) == snapshot
    assert SOFTWARE not in original

    original.add(USERNAME, b"original")
    assert USERNAME not in copy
    assert copy.get(SOFTWARE) == b"copy"
    assert len(copy.attributes) == count + 1


def test_copy_keeps_the_seal() -> None:
    copy = Message.build(1, Fingerprint(), transaction_id=TID).copy()
    with pytest.raises(ValueError):
        copy.add(SOFTWARE, b"x")
    copy.check_fingerprint()


def test_parse_reuses_one_object_through_buffer_and_index_growth() -> None:
    small = Message.build(1, Priority(7), Software("small"), transaction_id=TID)
    big = Message.build(  # > 192 bytes: the buffer moves to the heap
        ice.BINDING_SUCCESS, Data(bytes(range(200))), Software("big"), transaction_id=TID[::-1]
    )
    many = Message(ice.BINDING_INDICATION, TID)  # > 12 attributes: the index moves to the heap
    for i in range(30):
        many.add(0x8000 + i, bytes([i]) * (1 + i % 5))
    assert len(big) > 192
    assert len(many.attributes) > 12

    msg = Message()
    for expected in (small, big, many, big, small, many, small):
        msg.parse(bytes(expected))
        assert bytes(msg) == bytes(expected)
        assert msg == expected
        assert msg.attributes == expected.attributes
        assert (msg.type, msg.transaction_id) == (expected.type, expected.transaction_id)
    assert Software.get_from(msg) == Software("small")
    assert 0x8001 not in msg


def test_parse_accepts_bytes_like() -> None:
    data = bytes(Message.build(1, Software("x"), transaction_id=TID))
    for buffer in (data, bytearray(data), memoryview(data), memoryview(b"junk" + data)[4:]):
        assert bytes(Message.decode(buffer)) == data


def test_parse_failure_leaves_an_empty_message_that_parses_again() -> None:
    msg = Message.decode(bytes(Message.build(1, Software("x"), Fingerprint())))
    bad = _stun(struct.pack(">HH", SOFTWARE, 8) + b"abcd")
    with pytest.raises(ice.DecodeError):
        msg.parse(bad)
    assert (len(msg), msg.length, msg.attributes) == (20, 0, [])
    msg.add(SOFTWARE, b"y")  # no stale FINGERPRINT seal
    good = Message.build(1, Realm("r"), transaction_id=TID)
    msg.parse(bytes(good))
    assert msg == good


def test_equality() -> None:
    one = Message.build(1, Software("x"), transaction_id=TID)
    assert one == Message.build(1, Software("x"), transaction_id=TID)
    assert one == Message.decode(bytes(one))
    assert one != Message.build(1, Software("y"), transaction_id=TID)
    assert one != Message.build(1, Software("x"), transaction_id=bytes(12))
    assert one != Message.build(0x0101, Software("x"), transaction_id=TID)
    assert one != Message.build(1, Software("x"), Realm("r"), transaction_id=TID)
    assert one != bytes(one)
    with pytest.raises(TypeError):
        hash(one)


def test_repr_names_method_class_transaction_and_attributes() -> None:
    msg = Message.build(ice.BINDING_REQUEST, Software("x"), transaction_id=TID)
    msg.add(0x7FFF, b"")
    text = repr(msg)
    assert "BINDING" in text
    assert "REQUEST" in text
    assert TID.hex() in text
    assert "SOFTWARE" in text
    assert "0x7fff" in text
    unknown = repr(Message(_codec.message_type(0xABC, MessageClass.ERROR_RESPONSE), TID))
    assert "0x0abc" in unknown
    assert "ERROR_RESPONSE" in unknown


# --- sealing: MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256, FINGERPRINT -----------------------

SEALS: dict[str, Callable[[Message], None]] = {
    "MI": lambda m: m.add_integrity(KEY),
    "MI256": lambda m: m.add_integrity_sha256(KEY),
    "FP": lambda m: m.add_fingerprint(),
}
ADDS: dict[str, Callable[[Message], None]] = {
    **SEALS,
    "SOFTWARE": lambda m: m.add(SOFTWARE, b"late"),
    "typed": lambda m: Username("late").add_to(m),
    "MI-typed": lambda m: MessageIntegrity(KEY).add_to(m),
}


@pytest.mark.parametrize(
    ("sealed_by", "then", "allowed"),
    [
        (("MI",), "SOFTWARE", False),
        (("MI",), "typed", False),
        (("MI",), "MI", False),
        (("MI",), "MI-typed", False),
        (("MI",), "MI256", True),
        (("MI",), "FP", True),
        (("MI256",), "SOFTWARE", False),
        (("MI256",), "MI", False),
        (("MI256",), "MI256", False),
        (("MI256",), "FP", True),
        (("MI", "MI256"), "SOFTWARE", False),
        (("MI", "MI256"), "FP", True),
        (("FP",), "SOFTWARE", False),
        (("FP",), "typed", False),
        (("FP",), "MI", False),
        (("FP",), "MI256", False),
        (("FP",), "FP", False),
        (("MI", "FP"), "SOFTWARE", False),
        (("MI", "MI256", "FP"), "FP", False),
    ],
)
def test_sealing_rules(sealed_by: tuple[str, ...], then: str, allowed: bool) -> None:
    built = Message.build(1, Username("u"), transaction_id=TID)
    for seal in sealed_by:
        SEALS[seal](built)
    # A decoded message is sealed the same way as the one that was built.
    for msg in (built, Message.decode(bytes(built))):
        before = bytes(msg)
        if allowed:
            ADDS[then](msg)
            assert len(msg) > len(before)
        else:
            with pytest.raises(ValueError):
                ADDS[then](msg)
            assert bytes(msg) == before


@pytest.mark.parametrize(
    ("seal_type", "seal_value"),
    [
        (AttrType.MESSAGE_INTEGRITY, bytes(20)),
        (AttrType.MESSAGE_INTEGRITY_SHA256, bytes(32)),
        (AttrType.FINGERPRINT, bytes(4)),
    ],
    ids=["MI", "MI256", "FP"],
)
def test_raw_add_of_a_seal_attribute_seals_too(seal_type: int, seal_value: bytes) -> None:
    # msg.add(MESSAGE-INTEGRITY / FINGERPRINT, ...) (a relay copying attributes
    # across, say) must seal the message like add_integrity()/add_fingerprint():
    # otherwise the next add produces a message whose later attributes the
    # receiver ignores (after MESSAGE-INTEGRITY) or that it rejects outright
    # (anything after FINGERPRINT is a DecodeError).
    msg = Message(1, TID)
    msg.add(seal_type, seal_value)
    with pytest.raises(ValueError):
        msg.add(SOFTWARE, b"late")
    assert msg.attributes == [(seal_type, seal_value)]


@pytest.mark.parametrize(
    ("seal_type", "length"),
    [
        (AttrType.MESSAGE_INTEGRITY, 19),
        (AttrType.MESSAGE_INTEGRITY, 0),
        (AttrType.MESSAGE_INTEGRITY_SHA256, 15),
        (AttrType.MESSAGE_INTEGRITY_SHA256, 18),
        (AttrType.MESSAGE_INTEGRITY_SHA256, 36),
        (AttrType.FINGERPRINT, 3),
        (AttrType.FINGERPRINT, 8),
    ],
)
def test_raw_add_of_a_seal_attribute_checks_its_length(seal_type: int, length: int) -> None:
    # What the decoder would refuse, the encoder does not write.
    msg = Message(1, TID)
    with pytest.raises(ValueError):
        msg.add(seal_type, bytes(length))
    assert len(msg) == 20
    msg.add(SOFTWARE, b"not sealed")


def test_attributes_after_message_integrity_are_ignored_on_decode() -> None:
    signed = bytes(Message.build(1, Username("u"), MessageIntegrity(KEY), transaction_id=TID))
    tail = _attr(SOFTWARE, b"ignored") + _attr(0x7FFF, b"unknown")
    data = _fingerprint(_with_length(signed, len(signed) - 20 + len(tail)) + tail)

    msg = Message.decode(data)

    assert SOFTWARE not in msg
    assert msg.get(SOFTWARE) is None
    assert Software.get_from(msg) is None
    assert msg.unknown_attributes == ()  # the ignored 0x7FFF is not reported either
    assert _types(msg) == [USERNAME, AttrType.MESSAGE_INTEGRITY, AttrType.FINGERPRINT]
    msg.check_integrity(KEY)
    msg.check_fingerprint()
    assert bytes(msg) == data


def test_after_message_integrity_sha256_only_fingerprint_is_indexed() -> None:
    signed = bytes(
        Message.build(1, Username("u"), MessageIntegritySha256(KEY, 16), transaction_id=TID)
    )
    tail = _attr(AttrType.MESSAGE_INTEGRITY, bytes(20)) + _attr(SOFTWARE, b"ignored")
    data = _fingerprint(_with_length(signed, len(signed) - 20 + len(tail)) + tail)

    msg = Message.decode(data)

    assert _types(msg) == [USERNAME, AttrType.MESSAGE_INTEGRITY_SHA256, AttrType.FINGERPRINT]
    msg.check_integrity_sha256(KEY)
    msg.check_fingerprint()
    with pytest.raises(ice.IntegrityError):
        msg.check_integrity(KEY)  # the MESSAGE-INTEGRITY after it does not count


def test_message_integrity_then_sha256_both_indexed_and_verify() -> None:
    msg = Message.build(
        1, Software("x"), MessageIntegrity(KEY), MessageIntegritySha256(KEY), Fingerprint()
    )
    decoded = Message.decode(bytes(msg))
    assert _types(decoded) == [
        SOFTWARE,
        AttrType.MESSAGE_INTEGRITY,
        AttrType.MESSAGE_INTEGRITY_SHA256,
        AttrType.FINGERPRINT,
    ]
    decoded.check_integrity(KEY)
    decoded.check_integrity_sha256(KEY)
    decoded.check_fingerprint()


# --- unknown comprehension-required attributes -------------------------------------------


def test_unknown_attributes() -> None:
    msg = Message(1, TID)
    msg.add(0x7FFF, b"a")
    msg.add(SOFTWARE, b"x")
    msg.add(0x7FFF, b"b")  # reported once
    msg.add(0x0002, b"?")  # reserved, comprehension-required, unknown
    msg.add(0x8001, b"?")  # comprehension-optional: never reported
    msg.add(0xC0FF, b"?")
    assert msg.unknown_attributes == (0x7FFF, 0x0002)
    assert Message.decode(bytes(msg)).unknown_attributes == (0x7FFF, 0x0002)


@pytest.mark.parametrize(
    "attr_type", sorted(t for t in ice.attrs.BY_TYPE if t < 0x8000), ids=lambda t: f"0x{t:04x}"
)
def test_known_comprehension_required_attributes_are_not_reported(attr_type: int) -> None:
    msg = Message(1, TID)
    msg.add(attr_type, bytes(20))
    assert msg.unknown_attributes == ()


# --- integrity keys and MESSAGE-INTEGRITY(-SHA256) values ----------------------------------


def _oracle_mac(data: bytes, digest: str, length: int) -> bytes:
    """The MAC of the last attribute of data (of length bytes), by the standard library."""
    offset = len(data) - 4 - (length + 3) // 4 * 4
    return hmac.new(KEY, data[:offset], digest).digest()[:length]


@pytest.mark.parametrize("key", [KEY, ice.IntegrityKey(KEY)], ids=["bytes", "IntegrityKey"])
def test_message_integrity_value_and_key_types(key: bytes | ice.IntegrityKey) -> None:
    msg = Message.build(1, Software("x"), MessageIntegrity(key), transaction_id=TID)
    other = Message.build(1, Software("x"), transaction_id=TID)
    other.add_integrity(key)
    assert msg == other
    assert msg.get(AttrType.MESSAGE_INTEGRITY) == _oracle_mac(bytes(msg), "sha1", 20)
    for check_key in (KEY, ice.IntegrityKey(KEY), bytearray(KEY)):
        Message.decode(bytes(msg)).check_integrity(check_key)
        MessageIntegrity(check_key).check(Message.decode(bytes(msg)))
    with pytest.raises(ice.IntegrityError):
        Message.decode(bytes(msg)).check_integrity(KEY + b"!")


@pytest.mark.parametrize("sha256_length", [None, 16, 20, 28, 32])
def test_a_mac_differing_in_any_one_byte_is_refused(sha256_length: int | None) -> None:
    # The MAC is compared in 8-, 4- and 1-byte pieces without an early exit: a
    # difference in any position, the last ones included, must still count.
    msg = Message.build(1, Software("x"), transaction_id=TID)
    if sha256_length is None:
        msg.add_integrity(KEY)
        attr_type, check = AttrType.MESSAGE_INTEGRITY, Message.check_integrity
    else:
        msg.add_integrity_sha256(KEY, sha256_length)
        attr_type, check = AttrType.MESSAGE_INTEGRITY_SHA256, Message.check_integrity_sha256
    wire = bytes(msg)
    mac = msg.get(attr_type)
    assert mac is not None and wire.endswith(mac)
    check(Message.decode(wire), KEY)
    for i in range(len(wire) - len(mac), len(wire)):
        tampered = bytearray(wire)
        tampered[i] ^= 0x80
        with pytest.raises(ice.IntegrityError):
            check(Message.decode(bytes(tampered)), KEY)


def test_integrity_still_verifies_after_fingerprint_is_added() -> None:
    msg = Message.build(1, Software("x"), MessageIntegrity(KEY), transaction_id=TID)
    mac = msg.get(AttrType.MESSAGE_INTEGRITY)
    msg.add_fingerprint()
    assert msg.get(AttrType.MESSAGE_INTEGRITY) == mac
    msg.check_integrity(KEY)
    Message.decode(bytes(msg)).check_integrity(KEY)


def test_fingerprint_value() -> None:
    msg = Message.build(1, Software("x"), Fingerprint(), transaction_id=TID)
    assert bytes(msg) == _fingerprint(bytes(Message.build(1, Software("x"), transaction_id=TID)))
    assert Fingerprint.get_from(msg) == struct.unpack(">I", bytes(msg)[-4:])[0]


def test_integrity_key_object() -> None:
    key = ice.IntegrityKey(bytearray(KEY))
    assert key.key == KEY
    assert key == ice.IntegrityKey(KEY)
    assert hash(key) == hash(ice.IntegrityKey(KEY))
    assert key != ice.IntegrityKey(b"other")
    with pytest.raises(TypeError):
        ice.IntegrityKey("a str password")  # type: ignore[arg-type]
    # bytes(5) is five zero bytes and bytes([1, 2]) two: neither is a key anybody gave
    for not_bytes in (5, [1, 2], None):
        with pytest.raises(TypeError, match="an integrity key is bytes, not"):
            ice.IntegrityKey(not_bytes)  # type: ignore[arg-type]
    msg = Message.decode(bytes(Message.build(1, ice.MessageIntegrity(bytes(5)))))
    with pytest.raises(TypeError, match="an integrity key is bytes, not int"):
        msg.check_integrity(5)
    msg.check_integrity(bytes(5))


def test_missing_seals_raise() -> None:
    msg = Message.decode(bytes(Message.build(1, Software("x"))))
    with pytest.raises(ice.IntegrityError):
        msg.check_integrity(KEY)
    with pytest.raises(ice.IntegrityError):
        msg.check_integrity_sha256(KEY)
    with pytest.raises(ice.FingerprintError):
        msg.check_fingerprint()


@pytest.mark.parametrize("length", [16, 20, 24, 28, 32])
def test_message_integrity_sha256_truncation(length: int) -> None:
    built = Message.build(1, Software("x"), transaction_id=TID)
    built.add_integrity_sha256(ice.IntegrityKey(KEY), length)
    typed = Message.build(1, Software("x"), MessageIntegritySha256(KEY, length), transaction_id=TID)
    assert built == typed
    mac = typed.get(AttrType.MESSAGE_INTEGRITY_SHA256)
    assert mac == _oracle_mac(bytes(typed), "sha256", length)
    assert MessageIntegritySha256.get_from(typed) == mac
    assert len(typed) == 20 + 8 + 4 + length

    decoded = Message.decode(bytes(typed))
    decoded.check_integrity_sha256(KEY)
    MessageIntegritySha256(KEY).check(decoded)
    tampered = bytearray(bytes(typed))
    tampered[-1] ^= 1
    with pytest.raises(ice.IntegrityError):
        Message.decode(bytes(tampered)).check_integrity_sha256(KEY)


def test_message_integrity_sha256_default_length_is_32() -> None:
    msg = Message.build(1, MessageIntegritySha256(KEY))
    assert len(msg.get(AttrType.MESSAGE_INTEGRITY_SHA256)) == 32


@pytest.mark.parametrize("length", [0, 4, 12, 15, 17, 18, 30, 33, 36, 64, -4])
def test_message_integrity_sha256_invalid_lengths(length: int) -> None:
    msg = Message.build(1, Software("x"), transaction_id=TID)
    before = bytes(msg)
    with pytest.raises(ValueError):
        msg.add_integrity_sha256(KEY, length)
    with pytest.raises(ValueError):
        MessageIntegritySha256(KEY, length)
    assert bytes(msg) == before
    msg.add(SOFTWARE, b"still open")  # a refused seal does not seal


# --- maximum size ------------------------------------------------------------------------
# The length field is 16 bits and every attribute is padded to 4 bytes, so
# the largest body a STUN message can have is 65,532 bytes (65,535 rounded
# down to a multiple of 4); one byte more does not fit.


@pytest.mark.parametrize("values", [[65_528], [32_760, 32_764], [65_524, 0]], ids=str)
def test_largest_message_is_accepted(values: list[int]) -> None:
    msg = Message(1, TID)
    for size in values:
        msg.add(Data.TYPE, bytes(size))
    assert msg.length == 65_532
    decoded = Message.decode(bytes(msg))
    assert decoded == msg
    assert decoded.get_all(Data.TYPE) == [bytes(size) for size in values]


@pytest.mark.parametrize(
    "values",
    [[65_529], [65_531], [65_535], [65_536], [65_528, 0], [65_524, 1], [32_760, 32_765]],
    ids=str,
)
def test_one_byte_more_raises(values: list[int]) -> None:
    # The last value in each row takes the body past 65,532 bytes.
    msg = Message(1, TID)
    for size in values[:-1]:
        msg.add(Data.TYPE, bytes(size))
    before = bytes(msg)
    with pytest.raises(ValueError):
        msg.add(SOFTWARE, bytes(values[-1]))
    assert bytes(msg) == before


def test_seals_do_not_fit_past_the_maximum() -> None:
    msg = Message(1, TID)
    msg.add(Data.TYPE, bytes(65_532 - 4 - 8))  # room for 8 bytes: FINGERPRINT, not MI
    with pytest.raises(ValueError):
        msg.add_integrity(KEY)
    msg.add_fingerprint()
    assert msg.length == 65_532
    Message.decode(bytes(msg)).check_fingerprint()


# --- demultiplexing (RFC 7983) ---------------------------------------------------------------


def _expected_kind(first: int) -> int:
    if first <= 3:
        return ice.PACKET_STUN
    if 16 <= first <= 19:
        return ice.PACKET_ZRTP
    if 20 <= first <= 63:
        return ice.PACKET_DTLS
    if 64 <= first <= 79:
        return ice.PACKET_CHANNEL_DATA
    if 128 <= first <= 191:
        return ice.PACKET_RTP
    return ice.PACKET_UNKNOWN


def test_packet_kinds_are_distinct() -> None:
    kinds = {
        ice.PACKET_STUN,
        ice.PACKET_ZRTP,
        ice.PACKET_DTLS,
        ice.PACKET_CHANNEL_DATA,
        ice.PACKET_RTP,
        ice.PACKET_UNKNOWN,
    }
    assert len(kinds) == 6


@pytest.mark.parametrize("first", range(256))
def test_classify_every_first_byte(first: int) -> None:
    with_cookie = bytes([first, 1, 0, 0]) + struct.pack(">I", MAGIC_COOKIE) + TID
    assert ice.classify(with_cookie) == _expected_kind(first)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", ice.PACKET_UNKNOWN),
        (_stun(b""), ice.PACKET_STUN),
        (_stun(b"")[:19], ice.PACKET_UNKNOWN),  # too short to hold the cookie check
        (bytes(20), ice.PACKET_UNKNOWN),  # first byte 0, no cookie
        (b"\x03" + bytes(19), ice.PACKET_UNKNOWN),
        (b"\x01\x01\x00\x00" + b"\x21\x12\xa4\x43" + TID, ice.PACKET_UNKNOWN),  # cookie off by one
        (b"\x40\x00\x00", ice.PACKET_UNKNOWN),  # ChannelData needs its 4-byte header
        (b"\x40\x00\x00\x00", ice.PACKET_CHANNEL_DATA),
        (b"\x4f\xff\x00\x00", ice.PACKET_CHANNEL_DATA),
        (b"\x10", ice.PACKET_ZRTP),
        (b"\x14", ice.PACKET_DTLS),
        (b"\x3f", ice.PACKET_DTLS),
        (b"\x80", ice.PACKET_RTP),
        (b"\xbf", ice.PACKET_RTP),
        (b"\x04", ice.PACKET_UNKNOWN),
        (b"\x50", ice.PACKET_UNKNOWN),
        (b"\xc0", ice.PACKET_UNKNOWN),
        (b"\xff", ice.PACKET_UNKNOWN),
    ],
    ids=lambda v: v.hex() if isinstance(v, bytes) else str(v),
)
def test_classify(data: bytes, kind: int) -> None:
    assert ice.classify(data) == kind
    assert ice.classify(bytearray(data)) == kind


@pytest.mark.parametrize(
    ("data", "stun"),
    [
        (_stun(b""), True),
        (_stun(_attr(SOFTWARE, b"x")), True),
        (b"", False),
        (_stun(b"")[:19], False),
        (_stun(b"") + b"\0\0\0\0", False),  # length field does not cover it
        (_with_length(_stun(b""), 4), False),
        (bytes(20), False),
        (b"\x40" + _stun(b"")[1:], False),  # top bits set
        (b"\x40\x00\x00\x00", False),
    ],
)
def test_is_stun(data: bytes, stun: bool) -> None:
    assert ice.is_stun(data) is stun


@pytest.mark.parametrize(
    ("data", "channel_data"),
    [
        (b"\x40\x00\x00\x00", True),
        (b"\x4f\xff\x00\x02ab", True),
        (b"\x40\x00\x00\x01a\0\0\0", True),
        (b"\x40\x00\x00\x05abcd", False),  # announces more than it carries
        (b"\x40\x00\x00", False),
        (b"", False),
        (b"\x3f\xff\x00\x00", False),
        (b"\x50\x00\x00\x00", False),
        (_stun(b""), False),
    ],
)
def test_is_channel_data(data: bytes, channel_data: bool) -> None:
    assert ice.is_channel_data(data) is channel_data


# --- ChannelData (RFC 8656 section 12) --------------------------------------------------------


@pytest.mark.parametrize("number", [0x4000, 0x4001, 0x4ABC, 0x4FFF])
@pytest.mark.parametrize("length", range(10))
def test_channel_data_round_trip(number: int, length: int) -> None:
    payload = bytes(range(1, length + 1))
    udp = ice.encode_channel_data(number, payload)
    stream = ice.encode_channel_data(number, payload, stream=True)

    assert udp == struct.pack(">HH", number, length) + payload
    assert stream == udp + bytes(-length % 4)
    assert ice.decode_channel_data(udp) == (number, payload)
    assert ice.decode_channel_data(stream) == (number, payload)
    assert ice.decode_channel_data(stream, stream=True) == (number, payload)
    assert ice.decode_channel_data(bytearray(udp)) == (number, payload)
    assert ice.is_channel_data(udp)
    assert ice.classify(udp) == ice.PACKET_CHANNEL_DATA
    assert ice.stream_frame_length(stream) == len(stream)


@pytest.mark.parametrize("number", [0x3FFF, 0x5000, 0x0000, 0xFFFF, -1])
def test_channel_number_out_of_range(number: int) -> None:
    with pytest.raises(ValueError):
        ice.encode_channel_data(number, b"x")
    if 0 <= number <= 0xFFFF:
        with pytest.raises(ice.DecodeError):
            ice.decode_channel_data(struct.pack(">HH", number, 1) + b"x")


def test_channel_data_payload_limit() -> None:
    assert len(ice.encode_channel_data(0x4000, bytes(0xFFFF))) == 4 + 0xFFFF
    with pytest.raises(ValueError):
        ice.encode_channel_data(0x4000, bytes(0x10000))


@pytest.mark.parametrize(
    ("length", "trailing", "ok"),
    [
        (1, 0, True),
        (1, 1, True),
        (1, 2, True),
        (1, 3, True),  # padded to 4: the most a UDP sender may add
        (1, 4, False),
        (1, 7, False),
        (5, 3, True),
        (5, 4, False),
        (4, 0, True),
        (4, 1, False),  # already aligned: no padding allowed
        (0, 0, True),
        (0, 1, False),
    ],
)
def test_channel_data_udp_padding(length: int, trailing: int, ok: bool) -> None:
    payload = b"p" * length
    datagram = struct.pack(">HH", 0x4001, length) + payload + bytes(trailing)
    if ok:
        assert ice.decode_channel_data(datagram) == (0x4001, payload)
    else:
        with pytest.raises(ice.DecodeError):
            ice.decode_channel_data(datagram)


@pytest.mark.parametrize(
    ("length", "trailing", "ok"),
    [
        (1, 3, True),
        (1, 0, False),  # a stream frame must carry its padding
        (1, 2, False),
        (1, 4, False),
        (4, 0, True),
        (4, 4, False),
        (0, 0, True),
    ],
)
def test_channel_data_stream_padding(length: int, trailing: int, ok: bool) -> None:
    payload = b"p" * length
    frame = struct.pack(">HH", 0x4FFF, length) + payload + bytes(trailing)
    if ok:
        assert ice.decode_channel_data(frame, stream=True) == (0x4FFF, payload)
    else:
        with pytest.raises(ice.DecodeError):
            ice.decode_channel_data(frame, stream=True)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "data", [b"", b"\x40", b"\x40\x00\x00", b"\x40\x00\x00\x01", b"\x40\x00\x00\x08abcd"]
)
def test_truncated_channel_data(data: bytes, stream: bool) -> None:
    with pytest.raises(ice.DecodeError):
        ice.decode_channel_data(data, stream=stream)


# --- stream framing -------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x01\x00", b"\x40\x00\x00"])
def test_stream_frame_length_needs_four_bytes(data: bytes) -> None:
    assert ice.stream_frame_length(data) is None


def test_stream_frame_length_of_stun() -> None:
    msg = bytes(Message.build(1, Software("stream"), Fingerprint()))
    assert ice.stream_frame_length(msg) == len(msg)
    assert ice.stream_frame_length(msg[:4]) == len(msg)  # the header start is enough
    assert ice.stream_frame_length(msg + b"\x40\x00") == len(msg)  # the next frame is ignored


@pytest.mark.parametrize(("length", "frame"), [(0, 4), (1, 8), (3, 8), (4, 8), (5, 12), (8, 12)])
def test_stream_frame_length_of_channel_data_is_padded(length: int, frame: int) -> None:
    assert ice.stream_frame_length(struct.pack(">HH", 0x4000, length)) == frame
    assert ice.stream_frame_length(struct.pack(">HH", 0x4FFF, length)) == frame


@pytest.mark.parametrize("first", [0x04, 0x10, 0x14, 0x3F, 0x50, 0x80, 0xFF])
def test_stream_frame_length_rejects_other_protocols(first: int) -> None:
    with pytest.raises(ice.DecodeError):
        ice.stream_frame_length(bytes([first, 0, 0, 0]))


def test_message_exposes_its_wire_bytes_as_a_read_only_buffer() -> None:
    msg = Message.build(1, Software("buffer"), transaction_id=TID)
    view = memoryview(msg)

    assert view.readonly
    assert view.tobytes() == bytes(msg)
    with pytest.raises(BufferError):
        Data(bytes(400)).add_to(msg)  # growing would move the buffer under the view
    assert view.tobytes() == bytes(msg)  # the refused add changed nothing

    view.release()
    Data(bytes(400)).add_to(msg)
    assert Message.decode(memoryview(msg)) == msg


def test_raw_is_the_wire_bytes() -> None:
    msg = Message.build(1, Software("raw"), transaction_id=TID)
    assert msg.raw == bytes(msg) == bytes(memoryview(msg))
    assert Message.decode(msg.raw) == msg
