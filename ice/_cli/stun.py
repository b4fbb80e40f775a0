"""Ask a STUN server for this host's mapped address (a Binding request).

The server is a URI: stun:HOST[:PORT] (UDP, port 3478), stun:HOST?transport=tcp
(TCP), stuns:HOST[:PORT] (TLS, port 5349), or a turn:/turns: URI (RFC 7064,
RFC 7065). An IPv6 address goes in brackets: stun:[2001:db8::1]:3478.
(RFC 7064 gives stun: no query; ?transport= is accepted here as a shorthand.)

Prints the mapped address (XOR-MAPPED-ADDRESS), the round-trip time and the
server's SOFTWARE, with the local and server addresses used and, from an
RFC 5780 server, OTHER-ADDRESS. TLS verifies the server certificate against
the system's CAs, or --ca FILE; --insecure skips verification.
Exits 1 with a one-line message when the server cannot be reached, answers
with an error or does not answer within --timeout. A host name without a
port is looked up with DNS SRV first (_stun._udp, _stun._tcp, _stuns._tcp),
asking --dns HOST:PORT or the system's DNS; --verbose says which server was
picked and why.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from typing import TextIO

from ice._cli.common import add_dns_argument, describe, show_discovery
from ice._codec import Message
from ice._errors import Error
from ice._version import __version__
from ice.aio.stun_client import mapped_address, stun_transaction
from ice.aio.transport import TransportKind
from ice.attrs import OtherAddress, Software
from ice.constants import BINDING_REQUEST
from ice.stun.uri import StunUri, UriError, format_address, parse_host_port, parse_uri

DEFAULT_SOFTWARE = f"ice-stun-turn/{__version__} (python -m ice stun)"

HELP = "ask a STUN server for this host's mapped address"

#: Seconds to wait for the answer unless --timeout says otherwise.
DEFAULT_TIMEOUT = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", help="stun:HOST[:PORT][?transport=tcp], stuns:HOST[:PORT], turn:...")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up after this long (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--local",
        metavar="HOST:PORT",
        help="local address to send from ([v6addr]:port, or just HOST for any port)",
    )
    parser.add_argument("--ca", metavar="FILE", help="PEM file of CAs that sign the server (TLS)")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the server certificate (TLS)"
    )
    parser.add_argument(
        "--software",
        metavar="TEXT",
        default=DEFAULT_SOFTWARE,
        help="the SOFTWARE attribute to send (default: %(default)r; '' for none). A server that "
        "keeps its answers no bigger than the request, as ours does, only names its own "
        "SOFTWARE when the request leaves room for it",
    )
    add_dns_argument(parser)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="say which server was picked and why"
    )


def split_transport(text: str) -> tuple[StunUri, TransportKind | None]:
    """Parse the URI, accepting ``?transport=udp|tcp`` on stun:/stuns: too.

    Returns the URI and the transport to use instead of the URI's (None: the
    URI's own).
    """
    scheme, _, rest = text.partition(":")
    base, has_query, query = rest.partition("?")
    if not has_query or scheme.lower() not in ("stun", "stuns"):
        return parse_uri(text), None
    uri = parse_uri(f"{scheme}:{base}")
    key, _, value = query.partition("=")
    if key.lower() != "transport" or value.lower() not in ("udp", "tcp"):
        raise UriError(f"invalid STUN URI {text!r}: the only query is ?transport=udp or tcp")
    if value.lower() == "udp":
        if uri.secure:
            raise UriError(f"invalid STUN URI {text!r}: stuns: over UDP is DTLS, not supported")
        return uri, "udp"
    return uri, "tls" if uri.secure else "tcp"


def _ssl_context(args: argparse.Namespace, transport: TransportKind) -> ssl.SSLContext | None:
    if transport != "tls":
        if args.ca or args.insecure:
            raise ValueError("--ca and --insecure apply to TLS (stuns:, turns:) only")
        return None
    context = ssl.create_default_context(cafile=args.ca)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def query(args: argparse.Namespace, out: TextIO) -> None:
    uri, transport = split_transport(args.uri)
    kind: TransportKind = transport or ("tls" if uri.secure else uri.transport)
    local = parse_host_port(args.local, 0) if args.local else None
    context = _ssl_context(args, kind)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await stun_transaction(
        uri,
        Message.build(BINDING_REQUEST),
        transport=kind,
        ssl=context,
        local_addr=local,
        software=args.software or None,
        timeout=args.timeout,
        resolver=args.dns,
    )
    elapsed = loop.time() - started
    event = result.event
    response = event.response
    software = Software.get_from(response)
    other = OtherAddress.get_from(response)
    rtt = f"{event.rtt * 1000:.1f} ms" if event.rtt is not None else f"{elapsed * 1000:.1f} ms"
    if event.rtt is None:
        rtt += " (retransmitted)"
    lines = [
        f"server:         {kind} {format_address(result.server)} ({uri})",
        f"local address:  {format_address(result.local_address)}",
        f"mapped address: {format_address(mapped_address(response))}",
        f"rtt:            {rtt}",
        f"software:       {software.value if software is not None else '(none sent)'}",
    ]
    if other is not None:
        lines.append(f"other address:  {format_address(other.address)} (RFC 5780)")
    print("\n".join(lines), file=out)


def run(args: argparse.Namespace) -> int:
    with show_discovery("stun", args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(query(args, sys.stdout))
    except (UriError, ValueError) as exc:
        if isinstance(exc, ssl.SSLError):  # SSLCertVerificationError is a ValueError too
            print(f"python -m ice stun: {args.uri}: {describe(exc, args.timeout)}", file=sys.stderr)
        else:
            print(f"python -m ice stun: {exc}", file=sys.stderr)
        return 1
    except (Error, OSError, TimeoutError) as exc:
        print(f"python -m ice stun: {args.uri}: {describe(exc, args.timeout)}", file=sys.stderr)
        return 1
    return 0
