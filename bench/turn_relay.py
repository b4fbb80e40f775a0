"""Relay datagrams through a local coturn with our TURN client and with aioice's.

    python bench/turn_relay.py                       # 20,000 x 100 B over UDP, both clients
    python bench/turn_relay.py -n 50000 --size 1200 --window 64 --transport tcp
    python bench/turn_relay.py --clients ours --rounds 3 --json /tmp/relay.json

Starts ``turnserver`` (coturn) on 127.0.0.1 with a free port (tests/support/coturn.py's
``run_coturn``) and a UDP echo peer in a child process, echoes straight to
the peer for ``--prime`` seconds (uncounted: the first second or so of any
client in a fresh process costs about twice the CPU), then, for each
client in turn: allocates a relay, sends ``--warmup`` datagrams (not counted)
and then ``-n`` datagrams of ``--size`` bytes through the relay to the echo
peer, which sends each back through the relay. Each payload carries its
sequence number and is compared byte for byte with what was sent.

The sender keeps at most ``--window`` datagrams in flight: one goes out for
each one that comes back, so neither client is flooded into loss. A
datagram not back after ``--timeout`` seconds counts as lost and its slot
is reused. Printed per client: datagrams sent and back, lost, corrupt and
duplicate, the elapsed time, round trips per second (each is 4 relayed
packets: client -> coturn -> peer -> coturn -> client) and RTT percentiles;
then the ratio of the two rates (issue 4's target: ours at least 3x aioice).

The clients, each through its usual API:

- ours: ``ice.aio.turn_client.TurnClient.allocate(uri, ...)`` then ``await
  relay.sendto()`` / ``await relay.recvfrom()`` (``--ours-api transport``:
  its ``asyncio.DatagramTransport``); a channel is bound (ChannelData) unless
  ``--indications`` (Send and Data indications);
- aioice: ``aioice.turn.create_turn_endpoint`` (a DatagramTransport whose
  ``sendto`` runs ``send_data`` in a task; always ChannelData).

Everything runs on loopback; coturn and the echo peer are stopped at the end.
Numbers are only comparable within one run on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
try:
    import ice  # noqa: F401
except ImportError:  # a source checkout built in place
    sys.path.insert(0, str(ROOT))

CLIENTS = ("ours", "aioice")
BASELINE = "direct"
TARGET_RATIO = 3.0
HEADER = 8  # run number (4 bytes) + sequence number (4 bytes) at the start of each payload
USER, PASSWORD = "alice", "secret"

_ECHO = r"""
import os, socket, sys
parent = os.getppid()
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
sock = socket.socket(family, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
sock.bind((sys.argv[1], 0))
sock.settimeout(1.0)
print(sock.getsockname()[1], flush=True)
recvfrom, sendto = sock.recvfrom, sock.sendto
while True:
    try:
        data, addr = recvfrom(65535)
    except TimeoutError:
        if os.getppid() != parent:
            break
        continue
    sendto(data, addr)
"""


def load_coturn() -> ModuleType:
    """tests/support/coturn.py (run_coturn, free_port): the tests' coturn fixture."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import tests.support.coturn

    return tests.support.coturn


@contextlib.contextmanager
def echo_peer(host: str = "127.0.0.1") -> Iterator[tuple[str, int]]:
    """A UDP echo server in a child process (so it does not share our event loop's CPU)."""
    process = subprocess.Popen(
        [sys.executable, "-P", "-c", _ECHO, host],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"the echo peer did not start (exit code {process.wait()})")
        yield (host, int(line))
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


# -- the load: numbered payloads, a window, RTTs, loss


@dataclass
class Result:
    """What one client did in one round."""

    client: str
    transport: str
    count: int
    size: int
    window: int
    sent: int = 0
    received: int = 0
    lost: int = 0
    corrupt: int = 0
    duplicates: int = 0
    late: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """CPU time of this process (the client and the harness) over ``seconds``."""
    rtt_us: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def rate(self) -> float:
        """Round trips per second: datagrams back, byte-exact, per second."""
        return self.received / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """This process's CPU time per round trip, in microseconds."""
        return self.cpu_seconds / self.received * 1e6 if self.received else 0.0

    @property
    def exact(self) -> bool:
        """Every datagram came back once, byte for byte."""
        return (
            self.received == self.count
            and self.lost == self.corrupt == self.duplicates == self.late == 0
        )


class Load:
    """``count`` numbered payloads, at most ``window`` in flight."""

    def __init__(self, run: int, count: int, size: int, window: int, timeout: float) -> None:
        if size < HEADER:
            raise ValueError(f"--size must be at least {HEADER} bytes (the sequence number)")
        self.run = run
        self.count = count
        self.window = window
        self.timeout = timeout
        self.tail = bytes((i * 7 + 3) & 0xFF for i in range(HEADER, size))
        self.next_seq = 0
        self.in_flight: dict[int, float] = {}  # seq -> perf_counter() when sent
        self.done_seqs: set[int] = set()
        self.rtts: list[float] = []
        self.received = self.lost = self.corrupt = self.duplicates = self.late = 0
        self.started = self.last = 0.0
        self.cpu_started = self.cpu_last = 0.0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if count == 0:
            self.finished.set_result(None)

    def payload(self, seq: int) -> bytes:
        return self.run.to_bytes(4, "big") + seq.to_bytes(4, "big") + self.tail

    def take(self) -> bytes | None:
        """The next payload to send, if the window and the count allow one."""
        seq = self.next_seq
        if seq >= self.count or len(self.in_flight) >= self.window:
            return None
        self.next_seq = seq + 1
        now = time.perf_counter()
        if seq == 0:
            self.started = now
            self.cpu_started = time.process_time()
        self.in_flight[seq] = now
        return self.payload(seq)

    def reply(self, data: bytes) -> None:
        """A datagram came back from the echo peer."""
        now = time.perf_counter()
        seq = int.from_bytes(data[4:8], "big") if len(data) >= HEADER else -1
        if len(data) < HEADER or not 0 <= seq < self.count:
            self.corrupt += 1
            return
        if int.from_bytes(data[:4], "big") != self.run:
            self.late += 1  # a straggler of the warm-up, already counted lost there
            return
        sent_at = self.in_flight.pop(seq, None)
        if sent_at is None:
            if seq in self.done_seqs:
                self.duplicates += 1
            else:
                self.late += 1  # already counted lost
            return
        self.done_seqs.add(seq)
        if data != self.payload(seq):
            self.corrupt += 1
        else:
            self.received += 1
            self.rtts.append(now - sent_at)
        self.last = now
        self._check_done()

    def expire(self) -> int:
        """Count the datagrams out for longer than the timeout as lost; how many."""
        limit = time.perf_counter() - self.timeout
        old = [seq for seq, sent_at in self.in_flight.items() if sent_at < limit]
        for seq in old:
            del self.in_flight[seq]
        self.lost += len(old)
        self._check_done()
        return len(old)

    def _check_done(self) -> None:
        if self.next_seq >= self.count and not self.in_flight and not self.finished.done():
            self.cpu_last = time.process_time()
            self.finished.set_result(None)

    def result(self, client: str, transport: str, size: int) -> Result:
        rtts = sorted(self.rtts)

        def pct(p: float) -> float:
            return rtts[min(len(rtts) - 1, int(p / 100 * len(rtts)))] * 1e6 if rtts else 0.0

        return Result(
            client=client,
            transport=transport,
            count=self.count,
            size=size,
            window=self.window,
            sent=self.next_seq,
            received=self.received,
            lost=self.lost,
            corrupt=self.corrupt,
            duplicates=self.duplicates,
            late=self.late,
            seconds=(self.last - self.started) if self.received else 0.0,
            cpu_seconds=(self.cpu_last - self.cpu_started) if self.cpu_last else 0.0,
            rtt_us={"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": pct(100)},
        )


class Relay(Protocol):
    """One client's relay, driven the same way whatever the library."""

    name: str
    note: str

    def attach(self, load: Load) -> None:
        """Start answering ``load``: every datagram back goes to load.reply, then refill."""

    async def refill(self, load: Load) -> None:
        """Send payloads until the window is full or none is left."""

    async def close(self) -> None: ...


async def drive(relay: Relay, load: Load) -> None:
    """Fill the window, let replies keep it full, count the stragglers as lost."""
    relay.attach(load)
    await relay.refill(load)
    finished = load.finished
    while not finished.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(finished), load.timeout / 4)
        if not finished.done() and load.expire():
            await relay.refill(load)


# -- our client


class OursSocket:
    """ice.aio.turn_client.TurnClient through await sendto() / await recvfrom()."""

    name = "ours"

    def __init__(self, client: Any, peer: tuple[str, int]) -> None:
        self.client = client
        self.peer = peer
        self.note = f"ice {ice_version()}, sendto/recvfrom"
        self.reader: asyncio.Task[None] | None = None

    def attach(self, load: Load) -> None:
        if self.reader is not None:
            self.reader.cancel()
        self.reader = asyncio.get_running_loop().create_task(self._read(load))

    async def _read(self, load: Load) -> None:
        recvfrom, sendto, peer = self.client.recvfrom, self.client.sendto, self.peer
        take, reply = load.take, load.reply
        while True:
            data, _ = await recvfrom()
            reply(data)
            payload = take()
            if payload is not None:
                await sendto(payload, peer)

    async def refill(self, load: Load) -> None:
        while (payload := load.take()) is not None:
            await self.client.sendto(payload, self.peer)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        await self.client.close()


class _Receiver(asyncio.DatagramProtocol):
    """Hands every datagram to a callback (set per load); notes the transport's end."""

    def __init__(self) -> None:
        self.on_data: Callable[[bytes], None] = lambda data: None
        self.errors: list[Exception] = []
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_data(data)

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class DatagramTransportRelay:
    """A relay behind asyncio's DatagramTransport: aioice's, or ours with --ours-api transport."""

    def __init__(
        self, name: str, note: str, transport: Any, receiver: _Receiver, peer: tuple[str, int]
    ) -> None:
        self.name = name
        self.note = note
        self.transport = transport
        self.receiver = receiver
        self.peer = peer

    def attach(self, load: Load) -> None:
        sendto, peer, take, reply = self.transport.sendto, self.peer, load.take, load.reply

        def on_data(data: bytes) -> None:
            reply(data)
            payload = take()
            if payload is not None:
                sendto(payload, peer)

        self.receiver.on_data = on_data

    async def refill(self, load: Load) -> None:
        while (payload := load.take()) is not None:
            self.transport.sendto(payload, self.peer)
        if self.receiver.errors:
            raise self.receiver.errors[0]

    async def close(self) -> None:
        self.receiver.on_data = lambda data: None
        self.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.receiver.lost), 5.0)


def ice_version() -> str:
    from ice import __version__

    return __version__


async def open_ours(
    server: tuple[str, int], transport: str, peer: tuple[str, int], args: argparse.Namespace
) -> Relay:
    from ice.aio.turn_client import TurnClient

    uri = f"turn:{server[0]}:{server[1]}?transport={transport}"
    client = await TurnClient.allocate(
        uri, USER, PASSWORD, channel_after=0 if args.indications else 2, timeout=10.0
    )
    try:
        if args.indications:
            await client.create_permission(peer)
            path = "Send/Data indications"
        else:
            await client.bind_channel(peer)
            path = "ChannelData"
        if args.ours_api == "transport":
            receiver = _Receiver()
            datagram_transport = client.as_datagram_transport(receiver)
            note = f"ice {ice_version()}, DatagramTransport, {path}"
            return DatagramTransportRelay("ours", note, datagram_transport, receiver, peer)
        relay = OursSocket(client, peer)
        relay.note += f", {path}"
        return relay
    except BaseException:
        await client.close()
        raise


async def open_aioice(
    server: tuple[str, int], transport: str, peer: tuple[str, int], args: argparse.Namespace
) -> Relay:
    import aioice
    from aioice.turn import create_turn_endpoint

    turn_transport, receiver = await asyncio.wait_for(
        create_turn_endpoint(_Receiver, server, USER, PASSWORD, transport=transport), 10.0
    )
    note = f"aioice {getattr(aioice, '__version__', '?')}, DatagramTransport, ChannelData"
    return DatagramTransportRelay("aioice", note, turn_transport, receiver, peer)


async def open_direct(
    server: tuple[str, int], transport: str, peer: tuple[str, int], args: argparse.Namespace
) -> Relay:
    """No TURN at all: a plain asyncio UDP socket to the echo peer (the harness's floor)."""
    loop = asyncio.get_running_loop()
    udp, receiver = await loop.create_datagram_endpoint(_Receiver, remote_addr=peer)
    return DatagramTransportRelay("direct", "asyncio UDP, no relay", udp, receiver, peer)


OPENERS = {"ours": open_ours, "aioice": open_aioice, BASELINE: open_direct}


async def measure(
    name: str,
    run: int,
    server: tuple[str, int],
    peer: tuple[str, int],
    args: argparse.Namespace,
) -> Result:
    """One client, one round: allocate, warm up, relay ``args.count`` datagrams, close."""
    relay = await OPENERS[name](server, args.transport, peer, args)
    try:
        if args.warmup:
            warmup = Load(run * 2, args.warmup, args.size, args.window, args.timeout)
            await asyncio.wait_for(drive(relay, warmup), args.timeout * 4 + 30)
        load = Load(run * 2 + 1, args.count, args.size, args.window, args.timeout)
        await asyncio.wait_for(drive(relay, load), args.timeout * 4 + args.count / 100 + 30)
        result = load.result(name, "none" if name == BASELINE else args.transport, args.size)
        result.note = relay.note
        return result
    finally:
        await relay.close()


async def prime(peer: tuple[str, int], args: argparse.Namespace) -> None:
    """Echo datagrams with no relay for ``args.prime`` seconds, uncounted.

    Whatever runs first in a fresh process (any client, even ``direct``) costs
    about twice the CPU per round trip of later rounds for its first second
    or so; this pays that before anything is measured.
    """
    relay = await open_direct(peer, "udp", peer, args)
    load = Load(0, 10**9, args.size, args.window, args.timeout)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drive(relay, load), args.prime)
    finally:
        await relay.close()


async def relay_all(
    server: tuple[str, int], peer: tuple[str, int], args: argparse.Namespace
) -> list[Result]:
    gc.collect()
    gc.freeze()  # what the imports made is not traversed by every collection in the timed part
    if args.prime > 0:
        await prime(peer, args)
    results = []
    run = 0
    for _ in range(args.rounds):
        for name in args.clients:
            run += 1
            if not args.quiet:
                print(f"  {name}: round {(run - 1) // len(args.clients) + 1} ...", file=sys.stderr)
            results.append(await measure(name, run, server, peer, args))
    return results


def best(results: Sequence[Result], name: str) -> Result | None:
    """The round with the highest rate for a client."""
    mine = [r for r in results if r.client == name]
    return max(mine, key=lambda r: r.rate) if mine else None


def ratio(results: Sequence[Result]) -> float | None:
    ours, theirs = best(results, "ours"), best(results, "aioice")
    if ours is None or theirs is None or theirs.rate <= 0:
        return None
    return ours.rate / theirs.rate


def format_report(results: Sequence[Result], header: str) -> str:
    lines = [
        header,
        "",
        "| client | sent | back | lost | corrupt | dup+late | seconds | round trips/s "
        "| CPU µs/trip | RTT p50 µs | p90 | p99 | max | how |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        rtt = r.rtt_us
        lines.append(
            f"| {r.client} | {r.sent} | {r.received} | {r.lost} | {r.corrupt} "
            f"| {r.duplicates + r.late} | {r.seconds:.3f} | {r.rate:,.0f} | {r.cpu_us:.1f} "
            f"| {rtt['p50']:.0f} | {rtt['p90']:.0f} | {rtt['p99']:.0f} | {rtt['max']:.0f} "
            f"| {r.note} |"
        )
    lines.append("")
    value = ratio(results)
    if value is not None:
        verdict = "met" if value >= TARGET_RATIO else "NOT met"
        lines.append(
            f"ours / aioice: {value:.2f}x the round trips per second "
            f"(best round of each; target >= {TARGET_RATIO:g}x: {verdict})"
        )
    overhead = client_cpu_ratio(results)
    if overhead is not None:
        ours_us, theirs_us = overhead
        lines.append(
            f"client CPU per round trip above the direct baseline (best round of each): "
            f"ours {ours_us:.1f} µs, aioice {theirs_us:.1f} µs: aioice costs "
            f"{theirs_us / ours_us:.1f}x ours"
            if ours_us > 0
            else "client CPU above the direct baseline: ours is within the noise"
        )
    return "\n".join(lines)


def client_cpu_ratio(results: Sequence[Result]) -> tuple[float, float] | None:
    """(ours, aioice) CPU µs per round trip beyond the no-relay baseline: what each
    client itself costs, as the relay server (coturn) caps round trips per second
    for both on a small machine. None without all three clients measured."""
    best: dict[str, float] = {}
    for r in results:
        if r.received and (r.client not in best or r.cpu_us < best[r.client]):
            best[r.client] = r.cpu_us
    if not {"ours", "aioice", BASELINE} <= best.keys():
        return None
    return best["ours"] - best[BASELINE], best["aioice"] - best[BASELINE]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Relay datagrams through a local coturn with ours and aioice's TURN client."
    )
    parser.add_argument("-n", "--count", type=int, default=20_000, help="datagrams (20000)")
    parser.add_argument("--size", type=int, default=100, help="payload bytes (100, >= 8)")
    parser.add_argument("--window", type=int, default=32, help="datagrams in flight (32)")
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp", help="to coturn")
    parser.add_argument(
        "--clients",
        type=lambda text: tuple(text.split(",")),
        default=CLIENTS,
        help=f"comma-separated, of ours,aioice,{BASELINE} (default: ours,aioice)",
    )
    parser.add_argument(
        "--prime", type=float, default=2.0, help="seconds of uncounted direct echo first (2)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternate the clients R times")
    parser.add_argument("--warmup", type=int, default=2000, help="uncounted datagrams first (2000)")
    parser.add_argument(
        "--timeout", type=float, default=1.0, help="seconds before a datagram counts as lost"
    )
    parser.add_argument(
        "--ours-api",
        choices=("socket", "transport"),
        default="socket",
        help="ours through sendto/recvfrom (socket) or its DatagramTransport",
    )
    parser.add_argument(
        "--indications",
        action="store_true",
        help="ours without a channel: Send and Data indications",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 unless every datagram came back once, byte-exact",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    unknown = set(args.clients) - set(OPENERS)
    if unknown or not args.clients:
        parser.error(f"--clients: choose from {','.join(OPENERS)}")
    if args.size < HEADER or args.count < 0 or args.window < 1 or args.rounds < 1:
        parser.error(f"need --size >= {HEADER}, -n >= 0, --window >= 1, --rounds >= 1")
    return args


def run(args: argparse.Namespace) -> tuple[list[Result], str]:
    """Start coturn and the echo peer, relay with each client, stop both; results and header."""
    coturn = load_coturn()
    if coturn.TURNSERVER is None:
        raise RuntimeError("coturn is not installed (apt-get install coturn)")
    with coturn.run_coturn() as server, echo_peer() as peer:
        results = asyncio.run(relay_all(server.address, peer, args))
    header = (
        f"TURN relay through coturn on 127.0.0.1 ({args.transport}): {args.count} datagrams "
        f"of {args.size} B per client and round, window {args.window}, {args.warmup} warm-up; "
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs"
    )
    return results, header


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results, header = run(args)
    except RuntimeError as exc:
        print(f"turn_relay: {exc}", file=sys.stderr)
        return 2
    print(format_report(results, header))
    if args.json:
        data = {
            "header": header,
            "ratio": ratio(results),
            "results": [{**asdict(r), "rate": r.rate, "exact": r.exact} for r in results],
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.strict and not all(r.exact for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
