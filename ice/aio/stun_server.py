"""asyncio runner for a server machine (the STUN server core) over UDP, TCP and TLS.

The runner owns the sockets and the connection bookkeeping; the sans-I/O core
(:class:`ice.stun.server.StunServer`, or any `ice.machine.Machine`) owns the
protocol, and a `ice.aio.driver.MachineDriver` runs it: bytes go in with the
address they came from and the local address they arrived on, and whatever
the core wants to send comes out as :class:`ice.Transmit`::

    server = StunServer(software="example")
    runner = await serve_stun(server, [Listener("udp", "127.0.0.1", 3478),
                                       Listener("tcp", "127.0.0.1", 3478)])
    print(runner.addresses)   # [("udp", ("127.0.0.1", 3478)), ("tcp", ("127.0.0.1", 3478))]
    ...
    await runner.close()      # or: async with runner: ...

UDP: one socket per bound address (IPv6 sockets are IPv6-only, so ``0.0.0.0``
and ``::`` can share a port; list both to serve both families). A datagram
goes to the core with ``local`` = the socket's bound address; each Transmit
leaves from the socket bound to ``Transmit.source`` (an RFC 5780 CHANGE-REQUEST
is answered from the other address or port), or from the receiving socket when
``source`` is None. When the core is in RFC 5780 mode (more than one entry in
``server.local_addresses``) the runner also binds a UDP socket on each of those
addresses the listeners do not already name.

TCP and TLS: each connection keeps a buffer framed by
:func:`ice.stream_frame_length`; a complete frame goes to the core with
``reliable=True`` and the answer goes back on the connection identified by
(local address, remote address). A stream that is neither STUN nor ChannelData
closes that connection only. Limits (constructor arguments):

- ``max_connections`` (1000): a connection beyond it is closed at once;
- ``source_connections`` (100; 0: no cap): so is one beyond this many from
  one source (an IPv4 address, an IPv6 /64), so that one host cannot fill
  the server and lock the others out;
- ``message_timeout`` (10 s): a connection whose first complete message has
  not arrived that long after it opened, or whose later message has not
  completed that long after its first byte, is closed (slowloris);
- ``idle_timeout`` (60 s, as coturn): a connection on which no complete
  message arrived for that long is closed; bytes that do not complete a
  message do not count. RFC 8489 section 6.2.2 leaves closing to the client,
  but a client waits 39.5 s at most for an answer, and a connection the core
  still holds state on (``connection_in_use(remote, local)``: a TURN
  allocation, kept alive by its own refreshes) is not idle;
- ``max_buffer`` (128 KiB, more than the largest frame, 20 + 65,535 bytes):
  a connection that announces a longer frame is closed, so none holds more
  than that of an unfinished frame; it is also the high-water mark of the
  write buffer, above which the runner stops reading that connection until
  its peer has read the answers (back-pressure);
- ``tls_handshake_timeout`` (10 s);
- ``reuse_port`` (False): bind with SO_REUSEPORT, so that several worker
  processes serve the same ports (the kernel spreads clients over them by
  their address, so one client's datagrams keep reaching the same worker).
  Where there is no SO_REUSEPORT (Windows) asking for it raises `ice.Error`.

Besides the machine surface the runner uses, when the core has them,
``local_addresses`` (more than one: RFC 5780 mode, see above),
``rfc5766_channels`` (frame ChannelData numbers up to 0x7FFF on streams) and
``connection_lost(remote, local)`` (called when a client's TCP/TLS connection
has closed: a TURN allocation ends with it) and ``connection_in_use(remote,
local)`` (see ``idle_timeout``).

`counters` adds the connections refused (``tcp_refused_full``,
``tcp_refused_source``) and closed by the deadlines (``tcp_closed_message``,
``tcp_closed_idle``) to the core's.

The driver runs the core's one timer and guards every call into it: an
exception raised by the core for one packet (or one timer) is logged and the
runner keeps serving.

Multi-homed hosts: a socket bound to a wildcard address answers from whatever
source address the kernel picks; bind the specific addresses instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypedDict, Unpack

from ice._codec import stream_frame_length
from ice._errors import DecodeError
from ice.aio.driver import MachineDriver
from ice.aio.portable import DatagramIO, enlarge_buffers, require_reuse_port
from ice.machine import Address, Machine, Transmit
from ice.stun.stream_limits import (
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MESSAGE_TIMEOUT,
    SOURCE_CONNECTIONS,
    ConnectionTable,
    StreamClock,
    StreamTimeouts,
)
from ice.stun.uri import format_address

__all__ = [
    "Listener",
    "RunnerOptions",
    "StunServerRunner",
    "Transport",
    "serve_stun",
]

logger = logging.getLogger("ice.aio.stun_server")

Transport = Literal["udp", "tcp", "tls"]

#: Defaults of the connection limits (see the module docstring; the first four are
#: `ice.stun.stream_limits`').
MAX_BUFFER = 128 * 1024
TLS_HANDSHAKE_TIMEOUT = 10.0
#: How long close() lets a connection flush and say goodbye before aborting it.
CLOSE_GRACE = 1.0
#: Datagrams read from one UDP socket per wake-up of the loop, at most.
READ_BATCH = 64
#: The largest UDP payload (IPv6 jumbograms aside).
MAX_DATAGRAM = 65535


class RunnerOptions(TypedDict, total=False):
    """The runner options of the module docstring, as keyword arguments.

    Declared once: `StunServerRunner`, `TurnServerRunner`, `serve_stun` and
    `serve_turn` all take them as ``**options``.
    """

    max_connections: int
    source_connections: int
    message_timeout: float
    idle_timeout: float
    max_buffer: int
    tls_handshake_timeout: float
    reuse_port: bool


@dataclass(frozen=True, slots=True)
class Listener:
    """One address to listen on: ``transport`` is "udp", "tcp" or "tls".

    ``host`` is an IP address or a name (all its addresses are bound; "" binds
    every interface of both families). ``port`` 0 picks a free port: read the
    real one from :attr:`StunServerRunner.addresses`. A "tls" listener needs
    ``ssl``, a server-side :class:`ssl.SSLContext` with its certificate loaded.
    """

    transport: Transport
    host: str
    port: int
    ssl: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if self.transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"transport must be udp, tcp or tls, not {self.transport!r}")
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} is outside 0-65535")
        if (self.transport == "tls") != (self.ssl is not None):
            raise ValueError("a tls listener needs an SSL context, and only a tls listener")

    def __str__(self) -> str:
        return f"{self.transport}://{format_address((self.host, self.port))}"


def _address(sockaddr: Any) -> Address:
    """(host, port) from a socket address (IPv6 ones have four fields)."""
    return (sockaddr[0], sockaddr[1])


def _same_address(a: Address, b: Address) -> bool:
    if a == b:
        return True
    try:
        return a[1] == b[1] and ipaddress.ip_address(a[0]) == ipaddress.ip_address(b[0])
    except ValueError:
        return False


class _DatagramEndpoint:
    """One bound UDP socket feeding the core.

    On a selector loop it reads the socket itself, draining up to READ_BATCH
    datagrams per wake-up (asyncio's datagram transport reads one per
    wake-up, which costs about a third of the throughput), and sends with
    ``sendto`` directly: a datagram the kernel has no room for is dropped,
    as the network would drop it, and the client retransmits. On a loop
    without ``add_reader`` (Windows' proactor) it uses a datagram transport
    (`ice.aio.portable.DatagramIO`).
    """

    def __init__(self, runner: StunServerRunner, sock: socket.socket, local: Address) -> None:
        self._runner = runner
        self._sock: socket.socket | None = sock
        self.local = local
        self._fallback: DatagramIO | None = None
        self._reading = False

    async def start(self) -> None:
        assert self._sock is not None
        loop = self._runner._loop
        try:
            loop.add_reader(self._sock.fileno(), self._read_ready)
            self._reading = True
        except NotImplementedError:
            self._fallback = DatagramIO(self._sock, self.datagram_received, str(self))
            opened = self._fallback.open(loop)
            self._falling_back(self._fallback)
            await opened

    def _falling_back(self, fallback: DatagramIO) -> None:
        """The endpoint reads through ``fallback`` from now on: a subclass that sends
        through something else switches to it here, before a datagram can arrive."""

    def __str__(self) -> str:
        return format_address(self.local)

    @property
    def open(self) -> bool:
        return self._sock is not None

    def _read_ready(self) -> None:
        sock = self._sock
        if sock is None:
            return
        received = self._runner._received
        local = self.local
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error for an earlier send, where reported
                logger.debug("udp %s: %s", format_address(local), exc)
                return
            received(data, addr if len(addr) == 2 else _address(addr), local, self)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        """One datagram the fallback transport read (see `DatagramIO`)."""
        self._runner._received(data, addr, self.local, self)

    def sendto(self, data: bytes, addr: Address) -> None:
        if self._fallback is not None:
            self._fallback.sendto(data, addr)
            return
        if self._sock is None:
            return
        try:
            self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            logger.debug("udp %s: send buffer full, dropped a datagram", format_address(self.local))
        except OSError as exc:
            logger.debug("udp %s -> %s: %s", format_address(self.local), addr, exc)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._reading:
            self._runner._loop.remove_reader(sock.fileno())
            self._reading = False
        if self._fallback is not None:
            self._fallback.close()  # closes the socket
        else:
            sock.close()


class _StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection: framing, limits and back-pressure."""

    def __init__(self, runner: StunServerRunner, kind: Transport) -> None:
        self._runner = runner
        self.kind = kind
        self.transport: asyncio.Transport | None = None
        self.local: Address = ("", 0)
        self.remote: Address = ("", 0)
        self._buffer = bytearray()
        self._clock: StreamClock | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self.closed: asyncio.Future[None] = runner._loop.create_future()

    @property
    def key(self) -> tuple[Address, Address]:
        return (self.local, self.remote)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.local = _address(transport.get_extra_info("sockname"))
        self.remote = _address(transport.get_extra_info("peername"))
        runner = self._runner
        refused = "closing" if runner._closing else runner._table.admit(self.remote)
        if refused is not None:
            logger.info("%s from %s refused: %s", self.kind, format_address(self.remote), refused)
            transport.abort()
            return
        runner._connections[self.key] = self
        transport.set_write_buffer_limits(high=runner.max_buffer)
        now = runner._loop.time()
        self._clock = StreamClock(now, runner._timeouts)
        self._arm()
        logger.debug("%s connection %s -> %s", self.kind, self.remote, self.local)

    def data_received(self, data: bytes) -> None:
        runner = self._runner
        frames = 0
        if self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        total = len(data)
        offset = 0
        view = memoryview(data)
        while offset < total and self.transport is not None and not self.transport.is_closing():
            try:
                length = stream_frame_length(view[offset : offset + 4], runner.rfc5766_channels)
            except DecodeError as exc:
                logger.debug("%s from %s: %s; closing", self.kind, format_address(self.remote), exc)
                self.close()
                return
            if length is None or offset + length > total:
                if length is not None and length > runner.max_buffer:
                    logger.debug(
                        "%s from %s: a %d-byte frame is over the %d-byte limit; closing",
                        self.kind,
                        format_address(self.remote),
                        length,
                        runner.max_buffer,
                    )
                    self.close()
                    return
                break
            frame = data if length == total else data[offset : offset + length]
            offset += length
            frames += 1
            runner._received(frame, self.remote, self.local, self)
            if self._handed_over(data, offset):
                return
        if offset < total:  # part of a frame no longer than max_buffer
            self._buffer += view[offset:]
        clock = self._clock
        if clock is not None:
            clock.received(runner._loop.time(), frames, offset < total)
            deadline = clock.deadline
            if deadline is not None and deadline < self._armed_at:  # a message began
                self._arm()

    def _handed_over(self, data: bytes, offset: int) -> bool:
        """After a frame: True when the connection stopped carrying frames (a subclass
        then takes ``data[offset:]`` as it is)."""
        return False

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def pause_writing(self) -> None:
        # The peer does not read its answers: stop reading its requests until it does.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _arm(self) -> None:
        """Look at the deadlines at the earliest one. Re-armed only when that moves
        earlier (a message began): a deadline pushed later is found when the timer
        fires, so a busy connection costs no timer per message."""
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        deadline = self._clock.deadline if self._clock is not None else None
        if deadline is not None:
            self._armed_at = deadline
            self._idle_handle = self._runner._loop.call_at(deadline, self._check_deadlines)

    def _check_deadlines(self) -> None:
        self._idle_handle = None
        clock = self._clock
        if clock is None or self.transport is None:
            return
        runner = self._runner
        now = runner._loop.time()
        expired = clock.expired(now)
        if expired == "idle" and runner._connection_in_use(self.remote, self.local):
            clock.in_use(now)
            expired = clock.expired(now)
        if expired is None:
            self._arm()
            return
        runner._closed_by_deadline[expired] += 1
        logger.debug(
            "%s from %s: %s; closing",
            self.kind,
            format_address(self.remote),
            "message too slow" if expired == "message" else "idle",
        )
        # A stalled peer may not read either: do not wait for it to take our answers.
        if self.transport.get_write_buffer_size():
            self.abort()
        else:
            self.close()

    def stop_deadlines(self) -> None:
        """No deadlines any more (a TURN data connection lives as long as its peer's)."""
        if self._clock is not None:
            self._clock.stop()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if self._runner._connections.get(self.key) is self:
            del self._runner._connections[self.key]
            self._runner._table.release(self.remote)
            self._runner._connection_closed(self.remote, self.local)
        self._buffer.clear()
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)


class StunServerRunner:
    """Serves one core on a set of listeners; see the module docstring.

    Create it in a coroutine (it takes the running loop).
    ``await runner.start()`` binds everything (raising OSError, with nothing
    left open, when an address cannot be bound); ``await runner.close()``
    stops accepting, closes the connections and the sockets. Also usable as
    ``async with runner:``.
    """

    def __init__(
        self,
        server: Machine,
        listeners: Sequence[Listener],
        **options: Unpack[RunnerOptions],
    ) -> None:
        self.max_connections = options.get("max_connections", MAX_CONNECTIONS)
        self.source_connections = options.get("source_connections", SOURCE_CONNECTIONS)
        self.message_timeout = options.get("message_timeout", MESSAGE_TIMEOUT)
        self.idle_timeout = options.get("idle_timeout", IDLE_TIMEOUT)
        self.max_buffer = options.get("max_buffer", MAX_BUFFER)
        self.tls_handshake_timeout = options.get("tls_handshake_timeout", TLS_HANDSHAKE_TIMEOUT)
        self.reuse_port = options.get("reuse_port", False)
        unknown = options.keys() - RunnerOptions.__annotations__.keys()
        if unknown:
            raise TypeError(f"unknown runner options: {', '.join(sorted(unknown))}")
        if self.max_connections < 1 or self.idle_timeout <= 0 or self.max_buffer < 1:
            raise ValueError("max_connections, idle_timeout and max_buffer must be positive")
        self._table = ConnectionTable(self.max_connections, self.source_connections)
        self._timeouts = StreamTimeouts(message=self.message_timeout, idle=self.idle_timeout)
        self._closed_by_deadline = {"message": 0, "idle": 0}
        if self.reuse_port:
            require_reuse_port("reuse_port (processes serving the same ports)")
        self.server = server
        self.listeners = list(listeners)
        #: Frame RFC 5766 ChannelData (numbers up to 0x7FFF) on streams (a TURN server).
        self.rfc5766_channels = bool(getattr(server, "rfc5766_channels", False))
        self._loop = asyncio.get_running_loop()
        self._udp: dict[Address, _DatagramEndpoint] = {}
        self._udp_list: list[_DatagramEndpoint] = []
        self._stream_servers: list[tuple[Transport, asyncio.Server]] = []
        self._bound: list[tuple[Transport, _DatagramEndpoint | asyncio.Server]] = []
        self._connections: dict[tuple[Address, Address], _StreamConnection] = {}
        self._driver = _CoreDriver(self)
        self._started = False
        self._closing = False

    # -- lifecycle

    async def start(self) -> None:
        """Bind every listener (and the RFC 5780 addresses); raise OSError if one fails."""
        if self._started:
            raise RuntimeError("runner already started")
        self._started = True
        try:
            for listener in self.listeners:
                if listener.transport == "udp":
                    for sockaddr in await self._resolve(listener.host, listener.port):
                        await self._bind_udp(sockaddr, None)
                else:
                    await self._listen_stream(listener)
            locals_: list[Address] = list(getattr(self.server, "local_addresses", ()))
            if len(locals_) > 1:  # RFC 5780: every (address, port) pair answers over UDP
                for addr in locals_:
                    if addr[1] == 0:
                        raise ValueError(f"RFC 5780 address {format_address(addr)} needs a port")
                    if self._udp_endpoint(addr) is None:
                        sockaddr = (await self._resolve(addr[0], addr[1]))[0]
                        await self._bind_udp(sockaddr, addr)
        except BaseException:
            await self.close()
            raise
        self._arm_timer()
        for kind, addr in self.addresses:
            logger.info("listening on %s://%s", kind, format_address(addr))

    async def close(self) -> None:
        """Stop accepting, close every connection and socket, stop the timer."""
        if self._closing:
            return
        self._closing = True
        self._driver.close()
        for _, srv in self._stream_servers:
            srv.close()
        connections = list(self._connections.values())
        for connection in connections:
            connection.close()
        if connections:
            _, pending = await asyncio.wait([c.closed for c in connections], timeout=CLOSE_GRACE)
            for connection in connections:
                if not connection.closed.done():
                    connection.abort()
            if pending:
                await asyncio.wait(pending, timeout=CLOSE_GRACE)
        for _, srv in self._stream_servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), CLOSE_GRACE)
        for endpoint in self._udp_list:
            endpoint.close()
        self._stream_servers.clear()
        self._bound.clear()
        self._udp.clear()
        self._udp_list.clear()
        await asyncio.sleep(0)  # let the transports' close callbacks run

    async def __aenter__(self) -> StunServerRunner:
        if not self._started:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what is open

    @property
    def addresses(self) -> list[tuple[Transport, Address]]:
        """Every bound address as (transport, (host, port)), in listening order."""
        out: list[tuple[Transport, Address]] = []
        for kind, bound in self._bound:
            if isinstance(bound, _DatagramEndpoint):
                out.append((kind, bound.local))
            else:
                out.extend((kind, _address(s.getsockname())) for s in bound.sockets)
        return out

    @property
    def connection_count(self) -> int:
        """TCP and TLS connections open now."""
        return len(self._connections)

    def counters(self) -> dict[str, int]:
        """The core's ``counters()`` (when it has them) with the failures the driver
        caught added to ``internal_errors``: what ``/metrics`` serves."""
        collect = getattr(self.server, "counters", None)
        out: dict[str, int] = dict(collect()) if collect is not None else {}
        out["internal_errors"] = out.get("internal_errors", 0) + self._driver.failures.count
        out["tcp_refused_full"] = self._table.refused_full
        out["tcp_refused_source"] = self._table.refused_source
        out["tcp_closed_message"] = self._closed_by_deadline["message"]
        out["tcp_closed_idle"] = self._closed_by_deadline["idle"]
        return out

    # -- binding

    async def _resolve(self, host: str, port: int) -> list[tuple[Any, ...]]:
        infos = await self._loop.getaddrinfo(
            host or None, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
        )
        seen: list[tuple[Any, ...]] = []
        for family, _, _, _, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6) and sockaddr not in seen:
                seen.append(sockaddr)
        if not seen:
            raise OSError(f"{host!r} has no IPv4 or IPv6 address")
        return seen

    async def _bind_udp(self, sockaddr: tuple[Any, ...], local: Address | None) -> None:
        family = socket.AF_INET6 if ":" in sockaddr[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                # IPv6 only: "::" does not swallow IPv4 (whose clients would then
                # get IPv4-mapped XOR-MAPPED-ADDRESSes); bind 0.0.0.0 beside it.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setblocking(False)
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"cannot bind udp {format_address(_address(sockaddr))}: {exc.strerror}"
            ) from None
        enlarge_buffers(sock)  # every client's requests land here between two reads
        # The core's own spelling of an RFC 5780 address, so it recognises it.
        bound = local if local is not None else _address(sock.getsockname())
        endpoint = self._datagram_endpoint(sock, bound)
        try:
            await endpoint.start()
        except BaseException:
            endpoint.close()
            raise
        self._udp[bound] = endpoint
        self._udp_list.append(endpoint)
        self._bound.append(("udp", endpoint))

    async def _listen_stream(self, listener: Listener) -> None:
        kind = listener.transport
        try:
            srv = await self._loop.create_server(
                lambda: self._stream_connection(kind),
                listener.host or None,
                listener.port,
                ssl=listener.ssl,
                ssl_handshake_timeout=self.tls_handshake_timeout if listener.ssl else None,
                reuse_address=True,
                reuse_port=self.reuse_port or None,
            )
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {listener}: {exc.strerror}") from None
        self._stream_servers.append((kind, srv))
        self._bound.append((kind, srv))

    def _stream_connection(self, kind: Transport) -> _StreamConnection:
        """The protocol of one TCP/TLS connection (a subclass may frame it another way)."""
        return _StreamConnection(self, kind)

    def _datagram_endpoint(self, sock: socket.socket, local: Address) -> _DatagramEndpoint:
        """The reader of one bound UDP socket (a subclass may read it another way)."""
        return _DatagramEndpoint(self, sock, local)

    def _udp_endpoint(self, addr: Address) -> _DatagramEndpoint | None:
        endpoint = self._udp.get(addr)
        if endpoint is not None:
            return endpoint
        for bound, candidate in self._udp.items():
            if _same_address(bound, addr):
                return candidate
        return None

    # -- the data path

    def _received(
        self,
        data: bytes,
        addr: Address,
        local: Address,
        via: _DatagramEndpoint | _StreamConnection,
    ) -> None:
        driver = self._driver
        driver.via = via
        driver.feed(
            data, addr, self._loop.time(), local=local, reliable=isinstance(via, _StreamConnection)
        )
        driver.via = None

    def _pumped(self) -> None:
        """After each pump of the core (a subclass does what else the core asks for)."""

    def _send_one(
        self, transmit: Transmit, via: _DatagramEndpoint | _StreamConnection | None
    ) -> None:
        source = transmit.source
        addr = transmit.addr
        # The answer to what just arrived goes back the way it came.
        if via is not None and (source is None or source == via.local):
            if isinstance(via, _DatagramEndpoint):
                via.sendto(transmit.data, addr)
                return
            if addr == via.remote:
                via.write(transmit.data)
                return
        if source is not None:
            connection = self._connections.get((source, addr))
            if connection is not None:
                connection.write(transmit.data)
                return
            endpoint = self._udp_endpoint(source)
        else:
            endpoint = self._default_udp(addr)
        if endpoint is None or not endpoint.open:
            logger.debug(
                "dropped %d bytes to %s: no connection or socket from %s",
                len(transmit.data),
                format_address(addr),
                source and format_address(source),
            )
            return
        endpoint.sendto(transmit.data, addr)

    def _default_udp(self, addr: Address) -> _DatagramEndpoint | None:
        """The first UDP socket of addr's family, for a Transmit without a source."""
        want_v6 = ":" in addr[0]
        for endpoint in self._udp_list:
            if (":" in endpoint.local[0]) == want_v6:
                return endpoint
        return None

    def _connection_in_use(self, remote: Address, local: Address) -> bool:
        """Whether the core still holds state on a connection (then it is not idle)."""
        in_use = getattr(self.server, "connection_in_use", None)
        if in_use is None:
            return False
        try:
            return bool(in_use(remote, local))
        except Exception as exc:
            self._driver.report(exc, f"connection_in_use({format_address(remote)})")
            return False

    def _connection_closed(self, remote: Address, local: Address) -> None:
        notify = getattr(self.server, "connection_lost", None)
        if notify is None:
            return
        try:
            notify(remote, local)
        except Exception as exc:
            self._driver.report(exc, f"connection_lost({format_address(remote)})")
        self._driver.pump()

    def _arm_timer(self) -> None:
        """Arm the core's timer without a pump (once bound, before any input)."""
        self._driver.arm_timer()


class _CoreDriver(MachineDriver[Machine]):
    """The runner's core on the loop: an answer goes back the way its request came."""

    logger = logger

    def __init__(self, runner: StunServerRunner) -> None:
        super().__init__(runner.server)
        self._runner = runner
        #: The socket or connection of the datagram being fed, while it is.
        self.via: _DatagramEndpoint | _StreamConnection | None = None

    def transmit(self, transmit: Transmit) -> None:
        self._runner._send_one(transmit, self.via)

    def _pump(self, now: float) -> None:
        super()._pump(now)
        self._runner._pumped()


async def serve_stun(
    server: Machine,
    listeners: Sequence[Listener],
    **options: Unpack[RunnerOptions],
) -> StunServerRunner:
    """Start serving ``server`` on ``listeners``; return the running runner (close it)."""
    runner = StunServerRunner(server, listeners, **options)
    await runner.start()
    return runner
