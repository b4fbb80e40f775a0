"""The TURN server core under virtual time, driven by our own TURN client machine
and by raw STUN clients (for requests a `TurnSession` would never send).

Every outcome is read off the wire (the client's TransactionFailed /
AllocationFailed / PermissionFailed event and its code) or off the server's
state; time moves only with `TurnNet.advance`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest

from ice import Message
from ice._codec import decode_channel_data, encode_channel_data
from ice.attrs import (
    AdditionalAddressFamily,
    AddressErrorCode,
    AlternateServer,
    ChannelNumber,
    Data,
    DontFragment,
    ErrorCodeAttribute,
    EvenPort,
    Lifetime,
    Nonce,
    Realm,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    UnknownAttributes,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
)
from ice.constants import (
    ALLOCATE_REQUEST,
    BINDING_REQUEST,
    BINDING_SUCCESS,
    CHANNEL_BIND_REQUEST,
    CREATE_PERMISSION_REQUEST,
    DATA_INDICATION,
    REFRESH_REQUEST,
    SEND_INDICATION,
    AttrType,
    MessageClass,
)
from ice.machine import Address
from ice.stun.server_auth import LongTermAuthenticator
from ice.stun.transaction import TransactionEvent, TransactionFailed, TransactionSucceeded
from ice.turn.allocation import CHANNEL_COOLDOWN, CHANNEL_LIFETIME, PERMISSION_LIFETIME
from ice.turn.client import TurnSession
from ice.turn.events import (
    Allocated,
    AllocationFailed,
    ChannelBound,
    Closed,
    DataReceived,
    PermissionFailed,
    PermissionInstalled,
    Refreshed,
)
from ice.turn.policy import PeerPolicy, parse_networks
from ice.turn.ports import MemoryRelaySockets
from ice.turn.server import RESERVATION_LIFETIME, TurnLimits, TurnServer
from tests.support.turn_harness import (
    CLIENT,
    PEER,
    PEER6,
    REALM,
    RELAY_IP,
    RELAY_IP6,
    SERVER,
    SERVER6,
    USERS,
    Client,
    TurnNet,
    at,
)

UDP = 17
TCP = 6
IPV4 = 1
IPV6 = 2
PEER_B: Address = ("203.0.113.8", 6001)
PEER_C: Address = ("203.0.113.9", 6002)
ALT1: Address = ("198.51.100.2", 3478)
ALT2: Address = ("198.51.100.3", 3478)
UNKNOWN_REQUIRED = 0x7F00  # comprehension-required, assigned to nothing


# -- building requests and reading answers


def allocate_request(*attrs: object, transport: int | None = UDP) -> Message:
    message = Message.build(ALLOCATE_REQUEST)
    if transport is not None:
        RequestedTransport(transport).add_to(message)
    for attr in attrs:
        attr.add_to(message)  # type: ignore[attr-defined]
    return message


def ok(event: TransactionEvent) -> Message:
    assert isinstance(event, TransactionSucceeded), event
    return event.response


def failed(event: TransactionEvent, code: int) -> TransactionFailed:
    assert isinstance(event, TransactionFailed), event
    assert event.code == code, (event.code, event.reason)
    return event


def relayed(response: Message) -> list[Address]:
    """Every XOR-RELAYED-ADDRESS of an Allocate success (the XOR needs the ID)."""
    out = []
    for value in response.get_all(int(AttrType.XOR_RELAYED_ADDRESS)):
        single = Message(response.type, response.transaction_id)
        single.add(int(AttrType.XOR_RELAYED_ADDRESS), value)
        attr = XorRelayedAddress.get_from(single)
        assert attr is not None
        out.append(attr.address)
    return out


def lifetime_of(response: Message) -> int:
    lifetime = Lifetime.get_from(response)
    assert lifetime is not None
    return lifetime.value


def raw_allocation(
    net: TurnNet, addr: Address = CLIENT, *attrs: object, user: str = "alice"
) -> tuple[Client, Address]:
    """A raw client with an allocation (nothing refreshes it) and its relayed address."""
    client = net.raw(addr, user)
    response = ok(net.request(client, allocate_request(*attrs)))
    return client, relayed(response)[0]


def permit(net: TurnNet, client: Client, *peers: Address) -> TransactionEvent:
    request = Message.build(CREATE_PERMISSION_REQUEST)
    for peer in peers:
        XorPeerAddress(*peer).add_to(request)
    return net.request(client, request)


def bind(net: TurnNet, client: Client, number: int, peer: Address) -> TransactionEvent:
    request = Message.build(CHANNEL_BIND_REQUEST, ChannelNumber(number), XorPeerAddress(*peer))
    return net.request(client, request)


def refresh(net: TurnNet, client: Client, *attrs: object) -> TransactionEvent:
    request = Message.build(REFRESH_REQUEST)
    for attr in attrs:
        attr.add_to(request)  # type: ignore[attr-defined]
    return net.request(client, request)


def send_indication(peer: Address, data: bytes) -> bytes:
    return Message.build(SEND_INDICATION, XorPeerAddress(*peer), Data(data)).raw


def session_of(client: Client) -> TurnSession:
    assert isinstance(client.machine, TurnSession)
    return client.machine


def events(client: Client, kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in client.events if isinstance(e, kind)]


def payloads_to(net: TurnNet, addr: Address = CLIENT, reliable: bool = False) -> list[bytes]:
    """The peer data the server relayed to ``addr`` so far (Data indications, ChannelData)."""
    out = []
    for transmit in net.to_clients:
        if transmit.addr != addr:
            continue
        data = transmit.data
        if 0x40 <= data[0] <= 0x4F:
            out.append(decode_channel_data(data, reliable)[1])
            continue
        message = Message.decode(data)
        if message.type == DATA_INDICATION:
            attr = Data.get_from(message)
            assert attr is not None
            out.append(attr.value)
    return out


def answers(transmits: list, kind: int | None = None) -> list[Message]:  # type: ignore[type-arg]
    messages = [Message.decode(t.data) for t in transmits]
    return [m for m in messages if kind is None or m.type == kind]


def binding_still_answered(net: TurnNet, addr: Address = ("192.0.2.200", 1)) -> None:
    out = net.inject(Message.build(BINDING_REQUEST).raw, addr)
    assert len(out) == 1 and out[0].addr == addr
    response = Message.decode(out[0].data)
    assert response.type == BINDING_SUCCESS
    mapped = XorMappedAddress.get_from(response)
    assert mapped is not None and mapped.address == addr


# -- the happy path (the starter tests)


def test_allocate_relays_both_ways_through_a_channel() -> None:
    net = TurnNet()
    client = net.allocate()
    session = session_of(client)
    allocated = [e for e in client.events if isinstance(e, Allocated)]
    assert allocated, client.events
    relay = session.relayed_addresses[0]
    assert relay[0] == RELAY_IP and 49152 <= relay[1] <= 65535
    assert session.mapped_address == CLIENT
    assert session.lifetime == 600
    assert relay in net.sockets.open

    for i in range(4):  # permission, then Send indications, then a channel
        session.send(b"ping %d" % i, PEER, net.now)
        net.pump()
    assert [d for d, _, _ in net.at_peers] == [b"ping %d" % i for i in range(4)]
    assert {(src, dst) for _, src, dst in net.at_peers} == {(relay, PEER)}
    assert any(isinstance(e, ChannelBound) for e in client.events)

    net.from_peer(b"pong", PEER, relay)
    received = [e for e in client.events if isinstance(e, DataReceived)]
    assert [(e.data, e.peer) for e in received] == [(b"pong", PEER)]


def test_peer_without_permission_is_dropped() -> None:
    net = TurnNet()
    client = net.allocate()
    relay = session_of(client).relayed_addresses[0]
    net.from_peer(b"unsolicited", PEER, relay)
    assert not [e for e in client.events if isinstance(e, DataReceived)]
    assert net.server.drops["no-permission"] == 1


def test_loopback_peer_refused_with_403() -> None:
    net = TurnNet()
    client = net.allocate()
    session_of(client).create_permission(["127.0.0.1"], net.now)
    net.pump()
    failures = [e for e in client.events if isinstance(e, PermissionFailed)]
    assert failures and failures[0].code == 403


# -- construction


@pytest.mark.parametrize(
    "options",
    [
        {"default_lifetime": 0},
        {"default_lifetime": 700, "max_lifetime": 600},
        {"user_quota": -1},
        {"total_quota": -1},
        {"bandwidth": -1},
        {"max_permissions": 0},
        {"max_channels": 0},
    ],
)
def test_limits_refuse_nonsense(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TurnLimits(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"relay_ips": ()},
        {"relay_ips": ("198.51.100.1", "198.51.100.2")},
        {"relay_ips": ("2001:db8::1", "2001:db8::2")},
        {"relay_ips": ("198.51.100.1",), "redirect_all": True},
        {"relay_ips": ("198.51.100.1",), "relay_ports": (0, 10)},
        {"relay_ips": ("198.51.100.1",), "relay_ports": (50001, 50000)},
    ],
)
def test_server_refuses_nonsense(options: dict[str, object]) -> None:
    authenticator = LongTermAuthenticator(REALM, USERS)
    with pytest.raises(ValueError):
        TurnServer(authenticator=authenticator, sockets=MemoryRelaySockets(), **options)  # type: ignore[arg-type]


# -- 300 Try Alternate


def test_300_redirect_all_names_the_alternates_in_turn() -> None:
    net = TurnNet(alternate_servers=[ALT1, ALT2], redirect_all=True)
    targets = []
    for i in range(3):
        client = net.raw(at(i))
        response = failed(net.request(client, allocate_request()), 300).response
        alternate = AlternateServer.get_from(response)
        assert alternate is not None
        targets.append(alternate.address)
    assert targets == [ALT1, ALT2, ALT1]
    assert net.server.allocation_count == 0 and not net.sockets.open
    assert net.server.counters()["errors_300"] == 3


def test_300_when_total_quota_is_reached_with_alternates() -> None:
    net = TurnNet(limits=TurnLimits(total_quota=1), alternate_servers=[ALT1])
    raw_allocation(net, at(0))
    client = net.raw(at(1), "bob")
    response = failed(net.request(client, allocate_request()), 300).response
    alternate = AlternateServer.get_from(response)
    assert alternate is not None and alternate.address == ALT1
    assert net.server.allocation_count == 1


def test_508_when_total_quota_is_reached_without_alternates() -> None:
    net = TurnNet(limits=TurnLimits(total_quota=2))
    raw_allocation(net, at(0))
    raw_allocation(net, at(1), user="bob")
    client = net.raw(at(2))
    assert (
        AlternateServer.get_from(failed(net.request(client, allocate_request()), 508).response)
        is None
    )
    assert net.server.allocation_count == 2
    # A freed slot is usable again.
    first = net.raw(at(0))
    ok(refresh(net, first, Lifetime(0)))
    raw_allocation(net, at(2))


# -- 400 Bad Request


def _family_value(family: int, length: int = 4) -> bytes:
    return bytes([family]) + bytes(length - 1)


class _RawAttr:
    """An attribute added as raw bytes (for values the typed classes refuse to build)."""

    def __init__(self, attr_type: int, value: bytes) -> None:
        self.attr_type = attr_type
        self.value = value

    def add_to(self, message: Message) -> None:
        message.add(self.attr_type, self.value)


@pytest.mark.parametrize(
    "attrs, transport",
    [
        pytest.param((), None, id="no REQUESTED-TRANSPORT"),
        pytest.param((EvenPort(False), ReservationToken(b"12345678")), UDP, id="token+even"),
        pytest.param(
            (RequestedAddressFamily(IPV4), ReservationToken(b"12345678")), UDP, id="token+family"
        ),
        pytest.param(
            (RequestedAddressFamily(IPV4), AdditionalAddressFamily(IPV6)),
            UDP,
            id="requested+additional",
        ),
        pytest.param((AdditionalAddressFamily(IPV4),), UDP, id="additional IPv4"),
        pytest.param(
            (_RawAttr(int(AttrType.REQUESTED_ADDRESS_FAMILY), _family_value(IPV4, 8)),),
            UDP,
            id="family 8 bytes",
        ),
        pytest.param(
            (_RawAttr(int(AttrType.REQUESTED_TRANSPORT), b"\x11\x00"),), None, id="short transport"
        ),
    ],
)
def test_400_malformed_allocate(attrs: tuple[object, ...], transport: int | None) -> None:
    net = TurnNet()
    client = net.raw()
    failed(net.request(client, allocate_request(*attrs, transport=transport)), 400)
    assert net.server.allocation_count == 0 and not net.sockets.open
    assert not net.server.counters()["reservations"]


def _channel_bind_with(*attrs: object) -> Message:
    request = Message.build(CHANNEL_BIND_REQUEST)
    for attr in attrs:
        attr.add_to(request)  # type: ignore[attr-defined]
    return request


_CHANNEL = int(AttrType.CHANNEL_NUMBER)


@pytest.mark.parametrize(
    "request_for",
    [
        pytest.param(
            lambda: _channel_bind_with(
                _RawAttr(_CHANNEL, b"\x3f\xff\x00\x00"), XorPeerAddress(*PEER)
            ),
            id="0x3fff",
        ),
        pytest.param(
            lambda: _channel_bind_with(
                _RawAttr(_CHANNEL, b"\x80\x00\x00\x00"), XorPeerAddress(*PEER)
            ),
            id="0x8000",
        ),
        pytest.param(
            lambda: _channel_bind_with(_RawAttr(_CHANNEL, b"\x40\x00"), XorPeerAddress(*PEER)),
            id="short number",
        ),
        pytest.param(lambda: _channel_bind_with(XorPeerAddress(*PEER)), id="no number"),
        pytest.param(lambda: _channel_bind_with(ChannelNumber(0x4000)), id="no peer"),
        pytest.param(lambda: _channel_bind_with(), id="nothing"),
    ],
)
def test_400_malformed_channel_bind(request_for: Callable[[], Message]) -> None:
    net = TurnNet()
    client, _ = raw_allocation(net)
    failed(net.request(client, request_for()), 400)
    allocation = net.server.allocation_for(CLIENT, SERVER)
    assert not allocation.channels and not allocation.permissions


def test_400_channel_bind_conflicts() -> None:
    net = TurnNet()
    client, _ = raw_allocation(net)
    ok(bind(net, client, 0x4000, PEER))
    failed(bind(net, client, 0x4000, PEER_B), 400)  # the number is bound to another peer
    failed(bind(net, client, 0x4001, PEER), 400)  # the peer is bound to another number
    ok(bind(net, client, 0x4000, PEER))  # the same binding again: a refresh
    ok(bind(net, client, 0x4001, (PEER[0], PEER[1] + 1)))  # same IP, other port: another peer
    allocation = net.server.allocation_for(CLIENT, SERVER)
    assert {n: c.peer for n, c in allocation.channels.items()} == {
        0x4000: PEER,
        0x4001: (PEER[0], PEER[1] + 1),
    }


def test_400_create_permission_without_peer() -> None:
    net = TurnNet()
    client, _ = raw_allocation(net)
    failed(net.request(client, Message.build(CREATE_PERMISSION_REQUEST)), 400)
    assert not net.server.allocation_for(CLIENT, SERVER).permissions


# -- 401 Unauthenticated


def test_401_without_credentials() -> None:
    net = TurnNet()
    client = net.raw(user=None)
    response = failed(net.request(client, allocate_request()), 401).response
    realm = Realm.get_from(response)
    assert realm is not None and realm.value == REALM
    assert Nonce.get_from(response) is not None
    assert net.server.allocation_count == 0 and not net.sockets.open


@pytest.mark.parametrize("user, password", [("alice", "not-the-password"), ("mallory", "secret")])
def test_401_wrong_password_or_unknown_user(user: str, password: str) -> None:
    net = TurnNet()
    client = net.raw(user=user, password=password)
    failed(net.request(client, allocate_request()), 401)
    session = net.allocate(at(1), user, password)
    assert [e.code for e in events(session, AllocationFailed)] == [401]
    assert net.server.allocation_count == 0 and not net.sockets.open
    assert net.server.counters()["errors_401"] == 4  # challenge + refusal, twice


# -- 403 Forbidden (the peer policy)


@pytest.mark.parametrize(
    "policy, peer, code",
    [
        (PeerPolicy(), "127.0.0.1", 403),
        (PeerPolicy(allow_loopback=True), "127.0.0.1", 200),
        (PeerPolicy(), "::1", 403),
        (PeerPolicy(allow_loopback=True), "::1", 200),
        (PeerPolicy(), "169.254.169.254", 403),
        (PeerPolicy(allow_private=True, allow_loopback=True), "169.254.169.254", 403),
        (PeerPolicy(allow=parse_networks(["169.254.169.254"])), "169.254.169.254", 200),
        (PeerPolicy(allow_private=True), "fd00:ec2::254", 403),
        (PeerPolicy(), "10.1.2.3", 403),
        (PeerPolicy(allow_private=True), "10.1.2.3", 200),
        (PeerPolicy(), "fd12:3456::1", 403),
        (PeerPolicy(allow_private=True), "fd12:3456::1", 200),
        (PeerPolicy(), "::ffff:127.0.0.1", 403),
        (PeerPolicy(), "::ffff:10.0.0.1", 403),
        (PeerPolicy(allow_private=True), "::ffff:169.254.169.254", 403),
        (PeerPolicy(), "224.0.0.1", 403),
        (PeerPolicy(), "255.255.255.255", 403),
        (PeerPolicy(), "0.0.0.0", 403),
        (PeerPolicy(deny=parse_networks(["203.0.113.0/24"])), PEER[0], 403),
        (PeerPolicy(), PEER[0], 200),
        (PeerPolicy(), PEER6[0], 200),
    ],
)
def test_403_peer_policy(policy: PeerPolicy, peer: str, code: int) -> None:
    net = TurnNet(policy=policy)
    client, _ = raw_allocation(net, CLIENT, AdditionalAddressFamily(IPV6))
    allocation = net.server.allocation_for(CLIENT, SERVER)
    for event in (permit(net, client, (peer, 5000)), bind(net, client, 0x4000, (peer, 5000))):
        if code == 200:
            ok(event)
        else:
            assert "Forbidden" in failed(event, code).reason
    assert bool(allocation.permissions) == (code == 200)
    assert bool(allocation.channels) == (code == 200)


def test_403_one_bad_peer_refuses_the_whole_create_permission() -> None:
    net = TurnNet()
    client, _ = raw_allocation(net)
    failed(permit(net, client, PEER, ("127.0.0.1", 1), PEER_B), 403)
    assert not net.server.allocation_for(CLIENT, SERVER).permissions


def test_403_through_the_session() -> None:
    net = TurnNet()
    client = net.allocate()
    session = session_of(client)
    session.send(b"x", ("192.168.1.1", 9), net.now)
    net.pump()
    assert [(e.peers, e.code) for e in events(client, PermissionFailed)] == [
        (("192.168.1.1",), 403)
    ]
    assert not net.at_peers


# -- 420 Unknown Attribute


def test_420_unknown_comprehension_required_attribute() -> None:
    net = TurnNet()
    client = net.raw()
    response = failed(
        net.request(client, allocate_request(_RawAttr(UNKNOWN_REQUIRED, b"abcd"))), 420
    ).response
    unknown = UnknownAttributes.get_from(response)
    assert unknown is not None and list(unknown.types) == [UNKNOWN_REQUIRED]
    assert net.server.allocation_count == 0
    # comprehension-optional ones are ignored
    ok(net.request(client, allocate_request(_RawAttr(0x8F00, b"abcd"))))


# -- 437 Allocation Mismatch, and retransmissions


def test_437_second_allocate_on_the_same_five_tuple() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net)
    failed(net.request(client, allocate_request()), 437)
    assert net.server.allocation_count == 1
    assert [a.relays for a in net.server.allocations()] == [{IPV4: relay}]
    # the same address over TCP is another 5-tuple
    tcp = net.raw(CLIENT, reliable=True)
    ok(net.request(tcp, allocate_request()))
    assert net.server.allocation_count == 2


def test_retransmitted_allocate_is_answered_with_success_again() -> None:
    net = TurnNet()
    _, relay = raw_allocation(net)
    signed = [d for d, _, _, _ in net.to_server if Message.decode(d).type == ALLOCATE_REQUEST]
    original = Message.decode(signed[-1])  # the signed retry after the 401
    assert int(AttrType.MESSAGE_INTEGRITY_SHA256) in original
    for _ in range(2):
        out = net.inject(signed[-1], CLIENT)
        assert len(out) == 1
        response = Message.decode(out[0].data)
        assert response.cls == MessageClass.SUCCESS_RESPONSE
        assert response.transaction_id == original.transaction_id
        assert relayed(response) == [relay]
    assert net.server.allocation_count == 1 and net.server.allocations_created == 1
    assert len(net.sockets.open) == 1


def test_retransmission_from_another_user_is_441() -> None:
    net = TurnNet()
    raw_allocation(net)
    bob = net.raw(CLIENT, "bob")
    failed(net.request(bob, allocate_request()), 441)


@pytest.mark.parametrize(
    "request_for",
    [
        lambda: Message.build(REFRESH_REQUEST),
        lambda: Message.build(CREATE_PERMISSION_REQUEST, XorPeerAddress(*PEER)),
        lambda: Message.build(CHANNEL_BIND_REQUEST, ChannelNumber(0x4000), XorPeerAddress(*PEER)),
    ],
    ids=["refresh", "create-permission", "channel-bind"],
)
def test_437_without_an_allocation(request_for: Callable[[], Message]) -> None:
    net = TurnNet()
    raw_allocation(net, at(1))  # someone else's allocation does not count
    client = net.raw(CLIENT)
    failed(net.request(client, request_for()), 437)
    assert net.server.allocation_count == 1


# -- 438 Stale Nonce


def test_438_stale_nonce_then_the_retry_succeeds() -> None:
    authenticator = LongTermAuthenticator(REALM, USERS, secret=b"s" * 32, nonce_lifetime=30.0)
    net = TurnNet(authenticator=authenticator)
    client, _ = raw_allocation(net)
    net.advance(31)
    sent = len(net.to_clients)
    ok(permit(net, client, PEER))  # the client answers the 438 by itself
    stale = [m for m in answers(net.to_clients[sent:]) if m.cls == MessageClass.ERROR_RESPONSE]
    assert len(stale) == 1
    error = ErrorCodeAttribute.get_from(stale[0])
    assert error is not None and error.code == 438
    assert Nonce.get_from(stale[0]) is not None and Realm.get_from(stale[0]) is not None
    assert net.server.allocation_for(CLIENT, SERVER).permitted(PEER[0], net.now)
    assert net.server.counters()["errors_438"] == 1
    # A session's refresh rides over stale nonces the same way.
    session = net.allocate(at(1))
    net.advance(1000)
    assert events(session, Refreshed) and not events(session, AllocationFailed)
    assert net.server.counters()["errors_438"] > 1


# -- 440 Address Family not Supported


def test_440_ipv6_on_an_ipv4_only_server() -> None:
    net = TurnNet(relay_ips=(RELAY_IP,))
    client = net.allocate(family=6)
    assert [e.code for e in events(client, AllocationFailed)] == [440]
    raw = net.raw(at(1))
    failed(net.request(raw, allocate_request(RequestedAddressFamily(IPV6))), 440)
    assert net.server.allocation_count == 0 and not net.sockets.open


def test_440_ipv4_on_an_ipv6_only_server() -> None:
    net = TurnNet(relay_ips=(RELAY_IP6,))
    raw = net.raw()
    failed(net.request(raw, allocate_request(RequestedAddressFamily(IPV4))), 440)


def test_dual_stack_on_an_ipv4_only_server_gets_one_relay_and_address_error_440() -> None:
    net = TurnNet(relay_ips=(RELAY_IP,))
    client = net.allocate(dual_stack=True)
    (allocated,) = events(client, Allocated)
    assert [r[0] for r in allocated.relayed] == [RELAY_IP]
    assert allocated.address_error is not None and allocated.address_error.startswith("IPv6: 440")
    raw = net.raw(at(1))
    response = ok(net.request(raw, allocate_request(AdditionalAddressFamily(IPV6))))
    assert [r[0] for r in relayed(response)] == [RELAY_IP]
    error = AddressErrorCode.get_from(response)
    assert error is not None and (error.family, error.code) == (IPV6, 440)


# -- 441 Wrong Credentials


def test_441_another_user_on_the_same_five_tuple() -> None:
    net = TurnNet()
    alice, _ = raw_allocation(net)
    bob = net.raw(CLIENT, "bob")
    failed(net.request(bob, allocate_request()), 441)
    failed(refresh(net, bob, Lifetime(0)), 441)
    failed(permit(net, bob, PEER), 441)
    failed(bind(net, bob, 0x4000, PEER), 441)
    allocation = net.server.allocation_for(CLIENT, SERVER)
    assert allocation.username == "alice" and not allocation.permissions
    ok(refresh(net, alice))


# -- 442 Unsupported Transport Protocol


def test_442_tcp_transport() -> None:
    net = TurnNet()
    client = net.raw()
    failed(net.request(client, allocate_request(transport=TCP)), 442)
    assert net.server.allocation_count == 0


# -- 443 Peer Address Family Mismatch


def test_443_peer_family_differs_from_the_allocation() -> None:
    net = TurnNet()
    client, _ = raw_allocation(net)
    failed(permit(net, client, PEER6), 443)
    failed(bind(net, client, 0x4000, PEER6), 443)
    failed(refresh(net, client, RequestedAddressFamily(IPV6)), 443)
    ok(refresh(net, client, RequestedAddressFamily(IPV4)))
    # Send to an IPv6 peer from an IPv4-only allocation is dropped
    net.inject(send_indication(PEER6, b"x"), CLIENT)
    assert net.server.drops["family-mismatch"] == 1
    ipv6, _ = raw_allocation(net, at(1), RequestedAddressFamily(IPV6))
    failed(permit(net, ipv6, PEER), 443)
    failed(refresh(net, ipv6, RequestedAddressFamily(IPV4)), 443)
    ok(permit(net, ipv6, PEER6))


def test_session_sees_443() -> None:
    net = TurnNet()
    client = net.allocate()
    session_of(client).create_permission([PEER6], net.now)
    net.pump()
    assert [e.code for e in events(client, PermissionFailed)] == [443]


# -- 486 Allocation Quota Reached


def test_486_user_quota() -> None:
    net = TurnNet(limits=TurnLimits(user_quota=2))
    raw_allocation(net, at(0))
    raw_allocation(net, at(1))
    third = net.raw(at(2))
    failed(net.request(third, allocate_request()), 486)
    raw_allocation(net, at(3), user="bob")  # another user's quota is their own
    ok(refresh(net, net.raw(at(0)), Lifetime(0)))
    ok(net.request(third, allocate_request()))
    assert net.server.allocation_count == 3


def test_486_source_quota_counts_every_port_of_one_ip() -> None:
    net = TurnNet(limits=TurnLimits(source_quota=2))
    host = "192.0.2.99"
    raw_allocation(net, (host, 1000))
    raw_allocation(net, (host, 1001), user="bob")  # another user, the same address
    third = net.raw((host, 1002), "bob")
    failed(net.request(third, allocate_request()), 486)
    raw_allocation(net, at(5), user="bob")  # another address has its own quota
    ok(refresh(net, net.raw((host, 1000)), Lifetime(0)))
    ok(net.request(third, allocate_request()))
    assert net.server.allocation_table.source_count(host) == 2
    assert net.server.counters()["errors_486"] == 1


def test_default_quota_per_address_is_100() -> None:
    assert TurnLimits().source_quota == 100
    net = TurnNet(relay_ports=(50000, 50999))
    host = "192.0.2.99"
    for i in range(100):  # a hundred allocations from one host, two users: all served
        raw_allocation(net, (host, 1000 + i), user="alice" if i % 2 else "bob")
    failed(net.request(net.raw((host, 2000), "bob"), allocate_request()), 486)
    raw_allocation(net, at(1), user="bob")  # the user is welcome from elsewhere


def test_default_quota_per_user_is_100() -> None:
    assert TurnLimits().user_quota == 100
    net = TurnNet(relay_ports=(50000, 50999))
    for i in range(100):  # a hundred allocations for one user, from as many addresses
        raw_allocation(net, (f"198.18.0.{i}", 1000), user="alice")
    failed(net.request(net.raw(("198.18.1.0", 1000), "alice"), allocate_request()), 486)
    raw_allocation(net, ("198.18.1.0", 1000), user="bob")  # the address is welcome


# -- 508 Insufficient Capacity


def test_508_relay_port_range_exhausted() -> None:
    net = TurnNet(relay_ports=(50000, 50001))
    ports = {raw_allocation(net, at(i))[1][1] for i in range(2)}
    assert ports == {50000, 50001}
    third = net.raw(at(2))
    failed(net.request(third, allocate_request()), 508)
    ok(refresh(net, net.raw(at(0)), Lifetime(0)))
    assert relayed(ok(net.request(third, allocate_request())))[0][0] == RELAY_IP


def test_508_every_port_taken_by_other_programs() -> None:
    taken = {(RELAY_IP, port) for port in range(50000, 50010)}
    net = TurnNet(sockets=MemoryRelaySockets(taken=taken), relay_ports=(50000, 50009))
    failed(net.request(net.raw(), allocate_request()), 508)
    assert net.server.ports.in_use(RELAY_IP) == 0


def test_dual_allocation_with_no_ipv6_port_gets_address_error_508() -> None:
    taken = {(RELAY_IP6, port) for port in range(50000, 50004)}
    net = TurnNet(sockets=MemoryRelaySockets(taken=taken), relay_ports=(50000, 50003))
    client = net.raw()
    response = ok(net.request(client, allocate_request(AdditionalAddressFamily(IPV6))))
    assert [r[0] for r in relayed(response)] == [RELAY_IP]
    error = AddressErrorCode.get_from(response)
    assert error is not None and (error.family, error.code) == (IPV6, 508)
    failed(net.request(net.raw(at(1)), allocate_request(RequestedAddressFamily(IPV6))), 508)


def test_508_too_many_permissions() -> None:
    net = TurnNet(limits=TurnLimits(max_permissions=2))
    client, _ = raw_allocation(net)
    failed(permit(net, client, PEER, PEER_B, PEER_C), 508)
    allocation = net.server.allocation_for(CLIENT, SERVER)
    assert not allocation.permissions
    ok(permit(net, client, PEER, PEER_B))
    ok(permit(net, client, PEER, (PEER_B[0], 1)))  # refreshing known IPs is fine
    failed(permit(net, client, PEER_C), 508)
    failed(bind(net, client, 0x4000, PEER_C), 508)  # a channel needs a permission too
    ok(bind(net, client, 0x4000, PEER))
    assert set(allocation.permissions) == {PEER[0], PEER_B[0]}


def test_508_too_many_channels() -> None:
    net = TurnNet(limits=TurnLimits(max_channels=1))
    client, _ = raw_allocation(net)
    ok(bind(net, client, 0x4000, PEER))
    failed(bind(net, client, 0x4001, PEER_B), 508)
    ok(bind(net, client, 0x4000, PEER))  # a refresh is no new channel
    assert list(net.server.allocation_for(CLIENT, SERVER).channels) == [0x4000]


@pytest.mark.parametrize(
    "attr",
    [
        _RawAttr(int(AttrType.LIFETIME), b"\x00\x01"),
        _RawAttr(int(AttrType.EVEN_PORT), b"\x80\x00"),
        _RawAttr(int(AttrType.RESERVATION_TOKEN), b"\x01\x02"),
        _RawAttr(int(AttrType.ADDITIONAL_ADDRESS_FAMILY), b"\x02"),
    ],
    ids=["lifetime", "even-port", "token", "additional-family"],
)
def test_malformed_allocate_attribute_is_400_and_leaks_no_port(attr: _RawAttr) -> None:
    net = TurnNet()
    client = net.raw()
    for even in (False, True):  # with EVEN-PORT R, a reservation would be made too
        extra = (EvenPort(True),) if even and attr.attr_type != int(AttrType.EVEN_PORT) else ()
        failed(net.request(client, allocate_request(attr, *extra)), 400)
    assert not net.sockets.open and net.server.ports.in_use(RELAY_IP) == 0
    assert net.server.counters()["reservations"] == 0 and net.server.allocation_count == 0


def test_508_unknown_reservation_token() -> None:
    net = TurnNet()
    client = net.raw()
    failed(net.request(client, allocate_request(ReservationToken(b"\x00" * 8))), 508)
    assert net.server.allocation_count == 0 and not net.sockets.open


# -- EVEN-PORT and RESERVATION-TOKEN


def test_even_port() -> None:
    net = TurnNet()
    for i in range(5):
        client = net.raw(at(i))
        response = ok(net.request(client, allocate_request(EvenPort(False))))
        (relay,) = relayed(response)
        assert relay[1] % 2 == 0
        assert ReservationToken.get_from(response) is None
        assert (relay[0], relay[1] + 1) not in net.sockets.open
    assert net.server.counters()["reservations"] == 0


def test_even_port_with_reservation_then_claimed_by_token() -> None:
    net = TurnNet()
    first = net.allocate(at(0), even_port=True, reserve_next_port=True)
    (allocated,) = events(first, Allocated)
    relay = allocated.relayed[0]
    token = allocated.reservation_token
    assert relay[1] % 2 == 0 and token is not None and len(token) == 8
    reserved = (relay[0], relay[1] + 1)
    assert reserved in net.sockets.open  # held for the token
    assert net.server.counters()["reservations"] == 1

    second = net.allocate(at(1), "bob", reservation_token=token)
    (claimed,) = events(second, Allocated)
    assert claimed.relayed == (reserved,)
    assert net.server.counters()["reservations"] == 0
    # The token is spent.
    third = net.raw(at(2))
    failed(net.request(third, allocate_request(ReservationToken(token))), 508)
    # The claimed port outlives its reservation's 30 s.
    net.advance(RESERVATION_LIFETIME + 1)
    assert reserved in net.sockets.open
    # And relays like any other.
    session_of(second).send(b"odd", PEER, net.now)
    net.pump()
    assert net.at_peers == [(b"odd", reserved, PEER)]


def test_reservation_expires_after_30_seconds_and_the_port_is_released() -> None:
    net = TurnNet()
    client = net.raw()
    response = ok(net.request(client, allocate_request(EvenPort(True))))
    (relay,) = relayed(response)
    token = ReservationToken.get_from(response)
    assert token is not None
    reserved = (relay[0], relay[1] + 1)
    net.advance(RESERVATION_LIFETIME - 1)
    assert reserved in net.sockets.open
    net.advance(2)
    assert reserved not in net.sockets.open
    assert relay in net.sockets.open  # the allocation itself lives on
    assert net.server.counters()["reservations"] == 0
    assert net.server.ports.in_use(RELAY_IP) == 1
    failed(net.request(net.raw(at(1)), allocate_request(ReservationToken(token.value))), 508)


def test_reservation_outlives_the_allocation_that_made_it() -> None:
    net = TurnNet()
    client = net.raw()
    response = ok(net.request(client, allocate_request(EvenPort(True))))
    token = ReservationToken.get_from(response)
    assert token is not None
    ok(refresh(net, client, Lifetime(0)))
    (relay,) = relayed(response)
    assert relay not in net.sockets.open and (relay[0], relay[1] + 1) in net.sockets.open
    claimed = relayed(
        ok(net.request(net.raw(at(1)), allocate_request(ReservationToken(token.value))))
    )
    assert claimed == [(relay[0], relay[1] + 1)]


# -- dual stack and IPv6


def test_dual_stack_allocation_relays_to_both_families() -> None:
    net = TurnNet()
    client = net.allocate(dual_stack=True)
    (allocated,) = events(client, Allocated)
    assert allocated.address_error is None
    assert [r[0] for r in allocated.relayed] == [RELAY_IP, RELAY_IP6]
    relay4, relay6 = allocated.relayed
    session = session_of(client)
    session.send(b"four", PEER, net.now)
    session.send(b"six", PEER6, net.now)
    net.pump()
    assert sorted(net.at_peers) == sorted([(b"four", relay4, PEER), (b"six", relay6, PEER6)])
    net.from_peer(b"from four", PEER, relay4)
    net.from_peer(b"from six", PEER6, relay6)
    net.from_peer(b"wrong relay", PEER6, relay4)  # the permission is per allocation, not relay
    got = [(e.data, e.peer) for e in events(client, DataReceived)]
    assert got[:2] == [(b"from four", PEER), (b"from six", PEER6)]
    allocation = net.server.allocation_for(CLIENT, SERVER)
    assert allocation.relays == {IPV4: relay4, IPV6: relay6}
    session.close(net.now)
    net.pump()
    assert events(client, Closed) and not net.sockets.open


def test_ipv6_only_allocation_from_an_ipv6_client() -> None:
    net = TurnNet()
    me: Address = ("2001:db8:2::10", 40000)
    client = net.allocate(me, server=SERVER6, family=6)
    (allocated,) = events(client, Allocated)
    (relay,) = allocated.relayed
    assert relay[0] == RELAY_IP6 and allocated.mapped == me
    assert net.server.allocation_for(me, SERVER6).relays == {IPV6: relay}
    session = session_of(client)
    for i in range(3):
        session.send(b"v6 %d" % i, PEER6, net.now)
        net.pump()
    assert [(d, s, p) for d, s, p in net.at_peers] == [
        (b"v6 %d" % i, relay, PEER6) for i in range(3)
    ]
    net.from_peer(b"back", PEER6, relay)
    assert [e.data for e in events(client, DataReceived)] == [b"back"]
    session.create_permission([PEER], net.now)
    net.pump()
    assert [e.code for e in events(client, PermissionFailed)] == [443]


def test_ipv6_permission_survives_a_stale_nonce() -> None:
    authenticator = LongTermAuthenticator(REALM, USERS, secret=b"s" * 32, nonce_lifetime=30.0)
    net = TurnNet(authenticator=authenticator)
    client = net.allocate(family=6)
    net.advance(40)
    session_of(client).create_permission([PEER6], net.now)
    net.pump()
    assert events(client, PermissionInstalled)
    assert list(net.server.allocation_for(CLIENT, SERVER).permissions) == [PEER6[0]]


# -- lifetimes


@pytest.mark.parametrize(
    "asked, granted", [(None, 600), (0, 600), (10, 600), (1000, 1000), (3600, 3600), (99999, 3600)]
)
def test_lifetime_is_clamped_to_default_and_max(asked: int | None, granted: int) -> None:
    net = TurnNet()
    client = net.raw()
    attrs = () if asked is None else (Lifetime(asked),)
    response = ok(net.request(client, allocate_request(*attrs)))
    assert lifetime_of(response) == granted
    assert net.server.allocation_for(CLIENT, SERVER).expires == granted
    # Refresh is clamped the same way
    net.advance(5)
    response = ok(refresh(net, client, *(() if asked in (None, 0) else (Lifetime(asked),))))
    assert lifetime_of(response) == granted


def test_custom_lifetime_limits() -> None:
    net = TurnNet(limits=TurnLimits(default_lifetime=60, max_lifetime=120))
    response = ok(net.request(net.raw(), allocate_request(Lifetime(3600))))
    assert lifetime_of(response) == 120
    response = ok(net.request(net.raw(at(1)), allocate_request(Lifetime(1))))
    assert lifetime_of(response) == 60


def test_refresh_extends_the_allocation() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net)
    net.advance(500)
    assert lifetime_of(ok(refresh(net, client, Lifetime(1200)))) == 1200
    assert net.server.allocation_for(CLIENT, SERVER).expires == 1700
    net.advance(1100)  # well past the first 600 s
    assert net.server.allocation_count == 1 and relay in net.sockets.open
    net.advance(101)
    assert net.server.allocation_count == 0 and relay not in net.sockets.open
    assert net.server.allocations_expired == 1


def test_refresh_can_shorten_the_lifetime() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net, CLIENT, Lifetime(3600))
    net.advance(10)
    assert lifetime_of(ok(refresh(net, client, Lifetime(600)))) == 600
    net.advance(599)
    assert net.server.allocation_count == 1
    net.advance(2)  # t = 611: the timer filed for 3600 must not keep it alive
    assert net.server.allocation_count == 0 and relay not in net.sockets.open
    net.advance(3600)
    assert net.server.get_timer() is None


def test_refresh_zero_deletes_and_closes_the_relay() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net)
    ok(permit(net, client, PEER))
    response = ok(refresh(net, client, Lifetime(0)))
    assert lifetime_of(response) == 0
    assert net.server.allocation_count == 0 and relay not in net.sockets.open
    assert net.server.ports.in_use(RELAY_IP) == 0
    counters = net.server.counters()
    assert counters["allocations"] == 0 and counters["permissions"] == 0
    assert counters["allocations_expired"] == 0
    failed(refresh(net, client, Lifetime(0)), 437)  # gone
    net.from_peer(b"late", PEER, relay)
    assert net.server.drops["no-allocation"] == 1
    # the 5-tuple is free for a new allocation
    ok(net.request(client, allocate_request()))
    assert net.server.allocation_count == 1


def test_session_close_deletes_the_allocation() -> None:
    net = TurnNet()
    client = net.allocate()
    relay = session_of(client).relayed_addresses[0]
    session_of(client).close(net.now)
    net.pump()
    assert events(client, Closed)
    assert net.server.allocation_count == 0 and relay not in net.sockets.open


def test_unrefreshed_allocation_expires_and_its_relay_is_closed() -> None:
    net = TurnNet()
    clients = [raw_allocation(net, at(i)) for i in range(3)]
    ok(permit(net, clients[0][0], PEER))
    ok(bind(net, clients[1][0], 0x4000, PEER))
    assert len(net.sockets.open) == 3
    net.advance(599.5)
    assert net.server.allocation_count == 3
    net.advance(1)
    assert net.server.allocation_count == 0 and not net.sockets.open
    assert net.server.allocations_expired == 3
    assert net.server.counters()["allocations_expired"] == 3
    assert net.server.get_timer() is None  # nothing left filed
    assert not net.server.allocation_table.user_total and not net.server.allocation_table.by_relay
    net.from_peer(b"late", PEER, clients[0][1])
    assert net.server.drops["no-allocation"] == 1
    failed(refresh(net, clients[0][0]), 437)


def test_session_keeps_its_allocation_alive() -> None:
    net = TurnNet()
    client = net.allocate(lifetime=600)
    net.advance(3 * 3600)
    assert net.server.allocation_count == 1 and len(events(client, Refreshed)) >= 18
    assert net.server.allocations_expired == 0


def test_permission_expires_after_300_seconds() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net, CLIENT, Lifetime(3600))
    ok(permit(net, client, PEER))
    net.advance(PERMISSION_LIFETIME - 1)
    net.from_peer(b"in time", PEER, relay)
    net.inject(send_indication(PEER, b"out in time"), CLIENT)
    assert payloads_to(net) == [b"in time"]
    assert net.at_peers == [(b"out in time", relay, PEER)]
    net.advance(1)
    net.from_peer(b"too late", PEER, relay)
    net.inject(send_indication(PEER, b"out too late"), CLIENT)
    assert payloads_to(net) == [b"in time"]
    assert len(net.at_peers) == 1
    assert net.server.drops["no-permission"] == 2
    net.advance(1)
    assert not net.server.allocation_for(CLIENT, SERVER).permissions  # purged by the timer


def test_permission_refresh_extends_it() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net, CLIENT, Lifetime(3600))
    ok(permit(net, client, PEER))
    net.advance(200)
    ok(permit(net, client, (PEER[0], 1)))  # any port: permissions are per IP
    net.advance(250)
    net.from_peer(b"still", PEER, relay)
    assert payloads_to(net) == [b"still"]


def test_channel_expires_after_600_seconds_then_cools_down_for_300() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net, CLIENT, Lifetime(3600))
    ok(bind(net, client, 0x4000, PEER))
    assert net.server.allocation_for(CLIENT, SERVER).channels[0x4000].expires == CHANNEL_LIFETIME
    for _ in range(2):  # keep the permission alive; the channel is left alone
        net.advance(250)
        ok(permit(net, client, PEER))
    net.advance(99)  # t = 599
    net.inject(encode_channel_data(0x4000, b"on time"), CLIENT)
    net.from_peer(b"back on time", PEER, relay)
    assert net.at_peers == [(b"on time", relay, PEER)]
    assert net.to_clients[-1].data[:2] == b"\x40\x00"  # ChannelData while bound
    net.advance(2)  # t = 601
    net.inject(encode_channel_data(0x4000, b"expired"), CLIENT)
    assert len(net.at_peers) == 1 and net.server.drops["no-channel"] == 1
    ok(permit(net, client, PEER, PEER_B))
    net.from_peer(b"as indication", PEER, relay)
    data = Message.decode(net.to_clients[-1].data)
    assert data.type == DATA_INDICATION  # the channel is gone: back to Data indications
    # For 5 minutes neither the number nor the peer may be bound to something else
    net.advance(CHANNEL_COOLDOWN - 10)  # t = 891
    failed(bind(net, client, 0x4000, PEER_B), 400)
    failed(bind(net, client, 0x4001, PEER), 400)
    net.advance(20)  # t = 911
    ok(bind(net, client, 0x4000, PEER_B))
    ok(bind(net, client, 0x4001, PEER))
    net.inject(encode_channel_data(0x4000, b"to b"), CLIENT)
    net.inject(encode_channel_data(0x4001, b"to a"), CLIENT)
    assert net.at_peers[1:] == [(b"to b", relay, PEER_B), (b"to a", relay, PEER)]


def test_channel_rebind_to_the_same_peer_refreshes_it() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net, CLIENT, Lifetime(3600))
    ok(bind(net, client, 0x4000, PEER))
    net.advance(500)
    ok(bind(net, client, 0x4000, PEER))
    net.advance(290)  # t = 790: past the first 600 s, within the refreshed permission
    net.inject(encode_channel_data(0x4000, b"alive"), CLIENT)
    assert net.at_peers == [(b"alive", relay, PEER)]


def test_channel_bind_installs_a_permission() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net)
    ok(bind(net, client, 0x4ABC, PEER))
    net.from_peer(b"hi", PEER, relay)
    frame = net.to_clients[-1].data
    assert decode_channel_data(frame) == (0x4ABC, b"hi")


# -- TCP clients


def test_tcp_allocation_uses_padded_channel_data_and_dies_with_the_connection() -> None:
    net = TurnNet()
    _, udp_relay = raw_allocation(net)  # the same address over UDP: another allocation
    client = net.allocate(reliable=True)
    session = session_of(client)
    relay = session.relayed_addresses[0]
    assert net.server.allocation_for(CLIENT, SERVER, reliable=True).reliable
    for _ in range(3):
        session.send(b"abc", PEER, net.now)
        net.pump()
    assert events(client, ChannelBound)
    channel_frames = [d for d, _, _, reliable in net.to_server if reliable and 0x40 <= d[0] <= 0x4F]
    assert channel_frames and all(len(f) % 4 == 0 for f in channel_frames)
    assert len(channel_frames[-1]) == 8  # 4 header + 3 data + 1 padding
    assert [d for d, _, _ in net.at_peers] == [b"abc"] * 3
    net.from_peer(b"xyzzy", PEER, relay)
    frame = net.to_clients[-1].data
    assert 0x40 <= frame[0] <= 0x4F and len(frame) == 12  # 4 + 5 + 3 padding
    assert decode_channel_data(frame, True)[1] == b"xyzzy"
    assert [e.data for e in events(client, DataReceived)] == [b"xyzzy"]
    assert net.server.connection_in_use(CLIENT, SERVER)  # the runner keeps it open
    net.server.connection_lost(CLIENT, SERVER)
    assert not net.server.connection_in_use(CLIENT, SERVER)
    with pytest.raises(KeyError):
        net.server.allocation_for(CLIENT, SERVER, reliable=True)
    assert relay not in net.sockets.open
    assert net.server.allocation_for(CLIENT, SERVER).relays == {IPV4: udp_relay}
    assert udp_relay in net.sockets.open
    net.server.connection_lost(CLIENT, SERVER)  # twice, or for no allocation: nothing happens
    net.server.connection_lost(at(5), SERVER)
    assert net.server.allocation_count == 1


def test_padded_channel_data_over_udp_is_accepted() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net)
    ok(bind(net, client, 0x4000, PEER))
    net.inject(encode_channel_data(0x4000, b"abc", True), CLIENT)  # padded over UDP: fine
    assert net.at_peers == [(b"abc", relay, PEER)]


# -- bandwidth


def test_bandwidth_cap_drops_the_excess() -> None:
    rate = 10_000
    net = TurnNet(limits=TurnLimits(bandwidth=rate))
    client, relay = raw_allocation(net)
    ok(permit(net, client, PEER))
    chunk = bytes(5000)
    for _ in range(20):  # 100 kB at once: the burst is 64 KiB
        net.from_peer(chunk, PEER, relay)
    passed = len(payloads_to(net))
    assert passed == 65536 // 5000
    assert net.server.drops["bandwidth"] == 20 - passed
    net.inject(send_indication(PEER, chunk), CLIENT)  # both directions share the budget
    assert not net.at_peers and net.server.drops["bandwidth"] == 21 - passed
    net.advance(1)  # one second refills 10 kB
    net.inject(send_indication(PEER, chunk), CLIENT)
    net.inject(send_indication(PEER, chunk), CLIENT)
    net.inject(send_indication(PEER, chunk), CLIENT)
    assert len(net.at_peers) == 2
    assert net.server.counters()["dropped_bandwidth"] == 22 - passed
    net.advance(60)
    for _ in range(13):
        net.from_peer(chunk, PEER, relay)
    assert len(payloads_to(net)) == passed + 13


def test_no_bandwidth_cap_by_default() -> None:
    net = TurnNet()
    client, relay = raw_allocation(net)
    ok(permit(net, client, PEER))
    for _ in range(100):
        net.from_peer(bytes(1200), PEER, relay)
    assert len(payloads_to(net)) == 100 and not net.server.drops


# -- other allocation options


def test_dont_fragment_and_external_ip() -> None:
    net = TurnNet(external_ips={RELAY_IP: "203.0.113.200"})
    client = net.raw()
    response = ok(net.request(client, allocate_request(DontFragment())))
    (advertised,) = relayed(response)
    allocation = net.server.allocation_for(CLIENT, SERVER)
    (relay,) = allocation.relays.values()
    assert advertised == ("203.0.113.200", relay[1])
    assert net.sockets.open[relay] is True  # bound with DF set
    ok(permit(net, client, PEER))
    net.inject(send_indication(PEER, b"x"), CLIENT)
    assert net.at_peers == [(b"x", relay, PEER)]  # sent from the real socket


# -- the data path from clients: drops


def test_data_path_drops_are_counted() -> None:
    net = TurnNet()
    client, _ = raw_allocation(net)
    stranger = at(9)
    net.inject(send_indication(PEER, b"x"), stranger)
    net.inject(encode_channel_data(0x4000, b"x"), stranger)
    assert net.server.drops["no-allocation"] == 2
    net.inject(send_indication(PEER, b"x"), CLIENT)
    assert net.server.drops["no-permission"] == 1
    net.inject(encode_channel_data(0x4000, b"x"), CLIENT)
    assert net.server.drops["no-channel"] == 1
    ok(bind(net, client, 0x4000, PEER))
    frame = encode_channel_data(0x4000, b"hello")
    net.inject(frame[:6], CLIENT)  # shorter than its length field
    net.inject(frame[:3], CLIENT)  # not even a header
    net.inject(Message.build(SEND_INDICATION, XorPeerAddress(*PEER)).raw, CLIENT)  # no DATA
    net.inject(Message.build(SEND_INDICATION, Data(b"x")).raw, CLIENT)  # no peer
    net.inject(send_indication(PEER, b"x")[:-3], CLIENT)  # truncated
    bad_peer = Message.build(SEND_INDICATION, Data(b"x"))
    bad_peer.add(int(AttrType.XOR_PEER_ADDRESS), b"\x00\x07\x00")
    net.inject(bad_peer.raw, CLIENT)
    assert net.server.drops["malformed"] == 6
    assert not net.at_peers
    counters = net.server.counters()
    assert counters["dropped_malformed"] == 6 and counters["dropped_no_allocation"] == 2
    assert counters["dropped_no_permission"] == 1 and counters["dropped_no_channel"] == 1
    net.from_peer(b"x", PEER, ("198.51.100.1", 1))  # to no relay at all
    assert net.server.drops["no-allocation"] == 3


# -- hostile input


def _hostile_packets(rng: random.Random, valid: list[bytes]) -> list[bytes]:
    packets: list[bytes] = [b"", b"\x00", b"\x40", b"\x40\x00", b"\x00\x16", b"\x00\x01" * 10]
    for _ in range(600):
        packets.append(rng.randbytes(rng.randrange(0, 200)))
    for first in (0x00, 0x01, 0x40, 0x4F, 0x80):
        for _ in range(150):
            body = rng.randbytes(rng.randrange(0, 120))
            packets.append(bytes([first]) + body)
    for _ in range(300):  # STUN headers with a random type and length, random body
        body = rng.randbytes(rng.randrange(0, 64) * 4)
        header = rng.randbytes(2) + len(body).to_bytes(2, "big") + b"\x21\x12\xa4\x42"
        packets.append(header + rng.randbytes(12) + body)
    for _ in range(300):  # Send indications with random attributes
        body = rng.randbytes(rng.randrange(0, 32) * 4)
        header = b"\x00\x16" + len(body).to_bytes(2, "big") + b"\x21\x12\xa4\x42"
        packets.append(header + rng.randbytes(12) + body)
    for data in valid:
        for cut in range(0, len(data), 3):
            packets.append(data[:cut])  # truncated
        packets.append(data + rng.randbytes(40))  # longer than its length field
        oversized = bytearray(data)
        oversized[2:4] = (len(data) + 400).to_bytes(2, "big")
        packets.append(bytes(oversized))
        for _ in range(60):  # bit flips
            flipped = bytearray(data)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            packets.append(bytes(flipped))
    packets.append(bytes(20) + bytes(70000))  # far too big for any length field
    return packets


def test_hostile_input_never_breaks_the_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ice")
    net = TurnNet()
    client, relay = raw_allocation(net)
    ok(bind(net, client, 0x4000, PEER))
    valid = [d for d, _, _, _ in net.to_server]
    valid += [send_indication(PEER, b"data"), encode_channel_data(0x4000, b"payload")]
    packets = _hostile_packets(random.Random(1), valid)
    for addr in (CLIENT, at(7)):  # with an allocation, and without
        for reliable in (False, True):
            for packet in packets:
                net.inject(packet, addr, reliable=reliable)
    for packet in packets[:500]:
        net.server.receive_from_peer(packet, PEER, relay, net.now)
        net.server.receive_from_peer(packet, PEER_B, relay, net.now)
    net.server.datagrams_to_send(net.now)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records[:3]
    binding_still_answered(net)
    # nobody else got anything (a replay of the signed Allocate over TCP from the
    # same IP is a valid request, and gets its own 5-tuple)
    assert {a.client for a in net.server.allocations()} == {CLIENT}
    assert net.server.allocation_for(CLIENT, SERVER).relays == {IPV4: relay}
    ok(refresh(net, client))  # and the client carries on
    net.advance(4000)
    assert net.server.allocation_count == 0 and not net.sockets.open


def test_flood_of_unauthenticated_allocates_leaves_no_state() -> None:
    net = TurnNet()
    server = net.server
    sizes = set()
    for i in range(10_000):
        addr = (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 1024 + i % 60000)
        request = allocate_request().raw
        out = net.inject(request, addr)
        assert len(out) == 1 and out[0].addr == addr
        response = Message.decode(out[0].data)
        types = {t for t, _ in response.attributes}
        assert types == {
            int(AttrType.ERROR_CODE),
            int(AttrType.REALM),
            int(AttrType.NONCE),
            int(AttrType.PASSWORD_ALGORITHMS),
        }  # the challenge and nothing else: no SOFTWARE, no XOR-MAPPED-ADDRESS
        error = ErrorCodeAttribute.get_from(response)
        assert error is not None and error.code == 401
        sizes.add(len(out[0].data))
    assert len(sizes) == 1 and sizes.pop() <= 120
    assert server.allocation_count == 0 and not net.sockets.open
    table = server.allocation_table
    assert not table.by_five_tuple and not table.by_relay and not table.user_total
    assert not server._reservations and not server._heap and server.get_timer() is None
    assert server.ports.in_use(RELAY_IP) == 0 and server.ports.in_use(RELAY_IP6) == 0
    assert not server.drops
    assert not net.authenticator._keys  # no password was even looked up
    counters = server.counters()
    assert counters["requests_allocate"] == 10_000 and counters["errors_401"] == 10_000
    assert set(counters) == {
        "allocations",
        "allocations_created",
        "allocations_expired",
        "permissions",
        "channels",
        "reservations",
        "requests_allocate",
        "errors_401",
        "internal_errors",
    }
    assert counters["internal_errors"] == 0
    binding_still_answered(net)


def _unauthenticated_turn_requests() -> list[bytes]:
    """TURN requests from someone with no valid credentials, of every shape."""
    nonce = Nonce("obMatJos2AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    out = []
    for method_request in (
        ALLOCATE_REQUEST,
        REFRESH_REQUEST,
        CREATE_PERMISSION_REQUEST,
        CHANNEL_BIND_REQUEST,
        0x000F,  # a method nobody serves
    ):
        out.append(Message.build(method_request).raw)
        out.append(allocate_request().raw)
        message = Message.build(method_request, RequestedTransport(UDP))
        message.add(UNKNOWN_REQUIRED, b"")
        out.append(message.raw)
        message = Message.build(method_request, Username("alice"), Realm(REALM), nonce)
        message.add_integrity(b"k" * 16)
        out.append(message.raw)
        message = Message.build(method_request, Username("alice"), Realm(REALM), Nonce("x"))
        message.add_integrity_sha256(b"k" * 16)
        message.add_fingerprint()
        out.append(message.raw)
    return out


def test_amplification_turn_requests_get_no_bigger_answer_than_the_challenge() -> None:
    net = TurnNet()
    for i, request in enumerate(_unauthenticated_turn_requests()):
        addr = at(100 + i)
        for transmit in net.inject(request, addr):
            response = Message.decode(transmit.data)
            error = ErrorCodeAttribute.get_from(response)
            assert error is not None, "an unauthenticated TURN request never succeeds"
            if error.code not in (401, 438):
                assert len(transmit.data) <= len(request), (error.code, error.reason)
            else:
                assert int(AttrType.SOFTWARE) not in response
    assert net.server.allocation_count == 0


def test_amplification_integrity_without_username() -> None:
    net = TurnNet()
    request = Message.build(ALLOCATE_REQUEST)
    request.add_integrity(b"k" * 16)
    (transmit,) = net.inject(request.raw, at(1))
    assert len(transmit.data) <= len(request.raw)


def test_binding_is_answered_to_anyone() -> None:
    net = TurnNet()
    binding_still_answered(net)
    client = net.raw(user=None)
    response = ok(net.request(client, Message.build(BINDING_REQUEST)))
    mapped = XorMappedAddress.get_from(response)
    assert mapped is not None and mapped.address == CLIENT
    assert net.server.counters()["requests_binding"] == 2


# -- counters


def test_counters_reflect_what_happened() -> None:
    net = TurnNet()
    client = net.allocate()
    session = session_of(client)
    relay = session.relayed_addresses[0]
    for i in range(3):
        session.send(b"%d" % i, PEER, net.now)
        net.pump()
    session.create_permission(["127.0.0.1"], net.now)
    net.pump()
    net.from_peer(b"stranger", PEER_B, relay)
    net.from_peer(b"friend", PEER, relay)
    raw = net.raw(at(1))
    failed(net.request(raw, allocate_request(transport=TCP)), 442)
    net.inject(Message.build(BINDING_REQUEST).raw, at(2))
    counters = net.server.counters()
    assert counters == {
        "allocations": 1,
        "allocations_created": 1,
        "allocations_expired": 0,
        "permissions": 1,
        "channels": 1,
        "reservations": 0,
        "requests_allocate": 4,  # 401 then success; 401 then 442
        "requests_create_permission": 2,
        "requests_channel_bind": 1,
        "requests_binding": 1,
        "errors_401": 2,
        "errors_403": 1,
        "errors_442": 1,
        "dropped_no_permission": 1,
        "internal_errors": 0,
    }
    allocation = net.server.allocation_for(CLIENT, SERVER)
    assert (allocation.packets_to_peers, allocation.bytes_to_peers) == (3, 3)
    assert (allocation.packets_to_client, allocation.bytes_to_client) == (1, 6)
    net.advance(4000)  # the session keeps it; a close ends it
    session.close(net.now)
    net.pump()
    counters = net.server.counters()
    assert counters["allocations"] == 0 and counters["permissions"] == 0
    assert counters["channels"] == 0 and counters["allocations_expired"] == 0
    assert counters["requests_refresh"] >= 1


def test_rfc5766_channel_numbers_relay_unless_turned_off() -> None:
    """0x5000-0x7FFF (RFC 5766; coturn's client uses them) work by default, both ways."""
    net = TurnNet()
    client, relay = raw_allocation(net)
    request = _channel_bind_with(_RawAttr(_CHANNEL, b"\x7f\xff\x00\x00"), XorPeerAddress(*PEER))
    ok(net.request(client, request))
    net.inject(b"\x7f\xff\x00\x03abc", CLIENT)
    assert net.at_peers[-1] == (b"abc", relay, PEER)
    net.server.receive_from_peer(b"back", PEER, relay, net.now)
    (frame,) = [t.data for t in net.server.datagrams_to_send(net.now)]
    assert frame == b"\x7f\xff\x00\x04back"

    strict = TurnNet(rfc5766_channels=False)
    client, _ = raw_allocation(strict)
    failed(strict.request(client, _channel_bind_with(
        _RawAttr(_CHANNEL, b"\x50\x00\x00\x00"), XorPeerAddress(*PEER)
    )), 400)  # fmt: skip
