"""atheris fuzz target: untrusted bytes through everything a receiver does with them.

    python fuzz/fuzz_decode.py -atheris_runs=200000      # atheris, or --random without it

Each input is used three ways: as raw bytes, as the body of a well-formed
header, and as a recipe (`_runner.Recipe`) for a message of framed
attributes with plausible types and sizes, optionally sealed with a
MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT computed here
with hmac/zlib. Without native coverage feedback the last two are what get
random bytes past Message.decode and into every get_from.

A crash is any exception other than ice.DecodeError (structure),
ice.IntegrityError or ice.FingerprintError (checks), or anything that kills
the process. Besides not crashing, the target asserts:
- decode(msg.raw) == msg, raw is the input, and Message().parse agrees;
- every attribute that decodes re-encodes to an equal attribute;
- seals computed independently here verify, and fail with another key.

The compiled modules are not coverage-instrumented unless built so (see
fuzz/README.md); the Python layers of ice and the functions here are, so
the fuzzer is at least told when an input decodes, which attributes in it
decode, and which checks pass.
"""

from __future__ import annotations

import hmac
import struct
import zlib
from contextlib import suppress

import _runner
from _runner import Recipe, instrument_func

with _runner.instrument_imports():
    import ice
    from ice import attrs

EXPECTED = (ice.DecodeError, ice.IntegrityError, ice.FingerprintError)
KEY = b"fuzz-key"
INTEGRITY_KEY = ice.IntegrityKey(KEY)
COOKIE = b"\x21\x12\xa4\x42"
SEALS = (0x0008, 0x001C, 0x8028)
KNOWN_TYPES = sorted(attrs.BY_TYPE)
#: value sizes the attribute classes care about
SIZES = (0, 1, 2, 3, 4, 5, 7, 8, 12, 16, 20, 24, 32, 36, 255, 256, 512, 513, 763, 764, 767, 768)
NON_SEAL_CLASSES = [cls for t, cls in sorted(attrs.BY_TYPE.items()) if t not in SEALS]


def with_valid_header(body: bytes) -> bytes:
    """body framed by a well-formed header, so random bytes reach attribute parsing."""
    body = body[:0xFFFC]
    body += bytes(-len(body) % 4)
    return b"\x00\x01" + len(body).to_bytes(2, "big") + COOKIE + bytes(12) + body


def header(msg_type: int, body_length: int, tid: bytes) -> bytes:
    return struct.pack(">HH", msg_type, body_length) + COOKIE + tid


@instrument_func
def structured(data: bytes) -> tuple[bytes, tuple[str, ...], bool]:
    """A message built from the input as a recipe, the seals added at its end,
    and whether the rest is well-formed with no seal of its own."""
    fdp = Recipe(data)
    msg_type = fdp.ConsumeIntInRange(0, 0x3FFF)
    tid = fdp.ConsumeBytes(12).ljust(12, b"\x00")
    body = b""
    clean = True
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        if fdp.ConsumeBool():
            attr_type = KNOWN_TYPES[fdp.ConsumeIntInRange(0, len(KNOWN_TYPES) - 1)]
        else:
            attr_type = fdp.ConsumeIntInRange(0, 0xFFFF)
        if fdp.ConsumeBool():
            size = SIZES[fdp.ConsumeIntInRange(0, len(SIZES) - 1)]
        else:
            size = fdp.ConsumeIntInRange(0, 64)
        value = fdp.ConsumeBytes(size).ljust(size, b"\x01")
        length = len(value)
        if fdp.ConsumeProbability() < 0.05:  # lie about the length now and then
            length = fdp.ConsumeIntInRange(0, 0xFFFF)
        clean = clean and length == len(value) and attr_type not in SEALS
        padding = bytes(-len(value) % 4)
        if padding and fdp.ConsumeBool():
            padding = fdp.ConsumeBytes(len(padding)).ljust(len(padding), b"\xff")
        body += struct.pack(">HH", attr_type, length) + value + padding
    seals = []
    if fdp.ConsumeBool():
        body = _seal(msg_type, tid, body, 0x0008, "sha1", 20)
        seals.append("sha1")
    if fdp.ConsumeBool():
        length = 16 + 4 * fdp.ConsumeIntInRange(0, 4)
        body = _seal(msg_type, tid, body, 0x001C, "sha256", length)
        seals.append("sha256")
    if fdp.ConsumeBool():
        crc = zlib.crc32(header(msg_type, len(body) + 8, tid) + body) ^ 0x5354554E
        body += struct.pack(">HHI", 0x8028, 4, crc)
        seals.append("fingerprint")
    return header(msg_type, len(body), tid) + body, tuple(seals), clean


def _seal(msg_type: int, tid: bytes, body: bytes, attr_type: int, alg: str, length: int) -> bytes:
    signed = header(msg_type, len(body) + 4 + length, tid) + body
    return body + struct.pack(">HH", attr_type, length) + hmac.digest(KEY, signed, alg)[:length]


@instrument_func
def check_well_formed(data: bytes, seals: tuple[str, ...]) -> None:
    """A well-formed message decodes, and seals computed here verify."""
    msg = ice.Message.decode(data)
    sealed = [t for t, _ in msg.attributes if t in SEALS]
    named = {"sha1": 0x0008, "sha256": 0x001C, "fingerprint": 0x8028}
    if sealed != [named[s] for s in seals]:
        raise AssertionError(f"seals {seals} decoded as {sealed}")
    if "sha1" in seals:
        msg.check_integrity(KEY)
        msg.check_integrity(INTEGRITY_KEY)
        with suppress(ice.IntegrityError):
            msg.check_integrity(b"another key")
            raise AssertionError("MESSAGE-INTEGRITY verified with the wrong key")
    if "sha256" in seals:
        msg.check_integrity_sha256(KEY)
        with suppress(ice.IntegrityError):
            msg.check_integrity_sha256(b"another key")
            raise AssertionError("MESSAGE-INTEGRITY-SHA256 verified with the wrong key")
    if "fingerprint" in seals:
        msg.check_fingerprint()


@instrument_func
def exercise(data: bytes) -> None:
    for stream in (False, True):
        with suppress(ice.DecodeError):
            number, payload = ice.decode_channel_data(data, stream=stream)
            if not 0x4000 <= number <= 0x4FFF or data[4 : 4 + len(payload)] != payload:
                raise AssertionError("ChannelData decoded to something it does not carry")
    with suppress(ice.DecodeError):
        ice.stream_frame_length(data)
    ice.classify(data)
    ice.is_stun(data)
    ice.is_channel_data(data)
    reused = ice.Message()
    try:
        msg = ice.Message.decode(data)
    except ice.DecodeError:
        with suppress(ice.DecodeError):
            reused.parse(data)
            raise AssertionError("parse accepted what decode refused") from None
        return
    reused.parse(data)
    if reused != msg or msg.raw != data or ice.Message.decode(msg.raw) != msg:
        raise AssertionError("decode(raw) differs from the message it came from")
    repr(msg)
    msg.unknown_attributes  # noqa: B018 - exercised for crashes
    msg.attributes  # noqa: B018
    for cls in attrs.BY_TYPE.values():
        with suppress(*EXPECTED):
            cls.get_from(msg)  # type: ignore[attr-defined]
    for cls in NON_SEAL_CLASSES:
        try:
            found = cls.get_from(msg)  # type: ignore[attr-defined]
        except ice.DecodeError:
            continue
        if found is None:
            continue
        for name in dir(found):
            if not name.startswith("_"):
                with suppress(ice.DecodeError):
                    getattr(found, name)
        repr(found)
        rebuilt = ice.Message.build(msg.type, found, transaction_id=msg.transaction_id)
        if cls.get_from(ice.Message.decode(rebuilt.raw)) != found:  # type: ignore[attr-defined]
            raise AssertionError(f"{cls.__name__} does not re-encode to itself: {found!r}")
    with suppress(ice.FingerprintError):
        msg.check_fingerprint()
    with suppress(ice.IntegrityError):
        msg.check_integrity(INTEGRITY_KEY)
    with suppress(ice.IntegrityError):
        msg.check_integrity_sha256(INTEGRITY_KEY)
    if msg.raw != data:
        raise AssertionError("a check left the length field patched")


@instrument_func
def test_one_input(data: bytes) -> None:
    exercise(data)
    exercise(with_valid_header(data))
    built, seals, clean = structured(data)
    exercise(built)
    if clean:
        check_well_formed(built, seals)


def seeds() -> list[bytes]:
    """Messages the package builds: every attribute class's seed value, sealed."""
    xor = ice.XorMappedAddress("192.0.2.1", 3478)
    out = []
    for extra in (
        (),
        (xor, ice.Software("fuzz")),
        (ice.Username("alice"), ice.Realm("ice.test"), ice.Nonce("abc"), ice.Lifetime(600)),
        (ice.XorPeerAddress("2001:db8::1", 9), ice.Data(b"payload"), ice.ChannelNumber(0x4001)),
        (ice.ErrorCodeAttribute(401, "Unauthenticated"), ice.UnknownAttributes([0x33, 0x34])),
        (ice.PasswordAlgorithms(), ice.RequestedTransport(17), ice.ChangeRequest(True, False)),
    ):
        message = ice.Message.build(ice.BINDING_REQUEST, *extra)
        out.append(message.raw)
        message.add_integrity(INTEGRITY_KEY)
        message.add_fingerprint()
        out.append(message.raw)
    out.append(ice.encode_channel_data(0x4001, b"channel data", True))
    return out


if __name__ == "__main__":
    _runner.main(test_one_input, seeds)
