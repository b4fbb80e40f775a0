"""The asyncio STUN client against small in-test servers on loopback.

coturn is in tests/interop/test_coturn_stun_client.py; here the server side is scripted so that
each test can make it answer late, from elsewhere, in pieces, with an error,
or not at all.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from ice._codec import Message, encode_channel_data
from ice._errors import DecodeError, Error, StunError, StunTimeoutError
from ice.aio.stun_client import AsyncStunClient, get_mapped_address, stun_request
from ice.aio.transport import StreamFramer, endpoint_for, open_channel, resolve
from ice.attrs import (
    ChangeRequest,
    ErrorCodeAttribute,
    Fingerprint,
    MappedAddress,
    Software,
    XorMappedAddress,
)
from ice.constants import BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS, AttrType
from ice.stun.uri import UriError, parse_uri
from tests.support.loop import run

T = TypeVar("T")
Address = tuple[str, int]

#: No test here may take longer than this, whatever goes wrong.
GUARD = 10.0


def binding_success(request: Message, addr: Address, *, xor: bool = True) -> bytes:
    attr = XorMappedAddress(*addr) if xor else MappedAddress(*addr)
    return Message.build(BINDING_SUCCESS, attr, transaction_id=request.transaction_id).raw


Responder = Callable[[Message, Address], list[bytes]]


class UdpServer(asyncio.DatagramProtocol):
    """A loopback UDP socket that records what it gets and answers with ``respond``."""

    def __init__(self, respond: Responder | None = None) -> None:
        self.respond = respond
        self.received: list[tuple[bytes, Address]] = []
        self.arrived = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        source = (addr[0], addr[1])
        self.received.append((data, source))
        self.arrived.set()
        if self.respond is not None and self.transport is not None:
            for reply in self.respond(Message.decode(data), source):
                self.transport.sendto(reply, source)

    @property
    def address(self) -> Address:
        assert self.transport is not None
        sockname = self.transport.get_extra_info("sockname")
        return (sockname[0], sockname[1])

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()


async def udp_server(respond: Responder | None = None, host: str = "127.0.0.1") -> UdpServer:
    loop = asyncio.get_running_loop()
    _, server = await loop.create_datagram_endpoint(
        lambda: UdpServer(respond), local_addr=(host, 0)
    )
    return server


def mirror(request: Message, addr: Address) -> list[bytes]:
    return [binding_success(request, addr)]


def closed_udp_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


# -- choosing the transport


@pytest.mark.parametrize(
    ("target", "transport", "with_ssl", "expected"),
    [
        ("stun:example.org", None, False, ("example.org", 3478, "udp")),
        ("stun:example.org", "tcp", False, ("example.org", 3478, "tcp")),
        ("stun:example.org", "tls", False, ("example.org", 3478, "tls")),
        ("stuns:example.org", None, False, ("example.org", 5349, "tls")),
        ("stuns:example.org", None, True, ("example.org", 5349, "tls")),
        ("turn:[::1]:9?transport=tcp", None, False, ("::1", 9, "tcp")),
        ("turns:example.org", None, False, ("example.org", 5349, "tls")),
        (parse_uri("stun:[::1]"), None, False, ("::1", 3478, "udp")),
        (("192.0.2.1", 7), None, False, ("192.0.2.1", 7, "udp")),
        (("192.0.2.1", 7), "tcp", False, ("192.0.2.1", 7, "tcp")),
        (("192.0.2.1", 7), None, True, ("192.0.2.1", 7, "tls")),
    ],
)
def test_endpoint_choice(
    target: Any, transport: str | None, with_ssl: bool, expected: tuple[str, int, str]
) -> None:
    context = ssl.create_default_context() if with_ssl else None
    endpoint = endpoint_for(target, transport, context)
    assert (endpoint.host, endpoint.port, endpoint.kind) == expected
    if endpoint.kind == "tls":
        assert endpoint.ssl is not None
        assert endpoint.ssl.verify_mode == ssl.CERT_REQUIRED
        assert endpoint.ssl.check_hostname
        if context is not None:
            assert endpoint.ssl is context
    else:
        assert endpoint.ssl is None


@pytest.mark.parametrize(
    ("target", "transport", "with_ssl", "error", "problem"),
    [
        ("stuns:example.org", "udp", False, ValueError, "needs TLS"),
        ("stuns:example.org", "tcp", False, ValueError, "needs TLS"),
        ("stun:example.org", "sctp", False, ValueError, "udp, tcp or tls"),
        ("stun:example.org", "udp", True, ValueError, "SSL context"),
        (("127.0.0.1", 3478), "tcp", True, ValueError, "SSL context"),
        (("127.0.0.1", 0), None, False, ValueError, "1-65535"),
        ("http://example.org", None, False, UriError, "unknown scheme"),
    ],
)
def test_endpoint_errors(
    target: Any, transport: str | None, with_ssl: bool, error: type[Exception], problem: str
) -> None:
    context = ssl.create_default_context() if with_ssl else None
    with pytest.raises(error, match=problem):
        endpoint_for(target, transport, context)


# -- stream framing


def test_framer_cuts_frames_at_any_chunking() -> None:
    first = Message.build(BINDING_REQUEST, Software("x" * 7)).raw
    channel = encode_channel_data(0x4001, b"abcde", stream=True)  # padded to 4 + 8
    second = Message.build(BINDING_SUCCESS).raw
    stream = first + channel + second
    assert len(channel) == 12
    for size in (1, 2, 3, 5, 7, 20, len(stream)):
        framer = StreamFramer()
        frames: list[bytes] = []
        for start in range(0, len(stream), size):
            frames += framer.feed(stream[start : start + size])
        assert frames == [first, channel, second], size
        assert len(framer) == 0


def test_framer_keeps_a_partial_frame() -> None:
    data = Message.build(BINDING_REQUEST).raw
    framer = StreamFramer()
    assert framer.feed(data + data[:3]) == [data]
    assert len(framer) == 3
    assert framer.feed(data[3:]) == [data]


def test_framer_refuses_a_stream_of_neither() -> None:
    with pytest.raises(DecodeError, match="neither STUN nor ChannelData"):
        StreamFramer().feed(b"\x16\x03\x01\x00\x05hello")  # a TLS record


def test_framer_refuses_too_much_unframed_data() -> None:
    framer = StreamFramer(max_buffer=100)
    header = bytes([0x00, 0x01, 0xFF, 0xFC]) + bytes(16)  # announces 65,532 bytes
    assert framer.feed(header + bytes(60)) == []
    with pytest.raises(DecodeError, match="without a complete frame"):
        framer.feed(bytes(40))


def test_a_udp_channel_holds_a_burst_that_arrives_before_the_loop_turns() -> None:
    """A TURN server relays a peer's burst to the client's channel socket: 400
    small datagrams sent while the loop cannot read are all delivered (Linux's
    default receive buffer holds ~256 of them; the channel asks for aioice's)."""

    async def main() -> None:
        got: list[bytes] = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
            server.bind(("127.0.0.1", 0))
            channel = await open_channel(
                server.getsockname(),
                "udp",
                on_data=lambda data, addr: got.append(data),
                on_error=lambda exc: None,
            )
            try:
                assert channel.local_address is not None
                for seq in range(400):
                    server.sendto(seq.to_bytes(4, "big") + bytes(96), channel.local_address)
                async with asyncio.timeout(GUARD):
                    while len(got) < 400:
                        await asyncio.sleep(0.01)
                assert [int.from_bytes(data[:4], "big") for data in got] == list(range(400))
            finally:
                channel.close()

    run(main())


# -- name resolution


def fake_getaddrinfo(
    table: dict[str, list[tuple[socket.AddressFamily, str]]],
) -> Callable[..., Awaitable[list[Any]]]:
    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        infos = []
        for family, ip in table[host]:
            sockaddr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
            infos.append((family, kwargs.get("type", 0), 0, "", sockaddr))
        return infos

    return getaddrinfo


def test_resolve_orders_filters_and_deduplicates() -> None:
    records = {
        "both.test": [
            (socket.AF_INET, "192.0.2.1"),
            (socket.AF_INET6, "2001:db8::1"),
            (socket.AF_INET, "192.0.2.1"),
            (socket.AF_INET, "192.0.2.2"),
        ],
        "v6only.test": [(socket.AF_INET6, "2001:db8::1")],
    }

    async def main() -> None:
        asyncio.get_running_loop().getaddrinfo = fake_getaddrinfo(records)  # type: ignore[method-assign]
        assert await resolve("both.test", 5, "udp") == [
            ("192.0.2.1", 5),
            ("2001:db8::1", 5),
            ("192.0.2.2", 5),
        ]
        assert await resolve("both.test", 5, "tcp", local_host="::1") == [("2001:db8::1", 5)]
        assert await resolve("both.test", 5, "udp", local_host="127.0.0.1") == [
            ("192.0.2.1", 5),
            ("192.0.2.2", 5),
        ]
        assert await resolve("both.test", 5, "udp", local_host="") == await resolve(
            "both.test", 5, "udp"
        )
        with pytest.raises(OSError, match="no IPv4 address"):
            await resolve("v6only.test", 5, "udp", local_host="0.0.0.0")

    run(main())


def test_tries_the_next_address_when_one_refuses() -> None:
    """stun.test resolves to 127.0.0.1 (nothing listening) and then ::1 (the server)."""

    async def main() -> None:
        server = await udp_server(mirror, host="::1")
        port = server.address[1]
        loop = asyncio.get_running_loop()
        loop.getaddrinfo = fake_getaddrinfo(  # type: ignore[method-assign]
            {"stun.test": [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]}
        )
        try:
            host, _ = await get_mapped_address(("stun.test", port), timeout=5)
        finally:
            server.close()
        assert host == "::1"
        assert len(server.received) == 1

    run(main())


def test_resolves_localhost() -> None:
    async def main() -> None:
        server = await udp_server(mirror)
        try:
            mapped = await get_mapped_address(("localhost", server.address[1]), timeout=5)
        finally:
            server.close()
        assert mapped == server.received[0][1]

    run(main())


# -- UDP


def test_udp_binding_returns_the_mapped_address_and_sends_fingerprint_and_software() -> None:
    async def main() -> None:
        server = await udp_server(mirror)
        try:
            async with await AsyncStunClient.open(
                server.address, local_addr=("127.0.0.1", 0), software="test-client/1"
            ) as client:
                mapped = await client.get_mapped_address()
                assert mapped == client.local_address
                assert client.transport == "udp"
        finally:
            server.close()
        data, _ = server.received[0]
        request = Message.decode(data)
        assert request.type == BINDING_REQUEST
        Fingerprint.check(request)
        software = Software.get_from(request)
        assert software is not None and software.value == "test-client/1"

    run(main())


def test_mapped_address_falls_back_to_mapped_address() -> None:
    async def main() -> None:
        server = await udp_server(lambda req, addr: [binding_success(req, addr, xor=False)])
        try:
            assert await get_mapped_address(server.address, timeout=5) == server.received[0][1]
        finally:
            server.close()

    run(main())


def test_binding_success_without_an_address_is_an_error() -> None:
    async def main() -> None:
        server = await udp_server(
            lambda req, addr: [
                Message.build(BINDING_SUCCESS, transaction_id=req.transaction_id).raw
            ]
        )
        try:
            with pytest.raises(Error, match="neither XOR-MAPPED-ADDRESS nor MAPPED-ADDRESS"):
                await get_mapped_address(server.address, timeout=5)
        finally:
            server.close()

    run(main())


def test_error_response_raises_stun_error() -> None:
    def refuse(request: Message, addr: Address) -> list[bytes]:
        error = ErrorCodeAttribute(420, "Unknown Attribute")
        return [Message.build(BINDING_ERROR, error, transaction_id=request.transaction_id).raw]

    async def main() -> None:
        server = await udp_server(refuse)
        try:
            with pytest.raises(StunError) as info:
                await stun_request(server.address, Message.build(BINDING_REQUEST), timeout=5)
        finally:
            server.close()
        assert (info.value.code, info.value.reason) == (420, "Unknown Attribute")

    run(main())


def test_stray_and_foreign_answers_are_ignored() -> None:
    """A response with another transaction ID, or garbage, does not end the request."""

    def noisy(request: Message, addr: Address) -> list[bytes]:
        other = Message.build(BINDING_SUCCESS, XorMappedAddress("192.0.2.9", 9))
        return [b"\x17\x03\x03 not stun", other.raw, binding_success(request, addr)]

    async def main() -> None:
        server = await udp_server(noisy)
        try:
            mapped = await get_mapped_address(server.address, timeout=5)
        finally:
            server.close()
        assert mapped == server.received[0][1]

    run(main())


def test_udp_retransmits_then_times_out() -> None:
    """Rc = 7 sends at 0, RTO, 3 RTO, ... then Rm x RTO of waiting: 79 RTO in all."""
    rto = 0.01

    async def main() -> None:
        silent = await udp_server()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with pytest.raises(StunTimeoutError):
                await stun_request(silent.address, Message.build(BINDING_REQUEST), rto=rto)
        finally:
            silent.close()
        elapsed = loop.time() - started
        assert elapsed >= 79 * rto - 0.005
        assert elapsed < 79 * rto + 2.0
        copies = [data for data, _ in silent.received]
        assert len(copies) == 7
        assert len(set(copies)) == 1  # the same request, same transaction ID

    run(main())


def test_timeout_option_bounds_the_call() -> None:
    async def main() -> None:
        silent = await udp_server()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with pytest.raises(StunTimeoutError, match=r"within 0\.2 s"):
                await stun_request(silent.address, Message.build(BINDING_REQUEST), timeout=0.2)
        finally:
            silent.close()
        assert 0.19 <= loop.time() - started < 2.0
        assert len(silent.received) == 1  # the first retransmission is due at 0.5 s

    run(main())


def test_closed_udp_port_fails_fast() -> None:
    port = closed_udp_port()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionRefusedError):
            await stun_request(("127.0.0.1", port), Message.build(BINDING_REQUEST))
        assert loop.time() - started < 2.0  # not the 39.5 s transaction timeout

    run(main())


def test_response_from_another_address_needs_an_unconnected_socket() -> None:
    """RFC 5780 servers answer a CHANGE-REQUEST from their other address."""

    async def main() -> None:
        other = await udp_server()
        assert other.transport is not None

        def answer_from_other(request: Message, addr: Address) -> list[bytes]:
            assert other.transport is not None
            other.transport.sendto(binding_success(request, addr), addr)
            return []

        primary = await udp_server(answer_from_other)
        try:
            async with await AsyncStunClient.open(primary.address, rto=0.01) as client:
                event = await client.transact(Message.build(BINDING_REQUEST))
                assert event.addr == other.address
            async with await AsyncStunClient.open(
                primary.address, rto=0.01, connect_udp=True
            ) as connected:
                with pytest.raises(StunTimeoutError):
                    await connected.transact(Message.build(BINDING_REQUEST))
        finally:
            primary.close()
            other.close()

    run(main())


def test_unconnected_client_reaches_other_destinations() -> None:
    async def main() -> None:
        first = await udp_server(mirror)
        second = await udp_server(mirror)
        try:
            async with await AsyncStunClient.open(first.address) as client:
                event = await client.transact(Message.build(BINDING_REQUEST), addr=second.address)
                assert event.addr == second.address
                assert (len(first.received), len(second.received)) == (0, 1)
        finally:
            first.close()
            second.close()

    run(main())


def test_concurrent_requests_on_one_socket() -> None:
    """Answers in reverse order still reach the request they belong to."""
    held: list[tuple[Message, Address]] = []

    def hold_then_answer_backwards(request: Message, addr: Address) -> list[bytes]:
        held.append((request, addr))
        if len(held) < 3:
            return []
        return [
            binding_success(req, ("192.0.2.1", 1000 + i))
            for i, (req, _) in reversed(list(enumerate(held)))
        ]

    async def main() -> None:
        server = await udp_server(hold_then_answer_backwards)
        try:
            async with await AsyncStunClient.open(server.address) as client:
                requests = [Message.build(BINDING_REQUEST) for _ in range(3)]
                responses = await asyncio.gather(*(client.request(r) for r in requests))
        finally:
            server.close()
        for i, (request, response) in enumerate(zip(requests, responses, strict=True)):
            assert response.transaction_id == request.transaction_id
            mapped = XorMappedAddress.get_from(response)
            assert mapped is not None and mapped.address == ("192.0.2.1", 1000 + i)

    run(main())


def test_cancelling_a_request_abandons_its_transaction() -> None:
    async def main() -> None:
        silent = await udp_server()
        try:
            async with await AsyncStunClient.open(silent.address) as client:
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await client.transact(Message.build(BINDING_REQUEST))
                assert client.machine.get_timer() is None
                assert len(client.machine.table) == 0
        finally:
            silent.close()

    run(main())


def test_closing_fails_pending_requests() -> None:
    async def main() -> None:
        silent = await udp_server()
        try:
            client = await AsyncStunClient.open(silent.address)
            pending = asyncio.ensure_future(client.transact(Message.build(BINDING_REQUEST)))
            await silent.arrived.wait()
            client.close()
            with pytest.raises(ConnectionAbortedError):
                await pending
            await client.wait_closed()
            assert client.closed
            with pytest.raises(ConnectionError):
                await client.transact(Message.build(BINDING_REQUEST))
            assert client.machine.get_timer() is None
        finally:
            silent.close()

    run(main())


# -- TCP


StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_frame(reader: asyncio.StreamReader) -> Message:
    header = await reader.readexactly(20)
    body = await reader.readexactly(int.from_bytes(header[2:4], "big"))
    return Message.decode(header + body)


async def tcp_server(handler: StreamHandler) -> tuple[asyncio.Server, Address]:
    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    sockname = server.sockets[0].getsockname()
    return server, (sockname[0], sockname[1])


def test_tcp_frames_arrive_in_pieces_between_channel_data() -> None:
    async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_frame(reader)
        peer = writer.get_extra_info("peername")
        data = encode_channel_data(0x4000, b"relayed", stream=True)
        data += binding_success(request, (peer[0], peer[1]))
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
        await reader.read()  # until the client closes

    async def main() -> None:
        server, address = await tcp_server(dribble)
        async with server, await AsyncStunClient.open(address, transport="tcp") as client:
            assert client.transport == "tcp"
            assert await client.get_mapped_address() == client.local_address

    run(main())


def test_tcp_sends_once_and_times_out() -> None:
    """No retransmission over a reliable transport; Ti is still 79 RTO."""
    rto = 0.01
    seen: list[Message] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_frame(reader))

    async def main() -> None:
        server, address = await tcp_server(silent)
        loop = asyncio.get_running_loop()
        async with server:
            started = loop.time()
            with pytest.raises(StunTimeoutError):
                await stun_request(
                    address, Message.build(BINDING_REQUEST), transport="tcp", rto=rto
                )
            assert loop.time() - started >= 79 * rto - 0.005
        assert len(seen) == 1

    run(main())


def test_tcp_connection_closed_by_server_fails_the_request() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_frame(reader)

    async def main() -> None:
        server, address = await tcp_server(hang_up)
        loop = asyncio.get_running_loop()
        async with server:
            client = await AsyncStunClient.open(address, transport="tcp")
            started = loop.time()
            with pytest.raises(ConnectionError):
                await client.request(Message.build(BINDING_REQUEST))
            assert loop.time() - started < 2.0
            with pytest.raises(ConnectionError, match="connection failed"):
                await client.request(Message.build(BINDING_REQUEST))
            client.close()
            await client.wait_closed()

    run(main())


def test_tcp_stream_of_garbage_fails_the_request() -> None:
    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_frame(reader)
        writer.write(b"\x16\x03\x03\x00\x02\x02\x28")  # a TLS alert record
        await writer.drain()
        await reader.read()

    async def main() -> None:
        server, address = await tcp_server(garble)
        async with server:
            with pytest.raises(DecodeError, match="neither STUN nor ChannelData"):
                await stun_request(address, Message.build(BINDING_REQUEST), transport="tcp")

    run(main())


def test_tcp_refused_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connect is refused

        async def main() -> None:
            with pytest.raises(ConnectionRefusedError):
                await stun_request(
                    ("127.0.0.1", port), Message.build(BINDING_REQUEST), transport="tcp"
                )

        run(main())


def test_request_attributes_pass_through() -> None:
    """Attributes of the caller's request reach the wire; the request is not modified."""

    async def main() -> None:
        server = await udp_server(mirror)
        request = Message.build(BINDING_REQUEST, ChangeRequest(change_port=True))
        before = request.raw
        try:
            await stun_request(server.address, request, timeout=5)
        finally:
            server.close()
        assert request.raw == before
        sent = Message.decode(server.received[0][0])
        assert sent.transaction_id == request.transaction_id
        change = ChangeRequest.get_from(sent)
        assert change is not None and change.change_port and not change.change_ip
        assert AttrType.FINGERPRINT in sent

    run(main())
