"""asyncio STUN client: the sans-I/O `StunClient` on a real socket.

One-shot helpers::

    response = await stun_request("stun:stun.example.org", Message.build(BINDING_REQUEST))
    host, port = await get_mapped_address("stuns:stun.example.org", timeout=5)
    allocate = await stun_request(
        "turn:turn.example.org", Message.build(ALLOCATE_REQUEST, RequestedTransport()),
        credentials=LongTermCredentials("alice", "secret"),
    )

and `AsyncStunClient`, which keeps one socket or connection open for many
requests (the CLI and NAT discovery use it)::

    async with await AsyncStunClient.open("stun:[::1]:3478", transport="tcp") as client:
        event = await client.transact(Message.build(BINDING_REQUEST))
        event.response, event.rtt, event.addr

The adapter is thin: it resolves the server name and opens the socket
(`ice.aio.transport`); being a `ice.aio.driver.MachineDriver`, it feeds what
arrives to the machine, sends what the machine wants sent, settles requests
from its events and runs its one timer. Retransmission, the 39.5 s
transaction timeout, credentials, the 401/438 retry and response checking
are the machine's.

Targets are a `StunUri`, a URI string or a ``(host, port)`` tuple. The
transport is the URI's (``stun:``/``turn:`` UDP, ``turn:?transport=tcp``
TCP, ``stuns:``/``turns:`` TLS) unless ``transport`` ("udp", "tcp", "tls")
says otherwise; a tuple means UDP, or TLS when ``ssl`` is given. TLS verifies
the server with ``ssl`` or else `ssl.create_default_context()`, against the
host name of the target. A URI with a host name and no port is looked up
with DNS SRV first (``resolver``; `ice.aio.resolve`); a name resolves to its
A and AAAA addresses, tried in order (only those of ``local_addr``'s family
when that is given), raced over TCP/TLS as RFC 8305 (happy eyeballs) says.

Outcomes: the success response; `ice.StunError` for an error response;
`ice.StunTimeoutError` when no answer came in the transaction's time (or
within ``timeout``); OSError (`ssl.SSLError`, `ConnectionRefusedError`, ...)
when no socket could be opened or it failed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from ice._codec import Message
from ice._errors import Error, StunError, StunTimeoutError
from ice.aio.driver import MachineDriver
from ice.aio.resolve import each_server
from ice.aio.transport import (
    ClientChannel,
    Endpoint,
    Target,
    TransportKind,
    address_family,
    connect_any,
    endpoint_for,
    open_channel,
)
from ice.attrs import MappedAddress, XorMappedAddress
from ice.constants import BINDING_REQUEST
from ice.machine import Address, Transmit
from ice.stun.client import StunClient
from ice.stun.client_auth import Credentials
from ice.stun.transaction import (
    TransactionEvent,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTable,
)
from ice.stun.uri import format_address

if TYPE_CHECKING:
    from ice.aio.resolve import DnsResolver

__all__ = [
    "AsyncStunClient",
    "StunTransaction",
    "Target",
    "get_mapped_address",
    "mapped_address",
    "stun_request",
    "stun_transaction",
]

logger = logging.getLogger("ice.aio.stun_client")

#: What a server can be given as.

#: How long closing waits for a TLS/TCP connection to shut down before aborting it.
CLOSE_TIMEOUT = 2.0


def _new_machine(
    credentials: Credentials | None, software: str | None, fingerprint: bool, rto: float
) -> StunClient:
    table = TransactionTable(rto=rto, min_rto=min(rto, 0.5))
    return StunClient(
        credentials=credentials, software=software, fingerprint=fingerprint, table=table
    )


class AsyncStunClient(MachineDriver[StunClient]):
    """A STUN client on one socket (UDP) or connection (TCP, TLS), for many requests.

    Create it with `open`; use it as an async context manager or call
    `close`. Requests may run concurrently. To bound a request in time, wrap
    it in `asyncio.timeout`: cancelling it abandons the transaction.
    """

    logger = logger

    def __init__(self, machine: StunClient, server: Address) -> None:
        """Use `open`, which also opens the socket; ``server`` is its (host, port)."""
        super().__init__(machine)
        self._loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
        self.server = server
        self._channel: ClientChannel | None = None
        self._pending: dict[bytes, asyncio.Future[TransactionSucceeded]] = {}
        self._failure: Exception | None = None

    @classmethod
    async def open(
        cls,
        target: Target,
        *,
        transport: str | None = None,
        credentials: Credentials | None = None,
        ssl: _ssl.SSLContext | None = None,
        local_addr: Address | None = None,
        software: str | None = None,
        fingerprint: bool = True,
        rto: float = 0.5,
        connect_udp: bool = False,
        resolver: DnsResolver = None,
    ) -> AsyncStunClient:
        """Resolve ``target`` and open a socket to the first address that accepts one.

        ``rto`` is the initial retransmission timeout (RFC 8489: 0.5 s); a
        transaction gives up after 79 RTO. ``connect_udp`` connects the UDP
        socket to the server, which then hears only the server's address but
        learns at once when the port is closed (ConnectionRefusedError); leave
        it off to send to other addresses too (RFC 5780 tests). A URI with a
        host name and no port is looked up with DNS SRV first
        (`ice.aio.resolve`), asking ``resolver`` (None: the system's DNS).
        """
        endpoint = endpoint_for(target, transport, ssl)
        errors: list[Exception] = []
        local_host = local_addr[0] if local_addr else None
        async for _, groups in each_server(endpoint, resolver, errors, local_host=local_host):
            for group in groups:
                try:
                    return await cls._open_to(
                        endpoint,
                        group,
                        local_addr=local_addr,
                        machine=_new_machine(credentials, software, fingerprint, rto),
                        connect_udp=connect_udp,
                    )
                except OSError as exc:
                    logger.info("cannot open %s to %s: %s", endpoint.kind, _text(group), exc)
                    errors.append(exc)
        raise errors[0] if errors else OSError(f"no server for {endpoint}")

    @classmethod
    async def _open_to(
        cls,
        endpoint: Endpoint,
        addresses: list[Address],
        *,
        local_addr: Address | None,
        machine: StunClient,
        connect_udp: bool,
    ) -> AsyncStunClient:
        addr, sock = addresses[0], None
        if endpoint.kind != "udp":
            sock, addr = await connect_any(addresses, local_addr=local_addr)
        client = cls(machine, addr)
        client._channel = await open_channel(
            addr,
            endpoint.kind,
            on_data=client._on_data,
            on_error=client._on_error,
            local_addr=local_addr,
            ssl=endpoint.ssl,
            server_hostname=endpoint.host if address_family(endpoint.host) is None else None,
            connect_udp=connect_udp,
            sock=sock,
        )
        return client

    # -- public surface

    @property
    def transport(self) -> TransportKind:
        """ "udp", "tcp" or "tls"."""
        return self._require_channel().kind

    @property
    def local_address(self) -> Address:
        """The (host, port) the socket is bound to."""
        return self._require_channel().local_address

    @property
    def remote_address(self) -> Address:
        """The server's (host, port) this client sends to."""
        return self.server

    @property
    def closed(self) -> bool:
        return self._channel is None or self._channel.is_closed

    async def transact(
        self, request: Message, *, addr: Address | None = None
    ) -> TransactionSucceeded:
        """Run one transaction; return the success event (response, source address, RTT).

        ``request`` is built without credentials, MESSAGE-INTEGRITY and
        FINGERPRINT (the machine adds them). ``addr`` sends it elsewhere
        than the server (UDP only). Raises StunError, StunTimeoutError, or
        OSError when the connection fails. Cancelling the call (for example
        with `asyncio.timeout`) abandons the transaction.
        """
        channel = self._require_channel()
        if self._failure is not None:
            raise ConnectionError(f"the {channel.kind} connection failed") from self._failure
        if channel.is_closed:
            raise ConnectionError("the STUN client is closed")
        if addr is None:
            addr = self.server
        elif channel.reliable and addr != self.server:
            raise ValueError(f"a {channel.kind} connection only reaches {self.server}")
        now = self._loop.time()
        tid = self.machine.request(request, addr, now, reliable=channel.reliable)
        future: asyncio.Future[TransactionSucceeded] = self._loop.create_future()
        self._pending[tid] = future
        try:
            self.pump(now)
            return await future
        finally:
            if self._pending.pop(tid, None) is not None:  # cancelled
                self.machine.cancel(tid)
                self.pump()

    async def request(self, request: Message, *, addr: Address | None = None) -> Message:
        """Run one transaction; return the success response (see `transact`)."""
        return (await self.transact(request, addr=addr)).response

    async def get_mapped_address(self) -> Address:
        """Send a Binding request; return the (host, port) the server saw."""
        return mapped_address(await self.request(Message.build(BINDING_REQUEST)))

    def close(self) -> None:
        """Close the socket; pending requests fail with ConnectionAbortedError."""
        self._fail_all(ConnectionAbortedError("the STUN client was closed"))
        super().close()
        if self._channel is not None:
            self._channel.close()

    async def wait_closed(self) -> None:
        """Wait until the socket is closed (a stream is aborted after CLOSE_TIMEOUT)."""
        if self._channel is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._channel.wait_closed()
        except TimeoutError:
            self._channel.abort()

    async def __aenter__(self) -> AsyncStunClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()

    # -- driving the machine

    def _require_channel(self) -> ClientChannel:
        if self._channel is None:
            raise RuntimeError("use AsyncStunClient.open() to create a client")
        return self._channel

    def _on_data(self, data: bytes, addr: Address) -> None:
        self.feed(data, addr, self._loop.time())

    def _on_error(self, exc: Exception) -> None:
        """The socket failed (ICMP error, failed send) or the stream ended."""
        if self._channel is not None and self._channel.reliable:
            self._failure = exc
        self._fail_all(exc)

    def transmit(self, transmit: Transmit) -> None:
        channel = self._channel
        if channel is None or channel.is_closed:
            return
        try:
            channel.send(transmit.data, transmit.addr)
        except (OSError, ValueError) as exc:  # ValueError: elsewhere than a connected UDP peer
            self._on_error(exc)

    def event_received(self, event: TransactionEvent) -> None:
        """Settle the request the event ends."""
        future = self._pending.pop(event.transaction_id, None)
        if future is None or future.done():
            return
        if isinstance(event, TransactionSucceeded):
            future.set_result(event)
        elif isinstance(event, TransactionFailed):
            future.set_exception(StunError(event.code, event.reason))
        else:
            future.set_exception(StunTimeoutError(f"no response from {format_address(event.addr)}"))

    def _fail_all(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for tid, future in pending.items():
            self.machine.cancel(tid)
            if not future.done():
                future.set_exception(exc)
        if pending:
            self.pump()


def mapped_address(response: Message) -> Address:
    """XOR-MAPPED-ADDRESS of a Binding response, else MAPPED-ADDRESS (RFC 3489 servers)."""
    attr = XorMappedAddress.get_from(response) or MappedAddress.get_from(response)
    if attr is None:
        raise Error("the Binding response has neither XOR-MAPPED-ADDRESS nor MAPPED-ADDRESS")
    return attr.address


async def stun_request(
    target: Target,
    request: Message,
    *,
    transport: str | None = None,
    credentials: Credentials | None = None,
    ssl: _ssl.SSLContext | None = None,
    local_addr: Address | None = None,
    timeout: float | None = None,
    software: str | None = None,
    rto: float = 0.5,
    resolver: DnsResolver = None,
) -> Message:
    """Send ``request`` to ``target``; return the success response.

    ``request`` is built without MESSAGE-INTEGRITY and FINGERPRINT: the
    client adds SOFTWARE, the credentials (answering a 401/438 challenge by
    sending it again, signed) and FINGERPRINT. The server's addresses are
    tried in order until one answers; ``timeout`` bounds the whole call,
    name resolution and connection included. A URI with a host name and no
    port is looked up with DNS SRV first, asking ``resolver`` (a
    `dns.asyncresolver.Resolver` or "HOST:PORT"; None: the system's DNS);
    see `ice.aio.resolve`. The next server or address is tried when one
    cannot be reached (timeout, connection refused, TLS failure), not when it
    answers with an error. Raises StunError (error response),
    StunTimeoutError, UriError/ValueError (bad target) or OSError.
    """
    result = await stun_transaction(
        target,
        request,
        transport=transport,
        credentials=credentials,
        ssl=ssl,
        local_addr=local_addr,
        timeout=timeout,
        software=software,
        rto=rto,
        resolver=resolver,
    )
    return result.event.response


@dataclass(frozen=True, slots=True)
class StunTransaction:
    """What `stun_transaction` returns: the success event, and the sockets' ends."""

    event: TransactionSucceeded
    transport: TransportKind
    server: Address
    local_address: Address


async def stun_transaction(
    target: Target,
    request: Message,
    *,
    transport: str | None = None,
    credentials: Credentials | None = None,
    ssl: _ssl.SSLContext | None = None,
    local_addr: Address | None = None,
    timeout: float | None = None,
    software: str | None = None,
    rto: float = 0.5,
    resolver: DnsResolver = None,
) -> StunTransaction:
    """As `stun_request`, returning the success event (RTT, source address) with the
    transport, the server address that answered and the local address used."""
    endpoint = endpoint_for(target, transport, ssl)
    try:
        async with asyncio.timeout(timeout):
            return await _request_any(
                endpoint, request, credentials, local_addr, software, rto, resolver
            )
    except TimeoutError as exc:
        if isinstance(exc, StunTimeoutError):
            raise
        raise StunTimeoutError(f"no response from {endpoint} within {timeout} s") from None


async def _request_any(
    endpoint: Endpoint,
    request: Message,
    credentials: Credentials | None,
    local_addr: Address | None,
    software: str | None,
    rto: float,
    resolver: DnsResolver,
) -> StunTransaction:
    errors: list[Exception] = []
    local_host = local_addr[0] if local_addr else None
    async for _, groups in each_server(endpoint, resolver, errors, local_host=local_host):
        for group in groups:
            try:
                client = await AsyncStunClient._open_to(
                    endpoint,
                    group,
                    local_addr=local_addr,
                    machine=_new_machine(credentials, software, True, rto),
                    connect_udp=True,
                )
            except OSError as exc:
                logger.info("cannot open %s to %s: %s", endpoint.kind, _text(group), exc)
                errors.append(exc)
                continue
            async with client:
                try:
                    event = await client.transact(request)
                except (OSError, StunTimeoutError) as exc:
                    logger.info("no answer from %s: %s", format_address(client.server), exc)
                    errors.append(exc)
                    continue
                return StunTransaction(event, client.transport, client.server, client.local_address)
    raise errors[0] if errors else OSError(f"no server for {endpoint}")


def _text(addresses: list[Address]) -> str:
    return ", ".join(format_address(a) for a in addresses)


async def get_mapped_address(
    target: Target,
    *,
    transport: str | None = None,
    credentials: Credentials | None = None,
    ssl: _ssl.SSLContext | None = None,
    local_addr: Address | None = None,
    timeout: float | None = None,
    software: str | None = None,
    rto: float = 0.5,
    resolver: DnsResolver = None,
) -> Address:
    """Send a Binding request to ``target``; return the (host, port) it saw us at.

    The address comes from XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from an
    RFC 3489 server. Options and errors as for `stun_request`.
    """
    response = await stun_request(
        target,
        Message.build(BINDING_REQUEST),
        transport=transport,
        credentials=credentials,
        ssl=ssl,
        local_addr=local_addr,
        timeout=timeout,
        software=software,
        rto=rto,
        resolver=resolver,
    )
    return mapped_address(response)
