"""ICE-TCP on asyncio: the listeners and connections behind TCP candidates (RFC 6544).

`ice.Connection(tcp=True)` gathers three TCP host candidates per address and
component: passive (a listener), active (port 9: it only connects) and
simultaneous-open (a listener whose port is also the source of its outgoing
connections, bound with SO_REUSEADDR/SO_REUSEPORT; left out, with a log
line, where there is no SO_REUSEPORT). The agent asks for
connections (`Agent.connections_to_open`); `open_link` makes them and
`listen` accepts the peer's. Every connection is a `TcpLink` (or, through a
TURN server's RFC 6062 allocation, a `StreamLink`): RFC 4571 frames in and
out, each handed to the connection with its remote address, local address
and component, where STUN goes to the agent and the rest to the application.
`TcpLinks` is all of that for one connection: its listeners, its links by
(local, remote), its relayed TCP allocations, and the agent told of each
connection that opens, fails, is accepted or closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from ice._errors import TurnError
from ice.agent.agent import Agent
from ice.agent.candidate import TcpType
from ice.agent.tcp import FrameReader, OpenConnection, frame
from ice.aio.portable import has_reuse_port, platform_name
from ice.aio.turn_client import TurnClient
from ice.machine import Address

__all__ = [
    "CONNECT_TIMEOUT",
    "Link",
    "StreamLink",
    "TcpLink",
    "TcpLinks",
    "listen",
    "open_link",
]

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


class TcpLinks:
    """The TCP side of one ICE connection: see the module docstring. ``on_frame``
    gets every frame; ``pump(now)`` runs after the agent was told something."""

    def __init__(self, agent: Agent, on_frame: FrameHandler, pump: Callable[[float], None]) -> None:
        self.agent = agent
        self.links: dict[tuple[Address, Address], Link] = {}
        self._on_frame = on_frame
        self._pump = pump
        self._servers: list[asyncio.Server] = []
        self._relays: dict[Address, TurnClient] = {}  # relayed address -> its TCP allocation
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    async def add_host_candidates(self, ip: str, component: int, preference: int) -> None:
        """Passive, simultaneous-open and active TCP host candidates on ``ip`` (RFC 6544
        5.1); a listener that cannot be opened is left out (logged)."""
        loop = asyncio.get_running_loop()
        tcptype: TcpType
        for tcptype in ("passive", "so", "active"):
            base: Address = (ip, 0)
            if tcptype == "so" and not has_reuse_port():
                # Its connections leave from the listener's port, which takes SO_REUSEPORT.
                logger.info(
                    "no so TCP candidate on %s: %s has no SO_REUSEPORT", ip, platform_name()
                )
                continue
            if tcptype != "active":
                accept = functools.partial(self._link, component, accepted=True)
                try:
                    server = await listen(ip, accept, reuse_port=tcptype == "so")
                except OSError as exc:
                    logger.info("no %s TCP candidate on %s: %s", tcptype, ip, exc)
                    continue
                self._servers.append(server)
                if self.closing:
                    server.close()
                    return
                base = (ip, server.sockets[0].getsockname()[1])
            self.agent.add_host_candidate(base, component, preference, loop.time(), tcptype=tcptype)

    def add_relay(self, client: TurnClient, relayed: Address, component: int) -> None:
        """An RFC 6062 allocation whose candidates the agent has: accept its peers."""
        self._relays[relayed] = client
        self._spawn(self._accept_relayed(client, relayed, component))

    def permit(self, ip: str) -> None:
        """Let a peer connect to the relayed candidates: they need a permission."""
        for client in self._relays.values():
            task = asyncio.ensure_future(client.create_permission(ip))
            task.add_done_callback(_ignore_failure)

    def open_requested(self) -> None:
        """Open the connections the agent asks for."""
        for request in self.agent.connections_to_open():
            self._spawn(self._open(request))

    def close(self) -> None:
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            server.close()
        for link in list(self.links.values()):
            link.close()

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _link(self, component: int, *, accepted: bool = False) -> TcpLink:
        def opened(link: TcpLink) -> None:
            if self.closing:
                link.close()
                return
            self.links[link.key] = link
            if accepted:
                self.agent.connection_accepted(link.local, link.remote)

        return TcpLink(component, self._on_frame, opened, self._closed)

    def _closed(self, link: Link) -> None:
        if self.links.get(link.key) is link:
            del self.links[link.key]
        if not self.closing:
            now = asyncio.get_running_loop().time()
            self.agent.connection_closed(link.local, link.remote, now)
            self._pump(now)

    async def _open(self, request: OpenConnection) -> None:
        loop = asyncio.get_running_loop()
        client = self._relays.get(request.local)
        link: Link
        try:
            if client is not None:  # an active relayed candidate: the server connects for us
                reader, writer = await client.connect(request.remote)
                link = StreamLink(
                    reader, writer, request.local, request.remote, request.component,
                    self._on_frame, self._closed,
                )  # fmt: skip
                self.links[link.key] = link
            else:
                link = await open_link(request, lambda: self._link(request.component))
        except (OSError, TimeoutError, TurnError) as exc:
            logger.debug("TCP %s -> %s: %s", request.local, request.remote, exc)
            if not self.closing:
                self.agent.connection_failed(request.connection_id, loop.time())
                self._pump(loop.time())
            return
        if self.closing:
            link.close()
            return
        self.agent.connection_opened(request.connection_id, link.local, loop.time())
        self._pump(loop.time())

    async def _accept_relayed(self, client: TurnClient, relayed: Address, component: int) -> None:
        """Peers connecting to a relayed TCP candidate, for as long as the relay lives."""
        while not self.closing:
            try:
                peer, reader, writer = await client.accept()
            except (TurnError, OSError) as exc:
                if client.closed:
                    return
                logger.debug("relayed TCP %s: %s", relayed, exc)
                continue
            link = StreamLink(
                reader, writer, relayed, peer, component, self._on_frame, self._closed
            )
            self.links[link.key] = link
            self.agent.connection_accepted(relayed, peer)


def _ignore_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("a relay permission failed: %s", task.exception())
