"""The sans-I/O TURN client against a scripted TURN server, under virtual time.

The server is our STUN server core (long-term auth included) with TURN
method handlers registered by the test, so every deadline, challenge and
error can be set up exactly. No sockets, no sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

import ice
from ice.constants import (
    ALLOCATE_ERROR,
    CREATE_PERMISSION_REQUEST,
    DATA_INDICATION,
    SEND_INDICATION,
    AttrType,
    MessageClass,
    Method,
)
from ice.machine import Address
from ice.stun.server import RequestContext, StunServer
from ice.stun.server_auth import LongTermAuthenticator
from ice.turn.client import TurnSession
from ice.turn.events import (
    Allocated,
    AllocationFailed,
    AllocationLost,
    ChannelBindFailed,
    ChannelBound,
    Closed,
    DataReceived,
    PermissionExpired,
    PermissionFailed,
    PermissionInstalled,
    Redirected,
    Refreshed,
    TurnEvent,
)

SERVER: Address = ("198.51.100.1", 3478)
OTHER_SERVER: Address = ("198.51.100.2", 3478)
CLIENT: Address = ("192.0.2.10", 40000)
RELAYED: Address = ("198.51.100.1", 50000)
PEER: Address = ("203.0.113.7", 6000)

Handler = Callable[[RequestContext], ice.Message | None]


def success(ctx: RequestContext, *setters: ice.Attribute) -> ice.Message:
    request = ctx.request
    msg = ice.Message(ice.message_type(request.method, MessageClass.SUCCESS_RESPONSE))
    msg.transaction_id = request.transaction_id
    for setter in setters:
        setter.add_to(msg)
    return msg


def error(ctx: RequestContext, code: int, *setters: ice.Attribute) -> ice.Message:
    request = ctx.request
    msg = ice.Message(ice.message_type(request.method, MessageClass.ERROR_RESPONSE))
    msg.transaction_id = request.transaction_id
    ice.ErrorCodeAttribute(code).add_to(msg)
    for setter in setters:
        setter.add_to(msg)
    return msg


@dataclass
class ScriptedTurnServer:
    """A TURN server whose answers the test sets method by method."""

    address: Address
    lifetime: int = 600
    nonce_lifetime: float = 3600.0
    reliable: bool = False
    requests: list[ice.Message] = field(default_factory=list)
    relayed_to_peers: list[tuple[bytes, Address, str]] = field(default_factory=list)
    channels: dict[int, Address] = field(default_factory=dict)
    overrides: dict[int, Handler] = field(default_factory=dict)

    def __post_init__(self) -> None:
        auth = LongTermAuthenticator(
            "example.org",
            {"alice": "secret"},
            nonce_lifetime=self.nonce_lifetime,
            secret=b"t" * 32,
        )
        self.core = StunServer(authenticator=auth)
        for method in (
            Method.ALLOCATE,
            Method.REFRESH,
            Method.CREATE_PERMISSION,
            Method.CHANNEL_BIND,
        ):
            self.core.handle_method(int(method), self._dispatch)

    def _dispatch(self, ctx: RequestContext) -> ice.Message | None:
        self.requests.append(ctx.request)
        override = self.overrides.get(ctx.request.method)
        if override is not None:
            return override(ctx)
        method = ctx.request.method
        if method == Method.ALLOCATE:
            return success(
                ctx,
                ice.XorRelayedAddress(*RELAYED),
                ice.XorMappedAddress(*ctx.addr),
                ice.Lifetime(self.lifetime),
            )
        if method == Method.REFRESH:
            requested = ice.Lifetime.get_from(ctx.request)
            granted = requested.value if requested is not None else self.lifetime
            return success(ctx, ice.Lifetime(min(granted, self.lifetime)))
        if method == Method.CHANNEL_BIND:
            number = ice.ChannelNumber.get_from(ctx.request)
            peer = ice.XorPeerAddress.get_from(ctx.request)
            assert number is not None and peer is not None
            self.channels[number.number] = peer.address
        return success(ctx)

    def receive(self, data: bytes, addr: Address, now: float) -> list[ice.Transmit]:
        if 0x40 <= data[0] <= 0x4F:
            number, payload = ice.decode_channel_data(data, stream=self.reliable)
            self.relayed_to_peers.append((payload, self.channels[number], "channel"))
            return []
        msg = ice.Message.decode(data)
        if msg.type == SEND_INDICATION:
            peer = ice.XorPeerAddress.get_from(msg)
            payload = ice.Data.get_from(msg)
            assert peer is not None and payload is not None
            self.relayed_to_peers.append((payload.value, peer.address, "indication"))
            return []
        self.core.receive_datagram(data, addr, now, local=self.address)
        return self.core.datagrams_to_send(now)

    def of(self, request_type: int) -> list[ice.Message]:
        return [r for r in self.requests if r.type == request_type]


def run(
    session: TurnSession,
    servers: dict[Address, ScriptedTurnServer],
    now: float,
    *,
    silent: bool = False,
) -> list[TurnEvent]:
    """Move datagrams until quiet (the server drops everything when ``silent``);
    return the session's events."""
    while True:
        out = session.datagrams_to_send(now)
        if not out:
            break
        for transmit in out:
            server = servers[transmit.addr]
            if silent:
                continue
            for answer in server.receive(transmit.data, CLIENT, now):
                session.receive_datagram(answer.data, transmit.addr, now)
    events = []
    while (event := session.next_event()) is not None:
        events.append(event)
    return events


def advance(
    session: TurnSession,
    servers: dict[Address, ScriptedTurnServer],
    until: float,
    *,
    silent: bool = False,
) -> list[tuple[float, TurnEvent]]:
    """Fire every timer up to ``until``, exchanging datagrams at each."""
    seen = []
    while (timer := session.get_timer()) is not None and timer <= until:
        session.handle_timer(timer)
        seen += [(timer, e) for e in run(session, servers, timer, silent=silent)]
    return seen


def allocated(**options: object) -> tuple[TurnSession, ScriptedTurnServer, dict]:  # type: ignore[type-arg]
    lifetime = options.pop("server_lifetime", 600)
    server = ScriptedTurnServer(
        SERVER, lifetime=int(lifetime), reliable=bool(options.get("reliable"))
    )  # type: ignore[call-overload]
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"), **options)  # type: ignore[arg-type]
    servers = {SERVER: server}
    session.allocate(0.0)
    events = run(session, servers, 0.0)
    assert isinstance(events[-1], Allocated), events
    return session, server, servers


# -- allocate


def test_allocate_answers_the_challenge_and_reports_the_allocation() -> None:
    session, server, _ = allocated()
    (signed,) = server.of(0x0003)  # the one that passed authentication
    assert session.credentials.nonce is not None  # learnt from the 401 that came first
    assert ice.RequestedTransport.get_from(signed).protocol == 17  # type: ignore[union-attr]
    assert int(AttrType.MESSAGE_INTEGRITY_SHA256) in signed  # negotiated with our server
    assert session.state == "allocated"
    assert session.relayed_addresses == (RELAYED,)
    assert session.mapped_address == CLIENT
    assert session.lifetime == 600


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"family": 6}, {AttrType.REQUESTED_ADDRESS_FAMILY: b"\x02\x00\x00\x00"}),
        ({"dual_stack": True}, {AttrType.ADDITIONAL_ADDRESS_FAMILY: b"\x02\x00\x00\x00"}),
        ({"even_port": True, "reserve_next_port": True}, {AttrType.EVEN_PORT: b"\x80"}),
        ({"reservation_token": b"12345678"}, {AttrType.RESERVATION_TOKEN: b"12345678"}),
        ({"lifetime": 1200}, {AttrType.LIFETIME: (1200).to_bytes(4, "big")}),
        ({"dont_fragment": True}, {AttrType.DONT_FRAGMENT: b""}),
    ],
)
def test_allocate_carries_the_requested_options(
    options: dict[str, object], expected: dict[AttrType, bytes]
) -> None:
    _, server, _ = allocated(**options)
    allocate = server.requests[-1]
    for attr_type, value in expected.items():
        assert allocate.get(int(attr_type)) == value


def test_family_absent_for_ipv4_and_conflicting_options_are_refused() -> None:
    _, server, _ = allocated()
    assert int(AttrType.REQUESTED_ADDRESS_FAMILY) not in server.requests[-1]
    credentials = ice.LongTermCredentials("alice", "secret")
    with pytest.raises(ValueError):
        TurnSession(SERVER, credentials, reservation_token=b"12345678", even_port=True)
    with pytest.raises(ValueError):
        TurnSession(SERVER, credentials, family=6, dual_stack=True)


def test_dual_allocation_reports_both_relayed_addresses_and_a_refused_family() -> None:
    server = ScriptedTurnServer(SERVER)
    v6 = ("2001:db8::1", 50001)
    server.overrides[Method.ALLOCATE] = lambda ctx: success(
        ctx,
        ice.XorRelayedAddress(*RELAYED),
        ice.XorRelayedAddress(*v6),
        ice.XorMappedAddress(*ctx.addr),
        ice.Lifetime(600),
    )
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"), dual_stack=True)
    session.allocate(0.0)
    (event,) = run(session, {SERVER: server}, 0.0)
    assert isinstance(event, Allocated) and event.relayed == (RELAYED, v6)

    server.overrides[Method.ALLOCATE] = lambda ctx: success(
        ctx,
        ice.XorRelayedAddress(*RELAYED),
        ice.AddressErrorCode(2, 440),
        ice.Lifetime(600),
    )
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"), dual_stack=True)
    session.allocate(0.0)
    (event,) = run(session, {SERVER: server}, 0.0)
    assert isinstance(event, Allocated) and event.relayed == (RELAYED,)
    assert event.address_error is not None and event.address_error.startswith("IPv6: 440")


@pytest.mark.parametrize("code", [437, 441, 442, 486, 508])
def test_allocate_errors_are_reported_with_their_code(code: int) -> None:
    server = ScriptedTurnServer(SERVER)
    server.overrides[Method.ALLOCATE] = lambda ctx: error(ctx, code)
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"))
    session.allocate(0.0)
    (event,) = run(session, {SERVER: server}, 0.0)
    assert isinstance(event, AllocationFailed) and event.code == code
    assert session.state == "failed"
    with pytest.raises(ice.TurnError):
        session.send(b"x", PEER, 0.0)


def test_wrong_password_fails_with_401() -> None:
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "wrong"))
    session.allocate(0.0)
    (event,) = run(session, {SERVER: ScriptedTurnServer(SERVER)}, 0.0)
    assert isinstance(event, AllocationFailed) and event.code == 401


def test_unanswered_allocate_fails_after_the_transaction_timeout() -> None:
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"))
    servers = {SERVER: ScriptedTurnServer(SERVER)}
    session.allocate(0.0)
    run(session, servers, 0.0, silent=True)
    ((when, event),) = advance(session, servers, 100.0, silent=True)
    assert when == 39.5 and isinstance(event, AllocationFailed) and event.code == 0


def test_300_redirects_to_the_alternate_server_once() -> None:
    first = ScriptedTurnServer(SERVER)
    first.overrides[Method.ALLOCATE] = lambda ctx: error(
        ctx, 300, ice.AlternateServer(*OTHER_SERVER)
    )
    second = ScriptedTurnServer(OTHER_SERVER)
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"))
    session.allocate(0.0)

    events = run(session, {SERVER: first, OTHER_SERVER: second}, 0.0)

    assert events[0] == Redirected(OTHER_SERVER)
    assert isinstance(events[1], Allocated) and session.server == OTHER_SERVER
    assert second.of(0x0003)  # the Allocate went to the alternate
    # a server that redirects back is a loop: not followed
    second.overrides[Method.ALLOCATE] = lambda ctx: error(ctx, 300, ice.AlternateServer(*SERVER))
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"))
    session.allocate(0.0)
    events = run(session, {SERVER: first, OTHER_SERVER: second}, 0.0)
    assert isinstance(events[-1], AllocationFailed) and events[-1].code == 300


# -- refresh, loss, close


def test_the_allocation_is_refreshed_a_minute_before_it_expires() -> None:
    session, server, servers = allocated()
    seen = advance(session, servers, 1200.0)
    refreshes = [(t, e) for t, e in seen if isinstance(e, Refreshed)]
    assert [t for t, _ in refreshes] == [540.0, 1080.0]
    assert len(server.of(0x0004)) == 2


def test_a_short_lifetime_is_refreshed_at_three_quarters() -> None:
    session, _, servers = allocated(server_lifetime=20)
    seen = advance(session, servers, 31.0)
    assert [t for t, e in seen if isinstance(e, Refreshed)] == [15.0, 30.0]


def test_stale_nonce_on_refresh_is_answered_transparently() -> None:
    server = ScriptedTurnServer(SERVER, nonce_lifetime=100.0)
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"))
    servers = {SERVER: server}
    session.allocate(0.0)
    run(session, servers, 0.0)
    seen = advance(session, servers, 600.0)
    assert [type(e) for _, e in seen] == [Refreshed]
    refreshes = server.of(0x0004)  # the authenticated ones the handler saw
    assert len(refreshes) == 1
    # the stale attempt got 438 from the core, and the retry carried a fresh nonce
    assert ice.Nonce.get_from(refreshes[0]) != ice.Nonce.get_from(server.requests[0])


def test_refresh_refused_is_an_allocation_lost_event() -> None:
    session, server, servers = allocated()
    server.overrides[Method.REFRESH] = lambda ctx: error(ctx, 437)
    seen = advance(session, servers, 600.0)
    assert seen == [(540.0, AllocationLost(437, "Allocation Mismatch"))]
    assert session.state == "failed"


def test_server_gone_is_an_allocation_lost_event_before_expiry() -> None:
    session, _, servers = allocated()
    seen = advance(session, servers, 700.0, silent=True)
    ((when, event),) = seen
    assert isinstance(event, AllocationLost) and event.code == 0
    assert when == 540.0 + 39.5


def test_close_sends_lifetime_zero_and_reports_closed() -> None:
    session, server, servers = allocated()
    session.close(1.0)
    assert run(session, servers, 1.0) == [Closed()]
    assert ice.Lifetime.get_from(server.of(0x0004)[-1]) == ice.Lifetime(0)
    assert session.state == "closed" and session.get_timer() is None


# -- permissions and data


def test_first_send_installs_a_permission_then_sends_the_queued_data() -> None:
    session, server, servers = allocated(channel_after=0)
    session.send(b"one", PEER, 1.0)
    session.send(b"two", PEER, 1.0)
    events = run(session, servers, 1.0)

    assert events == [PermissionInstalled(("203.0.113.7",))]
    (create,) = server.of(CREATE_PERMISSION_REQUEST)
    assert ice.XorPeerAddress.get_from(create).host == "203.0.113.7"  # type: ignore[union-attr]
    assert server.relayed_to_peers == [(b"one", PEER, "indication"), (b"two", PEER, "indication")]


def test_permissions_for_several_peers_go_in_one_request() -> None:
    session, server, servers = allocated(channel_after=0)
    peers = [("203.0.113.7", 1), ("203.0.113.8", 2), ("2001:db8::9", 3)]
    for peer in peers:
        session.send(b"x", peer, 1.0)
    run(session, servers, 1.0)
    (create,) = server.of(CREATE_PERMISSION_REQUEST)
    assert len(create.get_all(int(AttrType.XOR_PEER_ADDRESS))) == 3
    assert len(server.relayed_to_peers) == 3


def test_a_permission_in_use_is_refreshed_and_an_unused_one_lapses() -> None:
    session, server, servers = allocated(channel_after=0)
    session.send(b"x", PEER, 0.0)
    session.send(b"y", ("203.0.113.8", 1), 0.0)
    run(session, servers, 0.0)
    advance(session, servers, 200.0)
    session.send(b"still in use", PEER, 200.0)
    run(session, servers, 200.0)

    advance(session, servers, 250.0)

    refreshes = server.of(CREATE_PERMISSION_REQUEST)[1:]
    assert len(refreshes) == 1  # at 240 s, for the peer still in use only
    assert [p.host for p in map(ice.XorPeerAddress.get_from, refreshes) if p] == ["203.0.113.7"]
    advance(session, servers, 301.0)
    session.send(b"again", ("203.0.113.8", 1), 301.0)  # its permission lapsed: a new one
    run(session, servers, 301.0)
    assert len(server.of(CREATE_PERMISSION_REQUEST)) == 3


def test_a_refused_permission_drops_the_waiting_data() -> None:
    session, server, servers = allocated(channel_after=0)
    server.overrides[Method.CREATE_PERMISSION] = lambda ctx: error(ctx, 403)
    session.send(b"x", PEER, 1.0)
    (event,) = run(session, servers, 1.0)
    assert isinstance(event, PermissionFailed) and event.code == 403
    assert server.relayed_to_peers == []


def test_incoming_data_indications_are_delivered() -> None:
    session, _, _ = allocated()
    indication = ice.Message.build(DATA_INDICATION, ice.XorPeerAddress(*PEER), ice.Data(b"hi"))
    session.receive_datagram(indication.raw, SERVER, 1.0)
    assert session.next_event() == DataReceived(b"hi", PEER, None)


def test_garbage_and_strangers_are_dropped_and_the_session_goes_on() -> None:
    session, _, servers = allocated(channel_after=0)
    for junk in (b"", b"\x00", b"\x40\x00\x00\x10abc", bytes(range(64)), b"\x17\x03\x03junk"):
        session.receive_datagram(junk, SERVER, 1.0)
    unknown_channel = ice.encode_channel_data(0x4321, b"who?")
    session.receive_datagram(unknown_channel, SERVER, 1.0)
    indication = ice.Message.build(DATA_INDICATION, ice.XorPeerAddress(*PEER), ice.Data(b"x"))
    session.receive_datagram(indication.raw, ("203.0.113.66", 3478), 1.0)  # not the server
    assert session.next_event() is None
    assert session.dropped == 7
    session.send(b"still works", PEER, 1.0)
    assert run(session, servers, 1.0) == [PermissionInstalled(("203.0.113.7",))]


# -- channels


def test_steady_traffic_gets_a_channel_and_channeldata_after_the_binding() -> None:
    session, server, servers = allocated(channel_after=2)
    session.send(b"a", PEER, 1.0)
    session.send(b"b", PEER, 1.0)  # the second datagram asks for a channel
    events = run(session, servers, 1.0)
    assert ChannelBound(0x4000, PEER) in events
    session.send(b"c", PEER, 2.0)
    run(session, servers, 2.0)
    # the ChannelBind (asked for on the second datagram) also installs the permission,
    # so whichever answer comes first releases the two waiting datagrams, in order
    assert [(data, peer) for data, peer, _ in server.relayed_to_peers] == [
        (b"a", PEER),
        (b"b", PEER),
        (b"c", PEER),
    ]
    assert server.relayed_to_peers[-1][2] == "channel"
    session.receive_datagram(ice.encode_channel_data(0x4000, b"back"), SERVER, 3.0)
    assert session.next_event() == DataReceived(b"back", PEER, 0x4000)


def test_a_channel_in_use_is_rebound_before_600_s_and_its_permission_kept() -> None:
    session, server, servers = allocated(channel_after=1)
    session.send(b"a", PEER, 0.0)
    run(session, servers, 0.0)
    for t in range(30, 600, 30):
        advance(session, servers, float(t))
        session.send(b"tick", PEER, float(t))
        run(session, servers, float(t))
    binds = [r for r in server.requests if r.method == Method.CHANNEL_BIND]
    assert len(binds) == 2  # the first, and the refresh at 540 s
    assert all(kind == "channel" for _, _, kind in server.relayed_to_peers[1:])


def test_channeldata_over_tcp_is_padded_to_four_bytes() -> None:
    session, _, servers = allocated(reliable=True, channel_after=1)
    session.send(b"a", PEER, 0.0)
    run(session, servers, 0.0)
    session.send(b"odd", PEER, 1.0)
    (frame,) = session.datagrams_to_send(1.0)
    assert len(frame.data) == 8 and frame.data[4:7] == b"odd"
    session.receive_datagram(ice.encode_channel_data(0x4000, b"12345", stream=True), SERVER, 1.0)
    assert session.next_event() == DataReceived(b"12345", PEER, 0x4000)


def test_the_timer_never_asks_to_be_fired_in_the_past() -> None:
    session, _, servers = allocated(channel_after=1)
    session.send(b"a", PEER, 0.0)
    run(session, servers, 0.0)
    now = 0.0
    for _ in range(200):
        timer = session.get_timer()
        assert timer is not None
        assert timer > now or timer == now == 0.0
        now = timer
        session.handle_timer(now)
        session.send(b"keep", PEER, now)
        run(session, servers, now)
        if now > 2000:
            break
    assert session.state == "allocated"


def test_error_response_type_is_allocate_error() -> None:
    assert ice.message_type(Method.ALLOCATE, MessageClass.ERROR_RESPONSE) == ALLOCATE_ERROR


def test_malformed_success_responses_fail_cleanly() -> None:
    server = ScriptedTurnServer(SERVER)
    server.overrides[Method.ALLOCATE] = lambda ctx: success(ctx, ice.Lifetime(600))
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"))
    session.allocate(0.0)
    (event,) = run(session, {SERVER: server}, 0.0)
    assert isinstance(event, AllocationFailed) and "XOR-RELAYED-ADDRESS" in event.reason

    def bad_lifetime(ctx: RequestContext) -> ice.Message:
        response = success(ctx, ice.XorRelayedAddress(*RELAYED))
        response.add(int(AttrType.LIFETIME), b"\x00\x01")  # two bytes, not four
        return response

    server.overrides[Method.ALLOCATE] = bad_lifetime
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"))
    session.allocate(0.0)
    (event,) = run(session, {SERVER: server}, 0.0)
    assert isinstance(event, AllocationFailed) and event.reason.startswith("malformed response")


def test_the_fast_path_frames_and_unframes_channeldata_once_a_channel_is_bound() -> None:
    session, _, servers = allocated(channel_after=0)
    assert session.encapsulate(b"x", PEER) is None  # no channel yet: use send()
    session.bind_channel(PEER, 0.0)
    run(session, servers, 0.0)

    assert session.encapsulate(b"fast", PEER) == ice.encode_channel_data(0x4000, b"fast")
    assert session.decapsulate(ice.encode_channel_data(0x4000, b"back")) == (b"back", PEER)
    assert session.decapsulate(ice.encode_channel_data(0x4001, b"unknown")) is None
    indication = ice.Message.build(DATA_INDICATION, ice.XorPeerAddress(*PEER), ice.Data(b"i"))
    assert session.decapsulate(indication.raw) is None  # the event path handles those
    for not_channel_data in (b"", b"\x40\x00\x00", b"\x40\x00\x00\x09short", b"\x50\x00\x00\x00"):
        assert session.decapsulate(not_channel_data) is None
    assert session.next_event() is None  # the fast path queues nothing


def test_a_lapsed_permission_takes_a_bound_channel_off_the_fast_path_until_reinstalled() -> None:
    session, server, servers = allocated(channel_after=0)
    session.bind_channel(PEER, 0.0)
    run(session, servers, 0.0)
    seen = advance(session, servers, 301.0)  # unused: the permission lapses (a channel: 600 s)
    assert (300.0, PermissionExpired(("203.0.113.7",))) in seen
    assert session.encapsulate(b"x", PEER) is None

    session.send(b"again", PEER, 301.0)  # a new CreatePermission, then the data by channel
    run(session, servers, 301.0)

    assert server.relayed_to_peers[-1] == (b"again", PEER, "channel")
    assert session.encapsulate(b"x", PEER) is not None


# -- what the server holds, as the session knows it


def test_has_permission_from_install_through_refresh_to_lapse() -> None:
    session, _, servers = allocated(channel_after=0)
    peer6 = ("2001:db8::9", 3)
    assert not session.has_permission(PEER[0])
    session.create_permission([PEER, peer6], 0.0)
    assert not session.has_permission(PEER[0])  # asked for, not granted yet
    run(session, servers, 0.0)
    assert session.has_permission(PEER[0]) and session.has_permission("2001:db8::9")
    assert session.has_permission("2001:0db8:0::0009")  # any spelling
    for t in (60.0, 120.0, 180.0, 230.0):  # PEER in use: refreshed at 240 s; peer6 idle
        advance(session, servers, t)
        session.send(b"tick", PEER, t)
        run(session, servers, t)

    seen = advance(session, servers, 300.0)

    assert (300.0, PermissionExpired(("2001:db8::9",))) in seen
    assert session.has_permission(PEER[0]) and not session.has_permission("2001:db8::9")


def test_has_permission_holds_while_a_refresh_is_unanswered_and_not_after_it_fails() -> None:
    session, _, servers = allocated(channel_after=0)
    session.send(b"x", PEER, 0.0)
    run(session, servers, 0.0)
    session.send(b"in use", PEER, 100.0)
    run(session, servers, 100.0)
    advance(session, servers, 241.0, silent=True)  # the refresh at 240 s goes unanswered
    assert session.has_permission(PEER[0])

    seen = advance(session, servers, 290.0, silent=True)

    assert any(isinstance(event, PermissionFailed) for _, event in seen)
    assert not session.has_permission(PEER[0])


def test_a_refused_permission_is_not_held() -> None:
    session, server, servers = allocated(channel_after=0)
    server.overrides[Method.CREATE_PERMISSION] = lambda ctx: error(ctx, 403)
    session.create_permission([PEER], 1.0)
    run(session, servers, 1.0)
    assert not session.has_permission(PEER[0])


def test_channel_for_is_the_bound_number_through_refreshes_until_it_lapses() -> None:
    session, server, servers = allocated(channel_after=0)
    peer6 = ("2001:db8::9", 3)
    assert session.channel_for(PEER) is None
    number = session.bind_channel(PEER, 0.0)
    other = session.bind_channel(peer6, 0.0)
    assert session.channel_for(PEER) is None  # its ChannelBind is not answered yet
    run(session, servers, 0.0)
    assert session.channel_for(PEER) == number and session.channel_for(peer6) == other
    assert session.channel_for(("2001:0db8::0009", 3)) == other  # any spelling
    assert session.has_permission(PEER[0])  # ChannelBind installed it
    for t in range(30, 720, 30):  # PEER in use: rebound at 540 s; peer6 idle
        advance(session, servers, float(t))
        session.send(b"tick", PEER, float(t))
        run(session, servers, float(t))
        assert session.channel_for(PEER) == number
    binds = [r for r in server.requests if r.method == Method.CHANNEL_BIND]
    assert len(binds) == 3  # two at first, PEER's refresh at 540 s
    assert session.channel_for(peer6) is None  # lapsed unused at 600 s

    advance(session, servers, 1679.0)  # used since 540 s: rebound at 1080 s, then idle
    assert session.channel_for(PEER) == number
    advance(session, servers, 1680.0)
    assert session.channel_for(PEER) is None


def test_a_refused_channel_has_no_number() -> None:
    session, server, servers = allocated(channel_after=0)
    server.overrides[Method.CHANNEL_BIND] = lambda ctx: error(ctx, 400)
    session.bind_channel(PEER, 1.0)
    run(session, servers, 1.0)
    assert session.channel_for(PEER) is None


def test_a_redirect_carries_the_alternate_domain_for_tls() -> None:
    first = ScriptedTurnServer(SERVER)
    first.overrides[Method.ALLOCATE] = lambda ctx: error(
        ctx, 300, ice.AlternateServer(*OTHER_SERVER), ice.AlternateDomain("turn2.example.org")
    )
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"), reliable=True)
    session.allocate(0.0)
    events = run(session, {SERVER: first, OTHER_SERVER: ScriptedTurnServer(OTHER_SERVER)}, 0.0)
    assert events[0] == Redirected(OTHER_SERVER, "turn2.example.org")


def test_allocation_options_are_taken_once_and_a_misspelt_one_is_refused() -> None:
    credentials = ice.LongTermCredentials("alice", "secret")
    session = TurnSession(SERVER, credentials, family=6, channel_after=0)
    assert (session.family, session.channel_after, session.relay_transport) == (6, 0, "udp")
    with pytest.raises(TypeError, match="familly"):
        TurnSession(SERVER, credentials, familly=6)  # type: ignore[call-arg]


# -- hostile server input (issue 15, defect 2): one event per transaction, never a raise

#: REALM values a client cannot sign with: too long, a control character, not UTF-8.
BAD_REALMS = {"long": b"r" * 200, "control": b"re\x07alm", "not-utf-8": b"\xff\xfe"}


def _stale_with_realm(realm: bytes) -> Handler:
    """A 438 whose REALM is ``realm`` (raw) and whose NONCE is new: the client retries
    with them, or cannot, and must then fail the request."""

    def answer(ctx: RequestContext) -> ice.Message:
        msg = error(ctx, 438)
        msg.add(int(AttrType.REALM), realm)
        ice.Nonce("a-fresh-nonce-value").add_to(msg)
        return msg

    return answer


def _events_until_quiet(
    session: TurnSession, servers: dict[Address, ScriptedTurnServer], now: float
) -> list[TurnEvent]:
    events = run(session, servers, now)
    return events + [e for _, e in advance(session, servers, now + 60)]


@pytest.mark.parametrize("realm", BAD_REALMS.values(), ids=BAD_REALMS.keys())
def test_a_bad_realm_fails_the_allocate_with_the_reason(realm: bytes) -> None:
    server = ScriptedTurnServer(SERVER)
    server.overrides[Method.ALLOCATE] = _stale_with_realm(realm)
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"))
    session.allocate(0.0)
    events = _events_until_quiet(session, {SERVER: server}, 0.0)
    assert len(events) == 1 and isinstance(events[0], AllocationFailed), events
    assert events[0].code == 438 and "cannot answer the challenge" in events[0].reason
    assert session.state == "failed" and session.get_timer() is None


@pytest.mark.parametrize("realm", BAD_REALMS.values(), ids=BAD_REALMS.keys())
def test_a_bad_realm_on_refresh_loses_the_allocation_with_the_reason(realm: bytes) -> None:
    session, server, servers = allocated()
    server.overrides[Method.REFRESH] = _stale_with_realm(realm)
    seen = [e for _, e in advance(session, servers, 600.0)]
    lost = [e for e in seen if isinstance(e, AllocationLost)]
    assert len(lost) == 1 and lost[0].code == 438, seen
    assert "cannot answer the challenge" in lost[0].reason


@pytest.mark.parametrize("how", ["create_permission", "send"])
@pytest.mark.parametrize("realm", BAD_REALMS.values(), ids=BAD_REALMS.keys())
def test_a_bad_realm_fails_the_permission_with_the_reason(realm: bytes, how: str) -> None:
    session, server, servers = allocated()
    server.overrides[Method.CREATE_PERMISSION] = _stale_with_realm(realm)
    if how == "send":
        session.send(b"queued for the permission", PEER, 1.0)
    else:
        session.create_permission([PEER[0]], 1.0)
    events = run(session, servers, 1.0)
    assert len(events) == 1 and isinstance(events[0], PermissionFailed), events
    assert events[0].code == 438 and "cannot answer the challenge" in events[0].reason
    assert not session.has_permission(PEER[0])


@pytest.mark.parametrize("realm", BAD_REALMS.values(), ids=BAD_REALMS.keys())
def test_a_bad_realm_fails_the_channel_bind_with_the_reason(realm: bytes) -> None:
    session, server, servers = allocated()
    server.overrides[Method.CHANNEL_BIND] = _stale_with_realm(realm)
    session.bind_channel(PEER, 1.0)
    events = run(session, servers, 1.0)
    assert len(events) == 1 and isinstance(events[0], ChannelBindFailed), events
    assert events[0].code == 438 and "cannot answer the challenge" in events[0].reason
    assert session.channel_for(PEER) is None


def _raw_attribute_answer(code: int | None, attr_type: int, value: bytes) -> Handler:
    def answer(ctx: RequestContext) -> ice.Message:
        msg = success(ctx) if code is None else error(ctx, code)
        if code is None and attr_type != int(AttrType.XOR_RELAYED_ADDRESS):
            ice.XorRelayedAddress(*RELAYED).add_to(msg)
        msg.add(attr_type, value)
        return msg

    return answer


BAD_ADDRESS = b"\x00\x09\x00\x01\x01\x02\x03\x04"  # family 9


@pytest.mark.parametrize(
    ("code", "attr_type", "value", "reason"),
    [
        (300, int(AttrType.ALTERNATE_SERVER), BAD_ADDRESS, "malformed 300 response"),
        (300, int(AttrType.ALTERNATE_SERVER), b"\x00\x01", "malformed 300 response"),
        (None, int(AttrType.XOR_RELAYED_ADDRESS), BAD_ADDRESS, "malformed response"),
        (None, int(AttrType.XOR_MAPPED_ADDRESS), b"\x00\x01", "malformed response"),
        (None, int(AttrType.LIFETIME), b"\x00\x01", "malformed response"),
    ],
    ids=["alternate-family", "alternate-short", "relayed-family", "mapped-short", "lifetime"],
)
def test_a_malformed_attribute_in_the_allocate_answer_fails_it(
    code: int | None, attr_type: int, value: bytes, reason: str
) -> None:
    server = ScriptedTurnServer(SERVER)
    server.overrides[Method.ALLOCATE] = _raw_attribute_answer(code, attr_type, value)
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"))
    session.allocate(0.0)
    events = _events_until_quiet(session, {SERVER: server}, 0.0)
    assert len(events) == 1 and isinstance(events[0], AllocationFailed), events
    assert events[0].reason.startswith(reason)


def test_an_error_response_with_a_malformed_error_code_is_ignored_then_times_out() -> None:
    # It may be forged (anyone can send one); the request waits for the real answer,
    # and without one ends in its timeout: one event either way.
    server = ScriptedTurnServer(SERVER)

    def bad_error_code(ctx: RequestContext) -> ice.Message:
        msg = ice.Message(ice.message_type(ctx.request.method, MessageClass.ERROR_RESPONSE))
        msg.transaction_id = ctx.request.transaction_id
        msg.add(int(AttrType.ERROR_CODE), b"\x00\x00\x04\x00\xff\xfe\xfd\xfc")
        return msg

    server.overrides[Method.ALLOCATE] = bad_error_code
    session = TurnSession(SERVER, ice.LongTermCredentials("alice", "secret"))
    session.allocate(0.0)
    events = _events_until_quiet(session, {SERVER: server}, 0.0)
    assert len(events) == 1 and isinstance(events[0], AllocationFailed), events
    assert events[0].reason.startswith("no answer")
