"""The TURN server core, sans-I/O (RFC 8656, RFC 5766, RFC 6156, RFC 6062).

`TurnServer` is a `StunServer` (Binding, authentication, 400/420, the
amplification rule: see `ice.stun.server`) with the TURN methods added:
Allocate, Refresh, CreatePermission, ChannelBind, and the Send indication
and ChannelData messages of the data path; for TCP allocations (RFC 6062)
Connect, ConnectionBind and the ConnectionAttempt indication. The runner
feeds it

- what clients send to the listening addresses: `receive_datagram` (with
  ``reliable=True`` for a frame from a TCP/TLS connection);
- what peers send to relayed addresses: `receive_from_peer`;
- the loss of a client's TCP/TLS connection: `connection_lost` (its
  allocation goes with it, RFC 8656 section 3.1; a client data connection
  takes its peer connection);
- for TCP allocations, how the peer connections it asked for went
  (`peer_connected`, `peer_connection_failed`), the connections peers make
  to relayed addresses (`peer_connection_accepted`) and those that close
  (`peer_connection_closed`);

and sends what `datagrams_to_send` returns: a `Transmit` whose ``source`` is
a relayed address goes to a peer from that relay socket, one whose source is
a listening address goes to a client. Then it does what `next_effect`
returns (open, close or splice TCP connections: `ice.turn.server_tcp`). Relay
sockets are bound and closed through the `RelaySockets` the runner passes in
(`ice.turn.ports`; TCP listeners through its `TcpRelaySockets` side).

The allocations live in `allocation_table` (`ice.turn.allocation`), which the
runner's compiled relay pump (`ice.turn._relay.RelayPump`) reads too: the
rules of the data path (permission, channel, relay family, bandwidth budget)
are the allocation's own methods, called by both.

Every TURN request must authenticate (long-term credentials, REST API
secrets: `ice.stun.server_auth`, `ice.turn.auth`) before the server keeps
anything about its sender; Binding is answered to anyone. Error responses,
per RFC 8656 section 7 and RFC 6156:

=====  ==================================================================
300    Allocate redirected to an ``alternate_servers`` entry
400    malformed request, missing attribute, ChannelBind conflict; a TCP
       Allocate over UDP or with EVEN-PORT, RESERVATION-TOKEN or
       DONT-FRAGMENT; ConnectionBind over UDP, on a control connection, or
       for an unknown, unconnected or already bound CONNECTION-ID
403    peer refused by the `PeerPolicy` (loopback, private, metadata, ...);
       Connect on a UDP allocation, ChannelBind on a TCP one
437    Allocate on a 5-tuple already allocated; other requests without one
440    REQUESTED-ADDRESS-FAMILY the server has no relay address for
441    a request for an allocation from a different user
442    REQUESTED-TRANSPORT other than UDP and TCP (TCP too when the relay
       sockets cannot listen on TCP, or with ``tcp_relays=False``)
443    peer address family differs from the allocation's
446    Connect to a peer the allocation already has a connection to
447    the Connect's connection failed or was not made within 30 s
486    the user's or the client IP's allocation quota is reached
508    no relay port free, total quota reached, or too many permissions,
       channels or peer connections
=====  ==================================================================
"""

from __future__ import annotations

import heapq
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ice._codec import Message, decode_channel_data, encode_channel_data, message_type
from ice._errors import DecodeError
from ice.attrs import (
    AddressErrorCode,
    AlternateServer,
    ConnectionId,
    Data,
    ErrorCodeAttribute,
    EvenPort,
    Lifetime,
    RequestedTransport,
    ReservationToken,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
)
from ice.constants import AttrType, MessageClass, Method, TransportProtocol
from ice.machine import Address, Transmit
from ice.stun.server import DEFAULT_SOFTWARE, RequestContext, StunServer
from ice.stun.server_auth import Authenticator
from ice.turn.allocation import Allocation, AllocationTable, TokenBucket
from ice.turn.policy import PeerPolicy
from ice.turn.ports import DEFAULT_RELAY_PORTS, MemoryRelaySockets, PortPool, RelaySockets
from ice.turn.server_tcp import PeerConnection, TcpEffect, TcpRelay

__all__ = ["DEFAULT_SOURCE_QUOTA", "DEFAULT_USER_QUOTA", "TurnLimits", "TurnServer"]

_Handler = Callable[[RequestContext], Message | None]

logger = logging.getLogger("ice.turn.server")

IPV4 = 1
IPV6 = 2
#: RFC 8656 section 7.2: a reserved port pair is held this long for its token.
RESERVATION_LIFETIME = 30.0

_SEND_INDICATION = message_type(Method.SEND, MessageClass.INDICATION).to_bytes(2, "big")
_DATA_INDICATION = message_type(Method.DATA, MessageClass.INDICATION)
_REQUESTED_ADDRESS_FAMILY = int(AttrType.REQUESTED_ADDRESS_FAMILY)
_ADDITIONAL_ADDRESS_FAMILY = int(AttrType.ADDITIONAL_ADDRESS_FAMILY)
_XOR_PEER_ADDRESS = int(AttrType.XOR_PEER_ADDRESS)
_CHANNEL_NUMBER = int(AttrType.CHANNEL_NUMBER)
_DONT_FRAGMENT = int(AttrType.DONT_FRAGMENT)
_UDP = int(TransportProtocol.UDP)
_TCP = int(TransportProtocol.TCP)


#: Allocations one user, and one client IP address, may hold at once by default.
DEFAULT_USER_QUOTA = 100
DEFAULT_SOURCE_QUOTA = 100


@dataclass(frozen=True, slots=True)
class TurnLimits:
    """Lifetimes, quotas and bounds (the defaults are coturn's where it has one).

    ``user_quota``, ``source_quota`` (per client IP address, any port and
    transport) and ``total_quota`` cap allocations (0: no cap). coturn has no
    default quota, so one user or host can take every relay port; here a
    user and a client IP may each hold `DEFAULT_USER_QUOTA` /
    `DEFAULT_SOURCE_QUOTA` (100) at once, 486 beyond. A WebRTC client holds
    one to four per peer connection (UDP/TCP, IPv4/IPv6), so even a 20-peer
    mesh stays below; raise them for many clients sharing one credential or
    one NAT address.
    ``max_permissions``, ``max_channels`` and ``max_peer_connections`` (a
    TCP allocation's connections) bound one allocation's memory;
    ``bandwidth`` caps each UDP allocation's relayed bytes per second, both
    directions together (0: no cap); excess datagrams are dropped.
    """

    default_lifetime: float = 600.0
    max_lifetime: float = 3600.0
    user_quota: int = DEFAULT_USER_QUOTA
    source_quota: int = DEFAULT_SOURCE_QUOTA
    total_quota: int = 0
    max_permissions: int = 256
    max_channels: int = 256
    bandwidth: int = 0
    max_peer_connections: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.default_lifetime <= self.max_lifetime:
            raise ValueError("lifetimes must satisfy 0 < default_lifetime <= max_lifetime")
        if min(self.user_quota, self.source_quota, self.total_quota, self.bandwidth) < 0:
            raise ValueError("quotas and bandwidth must be >= 0 (0: no cap)")
        if min(self.max_permissions, self.max_channels, self.max_peer_connections) < 1:
            raise ValueError("max_permissions, max_channels and max_peer_connections must be >= 1")


class _Refusal(Exception):
    """An error response to send instead of a success (raised inside a handler)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class TurnServer:
    """A STUN+TURN server core; see the module docstring.

    ``sockets`` binds relay sockets (the asyncio runner sets itself, see
    `relay_sockets`; in-memory ones by default, for tests).
    ``relay_ips`` are the addresses relays bind, at most one per family;
    ``external_ips`` maps one to the address to advertise instead (a server
    behind a 1:1 NAT). ``policy`` decides which peers may be reached.
    ``alternate_servers`` (with ``redirect_all``) send every Allocate
    elsewhere with 300; without ``redirect_all`` only when ``total_quota``
    is reached. ``rng`` picks relay ports and reservation tokens (the OS
    CSPRNG by default). ``stun_primary`` and ``stun_alternate`` turn on the
    RFC 5780 mode of Binding (see `StunServer`). ``rfc5766_channels``
    accepts RFC 5766's channel numbers 0x5000-0x7FFF besides RFC 8656's
    0x4000-0x4FFF, as coturn does (its own client picks from the wider range).
    ``tcp_relays`` (default on) serves TCP allocations when the relay
    sockets can listen on TCP (`ice.turn.ports.TcpRelaySockets`).
    """

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        sockets: RelaySockets | None = None,
        relay_ips: Sequence[str],
        external_ips: Mapping[str, str] | None = None,
        relay_ports: tuple[int, int] = DEFAULT_RELAY_PORTS,
        policy: PeerPolicy | None = None,
        limits: TurnLimits | None = None,
        alternate_servers: Sequence[Address] = (),
        redirect_all: bool = False,
        software: str | None = DEFAULT_SOFTWARE,
        stun_primary: Address | None = None,
        stun_alternate: Address | None = None,
        rfc5766_channels: bool = True,
        tcp_relays: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.relay_ips: dict[int, str] = {}
        for ip in relay_ips:
            family = IPV6 if ":" in ip else IPV4
            if family in self.relay_ips:
                raise ValueError(f"two relay IPs of one family: {self.relay_ips[family]} and {ip}")
            self.relay_ips[family] = ip
        if not self.relay_ips:
            raise ValueError("a TURN server needs at least one relay IP")
        self.external_ips = dict(external_ips or {})
        self.rfc5766_channels = rfc5766_channels
        self._last_channel = 0x7FFF if rfc5766_channels else 0x4FFF
        self.policy = policy if policy is not None else PeerPolicy()
        self.limits = limits if limits is not None else TurnLimits()
        if redirect_all and not alternate_servers:
            raise ValueError("redirect_all needs alternate_servers")
        self.alternate_servers = list(alternate_servers)
        self.redirect_all = redirect_all
        self.tcp_relays = tcp_relays
        self._rng = rng if rng is not None else random.SystemRandom()
        self.ports = PortPool(
            sockets if sockets is not None else MemoryRelaySockets(), relay_ports, rng=self._rng
        )
        self.stun = StunServer(
            primary=stun_primary,
            alternate=stun_alternate,
            software=software,
            authenticator=authenticator,
            open_methods=(int(Method.BINDING),),
        )
        for method, handler in (
            (Method.ALLOCATE, self._allocate),
            (Method.REFRESH, self._refresh),
            (Method.CREATE_PERMISSION, self._create_permission),
            (Method.CHANNEL_BIND, self._channel_bind),
            (Method.CONNECT, self._connect),
            (Method.CONNECTION_BIND, self._connection_bind),
        ):
            self.stun.handle_method(int(method), self._guarded(handler))
        #: The allocations, by 5-tuple and by relayed address (the relay pump reads it too).
        self.allocation_table = AllocationTable()
        self._reservations: dict[bytes, tuple[Address, float]] = {}
        self._heap: list[tuple[float, int, Allocation | bytes | PeerConnection]] = []
        self._sequence = 0
        self._redirects = 0
        self._outbox = self.stun._outbox  # one outbox: answers and relayed data in order
        #: The peer connections of TCP allocations (RFC 6062).
        self.tcp = TcpRelay(
            allocations=self.allocation_table.by_relay,
            respond=self._respond_later,
            send=self._outbox.append,
            schedule=self._push,
            rng=self._rng,
            max_per_allocation=self.limits.max_peer_connections,
        )
        #: Datagrams dropped on the data path, by reason (for metrics and tests).
        self.drops: Counter[str] = Counter()
        self.allocations_created = 0
        self.allocations_expired = 0

    @property
    def relay_sockets(self) -> RelaySockets:
        """Who binds relay sockets: the runner sets itself here (`ice.aio.turn_server`)."""
        return self.ports.sockets

    @relay_sockets.setter
    def relay_sockets(self, sockets: RelaySockets) -> None:
        if len(self.allocation_table):
            raise RuntimeError("relay sockets cannot change while allocations exist")
        self.ports.sockets = sockets

    # -- the machine surface (what ice.aio.stun_server's runner calls)

    @property
    def local_addresses(self) -> list[Address]:
        return self.stun.local_addresses

    @property
    def allocation_count(self) -> int:
        return len(self.allocation_table)

    def allocations(self) -> list[Allocation]:
        return list(self.allocation_table)

    def allocation_for(self, client: Address, local: Address, reliable: bool = False) -> Allocation:
        """The allocation of a 5-tuple (KeyError when there is none)."""
        return self.allocation_table.by_five_tuple[(client, local, reliable)]

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None:
        """Handle one datagram (or framed stream message) a client sent to ``local``
        (None: the core's ``primary`` address; TypeError when it has none)."""
        if local is None:
            if self.stun.primary is None:
                raise TypeError("receive_datagram needs local= (the core has no primary address)")
            local = self.stun.primary
        try:
            if data and 0x40 <= data[0] <= self._last_channel >> 8:
                self._channel_data(data, addr, local, reliable, now)
            elif data[:2] == _SEND_INDICATION:
                self._send_indication(data, addr, local, reliable, now)
            else:
                self.stun.receive_datagram(data, addr, now, local=local, reliable=reliable)
        except Exception as exc:  # a bug on the data path: counted like the STUN core's
            self.stun.failures.record(exc, f"a packet of {len(data)} bytes from {addr}", now)

    def receive_from_peer(self, data: bytes, peer: Address, relay: Address, now: float) -> None:
        """Relay a datagram a peer sent to ``relay`` to its client (RFC 8656 section 11.3)."""
        allocation = self.allocation_table.for_relay(relay)
        if allocation is None:
            self.drops["no-allocation"] += 1
            return
        if not self._admits(allocation, peer[0], len(data), now):
            return
        client, local, reliable = allocation.five_tuple
        channel = allocation.live_channel_to(peer, now)
        if channel is not None:
            frame = encode_channel_data(channel.number, data, reliable, self.rfc5766_channels)
        else:
            indication = Message(_DATA_INDICATION)
            XorPeerAddress(*peer).add_to(indication)
            Data(data).add_to(indication)
            frame = indication.raw
        allocation.packets_to_client += 1
        allocation.bytes_to_client += len(data)
        self._outbox.append(Transmit(frame, client, local))

    def connection_lost(self, addr: Address, local: Address) -> None:
        """A client's TCP/TLS connection closed: its allocation ends with it (or, for a
        client data connection, its peer connection)."""
        if self.tcp.data_lost(addr, local):
            return
        allocation = self.allocation_table.get((addr, local, True))
        if allocation is not None:
            self._delete(allocation, "connection closed")

    def connection_in_use(self, addr: Address, local: Address) -> bool:
        """Whether a client's TCP/TLS connection carries an allocation: the runner does
        not close it as idle, the allocation's refreshes keep it (as coturn does)."""
        return self.allocation_table.get((addr, local, True)) is not None

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        return self.stun.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def next_event(self) -> None:
        """Always None: the core's requests to the runner are effects (`next_effect`)."""
        return None

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, item = heapq.heappop(heap)
            if isinstance(item, bytes):
                self._expire_reservation(item, now)
                continue
            if isinstance(item, PeerConnection):
                self.tcp.expire(item, at, now)
                continue
            if item.scheduled != at or not self.allocation_table.holds(item):
                continue  # rescheduled or gone since it was filed
            if item.expires <= now:
                self.allocations_expired += 1
                self._delete(item, "expired")
                continue
            item.purge(now)
            item.scheduled = 0.0
            self._schedule(item, item.next_deadline())

    # -- counters

    def counters(self) -> dict[str, int]:
        """Everything countable, flat, for logs and the Prometheus endpoint."""
        table = self.allocation_table
        out = {
            "allocations": len(table),
            "allocations_created": self.allocations_created,
            "allocations_expired": self.allocations_expired,
            "permissions": sum(len(a.permissions) for a in table),
            "channels": sum(len(a.channels) for a in table),
            "reservations": len(self._reservations),
        }
        if self.tcp.counts:  # once TCP allocations are in use
            out["tcp_connections"] = len(self.tcp)
            for kind, count in self.tcp.counts.items():
                out[f"tcp_{kind}"] = count
        out.update(self.stun.counters())  # requests, error responses, internal errors
        for reason, count in self.drops.items():
            out[f"dropped_{reason.replace('-', '_')}"] = count
        return out

    # -- TCP allocations (RFC 6062): what the runner reports, what it must do

    def next_effect(self) -> TcpEffect | None:
        """The next thing to do about TCP connections (`ice.turn.server_tcp`), or None."""
        return self.tcp.next_effect()

    def peer_connected(self, connection_id: int, now: float) -> None:
        """The connection asked for by `OpenPeerConnection` is established."""
        self.tcp.connected(connection_id, now)

    def peer_connection_failed(self, connection_id: int, now: float) -> None:
        """The connection asked for by `OpenPeerConnection` could not be made: 447."""
        self.tcp.failed(connection_id)

    def peer_connection_accepted(self, relay: Address, peer: Address, now: float) -> int | None:
        """A peer connected to the TCP relayed address ``relay``: its CONNECTION-ID (the
        client is told with a ConnectionAttempt), or None to close it at once."""
        return self.tcp.accepted(relay, peer, now)

    def peer_connection_closed(self, connection_id: int, now: float) -> None:
        """A peer connection ended (the runner closed both sides of its splice)."""
        self.tcp.closed(connection_id)

    # -- the data path from clients

    def _channel_data(
        self, data: bytes, addr: Address, local: Address, reliable: bool, now: float
    ) -> None:
        allocation = self.allocation_table.get((addr, local, reliable))
        if allocation is None:
            self.drops["no-allocation"] += 1
            return
        try:
            number, payload = decode_channel_data(data, reliable, self.rfc5766_channels)
        except DecodeError:
            self.drops["malformed"] += 1
            return
        channel = allocation.live_channel(number, now)
        if channel is None:
            self.drops["no-channel"] += 1
            return
        self._relay(allocation, payload, channel.peer, now)

    def _send_indication(
        self, data: bytes, addr: Address, local: Address, reliable: bool, now: float
    ) -> None:
        allocation = self.allocation_table.get((addr, local, reliable))
        if allocation is None:
            self.drops["no-allocation"] += 1
            return
        try:
            message = Message.decode(data)
            peer_attr = XorPeerAddress.get_from(message)
            data_attr = Data.get_from(message)
        except DecodeError:
            self.drops["malformed"] += 1
            return
        if peer_attr is None or data_attr is None:
            self.drops["malformed"] += 1
            return
        self._relay(allocation, data_attr.value, peer_attr.address, now)

    def _relay(self, allocation: Allocation, payload: bytes, peer: Address, now: float) -> None:
        if allocation.tcp:
            self.drops["tcp-allocation"] += 1  # its data goes over data connections
            return
        relay = allocation.relay_to(peer[0])
        if relay is None:
            self.drops["family-mismatch"] += 1
            return
        if not self._admits(allocation, peer[0], len(payload), now):
            return
        allocation.packets_to_peers += 1
        allocation.bytes_to_peers += len(payload)
        self._outbox.append(Transmit(payload, peer, relay))

    def _admits(self, allocation: Allocation, ip: str, size: int, now: float) -> bool:
        """Whether a datagram to or from ``ip`` may pass: a permission, and room in the
        bandwidth budget (either way; a drop is counted by its reason)."""
        if not allocation.permitted(ip, now):
            self.drops["no-permission"] += 1
            return False
        if allocation.bucket is not None and not allocation.bucket.take(size, now):
            self.drops["bandwidth"] += 1
            return False
        return True

    # -- requests

    def _guarded(self, handler: _Handler) -> _Handler:
        def run(ctx: RequestContext) -> Message | None:
            try:
                return handler(ctx)
            except _Refusal as refusal:
                logger.debug(
                    "%s from %s refused: %d %s",
                    _method_name(ctx.request.method),
                    ctx.addr,
                    refusal.code,
                    refusal.reason,
                )
                return _error(ctx.request, refusal.code, refusal.reason)

        return run

    def _existing(self, ctx: RequestContext) -> Allocation:
        allocation = self.allocation_table.get((ctx.addr, ctx.local, ctx.reliable))
        if allocation is None:
            raise _Refusal(437, "Allocation Mismatch")
        assert ctx.auth is not None
        if allocation.username != ctx.auth.username:
            raise _Refusal(441, "Wrong Credentials")
        return allocation

    def _allocate(self, ctx: RequestContext) -> Message | None:
        request, auth = ctx.request, ctx.auth
        assert auth is not None
        five_tuple = (ctx.addr, ctx.local, ctx.reliable)
        existing = self.allocation_table.get(five_tuple)
        if existing is not None:
            if existing.username != auth.username:
                raise _Refusal(441, "Wrong Credentials")
            if existing.allocate_id == request.transaction_id:  # a retransmission
                return self._allocated(existing, request, ctx, {}, ctx.now)
            raise _Refusal(437, "Allocation Mismatch")
        transport = RequestedTransport.get_from(request)
        if transport is None:
            raise _Refusal(400, "REQUESTED-TRANSPORT is missing")
        tcp = transport.protocol == _TCP and self.tcp_relays and self.ports.tcp
        if transport.protocol != _UDP and not tcp:
            raise _Refusal(442, "Unsupported Transport Protocol")
        token = ReservationToken.get_from(request)
        even = EvenPort.get_from(request)
        if tcp:  # RFC 6062 section 5.1
            if not ctx.reliable:
                raise _Refusal(400, "a TCP allocation needs a TCP or TLS connection")
            if token is not None or even is not None or _DONT_FRAGMENT in request:
                raise _Refusal(400, "EVEN-PORT, RESERVATION-TOKEN or DONT-FRAGMENT with TCP")
        requested = request.get(_REQUESTED_ADDRESS_FAMILY)
        additional = request.get(_ADDITIONAL_ADDRESS_FAMILY)
        if token is not None and (even is not None or requested is not None):
            raise _Refusal(400, "RESERVATION-TOKEN with EVEN-PORT or REQUESTED-ADDRESS-FAMILY")
        if requested is not None and additional is not None:
            raise _Refusal(400, "both REQUESTED- and ADDITIONAL-ADDRESS-FAMILY")
        if additional is not None and (len(additional) != 4 or additional[0] != IPV6):
            raise _Refusal(400, "ADDITIONAL-ADDRESS-FAMILY must be IPv6")
        families = self._families(requested, additional is not None)
        lifetime = self._lifetime(request)  # before any port is taken: a bad LIFETIME raises
        limits = self.limits
        if self.redirect_all or (
            limits.total_quota and len(self.allocation_table) >= limits.total_quota
        ):
            if self.alternate_servers:
                return self._redirect(request)
            raise _Refusal(508, "Insufficient Capacity")
        if limits.user_quota and self.allocation_table.user_count(auth.username) >= (
            limits.user_quota
        ):
            raise _Refusal(486, "Allocation Quota Reached")
        if limits.source_quota and self.allocation_table.source_count(ctx.addr[0]) >= (
            limits.source_quota
        ):
            raise _Refusal(486, "Allocation Quota Reached (this address)")
        dont_fragment = _DONT_FRAGMENT in request
        relays: dict[int, Address] = {}
        family_errors: dict[int, int] = {}
        reservation: bytes | None = None
        if token is not None:
            held = self._reservations.pop(token.value, None)
            if held is None or not self.ports.claim(held[0]):
                raise _Refusal(508, "Insufficient Capacity (unknown or expired token)")
            relays[IPV6 if ":" in held[0][0] else IPV4] = held[0]
        else:
            for family in families:
                ip = self.relay_ips.get(family)
                if ip is None:
                    family_errors[family] = 440
                    continue
                taken = self.ports.take(
                    ip,
                    even=even is not None,
                    pair=even is not None and even.reserve and not relays,
                    dont_fragment=dont_fragment,
                    tcp=tcp,
                )
                if taken is None:
                    family_errors[family] = 508
                    continue
                relays[family], spare = taken
                if spare is not None:
                    reservation = self._reserve(spare, ctx.now)
        if not relays:
            code = 440 if 440 in family_errors.values() and len(families) == 1 else 508
            raise _Refusal(
                code, "Address Family not Supported" if code == 440 else "Insufficient Capacity"
            )
        allocation = Allocation(
            five_tuple=five_tuple,
            username=auth.username,
            relays=relays,
            advertised={f: (self.external_ips.get(a[0], a[0]), a[1]) for f, a in relays.items()},
            expires=ctx.now + lifetime,
            allocate_id=request.transaction_id,
            reservation=reservation,
            dont_fragment=dont_fragment,
            bucket=TokenBucket(limits.bandwidth, ctx.now) if limits.bandwidth else None,
            tcp=tcp,
        )
        self.allocation_table.add(allocation)
        self.allocations_created += 1
        self._schedule(allocation, allocation.expires)
        logger.info(
            "%s allocation for %r from %s: relay %s, %d s",
            "TCP" if tcp else "UDP",
            auth.username,
            ctx.addr,
            ", ".join(f"{a[0]}:{a[1]}" for a in relays.values()),
            int(lifetime),
        )
        return self._allocated(allocation, request, ctx, family_errors, ctx.now)

    def _families(self, requested: bytes | None, dual: bool) -> list[int]:
        if dual:
            return [IPV4, IPV6]
        if requested is None:
            return [IPV4 if IPV4 in self.relay_ips else IPV6]
        if len(requested) != 4:
            raise _Refusal(400, "REQUESTED-ADDRESS-FAMILY is 4 bytes")
        if requested[0] not in self.relay_ips:
            raise _Refusal(440, "Address Family not Supported")
        return [requested[0]]

    def _allocated(
        self,
        allocation: Allocation,
        request: Message,
        ctx: RequestContext,
        family_errors: dict[int, int],
        now: float,
    ) -> Message:
        response = _success(request)
        for family in (IPV4, IPV6):
            advertised = allocation.advertised.get(family)
            if advertised is not None:
                XorRelayedAddress(*advertised).add_to(response)
        for family, code in family_errors.items():
            reason = "Address Family not Supported" if code == 440 else "Insufficient Capacity"
            AddressErrorCode(family, code, reason).add_to(response)
        Lifetime(max(0, int(allocation.expires - now))).add_to(response)
        if allocation.reservation is not None:
            ReservationToken(allocation.reservation).add_to(response)
        XorMappedAddress(*ctx.addr).add_to(response)
        return response

    def _lifetime(self, request: Message) -> float:
        """RFC 8656 section 7.2: the client's LIFETIME within [default, max]."""
        asked = Lifetime.get_from(request)
        limits = self.limits
        if asked is None:
            return limits.default_lifetime
        return max(limits.default_lifetime, min(float(asked.value), limits.max_lifetime))

    def _redirect(self, request: Message) -> Message:
        target = self.alternate_servers[self._redirects % len(self.alternate_servers)]
        self._redirects += 1
        response = _error(request, 300, "Try Alternate")
        AlternateServer(*target).add_to(response)
        return response

    def _refresh(self, ctx: RequestContext) -> Message | None:
        allocation = self._existing(ctx)
        request = ctx.request
        requested = request.get(_REQUESTED_ADDRESS_FAMILY)
        if requested is not None and (len(requested) != 4 or requested[0] not in allocation.relays):
            raise _Refusal(443, "Peer Address Family Mismatch")
        asked = Lifetime.get_from(request)
        response = _success(request)
        if asked is not None and asked.value == 0:
            self._delete(allocation, "deleted by the client")
            Lifetime(0).add_to(response)
            return response
        lifetime = self._lifetime(request)
        allocation.expires = ctx.now + lifetime
        self._schedule(allocation, allocation.expires)  # a shorter lifetime needs an earlier timer
        Lifetime(int(lifetime)).add_to(response)
        return response

    def _create_permission(self, ctx: RequestContext) -> Message | None:
        allocation = self._existing(ctx)
        peers = _peer_addresses(ctx.request)
        if not peers:
            raise _Refusal(400, "XOR-PEER-ADDRESS is missing")
        ips = [self._check_peer(allocation, peer) for peer in peers]
        fresh = {ip for ip in ips if ip not in allocation.permissions}
        if len(allocation.permissions) + len(fresh) > self.limits.max_permissions:
            raise _Refusal(508, "Insufficient Capacity (too many permissions)")
        for ip in ips:
            self._permit(allocation, ip, ctx.now)
        return _success(ctx.request)

    def _channel_bind(self, ctx: RequestContext) -> Message | None:
        allocation = self._existing(ctx)
        if allocation.tcp:
            raise _Refusal(403, "Forbidden: no channels on a TCP allocation")
        request = ctx.request
        # Read by hand: the CHANNEL-NUMBER class keeps to RFC 8656's range.
        raw_number = request.get(_CHANNEL_NUMBER)
        peer_attr = XorPeerAddress.get_from(request)
        if raw_number is None or peer_attr is None:
            raise _Refusal(400, "CHANNEL-NUMBER or XOR-PEER-ADDRESS is missing")
        if len(raw_number) != 4:
            raise _Refusal(400, "CHANNEL-NUMBER is 4 bytes")
        number = int.from_bytes(raw_number[:2], "big")
        if not 0x4000 <= number <= self._last_channel:
            raise _Refusal(
                400, f"channel number 0x{number:04x} is outside 0x4000-0x{self._last_channel:X}"
            )
        peer = peer_attr.address
        ip = self._check_peer(allocation, peer)
        conflict = allocation.channel_conflict(number, peer, ctx.now)
        if conflict is not None:
            raise _Refusal(400, conflict)
        if number not in allocation.channels and len(allocation.channels) >= (
            self.limits.max_channels
        ):
            raise _Refusal(508, "Insufficient Capacity (too many channels)")
        if ip not in allocation.permissions and len(allocation.permissions) >= (
            self.limits.max_permissions
        ):
            raise _Refusal(508, "Insufficient Capacity (too many permissions)")
        allocation.bind(number, peer, ctx.now)
        self._permit(allocation, ip, ctx.now)
        return _success(request)

    def _connect(self, ctx: RequestContext) -> Message | None:
        """RFC 6062 section 5.2; answered when the runner reports how the connection went."""
        allocation = self._existing(ctx)
        if not allocation.tcp:
            raise _Refusal(403, "Forbidden: Connect needs a TCP allocation")
        peer_attr = XorPeerAddress.get_from(ctx.request)
        if peer_attr is None or peer_attr.port == 0:
            raise _Refusal(400, "XOR-PEER-ADDRESS is missing or invalid")
        peer = peer_attr.address
        self._check_peer(allocation, peer)
        if peer in allocation.relays.values():
            raise _Refusal(403, "Forbidden: the allocation's own relayed address")
        if peer in allocation.tcp_peers:
            raise _Refusal(446, "Connection Already Exists")
        if len(allocation.tcp_peers) >= self.limits.max_peer_connections:
            raise _Refusal(508, "Insufficient Capacity (too many connections)")
        relay = allocation.relays[IPV6 if ":" in peer[0] else IPV4]
        self.tcp.connect(allocation, relay, peer, ctx)
        return None

    def _connection_bind(self, ctx: RequestContext) -> Message | None:
        """RFC 6062 section 5.4: a new connection becomes a peer connection's data connection."""
        if not ctx.reliable:
            raise _Refusal(400, "ConnectionBind needs a TCP or TLS connection")
        if self.allocation_table.get((ctx.addr, ctx.local, True)) is not None:
            raise _Refusal(400, "ConnectionBind on a control connection")
        if self.tcp.is_data_connection(ctx.addr, ctx.local):
            raise _Refusal(400, "ConnectionBind on a connection already bound")
        attr = ConnectionId.get_from(ctx.request)
        connection = self.tcp.pending(attr.value) if attr is not None else None
        if connection is None:
            raise _Refusal(400, "CONNECTION-ID is missing, unknown or not pending")
        assert ctx.auth is not None
        if connection.allocation.username != ctx.auth.username:
            raise _Refusal(441, "Wrong Credentials")
        self.tcp.bind(connection, ctx.addr, ctx.local)
        return _success(ctx.request)

    def _respond_later(self, ctx: RequestContext, response: Message) -> None:
        """Sign and queue an answer the handler deferred (a Connect's)."""
        self.stun._finish(
            response, ctx.request, ctx.auth, ctx.addr, ctx.local, len(ctx.request.raw)
        )

    def _check_peer(self, allocation: Allocation, peer: Address) -> str:
        ip = peer[0]
        if (IPV6 if ":" in ip else IPV4) not in allocation.relays:
            raise _Refusal(443, "Peer Address Family Mismatch")
        why = self.policy.reason(ip) if not self.policy.permits(ip) else None
        if why is not None:
            raise _Refusal(403, f"Forbidden: {ip} is {why}")
        return ip

    def _permit(self, allocation: Allocation, ip: str, now: float) -> None:
        self._schedule(allocation, allocation.permit(ip, now))

    # -- lifetimes

    def _schedule(self, allocation: Allocation, at: float) -> None:
        """Make sure the allocation's timer fires no later than ``at``."""
        scheduled = allocation.scheduled
        if scheduled and scheduled <= at and self.allocation_table.holds(allocation):
            return
        allocation.scheduled = at
        self._push(at, allocation)

    def _push(self, at: float, item: Allocation | bytes | PeerConnection) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (at, self._sequence, item))
        live = len(self.allocation_table) + len(self._reservations) + len(self.tcp)
        if len(self._heap) > 2 * live + 1024:
            self._compact()

    def _compact(self) -> None:
        """Drop the entries of deleted allocations and superseded deadlines, so a
        client that allocates and deletes in a loop cannot grow the heap."""
        live = []
        for entry in self._heap:
            item = entry[2]
            if isinstance(item, bytes):
                if item in self._reservations:
                    live.append(entry)
            elif isinstance(item, PeerConnection):
                if self.tcp.filed(item, entry[0]):
                    live.append(entry)
            elif entry[0] == item.scheduled and self.allocation_table.holds(item):
                live.append(entry)
        heapq.heapify(live)
        self._heap = live

    def _reserve(self, address: Address, now: float) -> bytes:
        token = self._rng.getrandbits(64).to_bytes(8, "big")
        self._reservations[token] = (address, now + RESERVATION_LIFETIME)
        self._push(now + RESERVATION_LIFETIME, token)
        return token

    def _expire_reservation(self, token: bytes, now: float) -> None:
        held = self._reservations.get(token)
        if held is not None and held[1] <= now:
            del self._reservations[token]
            self.ports.release(held[0])

    def _delete(self, allocation: Allocation, why: str) -> None:
        if not self.allocation_table.remove(allocation):
            return
        self.tcp.close_all(allocation)
        for relay in allocation.relays.values():
            self.ports.release(relay)
        logger.info(
            "allocation for %r from %s ended (%s): %d/%d packets to peers/client",
            allocation.username,
            allocation.client,
            why,
            allocation.packets_to_peers,
            allocation.packets_to_client,
        )


def _success(request: Message) -> Message:
    response = Message(message_type(request.method, MessageClass.SUCCESS_RESPONSE))
    response.transaction_id = request.transaction_id
    return response


def _error(request: Message, code: int, reason: str) -> Message:
    response = Message(message_type(request.method, MessageClass.ERROR_RESPONSE))
    response.transaction_id = request.transaction_id
    ErrorCodeAttribute(code, reason).add_to(response)
    return response


def _peer_addresses(request: Message) -> list[Address]:
    """Every XOR-PEER-ADDRESS of a request (CreatePermission may carry several)."""
    values = request.get_all(_XOR_PEER_ADDRESS)
    if len(values) == 1:
        attr = XorPeerAddress.get_from(request)
        return [attr.address] if attr is not None else []
    peers = []
    for value in values:
        # The XOR needs the transaction ID: decode each value in a message of its own.
        single = Message(request.type, request.transaction_id)
        single.add(_XOR_PEER_ADDRESS, value)
        attr = XorPeerAddress.get_from(single)
        if attr is not None:
            peers.append(attr.address)
    return peers


def _method_name(method: int) -> str:
    try:
        return Method(method).iana_name
    except ValueError:
        return f"method 0x{method:03x}"
