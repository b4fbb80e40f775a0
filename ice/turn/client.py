"""The TURN client, sans-I/O (RFC 8656, RFC 5766, RFC 6156).

A `TurnSession` holds one allocation on one TURN server: it allocates (with
the long-term challenge answered by its `StunClient`), keeps the allocation,
its permissions and its channels alive while they are used, and turns
application datagrams into Send indications or ChannelData and back::

    session = TurnSession(server, LongTermCredentials("alice", "secret"))
    session.allocate(now)
    session.send(b"hello", ("198.51.100.7", 4000), now)   # permission first, then data
    for transmit in session.datagrams_to_send(now): ...     # all to session.server
    session.receive_datagram(data, server, now)            # STUN or ChannelData from it
    session.next_event()  -> Allocated | DataReceived | AllocationLost | ...

What it does for you:

- a permission is installed (CreatePermission, several peers per request)
  before the first datagram to a peer's IP goes out; datagrams wait for it;
- after ``channel_after`` datagrams to a peer a channel is bound
  (ChannelBind); Send indications are used until the server confirms it,
  ChannelData after, padded to 4 bytes over TCP/TLS;
- the allocation is refreshed ``min(60 s, a quarter of its lifetime)``
  before it expires, permissions and channels likewise before their 300 s
  and 600 s, but only while they carry traffic (either way): unused ones
  lapse, as the server lets them;
- a 300 ALTERNATE-SERVER answer to Allocate moves the session to the
  other server (`Redirected`; at most ``max_redirects`` times);
- losing the allocation (a refresh refused or unanswered, or its lifetime
  running out) is an `AllocationLost` event, never a silent stall.

TCP allocations (RFC 6062, ``relay_transport="tcp"``, over a TCP/TLS control
connection only) relay TCP connections instead of datagrams: `connect`
asks the server to connect to a peer (`PeerConnected` or
`PeerConnectFailed`), a peer connecting to the relayed address is a
`ConnectionAttempt` (it needs a permission, `create_permission`), and
either way the connection's bytes go over a new connection to the server
that `data_connection` binds (`ice.turn.data_connection`). Permissions of a
TCP allocation are kept while it lives, as no datagrams show them in use.

Over TCP/TLS the adapter cuts the stream into frames (`ice.stream_frame_length`)
and feeds each to `receive_datagram`; what comes out is already framed.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, TypedDict, Unpack

from ice._codec import Message, decode_channel_data, encode_channel_data
from ice._errors import DecodeError, TurnError
from ice._version import __version__
from ice.attrs import (
    AdditionalAddressFamily,
    AddressErrorCode,
    AlternateDomain,
    AlternateServer,
    ChannelNumber,
    ConnectionId,
    Data,
    DontFragment,
    EvenPort,
    Lifetime,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
)
from ice.constants import (
    ALLOCATE_REQUEST,
    CHANNEL_BIND_REQUEST,
    CONNECT_REQUEST,
    CONNECTION_ATTEMPT_INDICATION,
    CREATE_PERMISSION_REQUEST,
    DATA_INDICATION,
    REFRESH_REQUEST,
    SEND_INDICATION,
)
from ice.machine import Address, Transmit
from ice.stun.client import StunClient
from ice.stun.client_auth import LongTermCredentials
from ice.stun.transaction import (
    TransactionEvent,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTable,
    TransactionTimedOut,
)
from ice.stun.uri import format_address
from ice.turn.data_connection import TurnDataConnection
from ice.turn.events import (
    Allocated,
    AllocationFailed,
    AllocationLost,
    ChannelBindFailed,
    ChannelBound,
    Closed,
    ConnectionAttempt,
    DataReceived,
    PeerConnected,
    PeerConnectFailed,
    PermissionExpired,
    PermissionFailed,
    PermissionInstalled,
    Redirected,
    Refreshed,
    TurnEvent,
)

__all__ = ["ALLOCATION_DEFAULTS", "AllocationOptions", "TurnSession"]

logger = logging.getLogger("ice.turn.client")

DEFAULT_SOFTWARE = f"ice-stun-turn/{__version__}"
FIRST_CHANNEL = 0x4000
LAST_CHANNEL = 0x4FFF
#: Datagrams kept per peer IP while its permission is being installed.
MAX_QUEUED_PER_PEER = 64
#: REQUESTED-TRANSPORT protocol numbers.
_PROTOCOLS = {"udp": 17, "tcp": 6}
_FAMILY = {4: 0x01, 6: 0x02}


# -- state


@dataclass(slots=True)
class _Permission:
    ip: str
    installed: bool = False
    in_flight: bool = False
    expires: float = 0.0
    refresh_at: float = 0.0
    used: bool = False  # since it was last installed or refreshed
    queue: deque[tuple[bytes, Address]] = field(default_factory=deque)


@dataclass(slots=True)
class _Channel:
    number: int
    peer: Address
    bound: bool = False
    in_flight: bool = False
    expires: float = 0.0
    refresh_at: float = 0.0
    used: bool = False  # since it was last bound or refreshed
    permission: _Permission | None = None  # of its peer's IP, once bound


@dataclass(frozen=True, slots=True)
class _Pending:
    """What a transaction in flight is for."""

    kind: str  # allocate | refresh | close | permission | channel | connect
    ips: tuple[str, ...] = ()
    channel: int = 0
    peer: Address = ("", 0)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How a transaction ended: the success or error response, or neither (timeout)."""

    success: Message | None
    failure: Message | None
    code: int
    reason: str
    transaction_id: bytes


def refresh_delay(lifetime: float) -> float:
    """When to refresh something that lives ``lifetime`` seconds: a minute early,
    or a quarter of its life early when it is short."""
    return lifetime - min(60.0, lifetime / 4)


def _normal_ip(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


class AllocationOptions(TypedDict, total=False):
    """What to ask the server for, and how to keep it: keyword arguments of
    `TurnSession` and `ice.TurnClient.allocate` (declared once, here).

    ``relay_transport`` "udp" or "tcp" (RFC 6062; needs a reliable
    connection); ``family`` 4 or 6 (RFC 6156); ``dual_stack`` an IPv6
    address besides the IPv4 one (RFC 8656); ``lifetime`` the LIFETIME to
    ask for; ``even_port``/``reserve_next_port``/``reservation_token``
    (RFC 8656 EVEN-PORT, RESERVATION-TOKEN); ``dont_fragment``;
    ``software`` (None: no SOFTWARE attribute); ``permission_lifetime`` and
    ``channel_lifetime`` the server's (300 s and 600 s by the RFC),
    refreshed before they run out while in use; ``channel_after`` datagrams
    to one peer before a channel is bound for it (0: never by itself).
    """

    relay_transport: str
    family: int
    dual_stack: bool
    lifetime: int | None
    even_port: bool
    reserve_next_port: bool
    reservation_token: bytes | None
    dont_fragment: bool
    software: str | None
    permission_lifetime: float
    channel_lifetime: float
    channel_after: int


ALLOCATION_DEFAULTS: Final[AllocationOptions] = {
    "relay_transport": "udp",
    "family": 4,
    "dual_stack": False,
    "lifetime": None,
    "even_port": False,
    "reserve_next_port": False,
    "reservation_token": None,
    "dont_fragment": False,
    "software": DEFAULT_SOFTWARE,
    "permission_lifetime": 300.0,
    "channel_lifetime": 600.0,
    "channel_after": 2,
}


class TurnSession:
    """One allocation on one TURN server, with its permissions and channels."""

    def __init__(
        self,
        server: Address,
        credentials: LongTermCredentials,
        *,
        reliable: bool = False,
        max_redirects: int = 2,
        table: TransactionTable | None = None,
        **options: Unpack[AllocationOptions],
    ) -> None:
        unknown = options.keys() - AllocationOptions.__annotations__.keys()
        if unknown:
            raise TypeError(f"unknown allocation options: {', '.join(sorted(unknown))}")
        settings: AllocationOptions = {**ALLOCATION_DEFAULTS, **options}
        relay_transport, family = settings["relay_transport"], settings["family"]
        dual_stack, lifetime = settings["dual_stack"], settings["lifetime"]
        even_port, reserve_next_port = settings["even_port"], settings["reserve_next_port"]
        reservation_token, dont_fragment = settings["reservation_token"], settings["dont_fragment"]
        permission_lifetime = settings["permission_lifetime"]
        channel_lifetime = settings["channel_lifetime"]
        channel_after = settings["channel_after"]
        if family not in _FAMILY:
            raise ValueError("family must be 4 or 6")
        if dual_stack and family != 4:
            raise ValueError("a dual allocation asks for IPv4 plus an additional IPv6 address")
        if reservation_token is not None and (even_port or reserve_next_port or dual_stack):
            raise ValueError("RESERVATION-TOKEN excludes EVEN-PORT and ADDITIONAL-ADDRESS-FAMILY")
        if reserve_next_port and not even_port:
            raise ValueError("reserve_next_port needs even_port")
        if channel_after < 0:
            raise ValueError("channel_after must be >= 0 (0: never bind channels by itself)")
        if relay_transport not in _PROTOCOLS:
            raise ValueError(f"relay_transport must be udp or tcp, not {relay_transport!r}")
        if relay_transport == "tcp":  # RFC 6062 section 5.1
            if not reliable:
                raise ValueError("a TCP allocation needs a TCP or TLS connection to the server")
            if even_port or dont_fragment or reservation_token is not None:
                raise ValueError("no EVEN-PORT, RESERVATION-TOKEN, DONT-FRAGMENT for TCP")
        self.server = server
        self.credentials = credentials
        self.reliable = reliable
        self.relay_transport = relay_transport
        self.family = family
        self.dual_stack = dual_stack
        self.requested_lifetime = lifetime
        self.even_port = even_port
        self.reserve_next_port = reserve_next_port
        self.reservation_token = reservation_token
        self.dont_fragment = dont_fragment
        self.permission_lifetime = permission_lifetime
        self.channel_lifetime = channel_lifetime
        self.channel_after = channel_after
        self.max_redirects = max_redirects
        self.state = "new"
        self.relayed_addresses: tuple[Address, ...] = ()
        self.mapped_address: Address | None = None
        self.lifetime = 0
        self.expires = 0.0
        self.dropped = 0  # datagrams from the server that could not be used
        software = settings["software"]
        self._client = StunClient(credentials=credentials, software=software, table=table)
        self._pending: dict[bytes, _Pending] = {}
        self._refresh_at: float | None = None
        self._redirects: list[Address] = [server]
        self._permissions: dict[str, _Permission] = {}
        self._wanted: set[str] = set()  # IPs to put in the next CreatePermission
        self._channels: dict[int, _Channel] = {}
        self._channel_by_peer: dict[Address, _Channel] = {}
        self._sent_to: dict[Address, int] = {}
        self._peer_keys: dict[Address, Address] = {}
        self._next_channel = FIRST_CHANNEL
        self._outbox: list[Transmit] = []
        self._events: deque[TurnEvent] = deque()

    # -- requests

    def allocate(self, now: float) -> None:
        """Ask for the allocation (once; a redirect asks the next server itself)."""
        if self.state not in ("new",):
            raise TurnError(0, f"allocate() in state {self.state}")
        self.state = "allocating"
        self._send_allocate(now)

    def _send_allocate(self, now: float) -> None:
        protocol = _PROTOCOLS[self.relay_transport]
        request = Message.build(ALLOCATE_REQUEST, RequestedTransport(protocol))
        if self.family == 6:
            RequestedAddressFamily(_FAMILY[6]).add_to(request)
        if self.dual_stack:
            AdditionalAddressFamily(_FAMILY[6]).add_to(request)
        if self.even_port:
            EvenPort(self.reserve_next_port).add_to(request)
        if self.reservation_token is not None:
            ReservationToken(self.reservation_token).add_to(request)
        if self.requested_lifetime is not None:
            Lifetime(self.requested_lifetime).add_to(request)
        if self.dont_fragment:
            DontFragment().add_to(request)
        self._request(request, _Pending("allocate"), now)

    def _request(self, request: Message, pending: _Pending, now: float) -> bytes:
        tid = self._client.request(request, self.server, now, reliable=self.reliable)
        self._pending[tid] = pending
        return tid

    def close(self, now: float) -> None:
        """Release the allocation (Refresh with LIFETIME 0); `Closed` follows."""
        if self.state in ("closing", "closed", "failed"):
            return
        if self.state != "allocated":
            self._abandon(now)
            return
        self.state = "closing"
        self._request(Message.build(REFRESH_REQUEST, Lifetime(0)), _Pending("close"), now)

    def create_permission(self, peers: Iterable[Address | str], now: float) -> None:
        """Install permissions for these peers' IPs now (one request for all)."""
        self._require_allocation()
        for peer in peers:
            ip = _normal_ip(peer if isinstance(peer, str) else peer[0])
            self._permissions.setdefault(ip, _Permission(ip))
            self._wanted.add(ip)
        self._flush_permissions(now)

    def connect(self, peer: Address, now: float) -> bytes:
        """Ask the server of a TCP allocation to connect to ``peer`` (RFC 6062 Connect);
        returns the transaction ID that `PeerConnected`/`PeerConnectFailed` carry."""
        self._require_allocation()
        if self.relay_transport != "tcp":
            raise TurnError(0, "Connect needs a TCP allocation (relay_transport='tcp')")
        peer = (_normal_ip(peer[0]), peer[1])
        request = Message.build(CONNECT_REQUEST, XorPeerAddress(*peer))
        return self._request(request, _Pending("connect", peer=peer), now)

    def data_connection(
        self, connection_id: int, *, table: TransactionTable | None = None
    ) -> TurnDataConnection:
        """The machine that binds a new connection to this server to ``connection_id``
        (from `PeerConnected` or `ConnectionAttempt`), signing with these credentials."""
        return TurnDataConnection(
            self.server,
            self.credentials,
            connection_id,
            software=self._client.software,
            table=table,
        )

    def bind_channel(self, peer: Address, now: float) -> int:
        """Bind a channel to ``peer`` (or return the one it has); returns its number."""
        self._require_allocation()
        self._require_datagrams()
        peer = (_normal_ip(peer[0]), peer[1])
        channel = self._channel_by_peer.get(peer)
        if channel is not None:
            return channel.number
        number = self._free_channel()
        channel = _Channel(number, peer)
        self._channels[number] = channel
        self._channel_by_peer[peer] = channel
        self._send_channel_bind(channel, now)
        return number

    def _free_channel(self) -> int:
        for _ in range(LAST_CHANNEL - FIRST_CHANNEL + 1):
            number = self._next_channel
            self._next_channel = number + 1 if number < LAST_CHANNEL else FIRST_CHANNEL
            if number not in self._channels:
                return number
        raise TurnError(508, "all 4096 channel numbers are in use")

    def _send_channel_bind(self, channel: _Channel, now: float) -> None:
        channel.in_flight = True
        request = Message.build(
            CHANNEL_BIND_REQUEST, ChannelNumber(channel.number), XorPeerAddress(*channel.peer)
        )
        self._request(request, _Pending("channel", channel=channel.number), now)

    def _require_allocation(self) -> None:
        if self.state != "allocated":
            raise TurnError(0, f"no allocation (state {self.state})")

    def _require_datagrams(self) -> None:
        if self.relay_transport != "udp":
            raise TurnError(0, "a TCP allocation relays connections (connect), not datagrams")

    # -- what the server holds, as far as the session knows

    def has_permission(self, ip: str) -> bool:
        """Whether a permission for ``ip`` (any spelling) is installed: granted by
        CreatePermission or ChannelBind and not refused or lapsed since. One being
        refreshed still counts; data to an IP without one waits for it."""
        permission = self._permissions.get(ip)
        if permission is None:
            permission = self._permissions.get(_normal_ip(ip))
        return permission is not None and permission.installed

    def channel_for(self, peer: Address) -> int | None:
        """The number of the channel the server has bound to ``peer`` (any spelling),
        or None: none asked for, its first ChannelBind not answered yet, refused or
        lapsed. One being refreshed keeps its number."""
        channel = self._channel_by_peer.get(peer)
        if channel is None:
            channel = self._channel_by_peer.get((_normal_ip(peer[0]), int(peer[1])))
        return channel.number if channel is not None and channel.bound else None

    # -- data

    def encapsulate(self, data: bytes, peer: Address) -> bytes | None:
        """The ChannelData frame that relays ``data`` to ``peer``, for the caller to
        send to `server` itself, when a channel is bound to ``peer`` and its
        permission installed; else None (then call `send`).

        The per-packet fast path: no Transmit, no timer change. `send` does
        the same and queues the frame.
        """
        channel = self._channel_by_peer.get(peer)
        if channel is None or not channel.bound:
            return None
        permission = channel.permission
        if permission is None or not permission.installed:
            return None
        channel.used = permission.used = True
        return encode_channel_data(channel.number, data, self.reliable)

    def decapsulate(self, data: bytes) -> tuple[bytes, Address] | None:
        """(payload, peer) of a ChannelData frame from the server on a known channel;
        None for anything else (give that to `receive_datagram`). No event is queued:
        the fast path of receiving."""
        try:
            number, payload = decode_channel_data(data, self.reliable)
        except DecodeError:
            # STUN (a Data indication, a response) or garbage. The asyncio client
            # asks here first for every datagram; a refusal is cheap since
            # decode_channel_data refuses from C (~350 ns), and a check of the
            # first byte in Python would cost ChannelData ~40 ns on every packet.
            return None
        channel = self._channels.get(number)
        if channel is None:
            return None
        channel.used = True
        permission = channel.permission
        if permission is not None:
            permission.used = True
        return payload, channel.peer

    def send(self, data: bytes, peer: Address, now: float) -> None:
        """Relay ``data`` to ``peer`` (an IP address and port)."""
        frame = self.encapsulate(data, peer)
        if frame is not None:
            self._outbox.append(Transmit(frame, self.server))
            return
        if self.state != "allocated":
            raise TurnError(0, f"no allocation (state {self.state})")
        self._require_datagrams()
        key = self._peer_keys.get(peer)
        if key is None:
            key = self._peer_key(peer)
        if key != peer:  # another spelling of a peer address ("::0001" for "::1")
            frame = self.encapsulate(data, key)
            if frame is not None:
                self._outbox.append(Transmit(frame, self.server))
                return
            peer = key
        channel = self._channel_by_peer.get(peer)
        ip = peer[0]
        permission = self._permissions.get(ip)
        if permission is None:
            permission = self._permissions[ip] = _Permission(ip)
            self._wanted.add(ip)
        permission.used = True
        if not permission.installed:
            if len(permission.queue) >= MAX_QUEUED_PER_PEER:
                permission.queue.popleft()
                self.dropped += 1
            permission.queue.append((bytes(data), peer))
        else:
            self._send_indication(data, peer)
        if channel is None and self.channel_after:
            count = self._sent_to.get(peer, 0) + 1
            self._sent_to[peer] = count
            if count >= self.channel_after:
                del self._sent_to[peer]
                self.bind_channel(peer, now)

    def _peer_key(self, peer: Address) -> Address:
        """One spelling per peer (IPv6 text varies), cached: parsing costs a microsecond."""
        if len(self._peer_keys) >= 4096:
            self._peer_keys.clear()
        key = self._peer_keys[peer] = (_normal_ip(peer[0]), int(peer[1]))
        return key

    def _send_indication(self, data: bytes, peer: Address) -> None:
        indication = Message.build(SEND_INDICATION, XorPeerAddress(*peer), Data(data))
        if self.dont_fragment:
            DontFragment().add_to(indication)
        self._outbox.append(Transmit(indication.raw, self.server))

    # -- the machine surface

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None:
        """A datagram (or one stream frame) from the server.

        ``local`` and ``reliable`` are ignored: the session has one socket, and
        whether it is a stream was given at construction.
        """
        if addr != self.server and not self.reliable:
            self.dropped += 1
            return
        if data and 0x40 <= data[0] <= 0x4F:
            got = self.decapsulate(data)
            if got is None:
                self.dropped += 1
            else:
                self._events.append(DataReceived(got[0], got[1], self._channel_number(got[1])))
            return
        try:
            message = Message.decode(data)
        except DecodeError as exc:
            logger.debug("dropped %d bytes from %s: %s", len(data), addr, exc)
            self.dropped += 1
            return
        if message.type == DATA_INDICATION:
            self._receive_data_indication(message, now)
        elif message.type == CONNECTION_ATTEMPT_INDICATION:
            self._receive_connection_attempt(message)
        elif self._client.receive_message(message, addr, now):
            self._drain(now)
        else:
            self.dropped += 1

    def _channel_number(self, peer: Address) -> int | None:
        channel = self._channel_by_peer.get(peer)
        return channel.number if channel is not None else None

    def _receive_data_indication(self, message: Message, now: float) -> None:
        try:
            peer = XorPeerAddress.get_from(message)
            data = Data.get_from(message)
        except DecodeError as exc:
            logger.debug("dropped a malformed Data indication: %s", exc)
            self.dropped += 1
            return
        if peer is None or data is None:
            self.dropped += 1
            return
        address = peer.address
        permission = self._permissions.get(address[0])
        if permission is not None:
            permission.used = True
        self._events.append(DataReceived(data.value, address, None))

    def _receive_connection_attempt(self, message: Message) -> None:
        try:
            connection_id = ConnectionId.get_from(message)
            peer = XorPeerAddress.get_from(message)
        except DecodeError as exc:
            logger.debug("dropped a malformed ConnectionAttempt: %s", exc)
            connection_id = peer = None
        if connection_id is None or peer is None or self.relay_transport != "tcp":
            self.dropped += 1
            return
        self._events.append(ConnectionAttempt(connection_id.value, peer.address))

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        """Everything due for the server, in order."""
        if self._wanted and self.state == "allocated":
            self._flush_permissions(now)
        requests = self._client.datagrams_to_send(now)
        if not self._outbox:
            return requests
        out, self._outbox = self._outbox, []
        return requests + out if requests else out

    def get_timer(self) -> float | None:
        deadlines = [t for t in (self._client.get_timer(), self._refresh_at) if t is not None]
        if self.state == "allocated":
            deadlines.append(self.expires)
            deadlines.extend(
                p.refresh_at for p in self._permissions.values() if p.installed and not p.in_flight
            )
            deadlines.extend(
                c.refresh_at for c in self._channels.values() if c.bound and not c.in_flight
            )
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        self._client.handle_timer(now)
        self._drain(now)
        if self.state != "allocated":
            return
        if now >= self.expires:
            self._lose(0, "the allocation expired without a successful refresh", now)
            return
        if self._refresh_at is not None and now >= self._refresh_at:
            self._refresh_at = None
            refresh = Message.build(REFRESH_REQUEST)
            if self.requested_lifetime is not None:
                Lifetime(self.requested_lifetime).add_to(refresh)
            self._request(refresh, _Pending("refresh"), now)
        self._maintain_permissions(now)
        self._maintain_channels(now)

    def next_event(self) -> TurnEvent | None:
        return self._events.popleft() if self._events else None

    # -- upkeep

    def _maintain_permissions(self, now: float) -> None:
        for ip, permission in list(self._permissions.items()):
            if not permission.installed or permission.in_flight or now < permission.refresh_at:
                continue
            if permission.used or self.relay_transport == "tcp":
                self._wanted.add(ip)
            elif now >= permission.expires:
                permission.installed = False  # channels linked to it stop using it
                del self._permissions[ip]  # unused: the server lets it lapse, so do we
                self._events.append(PermissionExpired((ip,)))
            else:
                permission.refresh_at = permission.expires
        self._flush_permissions(now)

    def _maintain_channels(self, now: float) -> None:
        for number, channel in list(self._channels.items()):
            if not channel.bound or channel.in_flight or now < channel.refresh_at:
                continue
            if channel.used:
                self._send_channel_bind(channel, now)
            elif now >= channel.expires:
                # RFC 8656 section 12: a number is not rebound to another peer for
                # 5 minutes; numbers are handed out in turn, so that is 4096 binds away.
                del self._channels[number]
                del self._channel_by_peer[channel.peer]
            else:
                channel.refresh_at = channel.expires

    def _flush_permissions(self, now: float) -> None:
        ips = tuple(sorted(ip for ip in self._wanted if not self._permissions[ip].in_flight))
        self._wanted.clear()
        if not ips:
            return
        request = Message.build(CREATE_PERMISSION_REQUEST)
        for ip in ips:
            self._permissions[ip].in_flight = True
            XorPeerAddress(ip, 0).add_to(request)
        self._request(request, _Pending("permission", ips=ips), now)

    # -- outcomes

    def _drain(self, now: float) -> None:
        while (event := self._client.next_event()) is not None:
            pending = self._pending.pop(event.transaction_id, None)
            if pending is None:
                continue
            try:
                self._settle(pending, event, now)
            except ValueError as exc:
                # A response with a malformed attribute (XOR-RELAYED-ADDRESS of an unknown
                # family, an ALTERNATE-SERVER that does not parse...): the request fails with
                # that reason, so that every transaction still ends in exactly one event.
                if isinstance(event, TransactionTimedOut):
                    raise
                code = event.code if isinstance(event, TransactionFailed) else None
                reason = f"malformed {code or ''} response: {exc}".replace("  ", " ")
                failed = TransactionFailed(
                    event.transaction_id, event.response, event.addr, 0, reason
                )
                self._settle(pending, failed, now)

    def _settle(self, pending: _Pending, event: TransactionEvent, now: float) -> None:
        """Hand a transaction's outcome to the handler of what it was for."""
        tid = event.transaction_id
        if isinstance(event, TransactionSucceeded):
            outcome = _Outcome(event.response, None, 0, "", tid)
        elif isinstance(event, TransactionFailed):
            reason = event.reason.rstrip("\x00 ")  # coturn pads some reasons with NULs
            failure = self._client.auth_failure
            if failure is not None and event.code in (400, 401, 438) and str(failure) not in reason:
                reason = f"{reason}: {failure}"
            outcome = _Outcome(None, event.response, event.code, reason, tid)
        else:
            reason = f"no answer from {format_address(self.server)}"
            outcome = _Outcome(None, None, 0, reason, tid)
        _OUTCOME_HANDLERS[pending.kind](self, pending, outcome, now)

    def _allocate_outcome(self, pending: _Pending, outcome: _Outcome, now: float) -> None:
        if outcome.success is not None:
            self._allocated(outcome.success, now)
        elif outcome.code == 300 and outcome.failure is not None:
            if not self._redirect(outcome.failure, now):
                self._fail(outcome)
        else:
            self._fail(outcome)

    def _fail(self, outcome: _Outcome) -> None:
        self.state = "failed"
        self._events.append(AllocationFailed(outcome.code, outcome.reason))

    def _refresh_outcome(self, pending: _Pending, outcome: _Outcome, now: float) -> None:
        if outcome.success is not None:
            self._granted(outcome.success, now)
            self._events.append(Refreshed(self.lifetime))
        elif self.state == "allocated":
            self._lose(outcome.code, outcome.reason or "refresh failed", now)

    def _close_outcome(self, pending: _Pending, outcome: _Outcome, now: float) -> None:
        self._abandon(now)

    def _allocated(self, response: Message, now: float) -> None:
        relayed = [XorRelayedAddress.get_from(response)]
        for value in response.get_all(XorRelayedAddress.TYPE)[1:]:
            extra = Message(response.type, response.transaction_id)
            extra.add(XorRelayedAddress.TYPE, value)
            relayed.append(XorRelayedAddress.get_from(extra))
        mapped = XorMappedAddress.get_from(response)
        token = ReservationToken.get_from(response)
        address_error = AddressErrorCode.get_from(response)
        self.relayed_addresses = tuple(r.address for r in relayed if r is not None)
        self.mapped_address = mapped.address if mapped is not None else None
        if not self.relayed_addresses:
            self.state = "failed"
            self._events.append(AllocationFailed(0, "success response without XOR-RELAYED-ADDRESS"))
            return
        self.state = "allocated"
        self._granted(response, now)
        error_text = None
        if address_error is not None:
            family = {1: "IPv4", 2: "IPv6"}.get(address_error.family, "?")
            error_text = f"{family}: {address_error.code} {address_error.reason}"
        self._events.append(
            Allocated(
                self.relayed_addresses,
                self.mapped_address,
                self.lifetime,
                token.value if token is not None else None,
                error_text,
            )
        )

    def _granted(self, response: Message, now: float) -> None:
        lifetime = Lifetime.get_from(response)
        self.lifetime = lifetime.value if lifetime is not None else 600
        self.expires = now + self.lifetime
        self._refresh_at = now + refresh_delay(self.lifetime)

    def _redirect(self, response: Message, now: float) -> bool:
        alternate = AlternateServer.get_from(response)
        if alternate is None or len(self._redirects) > self.max_redirects:
            return False
        server = alternate.address
        if server in self._redirects:
            return False  # a loop of redirections
        self._redirects.append(server)
        self.server = server
        # realm and nonce belong to the old server
        self.credentials.realm = None
        self.credentials.nonce = None
        domain = AlternateDomain.get_from(response)
        self._events.append(Redirected(server, domain.value if domain is not None else None))
        self._send_allocate(now)
        return True

    def _permission_outcome(self, pending: _Pending, outcome: _Outcome, now: float) -> None:
        ips = pending.ips
        if outcome.success is not None:
            for ip in ips:
                permission = self._permissions.get(ip)
                if permission is None:
                    continue
                permission.in_flight = False
                self._installed(permission, now)
            for channel in self._channels.values():
                if channel.peer[0] in ips:
                    channel.permission = self._permissions.get(channel.peer[0])
            self._events.append(PermissionInstalled(ips))
            return
        for ip in ips:
            permission = self._permissions.pop(ip, None)
            if permission is not None:
                permission.installed = False
                self.dropped += len(permission.queue)
        self._events.append(PermissionFailed(ips, outcome.code, outcome.reason))

    def _installed(self, permission: _Permission, now: float) -> None:
        """A permission is (re)installed: date it and send what waited for it."""
        permission.installed = True
        permission.used = False
        permission.expires = now + self.permission_lifetime
        permission.refresh_at = now + refresh_delay(self.permission_lifetime)
        while permission.queue:
            data, peer = permission.queue.popleft()
            self._send_to_peer(data, peer)

    def _send_to_peer(self, data: bytes, peer: Address) -> None:
        channel = self._channel_by_peer.get(peer)
        if channel is not None and channel.bound:
            self._outbox.append(
                Transmit(encode_channel_data(channel.number, data, self.reliable), self.server)
            )
        else:
            self._send_indication(data, peer)

    def _channel_outcome(self, pending: _Pending, outcome: _Outcome, now: float) -> None:
        number = pending.channel
        channel = self._channels.get(number)
        if channel is None:
            return
        channel.in_flight = False
        if outcome.success is not None:
            first = not channel.bound
            channel.bound = True
            channel.used = False
            channel.expires = now + self.channel_lifetime
            channel.refresh_at = now + refresh_delay(self.channel_lifetime)
            # ChannelBind installs or refreshes the peer's permission too
            permission = self._permissions.setdefault(channel.peer[0], _Permission(channel.peer[0]))
            channel.permission = permission
            if not permission.installed or permission.expires < now + self.permission_lifetime:
                self._installed(permission, now)
            if first:
                self._events.append(ChannelBound(number, channel.peer))
            return
        del self._channels[number]
        self._channel_by_peer.pop(channel.peer, None)
        self._events.append(ChannelBindFailed(number, channel.peer, outcome.code, outcome.reason))

    def _connect_outcome(self, pending: _Pending, outcome: _Outcome, now: float) -> None:
        tid = outcome.transaction_id
        if outcome.success is not None:
            connection_id = ConnectionId.get_from(outcome.success)
            if connection_id is not None:
                self._events.append(PeerConnected(connection_id.value, pending.peer, tid))
                return
            outcome = _Outcome(None, None, 0, "success response without CONNECTION-ID", tid)
        self._events.append(PeerConnectFailed(pending.peer, outcome.code, outcome.reason, tid))

    def _lose(self, code: int, reason: str, now: float) -> None:
        self.state = "failed"
        self._refresh_at = None
        self._permissions.clear()
        self._wanted.clear()
        self._channels.clear()
        self._channel_by_peer.clear()
        self._events.append(AllocationLost(code, reason))

    def _abandon(self, now: float) -> None:
        for tid in list(self._pending):
            self._client.cancel(tid)
        self._pending.clear()
        self.state = "closed"
        self._refresh_at = None
        self._events.append(Closed())


#: What a transaction was for -> what to do with its outcome.
_OUTCOME_HANDLERS: dict[str, Callable[[TurnSession, _Pending, _Outcome, float], None]] = {
    "allocate": TurnSession._allocate_outcome,
    "refresh": TurnSession._refresh_outcome,
    "close": TurnSession._close_outcome,
    "permission": TurnSession._permission_outcome,
    "channel": TurnSession._channel_outcome,
    "connect": TurnSession._connect_outcome,
}
