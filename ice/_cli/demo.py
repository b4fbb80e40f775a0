"""Connect two ICE agents over loopback, directly and through a TURN relay.

Starts a STUN server of this package on 127.0.0.1 (a free port), then runs
two agents (`ice.Connection`, one controlling, one controlled) in this
process and connects them twice:

1. directly, with host and server-reflexive candidates (the embedded STUN
   server answers; on loopback it sees each host address itself, so there
   is no server-reflexive candidate distinct from the host one);
2. relay-only, through a TURN server: coturn's ``turnserver`` when it is
   installed, started on a free loopback port with a generated user and
   stopped at the end; without it this run is skipped with a one-line note.

For each run it prints both agents' candidates, the selected pairs, the
connect time (from the start of the checks until both agents are
connected) and a line of round-trip time and rate from --count ping-pongs
of --size bytes. Exits 0 when every run connected and the ping-pongs came
back, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import struct
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ice._cli.turn import percentile
from ice._codec import Message
from ice._errors import Error
from ice.aio_client import stun_request
from ice.aio_ice import Connection
from ice.aio_server import Listener, serve_stun
from ice.candidate import Candidate
from ice.constants import BINDING_REQUEST
from ice.stun_server import StunServer
from ice.transaction import Address, Transmit
from ice.uri import format_address

HELP = "connect two ICE agents over loopback, directly and through a TURN relay"

HOST = "127.0.0.1"
#: The whole connect (both agents, start of checks to connected) may take this long.
CONNECT_TIMEOUT = 10.0
#: One ping may take this long to come back before it counts as lost.
PING_TIMEOUT = 1.0
#: coturn may take this long to answer on its port.
COTURN_START_TIMEOUT = 10.0
#: ... and this long to exit after SIGTERM before it is killed.
COTURN_STOP_TIMEOUT = 5.0
_SEQ = struct.Struct("!I")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--count", type=int, default=1000, metavar="N", help="ping-pongs per run (1000)"
    )
    parser.add_argument("--size", type=int, default=100, metavar="B", help="bytes each (100)")
    parser.add_argument(
        "--no-relay", action="store_true", help="skip the relay-only run through coturn"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log to stderr (-vv: debug)"
    )


class _CountingStunServer(StunServer):
    """The package's STUN server, counting the answers it sends."""

    answered = 0

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out = super().datagrams_to_send(now)
        self.answered += len(out)
        return out


# -- coturn


@dataclass
class Turn:
    """A TURN server to relay through."""

    address: Address
    username: str
    password: str
    name: str


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                return False
    return True


def _free_port() -> int:
    """A port P with P and P + 1 free over UDP and TCP on HOST, below the ephemeral
    range (where no outgoing connection takes it before coturn binds it)."""
    low, high = 20000, 32767
    with contextlib.suppress(OSError, ValueError):
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        if ephemeral_low > 11000:
            low, high = 10000, ephemeral_low - 1
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randint(low, high - 1)
        if _bindable(port) and _bindable(port + 1):
            return port
    raise OSError("no free port for coturn on 127.0.0.1")


async def _answers(address: Address) -> bool:
    try:
        await stun_request(address, Message.build(BINDING_REQUEST), timeout=0.25, rto=0.1)
    except (Error, OSError):
        return False
    return True


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM coturn if this process dies first (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(COTURN_STOP_TIMEOUT):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def coturn(turnserver: str) -> AsyncIterator[Turn]:
    """Run coturn on HOST with a generated user until the block ends."""
    username = "demo-" + secrets.token_hex(4)
    password = secrets.token_urlsafe(16)
    realm = "ice-demo"
    with tempfile.TemporaryDirectory(prefix="ice-demo-coturn-") as tmp:
        workdir = Path(tmp)
        port = _free_port()
        log_path = workdir / "turnserver.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                turnserver,
                "-n",
                "--log-file=stdout",
                "--simple-log",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                f"--pidfile={workdir / 'turnserver.pid'}",
                f"--userdb={workdir / 'turndb'}",
                f"--listening-ip={HOST}",
                f"--listening-port={port}",
                f"--realm={realm}",
                "--allow-loopback-peers",
                "--lt-cred-mech",
                f"--user={username}:{password}",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=workdir,
                env={**os.environ, "LC_ALL": "C"},
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + COTURN_START_TIMEOUT
            while not await _answers((HOST, port)):
                if process.returncode is not None or loop.time() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise Error(f"coturn did not start on {HOST}:{port}:\n{tail}")
                await asyncio.sleep(0.05)
            yield Turn((HOST, port), username, password, "coturn")
        finally:
            await _stop(process)


# -- the two agents


def _print_candidates(name: str, connection: Connection, out: TextIO) -> None:
    print(f"{name} candidates:", file=out)
    for candidate in connection.local_candidates:
        print(f"  {candidate.to_sdp(prefix=True)}", file=out)
    if not connection.local_candidates:
        print("  (none)", file=out)


def _describe(candidate: Candidate) -> str:
    return f"{candidate.type.value} {format_address(candidate.address)}"


def _print_selected(name: str, connection: Connection, out: TextIO) -> None:
    pair = connection.selected_pair(1)
    if pair is None:
        print(f"{name} selected pair: (none)", file=out)
        return
    print(f"{name} selected pair: {_describe(pair.local)} -> {_describe(pair.remote)}", file=out)


async def _exchange(a: Connection, b: Connection) -> None:
    """Signal each agent's credentials and candidates to the other (no trickle)."""
    for this, other in ((a, b), (b, a)):
        other.remote_username = this.local_username
        other.remote_password = this.local_password
        for candidate in this.local_candidates:
            await other.add_remote_candidate(candidate)
        await other.add_remote_candidate(None)


async def _echo(connection: Connection) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            await connection.send(await connection.recv())


async def _ping_pong(a: Connection, count: int, size: int) -> tuple[list[float], int, float]:
    """Send ``count`` datagrams one at a time, each after the previous one came back
    (or was given up on); return the round-trip times, how many were lost, and the
    time it all took."""
    loop = asyncio.get_running_loop()
    # "ping" first: a datagram whose first byte is 0-3 would be taken for STUN (RFC 7983)
    filler = bytes(i & 0xFF for i in range(max(size - 8, 0)))
    rtts: list[float] = []
    lost = 0
    start = loop.time()
    for seq in range(count):
        payload = (b"ping" + _SEQ.pack(seq) + filler)[:size]
        sent = loop.time()
        await a.send(payload)
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                while await a.recv() != payload:
                    pass  # a late echo of a ping given up on
        except TimeoutError:
            lost += 1
            continue
        rtts.append(loop.time() - sent)
    return rtts, lost, loop.time() - start


async def connect_pair(
    title: str,
    options: dict[str, Any],
    args: argparse.Namespace,
    out: TextIO,
    stun: _CountingStunServer | None = None,
) -> bool:
    """Gather, exchange candidates, connect and ping-pong one pair of agents; True when
    they connected and pings came back. Raises ConnectionError when ICE fails and
    TimeoutError when it takes longer than CONNECT_TIMEOUT."""
    print(f"\n== {title} ==", file=out)
    a = Connection(ice_controlling=True, **options)
    b = Connection(ice_controlling=False, **options)
    echo: asyncio.Task[None] | None = None
    try:
        await asyncio.gather(a.gather_candidates(), b.gather_candidates())
        _print_candidates("A (controlling)", a, out)
        _print_candidates("B (controlled)", b, out)
        if stun is not None:
            candidates = [*a.local_candidates, *b.local_candidates]
            srflx = sum(c.type == "srflx" for c in candidates)
            print(
                f"STUN server: answered {stun.answered} Binding requests from the agents,"
                f" {srflx} srflx candidates",
                file=out,
            )
            if not srflx:
                print(
                    "  (on loopback the STUN server sees each host address itself, and a"
                    " srflx candidate equal to its host candidate is redundant)",
                    file=out,
                )
        await _exchange(a, b)
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await asyncio.gather(a.connect(), b.connect())
        connect_time = loop.time() - start
        _print_selected("A", a, out)
        _print_selected("B", b, out)
        print(
            f"connect time: {connect_time * 1000:.2f} ms"
            " (start of checks to connected on both sides)",
            file=out,
        )
        echo = asyncio.create_task(_echo(b))
        rtts, lost, elapsed = await _ping_pong(a, args.count, args.size)
        print(ping_pong_line(rtts, lost, elapsed, args.size), file=out, flush=True)
        return bool(rtts)
    finally:
        if echo is not None:
            echo.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await echo
        await asyncio.gather(a.close(), b.close())


def ping_pong_line(rtts: list[float], lost: int, elapsed: float, size: int) -> str:
    count = len(rtts) + lost
    head = f"ping-pong: {count} x {size} bytes in {elapsed:.3f} s"
    if not rtts:
        return f"{head}: none came back"
    ordered = sorted(rtts)
    rate = len(rtts) / elapsed if elapsed > 0 else float("inf")
    mbits = rate * size * 8 / 1e6
    return (
        f"{head}: rtt p50 {percentile(ordered, 50) * 1000:.3f} ms,"
        f" p99 {percentile(ordered, 99) * 1000:.3f} ms;"
        f" {rate:.0f} round trips/s ({mbits:.1f} Mbit/s each way); lost {lost}"
    )


def _host_options() -> dict[str, Any]:
    """Host candidates on 127.0.0.1 only: the demo stays on loopback."""
    return {
        "use_ipv4": True,
        "use_ipv6": False,
        "include_loopback": True,
        "ip_filter": [HOST],
    }


def _relay_options(turn: Turn) -> dict[str, Any]:
    """Relayed candidates only, from ``turn`` over UDP."""
    return {
        **_host_options(),
        "turn_server": turn.address,
        "turn_username": turn.username,
        "turn_password": turn.password,
        "turn_transport": "udp",
        "transport_policy": "relay",
    }


async def demo(args: argparse.Namespace, out: TextIO) -> int:
    print("ice-stun-turn demo: two ICE agents in one process, over loopback", file=out)
    stun = _CountingStunServer()
    runner = await serve_stun(stun, [Listener("udp", HOST, 0)])
    try:
        stun_address = runner.addresses[0][1]
        print(f"STUN server: udp://{format_address(stun_address)} (embedded)", file=out)
        ok = await connect_pair(
            "direct: host and server-reflexive candidates",
            {**_host_options(), "stun_server": stun_address},
            args,
            out,
            stun,
        )
        turnserver = shutil.which("turnserver")
        if args.no_relay:
            print("\nrelay-only run: skipped (--no-relay)", file=out)
        elif turnserver is None:
            print(
                "\nrelay-only run: skipped (no TURN server: coturn's turnserver is not"
                " installed; apt-get install coturn)",
                file=out,
            )
        else:
            async with coturn(turnserver) as turn:
                title = (
                    f"relay-only through TURN ({turn.name} on udp://{format_address(turn.address)})"
                )
                relayed = await connect_pair(title, _relay_options(turn), args, out)
            ok = ok and relayed
    finally:
        await runner.close()
    out.flush()
    return 0 if ok else 1


def configure_logging(verbose: int) -> None:
    level = logging.ERROR if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    if args.count < 1 or args.size < 1:
        print("python -m ice demo: error: --count and --size must be at least 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(demo(args, sys.stdout))
    except TimeoutError:
        print(
            f"python -m ice demo: the agents did not connect within {CONNECT_TIMEOUT:g} s",
            file=sys.stderr,
        )
        return 1
    except (Error, OSError, ValueError) as exc:
        print(f"python -m ice demo: {exc}", file=sys.stderr)
        return 1
