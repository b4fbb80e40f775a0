"""Connect two ICE agents on 127.0.0.1 and push datagrams through them: ours and aioice's.

    python bench/ice_connect.py                      # both malloc states, 100 and 1,200 B (~1 min)
    python bench/ice_connect.py --malloc fast --size 1200 -n 200 --packets 50000 --window 32
    python bench/ice_connect.py --strace             # also count mmap/munmap/brk per datagram
    python bench/ice_connect.py --quick --json /tmp/ice.json
    python bench/ice_connect.py --impls ours,aioice  # without the plain-socket floor

Both implementations run in the same process and the same run, each through
its usual API (``ice.aio.connection.Connection`` and ``aioice.Connection``), one
component, host candidates on 127.0.0.1 only (ours: ``ip_filter``; aioice,
which leaves loopback out: ``aioice.ice.get_host_addresses`` replaced for the
run, as tests/aio/test_connection.py does).

1. **Connect time.** For each of ``-n`` runs (after ``--connect-warmup``
   uncounted ones), per implementation in turn: two connections gather, swap
   credentials, candidates and end-of-candidates; then the clock starts, both
   ``connect()`` are called together, and it stops once both have returned
   (connected on both sides). Printed: median, p90, min and max in ms (the
   issue's target for ours: a median under 2 ms; aioice paces its checks
   with a 20 ms sleep and took 21.9 ms here).
2. **Packets per second** through one connected pair per implementation
   and round: *ping-pong* (one side sends a datagram and waits for the other
   side to echo it back, ``--packets / 2`` times) and *one-way*, a loss-free
   windowed stream (one side sends ``--packets`` datagrams, the other counts
   them; at most ``--window`` are in flight so the receiving socket never
   overflows: the receiver runs on the same event loop; a run that loses one
   is reported as lossy, not averaged in). pkt/s counts every datagram that
   arrives, byte-exact, in either direction: a ping-pong round trip is two.
3. **Per-packet cost**: this process's CPU time (``time.process_time``)
   over each of those runs, per datagram delivered: one side's send plus the
   other side's receive, the event loop and the harness included; and the
   minor page faults (``getrusage``) per datagram, which tell the two malloc
   states below apart.

**Two malloc states.** asyncio's datagram transport receives every datagram
into a fresh 256 KiB buffer (``recvfrom(max_size)``, then shrunk; aioice and
``direct`` use it as it is, ours reads 64 KiB). glibc serves that either from
its heap or with an mmap + munmap per datagram (and a page fault on the fresh
page), depending on its mmap threshold, which it raises by itself once the
process frees a block above it: a process's history (for a small script here,
even the length of its command line) decides, and the cost per datagram of
aioice and ``direct`` moves by about 2x. So by default (``--malloc both``)
every measurement runs in child processes with the state pinned, one per
state, size and implementation (what one implementation leaves in the heap
would otherwise decide the next one's state: see run_children):

- *fast* (heap): ``MALLOC_MMAP_THRESHOLD_=4194304 MALLOC_TRIM_THRESHOLD_=8388608``.
  Setting the threshold by hand turns the dynamic one off, and with it the
  raise of the trim threshold that would go along (to twice the mmap
  threshold): left at 128 KiB, each 256 KiB buffer carved from the top of the
  heap would be handed back with brk when freed, a brk pair per datagram.
- *slow* (mmap): ``MALLOC_MMAP_THRESHOLD_=131072``: every 256 KiB buffer is an
  mmap + munmap.

``--malloc fast`` or ``slow`` runs one state; ``settle`` measures in this
process after freeing a 4 MiB block (the fast state as a long-running process
reaches it by itself); ``as-is`` leaves malloc alone. ``--strace`` checks the
states: per state and implementation, a short run under
``strace -c -f -e trace=mmap,munmap,mremap,brk`` less one that sends nothing,
per datagram. The targets (issue 16): ours at least 0.8x the plain socket's
pkt/s in the fast state, ping-pong and stream, 100 and 1,200 bytes; ours never
below aioice in either state.

``direct`` (in ``--impls`` by default) is no ICE at all: two plain asyncio UDP
sockets behind the same ``send()``/``recv()`` (a DatagramProtocol feeding an
``asyncio.Queue``, as both libraries do): the floor of the data path on
asyncio, which the ICE rows can at best approach. Each payload carries a run
and a sequence number and is compared byte for byte. A run with no progress
for ``--stall`` seconds (a datagram lost) ends there, counting what did not
arrive as lost. The data-path ratios use each implementation's best round
(pkt/s) and lowest round (CPU).

Everything stays on loopback. Numbers are only comparable within one run on
one machine: other load moves them by 2x or more, hence ``--rounds``; the
CPU per datagram moves least.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
try:
    import ice  # noqa: F401
except ImportError:  # a source checkout built in place
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
IMPLS = ("ours", "aioice")
BASELINE = "direct"
MODES = ("ping-pong", "one-way")
HEADER = 8  # run number (4 bytes) + sequence number (4 bytes) at the start of each payload
TARGET_CONNECT_MS = 2.0
#: What issue 5 quotes for aioice on this machine (connect median; ping-pong and one-way pkt/s).
AIOICE_QUOTED = {"connect_ms": 21.9, "ping-pong": 28_500.0, "one-way": 36_000.0}
QUICK = {"runs": 10, "packets": 2000, "warmup": 200, "rounds": 1, "connect_warmup": 1}
#: The environment of a child process in each malloc state (see the module docstring).
MALLOC_ENV = {
    "fast": {"MALLOC_MMAP_THRESHOLD_": "4194304", "MALLOC_TRIM_THRESHOLD_": "8388608"},
    "slow": {"MALLOC_MMAP_THRESHOLD_": "131072"},
}
MALLOC_CHOICES = ("both", "fast", "slow", "settle", "as-is")
#: Issue 16's targets: ours / direct pkt/s in the fast state, and ours / aioice everywhere.
TARGET_FLOOR = 0.8
TARGET_AIOICE = 1.0
STRACE_CALLS = ("mmap", "munmap", "mremap", "brk")
DEFAULTS = {"runs": 50, "packets": 20_000, "warmup": 2000, "rounds": 3, "connect_warmup": 2}


class Endpoint(Protocol):
    """One side of a connected pair, whatever the library."""

    async def send(self, data: bytes) -> None: ...

    async def recv(self) -> bytes: ...

    async def close(self) -> None: ...


# -- the two implementations, and the floor


@contextlib.contextmanager
def aioice_on_loopback() -> Iterator[None]:
    """aioice's host candidates on 127.0.0.1 only (it leaves loopback out by itself)."""
    import aioice.ice

    original = aioice.ice.get_host_addresses

    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [HOST] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


def make_connection(impl: str, controlling: bool) -> Any:
    if impl == "ours":
        from ice.aio.connection import Connection

        return Connection(controlling, ip_filter=[HOST], use_ipv6=False)
    import aioice

    return aioice.Connection(ice_controlling=controlling, use_ipv6=False)


async def close_all(*ends: Endpoint) -> None:
    await asyncio.gather(*(end.close() for end in ends), return_exceptions=True)


async def signalled_pair(impl: str) -> tuple[Any, Any]:
    """Two connections that gathered and know each other's credentials and candidates
    (and end-of-candidates): everything before ``connect()``."""
    a, b = make_connection(impl, True), make_connection(impl, False)
    try:
        await asyncio.gather(a.gather_candidates(), b.gather_candidates())
        for this, other in ((a, b), (b, a)):
            hosts = {c.host for c in this.local_candidates}
            if hosts != {HOST}:
                raise RuntimeError(f"{impl} gathered {sorted(hosts)}, not {HOST} alone")
            other.remote_username = this.local_username
            other.remote_password = this.local_password
            for candidate in this.local_candidates:
                await other.add_remote_candidate(candidate)
            await other.add_remote_candidate(None)
    except BaseException:
        await close_all(a, b)
        raise
    return a, b


async def connect_both(a: Any, b: Any, timeout: float) -> float:
    """Call both ``connect()`` at once; seconds until both returned."""
    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), timeout)
    return time.perf_counter() - start


class _Queued(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)


class DirectEnd:
    """A plain asyncio UDP socket with the connections' send()/recv(): no ICE."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _Queued) -> None:
        self.transport = transport
        self.protocol = protocol
        self.address: tuple[str, int] = transport.get_extra_info("sockname")[:2]
        self.peer = self.address

    async def send(self, data: bytes) -> None:
        self.transport.sendto(data, self.peer)

    async def recv(self) -> bytes:
        return await self.protocol.queue.get()

    async def close(self) -> None:
        self.transport.close()


async def direct_pair() -> tuple[DirectEnd, DirectEnd]:
    loop = asyncio.get_running_loop()
    ends = []
    for _ in range(2):
        transport, protocol = await loop.create_datagram_endpoint(_Queued, local_addr=(HOST, 0))
        ends.append(DirectEnd(transport, protocol))
    a, b = ends
    a.peer, b.peer = b.address, a.address
    return a, b


async def connected_pair(impl: str, timeout: float) -> tuple[Endpoint, Endpoint]:
    if impl == BASELINE:
        return await direct_pair()
    a, b = await signalled_pair(impl)
    try:
        await connect_both(a, b, timeout)
    except BaseException:
        await close_all(a, b)
        raise
    return a, b


def describe(impl: str) -> str:
    if impl == "ours":
        from ice import __version__

        return f"ice {__version__}, ice.aio.connection.Connection"
    if impl == "aioice":
        import aioice

        return f"aioice {getattr(aioice, '__version__', '?')}, aioice.Connection"
    return "asyncio UDP sockets + asyncio.Queue, no ICE"


# -- connect time


@dataclass
class ConnectResult:
    """One implementation's connect times."""

    impl: str
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def _ms(self, p: float) -> float:
        """The p-th percentile (nearest rank) in ms; 0 without a run."""
        ordered = sorted(self.seconds)
        if not ordered:
            return 0.0
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1] * 1e3

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1e3 if self.seconds else 0.0

    @property
    def p90_ms(self) -> float:
        return self._ms(90)

    @property
    def min_ms(self) -> float:
        return self._ms(0)

    @property
    def max_ms(self) -> float:
        return self._ms(100)

    def summary(self) -> dict[str, Any]:
        return {
            "impl": self.impl,
            "runs": len(self.seconds),
            "failures": self.failures,
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "ms": [s * 1e3 for s in self.seconds],
        }


async def connect_times(impls: Sequence[str], args: argparse.Namespace) -> list[ConnectResult]:
    """``args.runs`` connects per implementation (after the uncounted warm-up ones),
    the implementations taking turns run by run."""
    results = {impl: ConnectResult(impl) for impl in impls}
    for run in range(args.connect_warmup + args.runs):
        for impl in impls:
            a, b = await signalled_pair(impl)
            try:
                seconds = await connect_both(a, b, args.timeout)
            except (ConnectionError, TimeoutError) as exc:
                if run >= args.connect_warmup:
                    results[impl].failures.append(f"{type(exc).__name__}: {exc}")
                continue
            finally:
                await close_all(a, b)
            if run >= args.connect_warmup:
                results[impl].seconds.append(seconds)
    return list(results.values())


# -- the data path


@dataclass
class Flow:
    """One implementation, one mode, one round through a connected pair."""

    impl: str
    mode: str
    round: int
    count: int
    """Datagrams that should arrive (a ping-pong round trip is two)."""
    size: int
    received: int = 0
    lost: int = 0
    corrupt: int = 0
    late: int = 0
    stalled: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    faults: int = 0
    """Minor page faults of this process during the run."""
    malloc: str = ""
    """The malloc state the run was in (fast, slow, settle, as-is)."""
    note: str = ""

    @property
    def rate(self) -> float:
        """Datagrams that arrived byte-exact, per second."""
        return self.received / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """This process's CPU time per datagram delivered (a send and a receive), in µs."""
        return self.cpu_seconds / self.received * 1e6 if self.received else 0.0

    @property
    def faults_per_pkt(self) -> float:
        return self.faults / self.received if self.received else 0.0

    @property
    def exact(self) -> bool:
        """Every datagram arrived once, byte for byte."""
        return (
            self.received == self.count
            and self.lost == self.corrupt == self.late == 0
            and not self.stalled
        )


class Payloads:
    """Numbered payloads of ``size`` bytes for one run."""

    def __init__(self, run: int, size: int) -> None:
        if size < HEADER:
            raise ValueError(f"--size must be at least {HEADER} bytes (the sequence number)")
        self.prefix = run.to_bytes(4, "big")
        self.tail = bytes((i * 7 + 3) & 0xFF for i in range(HEADER, size))

    def make(self, seq: int) -> bytes:
        return self.prefix + seq.to_bytes(4, "big") + self.tail

    def seq(self, data: bytes) -> int:
        """The sequence number of a payload of this run; -1 for anything else."""
        if len(data) < HEADER or data[:4] != self.prefix:
            return -1
        return int.from_bytes(data[4:8], "big")


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


async def watched(
    work: Coroutine[Any, Any, None], progress: Callable[[], int], stall: float
) -> bool:
    """Run ``work``; cancel it once ``progress()`` has not moved for ``stall`` seconds
    (checked every ``stall`` seconds: no timer per datagram). True when it finished."""
    task = asyncio.ensure_future(work)
    last = -1
    while True:
        done, _ = await asyncio.wait({task}, timeout=stall)
        if done:
            task.result()
            return True
        now = progress()
        if now == last:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return False
        last = now


async def ping_pong(a: Endpoint, b: Endpoint, flow: Flow, run: int, stall: float) -> None:
    """a sends one datagram, b echoes it, a waits for it: ``flow.count / 2`` times."""
    payloads = Payloads(run, flow.size)
    make, seq_of = payloads.make, payloads.seq

    async def echo() -> None:
        send, recv = b.send, b.recv
        while True:
            await send(await recv())

    async def drive() -> None:
        send, recv = a.send, a.recv
        for seq in range(flow.count // 2):
            payload = make(seq)
            await send(payload)
            while True:
                data = await recv()
                if data == payload:
                    flow.received += 2
                    break
                if seq_of(data) == seq:
                    flow.corrupt += 1
                    break
                flow.late += 1  # not this one: a straggler

    echoer = asyncio.ensure_future(echo())
    faults = _minor_faults()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        flow.stalled = not await watched(
            drive(), lambda: flow.received + flow.corrupt + flow.late, stall
        )
    finally:
        flow.seconds = time.perf_counter() - start
        flow.cpu_seconds = time.process_time() - cpu_start
        flow.faults = _minor_faults() - faults
        echoer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await echoer
    flow.lost = max(0, flow.count - flow.received - 2 * flow.corrupt)


async def one_way(
    a: Endpoint, b: Endpoint, flow: Flow, run: int, window: int, stall: float
) -> None:
    """a sends ``flow.count`` datagrams, at most ``window`` ahead of what b has counted."""
    payloads = Payloads(run, flow.size)
    make, seq_of = payloads.make, payloads.seq
    count = flow.count
    state = {"sent": 0, "next": 0}  # datagrams sent; the sequence number b expects next
    waiting: list[asyncio.Future[None]] = []
    loop = asyncio.get_running_loop()
    low = max(1, window // 2)

    async def receive() -> None:
        recv = b.recv
        while True:
            data = await recv()
            seq = seq_of(data)
            expected = state["next"]
            if seq < expected:
                flow.late += 1
                continue
            if seq > expected:
                flow.lost += seq - expected  # loopback keeps order: a gap is a loss
            state["next"] = seq + 1
            if data == make(seq):
                flow.received += 1
            else:
                flow.corrupt += 1
            if waiting and (state["sent"] - state["next"] <= low or state["next"] >= count):
                waiter = waiting.pop()
                if not waiter.done():
                    waiter.set_result(None)

    async def send() -> None:
        send = a.send
        for seq in range(count):
            if seq - state["next"] >= window:
                waiter = loop.create_future()
                waiting.append(waiter)
                await waiter
            await send(make(seq))
            state["sent"] = seq + 1
        while state["next"] < count:  # the last ones
            waiter = loop.create_future()
            waiting.append(waiter)
            await waiter

    receiver = asyncio.ensure_future(receive())
    faults = _minor_faults()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        flow.stalled = not await watched(send(), lambda: state["next"] + flow.late, stall)
    finally:
        flow.seconds = time.perf_counter() - start
        flow.cpu_seconds = time.process_time() - cpu_start
        flow.faults = _minor_faults() - faults
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
    flow.lost += count - state["next"]


async def data_path(impl: str, round_: int, size: int, args: argparse.Namespace) -> list[Flow]:
    """One connected pair: an uncounted warm-up, then ping-pong, then one-way."""
    a, b = await connected_pair(impl, args.timeout)
    run = round_ * 10
    note = describe(impl)
    try:
        if args.warmup:
            warm = Flow(impl, "warm-up", round_, args.warmup, size)
            await ping_pong(a, b, warm, run + 1, args.stall)
            warm = Flow(impl, "warm-up", round_, args.warmup, size)
            await one_way(a, b, warm, run + 2, args.window, args.stall)
        pong = Flow(impl, "ping-pong", round_, args.packets // 2 * 2, size, note=note)
        await ping_pong(a, b, pong, run + 3, args.stall)
        flow = Flow(impl, "one-way", round_, args.packets, size, note=note)
        await one_way(a, b, flow, run + 4, args.window, args.stall)
    finally:
        await close_all(a, b)
    return [pong, flow]


def settle_malloc() -> None:
    """Free a 4 MiB block, so that glibc's dynamic mmap threshold is above asyncio's
    256 KiB receive buffer: no mmap + munmap per datagram (see the module docstring)."""
    block = bytearray(4 << 20)
    del block


async def measure_all(args: argparse.Namespace) -> tuple[list[ConnectResult], list[Flow]]:
    """Everything, in this process, in the malloc state it is in (after `settle_malloc`
    for ``--malloc settle``)."""
    if args.malloc == "settle":
        settle_malloc()
    gc.collect()
    gc.freeze()  # what the imports made is not traversed by every collection in the timed part
    try:
        return await _measure_all(args)
    finally:
        gc.unfreeze()


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr)


async def _measure_all(args: argparse.Namespace) -> tuple[list[ConnectResult], list[Flow]]:
    ice_impls = [impl for impl in args.impls if impl != BASELINE]
    _say(args, f"  connect: {args.connect_warmup} + {args.runs} runs of {', '.join(ice_impls)} ...")
    connects = await connect_times(ice_impls, args) if ice_impls and args.runs else []
    flows: list[Flow] = []
    for size in args.size:
        for round_ in range(1, args.rounds + 1):
            for impl in args.impls:
                _say(args, f"  data path: {impl}, {size} B, round {round_} ...")
                flows += await data_path(impl, round_, size, args)
    for flow in flows:
        flow.malloc = args.malloc
    return connects, flows


# -- child processes, one per malloc state, size and implementation


def _child_argv(
    args: argparse.Namespace, size: int, runs: int, json_path: Path, impls: Sequence[str] = ()
) -> list[str]:
    """This script, measuring in a process of its own (no children of its own)."""
    argv = [sys.executable, "-P", str(Path(__file__).resolve()), "--malloc", "as-is"]
    argv += ["--size", str(size), "-n", str(runs), "--connect-warmup", str(args.connect_warmup)]
    argv += ["--packets", str(args.packets), "--warmup", str(args.warmup)]
    argv += ["--rounds", str(args.rounds), "--window", str(args.window)]
    argv += ["--impls", ",".join(impls or args.impls), "--timeout", str(args.timeout)]
    argv += ["--stall", str(args.stall), "--json", str(json_path)]
    return [*argv, "-q"] if args.quiet else argv


def _child_env(state: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(MALLOC_ENV[state])
    return env  # a child finds ice as this process did (installed, or ROOT: see the imports)


def _load(path: Path) -> tuple[list[ConnectResult], list[Flow]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    connects = [
        ConnectResult(c["impl"], [ms / 1e3 for ms in c["ms"]], c["failures"])
        for c in data["connect"]
    ]
    names = {f.name for f in fields(Flow)}
    flows = [Flow(**{k: v for k, v in f.items() if k in names}) for f in data["flows"]]
    return connects, flows


def run_children(args: argparse.Namespace) -> tuple[list[ConnectResult], list[Flow]]:
    """One child process per malloc state, size and implementation, the state pinned in
    its environment; each implementation's connect times in its first child only (they
    do not depend on either).

    One implementation per process, because what one leaves in the heap changes the
    next one's state: after our connection has run, a 256 KiB malloc in the same
    process fits in the heap's top chunk and never reaches the mmap threshold, so the
    slow state would not be slow for the plain sockets or aioice measured after it.
    """
    states = list(MALLOC_ENV) if args.malloc == "both" else [args.malloc]
    connects: list[ConnectResult] = []
    flows: list[Flow] = []
    connected: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="ice_connect.") as tmp:
        runs = [(st, sz, impl) for st in states for sz in args.size for impl in args.impls]
        for state, size, impl in runs:
            _say(args, f"{state} malloc, {size} B, {impl}: a child process ...")
            out = Path(tmp) / f"{state}-{size}-{impl}.json"
            connects_here = args.runs if impl != BASELINE and impl not in connected else 0
            connected.add(impl)
            argv = _child_argv(args, size, connects_here, out, [impl])
            done = subprocess.run(
                argv, env=_child_env(state), stdout=subprocess.DEVNULL, check=False
            )
            if done.returncode not in (0, 1) or not out.exists():
                raise RuntimeError(
                    f"the {state} / {size} B / {impl} child exited {done.returncode}"
                )
            got_connects, got_flows = _load(out)
            connects += got_connects
            for flow in got_flows:
                flow.malloc = state
            flows += got_flows
    return connects, flows


def _strace_calls(path: Path) -> dict[str, int]:
    """Calls per syscall from ``strace -c`` output."""
    calls: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in STRACE_CALLS and parts[3].isdigit():
            calls[parts[-1]] = int(parts[3])
    return calls


def strace_check(args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    """Per state and implementation: mmap, munmap, mremap and brk calls per datagram,
    from a short run under strace less one that sends nothing (connect and close alike)."""
    strace = shutil.which("strace")
    if strace is None:
        raise RuntimeError("--strace: strace is not installed (apt-get install strace)")
    states = list(MALLOC_ENV) if args.malloc in ("both", "settle", "as-is") else [args.malloc]
    packets, size = 2000, args.size[0]
    out: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ice_connect.strace.") as tmp:
        for state in states:
            for impl in args.impls:
                _say(args, f"strace: {state} malloc, {impl} ...")
                counted: list[tuple[dict[str, int], int]] = []
                for sent in (0, packets):
                    trace, data = Path(tmp) / "trace.txt", Path(tmp) / "flows.json"
                    argv = [strace, "-f", "-c", "-e", "trace=" + ",".join(STRACE_CALLS)]
                    argv += ["-o", str(trace), sys.executable, "-P", str(Path(__file__).resolve())]
                    argv += ["--malloc", "as-is", "-q", "-n", "0", "--impls", impl, "--rounds", "1"]
                    argv += ["--packets", str(sent), "--warmup", "0", "--size", str(size)]
                    argv += ["--window", str(args.window), "--json", str(data)]
                    done = subprocess.run(
                        argv, env=_child_env(state), stdout=subprocess.DEVNULL, check=False
                    )
                    if done.returncode not in (0, 1) or not data.exists():
                        raise RuntimeError(f"strace run ({state}, {impl}) exited {done.returncode}")
                    received = sum(f.received for f in _load(data)[1])
                    counted.append((_strace_calls(trace), received))
                (idle, _), (busy, received) = counted
                out.setdefault(state, {})[impl] = {
                    name: (busy.get(name, 0) - idle.get(name, 0)) / max(received, 1)
                    for name in STRACE_CALLS
                }
    return out


# -- the report


def best(flows: Sequence[Flow], impl: str, mode: str) -> Flow | None:
    """The round with the highest rate."""
    mine = [f for f in flows if f.impl == impl and f.mode == mode and f.received]
    return max(mine, key=lambda f: f.rate) if mine else None


def _best_rate(flows: Sequence[Flow], impl: str, mode: str) -> float | None:
    flow = best(flows, impl, mode)
    return flow.rate if flow is not None else None


def lowest_cpu(flows: Sequence[Flow], impl: str, mode: str) -> float | None:
    mine = [f.cpu_us for f in flows if f.impl == impl and f.mode == mode and f.received]
    return min(mine) if mine else None


def groups(flows: Sequence[Flow]) -> list[tuple[str, int, str, list[Flow]]]:
    """The flows by malloc state, size and mode, in the order they were measured."""
    keys: dict[tuple[str, int, str], list[Flow]] = {}
    for f in flows:
        keys.setdefault((f.malloc, f.size, f.mode), []).append(f)
    return [(state, size, mode, mine) for (state, size, mode), mine in keys.items()]


def _ratio(mine: float | None, other: float | None) -> float | None:
    return mine / other if mine and other else None


def ratios(connects: Sequence[ConnectResult], flows: Sequence[Flow]) -> dict[str, float | None]:
    """ours / aioice and ours / direct, per malloc state, size and mode: connect median
    (lower is better), pkt/s of the best round (higher is better), CPU µs per datagram
    of the lowest round (lower is better)."""
    out: dict[str, float | None] = {}
    by_impl = {c.impl: c for c in connects}
    ours, theirs = by_impl.get("ours"), by_impl.get("aioice")
    if ours and theirs and ours.seconds and theirs.seconds:
        out["connect_median ours/aioice"] = ours.median_ms / theirs.median_ms
    for state, size, mode, mine in groups(flows):
        rates = {impl: _best_rate(mine, impl, mode) for impl in (*IMPLS, BASELINE)}
        cpus = {impl: lowest_cpu(mine, impl, mode) for impl in (*IMPLS, BASELINE)}
        prefix = f"{state} {size} B {mode}"
        for other in ("aioice", BASELINE):
            if rates["ours"] and rates[other]:
                out[f"{prefix} pkt/s ours/{other}"] = _ratio(rates["ours"], rates[other])
                out[f"{prefix} cpu ours/{other}"] = _ratio(cpus["ours"], cpus[other])
    return out


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_report(
    connects: Sequence[ConnectResult],
    flows: Sequence[Flow],
    header: str,
    args: argparse.Namespace,
    syscalls: dict[str, dict[str, dict[str, float]]] | None = None,
) -> str:
    lines = [header, ""]
    if connects:
        lines += [
            f"### Connect time: both connect() called, candidates exchanged -> both connected "
            f"({args.runs} runs)",
            "",
            "| impl | runs | failed | median ms | p90 ms | min ms | max ms | how |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for c in connects:
            lines.append(
                f"| {c.impl} | {len(c.seconds)} | {len(c.failures)} | {c.median_ms:.2f} "
                f"| {c.p90_ms:.2f} | {c.min_ms:.2f} | {c.max_ms:.2f} | {describe(c.impl)} |"
            )
        lines.append("")
    if flows:
        lines += side_by_side(flows, args)
        lines += [
            f"### Every run (one-way window {args.window})",
            "",
            "| malloc | size | impl | mode | round | datagrams | back | lost | corrupt | late "
            "| seconds | pkt/s | CPU µs/pkt | faults/pkt |",
            "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for f in flows:
            lines.append(
                f"| {f.malloc} | {f.size} | {f.impl} | {f.mode} | {f.round} | {f.count} "
                f"| {f.received} | {f.lost} | {f.corrupt} "
                f"| {f.late}{' (stalled)' if f.stalled else ''} | {f.seconds:.3f} "
                f"| {f.rate:,.0f} | {f.cpu_us:.1f} | {f.faults_per_pkt:.2f} |"
            )
        lines.append("")
    if syscalls:
        lines += strace_lines(syscalls, args)
    lines += summary_lines(connects, flows)
    return "\n".join(lines)


def side_by_side(flows: Sequence[Flow], args: argparse.Namespace) -> list[str]:
    lines = [
        f"### Data path side by side: pkt/s of the best of {args.rounds} round(s), CPU µs "
        "per datagram and page faults per datagram of the lowest",
        "",
        "| malloc | size | mode | ours pkt/s | aioice pkt/s | direct pkt/s | ours / direct "
        "| ours / aioice | ours µs | aioice µs | direct µs | faults/pkt ours, aioice, direct |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for state, size, mode, mine in groups(flows):
        rates = {impl: _best_rate(mine, impl, mode) for impl in (*IMPLS, BASELINE)}
        cpus = {impl: lowest_cpu(mine, impl, mode) for impl in (*IMPLS, BASELINE)}
        faults = []
        for impl in (*IMPLS, BASELINE):
            counts = [f.faults_per_pkt for f in mine if f.impl == impl and f.received]
            faults.append(f"{min(counts):.2f}" if counts else "-")
        ours, aioice, direct = (rates[i] for i in (*IMPLS, BASELINE))
        lines.append(
            f"| {state} | {size} | {mode} | {_rate(ours)} | {_rate(aioice)} | {_rate(direct)} "
            f"| {_x(_ratio(ours, direct))} | {_x(_ratio(ours, aioice))} "
            f"| {_us(cpus['ours'])} | {_us(cpus['aioice'])} | {_us(cpus[BASELINE])} "
            f"| {', '.join(faults)} |"
        )
    lines.append("")
    return lines


def strace_lines(
    syscalls: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace
) -> list[str]:
    lines = [
        f"### malloc states under strace: calls per datagram ({args.size[0]} B, a run of 2,000 "
        "less one of none)",
        "",
        "| malloc | impl | " + " | ".join(STRACE_CALLS) + " |",
        "|---|---|" + "---:|" * len(STRACE_CALLS),
    ]
    for state, by_impl in syscalls.items():
        for impl, calls in by_impl.items():
            counts = " | ".join(f"{calls[name]:.2f}" for name in STRACE_CALLS)
            lines.append(f"| {state} | {impl} | {counts} |")
    lines.append("")
    return lines


def verdicts(flows: Sequence[Flow]) -> dict[str, list[str]]:
    """Issue 16's targets, row by row (``*_rows``) and the rows that missed them
    (``*_missed``), on the best round's pkt/s and, as ``*_cpu_*``, on the lowest
    round's CPU per datagram (ours / direct at most 1 / 0.8, ours / aioice at most 1);
    and the runs of the one-way stream that were not loss-free."""
    out: dict[str, list[str]] = {
        key: [] for key in ("floor_rows", "floor_missed", "floor_cpu_missed")
    }
    out.update({key: [] for key in ("aioice_rows", "aioice_missed", "aioice_cpu_missed")})
    for state, size, mode, mine in groups(flows):
        ours = best(mine, "ours", mode)
        ours_cpu = lowest_cpu(mine, "ours", mode)
        if ours is None or ours_cpu is None:
            continue
        where = f"{state} {size} B {mode}"
        for other, target, name in (
            (BASELINE, TARGET_FLOOR, "floor"),
            ("aioice", TARGET_AIOICE, "aioice"),
        ):
            theirs, theirs_cpu = best(mine, other, mode), lowest_cpu(mine, other, mode)
            if theirs is None or theirs_cpu is None:
                continue
            if other == BASELINE and state not in ("fast", "settle"):
                continue  # the floor target is the fast state's
            out[f"{name}_rows"].append(where)
            if ours.rate < target * theirs.rate:
                out[f"{name}_missed"].append(f"{where} {ours.rate / theirs.rate:.2f}x")
            if ours_cpu * target > theirs_cpu:
                out[f"{name}_cpu_missed"].append(f"{where} {ours_cpu / theirs_cpu:.2f}x")
    out["one_way_lossy"] = [
        f"{f.malloc} {f.size} B {f.impl} round {f.round}"
        for f in flows
        if f.mode == "one-way" and not f.exact
    ]
    return out


def _verdict(rows: int, missed: list[str]) -> str:
    if not missed:
        return f"met in all {rows} rows"
    return f"NOT met in {len(missed)} of {rows}: {'; '.join(missed)}"


def summary_lines(connects: Sequence[ConnectResult], flows: Sequence[Flow]) -> list[str]:
    lines: list[str] = []
    by_impl = {c.impl: c for c in connects}
    ours, theirs = by_impl.get("ours"), by_impl.get("aioice")
    if ours is not None and ours.seconds:
        verdict = "met" if ours.median_ms < TARGET_CONNECT_MS else "NOT met"
        text = (
            f"- connect: ours {ours.median_ms:.2f} ms median "
            f"(target < {TARGET_CONNECT_MS:g} ms: {verdict})"
        )
        if theirs is not None and theirs.seconds:
            text += (
                f", aioice {theirs.median_ms:.2f} ms (issue 5 quotes "
                f"{AIOICE_QUOTED['connect_ms']:g} ms): aioice takes "
                f"{theirs.median_ms / ours.median_ms:.0f}x as long"
            )
        lines.append(text)
    if not flows:
        return lines
    v = verdicts(flows)
    if v["floor_rows"]:
        rows = len(v["floor_rows"])
        lines.append(
            f"- target ours >= {TARGET_FLOOR:g}x direct pkt/s (fast state): "
            f"{_verdict(rows, v['floor_missed'])}; by CPU per datagram (ours at most "
            f"{1 / TARGET_FLOOR:g}x direct's): {_verdict(rows, v['floor_cpu_missed'])}"
        )
    if v["aioice_rows"]:
        rows = len(v["aioice_rows"])
        lines.append(
            f"- target ours >= aioice pkt/s (every state): {_verdict(rows, v['aioice_missed'])}"
            f"; by CPU per datagram: {_verdict(rows, v['aioice_cpu_missed'])}"
        )
    one_way = [f for f in flows if f.mode == "one-way"]
    if one_way:
        lossy = v["one_way_lossy"]
        lines.append(
            f"- one-way stream: {len(one_way) - len(lossy)} of {len(one_way)} runs loss-free "
            "(every datagram once, byte-exact)" + (f"; NOT: {', '.join(lossy)}" if lossy else "")
        )
    return lines


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="ICE on 127.0.0.1: connect time and packets/s, ours and aioice's."
    )
    parser.add_argument("-n", "--runs", type=int, help="connects per implementation (50)")
    parser.add_argument(
        "--packets", type=int, help="datagrams per data-path mode and round (20000)"
    )
    parser.add_argument(
        "--size",
        type=_sizes,
        default=(100, 1200),
        help="payload bytes, comma-separated (100,1200; each >= 8)",
    )
    parser.add_argument("--window", type=int, default=64, help="one-way: datagrams in flight (64)")
    parser.add_argument("--rounds", type=int, help="data path: the implementations take turns (3)")
    parser.add_argument("--warmup", type=int, help="uncounted datagrams per pair first (2000)")
    parser.add_argument(
        "--connect-warmup", type=int, help="uncounted connects per implementation first (2)"
    )
    parser.add_argument(
        "--impls",
        type=lambda text: tuple(text.split(",")),
        default=(*IMPLS, BASELINE),
        help=f"comma-separated, of ours,aioice,{BASELINE} (default: all three; {BASELINE} "
        "is the plain-socket floor of the data path and has no connect time)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds a connect may take (10)"
    )
    parser.add_argument(
        "--stall", type=float, default=2.0, help="seconds without progress that end a run (2)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of a few seconds: -n 10, --packets 2000, --warmup 200, --rounds 1",
    )
    parser.add_argument(
        "--malloc",
        choices=MALLOC_CHOICES,
        default="both",
        help="glibc's state for asyncio's 256 KiB receive buffer: both (default: a child "
        "process per state and size), fast (heap) or slow (an mmap + munmap per datagram) "
        "pinned in a child; settle (free a 4 MiB block first) or as-is, in this process",
    )
    parser.add_argument(
        "--strace",
        action="store_true",
        help="also count mmap/munmap/mremap/brk per datagram under strace, per state and impl",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 unless every connect succeeded and every datagram arrived, byte-exact",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    for name, default in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    known = (*IMPLS, BASELINE)
    if not args.impls or set(args.impls) - set(known) or len(set(args.impls)) < len(args.impls):
        parser.error(f"--impls: each of {','.join(known)} at most once")
    if min(args.size) < HEADER or args.packets < 0 or args.window < 1 or args.rounds < 0:
        parser.error(f"need --size >= {HEADER}, --packets >= 0, --window >= 1, --rounds >= 0")
    if args.runs < 0 or args.warmup < 0 or args.connect_warmup < 0:
        parser.error("-n, --warmup and --connect-warmup cannot be negative")
    return args


def run(args: argparse.Namespace) -> tuple[list[ConnectResult], list[Flow], str]:
    """Measure; the connect results, the data-path flows and a header line."""
    if "aioice" in args.impls:
        try:
            import aioice  # noqa: F401
        except ImportError:
            raise RuntimeError("aioice is not installed (pip install aioice)") from None
    if args.malloc in MALLOC_ENV or args.malloc == "both":
        connects, flows = run_children(args)
        where = "a child process per malloc state, size and implementation"
    else:
        guard: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if "aioice" in args.impls:
            guard = aioice_on_loopback()
        with guard:
            connects, flows = asyncio.run(measure_all(args))
        where = f"this process, malloc {args.malloc}"
    sizes = " and ".join(f"{size} B" for size in args.size)
    header = (
        f"ICE on {HOST} host candidates, one component: {args.runs} connects per implementation "
        f"({args.connect_warmup} uncounted first); {args.packets} datagrams of {sizes} "
        f"per data-path mode and round, {args.warmup} warm-up, {args.rounds} round(s); "
        f"{where}; Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, this process on CPUs {_cpus()}"
    )
    return connects, flows, header


def _cpus() -> str:
    try:
        return ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        connects, flows, header = run(args)
        syscalls = strace_check(args) if args.strace else None
    except RuntimeError as exc:
        print(f"ice_connect: {exc}", file=sys.stderr)
        return 2
    print(format_report(connects, flows, header, args, syscalls))
    if args.json:
        data = {
            "header": header,
            "connect": [c.summary() for c in connects],
            "flows": [
                {**asdict(f), "rate": f.rate, "cpu_us": f.cpu_us, "exact": f.exact} for f in flows
            ],
            "ratios": ratios(connects, flows),
            "verdicts": verdicts(flows),
            "syscalls_per_datagram": syscalls,
            "aioice_quoted": AIOICE_QUOTED,
            "target_connect_ms": TARGET_CONNECT_MS,
            "malloc_env": MALLOC_ENV,
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.strict:
        if any(c.failures or len(c.seconds) != args.runs for c in connects):
            return 1
        if not all(f.exact for f in flows):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
