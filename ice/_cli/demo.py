"""Connect two ICE agents over loopback, directly and through a TURN relay.

Starts a STUN/TURN server of this package on 127.0.0.1 (a free port), then runs
two agents (`ice.Connection`, one controlling, one controlled) in this
process and connects them twice:

1. directly, with host and server-reflexive candidates (the embedded STUN
   server answers; on loopback it sees each host address itself, so there
   is no server-reflexive candidate distinct from the host one);
2. relay-only, through the same embedded server acting as TURN server
   (`ice.TurnServer`, a generated user, loopback peers allowed since
   everything stays on 127.0.0.1).

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
import logging
import secrets
import struct
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from ice._cli.common import percentile
from ice._cli.server_config import DEFAULT_REALM
from ice._errors import Error
from ice.agent.candidate import Candidate
from ice.aio.connection import Connection
from ice.aio.stun_server import Listener
from ice.aio.turn_server import serve_turn
from ice.constants import Method
from ice.machine import Address
from ice.stun.server_auth import LongTermAuthenticator
from ice.stun.uri import format_address
from ice.turn.policy import PeerPolicy
from ice.turn.server import TurnServer

HELP = "connect two ICE agents over loopback, directly and through a TURN relay"

HOST = "127.0.0.1"
#: The whole connect (both agents, start of checks to connected) may take this long.
CONNECT_TIMEOUT = 10.0
#: One ping may take this long to come back before it counts as lost.
PING_TIMEOUT = 1.0
_SEQ = struct.Struct("!I")
_BINDING = int(Method.BINDING)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--count", type=int, default=1000, metavar="N", help="ping-pongs per run (1000)"
    )
    parser.add_argument("--size", type=int, default=100, metavar="B", help="bytes each (100)")
    parser.add_argument("--no-relay", action="store_true", help="skip the relay-only run")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log to stderr (-vv: debug)"
    )


@dataclass
class Turn:
    """A TURN server to relay through."""

    address: Address
    username: str
    password: str


def embedded_server(username: str, password: str) -> TurnServer:
    """This package's STUN/TURN server for loopback: one user, loopback peers allowed."""
    return TurnServer(
        authenticator=LongTermAuthenticator(DEFAULT_REALM, {username: password}),
        relay_ips=[HOST],
        policy=PeerPolicy(allow_loopback=True),
    )


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
    stun: TurnServer | None = None,
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
                f"STUN server: answered {stun.stun.request_counts[_BINDING]} Binding requests"
                " from the agents,"
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
    turn = Turn(("", 0), "demo", secrets.token_urlsafe(12))
    server = embedded_server(turn.username, turn.password)
    runner = await serve_turn(server, [Listener("udp", HOST, 0)])
    try:
        turn.address = runner.addresses[0][1]
        print(f"STUN/TURN server: udp://{format_address(turn.address)} (embedded)", file=out)
        ok = await connect_pair(
            "direct: host and server-reflexive candidates",
            {**_host_options(), "stun_server": turn.address},
            args,
            out,
            server,
        )
        if args.no_relay:
            print("\nrelay-only run: skipped (--no-relay)", file=out)
        else:
            title = f"relay-only through TURN (embedded on udp://{format_address(turn.address)})"
            relayed = await connect_pair(title, _relay_options(turn), args, out)
            counters = server.counters()
            print(
                f"TURN server: {counters['allocations_created']} allocations,"
                f" {counters.get('requests_channel_bind', 0)} channel binds",
                file=out,
            )
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
