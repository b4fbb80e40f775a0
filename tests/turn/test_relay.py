"""The compiled relay pump is a twin of the TURN server core's data path.

Each case builds the same allocations twice (same requests, same seed, same
clock), then gives one batch of datagrams to the core alone and, on the
twin, to the pump first and what the pump hands back to the core. What
goes out (per source socket, in order) and every counter must be the same.
The core-alone reference takes the datagrams the pump relayed first, as
the runner sends the pump's queues before the core's answers; the rest
keep their order. No sockets, virtual time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ice import Message
from ice._codec import encode_channel_data
from ice.attrs import (
    AdditionalAddressFamily,
    ChannelNumber,
    Data,
    Lifetime,
    RequestedTransport,
    XorPeerAddress,
)
from ice.constants import (
    ALLOCATE_REQUEST,
    BINDING_REQUEST,
    CHANNEL_BIND_REQUEST,
    CREATE_PERMISSION_REQUEST,
    DATA_INDICATION,
    REFRESH_REQUEST,
    SEND_INDICATION,
)
from ice.machine import Address, Transmit
from ice.stun.transaction import TransactionSucceeded
from ice.turn._relay import RelayPump
from ice.turn.allocation import Allocation, AllocationTable
from ice.turn.server import TurnLimits, TurnServer
from tests.support.turn_harness import CLIENT, PEER, PEER6, SERVER, Client, TurnNet, at

UDP = 17
PEER_B: Address = ("203.0.113.8", 6001)
PEER_C: Address = ("203.0.113.9", 6002)  # a permission, no channel: Send/Data indications
PEER_D: Address = ("203.0.113.10", 6003)  # no permission at all
PEER_PORT: Address = (PEER[0], 7000)  # PEER's IP, so permitted, but no channel
CLIENT_B = at(1)  # a dual-stack allocation, a channel to an IPv6 peer
CLIENT_T = at(2)  # an allocation over TCP: never the pump's
STRANGER = at(3)  # no allocation
UNKNOWN_RELAY: Address = ("198.51.100.1", 1)
MAGIC_COOKIE = b"\x21\x12\xa4\x42"
DATA_INDICATION_TYPE = DATA_INDICATION.to_bytes(2, "big")

Datagram = tuple[bytes, Address]


# -- the world: the same allocations, built twice


def _request(net: TurnNet, client: Client, message: Message) -> Message:
    event = net.request(client, message)
    assert isinstance(event, TransactionSucceeded), event
    return event.response


def _allocate(net: TurnNet, client: Client, *attrs: object) -> list[Address]:
    message = Message.build(ALLOCATE_REQUEST, RequestedTransport(UDP))
    for attr in attrs:
        attr.add_to(message)  # type: ignore[attr-defined]
    _request(net, client, message)
    allocation = net.server.allocation_for(client.addr, SERVER, client.reliable)
    return list(allocation.relays.values())


def _bind(net: TurnNet, client: Client, number: int, peer: Address) -> None:
    message = Message.build(CHANNEL_BIND_REQUEST, ChannelNumber(number), XorPeerAddress(*peer))
    _request(net, client, message)


def _permit(net: TurnNet, client: Client, peer: Address) -> None:
    _request(net, client, Message.build(CREATE_PERMISSION_REQUEST, XorPeerAddress(*peer)))


@dataclass
class World:
    net: TurnNet
    relays: dict[str, list[Address]]

    @property
    def server(self) -> TurnServer:
        return self.net.server

    def allocation(self, client: Address, reliable: bool = False) -> Allocation:
        return self.server.allocation_for(client, SERVER, reliable)


def world(*, bandwidth: int = 0, rfc5766: bool = True) -> World:
    """Client A (CLIENT): channels 0x4000 -> PEER (refreshed at 200 s) and 0x4001 ->
    PEER_B, a permission for PEER_C, a 1200 s lifetime; client B: dual stack, channel
    0x4000 -> PEER6 (refreshed at 400 s), 600 s; client T over TCP: channel 0x4000 -> PEER.

    Deadlines: 300 s PEER_B's and PEER_C's permissions, 500 s PEER's, 600 s A's channel
    0x4001 and B's allocation, 700 s PEER6's permission, 800 s A's channel 0x4000,
    1000 s B's channel, 1400 s A's allocation."""
    limits = TurnLimits(bandwidth=bandwidth) if bandwidth else None
    net = TurnNet(limits=limits, rfc5766_channels=rfc5766)
    a, b = net.raw(CLIENT), net.raw(CLIENT_B, "bob")
    t = net.raw(CLIENT_T, reliable=True)
    relays = {
        "a": _allocate(net, a, Lifetime(1200)),
        "b": _allocate(net, b, AdditionalAddressFamily(2)),
        "t": _allocate(net, t),
    }
    _bind(net, a, 0x4000, PEER)
    _bind(net, a, 0x4001, PEER_B)
    _permit(net, a, PEER_C)
    _bind(net, b, 0x4000, PEER6)
    _bind(net, t, 0x4000, PEER)
    net.now = 200.0
    _bind(net, a, 0x4000, PEER)
    net.now = 400.0
    _bind(net, b, 0x4000, PEER6)
    net.server.datagrams_to_send(net.now)
    return World(net, relays)


# -- one batch through both


def _by_source(transmits: Sequence[Transmit]) -> dict[Address | None, list[Datagram]]:
    out: dict[Address | None, list[Datagram]] = defaultdict(list)
    for transmit in transmits:
        out[transmit.source].append((_without_id(transmit.data), transmit.addr))
    return dict(out)


def _without_id(data: bytes) -> bytes:
    """A Data indication's transaction ID is random: blank it (nothing signs one)."""
    if len(data) >= 20 and data[4:8] == MAGIC_COOKIE and data[:2] == DATA_INDICATION_TYPE:
        return data[:8] + bytes(12) + data[20:]
    return data


def _state(w: World) -> tuple[object, ...]:
    """Every counter of the server and of each allocation, and each budget."""
    allocations = sorted(
        (
            repr(a.five_tuple),
            a.packets_to_peers,
            a.bytes_to_peers,
            a.packets_to_client,
            a.bytes_to_client,
            a.bucket.level if a.bucket is not None else None,
        )
        for a in w.server.allocations()
    )
    return (w.server.counters(), allocations)


@dataclass
class Outcome:
    pump: RelayPump
    rest: list[Datagram]
    twin: World  # pump, then core
    core: World  # core alone


def _start(now: float, timer: bool, bandwidth: int, rfc5766: bool) -> tuple[World, World]:
    core, twin = (
        world(bandwidth=bandwidth, rfc5766=rfc5766),
        world(bandwidth=bandwidth, rfc5766=rfc5766),
    )
    for w in (core, twin):
        w.net.now = now
        if timer:
            w.server.handle_timer(now)
            w.server.datagrams_to_send(now)
    return core, twin


def _split(batch: list[Datagram], rest: list[Datagram]) -> list[Datagram]:
    """The datagrams the pump relayed; `rest` must be the others, in order."""
    handed_back = {id(item) for item in rest}
    assert rest == [item for item in batch if id(item) in handed_back]
    return [item for item in batch if id(item) not in handed_back]


def from_clients(
    batch: list[Datagram],
    now: float,
    *,
    timer: bool = False,
    bandwidth: int = 0,
    rfc5766: bool = True,
) -> Outcome:
    core, twin = _start(now, timer, bandwidth, rfc5766)
    pump = RelayPump(twin.server.allocation_table, rfc5766_channels=rfc5766)
    rest = pump.from_clients(batch, SERVER, now)
    for data, addr in rest:
        twin.server.receive_datagram(data, addr, now, local=SERVER)
    pumped = [
        Transmit(payload, peer, relay)
        for relay, items in pump.to_peers.items()
        for payload, peer in items
    ]
    for data, addr in _split(batch, rest) + rest:
        core.server.receive_datagram(data, addr, now, local=SERVER)
    _compare(pumped, twin, core, now)
    return Outcome(pump, rest, twin, core)


def from_peers(
    batch: list[Datagram],
    relay: Address,
    now: float,
    *,
    timer: bool = False,
    bandwidth: int = 0,
    rfc5766: bool = True,
) -> Outcome:
    core, twin = _start(now, timer, bandwidth, rfc5766)
    pump = RelayPump(twin.server.allocation_table, rfc5766_channels=rfc5766)
    rest = pump.from_peers(batch, relay, now)
    for data, peer in rest:
        twin.server.receive_from_peer(data, peer, relay, now)
    pumped = [
        Transmit(frame, client, local)
        for local, items in pump.to_clients.items()
        for frame, client in items
    ]
    for data, peer in _split(batch, rest) + rest:
        core.server.receive_from_peer(data, peer, relay, now)
    _compare(pumped, twin, core, now)
    return Outcome(pump, rest, twin, core)


def _compare(pumped: list[Transmit], twin: World, core: World, now: float) -> None:
    assert _by_source(pumped + twin.server.datagrams_to_send(now)) == _by_source(
        core.server.datagrams_to_send(now)
    )
    assert _state(twin) == _state(core)


# -- datagrams


def channel_data(number: int, payload: bytes, framing: str = "exact") -> bytes:
    """ChannelData as a client might send it: exact, padded to 4, or broken."""
    frame = number.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload
    if framing == "padded":
        return frame + b"\x00" * (-len(payload) % 4)
    if framing == "overpadded":  # more than RFC 8656's 3 bytes of padding
        return frame + b"\x00" * (-len(payload) % 4 + 4)
    if framing == "short":  # announces more than it carries
        return number.to_bytes(2, "big") + (len(payload) + 1).to_bytes(2, "big") + payload
    return frame


def send_indication(peer: Address, payload: bytes) -> bytes:
    return Message.build(SEND_INDICATION, XorPeerAddress(*peer), Data(payload)).raw


def payload(tag: int, size: int) -> bytes:
    """``size`` bytes that say which datagram they are (so order shows)."""
    return (b"%d:" % tag + b"x" * size)[:size]


# -- the data path's cases, one by one


def test_the_pump_takes_the_table_not_the_server() -> None:
    w = world()
    with pytest.raises(TypeError):
        RelayPump(w.server)  # type: ignore[arg-type]
    assert isinstance(w.server.allocation_table, AllocationTable)


def test_channel_data_from_a_client_is_relayed_by_the_pump() -> None:
    batch = [(channel_data(0x4000, payload(i, 100)), CLIENT) for i in range(3)]
    batch.append((channel_data(0x4001, payload(3, 7), "padded"), CLIENT))
    outcome = from_clients(batch, 10.0)
    assert outcome.rest == [] and outcome.pump.forwarded == 4
    relay = outcome.twin.relays["a"][0]
    assert outcome.pump.to_peers == {
        relay: [(payload(i, 100), PEER) for i in range(3)] + [(payload(3, 7), PEER_B)]
    }
    allocation = outcome.twin.allocation(CLIENT)
    assert (allocation.packets_to_peers, allocation.bytes_to_peers) == (4, 307)


def test_peer_data_on_a_channel_is_wrapped_by_the_pump() -> None:
    w = world()
    batch = [(payload(0, 5), PEER), (payload(1, 0), PEER), (payload(2, 3), PEER_B)]
    outcome = from_peers(batch, w.relays["a"][0], 10.0)
    assert outcome.rest == [] and outcome.pump.forwarded == 3
    assert outcome.pump.to_clients == {
        SERVER: [
            (encode_channel_data(0x4000, payload(0, 5)), CLIENT),
            (encode_channel_data(0x4000, b""), CLIENT),
            (encode_channel_data(0x4001, payload(2, 3)), CLIENT),
        ]
    }


def test_an_ipv6_peer_goes_through_the_pump_both_ways() -> None:
    w = world()
    there = from_clients([(channel_data(0x4000, b"to six"), CLIENT_B)], 10.0)
    assert there.pump.to_peers == {w.relays["b"][1]: [(b"to six", PEER6)]}
    back = from_peers([(b"from six", PEER6)], w.relays["b"][1], 10.0)
    assert back.pump.to_clients == {SERVER: [(encode_channel_data(0x4000, b"from six"), CLIENT_B)]}


@pytest.mark.parametrize(
    ("datagram", "now", "timer", "dropped"),
    [
        pytest.param(channel_data(0x4002, b"x"), 10.0, False, "no-channel", id="unknown channel"),
        pytest.param(channel_data(0x4001, b"x"), 650.0, False, "no-channel", id="expired channel"),
        pytest.param(
            channel_data(0x4001, b"x"), 400.0, False, "no-permission", id="expired permission"
        ),
        pytest.param(
            channel_data(0x4001, b"x"), 400.0, True, "no-permission", id="purged permission"
        ),
        pytest.param(
            channel_data(0x4000, b"xy", "overpadded"), 10.0, False, "malformed", id="overpadded"
        ),
        pytest.param(channel_data(0x4000, b"xy", "short"), 10.0, False, "malformed", id="short"),
        pytest.param(
            channel_data(0x4000, b"x"), 1500.0, True, "no-allocation", id="expired allocation"
        ),
    ],
)
def test_what_the_core_drops_the_pump_hands_back(
    datagram: bytes, now: float, timer: bool, dropped: str
) -> None:
    outcome = from_clients([(datagram, CLIENT)], now, timer=timer)
    assert outcome.rest == [(datagram, CLIENT)] and outcome.pump.forwarded == 0
    assert outcome.twin.server.drops == {dropped: 1}


def test_an_expired_allocation_still_relays_until_its_timer_fires() -> None:
    """Neither twin reads the allocation's lifetime: the timer deletes it on time."""
    relay = world().relays["b"][1]
    late = from_clients([(channel_data(0x4000, b"x"), CLIENT_B)], 650.0)
    assert late.pump.forwarded == 1  # B's allocation lapsed at 600, its channel lives
    assert from_peers([(b"x", PEER6)], relay, 650.0).pump.forwarded == 1
    gone = from_clients([(channel_data(0x4000, b"x"), CLIENT_B)], 650.0, timer=True)
    assert gone.pump.forwarded == 0 and gone.twin.server.drops == {"no-allocation": 1}
    gone = from_peers([(b"x", PEER6)], relay, 650.0, timer=True)
    assert gone.pump.forwarded == 0 and gone.twin.server.drops == {"no-allocation": 1}


def test_a_refreshed_permission_reaches_the_pump_it_served_before() -> None:
    """The pump remembers each allocation's last channel and permission (both
    ways); a refresh through the core must reach it, or datagrams past the old
    expiry would be handed to the core when the pump could relay them."""
    w = world()
    pump = RelayPump(w.server.allocation_table)
    relay = w.relays["a"][0]
    out, back = [(channel_data(0x4000, b"out"), CLIENT)], [(b"back", PEER)]
    w.net.now = 450.0  # PEER's permission lapses at 500
    assert pump.from_clients(out, SERVER, 450.0) == []
    assert pump.from_peers(back, relay, 450.0) == []
    _permit(w.net, w.net.raw(CLIENT), PEER)  # now until 750
    assert pump.from_clients(out, SERVER, 550.0) == []
    assert pump.from_peers(back, relay, 550.0) == []
    assert pump.forwarded == 4
    assert pump.from_peers(back, relay, 760.0) == back  # lapsed: remembered, yet refused


def test_a_refreshed_channel_reaches_the_pump_it_served_before() -> None:
    w = world()
    pump = RelayPump(w.server.allocation_table)
    relay = w.relays["a"][0]
    out, back = [(channel_data(0x4001, b"out"), CLIENT)], [(b"back", PEER_B)]
    w.net.now = 590.0  # channel 0x4001 lapses at 600
    _permit(w.net, w.net.raw(CLIENT), PEER_B)  # PEER_B's own lapsed at 300
    assert pump.from_clients(out, SERVER, 590.0) == []
    assert pump.from_peers(back, relay, 590.0) == []
    _bind(w.net, w.net.raw(CLIENT), 0x4001, PEER_B)  # now until 1190
    assert pump.from_clients(out, SERVER, 650.0) == []
    assert pump.from_peers(back, relay, 650.0) == []
    assert pump.forwarded == 4


def test_a_deleted_allocation_is_not_relayed_for_by_the_pump() -> None:
    w = world()
    pump = RelayPump(w.server.allocation_table)
    out = [(channel_data(0x4000, b"out"), CLIENT)]
    assert pump.from_clients(out, SERVER, 10.0) == []
    _request(w.net, w.net.raw(CLIENT), Message.build(REFRESH_REQUEST, Lifetime(0)))
    assert pump.from_clients(out, SERVER, 10.0) == out
    assert pump.from_clients(out, ("192.0.2.99", 3478), 10.0) == out  # no UDP allocation there
    _allocate(w.net, w.net.raw(CLIENT))  # the same 5-tuple again: no channel yet
    assert pump.from_clients(out, SERVER, 10.0) == out
    assert pump.forwarded == 1


def test_clients_over_tcp_and_strangers_are_the_cores() -> None:
    w = world()
    batch = [
        (channel_data(0x4000, b"x"), CLIENT_T),  # T's allocation is over TCP: not this 5-tuple
        (channel_data(0x4000, b"x"), STRANGER),
        (Message.build(BINDING_REQUEST).raw, CLIENT),
        (send_indication(PEER_C, b"indicated"), CLIENT),
        (send_indication(PEER6, b"wrong family"), CLIENT),
    ]
    outcome = from_clients(batch, 10.0)
    assert outcome.rest == batch and outcome.pump.forwarded == 0
    assert outcome.twin.server.drops == {"no-allocation": 2, "family-mismatch": 1}
    back = from_peers([(b"x", PEER)], w.relays["t"][0], 10.0)  # framed for a stream by the core
    assert back.rest == [(b"x", PEER)] and back.twin.allocation(CLIENT_T, True).packets_to_client


def test_peers_without_a_channel_or_a_permission_are_the_cores() -> None:
    w = world()
    batch = [(b"c", PEER_C), (b"d", PEER_D), (b"p", PEER_PORT), (b"b", PEER_B), (b"a", PEER)]
    outcome = from_peers(batch, w.relays["a"][0], 400.0)  # PEER_B's permission lapsed at 300
    assert outcome.rest == batch[:4] and outcome.pump.forwarded == 1
    assert outcome.twin.server.drops == {"no-permission": 3}  # PEER_C's lapsed too
    unknown = from_peers([(b"x", PEER)], UNKNOWN_RELAY, 10.0)
    assert unknown.rest == [(b"x", PEER)] and unknown.twin.server.drops == {"no-allocation": 1}


@dataclass
class Endpoint:
    """What a runner's ReadySet hands back as the token of a relay socket."""

    address: Address
    sock: object = True


def test_from_relays_pumps_socket_after_socket_and_stops_at_a_rest() -> None:
    """The runner's loop over a ReadySet's batches, in C: the same as from_peers per
    socket, a closed endpoint skipped, back to the caller at each rest (so the core
    takes it before the next socket's batch is pumped)."""
    w, twin = world(), world()
    a, b = w.relays["a"][0], w.relays["b"][0]
    pump = RelayPump(w.server.allocation_table)
    alone = RelayPump(twin.server.allocation_table)
    ready = [
        (Endpoint(a), [(payload(0, 5), PEER)]),
        (Endpoint(b, None), [(payload(1, 5), PEER6)]),  # closed meanwhile: skipped
        (Endpoint(a), [(payload(2, 5), PEER_B), (b"d", PEER_D), (payload(3, 5), PEER)]),
        (Endpoint(b), [(payload(4, 5), PEER6)]),
    ]
    index, endpoint, rest = pump.from_relays(ready, 0, 10.0)
    assert (index, endpoint, rest) == (2, ready[2][0], [(b"d", PEER_D)])
    assert pump.forwarded == 3  # the first batch, and the third's two on channels
    assert pump.from_relays(ready, 3, 10.0) == (4, None, None)
    for token, batch in ready:
        if token.sock is not None:
            alone.from_peers(batch, token.address, 10.0)
    assert pump.to_clients == alone.to_clients and pump.forwarded == alone.forwarded == 4
    assert pump.from_relays([], 0, 10.0) == (0, None, None)


def test_the_budget_is_spent_by_the_pump_and_refused_alike() -> None:
    """65536 bytes of burst: the 47th 1400-byte datagram finds no room, in the pump
    and then in the core, which counts it; each direction spends the same budget."""
    batch = [(channel_data(0x4000, payload(i, 1400)), CLIENT) for i in range(50)]
    outcome = from_clients(batch, 10.0, bandwidth=1000)
    assert outcome.pump.forwarded == 46 and len(outcome.rest) == 4
    assert outcome.twin.server.drops == {"bandwidth": 4}
    w = world(bandwidth=1000)
    back = from_peers(
        [(payload(i, 1400), PEER) for i in range(50)], w.relays["a"][0], 10.0, bandwidth=1000
    )
    assert back.pump.forwarded == 46 and back.twin.server.drops == {"bandwidth": 4}


def test_a_bandwidth_cap_no_longer_sends_everything_to_the_core() -> None:
    w = world(bandwidth=100_000)
    assert w.allocation(CLIENT).bucket is not None
    outcome = from_clients([(channel_data(0x4000, b"capped"), CLIENT)], 10.0, bandwidth=100_000)
    assert outcome.pump.forwarded == 1 and outcome.rest == []


def test_rfc5766_channel_numbers_are_channel_data_only_when_enabled() -> None:
    for rfc5766 in (True, False):
        outcome = from_clients([(channel_data(0x5000, b"x"), CLIENT)], 10.0, rfc5766=rfc5766)
        assert outcome.pump.forwarded == 0
        dropped = outcome.twin.server.drops
        assert dropped == ({"no-channel": 1} if rfc5766 else {})


# -- and any mixture of them


TIMES = [0.0, 150.0, 299.0, 300.0, 301.0, 450.0, 500.0, 599.0, 600.0, 650.0, 800.0, 1100.0, 1500.0]
SENDERS = [CLIENT, CLIENT_B, CLIENT_T, STRANGER]
NUMBERS = [0x4000, 0x4001, 0x4002, 0x4FFF, 0x5000, 0x7FFF, 0x3FFF]
FRAMINGS = ["exact", "padded", "overpadded", "short"]
PEERS = [PEER, PEER_B, PEER_C, PEER_D, PEER_PORT, PEER6]

client_datagrams = st.one_of(
    st.tuples(
        st.just("channel"),
        st.sampled_from(SENDERS),
        st.sampled_from(NUMBERS),
        st.integers(0, 1400),
        st.sampled_from(FRAMINGS),
    ),
    st.tuples(
        st.just("send"), st.sampled_from(SENDERS), st.sampled_from(PEERS), st.integers(0, 1400)
    ),
    st.tuples(st.just("binding"), st.sampled_from(SENDERS)),
    st.tuples(st.just("junk"), st.sampled_from(SENDERS), st.binary(max_size=8)),
)


def _client_datagram(tag: int, drawn: tuple[Any, ...]) -> Datagram:
    kind, sender = drawn[0], drawn[1]
    if kind == "channel":
        return (channel_data(drawn[2], payload(tag, drawn[3]), drawn[4]), sender)
    if kind == "send":
        return (send_indication(drawn[2], payload(tag, drawn[3])), sender)
    if kind == "binding":
        return (Message.build(BINDING_REQUEST).raw, sender)
    return (b"\x40" + drawn[2], sender)


@settings(max_examples=150, deadline=None)
@given(
    drawn=st.lists(client_datagrams, max_size=60),
    now=st.sampled_from(TIMES),
    timer=st.booleans(),
    bandwidth=st.sampled_from([0, 1000]),
    rfc5766=st.booleans(),
)
def test_any_batch_from_clients_gives_what_the_core_gives(
    drawn: list[tuple[Any, ...]], now: float, timer: bool, bandwidth: int, rfc5766: bool
) -> None:
    batch = [_client_datagram(tag, d) for tag, d in enumerate(drawn)]
    from_clients(batch, now, timer=timer, bandwidth=bandwidth, rfc5766=rfc5766)


@settings(max_examples=150, deadline=None)
@given(
    relay=st.sampled_from([("a", 0), ("b", 0), ("b", 1), ("t", 0), None]),
    drawn=st.lists(st.tuples(st.sampled_from(PEERS), st.integers(0, 1400)), max_size=60),
    now=st.sampled_from(TIMES),
    timer=st.booleans(),
    bandwidth=st.sampled_from([0, 1000]),
)
def test_any_batch_from_peers_gives_what_the_core_gives(
    relay: tuple[str, int] | None,
    drawn: list[tuple[Address, int]],
    now: float,
    timer: bool,
    bandwidth: int,
) -> None:
    address = UNKNOWN_RELAY if relay is None else world().relays[relay[0]][relay[1]]
    batch = [(payload(tag, size), peer) for tag, (peer, size) in enumerate(drawn)]
    from_peers(batch, address, now, timer=timer, bandwidth=bandwidth)
