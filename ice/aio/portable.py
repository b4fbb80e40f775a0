"""What the servers fall back to where a platform lacks the calls their fast paths use.

The fast paths are Linux's (and the other selector loops'): a UDP socket read
from a ``loop.add_reader`` callback in batches, a listening socket accepted
from one, SO_REUSEPORT for worker processes and for TCP connections that
leave from a listener's port. Each fallback is chosen only when the fast
call is missing, so Linux runs exactly the fast path:

- `DatagramIO`: a bound UDP socket read and written through the loop's
  datagram transport, on loops whose ``add_reader`` raises
  NotImplementedError (Windows' default proactor loop);
- `accept_forever`: a listening socket accepted with ``loop.sock_accept``
  on those loops;
- `require_reuse_port`: a clear `ice.Error` naming the platform where
  SO_REUSEPORT does not exist and a feature cannot do without it;
- `dont_fragment_options`: the socket option that sets the don't-fragment
  bit, which every platform numbers its own way (none on a platform this
  table does not know: relaying works, fragmentable, logged once);
- `enlarge_buffers`: bigger UDP socket buffers where the platform grants
  them (each kernel caps the request its own way; a refusal keeps the
  default): the servers' listeners, and the receive side of a connection's
  sockets.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any, cast

from ice._errors import Error
from ice.machine import Address

__all__ = [
    "DatagramIO",
    "accept_forever",
    "dont_fragment_options",
    "enlarge_buffers",
    "has_reuse_port",
    "platform_name",
    "require_reuse_port",
]

logger = logging.getLogger("ice.aio.portable")

_PLATFORM_NAMES = {"win32": "Windows", "darwin": "macOS", "linux": "Linux", "cygwin": "Cygwin"}

#: Bytes of buffer asked for, each way, on a UDP socket where many peers' bursts
#: land (a TURN server's listener): Linux's default (~208 KiB) holds about 90
#: datagrams of 1,200 bytes. Linux caps the request at net.core.rmem_max /
#: wmem_max.
SOCKET_BUFFER = 1 << 20

#: Bytes of receive buffer asked for on a connection's UDP sockets (host
#: candidates, links to STUN and TURN servers): aioice's figure, which Linux
#: doubles to 512 KiB. aiortc's SCTP sends a data channel's opening burst
#: faster than the peer's event loop reads it; at Linux's default (~208 KiB,
#: ~250 small datagrams) the tail of that burst was dropped, and SCTP stalled
#: for its 1 s retransmission timeout.
CONNECTION_RECEIVE_BUFFER = 256 << 10


def platform_name(platform: str | None = None) -> str:
    """The platform as a user would name it, for error messages (``sys.platform`` else)."""
    platform = sys.platform if platform is None else platform
    for prefix, name in (("freebsd", "FreeBSD"), ("openbsd", "OpenBSD"), ("netbsd", "NetBSD")):
        if platform.startswith(prefix):
            return name
    return _PLATFORM_NAMES.get(platform, platform)


def has_reuse_port() -> bool:
    """Whether the socket module has SO_REUSEPORT (not on Windows)."""
    return hasattr(socket, "SO_REUSEPORT")


def require_reuse_port(what: str) -> None:
    """Raise `ice.Error` naming the platform when SO_REUSEPORT is missing."""
    if not has_reuse_port():
        raise Error(f"{what} needs SO_REUSEPORT, which {platform_name()} does not have")


# -- don't fragment

_IPPROTO_IP = 0  # the same number on every platform, as is IPPROTO_IPV6
_IPPROTO_IPV6 = 41

#: (IPv4 option, its value, IPv6 option, its value) at IPPROTO_IP / IPPROTO_IPV6,
#: from each platform's headers. Linux: IP_MTU_DISCOVER (10) = IP_PMTUDISC_DO (2)
#: and IPV6_DONTFRAG (62); macOS: IP_DONTFRAG (28), IPV6_DONTFRAG (62); FreeBSD:
#: IP_DONTFRAG (67), IPV6_DONTFRAG (62); Windows (ws2ipdef.h): IP_DONTFRAGMENT
#: (14), IPV6_DONTFRAG (14). The numbers clash across platforms (10 is
#: IP_MULTICAST_TTL on Windows and macOS), so none is guessed for another.
_DONT_FRAGMENT = {
    "linux": (10, 2, 62, 1),
    "darwin": (28, 1, 62, 1),
    "freebsd": (67, 1, 62, 1),
    "win32": (14, 1, 14, 1),
}


_unknown_logged: set[str] = set()


def dont_fragment_options(family: int, platform: str | None = None) -> tuple[int, int, int] | None:
    """(level, option, value) that sets don't-fragment on a ``family`` UDP socket here
    (on ``platform``, a ``sys.platform`` value); None where the table has no entry."""
    platform = sys.platform if platform is None else platform
    key = "freebsd" if platform.startswith("freebsd") else platform
    if key == "android":  # a Linux kernel
        key = "linux"
    entry = _DONT_FRAGMENT.get(key)
    if entry is None:
        if platform not in _unknown_logged:
            _unknown_logged.add(platform)
            logger.info("don't-fragment is not set on %s: its socket option is not known", platform)
        return None
    if family == socket.AF_INET6:
        return (_IPPROTO_IPV6, entry[2], entry[3])
    return (_IPPROTO_IP, entry[0], entry[1])


def enlarge_buffers(sock: socket.socket, size: int = SOCKET_BUFFER, *, send: bool = True) -> None:
    """Ask for ``size`` bytes of receive and (unless ``send`` is false) send buffer on
    ``sock``, each way it has less; a platform that refuses keeps its default (logged
    at debug level)."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF) if send else (socket.SO_RCVBUF,):
        try:
            if sock.getsockopt(socket.SOL_SOCKET, option) < size:
                sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError as exc:
            logger.debug("socket buffer size not set: %s", exc)


# -- loops without add_reader


class DatagramIO(asyncio.DatagramProtocol):
    """A bound UDP socket read and written through the loop's datagram transport.

    It stands in for `ice.aio._udpio.BatchSocket` (``send``, ``sendto``,
    ``dropped``) where the loop cannot call back when a socket is readable:
    the transport reads, one datagram per ``on_datagram(data, (host, port))``.
    `open` is synchronous, since a TURN core opens its relay sockets from a
    plain call: the transport comes up on the loop's next turns (await the
    returned task to see it up, or fail), what arrives meanwhile waits in the
    socket's buffer, and what is sent meanwhile goes straight to the socket.
    The socket is the transport's to close, through `close`.
    """

    def __init__(
        self, sock: socket.socket, on_datagram: Callable[[bytes, Address], None], label: str
    ) -> None:
        self.sock: socket.socket | None = sock
        self.transport: asyncio.DatagramTransport | None = None
        self.dropped = 0
        self._on_datagram = on_datagram
        self._label = label
        self._task: asyncio.Task[Any] | None = None

    def open(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any]:
        assert self.sock is not None and self._task is None
        self._task = loop.create_task(loop.create_datagram_endpoint(lambda: self, sock=self.sock))
        self._task.add_done_callback(self._opened)
        return self._task

    def _opened(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.debug("udp %s: no datagram transport: %s", self._label, exc)
            self.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not always an asyncio.DatagramTransport subclass (3.11's selector one is not).
        self.transport = cast(asyncio.DatagramTransport, transport)
        if self.sock is None:  # closed while the transport was being made
            transport.close()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_datagram(data, addr if len(addr) == 2 else (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # an ICMP error for an earlier send
        logger.debug("udp %s: %s", self._label, exc)

    def sendto(self, data: bytes, addr: Address) -> bool:
        """Send one datagram; False (and counted in ``dropped``) when it could not go."""
        transport = self.transport
        if transport is not None:
            if transport.is_closing():
                self.dropped += 1
                return False
            transport.sendto(data, addr)
            return True
        sock = self.sock
        if sock is None:
            self.dropped += 1
            return False
        try:
            sock.sendto(data, addr)
        except OSError as exc:  # a full buffer included: dropped, as the network would
            logger.debug("udp %s -> %s: %s", self._label, addr, exc)
            self.dropped += 1
            return False
        return True

    def recv(self, limit: int = 0) -> list[tuple[bytes, Address]]:
        """Nothing: the transport reads (here for the readers of a `BatchSocket`)."""
        return []

    def send(self, items: Iterable[tuple[bytes, Address]]) -> int:
        """Send each (data, addr); how many went."""
        sent = 0
        for data, addr in items:
            sent += self.sendto(data, addr)
        return sent

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        task = self._task
        if self.transport is not None:
            self.transport.close()  # it closes the socket
        elif task is not None and not task.done():
            # Close the socket once the cancelled creation has let go of it.
            task.cancel()
            task.add_done_callback(lambda _: sock.close())
        else:
            sock.close()


def accept_forever(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    on_accept: Callable[[socket.socket, Any], None],
    label: str,
) -> asyncio.Task[None]:
    """Accept connections on the listening ``sock`` with ``loop.sock_accept`` until the
    task is cancelled, which closes ``sock`` (once the loop has let go of it)."""

    async def accept() -> None:
        while True:
            try:
                conn, addr = await loop.sock_accept(sock)
            except OSError as exc:  # out of descriptors, a connection reset before accept...
                logger.debug("accept on %s: %s", label, exc)
                if sock.fileno() < 0:
                    return
                await asyncio.sleep(0.1)  # not a busy loop while the error lasts
                continue
            on_accept(conn, addr)

    task = loop.create_task(accept())
    task.add_done_callback(lambda _: sock.close())
    return task
