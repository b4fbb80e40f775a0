"""TCP allocations (RFC 6062) on our TURN server, over real sockets on loopback.

The server runs in each test's own loop (`ice_turn_server.run_ice_turn`).
Clients:

- a raw RFC 6062 client written here: a control connection (TCP or TLS)
  carrying Allocate (REQUESTED-TRANSPORT TCP), CreatePermission, Connect and
  Refresh, and one new connection per peer connection carrying ConnectionBind,
  every STUN message built with `ice.Message` and signed with the long-term
  key; after ConnectionBind's success the data connection is a plain byte
  stream to a TCP peer (an asyncio server or client in the test), checked
  byte for byte both ways, with the peer speaking first, last and in between.

`turnutils_uclient -T` against it is in tests/interop/test_uclient_turn_server_tcp.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from ice._codec import Message, message_type, stream_frame_length
from ice.aio.turn_server_tcp import TcpRelayIO
from ice.attrs import (
    ConnectionId,
    ErrorCodeAttribute,
    Lifetime,
    MessageIntegrity,
    Nonce,
    Realm,
    RequestedTransport,
    Username,
    XorPeerAddress,
    XorRelayedAddress,
)
from ice.constants import MessageClass, Method
from ice.machine import Address
from ice.stun.credentials import long_term_key
from ice.turn.policy import PeerPolicy
from ice.turn.server_tcp import Splice
from tests.support.coturn import free_port
from tests.support.ice_turn_server import USERS, IceTurn, run_ice_turn
from tests.support.loop import run

T = TypeVar("T")
TCP = 6
UDP = 17
USER = "alice"
PASSWORD = USERS[USER]


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def pattern(size: int, seed: int) -> bytes:
    """Bytes no two offsets of which are likely to be confused (a reordering shows)."""
    return os.urandom(16) + bytes((seed * 31 + i * 7 + (i >> 8)) & 0xFF for i in range(size))


# -- a raw RFC 6062 client


class StunStream:
    """STUN messages over one TCP/TLS connection (RFC 8489 framing: the length field)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.indications: asyncio.Queue[Message] = asyncio.Queue()

    @classmethod
    async def open(cls, address: Address, context: ssl.SSLContext | None = None) -> StunStream:
        reader, writer = await asyncio.open_connection(
            address[0], address[1], ssl=context, server_hostname=address[0] if context else None
        )
        return cls(reader, writer)

    @property
    def local(self) -> Address:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return (host, port)

    async def read_message(self) -> Message:
        header = await self.reader.readexactly(4)
        length = stream_frame_length(header)
        assert length is not None and length >= 20, header.hex()
        return Message.decode(header + await self.reader.readexactly(length - 4))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


@dataclass
class Credentials:
    """Long-term credentials and the server's latest REALM and NONCE."""

    username: str = USER
    password: str = PASSWORD
    realm: str | None = None
    nonce: str | None = None

    def sign(self, message: Message) -> None:
        assert self.realm is not None and self.nonce is not None
        Username(self.username).add_to(message)
        Realm(self.realm).add_to(message)
        Nonce(self.nonce).add_to(message)
        MessageIntegrity(long_term_key(self.username, self.realm, self.password)).add_to(message)

    def key(self) -> bytes:
        assert self.realm is not None
        return long_term_key(self.username, self.realm, self.password)


async def request(
    stream: StunStream, credentials: Credentials, method: Method, *attrs: Any
) -> Message:
    """Send a signed request on ``stream`` (answering a 401/438 challenge once) and
    return the response; indications that arrive meanwhile are queued."""
    for _ in range(3):
        message = Message.build(message_type(method, MessageClass.REQUEST))
        for attr in attrs:
            attr.add_to(message)
        if credentials.nonce is not None:
            credentials.sign(message)
        stream.writer.write(message.raw)
        while True:
            answer = await stream.read_message()
            if answer.cls == MessageClass.INDICATION:
                stream.indications.put_nowait(answer)
                continue
            assert answer.transaction_id == message.transaction_id
            break
        error = ErrorCodeAttribute.get_from(answer)
        if error is not None and error.code in (401, 438):
            realm, nonce = Realm.get_from(answer), Nonce.get_from(answer)
            assert realm is not None and nonce is not None
            credentials.realm, credentials.nonce = realm.value, nonce.value
            continue
        answer.check_integrity(credentials.key())  # every answer past the challenge is signed
        return answer
    raise AssertionError("the challenge never ended")


def error_code(answer: Message) -> int | None:
    error = ErrorCodeAttribute.get_from(answer)
    return None if error is None else error.code


@dataclass
class TcpAllocation:
    """A control connection with a TCP allocation on it."""

    control: StunStream
    credentials: Credentials
    relayed: Address
    server: Address
    context: ssl.SSLContext | None
    data: list[StunStream] = field(default_factory=list)

    async def connect(self, peer: Address) -> Message:
        return await request(self.control, self.credentials, Method.CONNECT, XorPeerAddress(*peer))

    async def permit(self, *peers: Address) -> Message:
        attrs = [XorPeerAddress(*peer) for peer in peers]
        return await request(self.control, self.credentials, Method.CREATE_PERMISSION, *attrs)

    async def bind(self, connection_id: int) -> tuple[StunStream, Message]:
        """A new connection to the server, and the answer to its ConnectionBind."""
        stream = await StunStream.open(self.server, self.context)
        self.data.append(stream)
        answer = await request(
            stream, self.credentials, Method.CONNECTION_BIND, ConnectionId(connection_id)
        )
        return stream, answer

    async def close(self) -> None:
        for stream in (*self.data, self.control):
            await stream.close()


async def tcp_allocate(
    turn: IceTurn, transport: str = "tcp", host: str | None = None
) -> TcpAllocation:
    server = turn.address(transport, host)
    context = turn.client_ssl() if transport == "tls" else None
    control = await StunStream.open(server, context)
    credentials = Credentials()
    answer = await request(control, credentials, Method.ALLOCATE, RequestedTransport(TCP))
    assert answer.cls == MessageClass.SUCCESS_RESPONSE, error_code(answer)
    relayed = XorRelayedAddress.get_from(answer)
    assert relayed is not None
    return TcpAllocation(control, credentials, relayed.address, server, context)


def connection_id_of(message: Message) -> int:
    attr = ConnectionId.get_from(message)
    assert attr is not None, message
    return attr.value


# -- TCP peers


class Peer:
    """One TCP connection on the peer's side, read into a buffer as it comes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @property
    def remote(self) -> Address:
        host, port = self.writer.get_extra_info("peername")[:2]
        return (host, port)

    @property
    def local(self) -> Address:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return (host, port)


@contextlib.asynccontextmanager
async def peer_server(
    host: str = "127.0.0.1",
) -> AsyncIterator[tuple[Address, asyncio.Queue[Peer]]]:
    """A TCP server on ``host``: its address and the connections it accepts."""
    accepted: asyncio.Queue[Peer] = asyncio.Queue()
    writers: list[asyncio.StreamWriter] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        accepted.put_nowait(Peer(reader, writer))

    server = await asyncio.start_server(on_connection, host, 0)
    try:
        host_, port = server.sockets[0].getsockname()[:2]
        yield (host_, port), accepted
    finally:
        server.close()
        for writer in writers:
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


async def exchange(
    data: StunStream, peer: Peer, size: int, *, chunk: int = 65536, seed: int = 1
) -> None:
    """Bytes both ways at once, checked byte for byte: ``size`` each way."""
    up, down = pattern(size, seed), pattern(size, seed + 1)

    async def write(writer: asyncio.StreamWriter, payload: bytes) -> None:
        for offset in range(0, len(payload), chunk):
            writer.write(payload[offset : offset + chunk])
            await writer.drain()

    got_up, got_down, _, _ = await asyncio.gather(
        peer.reader.readexactly(len(up)),
        data.reader.readexactly(len(down)),
        write(data.writer, up),
        write(peer.writer, down),
    )
    assert got_up == up
    assert got_down == down


async def at_eof(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """True when the stream ends (EOF or reset) within ``timeout`` with nothing more read."""
    try:
        return await asyncio.wait_for(reader.read(1), timeout) == b""
    except ConnectionError:
        return True


# -- tests: the client opens the connection (Connect)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_connect_then_bind_relays_bytes_exactly_both_ways(transport: str) -> None:
    """Allocate TCP, Connect to a TCP peer (which sees the relayed address as its
    remote), ConnectionBind on a new connection, then 1 MiB each way at once,
    byte-exact; what the peer said before the bind arrives first."""

    async def main() -> None:
        async with run_ice_turn() as turn, peer_server() as (peer_address, accepted):
            allocation = await tcp_allocate(turn, transport)
            assert allocation.relayed[0] == "127.0.0.1"
            answer = await allocation.connect(peer_address)
            assert answer.cls == MessageClass.SUCCESS_RESPONSE, error_code(answer)
            connection_id = connection_id_of(answer)
            peer = await asyncio.wait_for(accepted.get(), 5)
            assert peer.remote == allocation.relayed  # the connection leaves from the relay
            peer.writer.write(b"hello before the bind")  # buffered until the bind
            await peer.writer.drain()
            await asyncio.sleep(0.1)
            data, bound = await allocation.bind(connection_id)
            assert bound.cls == MessageClass.SUCCESS_RESPONSE, error_code(bound)
            assert bound.method == Method.CONNECTION_BIND
            assert await data.reader.readexactly(21) == b"hello before the bind"
            await exchange(data, peer, 1 << 20)
            # Small writes, one byte at a time, still in order.
            for byte in b"tiny":
                data.writer.write(bytes([byte]))
                await data.writer.drain()
            assert await peer.reader.readexactly(4) == b"tiny"
            counters = turn.server.counters()
            assert counters["tcp_connects"] == 1 and counters["tcp_bound"] == 1
            assert turn.runner.peer_connection_count == 1
            await allocation.close()

    run(main())


def test_client_data_written_with_the_connection_bind_is_relayed() -> None:
    """ConnectionBind and raw data in one write: the server stops framing right after
    the ConnectionBind, so the bytes behind it go to the peer as they are."""

    async def main() -> None:
        async with run_ice_turn() as turn, peer_server() as (peer_address, accepted):
            allocation = await tcp_allocate(turn)
            connection_id = connection_id_of(await allocation.connect(peer_address))
            peer = await asyncio.wait_for(accepted.get(), 5)
            stream = await StunStream.open(allocation.server)
            bind = Message.build(
                message_type(Method.CONNECTION_BIND, MessageClass.REQUEST),
                ConnectionId(connection_id),
            )
            allocation.credentials.sign(bind)  # the nonce is good for this IP
            trailing = b"\x00\x01\x00\x00 not STUN, just data"
            stream.writer.write(bind.raw + trailing)
            answer = await stream.read_message()
            assert answer.cls == MessageClass.SUCCESS_RESPONSE, error_code(answer)
            assert await peer.reader.readexactly(len(trailing)) == trailing
            await stream.close()
            await allocation.close()

    run(main())


def test_447_when_nothing_listens_and_446_for_a_second_connect() -> None:
    async def main() -> None:
        async with run_ice_turn() as turn, peer_server() as (peer_address, accepted):
            allocation = await tcp_allocate(turn)
            with socket.socket() as probe:  # a port nobody listens on
                probe.bind(("127.0.0.1", 0))
                closed_port = probe.getsockname()[1]
            answer = await allocation.connect(("127.0.0.1", closed_port))
            assert error_code(answer) == 447
            assert error_code(await allocation.connect(peer_address)) is None
            assert error_code(await allocation.connect(peer_address)) == 446
            # A ConnectionBind for a CONNECTION-ID nobody gave out: 400.
            _, bound = await allocation.bind(0x1234567)
            assert error_code(bound) == 400
            await accepted.get()
            await allocation.close()

    run(main())


def test_connect_to_a_peer_the_policy_refuses_is_403() -> None:
    async def main() -> None:
        async with run_ice_turn(policy=PeerPolicy()) as turn:  # loopback peers refused
            allocation = await tcp_allocate(turn)
            assert error_code(await allocation.connect(("127.0.0.1", 9))) == 403
            assert turn.runner.peer_connection_count == 0
            await allocation.close()

    run(main())


def test_tcp_allocate_over_udp_is_400() -> None:
    async def main() -> None:
        async with run_ice_turn() as turn:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.connect(turn.address("udp"))
                credentials = Credentials()
                for _ in range(2):
                    message = Message.build(
                        message_type(Method.ALLOCATE, MessageClass.REQUEST), RequestedTransport(TCP)
                    )
                    if credentials.nonce is not None:
                        credentials.sign(message)
                    await loop.sock_sendall(sock, message.raw)
                    answer = Message.decode(await loop.sock_recv(sock, 2048))
                    realm, nonce = Realm.get_from(answer), Nonce.get_from(answer)
                    if error_code(answer) == 401 and realm and nonce:
                        credentials.realm, credentials.nonce = realm.value, nonce.value
                assert error_code(answer) == 400
            assert turn.server.allocation_count == 0

    run(main())


# -- tests: the peer opens the connection (ConnectionAttempt)


def test_incoming_connection_needs_a_permission_then_is_relayed() -> None:
    """A peer without a permission is closed at once and the client hears nothing;
    with one, the client gets a ConnectionAttempt (CONNECTION-ID, XOR-PEER-ADDRESS),
    binds it, and bytes flow both ways, the client speaking first."""

    async def main() -> None:
        async with run_ice_turn() as turn:
            allocation = await tcp_allocate(turn)
            reader, writer = await asyncio.open_connection(*allocation.relayed)
            assert await at_eof(reader)  # no permission: closed at once
            writer.close()
            assert allocation.control.indications.empty()
            assert turn.server.counters()["tcp_refused"] == 1

            assert error_code(await allocation.permit(("127.0.0.1", 1))) is None
            reader, writer = await asyncio.open_connection(*allocation.relayed)
            peer = Peer(reader, writer)
            writer.write(b"early bird")  # sent before the client even knows
            attempt = await asyncio.wait_for(allocation.control.read_message(), 5)
            assert attempt.type == message_type(Method.CONNECTION_ATTEMPT, MessageClass.INDICATION)
            peer_attr = XorPeerAddress.get_from(attempt)
            assert peer_attr is not None and peer_attr.address == peer.local
            data, bound = await allocation.bind(connection_id_of(attempt))
            assert bound.cls == MessageClass.SUCCESS_RESPONSE, error_code(bound)
            assert await data.reader.readexactly(10) == b"early bird"
            await exchange(data, peer, 300_000, chunk=1000, seed=5)
            # The peer half-closes: the client sees the end, and can still answer.
            writer.write_eof()
            assert await at_eof(data.reader)
            data.writer.write(b"last word")
            await data.writer.drain()
            assert await reader.readexactly(9) == b"last word"
            data.writer.close()
            assert await at_eof(reader)
            await eventually(lambda: turn.runner.peer_connection_count == 0)
            await eventually(lambda: turn.server.counters()["tcp_connections"] == 0)
            writer.close()
            await allocation.close()

    run(main())


def test_unbound_peer_connection_is_closed_by_the_runners_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ConnectionAttempt nobody binds: the peer is closed when the ConnectionBind
    timer runs out (shortened from 30 s to 0.3 s here), by the core's timer on the
    runner's loop; a ConnectionBind after that is 400."""
    monkeypatch.setattr("ice.turn.server_tcp.CONNECTION_BIND_TIMEOUT", 0.3)

    async def main() -> None:
        async with run_ice_turn() as turn:
            allocation = await tcp_allocate(turn)
            await allocation.permit(("127.0.0.1", 1))
            reader, writer = await asyncio.open_connection(*allocation.relayed)
            attempt = await asyncio.wait_for(allocation.control.read_message(), 5)
            connection_id = connection_id_of(attempt)
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await at_eof(reader)
            assert loop.time() - started >= 0.25
            _, bound = await allocation.bind(connection_id)
            assert error_code(bound) == 400
            assert turn.server.counters()["tcp_bind_timeouts"] == 1
            await eventually(lambda: turn.runner.peer_connection_count == 0)
            writer.close()
            await allocation.close()

    run(main())


# -- teardown


@pytest.mark.parametrize("how", ["refresh-0", "control-closed"])
def test_allocation_end_closes_every_connection(how: str) -> None:
    async def main() -> None:
        async with run_ice_turn() as turn, peer_server() as (peer_address, accepted):
            allocation = await tcp_allocate(turn)
            connection_id = connection_id_of(await allocation.connect(peer_address))
            peer = await asyncio.wait_for(accepted.get(), 5)
            data, _ = await allocation.bind(connection_id)
            await exchange(data, peer, 1000)
            relay_count = turn.runner.relay_count
            assert relay_count == 1
            if how == "refresh-0":
                answer = await request(
                    allocation.control, allocation.credentials, Method.REFRESH, Lifetime(0)
                )
                assert answer.cls == MessageClass.SUCCESS_RESPONSE
            else:
                await allocation.control.close()
            assert await at_eof(peer.reader)
            assert await at_eof(data.reader)
            await eventually(lambda: turn.runner.peer_connection_count == 0)
            await eventually(lambda: turn.server.allocation_count == 0)
            assert turn.runner.relay_count == 0
            with socket.socket() as probe:  # nothing listens on the relayed port any more
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT aside
                probe.bind(allocation.relayed)
                probe.listen()
            await allocation.close()

    run(main())


def test_runner_close_closes_peer_connections() -> None:
    async def main() -> None:
        async with peer_server() as (peer_address, accepted):
            async with run_ice_turn() as turn:
                allocation = await tcp_allocate(turn)
                connection_id = connection_id_of(await allocation.connect(peer_address))
                peer = await asyncio.wait_for(accepted.get(), 5)
                await allocation.bind(connection_id)
            assert await at_eof(peer.reader)
            assert turn.runner.relay_count == 0
            await allocation.close()

    run(main())


# -- back-pressure


def test_a_slow_peer_stops_the_client_not_the_servers_memory() -> None:
    """The peer reads nothing for a while: the server's write buffer to it stays
    near the runner's max_buffer, the rest waits in the client (TCP back-pressure);
    then the peer reads everything, byte-exact."""

    async def main() -> None:
        max_buffer = 64 * 1024
        async with (
            run_ice_turn(max_buffer=max_buffer) as turn,
            peer_server() as (peer_address, accepted),
        ):
            allocation = await tcp_allocate(turn)
            connection_id = connection_id_of(await allocation.connect(peer_address))
            peer = await asyncio.wait_for(accepted.get(), 5)
            data, _ = await allocation.bind(connection_id)
            peer.writer.transport.pause_reading()  # type: ignore[attr-defined]
            payload = pattern(32 << 20, 9)
            data.writer.write(payload)
            await asyncio.sleep(1.0)
            protocol = turn.runner.tcp._peers[connection_id]
            assert protocol.transport is not None
            # At most the high-water mark plus one read of the client's side (256 KiB).
            buffered = protocol.transport.get_write_buffer_size()
            assert buffered <= max_buffer + 256 * 1024, buffered
            # The rest is held back in the client (what the kernels' buffers do not hold).
            assert data.writer.transport.get_write_buffer_size() > 0
            peer.writer.transport.resume_reading()  # type: ignore[attr-defined]
            got = await asyncio.wait_for(peer.reader.readexactly(len(payload)), 20)
            assert got == payload
            await allocation.close()

    run(main(), timeout=60)


# -- IPv6


def test_ipv6_tcp_allocation_connect_and_bind() -> None:
    async def main() -> None:
        async with (
            run_ice_turn(hosts=("::1",), transports=("tcp",)) as turn,
            peer_server("::1") as (peer_address, accepted),
        ):
            allocation = await tcp_allocate(turn, "tcp", "::1")
            assert allocation.relayed[0] == "::1"
            connection_id = connection_id_of(await allocation.connect(peer_address))
            peer = await asyncio.wait_for(accepted.get(), 5)
            assert peer.remote == allocation.relayed
            data, _ = await allocation.bind(connection_id)
            await exchange(data, peer, 100_000)
            await allocation.close()

    run(main())


# -- TcpRelayIO on its own: the loop, the core's reports, flush, connection_for


@dataclass
class ReportingCore:
    """Answers `TcpRelayIO`'s reports as a core would, and keeps them."""

    accept_as: int | None
    reports: list[tuple[str, Any]] = field(default_factory=list)

    def peer_connected(self, connection_id: int, now: float) -> None:
        self.reports.append(("connected", connection_id))

    def peer_connection_failed(self, connection_id: int, now: float) -> None:
        self.reports.append(("failed", connection_id))

    def peer_connection_accepted(self, relay: Address, peer: Address, now: float) -> int | None:
        self.reports.append(("accepted", relay))
        return self.accept_as

    def peer_connection_closed(self, connection_id: int, now: float) -> None:
        self.reports.append(("closed", connection_id))


@pytest.mark.parametrize("accept_as", [None, 7])
def test_tcp_relay_io_works_from_its_callables_alone(accept_as: int | None) -> None:
    """No runner: a peer's connection is reported and flushed; refused, it is closed;
    accepted, a Splice whose client connection is gone closes it and tells the core."""

    async def main() -> None:
        core = ReportingCore(accept_as)
        flushes: list[None] = []
        asked: list[tuple[Address, Address]] = []

        def connection_for(client: Address, local: Address) -> None:
            asked.append((client, local))
            return None

        io = TcpRelayIO(
            loop=asyncio.get_running_loop(),
            core=core,
            flush=lambda: flushes.append(None),
            connection_for=connection_for,
            max_buffer=65536,
        )
        relay = ("127.0.0.1", free_port("tcp"))
        assert io.open_tcp_relay(relay) and io.listener_count == 1
        reader, writer = await asyncio.open_connection(*relay)
        try:
            await eventually(lambda: len(flushes) == 1)
            assert core.reports == [("accepted", relay)]
            if accept_as is None:
                assert await reader.read() == b""  # closed at once
                return
            client, local = ("192.0.2.1", 1), ("192.0.2.2", 3478)
            io.apply(Splice(accept_as, client, local))
            assert asked == [(client, local)]
            assert await reader.read() == b""
            await eventually(lambda: ("closed", accept_as) in core.reports)
            assert io.peer_count == 0 and len(flushes) == 2
        finally:
            writer.close()
            io.close()
        assert io.listener_count == 0

    run(main())
