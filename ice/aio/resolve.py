"""Server discovery: DNS SRV, then A/AAAA, for the asyncio clients.

`server_targets` turns an `Endpoint` into the servers to try, in order:

- a URI whose host is a name and which gives no port: the SRV records of
  ``_stun._udp``, ``_stun._tcp``, ``_stuns._tcp``, ``_turn._udp``,
  ``_turn._tcp`` or ``_turns._tcp`` (by the scheme and the transport in use)
  in RFC 2782 order (`ice.stun.srv.order_records`); with no SRV record (or
  a DNS failure), the host itself on the default port;
- an explicit port, an IP literal or a ``(host, port)`` tuple: that host
  and port, without SRV.

`target_addresses` then gives a target's IP addresses (A and AAAA). The
lookups use dnspython's asyncio resolver (`dns.asyncresolver`), an optional
dependency (``pip install 'ice-stun-turn[dns]'``): it is needed only when SRV
applies or a ``resolver`` is given. Without a ``resolver`` the SRV query goes
to the system's DNS servers and host names resolve with ``getaddrinfo`` as
before (so /etc/hosts still counts); with one (a `dns.asyncresolver.Resolver`
or a "HOST:PORT" string naming a DNS server), every lookup goes to it.

TLS checks the certificate against the URI's host, not the SRV target: the
target comes from an unauthenticated DNS answer, the URI's host from the
user (RFC 6125 section 6.2.1, the "source domain"). After a 300 redirect the
ALTERNATE-SERVER is an address (no lookup) and the ALTERNATE-DOMAIN, when
given, is the name the new certificate is checked against (RFC 8489 14.16).

Which failures move on to the next address, then the next target (RFC 8489
section 8, RFC 8656 section 3.1, RFC 2782): those that say the server could
not be reached — no answer within the transaction's time, connection
refused (over UDP, an ICMP port unreachable), a TLS handshake or certificate
failure, a name without addresses. An error response does not: it comes
from a working server that decided (401 after the challenge, 403, 437 once
the client has tried other local ports, 486, 508), and the other targets of
the same service share its users and, most likely, its state; moving on
would hide the cause and multiply the load on a server that is full. A 300
is followed where it points (`ice.aio.turn_client`). Over TCP/TLS the
addresses of one target are raced as RFC 8305 says (happy eyeballs:
`ice.aio.transport.connect_any`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from ice._errors import Error
from ice.aio.transport import Endpoint, TransportKind, address_family, resolve
from ice.machine import Address
from ice.stun.srv import Rng, SrvRecord, order_records
from ice.stun.uri import format_address, parse_host_port

if TYPE_CHECKING:
    import dns.asyncresolver

    #: A DNS resolver as the API takes it: dnspython's, "HOST:PORT" of a DNS server, or
    #: None for the system's.
    DnsResolver: TypeAlias = dns.asyncresolver.Resolver | str | None

__all__ = [
    "ServerTarget",
    "each_server",
    "interleave",
    "make_resolver",
    "server_targets",
    "target_addresses",
]

logger = logging.getLogger("ice.aio.resolve")

#: How long one DNS question may take in all, retries included (seconds).
DNS_LIFETIME = 5.0

_INSTALL = "pip install 'ice-stun-turn[dns]'"


@dataclass(frozen=True, slots=True)
class ServerTarget:
    """One server to try: where, and why it was chosen (for logs and ``--verbose``)."""

    host: str
    port: int
    reason: str

    def __str__(self) -> str:
        return format_address((self.host, self.port))


def _dns() -> Any:
    try:
        import dns.asyncresolver
        import dns.exception
        import dns.resolver
    except ImportError:
        raise Error(f"DNS SRV lookups need dnspython: {_INSTALL}") from None
    return dns


def make_resolver(resolver: DnsResolver = None) -> dns.asyncresolver.Resolver:
    """A `dns.asyncresolver.Resolver`: ``resolver`` itself, one asking the DNS
    server "HOST:PORT" (port 53 when left out), or the system's (None)."""
    _dns()
    import dns.asyncresolver
    import dns.resolver

    if isinstance(resolver, dns.asyncresolver.Resolver):
        return resolver
    if resolver is None:
        try:
            made = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise Error(f"no DNS server configured ({exc}); give one, as HOST:PORT") from None
    elif isinstance(resolver, str):
        try:
            host, port = parse_host_port(resolver, 53)
        except ValueError as exc:
            raise ValueError(f"DNS server: {exc}") from None
        if address_family(host) is None:
            raise ValueError(f"DNS server: {host!r} is not an IP address")
        made = dns.asyncresolver.Resolver(configure=False)
        made.nameservers = [host]
        made.port = port
    else:
        raise TypeError(
            f"resolver must be a dns.asyncresolver.Resolver or HOST:PORT, not {resolver!r}"
        )
    made.lifetime = DNS_LIFETIME
    return made


async def lookup_srv(name: str, resolver: DnsResolver = None) -> list[SrvRecord]:
    """The SRV records of ``name``; [] when there are none (NXDOMAIN, no SRV data)."""
    answer = await make_resolver(resolver).resolve(name, "SRV", raise_on_no_answer=False)
    if answer.rrset is None:
        return []
    return [
        SrvRecord(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True).lower())
        for r in answer.rrset
    ]


async def server_targets(
    endpoint: Endpoint, resolver: DnsResolver = None, *, rng: Rng | None = None
) -> list[ServerTarget]:
    """The servers to try for ``endpoint``, in order; see the module docstring.

    Raises `ice.Error` when SRV applies and dnspython is missing, or when the
    SRV records say the service is not offered (a single target ".").
    """
    if endpoint.srv_name is None:
        return [ServerTarget(endpoint.host, endpoint.port, "explicit address, no SRV lookup")]
    dns = _dns()
    name = endpoint.srv_name
    try:
        records = await lookup_srv(name, resolver)
    except dns.resolver.NXDOMAIN:
        records = []
    except dns.exception.DNSException as exc:
        # A DNS failure is not an answer: do what a missing record would make us do.
        logger.info("SRV lookup of %s failed (%s); using the host", name, exc)
        why = f"SRV lookup of {name} failed ({exc.__class__.__name__})"
        return [ServerTarget(endpoint.host, endpoint.port, f"{why}: default port")]
    if not records:
        why = f"no SRV record for {name}: A/AAAA of the host on default port {endpoint.port}"
        return [ServerTarget(endpoint.host, endpoint.port, why)]
    ordered = order_records(records, rng)
    if not ordered:
        raise Error(f"{name}: the SRV record says the service is not offered (target '.')")
    return [
        ServerTarget(
            r.target,
            r.port,
            f"SRV {name} #{index}: priority {r.priority}, weight {r.weight}",
        )
        for index, r in enumerate(ordered, 1)
    ]


def interleave(addresses: Sequence[Address]) -> list[Address]:
    """IPv6 and IPv4 addresses alternated, IPv6 first (RFC 8305 section 4)."""
    v6 = [a for a in addresses if address_family(a[0]) == socket.AF_INET6]
    v4 = [a for a in addresses if address_family(a[0]) != socket.AF_INET6]
    mixed: list[Address] = []
    for index in range(max(len(v6), len(v4))):
        mixed += v6[index : index + 1] + v4[index : index + 1]
    return mixed


async def target_addresses(
    target: ServerTarget,
    kind: TransportKind,
    resolver: DnsResolver = None,
    *,
    local_host: str | None = None,
) -> list[Address]:
    """The IP addresses of ``target`` to try, in order (OSError when it has none).

    With no ``resolver``: ``getaddrinfo``, as `ice.aio.transport.resolve`.
    With one: its A and AAAA records, asked together, interleaved IPv6 first.
    An IP literal is itself either way.
    """
    if resolver is None or address_family(target.host) is not None:
        return await resolve(target.host, target.port, kind, local_host=local_host)
    dns = _dns()
    made = make_resolver(resolver)
    family = address_family(local_host) if local_host else None
    kinds = [
        k for k, f in (("AAAA", socket.AF_INET6), ("A", socket.AF_INET)) if family in (None, f)
    ]
    answers = await asyncio.gather(
        *(made.resolve(target.host, k, raise_on_no_answer=False) for k in kinds),
        return_exceptions=True,
    )
    found: list[Address] = []
    for answer in answers:
        if isinstance(answer, dns.exception.DNSException):
            continue
        if isinstance(answer, BaseException):
            raise answer
        found += [(r.address, target.port) for r in (answer.rrset or ())]
    if not found:
        raise OSError(f"{target.host} has no {'/'.join(kinds)} record")
    return interleave(found)


async def each_server(
    endpoint: Endpoint,
    resolver: DnsResolver,
    errors: list[Exception],
    *,
    local_host: str | None = None,
    rng: Rng | None = None,
) -> AsyncIterator[tuple[ServerTarget, list[list[Address]]]]:
    """The targets of ``endpoint`` in order, each with the groups of addresses to
    try in turn: one address a group over UDP, all of them in one group over
    TCP/TLS (raced with `ice.aio.transport.connect_any`). A target that does not
    resolve is logged, its OSError added to ``errors``, and skipped."""
    targets = await server_targets(endpoint, resolver, rng=rng)
    for target in targets:
        try:
            addresses = await target_addresses(
                target, endpoint.kind, resolver, local_host=local_host
            )
        except OSError as exc:
            logger.info("skipping %s (%s): %s", target, target.reason, exc)
            errors.append(exc)
            continue
        logger.info(
            "trying %s %s (%s): %s",
            endpoint.kind,
            target,
            target.reason,
            ", ".join(format_address(a) for a in addresses),
        )
        yield target, ([[a] for a in addresses] if endpoint.kind == "udp" else [addresses])
