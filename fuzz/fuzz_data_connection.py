"""TurnDataConnection (RFC 6062 data connections) against a hostile server stream.

    python fuzz/fuzz_data_connection.py -atheris_runs=1000000

The connection sends ConnectionBind; each record of the input is a chunk the
server writes on the stream (control bit 0 puts a STUN answer on the
ConnectionBind's transaction ID, bit 1 signs it with the challenge's key,
bits 6-7 move the clock). Contract: nothing escapes ``receive_stream``
nothing is
logged at ERROR, the binding ends in exactly one Bound or BindFailed, and
once bound every byte after the answer is handed back as the peer's, in order.
"""

from __future__ import annotations

import _runner
from _runner import Finding, LogWatch, encode_records, instrument_func, main, records

with _runner.instrument_imports():
    from ice._codec import Message
    from ice.attrs import ConnectionId, ErrorCodeAttribute
    from ice.constants import MessageClass, Method, message_type
    from ice.turn.data_connection import TurnDataConnection
    from ice.turn.events import BindFailed, Bound

import _client
import _stun

NOW = 1000.0
WATCH = LogWatch()
BIND = message_type(Method.CONNECTION_BIND, MessageClass.REQUEST)
SIGNER = _client.server_credentials("alice", "secret", Message.build(BIND).raw)


@instrument_func
def test_one_input(data: bytes) -> None:
    credentials = _client.server_credentials("alice", "secret", Message.build(BIND).raw)
    connection = TurnDataConnection(_client.SERVER, credentials, 7, software=None)
    now = NOW
    connection.bind(now)
    tid = b""
    events = []
    peer_bytes = b""
    sent_after = b""
    for control, chunk in records(data):
        now += (0.0, 0.5, 5.0, 60.0)[control >> 6]
        timer = connection.get_timer()
        if timer is not None and timer <= now:
            connection.handle_timer(now)
        for transmit in connection.datagrams_to_send(now):
            tid = transmit.data[8:20]
        if tid and control & 1:
            chunk = _stun.with_tid(chunk, tid)
        if control & 2:
            chunk = _stun.sign(chunk, SIGNER, tid=chunk[8:20] if len(chunk) >= 20 else None)
        was_bound = connection.state == "bound"
        peer_bytes += connection.receive_stream(chunk, now)
        if was_bound:
            sent_after += chunk
        WATCH.check()
        while (event := connection.next_event()) is not None:
            events.append(event)
        if connection.state == "bound" and not was_bound:
            sent_after = b""  # what followed the answer in this chunk is already in peer_bytes
    for _ in range(50):
        timer = connection.get_timer()
        if timer is None:
            break
        now = max(now, timer)
        connection.handle_timer(now)
        connection.datagrams_to_send(now)
    while (event := connection.next_event()) is not None:
        events.append(event)
    WATCH.check()
    ended = [e for e in events if isinstance(e, Bound | BindFailed)]
    if len(ended) != 1:
        raise Finding(f"ConnectionBind ended in {events}")
    if isinstance(ended[0], Bound) and not peer_bytes.endswith(sent_after):
        raise Finding("bytes after the answer were not all handed back")


def seeds() -> list[bytes]:
    request = Message.build(BIND, ConnectionId(7)).raw
    success = Message(BIND | 0x0100).raw
    failure = Message.build(BIND | 0x0110, ErrorCodeAttribute(400, "Bad Request")).raw
    stale = _client.challenge(request, 438).raw
    return [
        encode_records([(0x03, success + b"peer bytes"), (0x00, b"more")]),
        encode_records([(0x01, stale), (0x03, success[:10]), (0x00, success[10:])]),
        encode_records([(0x03, failure), (0x00, b"x")]),
        encode_records([(0x00, b"\xffnot stun")]),
        encode_records([(0xC0, b"")]),
    ]


if __name__ == "__main__":
    main(test_one_input, seeds)
