"""PeerPolicy: which peers a TURN relay may reach (RFC 8656 section 21.2.3)."""

from __future__ import annotations

import ipaddress

import pytest

from ice.turn.policy import METADATA_ADDRESSES, PeerPolicy, parse_networks

PUBLIC = ["8.8.8.8", "1.1.1.1", "203.0.113.7", "2001:4860:4860::8888", "2606:4700::1111"]
LOOPBACK = ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1", "::ffff:127.1.2.3"]
PRIVATE = [
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.1",
    "192.168.255.255",
    "100.64.0.1",  # RFC 6598 shared address space (carrier-grade NAT)
    "100.127.255.254",
    "fc00::1",
    "fd12:3456:789a::1",
    "::ffff:10.1.2.3",
    "::ffff:192.168.1.1",
]
METADATA = [
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "fd00:ec2::254",
    "::ffff:169.254.169.254",
]
ALWAYS_REFUSED = {
    "a link-local address": ["169.254.0.1", "169.254.255.254", "fe80::1", "::ffff:169.254.1.1"],
    "a multicast address": ["224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1"],
    "an unspecified address": ["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0"],
    "a reserved or broadcast address": ["240.0.0.1", "254.1.2.3", "255.255.255.255"],
}
NOT_ADDRESSES = ["", "example.org", "1.2.3", "1.2.3.4.5", "::g", "10.0.0.0/8"]


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_are_relayed(ip: str) -> None:
    policy = PeerPolicy()
    assert policy.permits(ip) and policy.reason(ip) is None


@pytest.mark.parametrize("ip", LOOPBACK)
def test_loopback_refused_unless_allowed(ip: str) -> None:
    assert not PeerPolicy().permits(ip)
    assert PeerPolicy().reason(ip) == "a loopback address"
    assert not PeerPolicy(allow_private=True).permits(ip)
    assert PeerPolicy(allow_loopback=True).permits(ip)


@pytest.mark.parametrize("ip", PRIVATE)
def test_private_refused_unless_allowed(ip: str) -> None:
    assert PeerPolicy().reason(ip) == "a private address"
    assert not PeerPolicy(allow_loopback=True).permits(ip)
    assert PeerPolicy(allow_private=True).permits(ip)


@pytest.mark.parametrize("ip", ["172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1"])
def test_private_range_boundaries(ip: str) -> None:
    assert PeerPolicy().permits(ip)


@pytest.mark.parametrize("ip", METADATA)
def test_metadata_refused_even_with_everything_allowed(ip: str) -> None:
    lax = PeerPolicy(allow_loopback=True, allow_private=True)
    assert not lax.permits(ip)
    assert lax.reason(ip) == "a cloud metadata address"


@pytest.mark.parametrize("ip", [a for a in METADATA if not a.startswith("::ffff:")])
def test_metadata_reachable_only_when_named_in_allow(ip: str) -> None:
    policy = PeerPolicy(allow=parse_networks([ip]))
    assert policy.permits(ip)
    others = [str(a) for a in METADATA_ADDRESSES if str(a) != ip]
    assert not any(policy.permits(other) for other in others)


def test_metadata_list_is_complete() -> None:
    assert {str(a) for a in METADATA_ADDRESSES} == {
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "fd00:ec2::254",
    }


@pytest.mark.parametrize(
    "why, ip", [(why, ip) for why, ips in ALWAYS_REFUSED.items() for ip in ips]
)
def test_always_refused_categories(why: str, ip: str) -> None:
    lax = PeerPolicy(allow_loopback=True, allow_private=True)
    assert not lax.permits(ip)
    assert lax.reason(ip) == why


@pytest.mark.parametrize("ip", ["::127.0.0.1", "::10.0.0.1", "::169.254.169.254"])
def test_ipv4_compatible_addresses_are_judged_as_ipv4(ip: str) -> None:
    embedded = str(ipaddress.IPv4Address(ipaddress.IPv6Address(ip).packed[12:]))
    assert PeerPolicy().reason(ip) == PeerPolicy().reason(embedded)
    assert PeerPolicy().reason(ip) is not None


@pytest.mark.parametrize("ip", NOT_ADDRESSES)
def test_not_an_address_is_refused(ip: str) -> None:
    assert not PeerPolicy(allow_loopback=True, allow_private=True).permits(ip)
    assert PeerPolicy().reason(ip) == "not an IP address"


def test_allow_overrides_categories() -> None:
    policy = PeerPolicy(
        allow=parse_networks(["127.0.0.0/8", "10.1.0.0/16", "fe80::/10", "224.0.0.251"])
    )
    for ip in ("127.0.0.1", "::ffff:127.0.0.1", "10.1.2.3", "fe80::1", "224.0.0.251"):
        assert policy.permits(ip), ip
    for ip in ("::1", "10.2.0.1", "169.254.1.1", "224.0.0.1", "169.254.169.254"):
        assert not policy.permits(ip), ip


def test_deny_wins_over_allow_and_categories() -> None:
    policy = PeerPolicy(
        allow_private=True,
        allow=parse_networks(["10.0.0.0/8"]),
        deny=parse_networks(["10.1.0.0/16", "203.0.113.0/24", "2001:db8::/32"]),
    )
    assert policy.permits("10.2.3.4")
    assert policy.reason("10.1.2.3") == "denied by configuration"
    assert not policy.permits("203.0.113.7")
    assert not policy.permits("::ffff:203.0.113.7")  # the mapped form is the same peer
    assert not policy.permits("2001:db8::7")
    assert policy.permits("198.51.100.7") and policy.permits("2001:db9::1")
    assert policy.permits("192.168.1.1")  # allow_private still applies outside deny


def test_permits_is_cached_and_consistent() -> None:
    policy = PeerPolicy()
    for _ in range(3):
        assert policy.permits("8.8.8.8") and not policy.permits("127.0.0.1")
    cache = policy._permits  # type: ignore[attr-defined]
    info = cache.cache_info()
    assert info.hits >= 4 and info.maxsize == 4096
    # two policies do not share answers
    assert PeerPolicy(allow_loopback=True).permits("127.0.0.1")
    assert not policy.permits("127.0.0.1")


def test_policy_is_immutable_and_comparable() -> None:
    policy = PeerPolicy(allow_private=True)
    with pytest.raises(AttributeError):
        policy.allow_private = False  # type: ignore[misc]
    assert policy == PeerPolicy(allow_private=True)


def test_parse_networks() -> None:
    networks = parse_networks([" 10.0.0.0/8", "2001:db8::/32 ", "192.0.2.7", "10.1.2.3/8"])
    assert [str(n) for n in networks] == [
        "10.0.0.0/8",
        "2001:db8::/32",
        "192.0.2.7/32",
        "10.0.0.0/8",
    ]
    for bad in ("10.0.0.0/33", "not-a-network", ""):
        with pytest.raises(ValueError):
            parse_networks([bad])
