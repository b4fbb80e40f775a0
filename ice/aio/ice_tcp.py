"""ICE-TCP on asyncio: the listeners and connections behind TCP candidates (RFC 6544).

`ice.Connection(tcp=True)` gathers three TCP host candidates per address and
component: passive (a listener), active (port 9: it only connects) and
simultaneous-open (a listener whose port is also the source of its outgoing
connections, bound with SO_REUSEADDR/SO_REUSEPORT). The agent asks for
connections (`Agent.connections_to_open`); `open_link` makes them and
`listen` accepts the peer's. Every connection is a `TcpLink`: RFC 4571
frames in and out, STUN frames (first byte 0-3 with the magic cookie) to the
agent with the connection's local address as the base, the rest to the
application as datagrams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

from ice.agent.tcp import FrameReader, OpenConnection, frame
from ice.machine import Address

__all__ = ["CONNECT_TIMEOUT", "Link", "StreamLink", "TcpLink", "listen", "open_link"]

logger = logging.getLogger("ice.aio.ice_tcp")

#: How long an outgoing connection may take before its pair fails.
CONNECT_TIMEOUT = 5.0
#: A connection whose peer sends a frame announcing more than this is closed.
_MAX_PENDING = 2 * 65537

#: What a link hands its owner: (frame, remote, local base, component).
FrameHandler = Callable[[bytes, Address, Address, int], None]


def _address(sockaddr: Any) -> Address:
    return (str(sockaddr[0]).partition("%")[0], int(sockaddr[1]))


class TcpLink(asyncio.Protocol):
    """One TCP connection of a TCP candidate pair."""

    def __init__(
        self,
        component: int,
        on_frame: FrameHandler,
        on_open: Callable[[TcpLink], None],
        on_close: Callable[[TcpLink], None],
    ) -> None:
        self.component = component
        self._on_frame = on_frame
        self._on_open = on_open
        self._on_close = on_close
        self._reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.local: Address = ("", 0)
        self.remote: Address = ("", 0)

    @property
    def key(self) -> tuple[Address, Address]:
        return (self.local, self.remote)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.local = _address(transport.get_extra_info("sockname"))
        self.remote = _address(transport.get_extra_info("peername"))
        self._on_open(self)

    def data_received(self, data: bytes) -> None:
        for payload in self._reader.feed(data):
            try:
                self._on_frame(payload, self.remote, self.local, self.component)
            except Exception:  # a bug must not close the connection
                logger.exception("failed to handle a frame from %s", self.remote)
        if self._reader.pending > _MAX_PENDING:
            self.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(data))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_close(self)


async def listen(
    ip: str, make_link: Callable[[], TcpLink], *, reuse_port: bool = False
) -> asyncio.Server:
    """A listener on ``ip`` (an ephemeral port) whose connections are `TcpLink`s."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        make_link, ip, 0, reuse_address=True, reuse_port=reuse_port or None
    )


async def open_link(
    request: OpenConnection, make_link: Callable[[], TcpLink], timeout: float = CONNECT_TIMEOUT
) -> TcpLink:
    """Connect as the agent asked (from its base; from the very port for
    simultaneous open); OSError or TimeoutError when it cannot."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in request.remote[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if request.simultaneous:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(request.local)
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, request.remote)
        _, link = await loop.create_connection(make_link, sock=sock)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    return link


class StreamLink:
    """A connection given as asyncio streams: a relayed TCP candidate's (RFC 6062),
    whose ``local`` is the relayed address the TURN server connects from."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        local: Address,
        remote: Address,
        component: int,
        on_frame: FrameHandler,
        on_close: Callable[[StreamLink], None],
    ) -> None:
        self.local, self.remote, self.component = local, remote, component
        self._writer = writer
        self._on_frame = on_frame
        self._on_close = on_close
        self._task = asyncio.ensure_future(self._read(reader))

    @property
    def key(self) -> tuple[Address, Address]:
        return (self.local, self.remote)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        frames = FrameReader()
        try:
            while data := await reader.read(65536):
                for payload in frames.feed(data):
                    try:
                        self._on_frame(payload, self.remote, self.local, self.component)
                    except Exception:
                        logger.exception("failed to handle a frame from %s", self.remote)
                if frames.pending > _MAX_PENDING:
                    break
        except (ConnectionError, OSError) as exc:
            logger.debug("relayed TCP %s -> %s: %s", self.local, self.remote, exc)
        finally:
            self._writer.close()
            self._on_close(self)

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(frame(data))

    def close(self) -> None:
        self._writer.close()
        self._task.cancel()


#: Either kind of connection a TCP candidate pair runs over.
Link = TcpLink | StreamLink
