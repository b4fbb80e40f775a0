"""atheris fuzz target: untrusted bytes through everything a receiver does with them.

    python fuzz/fuzz_decode.py -atheris_runs=200000

Any exception other than ice.DecodeError (structure), ice.IntegrityError or
ice.FingerprintError (checks) is a crash; so is anything that kills the
process. The compiled modules are not coverage-instrumented unless built so
(see fuzz/README.md); the Python layers are.
"""

from __future__ import annotations

import sys
from contextlib import suppress

import atheris

with atheris.instrument_imports():
    import ice
    from ice import attrs

EXPECTED = (ice.DecodeError, ice.IntegrityError, ice.FingerprintError)
KEY = ice.IntegrityKey(b"fuzz-key")


def with_valid_header(body: bytes) -> bytes:
    """body framed by a well-formed header, so random bytes reach attribute parsing.

    Without coverage feedback from the compiled codec, random inputs almost
    never carry the magic cookie and a length that matches.
    """
    body = body[: 0xFFFC - (0xFFFC % 4)]
    body += bytes(-len(body) % 4)
    return b"\x00\x01" + len(body).to_bytes(2, "big") + b"\x21\x12\xa4\x42" + bytes(12) + body


def test_one_input(data: bytes) -> None:
    exercise(data)
    exercise(with_valid_header(data))


def exercise(data: bytes) -> None:
    for stream in (False, True):
        with suppress(ice.DecodeError):
            ice.decode_channel_data(data, stream=stream)
    with suppress(ice.DecodeError):
        ice.stream_frame_length(data)
    ice.classify(data)
    try:
        msg = ice.Message.decode(data)
    except ice.DecodeError:
        return
    msg.unknown_attributes  # noqa: B018 - exercised for crashes
    msg.attributes  # noqa: B018
    for cls in attrs.BY_TYPE.values():
        with suppress(*EXPECTED):
            found = cls.get_from(msg)  # type: ignore[attr-defined]
            repr(found)
            getattr(found, "value", None)
    with suppress(ice.FingerprintError):
        msg.check_fingerprint()
    with suppress(ice.IntegrityError):
        msg.check_integrity(KEY)
    with suppress(ice.IntegrityError):
        msg.check_integrity_sha256(KEY)
    again = ice.Message.decode(msg.raw)
    if again != msg:
        raise AssertionError("decode(raw) differs from the message it came from")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
