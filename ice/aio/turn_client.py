"""asyncio TURN client: the sans-I/O `TurnSession` on a real socket.

A relayed transport address that works like a datagram socket::

    async with await TurnClient.allocate(
        "turn:turn.example.org?transport=tcp", "alice", "secret"
    ) as relay:
        relay.relayed_address, relay.mapped_address
        await relay.sendto(b"hello", ("198.51.100.7", 4000))
        data, peer = await relay.recvfrom()

or as an `asyncio.DatagramTransport` for code that wants one::

    transport = relay.as_datagram_transport(protocol)   # protocol.datagram_received(data, peer)
    transport.sendto(data, peer); transport.get_extra_info("sockname")  # the relayed address

The server is a ``turn:``/``turns:`` URI (a `StunUri` or its text), or a
``(host, port)`` tuple (UDP, or TLS when ``ssl`` is given); ``turns:`` is TLS
over TCP, verified against the system CAs unless ``ssl`` passes a context.
A URI with a host name and no port is looked up with DNS SRV first
(`ice.aio.resolve`); a name resolves to its A and AAAA addresses, tried in
order (raced over TCP/TLS, RFC 8305) until one grants the allocation or
refuses it with an error code.

The adapter is thin. The machine (`ice.turn.client.TurnSession`) allocates,
answers the 401/438 challenges, refreshes the allocation, its permissions and
channels, installs a permission before the first datagram to a peer and binds
a channel after ``channel_after`` datagrams (0: never by itself); this module
opens the socket, and a `ice.aio.driver.MachineDriver` feeds the machine what
arrives (but for ChannelData on a known channel, unwrapped on the spot), sends
what it wants sent, hands its events to the client and runs its one timer. On
a 300 redirect the driver is paused while a socket to the alternate server
opens, and the machine carries on there.

Errors: `ice.TurnError` (code and reason; code 0 when no answer came, or the
connection to the server was lost) when the allocation is refused, a
permission or channel is refused, or the allocation is lost; OSError when no
socket could be opened. Once the allocation is lost, `recvfrom` returns what
was already received and then raises the TurnError, as do `sendto` and the
others; after `close` they raise ConnectionAbortedError. `events` yields the
machine's events (`Refreshed`, `AllocationLost`, `PermissionFailed`, ...).

Received datagrams wait in a bounded `asyncio.Queue` (``queue_size``); when
it is full the oldest one is dropped and counted in `dropped`, so a slow
reader sees the newest traffic, as with a socket buffer that overflows.

A TCP allocation (RFC 6062: ``relay_transport="tcp"``, over a ``tcp`` or
``tls`` connection to the server) relays TCP connections, each as a pair of
asyncio streams carrying the peer's bytes::

    async with await TurnClient.allocate(uri, "alice", "secret", relay_transport="tcp") as relay:
        reader, writer = await relay.connect(("198.51.100.7", 80))   # outgoing
        await relay.create_permission("203.0.113.9")                  # then incoming:
        peer, reader, writer = await relay.accept()

Each is bound (ConnectionBind) on a new connection to the server, made like
the first one (same address, TLS settings and credentials); the streams are
then handed over as they are, and closed when the client is.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import ssl as _ssl
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

from ice._codec import stream_frame_length
from ice._errors import DecodeError, TurnError
from ice.aio.driver import MachineDriver
from ice.aio.resolve import each_server
from ice.aio.transport import (
    ClientChannel,
    Endpoint,
    Target,
    address_family,
    connect_any,
    endpoint_for,
    open_channel,
)
from ice.aio.turn_datagram import TurnDatagramTransport
from ice.machine import Address, Transmit
from ice.stun.client_auth import LongTermCredentials
from ice.stun.transaction import TransactionTable
from ice.stun.uri import format_address
from ice.turn.client import AllocationOptions, TurnSession
from ice.turn.data_connection import TurnDataConnection

if TYPE_CHECKING:
    from ice.aio.resolve import DnsResolver
from ice.turn.events import (
    Allocated,
    AllocationFailed,
    AllocationLost,
    BindFailed,
    Bound,
    ChannelBindFailed,
    ChannelBound,
    Closed,
    ConnectionAttempt,
    DataReceived,
    PeerConnected,
    PeerConnectFailed,
    PermissionFailed,
    PermissionInstalled,
    Redirected,
    TurnEvent,
)

#: Client transport addresses tried after 437 Allocation Mismatch (RFC 8656 7.4: three).
ALLOCATION_MISMATCH_TRIES = 3

__all__ = [
    "ATTEMPT_TIMEOUT",
    "CLOSE_TIMEOUT",
    "DEFAULT_QUEUE_SIZE",
    "TurnClient",
]

logger = logging.getLogger("ice.aio.turn_client")

#: Received datagrams held for `TurnClient.recvfrom` before the oldest is dropped.
DEFAULT_QUEUE_SIZE = 1024
#: How long `TurnClient.close` waits for the answer to its Refresh (LIFETIME 0)
#: and then for a stream to shut down.
CLOSE_TIMEOUT = 3.0
#: Events kept for `TurnClient.events` before the oldest is dropped.
_EVENTS_KEPT = 256
#: ConnectionAttempts kept for `TurnClient.accept` before the oldest is dropped.
_ATTEMPTS_KEPT = 64
#: RFC 6062 5.3: the server closes a peer's connection not bound within 30 s;
#: `accept` skips attempts older than this.
ATTEMPT_TIMEOUT = 30.0
_FINAL = (Closed, AllocationLost, AllocationFailed)


def _future_done(future: asyncio.Future[Any], exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
        future.exception()  # retrieved: nobody may be waiting for it


def _ip(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"a TURN peer is an IP address, not {host!r}") from None


class TurnClient:
    """One allocation on a TURN server, used like a datagram socket. See the module doc."""

    def __init__(
        self, machine: TurnSession, endpoint: Endpoint, local_addr: Address | None, queue: int
    ) -> None:
        """Use `allocate`, which also opens the socket and waits for the allocation."""
        self._loop = asyncio.get_running_loop()
        self.machine = machine
        self._endpoint = endpoint
        # the name a TLS certificate must carry: the target's host name (None for an IP
        # literal: its IP), or an ALTERNATE-DOMAIN after a redirect
        self._tls_name = endpoint.host if address_family(endpoint.host) is None else None
        self._local_addr = local_addr
        self._channel: ClientChannel | None = None
        self._generation = 0  # of the socket: errors from one that was replaced are ignored
        self._driver = _SessionDriver(self)
        self._inbox: asyncio.Queue[tuple[bytes, Address] | None] = asyncio.Queue(queue)
        self._events: asyncio.Queue[TurnEvent] = asyncio.Queue(_EVENTS_KEPT)
        self._final_posted = False
        self._final_taken = False
        self._allocated: asyncio.Future[None] = self._loop.create_future()
        self._released: asyncio.Future[None] = self._loop.create_future()
        # waiters only: which permissions and channels the server holds, the machine says
        self._permissions: dict[str, asyncio.Future[None]] = {}
        self._channel_waiters: dict[int, asyncio.Future[None]] = {}
        self._connects: dict[bytes, asyncio.Future[int]] = {}  # by Connect transaction ID
        # (when it came, the attempt); None: the end
        self._attempts: asyncio.Queue[tuple[float, ConnectionAttempt] | None] = asyncio.Queue(
            _ATTEMPTS_KEPT
        )
        self._data_writers: set[asyncio.StreamWriter] = set()
        self._failure: Exception | None = None
        self._closing: asyncio.Future[None] | None = None
        self._transport: TurnDatagramTransport | None = None
        self.allocation: Allocated | None = None
        #: Datagrams dropped because `recvfrom` did not keep up (the queue was full).
        self.dropped = 0

    @classmethod
    async def allocate(
        cls,
        target: Target,
        username: str | None = None,
        password: str | None = None,
        *,
        credentials: LongTermCredentials | None = None,
        transport: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        local_addr: Address | None = None,
        timeout: float | None = None,
        rto: float = 0.5,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        resolver: DnsResolver = None,
        **options: Unpack[AllocationOptions],
    ) -> TurnClient:
        """Open a socket to ``target`` and allocate a relayed address on it.

        Give ``username`` and ``password``, or ``credentials`` (its username,
        password and algorithm choices are copied: each allocation keeps its
        own realm and nonce). ``relay_transport="tcp"`` asks for a TCP allocation
        (RFC 6062; the server must be reached over tcp or tls), used through
        `connect` and `accept`. ``family`` 6 asks for an IPv6 relayed address
        (RFC 6156), ``dual_stack`` for an IPv6 one besides the IPv4 one (RFC
        8656); ``permission_lifetime``/``channel_lifetime`` are the server's
        (300 s and 600 s by the RFC), refreshed before they run out while in
        use. ``timeout`` bounds the whole call; without it an unanswered
        Allocate fails after the transaction's 39.5 s (``rto`` 0.5 s).
        A URI with a host name and no port is looked up with DNS SRV first
        (``_turn._udp``, ``_turn._tcp``, ``_turns._tcp``), asking ``resolver``
        (a `dns.asyncresolver.Resolver` or "HOST:PORT"; None: the system's
        DNS); see `ice.aio.resolve`. The next server or address is tried when
        one cannot be reached (timeout, connection refused, TLS failure), not
        when it answers with an error (401 after the challenge, 437, 508...).
        Raises TurnError (refused, code 0 if not answered), OSError, ValueError.
        """
        if credentials is None:
            if username is None or password is None:
                raise TypeError("give a username and a password, or credentials=")
            credentials = LongTermCredentials(username, password)
        elif username is not None or password is not None:
            raise TypeError("give a username and a password, or credentials=, not both")
        endpoint = endpoint_for(target, transport, ssl)
        relay_transport = options.get("relay_transport", "udp")
        if relay_transport not in ("udp", "tcp"):
            raise ValueError(f"relay_transport must be udp or tcp, not {relay_transport!r}")
        if relay_transport == "tcp" and endpoint.kind == "udp":
            raise ValueError("a TCP allocation needs a tcp or tls connection to the server")
        settings = credentials

        def new_client(server: Address) -> TurnClient:
            machine = TurnSession(
                server,
                LongTermCredentials(
                    settings.username,
                    settings.password,
                    settings.algorithms,
                    settings.allow_userhash,
                ),
                reliable=endpoint.kind != "udp",
                table=TransactionTable(rto=rto, min_rto=min(rto, 0.5)),
                **options,
            )
            return cls(machine, endpoint, local_addr, queue_size)

        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                local_host = local_addr[0] if local_addr else None
                errors: list[Exception] = []
                async for _, groups in each_server(
                    endpoint, resolver, errors, local_host=local_host
                ):
                    for group in groups:
                        client = await _allocate_on(new_client, group, endpoint, local_addr, errors)
                        if client is not None:
                            return client
                raise errors[0] if errors else OSError(f"no server for {endpoint}")
        except TimeoutError:
            if not deadline.expired():
                raise
            raise TurnError(0, f"no allocation from {endpoint} within {timeout:g} s") from None

    async def _start(self, server: Address, sock: socket.socket | None = None) -> None:
        try:
            await self._connect(server, sock)
            now = self._loop.time()
            self.machine.allocate(now)
            self._driver.pump(now)
            await self._allocated
        except BaseException:
            self.abort()
            raise

    async def _connect(self, server: Address, sock: socket.socket | None = None) -> None:
        self._generation += 1
        endpoint, local = self._endpoint, self._local_addr
        if local is not None and self._generation > 1:
            local = (local[0], 0)  # the old socket may not have let go of the port yet
        self._channel = await open_channel(
            server,
            endpoint.kind,
            on_data=self._on_data,
            on_error=functools.partial(self._on_error, self._generation),
            local_addr=local,
            ssl=endpoint.ssl,
            server_hostname=self._tls_name,
            connect_udp=True,
            sock=sock,
        )

    # -- the allocation

    @property
    def relayed_address(self) -> Address:
        """The (first) relayed transport address: where peers send to reach us."""
        return self.machine.relayed_addresses[0]

    @property
    def relayed_addresses(self) -> tuple[Address, ...]:
        """Every relayed address (IPv4 then IPv6 for a dual allocation)."""
        return self.machine.relayed_addresses

    @property
    def mapped_address(self) -> Address | None:
        """Our address as the server saw it (XOR-MAPPED-ADDRESS)."""
        return self.machine.mapped_address

    @property
    def lifetime(self) -> int:
        """The lifetime the server granted last, in seconds."""
        return self.machine.lifetime

    @property
    def server(self) -> Address:
        """The server's (host, port): the alternate one after a redirect."""
        return self.machine.server

    @property
    def transport(self) -> str:
        """ "udp", "tcp" or "tls": how we reach the server."""
        return self._endpoint.kind

    @property
    def relay_transport(self) -> str:
        """ "udp" (datagrams: `sendto`, `recvfrom`) or "tcp" (connections: `connect`, `accept`)."""
        return self.machine.relay_transport

    @property
    def local_address(self) -> Address:
        """The (host, port) of our socket to the server."""
        return self._channel.local_address if self._channel is not None else ("", 0)

    @property
    def closed(self) -> bool:
        return self._failure is not None

    # -- datagrams

    async def sendto(self, data: bytes, peer: Address) -> None:
        """Relay ``data`` to ``peer`` (an IP address and port).

        The first datagram to a peer's IP waits until its permission is
        installed and raises TurnError when the server refuses it (403, ...).
        """
        if self._failure is not None:
            raise self._failure
        frame = self.machine.encapsulate(data, peer)
        if frame is not None and self._send_frame(frame):
            return
        self._require_datagrams()
        if not self.machine.has_permission(peer[0]):
            await self._send_first(data, peer)
            return
        now = self._loop.time()
        self.machine.send(data, peer, now)
        self._driver.pump(now)

    def send_nowait(self, data: bytes, peer: Address) -> None:
        """Relay ``data`` to ``peer`` without waiting for anything (what
        `TurnDatagramTransport.sendto` does): on a bound channel straight onto the
        wire, else through the machine, which holds it until the peer's permission
        is installed (a refusal is a `PermissionFailed` event, not an exception).
        Raises as `sendto` does once the allocation is lost or the client closed,
        and ValueError for a peer that is not an IP address."""
        if self._failure is not None:
            raise self._failure
        machine = self.machine
        frame = machine.encapsulate(data, peer)
        if frame is not None and self._send_frame(frame):
            return
        host = peer[0]
        peer = (host, peer[1]) if machine.has_permission(host) else (_ip(host), peer[1])
        now = self._loop.time()
        machine.send(data, peer, now)
        self._driver.pump(now)

    def _send_frame(self, frame: bytes) -> bool:
        """Put a ChannelData frame from the machine's fast path on the wire."""
        channel = self._channel
        if channel is None or self._driver.paused:  # paused: a new socket is opening
            return False
        try:
            channel.send(frame, self.machine.server)
        except ConnectionError as exc:
            self._on_error(self._generation, exc)
        return True

    async def _send_first(self, data: bytes, peer: Address) -> None:
        ip = _ip(peer[0])
        now = self._loop.time()
        waiter = self._permission(ip)
        self.machine.send(data, peer, now)
        self._driver.pump(now)
        await asyncio.shield(waiter)

    async def recvfrom(self) -> tuple[bytes, Address]:
        """The next datagram from a peer and the peer's (host, port)."""
        item = await self._inbox.get()
        if item is None:  # the end: keep it there for the next reader
            self._inbox.put_nowait(None)
            assert self._failure is not None
            raise self._failure
        return item

    # -- connections (a TCP allocation)

    async def connect(self, peer: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Have the server connect to ``peer`` (an IP address and port) and return the
        connection's streams, bound on a new connection to the server.

        Raises TurnError: 446 (a connection to ``peer`` exists or is being
        made), 447 (the server could not connect), 403 (forbidden), 0 (no
        answer; a UDP allocation), or the code ConnectionBind failed with.
        """
        self._require_allocation()
        peer = (_ip(peer[0]), peer[1])
        now = self._loop.time()
        transaction_id = self.machine.connect(peer, now)
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._connects[transaction_id] = waiter
        self._driver.pump(now)
        connection_id = await asyncio.shield(waiter)
        return await self._bind(connection_id)

    async def accept(self) -> tuple[Address, asyncio.StreamReader, asyncio.StreamWriter]:
        """Wait for a peer to connect to the relayed address; return it and the streams.

        Only peers with a permission (`create_permission`) get through. The
        connection is bound as it is accepted, within the 30 s the server waits;
        raises TurnError when that fails (the next call takes the next peer)
        and once the allocation is gone.
        """
        self._require_allocation()
        if self.machine.relay_transport != "tcp":
            raise TurnError(0, "accept needs a TCP allocation (relay_transport='tcp')")
        while True:
            item = await self._attempts.get()
            if item is None:  # the end: keep it there for the next caller
                self._attempts.put_nowait(None)
                assert self._failure is not None
                raise self._failure
            came, attempt = item
            if self._loop.time() - came < ATTEMPT_TIMEOUT:
                break
            logger.debug("ConnectionAttempt from %s expired unaccepted", attempt.peer)
        reader, writer = await self._bind(attempt.connection_id)
        return attempt.peer, reader, writer

    async def _bind(self, connection_id: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a data connection to the server and bind it to ``connection_id``."""
        server, ssl = self.machine.server, self._endpoint.ssl
        local = (self._local_addr[0], 0) if self._local_addr is not None else None
        reader, writer = await asyncio.open_connection(
            server[0],
            server[1],
            family=address_family(server[0]) or 0,
            ssl=ssl,
            server_hostname=(self._tls_name or server[0].partition("%")[0]) if ssl else None,
            local_addr=local,
        )
        try:
            await _run_bind(self.machine.data_connection(connection_id), reader, writer)
            self._require_allocation()  # lost while binding: the server has closed it
        except BaseException:
            writer.transport.abort()
            raise
        self._data_writers = {w for w in self._data_writers if not w.is_closing()}
        self._data_writers.add(writer)
        return reader, writer

    async def create_permission(self, *peers: Address | str) -> None:
        """Install permissions for these peers' IPs (one CreatePermission); raise TurnError."""
        self._require_allocation()
        ips = [_ip(peer if isinstance(peer, str) else peer[0]) for peer in peers]
        waiters = [self._permission(ip, force=True) for ip in ips]
        now = self._loop.time()
        self.machine.create_permission(ips, now)
        self._driver.pump(now)
        for waiter in waiters:
            await asyncio.shield(waiter)

    async def bind_channel(self, peer: Address) -> int:
        """Bind a channel to ``peer`` (or find the one it has); return its number."""
        self._require_allocation()
        now = self._loop.time()
        peer = (_ip(peer[0]), peer[1])
        number = self.machine.bind_channel(peer, now)
        if self.machine.channel_for(peer) == number:
            return number
        waiter = self._channel_waiters.get(number)
        if waiter is None:
            waiter = self._channel_waiters[number] = self._loop.create_future()
        self._driver.pump(now)
        await asyncio.shield(waiter)
        return number

    async def events(self) -> AsyncIterator[TurnEvent]:
        """The machine's events (not DataReceived) until the last one: `Closed`,
        `AllocationLost` or `AllocationFailed`.

        For one reader at a time; the last 256 are kept for a reader that comes late.
        """
        while not (self._final_taken and self._events.empty()):
            event = await self._events.get()
            self._final_taken = self._final_taken or isinstance(event, _FINAL)
            yield event

    def _permission(self, ip: str, force: bool = False) -> asyncio.Future[None]:
        waiter = self._permissions.get(ip)
        if waiter is None:
            waiter = self._loop.create_future()
            if not force and self.machine.has_permission(ip):
                waiter.set_result(None)
            else:
                self._permissions[ip] = waiter
        return waiter

    def _require_allocation(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _require_datagrams(self) -> None:
        if self.machine.relay_transport != "udp":
            raise TurnError(0, "a TCP allocation relays connections (connect/accept)")

    # -- closing

    async def close(self) -> None:
        """Release the allocation (Refresh with LIFETIME 0), then close the socket."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = self._loop.create_future()
        try:
            if self._failure is None and self.machine.state == "allocated":
                now = self._loop.time()
                self.machine.close(now)
                self._driver.pump(now)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await asyncio.shield(self._released)
        finally:
            self._shutdown(ConnectionAbortedError("the TURN client is closed"), None)
            channel = self._channel
            if channel is not None:
                channel.close()
                try:
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await channel.wait_closed()
                except TimeoutError:
                    channel.abort()
            self._closing.set_result(None)

    def abort(self) -> None:
        """Close the socket now, without releasing the allocation (it times out)."""
        self._shutdown(ConnectionAbortedError("the TURN client is closed"), None)
        if self._channel is not None:
            self._channel.abort()

    async def __aenter__(self) -> TurnClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def as_datagram_transport(self, protocol: asyncio.DatagramProtocol) -> TurnDatagramTransport:
        """Deliver datagrams to ``protocol`` instead of `recvfrom`; see `TurnDatagramTransport`."""
        if self._transport is not None:
            raise RuntimeError("this TurnClient already has a datagram transport")
        self._require_datagrams()
        self._transport = TurnDatagramTransport(self, protocol)
        while not self._inbox.empty():  # what came before goes to the protocol first
            item = self._inbox.get_nowait()
            if item is not None:
                self._loop.call_soon(protocol.datagram_received, *item)
        return self._transport

    # -- driving the machine

    def _on_data(self, data: bytes, addr: Address) -> None:
        # The socket is connected to the server (or is a stream from it), so anything
        # that arrives is the server's: ChannelData on a known channel takes the
        # machine's fast path, the rest goes through its events.
        got = self.machine.decapsulate(data)
        if got is not None:
            self._deliver(*got)
            return
        self._driver.feed(data, addr, self._loop.time())

    def _on_error(self, generation: int, exc: Exception) -> None:
        """The socket failed (an ICMP error, a failed send) or the stream ended."""
        if generation != self._generation or self._failure is not None:
            return
        if self._closing is not None:  # a server may end the stream once it has released us
            logger.debug("%s %s while closing: %s", self.transport, self.server, exc)
            return
        if not isinstance(exc, OSError):  # DecodeError: the stream carries garbage
            exc = ConnectionError(str(exc))
        if not self._allocated.done():
            _future_done(self._allocated, exc)
        elif self._endpoint.kind == "udp" and not isinstance(exc, ConnectionRefusedError):
            logger.debug("udp %s: %s", format_address(self.server), exc)
        else:
            reason = f"the connection to the TURN server failed: {exc}"
            self._lose(AllocationLost(0, reason))

    def _transmit(self, transmit: Transmit) -> None:
        channel = self._channel
        if channel is None or self._failure is not None:
            return
        try:
            channel.send(transmit.data, transmit.addr)
        except ConnectionError as exc:
            self._on_error(self._generation, exc)

    def _dispatch(self, event: TurnEvent) -> None:
        if type(event) is DataReceived:
            self._deliver(event.data, event.peer)
            return
        if isinstance(event, Allocated):
            self.allocation = event
            _future_done(self._allocated)
        elif isinstance(event, AllocationFailed):
            _future_done(self._allocated, TurnError(event.code, event.reason))
        elif isinstance(event, Redirected):
            if event.domain is not None:
                self._tls_name = event.domain  # RFC 8489 14.16: check the new certificate with it
            self._redirect(event.server)
        elif isinstance(event, AllocationLost):
            self._lose(event)
            return
        elif isinstance(event, Closed):
            _future_done(self._released)
        elif isinstance(event, PermissionInstalled):
            for ip in event.peers:
                self._settle(self._permissions.pop(ip, None))
        elif isinstance(event, ChannelBound):
            self._settle(self._permissions.pop(event.peer[0], None))  # installed by it too
            self._settle(self._channel_waiters.pop(event.channel, None))
        elif isinstance(event, PermissionFailed | ChannelBindFailed):
            error = TurnError(event.code, event.reason)
            if isinstance(event, PermissionFailed):
                for ip in event.peers:
                    self._settle(self._permissions.pop(ip, None), error)
            else:
                self._settle(self._channel_waiters.pop(event.channel, None), error)
            if self._transport is not None:
                self._transport._protocol.error_received(error)
        elif isinstance(event, PeerConnected | PeerConnectFailed):
            waiter = self._connects.pop(event.transaction_id, None)
            if waiter is not None and not waiter.done():
                if isinstance(event, PeerConnected):
                    waiter.set_result(event.connection_id)
                else:
                    _future_done(waiter, TurnError(event.code, event.reason))
        elif isinstance(event, ConnectionAttempt):
            if self._attempts.full():
                self._attempts.get_nowait()
            self._attempts.put_nowait((self._loop.time(), event))
        self._post(event)

    def _deliver(self, data: bytes, peer: Address) -> None:
        if self._transport is not None:
            self._transport._protocol.datagram_received(data, peer)
            return
        if self._inbox.full():
            self._inbox.get_nowait()
            self.dropped += 1
        self._inbox.put_nowait((data, peer))

    @staticmethod
    def _settle(waiter: asyncio.Future[None] | None, exc: Exception | None = None) -> None:
        if waiter is not None:
            _future_done(waiter, exc)

    def _post(self, event: TurnEvent) -> None:
        if self._final_posted:
            return
        self._final_posted = isinstance(event, _FINAL)
        if self._events.full():
            self._events.get_nowait()
        self._events.put_nowait(event)

    def _redirect(self, server: Address) -> None:
        """300 ALTERNATE-SERVER: the machine re-sends its Allocate to ``server``."""
        logger.info("redirected to %s %s", self.transport, format_address(server))
        old = self._channel
        self._driver.paused = True  # the new Allocate waits in the machine for the new socket
        self._generation += 1  # the old socket's end is expected
        if old is not None:
            old.close()
        self._loop.create_task(self._reconnect(server)).add_done_callback(
            lambda task: None if task.cancelled() else task.exception()
        )

    async def _reconnect(self, server: Address) -> None:
        try:
            await self._connect(server)
        except OSError as exc:
            _future_done(self._allocated, exc)
            return
        finally:
            self._driver.paused = False
        self._driver.pump(self._loop.time())

    def _lose(self, event: AllocationLost) -> None:
        error = TurnError(event.code, event.reason)
        logger.warning("allocation on %s lost: %s", format_address(self.server), error)
        self._post(event)
        self._shutdown(error, error)
        if self._channel is not None:
            self._channel.close()

    def _shutdown(self, failure: Exception, lost: TurnError | None) -> None:
        """Fail everything waiting and stop the machine's timer; idempotent."""
        if self._failure is not None:
            return
        self._failure = failure
        _future_done(self._allocated, failure)
        _future_done(self._released)
        waiters: list[asyncio.Future[Any]] = [
            *self._permissions.values(),
            *self._channel_waiters.values(),
            *self._connects.values(),
        ]
        for waiter in waiters:
            _future_done(waiter, failure)
        self._permissions.clear()
        self._channel_waiters.clear()
        self._connects.clear()
        while not self._attempts.empty():  # the server closes them with the allocation
            self._attempts.get_nowait()
        self._attempts.put_nowait(None)
        for writer in self._data_writers:
            writer.close()
        self._data_writers.clear()
        self._driver.close()
        if self._inbox.full():
            self._inbox.get_nowait()
            self.dropped += 1
        self._inbox.put_nowait(None)
        self._post(Closed())
        if self._transport is not None:
            self._transport._lost(lost)


async def _allocate_on(
    new_client: Callable[[Address], TurnClient],
    addresses: list[Address],
    endpoint: Endpoint,
    local_addr: Address | None,
    errors: list[Exception],
) -> TurnClient | None:
    """An allocation on one of ``addresses`` (raced over TCP/TLS), or None with the
    failure added to ``errors`` when none could be reached; an error answer raises."""
    for addr in addresses if endpoint.kind == "udp" else addresses[:1]:
        for attempt in range(ALLOCATION_MISMATCH_TRIES):
            sock = None
            try:
                if endpoint.kind != "udp":
                    sock, addr = await connect_any(addresses, local_addr=local_addr)
                client = new_client(addr)
                await client._start(addr, sock)
                return client
            except TurnError as exc:
                # RFC 8656 7.4: 437 means the server still holds an
                # allocation for this 5-tuple (a port the OS just reused):
                # try from other client ports before giving up.
                mismatch = exc.code == 437 and local_addr is None
                if mismatch and attempt + 1 < ALLOCATION_MISMATCH_TRIES:
                    logger.debug("437 from %s; another local port", addr)
                    continue
                if exc.code != 0:
                    raise
                logger.info("no allocation from %s: %s", format_address(addr), exc)
                errors.append(exc)
            except OSError as exc:
                logger.info("no allocation from %s: %s", format_address(addr), exc)
                errors.append(exc)
            break
    return None


class _SessionDriver(MachineDriver[TurnSession]):
    """A client's session on the loop: sends on the client's socket, events to the client."""

    logger = logger

    def __init__(self, client: TurnClient) -> None:
        super().__init__(client.machine)
        self._client = client

    def transmit(self, transmit: Transmit) -> None:
        self._client._transmit(transmit)

    def event_received(self, event: TurnEvent) -> None:
        self._client._dispatch(event)


async def _read_stun(reader: asyncio.StreamReader) -> bytes:
    """One STUN message off a stream, not a byte more."""
    header = await reader.readexactly(4)
    length = stream_frame_length(header)
    assert length is not None
    return header + await reader.readexactly(length - 4)


async def _run_bind(
    machine: TurnDataConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Drive ConnectionBind on a new connection to the server; raise TurnError if refused.

    Reads exactly the answer, so whatever the peer sent after it stays in ``reader``.
    """
    loop = asyncio.get_running_loop()
    machine.bind(loop.time())
    while True:
        now = loop.time()
        for transmit in machine.datagrams_to_send(now):
            writer.write(transmit.data)
        event = machine.next_event()
        if isinstance(event, Bound):
            return
        if isinstance(event, BindFailed):
            raise TurnError(event.code, event.reason)
        timer = machine.get_timer()
        deadline = asyncio.timeout_at(timer)
        try:
            async with deadline:
                frame = await _read_stun(reader)
        except TimeoutError:
            if not deadline.expired():
                machine.connection_lost(loop.time(), "the data connection timed out")
            elif timer is not None:
                machine.handle_timer(max(timer, loop.time()))
            continue
        except asyncio.IncompleteReadError:
            machine.connection_lost(loop.time())  # closed by the server
            continue
        except (OSError, DecodeError) as exc:
            machine.connection_lost(loop.time(), f"the data connection failed: {exc}")
            continue
        machine.receive_datagram(frame, machine.server, loop.time())
