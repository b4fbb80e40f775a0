"""STUN and TURN URIs: ``stun:``/``stuns:`` (RFC 7064), ``turn:``/``turns:`` (RFC 7065).

The grammar (RFC 7064 section 3.1, RFC 7065 section 3.1, with ``host`` and
``port`` from RFC 3986)::

    stunURI   = ("stun" / "stuns") ":" host [ ":" port ]
    turnURI   = ("turn" / "turns") ":" host [ ":" port ] [ "?transport=" transport ]
    transport = "udp" / "tcp" / transport-ext

So there is no ``//``, no userinfo, no path and no fragment, and only
``turn:``/``turns:`` take a query, whose only key is ``transport``. What this
module adds on top of the grammar:

* the scheme and ``transport`` value are case-insensitive, a registered
  name is lowercased, percent-escapes in it are decoded (as UTF-8), and an
  all-numeric dotted name must be a valid IPv4 address;
* an IPv6 address goes in brackets (``stun:[::1]:3478``), optionally with an
  RFC 6874 zone (``[fe80::1%25eth0]``);
* the default port is 3478, or 5349 for the secure schemes, and an empty
  port (``stun:host:``) means the default, as RFC 3986 section 3.2.3 says;
* the transport is ``udp`` for ``stun:``/``turn:``, ``tcp`` for
  ``stuns:``/``turns:`` (TLS over TCP); ``turn:...?transport=tcp`` selects
  TCP; ``turns:...?transport=udp`` would be DTLS, which this package does
  not implement, and other transport-ext values are refused too.

``str(uri)`` is the canonical form: lowercase scheme, the port always
written, ``?transport=`` only when it is not the scheme's default, so
``parse_uri(str(uri)) == uri``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Final, Literal, cast

from ice._errors import Error

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "SCHEMES",
    "StunUri",
    "Transport",
    "UriError",
    "format_address",
    "parse_host_port",
    "parse_uri",
]

#: RFC 8489 section 9 / RFC 8656 section 4: the port for STUN/TURN over UDP and TCP.
DEFAULT_PORT: Final = 3478
#: ... and over TLS (and DTLS).
DEFAULT_TLS_PORT: Final = 5349
#: The schemes this module parses.
SCHEMES: Final = ("stun", "stuns", "turn", "turns")

Transport = Literal["udp", "tcp"]

#: The constructor's ``transport`` default: "" stands for the scheme's transport.
_SCHEME_DEFAULT: Final = cast(Transport, "")

# RFC 3986 reg-name: unreserved / pct-encoded / sub-delims.
_REG_NAME: Final = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_PORT: Final = re.compile(r"[0-9]*")
_DOTTED_NUMBER: Final = re.compile(r"[0-9.]+")
_SAFE_IN_HOST: Final = "!$&'()*+,;=-._~"  # quote() keeps ASCII letters and digits too
_HOST_DELIMITERS: Final = frozenset("/?#[]@:%")


class UriError(Error, ValueError):
    """A STUN/TURN URI that cannot be parsed or is not supported."""


def _error(text: str, problem: str) -> UriError:
    return UriError(f"invalid STUN/TURN URI {text!r}: {problem}")


@dataclass(frozen=True, slots=True)
class StunUri:
    """A parsed ``stun:``, ``stuns:``, ``turn:`` or ``turns:`` URI.

    ``host`` is a name (lowercase, percent-decoded) or an IP address without
    brackets; ``port`` 0 and ``transport`` "" given to the constructor mean
    the scheme's defaults and are replaced by them. ``explicit_port`` says
    whether a port was given: without one a host name is looked up with DNS
    SRV first (RFC 8489 section 8, RFC 8656 section 3.1). It takes no part in
    equality, and ``str(uri)`` writes the port, so the text of a URI without
    a port names the default port explicitly.
    """

    scheme: str
    host: str
    port: int = 0
    transport: Transport = _SCHEME_DEFAULT
    explicit_port: bool = field(default=False, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        text = f"{self.scheme}:{self.host}"
        scheme = self.scheme.lower() if isinstance(self.scheme, str) else self.scheme
        if scheme not in SCHEMES:
            raise _error(text, f"unknown scheme {self.scheme!r} (expected {', '.join(SCHEMES)})")
        if not self.host:
            raise _error(text, "missing host")
        secure = scheme in ("stuns", "turns")
        port = self.port or (DEFAULT_TLS_PORT if secure else DEFAULT_PORT)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise _error(text, f"port {self.port!r} is not in 1-65535")
        transport = self.transport or ("tcp" if secure else "udp")
        if transport not in ("udp", "tcp"):
            raise _error(text, f"unsupported transport {transport!r} (expected udp or tcp)")
        if secure and transport == "udp":
            raise _error(text, f"{scheme}: over UDP would be DTLS, which is not supported")
        if scheme == "stun" and transport != "udp":
            raise _error(
                text, "stun: URIs have no transport (RFC 7064); use stuns: or turn:?transport=tcp"
            )
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "explicit_port", bool(self.port))
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "transport", transport)

    @property
    def secure(self) -> bool:
        """True for ``stuns:`` and ``turns:`` (TLS)."""
        return self.scheme in ("stuns", "turns")

    @property
    def is_turn(self) -> bool:
        """True for ``turn:`` and ``turns:``."""
        return self.scheme in ("turn", "turns")

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, as a socket call or name lookup takes it."""
        return (self.host, self.port)

    def __str__(self) -> str:
        if ":" in self.host:  # IPv6, with an optional zone
            address, _, zone = self.host.partition("%")
            literal = f"[{address}%25{urllib.parse.quote(zone)}]" if zone else f"[{address}]"
        else:
            literal = urllib.parse.quote(self.host, safe=_SAFE_IN_HOST)
        text = f"{self.scheme}:{literal}:{self.port}"
        if self.is_turn and self.transport != ("tcp" if self.secure else "udp"):
            text += f"?transport={self.transport}"
        return text


def _parse_ip_literal(text: str, literal: str) -> str:
    """The address inside ``[...]``: IPv6, with an optional RFC 6874 zone."""
    if literal[:1].lower() == "v":
        raise _error(text, f"IPvFuture literal [{literal}] is not supported")
    address, sep, zone = literal.partition("%25")
    if sep:
        if not zone or not _REG_NAME.fullmatch(zone):
            raise _error(text, f"bad IPv6 zone in [{literal}]")
        zone = urllib.parse.unquote(zone, errors="strict")
    elif "%" in literal:
        raise _error(text, f"an IPv6 zone is written %25zone, not [{literal}]")
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        raise _error(text, f"[{literal}] is not an IPv6 address") from None
    return f"{ip.compressed}%{zone}" if zone else ip.compressed


def _parse_reg_name(text: str, name: str) -> str:
    """A registered name or an IPv4 address, decoded and normalised."""
    if not name:
        raise _error(text, "missing host")
    if not _REG_NAME.fullmatch(name):
        if re.search(r"%(?![0-9A-Fa-f]{2})", name):
            raise _error(text, "'%' in the host is not followed by two hex digits")
        bad = next(c for c in name if c != "%" and not _REG_NAME.fullmatch(c))
        raise _error(text, f"character {bad!r} is not allowed in a host name")
    try:
        host = urllib.parse.unquote(name, errors="strict")
    except UnicodeDecodeError:
        raise _error(text, f"percent-escapes in {name!r} are not UTF-8") from None
    if _DOTTED_NUMBER.fullmatch(host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise _error(text, f"{host!r} is not a valid IPv4 address") from None
    bad_chars = [c for c in host if c in _HOST_DELIMITERS or not c.isprintable() or c.isspace()]
    if bad_chars:
        raise _error(text, f"host name {host!r} contains {bad_chars[0]!r}")
    try:
        host.encode("idna")
    except UnicodeError:
        raise _error(text, f"{host!r} is not a valid host name") from None
    return host.lower()


def _parse_port(text: str, port: str) -> int:
    if not _PORT.fullmatch(port):
        raise _error(text, f"port {port!r} is not a number")
    if not port:
        return 0  # "host:" means the default port (RFC 3986 section 3.2.3)
    value = int(port)
    if not 0 < value < 65536:
        raise _error(text, f"port {value} is not in 1-65535")
    return value


def _parse_query(text: str, scheme: str, query: str) -> Transport:
    if scheme in ("stun", "stuns"):
        raise _error(text, f"{scheme}: URIs take no query (RFC 7064); ?transport= is for turn:")
    if not query:
        raise _error(text, "empty query after '?'")
    transport: Transport | None = None
    for param in query.split("&"):
        key, sep, value = param.partition("=")
        if key.lower() != "transport":
            raise _error(text, f"unknown query parameter {key!r} (only transport is defined)")
        if transport is not None:
            raise _error(text, "transport is given twice")
        if not sep or not value:
            raise _error(text, "transport has no value")
        name = urllib.parse.unquote(value).lower()
        if name == "udp":
            if scheme == "turns":
                raise _error(
                    text, "turns: with transport=udp would be DTLS, which is not supported"
                )
            transport = "udp"
        elif name == "tcp":
            transport = "tcp"
        else:
            raise _error(text, f"unsupported transport {name!r} (expected udp or tcp)")
    assert transport is not None
    return transport


def parse_uri(text: str) -> StunUri:
    """Parse a ``stun:``, ``stuns:``, ``turn:`` or ``turns:`` URI; raise `UriError`."""
    if not isinstance(text, str):
        raise TypeError(f"a URI is a str, not {type(text).__name__}")
    scheme, sep, rest = text.partition(":")
    if not sep or not scheme:
        raise _error(text, "missing scheme (expected stun:, stuns:, turn: or turns:)")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise _error(text, f"unknown scheme {scheme!r} (expected stun, stuns, turn or turns)")
    if "#" in rest:
        raise _error(text, "a fragment (#...) is not allowed")
    hostport, has_query, query = rest.partition("?")
    if hostport.startswith("//"):
        raise _error(text, f"no '//' after the scheme: write {scheme}:host[:port]")
    if "@" in hostport:
        raise _error(text, "userinfo (user@) is not allowed; credentials are configured apart")
    if "/" in hostport:
        raise _error(text, "a path is not allowed")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise _error(text, "IPv6 literal has no closing ']'")
        host = _parse_ip_literal(text, hostport[1:end])
        after = hostport[end + 1 :]
        if after and not after.startswith(":"):
            raise _error(text, f"unexpected {after!r} after the IPv6 literal")
        port_text = after[1:]
    else:
        if hostport.count(":") > 1:
            raise _error(text, "an IPv6 address must be in brackets: [addr]:port")
        if "[" in hostport or "]" in hostport:
            raise _error(text, "misplaced bracket in the host")
        name, _, port_text = hostport.partition(":")
        host = _parse_reg_name(text, name)
    port = _parse_port(text, port_text)
    transport = _parse_query(text, scheme, query) if has_query else _SCHEME_DEFAULT
    return StunUri(scheme, host, port, transport)


# -- plain HOST:PORT addresses (command lines, logs)


def format_address(addr: tuple[str, int]) -> str:
    """``host:port``, with brackets around an IPv6 host."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT``; with a ``default_port`` also ``HOST`` and
    ``[IPV6]``. ValueError names what is wrong."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"bad address {text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"bad address {text!r}: {host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {text!r}: expected ':PORT' after ']'")
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:  # "::1:3478" is itself a valid IPv6 address: insist on brackets
        raise ValueError(
            f"bad address {text!r}: write an IPv6 address in brackets, as in [::1]:3478"
        )
    else:
        host, _, port_text = text.partition(":")
        if not host:
            raise ValueError(f"bad address {text!r}: missing host (0.0.0.0 is every interface)")
    with contextlib.suppress(ValueError):
        host = str(ipaddress.ip_address(host))  # one spelling, as the sockets report it
    if not port_text:
        if default_port is None or text.endswith(":"):
            raise ValueError(f"bad address {text!r}: missing port (HOST:PORT)")
        return (host, default_port)
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 0xFFFF:
        raise ValueError(f"bad address {text!r}: port must be a number from 0 to 65535")
    return (host, int(port_text))
