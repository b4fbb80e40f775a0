"""The fallbacks of `ice.aio.portable`, each forced on Linux and checked end to end over
loopback (or checked to fail with an `ice.Error` that names the platform).

- A loop without ``add_reader`` is Windows' default proactor loop: the fixture
  ``no_add_reader`` makes every selector loop of a test refuse it the same way
  (NotImplementedError), while asyncio's own transports keep working (they
  use the private ``_add_reader``).
- No SO_REUSEPORT is Windows too: ``monkeypatch.delattr(socket, "SO_REUSEPORT")``.
- The don't-fragment table is checked per ``sys.platform`` value, and on this
  machine (Linux) on a relay socket the server really opened.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any

import pytest

import ice
from ice.__main__ import main
from ice._load.engine import run_stun
from ice.aio.mdns import MdnsService
from ice.aio.portable import (
    DatagramIO,
    accept_forever,
    dont_fragment_options,
    enlarge_buffers,
    platform_name,
)
from ice.aio.stun_server import Listener, StunServerRunner
from ice.aio.turn_client import TurnClient
from ice.aio.turn_server import TurnServerRunner, _ListenerEndpoint
from ice.stun.server import StunServer
from ice.turn.server import TurnServer
from tests.support.ice_turn_server import USERS, run_ice_turn
from tests.support.loop import run

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="forces Linux's own calls off")


@pytest.fixture
def no_add_reader(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Selector loops without add_reader, as Windows' proactor loop: the file
    descriptors it was asked for (the fast path is tried first)."""
    tried: list[int] = []

    def add_reader(self: asyncio.AbstractEventLoop, fd: int, *args: object) -> None:
        tried.append(fd)
        raise NotImplementedError

    monkeypatch.setattr(asyncio.SelectorEventLoop, "add_reader", add_reader)
    return tried


@pytest.fixture
def no_reuse_port(monkeypatch: pytest.MonkeyPatch) -> None:
    if hasattr(socket, "SO_REUSEPORT"):
        monkeypatch.delattr(socket, "SO_REUSEPORT")


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def bindable(kind: int, address: tuple[str, int]) -> bool:
    """Whether ``address`` is free again (for TCP: no listener holds it)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            if kind == socket.SOCK_STREAM:
                sock.listen()
        except OSError:
            return False
    return True


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# -- socket buffers


def test_enlarge_buffers_grows_a_buffer_and_never_shrinks_one() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        default = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        enlarge_buffers(sock, default // 4)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == default
        enlarge_buffers(sock, 2 * default)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > default
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) > default // 4


def test_enlarge_buffers_can_leave_the_send_buffer_alone() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        receive = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        send = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        enlarge_buffers(sock, 2 * max(receive, send), send=False)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > receive
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == send


def test_a_platform_that_refuses_a_buffer_size_keeps_its_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Refusing(socket.socket):
        def setsockopt(self, *args: Any) -> None:
            raise OSError(22, "Invalid argument")

    with Refusing(socket.AF_INET, socket.SOCK_DGRAM) as sock, caplog.at_level(logging.DEBUG):
        default = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        enlarge_buffers(sock)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == default
    assert "socket buffer size not set" in caplog.text


# -- loops without add_reader


def test_turn_relays_udp_on_a_loop_without_add_reader(no_add_reader: list[int]) -> None:
    """Listener and relay sockets on datagram transports; the compiled pump still
    relays ChannelData both ways, and the core still answers (Allocate, Refresh,
    ChannelBind, Send indications)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        peer = udp_socket()
        try:
            async with run_ice_turn(transports=("udp",)) as turn:
                listener = turn.runner._udp_list[0]
                assert isinstance(listener, _ListenerEndpoint)
                assert isinstance(listener.batch, DatagramIO) and listener.batch.transport
                listen_address = listener.local
                address = peer.getsockname()
                relay = await TurnClient.allocate(turn.uri("udp"), "alice", USERS["alice"])
                try:
                    (endpoint,) = turn.runner._relays.values()
                    assert isinstance(endpoint.batch, DatagramIO)
                    await relay.sendto(b"indication", address)  # a Send indication
                    assert await loop.sock_recvfrom(peer, 100) == (
                        b"indication",
                        relay.relayed_address,
                    )
                    await relay.bind_channel(address)
                    forwarded = turn.runner.pump.forwarded
                    for i in range(5):
                        await relay.sendto(b"out %d" % i, address)
                        data, back = await loop.sock_recvfrom(peer, 100)
                        assert (data, back) == (b"out %d" % i, relay.relayed_address)
                        await loop.sock_sendto(peer, b"back %d" % i, relay.relayed_address)
                        assert await relay.recvfrom() == (b"back %d" % i, address)
                    assert turn.runner.pump.forwarded - forwarded == 10
                finally:
                    await relay.close()
                relayed = relay.relayed_address
                assert turn.runner.relay_count == 0
            await turns()
            assert bindable(socket.SOCK_DGRAM, relayed)
            assert bindable(socket.SOCK_DGRAM, listen_address)
        finally:
            peer.close()

    run(main())
    assert no_add_reader  # the fast path was asked first


def test_a_relay_closed_before_its_transport_is_up_closes_its_socket(
    no_add_reader: list[int],
) -> None:
    async def main() -> None:
        async with run_ice_turn(transports=("udp",)) as turn:
            runner: TurnServerRunner = turn.runner
            probe = udp_socket()
            address = probe.getsockname()
            probe.close()
            assert runner.open_relay(address)
            endpoint = runner._relays[address]
            assert isinstance(endpoint.batch, DatagramIO) and endpoint.batch.transport is None
            runner.close_relay(address)  # before the loop turned: no transport yet
            await turns()
            assert endpoint.batch.transport is None
            assert bindable(socket.SOCK_DGRAM, address)

    run(main())


def test_turn_tcp_relay_accepts_on_a_loop_without_add_reader(no_add_reader: list[int]) -> None:
    """RFC 6062: the relay's listening socket is accepted with loop.sock_accept."""

    async def main() -> None:
        async with run_ice_turn(transports=("tcp",)) as turn:
            relay = await TurnClient.allocate(
                turn.uri("tcp"), "alice", USERS["alice"], relay_transport="tcp"
            )
            async with relay:
                relayed = relay.relayed_address
                (listener,) = turn.runner.tcp._listeners.values()
                assert listener._fallback is not None
                await relay.create_permission("127.0.0.1")
                incoming = asyncio.ensure_future(relay.accept())
                in_reader, in_writer = await asyncio.open_connection(*relayed)
                peer, reader, writer = await asyncio.wait_for(incoming, 5)
                assert peer == in_writer.get_extra_info("sockname")[:2]
                writer.write(b"to the peer")
                assert await in_reader.readexactly(11) == b"to the peer"
                in_writer.write(b"to the client")
                assert await reader.readexactly(13) == b"to the client"
                for w in (writer, in_writer):
                    w.close()
            await turns()
            assert turn.runner.tcp.listener_count == 0
            assert bindable(socket.SOCK_STREAM, relayed)

    run(main())


def test_mdns_resolves_on_a_loop_without_add_reader(no_add_reader: list[int]) -> None:
    async def main() -> None:
        try:
            a = await MdnsService.start(interface="127.0.0.1")
            b = await MdnsService.start(interface="127.0.0.1")
        except OSError as exc:
            pytest.skip(f"no IPv4 multicast on loopback here: {exc}")
        try:
            assert a._fallbacks and b._fallbacks
            name = a.register("127.0.0.1")
            assert await b.resolve(name, 2.0) == ("127.0.0.1",)
        finally:
            a.close()
            b.close()
        await turns()
        assert all(s.fileno() == -1 for s in (*a._fallbacks, *b._fallbacks))

    run(main())


def test_the_load_generator_refuses_a_loop_without_add_reader(
    no_add_reader: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ice.Error, match=f"add_reader.*{platform_name()}.*SelectorEventLoop"):
        run(run_stun(("127.0.0.1", 9), flows=2, duration=0.1))
    assert main(["load", "stun", "stun:127.0.0.1:9", "--duration", "0.1"]) == 1
    assert "does not have: run it on an asyncio.SelectorEventLoop" in capsys.readouterr().err


def test_datagram_io_sends_before_its_transport_is_up_and_counts_what_it_drops() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        peer, sock = udp_socket(), udp_socket()
        away = peer.getsockname()
        got: list[tuple[bytes, tuple[str, int]]] = []
        io = DatagramIO(sock, lambda data, addr: got.append((data, addr)), "test")
        try:
            task = io.open(loop)
            assert io.sendto(b"early", peer.getsockname())  # straight to the socket
            await task
            assert io.transport is not None
            assert io.send([(b"one", peer.getsockname()), (b"two", peer.getsockname())]) == 2
            for expected in (b"early", b"one", b"two"):
                assert await loop.sock_recvfrom(peer, 10) == (expected, sock.getsockname())
            await loop.sock_sendto(peer, b"in", sock.getsockname())
            async with asyncio.timeout(5):
                while not got:
                    await asyncio.sleep(0.001)
            assert got == [(b"in", peer.getsockname())]
            assert io.recv() == []
        finally:
            io.close()
            peer.close()
        assert not io.sendto(b"late", away) and io.dropped == 1
        await turns()
        assert sock.fileno() == -1

    run(main())


def test_accept_forever_accepts_until_cancelled_then_closes_the_socket() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        accepted: asyncio.Queue[socket.socket] = asyncio.Queue()
        task = accept_forever(loop, listener, lambda conn, addr: accepted.put_nowait(conn), "test")
        for _ in range(2):
            _, writer = await asyncio.open_connection(*listener.getsockname())
            conn = await asyncio.wait_for(accepted.get(), 5)
            assert conn.getpeername() == writer.get_extra_info("sockname")
            conn.close()
            writer.close()
        task.cancel()
        await turns()
        assert task.cancelled() and listener.fileno() == -1

    run(main())


# -- no SO_REUSEPORT


def test_reuse_port_is_refused_with_the_platform_named(no_reuse_port: None) -> None:
    async def main() -> None:
        with pytest.raises(ice.Error, match=f"SO_REUSEPORT, which {platform_name()}"):
            StunServerRunner(StunServer(), [Listener("udp", "127.0.0.1", 0)], reuse_port=True)
        server = TurnServer(
            authenticator=ice.LongTermAuthenticator("x", USERS), relay_ips=["127.0.0.1"]
        )
        with pytest.raises(ice.Error, match="SO_REUSEPORT"):
            TurnServerRunner(server, [Listener("udp", "127.0.0.1", 0)], reuse_port=True)
        async with StunServerRunner(StunServer(), [Listener("tcp", "127.0.0.1", 0)]) as runner:
            _, (host, port) = runner.addresses[0]
            reader, writer = await asyncio.open_connection(host, port)
            request = ice.Message.build(ice.constants.BINDING_REQUEST)
            writer.write(request.raw)
            header = await reader.readexactly(20)
            answer = ice.Message.decode(header + await reader.readexactly(header[3]))
            assert answer.transaction_id == request.transaction_id
            writer.close()

    run(main())


def test_server_workers_are_refused_with_the_platform_named(
    no_reuse_port: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["server", "--stun-only", "--listen", "127.0.0.1:3478", "--workers", "2"])
    assert code == 2
    error = capsys.readouterr().err
    assert f"--workers 2 needs SO_REUSEPORT, which {platform_name()} does not have" in error


def test_ice_tcp_without_so_reuseport_leaves_out_so_candidates_and_connects(
    no_reuse_port: None, caplog: pytest.LogCaptureFixture
) -> None:
    loopback = {"ip_filter": ["127.0.0.1"], "include_loopback": True, "use_ipv6": False}

    async def main() -> None:
        a = ice.Connection(ice_controlling=True, tcp=True, udp=False, **loopback)  # type: ignore[arg-type]
        b = ice.Connection(ice_controlling=False, tcp=True, udp=False, **loopback)  # type: ignore[arg-type]
        try:
            with caplog.at_level(logging.INFO, logger="ice.aio.ice_tcp"):
                await asyncio.gather(a.gather_candidates(), b.gather_candidates())
            for connection in (a, b):
                assert sorted(c.tcptype or "" for c in connection.local_candidates) == [
                    "active",
                    "passive",
                ]
            for x, y in ((a, b), (b, a)):
                x.remote_username, x.remote_password = y.local_username, y.local_password
                for candidate in y.local_candidates:
                    await x.add_remote_candidate(candidate)
                await x.add_remote_candidate(None)
            async with asyncio.timeout(15):
                await asyncio.gather(a.connect(), b.connect())
            await a.send(b"over tcp")
            assert await b.recv() == b"over tcp"
        finally:
            await asyncio.gather(a.close(), b.close())

    run(main())
    said = [r.getMessage() for r in caplog.records if "no so TCP candidate" in r.getMessage()]
    assert said == [f"no so TCP candidate on 127.0.0.1: {platform_name()} has no SO_REUSEPORT"] * 2


@linux_only
def test_turn_tcp_connect_without_so_reuseport_fails_clearly(
    no_reuse_port: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux's SO_REUSEADDR does not share a listening port: a Connect from the relayed
    address fails with 447, said once in the log; peers connecting in still work."""
    monkeypatch.setattr("ice.aio.turn_server_tcp._no_reuse_port_said", False)

    async def main() -> None:
        peer_server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        try:
            async with run_ice_turn(transports=("tcp",)) as turn:
                relay = await TurnClient.allocate(
                    turn.uri("tcp"), "alice", USERS["alice"], relay_transport="tcp"
                )
                async with relay:
                    with pytest.raises(ice.TurnError) as failed:
                        await relay.connect(peer_server.sockets[0].getsockname()[:2])
                    assert failed.value.code == 447
                    await relay.create_permission("127.0.0.1")
                    incoming = asyncio.ensure_future(relay.accept())
                    _, in_writer = await asyncio.open_connection(*relay.relayed_address)
                    _, reader, writer = await asyncio.wait_for(incoming, 5)
                    in_writer.write(b"in")
                    assert await reader.readexactly(2) == b"in"
                    for w in (writer, in_writer):
                        w.close()
        finally:
            peer_server.close()

    with caplog.at_level(logging.WARNING, logger="ice.aio.turn_server_tcp"):
        run(main())
    said = [r.getMessage() for r in caplog.records if "SO_REUSEPORT" in r.getMessage()]
    assert len(said) == 1 and f"{platform_name()} has no SO_REUSEPORT" in said[0]


def test_mdns_shares_its_port_without_so_reuseport(no_reuse_port: None) -> None:
    async def main() -> None:
        try:
            a = await MdnsService.start(interface="127.0.0.1")
            b = await MdnsService.start(interface="127.0.0.1")
        except OSError as exc:
            pytest.skip(f"no IPv4 multicast on loopback here: {exc}")
        try:
            name = b.register("127.0.0.1")
            assert await a.resolve(name, 2.0) == ("127.0.0.1",)
        finally:
            a.close()
            b.close()

    run(main())


# -- don't fragment


@pytest.mark.parametrize(
    ("platform", "v4", "v6"),
    [
        ("linux", (0, 10, 2), (41, 62, 1)),  # IP_MTU_DISCOVER = IP_PMTUDISC_DO; IPV6_DONTFRAG
        ("android", (0, 10, 2), (41, 62, 1)),
        ("darwin", (0, 28, 1), (41, 62, 1)),  # IP_DONTFRAG; IPV6_DONTFRAG
        ("freebsd14", (0, 67, 1), (41, 62, 1)),
        ("win32", (0, 14, 1), (41, 14, 1)),  # IP_DONTFRAGMENT; IPV6_DONTFRAG
    ],
)
def test_dont_fragment_option_per_platform(
    platform: str, v4: tuple[int, int, int], v6: tuple[int, int, int]
) -> None:
    assert dont_fragment_options(socket.AF_INET, platform) == v4
    assert dont_fragment_options(socket.AF_INET6, platform) == v6


def test_dont_fragment_uses_sys_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert dont_fragment_options(socket.AF_INET) == (0, 14, 1)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert dont_fragment_options(socket.AF_INET) == (0, 28, 1)


def test_no_dont_fragment_on_an_unknown_platform_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="ice.aio.portable"):
        assert dont_fragment_options(socket.AF_INET, "plan9") is None
        assert dont_fragment_options(socket.AF_INET6, "plan9") is None
    assert [r.getMessage() for r in caplog.records] == [
        "don't-fragment is not set on plan9: its socket option is not known"
    ]


@linux_only
def test_dont_fragment_agrees_with_this_socket_module() -> None:
    for name, value in (("IP_MTU_DISCOVER", 10), ("IP_PMTUDISC_DO", 2), ("IPV6_DONTFRAG", 62)):
        assert getattr(socket, name, value) == value


@linux_only
def test_a_relay_asked_not_to_fragment_has_the_bit_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Allocate with DONT-FRAGMENT: the relay socket has IP_PMTUDISC_DO; on a platform
    the table does not know, the relay still works, the option left alone."""

    async def main() -> None:
        async with run_ice_turn(transports=("udp",)) as turn:
            for platform, expected in (("linux", 2), ("plan9", None)):
                monkeypatch.setattr(sys, "platform", platform)
                relay = await TurnClient.allocate(
                    turn.uri("udp"), "alice", USERS["alice"], dont_fragment=True
                )
                monkeypatch.setattr(sys, "platform", "linux")
                async with relay:
                    sock = turn.runner._relays[relay.relayed_address].sock
                    assert sock is not None
                    mode = sock.getsockopt(socket.IPPROTO_IP, 10)  # IP_MTU_DISCOVER
                    if expected is None:
                        assert mode != 2
                    else:
                        assert mode == expected

    run(main())
