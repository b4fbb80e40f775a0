"""Stream framing: RFC 4571 (ICE-TCP) and STUN/ChannelData over TCP (TURN, RFC 8656 10.1).

    python fuzz/fuzz_stream.py -atheris_runs=1000000

The input's records are framed into one byte stream (control bit 0: as a
STUN message, as ChannelData, or as the raw bytes), which is then cut into
chunks at points the input picks. Contract: `stream_frame_length` raises
only `ice.DecodeError` and returns None or a length of at least 4 that
covers its header; reading the stream chunk by chunk (the way the TCP
listeners of ice.aio.stun_server do) yields exactly the frames of reading
it whole; `FrameReader` (RFC 4571) likewise, with nothing lost or invented.
"""

from __future__ import annotations

import _runner
from _runner import Finding, Recipe, encode_records, instrument_func, main, records

with _runner.instrument_imports():
    from ice._codec import Message, encode_channel_data, stream_frame_length
    from ice._errors import DecodeError
    from ice.agent.tcp import FrameReader, frame
    from ice.constants import BINDING_REQUEST


def _frames(chunks: list[bytes], rfc5766: bool) -> tuple[list[bytes], bool]:
    """Frames out of ``chunks``, the way a TCP listener reads them; True if it closed."""
    buffer = b""
    out = []
    for chunk in chunks:
        buffer += chunk
        while buffer:
            try:
                length = stream_frame_length(buffer[:4], rfc5766)
            except DecodeError:
                return out, True
            if length is not None and length < 4:
                raise Finding(f"frame length {length} for {buffer[:4].hex()}")
            if length is None or length > len(buffer):
                break
            out.append(buffer[:length])
            buffer = buffer[length:]
    return out, False


@instrument_func
def test_one_input(data: bytes) -> None:
    parts = records(data)
    stream = b""
    payloads = []
    for control, payload in parts:
        if control & 3 == 0:
            stream += payload
        elif control & 3 == 1:
            stream += Message.build(BINDING_REQUEST).raw[:2] + payload
        else:
            number = 0x4000 + (control >> 2) * 0x101
            stream += encode_channel_data(number, payload[:4096], True, True)
        payloads.append(payload)
    recipe = Recipe(data[-8:])
    cuts = sorted({recipe.ConsumeIntInRange(0, len(stream)) for _ in range(4)})
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    for rfc5766 in (False, True):
        whole = _frames([stream], rfc5766)
        pieces = _frames(chunks, rfc5766)
        if whole != pieces:
            raise Finding(f"read whole: {whole}; read in chunks {chunks}: {pieces}")
    reader = FrameReader()
    got = [f for chunk in chunks for f in reader.feed(chunk)]
    once = FrameReader()
    if got != once.feed(stream) or reader.pending != once.pending:
        raise Finding("RFC 4571 frames differ when read in chunks")
    if sum(2 + len(f) for f in got) + reader.pending != len(stream):
        raise Finding("RFC 4571 framing lost or invented bytes")
    framed = b"".join(frame(p) for p in payloads)
    if FrameReader().feed(framed) != payloads:
        raise Finding("RFC 4571 frames do not read back")


def seeds() -> list[bytes]:
    request = Message.build(BINDING_REQUEST).raw
    channel = encode_channel_data(0x4001, b"abc", True)
    return [
        encode_records([(0, request), (2, b"hello"), (0, channel)]) + bytes(range(8)),
        encode_records([(1, request[2:]), (6, b"x" * 100), (0, b"\x00\x05hello")]) + b"\xff" * 8,
    ]


if __name__ == "__main__":
    main(test_one_input, seeds)
