"""A bounded load generator for STUN and TURN servers, on asyncio and `BatchSocket`.

Behind ``python -m ice load`` and the server benchmarks (bench/server_rate.py)::

    result = await run_stun(("127.0.0.1", 3478), flows=4, duration=5)
    result = await run_turn(("127.0.0.1", 3478), "alice", "secret", flows=2, duration=5)
    print(ice._load.packets.format_summary(result)); result.as_json()

Each flow is one UDP socket connected to the server. Where `ice._load._pump`
works (Linux: recvmmsg/sendmmsg and epoll), every socket of the run is read
through one ``loop.add_reader`` callback on the pump's epoll descriptor, and
the pump matches stamps and refills windows in C: no Python call or object per
packet or per socket, so the generator does not become the bottleneck of a
server with many flows. The pump's sockets read with UDP GRO (``gro``, Linux
5.0+): a server that sends a train of datagrams to one address as one UDP GSO
send has it handed over whole, as a client host with GRO behind a NIC that
segments would take it, rather than split into datagrams on loopback at the
server's expense; the pump takes the train apart itself, and an echoing peer
sends it back as it came. Each flow sends the packets its window lets go as
UDP GSO sends (``gso``): the server receives the same datagrams (the kernel
splits them before they reach a socket without GRO, at the generator's
expense), and the generator spends less per packet, so that it can load a
server to saturation rather than measure itself. Elsewhere each socket has its own reader and is
written with `ice.aio._udpio.BatchSocket`: the packets are built once per flow
(``batch`` buffers) and only their 12-byte stamp is patched before each send
(see `ice._load.packets`); the counting and pacing are the same. A loop without
``add_reader`` (Windows' default proactor loop) is refused with `ice.Error`:
run the generator on a selector loop there.

- STUN: Binding requests, each answered by a Binding response that carries
  the request's transaction ID (the stamp).
- TURN: each flow allocates a relayed address (the sans-I/O
  `ice.turn.client.TurnSession` on the flow's socket, which answers the
  401 challenge and keeps the allocation alive), opens a UDP *peer* socket
  on loopback (or ``peer_host``) connected to the relayed address and binds
  a channel to it, then sends ChannelData client -> server -> peer; with
  ``echo`` the peer sends each payload straight back (peer -> server ->
  client). With echo one peer socket (per peer host) serves every
  allocation, as one media server would: the server's work is the same (a
  relay socket per allocation, each sending to the peer's address), and the
  generator reads one socket instead of one per allocation. The far end
  (the client with echo, else the peer) matches stamps.
  The session runs on a `ice.aio.driver.MachineDriver`, fed only what is not
  stamped ChannelData (the blast itself bypasses it).

Pacing: at most ``window`` packets per flow are outstanding (sent, not yet
back; one outstanding for longer than ``timeout`` while the window is full is
written off, so a lost packet does not stall its flow), and with ``rate`` the
whole run sends at most ``rate`` packets per second (a token bucket; 0: no
cap). ``window=0`` and ``rate=0`` is open loop, as fast as the sockets go,
whatever comes back. After ``duration`` seconds sending stops and what is
still outstanding gets up to ``timeout`` seconds to arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ice._errors import Error, TurnError
from ice._load._pump import HAVE_PUMP, Pump
from ice._load.packets import (
    CHANNEL_STAMP_OFFSET,
    MAX_DURATION,
    STAMP,
    STUN_STAMP_OFFSET,
    LoadResult,
    LoadStats,
    binding_request,
    channel_data_frame,
)
from ice.aio._udpio import BatchSocket
from ice.aio.driver import MachineDriver
from ice.aio.portable import enlarge_buffers, platform_name
from ice.machine import Address, Transmit
from ice.stun.client_auth import LongTermCredentials
from ice.stun.uri import format_address
from ice.turn.client import TurnSession
from ice.turn.events import (
    Allocated,
    AllocationFailed,
    AllocationLost,
    ChannelBindFailed,
    ChannelBound,
    Closed,
    TurnEvent,
)

__all__ = ["DEFAULT_BATCH", "DEFAULT_WINDOW", "run_stun", "run_turn"]

logger = logging.getLogger("ice._load.engine")
_T = TypeVar("_T")

#: Datagrams per recvmmsg/sendmmsg call.
DEFAULT_BATCH = 64
#: Packets outstanding per flow.
DEFAULT_WINDOW = 128
#: Socket buffers asked for (the kernel caps them at net.core.[rw]mem_max).
_SOCKET_BUFFER = 4 << 20
#: recv() calls per readable callback before giving the loop back.
_READS_PER_WAKEUP = 8
#: Seconds between pacing ticks when a window or a rate paces the flows.
_TICK = 0.001
_UNLIMITED = 1 << 30
#: Seconds a TURN flow may take to allocate and bind its channel.
SETUP_TIMEOUT = 10.0
#: Seconds the allocations get to be released at the end.
CLOSE_TIMEOUT = 2.0
#: Client ports a TURN flow tries when the server answers 437 (Allocation
#: Mismatch: it still holds an allocation for the 5-tuple, as when a run
#: before lost its release and the kernel handed out the same port again).
#: RFC 8656 section 7.4, as the asyncio TurnClient does (ALLOCATION_MISMATCH_TRIES).
ALLOCATION_ATTEMPTS = 3


def _family(host: str) -> socket.AddressFamily:
    version = ipaddress.ip_address(host.partition("%")[0]).version
    return socket.AF_INET6 if version == 6 else socket.AF_INET


def _udp_socket(family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        enlarge_buffers(sock, _SOCKET_BUFFER)
    except BaseException:
        sock.close()
        raise
    return sock


def check_settings(
    *, flows: int, rate: float, duration: float, window: int, batch: int, timeout: float
) -> None:
    """Raise ValueError for settings out of bounds."""
    if not 0 < duration <= MAX_DURATION:
        raise ValueError(f"the duration must be more than 0 and at most {MAX_DURATION:g} s")
    if not 1 <= flows <= 1000:
        raise ValueError("flows must be from 1 to 1000")
    if rate < 0 or window < 0 or timeout <= 0:
        raise ValueError("rate and window must be 0 or more, timeout more than 0")
    if not 1 <= batch <= 1024:
        raise ValueError("batch must be from 1 to 1024")


@dataclass(eq=False)
class _Flow:
    """One socket's worth of load: its packets (built once) and what is outstanding."""

    bsock: BatchSocket
    buffers: list[bytearray]
    items: list[tuple[bytearray, Address]]
    offset: int
    outstanding: int = 0
    last_answer: float = 0.0


class _Engine:
    """Paces the flows' sending and counts what comes back; one per run.

    ``gro``: the pump's sockets read with UDP GRO where the kernel has it (see the
    module doc); it changes nothing for a server that sends datagram by datagram.
    ``gso``: each flow sends what its window lets go as UDP GSO sends (the server
    receives the same datagrams: only the generator's cost changes)."""

    def __init__(
        self,
        *,
        flows: int,
        rate: float,
        duration: float,
        window: int,
        batch: int,
        timeout: float,
        compiled: bool = True,
        gro: bool = True,
        gso: bool = True,
    ) -> None:
        check_settings(
            flows=flows, rate=rate, duration=duration, window=window, batch=batch, timeout=timeout
        )
        self.loop = asyncio.get_running_loop()
        self.stats = LoadStats(random.getrandbits(32))
        #: The compiled data path, or None: a reader per socket, the Python counting.
        self.pump: Pump | None = None
        #: The pump's flows: what their sockets get that is not stamped, for Python.
        self.feeders: list[Callable[[list[bytes]], None] | None] = []
        #: What the pump counted, once it is closed.
        self.pump_relayed = 0
        self.pump_dropped = 0
        self.pump_flows = 0
        if compiled and HAVE_PUMP:
            self.pump = Pump(
                self.stats,
                window=window,
                rate=rate,
                batch=batch,
                timeout=timeout,
                gro=gro,
                gso=gso,
            )
            try:
                _add_reader(self.loop, self.pump.fileno, self._poll)
            except BaseException:
                self.pump.close()
                raise
        self.rate = rate
        self.duration = duration
        self.window = window
        self.batch = batch
        self.timeout = timeout
        self.flows: list[_Flow] = []
        self.running = False
        self.t0 = self.loop.time()
        self.elapsed = 0.0
        self.received_in_time = 0
        self._tokens = 0.0
        self._tokens_at = 0.0
        self._burst = max(1.0, rate * 0.01)
        self._next = 0
        self._tick_handle: asyncio.Handle | None = None
        self._done: asyncio.Future[None] | None = None
        self._end = 0.0

    def _poll(self) -> None:
        assert self.pump is not None
        for index, datagrams in self.pump.poll():
            feed = self.feeders[index]
            if feed is not None:
                feed(datagrams)

    def close(self) -> None:
        """Stop reading the pump's sockets (the sockets are the caller's to close)."""
        pump, self.pump = self.pump, None
        if pump is not None:
            pump.sync()
            self.pump_relayed = pump.relayed
            self.pump_dropped = pump.dropped
            self.pump_flows = pump.flows
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(pump.fileno)
            pump.close()

    def _outstanding(self) -> bool:
        if self.pump is not None:
            return any(self.pump.outstanding(i) for i in range(self.pump.flows))
        return any(flow.outstanding for flow in self.flows)

    def now_us(self) -> int:
        return int((self.loop.time() - self.t0) * 1e6)

    # -- sending

    def _send(self, flow: _Flow, n: int) -> None:
        stats, batch = self.stats, self.batch
        now_us = int((self.loop.time() - self.t0) * 1e6)
        while n > 0:
            k = batch if n >= batch else n
            stats.stamp(flow.buffers, k, flow.offset, now_us)
            flow.bsock.send(flow.items if k == batch else flow.items[:k])
            flow.outstanding += k
            n -= k

    def _allowance(self, flow: _Flow) -> int:
        # open loop (no window): what the rate allows, else a batch per turn of the loop
        n = (
            self.window - flow.outstanding
            if self.window
            else (_UNLIMITED if self.rate else self.batch)
        )
        if self.rate and n > 0:
            now = self.loop.time()
            self._tokens = min(self._burst, self._tokens + (now - self._tokens_at) * self.rate)
            self._tokens_at = now
            n = min(n, int(self._tokens))
            self._tokens -= max(n, 0)
        return n

    def fill(self, flow: _Flow) -> None:
        """Send what the window and the rate allow on ``flow`` now."""
        if self.running:
            n = self._allowance(flow)
            if n > 0:
                self._send(flow, n)

    def answered(self, flow: _Flow, count: int) -> None:
        """``count`` of the flow's packets came back (at its far end)."""
        if count:
            flow.outstanding = max(0, flow.outstanding - count)
            flow.last_answer = self.loop.time()
            if self.window:
                self.fill(flow)

    # -- the run

    async def run(self) -> None:
        """Send for the duration, then wait for the stragglers (up to the timeout)."""
        loop = self.loop
        self._done = loop.create_future()
        self.t0 = self._tokens_at = loop.time()
        self._end = self.t0 + self.duration
        self._tokens = 0.0  # so that no more than rate x elapsed go out
        for flow in self.flows:
            flow.last_answer = self.t0
        self.running = True
        if self.pump is not None:
            self.pump.start(self.t0)
        self._tick()
        try:
            await self._done
        finally:
            self._stop()
        deadline = loop.time() + self.timeout
        while self._outstanding() and loop.time() < deadline:
            await asyncio.sleep(0.005)

    def _tick(self) -> None:
        self._tick_handle = None
        if not self.running:
            return
        now = self.loop.time()
        if now >= self._end:
            self._stop()
            return
        flows = self.flows
        if self.pump is not None:
            self.pump.tick()
            flows = []
        else:
            self._next = (self._next + 1) % len(flows)
        start = self._next
        for i in range(len(flows)):
            flow = flows[(start + i) % len(flows)]
            if (
                self.window
                and flow.outstanding >= self.window
                and now - flow.last_answer > self.timeout
            ):
                flow.outstanding = 0  # lost (or very late): let the flow go on
                flow.last_answer = now
            self.fill(flow)
        if not self.window and not self.rate:  # open loop: as fast as the loop turns
            self._tick_handle = self.loop.call_soon(self._tick)
        else:
            self._tick_handle = self.loop.call_at(min(now + _TICK, self._end), self._tick)

    def _stop(self) -> None:
        if self.running:
            self.running = False
            self.elapsed = self.loop.time() - self.t0
            if self.pump is not None:
                self.pump.stop()
                self.pump.sync()
            self.received_in_time = self.stats.received
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def result(self, mode: str, target: str, relayed: int = 0, **details: object) -> LoadResult:
        self.close()
        stats = self.stats
        p50, p90, p99, high = stats.percentiles_ms(50, 90, 99, 100)
        dropped = sum(flow.bsock.dropped for flow in self.flows) + self.pump_dropped
        return LoadResult(
            mode=mode,
            target=target,
            duration=self.elapsed,
            flows=len(self.flows) + self.pump_flows,
            sent=stats.sent,
            received=stats.received,
            received_in_time=self.received_in_time,
            latency_ms={"p50": p50, "p90": p90, "p99": p99, "max": high},
            errors=stats.errors,
            duplicates=stats.duplicates,
            stray=stats.stray,
            dropped=dropped,
            relayed=relayed + self.pump_relayed,
            details=dict(details),
        )


def _reader(
    bsock: BatchSocket, handle: Callable[[list[tuple[bytes, Address]]], None]
) -> Callable[[], None]:
    """A readable callback: up to a few recv() batches to ``handle``."""
    recv = bsock.recv

    def on_readable() -> None:
        for _ in range(_READS_PER_WAKEUP):
            got = recv()
            if not got:
                return
            handle(got)

    return on_readable


def _add_reader(loop: asyncio.AbstractEventLoop, fd: int, callback: Callable[[], None]) -> None:
    """``loop.add_reader``; `ice.Error` naming the platform where the loop has none."""
    try:
        loop.add_reader(fd, callback)
    except NotImplementedError:
        raise Error(
            f"the load generator reads its sockets from loop.add_reader, which "
            f"{type(loop).__name__} on {platform_name()} does not have: "
            f"run it on an asyncio.SelectorEventLoop"
        ) from None


# -- STUN


async def run_stun(
    server: Address,
    *,
    flows: int = 1,
    rate: float = 0.0,
    duration: float = 5.0,
    window: int = DEFAULT_WINDOW,
    batch: int = DEFAULT_BATCH,
    timeout: float = 1.0,
    target: str | None = None,
    compiled: bool = True,
    gro: bool = True,
    gso: bool = True,
) -> LoadResult:
    """Binding requests to ``server`` (an IP address and port) from ``flows`` sockets;
    ``compiled=False``: the Python data path even where `ice._load._pump` works;
    ``gro``, ``gso``: the pump's UDP offloads (see `_Engine`)."""
    loop = asyncio.get_running_loop()
    engine = _Engine(
        flows=flows,
        rate=rate,
        duration=duration,
        window=window,
        batch=batch,
        timeout=timeout,
        compiled=compiled,
        gro=gro,
        gso=gso,
    )
    stats = engine.stats
    family = _family(server[0])
    socks: list[socket.socket] = []
    try:
        for _ in range(flows):
            sock = _udp_socket(family)
            socks.append(sock)
            sock.connect(server)
            if engine.pump is not None:
                engine.pump.add_stun(sock.fileno(), binding_request())
                continue
            bsock = BatchSocket(sock, batch, 2048)
            buffers = [binding_request() for _ in range(batch)]
            flow = _Flow(bsock, buffers, [(b, server) for b in buffers], STUN_STAMP_OFFSET)
            engine.flows.append(flow)

            def handle(got: list[tuple[bytes, Address]], flow: _Flow = flow) -> None:
                engine.answered(flow, stats.take_stun(got, engine.now_us()))

            _add_reader(loop, sock.fileno(), _reader(bsock, handle))
        await engine.run()
    finally:
        engine.close()
        for sock in socks:
            with contextlib.suppress(ValueError, OSError, NotImplementedError):
                loop.remove_reader(sock.fileno())  # (none with the pump)
            sock.close()
    return engine.result("stun", target or f"stun:{format_address(server)}")


# -- TURN


class _TurnFlow:
    """One allocation: a TurnSession on the flow's own connected UDP socket."""

    def __init__(
        self,
        server: Address,
        credentials: LongTermCredentials,
        batch: int,
        software: str | None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.server = server
        self.sock = _udp_socket(_family(server[0]))
        self.sock.connect(server)
        self.bsock = BatchSocket(self.sock, batch, 2048)
        self.session = TurnSession(
            server,
            credentials,
            channel_after=0,
            family=4 if self.sock.family == socket.AF_INET else 6,
            software=software,
        )
        self.driver = _SessionDriver(self)
        #: The peer's own socket (no echo), connected to the relayed address.
        self.peer_sock: socket.socket | None = None
        self.peer: BatchSocket | None = None
        #: Where the channel leads: the peer socket's (or the shared echoing one's) address.
        self.peer_address: Address | None = None
        self.allocated: asyncio.Future[Allocated] = self.loop.create_future()
        self.bound: asyncio.Future[int] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.lost: TurnError | None = None
        self.readers: list[int] = []

    def feed(self, datagrams: list[bytes]) -> None:
        server = self.server
        self.driver.feed_batch([(data, server) for data in datagrams], self.loop.time())

    def pump(self, now: float) -> None:
        self.driver.pump(now)

    def _dispatch(self, event: TurnEvent) -> None:
        if isinstance(event, Allocated):
            _settle(self.allocated, event)
        elif isinstance(event, AllocationFailed):
            _fail(self.allocated, TurnError(event.code, event.reason))
        elif isinstance(event, ChannelBound):
            _settle(self.bound, event.channel)
        elif isinstance(event, ChannelBindFailed):
            _fail(self.bound, TurnError(event.code, event.reason))
        elif isinstance(event, AllocationLost):
            self.lost = TurnError(event.code, event.reason)
            logger.warning("allocation on %s lost: %s", format_address(self.server), self.lost)
            _fail(self.allocated, self.lost)
            _fail(self.bound, self.lost)
            self._end()
        elif isinstance(event, Closed):
            self._end()

    def _end(self) -> None:
        """The allocation is gone (released or lost): nothing left to time."""
        _settle(self.closed, None)
        self.driver.close()

    def keep_alive(self) -> None:
        """Mark the channel and its permission used (the blast bypasses the session),
        so that the session refreshes them in a long run."""
        peer = self.peer_address
        if peer is not None and self.lost is None and self.session.state == "allocated":
            self.session.encapsulate(b"", peer)

    async def setup(self, peer_host: str | None, echoes: _EchoPeers | None) -> int:
        """Allocate, open the peer socket (with ``echoes``: take the shared one),
        bind a channel to it; the channel number."""
        now = self.loop.time()
        self.session.allocate(now)
        self.pump(now)
        allocation = await self.allocated
        relayed = allocation.relayed[0]
        host = peer_host or ("::1" if _family(relayed[0]) == socket.AF_INET6 else "127.0.0.1")
        if echoes is not None:
            self.peer_address = echoes.address(host)
        else:
            self.peer_sock = _udp_socket(_family(host))
            self.peer_sock.bind((host, 0))
            self.peer_sock.connect(relayed)  # the peer hears from the relay only
            self.peer = BatchSocket(self.peer_sock, self.bsock.batch, 2048)
            name = self.peer_sock.getsockname()
            self.peer_address = (name[0], name[1])
        now = self.loop.time()
        self.session.bind_channel(self.peer_address, now)
        self.pump(now)
        return await self.bound

    async def close(self) -> None:
        if self.session.state == "allocated" and not self.closed.done():
            now = self.loop.time()
            self.session.close(now)
            self.pump(now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await asyncio.shield(self.closed)
        self.driver.close()
        for fd in self.readers:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(fd)
        self.readers.clear()
        self.sock.close()
        if self.peer_sock is not None:
            self.peer_sock.close()


class _EchoPeers:
    """The peer sockets that echo for every allocation of a run: one per peer host,
    not connected (it answers each relayed address from where the datagram came)."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.sockets: dict[str, tuple[socket.socket, BatchSocket]] = {}

    def address(self, host: str) -> Address:
        if host not in self.sockets:
            sock = _udp_socket(_family(host))
            try:
                sock.bind((host, 0))
                self.sockets[host] = (sock, BatchSocket(sock, self.batch, 2048))
            except BaseException:
                sock.close()
                raise
        name = self.sockets[host][0].getsockname()
        return (name[0], name[1])

    def close(self) -> None:
        for sock, _ in self.sockets.values():
            sock.close()
        self.sockets.clear()


class _SessionDriver(MachineDriver[TurnSession]):
    """A flow's session on the loop: sends on the flow's socket, events to the flow."""

    logger = logger

    def __init__(self, flow: _TurnFlow) -> None:
        super().__init__(flow.session)
        self._flow = flow

    def transmit(self, transmit: Transmit) -> None:
        self._flow.bsock.sendto(transmit.data, transmit.addr)

    def event_received(self, event: TurnEvent) -> None:
        self._flow._dispatch(event)


def _settle(future: asyncio.Future[_T], value: _T) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # retrieved: nobody may be waiting any more


async def run_turn(
    server: Address,
    username: str,
    password: str,
    *,
    flows: int = 1,
    rate: float = 0.0,
    duration: float = 5.0,
    size: int = 100,
    echo: bool = True,
    window: int = DEFAULT_WINDOW,
    batch: int = DEFAULT_BATCH,
    timeout: float = 1.0,
    peer_host: str | None = None,
    software: str | None = None,
    target: str | None = None,
    compiled: bool = True,
    gro: bool = True,
    gso: bool = True,
) -> LoadResult:
    """ChannelData through ``flows`` allocations on ``server`` (an IP address and port)
    to peers of our own; raises TurnError when an allocation or channel is refused.
    ``compiled=False``: the Python data path even where `ice._load._pump` works;
    ``gro``, ``gso``: the pump's UDP offloads (see `_Engine`)."""
    if not STAMP.size <= size <= 65000:
        raise ValueError(f"the payload size must be from {STAMP.size} to 65000 bytes")
    loop = asyncio.get_running_loop()
    engine = _Engine(
        flows=flows,
        rate=rate,
        duration=duration,
        window=window,
        batch=batch,
        timeout=timeout,
        compiled=compiled,
        gro=gro,
        gso=gso,
    )
    turns: list[_TurnFlow] = []
    relayed = [0]
    keep_alive: asyncio.Task[None] | None = None
    echoes = _EchoPeers(batch) if echo else None

    def start_flow() -> _TurnFlow:
        turn = _TurnFlow(server, LongTermCredentials(username, password), batch, software)
        _add_reader(
            loop,
            turn.sock.fileno(),
            _reader(turn.bsock, _client_handler(engine, turn, None, echo, relayed)),
        )
        turn.readers.append(turn.sock.fileno())
        return turn

    async def set_up(index: int) -> int:
        attempt = 1
        while True:
            try:
                return await turns[index].setup(peer_host, echoes)
            except TurnError as exc:
                if exc.code != 437 or attempt == ALLOCATION_ATTEMPTS:
                    raise
            attempt += 1
            await turns[index].close()
            turns[index] = start_flow()  # another socket: another client port

    try:
        turns.extend(start_flow() for _ in range(flows))
        setups = [loop.create_task(set_up(index)) for index in range(flows)]
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                channels = await asyncio.gather(*setups)
        except TimeoutError:
            raise TurnError(0, f"no allocation and channel within {SETUP_TIMEOUT:g} s") from None
        finally:
            for task in setups:  # the others, when one failed
                task.cancel()
        pump = engine.pump
        for turn, channel in zip(turns, channels, strict=True):
            fd = turn.sock.fileno()
            if pump is not None:  # from now on the pump reads the flow's sockets
                loop.remove_reader(fd)
                turn.readers.remove(fd)
                index = pump.add_client(fd, channel_data_frame(channel, size), echo)
                engine.feeders.append(turn.feed)
                if turn.peer_sock is not None:
                    pump.add_peer(turn.peer_sock.fileno(), index)
                continue
            buffers = [channel_data_frame(channel, size) for _ in range(batch)]
            items = [(b, server) for b in buffers]
            flow = _Flow(turn.bsock, buffers, items, CHANNEL_STAMP_OFFSET)
            engine.flows.append(flow)
            loop.remove_reader(fd)
            _add_reader(
                loop, fd, _reader(turn.bsock, _client_handler(engine, turn, flow, echo, relayed))
            )
            if turn.peer is not None and turn.peer_sock is not None:
                _add_reader(
                    loop,
                    turn.peer_sock.fileno(),
                    _reader(turn.peer, _peer_handler(engine, flow, relayed)),
                )
                turn.readers.append(turn.peer_sock.fileno())
        for _, peer in echoes.sockets.values() if echoes is not None else ():
            if pump is not None:
                pump.add_echo(peer.fileno)
            else:
                _add_reader(loop, peer.fileno, _reader(peer, _echo_handler(peer, relayed)))
        keep_alive = loop.create_task(_keep_alive(turns))
        await engine.run()
    finally:
        if keep_alive is not None:
            keep_alive.cancel()
        await asyncio.gather(*(turn.close() for turn in turns), return_exceptions=True)
        engine.close()
        if echoes is not None:
            for sock, _ in echoes.sockets.values():
                with contextlib.suppress(ValueError, OSError):
                    loop.remove_reader(sock.fileno())
            echoes.close()
    lost = sum(turn.lost is not None for turn in turns)
    return engine.result(
        "turn",
        target or f"turn:{format_address(server)}",
        relayed[0],
        size=size,
        echo=echo,
        allocations_lost=lost,
    )


def _client_handler(
    engine: _Engine, turn: _TurnFlow, flow: _Flow | None, echo: bool, relayed: list[int]
) -> Callable[[list[tuple[bytes, Address]]], None]:
    """What the client socket receives: stamped ChannelData (with echo, the far end),
    anything else (STUN responses, stray frames) to the session."""
    stats = engine.stats

    def handle(got: list[tuple[bytes, Address]]) -> None:
        others: list[bytes] = []
        if flow is not None and echo:
            fresh = stats.take(got, CHANNEL_STAMP_OFFSET, engine.now_us(), others)
            relayed[0] += len(got) - len(others)
            engine.answered(flow, fresh)
        else:
            others = [data for data, _ in got]
        if others:
            turn.feed(others)

    return handle


def _peer_handler(
    engine: _Engine, flow: _Flow, relayed: list[int]
) -> Callable[[list[tuple[bytes, Address]]], None]:
    """What a flow's own peer (no echo) receives from the relay: the far end."""
    stats = engine.stats

    def count(got: list[tuple[bytes, Address]]) -> None:
        relayed[0] += len(got)
        engine.answered(flow, stats.take(got, 0, engine.now_us()))

    return count


def _echo_handler(
    peer: BatchSocket, relayed: list[int]
) -> Callable[[list[tuple[bytes, Address]]], None]:
    """What the shared echoing peer receives: sent back to where each came from."""
    send = peer.send

    def echo_back(got: list[tuple[bytes, Address]]) -> None:
        relayed[0] += len(got)
        send(got)

    return echo_back


async def _keep_alive(turns: list[_TurnFlow]) -> None:
    while True:
        for turn in turns:
            turn.keep_alive()
        await asyncio.sleep(1.0)
