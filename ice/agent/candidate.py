"""ICE candidates (RFC 8445): the value type, its SDP form and the arithmetic.

Pure: no sockets, no clock, no randomness. What is here:

* :class:`Candidate`, a frozen value with :meth:`Candidate.from_sdp` and
  :meth:`Candidate.to_sdp` for the ``a=candidate`` attribute (RFC 8839
  section 5.1, RFC 6544 ``tcptype``), compatible with aioice's text form,
  and :func:`as_candidate` for what an application hands over (ours, SDP text
  or aioice's);
* :func:`candidate_priority` (RFC 8445 section 5.1.2.1) and
  :func:`pair_priority` (section 6.1.2.3);
* :func:`local_preferences`: distinct local preferences per interface address
  with IPv6 and IPv4 intermingled (RFC 8421);
* :func:`foundation` (section 5.1.1.3);
* :func:`is_redundant` and :func:`prune` (section 5.1.3).

The SDP grammar (RFC 8839 section 5.1, RFC 6544 section 4.5)::

    candidate-attribute = "candidate" ":" foundation SP component-id SP
                          transport SP priority SP connection-address SP port
                          SP "typ" SP cand-type
                          [SP "raddr" SP connection-address] [SP "rport" SP port]
                          *(SP extension-att-name SP extension-att-value)
    foundation          = 1*32ice-char
    ice-char            = ALPHA / DIGIT / "+" / "/"
    tcp-type-ext        = "tcptype" SP ("active" / "passive" / "so")

What the parser accepts beyond the letter of the grammar, so that every real
peer's lines parse: the ``a=`` and ``candidate:`` prefixes are both optional
(aioice's ``Candidate.from_sdp`` takes the line without them), tokens may be
separated by any run of whitespace, the transport and the candidate type are
case-insensitive, ``raddr``/``rport`` may be missing on reflexive and relayed
candidates, a TCP candidate may lack ``tcptype``, the connection address may be
a host name (``<uuid>.local`` mDNS candidates), and priorities go up to
2**32 - 1 (what STUN's PRIORITY attribute carries) rather than 2**31 - 1.
Extensions (``generation`` aside, which is a field) are kept in order as
``(name, value)`` pairs, so ``ufrag``, ``network-id``, ``network-cost`` and
anything unknown survive a round trip.

Canonical text, which :meth:`Candidate.to_sdp` writes and which
``from_sdp``/``to_sdp`` reproduce exactly: ``candidate:`` prefix, single
spaces, lower-case transport and type, then ``raddr``, ``rport``, ``tcptype``,
``generation`` and the extensions in their order -- the order Chrome, Firefox,
pion and aioice write.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, cast

from ice._errors import Error
from ice.stun.uri import Transport

__all__ = [
    "TYPE_PREFERENCE",
    "Candidate",
    "CandidateType",
    "SdpError",
    "TcpType",
    "Transport",
    "UnsupportedCandidateError",
    "as_candidate",
    "candidate_base",
    "candidate_priority",
    "foundation",
    "is_redundant",
    "local_preferences",
    "pair_priority",
    "prune",
]


class SdpError(Error, ValueError):
    """A malformed or out-of-range ICE SDP attribute or candidate."""


class UnsupportedCandidateError(SdpError):
    """A well-formed ``a=candidate`` this package cannot use: a transport other
    than UDP/TCP (say ``ssltcp`` or ``dccp``) or an unknown candidate type.

    RFC 8839 says such lines are ignored; :func:`ice.agent.sdp.parse_ice_attributes`
    skips them, while :meth:`Candidate.from_sdp` raises this."""


class CandidateType(enum.StrEnum):
    """The four candidate types of RFC 8445 section 5.1.1, as SDP spells them.

    The long names are aliases: ``CandidateType.SERVER_REFLEXIVE is
    CandidateType.SRFLX``; iterating gives the four types once each.
    """

    HOST = "host"
    SRFLX = "srflx"
    PRFLX = "prflx"
    RELAY = "relay"
    SERVER_REFLEXIVE = "srflx"
    PEER_REFLEXIVE = "prflx"
    RELAYED = "relay"


#: RFC 8445 section 5.1.2.2: the recommended type preferences.
TYPE_PREFERENCE: Final[Mapping[CandidateType, int]] = MappingProxyType(
    {
        CandidateType.HOST: 126,
        CandidateType.PRFLX: 110,
        CandidateType.SRFLX: 100,
        CandidateType.RELAY: 0,
    }
)

#: RFC 6544 section 4.5: the role of a TCP candidate (``so``: simultaneous-open).
TcpType = Literal["active", "passive", "so"]

_TRANSPORTS: Final = frozenset(("udp", "tcp"))
_TYPES: Final = frozenset(kind.value for kind in CandidateType)
_TCP_TYPES: Final = frozenset(("active", "passive", "so"))
#: Extension names that are fields of :class:`Candidate` instead.
_RESERVED: Final = frozenset(("raddr", "rport", "tcptype", "generation"))

_ICE_CHARS: Final = re.compile(r"[A-Za-z0-9+/]{1,32}")
_NUMBER: Final = re.compile(r"[0-9]{1,10}")
_DOTTED: Final = re.compile(r"[0-9.]+")
_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_MAX_PRIORITY: Final = 2**32 - 1


def _is_token(text: str) -> bool:
    """True when ``text`` is one whitespace-free token (as ``str.split`` sees it)."""
    return bool(text) and text.split() == [text] and "\x00" not in text


def _host_problem(host: str) -> str | None:
    """Why ``host`` is not an IPv4 address, IPv6 address or host name (None: it is)."""
    if not host:
        return "empty address"
    if ":" in host:
        if host.startswith("["):
            return f"IPv6 address {host!r} must not be in brackets"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"invalid IPv6 address {host!r}"
        return None
    if _DOTTED.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"invalid IPv4 address {host!r}"
        return None
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return f"invalid address or host name {host!r}"
    return None


class _Transport(str):
    """A transport name kept as it was given (``"UDP"`` stays ``"UDP"``, as aioice
    keeps it and aiortc compares it) that equals and hashes as its lower-case
    form, so ``candidate.transport == "udp"`` and every comparison in the agent
    hold whatever the spelling."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return NotImplemented
        return self.lower() == other.lower()

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, str):
            return NotImplemented
        return self.lower() != other.lower()

    def __hash__(self) -> int:
        return hash(self.lower())


def _canonical_host(host: str) -> str:
    """The comparable form of an address: compressed IP text, or a lower-case name."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ICE candidate, as carried in an ``a=candidate`` line.

    ``transport`` is ``"udp"`` or ``"tcp"`` in any case, kept as given (aioice
    does so, and aiortc compares what it gave with what it gets back) while it
    compares and hashes case-insensitively (``Candidate(transport="UDP", ...)
    .transport == "udp"``); :meth:`from_sdp` and :meth:`to_sdp` lower-case it. ``type`` is a
    :class:`CandidateType` (plain strings are accepted and normalised). ``related_address`` and
    ``related_port`` are None when absent, as are ``tcptype`` and
    ``generation``; ``extensions`` holds the other name/value pairs in order.
    Construction checks every field against what SDP can carry and raises
    :class:`SdpError` otherwise, so any Candidate formats to a line that parses
    back to an equal Candidate.
    """

    foundation: str
    component: int
    transport: Transport
    priority: int
    host: str
    port: int
    type: CandidateType
    related_address: str | None = None
    related_port: int | None = None
    tcptype: TcpType | None = None
    generation: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if str(self.transport).lower() not in _TRANSPORTS:
            raise UnsupportedCandidateError(f"unsupported transport {self.transport!r}")
        transport = _Transport(self.transport)
        object.__setattr__(self, "transport", transport)
        try:
            kind = CandidateType(str(self.type).lower())
        except ValueError:
            raise UnsupportedCandidateError(f"unknown candidate type {self.type!r}") from None
        object.__setattr__(self, "type", kind)
        if not isinstance(self.foundation, str) or not _ICE_CHARS.fullmatch(self.foundation):
            raise SdpError(f"foundation {self.foundation!r} is not 1 to 32 of [A-Za-z0-9+/]")
        _check_int("component", self.component, 1, 256)
        _check_int("priority", self.priority, 0, _MAX_PRIORITY)
        _check_int("port", self.port, 0, 65535)
        problem = _host_problem(self.host) if isinstance(self.host, str) else "not a string"
        if problem:
            raise SdpError(f"connection address: {problem}")
        if self.related_address is not None:
            problem = (
                _host_problem(self.related_address)
                if isinstance(self.related_address, str)
                else "not a string"
            )
            if problem:
                raise SdpError(f"raddr: {problem}")
        if self.related_port is not None:
            _check_int("rport", self.related_port, 0, 65535)
        if self.tcptype is not None:
            if self.tcptype not in _TCP_TYPES:
                raise SdpError(f"tcptype {self.tcptype!r} is not active, passive or so")
            if transport != "tcp":
                raise SdpError("tcptype on a UDP candidate")
        if self.generation is not None:
            _check_int("generation", self.generation, 0, _MAX_PRIORITY)
        extensions = tuple(self.extensions)
        for pair in extensions:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise SdpError(f"extension {pair!r} is not a (name, value) pair")
            name, value = pair
            if not (isinstance(name, str) and _is_token(name)):
                raise SdpError(f"extension name {name!r} is not a single non-blank token")
            if name in _RESERVED:
                raise SdpError(f"{name!r} is a Candidate field, not an extension")
            if not (isinstance(value, str) and _is_token(value)):
                raise SdpError(f"extension {name} value {value!r} is not a non-blank token")
        object.__setattr__(self, "extensions", extensions)

    @property
    def address(self) -> tuple[str, int]:
        """The transport address ``(host, port)``."""
        return (self.host, self.port)

    @property
    def ip_version(self) -> int | None:
        """4 or 6, or None when the address is a host name (an mDNS ``.local`` name)."""
        try:
            return ipaddress.ip_address(self.host).version
        except ValueError:
            return None

    def extension(self, name: str) -> str | None:
        """The value of the first extension called ``name`` (``"ufrag"``,
        ``"network-id"``, ...), or None."""
        for key, value in self.extensions:
            if key == name:
                return value
        return None

    @classmethod
    def from_sdp(cls, text: str) -> Candidate:
        """Parse ``a=candidate:...``, ``candidate:...`` or aioice's bare form.

        Raises :class:`SdpError` (a ``ValueError``) naming the problem on a
        malformed line, and its subclass :class:`UnsupportedCandidateError`
        for a well-formed line with a transport or type this package lacks.
        """
        if not isinstance(text, str):
            raise SdpError(f"candidate must be text, not {type(text).__name__}")
        try:
            return _parse(text)
        except SdpError as exc:
            raise type(exc)(f"invalid candidate {text.strip()!r}: {exc}") from None

    def to_sdp(self, *, prefix: bool = False) -> str:
        """The candidate-attribute value as aioice writes it (``foundation component
        ...``, so that ``"a=candidate:" + c.to_sdp()`` is a valid SDP line, as in
        aiortc); ``prefix=True`` (or ``str(c)``) gives ``candidate:...``, the
        form of RTCIceCandidate.candidate and of trickle signalling."""
        parts = [
            f"{self.foundation} {self.component} {self.transport.lower()} {self.priority}"
            f" {self.host} {self.port} typ {self.type.value}"
        ]
        if self.related_address is not None:
            parts.append(f"raddr {self.related_address}")
        if self.related_port is not None:
            parts.append(f"rport {self.related_port}")
        if self.tcptype is not None:
            parts.append(f"tcptype {self.tcptype}")
        if self.generation is not None:
            parts.append(f"generation {self.generation}")
        parts.extend(f"{name} {value}" for name, value in self.extensions)
        line = " ".join(parts)
        return f"candidate:{line}" if prefix else line

    def __str__(self) -> str:
        return self.to_sdp(prefix=True)


def as_candidate(given: object) -> Candidate:
    """A `Candidate` from one, from SDP text, or from anything with ``to_sdp()``
    (aioice's Candidate); an IP address in its canonical form, which is what
    sockets report (a host name, such as an mDNS one, stays as it is)."""
    if isinstance(given, Candidate):
        candidate = given
    elif isinstance(given, str):
        candidate = Candidate.from_sdp(given)
    else:
        to_sdp = getattr(given, "to_sdp", None)
        if to_sdp is None:
            raise TypeError(f"not a candidate: {given!r}")
        candidate = Candidate.from_sdp(to_sdp())
    if candidate.ip_version is None:
        return candidate
    host = str(ipaddress.ip_address(candidate.host))
    return candidate if host == candidate.host else dataclasses.replace(candidate, host=host)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SdpError(f"{name} {value!r} is not an integer in {low}..{high}")


def _number(name: str, token: str, low: int, high: int) -> int:
    if not _NUMBER.fullmatch(token):
        raise SdpError(f"{name} {token!r} is not a number")
    value = int(token)
    if not low <= value <= high:
        raise SdpError(f"{name} {value} is out of range {low}..{high}")
    return value


def _parse(text: str) -> Candidate:
    line = text.strip()
    if line[:2].lower() == "a=":
        line = line[2:]
    if line[:10].lower() == "candidate:":
        line = line[10:]
    tokens = line.split()
    if len(tokens) < 8:
        raise SdpError(f"{len(tokens)} fields, need at least 8 (up to 'typ <type>')")
    if tokens[6] != "typ":
        raise SdpError(f"expected 'typ' as the 7th field, got {tokens[6]!r}")
    foundation_, component, transport, priority, host, port, _, kind = tokens[:8]
    if not _ICE_CHARS.fullmatch(foundation_):
        raise SdpError(f"foundation {foundation_!r} is not 1 to 32 of [A-Za-z0-9+/]")
    if transport.lower() not in _TRANSPORTS:
        raise UnsupportedCandidateError(f"unsupported transport {transport!r}")
    if kind.lower() not in _TYPES:
        raise UnsupportedCandidateError(f"unknown candidate type {kind!r}")
    fields: dict[str, object] = {}
    extensions: list[tuple[str, str]] = []
    rest = tokens[8:]
    if len(rest) % 2:
        raise SdpError(f"{rest[-1]!r} has no value")
    for name, value in zip(rest[::2], rest[1::2], strict=True):
        if name in fields:
            raise SdpError(f"duplicate {name}")
        if name == "raddr":
            problem = _host_problem(value)
            if problem:
                raise SdpError(f"raddr: {problem}")
            fields[name] = value
        elif name == "rport":
            fields[name] = _number("rport", value, 0, 65535)
        elif name == "tcptype":
            if value not in _TCP_TYPES:
                raise SdpError(f"tcptype {value!r} is not active, passive or so")
            fields[name] = value
        elif name == "generation":
            fields[name] = _number("generation", value, 0, _MAX_PRIORITY)
        else:
            extensions.append((name, value))
    problem = _host_problem(host)
    if problem:
        raise SdpError(f"connection address: {problem}")
    return Candidate(
        foundation=foundation_,
        component=_number("component", component, 1, 256),
        transport=cast(Transport, transport.lower()),
        priority=_number("priority", priority, 0, _MAX_PRIORITY),
        host=host,
        port=_number("port", port, 0, 65535),
        type=CandidateType(kind.lower()),
        related_address=cast("str | None", fields.get("raddr")),
        related_port=cast("int | None", fields.get("rport")),
        tcptype=cast("TcpType | None", fields.get("tcptype")),
        generation=cast("int | None", fields.get("generation")),
        extensions=tuple(extensions),
    )


# ------------------------------------------------------------------ priorities


def candidate_priority(
    type: CandidateType | str,
    local_preference: int,
    component: int,
    *,
    type_preference: int | None = None,
) -> int:
    """RFC 8445 section 5.1.2.1::

        priority = 2**24 * type preference + 2**8 * local preference + (256 - component)

    ``type_preference`` defaults to :data:`TYPE_PREFERENCE` for ``type``
    (126 host, 110 prflx, 100 srflx, 0 relay); pass it to use another
    (0..126, e.g. to rank TCP candidates below UDP ones).
    """
    if type_preference is None:
        try:
            type_preference = TYPE_PREFERENCE[CandidateType(type)]
        except ValueError:
            raise ValueError(f"unknown candidate type {type!r}") from None
    _check_range("type preference", type_preference, 0, 126)
    _check_range("local preference", local_preference, 0, 65535)
    _check_range("component", component, 1, 256)
    return (type_preference << 24) + (local_preference << 8) + (256 - component)


def pair_priority(controlling_priority: int, controlled_priority: int) -> int:
    """RFC 8445 section 6.1.2.3, with G the controlling agent's candidate
    priority and D the controlled agent's::

        pair priority = 2**32 * MIN(G, D) + 2 * MAX(G, D) + (G > D ? 1 : 0)

    Both agents compute the same value for a pair, whichever side they are on.
    """
    g, d = controlling_priority, controlled_priority
    _check_range("controlling priority", g, 0, _MAX_PRIORITY)
    _check_range("controlled priority", d, 0, _MAX_PRIORITY)
    return (min(g, d) << 32) + 2 * max(g, d) + (1 if g > d else 0)


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} {value!r} is not an integer in {low}..{high}")


def local_preferences(addresses: Iterable[str]) -> dict[str, int]:
    """A distinct local preference (RFC 8445 section 5.1.2.1) for each
    interface address, with IPv6 and IPv4 intermingled as RFC 8421 asks.

    The scheme: addresses are ordered first, then numbered 65535, 65534, ...
    down that order. Within a family the given order is kept (list the
    preferred interfaces first; put ones known to be unreliable last, RFC 8421
    section 3). The two families are spread evenly over the whole list with
    IPv6 leading: with N addresses, N6 of them IPv6 and N4 IPv4, the k-th IPv6
    address (from 0) sits at fraction k / N6 of the list and the k-th IPv4 one
    at (k + 1) / N4, IPv4 winning ties. So IPv6 comes first, equal numbers
    alternate (6 4 6 4), six IPv6 and two IPv4 give 6 6 6 4 6 6 6 4: the first
    IPv4 address takes position ceil((N4 + N6) / N4), RFC 8421 section 4's
    head start, and every IPv4 address follows a short run of IPv6 ones.

    An address given twice (also as another spelling of the same IP) gets one
    preference. Raises ``ValueError`` for something that is not an IP
    address, or for more than 65536 distinct addresses.
    """
    keys = list(addresses)
    parsed: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address] = {}
    v4: list[str] = []
    v6: list[str] = []
    for key in keys:
        try:
            ip = ipaddress.ip_address(key)
        except ValueError:
            raise ValueError(f"{key!r} is not an IP address") from None
        canonical = str(ip)
        if canonical in parsed:
            continue
        parsed[canonical] = ip
        (v6 if ip.version == 6 else v4).append(canonical)
    if len(parsed) > 65536:
        raise ValueError(f"{len(parsed)} addresses, but there are only 65536 local preferences")
    n4, n6 = len(v4), len(v6)
    ordered: list[str] = []
    i4 = i6 = 0
    while i4 < n4 or i6 < n6:
        # IPv6 k sits at k/n6, IPv4 k at (k+1)/n4: compare i6/n6 < (i4+1)/n4 exactly.
        if i6 < n6 and (i4 >= n4 or i6 * n4 < (i4 + 1) * n6):
            ordered.append(v6[i6])
            i6 += 1
        else:
            ordered.append(v4[i4])
            i4 += 1
    preference = {canonical: 65535 - rank for rank, canonical in enumerate(ordered)}
    return {key: preference[str(ipaddress.ip_address(key))] for key in keys}


# ------------------------------------------------------------------ foundations


def foundation(
    type: CandidateType | str,
    base_ip: str,
    server: str | tuple[str, int] | None,
    transport: str,
) -> str:
    """The foundation of a local candidate (RFC 8445 section 5.1.1.3).

    Two candidates get the same foundation exactly when they have the same
    type, bases with the same IP address (ports do not matter), the same STUN
    or TURN server IP address (``server``: the address the agent contacted,
    as text or ``(host, port)`` whose port is ignored; None for host and
    peer-reflexive candidates) and the same ``transport`` -- the protocol
    used to obtain the candidate (for a relayed candidate, the one used to
    reach the TURN server). IP addresses compare by value (``::1`` equals
    ``0:0::1``).

    The result is a stable decimal number of at most 10 digits (a 32-bit
    BLAKE2s hash of those four things): within the ice-char alphabet, the
    same across processes and runs, and an integer for peers that assume one.
    """
    kind = CandidateType(str(type).lower())
    server_ip = server[0] if isinstance(server, tuple) else server
    key = "\x00".join(
        (
            kind.value,
            _canonical_host(base_ip),
            "" if server_ip is None else _canonical_host(server_ip),
            transport.lower(),
        )
    )
    digest = hashlib.blake2s(key.encode("utf-8"), digest_size=4).digest()
    return str(int.from_bytes(digest, "big"))


# ------------------------------------------------------------------ pruning


def candidate_base(candidate: Candidate) -> tuple[str, int]:
    """The base of a candidate as its SDP form tells it (RFC 8839 section 5.1):
    a host or relayed candidate is its own base; a server- or peer-reflexive
    one names its base in ``raddr``/``rport`` (itself when they are absent)."""
    if (
        candidate.type in (CandidateType.SRFLX, CandidateType.PRFLX)
        and candidate.related_address is not None
        and candidate.related_port is not None
    ):
        return (candidate.related_address, candidate.related_port)
    return candidate.address


BaseFunction = Callable[[Candidate], tuple[str, int]]


def _redundancy_key(
    candidate: Candidate, base: BaseFunction
) -> tuple[int, str, str | None, str, int, str, int]:
    base_host, base_port = base(candidate)
    return (
        candidate.component,
        candidate.transport,
        candidate.tcptype,
        _canonical_host(candidate.host),
        candidate.port,
        _canonical_host(base_host),
        base_port,
    )


def is_redundant(
    candidate: Candidate, other: Candidate, *, base: BaseFunction = candidate_base
) -> bool:
    """True when the two candidates have the same transport address and the
    same base (RFC 8445 section 5.1.3), so one of them is redundant.

    The transport address includes the component, the transport protocol and
    the TCP type; addresses compare by value. ``base`` gives a candidate's
    base; the default reads it from the SDP fields (:func:`candidate_base`),
    an agent passes what it knows of its own candidates.
    """
    return _redundancy_key(candidate, base) == _redundancy_key(other, base)


def prune(
    candidates: Iterable[Candidate], *, base: BaseFunction = candidate_base
) -> list[Candidate]:
    """Drop redundant candidates (RFC 8445 section 5.1.3): of candidates with
    the same transport address and base, keep the one with the highest
    priority (the first of equals). The survivors keep their order.

    The usual case: a server-reflexive candidate of a host that is not behind
    a NAT equals its host candidate and goes.
    """
    listed = list(candidates)
    best: dict[tuple[int, str, str | None, str, int, str, int], int] = {}
    for index, candidate in enumerate(listed):
        key = _redundancy_key(candidate, base)
        kept = best.get(key)
        if kept is None or candidate.priority > listed[kept].priority:
            best[key] = index
    keep = set(best.values())
    return [candidate for index, candidate in enumerate(listed) if index in keep]
