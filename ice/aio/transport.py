"""The sockets of the asyncio clients: a UDP socket or a framed TCP/TLS stream.

`ClientChannel` puts both behind one surface so a client adapter drives its
sans-I/O machine the same way whatever the transport::

    channel = await open_channel(("192.0.2.1", 3478), "tcp", on_data=..., on_error=...)
    channel.send(data, addr)     # a datagram, or bytes on the stream
    on_data(frame, addr)         # a datagram, or one complete frame off the stream
    on_error(exc)                # ICMP error (connected UDP) or the stream ended
    channel.close()

A stream is cut into frames with `stream_frame_length` (STUN messages, and
ChannelData padded to 4 bytes as RFC 8656 section 12.5 says), see
`StreamFramer`. `resolve` turns a host name into the addresses to try, in
order, with A and AAAA records.
"""

from __future__ import annotations

import asyncio
import asyncio.staggered
import functools
import ipaddress
import logging
import socket
import ssl as _ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

from ice._codec import stream_frame_length
from ice._errors import DecodeError
from ice.aio.portable import CONNECTION_RECEIVE_BUFFER, enlarge_buffers
from ice.machine import Address
from ice.stun.srv import srv_name
from ice.stun.uri import StunUri, format_address, parse_uri

__all__ = [
    "MAX_STREAM_BUFFER",
    "ClientChannel",
    "Endpoint",
    "StreamFramer",
    "Target",
    "TransportKind",
    "address_family",
    "connect_any",
    "endpoint_for",
    "open_channel",
    "resolve",
]

logger = logging.getLogger("ice.aio.transport")

TransportKind = Literal["udp", "tcp", "tls"]
#: What a client connects to: a URI (text or parsed) or a (host, port) pair.
Target = StunUri | str | tuple[str, int]
_KINDS: dict[str, TransportKind] = {"udp": "udp", "tcp": "tcp", "tls": "tls"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A target with its transport and TLS settings decided."""

    host: str
    port: int
    kind: TransportKind
    ssl: _ssl.SSLContext | None
    #: The DNS SRV name to look up first (`ice.stun.srv.srv_name`), None for no SRV.
    srv_name: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {format_address((self.host, self.port))}"


def endpoint_for(target: Target, transport: str | None, ssl: _ssl.SSLContext | None) -> Endpoint:
    """Where and how to connect: the target's host and port, the transport (the
    URI's unless ``transport`` says otherwise) and the TLS context."""
    if isinstance(target, str):
        target = parse_uri(target)
    if isinstance(target, StunUri):
        host, port = target.address
        default: TransportKind = "tls" if target.secure else target.transport
    else:
        host, port = target
        default = "tls" if ssl is not None else "udp"
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port {port!r} is not in 1-65535")
    kind = default if transport is None else _KINDS.get(transport)
    if kind is None:
        raise ValueError(f"transport must be udp, tcp or tls, not {transport!r}")
    if isinstance(target, StunUri) and target.secure and kind != "tls":
        raise ValueError(f"{target.scheme}: needs TLS, not {kind}")
    if kind == "tls":
        ssl = ssl if ssl is not None else _ssl.create_default_context()
    elif ssl is not None:
        raise ValueError(
            f"an SSL context was given for {kind}; use a stuns: URI or transport='tls'"
        )
    srv = None
    if isinstance(target, StunUri):
        srv = srv_name(target, kind)
    return Endpoint(host, port, kind, ssl, srv)


#: Unframed bytes a stream may hold: more than the largest frame (20 + 65,535 bytes).
MAX_STREAM_BUFFER = 128 * 1024

DataCallback = Callable[[bytes, Address], None]
ErrorCallback = Callable[[Exception], None]


def address_family(host: str) -> socket.AddressFamily | None:
    """AF_INET or AF_INET6 for an IP literal (an IPv6 zone is allowed), None otherwise."""
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def _address(sockaddr: Any) -> Address:
    """(host, port) from a socket address (IPv6 ones have four fields)."""
    if len(sockaddr) == 2:
        return cast(Address, sockaddr)  # already (str, int): skip the copy on every datagram
    return (str(sockaddr[0]), int(sockaddr[1]))


async def resolve(
    host: str, port: int, kind: TransportKind, *, local_host: str | None = None
) -> list[Address]:
    """The addresses of ``host`` (A and AAAA) to try in order, without duplicates.

    With ``local_host`` (the IP address a socket will be bound to) only the
    addresses of its family are returned, since no other can be reached from
    that socket; "" or None means any family. Raises OSError
    (`socket.gaierror`) when the name does not resolve or has no usable address.
    """
    loop = asyncio.get_running_loop()
    sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    infos = await loop.getaddrinfo(host, port, type=sock_type)
    family = address_family(local_host) if local_host else None
    addresses: list[Address] = []
    for info_family, _, _, _, sockaddr in infos:
        if info_family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if family is not None and info_family != family:
            continue
        addr = _address(sockaddr)
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        wanted = {socket.AF_INET: "IPv4 ", socket.AF_INET6: "IPv6 ", None: ""}[family]
        raise OSError(f"{host} has no {wanted}address")
    return addresses


class StreamFramer:
    """Cuts a TCP/TLS byte stream into STUN and ChannelData frames."""

    def __init__(self, max_buffer: int = MAX_STREAM_BUFFER) -> None:
        self._buffer = bytearray()
        self._max_buffer = max_buffer

    def __len__(self) -> int:
        """Bytes held that do not make a complete frame yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the frames they complete, in order.

        Raises DecodeError when the stream carries neither STUN nor
        ChannelData, or holds more than ``max_buffer`` unframed bytes; the
        stream cannot be resynchronised after that.
        """
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        start = 0
        while True:
            length = stream_frame_length(memoryview(buffer)[start:])
            if length is None or len(buffer) - start < length:
                break
            frames.append(bytes(buffer[start : start + length]))
            start += length
        del buffer[:start]
        if len(buffer) > self._max_buffer:
            raise DecodeError(f"{len(buffer)} bytes on the stream without a complete frame")
        return frames


class ClientChannel:
    """One client socket: UDP (``kind`` "udp") or a TCP or TLS connection."""

    def __init__(
        self, kind: TransportKind, remote: Address, on_data: DataCallback, on_error: ErrorCallback
    ) -> None:
        self.kind: TransportKind = kind
        self.remote_address = remote
        self.local_address: Address = ("", 0)
        self._on_data = on_data
        self._on_error = on_error
        self._transport: asyncio.BaseTransport | None = None
        # the transport's send method, looked up once (None once closed)
        self._sendto: Callable[[bytes, Address], None] | None = None
        self._write: Callable[[bytes], None] | None = None
        self._closed = asyncio.get_running_loop().create_future()

    @property
    def reliable(self) -> bool:
        """True for TCP and TLS: no retransmissions."""
        return self.kind != "udp"

    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    def send(self, data: bytes, addr: Address) -> None:
        """Send a datagram to ``addr``, or write ``data`` on the stream (``addr`` unused)."""
        sendto = self._sendto
        if sendto is not None:
            sendto(data, addr)
            return
        write = self._write
        if write is None:
            raise ConnectionError(f"the {self.kind} socket is closed")
        write(data)

    def close(self) -> None:
        """Close the socket (the stream after flushing what was written)."""
        self._sendto = self._write = None
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is not sent yet."""
        self._sendto = self._write = None
        if self._transport is not None:
            cast(asyncio.Transport | asyncio.DatagramTransport, self._transport).abort()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    # -- called by the protocols

    def _made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if self.kind == "udp":
            # asyncio's selector UDP transport does not subclass DatagramTransport.
            self._sendto = cast(asyncio.DatagramTransport, transport).sendto
        else:
            self._write = cast(asyncio.WriteTransport, transport).write
        self.local_address = _address(transport.get_extra_info("sockname"))

    def _received(self, data: bytes, addr: Address) -> None:
        try:
            self._on_data(data, addr)
        except Exception:  # a bug in the machine must not kill the socket
            logger.exception("%s %s: failed to handle %d bytes", self.kind, addr, len(data))

    def _error(self, exc: Exception) -> None:
        try:
            self._on_error(exc)
        except Exception:
            logger.exception("%s: failed to handle %r", self.kind, exc)

    def _lost(self, exc: Exception | None) -> None:
        self._sendto = self._write = None
        if self._closed.done():
            return
        self._closed.set_result(None)
        if self.kind != "udp":
            self._error(exc or ConnectionResetError("the server closed the connection"))


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, channel: ClientChannel) -> None:
        self._channel = channel

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._channel._made(transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(addr) != 2:  # IPv6: (host, port, flowinfo, scope_id)
            addr = (addr[0], addr[1])
        self._channel._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # A failed send, or an ICMP error (Linux reports those on a connected socket only).
        logger.debug("udp %s: %s", format_address(self._channel.remote_address), exc)
        self._channel._error(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._channel._lost(exc)


class _StreamProtocol(asyncio.Protocol):
    def __init__(self, channel: ClientChannel) -> None:
        self._channel = channel
        self._framer = StreamFramer()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._channel._made(transport)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._framer.feed(data)
        except DecodeError as exc:
            logger.warning("%s %s: %s", self._channel.kind, self._channel.remote_address, exc)
            self._channel._error(exc)
            assert self._transport is not None
            self._transport.abort()
            return
        for frame in frames:
            self._channel._received(frame, self._channel.remote_address)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._channel._lost(exc)


async def open_channel(
    addr: Address,
    kind: TransportKind,
    *,
    on_data: DataCallback,
    on_error: ErrorCallback,
    local_addr: Address | None = None,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_udp: bool = False,
    sock: socket.socket | None = None,
) -> ClientChannel:
    """Open a socket to ``addr`` (an IP address and port).

    UDP: a socket bound to ``local_addr`` (default: any address of
    ``addr``'s family, port 0); ``connect_udp`` connects it, so it hears only
    ``addr`` and learns of ICMP errors, which go to ``on_error``.
    TCP/TLS: a connection from ``local_addr``; TLS verifies the server
    certificate against ``server_hostname`` (default: ``addr``'s host) with
    the ``ssl`` context. ``on_error`` is called once when a stream ends.
    ``sock`` is a TCP socket already connected to ``addr`` (`connect_any`).
    """
    loop = asyncio.get_running_loop()
    family = address_family(addr[0])
    if family is None:
        raise ValueError(f"not an IP address: {addr[0]!r}")
    channel = ClientChannel(kind, addr, on_data, on_error)
    if kind == "udp":
        if ssl is not None:
            raise ValueError("DTLS is not supported: no SSL context over UDP")
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
            sock.bind(local_addr if local_addr is not None else (wildcard, 0))
            if connect_udp:
                sock.connect(addr)
            enlarge_buffers(sock, CONNECTION_RECEIVE_BUFFER, send=False)
        except BaseException:
            sock.close()
            raise
        await loop.create_datagram_endpoint(lambda: _DatagramProtocol(channel), sock=sock)
        return channel
    if kind not in ("tcp", "tls"):
        raise ValueError(f"transport must be udp, tcp or tls, not {kind!r}")
    if (kind == "tls") != (ssl is not None):
        raise ValueError("tls needs an SSL context, and tcp takes none")
    hostname = (server_hostname or addr[0].partition("%")[0]) if ssl else None
    if sock is not None:
        try:
            await loop.create_connection(
                lambda: _StreamProtocol(channel), sock=sock, ssl=ssl, server_hostname=hostname
            )
        except BaseException:
            sock.close()
            raise
        return channel
    await loop.create_connection(
        lambda: _StreamProtocol(channel),
        host=addr[0],
        port=addr[1],
        family=family,
        ssl=ssl,
        server_hostname=hostname,
        local_addr=local_addr,
    )
    return channel


#: RFC 8305 section 8: the recommended Connection Attempt Delay.
HAPPY_EYEBALLS_DELAY = 0.25


async def connect_any(
    addresses: list[Address],
    *,
    local_addr: Address | None = None,
    delay: float = HAPPY_EYEBALLS_DELAY,
) -> tuple[socket.socket, Address]:
    """A TCP socket connected to the first of ``addresses`` that accepts, and that
    address: the attempts start ``delay`` apart (or at once when one fails), as
    RFC 8305 (happy eyeballs) says; give the addresses interleaved by family.
    Raises the first attempt's OSError when none connects."""
    loop = asyncio.get_running_loop()
    if not addresses:
        raise OSError("no address to connect to")
    winners: list[socket.socket] = []

    async def attempt(addr: Address) -> tuple[socket.socket, Address]:
        family = address_family(addr[0])
        if family is None:
            raise ValueError(f"not an IP address: {addr[0]!r}")
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if local_addr is not None:
                sock.bind(local_addr)
            await loop.sock_connect(sock, addr)
        except BaseException:
            sock.close()
            raise
        winners.append(sock)
        return sock, addr

    result, _, errors = await asyncio.staggered.staggered_race(
        [functools.partial(attempt, addr) for addr in addresses], delay
    )
    for sock in winners:  # two attempts may connect in the same loop iteration
        if result is None or sock is not result[0]:
            sock.close()
    if result is None:
        first = next((e for e in errors if e is not None), None)
        raise first if first is not None else OSError("no connection")
    logger.debug("connected to %s", format_address(result[1]))
    return cast(tuple[socket.socket, Address], result)
