"""TCP allocations (RFC 6062), client side: `TurnSession` with ``relay_transport="tcp"``,
`TurnDataConnection` and `TurnClient.connect`/`accept`.

First under virtual time against a scripted server (our STUN server core,
long-term auth included, with TURN handlers set by the test): every outcome
of Connect (success, 446, 447, 403, no answer), ConnectionAttempt
indications, and ConnectionBind bound, refused, unanswered or cut off.
The same against coturn is in tests/interop/test_coturn_turn_client_tcp.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

import ice
from ice.constants import (
    CONNECT_REQUEST,
    CONNECTION_ATTEMPT_INDICATION,
    CONNECTION_BIND_REQUEST,
    CREATE_PERMISSION_REQUEST,
    AttrType,
    MessageClass,
    Method,
)
from ice.machine import Address
from ice.stun.server import RequestContext, StunServer
from ice.stun.server_auth import LongTermAuthenticator
from ice.turn.client import TurnSession
from ice.turn.data_connection import TurnDataConnection
from ice.turn.events import (
    Allocated,
    AllocationFailed,
    BindFailed,
    Bound,
    ConnectionAttempt,
    DataConnectionEvent,
    PeerConnected,
    PeerConnectFailed,
    PermissionExpired,
    PermissionInstalled,
    TurnEvent,
)

SERVER: Address = ("198.51.100.1", 3478)
CLIENT: Address = ("192.0.2.10", 40000)  # the control connection
DATA: Address = ("192.0.2.10", 40001)  # a data connection (same host: the nonce is per IP)
RELAYED: Address = ("198.51.100.1", 50000)
PEER: Address = ("203.0.113.7", 80)
OTHER_PEER: Address = ("203.0.113.8", 8080)
FIRST_ID = 0x10000001


def _answer(ctx: RequestContext, cls: int, *attributes: ice.Attribute) -> ice.Message:
    request = ctx.request
    msg = ice.Message(ice.message_type(request.method, cls))
    msg.transaction_id = request.transaction_id
    for attribute in attributes:
        attribute.add_to(msg)
    return msg


def success(ctx: RequestContext, *attributes: ice.Attribute) -> ice.Message:
    return _answer(ctx, MessageClass.SUCCESS_RESPONSE, *attributes)


def error(ctx: RequestContext, code: int) -> ice.Message:
    return _answer(ctx, MessageClass.ERROR_RESPONSE, ice.ErrorCodeAttribute(code))


@dataclass
class ScriptedTcpTurnServer:
    """A TURN server for TCP allocations whose Connect answers the test sets per peer:
    "ok" (a new CONNECTION-ID), an error code, or "silent"."""

    nonce_lifetime: float = 3600.0
    connect_outcomes: dict[Address, str | int] = field(default_factory=dict)
    requests: list[tuple[ice.Message, Address]] = field(default_factory=list)
    pending: dict[int, Address] = field(default_factory=dict)  # connection ID -> peer
    bound: dict[int, Address] = field(default_factory=dict)  # connection ID -> client address
    bind_answer: int | None = None  # an error code for ConnectionBind, None: success
    next_id: int = FIRST_ID

    def __post_init__(self) -> None:
        auth = LongTermAuthenticator(
            "example.org", {"alice": "secret"}, nonce_lifetime=self.nonce_lifetime, secret=b"t" * 32
        )
        self.core = StunServer(authenticator=auth)
        for method in (
            Method.ALLOCATE,
            Method.REFRESH,
            Method.CREATE_PERMISSION,
            Method.CONNECT,
            Method.CONNECTION_BIND,
        ):
            self.core.handle_method(int(method), self._dispatch)

    def _dispatch(self, ctx: RequestContext) -> ice.Message | None:
        self.requests.append((ctx.request, ctx.addr))
        method = ctx.request.method
        if method == Method.ALLOCATE:
            transport = ice.RequestedTransport.get_from(ctx.request)
            if transport is None or transport.protocol != 6 or not ctx.reliable:
                return error(ctx, 442)
            return success(
                ctx,
                ice.XorRelayedAddress(*RELAYED),
                ice.XorMappedAddress(*ctx.addr),
                ice.Lifetime(600),
            )
        if method == Method.CONNECT:
            peer = ice.XorPeerAddress.get_from(ctx.request)
            if peer is None:
                return error(ctx, 400)
            outcome = self.connect_outcomes.get(peer.address, "ok")
            if outcome == "silent":
                return None
            if isinstance(outcome, int):
                return error(ctx, outcome)
            if peer.address in self.pending.values():
                return error(ctx, 446)  # RFC 6062 5.2
            return success(ctx, ice.ConnectionId(self.new_connection(peer.address)))
        if method == Method.CONNECTION_BIND:
            assert ctx.addr != CLIENT, "ConnectionBind belongs on a new connection"
            number = ice.ConnectionId.get_from(ctx.request)
            if self.bind_answer is not None:
                return error(ctx, self.bind_answer)
            if number is None or number.value not in self.pending:
                return error(ctx, 400)
            del self.pending[number.value]
            self.bound[number.value] = ctx.addr
            return success(ctx)
        return success(ctx, ice.Lifetime(600)) if method == Method.REFRESH else success(ctx)

    def new_connection(self, peer: Address) -> int:
        number, self.next_id = self.next_id, self.next_id + 1
        self.pending[number] = peer
        return number

    def attempt(self, peer: Address) -> bytes:
        """A peer connected to the relayed address: the ConnectionAttempt indication."""
        number = self.new_connection(peer)
        return ice.Message.build(
            CONNECTION_ATTEMPT_INDICATION, ice.ConnectionId(number), ice.XorPeerAddress(*peer)
        ).raw

    def receive(self, data: bytes, addr: Address, now: float) -> list[ice.Transmit]:
        self.core.receive_datagram(data, addr, now, local=SERVER, reliable=True)
        return self.core.datagrams_to_send(now)

    def of(self, request_type: int) -> list[tuple[ice.Message, Address]]:
        return [(r, a) for r, a in self.requests if r.type == request_type]


def run(
    session: TurnSession, server: ScriptedTcpTurnServer, now: float, *, silent: bool = False
) -> list[TurnEvent]:
    """Move messages on the control connection until quiet; the session's events."""
    while out := session.datagrams_to_send(now):
        for transmit in out:
            assert transmit.addr == SERVER
            for answer in [] if silent else server.receive(transmit.data, CLIENT, now):
                session.receive_datagram(answer.data, SERVER, now)
    return list(iter(session.next_event, None))


def run_data(
    data: TurnDataConnection,
    server: ScriptedTcpTurnServer,
    now: float,
    *,
    silent: bool = False,
    after: bytes = b"",
) -> tuple[list[DataConnectionEvent], bytes]:
    """Move messages on a data connection until quiet, the server's answers as one
    stream chunk followed by ``after`` (the peer's first bytes); the events and the
    bytes `receive_stream` handed back."""
    peer_bytes = b""
    while out := data.datagrams_to_send(now):
        for transmit in out:
            answers = [] if silent else server.receive(transmit.data, DATA, now)
            chunk = b"".join(a.data for a in answers)
            if chunk:
                peer_bytes += data.receive_stream(chunk + after, now)
    return list(iter(data.next_event, None)), peer_bytes


def allocated(
    server: ScriptedTcpTurnServer | None = None,
) -> tuple[TurnSession, ScriptedTcpTurnServer]:
    server = server or ScriptedTcpTurnServer()
    session = TurnSession(
        SERVER, ice.LongTermCredentials("alice", "secret"), reliable=True, relay_transport="tcp"
    )
    session.allocate(0.0)
    events = run(session, server, 0.0)
    assert isinstance(events[-1], Allocated), events
    return session, server


# -- the allocation


def test_a_tcp_allocation_asks_for_requested_transport_tcp() -> None:
    session, server = allocated()
    (allocate, _), *_ = [(r, a) for r, a in server.of(0x0003) if int(AttrType.NONCE) in r]
    assert ice.RequestedTransport.get_from(allocate).protocol == 6  # type: ignore[union-attr]
    assert session.relay_transport == "tcp" and session.relayed_addresses == (RELAYED,)


@pytest.mark.parametrize(
    "options",
    [
        {"reliable": False},  # RFC 6062: over TCP or TLS only
        {"reliable": True, "even_port": True},
        {"reliable": True, "reservation_token": b"12345678"},
        {"reliable": True, "dont_fragment": True},
        {"reliable": True, "relay_transport": "sctp"},
    ],
)
def test_a_tcp_allocation_refuses_what_rfc_6062_forbids(options: dict[str, Any]) -> None:
    options.setdefault("relay_transport", "tcp")
    with pytest.raises(ValueError):
        TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"), **options)


def test_datagrams_and_connections_do_not_mix() -> None:
    session, _ = allocated()
    with pytest.raises(ice.TurnError):
        session.send(b"x", PEER, 0.0)
    with pytest.raises(ice.TurnError):
        session.bind_channel(PEER, 0.0)
    udp = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"), reliable=True)
    with pytest.raises(ice.TurnError):
        udp.connect(PEER, 0.0)  # no allocation yet
    udp.allocate(0.0)
    (event,) = run(udp, ScriptedTcpTurnServer(), 0.0)  # this server relays TCP only
    assert isinstance(event, AllocationFailed) and event.code == 442


def test_permissions_of_a_tcp_allocation_are_kept_without_traffic() -> None:
    session, server = allocated()
    session.create_permission([PEER[0]], 0.0)
    assert run(session, server, 0.0) == [PermissionInstalled((PEER[0],))]
    seen: list[TurnEvent] = []
    while (timer := session.get_timer()) is not None and timer <= 1000.0:
        session.handle_timer(timer)
        seen += run(session, server, timer)
    assert not any(isinstance(e, PermissionExpired) for e in seen)
    assert len(server.of(CREATE_PERMISSION_REQUEST)) == 5  # at 0, 240, 480, 720, 960 s


# -- Connect


def test_connect_then_bind_a_new_connection_with_the_same_credentials() -> None:
    session, server = allocated()
    tid = session.connect(PEER, 1.0)
    (event,) = run(session, server, 1.0)
    assert event == PeerConnected(FIRST_ID, PEER, tid)
    ((connect, addr),) = server.of(CONNECT_REQUEST)
    assert addr == CLIENT and ice.XorPeerAddress.get_from(connect).address == PEER  # type: ignore[union-attr]

    data = session.data_connection(event.connection_id)
    assert data.credentials is session.credentials  # realm, nonce and key shared
    data.bind(2.0)
    events, peer_bytes = run_data(data, server, 2.0)
    assert events == [Bound(FIRST_ID)] and data.state == "bound" and peer_bytes == b""
    ((bind, addr),) = server.of(CONNECTION_BIND_REQUEST)  # signed at once: no 401 round trip
    assert addr == DATA and server.bound == {FIRST_ID: DATA}
    assert ice.ConnectionId.get_from(bind).value == FIRST_ID  # type: ignore[union-attr]
    nonce = session.credentials.nonce
    assert nonce is not None and ice.Nonce.get_from(bind).raw == nonce.raw  # type: ignore[union-attr]
    assert int(AttrType.USERHASH) in bind and int(AttrType.MESSAGE_INTEGRITY_SHA256) in bind
    assert data.get_timer() is None
    # from here the connection is the peer's: bytes go through untouched
    assert data.receive_stream(b"\x00\x01 raw", 3.0) == b"\x00\x01 raw"


@pytest.mark.parametrize(
    ("code", "reason"),
    [(446, "Connection Already Exists"), (447, "Connection Timeout or Failure"), (403, "")],
)
def test_connect_refused_is_peer_connect_failed_with_the_code(code: int, reason: str) -> None:
    session, server = allocated()
    server.connect_outcomes[PEER] = code
    tid = session.connect(PEER, 1.0)
    (event,) = run(session, server, 1.0)
    assert isinstance(event, PeerConnectFailed)
    assert (event.peer, event.code, event.transaction_id) == (PEER, code, tid)
    assert reason in event.reason
    assert session.state == "allocated"  # the allocation goes on


def test_a_second_connect_to_a_peer_gets_446_and_each_answer_its_own_transaction() -> None:
    session, server = allocated()
    first = session.connect(PEER, 1.0)
    second = session.connect(("203.0.113.7", 80), 1.0)
    other = session.connect(OTHER_PEER, 1.0)
    events = run(session, server, 1.0)
    assert events == [
        PeerConnected(FIRST_ID, PEER, first),
        PeerConnectFailed(PEER, 446, "Connection Already Exists", second),
        PeerConnected(FIRST_ID + 1, OTHER_PEER, other),
    ]


def test_unanswered_connect_fails_after_the_transaction_timeout() -> None:
    session, server = allocated()
    server.connect_outcomes[PEER] = "silent"
    tid = session.connect(PEER, 1.0)
    assert run(session, server, 1.0) == []
    seen = []
    while (timer := session.get_timer()) is not None and timer <= 41.0:
        session.handle_timer(timer)
        seen += [(timer, e) for e in run(session, server, timer)]
    assert seen == [(40.5, PeerConnectFailed(PEER, 0, f"no answer from {SERVER[0]}:3478", tid))]


def test_connect_success_without_connection_id_fails_cleanly() -> None:
    session, _ = allocated()
    tid = session.connect(PEER, 1.0)
    for transmit in session.datagrams_to_send(1.0):
        request = ice.Message.decode(transmit.data)
        answer = ice.Message(ice.message_type(Method.CONNECT, MessageClass.SUCCESS_RESPONSE))
        answer.transaction_id = request.transaction_id
        answer.add_integrity_sha256(session.credentials.key)
        session.receive_datagram(answer.raw, SERVER, 1.0)
    (event,) = list(iter(session.next_event, None))
    assert event == PeerConnectFailed(PEER, 0, "success response without CONNECTION-ID", tid)


def test_an_ipv6_peer_is_normalised() -> None:
    session, server = allocated()
    tid = session.connect(("2001:db8:0:0::0007", 443), 1.0)
    (event,) = run(session, server, 1.0)
    assert event == PeerConnected(FIRST_ID, ("2001:db8::7", 443), tid)


# -- ConnectionAttempt


def test_a_connection_attempt_indication_is_an_event_and_can_be_bound() -> None:
    session, server = allocated()
    session.create_permission([OTHER_PEER[0]], 0.0)
    run(session, server, 0.0)
    session.receive_datagram(server.attempt(OTHER_PEER), SERVER, 5.0)
    (event,) = list(iter(session.next_event, None))
    assert event == ConnectionAttempt(FIRST_ID, OTHER_PEER)
    data = session.data_connection(event.connection_id)
    data.bind(5.0)
    # the peer spoke first: its bytes follow the answer in the same read
    events, peer_bytes = run_data(data, server, 5.0, after=b"hello from the peer")
    assert events == [Bound(FIRST_ID)] and peer_bytes == b"hello from the peer"


def test_malformed_or_misplaced_connection_attempts_are_dropped() -> None:
    session, server = allocated()
    no_id = ice.Message.build(CONNECTION_ATTEMPT_INDICATION, ice.XorPeerAddress(*PEER))
    bad_id = ice.Message.build(CONNECTION_ATTEMPT_INDICATION, ice.XorPeerAddress(*PEER))
    bad_id.add(int(AttrType.CONNECTION_ID), b"\x00\x01")  # 2 bytes, not 4
    for message in (no_id, bad_id):
        session.receive_datagram(message.raw, SERVER, 1.0)
    assert session.next_event() is None and session.dropped == 2
    udp = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"), reliable=True)
    udp.receive_datagram(server.attempt(PEER), SERVER, 1.0)  # not a TCP allocation
    assert udp.next_event() is None and udp.dropped == 1


# -- ConnectionBind


@pytest.mark.parametrize("code", [400, 437, 447])
def test_connection_bind_refused_is_bind_failed(code: int) -> None:
    session, server = allocated()
    session.connect(PEER, 1.0)
    run(session, server, 1.0)
    server.bind_answer = code
    data = session.data_connection(FIRST_ID)
    data.bind(2.0)
    (event,), _ = run_data(data, server, 2.0)
    assert isinstance(event, BindFailed) and (event.connection_id, event.code) == (FIRST_ID, code)
    assert data.state == "failed" and data.get_timer() is None
    assert data.receive_stream(b"late bytes", 3.0) == b""  # nothing is the peer's


def test_an_unknown_connection_id_is_refused_by_the_server() -> None:
    session, server = allocated()
    data = session.data_connection(0xDEADBEEF)
    data.bind(1.0)
    (event,), _ = run_data(data, server, 1.0)
    assert event == BindFailed(0xDEADBEEF, 400, event.reason)  # type: ignore[union-attr]


def test_connection_bind_unanswered_fails_after_the_transaction_timeout() -> None:
    session, server = allocated()
    data = session.data_connection(FIRST_ID)
    data.bind(1.0)
    assert run_data(data, server, 1.0, silent=True) == ([], b"")
    assert data.get_timer() == 40.5
    data.handle_timer(40.5)
    assert data.next_event() == BindFailed(
        FIRST_ID, 0, f"no answer to ConnectionBind from {SERVER[0]}:3478"
    )


def test_the_server_closing_the_data_connection_is_bind_failed() -> None:
    """coturn closes a data connection whose ConnectionBind names no pending connection."""
    session, _ = allocated()
    data = session.data_connection(FIRST_ID)
    data.bind(1.0)
    data.datagrams_to_send(1.0)
    data.connection_lost(2.0)
    event = data.next_event()
    assert isinstance(event, BindFailed) and event.code == 0 and "closed" in event.reason
    assert data.get_timer() is None
    data.connection_lost(3.0)  # once is enough
    assert data.next_event() is None


def test_garbage_instead_of_an_answer_is_bind_failed() -> None:
    session, _ = allocated()
    data = session.data_connection(FIRST_ID)
    data.bind(1.0)
    data.datagrams_to_send(1.0)
    assert data.receive_stream(b"HTTP/1.1 400 Bad Request\r\n", 2.0) == b""  # 0x48: not STUN
    event = data.next_event()
    assert isinstance(event, BindFailed) and event.code == 0


def test_the_answer_may_arrive_in_pieces() -> None:
    session, server = allocated()
    session.connect(PEER, 1.0)
    run(session, server, 1.0)
    data = session.data_connection(FIRST_ID)
    data.bind(2.0)
    (request,) = data.datagrams_to_send(2.0)
    (answer,) = server.receive(request.data, DATA, 2.0)
    stream = answer.data + b"peer bytes"
    handed: list[bytes] = []
    for i in range(0, len(stream), 3):
        handed.append(data.receive_stream(stream[i : i + 3], 2.0))
        if i + 3 < len(answer.data):
            assert data.state == "binding"
    assert b"".join(handed) == b"peer bytes"
    assert data.next_event() == Bound(FIRST_ID)


def test_a_stale_nonce_on_the_data_connection_is_answered_and_shared() -> None:
    server = ScriptedTcpTurnServer(nonce_lifetime=60.0)
    session, _ = allocated(server)
    session.connect(PEER, 1.0)
    run(session, server, 1.0)
    old_nonce = session.credentials.nonce
    data = session.data_connection(FIRST_ID)
    data.bind(100.0)  # the nonce has expired: 438, then signed again with the new one
    events, _ = run_data(data, server, 100.0)
    assert events == [Bound(FIRST_ID)]
    assert server.core.error_counts[438] == 1  # (refused requests reach no handler)
    assert len(server.of(CONNECTION_BIND_REQUEST)) == 1
    assert session.credentials.nonce is not None and session.credentials.nonce != old_nonce
    session.connect(OTHER_PEER, 101.0)  # the session signs with the new nonce at once
    assert isinstance(run(session, server, 101.0)[0], PeerConnected)
    assert len(server.of(CONNECT_REQUEST)) == 2


def test_bind_twice_and_bad_connection_ids_are_refused() -> None:
    session, _ = allocated()
    data = session.data_connection(FIRST_ID)
    data.bind(1.0)
    with pytest.raises(ice.TurnError):
        data.bind(1.0)
    with pytest.raises(ValueError):
        session.data_connection(1 << 32)
    data.receive_datagram(b"not stun at all, not even close", SERVER, 1.0)
    assert data.dropped == 1 and data.state == "binding"
