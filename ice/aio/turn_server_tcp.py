"""asyncio side of TCP allocations (RFC 6062) for `ice.aio.turn_server.TurnServerRunner`.

`TcpRelayIO` does what the core's effects (`ice.turn.server_tcp`) ask and reports
back:

- each TCP relayed address is a listening socket (`open_tcp_relay`), bound
  without SO_REUSEPORT (so a port another program or worker holds is
  skipped) and given SO_REUSEPORT after ``listen``, so that the connections
  the server opens to peers can leave from the very same address (without
  SO_REUSEPORT that works only where SO_REUSEADDR shares a listening port,
  as on Windows; elsewhere Connect requests fail, said once in the log,
  while peers connecting to the relay work everywhere);
- a connection a peer makes to it is accepted and reported
  (`TurnServer.peer_connection_accepted`): refused ones are closed at once,
  the others wait, unread, for their ConnectionBind: the kernel keeps what
  the peer sends and shrinks its TCP window, which is the buffering RFC 6062
  asks for;
- `OpenPeerConnection` opens a connection from the relayed address to the
  peer (the core times it out after 30 s with a `ClosePeerConnection`,
  which cancels it) and reports `peer_connected` or `peer_connection_failed`;
- `Splice` joins the client's data connection (`ClientStream`, the runner's
  stream protocol, which stops framing right after the ConnectionBind that
  bound it) to the peer connection: bytes go across as they come, both
  ways. A side whose write buffer passes the runner's ``max_buffer`` stops
  the other side's reading until it drains (back-pressure); an end of
  stream is passed on as one (half-close, where both transports can: not
  over TLS, which closes instead); when both directions are done, or
  either connection is lost, both are closed and the core is told.

It is wired to the runner the way the core wires its own `TcpRelay`
(`ice.turn.server_tcp`): with the loop, the few core methods it reports to
(`PeerConnectionReports`, which `TurnServer` is), the runner's ``flush``
(send what the core has to send after each report) and ``connection_for``
(the runner's client connection of a Splice), not with the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ice.aio.portable import accept_forever, has_reuse_port, platform_name
from ice.aio.stun_server import _address, _StreamConnection
from ice.machine import Address
from ice.stun.uri import format_address
from ice.turn.server_tcp import ClosePeerConnection, OpenPeerConnection, Splice, TcpEffect

__all__ = ["ClientStream", "PeerConnectionReports", "TcpRelayIO"]

logger = logging.getLogger("ice.aio.turn_server_tcp")

#: Pending connections a relay's listening socket queues.
LISTEN_BACKLOG = 128
#: Connections accepted from one listening socket per wake-up of the loop, at most.
ACCEPT_BATCH = 16


class ClientStream(_StreamConnection):
    """A client's TCP/TLS connection to the TURN server: STUN and ChannelData frames
    (as `_StreamConnection`) until a ConnectionBind makes it a data connection,
    after which its bytes go to the peer unframed."""

    splice: _Splice | None = None

    def data_received(self, data: bytes) -> None:
        splice = self.splice
        if splice is not None:
            splice.from_client(data)
        else:
            super().data_received(data)

    def _handed_over(self, data: bytes, offset: int) -> bool:
        splice = self.splice
        if splice is None:
            return False
        if offset < len(data):  # that frame was the ConnectionBind: the rest is raw data
            splice.from_client(data[offset:])
        return True

    def eof_received(self) -> bool | None:
        if self.splice is not None:
            return self.splice.eof_from_client()
        return None

    def pause_writing(self) -> None:
        if self.splice is not None:
            self.splice.pause(self.splice.peer)  # the client does not keep up with the peer
        else:
            super().pause_writing()

    def resume_writing(self) -> None:
        if self.splice is not None:
            self.splice.resume(self.splice.peer)
        else:
            super().resume_writing()

    def stop_idle_timer(self) -> None:
        """A data connection lives as long as its peer connection, busy or not."""
        self.stop_deadlines()


class PeerConnectionReports(Protocol):
    """What `TcpRelayIO` tells the core about peer connections (`TurnServer` does these)."""

    def peer_connected(self, connection_id: int, now: float) -> None: ...

    def peer_connection_failed(self, connection_id: int, now: float) -> None: ...

    def peer_connection_accepted(self, relay: Address, peer: Address, now: float) -> int | None: ...

    def peer_connection_closed(self, connection_id: int, now: float) -> None: ...


class _PeerProtocol(asyncio.Protocol):
    """One peer connection of a TCP allocation: unread until spliced."""

    def __init__(self, io: TcpRelayIO, connection_id: int, peer: Address) -> None:
        self._io = io
        self.connection_id = connection_id
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.splice: _Splice | None = None
        self.closed = False
        self._early: list[bytes] = []  # writes before the transport exists

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.closed:
            transport.close()
            return
        transport.set_write_buffer_limits(high=self._io.max_buffer)
        if self.splice is None:
            transport.pause_reading()  # RFC 6062: buffered (by the kernel) until bound
        for data in self._early:
            transport.write(data)
        self._early.clear()

    def data_received(self, data: bytes) -> None:
        if self.splice is not None:
            self.splice.from_peer(data)

    def eof_received(self) -> bool | None:
        if self.splice is not None:
            return self.splice.eof_from_peer()
        return None

    def pause_writing(self) -> None:
        if self.splice is not None:
            self.splice.pause(self.splice.client)  # the peer does not keep up with the client

    def resume_writing(self) -> None:
        if self.splice is not None:
            self.splice.resume(self.splice.client)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            self._early.append(data)
        elif not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._io.peer_lost(self)


class _Splice:
    """A client data connection and its peer connection, joined."""

    def __init__(self, io: TcpRelayIO, client: ClientStream, peer: _PeerProtocol) -> None:
        self._io = io
        self.client = client
        self.peer = peer
        self.client_eof = False
        self.peer_eof = False
        self._paused: set[int] = set()  # id() of the sides whose reading we paused

    def start(self) -> None:
        self.client.splice = self
        self.peer.splice = self
        self.client.stop_idle_timer()
        transport = self.peer.transport
        if transport is not None:
            transport.resume_reading()

    def from_client(self, data: bytes) -> None:
        self.peer.write(data)

    def from_peer(self, data: bytes) -> None:
        self.client.write(data)

    def eof_from_client(self) -> bool | None:
        self.client_eof = True
        return self._eof(self.client, self.peer.transport, self.peer_eof)

    def eof_from_peer(self) -> bool | None:
        self.peer_eof = True
        return self._eof(self.peer, self.client.transport, self.client_eof)

    def _eof(
        self, side: ClientStream | _PeerProtocol, other: asyncio.Transport | None, both: bool
    ) -> bool | None:
        """One side ended its stream: end the other's too, keeping the way back open."""
        if both or other is None or other.is_closing() or not other.can_write_eof():
            self.close()
            return None
        other.write_eof()
        mine = side.transport
        if mine is not None and mine.get_extra_info("sslcontext") is not None:
            return None  # TLS cannot stay half-open: it closes, and the loss closes the rest
        return True

    def pause(self, side: ClientStream | _PeerProtocol) -> None:
        transport = side.transport
        if transport is not None and not transport.is_closing():
            self._paused.add(id(side))
            transport.pause_reading()

    def resume(self, side: ClientStream | _PeerProtocol) -> None:
        transport = side.transport
        if id(side) not in self._paused or transport is None or transport.is_closing():
            return
        self._paused.discard(id(side))
        if not (self.client_eof if side is self.client else self.peer_eof):
            transport.resume_reading()

    def close(self) -> None:
        """Close both connections (each after sending what it still has to send)."""
        self.client.close()
        self.peer.close()


class _TcpListener:
    """The listening socket of one TCP relayed address, read on the loop (accepted
    with ``loop.sock_accept`` on a loop without ``add_reader``)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        accepted: Callable[[Address, socket.socket, Address], None],
        sock: socket.socket,
        address: Address,
    ) -> None:
        self._loop = loop
        self._accepted = accepted
        self.sock: socket.socket | None = sock
        self.address = address
        self._fallback: asyncio.Task[None] | None = None
        try:
            loop.add_reader(sock.fileno(), self._accept_ready)
        except NotImplementedError:
            self._fallback = accept_forever(loop, sock, self._accept_one, format_address(address))

    def _accept_ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            sock = self.sock
            if sock is None:
                return
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, a connection reset before accept...
                logger.debug("accept on %s: %s", format_address(self.address), exc)
                return
            self._accepted(self.address, conn, _address(addr))

    def _accept_one(self, conn: socket.socket, addr: Any) -> None:
        if self.sock is None:
            conn.close()
        else:
            self._accepted(self.address, conn, _address(addr))

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        if self._fallback is not None:
            self._fallback.cancel()  # which closes the socket
        else:
            self._loop.remove_reader(sock.fileno())
            sock.close()


class TcpRelayIO:
    """The runner's TCP relay sockets and peer connections; see the module docstring.

    ``core`` hears how peer connections go; ``flush()`` sends what it then has
    to send; ``connection_for(client, local)`` is the runner's connection from
    ``client`` to its ``local`` listener, if open; ``max_buffer`` bounds a
    peer connection's write buffer (the runner's, for client connections).
    """

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        core: PeerConnectionReports,
        flush: Callable[[], None],
        connection_for: Callable[[Address, Address], _StreamConnection | None],
        max_buffer: int,
    ) -> None:
        self._loop = loop
        self._core = core
        self._flush = flush
        self._connection_for = connection_for
        self.max_buffer = max_buffer
        self._listeners: dict[Address, _TcpListener] = {}
        self._peers: dict[int, _PeerProtocol] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    @property
    def peer_count(self) -> int:
        """Peer connections open or being opened."""
        return len(self._peers) + sum(1 for cid in self._tasks if cid not in self._peers)

    # -- listening sockets (TcpRelaySockets, for the core through the runner)

    def open_tcp_relay(self, address: Address) -> bool:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            _reuse_port(sock)
        except OSError as exc:
            sock.close()
            logger.debug("TCP relay %s not available: %s", format_address(address), exc)
            return False
        self._listeners[address] = _TcpListener(self._loop, self.accepted, sock, address)
        return True

    def close_tcp_relay(self, address: Address) -> None:
        listener = self._listeners.pop(address, None)
        if listener is not None:
            listener.close()

    # -- the core's effects

    def apply(self, effect: TcpEffect) -> None:
        if isinstance(effect, OpenPeerConnection):
            self._open(effect)
        elif isinstance(effect, Splice):
            self._splice(effect)
        elif isinstance(effect, ClosePeerConnection):
            self._close(effect.connection_id)

    def _open(self, effect: OpenPeerConnection) -> None:
        protocol = _PeerProtocol(self, effect.connection_id, effect.peer)
        self._track(effect.connection_id, self._connect(protocol, effect.relay, effect.peer))

    async def _connect(self, protocol: _PeerProtocol, relay: Address, peer: Address) -> None:
        family = socket.AF_INET6 if ":" in relay[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _reuse_port(sock)
            sock.setblocking(False)
            sock.bind(relay)
            await self._loop.sock_connect(sock, peer)
            self._peers[protocol.connection_id] = protocol
            await self._loop.create_connection(lambda: protocol, sock=sock)
        except asyncio.CancelledError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            if self._peers.get(protocol.connection_id) is protocol:
                del self._peers[protocol.connection_id]
            if exc.errno == errno.EADDRINUSE and not has_reuse_port():
                _no_reuse_port_logged(relay)
            logger.debug(
                "TCP connection %s -> %s failed: %s",
                format_address(relay),
                format_address(peer),
                exc,
            )
            self._report(self._core.peer_connection_failed, protocol.connection_id)
            return
        self._report(self._core.peer_connected, protocol.connection_id)

    def accepted(self, relay: Address, conn: socket.socket, peer: Address) -> None:
        try:
            connection_id = self._core.peer_connection_accepted(relay, peer, self._loop.time())
        except Exception:
            logger.exception("server failed on a connection from %s", format_address(peer))
            connection_id = None
        if connection_id is None:
            conn.close()
            self._flush()
            return
        conn.setblocking(False)
        protocol = _PeerProtocol(self, connection_id, peer)
        self._peers[connection_id] = protocol
        self._track(connection_id, self._adopt(protocol, conn))
        self._flush()  # the ConnectionAttempt indication

    def _track(self, connection_id: int, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks[connection_id] = task

        def done(_: asyncio.Task[None]) -> None:
            if self._tasks.get(connection_id) is task:
                del self._tasks[connection_id]

        task.add_done_callback(done)

    async def _adopt(self, protocol: _PeerProtocol, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(lambda: protocol, conn)
        except asyncio.CancelledError:
            conn.close()
            raise
        except OSError as exc:
            conn.close()
            logger.debug("peer %s: %s", format_address(protocol.peer), exc)
            protocol.connection_lost(exc)

    def _splice(self, effect: Splice) -> None:
        client = self._connection_for(effect.client, effect.local)
        peer = self._peers.get(effect.connection_id)
        if not isinstance(client, ClientStream) or peer is None or peer.closed:
            # One side vanished meanwhile: the other goes too.
            if client is not None:
                client.close()
            if peer is not None:
                peer.close()
            else:
                self._report(self._core.peer_connection_closed, effect.connection_id)
            return
        _Splice(self, client, peer).start()

    def _close(self, connection_id: int) -> None:
        task = self._tasks.get(connection_id)
        peer = self._peers.get(connection_id)
        if peer is None:
            if task is not None:
                task.cancel()
            return
        if peer.splice is not None:
            peer.splice.close()
            return
        peer.close()
        if peer.transport is None:  # an accepted socket not adopted yet: it never will be
            del self._peers[connection_id]
            if task is not None:
                task.cancel()

    def peer_lost(self, protocol: _PeerProtocol) -> None:
        """A peer connection closed: its client data connection follows; the core is told."""
        if self._peers.get(protocol.connection_id) is not protocol:
            return
        del self._peers[protocol.connection_id]
        if protocol.splice is not None:
            protocol.splice.client.close()
        self._report(self._core.peer_connection_closed, protocol.connection_id)

    def _report(self, method: Callable[[int, float], None], connection_id: int) -> None:
        try:
            method(connection_id, self._loop.time())
        except Exception:
            logger.exception("server failed on the news of TCP connection %08x", connection_id)
        self._flush()

    # -- shutting down

    def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for protocol in list(self._peers.values()):
            with contextlib.suppress(Exception):
                if protocol.transport is not None:
                    protocol.transport.abort()
        for listener in list(self._listeners.values()):
            listener.close()
        self._listeners.clear()


_no_reuse_port_said = False


def _no_reuse_port_logged(relay: Address) -> None:
    """Say once why Connect requests fail: without SO_REUSEPORT (Windows has
    SO_REUSEADDR, which lets the port be shared there) a connection cannot
    leave from a port a listener holds."""
    global _no_reuse_port_said
    if not _no_reuse_port_said:
        _no_reuse_port_said = True
        logger.warning(
            "TCP relay %s: %s has no SO_REUSEPORT and the port is taken by the relay's "
            "listener, so connections to peers (RFC 6062 Connect) fail",
            format_address(relay),
            platform_name(),
        )


def _reuse_port(sock: socket.socket) -> None:
    """SO_REUSEPORT, where there is one: the relay's listener and the connections
    the server opens from the same address share the port."""
    option = getattr(socket, "SO_REUSEPORT", None)
    if option is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, 1)
