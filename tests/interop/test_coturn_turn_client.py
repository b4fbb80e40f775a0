"""The asyncio TURN client (`ice.aio.turn_client.TurnClient`) against coturn.

coturn runs on loopback with ``--allow-loopback-peers``; the peer is a plain
UDP socket. Covered: UDP, TCP and TLS to the server; IPv4 and IPv6 relayed
addresses (REQUESTED-ADDRESS-FAMILY); static and TURN REST credentials; data
both ways, byte-exact, through Send/Data indications and through channels, in
sizes that need ChannelData padding over TCP; refreshes that keep an
allocation, its permissions and channels alive past short server lifetimes
(with 438 stale nonces on the way); error codes (401, 403, 440); a 300
redirect; garbage from the server's side; the server going away; the
`asyncio.DatagramTransport` face.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ice._codec import Message, encode_channel_data
from ice._errors import TurnError
from ice.aio.turn_client import TurnClient
from ice.attrs import Data, XorPeerAddress
from ice.constants import ALLOCATE_SUCCESS, DATA_INDICATION, REFRESH_SUCCESS
from ice.machine import Address
from ice.stun.client_auth import LongTermCredentials
from ice.stun.credentials import turn_rest_credentials
from ice.stun.uri import parse_uri
from ice.turn.events import (
    AllocationLost,
    ChannelBound,
    Closed,
    PermissionFailed,
    Redirected,
    Refreshed,
    TurnEvent,
)
from tests.support.coturn import (
    Coturn,
    free_port,
    requires_coturn,
    run_coturn,
    write_self_signed_cert,
)
from tests.support.loop import run

pytestmark = [pytest.mark.interop, requires_coturn]

T = TypeVar("T")
SECRET = "north-wind"
#: A peer coturn is told to refuse (--denied-peer-ip): CreatePermission gets 403.
DENIED_PEER = ("127.0.0.9", 9)
#: Payload sizes: 1-3 and 5, 7, 13 need ChannelData padding over TCP; 4 and 8 do not.
SIZES = [1, 2, 3, 4, 5, 7, 8, 13, 100, 255, 1023, 1200, 4097]


@pytest.fixture(scope="module")
def coturn() -> Iterator[Coturn]:
    """Listens (and relays) on 127.0.0.1 and ::1, with TLS; user alice:secret."""
    with run_coturn(
        f"--denied-peer-ip={DENIED_PEER[0]}", listen=("127.0.0.1", "::1"), tls=True
    ) as server:
        yield server


@pytest.fixture(scope="module")
def rest_coturn() -> Iterator[Coturn]:
    """TURN REST credentials only, and IPv4 only (no IPv6 relay address)."""
    with run_coturn(
        "--use-auth-secret", f"--static-auth-secret={SECRET}", listen=("127.0.0.1",), user=None
    ) as server:
        yield server


def server_target(server: Coturn, transport: str, host: str) -> tuple[str, ssl.SSLContext | None]:
    if transport == "tls":
        return server.uri("turns", host=host), server.ssl_context()
    return server.uri("turn", host=host, transport=transport), None


@contextlib.contextmanager
def udp_peer(host: str) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.setblocking(False)
        yield sock


def name(sock: socket.socket) -> Address:
    host, port = sock.getsockname()[:2]
    return (host, port)


async def peer_recv(sock: socket.socket, timeout: float = 5) -> tuple[bytes, Address]:
    async with asyncio.timeout(timeout):
        data, addr = await asyncio.get_running_loop().sock_recvfrom(sock, 70000)
    return data, (addr[0], addr[1])


async def peer_send(sock: socket.socket, data: bytes, addr: Address) -> None:
    await asyncio.get_running_loop().sock_sendto(sock, data, addr)


async def recv(relay: TurnClient, timeout: float = 5) -> tuple[bytes, Address]:
    async with asyncio.timeout(timeout):
        return await relay.recvfrom()


def payload(size: int, seed: int = 0) -> bytes:
    return bytes((seed * 7 + i * 13) & 0xFF for i in range(size))


async def exchange(relay: TurnClient, peer: socket.socket, sizes: list[int], seed: int = 0) -> None:
    """Each size both ways, byte-exact, with the right addresses on both sides."""
    for size in sizes:
        data = payload(size, seed)
        await relay.sendto(data, name(peer))
        got, source = await peer_recv(peer)
        assert (got, source) == (data, relay.relayed_address)
        back = payload(size, seed + 1)
        await peer_send(peer, back, source)
        assert await recv(relay) == (back, name(peer))


async def collect(relay: TurnClient) -> list[TurnEvent]:
    """The events so far, without waiting."""
    events: list[TurnEvent] = []
    iterator = relay.events()
    with contextlib.suppress(TimeoutError, StopAsyncIteration):
        while True:
            async with asyncio.timeout(0.05):
                events.append(await anext(iterator))
    return events


# -- data both ways


@pytest.mark.parametrize("path", ["indications", "channel"])
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_data_both_ways_byte_exact(coturn: Coturn, transport: str, family: int, path: str) -> None:
    """Every size both ways between the relay and a plain UDP peer; with channel_after=0
    only Send/Data indications, with a bound channel only ChannelData."""
    host = "::1" if family == 6 else "127.0.0.1"
    uri, context = server_target(coturn, transport, host)

    async def main() -> None:
        with udp_peer(host) as peer:
            relay = await TurnClient.allocate(
                uri, "alice", "secret", ssl=context, family=family, channel_after=0
            )
            async with relay:
                assert relay.transport == transport
                assert relay.server == (
                    host,
                    coturn.tls_port if transport == "tls" else coturn.port,
                )
                assert relay.relayed_address[0] == host
                assert relay.mapped_address == relay.local_address
                assert relay.lifetime == 600
                if path == "channel":
                    number = await relay.bind_channel(name(peer))
                    assert 0x4000 <= number <= 0x4FFF
                    assert await relay.bind_channel(name(peer)) == number  # the same one
                await exchange(relay, peer, SIZES)
                events = await collect(relay)
            bound = [e for e in events if isinstance(e, ChannelBound)]
            assert len(bound) == (1 if path == "channel" else 0)
            assert relay.dropped == 0

    run(main())


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_channel_is_bound_after_channel_after_datagrams(coturn: Coturn, transport: str) -> None:
    """Send indications first, then ChannelData once the machine has bound a channel
    by itself; nothing is lost or reordered on the way."""

    async def main() -> None:
        with udp_peer("127.0.0.1") as peer:
            uri, _ = server_target(coturn, transport, "127.0.0.1")
            async with await TurnClient.allocate(uri, "alice", "secret", channel_after=2) as relay:
                for seed in range(6):
                    await exchange(relay, peer, [5, 64], seed)
                events = await collect(relay)
                assert [e.peer for e in events if isinstance(e, ChannelBound)] == [name(peer)]
                # the peer's datagrams come back through the channel too
                await peer_send(peer, b"through the channel", relay.relayed_address)
                assert await recv(relay) == (b"through the channel", name(peer))

    run(main())


def test_datagrams_sent_before_the_permission_is_installed_arrive_in_order(
    coturn: Coturn,
) -> None:
    """Ten sendto calls at once to a new peer: all wait for the one CreatePermission,
    then go out in order."""

    async def main() -> None:
        with udp_peer("127.0.0.1") as peer:
            async with await TurnClient.allocate(coturn.uri("turn"), "alice", "secret") as relay:
                await asyncio.gather(*(relay.sendto(bytes([i]) * 3, name(peer)) for i in range(10)))
                got = [(await peer_recv(peer))[0] for _ in range(10)]
                assert got == [bytes([i]) * 3 for i in range(10)]

    run(main())


def test_one_relay_many_peers(coturn: Coturn) -> None:
    """An IPv6 relayed address talks to several IPv6 peers at once, interleaved."""

    async def main() -> None:
        with udp_peer("::1") as a, udp_peer("::1") as b, udp_peer("::1") as c:
            peers = [a, b, c]
            relay = await TurnClient.allocate(
                coturn.uri("turn", "::1"), "alice", "secret", family=6
            )
            async with relay:
                await relay.create_permission(*(name(p) for p in peers))
                for round_ in range(3):
                    for i, peer in enumerate(peers):
                        await relay.sendto(payload(33, round_ * 3 + i), name(peer))
                    for i, peer in enumerate(peers):
                        assert await peer_recv(peer) == (
                            payload(33, round_ * 3 + i),
                            relay.relayed_address,
                        )
                        await peer_send(peer, payload(9, i), relay.relayed_address)
                    received = {await recv(relay) for _ in peers}
                    assert received == {(payload(9, i), name(p)) for i, p in enumerate(peers)}

    run(main())


# -- credentials and errors


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_rest_credentials(rest_coturn: Coturn, transport: str) -> None:
    username, password = turn_rest_credentials(SECRET, "bob", 3600, time.time())

    async def main() -> None:
        with udp_peer("127.0.0.1") as peer:
            uri, _ = server_target(rest_coturn, transport, "127.0.0.1")
            async with await TurnClient.allocate(uri, username, password) as relay:
                await exchange(relay, peer, [1, 7, 500])

    run(main())


@pytest.mark.parametrize(
    ("secret", "age"),
    [("wrong secret", 0), (SECRET, 7200)],  # expired an hour ago
    ids=["wrong-secret", "expired"],
)
def test_rest_credentials_refused(rest_coturn: Coturn, secret: str, age: int) -> None:
    username, password = turn_rest_credentials(secret, "bob", 3600, time.time() - age)
    with pytest.raises(TurnError) as error:
        run(TurnClient.allocate(rest_coturn.uri("turn"), username, password, timeout=10))
    assert error.value.code == 401


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_wrong_password_is_401(coturn: Coturn, transport: str) -> None:
    uri, context = server_target(coturn, transport, "127.0.0.1")
    with pytest.raises(TurnError) as error:
        run(TurnClient.allocate(uri, "alice", "not the secret", ssl=context, timeout=10))
    assert error.value.code == 401


def test_ipv6_relay_where_there_is_none_is_440(rest_coturn: Coturn) -> None:
    """REQUESTED-ADDRESS-FAMILY IPv6 from a server without an IPv6 relay address."""
    username, password = turn_rest_credentials(SECRET, None, 600, time.time())
    with pytest.raises(TurnError) as error:
        run(TurnClient.allocate(rest_coturn.uri("turn"), username, password, family=6))
    assert error.value.code == 440


def test_refused_permission_raises_and_the_relay_keeps_working(coturn: Coturn) -> None:
    """A denied peer: sendto raises 403 (and the event says so); other peers still work."""

    async def main() -> None:
        with udp_peer("127.0.0.1") as peer:
            async with await TurnClient.allocate(coturn.uri("turn"), "alice", "secret") as relay:
                with pytest.raises(TurnError) as error:
                    await relay.sendto(b"no", DENIED_PEER)
                assert error.value.code == 403
                with pytest.raises(TurnError) as error:
                    await relay.create_permission(DENIED_PEER)
                assert error.value.code == 403
                with pytest.raises(TurnError) as error:
                    await relay.bind_channel(DENIED_PEER)
                assert error.value.code == 403
                await exchange(relay, peer, [10])
                failed = [e for e in await collect(relay) if isinstance(e, PermissionFailed)]
                assert failed and failed[0].peers == (DENIED_PEER[0],)
                assert failed[0].code == 403

    run(main())


def test_target_forms_and_credentials_object(coturn: Coturn) -> None:
    """A StunUri, a (host, port) tuple (UDP; TLS with ssl=), credentials=."""

    async def main() -> None:
        with udp_peer("127.0.0.1") as peer:
            targets: list[tuple[Any, ssl.SSLContext | None, str]] = [
                (parse_uri(coturn.uri("turn", transport="tcp")), None, "tcp"),
                (("127.0.0.1", coturn.port), None, "udp"),
                (("::1", coturn.tls_port), coturn.ssl_context(), "tls"),
                (f"turns:localhost:{coturn.tls_port}", coturn.ssl_context(), "tls"),
            ]
            credentials = LongTermCredentials("alice", "secret")
            for target, context, kind in targets:
                relay = await TurnClient.allocate(target, credentials=credentials, ssl=context)
                async with relay:
                    assert relay.transport == kind
                    await exchange(relay, peer, [3])
            assert credentials.nonce is None  # each allocation signs with its own copy
            with pytest.raises(TypeError):
                await TurnClient.allocate(coturn.uri("turn"), "alice", credentials=credentials)
            with pytest.raises(TypeError):
                await TurnClient.allocate(coturn.uri("turn"), "alice")

    run(main())


def test_tls_verifies_the_server_by_default(coturn: Coturn, tmp_path: Path) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        run(TurnClient.allocate(coturn.uri("turns"), "alice", "secret"))  # system CAs
    other_cert, _ = write_self_signed_cert(tmp_path)
    context = ssl.create_default_context(cafile=str(other_cert))
    with pytest.raises(ssl.SSLCertVerificationError):
        run(TurnClient.allocate(coturn.uri("turns"), "alice", "secret", ssl=context))


def test_even_port_and_reservation_token(coturn: Coturn) -> None:
    """EVEN-PORT with the next port reserved; the token allocates that next port."""

    async def main() -> None:
        first = await TurnClient.allocate(
            coturn.uri("turn"), "alice", "secret", even_port=True, reserve_next_port=True
        )
        async with first:
            assert first.relayed_address[1] % 2 == 0
            assert first.allocation is not None
            token = first.allocation.reservation_token
            assert token is not None and len(token) == 8
            second = await TurnClient.allocate(
                coturn.uri("turn"), "alice", "secret", reservation_token=token
            )
            async with second:
                assert second.relayed_address == (
                    first.relayed_address[0],
                    first.relayed_address[1] + 1,
                )

    run(main())


def test_dual_stack_request_is_answered(coturn: Coturn) -> None:
    """ADDITIONAL-ADDRESS-FAMILY: IPv4 first; coturn 4.6 ignores the extra family, a
    newer server adds an IPv6 address."""

    async def main() -> None:
        relay = await TurnClient.allocate(coturn.uri("turn"), "alice", "secret", dual_stack=True)
        async with relay:
            assert relay.relayed_addresses[0][0] == "127.0.0.1"
            assert all(":" in host for host, _ in relay.relayed_addresses[1:])

    run(main())


# -- lifetimes: refreshes keep traffic flowing


def test_refreshes_keep_traffic_flowing_past_every_lifetime() -> None:
    """coturn with a 6 s maximum allocation lifetime, 4 s permissions, 5 s channels and
    3 s nonces: for 12 s both relays keep talking to their peers (Send indications on
    one, a channel on the other), refreshing each before it lapses and answering the
    438 stale-nonce challenges; a relay told the wrong permission lifetime, and so
    never refreshing in time, is cut off: the lifetimes are real."""

    async def keep_talking(relay: TurnClient, peer: socket.socket, seconds: float) -> int:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        rounds = 0
        while loop.time() < end:
            await exchange(relay, peer, [rounds % 7 + 1], rounds)
            rounds += 1
            await asyncio.sleep(0.25)
        return rounds

    async def main(server: Coturn) -> None:
        with udp_peer("127.0.0.1") as a, udp_peer("127.0.0.1") as b, udp_peer("127.0.0.1") as c:
            settings: dict[str, Any] = {"permission_lifetime": 4, "channel_lifetime": 5}
            indications = await TurnClient.allocate(
                server.uri("turn"), "alice", "secret", channel_after=0, **settings
            )
            channel = await TurnClient.allocate(
                server.uri("turn", transport="tcp"), "alice", "secret", **settings
            )
            control = await TurnClient.allocate(
                server.uri("turn"), "alice", "secret", channel_after=0, permission_lifetime=300
            )
            async with indications, channel, control:
                assert indications.lifetime == channel.lifetime == 6
                nonce = channel.machine.credentials.nonce
                await channel.bind_channel(name(b))
                await exchange(control, c, [4])
                rounds = await asyncio.gather(
                    keep_talking(indications, a, 12), keep_talking(channel, b, 12)
                )
                assert min(rounds) > 20
                for relay in (indications, channel):
                    refreshed = [e for e in await collect(relay) if isinstance(e, Refreshed)]
                    # coturn grants 6 s, then answers the Refresh with 600 s, beyond its
                    # --max-allocate-lifetime: one allocation refresh in the 12 s
                    assert refreshed
                    assert relay.machine.credentials.nonce != nonce  # 438 answered
                # the control relay's permission lapsed at the server long ago
                await control.sendto(b"lost", name(c))
                with pytest.raises(TimeoutError):
                    await peer_recv(c, timeout=1)
                await peer_send(c, b"lost too", control.relayed_address)
                with pytest.raises(TimeoutError):
                    await recv(control, timeout=1)

    with run_coturn(
        "--max-allocate-lifetime=6",
        "--permission-lifetime=4",
        "--channel-lifetime=5",
        "--stale-nonce=3",
        listen=("127.0.0.1",),
    ) as server:
        run(main(server), timeout=40)


# -- redirects, garbage, loss


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_300_redirect_to_the_alternate_server(coturn: Coturn, transport: str) -> None:
    """coturn with --alternate-server (--tls-alternate-server) answers Allocate with
    300; the client connects to the alternate server, verifying its certificate over
    TLS, and allocates there, signing with the new server's nonce."""
    port = coturn.tls_port if transport == "tls" else coturn.port

    async def main(front: Coturn) -> None:
        with udp_peer("127.0.0.1") as peer:
            uri, context = server_target(front, transport, "127.0.0.1")
            if context is not None:  # trust both servers' certificates
                context.load_verify_locations(cafile=str(coturn.cert_path))
            async with await TurnClient.allocate(uri, "alice", "secret", ssl=context) as relay:
                assert relay.server == ("127.0.0.1", port)
                assert relay.transport == transport
                await exchange(relay, peer, [1, 30])
                events = await collect(relay)
                assert [e.server for e in events if isinstance(e, Redirected)] == [relay.server]

    option = "--tls-alternate-server" if transport == "tls" else "--alternate-server"
    with run_coturn(
        f"{option}=127.0.0.1:{port}", listen=("127.0.0.1",), tls=transport == "tls"
    ) as front:
        run(main(front))


class _Proxy:
    """Relays a UDP or TCP conversation with coturn, and injects bytes to the client
    as if the server had sent them."""

    def __init__(self, kind: str, upstream: Address) -> None:
        self.kind = kind
        self.upstream = upstream
        self.port = 0
        self._client_writer: asyncio.StreamWriter | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._client_addr: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> _Proxy:
        loop = asyncio.get_running_loop()
        if self.kind == "tcp":
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            return self
        proxy = self
        upstream_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        upstream_sock.connect(self.upstream)

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                proxy._client_addr = addr
                upstream.sendto(data)

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                proxy.inject(data)

        front, _ = await loop.create_datagram_endpoint(Front, local_addr=("127.0.0.1", 0))
        upstream, _ = await loop.create_datagram_endpoint(Back, sock=upstream_sock)
        self._udp = front  # type: ignore[assignment]
        self._upstream_udp = upstream
        self.port = front.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client_writer is not None:
            self._client_writer.close()
        if self._udp is not None:
            self._udp.close()
            self._upstream_udp.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._client_writer = writer
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
            dst.close()

        self._tasks += [
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ]

    def inject(self, data: bytes) -> None:
        if self._udp is not None:
            self._udp.sendto(data, self._client_addr)
        else:
            assert self._client_writer is not None
            self._client_writer.write(data)


def _framed_garbage(reliable: bool) -> list[bytes]:
    """Frames that parse as STUN or ChannelData but mean nothing to the client."""
    stray = Message.build(ALLOCATE_SUCCESS)  # no outstanding request has this ID
    stray.add_fingerprint()
    refresh = Message.build(REFRESH_SUCCESS)
    no_peer = Message.build(DATA_INDICATION, Data(b"who sent this?"))
    no_data = Message.build(DATA_INDICATION, XorPeerAddress("127.0.0.1", 9))
    return [
        stray.raw,
        refresh.raw,
        no_peer.raw,
        no_data.raw,
        encode_channel_data(0x4FFF, b"unbound channel", reliable),
        encode_channel_data(0x4FFE, b"", reliable),
    ]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_garbage_from_the_server_side_is_ignored(coturn: Coturn, transport: str) -> None:
    async def main() -> None:
        with udp_peer("127.0.0.1") as peer:
            async with _Proxy(transport, coturn.address) as proxy:
                uri = f"turn:127.0.0.1:{proxy.port}?transport={transport}"
                async with await TurnClient.allocate(uri, "alice", "secret") as relay:
                    await exchange(relay, peer, [3])
                    garbage = _framed_garbage(transport == "tcp")
                    if transport == "udp":  # datagrams need no framing
                        garbage += [b"", b"\x00", b"\xff" * 40, b"\x01\x01\x00\x08" + bytes(12)]
                        garbage += [Message.build(ALLOCATE_SUCCESS).raw[:-1], bytes(range(256))]
                    for junk in garbage:
                        proxy.inject(junk)
                    await exchange(relay, peer, [1, 2, 100], seed=5)
                    assert relay.machine.dropped >= len(garbage) - 1
                    assert not [e for e in await collect(relay) if isinstance(e, AllocationLost)]

    run(main())


def test_unframeable_bytes_on_the_stream_lose_the_allocation(coturn: Coturn) -> None:
    """A TCP stream that is neither STUN nor ChannelData cannot be resynchronised:
    the allocation is lost, which recvfrom, sendto and events all say."""

    async def main() -> None:
        with udp_peer("127.0.0.1") as peer:
            async with _Proxy("tcp", coturn.address) as proxy:
                uri = f"turn:127.0.0.1:{proxy.port}?transport=tcp"
                async with await TurnClient.allocate(uri, "alice", "secret") as relay:
                    await exchange(relay, peer, [3])
                    waiting = asyncio.ensure_future(relay.recvfrom())
                    proxy.inject(b"\xff" * 64)
                    with pytest.raises(TurnError) as error:
                        await asyncio.wait_for(waiting, 5)
                    assert error.value.code == 0
                    with pytest.raises(TurnError):
                        await relay.sendto(b"x", name(peer))
                    events = await collect(relay)
                    assert isinstance(events[-1], AllocationLost)

    run(main())


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_server_gone_is_an_event_and_an_error(transport: str) -> None:
    """coturn stops: over TCP at once, over UDP at the next send (ICMP port
    unreachable), the allocation is lost; what was received is still delivered."""

    async def main(server: Coturn) -> None:
        with udp_peer("127.0.0.1") as peer:
            uri = server.uri("turn", transport=transport)
            async with await TurnClient.allocate(uri, "alice", "secret") as relay:
                await exchange(relay, peer, [3])
                await peer_send(peer, b"before", relay.relayed_address)
                async with asyncio.timeout(5):
                    while relay._inbox.qsize() == 0:
                        await asyncio.sleep(0.01)
                server.process.terminate()
                await asyncio.to_thread(server.process.wait)
                if transport == "udp":
                    with contextlib.suppress(TurnError):
                        await relay.sendto(b"anyone there?", name(peer))
                events = relay.events()
                async with asyncio.timeout(5):
                    last = [e async for e in events][-1]
                assert isinstance(last, AllocationLost)
                assert last.code == 0
                assert await relay.recvfrom() == (b"before", name(peer))
                with pytest.raises(TurnError):
                    await relay.recvfrom()
                with pytest.raises(TurnError):
                    await relay.sendto(b"x", name(peer))

    with run_coturn(listen=("127.0.0.1",)) as server:
        run(main(server))


# -- close, queue, datagram transport


def relayed_port_is_closed(relayed: Address, within: float = 0.3) -> bool:
    """True when datagrams to the relayed address are refused (ICMP port unreachable)
    within ``within`` seconds. coturn frees a UDP client's relay port a moment after
    the Refresh that deletes the allocation, a TCP client's at once."""
    family = socket.AF_INET6 if ":" in relayed[0] else socket.AF_INET
    deadline = time.monotonic() + within
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        sock.connect(relayed)
        while time.monotonic() < deadline:
            sock.send(b"?")
            try:
                sock.recv(10)
            except ConnectionRefusedError:
                return True
            except TimeoutError:
                continue
    return False


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_close_releases_the_allocation(coturn: Coturn, transport: str) -> None:
    async def main() -> Address:
        uri = coturn.uri("turn", transport=transport)
        async with await TurnClient.allocate(uri, "alice", "secret") as relay:
            relayed = relay.relayed_address
            assert not relayed_port_is_closed(relayed)
        assert relay.closed
        with pytest.raises(ConnectionAbortedError):
            await relay.recvfrom()
        with pytest.raises(ConnectionAbortedError):
            await relay.sendto(b"x", ("127.0.0.1", 9))
        events = await collect(relay)
        assert isinstance(events[-1], Closed)
        await relay.close()  # again: nothing happens
        return relayed

    relayed = run(main())
    assert relayed_port_is_closed(relayed, within=5)


def test_a_full_queue_drops_the_oldest(coturn: Coturn) -> None:
    async def main() -> None:
        with udp_peer("127.0.0.1") as peer:
            relay = await TurnClient.allocate(coturn.uri("turn"), "alice", "secret", queue_size=4)
            async with relay:
                await exchange(relay, peer, [1])
                for i in range(10):
                    await peer_send(peer, bytes([i]), relay.relayed_address)
                async with asyncio.timeout(5):
                    while relay.dropped < 6:
                        await asyncio.sleep(0.01)
                got = [(await recv(relay))[0] for _ in range(4)]
                assert got == [bytes([i]) for i in range(6, 10)]
                assert relay.dropped == 6

    run(main())


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.made = asyncio.get_running_loop().create_future()
        self.lost = asyncio.get_running_loop().create_future()
        self.queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.errors: list[Exception] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.set_result(transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


@pytest.mark.parametrize("transport", ["udp", "tls"])
def test_as_a_datagram_transport(coturn: Coturn, transport: str) -> None:
    async def main() -> Address:
        with udp_peer("::1") as peer:
            uri, context = server_target(coturn, transport, "127.0.0.1")
            relay = await TurnClient.allocate(uri, "alice", "secret", ssl=context, family=6)
            protocol = _Collector()
            datagrams = relay.as_datagram_transport(protocol)
            assert isinstance(datagrams, asyncio.DatagramTransport)
            assert await protocol.made is datagrams
            assert datagrams.get_extra_info("sockname") == relay.relayed_address
            assert datagrams.get_extra_info("peername") is None
            assert datagrams.get_extra_info("turn_client") is relay
            for size in (1, 6, 999):
                datagrams.sendto(payload(size), name(peer))
                assert await peer_recv(peer) == (payload(size), relay.relayed_address)
                await peer_send(peer, payload(size, 1), relay.relayed_address)
                async with asyncio.timeout(5):
                    assert await protocol.queue.get() == (payload(size, 1), name(peer))
            datagrams.sendto(b"denied", ("127.0.0.9", 9))  # IPv4 peer of an IPv6 relay
            async with asyncio.timeout(5):
                while not protocol.errors:
                    await asyncio.sleep(0.01)
            assert isinstance(protocol.errors[0], TurnError)
            assert not datagrams.is_closing()
            datagrams.close()
            assert datagrams.is_closing()
            async with asyncio.timeout(5):
                assert await protocol.lost is None
            await relay.close()
            return relay.relayed_address

    relayed = run(main())
    assert relayed_port_is_closed(relayed, within=5)


# -- no server


def test_a_silent_server_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        target = ("127.0.0.1", silent.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(TurnError) as error:
            run(TurnClient.allocate(target, "alice", "secret", timeout=0.5))
        assert error.value.code == 0
        assert "within 0.5 s" in error.value.reason
        assert time.monotonic() - started < 5
        assert silent.recv(2048)  # it was asked


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_nobody_listening_is_refused(transport: str) -> None:
    port = free_port("udp" if transport == "udp" else "tcp")
    with pytest.raises(ConnectionRefusedError):
        run(TurnClient.allocate(f"turn:127.0.0.1:{port}?transport={transport}", "a", "b"))


def test_a_name_resolves_to_every_address_in_turn(rest_coturn: Coturn) -> None:
    """localhost may come first as ::1, where this coturn does not listen: refused
    over TCP at once, and over UDP by ICMP, the client moves on to 127.0.0.1."""
    username, password = turn_rest_credentials(SECRET, None, 600, time.time())

    async def main() -> None:
        for transport in ("udp", "tcp"):
            uri = f"turn:localhost:{rest_coturn.port}?transport={transport}"
            async with await TurnClient.allocate(uri, username, password, timeout=10) as relay:
                assert relay.server == ("127.0.0.1", rest_coturn.port)

    run(main())


def test_a_5_tuple_still_allocated_is_retried_from_another_port(
    coturn: Coturn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 8656 7.4: 437 to Allocate means the server still holds an allocation for
    that 5-tuple (the OS reused a port): the client tries other ports."""
    import ice.aio.turn_client as aio_turn

    async def main() -> None:
        port = free_port("udp")
        held = await TurnClient.allocate(
            coturn.uri("turn"), "alice", "secret", local_addr=("127.0.0.1", port)
        )
        held.abort()  # the socket is gone, coturn still holds the allocation
        real_open = aio_turn.open_channel
        calls: list[Any] = []

        async def first_from_the_same_port(*args: Any, **kwargs: Any) -> Any:
            calls.append(kwargs.get("local_addr"))
            if len(calls) == 1:
                kwargs["local_addr"] = ("127.0.0.1", port)
            return await real_open(*args, **kwargs)

        monkeypatch.setattr(aio_turn, "open_channel", first_from_the_same_port)
        relay = await TurnClient.allocate(coturn.uri("turn"), "alice", "secret")
        async with relay:
            assert len(calls) == 2  # 437 from the old 5-tuple, then a fresh port
            assert relay.local_address[1] != port

        monkeypatch.setattr(aio_turn, "open_channel", real_open)
        with pytest.raises(TurnError) as pinned:  # a port the caller chose is not changed
            await TurnClient.allocate(
                coturn.uri("turn"), "alice", "secret", local_addr=("127.0.0.1", port)
            )
        assert pinned.value.code == 437

    run(main())
