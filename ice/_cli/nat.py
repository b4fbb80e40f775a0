"""Find the NAT behaviour between this host and a STUN server (RFC 5780).

SERVER is a stun: or turn: URI over UDP (stun:HOST[:PORT], port 3478 by
default); a bare HOST[:PORT] works too. The server must support RFC 5780:
answer on two IP addresses and two ports and return OTHER-ADDRESS, as
`python -m ice server --alternate ...` and coturn with two listening IPs do.
Against any other server only the mapped address can be learned.

Prints the mapped address, the mapping and filtering behaviour (RFC 4787),
whether the NAT hairpins, and the classic type: open internet, full cone,
restricted cone, port-restricted cone, symmetric, symmetric UDP firewall or
UDP blocked. Each test waits --timeout seconds for an answer (a filtering NAT
answers some tests with silence), so a run takes up to about 4 x --timeout.

--lifetime also measures how long the NAT keeps an idle UDP mapping: probes
after idle times doubling from --lifetime-min up to --lifetime-max, then
halving the bracket down to --lifetime-resolution. That takes minutes.

Exit status: 0 when the type was found (UDP blocked included), 1 when it
could not be (the server lacks RFC 5780, say) or on an error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from ice._cli.common import add_dns_argument, show_discovery
from ice._errors import Error
from ice.aio.nat import discover_nat
from ice.stun.nat import (
    DEFAULT_TIMEOUT,
    LifetimeProbe,
    NatEvent,
    NatType,
    StepFinished,
)
from ice.stun.nat_lifetime import LifetimeEvent
from ice.stun.uri import SCHEMES, UriError, format_address, parse_host_port

HELP = "find the NAT type and behaviour (RFC 5780) with a STUN server"


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("server", metavar="SERVER", help="stun:HOST[:PORT] (or HOST[:PORT])")
    parser.add_argument(
        "--local",
        metavar="HOST:PORT",
        help="local address to send from (default: any address, any port)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long each test waits for an answer (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--lifetime", action="store_true", help="also measure the binding lifetime (minutes)"
    )
    parser.add_argument(
        "--lifetime-min",
        type=_positive,
        default=1.0,
        metavar="SECONDS",
        help="the first idle time probed (default 1)",
    )
    parser.add_argument(
        "--lifetime-max",
        type=_positive,
        default=300.0,
        metavar="SECONDS",
        help="the longest idle time probed (default 300)",
    )
    parser.add_argument(
        "--lifetime-resolution",
        type=_positive,
        default=5.0,
        metavar="SECONDS",
        help="stop once the lifetime is known to within this (default 5)",
    )
    parser.add_argument("--no-hairpinning", action="store_true", help="skip the hairpinning test")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="report each test as it finishes, and which server was picked and why",
    )
    add_dns_argument(parser)


def server_uri(text: str) -> str:
    """``text`` as a URI: a bare HOST[:PORT] gets the ``stun:`` scheme."""
    scheme, sep, _ = text.partition(":")
    if sep and scheme.lower() in SCHEMES:
        return text
    return f"stun:{text}"


def format_event(event: NatEvent | LifetimeEvent) -> str | None:
    """One progress line for an event, or None for the final ones."""
    if isinstance(event, StepFinished):
        if event.response_from is None:
            text = f"{event.step.value}: no answer"
        else:
            text = f"{event.step.value}: answered from {format_address(event.response_from)}"
            if event.mapped_address is not None:
                text += f", mapped address {format_address(event.mapped_address)}"
        if event.problem is not None:
            text += f" ({event.problem})"
        return text
    if isinstance(event, LifetimeProbe):
        state = "still mapped" if event.alive else "gone"
        return f"binding lifetime: after {event.wait:g} s idle the mapping was {state}"
    return None


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def progress(event: NatEvent | LifetimeEvent) -> None:
        line = format_event(event)
        if line is not None and (args.verbose or isinstance(event, LifetimeProbe)):
            print(line, file=sys.stderr, flush=True)

    try:
        local = parse_host_port(args.local, 0) if args.local else None
        if args.lifetime:
            print(
                f"measuring the binding lifetime too: up to {args.lifetime_max:g} s per probe",
                file=sys.stderr,
                flush=True,
            )
        with show_discovery("nat", args.verbose):
            behavior = asyncio.run(
                discover_nat(
                    server_uri(args.server),
                    local_addr=local,
                    timeout=args.timeout,
                    hairpinning=not args.no_hairpinning,
                    lifetime=args.lifetime,
                    lifetime_min=args.lifetime_min,
                    lifetime_max=max(args.lifetime_max, args.lifetime_min),
                    lifetime_resolution=args.lifetime_resolution,
                    on_event=progress,
                    resolver=args.dns,
                )
            )
    except (UriError, ValueError, OSError, Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(behavior.describe())
    return 1 if behavior.nat_type is NatType.UNKNOWN else 0
