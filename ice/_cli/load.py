"""Load a STUN or TURN server with UDP traffic for a while and report its rate.

  python -m ice load stun stun:127.0.0.1:3478 --flows 4 --duration 5
  python -m ice load turn turn:127.0.0.1:3478 -u alice -p secret --flows 2 --size 100

stun: Binding requests from --flows UDP sockets; each response is matched to
its request by transaction ID. turn: --flows allocations, each with a channel
bound to a UDP peer socket of our own on loopback (--peer-host to use another
address of this host; the server must allow it as a peer: coturn's
--allow-loopback-peers), then ChannelData client -> server -> peer and, with
--echo (the default), back peer -> server -> client. Credentials are -u/-p,
or --secret for TURN REST ones (coturn's --static-auth-secret).

Each flow keeps at most --window packets outstanding, and --rate caps the
packets sent per second over all flows (0, the default: as fast as the
window lets; --window 0 --rate 0 sends open loop, as fast as the sockets
go). Sending stops after --duration seconds (at most 600); what is still
outstanding then gets --timeout seconds to arrive.

Prints requests (packets) sent per second, responses (packets received at the
far end) per second during the run, loss and latency percentiles; --json
prints one JSON object instead. The target must resolve to loopback unless
--allow-remote is given: this is a load generator, aim it only at servers you
run. Exits 1 when nothing came back or the server refused the allocation, 2
for arguments out of bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
import time
from typing import TextIO

from ice._cli.common import turn_failure
from ice._errors import Error, TurnError
from ice._load.engine import DEFAULT_BATCH, DEFAULT_WINDOW, check_settings, run_stun, run_turn
from ice._load.packets import MAX_DURATION, STAMP, LoadResult, format_summary
from ice._version import __version__
from ice.aio.transport import resolve
from ice.machine import Address
from ice.stun.credentials import turn_rest_credentials
from ice.stun.uri import StunUri, UriError, parse_uri

HELP = "load a STUN or TURN server with UDP traffic (requests/s, relayed packets/s, latency)"

PROG = "python -m ice load"
DEFAULT_SOFTWARE = f"ice-stun-turn/{__version__} (python -m ice load)"
DEFAULT_DURATION = 5.0
#: How long REST credentials made from --secret stay valid.
REST_LIFETIME = 86400


class UsageError(Exception):
    """Arguments that parse but are out of bounds (exit 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mode", choices=("stun", "turn"), help="what to send")
    parser.add_argument("uri", help="stun:HOST[:PORT] or turn:HOST[:PORT] (UDP)")
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        metavar="SECONDS",
        help=f"how long to send (default {DEFAULT_DURATION:g}, at most {MAX_DURATION:g})",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="PPS",
        help="cap on packets sent per second, all flows together (default 0: no cap)",
    )
    parser.add_argument(
        "--flows", type=int, default=1, metavar="N", help="sockets (TURN: allocations) (1)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        metavar="N",
        help=f"packets outstanding per flow (default {DEFAULT_WINDOW}; 0: no limit)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"datagrams per system call (default {DEFAULT_BATCH})",
    )
    parser.add_argument(
        "--no-gro",
        dest="gro",
        action="store_false",
        help="read datagram by datagram, without UDP GRO (by default a train the server "
        "sends as one UDP GSO send is read whole, where Linux has GRO)",
    )
    parser.add_argument(
        "--no-gso",
        dest="gso",
        action="store_false",
        help="send datagram by datagram (by default a flow's window goes out as UDP GSO "
        "sends where Linux has them: the server gets the same datagrams, the load tool "
        "spends less)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="a packet not back after this long is lost (default 1)",
    )
    turn = parser.add_argument_group("turn")
    turn.add_argument("-u", "--user", metavar="USER", help="username (with --secret: optional)")
    turn.add_argument("-p", "--password", metavar="PASS", help="password")
    turn.add_argument(
        "--secret", metavar="S", help="TURN REST shared secret: make ephemeral credentials from it"
    )
    turn.add_argument(
        "--size", type=int, default=100, metavar="B", help="ChannelData payload bytes (100)"
    )
    turn.add_argument(
        "--echo",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the peers send every packet back through the relay (default: on)",
    )
    turn.add_argument(
        "--peer-host",
        metavar="IP",
        help="address of this host for the peer sockets (default: loopback)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a target (or peer host) that is not loopback",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_loopback
    except ValueError:
        return False


def check_arguments(args: argparse.Namespace) -> StunUri:
    """The target URI; UsageError for arguments out of bounds."""
    try:
        check_settings(
            flows=args.flows,
            rate=args.rate,
            duration=args.duration,
            window=args.window,
            batch=args.batch,
            timeout=args.timeout,
        )
    except ValueError as exc:
        raise UsageError(str(exc).replace("the duration", "--duration")) from None
    try:
        uri = parse_uri(args.uri)
    except UriError as exc:
        raise UsageError(str(exc)) from None
    if uri.secure or uri.transport != "udp":
        raise UsageError(f"{args.uri}: the load generator speaks UDP only (stun: or turn:)")
    if args.mode == "stun":
        if args.user or args.password or args.secret:
            raise UsageError("-u, -p and --secret are for turn mode")
    else:
        if args.secret is None and (args.user is None or args.password is None):
            raise UsageError("turn mode needs -u USER and -p PASS, or --secret S")
        if args.secret is not None and args.password is not None:
            raise UsageError("--secret makes the password: give -p or --secret, not both")
        if not STAMP.size <= args.size <= 65000:
            raise UsageError(f"--size must be from {STAMP.size} to 65000 bytes")
        if args.peer_host is not None:
            try:
                ipaddress.ip_address(args.peer_host)
            except ValueError:
                raise UsageError(f"--peer-host {args.peer_host!r} is not an IP address") from None
            if not args.allow_remote and not _is_loopback(args.peer_host):
                raise UsageError(
                    f"--peer-host {args.peer_host} is not loopback (add --allow-remote)"
                )
    return uri


async def target_address(uri: StunUri, allow_remote: bool) -> Address:
    """The address to load: the first one the host resolves to. UsageError when one of
    them is not loopback and ``allow_remote`` is false."""
    addresses = await resolve(uri.host, uri.port, "udp")
    if not allow_remote:
        remote = [host for host, _ in addresses if not _is_loopback(host)]
        if remote:
            raise UsageError(
                f"{uri.host} resolves to {', '.join(remote)}, not loopback: "
                "give --allow-remote to load a server on another host"
            )
    return addresses[0]


async def load(args: argparse.Namespace, uri: StunUri) -> LoadResult:
    server = await target_address(uri, args.allow_remote)
    if args.mode == "stun":
        return await run_stun(
            server,
            flows=args.flows,
            rate=args.rate,
            duration=args.duration,
            window=args.window,
            batch=args.batch,
            timeout=args.timeout,
            target=str(uri),
            gro=args.gro,
            gso=args.gso,
        )
    if args.secret is not None:
        username, password = turn_rest_credentials(
            args.secret, args.user, REST_LIFETIME, time.time()
        )
    else:
        username, password = args.user, args.password
    return await run_turn(
        server,
        username,
        password,
        flows=args.flows,
        rate=args.rate,
        duration=args.duration,
        window=args.window,
        batch=args.batch,
        timeout=args.timeout,
        size=args.size,
        echo=args.echo,
        peer_host=args.peer_host,
        software=DEFAULT_SOFTWARE,
        target=str(uri),
        gro=args.gro,
        gso=args.gso,
    )


def report(result: LoadResult, as_json: bool, out: TextIO) -> None:
    print(result.to_json() if as_json else format_summary(result), file=out)


def run(args: argparse.Namespace) -> int:
    try:
        uri = check_arguments(args)
        result = asyncio.run(load(args, uri))
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except TurnError as exc:
        print(f"{PROG}: {args.uri}: {turn_failure(exc)}", file=sys.stderr)
        return 1
    except (Error, OSError) as exc:
        print(f"{PROG}: {args.uri}: {exc}", file=sys.stderr)
        return 1
    report(result, args.json, sys.stdout)
    if not result.received:
        print(f"{PROG}: {args.uri}: nothing came back", file=sys.stderr)
        return 1
    return 0
