"""Our TURN server (`ice.turn.server` on `ice.aio.turn_server`) against real clients.

The server runs in each test's own event loop (`ice_turn_server.run_ice_turn`)
on loopback, with UDP, TCP and TLS listeners and loopback peers allowed.
Clients:

- coturn's ``turnutils_uclient`` (a subprocess), relaying to coturn's
  ``turnutils_peer`` echo server: over UDP, TCP and TLS, with long-term and
  TURN REST credentials; its report must show every message back and 0 lost.
  With ``-s`` it relays through Send/Data indications; by default through
  channels, whose numbers it draws from RFC 5766's 0x4000-0x7FFF;
- a hand-driven RFC 5766 client binding chosen channel numbers;
- aioice's TURN client (`aioice.turn.create_turn_endpoint`, ChannelData);
- our own `ice.aio.turn_client.TurnClient`: UDP, TCP and TLS, IPv4 and IPv6 (and
  one family over the other), a dual-stack allocation, channels and Send
  indications, a peer the server's policy refuses (403);

and the runner's relay sockets: bound while an allocation holds them, closed
when it is released (Refresh 0), when its TCP/TLS connection drops, and when
the runner closes; a reserved port (EVEN-PORT R) stays bound until claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from ice._codec import Message
from ice._errors import TurnError
from ice.aio.turn_client import TurnClient
from ice.attrs import (
    ErrorCodeAttribute,
    Lifetime,
    RequestedTransport,
    XorPeerAddress,
    XorRelayedAddress,
)
from ice.constants import (
    ALLOCATE_REQUEST,
    ALLOCATE_SUCCESS,
    CHANNEL_BIND_REQUEST,
    CHANNEL_BIND_SUCCESS,
    REFRESH_REQUEST,
    REFRESH_SUCCESS,
    AttrType,
    MessageClass,
)
from ice.machine import Address
from ice.stun.client_auth import LongTermCredentials
from ice.stun.credentials import turn_rest_credentials
from ice.turn.events import ChannelBound, TurnEvent
from ice.turn.policy import PeerPolicy
from tests.support.coturn import UCLIENT, free_port, requires_coturn, run_uclient
from tests.support.ice_turn_server import IceTurn, run_ice_turn
from tests.support.loop import run

pytestmark = pytest.mark.interop

T = TypeVar("T")
SECRET = "north-wind"
#: Payload sizes: 1-3, 5, 7, 13 need ChannelData padding over TCP; 4 and 8 do not.
SIZES = [1, 2, 3, 4, 5, 7, 8, 13, 100, 1023, 1200, 4097]

UPEER = shutil.which("turnutils_peer")
requires_turnutils = pytest.mark.skipif(
    UCLIENT is None or UPEER is None,
    reason="turnutils_uclient/turnutils_peer (coturn) are not installed (apt-get install coturn)",
)


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait until ``check()`` is true (the runner acts on closes asynchronously)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def payload(size: int, seed: int = 0) -> bytes:
    return bytes((seed * 7 + i * 13) & 0xFF for i in range(size))


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@contextlib.contextmanager
def udp_peer(host: str = "127.0.0.1") -> Iterator[socket.socket]:
    with socket.socket(family_of(host), socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.setblocking(False)
        yield sock


def name(sock: socket.socket) -> Address:
    host, port = sock.getsockname()[:2]
    return (host, port)


def port_is_bound(address: Address) -> bool:
    """True when a UDP socket cannot bind ``address`` (someone holds it)."""
    with socket.socket(family_of(address[0]), socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(address)
        except OSError:
            return True
    return False


async def peer_recv(sock: socket.socket, timeout: float = 3) -> tuple[bytes, Address]:
    async with asyncio.timeout(timeout):
        data, addr = await asyncio.get_running_loop().sock_recvfrom(sock, 70000)
    return data, (addr[0], addr[1])


async def peer_send(sock: socket.socket, data: bytes, addr: Address) -> None:
    await asyncio.get_running_loop().sock_sendto(sock, data, addr)


async def recv(relay: TurnClient, timeout: float = 3) -> tuple[bytes, Address]:
    async with asyncio.timeout(timeout):
        return await relay.recvfrom()


async def exchange(
    relay: TurnClient, peer: socket.socket, sizes: list[int], relayed: Address, seed: int = 0
) -> None:
    """Each size both ways, byte-exact, with the right addresses on both sides."""
    for size in sizes:
        data = payload(size, seed)
        await relay.sendto(data, name(peer))
        assert await peer_recv(peer) == (data, relayed)
        back = payload(size, seed + 1)
        await peer_send(peer, back, relayed)
        assert await recv(relay) == (back, name(peer))


async def collect(relay: TurnClient) -> list[TurnEvent]:
    """The client's events so far, without waiting."""
    events: list[TurnEvent] = []
    iterator = relay.events()
    with contextlib.suppress(TimeoutError, StopAsyncIteration):
        while True:
            async with asyncio.timeout(0.05):
                events.append(await anext(iterator))
    return events


def target(turn: IceTurn, transport: str, host: str) -> tuple[str, ssl.SSLContext | None]:
    """The URI of our server's listener and the client SSL context it needs."""
    context = turn.client_ssl() if transport == "tls" else None
    return turn.uri(transport, host), context


# ---------------------------------------------------------------- turnutils_uclient


@contextlib.contextmanager
def turnutils_peer(host: str = "127.0.0.1") -> Iterator[Address]:
    """coturn's UDP echo peer on ``host``, stopped on exit."""
    assert UPEER is not None
    port = free_port("udp", host)
    process = subprocess.Popen(
        [UPEER, "-L", host, "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with socket.socket(family_of(host), socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.1)
            deadline = time.monotonic() + 10
            while True:
                assert time.monotonic() < deadline, "turnutils_peer did not start"
                assert process.poll() is None, "turnutils_peer exited"
                probe.sendto(b"ping", (host, port))
                with contextlib.suppress(OSError):
                    if probe.recv(16) == b"ping":
                        break
        yield (host, port)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class UclientReport:
    """What turnutils_uclient printed at the end of a run."""

    returncode: int
    output: str
    sent: int | None
    received: int | None
    sent_bytes: int | None
    received_bytes: int | None
    lost: int | None
    send_dropped: int | None

    @classmethod
    def parse(cls, returncode: int, output: str) -> UclientReport:
        def last(pattern: str) -> tuple[int, ...] | None:
            found = re.findall(pattern, output, re.MULTILINE)
            if not found:
                return None
            values = found[-1] if isinstance(found[-1], tuple) else (found[-1],)
            return tuple(int(v) for v in values)

        msgs = last(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$")
        nbytes = last(r"start_mclient: tot_send_bytes ~ (\d+), tot_recv_bytes ~ (\d+)\s*$")
        lost = last(r"Total lost packets (\d+) \(.*total send dropped (\d+)")
        return cls(
            returncode,
            output,
            msgs[0] if msgs else None,
            msgs[1] if msgs else None,
            nbytes[0] if nbytes else None,
            nbytes[1] if nbytes else None,
            lost[0] if lost else None,
            lost[1] if lost else None,
        )

    def assert_no_loss(self, messages: int, size: int) -> None:
        tail = self.output[-3000:]
        assert self.returncode == 0, f"turnutils_uclient exited {self.returncode}:\n{tail}"
        assert (self.lost, self.send_dropped) == (0, 0), tail
        assert (self.sent, self.received) == (messages, messages), tail
        assert (self.sent_bytes, self.received_bytes) == (messages * size, messages * size), tail


async def uclient(*args: str, timeout: float = 20) -> UclientReport:
    """Run turnutils_uclient with ``args``; kill it if it outlives ``timeout``."""
    return UclientReport.parse(*await run_uclient(*args, timeout=timeout))


def uclient_args(
    turn: IceTurn, transport: str, peer: Address, credentials: str, host: str = "127.0.0.1"
) -> list[str]:
    args = ["-e", peer[0], "-r", str(peer[1]), "-p", str(turn.port(transport, host))]
    if transport in ("tcp", "tls"):
        args.append("-t")
    if transport == "tls":
        args += ["-S", "-E", str(turn.cert_path)]  # TLS, verifying our certificate
    if credentials == "rest":
        args += ["-u", "bob", "-W", SECRET]  # "<expiry>:bob", HMAC-SHA1 of the secret
    else:
        args += ["-u", "alice", "-w", "secret"]
    if ":" in host:
        args.append("-x")  # an IPv6 relayed address
    return args


MESSAGES = 4
SIZE = 120
#: Send indications (-s), one session without RTCP (-m 1 -c), MESSAGES of SIZE bytes.
SEND_RUN = ("-s", "-c", "-n", str(MESSAGES), "-m", "1", "-l", str(SIZE), "-z", "5")


@requires_coturn
@requires_turnutils
@pytest.mark.parametrize("credentials", ["long-term", "rest"])
@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_uclient_send_indications(transport: str, credentials: str) -> None:
    """turnutils_uclient -s (Send/Data indications): every message comes back, 0 lost;
    the allocations uclient releases, or whose connection it closes, take their relay
    sockets with them; the runner closes the rest."""

    async def main() -> None:
        with turnutils_peer() as peer:
            async with run_ice_turn(rest_secrets=[SECRET]) as turn:
                args = uclient_args(turn, transport, peer, credentials)
                report = await uclient(*SEND_RUN, *args, "127.0.0.1")
                report.assert_no_loss(MESSAGES, SIZE)
                counters = turn.server.counters()
                assert counters["allocations_created"] >= 1
                assert counters.get("requests_create_permission", 0) >= 1
                assert counters.get("requests_channel_bind", 0) == 0  # indications only
                # uclient first makes a test allocation (allocate, refresh) that it never
                # deletes; over TCP/TLS its connection closing ends it, over UDP it stays
                left = 1 if transport == "udp" else 0
                await eventually(lambda: turn.server.allocation_count == left)
                assert turn.runner.relay_count == left
            assert turn.runner.relay_count == 0

    run(main(), timeout=30)


@requires_coturn
@requires_turnutils
def test_uclient_ipv6_relay() -> None:
    """turnutils_uclient to our ::1 listener for an IPv6 relayed address (-x), peer on ::1."""

    async def main() -> None:
        with turnutils_peer("::1") as peer:
            async with run_ice_turn(hosts=("127.0.0.1", "::1"), transports=("udp",)) as turn:
                args = uclient_args(turn, "udp", peer, "long-term", host="::1")
                report = await uclient(*SEND_RUN, *args, "::1")
                report.assert_no_loss(MESSAGES, SIZE)
                assert turn.server.counters()["allocations_created"] >= 1

    run(main(), timeout=30)


@requires_coturn
@requires_turnutils
@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_uclient_default_run_through_channels(transport: str) -> None:
    """turnutils_uclient's default run (channels, RTP+RTCP pairs): 0 lost.

    Four sessions (two RTP/RTCP pairs) bind ten channels with numbers drawn at random
    from 0x4000-0x7FFF, so a run with every number under 0x5000 is very unlikely
    (about 1 in 4**10). coturn's own server passes this run with 0 lost."""

    async def main() -> None:
        with turnutils_peer() as peer:
            async with run_ice_turn(rest_secrets=[SECRET]) as turn:
                args = uclient_args(turn, transport, peer, "long-term")
                report = await uclient(
                    "-n", "3", "-m", "4", "-l", str(SIZE), "-z", "5", *args, "127.0.0.1"
                )
                report.assert_no_loss(3 * 4, SIZE)
                assert turn.server.counters().get("requests_channel_bind", 0) >= 2

    run(main(), timeout=30)


@requires_coturn
@requires_turnutils
def test_uclient_rest_wrong_secret_is_refused() -> None:
    """A REST username signed with another secret: 401, no allocation, uclient gives up."""

    async def main() -> None:
        with turnutils_peer() as peer:
            async with run_ice_turn(rest_secrets=[SECRET]) as turn:
                args = uclient_args(turn, "udp", peer, "rest")
                args[args.index(SECRET)] = "not-the-secret"
                report = await uclient("-s", "-c", "-n", "2", "-m", "1", *args, "127.0.0.1")
                assert report.returncode != 0, report.output[-2000:]
                assert "Cannot complete Allocation" in report.output
                assert report.received in (None, 0)
                counters = turn.server.counters()
                assert counters.get("errors_401", 0) >= 2  # the challenge, then the refusal
                assert counters["allocations_created"] == 0
                assert turn.runner.relay_count == 0

    run(main(), timeout=30)


# ---------------------------------------------------------------- an RFC 5766 client by hand


class RawTurnClient:
    """A TURN client over UDP driven message by message (what an RFC 5766 client sends)."""

    def __init__(self, server: Address, username: str, password: str) -> None:
        self.sock = socket.socket(family_of(server[0]), socket.SOCK_DGRAM)
        self.sock.bind((server[0], 0))
        self.sock.setblocking(False)
        self.sock.connect(server)
        self.credentials = LongTermCredentials(username, password)
        self._loop = asyncio.get_running_loop()

    def close(self) -> None:
        self.sock.close()

    async def request(self, msg_type: int, build: Callable[[Message], None]) -> Message:
        """Send a request (signed once challenged); answer 401/438; return the response."""
        for _ in range(3):
            request = Message(msg_type)
            build(request)
            if self.credentials.ready:
                self.credentials.sign(request)
            await self._loop.sock_sendall(self.sock, request.raw)
            response = await self._response(request.transaction_id)
            if response.cls == MessageClass.ERROR_RESPONSE and self.credentials.on_error(response):
                continue
            return response
        raise AssertionError("the server challenged three times")

    async def _response(self, transaction_id: bytes) -> Message:
        async with asyncio.timeout(3):
            while True:
                data = await self._loop.sock_recv(self.sock, 70000)
                if data[0] >> 6 == 0:
                    message = Message.decode(data)
                    if message.transaction_id == transaction_id:
                        return message

    async def send_raw(self, data: bytes) -> None:
        await self._loop.sock_sendall(self.sock, data)

    async def recv_raw(self, timeout: float = 3) -> bytes:
        async with asyncio.timeout(timeout):
            return await self._loop.sock_recv(self.sock, 70000)


def error_of(response: Message) -> str:
    error = ErrorCodeAttribute.get_from(response)
    return f"{error.code} {error.reason}" if error is not None else "no ERROR-CODE"


@pytest.mark.parametrize(
    "number",
    [
        0x4000,
        0x4FFF,
        0x5000,  # RFC 5766's wider range: coturn's turnutils_uclient picks from it
        0x7FFF,
    ],
    ids=["0x4000", "0x4FFF", "0x5000", "0x7FFF"],
)
def test_rfc5766_channel_numbers(number: int) -> None:
    """ChannelBind with a chosen number, then ChannelData both ways under that number."""

    async def main() -> None:
        async with run_ice_turn(transports=("udp",)) as turn:
            client = RawTurnClient(turn.address("udp"), "alice", "secret")
            try:
                with udp_peer() as peer:
                    response = await client.request(ALLOCATE_REQUEST, RequestedTransport().add_to)
                    assert response.type == ALLOCATE_SUCCESS, error_of(response)
                    relayed_attr = XorRelayedAddress.get_from(response)
                    assert relayed_attr is not None
                    relayed = relayed_attr.address

                    def bind(request: Message) -> None:
                        request.add(int(AttrType.CHANNEL_NUMBER), struct.pack(">HH", number, 0))
                        XorPeerAddress(*name(peer)).add_to(request)

                    response = await client.request(CHANNEL_BIND_REQUEST, bind)
                    assert response.type == CHANNEL_BIND_SUCCESS, error_of(response)
                    data = payload(37)
                    await client.send_raw(struct.pack(">HH", number, len(data)) + data)
                    assert await peer_recv(peer) == (data, relayed)
                    await peer_send(peer, data[::-1], relayed)
                    frame = await client.recv_raw()
                    assert frame[:4] == struct.pack(">HH", number, len(data))
                    assert frame[4 : 4 + len(data)] == data[::-1]
                    response = await client.request(REFRESH_REQUEST, Lifetime(0).add_to)
                    assert response.type == REFRESH_SUCCESS, error_of(response)
                    await eventually(lambda: turn.runner.relay_count == 0)
            finally:
                client.close()

    run(main())


# ---------------------------------------------------------------- aioice's TURN client


class _Collector:
    """An asyncio.DatagramProtocol for aioice's TurnTransport: queues what arrives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.errors: list[Exception] = []
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        pass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_aioice_client(transport: str) -> None:
    """aioice's create_turn_endpoint: a loopback UDP peer gets every size byte-exact
    from the relayed address, its answers come back byte-exact (through a channel);
    closing the transport releases the allocation and its relay socket."""
    aioice_turn = pytest.importorskip("aioice.turn")

    async def main() -> None:
        async with run_ice_turn() as turn:
            with udp_peer() as peer:
                server = turn.address(transport)
                relay, protocol = await asyncio.wait_for(
                    aioice_turn.create_turn_endpoint(
                        _Collector,
                        server,
                        "alice",
                        "secret",
                        transport="udp" if transport == "udp" else "tcp",
                        ssl=turn.client_ssl() if transport == "tls" else None,
                    ),
                    5,
                )
                try:
                    relayed = relay.get_extra_info("sockname")
                    assert relayed[0] == "127.0.0.1"
                    assert turn.runner.relay_count == 1
                    assert port_is_bound(relayed)
                    for i, size in enumerate(SIZES):
                        data = payload(size, i)
                        relay.sendto(data, name(peer))
                        assert await peer_recv(peer) == (data, relayed)
                        await peer_send(peer, data[::-1], relayed)
                        async with asyncio.timeout(3):
                            assert await protocol.queue.get() == (data[::-1], name(peer))
                    assert protocol.errors == []
                    counters = turn.server.counters()
                    assert counters["channels"] == 1  # aioice relays through a channel
                finally:
                    relay.close()
                await asyncio.wait_for(protocol.lost, 5)
                await eventually(lambda: turn.server.allocation_count == 0)
                assert turn.runner.relay_count == 0
                assert not port_is_bound(relayed)

    run(main())


# ---------------------------------------------------------------- our own TurnClient


@pytest.mark.parametrize("path", ["indications", "channel"])
@pytest.mark.parametrize(
    ("listen", "family"),
    [("127.0.0.1", 4), ("::1", 6), ("127.0.0.1", 6), ("::1", 4)],
    ids=["v4-over-v4", "v6-over-v6", "v6-over-v4", "v4-over-v6"],
)
@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_turn_client(transport: str, listen: str, family: int, path: str) -> None:
    """Every size both ways, byte-exact: with channel_after=0 only Send/Data indications
    (the server binds no channel), with a bound channel only ChannelData."""
    peer_host = "::1" if family == 6 else "127.0.0.1"

    async def main() -> None:
        async with run_ice_turn(hosts=("127.0.0.1", "::1")) as turn:
            uri, context = target(turn, transport, listen)
            with udp_peer(peer_host) as peer:
                relay = await TurnClient.allocate(
                    uri, "alice", "secret", ssl=context, family=family, channel_after=0, timeout=5
                )
                async with relay:
                    assert relay.transport == transport
                    assert relay.server == turn.address(transport, listen)
                    assert relay.relayed_address[0] == peer_host
                    assert relay.mapped_address == relay.local_address
                    assert turn.server.allocation_count == 1
                    assert turn.runner.relay_count == 1
                    if path == "channel":
                        number = await relay.bind_channel(name(peer))
                        assert 0x4000 <= number <= 0x4FFF
                    await exchange(relay, peer, SIZES, relay.relayed_address)
                    counters = turn.server.counters()
                    assert counters["channels"] == (1 if path == "channel" else 0)
                    assert counters.get("requests_channel_bind", 0) == (
                        1 if path == "channel" else 0
                    )
                    assert counters["permissions"] == 1
                    events = await collect(relay)
                    bound = [e for e in events if isinstance(e, ChannelBound)]
                    assert len(bound) == (1 if path == "channel" else 0)
                    assert relay.dropped == 0
                assert not any(turn.server.drops.values()), turn.server.drops
                await eventually(lambda: turn.runner.relay_count == 0)

    run(main())


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_turn_client_dual_stack(transport: str) -> None:
    """ADDITIONAL-ADDRESS-FAMILY: one allocation with an IPv4 and an IPv6 relayed address,
    each talking to a peer of its family (channels on one, indications on the other)."""

    async def main() -> None:
        async with run_ice_turn(hosts=("127.0.0.1", "::1")) as turn:
            uri, context = target(turn, transport, "127.0.0.1")
            with udp_peer("127.0.0.1") as peer4, udp_peer("::1") as peer6:
                relay = await TurnClient.allocate(
                    uri, "alice", "secret", ssl=context, dual_stack=True, channel_after=0
                )
                async with relay:
                    assert len(relay.relayed_addresses) == 2
                    relayed4, relayed6 = relay.relayed_addresses
                    assert (relayed4[0], relayed6[0]) == ("127.0.0.1", "::1")
                    assert turn.server.allocation_count == 1
                    assert turn.runner.relay_count == 2
                    assert port_is_bound(relayed4) and port_is_bound(relayed6)
                    await relay.bind_channel(name(peer6))
                    for seed in range(3):
                        await exchange(relay, peer4, [5, 300], relayed4, seed)
                        await exchange(relay, peer6, [5, 300], relayed6, seed)
                    assert turn.server.counters()["channels"] == 1
                await eventually(lambda: turn.runner.relay_count == 0)
                assert not port_is_bound(relayed4) and not port_is_bound(relayed6)

    run(main())


@pytest.mark.parametrize("peer_host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_policy_refusing_loopback_is_403(transport: str, peer_host: str) -> None:
    """With the default PeerPolicy (no loopback peers) the allocation works but
    CreatePermission, ChannelBind and a first sendto to a loopback peer get 403,
    and nothing reaches the peer."""

    async def main() -> None:
        async with run_ice_turn(hosts=("127.0.0.1", "::1"), policy=PeerPolicy()) as turn:
            uri, context = target(turn, transport, peer_host)
            family = 6 if ":" in peer_host else 4
            with udp_peer(peer_host) as peer:
                relay = await TurnClient.allocate(
                    uri, "alice", "secret", ssl=context, family=family, timeout=5
                )
                async with relay:
                    for attempt in (
                        relay.sendto(b"no", name(peer)),
                        relay.create_permission(name(peer)),
                        relay.bind_channel(name(peer)),
                    ):
                        with pytest.raises(TurnError) as error:
                            await attempt
                        assert error.value.code == 403
                    counters = turn.server.counters()
                    assert counters.get("errors_403", 0) == 3
                    assert counters["permissions"] == 0
                    # the refused peer is not reachable, nor can it reach the client
                    await peer_send(peer, b"knock", relay.relayed_address)
                    with pytest.raises(TimeoutError):
                        await recv(relay, timeout=0.3)
                    with pytest.raises(TimeoutError):
                        await peer_recv(peer, timeout=0.1)
                    assert turn.server.drops["no-permission"] == 1

    run(main())


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_turn_client_rest_credentials(transport: str) -> None:
    """A TURN REST username/password (ice.stun.credentials) against RestSecrets; an expired one
    and one made with another secret get 401."""

    async def main() -> None:
        async with run_ice_turn(rest_secrets=["old-secret", SECRET]) as turn:
            uri, _ = target(turn, transport, "127.0.0.1")
            username, password = turn_rest_credentials(SECRET, "bob", 600, time.time())
            with udp_peer() as peer:
                async with await TurnClient.allocate(uri, username, password, timeout=5) as relay:
                    await exchange(relay, peer, [1, 7, 500], relay.relayed_address)
                    assert turn.server.allocations()[0].username == username
            for secret, issued in (("wrong", time.time()), (SECRET, time.time() - 7200)):
                username, password = turn_rest_credentials(secret, "bob", 3600, issued)
                with pytest.raises(TurnError) as error:
                    await TurnClient.allocate(uri, username, password, timeout=5)
                assert error.value.code == 401
            assert turn.server.allocation_count == 0

    run(main())


# ---------------------------------------------------------------- the runner's relay sockets


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_close_releases_the_relay_socket(transport: str) -> None:
    """While allocated the relayed port is bound; after close (Refresh, LIFETIME 0) the
    allocation is gone, relay_count is back to 0 and the port is free again."""

    async def main() -> None:
        async with run_ice_turn() as turn:
            uri, context = target(turn, transport, "127.0.0.1")
            relay = await TurnClient.allocate(uri, "alice", "secret", ssl=context, timeout=5)
            relayed = relay.relayed_address
            assert (turn.server.allocation_count, turn.runner.relay_count) == (1, 1)
            assert port_is_bound(relayed)
            refreshes = turn.server.counters().get("requests_refresh", 0)
            await relay.close()
            assert turn.server.counters()["requests_refresh"] == refreshes + 1
            await eventually(lambda: turn.runner.relay_count == 0)
            assert turn.server.allocation_count == 0
            assert not port_is_bound(relayed)

    run(main())


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_dropped_connection_loses_its_allocation(transport: str) -> None:
    """A TCP/TLS client that drops its connection without a Refresh loses its allocation
    and its relay socket; a peer's datagram to the old relayed address goes nowhere."""

    async def main() -> None:
        async with run_ice_turn() as turn:
            uri, context = target(turn, transport, "127.0.0.1")
            with udp_peer() as peer:
                relay = await TurnClient.allocate(uri, "alice", "secret", ssl=context, timeout=5)
                relayed = relay.relayed_address
                await exchange(relay, peer, [10], relayed)
                other = await TurnClient.allocate(uri, "alice", "secret", ssl=context, timeout=5)
                async with other:
                    assert (turn.server.allocation_count, turn.runner.relay_count) == (2, 2)
                    refreshes = turn.server.counters().get("requests_refresh", 0)
                    relay.abort()
                    await eventually(lambda: turn.server.allocation_count == 1)
                    assert turn.runner.relay_count == 1
                    assert not port_is_bound(relayed)
                    assert turn.server.counters().get("requests_refresh", 0) == refreshes
                    await peer_send(peer, b"anyone?", relayed)
                    # the other allocation is untouched
                    await exchange(other, peer, [10], other.relayed_address)
                await eventually(lambda: turn.runner.relay_count == 0)
                assert turn.server.allocation_count == 0

    run(main())


def test_udp_client_that_vanishes_keeps_its_allocation_until_the_runner_closes() -> None:
    """Over UDP there is no connection to lose: an aborted client's allocation stays
    (until its lifetime ends); closing the runner closes its relay socket."""

    async def main() -> None:
        async with run_ice_turn(transports=("udp",)) as turn:
            relay = await TurnClient.allocate(turn.uri("udp"), "alice", "secret", timeout=5)
            relayed = relay.relayed_address
            relay.abort()
            await asyncio.sleep(0.2)
            assert (turn.server.allocation_count, turn.runner.relay_count) == (1, 1)
            assert port_is_bound(relayed)
        assert turn.runner.relay_count == 0
        assert not port_is_bound(relayed)

    run(main())


def test_reserved_port_stays_bound_until_claimed() -> None:
    """EVEN-PORT with R: the relayed port (even) and the next one are both bound; the
    next stays bound after the first allocation is released, and a second Allocate
    with the RESERVATION-TOKEN gets it; releasing that frees everything."""

    async def main() -> None:
        async with run_ice_turn(transports=("udp",)) as turn:
            uri = turn.uri("udp")
            first = await TurnClient.allocate(
                uri, "alice", "secret", even_port=True, reserve_next_port=True, timeout=5
            )
            relayed = first.relayed_address
            assert relayed[1] % 2 == 0
            reserved = (relayed[0], relayed[1] + 1)
            assert first.allocation is not None
            token = first.allocation.reservation_token
            assert token is not None and len(token) == 8
            assert turn.runner.relay_count == 2
            assert port_is_bound(relayed) and port_is_bound(reserved)
            await first.close()
            await eventually(lambda: turn.runner.relay_count == 1)
            assert not port_is_bound(relayed) and port_is_bound(reserved)
            second = await TurnClient.allocate(
                uri, "alice", "secret", reservation_token=token, timeout=5
            )
            async with second:
                assert second.relayed_address == reserved
                assert turn.runner.relay_count == 1
                with udp_peer() as peer:
                    await exchange(second, peer, [9], reserved)
            await eventually(lambda: turn.runner.relay_count == 0)
            assert turn.server.counters()["reservations"] == 0
            assert not port_is_bound(reserved)

    run(main())
