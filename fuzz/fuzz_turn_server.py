"""TurnServer against hostile clients and peers (UDP and TCP 5-tuples, TCP allocations).

    python fuzz/fuzz_turn_server.py -atheris_runs=1000000

Each input starts from a fresh server with a UDP allocation for CLIENT (IPv4
and IPv6 relays) and a permission for PEER, then feeds its records (see
`_runner.records`); a record's control byte picks who sends it (the client, a
second client, a TCP 5-tuple, or a peer writing to a relayed address),
whether it is re-signed with valid credentials, and how far the clock moves
first (so lifetimes, permissions and channels expire under it).

Contract, per record: nothing escapes or is logged at ERROR; a datagram
leaving a relayed address goes to a peer the `PeerPolicy` permits; one
leaving a listening address goes to the sender (an answer) or to an
allocation's client (relayed data); unauthenticated answers stay within the
amplification limit of `ice.stun.server`; every allocation's relays are
relay addresses the server handed out.
"""

from __future__ import annotations

import random

import _runner
from _runner import Finding, LogWatch, encode_records, instrument_func, main, records

with _runner.instrument_imports():
    from ice._codec import Message, encode_channel_data
    from ice.attrs import (
        ChannelNumber,
        ConnectionId,
        Data,
        EvenPort,
        Lifetime,
        RequestedAddressFamily,
        RequestedTransport,
        XorPeerAddress,
    )
    from ice.constants import (
        ALLOCATE_REQUEST,
        BINDING_REQUEST,
        CHANNEL_BIND_REQUEST,
        CREATE_PERMISSION_REQUEST,
        REFRESH_REQUEST,
        SEND_INDICATION,
        MessageClass,
        Method,
        message_type,
    )
    from ice.machine import Address
    from ice.stun.client_auth import LongTermCredentials
    from ice.stun.server_auth import LongTermAuthenticator
    from ice.turn.policy import PeerPolicy
    from ice.turn.ports import MemoryRelaySockets
    from ice.turn.server import TurnLimits, TurnServer

import _stun

NOW = 1000.0
SERVER: Address = ("198.51.100.1", 3478)
SERVER6: Address = ("2001:db8::1", 3478)
LISTENERS = (SERVER, SERVER6)
CLIENT: Address = ("192.0.2.10", 40000)
SENDERS: tuple[Address, ...] = (CLIENT, ("192.0.2.11", 40001), ("2001:db8:2::1", 40002),
                                ("192.0.2.10", 40003))  # fmt: skip
PEER: Address = ("203.0.113.7", 6000)
PEERS: tuple[Address, ...] = (PEER, ("2001:db8:1::7", 6001), ("127.0.0.1", 6002),
                              ("10.0.0.1", 6003), ("169.254.169.254", 80),
                              ("::ffff:127.0.0.1", 6004), ("203.0.113.8", 6005))  # fmt: skip
POLICY = PeerPolicy()
AUTHENTICATOR = LongTermAuthenticator(
    "fuzz.test", {"alice": "secret", "bob": "hunter2"}, secret=b"s" * 32, nonce_lifetime=1e9
)
LIMITS = TurnLimits(max_permissions=8, max_channels=8, max_peer_connections=4, user_quota=4)
WATCH = LogWatch()
CONNECT = message_type(Method.CONNECT, MessageClass.REQUEST)
CONNECTION_BIND = message_type(Method.CONNECTION_BIND, MessageClass.REQUEST)


def _server() -> TurnServer:
    return TurnServer(
        authenticator=AUTHENTICATOR,
        sockets=MemoryRelaySockets(),
        relay_ips=(SERVER[0], SERVER6[0]),
        relay_ports=(50000, 50063),
        policy=POLICY,
        limits=LIMITS,
        rng=random.Random(7),
    )


def _credentials(sender: Address, user: str, password: str) -> LongTermCredentials:
    server = _server()
    server.receive_datagram(Message.build(ALLOCATE_REQUEST).raw, sender, NOW, local=SERVER)
    challenge = Message.decode(server.datagrams_to_send(NOW)[0].data)
    credentials = LongTermCredentials(user, password)
    if not credentials.on_error(challenge):
        raise RuntimeError("the challenge was not accepted")
    return credentials


#: Signing credentials by sender; the second user signs for the odd control bytes.
CREDENTIALS = {s: (_credentials(s, "alice", "secret"), _credentials(s, "bob", "hunter2"))
               for s in SENDERS}  # fmt: skip


def _allocate_request(*extra: object) -> bytes:
    return Message.build(ALLOCATE_REQUEST, RequestedTransport(17), *extra).raw  # type: ignore[arg-type]


def _prepared() -> TurnServer:
    """A server with CLIENT's UDP allocation and a permission for PEER."""
    server = _server()
    alice = CREDENTIALS[CLIENT][0]
    allocate = _allocate_request()
    server.receive_datagram(_stun.sign(allocate, alice), CLIENT, NOW, local=SERVER)
    permission = Message.build(CREATE_PERMISSION_REQUEST, XorPeerAddress(*PEER)).raw
    server.receive_datagram(_stun.sign(permission, alice), CLIENT, NOW, local=SERVER)
    server.datagrams_to_send(NOW)
    if server.allocation_count != 1:
        raise RuntimeError("the prepared allocation failed")
    return server


@instrument_func
def test_one_input(data: bytes) -> None:
    server = _prepared()
    now = NOW
    relays = {a for alloc in server.allocations() for a in alloc.relays.values()}
    for control, datagram in records(data):
        now += (0.0, 1.0, 60.0, 400.0)[control >> 6]
        timer = server.get_timer()
        if timer is not None and timer <= now:
            server.handle_timer(now)
        who = control & 7
        reliable = bool(control & 0x08)
        if who == 7:  # a peer writing to a relayed address
            relay = sorted(relays)[(control >> 4) % len(relays)] if relays else SERVER
            server.receive_from_peer(datagram, PEERS[(control >> 3) % len(PEERS)], relay, now)
            sender = None
            size = 0
        else:
            sender = SENDERS[who % len(SENDERS)]
            local = LISTENERS[1] if ":" in sender[0] else LISTENERS[0]
            if control & 0x10:
                user = CREDENTIALS[sender][(control >> 5) & 1]
                datagram = _stun.sign(datagram, user, fingerprint=bool(control & 0x20))
            server.receive_datagram(datagram, sender, now, local=local, reliable=reliable)
            size = len(datagram)
        WATCH.check()
        clients = {alloc.client for alloc in server.allocations()}
        for allocation in server.allocations():
            relays.update(allocation.relays.values())
        while server.next_effect() is not None:
            pass
        for transmit in server.datagrams_to_send(now):
            if transmit.source in LISTENERS or transmit.source is None:
                if transmit.addr == sender:
                    _stun.check_unauthenticated_answer(transmit.data, size)
                elif transmit.addr not in clients:
                    raise Finding(f"{transmit.data[:4].hex()}... went to {transmit.addr}")
            else:
                if transmit.source not in relays:
                    raise Finding(f"a datagram left from {transmit.source}, not a relay")
                if not POLICY.permits(transmit.addr[0]):
                    raise Finding(f"relayed to {transmit.addr}, which the policy forbids")


def seeds() -> list[bytes]:
    peer = XorPeerAddress(*PEER)
    messages = [
        _allocate_request(),
        _allocate_request(Lifetime(3600), EvenPort(True)),
        _allocate_request(RequestedAddressFamily(2)),
        Message.build(ALLOCATE_REQUEST, RequestedTransport(6)).raw,
        Message.build(REFRESH_REQUEST, Lifetime(0)).raw,
        Message.build(REFRESH_REQUEST, Lifetime(600)).raw,
        Message.build(CREATE_PERMISSION_REQUEST, peer, XorPeerAddress(*PEERS[6])).raw,
        Message.build(CHANNEL_BIND_REQUEST, ChannelNumber(0x4001), peer).raw,
        Message.build(SEND_INDICATION, peer, Data(b"hello")).raw,
        encode_channel_data(0x4001, b"data over a channel"),
        Message.build(BINDING_REQUEST).raw,
        Message.build(CONNECT, peer).raw,
        Message.build(CONNECTION_BIND, ConnectionId(1)).raw,
    ]
    for bad in PEERS[2:6]:
        messages.append(Message.build(CREATE_PERMISSION_REQUEST, XorPeerAddress(*bad)).raw)
        messages.append(Message.build(SEND_INDICATION, XorPeerAddress(*bad), Data(b"x")).raw)
    out = [encode_records([(0x10, m), (0x00, m)]) for m in messages]
    bind = (0x10, messages[7])
    out.append(encode_records([bind, (0x00, messages[9]), (0x07, b"from the peer"), (0x0F, b"x")]))
    out.append(encode_records([(0x10, messages[8]), (0x47, b"later"), (0xD0, messages[5])]))
    out.append(encode_records([(0x18, messages[3]), (0x18, messages[11]), (0x18, messages[12])]))
    out.append(encode_records([(0x11, messages[0]), (0x31, messages[6]), (0x01, messages[8])]))
    return out


if __name__ == "__main__":
    main(test_one_input, seeds)
