"""DNS SRV server discovery for STUN/TURN URIs, without the lookups.

RFC 8489 section 8 (STUN) and RFC 8656 section 3.1 (TURN), for the URIs of
RFC 7064/7065: when a URI names a host by name and gives no port, the client
looks up the SRV records of ``_<service>._<proto>.<host>``, where the service
is ``stun``, ``stuns``, ``turn`` or ``turns`` and the proto ``udp`` or ``tcp``
(``stuns:``/``turns:`` are TLS over ``tcp``), and tries their targets in the
order of RFC 2782 (lowest priority first; within a priority, a weighted
random pick without replacement). With no SRV record it uses the host's
A/AAAA addresses on the default port. An explicit port or an IP literal
skips SRV.

This module holds the pure part: whether SRV applies (`srv_name`), the
record type, and the RFC 2782 order with the random source injected
(`order_records`). `ice.aio.resolve` does the lookups.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ice.stun.uri import StunUri

__all__ = ["Rng", "SrvRecord", "order_records", "srv_name"]


class Rng(Protocol):
    """What the weighted pick needs of a random source (`random.Random` has it)."""

    def randint(self, a: int, b: int) -> int: ...


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV resource record (RFC 2782); ``target`` without the trailing dot."""

    priority: int
    weight: int
    port: int
    target: str


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def _is_local_name(host: str) -> bool:
    # RFC 6761 6.3: "localhost" is never sent to DNS; RFC 6762: ".local" is mDNS.
    name = host.rstrip(".")
    return name == "localhost" or name.endswith((".localhost", ".local"))


def srv_name(uri: StunUri, kind: str | None = None) -> str | None:
    """The SRV owner name to look up for ``uri``, or None when SRV does not apply
    (an explicit port, an IP literal, "localhost" or a ``.local`` name).

    ``kind`` ("udp", "tcp" or "tls") is the transport in use when it is not
    the URI's own: ``stun:host`` used over TLS looks up ``_stuns._tcp.host``.
    """
    if uri.explicit_port or _is_ip(uri.host) or _is_local_name(uri.host):
        return None
    if kind is None:
        kind = "tls" if uri.secure else uri.transport
    service = "turn" if uri.is_turn else "stun"
    if kind == "tls":
        service += "s"
    proto = "udp" if kind == "udp" else "tcp"
    return f"_{service}._{proto}.{uri.host.rstrip('.')}"


def order_records(records: Iterable[SrvRecord], rng: Rng | None = None) -> list[SrvRecord]:
    """The records in the order to try them (RFC 2782, "Usage rules").

    Lowest priority first. Within a priority, records of weight 0 go first
    (as RFC 2782 says, so that they have a small chance of being picked),
    then each pick draws a number in [0, total weight] and takes the first
    record whose running sum reaches it, and that record leaves the draw.
    A single record whose target is "." means the service is decidedly not
    offered: the result is then empty. ``rng`` defaults to `random.SystemRandom`.
    """
    records = list(records)
    if len(records) == 1 and records[0].target in ("", "."):
        return []
    records = [r for r in records if r.target not in ("", ".")]
    rng = rng if rng is not None else random.SystemRandom()
    ordered: list[SrvRecord] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        ordered += _weighted(sorted(group, key=lambda r: r.weight != 0), rng)
    return ordered


def _weighted(group: Sequence[SrvRecord], rng: Rng) -> list[SrvRecord]:
    remaining = list(group)
    picked: list[SrvRecord] = []
    while remaining:
        total = sum(r.weight for r in remaining)
        draw = rng.randint(0, total)
        running = 0
        for index, record in enumerate(remaining):
            running += record.weight
            if running >= draw:
                picked.append(remaining.pop(index))
                break
    return picked
