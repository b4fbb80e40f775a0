"""Malformed input: every row must raise exactly the expected exception.

Structure errors are ice.DecodeError (a ValueError) from Message.parse or
from an attribute's get_from / value; a wrong seal is ice.FingerprintError
or ice.IntegrityError from the check methods. After each row, the same
Message object must still decode a valid message completely.
"""

from __future__ import annotations

import contextlib
import random
import struct
import traceback
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ice
from ice import Message
from ice.attrs import BY_TYPE
from ice.constants import MAGIC_COOKIE, AttrType

TID = bytes(range(100, 112))
KEY = b"malformed key"

VALID = bytes(
    Message.build(
        ice.BINDING_REQUEST,
        ice.Username("valid"),
        ice.Software("still works"),
        ice.XorMappedAddress("192.0.2.1", 32853),
        ice.MessageIntegrity(KEY),
        ice.Fingerprint(),
        transaction_id=TID,
    )
)
VALID_ATTRIBUTES = Message.decode(VALID).attributes


def attr(attr_type: int, value: bytes) -> bytes:
    """One attribute, padded with zeros."""
    return struct.pack(">HH", attr_type, len(value)) + value + bytes(-len(value) % 4)


def stun(body: bytes, length: int | None = None, head: bytes = b"\x00\x01") -> bytes:
    """A header (length from body unless given) followed by body."""
    size = len(body) if length is None else length
    return head + struct.pack(">HI", size, MAGIC_COOKIE) + TID + body


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


# --- what each row does with its bytes ------------------------------------------------

Action = Callable[[Message, bytes], object]


def parse(msg: Message, data: bytes) -> None:
    msg.parse(data)


def get(cls: type) -> Action:
    def action(msg: Message, data: bytes) -> object:
        msg.parse(data)
        return cls.get_from(msg)

    return action


def value(cls: type) -> Action:
    def action(msg: Message, data: bytes) -> object:
        msg.parse(data)
        return cls.get_from(msg).value

    return action


def check_fingerprint(msg: Message, data: bytes) -> None:
    msg.parse(data)
    msg.check_fingerprint()


def check_integrity(msg: Message, data: bytes) -> None:
    msg.parse(data)
    msg.check_integrity(KEY)


def check_integrity_sha256(msg: Message, data: bytes) -> None:
    msg.parse(data)
    msg.check_integrity_sha256(KEY)


def channel_data(stream: bool) -> Action:
    return lambda msg, data: ice.decode_channel_data(data, stream=stream)


def stream_frame(msg: Message, data: bytes) -> object:
    return ice.stream_frame_length(data)


D, F, I = ice.DecodeError, ice.FingerprintError, ice.IntegrityError
XMA = ice.XorMappedAddress
A = AttrType


def row(id: str, data: bytes, action: Action, expected: type[Exception]) -> object:
    return pytest.param(data, action, expected, id=id)


def bad(
    id: str, attr_type: int, raw: bytes, cls: type, how: Callable[[type], Action] = get
) -> object:
    """A well-framed message whose one attribute has a malformed value."""
    return row(id, stun(attr(attr_type, raw)), how(cls), ice.DecodeError)


def framing(id: str, attr_type: int, raw: bytes) -> object:
    """A message with one attribute that the decoder itself must refuse."""
    return row(id, stun(attr(attr_type, raw)), parse, ice.DecodeError)


ROWS = [
    # --- header
    row("empty", b"", parse, D),
    *(row(f"header-{n}-bytes", VALID[:n], parse, D) for n in range(1, 20)),
    row("top-bit-0x80", b"\x80" + VALID[1:], parse, D),
    row("top-bit-0x40", b"\x40" + VALID[1:], parse, D),
    row("top-bits-0xc0", b"\xc0" + VALID[1:], parse, D),
    row("bad-cookie", VALID[:7] + b"\x43" + VALID[8:], parse, D),
    row("rfc3489-no-cookie", VALID[:4] + bytes(4) + VALID[8:], parse, D),
    row("length-not-multiple-of-4", stun(b"\x80\x22\x00\x00\x00\x00", length=6), parse, D),
    row("length-1", stun(b"x", length=1), parse, D),
    row("length-larger-than-data", stun(attr(A.SOFTWARE, b"abcd"), length=12), parse, D),
    row("length-larger-no-body", stun(b"", length=4), parse, D),
    row("length-smaller-than-data", stun(attr(A.SOFTWARE, b"abcd"), length=4), parse, D),
    row("length-zero-with-body", stun(attr(A.SOFTWARE, b"abcd"), length=0), parse, D),
    row("trailing-byte", VALID + b"\x00", parse, D),
    # --- attribute framing. A body is a multiple of 4 and so is every padded
    # attribute, so a truncated attribute header or padding cut off by the end
    # always shows up as a length that is not a multiple of 4 (or a value past
    # the end); either way a DecodeError.
    row("attribute-header-truncated", stun(b"\x80\x22", length=2), parse, D),
    row("attribute-value-past-end", stun(b"\x80\x22\x00\x08abcd"), parse, D),
    row("attribute-value-0xffff", stun(b"\x80\x22\xff\xffabcd"), parse, D),
    row("second-attribute-past-end", stun(attr(A.SOFTWARE, b"a") + b"\x00\x06\x00\x05"), parse, D),
    row("padding-past-end", stun(b"\x80\x22\x00\x05abcde"), parse, D),
    # --- FINGERPRINT
    row(
        "fingerprint-not-last",
        stun(attr(A.FINGERPRINT, bytes(4)) + attr(A.SOFTWARE, b"x")),
        parse,
        D,
    ),
    row("fingerprint-twice", stun(attr(A.FINGERPRINT, bytes(4)) * 2), parse, D),
    *(framing(f"fingerprint-length-{n}", A.FINGERPRINT, bytes(n)) for n in (0, 3, 5, 8)),
    row("fingerprint-wrong-crc", flip(VALID, len(VALID) - 1), check_fingerprint, F),
    row("fingerprint-over-changed-body", flip(VALID, 24), check_fingerprint, F),
    row("fingerprint-absent", stun(attr(A.SOFTWARE, b"x")), check_fingerprint, F),
    # --- MESSAGE-INTEGRITY(-SHA256)
    *(
        framing(f"message-integrity-length-{n}", A.MESSAGE_INTEGRITY, bytes(n))
        for n in (0, 16, 19, 21, 32)
    ),
    *(
        framing(f"mi-sha256-length-{n}", A.MESSAGE_INTEGRITY_SHA256, bytes(n))
        for n in (0, 12, 15, 18, 33, 36)
    ),
    row("message-integrity-wrong-mac", flip(VALID, len(VALID) - 9), check_integrity, I),
    row("message-integrity-over-changed-body", flip(VALID, 24), check_integrity, I),
    row("message-integrity-absent", stun(attr(A.SOFTWARE, b"x")), check_integrity, I),
    row("mi-sha256-absent", VALID, check_integrity_sha256, I),
    row(
        "mi-sha256-wrong-mac",
        stun(attr(A.MESSAGE_INTEGRITY_SHA256, bytes(32))),
        check_integrity_sha256,
        I,
    ),
    # --- addresses
    *(
        bad(
            f"address-family-{family}",
            A.XOR_MAPPED_ADDRESS,
            bytes([0, family, 0, 0]) + bytes(4),
            XMA,
        )
        for family in (0, 3, 0xFF)
    ),
    bad("ipv4-with-ipv6-length", A.XOR_MAPPED_ADDRESS, b"\x00\x01" + bytes(18), XMA),
    bad("ipv6-with-ipv4-length", A.XOR_MAPPED_ADDRESS, b"\x00\x02" + bytes(6), XMA),
    bad("ipv4-truncated", A.XOR_MAPPED_ADDRESS, b"\x00\x01" + bytes(4), XMA),
    bad("ipv6-truncated", A.XOR_MAPPED_ADDRESS, b"\x00\x02" + bytes(17), XMA),
    bad("address-2-bytes", A.XOR_MAPPED_ADDRESS, b"\x00\x01", XMA),
    bad("address-empty", A.XOR_MAPPED_ADDRESS, b"", XMA),
    bad("mapped-address-family-3", A.MAPPED_ADDRESS, b"\x00\x03" + bytes(6), ice.MappedAddress),
    bad("xor-peer-address-truncated", A.XOR_PEER_ADDRESS, b"\x00\x01\x00", ice.XorPeerAddress),
    # --- ERROR-CODE
    bad("error-code-class-2", A.ERROR_CODE, b"\x00\x00\x02\x00", ice.ErrorCodeAttribute),
    bad("error-code-class-7", A.ERROR_CODE, b"\x00\x00\x07\x00", ice.ErrorCodeAttribute),
    bad("error-code-number-100", A.ERROR_CODE, b"\x00\x00\x04\x64", ice.ErrorCodeAttribute),
    bad("error-code-number-255", A.ERROR_CODE, b"\x00\x00\x04\xff", ice.ErrorCodeAttribute),
    bad("error-code-3-bytes", A.ERROR_CODE, b"\x00\x00\x04", ice.ErrorCodeAttribute),
    bad("error-code-empty", A.ERROR_CODE, b"", ice.ErrorCodeAttribute),
    bad(
        "error-code-reason-not-utf8",
        A.ERROR_CODE,
        b"\x00\x00\x04\x01\xff\xfe",
        ice.ErrorCodeAttribute,
    ),
    bad(
        "address-error-code-class-2",
        A.ADDRESS_ERROR_CODE,
        b"\x01\x00\x02\x00",
        ice.AddressErrorCode,
    ),
    # --- fixed-size values
    bad("unknown-attributes-odd-3", A.UNKNOWN_ATTRIBUTES, b"\x00\x01\x00", ice.UnknownAttributes),
    bad("unknown-attributes-odd-1", A.UNKNOWN_ATTRIBUTES, b"\x00", ice.UnknownAttributes),
    bad("channel-number-0x3fff", A.CHANNEL_NUMBER, b"\x3f\xff\x00\x00", ice.ChannelNumber),
    bad("channel-number-0x5000", A.CHANNEL_NUMBER, b"\x50\x00\x00\x00", ice.ChannelNumber),
    bad("channel-number-2-bytes", A.CHANNEL_NUMBER, b"\x40\x00", ice.ChannelNumber),
    bad("lifetime-3-bytes", A.LIFETIME, bytes(3), ice.Lifetime),
    bad("lifetime-8-bytes", A.LIFETIME, bytes(8), ice.Lifetime),
    bad("priority-2-bytes", A.PRIORITY, bytes(2), ice.Priority),
    bad("ice-controlling-4-bytes", A.ICE_CONTROLLING, bytes(4), ice.IceControlling),
    bad("userhash-31-bytes", A.USERHASH, bytes(31), ice.UserHash),
    bad("userhash-33-bytes", A.USERHASH, bytes(33), ice.UserHash),
    bad("reservation-token-7-bytes", A.RESERVATION_TOKEN, bytes(7), ice.ReservationToken),
    bad("even-port-2-bytes", A.EVEN_PORT, b"\x80\x00", ice.EvenPort),
    bad("even-port-empty", A.EVEN_PORT, b"", ice.EvenPort),
    bad("use-candidate-with-value", A.USE_CANDIDATE, b"\x01", ice.UseCandidate),
    bad("dont-fragment-with-value", A.DONT_FRAGMENT, bytes(4), ice.DontFragment),
    bad("requested-transport-1-byte", A.REQUESTED_TRANSPORT, b"\x11", ice.RequestedTransport),
    bad(
        "requested-family-3",
        A.REQUESTED_ADDRESS_FAMILY,
        b"\x03\x00\x00\x00",
        ice.RequestedAddressFamily,
    ),
    bad("icmp-4-bytes", A.ICMP, bytes(4), ice.Icmp),
    # --- text
    bad("username-513-bytes", A.USERNAME, b"u" * 513, ice.Username),
    bad("realm-764-bytes", A.REALM, b"r" * 764, ice.Realm),
    bad("software-not-utf8", A.SOFTWARE, b"ok \xff\xfe", ice.Software, value),
    bad("username-truncated-utf8", A.USERNAME, "\u30de".encode()[:2], ice.Username, value),
    # --- password algorithms
    bad(
        "password-algorithms-truncated-entry",
        A.PASSWORD_ALGORITHMS,
        b"\x00\x02",
        ice.PasswordAlgorithms,
    ),
    bad(
        "password-algorithms-params-past-end",
        A.PASSWORD_ALGORITHMS,
        b"\x00\x02\x00\x08abcd",
        ice.PasswordAlgorithms,
    ),
    bad(
        "password-algorithms-unpadded-params",
        A.PASSWORD_ALGORITHMS,
        b"\x00\x02\x00\x01a",
        ice.PasswordAlgorithms,
    ),
    bad(
        "password-algorithm-length-mismatch",
        A.PASSWORD_ALGORITHM,
        b"\x00\x02\x00\x04",
        ice.PasswordAlgorithm,
    ),
    bad("password-algorithm-2-bytes", A.PASSWORD_ALGORITHM, b"\x00\x02", ice.PasswordAlgorithm),
    # --- ChannelData
    row("channel-data-empty", b"", channel_data(False), D),
    row("channel-data-3-bytes", b"\x40\x00\x00", channel_data(False), D),
    row("channel-data-number-0x3fff", b"\x3f\xff\x00\x01x", channel_data(False), D),
    row("channel-data-number-0x5000", b"\x50\x00\x00\x01x", channel_data(False), D),
    row("channel-data-stun-bytes", VALID, channel_data(False), D),
    row("channel-data-length-past-end", b"\x40\x00\x00\x05abcd", channel_data(False), D),
    row("channel-data-udp-4-trailing", b"\x40\x00\x00\x01x" + bytes(7), channel_data(False), D),
    row("channel-data-stream-unpadded", b"\x40\x00\x00\x01x", channel_data(True), D),
    row("channel-data-stream-overlong", b"\x40\x00\x00\x01x" + bytes(7), channel_data(True), D),
    row("stream-frame-rtp", b"\x80\x00\x00\x00", stream_frame, D),
    row("stream-frame-dtls", b"\x16\xfe\xfd\x00", stream_frame, D),
]


def _assert_still_decodes(msg: Message) -> None:
    msg.parse(VALID)
    assert bytes(msg) == VALID
    assert msg.attributes == VALID_ATTRIBUTES
    assert ice.XorMappedAddress.get_from(msg) == ice.XorMappedAddress("192.0.2.1", 32853)
    msg.check_integrity(KEY)
    msg.check_fingerprint()
    assert ice.decode_channel_data(b"\x40\x01\x00\x02ok") == (0x4001, b"ok")


@pytest.mark.parametrize(("data", "action", "expected"), ROWS)
def test_malformed(data: bytes, action: Action, expected: type[Exception]) -> None:
    msg = Message.decode(VALID)  # the object the row decodes into already holds a message

    with pytest.raises(Exception) as caught:
        action(msg, data)

    assert type(caught.value) is expected, repr(caught.value)
    assert isinstance(caught.value, ice.Error)
    if expected is ice.DecodeError:
        assert isinstance(caught.value, ValueError)
    _assert_still_decodes(msg)


# What each refusal of the message structure says: the numbers a person
# debugging a peer needs, formatted by the codec's C refusal helper.
STRUCTURE_MESSAGES = [
    (b"\x00\x01\x00", "3 bytes is shorter than the 20-byte STUN header"),
    (b"\xc0" + VALID[1:], "the two most significant bits of a STUN message must be zero"),
    (
        VALID[:4] + b"\x00\x00\x00\x00" + VALID[8:],
        "no magic cookie: not an RFC 5389/8489 STUN message",
    ),
    (stun(b"", length=6), "message length 6 is not a multiple of 4"),
    (stun(b"", length=8), "header announces 8 bytes of attributes but 0 follow it"),
    (
        stun(struct.pack(">HH", 0xBEEF, 9) + bytes(8)),
        "attribute 0xbeef at offset 20 claims 9 bytes, past the end of the message",
    ),
    (
        stun(struct.pack(">HH", 0x0001, 0xFFFF)),
        "attribute 0x0001 at offset 20 claims 65535 bytes, past the end of the message",
    ),
    (
        stun(attr(0x8028, bytes(4)) + attr(0x8022, b"late")),
        "FINGERPRINT must be the last attribute",
    ),
    (stun(attr(0x8028, bytes(8))), "FINGERPRINT is 4 bytes, not 8"),
    (stun(attr(0x0008, bytes(16))), "MESSAGE-INTEGRITY is 20 bytes, not 16"),
    (
        stun(attr(0x001C, bytes(12))),
        "MESSAGE-INTEGRITY-SHA256 is 16 to 32 bytes in steps of 4, not 12",
    ),
]


@pytest.mark.parametrize(("data", "text"), STRUCTURE_MESSAGES)
def test_a_structure_refusal_says_what_and_where(data: bytes, text: str) -> None:
    with pytest.raises(ice.DecodeError) as caught:
        Message.decode(data)
    assert str(caught.value) == text
    assert caught.value.args == (text,)


def test_a_refused_datagram_leaves_no_codec_frame_in_the_traceback() -> None:
    # Message.decode refuses in C, returning the error rather than raising it
    # through Cython, which records a frame in every function it passes
    # (four, and most of the cost of a refusal, before): the caller's frame
    # is the only one.
    for data in (b"\x00\x01\x00", stun(b"", length=8), stun(attr(0x8028, bytes(8)))):
        with pytest.raises(ice.DecodeError) as caught:
            Message.decode(data)
        frames = traceback.extract_tb(caught.value.__traceback__)
        assert [frame.name for frame in frames] == [
            "test_a_refused_datagram_leaves_no_codec_frame_in_the_traceback"
        ]


def test_a_failed_check_leaves_no_codec_frame_in_the_traceback() -> None:
    # The checks a server runs on every request are C methods that return
    # their refusal: a flood of wrong keys or fingerprints costs no frames.
    wrong_fingerprint = bytearray(VALID)
    wrong_fingerprint[-1] ^= 1
    bare = Message.decode(bytes(Message.build(1, ice.Software("x"))))
    checks: list[tuple[Callable[[], object], type[Exception]]] = [
        (lambda: Message.decode(VALID).check_integrity(b"wrong key"), ice.IntegrityError),
        (lambda: bare.check_integrity(KEY), ice.IntegrityError),
        (lambda: bare.check_integrity_sha256(KEY), ice.IntegrityError),
        (
            lambda: Message.decode(bytes(wrong_fingerprint)).check_fingerprint(),
            ice.FingerprintError,
        ),
        (lambda: bare.check_fingerprint(), ice.FingerprintError),
        (lambda: Message().parse(VALID[:-1]), ice.DecodeError),
    ]
    for check, expected in checks:
        with pytest.raises(expected) as caught:
            check()
        frames = traceback.extract_tb(caught.value.__traceback__)
        assert [frame.name for frame in frames] == [
            "test_a_failed_check_leaves_no_codec_frame_in_the_traceback",
            "<lambda>",
        ]


def _refused_by_get_from(cls: type, attr_type: int, value: bytes) -> ice.DecodeError:
    msg = Message(ice.BINDING_REQUEST)
    msg.add(attr_type, value)
    with pytest.raises(ice.DecodeError) as caught:
        cls.get_from(msg)  # type: ignore[attr-defined]
    return caught.value


@pytest.mark.parametrize(
    ("cls", "attr_type", "value", "text"),
    [
        (
            ice.Username,
            AttrType.USERNAME,
            b"ok \xff\xfe",
            "Username is not valid UTF-8: invalid start byte at byte 3 of 5",
        ),
        (
            ice.Realm,
            AttrType.REALM,
            "r\u00e9alm".encode()[:2],
            "Realm is not valid UTF-8: unexpected end of data at byte 1 of 2",
        ),
        (
            ice.ErrorCodeAttribute,
            AttrType.ERROR_CODE,
            b"\x00\x00\x04\x01Bad \xc3\x28",
            "ErrorCodeAttribute is not valid UTF-8: invalid continuation byte at byte 4 of 6",
        ),
        (
            ice.XorMappedAddress,
            AttrType.XOR_MAPPED_ADDRESS,
            b"\x00\x07\x00\x01\x00\x00\x00\x01",
            "address family 0x07 is neither IPv4 (1) nor IPv6 (2)",
        ),
        (
            ice.MappedAddress,
            AttrType.MAPPED_ADDRESS,
            b"\x00\x01\x00\x01\x00\x00",
            "IPv4 address attribute is 8 bytes, not 6",
        ),
        (
            ice.XorPeerAddress,
            AttrType.XOR_PEER_ADDRESS,
            b"\x00\x02",
            "address attribute 0x0012 is 2 bytes",
        ),
    ],
)
def test_a_get_from_refusal_is_raised_once_and_leaves_one_frame(
    cls: type, attr_type: int, value: bytes, text: str
) -> None:
    # A server reads USERNAME, REALM and NONCE from any request that carries
    # MESSAGE-INTEGRITY. Text that is not UTF-8 used to make two
    # UnicodeDecodeErrors and three frames on its way out (~7x a plain raise),
    # and a bad address two frames: now the refusal is set once, below
    # get_from, and get_from's own frame is the only one.
    error = _refused_by_get_from(cls, attr_type, value)
    frames = traceback.extract_tb(error.__traceback__)
    names = [frame.name for frame in frames]
    assert len(names) == 2 and names[0] == "_refused_by_get_from", names
    assert names[1].endswith(".get_from"), names  # e.g. TextAttribute.get_from
    assert error.__context__ is None and error.__cause__ is None
    assert str(error) == text


@pytest.mark.parametrize(
    "value",
    [
        b"\xff",
        b"ok \xff\xfe",
        b"\x80abc",
        b"ab\xc3",  # truncated 2-byte sequence
        b"\xe3\x83",  # truncated 3-byte sequence
        b"\xc3\x28",
        b"\xc0\x80",  # overlong NUL
        b"\xe0\x80\x80",  # overlong
        b"\xed\xa0\x80",  # a surrogate, U+D800
        b"\xed\xb2\x80",  # U+DC80, what surrogateescape would make of 0x80
        b"\xf0\x80\x80\x80",  # overlong
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b"\xf5\x80\x80\x80",
        b"caf\xc3\xa9 \xe2\x82",  # valid, then truncated
    ],
)
def test_text_that_is_not_utf8_is_refused_with_cpythons_reason_and_offset(value: bytes) -> None:
    # Validity is decided without a UnicodeDecodeError; the message still
    # says what CPython's strict decoder would, and where.
    with pytest.raises(UnicodeDecodeError) as strict:
        value.decode("utf-8")
    error = _refused_by_get_from(ice.Username, AttrType.USERNAME, value)
    assert str(error) == (
        f"Username is not valid UTF-8: {strict.value.reason} "
        f"at byte {strict.value.start} of {len(value)}"
    )


@given(st.binary(max_size=64))
def test_text_decodes_exactly_when_cpython_decodes_it_strictly(value: bytes) -> None:
    msg = Message(ice.BINDING_REQUEST)
    msg.add(AttrType.NONCE, value)  # NONCE keeps any bytes; .value is strict
    msg.add(AttrType.USERNAME, value)  # USERNAME refuses what is not UTF-8
    nonce = ice.Nonce.get_from(msg)
    assert nonce is not None and nonce.raw == value
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as strict:
        reason = f"{strict.reason} at byte {strict.start} of {len(value)}"
        with pytest.raises(ice.DecodeError, match=f"Nonce is not valid UTF-8: {reason}$"):
            nonce.value  # noqa: B018 - the property raises
        with pytest.raises(ice.DecodeError, match=f"Username is not valid UTF-8: {reason}$"):
            ice.Username.get_from(msg)
    else:
        assert nonce.value == text
        username = ice.Username.get_from(msg)
        assert username is not None and username.value == text


@pytest.mark.parametrize(
    ("data", "kwargs", "text"),
    [
        (b"\x40\x01\x00", {}, "3 bytes is shorter than the 4-byte ChannelData header"),
        (b"\x3f\xff\x00\x00", {}, "channel number 0x3fff is outside 0x4000-0x4FFF"),
        (b"\x50\x00\x00\x00", {}, "channel number 0x5000 is outside 0x4000-0x4FFF"),
        (b"\x80\x00\x00\x00", {"rfc5766": True}, "channel number 0x8000 is outside 0x4000-0x7FFF"),
        (b"\x40\x01\x00\x09abcd", {}, "ChannelData announces 9 bytes but carries 4"),
        (
            b"\x40\x01\x00\x01ab",
            {"stream": True},
            "a stream ChannelData frame of 1 bytes is 8 bytes long, not 6",
        ),
        (b"\x40\x01\x00\x01a" + bytes(7), {}, "7 bytes trail a 1-byte ChannelData payload"),
    ],
)
def test_a_channel_data_refusal_says_what_and_leaves_no_codec_frame(
    data: bytes, kwargs: dict[str, bool], text: str
) -> None:
    with pytest.raises(ice.DecodeError) as caught:
        ice.decode_channel_data(data, **kwargs)
    assert str(caught.value) == text
    frames = traceback.extract_tb(caught.value.__traceback__)
    assert [frame.name for frame in frames] == [
        "test_a_channel_data_refusal_says_what_and_leaves_no_codec_frame"
    ]


def test_decode_channel_data_takes_its_arguments_as_before() -> None:
    frame = b"\x50\x01\x00\x02ok\x00\x00"
    assert ice.decode_channel_data(frame, True, True) == (0x5001, b"ok")
    assert ice.decode_channel_data(data=frame, stream=1, rfc5766=[1]) == (0x5001, b"ok")
    assert ice.decode_channel_data(memoryview(frame), rfc5766=True) == (0x5001, b"ok")
    assert (
        ice.decode_channel_data(b"\x40\x01\x00\x00")[0]
        is ice.decode_channel_data(b"\x40\x01\x00\x01x")[0]
    )  # the channel's int is made once
    for args, kwargs, text in [
        ((), {}, "missing required argument 'data'"),
        ((frame, True, True, True), {}, "takes at most 3 arguments"),
        ((frame,), {"data": frame}, "multiple values for argument 'data'"),
        ((frame,), {"padded": True}, "unexpected keyword argument"),
        ((5,), {}, "takes a bytes-like object, not int"),
    ]:
        with pytest.raises(TypeError, match=text):
            ice.decode_channel_data(*args, **kwargs)


def test_decode_refuses_what_is_not_a_buffer_and_passes_buffer_errors_on() -> None:
    with pytest.raises(TypeError, match=r"^Message\.decode takes a bytes-like object, not int$"):
        Message.decode(5)  # type: ignore[arg-type]
    with pytest.raises(BufferError):
        Message.decode(memoryview(VALID)[::2])
    with pytest.raises(TypeError, match="exactly one positional argument"):
        Message.decode(VALID, VALID)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="exactly one positional argument"):
        Message.decode(data=VALID)  # type: ignore[call-arg]
    assert (
        Message.decode(bytearray(VALID))
        == Message.decode(memoryview(VALID))
        == Message.decode(VALID)
    )


def test_parse_into_a_viewed_message_cannot_grow_it() -> None:
    msg = Message()
    view = memoryview(msg)
    long_message = stun(attr(0x8022, b"x" * 600))  # past the inline buffer
    with pytest.raises(BufferError, match="memoryview of it is alive"):
        msg.parse(long_message)
    assert len(msg) == 20 and msg.length == 0  # refused: left header-only
    view.release()
    msg.parse(long_message)
    assert bytes(msg) == long_message


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(ice.DecodeError, ValueError)
    assert issubclass(ice.DecodeError, ice.Error)
    assert not issubclass(ice.IntegrityError, ValueError)
    assert not issubclass(ice.FingerprintError, ValueError)


def test_every_truncation_is_a_decode_error() -> None:
    msg = Message()
    for n in range(len(VALID)):
        with pytest.raises(ice.DecodeError):
            msg.parse(VALID[:n])
    _assert_still_decodes(msg)


def test_every_wrong_length_field_is_a_decode_error() -> None:
    msg = Message()
    right = len(VALID) - 20
    for length in [*range(0, 0x200), 0xFFFC, 0xFFFF]:
        data = VALID[:2] + struct.pack(">H", length) + VALID[4:]
        if length == right:
            msg.parse(data)
        else:
            with pytest.raises(ice.DecodeError):
                msg.parse(data)
    _assert_still_decodes(msg)


def _read_everything(msg: Message) -> None:
    """Look at every attribute through every typed class, as a server might."""
    for cls in BY_TYPE.values():
        try:
            found = cls.get_from(msg)
            if isinstance(found, ice.TextAttribute):
                _ = found.value
        except ice.DecodeError:
            pass
    _ = msg.unknown_attributes
    for check in (msg.check_fingerprint, lambda: msg.check_integrity(KEY)):
        with contextlib.suppress(ice.FingerprintError, ice.IntegrityError):
            check()


@pytest.mark.parametrize("seed", range(4))
def test_mutated_messages_raise_only_decode_errors(seed: int) -> None:
    # Deterministic mutations of a valid message (bytes flipped, cut, or
    # attribute lengths rewritten): decoding and reading any attribute either
    # works or raises ice.DecodeError, never anything else.
    rng = random.Random(seed)
    base = bytes(
        Message.build(
            ice.ALLOCATE_REQUEST,
            ice.RequestedTransport(),
            ice.Lifetime(600),
            ice.ErrorCodeAttribute(438),
            ice.UnknownAttributes([0x7FFF]),
            ice.ChannelNumber(0x4001),
            ice.XorPeerAddress("2001:db8::1", 3478),
            ice.PasswordAlgorithms(),
            ice.EvenPort(reserve=True),
            ice.Nonce("n"),
            ice.MessageIntegrity(KEY),
            ice.Fingerprint(),
            transaction_id=TID,
        )
    )
    msg = Message()
    for _ in range(500):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            index = rng.randrange(20, len(data))
            data[index] = rng.randrange(256)
        if rng.random() < 0.2:
            del data[rng.randrange(len(data)) :]
        try:
            msg.parse(bytes(data))
        except ice.DecodeError:
            continue
        _read_everything(msg)
    _assert_still_decodes(msg)
