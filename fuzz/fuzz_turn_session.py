"""TurnSession (the TURN client machine) against a hostile server.

    python fuzz/fuzz_turn_session.py -atheris_runs=1000000

The session allocates; each record of the input is what the server sends
(see `_client`): control bit 0 puts a STUN message on an outstanding
request's transaction ID, bit 1 signs it with the challenge's key, bit 2
sends it from another address, bits 3-4 first make the session ask for
something (a permission, a channel, a send), bits 6-7 move the clock. Then
the clock runs for ten virtual minutes. Contract: nothing escapes
``receive_datagram``, nothing is logged
at ERROR, the session asks nothing of other addresses than the server, and
an allocation that never succeeds ends in AllocationFailed, not silence.
"""

from __future__ import annotations

import _runner
from _runner import Finding, LogWatch, encode_records, instrument_func, main, records

with _runner.instrument_imports():
    from ice._codec import Message, encode_channel_data
    from ice._errors import Error
    from ice.attrs import (
        AlternateServer,
        Data,
        ErrorCodeAttribute,
        Lifetime,
        XorMappedAddress,
        XorPeerAddress,
        XorRelayedAddress,
    )
    from ice.constants import (
        ALLOCATE_REQUEST,
        CHANNEL_BIND_REQUEST,
        CREATE_PERMISSION_REQUEST,
        DATA_INDICATION,
        REFRESH_REQUEST,
    )
    from ice.stun.client_auth import LongTermCredentials
    from ice.turn.client import TurnSession
    from ice.turn.events import Allocated, AllocationFailed

import _client
import _stun

NOW = 1000.0
PEER = ("203.0.113.7", 6000)
WATCH = LogWatch()
SIGNER = _client.server_credentials("alice", "secret", Message.build(ALLOCATE_REQUEST).raw)


def _success(request_type: int, *attributes: object) -> bytes:
    return Message.build(request_type | 0x0100, *attributes).raw  # type: ignore[arg-type]


@instrument_func
def test_one_input(data: bytes) -> None:
    session = TurnSession(_client.SERVER, LongTermCredentials("alice", "secret"))
    now = NOW
    session.allocate(now)
    wire: list[bytes] = []
    events = []
    for control, answer in records(data):
        now += (0.0, 0.5, 30.0, 300.0)[control >> 6]
        timer = session.get_timer()
        if timer is not None and timer <= now:
            session.handle_timer(now)
        action = (control >> 3) & 3
        if action and session.state == "allocated":
            try:
                if action == 1:
                    session.create_permission([PEER], now)
                elif action == 2:
                    session.bind_channel(PEER, now)
                else:
                    session.send(b"payload", PEER, now)
            except Error:
                pass  # documented: e.g. no channel number left
        for transmit in session.datagrams_to_send(now):
            if transmit.addr != session.server and transmit.addr not in session._redirects:
                raise Finding(f"the session sent to {transmit.addr}, not its server")
            if transmit.data[:1] in (b"\x00", b"\x01"):
                wire.append(transmit.data[8:20])
        if wire and control & 1:
            answer = _stun.with_tid(answer, wire[-1 - (control >> 5 & 1) % len(wire)])
        if control & 2:
            answer = _stun.sign(answer, SIGNER, tid=answer[8:20] if len(answer) >= 20 else None)
        source = _client.OTHER if control & 4 else session.server
        session.receive_datagram(answer, source, now)  # nothing may escape
        WATCH.check()
        while (event := session.next_event()) is not None:
            events.append(event)
    end = now + 600.0
    for _ in range(500):
        timer = session.get_timer()
        if timer is None or timer > end:
            break
        now = max(now, timer)
        session.handle_timer(now)
        session.datagrams_to_send(now)
        while (event := session.next_event()) is not None:
            events.append(event)
    WATCH.check()
    if not any(isinstance(e, Allocated | AllocationFailed) for e in events):
        raise Finding(f"allocate() ended in neither Allocated nor AllocationFailed: {events}")


def seeds() -> list[bytes]:
    allocate = Message.build(ALLOCATE_REQUEST).raw
    challenge = _client.challenge(allocate).raw
    allocated = _success(
        ALLOCATE_REQUEST,
        XorRelayedAddress("198.51.100.1", 50000),
        XorMappedAddress("192.0.2.10", 40000),
        Lifetime(600),
    )
    redirect = Message.build(
        ALLOCATE_REQUEST | 0x0110,
        ErrorCodeAttribute(300, "Try Alternate"),
        AlternateServer("198.51.100.2", 3478),
    ).raw
    refused = Message.build(ALLOCATE_REQUEST | 0x0110, ErrorCodeAttribute(486, "Quota")).raw
    permitted = _success(CREATE_PERMISSION_REQUEST)
    bound = _success(CHANNEL_BIND_REQUEST)
    refreshed = _success(REFRESH_REQUEST, Lifetime(600))
    indication = Message.build(DATA_INDICATION, XorPeerAddress(*PEER), Data(b"hi")).raw
    channel = encode_channel_data(0x4000, b"over a channel")
    ok = [(0x01, challenge), (0x03, allocated)]
    return [
        encode_records(ok),
        encode_records([*ok, (0x0B, permitted), (0x13, bound), (0x00, channel)]),
        encode_records([*ok, (0x1B, b""), (0x00, indication), (0x83, refreshed)]),
        encode_records([(0x01, challenge), (0x03, redirect), (0x01, challenge)]),
        encode_records([(0x01, challenge), (0x03, refused)]),
        encode_records([(0x03, allocated), (0xC1, challenge)]),
    ]


if __name__ == "__main__":
    main(test_one_input, seeds)
