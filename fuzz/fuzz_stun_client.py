"""StunClient (with long-term credentials) against a hostile server.

    python fuzz/fuzz_stun_client.py -atheris_runs=1000000

The client sends one or two Binding requests; each record of the input is an
answer (see `_client`): control bit 0 puts it on the outstanding request's
transaction ID, bit 1 signs it with the key of the challenge, bit 2 sends it
from another address, bits 6-7 move the clock. Then the clock runs until
the client has no timer. Contract: nothing escapes ``receive_datagram``,
nothing is logged at ERROR, and every
request ends in exactly one event.
"""

from __future__ import annotations

import _runner
from _runner import Finding, LogWatch, encode_records, instrument_func, main, records

with _runner.instrument_imports():
    from ice._codec import Message
    from ice.attrs import ErrorCodeAttribute, Software, XorMappedAddress
    from ice.constants import BINDING_REQUEST, BINDING_SUCCESS
    from ice.stun.client import StunClient
    from ice.stun.client_auth import LongTermCredentials

import _client
import _stun

NOW = 1000.0
WATCH = LogWatch()
SIGNER = _client.server_credentials("alice", "secret", Message.build(BINDING_REQUEST).raw)


@instrument_func
def test_one_input(data: bytes) -> None:
    client = StunClient(credentials=LongTermCredentials("alice", "secret"))
    now = NOW
    tids = [client.request(Message.build(BINDING_REQUEST), _client.SERVER, now)]
    if data[:1] == b"\x02":
        tids.append(client.request(Message.build(BINDING_REQUEST), _client.SERVER, now))
    events = []
    wire = []
    for control, answer in records(data[1:]):
        now += (0.0, 0.3, 2.0, 30.0)[control >> 6]
        timer = client.get_timer()
        if timer is not None and timer <= now:
            client.handle_timer(now)
        wire += [Message.decode(t.data).transaction_id for t in client.datagrams_to_send(now)]
        if wire and control & 1:
            answer = _stun.with_tid(answer, wire[(control >> 3) % len(wire)])
        if control & 2:
            answer = _stun.sign(answer, SIGNER, tid=answer[8:20] if len(answer) >= 20 else None)
        source = _client.OTHER if control & 4 else _client.SERVER
        client.receive_datagram(answer, source, now)  # nothing may escape
        WATCH.check()
        while (event := client.next_event()) is not None:
            events.append(event)
    for _ in range(100):
        timer = client.get_timer()
        if timer is None:
            break
        now = max(now, timer)
        client.handle_timer(now)
        client.datagrams_to_send(now)
        while (event := client.next_event()) is not None:
            events.append(event)
    else:
        raise Finding("the client's timer never stops")
    WATCH.check()
    ended = [e.transaction_id for e in events]
    if sorted(ended) != sorted(tids):
        raise Finding(f"requests {[t.hex() for t in tids]} ended as {events}")


def seeds() -> list[bytes]:
    request = Message.build(BINDING_REQUEST).raw
    challenge = _client.challenge(request).raw
    stale = _client.challenge(request, 438).raw
    success = Message.build(BINDING_SUCCESS, XorMappedAddress("192.0.2.10", 40000)).raw
    failure = Message.build(0x0111, ErrorCodeAttribute(400, "Bad Request"), Software("x")).raw
    out = []
    for first in (b"\x01", b"\x02"):
        out.append(first + encode_records([(0x01, challenge), (0x03, success), (0x0B, success)]))
        out.append(first + encode_records([(0x01, stale), (0x01, challenge), (0x03, failure)]))
        out.append(first + encode_records([(0x01, success), (0x41, challenge), (0x05, success)]))
        out.append(first + encode_records([(0xC0, success)]))
    return out


if __name__ == "__main__":
    main(test_one_input, seeds)
