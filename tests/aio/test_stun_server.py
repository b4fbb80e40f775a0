"""The asyncio STUN server runner (ice.aio.stun_server) on loopback, spoken to with plain sockets.

The runner serves a real `StunServer` core on an event loop in a background
thread; every client here is a blocking socket with a timeout, as a foreign
client would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

import ice
from ice.aio.portable import SOCKET_BUFFER
from ice.aio.stun_server import Listener, StunServerRunner, serve_stun
from ice.aio.turn_server import TurnServerRunner
from ice.machine import Address, Transmit
from ice.stun.server import StunServer
from ice.stun.server_auth import LongTermAuthenticator
from ice.turn.ports import MemoryRelaySockets
from ice.turn.server import TurnServer
from tests.support.coturn import free_port, write_self_signed_cert
from tests.support.loop import HAS_IPV6_LOOPBACK

T = TypeVar("T")
TIMEOUT = 5.0


HOSTS = [
    "127.0.0.1",
    pytest.param("::1", marks=pytest.mark.skipif(not HAS_IPV6_LOOPBACK, reason="no IPv6 ::1")),
]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Running:
    """A runner serving on an event loop in a background thread."""

    def __init__(
        self,
        server: StunServer,
        listeners: Sequence[Listener],
        loop: asyncio.AbstractEventLoop | None = None,
        **limits: Any,
    ) -> None:
        self.server = server
        self.loop = loop if loop is not None else asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.runner: StunServerRunner | None = None
        self._thread = threading.Thread(
            target=self._main, args=(listeners, limits), name="stun-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(TIMEOUT):
            raise RuntimeError("the server did not start")
        if self._error is not None:
            self._thread.join(TIMEOUT)
            self.loop.close()
            raise self._error

    def _main(self, listeners: Sequence[Listener], limits: dict[str, Any]) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.runner = self.loop.run_until_complete(serve_stun(self.server, listeners, **limits))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(TIMEOUT)

    @property
    def addresses(self) -> list[tuple[str, Address]]:
        assert self.runner is not None
        return self.call(self._addresses)

    async def _addresses(self) -> list[tuple[str, Address]]:
        assert self.runner is not None
        return list(self.runner.addresses)

    def address(self, transport: str, host: str | None = None) -> Address:
        """The first bound address of ``transport`` (on ``host`` when given)."""
        for kind, addr in self.addresses:
            if kind == transport and (host is None or addr[0] == host):
                return addr
        raise LookupError(f"no {transport} listener on {host}")

    def connection_count(self) -> int:
        async def count() -> int:
            assert self.runner is not None
            return self.runner.connection_count

        return self.call(count)

    def stop(self) -> None:
        if self.runner is not None and not self.loop.is_closed():
            self.call(self.runner.close)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(TIMEOUT)
            self.loop.close()


@contextlib.contextmanager
def running(
    listeners: Sequence[Listener], server: StunServer | None = None, **limits: Any
) -> Iterator[Running]:
    run = Running(server if server is not None else StunServer(), listeners, **limits)
    try:
        yield run
    finally:
        run.stop()


# -- plain-socket clients


def binding_request(*setters: Any) -> ice.Message:
    return ice.Message.build(ice.BINDING_REQUEST, *setters)


def udp_client(host: str) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    sock.bind((host, 0))
    return sock


def udp_exchange(sock: socket.socket, data: bytes, server: Address) -> tuple[ice.Message, Address]:
    """Send ``data`` and return the first answer that decodes, with where it came from."""
    sock.sendto(data, server)
    answer, source = sock.recvfrom(65536)
    return ice.Message.decode(answer), (source[0], source[1])


def recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError(f"connection closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def read_frame(sock: socket.socket) -> ice.Message:
    header = recv_exact(sock, 20)
    length = int.from_bytes(header[2:4], "big")
    return ice.Message.decode(header + recv_exact(sock, length))


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the peer closed (EOF or reset) within the socket's timeout."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def mapped(message: ice.Message) -> Address:
    attr = ice.XorMappedAddress.get_from(message)
    assert attr is not None, message
    return (attr.host, attr.port)


def sockname(sock: socket.socket) -> Address:
    name = sock.getsockname()
    return (name[0], name[1])


# -- UDP, TCP and TLS on IPv4 and IPv6


@pytest.mark.parametrize("host", HOSTS)
def test_udp_binding_reports_the_client_address(host: str) -> None:
    with running([Listener("udp", host, 0)]) as run:
        server_addr = run.address("udp")
        assert server_addr[0] == host and server_addr[1] != 0
        with udp_client(host) as sock:
            request = binding_request()
            response, source = udp_exchange(sock, request.raw, server_addr)
            assert response.type == ice.BINDING_SUCCESS
            assert response.transaction_id == request.transaction_id
            assert mapped(response) == sockname(sock)
            assert source == server_addr


def _rmem_max() -> int:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except OSError:
        return 0


@pytest.mark.skipif(_rmem_max() < SOCKET_BUFFER, reason="the kernel caps UDP buffers lower")
def test_requests_that_land_while_the_loop_is_busy_are_all_answered() -> None:
    """Every client's requests land on one socket between two reads: 600 of them
    (Linux's default buffer holds ~256 small datagrams) are all answered."""
    with running([Listener("udp", "127.0.0.1", 0)]) as run:
        server_addr = run.address("udp")
        busy, released = threading.Event(), threading.Event()

        def hold_the_loop() -> None:
            busy.set()
            released.wait(TIMEOUT)

        run.loop.call_soon_threadsafe(hold_the_loop)
        assert busy.wait(TIMEOUT)
        with udp_client("127.0.0.1") as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            requests = [binding_request() for _ in range(600)]
            try:
                for request in requests:
                    sock.sendto(request.raw, server_addr)
            finally:
                released.set()
            answered = {ice.Message.decode(sock.recv(65536)).transaction_id for _ in requests}
            assert answered == {request.transaction_id for request in requests}


@pytest.mark.parametrize("host", HOSTS)
def test_tcp_binding_reports_the_client_address(host: str) -> None:
    with (
        running([Listener("tcp", host, 0)]) as run,
        socket.create_connection(run.address("tcp"), timeout=TIMEOUT) as sock,
    ):
        request = binding_request()
        sock.sendall(request.raw)
        response = read_frame(sock)
        assert response.type == ice.BINDING_SUCCESS
        assert response.transaction_id == request.transaction_id
        assert mapped(response) == sockname(sock)


@pytest.mark.parametrize("host", HOSTS)
def test_tls_binding_reports_the_client_address(host: str, tmp_path: Path) -> None:
    cert, key = write_self_signed_cert(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    with (
        running([Listener("tls", host, 0, server_context)]) as run,
        socket.create_connection(run.address("tls"), timeout=TIMEOUT) as raw,
        client_context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        for _ in range(2):  # and the connection stays up for the next one
            request = binding_request()
            sock.sendall(request.raw)
            response = read_frame(sock)
            assert response.transaction_id == request.transaction_id
            assert mapped(response) == sockname(sock)


def test_one_core_serves_udp_tcp_and_both_families_at_once() -> None:
    listeners = [Listener("udp", "127.0.0.1", 0), Listener("tcp", "127.0.0.1", 0)]
    if HAS_IPV6_LOOPBACK:
        listeners.append(Listener("udp", "::1", 0))
    with running(listeners) as run:
        kinds = [kind for kind, _ in run.addresses]
        assert kinds == [listener.transport for listener in listeners]
        for kind, addr in run.addresses:
            if kind == "udp":
                with udp_client(addr[0]) as sock:
                    response, source = udp_exchange(sock, binding_request().raw, addr)
                    assert mapped(response) == sockname(sock) and source == addr
            else:
                with socket.create_connection(addr, timeout=TIMEOUT) as sock:
                    sock.sendall(binding_request().raw)
                    assert mapped(read_frame(sock)) == sockname(sock)


def test_udp_on_a_loop_without_add_reader_uses_a_datagram_transport() -> None:
    """Windows' proactor loop has no add_reader: the runner falls back to a transport."""
    loop = asyncio.new_event_loop()

    def no_add_reader(*args: Any) -> None:
        raise NotImplementedError

    loop.add_reader = no_add_reader  # type: ignore[method-assign]
    run = Running(StunServer(), [Listener("udp", "127.0.0.1", 0)], loop)
    try:
        addr = run.address("udp")
        assert run.runner is not None
        fallback = run.runner._udp_list[0]._fallback
        assert fallback is not None and fallback.transport is not None
        with udp_client("127.0.0.1") as sock:
            for _ in range(3):
                response, source = udp_exchange(sock, binding_request().raw, addr)
                assert mapped(response) == sockname(sock) and source == addr
    finally:
        run.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(addr)  # closed with the runner


# -- TCP framing


def test_tcp_pipelined_requests_and_a_request_split_across_writes() -> None:
    with (
        running([Listener("tcp", "127.0.0.1", 0)]) as run,
        socket.create_connection(run.address("tcp"), timeout=TIMEOUT) as sock,
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first, second = binding_request(), binding_request(ice.Software("second"))
        sock.sendall(first.raw + second.raw)  # two requests in one write
        answers = [read_frame(sock), read_frame(sock)]
        assert [a.transaction_id for a in answers] == [
            first.transaction_id,
            second.transaction_id,
        ]

        split = binding_request(ice.Software("x" * 50), ice.Fingerprint())
        data = split.raw
        for piece in (data[:2], data[2:13], data[13:40], data[40:]):  # header split too
            sock.sendall(piece)
            time.sleep(0.02)  # separate segments
        answer = read_frame(sock)
        assert answer.transaction_id == split.transaction_id
        assert mapped(answer) == sockname(sock)
        answer.check_fingerprint()  # the request had one, so the answer has one


def test_garbage_on_tcp_closes_only_that_connection() -> None:
    with running([Listener("tcp", "127.0.0.1", 0)]) as run:
        addr = run.address("tcp")
        with (
            socket.create_connection(addr, timeout=TIMEOUT) as good,
            socket.create_connection(addr, timeout=TIMEOUT) as bad,
        ):
            good.sendall(binding_request().raw)
            read_frame(good)
            # The start of a TLS ClientHello, sent to the plain TCP port.
            bad.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32))
            assert closed_by_peer(bad)

            request = binding_request()
            good.sendall(request.raw)
            assert read_frame(good).transaction_id == request.transaction_id
        with socket.create_connection(addr, timeout=TIMEOUT) as fresh:
            fresh.sendall(binding_request().raw)
            assert mapped(read_frame(fresh)) == sockname(fresh)


def test_a_stream_announcing_more_than_max_buffer_is_closed() -> None:
    with running([Listener("tcp", "127.0.0.1", 0)], max_buffer=1024) as run:
        addr = run.address("tcp")
        with socket.create_connection(addr, timeout=TIMEOUT) as greedy:
            header = bytearray(binding_request().raw[:20])
            header[2:4] = (4000).to_bytes(2, "big")  # announce a 4,020-byte frame
            greedy.sendall(bytes(header) + bytes(100))
            started = time.monotonic()
            assert closed_by_peer(greedy)
            assert time.monotonic() - started < 1  # at once, not after waiting for it
        # A frame that fits is still fine, even in pieces.
        with socket.create_connection(addr, timeout=TIMEOUT) as sock:
            request = binding_request(*(ice.Software("y" * 100) for _ in range(4)))
            sock.sendall(request.raw[:100])
            sock.sendall(request.raw[100:])
            assert read_frame(sock).transaction_id == request.transaction_id


def test_connections_beyond_max_connections_are_refused() -> None:
    with running([Listener("tcp", "127.0.0.1", 0)], max_connections=2) as run:
        addr = run.address("tcp")
        first = socket.create_connection(addr, timeout=TIMEOUT)
        second = socket.create_connection(addr, timeout=TIMEOUT)
        try:
            for sock in (first, second):
                sock.sendall(binding_request().raw)
                read_frame(sock)
            assert run.connection_count() == 2
            with socket.create_connection(addr, timeout=TIMEOUT) as third:
                assert closed_by_peer(third)
            first.close()
            deadline = time.monotonic() + TIMEOUT
            while run.connection_count() > 1 and time.monotonic() < deadline:
                time.sleep(0.01)  # the server notices the close
            with socket.create_connection(addr, timeout=TIMEOUT) as fourth:
                fourth.sendall(binding_request().raw)
                assert mapped(read_frame(fourth)) == sockname(fourth)
        finally:
            first.close()
            second.close()


def test_idle_connections_are_closed_and_busy_ones_are_not() -> None:
    with running([Listener("tcp", "127.0.0.1", 0)], idle_timeout=0.4) as run:
        addr = run.address("tcp")
        with (
            socket.create_connection(addr, timeout=TIMEOUT) as idle,
            socket.create_connection(addr, timeout=TIMEOUT) as busy,
        ):
            started = time.monotonic()
            for _ in range(6):  # 0.6 s of traffic, 0.1 s apart
                busy.sendall(binding_request().raw)
                read_frame(busy)
                time.sleep(0.1)
            assert closed_by_peer(idle)
            assert 0.3 < time.monotonic() - started < 3
            busy.sendall(binding_request().raw)
            assert mapped(read_frame(busy)) == sockname(busy)


# -- one host cannot lock the others out (issue 15, defect 3)


def trickle_until_closed(sock: socket.socket, data: bytes, interval: float) -> float | None:
    """Send ``data`` a byte every ``interval`` s (never completing a message) until the
    server closes: the seconds that took, or None if it never did."""
    started = time.monotonic()
    sock.settimeout(interval)
    try:
        for byte in data:
            sock.sendall(bytes([byte]))
            try:
                if not sock.recv(65536):
                    return time.monotonic() - started
            except TimeoutError:
                continue
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - started
    return None


def test_one_source_at_its_cap_trickling_does_not_lock_out_another_source() -> None:
    if not _has_127_0_0_2():
        pytest.skip("127.0.0.2 is not a local address here")
    limits = {"max_connections": 10, "source_connections": 3, "message_timeout": 5.0}
    with running([Listener("tcp", "127.0.0.1", 0)], **limits) as run:
        addr = run.address("tcp")
        request = binding_request().raw
        flood = [socket.create_connection(addr, timeout=TIMEOUT) for _ in range(3)]
        try:
            for sock in flood:
                sock.sendall(request[:7])  # a message begun, never finished
            with socket.create_connection(addr, timeout=TIMEOUT) as fourth:
                assert closed_by_peer(fourth)
            with socket.create_connection(
                addr, timeout=TIMEOUT, source_address=("127.0.0.2", 0)
            ) as other:
                other.sendall(request)
                assert mapped(read_frame(other)) == sockname(other)
                assert run.connection_count() == 4  # the flood's three, and this one

            async def counters() -> dict[str, int]:
                assert run.runner is not None
                return run.runner.counters()

            assert run.call(counters)["tcp_refused_source"] == 1
        finally:
            for sock in flood:
                sock.close()


def test_a_silent_or_trickling_connection_is_closed_at_the_message_deadline() -> None:
    with running([Listener("tcp", "127.0.0.1", 0)], message_timeout=0.3, idle_timeout=30.0) as run:
        addr = run.address("tcp")
        request = binding_request().raw
        with (
            socket.create_connection(addr, timeout=TIMEOUT) as silent,
            socket.create_connection(addr, timeout=TIMEOUT) as slow,
        ):
            started = time.monotonic()
            slow.sendall(request)
            read_frame(slow)
            took = trickle_until_closed(slow, request * 3, 0.05)
            assert took is not None and 0.25 < took < 2
            assert closed_by_peer(silent)
            assert 0.25 < time.monotonic() - started < 3


def test_only_complete_messages_keep_a_connection_from_the_idle_timeout() -> None:
    with running([Listener("tcp", "127.0.0.1", 0)], message_timeout=30.0, idle_timeout=0.4) as run:
        addr = run.address("tcp")
        request = binding_request().raw
        with socket.create_connection(addr, timeout=TIMEOUT) as sock:
            sock.sendall(request)
            read_frame(sock)
            took = trickle_until_closed(sock, request * 3, 0.05)
            assert took is not None and 0.3 < took < 2


class Holding(StunServer):
    """A core that says it holds state on every connection (as a TURN allocation)."""

    def connection_in_use(self, remote: Address, local: Address) -> bool:
        return True


def test_a_connection_the_core_still_uses_is_not_closed_as_idle() -> None:
    with running([Listener("tcp", "127.0.0.1", 0)], Holding(), idle_timeout=0.2) as run:
        addr = run.address("tcp")
        with socket.create_connection(addr, timeout=1.0) as sock:
            sock.sendall(binding_request().raw)
            read_frame(sock)
            assert not closed_by_peer(sock)  # 1 s, five idle timeouts
            sock.sendall(binding_request().raw)
            assert mapped(read_frame(sock)) == sockname(sock)


# -- hostile UDP


def test_hostile_udp_datagrams_get_the_right_answer_or_none() -> None:
    with running([Listener("udp", "127.0.0.1", 0)]) as run, udp_client("127.0.0.1") as sock:
        addr = run.address("udp")

        # 200 unknown comprehension-required attributes: 420 naming them.
        unknown = list(range(0x0040, 0x0040 + 200))
        request = ice.Message(ice.BINDING_REQUEST)
        for attr_type in unknown:
            request.add(attr_type, b"\x00\x01\x02\x03")
        response, _ = udp_exchange(sock, request.raw, addr)
        assert response.type == ice.BINDING_ERROR
        assert response.transaction_id == request.transaction_id
        error = ice.ErrorCodeAttribute.get_from(response)
        assert error is not None and error.code == 420
        listed = ice.UnknownAttributes.get_from(response)
        assert listed is not None and sorted(listed.types) == unknown

        # A truncated request (the header announces more than arrived): 400.
        whole = binding_request(ice.Software("truncated")).raw
        response, _ = udp_exchange(sock, whole[:-4], addr)
        assert response.type == ice.BINDING_ERROR
        error = ice.ErrorCodeAttribute.get_from(response)
        assert error is not None and error.code == 400

        # Bursts of junk (small enough not to overflow the socket buffers), each
        # followed by a real request that must still be answered.
        rng = random.Random(5780)

        def answers_after(burst: list[bytes]) -> list[ice.Message]:
            """Send the burst, then a request; what came back before its answer."""
            for junk in burst:
                sock.sendto(junk, addr)
            request = binding_request()
            sock.sendto(request.raw, addr)
            before = []
            while True:
                message = ice.Message.decode(sock.recv(65536))  # raises on junk from us
                if message.transaction_id == request.transaction_id:
                    assert mapped(message) == sockname(sock)
                    return before
                before.append(message)

        # Random bytes that are not STUN (RFC 7983: first byte 64 and up): silence.
        for _ in range(6):
            burst = [bytearray(rng.randbytes(rng.randrange(1, 1500))) for _ in range(50)]
            for junk in burst:
                junk[0] |= 0x40
            assert answers_after([bytes(junk) for junk in burst]) == []
        # Empty and tiny datagrams: silence.
        assert answers_after([bytes(size) for size in (0, 1, 3, 19)]) == []
        # Random bytes that start like STUN: at most one answer each, a well-formed
        # response to that very transaction.
        for _ in range(6):
            burst = []
            for _ in range(50):
                junk = bytearray(rng.randbytes(rng.randrange(20, 600)))
                junk[0] &= 0x3F
                junk[4:8] = b"\x21\x12\xa4\x42"
                burst.append(bytes(junk))
            ids = [junk[8:20] for junk in burst]
            for message in answers_after(burst):
                assert message.cls in (
                    ice.MessageClass.SUCCESS_RESPONSE,
                    ice.MessageClass.ERROR_RESPONSE,
                )
                ids.remove(message.transaction_id)  # ValueError: not asked, or twice


def test_an_exception_in_the_core_is_logged_and_serving_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Breaking(StunServer):
        """A core with a bug that one request triggers (the real core catches its own)."""

        def receive_datagram(
            self,
            data: bytes,
            addr: Address,
            now: float,
            *,
            local: Address | None = None,
            reliable: bool = False,
        ) -> None:
            if b"boom" in data:
                raise RuntimeError("bug in the core")
            super().receive_datagram(data, addr, now, local=local, reliable=reliable)

    caplog.set_level(logging.ERROR, logger="ice.aio.stun_server")
    boom = binding_request(ice.Software("boom")).raw
    listeners = [Listener("udp", "127.0.0.1", 0), Listener("tcp", "127.0.0.1", 0)]
    with running(listeners, Breaking()) as run, udp_client("127.0.0.1") as sock:
        sock.sendto(boom, run.address("udp"))
        request = binding_request()
        response, _ = udp_exchange(sock, request.raw, run.address("udp"))
        assert response.transaction_id == request.transaction_id
        with socket.create_connection(run.address("tcp"), timeout=TIMEOUT) as conn:
            request = binding_request()
            conn.sendall(boom + request.raw)  # the same connection goes on after the bug
            assert read_frame(conn).transaction_id == request.transaction_id

        async def counted() -> int:
            assert run.runner is not None
            return run.runner.counters()["internal_errors"]

        assert run.call(counted) == 2
    # the same bug twice: one traceback, the repeat only counted
    failures = [r for r in caplog.records if "Breaking: receive_datagram" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info


# -- the core's timer


class Ticking(StunServer):
    """A core with a timer: at each deadline it sends a datagram to ``peer``."""

    def __init__(self, peer: Address, times: list[float]) -> None:
        super().__init__()
        self.peer = peer
        self.deadlines = list(times)
        self.fired: list[float] = []
        self._out: list[Transmit] = []

    def get_timer(self) -> float | None:
        return self.deadlines[0] if self.deadlines else None

    def handle_timer(self, now: float) -> None:
        while self.deadlines and self.deadlines[0] <= now:
            self.deadlines.pop(0)
            self.fired.append(now)
            self._out.append(Transmit(b"tick %d" % len(self.fired), self.peer))

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out, self._out = self._out + super().datagrams_to_send(now), []
        return out


def test_the_core_timer_is_driven_with_now_not_before_the_deadline() -> None:
    with udp_client("127.0.0.1") as peer:
        start = time.monotonic()
        # asyncio's clock is time.monotonic() on Linux; the deadlines are in it.
        core = Ticking(sockname(peer), [start + 0.1, start + 0.25])
        with running([Listener("udp", "127.0.0.1", 0)], core) as run:
            first, source = peer.recvfrom(100)
            second, _ = peer.recvfrom(100)
            assert (first, second) == (b"tick 1", b"tick 2")
            assert source == run.address("udp")  # no source: the socket of the family
            assert core.fired[0] >= start + 0.1 and core.fired[1] >= start + 0.25
            assert core.get_timer() is None


# -- RFC 5780


def _rfc5780_server() -> tuple[StunServer, int, int]:
    p1 = free_port("udp", "127.0.0.1")
    p2 = free_port("udp", "127.0.0.2")
    while p2 == p1:
        p2 = free_port("udp", "127.0.0.2")
    return StunServer(primary=("127.0.0.1", p1), alternate=("127.0.0.2", p2)), p1, p2


def _has_127_0_0_2() -> bool:
    """Linux routes all of 127/8 to lo; macOS and Windows need an alias for 127.0.0.2."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.2", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_127_0_0_2(), reason="127.0.0.2 is not a local address here")
def test_rfc5780_change_request_is_answered_from_the_other_address_and_port() -> None:
    for attempt in range(5):  # a free port can be taken between the check and the bind
        server, p1, _ = _rfc5780_server()
        try:
            run = Running(server, [Listener("udp", "127.0.0.1", p1)])
        except OSError:
            if attempt == 4:
                raise
            continue
        break
    try:
        a1p1, a1p2, a2p1, a2p2 = server.local_addresses
        assert sorted(a for kind, a in run.addresses if kind == "udp") == sorted(
            [a1p1, a1p2, a2p1, a2p2]
        )
        with udp_client("127.0.0.1") as sock:
            cases = [
                (a1p1, False, False, a1p1),
                (a1p1, False, True, a1p2),
                (a1p1, True, False, a2p1),
                (a1p1, True, True, a2p2),
                (a2p2, True, True, a1p1),
                (a2p1, False, True, a2p2),
            ]
            for to, change_ip, change_port, expected in cases:
                request = binding_request(ice.ChangeRequest(change_ip, change_port))
                response, source = udp_exchange(sock, request.raw, to)
                assert response.transaction_id == request.transaction_id
                assert source == expected, (to, change_ip, change_port)
                origin = ice.ResponseOrigin.get_from(response)
                assert origin is not None and (origin.host, origin.port) == expected
                other = ice.OtherAddress.get_from(response)
                assert other is not None
                # OTHER-ADDRESS: the other IP and the other port than the request's.
                ip, port = to
                assert (other.host, other.port) == (
                    "127.0.0.2" if ip == "127.0.0.1" else "127.0.0.1",
                    a1p2[1] if port == a1p1[1] else a1p1[1],
                )
                assert mapped(response) == sockname(sock)
    finally:
        run.stop()


# -- lifecycle


def test_close_stops_listening_and_closes_connections() -> None:
    run = Running(StunServer(), [Listener("udp", "127.0.0.1", 0), Listener("tcp", "127.0.0.1", 0)])
    udp_addr, tcp_addr = run.address("udp"), run.address("tcp")
    conn = socket.create_connection(tcp_addr, timeout=TIMEOUT)
    try:
        conn.sendall(binding_request().raw)
        read_frame(conn)
        started = time.monotonic()
        run.stop()
        assert time.monotonic() - started < 2.5
        assert closed_by_peer(conn)
    finally:
        conn.close()
        run.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(udp_addr)  # the UDP port is free again
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(tcp_addr, timeout=TIMEOUT).close()


def test_a_listener_that_cannot_bind_fails_start_and_leaves_nothing_open() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy_port = taken.getsockname()[1]

        async def attempt() -> list[tuple[str, Address]]:
            runner = StunServerRunner(
                StunServer(),
                [Listener("tcp", "127.0.0.1", 0), Listener("udp", "127.0.0.1", busy_port)],
            )
            with pytest.raises(OSError, match=r"cannot bind udp 127\.0\.0\.1"):
                await runner.start()
            return runner.addresses

        assert asyncio.run(attempt()) == []


@pytest.mark.skipif(not HAS_IPV6_LOOPBACK, reason="no IPv6 ::1")
def test_ipv6_udp_sockets_are_ipv6_only() -> None:
    async def check() -> int:
        async with StunServerRunner(StunServer(), [Listener("udp", "::1", 0)]) as runner:
            sock = runner._udp_list[0]._sock
            assert sock is not None
            return int(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))

    assert asyncio.run(check()) == 1


def test_listener_checks_its_fields() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(ValueError, match="transport"):
        Listener("sctp", "127.0.0.1", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="SSL context"):
        Listener("tls", "127.0.0.1", 5349)
    with pytest.raises(ValueError, match="SSL context"):
        Listener("tcp", "127.0.0.1", 3478, context)
    with pytest.raises(ValueError, match="port"):
        Listener("udp", "127.0.0.1", 70000)
    assert str(Listener("tls", "::1", 5349, context)) == "tls://[::1]:5349"


def test_rfc5780_mode_needs_fixed_ports() -> None:
    server = StunServer(primary=("127.0.0.1", 0), alternate=("127.0.0.2", 40000))

    async def attempt() -> None:
        await serve_stun(server, [])

    with pytest.raises(ValueError, match="needs a port"):
        asyncio.run(attempt())


def test_runner_options_are_taken_once_and_a_misspelt_one_is_refused() -> None:
    async def main() -> None:
        core = TurnServer(
            authenticator=LongTermAuthenticator("example.org", {"u": "p"}),
            relay_ips=["127.0.0.1"],
            sockets=MemoryRelaySockets(),
        )
        turn = TurnServerRunner(core, [], max_connections=7, reuse_port=True)
        assert (turn.max_connections, turn.reuse_port, turn.idle_timeout) == (7, True, 60.0)
        assert (turn.source_connections, turn.message_timeout) == (100, 10.0)
        with pytest.raises(TypeError, match="max_conections"):
            StunServerRunner(StunServer(), [], max_conections=7)  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="positive"):
            StunServerRunner(StunServer(), [], idle_timeout=0)
        with pytest.raises(ValueError, match="positive"):
            StunServerRunner(StunServer(), [], message_timeout=0)
        with pytest.raises(ValueError, match="not negative"):
            StunServerRunner(StunServer(), [], source_connections=-1)

    asyncio.run(main())


def test_failures_inside_the_core_are_counted_in_metrics_and_the_server_keeps_answering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ice.aio.metrics import prometheus_text

    server = StunServer()
    real = server._receive
    bad = b"\x00\x01\x00\x00" + b"\x21\x12\xa4\x42" + b"boom-boom-bo"

    def sometimes_broken(data: bytes, *args: Any) -> None:
        if data == bad:
            raise RuntimeError("a bug one packet triggers")
        real(data, *args)

    server._receive = sometimes_broken  # type: ignore[method-assign]
    caplog.set_level(logging.ERROR, logger="ice.stun.server")
    with running([Listener("udp", "127.0.0.1", 0)], server) as run_, udp_client("127.0.0.1") as s:
        target = run_.address("udp")
        for _ in range(100):
            s.sendto(bad, target)
        answer, _ = udp_exchange(s, binding_request().raw, target)  # in order, after them
        assert answer.type == ice.BINDING_SUCCESS

        async def counters() -> dict[str, int]:
            assert run_.runner is not None
            return run_.runner.counters()

        counted = run_.call(counters)
    assert counted["internal_errors"] == 100
    assert "ice_turn_internal_errors_total 100" in prometheus_text(counted).splitlines()
    assert len([r for r in caplog.records if r.exc_info is not None]) == 1
