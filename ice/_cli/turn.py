"""Allocate a relayed address on a TURN server and measure a round trip through it.

The server is a URI: turn:HOST[:PORT] (UDP, port 3478), turn:HOST?transport=tcp
(TCP) or turns:HOST[:PORT] (TLS, port 5349); an IPv6 address goes in brackets.
Credentials are a username and password (-u, -p), or a TURN REST API shared
secret (--secret, coturn's --static-auth-secret) from which an ephemeral
username "EXPIRY:USER" and its password are made.

Sends --count datagrams of --size bytes at --rate per second through the relay
to a peer that echoes them back: --peer HOST:PORT, or else an echo peer started
on loopback (so the server must allow loopback peers: coturn's
--allow-loopback-peers). With --channel (the default) a channel is bound first
and the data travels as ChannelData; --no-channel keeps to Send and Data
indications. Prints the allocation (relayed, mapped address, lifetime), then
the round-trip time percentiles, loss and throughput, as coturn's
turnutils_uclient does. Exits 1 with a one-line message when the allocation
fails or no datagram comes back. A host name without a port is looked up with
DNS SRV first (_turn._udp, _turn._tcp, _turns._tcp), asking --dns HOST:PORT or
the system's DNS; --verbose says which server was picked and why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO, cast

from ice._cli.common import (
    add_dns_argument,
    describe,
    percentile,
    show_discovery,
    turn_failure,
)
from ice._errors import Error, TurnError
from ice._version import __version__
from ice.aio.turn_client import TurnClient
from ice.machine import Address
from ice.stun.credentials import turn_rest_credentials
from ice.stun.uri import UriError, format_address, parse_host_port, parse_uri

HELP = "allocate on a TURN server and relay datagrams through it (RTT, loss, throughput)"

DEFAULT_SOFTWARE = f"ice-stun-turn/{__version__} (python -m ice turn)"
#: Seconds the allocation may take unless --timeout says otherwise.
DEFAULT_TIMEOUT = 10.0
#: How long REST credentials made from --secret stay valid.
REST_LIFETIME = 86400
_SEQ = struct.Struct("!I")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", help="turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]")
    parser.add_argument("-u", "--user", metavar="USER", help="username (with --secret: optional)")
    parser.add_argument("-p", "--password", metavar="PASS", help="password")
    parser.add_argument(
        "--secret", metavar="S", help="TURN REST shared secret: make ephemeral credentials from it"
    )
    parser.add_argument(
        "--peer",
        metavar="HOST:PORT",
        help="a peer that echoes datagrams (default: one on loopback)",
    )
    parser.add_argument("--count", type=int, default=100, metavar="N", help="datagrams (100)")
    parser.add_argument("--size", type=int, default=100, metavar="B", help="bytes each (100)")
    parser.add_argument(
        "--rate",
        type=float,
        default=100.0,
        metavar="PPS",
        help="datagrams per second (100; 0: flat out)",
    )
    parser.add_argument(
        "--channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bind a channel first (ChannelData) or use Send/Data indications (default: channel)",
    )
    parser.add_argument(
        "--family", type=int, choices=(4, 6), default=4, help="relayed address family (4)"
    )
    parser.add_argument("--ca", metavar="FILE", help="PEM file of CAs that sign the server (TLS)")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the server certificate (TLS)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on the allocation after this long (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long to wait for echoes after the last send (default 2)",
    )
    add_dns_argument(parser)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="say which server was picked and why"
    )


@dataclass
class Stats:
    """What came back, by sequence number."""

    sent_at: list[float] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    corrupt: int = 0
    duplicate: int = 0
    stray: int = 0
    last_at: float = 0.0


class _Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)


def credentials(args: argparse.Namespace) -> tuple[str, str]:
    if args.secret is not None:
        if args.password is not None:
            raise ValueError("--secret makes the password: give -p or --secret, not both")
        return turn_rest_credentials(args.secret, args.user, REST_LIFETIME, time.time())
    if args.user is None or args.password is None:
        raise ValueError("give -u USER and -p PASS, or --secret S")
    return args.user, args.password


def ssl_context(args: argparse.Namespace, secure: bool) -> ssl.SSLContext | None:
    if not secure:
        if args.ca or args.insecure:
            raise ValueError("--ca and --insecure apply to turns: (TLS) only")
        return None
    context = ssl.create_default_context(cafile=args.ca)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def check_arguments(args: argparse.Namespace) -> None:
    if args.count < 0:
        raise ValueError("--count must be 0 or more")
    if not _SEQ.size <= args.size <= 65000:
        raise ValueError(f"--size must be from {_SEQ.size} to 65000 bytes")
    if args.rate < 0 or args.wait < 0 or args.timeout <= 0:
        raise ValueError("--rate and --wait must be 0 or more, --timeout more than 0")


async def session(args: argparse.Namespace, out: TextIO) -> int:
    check_arguments(args)
    uri = parse_uri(args.uri)
    if not uri.is_turn:
        raise ValueError(f"{args.uri}: a TURN server is a turn: or turns: URI")
    username, password = credentials(args)
    peer = parse_host_port(args.peer) if args.peer else None
    relay = await TurnClient.allocate(
        uri,
        username,
        password,
        ssl=ssl_context(args, uri.secure),
        family=args.family,
        software=DEFAULT_SOFTWARE,
        channel_after=0,
        timeout=args.timeout,
        resolver=args.dns,
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(relay.close)
        echo_note = ""
        if peer is None:
            host = "::1" if ":" in relay.relayed_address[0] else "127.0.0.1"
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(_Echo, local_addr=(host, 0))
            stack.callback(transport.close)
            peer = transport.get_extra_info("sockname")[:2]
            echo_note = " (echo peer started on loopback)"
        assert peer is not None
        mapped = relay.mapped_address
        lines = [
            f"server:          {relay.transport} {format_address(relay.server)} ({uri})",
            f"local address:   {format_address(relay.local_address)}",
            f"mapped address:  {format_address(mapped) if mapped else '(none)'}",
            *(f"relayed address: {format_address(a)}" for a in relay.relayed_addresses),
            f"lifetime:        {relay.lifetime} s",
            f"peer:            {format_address(peer)}{echo_note}",
        ]
        print("\n".join(lines), file=out, flush=True)
        if args.channel:
            number = await relay.bind_channel(peer)
            print(f"path:            channel 0x{number:04x} (ChannelData)", file=out)
        else:
            await relay.create_permission(peer)
            print("path:            Send and Data indications", file=out)
        if args.count == 0:
            return 0
        stats = Stats()
        elapsed = await exchange(relay, peer, args, stats)
        report(stats, args, elapsed, out, relay.dropped)
        if not stats.rtts:
            problem = f"no datagram came back from {format_address(peer)}"
            print(f"python -m ice turn: {problem}", file=sys.stderr)
            return 1
    return 0


async def exchange(
    relay: TurnClient, peer: Address, args: argparse.Namespace, stats: Stats
) -> float:
    """Send the datagrams at the rate asked, collect the echoes; return the sending time."""
    loop = asyncio.get_running_loop()
    filler = bytes(i & 0xFF for i in range(args.size - _SEQ.size))
    done = asyncio.Event()

    async def receive() -> None:
        while True:
            data, source = await relay.recvfrom()
            now = loop.time()
            seq = _SEQ.unpack_from(data)[0] if len(data) >= _SEQ.size else -1
            if source != peer or not 0 <= seq < len(stats.sent_at):
                stats.stray += 1
            elif data[_SEQ.size :] != filler:
                stats.corrupt += 1
            elif seq in stats.seen:
                stats.duplicate += 1
            else:
                stats.seen.add(seq)
                stats.rtts.append(now - stats.sent_at[seq])
                stats.last_at = now
                if len(stats.seen) == args.count:
                    done.set()

    receiver = loop.create_task(receive())
    try:
        start = loop.time()
        for seq in range(args.count):
            delay = start + seq / args.rate - loop.time() if args.rate else 0.0
            await asyncio.sleep(max(delay, 0.0))  # flat out too: let the echoes in
            stats.sent_at.append(loop.time())
            await relay.sendto(_SEQ.pack(seq) + filler, peer)
        elapsed = loop.time() - start
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.wait):
                await done.wait()
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver  # raises what ended it early (the allocation lost)
    return elapsed


def report(
    stats: Stats, args: argparse.Namespace, elapsed: float, out: TextIO, dropped: int = 0
) -> None:
    """Print what was sent and received; ``dropped``: echoes the client's full queue lost."""
    sent, received = len(stats.sent_at), len(stats.rtts)
    lost = sent - received
    rate = f"{sent / elapsed:.0f}/s" if elapsed > 0 else "at once"
    lines = [
        f"sent:            {sent} datagrams of {args.size} bytes in {elapsed:.2f} s ({rate})",
        f"received:        {received}, loss {100 * lost / sent:.1f}% ({lost} lost, "
        f"{stats.corrupt} corrupt, {stats.duplicate} duplicate, {stats.stray} stray)",
    ]
    if dropped:
        lines[-1] += f", {dropped} dropped by the full receive queue"
    if stats.rtts:
        rtts = sorted(stats.rtts)
        ms = [f"{percentile(rtts, p) * 1000:.2f}" for p in (50, 90, 99, 100)]
        lines.append(
            f"rtt:             p50 {ms[0]} ms, p90 {ms[1]} ms, p99 {ms[2]} ms, max {ms[3]} ms"
        )
        span = max(stats.last_at - stats.sent_at[0], 1e-9)
        sent_rate = sent * args.size * 8 / max(elapsed, span) / 1000
        received_rate = received * args.size * 8 / span / 1000
        lines.append(
            f"throughput:      {sent_rate:.1f} kbit/s sent, {received_rate:.1f} kbit/s echoed"
        )
    print("\n".join(lines), file=out)


def run(args: argparse.Namespace) -> int:
    with show_discovery("turn", args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(session(args, sys.stdout))
    except (UriError, ValueError) as exc:
        if isinstance(exc, ssl.SSLError):  # SSLCertVerificationError is a ValueError too
            print(f"python -m ice turn: {args.uri}: {describe(exc, args.timeout)}", file=sys.stderr)
        else:
            print(f"python -m ice turn: {exc}", file=sys.stderr)
        return 1
    except TurnError as exc:
        print(f"python -m ice turn: {args.uri}: {turn_failure(exc)}", file=sys.stderr)
        return 1
    except (Error, OSError, TimeoutError) as exc:
        print(f"python -m ice turn: {args.uri}: {describe(exc, args.timeout)}", file=sys.stderr)
        return 1
