"""Local candidates for `ice.aio.connection`: host sockets and TURN relays.

Host candidates: `host_addresses` lists the usable interface addresses
(``ifaddr``), IPv4 and IPv6, with loopback and link-local addresses left out
unless asked for, filtered by interface name and by address, ordered so that
`ice.agent.candidate.local_preferences` gives each a distinct local preference with
the families interleaved (RFC 8421); `bind_udp` opens one UDP socket on an
address, on a port of an optional range (`open_host_socket`: with its asyncio
transport). `allocate_relays` gets one relayed address per (component,
TURN server, address family) with `ice.aio.turn_client.TurnClient`, in parallel,
each within a timeout, so one dead server never stalls the others. The agent
builds the candidates from those addresses (`ice.agent.local_candidates`) and
learns the server-reflexive ones itself (`Agent.add_stun_server`, with the
addresses `stun_addresses` resolves).

Filters (``ip_filter``, ``interface_filter``) are a callable taking the
address (or interface name) and returning True to keep it, or a list: of
addresses and networks (``"127.0.0.1"``, ``"10.0.0.0/8"``, ``"::1"``), or of
interface names. An ``ip_filter`` decides alone: the addresses it keeps are
used even when they are loopback or link-local ones (``ip_filter=["::1"]``
is enough to run on loopback).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import ssl as _ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import ifaddr

from ice._errors import TurnError
from ice.aio.transport import Target, endpoint_for, resolve
from ice.aio.turn_client import TurnClient
from ice.machine import Address

__all__ = [
    "AddressFilter",
    "HostAddress",
    "NameFilter",
    "Relay",
    "allocate_relays",
    "bind_udp",
    "host_addresses",
    "open_host_socket",
    "stun_addresses",
]

logger = logging.getLogger("ice.aio.gather")

#: Which addresses to use: a predicate, or addresses and networks ("10.0.0.0/8").
AddressFilter = Callable[[str], bool] | Iterable[str]
#: Which interfaces to use: a predicate on the name, or the names.
NameFilter = Callable[[str], bool] | Iterable[str]


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


@dataclass(frozen=True, slots=True)
class Relay:
    """An allocation for one component, and where it was asked for."""

    client: TurnClient
    component: int
    server: Address  # the TURN server's address (after any redirect)
    transport: str  # udp, tcp or tls: to the server
    relay_transport: str = "udp"  # tcp: an RFC 6062 allocation (relayed TCP candidates)


async def stun_addresses(servers: Iterable[Target]) -> list[Address]:
    """The UDP addresses of STUN servers (names resolved to A and AAAA records);
    a server that does not resolve, or is not UDP, is left out (logged)."""
    addresses: list[Address] = []
    for server in servers:
        try:
            endpoint = endpoint_for(server, None, None)
            if endpoint.kind != "udp":
                raise ValueError(f"server-reflexive candidates need UDP, not {endpoint}")
            found = await resolve(endpoint.host, endpoint.port, "udp")
        except (OSError, ValueError) as exc:
            logger.warning("STUN server %s left out: %s", server, exc)
            continue
        addresses.extend(a for a in found if a not in addresses)
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
    relay_transport: str = "udp",
) -> list[Relay]:
    """One allocation per component, server and relayed address family, all at
    once; those that fail or take longer than ``timeout`` are left out (logged).
    ``relay_transport="tcp"`` asks for RFC 6062 TCP allocations (over TCP or TLS
    servers only). Cancelling the call aborts the allocations in progress."""
    if username is None or password is None:
        if servers:
            logger.warning("TURN servers given without a username and password: no relay")
        return []

    async def one(server: Target, component: int, family: int) -> Relay:
        client = await TurnClient.allocate(
            server,
            username,
            password,
            transport=transport,
            ssl=ssl,
            family=family,
            timeout=timeout,
            relay_transport=relay_transport,
        )
        return Relay(client, component, client.server, client.transport, relay_transport)

    jobs = [(s, c, f) for s in servers for c in range(1, components + 1) for f in families]
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
    for (server, component, family), task in zip(jobs, tasks, strict=True):
        error = task.exception()
        if error is None:
            relays.append(task.result())
        elif isinstance(error, TurnError | OSError | ValueError):
            logger.info(
                "no IPv%d relay for component %d from %s: %s", family, component, server, error
            )
        else:  # a bug: let go of what we have
            for other in tasks:
                _abort_allocation(other)
            raise error
    return relays


def _abort_allocation(task: asyncio.Future[Relay]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().client.abort()
