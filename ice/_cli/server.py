"""Run a STUN server (RFC 8489) over UDP, TCP and TLS, IPv4 and IPv6.

Without --listen it serves UDP and TCP on 127.0.0.1:3478. Each --listen adds
an address, written HOST:PORT ([::1]:3478 for IPv6; 0.0.0.0 and [::] for
every interface), with an optional transport prefix: udp://, tcp:// or
tls:// (tls needs --tls-cert and --tls-key). Without a prefix the address is
served over both UDP and TCP; without a port, 3478 (5349 for tls).

--alternate HOST:PORT turns on RFC 5780 NAT behaviour discovery: the first
UDP address is the primary one, and the server also answers on the alternate
address and port and on their two other combinations, from which it sends
the answers a CHANGE-REQUEST asks for.

Prints the addresses it listens on, then serves until Ctrl-C or SIGTERM
(exit code 0).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ice.aio_server import Listener, Transport, serve_stun
from ice.stun_server import DEFAULT_SOFTWARE, StunServer
from ice.transaction import Address
from ice.uri import format_address, parse_host_port

HELP = "run a STUN server (UDP, TCP, TLS; RFC 5780 with --alternate)"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3478
DEFAULT_TLS_PORT = 5349
_SCHEMES: dict[str, tuple[Transport, ...]] = {
    "udp": ("udp",),
    "tcp": ("tcp",),
    "tls": ("tls",),
}


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One --listen value: the transports it names and the address."""

    transports: tuple[Transport, ...]
    host: str
    port: int


def parse_listen(text: str) -> ListenSpec:
    """One --listen value: ``[udp://|tcp://|tls://]HOST[:PORT]``."""
    transports: tuple[Transport, ...] = ("udp", "tcp")
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() not in _SCHEMES:
            raise ValueError(f"{text!r}: unknown transport {scheme!r} (udp, tcp or tls)")
        transports = _SCHEMES[scheme.lower()]
        text = rest
    default_port = DEFAULT_TLS_PORT if transports == ("tls",) else DEFAULT_PORT
    host, port = parse_host_port(text, default_port)
    return ListenSpec(transports, host, port)


def _listen_argument(text: str) -> ListenSpec:
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _address_argument(text: str) -> Address:
    try:
        return parse_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_listener_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every server command shares: where to listen, TLS, logging."""
    parser.add_argument(
        "--listen",
        action="append",
        type=_listen_argument,
        metavar="[udp://|tcp://|tls://]HOST:PORT",
        help=f"address to serve (repeatable; default udp+tcp {DEFAULT_HOST}:{DEFAULT_PORT})",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain for tls://")
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key for tls://")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more (-v: listeners, refused connections; -vv: closed connections, drops)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listener_arguments(parser)
    parser.add_argument(
        "--alternate",
        type=_address_argument,
        metavar="HOST:PORT",
        help="RFC 5780: the second address and port (the primary is the first UDP address)",
    )
    parser.add_argument(
        "--software",
        default=DEFAULT_SOFTWARE,
        help="SOFTWARE attribute of the responses ('' to leave it out)",
    )


class UsageError(Exception):
    """Flags that parse but do not fit together; reported like argparse errors (exit 2)."""


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext:
    """A server TLS context from PEM files (TLS 1.2 or later)."""
    if not cert or not key:
        raise UsageError("a tls:// listener needs --tls-cert FILE and --tls-key FILE")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load --tls-cert/--tls-key: {exc}") from None
    return context


def listeners_from_args(args: argparse.Namespace) -> list[Listener]:
    """The Listeners the flags ask for (raises UsageError)."""
    specs: list[ListenSpec] = args.listen or [
        ListenSpec(("udp", "tcp"), DEFAULT_HOST, DEFAULT_PORT)
    ]
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    context = None
    if any("tls" in spec.transports for spec in specs):
        context = tls_context(args.tls_cert, args.tls_key)
    listeners = []
    for spec in specs:
        for transport in spec.transports:
            listeners.append(
                Listener(transport, spec.host, spec.port, context if transport == "tls" else None)
            )
    return listeners


def rfc5780_addresses(
    listeners: Sequence[Listener], alternate: Address | None
) -> tuple[Address | None, Address | None]:
    """(primary, alternate) for the core: the first UDP listener and --alternate."""
    if alternate is None:
        return None, None
    primary = next(((li.host, li.port) for li in listeners if li.transport == "udp"), None)
    if primary is None:
        raise UsageError("--alternate needs a UDP listen address (the primary)")
    for name, (host, port) in (("primary", primary), ("alternate", alternate)):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"RFC 5780 needs an IP address, not {host!r} ({name})") from None
        if ip.is_unspecified:
            raise UsageError(f"RFC 5780 needs a specific {name} address, not {host}")
        if port == 0:
            raise UsageError(f"RFC 5780 needs a fixed {name} port, not 0")
    if ipaddress.ip_address(primary[0]).version != ipaddress.ip_address(alternate[0]).version:
        raise UsageError("the primary and --alternate addresses must be of the same family")
    if primary[0] == alternate[0] or primary[1] == alternate[1]:
        raise UsageError("--alternate needs an address and a port both different from the primary")
    return primary, alternate


def configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


async def _serve(server: StunServer, listeners: list[Listener]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError):  # Windows; not the main thread
            pass
    try:
        try:
            runner = await serve_stun(server, listeners)
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        try:
            for kind, addr in runner.addresses:
                print(f"listening on {kind}://{format_address(addr)}", flush=True)
            await stop.wait()
        finally:
            await runner.close()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
    print("stopped", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    try:
        listeners = listeners_from_args(args)
        primary, alternate = rfc5780_addresses(listeners, args.alternate)
    except UsageError as exc:
        print(f"python -m ice server: error: {exc}", file=sys.stderr)
        return 2
    server = StunServer(primary=primary, alternate=alternate, software=args.software or None)
    try:
        return asyncio.run(_serve(server, listeners))
    except KeyboardInterrupt:  # where signal handlers cannot be installed
        return 0
