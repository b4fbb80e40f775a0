"""asyncio ICE: the sans-I/O `Agent` on real sockets, a drop-in for aioice's `Connection`.

::

    conn = Connection(ice_controlling=True, stun_server=("stun.example.org", 3478))
    await conn.gather_candidates()
    # signal conn.local_username, conn.local_password and conn.local_candidates
    conn.remote_username, conn.remote_password = their_ufrag, their_pwd
    for candidate in theirs:                     # ice.Candidate, aioice.Candidate or SDP text
        await conn.add_remote_candidate(candidate)
    await conn.add_remote_candidate(None)       # their end-of-candidates
    await conn.connect()                         # ConnectionError when ICE fails
    await conn.send(b"hello"); data = await conn.recv()
    await conn.close()

aioice's `get_event` (`ConnectionClosed`) and settable ``ice_controlling``
(until `connect`) are there for aiortc. Beyond aioice: `events()` yields the
agent's events (`ConnectionStateChanged`, `LocalCandidate`,
`SelectedPairChanged`, ...), `state`, `stats()`, `selected_pair(component)`,
`restart()` (ICE restart), and the options ``nomination`` ("regular" or
"aggressive", for RFC 5245 peers), ``lite``, ``ta``, ``rng``, ``ip_filter``,
``interface_filter``, ``port_range``, ``include_loopback`` and
``include_link_local`` (see `ice.aio.gather`). ``stun_server`` and
``turn_server`` take one server (a ``(host, port)`` tuple or a URI) or a list;
``turn_ssl`` may be an `ssl.SSLContext`. Remote candidates are ours, aioice's
or SDP text; ``.local`` (mDNS) ones are resolved (``mdns_timeout``), and
with ``mdns=True`` the local host addresses are signalled as ``<uuid>.local``
names this connection answers for (`ice.aio.mdns`).

The adapter is thin. `gather_candidates` opens one UDP socket per interface
address and component (host candidates), one `TurnClient` per component, TURN
server and address family (relayed candidates, whose base is the relayed
address), and lets the agent ask the STUN servers (server-reflexive ones).
Every datagram a socket or relay receives is demultiplexed by its first byte
(RFC 7983): 0-3 is STUN and goes to the agent with the base it arrived on,
anything else is application data. What the agent wants sent leaves from the
socket or relay of its ``source``; application data leaves on
`Agent.selected_pair`, from its base to its remote address, counted in the
pair's stats. The agent has one timer, fired with ``now = max(timer_at, loop.time())``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import ipaddress
import logging
import random
import socket
import ssl as _ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ice._codec import is_stun
from ice._errors import TurnError
from ice.agent.agent import Agent, Nomination
from ice.agent.candidate import Candidate, TcpType, local_preferences
from ice.agent.checklist import CandidatePair
from ice.agent.events import (
    AgentEvent,
    ConnectionState,
    ConnectionStateChanged,
    LocalCandidate,
    LocalCandidatesEnd,
)
from ice.agent.mdns import is_mdns_name, mdns_candidate
from ice.agent.sdp import IceParameters
from ice.agent.stats import ConnectionStats, PairStats
from ice.agent.tcp import OpenConnection
from ice.aio.gather import (
    AddressFilter,
    HostAddress,
    NameFilter,
    Relay,
    allocate_relays,
    host_addresses,
    open_host_socket,
    stun_addresses,
)
from ice.aio.ice_tcp import Link, StreamLink, TcpLink, listen, open_link
from ice.aio.mdns import MdnsService
from ice.aio.timer import MachineTimer
from ice.aio.transport import Target
from ice.machine import Address, Transmit
from ice.stun.uri import StunUri

__all__ = ["Connection", "ConnectionClosed", "ConnectionStats", "PairStats", "TransportPolicy"]

logger = logging.getLogger("ice.aio.connection")


class TransportPolicy(enum.StrEnum):
    """Which candidates to gather: all, or relayed ones only (RFC 9429 section 4.1.1).
    aioice's ``TransportPolicy`` values and the plain strings are accepted too."""

    ALL = "all"
    RELAY = "relay"


#: One STUN/TURN server, or several.
Servers = Target | Sequence[Target]
#: Received datagrams held for `Connection.recvfrom` before the oldest is dropped.
QUEUE_SIZE = 1024
_EVENTS_KEPT = 1024
_UP = (ConnectionState.CONNECTED, ConnectionState.COMPLETED)
_DOWN = (ConnectionState.FAILED, ConnectionState.CLOSED)


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """aioice's one event (`Connection.get_event`): closed, or consent lost."""


def _servers(given: Servers | None) -> list[Target]:
    if given is None:
        return []
    if isinstance(given, str | StunUri):
        return [given]
    if isinstance(given, tuple) and len(given) == 2 and isinstance(given[1], int):
        return [given]
    return list(given)


def _policy(value: object) -> TransportPolicy:
    """From ours, text, or aioice's TransportPolicy enum (by name)."""
    name = value if isinstance(value, str) else getattr(value, "name", "")
    try:
        return TransportPolicy(str(name).lower())
    except ValueError:
        raise ValueError(f"transport_policy is 'all' or 'relay', not {value!r}") from None


def _ignore_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("a relay permission failed: %s", task.exception())


def _settle_future(future: asyncio.Future[None] | None, exc: BaseException | None = None) -> None:
    if future is None or future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
        future.exception()  # retrieved: nobody may be waiting


class _Socket(asyncio.DatagramProtocol):
    """A host socket or a relay: what arrives goes to the connection with its base."""

    def __init__(self, conn: Connection, base: Address, component: int) -> None:
        self.conn, self.base, self.component = conn, base, component
        self.lost = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(addr) != 2:  # IPv6: (host, port, flowinfo, scope_id)
            addr = (addr[0].partition("%")[0], addr[1])
        try:
            self.conn._received(data, addr, self.base, self.component)
        except Exception:  # a bug must not close the socket
            logger.exception("failed to handle %d bytes from %s", len(data), addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("%s: %s", self.base, exc)  # ICMP errors: the checks will tell

    def connection_lost(self, exc: Exception | None) -> None:
        _settle_future(self.lost)


class Connection:
    """An ICE connection for one data stream of ``components`` components (aioice's API)."""

    def __init__(
        self,
        ice_controlling: bool,
        components: int = 1,
        stun_server: Servers | None = None,
        turn_server: Servers | None = None,
        turn_username: str | None = None,
        turn_password: str | None = None,
        turn_ssl: bool | _ssl.SSLContext = False,
        turn_transport: str | None = None,
        use_ipv4: bool = True,
        use_ipv6: bool = True,
        transport_policy: TransportPolicy | str | enum.Enum = TransportPolicy.ALL,
        local_username: str | None = None,
        local_password: str | None = None,
        *,
        ip_filter: AddressFilter | None = None,
        interface_filter: NameFilter | None = None,
        port_range: tuple[int, int] | None = None,
        include_loopback: bool = False,
        include_link_local: bool = False,
        nomination: Nomination = "regular",
        lite: bool = False,
        ta: float | None = None,
        rng: random.Random | None = None,
        turn_timeout: float = 5.0,
        nat_1to1: Mapping[str, str] | None = None,
        mdns: bool = False,
        mdns_timeout: float = 5.0,
        tcp: bool = False,
        udp: bool = True,
    ) -> None:
        if not (tcp or udp):
            raise ValueError("gather UDP, TCP or both: udp and tcp cannot both be False")
        if port_range is not None and not 0 < port_range[0] <= port_range[1] <= 65535:
            raise ValueError(f"port range {port_range!r} is not within 1-65535")
        if local_username is not None or local_password is not None:
            IceParameters(local_username or "abcd", local_password or "a" * 22)  # checks them
        self._rng = rng if rng is not None else random.SystemRandom()
        options: dict[str, Any] = {} if ta is None else {"ta": ta}
        self.agent = Agent(
            controlling=ice_controlling,
            components=components,
            ufrag=local_username,
            pwd=local_password,
            rng=self._rng,
            nomination=nomination,
            lite=lite,
            **options,
        )
        self.stun_servers = _servers(stun_server)
        self.turn_servers = _servers(turn_server)
        self.turn_username, self.turn_password = turn_username, turn_password
        self.turn_ssl, self.turn_transport = turn_ssl, turn_transport
        self.turn_timeout = turn_timeout
        self.transport_policy = _policy(transport_policy)
        self._use_ipv4, self._use_ipv6 = use_ipv4, use_ipv6
        self._ip_filter, self._interface_filter = ip_filter, interface_filter
        self._include_loopback, self._include_link_local = include_loopback, include_link_local
        self._port_range = port_range
        #: host IP -> the public IP a 1:1 NAT (a cloud VM's) maps it to: advertised as a
        #: server-reflexive candidate with the host socket's port, no STUN needed
        self._nat_1to1 = {_canonical_ip(k): _canonical_ip(v) for k, v in (nat_1to1 or {}).items()}
        #: Which host candidates to gather: UDP, and TCP ones (RFC 6544) too.
        self.udp, self.tcp = udp, tcp
        self._links: dict[tuple[Address, Address], Link] = {}
        self._tcp_relays: dict[Address, Relay] = {}  # relayed address -> its TCP allocation
        self._tcp_servers: list[asyncio.Server] = []
        self._opening: set[asyncio.Task[None]] = set()
        #: Hide host addresses behind ``<uuid>.local`` names answered over mDNS.
        self.mdns = mdns
        self.mdns_timeout = mdns_timeout
        self._mdns: MdnsService | None = None
        self._mdns_starting: asyncio.Future[MdnsService] | None = None
        self._mdns_names: dict[str, str] = {}  # host IP -> its .local name
        self._resolving: set[asyncio.Task[None]] = set()
        #: Whether the peer is an ICE-lite agent (set it before `connect`).
        self.remote_is_lite = False
        self._remote_username: str | None = None
        self._remote_password: str | None = None
        self._remote_end = False
        self._senders: dict[Address, asyncio.DatagramTransport] = {}
        self._sockets: list[_Socket] = []
        self._relays: list[Relay] = []
        self._inbox: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue(QUEUE_SIZE)
        self._events: asyncio.Queue[AgentEvent] = asyncio.Queue(_EVENTS_KEPT)
        self._final_taken = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer = MachineTimer(self._on_timer)
        self._gathering: asyncio.Future[None] | None = None
        self._gathered: asyncio.Future[None] | None = None
        self._relaying: asyncio.Future[list[Relay]] | None = None
        self._connected: asyncio.Future[None] | None = None
        self._closing = False
        self._closed: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None  # for get_event
        self._ended = False
        self._has_connected = False
        #: Datagrams dropped because `recvfrom` did not keep up.
        self.dropped = 0

    # -- aioice's surface

    @property
    def ice_controlling(self) -> bool:
        return self.agent.controlling

    @ice_controlling.setter
    def ice_controlling(self, value: bool) -> None:
        """The role, settable until `connect` (aiortc sets it once it knows who offered)."""
        if self._connected is not None:
            raise ValueError("the role changes by itself after connect (487 role conflicts)")
        self.agent.set_role(value)

    @property
    def local_username(self) -> str:
        return self.agent.local_ufrag

    @property
    def local_password(self) -> str:
        return self.agent.local_pwd

    @property
    def remote_username(self) -> str | None:
        return self._remote_username

    @remote_username.setter
    def remote_username(self, value: str | None) -> None:
        self._remote_username = value
        self._set_remote_credentials()

    @property
    def remote_password(self) -> str | None:
        return self._remote_password

    @remote_password.setter
    def remote_password(self, value: str | None) -> None:
        self._remote_password = value
        self._set_remote_credentials()

    def _set_remote_credentials(self) -> None:
        if self._remote_username is not None and self._remote_password is not None:
            lite = self.remote_is_lite
            self.agent.set_remote_credentials(
                self._remote_username, self._remote_password, lite=lite
            )

    @property
    def local_candidates(self) -> list[Candidate]:
        """What to signal: with ``mdns``, host addresses are their ``.local`` names."""
        return [mdns_candidate(c, self._mdns_names) for c in self.agent.local_candidates]

    @property
    def remote_candidates(self) -> list[Candidate]:
        return list(self.agent.remote_candidates)

    @property
    def state(self) -> ConnectionState:
        return self.agent.state

    def get_default_candidate(self, component: int) -> Candidate | None:
        """The local candidate of ``component`` most likely to work: the lowest priority one."""
        for candidate in sorted(self.agent.local_candidates, key=lambda c: c.priority):
            if candidate.component == component:
                return mdns_candidate(candidate, self._mdns_names)
        return None

    def selected_pair(self, component: int = 1) -> CandidatePair | None:
        return self.agent.selected_pair(component)

    async def gather_candidates(self) -> None:
        """Gather the local candidates; returns once all are known (end-of-candidates)."""
        if self._gathering is not None:
            await asyncio.shield(self._gathering)
            return
        loop = self._running_loop()
        self._gathering = loop.create_future()
        self._gathered = loop.create_future()
        try:
            await self._gather(loop)
            await asyncio.shield(self._gathered)
            _settle_future(self._gathering)
        except asyncio.CancelledError:
            self._gathering.cancel()
            raise
        except BaseException as exc:
            _settle_future(self._gathering, exc)
            raise

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        self.agent.start_gathering()
        self._pump(loop.time())
        relaying: asyncio.Future[list[Relay]] | None = None
        if self.turn_servers:
            relaying = self._relaying = asyncio.ensure_future(self._allocate_relays())
        try:
            if self.transport_policy is TransportPolicy.ALL:
                await self._open_host_sockets(loop)
            if relaying is not None:
                await asyncio.wait([relaying])
                if relaying.cancelled():
                    raise ConnectionError("the connection was closed while gathering")
                self._add_relays(relaying.result(), loop.time())
            if self.transport_policy is TransportPolicy.ALL:
                for server in await stun_addresses(self.stun_servers):
                    self.agent.add_stun_server(server)
        finally:
            if relaying is not None and not relaying.done():
                relaying.cancel()
        if self._closing:
            raise ConnectionError("the connection was closed while gathering")
        self.agent.gather(loop.time())
        self._pump(loop.time())

    async def _open_host_sockets(self, loop: asyncio.AbstractEventLoop) -> None:
        addresses = host_addresses(
            use_ipv4=self._use_ipv4,
            use_ipv6=self._use_ipv6,
            include_loopback=self._include_loopback,
            include_link_local=self._include_link_local,
            ip_filter=self._ip_filter,
            interface_filter=self._interface_filter,
        )
        preferences = local_preferences(a.ip for a in addresses)
        for component in range(1, self.agent.components + 1):
            for address in addresses:
                if self.tcp:
                    await self._open_tcp_candidates(address, component, preferences[address.ip])
                if not self.udp:
                    continue
                base = await self._open_socket(loop, address, component)
                if base is None:
                    continue
                await self._name(base[0])
                now = loop.time()
                self.agent.add_host_candidate(base, component, preferences[address.ip], now)
                public = self._nat_1to1.get(_canonical_ip(base[0]))
                if public is not None:
                    self.agent.add_mapped_address(base, public, now)
                self._pump(now)

    async def _open_tcp_candidates(
        self, address: HostAddress, component: int, preference: int
    ) -> None:
        """Passive, simultaneous-open and active TCP host candidates (RFC 6544 5.1)."""
        loop = self._running_loop()
        ip = address.ip
        await self._name(ip)
        tcptype: TcpType
        for tcptype in ("passive", "so", "active"):
            if tcptype == "active":
                base: Address = (ip, 0)
            else:
                try:
                    server = await listen(
                        ip,
                        functools.partial(self._link, component, accepted=True),
                        reuse_port=tcptype == "so",
                    )
                except OSError as exc:
                    logger.info("no %s TCP candidate on %s: %s", tcptype, ip, exc)
                    continue
                self._tcp_servers.append(server)
                base = (ip, server.sockets[0].getsockname()[1])
            self.agent.add_host_candidate(base, component, preference, loop.time(), tcptype=tcptype)
        self._pump(loop.time())

    async def _name(self, ip: str) -> None:
        """With ``mdns``, give host address ``ip`` its ``.local`` name (once)."""
        if self.mdns and ip not in self._mdns_names:
            self._mdns_names[ip] = (await self._mdns_service()).register(ip)

    def _link(self, component: int, *, accepted: bool = False) -> TcpLink:
        def opened(link: TcpLink) -> None:
            if self._closing:
                link.close()
                return
            self._links[link.key] = link
            if accepted:
                self.agent.connection_accepted(link.local, link.remote)

        return TcpLink(component, self._received, opened, self._link_closed)

    def _link_closed(self, link: Link) -> None:
        if self._links.get(link.key) is link:
            del self._links[link.key]
        if not self._closing and self._loop is not None:
            now = self._loop.time()
            self.agent.connection_closed(link.local, link.remote, now)
            self._pump(now)

    def _open_connections(self) -> None:
        for request in self.agent.connections_to_open():
            task = asyncio.ensure_future(self._open_connection(request))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    async def _open_connection(self, request: OpenConnection) -> None:
        component = self._component_of_base(request.local)
        relay = self._tcp_relays.get(request.local)
        link: Link
        try:
            if relay is not None:  # an active relayed candidate: the server connects for us
                reader, writer = await relay.client.connect(request.remote)
                link = StreamLink(
                    reader, writer, request.local, request.remote, component,
                    self._received, self._link_closed,
                )  # fmt: skip
                self._links[link.key] = link
            else:
                link = await open_link(request, lambda: self._link(component))
        except (OSError, TimeoutError, TurnError) as exc:
            logger.debug("TCP %s -> %s: %s", request.local, request.remote, exc)
            if not self._closing:
                now = self._running_loop().time()
                self.agent.connection_failed(request.connection_id, now)
                self._pump(now)
            return
        if self._closing:
            link.close()
            return
        now = self._running_loop().time()
        self.agent.connection_opened(request.connection_id, link.local, now)
        self._pump(now)

    def _component_of_base(self, base: Address) -> int:
        for candidate in self.agent.local_candidates:
            if (
                candidate.transport == "tcp"
                and candidate.host == base[0]
                and (candidate.port == base[1] or (base[1] == 0 and candidate.tcptype == "active"))
            ):
                return candidate.component
        return 1

    async def _open_socket(
        self, loop: asyncio.AbstractEventLoop, address: HostAddress, component: int
    ) -> Address | None:
        opened = await open_host_socket(
            loop, address, lambda base: _Socket(self, base, component), self._port_range, self._rng
        )
        if opened is None:
            return None
        transport, protocol = opened
        self._sockets.append(protocol)
        self._senders[protocol.base] = transport
        if self._closing:
            transport.close()
            return None
        return protocol.base

    async def _allocate_relays(self) -> list[Relay]:
        families = [f for f, on in ((4, self._use_ipv4), (6, self._use_ipv6)) if on]
        tls = self.turn_ssl is not False
        transport = "tls" if tls else self.turn_transport
        options: dict[str, Any] = {
            "components": self.agent.components,
            "families": families,
            "username": self.turn_username,
            "password": self.turn_password,
            "transport": transport,
            "ssl": self.turn_ssl if isinstance(self.turn_ssl, _ssl.SSLContext) else None,
            "timeout": self.turn_timeout,
        }
        kinds = ["udp"] if self.udp else []
        if self.tcp and transport in ("tcp", "tls"):
            kinds.append("tcp")  # RFC 6062 allocations: relayed TCP candidates
        found = await asyncio.gather(
            *(allocate_relays(self.turn_servers, relay_transport=k, **options) for k in kinds)
        )
        relays = [relay for group in found for relay in group]
        self._relays.extend(relays)  # closed by close() from now on
        return relays

    def _add_relays(self, relays: list[Relay], now: float) -> None:
        """Relayed candidates; a TCP allocation's (RFC 6062) are a passive one, whose
        peers we accept, and an active one, whose connections the server opens."""
        preferences = local_preferences(r.client.relayed_address[0] for r in relays)
        hide = self.transport_policy is TransportPolicy.RELAY
        for relay in relays:
            client = relay.client
            relayed = client.relayed_address
            candidates = self.agent.add_relayed_candidates(
                relayed, relay.component, preferences[relayed[0]], now,
                server=relay.server, server_transport=relay.transport,
                mapped=None if hide else client.mapped_address, transport=relay.relay_transport,
            )  # fmt: skip
            base = (candidates[0].host, relayed[1])
            if relay.relay_transport == "tcp":
                self._tcp_relays[base] = relay
                task = asyncio.ensure_future(self._accept_relayed(relay, base))
                self._opening.add(task)
                task.add_done_callback(self._opening.discard)
            else:
                protocol = _Socket(self, base, relay.component)
                self._senders[base] = client.as_datagram_transport(protocol)
            self._pump(now)

    async def _accept_relayed(self, relay: Relay, base: Address) -> None:
        """Peers connecting to a relayed TCP candidate, for as long as the relay lives."""
        while not self._closing:
            try:
                peer, reader, writer = await relay.client.accept()
            except (TurnError, OSError) as exc:
                if relay.client.closed:
                    return
                logger.debug("relayed TCP %s: %s", base, exc)
                continue
            link = StreamLink(
                reader, writer, base, peer, relay.component, self._received, self._link_closed
            )
            self._links[link.key] = link
            self.agent.connection_accepted(base, peer)

    def _permit_tcp_relays(self, candidate: Candidate) -> None:
        """Peers may only connect to a relayed TCP candidate with a permission."""
        for relay in self._tcp_relays.values():
            task = asyncio.ensure_future(relay.client.create_permission(candidate.host))
            task.add_done_callback(_ignore_failure)

    async def add_remote_candidate(self, candidate: object | None) -> None:
        """A remote candidate (ours, aioice's, or SDP text), or None for end-of-candidates.

        A ``.local`` (mDNS) candidate is resolved in the background and added
        with the address learnt; one that does not resolve within
        ``mdns_timeout`` is left out (logged). End-of-candidates waits for
        the resolutions under way.
        """
        if self._remote_end:
            raise ValueError("Cannot add remote candidate after end-of-candidates.")
        if self._closing:
            return
        if candidate is None:
            self._remote_end = True
            if self._resolving:
                await asyncio.gather(*self._resolving, return_exceptions=True)
            if self._closing:
                return
            now = self._running_loop().time()
            self.agent.add_remote_candidate(None, now)
            self._pump(now)
            return
        ours = _candidate(candidate)
        if is_mdns_name(ours.host):
            task = asyncio.ensure_future(self._add_mdns_candidate(ours))
            self._resolving.add(task)
            task.add_done_callback(self._resolving.discard)
            return
        now = self._running_loop().time()
        if self._tcp_relays:
            self._permit_tcp_relays(ours)
        self.agent.add_remote_candidate(ours, now)
        self._pump(now)

    async def _add_mdns_candidate(self, candidate: Candidate) -> None:
        try:
            service = await self._mdns_service()
            addresses = await service.resolve(candidate.host, self.mdns_timeout)
        except (LookupError, OSError) as exc:
            logger.info("remote candidate %s left out: %s", candidate.host, exc)
            return
        usable = [a for a in addresses if (":" in a and self._use_ipv6) or
                  (":" not in a and self._use_ipv4)]  # fmt: skip
        if not usable or self._closing:
            return
        resolved = dataclasses.replace(candidate, host=_canonical_ip(usable[0]))
        if self._tcp_relays:
            self._permit_tcp_relays(resolved)
        now = self._running_loop().time()
        self.agent.add_remote_candidate(resolved, now)
        self._pump(now)

    async def _mdns_service(self) -> MdnsService:
        """The connection's mDNS service, started on first use on an IPv4 host address."""
        if self._mdns is not None:
            return self._mdns
        if self._mdns_starting is None:
            self._mdns_starting = asyncio.ensure_future(self._start_mdns())
        return await asyncio.shield(self._mdns_starting)

    async def _start_mdns(self) -> MdnsService:
        interfaces = host_addresses(
            use_ipv4=True,
            use_ipv6=False,
            include_loopback=self._include_loopback,
            include_link_local=self._include_link_local,
            ip_filter=self._ip_filter,
            interface_filter=self._interface_filter,
        )
        interface = interfaces[0].ip if interfaces else None
        interface6 = None
        if self._use_ipv6:
            for address in host_addresses(
                use_ipv4=False,
                use_ipv6=True,
                include_link_local=True,
                ip_filter=self._ip_filter,
                interface_filter=self._interface_filter,
            ):
                with contextlib.suppress(OSError):
                    interface6 = socket.if_nametoindex(address.interface)
                    break
        try:
            self._mdns = await MdnsService.start(
                interface=interface, interface6=interface6, rng=self._rng
            )
        except OSError:  # no IPv6 multicast on that link: IPv4 alone
            self._mdns = await MdnsService.start(interface=interface, rng=self._rng)
        return self._mdns

    async def connect(self) -> None:
        """Run the checks; return once every component has a selected pair.
        Raises ConnectionError when ICE fails (after the peer's end-of-candidates)."""
        if self._gathered is None or not self._gathered.done():
            raise ConnectionError("Local candidates gathering was not performed")
        if self._remote_username is None or self._remote_password is None:
            raise ConnectionError("Remote username or password is missing")
        self._set_remote_credentials()  # remote_is_lite may have been set since
        loop = self._running_loop()
        if self._connected is None:
            self._connected = loop.create_future()
            self._settle(self.agent.state)
            self.agent.connect(loop.time())
            self._pump(loop.time())
        await asyncio.shield(self._connected)

    async def send(self, data: bytes) -> None:
        await self.sendto(data, 1)

    async def sendto(self, data: bytes, component: int) -> None:
        """Send a datagram on the selected pair of ``component``."""
        pair = self.agent.selected_pair(component)
        if pair is not None and pair.local.transport == "tcp":
            link = self._links.get((pair.base, pair.remote_address))
            if link is None:
                raise ConnectionError("Cannot send data, the TCP connection is closed")
            link.write(data)
            self.agent.record_sent(pair, len(data))
            return
        sender = self._senders.get(pair.base) if pair is not None else None
        if pair is None or sender is None:
            raise ConnectionError("Cannot send data, not connected")
        sender.sendto(data, pair.remote_address)
        self.agent.record_sent(pair, len(data))

    async def recv(self) -> bytes:
        data, _ = await self.recvfrom()
        return data

    async def recvfrom(self) -> tuple[bytes, int]:
        """The next datagram and the component it came on."""
        if (
            self._inbox.empty()
            and not self._ended
            and self.agent.state not in _RECEIVING
            and not self._has_selected()
        ):
            raise ConnectionError("Cannot receive data, not connected")
        item = await self._inbox.get()
        if item is None:  # the end: leave it for the next reader
            self._inbox.put_nowait(None)
            raise ConnectionError("Connection lost while receiving data")
        return item

    def _has_selected(self) -> bool:
        components = range(1, self.agent.components + 1)
        return any(self.agent.selected_pair(c) is not None for c in components)

    async def close(self) -> None:
        """Stop the agent, close the sockets and release the TURN allocations."""
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        loop = self._running_loop()
        self._closed = loop.create_future()
        self._closing = True
        try:
            self.agent.close()
            self._pump(loop.time())
            _settle_future(
                self._gathered, ConnectionError("the connection was closed while gathering")
            )
            if self._relaying is not None:
                self._relaying.cancel()  # allocations in progress are aborted
            for protocol in self._sockets:
                transport = self._senders.get(protocol.base)
                if transport is not None:
                    transport.close()
            for task in list(self._resolving) + list(self._opening):
                task.cancel()
            for server in self._tcp_servers:
                server.close()
            for link in list(self._links.values()):
                link.close()
            if self._mdns_starting is not None and not self._mdns_starting.done():
                self._mdns_starting.cancel()
            if self._mdns is not None:
                self._mdns.close()
            await asyncio.gather(*(relay.client.close() for relay in self._relays))
            await asyncio.gather(*(protocol.lost for protocol in self._sockets))
        finally:
            self._senders.clear()
            self._deliver(None)
            self._closed.set_result(None)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- beyond aioice

    async def events(self) -> AsyncIterator[AgentEvent]:
        """The agent's events, until ``ConnectionStateChanged(CLOSED)``; for one reader.
        The last 1024 are kept for a reader that comes late."""
        while not (self._final_taken and self._events.empty()):
            event = await self._events.get()
            if isinstance(event, ConnectionStateChanged) and event.state is ConnectionState.CLOSED:
                self._final_taken = True
            if isinstance(event, LocalCandidate):
                event = LocalCandidate(mdns_candidate(event.candidate, self._mdns_names))
            yield event

    async def get_event(self) -> ConnectionClosed | None:
        """aioice's: `ConnectionClosed` once the connection is closed or has lost
        consent after connecting; None when that was already so."""
        if self._lost is None:
            self._lost = self._running_loop().create_future()
        elif self._lost.done():
            return None
        await asyncio.shield(self._lost)
        return ConnectionClosed()

    async def restart(self, *, ufrag: str | None = None, pwd: str | None = None) -> None:
        """ICE restart (RFC 8445 section 9): new local credentials, the peer's forgotten.
        Signal `local_username`/`local_password` and the candidates (the same sockets)
        again, set the peer's new credentials and candidates, and `connect` again;
        data keeps flowing on the old selected pairs until new ones are selected."""
        if self._closing:
            raise ConnectionError("the connection is closed")
        if ufrag is not None or pwd is not None:
            IceParameters(ufrag or "abcd", pwd or "a" * 22)  # checks them
        now = self._running_loop().time()
        self.agent.restart(now, ufrag=ufrag, pwd=pwd)
        self._remote_username = self._remote_password = None
        self._remote_end = False
        self._connected = None
        if self._lost is not None and self._lost.done():
            self._lost = None  # consent was lost: get_event waits again
        if self._ended:  # failed before: receiving works again
            kept = [self._inbox.get_nowait() for _ in range(self._inbox.qsize())]
            self._ended = False
            for item in kept:
                if item is not None:
                    self._inbox.put_nowait(item)
        self._pump(now)

    def stats(self) -> ConnectionStats:
        """The state and every candidate pair, with its counters (`Agent.stats`)."""
        return self.agent.stats()

    # -- driving the agent

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _received(self, data: bytes, addr: Address, base: Address, component: int) -> None:
        if data and data[0] < 4 and is_stun(data):  # RFC 7983 (and the magic cookie): STUN
            assert self._loop is not None
            now = self._loop.time()
            self.agent.receive_datagram(data, addr, now, local=base)
            self._pump(now)
            return
        pair = self.agent.checklist.find(base, addr, component)
        if pair is not None:
            pair.packets_received += 1
            pair.bytes_received += len(data)
        self._deliver((data, component))

    def _pump(self, now: float) -> None:
        """Send what the agent has for the wire, settle its events, re-arm its timer."""
        agent = self.agent
        for transmit in agent.datagrams_to_send(now):
            self._transmit(transmit)
        if self.tcp:
            self._open_connections()
        while (event := agent.next_event()) is not None:
            if isinstance(event, ConnectionStateChanged):
                self._settle(event.state, event.reason)
            elif isinstance(event, LocalCandidatesEnd):
                _settle_future(self._gathered)
            if self._events.full():
                self._events.get_nowait()
            self._events.put_nowait(event)
        self._arm_timer()

    def _transmit(self, transmit: Transmit) -> None:
        if transmit.source is not None and self._links:
            link = self._links.get((transmit.source, transmit.addr))
            if link is not None:
                link.write(transmit.data)
                return
        sender = self._senders.get(transmit.source) if transmit.source is not None else None
        if sender is None:
            logger.debug("nothing to send from %s to %s", transmit.source, transmit.addr)
            return
        sender.sendto(transmit.data, transmit.addr)

    def _settle(self, state: ConnectionState, reason: str = "") -> None:
        if state in _UP:
            self._has_connected = True
            _settle_future(self._connected)
        elif state in _DOWN:
            if state is ConnectionState.FAILED:
                error = ConnectionError(f"ICE negotiation failed: {reason or 'no working pair'}")
            else:
                error = ConnectionError("the connection was closed")
            if state is ConnectionState.CLOSED or self._has_connected:
                if self._lost is None and self._loop is not None:
                    self._lost = self._loop.create_future()
                _settle_future(self._lost)
            _settle_future(self._connected, error)
            self._deliver(None)

    def _deliver(self, item: tuple[bytes, int] | None) -> None:
        if self._ended:
            return
        self._ended = item is None
        if self._inbox.full():
            self._inbox.get_nowait()
            self.dropped += 1
        self._inbox.put_nowait(item)

    def _arm_timer(self) -> None:
        self._timer.arm(None if self._closing else self.agent.get_timer())

    def _on_timer(self, now: float) -> None:
        self.agent.handle_timer(now)
        self._pump(now)


def _candidate(given: object) -> Candidate:
    """Ours from ours, from SDP text, or from aioice's Candidate (through its SDP text);
    IPv6 addresses in their canonical form, which is what sockets report."""
    if isinstance(given, Candidate):
        candidate = given
    elif isinstance(given, str):
        candidate = Candidate.from_sdp(given)
    else:
        to_sdp = getattr(given, "to_sdp", None)
        if to_sdp is None:
            raise TypeError(f"not a candidate: {given!r}")
        candidate = Candidate.from_sdp(to_sdp())
    if candidate.ip_version is None:
        return candidate  # a .local name, resolved by the caller
    host = str(ipaddress.ip_address(candidate.host))
    if host != candidate.host:
        candidate = dataclasses.replace(candidate, host=host)
    return candidate


#: States in which a selected pair carries data (recv waits instead of raising).
_RECEIVING = frozenset(
    {ConnectionState.CONNECTED, ConnectionState.COMPLETED, ConnectionState.DISCONNECTED}
)


def _canonical_ip(text: str) -> str:
    return str(ipaddress.ip_address(text))
