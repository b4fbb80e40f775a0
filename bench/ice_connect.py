"""Connect two ICE agents on 127.0.0.1 and push datagrams through them: ours and aioice's.

    python bench/ice_connect.py                      # 50 connects; 20,000 x 100 B, 3 rounds
    python bench/ice_connect.py -n 200 --packets 50000 --size 1200 --window 32
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
   side to echo it back, ``--packets / 2`` times) and *one-way* (one side
   sends ``--packets`` datagrams, the other counts them; at most
   ``--window`` are in flight so the receiving socket never overflows: the
   receiver runs on the same event loop). pkt/s counts every datagram that
   arrives, byte-exact, in either direction: a ping-pong round trip is two.
3. **Per-packet cost**: this process's CPU time (``time.process_time``)
   over each of those runs, per datagram delivered: one side's send plus the
   other side's receive, the event loop and the harness included.

Before measuring, the script frees a 4 MiB block (``--malloc-as-is`` skips
this). asyncio's datagram transport receives every datagram into a fresh
256 KiB buffer (``recvfrom(max_size)``, then shrunk), and glibc serves that
either from its heap or with an mmap + munmap per datagram, depending on
whether the process has yet freed a block above its mmap threshold, which
raises the threshold. Which of the two a process is in depends on its history
(for a small script here, even on the length of its command line) and moves
the CPU per datagram by 2x for every implementation alike; the freed block
puts all runs in the heap state, that of a process that has been up a while.

``direct`` (in ``--impls`` by default) is no ICE at all: two plain asyncio UDP
sockets behind the same ``send()``/``recv()`` (a DatagramProtocol feeding an
``asyncio.Queue``, as both libraries do): the floor of the data path on
asyncio, which the ICE rows can at best approach. Each payload carries a run
and a sequence number and is compared byte for byte. A run with no progress
for ``--stall`` seconds (a datagram lost) ends there, counting what did not
arrive as lost. The data-path ratios use each implementation's best round.

Everything stays on loopback. Numbers are only comparable within one run on
one machine: other load moves them by 2x or more, hence ``--rounds``.
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
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
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
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        flow.stalled = not await watched(
            drive(), lambda: flow.received + flow.corrupt + flow.late, stall
        )
    finally:
        flow.seconds = time.perf_counter() - start
        flow.cpu_seconds = time.process_time() - cpu_start
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
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        flow.stalled = not await watched(send(), lambda: state["next"] + flow.late, stall)
    finally:
        flow.seconds = time.perf_counter() - start
        flow.cpu_seconds = time.process_time() - cpu_start
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
    flow.lost += count - state["next"]


async def data_path(impl: str, round_: int, args: argparse.Namespace) -> list[Flow]:
    """One connected pair: an uncounted warm-up, then ping-pong, then one-way."""
    a, b = await connected_pair(impl, args.timeout)
    run = round_ * 10
    note = describe(impl)
    try:
        if args.warmup:
            warm = Flow(impl, "warm-up", round_, args.warmup, args.size)
            await ping_pong(a, b, warm, run + 1, args.stall)
            warm = Flow(impl, "warm-up", round_, args.warmup, args.size)
            await one_way(a, b, warm, run + 2, args.window, args.stall)
        pong = Flow(impl, "ping-pong", round_, args.packets // 2 * 2, args.size, note=note)
        await ping_pong(a, b, pong, run + 3, args.stall)
        flow = Flow(impl, "one-way", round_, args.packets, args.size, note=note)
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
    if not args.malloc_as_is:
        settle_malloc()
    gc.collect()
    gc.freeze()  # what the imports made is not traversed by every collection in the timed part
    try:
        return await _measure_all(args)
    finally:
        gc.unfreeze()


async def _measure_all(args: argparse.Namespace) -> tuple[list[ConnectResult], list[Flow]]:
    ice_impls = [impl for impl in args.impls if impl != BASELINE]

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr)

    say(f"  connect: {args.connect_warmup} + {args.runs} runs of {', '.join(ice_impls)} ...")
    connects = await connect_times(ice_impls, args) if ice_impls and args.runs else []
    flows: list[Flow] = []
    for round_ in range(1, args.rounds + 1):
        for impl in args.impls:
            say(f"  data path: {impl}, round {round_} ...")
            flows += await data_path(impl, round_, args)
    return connects, flows


# -- the report


def best(flows: Sequence[Flow], impl: str, mode: str) -> Flow | None:
    """The round with the highest rate."""
    mine = [f for f in flows if f.impl == impl and f.mode == mode and f.received]
    return max(mine, key=lambda f: f.rate) if mine else None


def lowest_cpu(flows: Sequence[Flow], impl: str, mode: str) -> float | None:
    mine = [f.cpu_us for f in flows if f.impl == impl and f.mode == mode and f.received]
    return min(mine) if mine else None


def ratios(connects: Sequence[ConnectResult], flows: Sequence[Flow]) -> dict[str, float | None]:
    """ours / aioice: connect median (lower is better), pkt/s per mode (higher is
    better), CPU µs per datagram per mode (lower is better)."""
    out: dict[str, float | None] = {}
    by_impl = {c.impl: c for c in connects}
    ours, theirs = by_impl.get("ours"), by_impl.get("aioice")
    out["connect_median"] = (
        ours.median_ms / theirs.median_ms
        if ours and theirs and ours.seconds and theirs.seconds
        else None
    )
    for mode in MODES:
        mine, other = best(flows, "ours", mode), best(flows, "aioice", mode)
        out[f"{mode} pkt/s"] = mine.rate / other.rate if mine and other and other.rate else None
        cpu_mine, cpu_other = lowest_cpu(flows, "ours", mode), lowest_cpu(flows, "aioice", mode)
        out[f"{mode} cpu"] = cpu_mine / cpu_other if cpu_mine and cpu_other else None
    return out


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_report(
    connects: Sequence[ConnectResult], flows: Sequence[Flow], header: str, args: argparse.Namespace
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
        lines += [
            f"### Data path: {args.size}-byte datagrams through a connected pair "
            f"(one-way window {args.window})",
            "",
            "| impl | mode | round | datagrams | back | lost | corrupt | late | seconds "
            "| pkt/s | CPU µs/pkt |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for f in flows:
            lines.append(
                f"| {f.impl} | {f.mode} | {f.round} | {f.count} | {f.received} | {f.lost} "
                f"| {f.corrupt} | {f.late}{' (stalled)' if f.stalled else ''} "
                f"| {f.seconds:.3f} | {f.rate:,.0f} | {f.cpu_us:.1f} |"
            )
        lines.append("")
    lines += summary_lines(connects, flows)
    return "\n".join(lines)


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
    direct = {mode: best(flows, BASELINE, mode) for mode in MODES}
    for mode in MODES:
        mine, other = best(flows, "ours", mode), best(flows, "aioice", mode)
        parts = [f"{impl} {f.rate:,.0f}" for impl, f in (("ours", mine), ("aioice", other)) if f]
        if not parts:
            continue
        text = f"- {mode} pkt/s (best round): {', '.join(parts)}"
        if mine and other and other.rate:
            text += f": ours / aioice {mine.rate / other.rate:.2f}x"
        floor = direct[mode]
        if floor is not None:
            text += f"; the plain-socket floor: {floor.rate:,.0f}"
        text += f" (issue 5 quotes aioice at {AIOICE_QUOTED[mode]:,.0f})"
        lines.append(text)
    for mode in MODES:
        cpu = {impl: lowest_cpu(flows, impl, mode) for impl in (*IMPLS, BASELINE)}
        known = [(impl, us) for impl, us in cpu.items() if us is not None]
        if not known:
            continue
        text = f"- CPU per datagram, {mode} (lowest round): " + ", ".join(
            f"{impl} {us:.1f} µs" for impl, us in known
        )
        ours_us, theirs_us, floor_us = cpu["ours"], cpu["aioice"], cpu[BASELINE]
        if ours_us and theirs_us:
            text += f": ours / aioice {ours_us / theirs_us:.2f}x"
        if floor_us is not None and ours_us and theirs_us:
            text += (
                f"; above the floor: ours {ours_us - floor_us:.1f} µs, "
                f"aioice {theirs_us - floor_us:.1f} µs"
            )
        lines.append(text)
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="ICE on 127.0.0.1: connect time and packets/s, ours and aioice's."
    )
    parser.add_argument("-n", "--runs", type=int, help="connects per implementation (50)")
    parser.add_argument(
        "--packets", type=int, help="datagrams per data-path mode and round (20000)"
    )
    parser.add_argument("--size", type=int, default=100, help="payload bytes (100, >= 8)")
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
        "--malloc-as-is",
        action="store_true",
        help="do not free a 4 MiB block first (asyncio's 256 KiB receive buffer may then "
        "cost an mmap + munmap per datagram, for every implementation)",
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
    if args.size < HEADER or args.packets < 0 or args.window < 1 or args.rounds < 0:
        parser.error(f"need --size >= {HEADER}, --packets >= 0, --window >= 1, --rounds >= 0")
    if args.runs < 0 or args.warmup < 0 or args.connect_warmup < 0:
        parser.error("-n, --warmup and --connect-warmup cannot be negative")
    return args


def run(args: argparse.Namespace) -> tuple[list[ConnectResult], list[Flow], str]:
    """Measure; the connect results, the data-path flows and a header line."""
    guard: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if "aioice" in args.impls:
        try:
            import aioice  # noqa: F401
        except ImportError:
            raise RuntimeError("aioice is not installed (pip install aioice)") from None
        guard = aioice_on_loopback()
    with guard:
        connects, flows = asyncio.run(measure_all(args))
    header = (
        f"ICE on {HOST} host candidates, one component: {args.runs} connects per implementation "
        f"({args.connect_warmup} uncounted first); {args.packets} datagrams of {args.size} B "
        f"per data-path mode and round, {args.warmup} warm-up, {args.rounds} round(s)"
        f"{', malloc as is' if args.malloc_as_is else ''}; "
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs"
    )
    return connects, flows, header


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        connects, flows, header = run(args)
    except RuntimeError as exc:
        print(f"ice_connect: {exc}", file=sys.stderr)
        return 2
    print(format_report(connects, flows, header, args))
    if args.json:
        data = {
            "header": header,
            "connect": [c.summary() for c in connects],
            "flows": [
                {**asdict(f), "rate": f.rate, "cpu_us": f.cpu_us, "exact": f.exact} for f in flows
            ],
            "ratios": ratios(connects, flows),
            "aioice_quoted": AIOICE_QUOTED,
            "target_connect_ms": TARGET_CONNECT_MS,
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
