"""NAT behaviour discovery over asyncio: the sockets and the timer for `ice.stun.nat`.

::

    behavior = await discover_nat("stun:stun.example.org")
    print(behavior.describe())        # or behavior.nat_type, .mapping, .filtering ...

`discover_nat` opens a UDP socket (bound to ``local_addr``, or to any
address of the server's family), runs `ice.stun.nat.NatDiscovery` on it and, with
``lifetime=True``, `ice.stun.nat.BindingLifetimeDiscovery` on it and on a second
socket of the same IP. Each machine runs on a `ice.aio.driver.MachineDriver`
until it has a result; an exception from the machine (or from ``on_event``)
ends the discovery with it rather than leaving it to hang.

The server needs RFC 5780 (two IP addresses, two ports, OTHER-ADDRESS) for
anything beyond the mapped address; without it the result says so in
``problems`` and its ``nat_type`` is "unknown". Each test waits ``timeout``
seconds for an answer, and several tests expect none on a filtering NAT, so a
discovery takes up to about three times ``timeout``. The lifetime search
takes minutes: it waits up to ``lifetime_max`` seconds between probes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from ice.aio.driver import MachineDriver
from ice.aio.resolve import each_server
from ice.aio.transport import ClientChannel, address_family, endpoint_for, open_channel
from ice.machine import Address, Transmit
from ice.stun.nat import (
    DEFAULT_TIMEOUT,
    BindingLifetime,
    NatBehavior,
    NatDiscovery,
    NatEvent,
)
from ice.stun.nat_lifetime import BindingLifetimeDiscovery, LifetimeEvent
from ice.stun.uri import StunUri, parse_uri

if TYPE_CHECKING:
    from ice.aio.resolve import DnsResolver

__all__ = ["EventCallback", "discover_binding_lifetime", "discover_nat"]

logger = logging.getLogger("ice.aio.nat")

#: Called with every event of the machines, as it happens.
EventCallback = Callable[[NatEvent | LifetimeEvent], None]

_Discovery = NatDiscovery | BindingLifetimeDiscovery


class _Driver(MachineDriver[_Discovery]):
    """Runs one discovery on the sockets until it has a result, or fails."""

    logger = logger

    def __init__(
        self,
        machine: _Discovery,
        channels: dict[Address | None, ClientChannel],
        on_event: EventCallback | None,
    ) -> None:
        super().__init__(machine)
        self._on_event = on_event
        self._channels = channels
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def run(self) -> None:
        now = self._time()
        try:
            self.machine.start(now)
        except Exception as exc:
            self.report(exc, "start")
        self.pump(now)
        try:
            await self._done
        finally:
            self.close()

    def transmit(self, transmit: Transmit) -> None:
        channel = self._channels.get(transmit.source)
        if channel is None:
            raise RuntimeError(f"the machine sent from unknown socket {transmit.source}")
        try:
            channel.send(transmit.data, transmit.addr)
        except OSError as exc:  # unreachable network and the like: a lost packet
            logger.debug("send to %s failed: %s", transmit.addr, exc)

    def event_received(self, event: NatEvent | LifetimeEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)
        if self.machine.result is not None:
            self._end(None)

    def report(self, exc: Exception, context: str) -> None:
        """A bug (in the machine, or ``on_event``) ends discover_nat with it, not a hang."""
        self._end(exc)

    def _end(self, exc: Exception | None) -> None:
        if not self._done.done():
            if exc is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(exc)
        self.close()


def _target(server: str | StunUri | tuple[str, int]) -> tuple[str, int]:
    if isinstance(server, tuple):
        host, port = server
        return str(host), int(port)
    uri = parse_uri(server) if isinstance(server, str) else server
    if uri.transport != "udp" or uri.secure:
        raise ValueError(f"NAT behaviour discovery runs over UDP, not {uri}")
    return uri.address


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_unspecified
    except ValueError:
        return False


def _route_source(server: Address) -> str:
    """The local IP the kernel would send from toward ``server`` (nothing is sent)."""
    family = address_family(server[0]) or socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(server)
        return str(probe.getsockname()[0])


class _Sockets:
    """The UDP sockets of one discovery, keyed as the machines name them.

    The primary socket (X) is keyed None, as a machine's ``Transmit.source``
    and ``local`` name it; another socket by its local address.
    """

    def __init__(self, server: Address, on_event: EventCallback | None) -> None:
        self.server = server
        self._on_event = on_event
        self.channels: dict[Address | None, ClientChannel] = {}
        self._driver: _Driver | None = None

    async def open(self, local_addr: Address | None, *, primary: bool) -> Address:
        """Bind a socket; return its address with a concrete IP (the route's for a wildcard)."""
        key: list[Address | None] = [None]

        def on_data(data: bytes, addr: Address) -> None:
            if self._driver is not None:
                self._driver.feed(data, addr, local=key[0])

        def on_error(exc: Exception) -> None:
            logger.debug("socket error: %s", exc)  # ICMP errors: the machine sees a timeout

        channel = await open_channel(
            self.server, "udp", on_data=on_data, on_error=on_error, local_addr=local_addr
        )
        local = channel.local_address
        if _is_wildcard(local[0]):
            local = (_route_source(self.server), local[1])
        key[0] = None if primary else local
        self.channels[key[0]] = channel
        return local

    async def drive_nat(self, machine: NatDiscovery) -> NatBehavior:
        """Run ``machine`` on these sockets until it has a result."""
        await self._drive(machine)
        assert machine.result is not None
        return machine.result

    async def drive_lifetime(self, machine: BindingLifetimeDiscovery) -> BindingLifetime:
        await self._drive(machine)
        assert machine.result is not None
        return machine.result

    async def _drive(self, machine: _Discovery) -> None:
        self._driver = _Driver(machine, self.channels, self._on_event)
        try:
            await self._driver.run()
        finally:
            self._driver = None

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


async def _open_primary(
    server: str | StunUri | tuple[str, int],
    local_addr: Address | None,
    on_event: EventCallback | None,
    resolver: DnsResolver = None,
) -> tuple[_Sockets, Address]:
    _target(server)  # checks it is UDP
    local_host = local_addr[0] if local_addr is not None else None
    errors: list[Exception] = []
    endpoint = endpoint_for(server, "udp", None)
    # The tests need one server that answers them all: the first SRV target that resolves.
    addresses: list[Address] = []
    async for _, groups in each_server(endpoint, resolver, errors, local_host=local_host):
        addresses = [group[0] for group in groups]
        break
    if not addresses:
        raise errors[0] if errors else OSError(f"no address for {endpoint}")
    sockets = _Sockets(addresses[0], on_event)
    try:
        local = await sockets.open(local_addr, primary=True)
    except BaseException:
        sockets.close()
        raise
    return sockets, local


async def discover_nat(
    server: str | StunUri | tuple[str, int],
    *,
    local_addr: Address | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    hairpinning: bool = True,
    lifetime: bool = False,
    lifetime_min: float = 1.0,
    lifetime_max: float = 300.0,
    lifetime_resolution: float = 5.0,
    software: str | None = None,
    on_event: EventCallback | None = None,
    resolver: DnsResolver = None,
) -> NatBehavior:
    """Find the NAT behaviour between a local UDP socket and an RFC 5780 server.

    ``server`` is a ``stun:``/``turn:`` URI (UDP), a `StunUri` or a
    ``(host, port)`` pair; a host name is looked up (of ``local_addr``'s
    family when given), a URI without a port with DNS SRV first (the first
    target that resolves; ``resolver`` as for `ice.get_mapped_address`).
    ``local_addr`` is the ``(ip, port)`` to bind, port 0 for any.
    ``timeout`` is each test's wait for an answer. With ``lifetime``
    the binding lifetime is searched too, from the same socket (between
    ``lifetime_min`` and ``lifetime_max`` seconds, to ``lifetime_resolution``),
    and put in the result's ``lifetime``. ``on_event`` is called with each
    event of the machines as it happens (`ice.stun.nat.StepFinished` after each
    test, `ice.stun.nat.LifetimeProbe` after each probe, ...). Raises OSError when the name does
    not resolve or the socket cannot be bound, ValueError for a URI that is
    not UDP.
    """
    sockets, local = await _open_primary(server, local_addr, on_event, resolver)
    try:
        machine = NatDiscovery(
            sockets.server, local, timeout=timeout, hairpinning=hairpinning, software=software
        )
        behavior = await sockets.drive_nat(machine)
        if lifetime:
            if behavior.udp_blocked or not behavior.rfc5780:
                why = "no answer over UDP" if behavior.udp_blocked else "the server lacks RFC 5780"
                found = BindingLifetime(
                    sockets.server, None, None, problems=(f"not measured: {why}",)
                )
            else:
                found = await _lifetime(
                    sockets,
                    local,
                    min_wait=lifetime_min,
                    max_wait=lifetime_max,
                    resolution=lifetime_resolution,
                    timeout=timeout,
                    software=software,
                )
            behavior = dataclasses.replace(behavior, lifetime=found)
        return behavior
    finally:
        sockets.close()


async def discover_binding_lifetime(
    server: str | StunUri | tuple[str, int],
    *,
    local_addr: Address | None = None,
    min_wait: float = 1.0,
    max_wait: float = 300.0,
    resolution: float = 5.0,
    timeout: float = DEFAULT_TIMEOUT,
    software: str | None = None,
    on_event: EventCallback | None = None,
) -> BindingLifetime:
    """Only the binding lifetime search (RFC 5780 section 4.6), on two new sockets.

    X is bound to ``local_addr`` (default: any address, port 0), Y to X's IP.
    """
    sockets, local = await _open_primary(server, local_addr, on_event)
    try:
        return await _lifetime(
            sockets,
            local,
            min_wait=min_wait,
            max_wait=max_wait,
            resolution=resolution,
            timeout=timeout,
            software=software,
        )
    finally:
        sockets.close()


async def _lifetime(
    sockets: _Sockets,
    local_x: Address,
    *,
    min_wait: float,
    max_wait: float,
    resolution: float,
    timeout: float,
    software: str | None,
) -> BindingLifetime:
    local_y = await sockets.open((local_x[0], 0), primary=False)
    machine = BindingLifetimeDiscovery(
        sockets.server,
        local_x,
        local_y,
        min_wait=min_wait,
        max_wait=max_wait,
        resolution=resolution,
        timeout=timeout,
        software=software,
    )
    return await sockets.drive_lifetime(machine)
