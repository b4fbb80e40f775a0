"""Which peers a TURN server relays to (RFC 8656 section 21.2.3, RFC 6156).

A relay that forwards to any address lets anyone on the Internet reach the
server's own network: its loopback services, the private networks behind
it, the cloud provider's metadata endpoint that hands out credentials. So
`PeerPolicy` refuses these by default and the server answers 403 to a
CreatePermission, ChannelBind or Send that names one:

- loopback (127.0.0.0/8, ::1), unless ``allow_loopback``;
- private networks (RFC 1918, RFC 6598 shared address space, IPv6 ULA
  fc00::/7), unless ``allow_private``;
- link-local (169.254.0.0/16, fe80::/10), multicast, broadcast, unspecified
  (0.0.0.0/8, ::) and the reserved 240.0.0.0/4: always;
- cloud metadata endpoints (169.254.169.254, 169.254.170.2, 100.100.100.200,
  fd00:ec2::254): always, even with ``allow_private``.

An IPv4-mapped or IPv4-compatible IPv6 address (::ffff:a.b.c.d) is judged
as the IPv4 address it carries, so it cannot sneak past the IPv4 rules.

``deny`` networks are refused whatever else is allowed; ``allow`` networks
are relayed to even when a category above refuses them (name 169.254.169.254
in ``allow`` to reach a metadata endpoint on purpose). Deny wins over allow.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["METADATA_ADDRESSES", "PeerPolicy", "parse_networks"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Cloud metadata endpoints (AWS, GCP, Azure, OpenStack; ECS tasks; Alibaba; AWS IPv6).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)

_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 (carrier NAT)
_RESERVED_V4 = ipaddress.ip_network("240.0.0.0/4")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_ULA = ipaddress.ip_network("fc00::/7")
_PRIVATE_V4 = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Networks from text ("10.0.0.0/8", "2001:db8::/32", or one address); ValueError if bad."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


@dataclass(frozen=True)
class PeerPolicy:
    """Decides whether the relay may send to a peer IP; see the module docstring."""

    allow_loopback: bool = False
    allow_private: bool = False
    allow: tuple[IPNetwork, ...] = field(default=())
    deny: tuple[IPNetwork, ...] = field(default=())

    def __post_init__(self) -> None:
        # One cache per policy: the answer for an IP never changes, and the
        # data path asks once per permission, not per packet.
        object.__setattr__(self, "_permits", lru_cache(maxsize=4096)(self._decide))

    def permits(self, ip: str) -> bool:
        """True when relaying to ``ip`` (an IPv4 or IPv6 literal) is allowed."""
        return self._permits(ip)  # type: ignore[attr-defined, no-any-return]

    def reason(self, ip: str) -> str | None:
        """Why ``ip`` is refused (for logs and the 403's reason), or None when it is not."""
        try:
            address = _effective(ipaddress.ip_address(ip))
        except ValueError:
            return "not an IP address"
        if any(address in network for network in self.deny):
            return "denied by configuration"
        if any(address in network for network in self.allow):
            return None
        return _category(address, self.allow_loopback, self.allow_private)

    def _decide(self, ip: str) -> bool:
        return self.reason(ip) is None


def _effective(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped/compatible IPv6 address, else the address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        packed = address.packed
        if packed[:12] == bytes(12) and packed[12:] not in (bytes(4), b"\x00\x00\x00\x01"):
            return ipaddress.IPv4Address(packed[12:])  # IPv4-compatible (deprecated) form
    return address


def _category(address: IPAddress, allow_loopback: bool, allow_private: bool) -> str | None:
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified or (
        isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK
    ):
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv4Address) and (
        address in _RESERVED_V4 or address == ipaddress.IPv4Address("255.255.255.255")
    ):
        return "a reserved or broadcast address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if _is_private(address):
        return None if allow_private else "a private address"
    return None


def _is_private(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv4Address):
        return address in _SHARED_ADDRESS_SPACE or any(address in n for n in _PRIVATE_V4)
    return address in _ULA
