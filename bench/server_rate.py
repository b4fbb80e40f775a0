"""STUN and TURN servers at full load: Binding requests/s and ChannelData relayed/s.

    python bench/server_rate.py                         # coturn and ours, 5 s per run
    python bench/server_rate.py --servers coturn --duration 10 --rounds 3
    python bench/server_rate.py --turn-flows 100 --size 1200 --stun-flows 1
    python bench/server_rate.py --json /tmp/rate.json
    python bench/server_rate.py --plot rate.svg            # also draw it (needs matplotlib)
    python bench/server_rate.py --from /tmp/rate.json --plot rate.svg   # redraw, no run

For each server in ``--servers`` (coturn, ice, pion), in turn: start it on
127.0.0.1 with a free port, then load it with the load generator of
``python -m ice load`` (`ice._load.engine`, in this process):

- STUN: Binding requests from ``--stun-flows`` sockets, at most ``--window``
  outstanding per socket, for ``--duration`` seconds;
- TURN: ``--turn-flows`` allocations, a channel from each to a UDP peer of
  ours on loopback, ChannelData of ``--size`` bytes client -> server -> peer
  -> server -> client (each round trip is two relayed packets).

``--stun-flows``, ``--turn-flows`` and ``--size`` take comma-separated lists,
and every combination is a run: by default STUN from 1 and 100 sockets, and
TURN with 1 and 100 allocations, each with 100- and 1,200-byte payloads
(the matrix the README's table shows). Then stop the server.

Printed: a Markdown table per protocol with the rate sent, the rate answered
(responses; packets back at the client), for TURN the packets relayed per
second, loss, latency percentiles, the server's CPU time over the run (100% =
one core, all its threads) and its rate per core (the rate divided by that CPU
share: DESIGN.md's target compares servers per core), and for each row
measured on both, ours / coturn per core.

The generator sends each flow's window as UDP GSO sends (``--no-client-gso``:
datagram by datagram). The servers receive the same datagrams either way (the
kernel splits each send before it reaches their sockets, at the generator's
expense); it costs the generator less per packet, so that it can load a
server to saturation instead of being what is measured.

The generator reads with UDP GRO (``--no-client-gro``: without). On loopback
the receiving side's work runs in the sender's system call, so a server's
CPU time includes delivering what it sends into the generator's sockets. A
server that sends a run of datagrams to one address as one UDP GSO send
(ours) would, without GRO at the receiver, also pay for splitting that run
back into datagrams, which a NIC with UDP segmentation offload does on a
real network; with GRO the run is handed over whole and the generator takes
it apart. A server that sends datagram by datagram (coturn) is measured the
same either way.
With ``--rounds`` each server is measured that many times and the best round
is kept. Numbers are only comparable within one run on one machine: the
load generator shares the machine (on two cores it takes most of one).

The servers:

- coturn: ``turnserver`` started as tests/support/coturn.py does (no config file, no
  database, loopback peers allowed), with ``--relay-threads 1``;
- ice: ``python -m ice server --listen udp://127.0.0.1:PORT --user load:load
  --realm ice.local --allow-loopback-peers --relay-ports MIN-MAX`` (skipped,
  with the reason, when this checkout's server does not take those flags);
- pion: pion/turn's example ``turn-server`` (``-public-ip 127.0.0.1 -port
  PORT -users load=load -realm ice.local``), only when such a binary is on
  PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
try:
    import ice  # noqa: F401
except ImportError:  # a source checkout built in place
    sys.path.insert(0, str(ROOT))

SERVERS = ("coturn", "ice", "pion")
USER, PASSWORD, REALM = "load", "load", "ice.local"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
#: Flags of ``python -m ice server`` this script needs.
OUR_FLAGS = ("--user", "--realm", "--allow-loopback-peers", "--relay-ports")


#: Packets outstanding over all flows of a run, and per flow, unless --window says.
#: 128 from each of 100 sockets overflows the loopback sockets' buffers, and the run
#: then measures drops and timeouts rather than the server.
TOTAL_WINDOW = 256
FLOW_WINDOW = 128


def window_for(flows: int, window: int | None) -> int:
    """Packets outstanding per flow in a run of ``flows`` flows."""
    if window is not None:
        return window
    return max(2, min(FLOW_WINDOW, TOTAL_WINDOW // flows))


class Skipped(Exception):
    """A server that cannot be measured here (not installed, too old); the reason."""


def load_coturn() -> ModuleType:
    """tests/support/coturn.py (run_coturn, free_port): the tests' coturn fixture."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import tests.support.coturn

    return tests.support.coturn


@dataclass
class Server:
    """A running server: where it listens, its process (for its CPU time)."""

    name: str
    address: tuple[str, int]
    pid: int
    note: str


@dataclass
class Run:
    """One load run against one server."""

    server: str
    mode: str
    flows: int
    duration: float
    sent: int
    received: int
    rate_sent: float
    rate_received: float
    loss: float
    latency_ms: dict[str, float]
    relayed_rate: float = 0.0
    size: int = 0
    """ChannelData payload bytes (TURN runs)."""
    server_cpu: float | None = None
    """The server's CPU seconds per second of the run (1.0: one core busy)."""
    tool_cpu: float = 0.0
    other_cpu: float | None = None
    """CPU the rest of the machine used meanwhile (cores; not the server nor the tool)."""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """The figure of merit: Binding responses/s, or packets relayed/s."""
        return self.rate_received if self.mode == "stun" else self.relayed_rate

    @property
    def per_core(self) -> float | None:
        if not self.server_cpu:
            return None
        return self.rate / self.server_cpu


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, every thread) a process has used; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float | None:
    """CPU seconds every CPU of the machine has spent busy (/proc/stat); None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def stun_answers(addr: tuple[str, int], timeout: float) -> bool:
    """True when a Binding request to ``addr`` gets a Binding response."""
    from ice._load.packets import STAMP, STUN_STAMP_OFFSET, binding_request

    request = binding_request((0x5E57, 1, 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, addr)
            data = sock.recv(2048)
        except OSError:
            return False
    end = STUN_STAMP_OFFSET + STAMP.size
    return data[:2] == b"\x01\x01" and data[STUN_STAMP_OFFSET:end] == request[8:20]


def wait_ready(
    process: subprocess.Popen[bytes], addr: tuple[str, int], what: str, log: Any
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not stun_answers(addr, 0.2):
        if process.poll() is not None:
            raise Skipped(f"{what} exited with code {process.returncode}: {tail(log)}")
        if time.monotonic() > deadline:
            raise Skipped(
                f"{what} did not answer on {addr[0]}:{addr[1]} in {START_TIMEOUT:g} s: {tail(log)}"
            )
        time.sleep(0.05)  # waiting for another process to come up


def tail(log: Any) -> str:
    """The last lines a process wrote to its log file, on one line."""
    log.flush()
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return " / ".join(lines[-3:]) or "(no output)"


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def start_process(args: list[str], addr: tuple[str, int], what: str) -> Iterator[int]:
    """Run ``args`` (its output to a temporary file) until it answers STUN on ``addr``."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            wait_ready(process, addr, what, log)
            yield process.pid
        finally:
            stop(process)


@contextlib.contextmanager
def coturn_server() -> Iterator[Server]:
    coturn = load_coturn()
    if coturn.TURNSERVER is None:
        raise Skipped("coturn is not installed (apt-get install coturn)")
    version = subprocess.run(
        [coturn.TURNSERVER, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    with coturn.run_coturn("--relay-threads=1", user=(USER, PASSWORD), realm=REALM) as server:
        yield Server("coturn", server.address, server.process.pid, f"coturn {version}".strip())


def our_server_usage() -> str | None:
    """Why ``python -m ice server`` cannot be benchmarked here, or None."""
    result = subprocess.run(
        [sys.executable, "-P", "-m", "ice", "server", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if result.returncode != 0:
        return f"python -m ice server --help failed: {result.stderr.strip()[-300:]}"
    missing = [flag for flag in OUR_FLAGS if flag not in result.stdout]
    if missing:
        return f"python -m ice server has no {', '.join(missing)} yet (no TURN server to load)"
    return None


@contextlib.contextmanager
def ice_server(allocations: int = 1) -> Iterator[Server]:
    reason = our_server_usage()
    if reason is not None:
        raise Skipped(reason)
    coturn = load_coturn()
    port = coturn.free_port("udp")
    # a port per allocation of the largest run, and room for the ones a run that
    # just ended has not released yet
    span = max(64, 4 * allocations)
    relay = coturn._free_ports(("127.0.0.1",), ("udp",), span)
    args = [sys.executable, "-P", "-m", "ice", "server", "--listen", f"udp://127.0.0.1:{port}"]
    args += ["--user", f"{USER}:{PASSWORD}", "--realm", REALM, "--allow-loopback-peers"]
    args += ["--relay-ports", f"{relay}-{relay + span - 1}"]
    from ice import __version__

    with start_process(args, ("127.0.0.1", port), "python -m ice server") as pid:
        yield Server("ice", ("127.0.0.1", port), pid, f"ice-stun-turn {__version__}")


@contextlib.contextmanager
def pion_server() -> Iterator[Server]:
    binary = shutil.which("turn-server")
    if binary is None:
        raise Skipped("no pion turn-server binary on PATH")
    port = load_coturn().free_port("udp")
    args = [binary, "-public-ip", "127.0.0.1", "-port", str(port)]
    args += ["-users", f"{USER}={PASSWORD}", "-realm", REALM]
    with start_process(args, ("127.0.0.1", port), "pion turn-server") as pid:
        yield Server("pion", ("127.0.0.1", port), pid, f"pion turn-server ({binary})")


STARTERS = {"coturn": coturn_server, "ice": ice_server, "pion": pion_server}


@dataclass(frozen=True)
class Case:
    """One row of the tables: a protocol, how many flows, the payload size (TURN)."""

    mode: str
    flows: int
    size: int = 0

    def __str__(self) -> str:
        if self.mode == "stun":
            return f"stun, {self.flows} flow{'s' if self.flows != 1 else ''}"
        allocations = f"{self.flows} allocation{'s' if self.flows != 1 else ''}"
        return f"turn, {allocations}, {self.size} B"


def cases(args: argparse.Namespace) -> list[Case]:
    """Every run a round makes on one server, in order."""
    runs = [Case("stun", flows) for flows in args.stun_flows]
    runs += [Case("turn", flows, size) for flows in args.turn_flows for size in args.size]
    return runs


def case_of(run: Run) -> Case:
    return Case(run.mode, run.flows, run.size if run.mode == "turn" else 0)


async def measure(server: Server, case: Case, args: argparse.Namespace) -> Run:
    from ice._load.engine import run_stun, run_turn

    mode = case.mode

    cpu_before = process_cpu(server.pid)
    busy_before = machine_busy()
    tool_before = os.times()
    started = time.monotonic()
    if mode == "stun":
        result = await run_stun(
            server.address,
            flows=case.flows,
            duration=args.duration,
            window=window_for(case.flows, args.window),
            gro=args.client_gro,
            gso=args.client_gso,
        )
    else:
        result = await run_turn(
            server.address,
            USER,
            PASSWORD,
            flows=case.flows,
            duration=args.duration,
            window=window_for(case.flows, args.window),
            size=case.size,
            gro=args.client_gro,
            gso=args.client_gso,
        )
    wall = time.monotonic() - started
    cpu_after = process_cpu(server.pid)
    busy_after = machine_busy()
    tool_after = os.times()
    tool = tool_after.user + tool_after.system - tool_before.user - tool_before.system
    server_cpu = None
    if cpu_before is not None and cpu_after is not None and wall > 0:
        server_cpu = (cpu_after - cpu_before) / wall
    other_cpu = None
    if busy_before is not None and busy_after is not None and server_cpu is not None:
        other_cpu = max(0.0, (busy_after - busy_before) / wall - server_cpu - tool / wall)
    data = result.as_json()
    return Run(
        server=server.name,
        mode=mode,
        flows=result.flows,
        duration=result.duration,
        sent=result.sent,
        received=result.received,
        rate_sent=result.rate_sent,
        rate_received=result.rate_received,
        loss=result.loss,
        latency_ms=result.latency_ms,
        relayed_rate=data.get("rate_relayed", 0.0),
        size=case.size,
        server_cpu=server_cpu,
        tool_cpu=tool / wall if wall > 0 else 0.0,
        other_cpu=other_cpu,
        note=server.note,
        extra={k: data[k] for k in ("dropped", "errors", "stray") if data.get(k)},
    )


def measure_server(name: str, args: argparse.Namespace, say: Any) -> tuple[list[Run], str | None]:
    """Every round of every case on one server; ([], reason) when it was skipped."""
    from ice import Error

    runs: list[Run] = []
    failed: list[str] = []
    try:
        starter = STARTERS[name]
        started = starter(max(args.turn_flows)) if name == "ice" else starter()
        with started as server:
            for round_number in range(args.rounds):
                for case in cases(args):
                    say(f"  {name}: {case}, round {round_number + 1} ...")
                    try:
                        runs.append(asyncio.run(measure(server, case, args)))
                    except (Error, OSError, ValueError) as exc:
                        # one failed run (coturn answering 437 to a client port a run
                        # before still held) costs that round of that case only
                        failed.append(f"the {case} run of round {round_number + 1} failed: {exc}")
                        say(f"  {name}: {failed[-1]}")
    except Skipped as exc:
        return runs, str(exc)
    return runs, "; ".join(failed) if failed else None


def best(runs: Sequence[Run], server: str, mode: str, case: Case | None = None) -> Run | None:
    """The best round of ``server`` in ``case`` (any case of ``mode`` when None)."""
    mine = [
        r
        for r in runs
        if r.server == server and r.mode == mode and (case is None or case_of(r) == case)
    ]
    return max(mine, key=lambda r: r.rate) if mine else None


def _ratio(runs: Sequence[Run], case: Case) -> str:
    """ours / coturn per core in ``case``, or "" when either is missing."""
    ours, theirs = best(runs, "ice", case.mode, case), best(runs, "coturn", case.mode, case)
    if ours is None or theirs is None or not ours.per_core or not theirs.per_core:
        return ""
    return f"{ours.per_core / theirs.per_core:.2f}x"


def _cpu(run: Run) -> str:
    return f"{run.server_cpu * 100:.0f}%" if run.server_cpu is not None else "?"


def _other(run: Run) -> str:
    return f"{run.other_cpu * 100:.0f}%" if run.other_cpu is not None else "?"


def _per_core(run: Run) -> str:
    value = run.per_core
    return f"{value:,.0f}" if value is not None else "?"


def format_report(runs: Sequence[Run], skipped: dict[str, str], header: str) -> str:
    servers = list(dict.fromkeys(r.server for r in runs))
    lines = [header, ""]
    lines += [
        "STUN Binding requests (responses/s is the rate):",
        "",
        "| server | flows | requests/s | responses/s | loss | p50 ms | p99 ms | max ms "
        "| server CPU | responses/s per core | ice / coturn per core | load tool CPU | other CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = list(dict.fromkeys(case_of(r) for r in runs))
    for case in (c for c in rows if c.mode == "stun"):
        for name in servers:
            r = best(runs, name, "stun", case)
            if r is None:
                continue
            lat = r.latency_ms
            lines.append(
                f"| {name} | {r.flows} | {r.rate_sent:,.0f} | {r.rate_received:,.0f} "
                f"| {r.loss:.2f}% | {lat['p50']:.3f} | {lat['p99']:.3f} | {lat['max']:.3f} "
                f"| {_cpu(r)} | {_per_core(r)} | {_ratio(runs, case) if name == 'ice' else ''} "
                f"| {r.tool_cpu * 100:.0f}% | {_other(r)} |"
            )
    lines += [
        "",
        "TURN ChannelData through one channel per allocation, echoed back "
        "(relayed packets/s is the rate; a round trip is 2 relayed packets):",
        "",
        "| server | allocations | payload B | sent/s | round trips/s | relayed packets/s "
        "| loss | p50 ms | p99 ms | max ms | server CPU | relayed/s per core "
        "| ice / coturn per core | load tool CPU | other CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in (c for c in rows if c.mode == "turn"):
        for name in servers:
            r = best(runs, name, "turn", case)
            if r is None:
                continue
            lat = r.latency_ms
            lines.append(
                f"| {name} | {r.flows} | {r.size} | {r.rate_sent:,.0f} | {r.rate_received:,.0f} "
                f"| {r.relayed_rate:,.0f} | {r.loss:.2f}% | {lat['p50']:.3f} "
                f"| {lat['p99']:.3f} | {lat['max']:.3f} | {_cpu(r)} | {_per_core(r)} "
                f"| {_ratio(runs, case) if name == 'ice' else ''} | {r.tool_cpu * 100:.0f}% "
                f"| {_other(r)} |"
            )
    lines.append("")
    for name in servers:
        note = next(r.note for r in runs if r.server == name)
        lines.append(f"- {name}: {note}")
    for name, reason in skipped.items():
        lines.append(f"- {name}: skipped: {reason}")
    if any(r.other_cpu is not None for r in runs):
        lines.append(
            "- other CPU: what the rest of the machine used during the row's run (neither "
            "the server nor the load tool), 100% = one core; near 100% the two shared one"
        )
    for case in rows:
        ours, theirs = best(runs, "ice", case.mode, case), best(runs, "coturn", case.mode, case)
        if ours is None or theirs is None or not theirs.rate:
            continue
        ratio = ours.rate / theirs.rate
        line = f"- ice / coturn, {case}: {ratio:.2f}x the rate"
        if ours.per_core and theirs.per_core:
            line += f", {ours.per_core / theirs.per_core:.2f}x per core"
        lines.append(line)
    return "\n".join(lines)


def parse_servers(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SERVERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(SERVERS)}")
    return names


def parse_counts(text: str) -> tuple[int, ...]:
    """A comma-separated list of positive integers ("1,100")."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers separated by commas: {text!r}")
    return tuple(dict.fromkeys(values))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="STUN Binding requests/s and TURN ChannelData relayed/s of local servers."
    )
    parser.add_argument(
        "--servers",
        type=parse_servers,
        default=SERVERS,
        help=f"comma-separated, of {','.join(SERVERS)} (default: all; pion only if on PATH)",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (5)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per server, best kept (1)")
    parser.add_argument(
        "--stun-flows", type=parse_counts, default=(1, 100), help="STUN client sockets (1,100)"
    )
    parser.add_argument(
        "--turn-flows", type=parse_counts, default=(1, 100), help="TURN allocations (1,100)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help=f"packets outstanding per flow (default: {TOTAL_WINDOW} over all flows of a run, "
        f"at most {FLOW_WINDOW} per flow and at least 2)",
    )
    parser.add_argument(
        "--size",
        type=parse_counts,
        default=(100, 1200),
        help="ChannelData payload bytes (100,1200)",
    )
    parser.add_argument(
        "--no-client-gso",
        dest="client_gso",
        action="store_false",
        help="the load generator sends datagram by datagram (default: a flow's window as "
        "UDP GSO sends; the server receives the same datagrams)",
    )
    parser.add_argument(
        "--no-client-gro",
        dest="client_gro",
        action="store_false",
        help="the load generator reads datagram by datagram (default: with UDP GRO, so a "
        "server's UDP GSO train reaches it whole, as behind a NIC that segments)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--plot", metavar="FILE.svg", help="also draw the rates as a bar chart (matplotlib)"
    )
    parser.add_argument(
        "--from",
        dest="from_json",
        metavar="FILE",
        help="print (and --plot) the results of an earlier --json instead of running",
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 600 or args.rounds < 1:
        parser.error("need 0 < --duration <= 600 and --rounds >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plot or args.from_json:
        early = plot_before_running(args)
        if early is not None:
            return early

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    runs: list[Run] = []
    skipped: dict[str, str] = {}
    for name in args.servers:
        got, reason = measure_server(name, args, say)
        runs += got
        if reason is not None:
            skipped[name] = reason
            say(f"  {name}: skipped: {reason}")
    window_text = (
        f"{args.window} per flow"
        if args.window is not None
        else f"{TOTAL_WINDOW} over the flows (at most {FLOW_WINDOW}, at least 2 per flow)"
    )
    header = (
        f"Servers on 127.0.0.1 (UDP), {args.duration:g} s per run, best of {args.rounds}, "
        f"window {window_text}, the generator sending "
        f"{'with' if args.client_gso else 'without'} UDP GSO and reading "
        f"{'with' if args.client_gro else 'without'} UDP GRO; "
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(format_report(runs, skipped, header))
    if args.json:
        data = {
            "header": header,
            "skipped": skipped,
            "runs": [{**asdict(r), "rate": r.rate, "per_core": r.per_core} for r in runs],
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.plot and runs:
        return plot_rates(runs, skipped, header, args.plot)
    return 0 if runs else 1


# --plot and --from: the chart is drawn by ice._bench.plot (matplotlib, the
# package's `plot` extra); the runs are long, so a missing matplotlib fails
# before them and --from redraws a saved --json without starting any server.


def runs_from_json(data: dict[str, Any]) -> list[Run]:
    """The Run records of a --json file (keys Run does not know are ignored)."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(Run)}
    return [Run(**{k: v for k, v in row.items() if k in known}) for row in data.get("runs", [])]


def plot_rates(runs: Sequence[Run], skipped: dict[str, str], header: str, path: str) -> int:
    from ice._bench import plot

    data = {
        "header": header,
        "skipped": skipped,
        "runs": [{**asdict(r), "rate": r.rate, "per_core": r.per_core} for r in runs],
    }
    try:
        plot.plot_server_rates(data, path)
    except (OSError, ValueError) as exc:
        print(f"error: --plot {path}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}", file=sys.stderr)
    return 0


def plot_before_running(args: argparse.Namespace) -> int | None:
    """An exit status when --plot cannot work or --from replaces the run; None to run."""
    from ice._bench import plot

    if args.plot:
        try:
            plot.require_matplotlib()
        except plot.PlotUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not args.from_json:
        return None
    try:
        data = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        runs = runs_from_json(data)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        print(f"error: {args.from_json}: not a server_rate.py --json file ({exc})", file=sys.stderr)
        return 2
    skipped = dict(data.get("skipped") or {})
    header = str(data.get("header") or f"results read from {args.from_json}")
    print(format_report(runs, skipped, header))
    if args.plot:
        return plot_rates(runs, skipped, header, args.plot)
    return 0 if runs else 1


if __name__ == "__main__":
    sys.exit(main())
