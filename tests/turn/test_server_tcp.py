"""TCP allocations (RFC 6062) in the TURN server core, under virtual time.

Raw STUN clients on "TCP" (``reliable=True``) drive the core through
`turn_harness.TurnNet`, whose relay sockets can listen on TCP
(`MemoryTcpRelaySockets`). The runner's part is played by hand: the test
reads the core's effects (`TurnServer.next_effect`) and reports back
(`peer_connected`, `peer_connection_failed`, `peer_connection_accepted`,
`peer_connection_closed`, `connection_lost`). Time moves only with
`TurnNet.advance`.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from ice import Message
from ice.attrs import (
    ChannelNumber,
    ConnectionId,
    Data,
    DontFragment,
    EvenPort,
    Lifetime,
    RequestedTransport,
    ReservationToken,
    XorPeerAddress,
    XorRelayedAddress,
)
from ice.constants import (
    ALLOCATE_REQUEST,
    CHANNEL_BIND_REQUEST,
    CONNECT_REQUEST,
    CONNECTION_ATTEMPT_INDICATION,
    CREATE_PERMISSION_REQUEST,
    REFRESH_REQUEST,
    SEND_INDICATION,
    MessageClass,
    Method,
)
from ice.machine import Address
from ice.stun.client import StunClient
from ice.stun.transaction import TransactionEvent, TransactionFailed, TransactionSucceeded
from ice.turn.allocation import PERMISSION_LIFETIME
from ice.turn.policy import PeerPolicy
from ice.turn.ports import MemoryRelaySockets, MemoryTcpRelaySockets
from ice.turn.server import TurnLimits
from ice.turn.server_tcp import (
    CONNECT_TIMEOUT,
    CONNECTION_BIND_TIMEOUT,
    ClosePeerConnection,
    ConnectionState,
    OpenPeerConnection,
    Splice,
    TcpEffect,
)
from tests.support.turn_harness import CLIENT, PEER, PEER6, SERVER, Client, TurnNet, at

TCP = 6
UDP = 17
#: The client's data connections: the same host as CLIENT, other ports.
DATA: Address = (CLIENT[0], 40100)
DATA2: Address = (CLIENT[0], 40101)
PEER_B: Address = (PEER[0], 6001)  # the same IP as PEER, another port
PEER_C: Address = ("203.0.113.9", 6002)


def tcp_net(**options: object) -> TurnNet:
    return TurnNet(sockets=MemoryTcpRelaySockets(), **options)  # type: ignore[arg-type]


# -- driving raw clients


def start(net: TurnNet, client: Client, message: Message) -> bytes:
    """Send ``message`` from a raw client; return its transaction ID (no waiting)."""
    machine = client.machine
    assert isinstance(machine, StunClient)
    tid = machine.request(message, client.server, net.now, reliable=client.reliable)
    net.pump()
    return tid


def outcome(client: Client, tid: bytes) -> TransactionEvent | None:
    for event in client.events:
        if isinstance(event, (TransactionSucceeded, TransactionFailed)) and (
            event.transaction_id == tid
        ):
            return event
    return None


def ok(event: TransactionEvent | None) -> Message:
    assert isinstance(event, TransactionSucceeded), event
    return event.response


def failed(event: TransactionEvent | None, code: int) -> None:
    assert isinstance(event, TransactionFailed), event
    assert event.code == code, (event.code, event.reason)


def effects(net: TurnNet) -> list[TcpEffect]:
    out = []
    while (effect := net.server.next_effect()) is not None:
        out.append(effect)
    return out


def request(method: Method, *attrs: object) -> Message:
    from ice._codec import message_type

    message = Message.build(message_type(method, MessageClass.REQUEST))
    for attr in attrs:
        attr.add_to(message)  # type: ignore[attr-defined]
    return message


def allocate_tcp(
    net: TurnNet, addr: Address = CLIENT, user: str = "alice"
) -> tuple[Client, Address]:
    """A control connection with a TCP allocation, and its relayed address."""
    client = net.raw(addr, user, reliable=True)
    response = ok(net.request(client, Message.build(ALLOCATE_REQUEST, RequestedTransport(TCP))))
    relayed = XorRelayedAddress.get_from(response)
    assert relayed is not None
    return client, relayed.address


def connect(net: TurnNet, client: Client, peer: Address = PEER) -> tuple[bytes, int]:
    """Send Connect; return its transaction ID and the connection the core asked for."""
    tid = start(net, client, Message.build(CONNECT_REQUEST, XorPeerAddress(*peer)))
    assert outcome(client, tid) is None, outcome(client, tid)  # answered later
    opened = effects(net)
    assert len(opened) == 1 and isinstance(opened[0], OpenPeerConnection), opened
    assert opened[0].peer == peer
    return tid, opened[0].connection_id


def connected(net: TurnNet, client: Client, peer: Address = PEER) -> int:
    """Connect, the runner reports success: the CONNECTION-ID (checked in the answer)."""
    tid, connection_id = connect(net, client, peer)
    net.server.peer_connected(connection_id, net.now)
    net.pump()
    answer = ok(outcome(client, tid))
    attr = ConnectionId.get_from(answer)
    assert attr is not None and attr.value == connection_id
    assert effects(net) == []
    return connection_id


def bind(
    net: TurnNet, connection_id: int | None, addr: Address = DATA, **kw: object
) -> TransactionEvent:
    """ConnectionBind on a new client connection from ``addr``."""
    data = net.raw(addr, reliable=kw.pop("reliable", True), **kw)  # type: ignore[arg-type]
    attrs = () if connection_id is None else (ConnectionId(connection_id),)
    return net.request(data, request(Method.CONNECTION_BIND, *attrs))


def permit(net: TurnNet, client: Client, *peers: Address) -> TransactionEvent:
    message = Message.build(CREATE_PERMISSION_REQUEST)
    for peer in peers:
        XorPeerAddress(*peer).add_to(message)
    return net.request(client, message)


def attempts(net: TurnNet, to: Address = CLIENT) -> list[Message]:
    """The ConnectionAttempt indications sent to ``to``."""
    out = []
    for transmit in net.to_clients:
        if transmit.addr == to and transmit.data[:2] == CONNECTION_ATTEMPT_INDICATION.to_bytes(
            2, "big"
        ):
            out.append(Message.decode(transmit.data))
    return out


# -- Allocate


def test_tcp_allocation_listens_on_a_tcp_relay_until_deleted() -> None:
    net = tcp_net()
    client, relay = allocate_tcp(net)
    assert relay in net.sockets.listening and relay not in net.sockets.open  # type: ignore[attr-defined]
    allocation = net.server.allocation_for(CLIENT, SERVER, reliable=True)
    assert allocation.tcp and allocation.relays == {1: relay}
    ok(net.request(client, Message.build(REFRESH_REQUEST, Lifetime(0))))
    assert relay not in net.sockets.listening  # type: ignore[attr-defined]
    assert net.server.allocation_count == 0


def test_udp_allocation_over_tcp_is_still_udp() -> None:
    net = tcp_net()
    client = net.raw(reliable=True)
    response = ok(net.request(client, Message.build(ALLOCATE_REQUEST, RequestedTransport(UDP))))
    relayed = XorRelayedAddress.get_from(response)
    assert relayed is not None and relayed.address in net.sockets.open
    assert not net.server.allocation_for(CLIENT, SERVER, reliable=True).tcp


def test_tcp_allocate_over_udp_is_400() -> None:
    """RFC 6062 section 5.1: the control connection must be TCP or TLS."""
    net = tcp_net()
    client = net.raw()  # UDP
    failed(net.request(client, Message.build(ALLOCATE_REQUEST, RequestedTransport(TCP))), 400)
    assert net.server.allocation_count == 0


@pytest.mark.parametrize(
    "attr", [EvenPort(), EvenPort(True), ReservationToken(b"12345678"), DontFragment()]
)
def test_tcp_allocate_with_udp_only_attributes_is_400(attr: object) -> None:
    net = tcp_net()
    client = net.raw(reliable=True)
    message = Message.build(ALLOCATE_REQUEST, RequestedTransport(TCP))
    attr.add_to(message)  # type: ignore[attr-defined]
    failed(net.request(client, message), 400)
    assert not net.sockets.listening and not net.sockets.open  # type: ignore[attr-defined]
    assert net.server.ports.in_use("198.51.100.1") == 0


def test_442_for_other_protocols_and_where_tcp_is_not_served() -> None:
    net = tcp_net()
    failed(
        net.request(
            net.raw(reliable=True), Message.build(ALLOCATE_REQUEST, RequestedTransport(99))
        ),
        442,
    )
    # Relay sockets that cannot listen on TCP, or TCP relaying turned off: 442 too.
    for other in (TurnNet(sockets=MemoryRelaySockets()), tcp_net(tcp_relays=False)):
        client = other.raw(reliable=True)
        failed(other.request(client, Message.build(ALLOCATE_REQUEST, RequestedTransport(TCP))), 442)
        assert other.server.allocation_count == 0


def test_dual_stack_tcp_allocation_listens_on_both_families() -> None:
    from ice.attrs import AdditionalAddressFamily

    net = tcp_net()
    client = net.raw(reliable=True)
    message = Message.build(ALLOCATE_REQUEST, RequestedTransport(TCP), AdditionalAddressFamily())
    ok(net.request(client, message))
    allocation = net.server.allocation_for(CLIENT, SERVER, reliable=True)
    assert set(allocation.relays) == {1, 2}
    assert set(allocation.relays.values()) == net.sockets.listening  # type: ignore[attr-defined]
    cid = connected(net, client, PEER6)
    assert net.server.tcp.get(cid).relay == allocation.relays[2]  # type: ignore[union-attr]


# -- Connect


def test_connect_asks_the_runner_then_answers_with_the_connection_id() -> None:
    net = tcp_net()
    client, relay = allocate_tcp(net)
    tid, connection_id = connect(net, client)
    connection = net.server.tcp.get(connection_id)
    assert connection is not None and connection.state is ConnectionState.CONNECTING
    assert (connection.relay, connection.peer) == (relay, PEER)
    net.advance(CONNECT_TIMEOUT - 1)  # still waiting
    assert outcome(client, tid) is None and effects(net) == []
    net.server.peer_connected(connection_id, net.now)
    net.pump()
    answer = ok(outcome(client, tid))
    assert answer.method == Method.CONNECT
    assert ConnectionId.get_from(answer).value == connection_id  # type: ignore[union-attr]
    assert connection.state.value == "pending"
    assert net.server.counters()["tcp_connects"] == 1


def test_connect_does_not_need_a_permission_and_installs_none() -> None:
    """RFC 6062 section 5.2 checks the peer against policy (403), not permissions."""
    net = tcp_net()
    client, _ = allocate_tcp(net)
    connected(net, client)
    assert net.server.allocation_for(CLIENT, SERVER, reliable=True).permissions == {}


def test_447_when_the_connection_fails() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    tid, connection_id = connect(net, client)
    net.server.peer_connection_failed(connection_id, net.now)
    net.pump()
    failed(outcome(client, tid), 447)
    assert effects(net) == []  # nothing was opened, nothing to close
    assert net.server.tcp.get(connection_id) is None
    connected(net, client)  # the peer may be tried again
    net.server.peer_connection_failed(connection_id, net.now)  # stale news: nothing happens


def test_447_when_the_connection_takes_30_seconds() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    tid, connection_id = connect(net, client)
    net.advance(CONNECT_TIMEOUT - 0.01)
    assert outcome(client, tid) is None
    net.advance(0.02)
    failed(outcome(client, tid), 447)
    assert effects(net) == [ClosePeerConnection(connection_id)]  # abandon the attempt
    # The runner's connection completes too late: it is closed.
    net.server.peer_connected(connection_id, net.now)
    assert effects(net) == [ClosePeerConnection(connection_id)]
    assert net.server.counters()["tcp_connect_timeouts"] == 1


def test_446_while_a_connection_to_that_peer_exists() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    connect_request = Message.build(CONNECT_REQUEST, XorPeerAddress(*PEER))
    _, connection_id = connect(net, client)
    failed(net.request(client, connect_request), 446)  # connecting
    net.server.peer_connected(connection_id, net.now)
    net.pump()
    failed(net.request(client, connect_request), 446)  # pending
    ok(bind(net, connection_id))
    effects(net)
    failed(net.request(client, connect_request), 446)  # bound
    connected(net, client, PEER_B)  # another port of the same IP is another peer
    net.server.peer_connection_closed(connection_id, net.now)
    connected(net, client, PEER)  # gone: a new one may be made


def test_connect_refusals() -> None:
    net = tcp_net(policy=PeerPolicy(), limits=TurnLimits(max_peer_connections=2))
    client, _ = allocate_tcp(net)
    failed(net.request(client, request(Method.CONNECT)), 400)  # no XOR-PEER-ADDRESS
    failed(net.request(client, Message.build(CONNECT_REQUEST, XorPeerAddress(PEER[0], 0))), 400)
    failed(
        net.request(client, Message.build(CONNECT_REQUEST, XorPeerAddress("127.0.0.1", 80))), 403
    )
    failed(
        net.request(client, Message.build(CONNECT_REQUEST, XorPeerAddress("169.254.169.254", 80))),
        403,
    )
    failed(net.request(client, Message.build(CONNECT_REQUEST, XorPeerAddress(*PEER6))), 443)
    relay = net.server.allocation_for(CLIENT, SERVER, reliable=True).relays[1]
    failed(net.request(client, Message.build(CONNECT_REQUEST, XorPeerAddress(*relay))), 403)
    connected(net, client, PEER)
    connected(net, client, PEER_B)
    failed(net.request(client, Message.build(CONNECT_REQUEST, XorPeerAddress(*PEER_C))), 508)
    assert effects(net) == []
    # Without an allocation on this connection: 437; on a UDP allocation: 403.
    stranger = net.raw(at(3), reliable=True)
    failed(net.request(stranger, Message.build(CONNECT_REQUEST, XorPeerAddress(*PEER))), 437)
    udp = net.raw(at(4), reliable=True)
    ok(net.request(udp, Message.build(ALLOCATE_REQUEST, RequestedTransport(UDP))))
    failed(net.request(udp, Message.build(CONNECT_REQUEST, XorPeerAddress(*PEER))), 403)
    # Another user on the allocation's connection: 441.
    bob = net.raw(CLIENT, "bob", reliable=True)
    failed(net.request(bob, Message.build(CONNECT_REQUEST, XorPeerAddress(*PEER_C))), 441)
    assert effects(net) == []


def test_tcp_allocation_has_no_channels_and_drops_send_indications() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    bind_request = Message.build(CHANNEL_BIND_REQUEST, ChannelNumber(0x4000), XorPeerAddress(*PEER))
    failed(net.request(client, bind_request), 403)
    ok(permit(net, client, PEER))
    send = Message.build(SEND_INDICATION, XorPeerAddress(*PEER), Data(b"x")).raw
    net.inject(send, CLIENT, reliable=True)
    assert net.at_peers == [] and net.server.drops["tcp-allocation"] == 1


# -- ConnectionBind


def test_connection_bind_splices_a_new_connection_to_the_peer() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    connection_id = connected(net, client)
    answer = ok(bind(net, connection_id))
    assert answer.method == Method.CONNECTION_BIND
    # The success response is sent before the runner is told to splice.
    assert net.to_clients[-1].addr == DATA
    assert effects(net) == [Splice(connection_id, DATA, SERVER)]
    connection = net.server.tcp.get(connection_id)
    assert connection is not None and connection.state is ConnectionState.BOUND
    assert connection.data == (DATA, SERVER)
    net.advance(3 * CONNECTION_BIND_TIMEOUT)  # bound: the 30 s timer no longer applies
    assert effects(net) == [] and net.server.tcp.get(connection_id) is connection
    assert net.server.counters()["tcp_bound"] == 1


def test_connection_bind_400s() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    failed(bind(net, 0xDEADBEEF), 400)  # unknown
    failed(bind(net, None, DATA2), 400)  # no CONNECTION-ID
    _, connecting = connect(net, client)
    failed(bind(net, connecting), 400)  # not connected yet
    net.server.peer_connected(connecting, net.now)
    net.pump()
    failed(bind(net, connecting, at(6), reliable=False), 400)  # over UDP
    control = net.raw(CLIENT, reliable=True)  # on the control connection itself
    failed(net.request(control, request(Method.CONNECTION_BIND, ConnectionId(connecting))), 400)
    assert effects(net) == []
    ok(bind(net, connecting))
    failed(bind(net, connecting, DATA2), 400)  # already bound
    assert effects(net) == [Splice(connecting, DATA, SERVER)]
    # A second ConnectionBind on a bound data connection (the runner would have
    # relayed it to the peer as data; the core refuses it all the same).
    other = connected(net, client, PEER_B)
    failed(bind(net, other, DATA), 400)
    assert effects(net) == []


def test_connection_bind_by_another_user_is_441() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    connection_id = connected(net, client)
    failed(bind(net, connection_id, user="bob"), 441)
    assert effects(net) == []
    ok(bind(net, connection_id, DATA2))


def test_connection_bind_needs_credentials() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    connection_id = connected(net, client)
    anonymous = net.raw(DATA, None, reliable=True)
    failed(
        net.request(anonymous, request(Method.CONNECTION_BIND, ConnectionId(connection_id))), 401
    )
    assert effects(net) == []


def test_unbound_connection_is_closed_after_30_seconds() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    connection_id = connected(net, client)
    net.advance(CONNECTION_BIND_TIMEOUT - 0.01)
    assert effects(net) == []
    net.advance(0.02)
    assert effects(net) == [ClosePeerConnection(connection_id)]
    failed(bind(net, connection_id), 400)  # expired
    assert net.server.counters()["tcp_bind_timeouts"] == 1
    connected(net, client)  # the peer is free again


# -- connections from peers (ConnectionAttempt)


def test_incoming_connection_needs_a_permission() -> None:
    net = tcp_net()
    client, relay = allocate_tcp(net)
    assert net.server.peer_connection_accepted(relay, PEER, net.now) is None  # close it
    assert attempts(net) == [] and effects(net) == []
    ok(permit(net, client, PEER))  # the permission is for the IP: any port
    connection_id = net.server.peer_connection_accepted(relay, PEER_B, net.now)
    assert connection_id is not None
    net.pump()
    [attempt] = attempts(net)
    assert ConnectionId.get_from(attempt).value == connection_id  # type: ignore[union-attr]
    assert XorPeerAddress.get_from(attempt).address == PEER_B  # type: ignore[union-attr]
    assert effects(net) == []  # accepted: nothing to open
    ok(bind(net, connection_id))
    assert effects(net) == [Splice(connection_id, DATA, SERVER)]
    # The same peer address again: refused while that connection lives.
    assert net.server.peer_connection_accepted(relay, PEER_B, net.now) is None
    assert net.server.peer_connection_accepted(relay, PEER_C, net.now) is None  # no permission
    counters = net.server.counters()
    assert (counters["tcp_accepted"], counters["tcp_refused"]) == (1, 3)


def test_incoming_connection_after_the_permission_expired_is_refused() -> None:
    net = tcp_net()
    client, relay = allocate_tcp(net)
    ok(permit(net, client, PEER))
    net.advance(PERMISSION_LIFETIME + 1)
    assert net.server.peer_connection_accepted(relay, PEER, net.now) is None


def test_incoming_connection_on_other_relays_is_refused() -> None:
    net = tcp_net()
    udp = net.raw(at(2))
    response = ok(net.request(udp, Message.build(ALLOCATE_REQUEST, RequestedTransport(UDP))))
    udp_relay = XorRelayedAddress.get_from(response).address  # type: ignore[union-attr]
    ok(permit(net, udp, PEER))
    assert net.server.peer_connection_accepted(udp_relay, PEER, net.now) is None
    assert net.server.peer_connection_accepted(("198.51.100.1", 1), PEER, net.now) is None


def test_incoming_connection_not_bound_in_30_seconds_is_closed() -> None:
    net = tcp_net()
    client, relay = allocate_tcp(net)
    ok(permit(net, client, PEER))
    connection_id = net.server.peer_connection_accepted(relay, PEER, net.now)
    assert connection_id is not None
    net.advance(CONNECTION_BIND_TIMEOUT + 0.01)
    assert effects(net) == [ClosePeerConnection(connection_id)]
    failed(bind(net, connection_id), 400)


def test_incoming_connections_count_against_the_limit() -> None:
    net = tcp_net(limits=TurnLimits(max_peer_connections=1))
    client, relay = allocate_tcp(net)
    ok(permit(net, client, PEER))
    assert net.server.peer_connection_accepted(relay, PEER, net.now) is not None
    assert net.server.peer_connection_accepted(relay, PEER_B, net.now) is None
    failed(net.request(client, Message.build(CONNECT_REQUEST, XorPeerAddress(*PEER_C))), 508)


# -- closing


def three_connections(net: TurnNet, client: Client, relay: Address) -> tuple[bytes, list[int]]:
    """A bound connection, a pending one (accepted) and a Connect still connecting."""
    bound = connected(net, client, PEER)
    ok(bind(net, bound))
    assert effects(net) == [Splice(bound, DATA, SERVER)]
    ok(permit(net, client, PEER_C))
    pending = net.server.peer_connection_accepted(relay, PEER_C, net.now)
    assert pending is not None
    tid, connecting = connect(net, client, PEER_B)
    effects(net)
    return tid, [bound, pending, connecting]


def test_refresh_zero_closes_every_connection_of_the_allocation() -> None:
    net = tcp_net()
    client, relay = allocate_tcp(net)
    tid, ids = three_connections(net, client, relay)
    other, _ = allocate_tcp(net, at(7))  # another allocation's connection stays
    kept = connected(net, other)
    ok(net.request(client, Message.build(REFRESH_REQUEST, Lifetime(0))))
    assert sorted(
        e.connection_id for e in effects(net) if isinstance(e, ClosePeerConnection)
    ) == sorted(ids)
    failed(outcome(client, tid), 447)  # the Connect under way is answered
    assert relay not in net.sockets.listening  # type: ignore[attr-defined]
    assert [c.connection_id for c in net.server.tcp.connections()] == [kept]


def test_losing_the_control_connection_closes_every_connection() -> None:
    net = tcp_net()
    client, relay = allocate_tcp(net)
    _, ids = three_connections(net, client, relay)
    net.server.connection_lost(CLIENT, SERVER)
    assert sorted(
        e.connection_id for e in effects(net) if isinstance(e, ClosePeerConnection)
    ) == sorted(ids)
    assert net.server.allocation_count == 0 and len(net.server.tcp) == 0


def test_allocation_expiry_closes_its_connections_even_busy_ones() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    bound = connected(net, client)
    ok(bind(net, bound))
    effects(net)
    net.advance(600 + 1)  # data connections do not refresh the allocation
    assert effects(net) == [ClosePeerConnection(bound)]
    assert net.server.allocation_count == 0


def test_losing_a_data_connection_closes_its_peer_connection_only() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    first = connected(net, client, PEER)
    second = connected(net, client, PEER_B)
    ok(bind(net, first, DATA))
    ok(bind(net, second, DATA2))
    effects(net)
    net.server.connection_lost(DATA, SERVER)
    assert effects(net) == [ClosePeerConnection(first)]
    assert net.server.allocation_count == 1 and net.server.tcp.get(second) is not None
    net.server.connection_lost(DATA, SERVER)  # twice: nothing more
    assert effects(net) == []


def test_peer_connection_closed_by_the_runner_is_forgotten() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    connection_id = connected(net, client)
    ok(bind(net, connection_id))
    effects(net)
    net.server.peer_connection_closed(connection_id, net.now)
    assert effects(net) == []  # the runner closed both sides itself
    assert net.server.tcp.get(connection_id) is None
    net.server.connection_lost(DATA, SERVER)  # the data connection's loss, later: nothing
    assert effects(net) == [] and net.server.allocation_count == 1


# -- the rest


def test_effects_are_frozen_dataclasses() -> None:
    effect = OpenPeerConnection(1, ("198.51.100.1", 50000), PEER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        effect.connection_id = 2  # type: ignore[misc]
    assert Splice(1, DATA, SERVER) == Splice(1, DATA, SERVER)


def test_connection_ids_are_random_distinct_and_nonzero() -> None:
    net = tcp_net(limits=TurnLimits(max_peer_connections=1000))
    client, relay = allocate_tcp(net)
    ok(permit(net, client, PEER))
    ids = set()
    for port in range(1, 301):
        connection_id = net.server.peer_connection_accepted(relay, (PEER[0], port), net.now)
        assert connection_id is not None
        ids.add(connection_id)
    assert len(ids) == 300 and 0 not in ids and max(ids) < 2**32


def test_connect_churn_does_not_grow_the_timer_heap() -> None:
    net = tcp_net()
    client, _ = allocate_tcp(net)
    for _ in range(1500):
        tid, connection_id = connect(net, client)
        net.server.peer_connection_failed(connection_id, net.now)
        net.pump()
        failed(outcome(client, tid), 447)
    assert len(net.server._heap) < 2 * 1024 + 100


def test_counters_once_tcp_is_used() -> None:
    net = tcp_net()
    assert "tcp_connections" not in net.server.counters()
    client, _ = allocate_tcp(net)
    connection_id = connected(net, client)
    ok(bind(net, connection_id))
    counters = net.server.counters()
    assert counters["tcp_connections"] == 1
    assert (counters["tcp_connects"], counters["tcp_bound"]) == (1, 1)
    assert counters["requests_connect"] == 1 and counters["requests_connection_bind"] >= 1


def test_hostile_connection_requests_never_break_the_server() -> None:
    """Random CONNECTION-IDs, junk XOR-PEER-ADDRESSes and stale reports: answers only."""
    rng = random.Random(11)
    net = tcp_net()
    allocate_tcp(net)
    for i in range(200):
        bad = rng.getrandbits(32)
        net.server.peer_connected(bad, net.now)
        net.server.peer_connection_failed(bad, net.now)
        net.server.peer_connection_closed(bad, net.now)
        net.server.connection_lost((CLIENT[0], 50000 + i), SERVER)
    assert all(isinstance(e, ClosePeerConnection) for e in effects(net))
    message = request(Method.CONNECTION_BIND)
    message.add(0x002A, b"\x01\x02")  # a CONNECTION-ID of the wrong length
    failed(net.request(net.raw(DATA, reliable=True), message), 400)
    assert net.server.allocation_count == 1


def test_port_pool_binds_tcp_listeners_from_the_same_range() -> None:
    from ice.turn.ports import PortPool

    sockets = MemoryTcpRelaySockets(taken={("192.0.2.1", 50000)})
    pool = PortPool(sockets, (50000, 50001), rng=random.Random(1))
    assert pool.tcp and not PortPool(MemoryRelaySockets(), (50000, 50001)).tcp
    taken = pool.take("192.0.2.1", tcp=True)
    assert taken == (("192.0.2.1", 50001), None)
    assert sockets.listening == {("192.0.2.1", 50001)} and not sockets.open
    assert pool.take("192.0.2.1") is None  # one range for both kinds: none left
    assert pool.take("192.0.2.1", tcp=True, pair=True) is None
    pool.release(("192.0.2.1", 50001))
    assert not sockets.listening and pool.in_use("192.0.2.1") == 0
    udp = pool.take("192.0.2.1")
    assert udp is not None and udp[0] in sockets.open
    plain = PortPool(MemoryRelaySockets(), (50000, 50001))
    assert plain.take("192.0.2.1", tcp=True) is None
