"""StunServer in its three modes (plain, RFC 5780, authenticated) against hostile senders.

    python fuzz/fuzz_stun_server.py -atheris_runs=1000000

The input's first byte picks the mode, the rest is records (see `_runner.records`):
each a datagram, and a control byte that picks the sender (IPv4/IPv6, the one
the nonce was issued to or another), the local address it arrived on, the
transport, and whether to re-sign it with valid long-term credentials (so it
gets past authentication). Contract, per datagram: nothing escapes and
nothing is logged at ERROR (the catch-all swallowing an exception is a
finding); answers go only to the sender (its IP, the RESPONSE-PORT in RFC
5780 mode) from a listening address; an unauthenticated answer is no bigger
than the request but for what the RFCs require (`_stun.check_answers`).
"""

from __future__ import annotations

import _runner
from _runner import LogWatch, Recipe, encode_records, instrument_func, main, records

with _runner.instrument_imports():
    from ice._codec import Message
    from ice.attrs import (
        ChangeRequest,
        Padding,
        ResponsePort,
        Software,
        Username,
    )
    from ice.constants import BINDING_REQUEST
    from ice.machine import Address
    from ice.stun.client_auth import LongTermCredentials
    from ice.stun.server import StunServer
    from ice.stun.server_auth import LongTermAuthenticator

import _stun

NOW = 1000.0
PRIMARY: Address = ("192.0.2.1", 3478)
ALTERNATE: Address = ("192.0.2.2", 3479)
SENDERS: tuple[Address, ...] = (("198.51.100.7", 40000), ("2001:db8::7", 40001),
                                ("198.51.100.8", 1), ("::ffff:198.51.100.7", 40000))  # fmt: skip
AUTHENTICATOR = LongTermAuthenticator(
    "fuzz.test", {"alice": "secret"}, secret=b"s" * 32, nonce_lifetime=1e9
)
WATCH = LogWatch()


def _servers() -> list[StunServer]:
    return [
        StunServer(primary=PRIMARY),
        StunServer(primary=PRIMARY, alternate=ALTERNATE),
        StunServer(primary=PRIMARY, authenticator=AUTHENTICATOR),
    ]


def _credentials() -> dict[Address, LongTermCredentials]:
    """Credentials that have met each sender's challenge (nonces are stateless)."""
    out = {}
    for sender in SENDERS:
        server = StunServer(primary=PRIMARY, authenticator=AUTHENTICATOR)
        server.receive_datagram(Message.build(BINDING_REQUEST).raw, sender, NOW)
        challenge = Message.decode(server.datagrams_to_send(NOW)[0].data)
        credentials = LongTermCredentials("alice", "secret")
        if not credentials.on_error(challenge):
            raise RuntimeError("the challenge was not accepted")
        out[sender] = credentials
    return out


CREDENTIALS = _credentials()


@instrument_func
def test_one_input(data: bytes) -> None:
    recipe = Recipe(data)
    mode = recipe.ConsumeIntInRange(0, 2)
    server = _servers()[mode]
    locals_ = server.local_addresses
    for control, datagram in records(data[recipe.offset :]):
        sender = SENDERS[control & 3]
        local = locals_[(control >> 2) % len(locals_)]
        reliable = bool(control & 0x10)
        if mode == 2 and control & 0x20:
            datagram = _stun.sign(datagram, CREDENTIALS[sender], fingerprint=bool(control & 0x40))
        server.receive_datagram(datagram, sender, NOW, local=local, reliable=reliable)
        out = server.datagrams_to_send(NOW)
        WATCH.check()
        _stun.check_answers(
            out, sender, locals_, len(datagram), response_port=server.alternate is not None
        )
        if len(out) > 1:
            raise _runner.Finding(f"{len(out)} answers to one datagram")


def seeds() -> list[bytes]:
    plain = Message.build(BINDING_REQUEST)
    padded = Message.build(BINDING_REQUEST, Padding(bytes(64)), Software("fuzz"))
    padded.add_fingerprint()
    change = Message.build(BINDING_REQUEST, ChangeRequest(True, True), ResponsePort(40002))
    unknown = Message.build(BINDING_REQUEST, Username("alice"))
    unknown.add(0x0033, b"\x00" * 4)  # comprehension-required, unknown
    legacy = bytearray(plain.raw)
    legacy[4:8] = b"\x01\x02\x03\x04"
    legacy_change = Message.build(BINDING_REQUEST, ChangeRequest(False, True)).raw
    legacy_change = legacy_change[:4] + b"\x05\x06\x07\x08" + legacy_change[8:]
    other_method = Message(0x0003)  # an Allocate to a STUN-only server
    messages = [plain.raw, padded.raw, change.raw, unknown.raw, bytes(legacy), legacy_change,
                other_method.raw, Message.build(0x0011).raw]  # fmt: skip
    out = []
    for mode in range(3):
        for control in (0x00, 0x21, 0x61, 0x14, 0x06):
            out.append(bytes([mode]) + encode_records((control, m) for m in messages[:3]))
        for message in messages:
            out.append(bytes([mode]) + encode_records([(0x20, message), (0x01, message)]))
    return out


if __name__ == "__main__":
    main(test_one_input, seeds)
