"""Find the NAT between this host and a STUN server (RFC 5780), from Python.

Run from the root of a clone after ``pip install .``::

    python examples/nat_probe.py stun:stun.example.org:3478
    python examples/nat_probe.py stun:127.0.0.1:3478 --timeout 1 --verbose

The server must support RFC 5780: answer from two IP addresses and two ports
and return OTHER-ADDRESS. For a local try, start ice's own server in that mode
in another terminal::

    ice server --stun-only --listen udp://127.0.0.1:3478 --alternate 127.0.0.2:3479

(on Linux the whole of 127.0.0.0/8 is loopback; elsewhere give the second
address to the loopback interface first).

`ice.discover_nat` runs RFC 5780's mapping, filtering and hairpinning tests
(sections 4.3-4.5) on one UDP socket and returns an `ice.NatBehavior`; the
script prints its classic type (open internet, full cone, restricted cone,
port-restricted cone, symmetric, symmetric UDP firewall, UDP blocked) on the
first line, then the details. Exit status 0 when the type was found, 1 when
it could not be (a server without RFC 5780, for one).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import ice
from ice.stun.nat import StepFinished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", help="stun:HOST[:PORT] of an RFC 5780 server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds each test waits")
    parser.add_argument("--verbose", action="store_true", help="print each test as it ends")
    args = parser.parse_args(argv)

    def progress(event: object) -> None:
        # Each of the RFC's tests ends with a StepFinished; the other events
        # (the result itself) are in the returned behaviour.
        if args.verbose and isinstance(event, StepFinished):
            where = event.response_from or "no answer"
            print(f"  {event.step.value}: {where}", file=sys.stderr)

    try:
        behavior = asyncio.run(
            ice.discover_nat(args.server, timeout=args.timeout, on_event=progress)
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"classic type: {behavior.nat_type}")
    print(f"mapped address: {behavior.mapped_address}")
    print(f"mapping: {behavior.mapping}, filtering: {behavior.filtering}")
    if behavior.hairpinning is not None:
        print(f"hairpinning: {'yes' if behavior.hairpinning else 'no'}")
    for problem in behavior.problems:
        print(f"note: {problem}")
    return 1 if behavior.nat_type is ice.NatType.UNKNOWN else 0


if __name__ == "__main__":
    sys.exit(main())
