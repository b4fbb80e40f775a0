"""The attribute classes' C constructors and cached classmethods behave as the generic ones.

Calling an attribute class runs a C constructor (tp_vectorcall, set in
ice/_attrs_base.pyx) that mirrors its __init__; ``type.__call__(cls, ...)``
is the generic path (tuple, tp_new, tp_init), which these tests compare it with:
same value, same error (type and message) for every argument list,
keywords and wrong counts included. Classmethods such as get_from are bound
once per class.
"""

from __future__ import annotations

import copy
import enum
import inspect
import ipaddress
import pickle
import sys
import traceback
from typing import Any

import pytest

import ice
from ice import _attrs_base, attrs, constants
from ice._codec import Attribute


def _generic(cls: type, *args: Any, **kwargs: Any) -> Any:
    return type.__call__(cls, *args, **kwargs)


ARGUMENT_LISTS: list[tuple[type, tuple[Any, ...], dict[str, Any]]] = [
    (ice.Username, ("wxyz:abcd",), {}),
    (ice.Username, ("é" * 10,), {}),
    (ice.Username, (b"raw-bytes",), {}),
    (ice.Username, (bytearray(b"ba"),), {}),
    (ice.Username, (memoryview(b"mv"),), {}),
    (ice.Username, (), {"value": "kw"}),
    (ice.Username, ("x" * 513,), {}),
    (ice.Username, (b"x" * 513,), {}),
    (ice.Username, (bytearray(513),), {}),
    (ice.Username, (12,), {}),
    (ice.Username, ("a", "b"), {}),
    (ice.Username, (), {}),
    (ice.Nonce, ("n" * 129,), {}),
    (ice.Nonce, ("é" * 128,), {}),  # 128 characters, 256 bytes: fits
    (ice.Software, ("\ud800",), {}),  # a lone surrogate has no UTF-8
    (ice.Realm, ("realm",), {}),
    (ice.XorMappedAddress, ("192.0.2.1", 3478), {}),
    (ice.XorMappedAddress, ("2001:db8::1", 1), {}),
    (ice.XorMappedAddress, ("192.0.2.1", 70000), {}),
    (ice.XorMappedAddress, ("not an ip", 1), {}),
    (ice.XorMappedAddress, ("192.0.2.1", "1"), {}),
    (ice.XorMappedAddress, ("192.0.2.1",), {}),
    (ice.XorMappedAddress, (), {"host": "192.0.2.1", "port": 1}),
    (ice.MappedAddress, ("10.0.0.1", 9), {}),
    (ice.Priority, (0x6E0001FF,), {}),
    (ice.Priority, (-1,), {}),
    (ice.Priority, (2**32,), {}),
    (ice.Priority, ("1",), {}),
    (ice.IceControlling, (2**64 - 1,), {}),
    (ice.IceControlling, (2**64,), {}),
    (ice.UseCandidate, (), {}),
    (ice.UseCandidate, (1,), {}),
    (ice.Fingerprint, (), {}),
    (ice.Fingerprint, (1,), {}),
    (ice.MessageIntegrity, (b"key",), {}),
    (ice.MessageIntegrity, ("str key",), {}),
    (ice.MessageIntegrity, (), {"key": b"key"}),
    (ice.MessageIntegrity, (), {}),
    (ice.ErrorCodeAttribute, (401,), {}),
    (ice.ErrorCodeAttribute, (438, "Stale"), {}),
    (ice.ErrorCodeAttribute, (200,), {}),
    (ice.ErrorCodeAttribute, (401, "r" * 129), {}),
    (ice.ErrorCodeAttribute, (401, None, 3), {}),
    (ice.ErrorCodeAttribute, (), {"code": 420}),
    (ice.Data, (b"payload",), {}),
    (ice.Data, ("text",), {}),
    (ice.Lifetime, (600,), {}),
    (ice.ChannelNumber, (0x4000,), {}),
    (ice.ChannelNumber, (0x3FFF,), {}),
    (ice.ChannelNumber, (), {"number": 0x4001}),
    (ice.RequestedAddressFamily, (1,), {}),
    (ice.RequestedAddressFamily, (3,), {}),
]


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        made = call()
    except Exception as exc:  # the comparison is the point
        return "raised", (type(exc), str(exc))
    return "made", made


@pytest.mark.parametrize(("cls", "args", "kwargs"), ARGUMENT_LISTS)
def test_a_call_gives_what_the_generic_call_gives(
    cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    fast = _outcome(lambda: cls(*args, **kwargs))
    generic = _outcome(lambda: _generic(cls, *args, **kwargs))
    assert fast[0] == generic[0], (fast, generic)
    if fast[0] == "raised":
        assert fast[1] == generic[1]
    else:
        assert type(fast[1]) is cls
        if cls.__eq__ is not object.__eq__:  # MessageIntegrity has no value equality
            assert fast[1] == generic[1]
        msg = ice.Message(constants.BINDING_REQUEST, transaction_id=bytes(12))
        other = ice.Message(constants.BINDING_REQUEST, transaction_id=bytes(12))
        fast[1].add_to(msg)
        generic[1].add_to(other)
        assert msg.raw == other.raw


def _concrete_classes() -> list[type]:
    return [
        obj
        for obj in vars(attrs).values()
        if isinstance(obj, type) and issubclass(obj, Attribute) and hasattr(obj, "TYPE")
    ]


def test_every_attribute_with_a_shape_constructor_has_the_fast_call() -> None:
    # The classes whose own __init__ is not one a C constructor mirrors are
    # called the generic way (UnknownAttributes, PasswordAlgorithm, ...).
    own_init = {
        cls
        for cls in _concrete_classes()
        if "__init__" in vars(cls) and cls not in (ice.MessageIntegrity, ice.ChannelNumber)
    }
    fast = {cls for cls in _concrete_classes() if _attrs_base._has_fast_call(cls)}
    assert fast == set(_concrete_classes()) - own_init
    assert {ice.Username, ice.XorMappedAddress, ice.MessageIntegrity, ice.Fingerprint} <= fast


def test_a_python_subclass_is_called_the_generic_way() -> None:
    class Tagged(ice.Username):
        def __init__(self, value: str, tag: str) -> None:
            super().__init__(value)
            self.tag = tag

    made = Tagged("wxyz", tag="t")
    assert (made.value, made.tag) == ("wxyz", "t")
    assert not _attrs_base._has_fast_call(Tagged)


def test_get_from_is_bound_once_per_class() -> None:
    assert ice.Username.get_from is ice.Username.get_from
    assert ice.XorMappedAddress.get_from is ice.XorMappedAddress.get_from
    assert ice.Padding.of_length is ice.Padding.of_length
    assert ice.Username.get_from is not ice.Realm.get_from


def test_get_from_on_a_python_subclass_makes_the_subclass() -> None:
    class Named(ice.Username):
        pass

    msg = ice.Message.build(constants.BINDING_REQUEST, ice.Username("wxyz"))
    found = Named.get_from(msg)
    assert type(found) is Named
    assert found.value == "wxyz"
    assert type(ice.Username.get_from(msg)) is ice.Username
    assert ice.Username("x").get_from(msg) == ice.Username("wxyz")  # on an instance too


def test_text_made_from_str_and_from_bytes_are_the_same_attribute() -> None:
    text = "pässwörd-ünïcode"
    from_str, from_bytes = ice.Username(text), ice.Username(text.encode())
    assert from_str == from_bytes
    assert hash(from_str) == hash(from_bytes)
    assert from_str.raw == from_bytes.raw == text.encode()
    assert from_str.value == from_bytes.value == text
    msg = ice.Message.build(constants.BINDING_REQUEST, from_str, transaction_id=bytes(12))
    assert msg.get(ice.Username.TYPE) == text.encode()
    assert ice.Username.get_from(msg) == from_str


def test_a_str_subclass_is_kept_as_its_utf8() -> None:
    class Loud(str):
        def __str__(self) -> str:
            return "NOT THIS"

    made = ice.Username(Loud("quiet"))
    assert made.raw == b"quiet"
    assert type(made.value) is str and made.value == "quiet"


def test_host_text_is_right_for_addresses_sharing_a_cache_slot() -> None:
    # format_ip keeps the text of recent IPv4 addresses by their last byte:
    # addresses that share one must each read back as themselves.
    hosts = [f"10.{a}.{b}.{c}" for a in (0, 1, 255) for b in (0, 7) for c in (4, 68, 132, 196)]
    for _round in range(2):
        for host in hosts:
            msg = ice.Message.build(constants.BINDING_SUCCESS, ice.XorMappedAddress(host, 3478))
            found = ice.XorMappedAddress.get_from(ice.Message.decode(msg.raw))
            assert found is not None
            assert found.address == (host, 3478)
            assert found.host == host


@pytest.mark.parametrize(
    ("cls", "value"),
    [
        (ice.Nonce, bytes(2048)),
        (ice.Nonce, "n" * 129),
        (ice.Username, bytearray(600)),
        (ice.Software, 3.5),
        (ice.ReservationToken, b"short"),
    ],
)
def test_an_oversized_value_is_refused_without_codec_frames(cls: type, value: object) -> None:
    # Each traceback entry is a frame object made while the error propagates:
    # the refusal of a hostile value should cost no more than a plain raise.
    with pytest.raises((ValueError, TypeError)) as caught:
        cls(value)
    frames = traceback.extract_tb(caught.value.__traceback__)
    assert [f.name for f in frames] == ["test_an_oversized_value_is_refused_without_codec_frames"]


class _Motto(ice.TextAttribute):
    """A program's own text attribute (a heap class): refusals name it too."""

    TYPE = 0x8077
    MAX_BYTES = 8
    MAX_CHARS = 4


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (lambda: ice.Nonce(bytes(2048)), "Nonce is at most 763 bytes, not 2048"),
        (lambda: ice.Nonce(bytearray(800)), "Nonce is at most 763 bytes, not 800"),
        (lambda: ice.Username("x" * 514), "Username is at most 512 characters, not 514"),
        (lambda: ice.Username("é" * 300), "Username is at most 512 bytes, not 600"),
        (lambda: ice.Realm(b"r" * 764), "Realm is at most 763 bytes, not 764"),
        (lambda: ice.ReservationToken(b"short"), "ReservationToken is 8 bytes, not 5"),
        (lambda: ice.UserHash(bytes(31)), "UserHash is 32 bytes, not 31"),
        (lambda: _Motto("motto"), "_Motto is at most 4 characters, not 5"),
        (lambda: _Motto("€€€"), "_Motto is at most 8 bytes, not 9"),
    ],
)
def test_a_refused_value_says_which_attribute_its_limit_and_its_size(make: Any, text: str) -> None:
    with pytest.raises(ValueError) as caught:
        make()
    assert str(caught.value) == text
    assert type(caught.value) is ValueError


def _message_with(attr_type: int, value: bytes) -> ice.Message:
    msg = ice.Message(ice.BINDING_REQUEST)
    msg.add(attr_type, value)
    return msg


@pytest.mark.parametrize(
    ("cls", "attr_type", "value", "text"),
    [
        (ice.Nonce, 0x0015, bytes(800), "Nonce is at most 763 bytes, not 800"),
        (_Motto, 0x8077, bytes(9), "_Motto is at most 8 bytes, not 9"),
        (ice.Priority, 0x0024, b"\x01\x02", "Priority is 4 bytes, not 2"),
        (ice.IceControlling, 0x802A, bytes(4), "IceControlling is 8 bytes, not 4"),
        (ice.UseCandidate, 0x0025, bytes(4), "UseCandidate has no value, but 4 bytes came"),
        (ice.ReservationToken, 0x0022, bytes(4), "ReservationToken is 8 bytes, not 4"),
        (
            ice.ErrorCodeAttribute,
            0x0009,
            b"\x00\x00",
            "ErrorCodeAttribute is at least 4 bytes, not 2",
        ),
        (
            ice.ErrorCodeAttribute,
            0x0009,
            b"\x00\x00\x04\x01" + bytes(764),
            "ErrorCodeAttribute reason is at most 763 bytes, not 764",
        ),
    ],
)
def test_a_malformed_attribute_says_which_its_limit_and_its_size(
    cls: type, attr_type: int, value: bytes, text: str
) -> None:
    with pytest.raises(ice.DecodeError) as caught:
        cls.get_from(_message_with(attr_type, value))  # type: ignore[attr-defined]
    assert str(caught.value) == text


def test_the_same_value_object_gives_the_same_immutable_instance() -> None:
    username, key = "rUfR:lUfL", b"session-key"
    assert ice.Username(username) is ice.Username(username)
    assert ice.MessageIntegrity(key) is ice.MessageIntegrity(key)
    assert ice.Fingerprint() is ice.Fingerprint()
    assert ice.UseCandidate() is ice.UseCandidate()
    priority = 0x6E0001FF
    assert ice.Priority(priority) is ice.Priority(priority)
    assert ice.ErrorCodeAttribute(401) is ice.ErrorCodeAttribute(401)
    # An IntEnum member is an int subclass: made afresh, equal all the same.
    stale = constants.ErrorCode.STALE_NONCE
    assert ice.ErrorCodeAttribute(stale) is not ice.ErrorCodeAttribute(stale)
    assert ice.ErrorCodeAttribute(stale) == ice.ErrorCodeAttribute(438)
    # Another class, or an equal but distinct value object, makes its own.
    assert ice.Realm(username) is not ice.Username(username)
    assert type(ice.Realm(username)) is ice.Realm
    other = "".join(["rUfR:", "lUfL"])
    assert other is not username
    assert ice.Username(other) == ice.Username(username)


def test_a_mutable_value_is_never_kept() -> None:
    value = bytearray(b"before")
    made = ice.Username(value)
    value[:] = b"after!"
    assert ice.Username(value) is not made
    assert made.raw == b"before"
    assert ice.Username(value).raw == b"after!"
    payload = b"payload"
    assert ice.Data(payload) is not ice.Data(payload)


def test_kept_instances_hold_no_growing_references() -> None:
    username = "x" * 20
    ice.Username(username)
    before = sys.getrefcount(username)
    for _ in range(10_000):
        ice.Username(username)
    assert sys.getrefcount(username) == before


def test_text_read_from_a_message_keeps_bytes_that_are_not_utf8() -> None:
    msg = ice.Message(constants.BINDING_REQUEST)
    msg.add(ice.Nonce.TYPE, b"\xff\xfe-not-utf8")
    msg.add(ice.Realm.TYPE, "réalm".encode())
    nonce = ice.Nonce.get_from(msg)
    realm = ice.Realm.get_from(msg)
    assert nonce is not None and realm is not None
    assert nonce.raw == b"\xff\xfe-not-utf8"
    with pytest.raises(ice.DecodeError):
        nonce.value  # noqa: B018 - the property raises
    assert realm.value == "réalm"
    assert realm.raw == "réalm".encode()
    assert nonce == ice.Nonce(b"\xff\xfe-not-utf8")
    assert realm == ice.Realm("réalm")


@pytest.mark.parametrize("cls", [ice.Username, ice.Realm, ice.Software, ice.AlternateDomain])
def test_utf8_only_text_refuses_bytes_that_are_not_utf8(cls: Any) -> None:
    # RFC 8489 14.3, 14.9, 14.14, 14.16: these are UTF-8; NONCE (above) takes any bytes.
    msg = ice.Message(constants.BINDING_REQUEST)
    msg.add(cls.TYPE, b"ok \xff\xfe")
    with pytest.raises(ice.DecodeError, match=f"{cls.__name__} is not valid UTF-8"):
        cls.get_from(msg)
    with pytest.raises(ValueError, match=f"{cls.__name__} is UTF-8 text only"):
        cls(b"ok \xff\xfe")
    with pytest.raises(ValueError, match="UTF-8 text only"):
        cls(bytearray(b"\xc3"))  # a truncated sequence
    # UTF-8 bytes make the text at once: .value is a str however it was made
    for made in (cls("réalm"), cls("réalm".encode()), cls(bytearray("réalm".encode()))):
        assert type(made.value) is str and made.value == "réalm" and made == cls("réalm")
    with pytest.raises(AttributeError):
        cls("x").value = "y"  # read-only


def test_build_reads_setters_and_transaction_id_from_the_call() -> None:
    # Message.build is a fastcall function: no argument tuple, no keyword dict.
    tid = bytes(range(12))
    msg = ice.Message.build(
        constants.BINDING_REQUEST, ice.Username("u"), ice.Software("s"), transaction_id=tid
    )
    assert (msg.type, msg.transaction_id) == (constants.BINDING_REQUEST, tid)
    assert [a.value for a in (ice.Username.get_from(msg), ice.Software.get_from(msg))] == ["u", "s"]
    assert ice.Message.build(constants.BINDING_REQUEST, transaction_id=None).transaction_id != tid
    assert str(inspect.signature(ice.Message.build)) == "(type, *setters, transaction_id=None)"
    # read as a plain function from the class and from an instance alike
    assert msg.build is ice.Message.build


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "text"),
    [
        ((), {}, TypeError, "missing required argument 'type'"),
        ((), {"transaction_id": bytes(12)}, TypeError, "missing required argument 'type'"),
        ((1,), {"tid": bytes(12)}, TypeError, "unexpected keyword argument 'tid'"),
        ((0x4000,), {}, ValueError, "does not fit in 14 bits"),
        (("1",), {}, TypeError, "integer"),
        ((1, 5), {}, AttributeError, "add_to"),
        ((1,), {"transaction_id": b"short"}, ValueError, "12 bytes"),
    ],
)
def test_build_refuses_bad_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], error: type, text: str
) -> None:
    with pytest.raises(error, match=text):
        ice.Message.build(*args, **kwargs)  # type: ignore[arg-type]


def test_a_recycled_message_starts_empty() -> None:
    # Dropped messages are handed out again without clearing their memory:
    # nothing of the last one (attributes, a grown buffer, a live view count)
    # may show in the next.
    for _ in range(3):
        big = ice.Message.build(constants.BINDING_REQUEST, ice.Data(bytes(1000)), ice.Fingerprint())
        view = memoryview(big)
        view.release()
        del big, view
        fresh = ice.Message()
        assert (len(fresh.raw), fresh.attributes) == (20, [])
        ice.Data(bytes(2000)).add_to(fresh)  # grows: refused if a view count had leaked over
        assert ice.Data.get_from(fresh).value == bytes(2000)  # type: ignore[union-attr]
        decoded = ice.Message.decode(bytes(ice.Message.build(constants.BINDING_SUCCESS)))
        assert (len(decoded.raw), decoded.attributes) == (20, [])


def _text_message(cls: type, value: bytes) -> ice.Message:
    msg = ice.Message(constants.BINDING_REQUEST)
    msg.add(cls.TYPE, value)  # type: ignore[attr-defined]
    return msg


@pytest.mark.parametrize(
    "value", [b"wxyz:abcd", "réalm-ü".encode(), b"\xff\xfe-not-utf8", b""], ids=repr
)
def test_reading_the_same_text_again_gives_the_same_instance(value: bytes) -> None:
    first = ice.Nonce.get_from(_text_message(ice.Nonce, value))
    again = ice.Nonce.get_from(_text_message(ice.Nonce, value))
    assert first is again
    assert again is not None and again.raw == value


@pytest.mark.parametrize("cls", [ice.Username, ice.Nonce])
def test_a_kept_text_instance_is_never_handed_out_for_other_bytes(cls: Any) -> None:
    values = [b"alice", b"alicf", b"alice2", b"ALICE", b"alic", "alicé".encode(), "alicè".encode()]
    if cls is ice.Nonce:  # any bytes; USERNAME is UTF-8 only
        values.append(b"\xffalice")
    seen = []
    for value in values:
        read = cls.get_from(_text_message(cls, value))
        assert read is not None and read.raw == value
        seen.append(read)
    # the class's one kept instance is the last read; other classes keep their own
    software = ice.Software.get_from(_text_message(ice.Software, b"alice"))
    assert software is not None and type(software) is ice.Software
    assert cls.get_from(_text_message(cls, values[-1])) is seen[-1]
    assert cls.get_from(_text_message(cls, b"alice")).value == "alice"


@pytest.mark.parametrize("length", [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24])
def test_a_kept_text_instance_is_not_handed_out_when_any_one_byte_differs(length: int) -> None:
    # The wire bytes are compared in word-sized pieces for short values: a
    # difference in any position, first and last included, must be seen.
    value = bytes(range(0x41, 0x41 + length))
    kept = ice.Nonce.get_from(_text_message(ice.Nonce, value))
    for i in range(length):
        other = bytearray(value)
        other[i] ^= 0x20
        read = ice.Nonce.get_from(_text_message(ice.Nonce, bytes(other)))
        assert read is not kept and read is not None and read.raw == bytes(other)
        kept = ice.Nonce.get_from(_text_message(ice.Nonce, value))
        assert kept is not None and kept.raw == value


def test_reading_the_same_address_again_gives_the_same_instance() -> None:
    def read(host: str, port: int) -> Any:
        msg = ice.Message.build(constants.BINDING_SUCCESS, ice.XorMappedAddress(host, port))
        return ice.XorMappedAddress.get_from(ice.Message.decode(bytes(msg)))

    first = read("192.0.2.1", 50000)
    assert read("192.0.2.1", 50000) is first
    assert first.port is read("192.0.2.1", 50000).port  # the port int is kept too
    # any difference in family, address or port gives a new one
    for host, port in [
        ("192.0.2.1", 50001),
        ("192.0.2.2", 50000),
        ("c000:201::", 50000),
        ("::ffff:192.0.2.1", 50000),
        ("192.0.2.1", 50000),
    ]:
        got = read(host, port)
        assert (ipaddress.ip_address(got.host), got.port) == (ipaddress.ip_address(host), port)
    # MAPPED-ADDRESS (not XOR-ed) keeps its own instances
    plain = ice.Message.build(constants.BINDING_SUCCESS, ice.MappedAddress("192.0.2.1", 50000))
    mapped = ice.MappedAddress.get_from(plain)
    assert type(mapped) is ice.MappedAddress and mapped.address == ("192.0.2.1", 50000)


def test_a_python_subclass_reads_a_fresh_instance_every_time() -> None:
    class Tagged(ice.Username):
        pass

    msg = _text_message(ice.Username, b"wxyz")
    first, again = Tagged.get_from(msg), Tagged.get_from(msg)
    assert type(first) is Tagged and first is not again
    first.note = "mine"  # type: ignore[union-attr]
    assert not hasattr(again, "note")


def test_reading_the_same_error_code_again_gives_the_same_instance() -> None:
    def read(*args: Any) -> Any:
        msg = ice.Message.build(constants.ALLOCATE_ERROR, ice.ErrorCodeAttribute(*args))
        return ice.ErrorCodeAttribute.get_from(ice.Message.decode(bytes(msg)))

    first = read(401)
    assert read(401) is first
    for args in [(438,), (401, "Unauthorized"), (401, ""), (401,)]:
        got = read(*args)
        assert got == ice.ErrorCodeAttribute(*args)


@pytest.mark.parametrize(
    ("cls", "values"),
    [(ice.Priority, [1, 2**31, 2**32 - 1]), (ice.IceControlling, [1, 2**63, 2**64 - 1])],
)
def test_reading_the_same_integer_again_gives_the_same_instance(
    cls: type, values: list[int]
) -> None:
    def read(value: int) -> Any:
        msg = ice.Message.build(constants.BINDING_REQUEST, cls(value))
        return cls.get_from(ice.Message.decode(bytes(msg)))  # type: ignore[attr-defined]

    first = read(values[0])
    assert read(values[0]) is first
    for value in values + values[:1]:
        assert read(value).value == value


def test_channel_numbers_are_made_once() -> None:
    frames = [ice.encode_channel_data(n, b"x") for n in (0x4000, 0x4001, 0x4FFF)]
    for frame in frames:
        first, _ = ice.decode_channel_data(frame)
        again, _ = ice.decode_channel_data(bytearray(frame))
        assert first == int.from_bytes(frame[:2], "big") and first is again
    # RFC 5766's upper range is read right, if not kept
    old = ice.encode_channel_data(0x7FFF, b"x", rfc5766=True)
    assert ice.decode_channel_data(old, rfc5766=True) == (0x7FFF, b"x")


@pytest.mark.parametrize(
    "cls, value", [(ice.Priority, 0x6E0001FF), (ice.IceControlling, 2**64 - 1)]
)
def test_an_integer_attribute_makes_its_int_once(cls: Any, value: int) -> None:
    made = cls(value)
    assert made.value is value  # the caller's own int, not a copy
    msg = ice.Message.decode(bytes(ice.Message.build(constants.BINDING_REQUEST, made)))
    read = cls.get_from(msg)
    assert read.value == value and read.value is read.value
    assert cls.get_from(msg).value is read.value  # the kept instance, its int


@pytest.mark.parametrize(
    "cls", [ice.Priority, ice.Lifetime, ice.ConnectionId, ice.IceControlled, ice.IceControlling]
)
def test_an_integer_attributes_value_is_its_int_however_it_was_made(cls: Any) -> None:
    # .value is a member over the int the instance makes when it is made: no
    # way of making one may leave it unset (it would read as None).
    made = cls(1234)
    msg = ice.Message.decode(bytes(ice.Message.build(constants.BINDING_REQUEST, made)))
    for attr in (made, cls.get_from(msg), copy.copy(made), pickle.loads(pickle.dumps(made))):
        assert type(attr.value) is int and attr.value == 1234
    with pytest.raises(AttributeError):
        made.value = 5  # read-only, as the property was


def test_an_integer_attribute_reads_an_int_enum_or_bool_as_a_plain_int() -> None:
    class Level(enum.IntEnum):
        HIGH = 7

    for given in (Level.HIGH, True):
        value = ice.Priority(given).value
        assert type(value) is int and value == int(given)


def test_each_attribute_goes_on_the_wire_with_its_own_class_type_every_time() -> None:
    # The package's classes keep their TYPE on each instance after the first
    # add; kept instances of two classes of one shape must not mix them up.
    username, software = ice.Username("u:v"), ice.Software("u:v")
    for _ in range(2):
        msg = ice.Message.build(ice.BINDING_REQUEST, username, software)
        assert [attr_type for attr_type, _ in msg.attributes] == [0x0006, 0x8022]


def test_a_program_s_attribute_class_may_change_its_type() -> None:
    # A heap class's TYPE can be reassigned, unlike the package's: each add
    # writes what the class says now, even for an instance added before.
    class Retyped(ice.TextAttribute):
        TYPE = 0x8078

    attr = Retyped("x")
    assert ice.Message.build(ice.BINDING_REQUEST, attr).attributes[0][0] == 0x8078
    Retyped.TYPE = 0x8079
    assert ice.Message.build(ice.BINDING_REQUEST, attr).attributes[0][0] == 0x8079
    with pytest.raises(TypeError):
        ice.Username.TYPE = 0x8079  # type: ignore[misc]
