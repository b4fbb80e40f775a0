"""What `ice.aio.connection` gathers on: host sockets, TURN relays, mDNS names.

The addresses and sockets the agent builds its candidates from
(`ice.agent.local_candidates`); the agent learns server-reflexive ones itself
(`Agent.add_stun_server`, with the addresses `stun_addresses` resolves).
`Gatherer` is the gathering of one connection, over the pieces below and
`ice.aio.ice_tcp.TcpLinks`; it keeps the connection's gathering options.

- Host addresses: `host_addresses` lists the usable interface addresses
  (``ifaddr``), IPv4 and IPv6, loopback and link-local ones left out unless
  asked for, filtered by interface name and by address (`HostSelection` keeps
  those options), ordered so that `ice.agent.candidate.local_preferences`
  gives each a distinct local preference with the families interleaved
  (RFC 8421).
- Sockets: `bind_udp` opens one UDP socket on an address, on a port of an
  optional range (`open_host_socket`: with its asyncio transport);
  `DatagramSockets` keeps a connection's host sockets and UDP relays by base.
- Relays: `allocate_relays` gets one relayed address per component, TURN
  server (`server_list`), address family and relayed transport with
  `ice.aio.turn_client.TurnClient`, in parallel, each within a timeout, so one
  dead server never stalls the others; `TransportPolicy` RELAY gathers only those.
- mDNS: `MdnsNames` gives host addresses their ``.local`` names and resolves
  the peer's, over a service started on first use (`start_mdns`).

Filters (``ip_filter``, ``interface_filter``) are a callable taking the
address (or interface name) and returning True to keep it, or a list: of
addresses and networks (``"127.0.0.1"``, ``"10.0.0.0/8"``, ``"::1"``), or of
interface names. An ``ip_filter`` decides alone: the addresses it keeps are
used even when they are loopback or link-local ones (``ip_filter=["::1"]``
is enough to run on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import ipaddress
import logging
import random
import socket
import ssl as _ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import ifaddr

from ice._errors import Error, TurnError
from ice.agent.agent import Agent
from ice.agent.candidate import Candidate, local_preferences
from ice.agent.mdns import mdns_candidate
from ice.aio.ice_tcp import TcpLinks
from ice.aio.mdns import MdnsService
from ice.aio.portable import CONNECTION_RECEIVE_BUFFER, enlarge_buffers
from ice.aio.resolve import each_server
from ice.aio.transport import Target, endpoint_for
from ice.aio.turn_client import TurnClient
from ice.machine import Address
from ice.stun.uri import StunUri

if TYPE_CHECKING:
    from ice.aio.resolve import DnsResolver

__all__ = [
    "AddressFilter",
    "DatagramSockets",
    "Gatherer",
    "HostAddress",
    "HostSelection",
    "MdnsNames",
    "NameFilter",
    "Relay",
    "Servers",
    "TransportPolicy",
    "allocate_relays",
    "as_transport_policy",
    "bind_udp",
    "host_addresses",
    "open_host_socket",
    "server_list",
    "settle_future",
    "start_mdns",
    "stun_addresses",
]

logger = logging.getLogger("ice.aio.gather")


class TransportPolicy(enum.StrEnum):
    """Which candidates to gather: all, or relayed ones only (RFC 9429 section 4.1.1).
    aioice's ``TransportPolicy`` values and the plain strings are accepted too."""

    ALL = "all"
    RELAY = "relay"


def as_transport_policy(value: object) -> TransportPolicy:
    """From ours, text, or aioice's TransportPolicy enum (by name)."""
    name = value if isinstance(value, str) else getattr(value, "name", "")
    try:
        return TransportPolicy(str(name).lower())
    except ValueError:
        raise ValueError(f"transport_policy is 'all' or 'relay', not {value!r}") from None


#: One STUN/TURN server (``(host, port)`` or a URI), or several.
Servers = Target | Sequence[Target]


def server_list(given: Servers | None) -> list[Target]:
    if given is None:
        return []
    if isinstance(given, str | StunUri):
        return [given]
    if isinstance(given, tuple) and len(given) == 2 and isinstance(given[1], int):
        return [given]
    return list(given)


#: Which addresses to use: a predicate, or addresses and networks ("10.0.0.0/8").
AddressFilter = Callable[[str], bool] | Iterable[str]
#: Which interfaces to use: a predicate on the name, or the names.
NameFilter = Callable[[str], bool] | Iterable[str]
#: What a socket or relay hands its owner: (datagram, remote, local base, component).
DatagramHandler = Callable[[bytes, Address, Address, int], None]


@dataclass(frozen=True, slots=True)
class HostAddress:
    """An interface address to gather a host candidate on."""

    interface: str
    ip: str  # canonical text, without a zone
    scope_id: int = 0  # the interface index of an IPv6 link-local address

    @property
    def family(self) -> int:
        return 6 if ":" in self.ip else 4


def _predicate(selection: AddressFilter | None, *, networks: bool) -> Callable[[str], bool] | None:
    if selection is None or callable(selection):
        return selection
    if isinstance(selection, str):
        selection = [selection]
    if not networks:
        names = frozenset(selection)
        return names.__contains__
    nets = [ipaddress.ip_network(entry, strict=False) for entry in selection]
    return lambda ip: any(ipaddress.ip_address(ip) in net for net in nets)


def host_addresses(
    *,
    use_ipv4: bool = True,
    use_ipv6: bool = True,
    include_loopback: bool = False,
    include_link_local: bool = False,
    ip_filter: AddressFilter | None = None,
    interface_filter: NameFilter | None = None,
    adapters: Iterable[ifaddr.Adapter] | None = None,
) -> list[HostAddress]:
    """The addresses to gather host candidates on, best first: global ones, then
    link-local, then loopback, each in the system's order; each address once.
    ``adapters`` defaults to ``ifaddr.get_adapters()``."""
    keep_ip = _predicate(ip_filter, networks=True)
    keep_interface = _predicate(interface_filter, networks=False)
    found: dict[str, tuple[int, HostAddress]] = {}
    for adapter in ifaddr.get_adapters() if adapters is None else adapters:
        if keep_interface is not None and not keep_interface(adapter.name):
            continue
        for entry in adapter.ips:
            if isinstance(entry.ip, tuple):
                text, scope_id = entry.ip[0], entry.ip[2]
            else:
                text, scope_id = entry.ip, 0
            try:
                ip = ipaddress.ip_address(text.partition("%")[0])
            except ValueError:
                continue
            if not (use_ipv4 if ip.version == 4 else use_ipv6):
                continue
            if ip.is_multicast or ip.is_unspecified:
                continue
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                continue
            canonical = str(ip)
            if keep_ip is not None:
                if not keep_ip(canonical):
                    continue
            elif (ip.is_loopback and not include_loopback) or (
                ip.is_link_local and not include_link_local
            ):
                continue
            rank = 2 if ip.is_loopback else 1 if ip.is_link_local else 0
            address = HostAddress(adapter.name, canonical, scope_id if ip.is_link_local else 0)
            found.setdefault(canonical, (rank, address))
    return [address for _, address in sorted(found.values(), key=lambda item: item[0])]


@dataclass(frozen=True, slots=True)
class HostSelection:
    """Which interface addresses to gather on: `host_addresses`' options."""

    use_ipv4: bool = True
    use_ipv6: bool = True
    include_loopback: bool = False
    include_link_local: bool = False
    ip_filter: AddressFilter | None = None
    interface_filter: NameFilter | None = None

    def addresses(self) -> list[HostAddress]:
        return host_addresses(
            use_ipv4=self.use_ipv4,
            use_ipv6=self.use_ipv6,
            include_loopback=self.include_loopback,
            include_link_local=self.include_link_local,
            ip_filter=self.ip_filter,
            interface_filter=self.interface_filter,
        )


async def start_mdns(hosts: HostSelection, rng: random.Random | None = None) -> MdnsService:
    """An mDNS service on the first IPv4 address of ``hosts`` and, if IPv6 is used,
    on the first interface with an IPv6 address (link-local ones count: mDNS is
    link-local); IPv4 alone when that link has no IPv6 multicast."""
    interfaces = HostSelection(
        use_ipv6=False,
        include_loopback=hosts.include_loopback,
        include_link_local=hosts.include_link_local,
        ip_filter=hosts.ip_filter,
        interface_filter=hosts.interface_filter,
    ).addresses()
    interface = interfaces[0].ip if interfaces else None
    interface6 = None
    if hosts.use_ipv6:
        six = HostSelection(
            use_ipv4=False,
            include_link_local=True,
            ip_filter=hosts.ip_filter,
            interface_filter=hosts.interface_filter,
        )
        for address in six.addresses():
            with contextlib.suppress(OSError):
                interface6 = socket.if_nametoindex(address.interface)
                break
    try:
        return await MdnsService.start(interface=interface, interface6=interface6, rng=rng)
    except OSError:  # no IPv6 multicast on that link: IPv4 alone
        return await MdnsService.start(interface=interface, rng=rng)


class MdnsNames:
    """The ``.local`` names of our host addresses (with ``hide``) and the resolution
    of the peer's, over one `MdnsService` started on first use (`start_mdns`)."""

    def __init__(self, hosts: HostSelection, rng: random.Random | None, *, hide: bool) -> None:
        self.hide = hide
        self.names: dict[str, str] = {}  # host IP -> its .local name
        self._hosts, self._rng = hosts, rng
        self._service: asyncio.Future[MdnsService] | None = None
        self._closed = False

    async def name(self, ip: str) -> None:
        """With ``hide``, give host address ``ip`` its name (once)."""
        if self.hide and ip not in self.names:
            self.names[ip] = (await self._started()).register(ip)

    async def resolve(self, candidate: Candidate, timeout: float) -> Candidate | None:
        """``candidate`` (the peer's) with its ``.local`` name resolved to an address
        of a family in use, or None (logged) when none comes within ``timeout``."""
        try:
            addresses = await (await self._started()).resolve(candidate.host, timeout)
        except (LookupError, OSError) as exc:
            logger.info("remote candidate %s left out: %s", candidate.host, exc)
            return None
        hosts = self._hosts
        usable = [a for a in addresses if (hosts.use_ipv6 if ":" in a else hosts.use_ipv4)]
        if not usable:
            logger.info("remote candidate %s left out: no IPv4/IPv6 in use", candidate.host)
            return None
        return dataclasses.replace(candidate, host=str(ipaddress.ip_address(usable[0])))

    async def _started(self) -> MdnsService:
        if self._closed:
            raise ConnectionError("mDNS is closed")
        if self._service is None:
            self._service = asyncio.ensure_future(start_mdns(self._hosts, self._rng))
        return await asyncio.shield(self._service)

    def close(self) -> None:
        self._closed = True
        service = self._service
        if service is None:
            return
        if not service.done():
            service.cancel()
        elif not service.cancelled() and service.exception() is None:
            service.result().close()


def bind_udp(
    address: HostAddress,
    port_range: tuple[int, int] | None = None,
    rng: random.Random | None = None,
) -> socket.socket:
    """A non-blocking UDP socket bound to ``address``, on a free port of
    ``port_range`` (inclusive, tried from a random one) or one the system picks.
    Raises OSError when none is free."""
    family = socket.AF_INET6 if address.family == 6 else socket.AF_INET
    if port_range is None:
        ports: Sequence[int] = (0,)
    else:
        low, high = port_range
        if not 0 < low <= high <= 65535:
            raise ValueError(f"port range {port_range!r} is not within 1-65535")
        start = (rng or random).randint(low, high)
        ports = [*range(start, high + 1), *range(low, start)]
    error: OSError | None = None
    for port in ports:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6:
                sock.bind((address.ip, port, 0, address.scope_id))
            else:
                sock.bind((address.ip, port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    assert error is not None
    raise error


P = TypeVar("P", bound=asyncio.DatagramProtocol)


async def open_host_socket(
    loop: asyncio.AbstractEventLoop,
    address: HostAddress,
    protocol_factory: Callable[[Address], P],
    port_range: tuple[int, int] | None = None,
    rng: random.Random | None = None,
) -> tuple[asyncio.DatagramTransport, P] | None:
    """A UDP socket on ``address`` (see `bind_udp`) with its protocol, made by
    ``protocol_factory(base)``; None (logged) when no port could be bound."""
    try:
        sock = bind_udp(address, port_range, rng)
    except OSError as exc:
        logger.info("no socket on %s (%s): %s", address.ip, address.interface, exc)
        return None
    enlarge_buffers(sock, CONNECTION_RECEIVE_BUFFER, send=False)
    protocol = protocol_factory((address.ip, sock.getsockname()[1]))
    try:
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    if hasattr(transport, "max_size"):
        # asyncio's selector transport reads each datagram into a fresh 256 KiB buffer,
        # which glibc may serve with an mmap/munmap per datagram (~15 us); no UDP
        # datagram is larger than 64 KiB.
        setattr(transport, "max_size", 65536)  # noqa: B010 - not in the typed interface
    return transport, protocol


class _Socket(asyncio.DatagramProtocol):
    """A host socket or a relay: what arrives goes to the owner with its base."""

    def __init__(self, on_datagram: DatagramHandler, base: Address, component: int) -> None:
        self.on_datagram, self.base, self.component = on_datagram, base, component
        self.lost = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(addr) != 2:  # IPv6: (host, port, flowinfo, scope_id)
            addr = (addr[0].partition("%")[0], addr[1])
        try:
            self.on_datagram(data, addr, self.base, self.component)
        except Exception:  # a bug must not close the socket
            logger.exception("failed to handle %d bytes from %s", len(data), addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("%s: %s", self.base, exc)  # ICMP errors: the checks will tell

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class DatagramSockets:
    """A connection's host UDP sockets and UDP relays, by base: ``senders[base]``
    sends from one, and what arrives on one goes to ``on_datagram``. It closes
    them with its TURN allocations (``relays``, UDP and TCP ones)."""

    def __init__(
        self,
        on_datagram: DatagramHandler,
        port_range: tuple[int, int] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.senders: dict[Address, asyncio.DatagramTransport] = {}
        self.relays: list[Relay] = []
        self._on_datagram = on_datagram
        self._port_range, self._rng = port_range, rng
        self._sockets: list[_Socket] = []
        self._closing = False

    async def open(self, address: HostAddress, component: int) -> Address | None:
        """A host socket on ``address`` (see `open_host_socket`); its base, or None."""
        opened = await open_host_socket(
            asyncio.get_running_loop(),
            address,
            lambda base: _Socket(self._on_datagram, base, component),
            self._port_range,
            self._rng,
        )
        if opened is None:
            return None
        transport, protocol = opened
        self._sockets.append(protocol)
        self.senders[protocol.base] = transport
        if self._closing:
            transport.close()
            return None
        return protocol.base

    def add_relay(self, relay: Relay, base: Address) -> None:
        """A UDP allocation, at its relayed address ``base``."""
        protocol = _Socket(self._on_datagram, base, relay.component)
        self.senders[base] = relay.client.as_datagram_transport(protocol)

    async def close(self) -> None:
        """Close the sockets and release the allocations."""
        self._closing = True
        try:
            for protocol in self._sockets:
                transport = self.senders.get(protocol.base)
                if transport is not None:
                    transport.close()
            await asyncio.gather(*(relay.client.close() for relay in self.relays))
            await asyncio.gather(*(protocol.lost for protocol in self._sockets))
        finally:
            self.senders.clear()


@dataclass(frozen=True, slots=True)
class Relay:
    """An allocation for one component, and where it was asked for."""

    client: TurnClient
    component: int
    server: Address  # the TURN server's address (after any redirect)
    transport: str  # udp, tcp or tls: to the server
    relay_transport: str = "udp"  # tcp: an RFC 6062 allocation (relayed TCP candidates)


async def stun_addresses(servers: Iterable[Target], resolver: DnsResolver = None) -> list[Address]:
    """The UDP addresses of STUN servers: a URI with a host name and no port
    through its DNS SRV targets (every one, in RFC 2782 order, so a dead one
    costs nothing but its checks), names resolved to A and AAAA records;
    a server that does not resolve, or is not UDP, is left out (logged)."""
    addresses: list[Address] = []
    for server in servers:
        errors: list[Exception] = []
        try:
            endpoint = endpoint_for(server, None, None)
            if endpoint.kind != "udp":
                raise ValueError(f"server-reflexive candidates need UDP, not {endpoint}")
            async for _, groups in each_server(endpoint, resolver, errors):
                for group in groups:
                    addresses.extend(a for a in group if a not in addresses)
        except (OSError, ValueError, Error) as exc:
            errors.append(exc)
        for error in errors:
            logger.warning("STUN server %s (in part) left out: %s", server, error)
    return addresses


async def allocate_relays(
    servers: Sequence[Target],
    *,
    components: int,
    families: Sequence[int],
    username: str | None,
    password: str | None,
    transport: str | None = None,
    ssl: _ssl.SSLContext | None = None,
    timeout: float = 5.0,
    relay_transports: Sequence[str] = ("udp",),
    resolver: DnsResolver = None,
) -> list[Relay]:
    """One allocation per component, server, relayed address family and relayed
    transport, all at once; those that fail or take longer than ``timeout`` are
    left out (logged). A ``"tcp"`` relayed transport asks for RFC 6062 TCP
    allocations (over TCP or TLS servers only). Cancelling the call aborts the
    allocations in progress."""
    if username is None or password is None:
        if servers:
            logger.warning("TURN servers given without a username and password: no relay")
        return []

    async def one(server: Target, component: int, family: int, relay_transport: str) -> Relay:
        client = await TurnClient.allocate(
            server,
            username,
            password,
            transport=transport,
            ssl=ssl,
            family=family,
            timeout=timeout,
            relay_transport=relay_transport,
            resolver=resolver,
        )
        return Relay(client, component, client.server, client.transport, relay_transport)

    jobs = [
        (s, c, f, r)
        for r in relay_transports
        for s in servers
        for c in range(1, components + 1)
        for f in families
    ]
    tasks = [asyncio.ensure_future(one(*job)) for job in jobs]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
            task.add_done_callback(_abort_allocation)
        raise
    relays: list[Relay] = []
    for (server, component, family, kind), task in zip(jobs, tasks, strict=True):
        error = task.exception()
        if error is None:
            relays.append(task.result())
        elif isinstance(error, TurnError | OSError | ValueError):
            logger.info(
                "no IPv%d %s relay for component %d from %s: %s",
                family, kind.upper(), component, server, error,
            )  # fmt: skip
        else:  # a bug: let go of what we have
            for other in tasks:
                _abort_allocation(other)
            raise error
    return relays


def _abort_allocation(task: asyncio.Future[Relay]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().client.abort()


def settle_future(future: asyncio.Future[None] | None, exc: BaseException | None = None) -> None:
    """Set ``future``'s result (or ``exc``) unless it is None or done; an exception
    counts as retrieved, since nobody may be waiting."""
    if future is None or future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
        future.exception()


_CLOSED_WHILE_GATHERING = "the connection was closed while gathering"


class Gatherer:
    """The gathering of one ICE connection: it opens host UDP sockets
    (`DatagramSockets`), TCP listeners (`TcpLinks`), TURN relays and mDNS names,
    and hands ``agent`` their addresses and the STUN servers.

    The options are attributes, read by `gather` (a `Connection` delegates
    aioice's names to them, settable until then). What arrives on a socket,
    relay or TCP link goes to ``on_datagram``; ``pump(now)`` runs after the
    agent was told something. `close` stops a `gather` under way and lets go
    of everything.
    """

    def __init__(
        self,
        agent: Agent,
        on_datagram: DatagramHandler,
        pump: Callable[[float], None],
        *,
        stun_servers: Servers | None = None,
        turn_servers: Servers | None = None,
        turn_username: str | None = None,
        turn_password: str | None = None,
        turn_ssl: bool | _ssl.SSLContext = False,
        turn_transport: str | None = None,
        turn_timeout: float = 5.0,
        transport_policy: TransportPolicy | str | enum.Enum = TransportPolicy.ALL,
        hosts: HostSelection | None = None,
        port_range: tuple[int, int] | None = None,
        nat_1to1: Mapping[str, str] | None = None,
        mdns: bool = False,
        udp: bool = True,
        tcp: bool = False,
        rng: random.Random | None = None,
        resolver: DnsResolver = None,
    ) -> None:
        if not (tcp or udp):
            raise ValueError("gather UDP, TCP or both: udp and tcp cannot both be False")
        if port_range is not None and not 0 < port_range[0] <= port_range[1] <= 65535:
            raise ValueError(f"port range {port_range!r} is not within 1-65535")
        self.agent = agent
        self.stun_servers = server_list(stun_servers)
        self.turn_servers = server_list(turn_servers)
        self.turn_username, self.turn_password = turn_username, turn_password
        self.turn_ssl, self.turn_transport = turn_ssl, turn_transport
        self.turn_timeout = turn_timeout
        #: The DNS resolver for SRV and A/AAAA lookups of the servers (`ice.aio.resolve`).
        self.resolver = resolver
        self.transport_policy = as_transport_policy(transport_policy)
        self.hosts = hosts if hosts is not None else HostSelection()
        #: host IP -> the public IP a 1:1 NAT maps it to (a server-reflexive candidate)
        self.nat_1to1 = {_canonical_ip(k): _canonical_ip(v) for k, v in (nat_1to1 or {}).items()}
        self.udp, self.tcp = udp, tcp
        self.sockets = DatagramSockets(on_datagram, port_range, rng)
        self.tcp_links = TcpLinks(agent, on_datagram, pump)
        self.mdns_names = MdnsNames(self.hosts, rng, hide=mdns)
        self._pump = pump
        self._gathering: asyncio.Future[None] | None = None
        self._ended: asyncio.Future[None] | None = None
        self._relaying: asyncio.Future[list[Relay]] | None = None
        self._closed = False

    @property
    def mdns(self) -> bool:
        """Whether host addresses are signalled as ``.local`` names."""
        return self.mdns_names.hide

    @mdns.setter
    def mdns(self, value: bool) -> None:
        self.mdns_names.hide = value

    def signalled(self, candidate: Candidate) -> Candidate:
        """``candidate`` as the peer is told of it: with ``mdns``, a host address is
        its ``.local`` name."""
        return mdns_candidate(candidate, self.mdns_names.names)

    @property
    def gathered(self) -> bool:
        """Whether the agent has told its end-of-candidates (or `close` came first)."""
        return self._ended is not None and self._ended.done()

    def candidates_ended(self) -> None:
        """The agent's `LocalCandidatesEnd`: `gather` returns."""
        settle_future(self._ended)

    async def gather(self) -> None:
        """Hand the agent every address, then wait for its end-of-candidates
        (`candidates_ended`); a second call waits for the first. ConnectionError
        when `close` comes first."""
        if self._gathering is not None:
            await asyncio.shield(self._gathering)
            return
        loop = asyncio.get_running_loop()
        self._gathering = loop.create_future()
        self._ended = loop.create_future()
        try:
            await self._hand_over(loop)
            await asyncio.shield(self._ended)
            settle_future(self._gathering)
        except asyncio.CancelledError:
            self._gathering.cancel()
            raise
        except BaseException as exc:
            settle_future(self._gathering, exc)
            raise

    async def close(self) -> None:
        """Stop gathering, close the sockets, listeners and links, release the relays."""
        self._closed = True
        settle_future(self._ended, ConnectionError(_CLOSED_WHILE_GATHERING))
        if self._relaying is not None:
            self._relaying.cancel()  # allocations in progress are aborted
        self.tcp_links.close()
        self.mdns_names.close()
        await self.sockets.close()

    async def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        # Host sockets open while the relays are being allocated: a slow TURN
        # server delays only the end-of-candidates.
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
                    raise ConnectionError(_CLOSED_WHILE_GATHERING)
                self._add_relays(relaying.result(), loop.time())
            if self.transport_policy is TransportPolicy.ALL:
                for server in await stun_addresses(self.stun_servers, self.resolver):
                    self.agent.add_stun_server(server)
        finally:
            if relaying is not None and not relaying.done():
                relaying.cancel()
        if self._closed:
            raise ConnectionError(_CLOSED_WHILE_GATHERING)
        self.agent.gather(loop.time())
        self._pump(loop.time())

    async def _open_host_sockets(self, loop: asyncio.AbstractEventLoop) -> None:
        agent = self.agent
        addresses = self.hosts.addresses()
        preferences = local_preferences(a.ip for a in addresses)
        for component in range(1, agent.components + 1):
            for address in addresses:
                if self.tcp:
                    await self.mdns_names.name(address.ip)
                    await self.tcp_links.add_host_candidates(
                        address.ip, component, preferences[address.ip]
                    )
                    self._pump(loop.time())
                if not self.udp:
                    continue
                base = await self.sockets.open(address, component)
                if base is None:
                    continue
                await self.mdns_names.name(base[0])
                now = loop.time()
                agent.add_host_candidate(base, component, preferences[address.ip], now)
                public = self.nat_1to1.get(_canonical_ip(base[0]))
                if public is not None:
                    agent.add_mapped_address(base, public, now)
                self._pump(now)

    async def _allocate_relays(self) -> list[Relay]:
        ssl = self.turn_ssl if isinstance(self.turn_ssl, _ssl.SSLContext) else None
        transport = "tls" if self.turn_ssl is not False else self.turn_transport
        kinds = ["udp"] if self.udp else []
        if self.tcp and transport in ("tcp", "tls"):
            kinds.append("tcp")  # RFC 6062 allocations: relayed TCP candidates
        hosts = self.hosts
        relays = await allocate_relays(
            self.turn_servers, components=self.agent.components,
            families=[f for f, on in ((4, hosts.use_ipv4), (6, hosts.use_ipv6)) if on],
            username=self.turn_username, password=self.turn_password, transport=transport,
            ssl=ssl, timeout=self.turn_timeout, relay_transports=kinds, resolver=self.resolver,
        )  # fmt: skip
        self.sockets.relays.extend(relays)  # closed by close() from now on
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
                self.tcp_links.add_relay(client, base, relay.component)
            else:
                self.sockets.add_relay(relay, base)
            self._pump(now)


def _canonical_ip(text: str) -> str:
    return str(ipaddress.ip_address(text))
