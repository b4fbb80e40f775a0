"""aiortc on aioice and on ice, in one run: connect time, data-channel and datagram rates.

    python bench/aiortc_datachannel.py             # 5 rounds, ~2 min; prints a markdown table
    python bench/aiortc_datachannel.py --quick     # smoke run for CI, < 60 s; rough numbers
    python bench/aiortc_datachannel.py --rounds 3 --json /tmp/aiortc.json

Two ``aiortc.RTCPeerConnection``\\ s in this process talk over 127.0.0.1,
with ``RTCConfiguration(iceServers=[])`` (no STUN server: no internet needed).
``ice`` rounds run with ``ice.aiortc.using(include_loopback=True,
ip_filter=["127.0.0.1"], use_ipv6=False)``; ``aioice`` rounds run aiortc as
shipped, with ``aioice.ice.get_host_addresses`` replaced so that it gathers
127.0.0.1 only (as tests/interop/aiortc/aiortc_switch.py does). Rounds
alternate between the two so that other load on the machine hits both alike;
each row is the median over the rounds.

Each round, per implementation, on a fresh pair of peer connections:

1. **connect**: the offerer creates a data channel and its offer; the clock
   starts before the answerer's ``setRemoteDescription(offer)`` and stops when
   the offerer's channel fires "open". In between: the answerer's answer
   (gathering included), the offerer's ``setRemoteDescription(answer)``, ICE
   checks and nomination, the DTLS handshake and SCTP association, and the
   DCEP open. Signalling takes no time (both peers are here).
2. **data channel, 100 B and 16 KiB**: the offerer sends ``--messages``
   (``--large-messages``) binary messages on the open channel, keeping
   ``bufferedAmount`` under 1 MiB (waiting for "bufferedamountlow"), and the
   clock stops when the answerer has received the last one; messages/s and
   MB/s (10^6 bytes) of payload. This is aiortc's SCTP and DTLS in Python
   over the ICE transport: the ICE layer is a part of the cost, not all of it.
3. **ICE datagrams, 1,200 B (RTP-sized)**: through the ICE transport aiortc
   made, as aiortc's SRTP path sends them (``RTCIceTransport._send``, which is
   the connection's ``send``) and receives them (its DTLS transport's receive
   loop calls ``RTCIceTransport._recv``, the connection's ``recv``, wrapped
   here to count). The first byte is 0xFF, which aiortc's demultiplexer
   (RFC 7983) hands to neither DTLS nor SRTP, so only the ICE path and
   aiortc's receive loop are timed; at most ``--window`` are in flight, so
   the receiving socket (same event loop) never overflows. datagrams/s.
4. **connect through a TURN relay**: as 1, on two more peer connections with a
   relay-only ``iceTransportPolicy`` and ice's TURN server (started by this
   script on 127.0.0.1, loopback peers allowed) as their only ICE server, so
   the one pair is relay to relay. Each side's first check can arrive before
   the other has its permission for it: what an agent does then (RFC 8445
   7.3.1.4) decides the time.

Before measuring, a 4 MiB block is freed so that glibc serves asyncio's
256 KiB receive buffers from its heap for every implementation alike (see
bench/ice_connect.py). Numbers are only comparable within one run on one
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
try:
    import ice.aiortc
except ImportError:  # a source checkout built in place
    sys.path.insert(0, str(ROOT))
    import ice.aiortc

from ice_connect import HOST, aioice_on_loopback  # noqa: E402 - beside this script

IMPLS = ("aioice", "ice")
LOOPBACK: dict[str, Any] = {"include_loopback": True, "ip_filter": [HOST], "use_ipv6": False}
SMALL, LARGE, DATAGRAM = 100, 16 * 1024, 1200
#: bufferedAmount the sender keeps under, and where "bufferedamountlow" fires.
HIGH_WATER, LOW_WATER = 1 << 20, 256 << 10
#: Seconds without progress before a run is declared stuck.
STALL = 10.0
#: The long-term credentials both peers use on the script's TURN server.
TURN_USER, TURN_PASSWORD = "bench", "bench-password"


@dataclass
class Round:
    impl: str
    connect_ms: float
    small_msgs: float  # messages/s
    large_msgs: float
    datagrams: float  # datagrams/s
    relay_connect_ms: float
    lost: int = 0


@dataclass
class Result:
    impl: str
    rounds: list[Round] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(r, name) for r in self.rounds)


@contextlib.contextmanager
def running_on(impl: str) -> Iterator[None]:
    """aiortc on ``impl`` for the block, host candidates on 127.0.0.1 only."""
    if impl == "ice":
        with ice.aiortc.using(**LOOPBACK):
            yield
        return
    with aioice_on_loopback():
        yield


async def connect(offerer: Any, answerer: Any) -> tuple[float, Any, Any]:
    """Negotiate a data channel; (seconds from setRemoteDescription to open, both channels)."""
    loop = asyncio.get_running_loop()
    channel = offerer.createDataChannel("bench", ordered=True)
    opened = loop.create_future()
    theirs = loop.create_future()
    channel.on("open", lambda: opened.set_result(time.perf_counter()))
    answerer.on("datachannel", theirs.set_result)
    await offerer.setLocalDescription(await offerer.createOffer())
    started = time.perf_counter()
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)
    done = await asyncio.wait_for(opened, 30)
    return done - started, channel, await asyncio.wait_for(theirs, 30)


async def channel_rate(sender: Any, receiver: Any, size: int, count: int) -> float:
    """Messages/s of ``count`` binary messages of ``size`` bytes, sender to receiver."""
    loop = asyncio.get_running_loop()
    payload = bytes(size)
    got = 0
    last = loop.create_future()
    low = asyncio.Event()

    def on_message(message: Any) -> None:
        nonlocal got
        if len(message) != size:
            raise RuntimeError(f"a message of {len(message)} bytes, expected {size}")
        got += 1
        if got == count and not last.done():
            last.set_result(time.perf_counter())

    receiver.remove_all_listeners("message")
    receiver.on("message", on_message)
    sender.bufferedAmountLowThreshold = LOW_WATER
    sender.remove_all_listeners("bufferedamountlow")
    sender.on("bufferedamountlow", low.set)
    started = time.perf_counter()
    for _ in range(count):
        if sender.bufferedAmount > HIGH_WATER:
            low.clear()
            await asyncio.wait_for(low.wait(), STALL)
        sender.send(payload)
    done = await asyncio.wait_for(last, STALL + count / 1000)
    return count / (done - started)


async def datagram_rate(offerer: Any, answerer: Any, count: int, window: int) -> tuple[float, int]:
    """(datagrams/s, lost) of ``count`` RTP-sized datagrams through aiortc's ICE transports."""
    sending = offerer.sctp.transport.transport  # RTCIceTransport
    receiving = answerer.sctp.transport.transport
    recv = receiving._recv
    got = 0
    progress = asyncio.Event()

    async def counting_recv() -> bytes:
        nonlocal got
        data: bytes = await recv()
        if data[:1] == b"\xff":
            got += 1
            progress.set()
        return data

    # aiortc's DTLS receive loop looks _recv up again for every datagram: the
    # datagram in flight now is read by the old one, the next by ours.
    receiving._recv = counting_recv
    try:
        while got == 0:
            await sending._send(b"\xff" + bytes(DATAGRAM - 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), 0.05)
        got = 0
        payload = b"\xff" + bytes(DATAGRAM - 1)
        started = time.perf_counter()
        for sent in range(count):
            while sent - got >= window:
                progress.clear()
                await asyncio.wait_for(progress.wait(), STALL)
            await sending._send(payload)
        while got < count:
            progress.clear()
            try:
                await asyncio.wait_for(progress.wait(), 1.0)
            except TimeoutError:
                break  # the rest were lost
        elapsed = time.perf_counter() - started
    finally:
        receiving._recv = recv
    return got / elapsed, count - got


def check_runs_on(impl: str, peer: Any) -> None:
    kind = type(peer.sctp.transport.transport._connection).__module__.split(".")[0]
    if kind != impl:
        raise RuntimeError(f"the {impl} round ran on {kind}")


async def one_round(impl: str, args: argparse.Namespace, turn_uri: str) -> Round:
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    with running_on(impl):
        offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            seconds, ours, theirs = await connect(offerer, answerer)
            check_runs_on(impl, offerer)
            small = await channel_rate(ours, theirs, SMALL, args.messages)
            large = await channel_rate(ours, theirs, LARGE, args.large_messages)
            datagrams, lost = await datagram_rate(offerer, answerer, args.datagrams, args.window)
        finally:
            await offerer.close()
            await answerer.close()
        server = RTCIceServer(urls=turn_uri, username=TURN_USER, credential=TURN_PASSWORD)
        relayed = [
            RTCPeerConnection(
                RTCConfiguration(
                    iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY
                )
            )
            for _ in range(2)
        ]
        try:
            relay_seconds, _, _ = await connect(*relayed)
            check_runs_on(impl, relayed[0])
        finally:
            await asyncio.gather(*(pc.close() for pc in relayed))
    return Round(impl, seconds * 1000, small, large, datagrams, relay_seconds * 1000, lost)


async def run(args: argparse.Namespace) -> list[Result]:
    turn = ice.TurnServer(
        authenticator=ice.LongTermAuthenticator("bench", {TURN_USER: TURN_PASSWORD}),
        relay_ips=[HOST],
        policy=ice.PeerPolicy(allow_loopback=True),
    )
    async with await ice.serve_turn(turn, [ice.Listener("udp", HOST, 0)]) as runner:
        ((_, (host, port)),) = runner.addresses
        return await run_rounds(args, f"turn:{host}:{port}?transport=udp")


async def run_rounds(args: argparse.Namespace, turn_uri: str) -> list[Result]:
    results = {impl: Result(impl) for impl in args.impls}
    for _ in range(args.warmup):
        for impl in args.impls:
            await one_round(impl, args, turn_uri)
    for n in range(args.rounds):
        # alternate which goes first, so neither always runs on a warmer process
        order = args.impls if n % 2 == 0 else args.impls[::-1]
        for impl in order:
            gc.collect()
            found = await one_round(impl, args, turn_uri)
            results[impl].rounds.append(found)
            if not args.quiet:
                print(
                    f"round {n + 1} {impl}: connect {found.connect_ms:.1f} ms,"
                    f" {found.small_msgs:,.0f} / {found.large_msgs:,.0f} msg/s,"
                    f" {found.datagrams:,.0f} datagrams/s,"
                    f" relayed connect {found.relay_connect_ms:.1f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    return [results[impl] for impl in args.impls]


def versions() -> str:
    found = [f"Python {platform.python_version()}"]
    for name in ("aiortc", "aioice", "ice-stun-turn"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found)


def format_table(results: list[Result], args: argparse.Namespace) -> str:
    def cell(result: Result, name: str, size: int | None = None) -> str:
        value = result.median(name)
        if name.endswith("_ms"):
            return f"{value:.1f} ms"
        if size is None:
            return f"{value:,.0f}/s"
        return f"{value:,.0f}/s ({value * size / 1e6:.1f} MB/s)"

    rows = [
        ("connect: setRemoteDescription to channel open", "connect_ms", None),
        (f"data channel, {SMALL} B messages", "small_msgs", SMALL),
        (f"data channel, {LARGE // 1024} KiB messages", "large_msgs", LARGE),
        (f"ICE transport, {DATAGRAM:,} B datagrams", "datagrams", DATAGRAM),
        ("connect through a TURN relay (relay-only, ice's TURN server)", "relay_connect_ms", None),
    ]
    header = "| aiortc 2 peers on 127.0.0.1 | " + " | ".join(r.impl for r in results)
    lines = [header + (" | ice / aioice |" if len(results) == 2 else " |")]
    lines.append("|---" * (len(results) + 1 + (len(results) == 2)) + "|")
    for label, name, size in rows:
        line = f"| {label} | " + " | ".join(cell(r, name, size) for r in results) + " |"
        if len(results) == 2:
            by_impl = {r.impl: r.median(name) for r in results}
            ratio = by_impl["ice"] / by_impl["aioice"]
            better = " (lower is better)" if name.endswith("_ms") else ""
            line += f" {ratio:.2f}x{better} |"
        lines.append(line)
    lost = {r.impl: sum(x.lost for x in r.rounds) for r in results}
    lines.append("")
    lines.append(
        f"Median of {args.rounds} rounds ({args.messages:,} x {SMALL} B,"
        f" {args.large_messages:,} x {LARGE // 1024} KiB, {args.datagrams:,} datagrams"
        f" with at most {args.window} in flight per round); datagrams lost: "
        + ", ".join(f"{k} {v}" for k, v in lost.items())
        + f". {versions()}."
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, < 60 s (CI)")
    parser.add_argument("--rounds", type=int, help="rounds per implementation (5; quick 2)")
    parser.add_argument("--warmup", type=int, help="uncounted rounds first (1; quick 0)")
    parser.add_argument("--messages", type=int, help="100 B messages a round (5,000)")
    parser.add_argument("--large-messages", type=int, help="16 KiB messages a round (1,000)")
    parser.add_argument("--datagrams", type=int, help="1,200 B datagrams a round (20,000)")
    parser.add_argument("--window", type=int, default=32, help="datagrams in flight at most")
    parser.add_argument("--impls", default=",".join(IMPLS), help="aioice,ice or one of them")
    parser.add_argument("--json", metavar="FILE", help="also write the rounds as JSON")
    parser.add_argument("--quiet", action="store_true", help="no line per round on stderr")
    args = parser.parse_args(argv)
    full = {"rounds": 5, "warmup": 1, "messages": 5_000, "large_messages": 1_000}
    quick = {"rounds": 2, "warmup": 0, "messages": 1_000, "large_messages": 100}
    full["datagrams"], quick["datagrams"] = 20_000, 2_000
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.impls = [i for i in args.impls.split(",") if i]
    if not args.impls or any(i not in IMPLS for i in args.impls):
        parser.error(f"--impls: one or both of {', '.join(IMPLS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import aiortc  # noqa: F401
    except ImportError:
        print("aiortc_datachannel: aiortc is not installed (pip install '.[aiortc]')")
        return 2
    block = bytearray(4 << 20)  # glibc's mmap threshold up: see the module docstring
    del block
    results = asyncio.run(run(args))
    print(format_table(results, args))
    if args.json:
        data = {"versions": versions(), "results": [[asdict(r) for r in x.rounds] for x in results]}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    lost = sum(r.lost for x in results for r in x.rounds)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
