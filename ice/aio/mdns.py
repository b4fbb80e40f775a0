"""mDNS on the running loop: the sans-I/O responder and resolver of `ice.agent.mdns` on
multicast UDP sockets.

::

    service = await MdnsService.start(interface="192.0.2.10")
    name = service.register("192.0.2.10")          # "3f1c...-....local", answered from now
    addresses = await service.resolve("d2b5....local", timeout=5.0)   # ("192.0.2.20",)
    service.close()

One IPv4 socket bound to port 5353 (shared with other responders on the host
through SO_REUSEADDR/SO_REUSEPORT) joins 224.0.0.251 on ``interface`` (an
IPv4 address of the host; the default interface when None) and sends there;
with ``interface6`` (an interface index) an IPv6 socket does the same with
ff02::fb on that link, and questions go to both groups. Either may be
switched off (``interface=None, ipv4=False``), but not both. `resolve`
raises `LookupError` when no answer comes within ``timeout``.

Each machine runs on a `ice.aio.driver.MachineDriver`: a batch of datagrams
read from a socket is fed to both, and the resolver's timer (re-asking,
giving up) sends with the ``now`` it fired at. On a loop without
``add_reader`` (Windows' proactor) the sockets are read through datagram
transports (`ice.aio.portable.DatagramIO`), one datagram at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import socket
import struct
from typing import Any

from ice.agent.mdns import (
    MDNS_GROUP_V4,
    MDNS_GROUP_V6,
    MDNS_PORT,
    MdnsEvent,
    MdnsResolver,
    MdnsResponder,
    Resolved,
)
from ice.aio.driver import MachineDriver
from ice.aio.portable import DatagramIO
from ice.machine import Address, Transmit

__all__ = ["MdnsService"]

logger = logging.getLogger("ice.aio.mdns")

_READ_BATCH = 32


class MdnsService:
    """One host's mDNS: answers for its registered names, resolves others' names."""

    def __init__(
        self,
        sockets: list[socket.socket],
        interface: str | None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if not sockets:
            raise ValueError("an mDNS service needs an IPv4 or an IPv6 socket")
        self._sockets = list(sockets)
        self.interface = interface
        self.responder = MdnsResponder(rng=rng)
        groups = tuple(
            MDNS_GROUP_V6 if s.family == socket.AF_INET6 else MDNS_GROUP_V4 for s in sockets
        )
        self.resolver = MdnsResolver(groups=groups)
        self._loop = asyncio.get_running_loop()
        self._answering = _MdnsDriver(self.responder, self)
        self._resolving = _MdnsDriver(self.resolver, self)
        self._waiters: dict[str, list[asyncio.Future[tuple[str, ...]]]] = {}
        #: Per socket, on a loop without add_reader: its datagram transport.
        self._fallbacks: dict[socket.socket, DatagramIO] = {}
        for sock in self._sockets:
            try:
                self._loop.add_reader(sock.fileno(), self._read_ready, sock)
            except NotImplementedError:
                io = DatagramIO(sock, functools.partial(self._datagram_received, sock), "mdns")
                self._fallbacks[sock] = io
                io.open(self._loop)

    @classmethod
    async def start(
        cls,
        *,
        interface: str | None = None,
        interface6: int | None = None,
        ipv4: bool = True,
        port: int = MDNS_PORT,
        rng: random.Random | None = None,
    ) -> MdnsService:
        """Open the multicast sockets (OSError when a port or group cannot be had)."""
        sockets = []
        try:
            if ipv4:
                sockets.append(_ipv4_socket(interface, port))
            if interface6 is not None:
                sockets.append(_ipv6_socket(interface6, port))
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        return cls(sockets, interface, rng=rng)

    # -- names

    def register(self, ip: str) -> str:
        """A fresh ``<uuid>.local`` name for ``ip``, answered until `unregister`/`close`."""
        return self.responder.register(ip)

    def unregister(self, name: str) -> None:
        self.responder.unregister(name)

    async def resolve(self, name: str, timeout: float = 5.0) -> tuple[str, ...]:
        """The addresses of ``name``; LookupError when none is learnt within ``timeout``."""
        if not self._sockets:
            raise LookupError(f"{name}: the mDNS service is closed")
        waiter: asyncio.Future[tuple[str, ...]] = self._loop.create_future()
        self._waiters.setdefault(name.lower().rstrip("."), []).append(waiter)
        now = self._loop.time()
        self.resolver.resolve(name, now, timeout)
        self._resolving.pump(now)
        return await waiter

    def close(self) -> None:
        sockets, self._sockets = self._sockets, []
        self._answering.close()
        self._resolving.close()
        for sock in sockets:
            fallback = self._fallbacks.pop(sock, None)
            if fallback is not None:
                fallback.close()  # closes the socket
                continue
            self._loop.remove_reader(sock.fileno())
            sock.close()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(LookupError("the mDNS service was closed"))
        self._waiters.clear()

    # -- the machines

    def _read_ready(self, sock: socket.socket) -> None:
        if sock not in self._sockets:
            return
        now = self._loop.time()
        batch: list[tuple[bytes, Address]] = []
        for _ in range(_READ_BATCH):
            try:
                data, addr = sock.recvfrom(9000)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                logger.debug("mdns: %s", exc)
                break
            batch.append((data, (addr[0], addr[1])))
        self._answering.feed_batch(batch, now)
        self._resolving.feed_batch(batch, now)

    def _datagram_received(self, sock: socket.socket, data: bytes, addr: Address) -> None:
        if sock in self._sockets:
            now = self._loop.time()
            self._answering.feed_batch([(data, addr)], now)
            self._resolving.feed_batch([(data, addr)], now)

    def _settle(self, event: MdnsEvent) -> None:
        for waiter in self._waiters.pop(event.name.lower().rstrip("."), []):
            if waiter.done():
                continue
            if isinstance(event, Resolved):
                waiter.set_result(event.addresses)
            else:
                waiter.set_exception(LookupError(f"{event.name}: {event.reason}"))

    def _send(self, transmit: Transmit) -> None:
        family = socket.AF_INET6 if ":" in transmit.addr[0] else socket.AF_INET
        for sock in self._sockets:
            if sock.family == family:
                fallback = self._fallbacks.get(sock)
                if fallback is not None:
                    fallback.sendto(transmit.data, transmit.addr)
                    return
                try:
                    sock.sendto(transmit.data, transmit.addr)
                except OSError as exc:
                    logger.debug("mdns: cannot send to %s: %s", transmit.addr, exc)
                return

    async def __aenter__(self) -> MdnsService:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        with contextlib.suppress(Exception):
            self.close()


class _MdnsDriver(MachineDriver[MdnsResponder | MdnsResolver]):
    """One of the service's two machines: both send on its sockets; the resolver's
    events settle `resolve` calls (the responder has none)."""

    logger = logger

    def __init__(self, machine: MdnsResponder | MdnsResolver, service: MdnsService) -> None:
        super().__init__(machine)
        self._service = service

    def transmit(self, transmit: Transmit) -> None:
        self._service._send(transmit)

    def event_received(self, event: MdnsEvent) -> None:
        self._service._settle(event)


def _shared_socket(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setblocking(False)
    return sock


def _ipv4_socket(interface: str | None, port: int) -> socket.socket:
    sock = _shared_socket(socket.AF_INET)
    try:
        sock.bind(("", port))
        local = socket.inet_aton(interface or "0.0.0.0")
        group = socket.inet_aton(MDNS_GROUP_V4[0])
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + local)
        if interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    except OSError:
        sock.close()
        raise
    return sock


def _ipv6_socket(index: int, port: int) -> socket.socket:
    sock = _shared_socket(socket.AF_INET6)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::", port))
        group = socket.inet_pton(socket.AF_INET6, MDNS_GROUP_V6[0]) + struct.pack("@I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
    except OSError:
        sock.close()
        raise
    return sock
