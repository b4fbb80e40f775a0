"""ice.stun.srv: when SRV applies, the owner name, and the RFC 2782 order."""

from __future__ import annotations

import collections
import random

import pytest

from ice.stun.srv import SrvRecord, order_records, srv_name
from ice.stun.uri import StunUri, parse_uri


@pytest.mark.parametrize(
    ("uri", "kind", "name"),
    [
        ("stun:example.org", None, "_stun._udp.example.org"),
        ("stuns:example.org", None, "_stuns._tcp.example.org"),
        ("turn:example.org", None, "_turn._udp.example.org"),
        ("turn:example.org?transport=tcp", None, "_turn._tcp.example.org"),
        ("turns:Example.ORG", None, "_turns._tcp.example.org"),
        ("stun:example.org", "tcp", "_stun._tcp.example.org"),
        ("stun:example.org", "tls", "_stuns._tcp.example.org"),
        ("turn:example.org.", None, "_turn._udp.example.org"),
        # an explicit port, even the default one, and IP literals skip SRV
        ("stun:example.org:3478", None, None),
        ("turns:example.org:5349", None, None),
        ("stun:example.org:", None, "_stun._udp.example.org"),  # empty port: the default
        ("stun:192.0.2.1", None, None),
        ("turn:[2001:db8::1]", None, None),
        # never sent to DNS: RFC 6761 localhost, RFC 6762 .local
        ("stun:localhost", None, None),
        ("stun:a.localhost", None, None),
        ("stun:printer.local", None, None),
    ],
)
def test_srv_name(uri: str, kind: str | None, name: str | None) -> None:
    assert srv_name(parse_uri(uri), kind) == name


def test_constructed_uri_has_an_explicit_port_only_when_given_one() -> None:
    assert srv_name(StunUri("turn", "example.org")) == "_turn._udp.example.org"
    assert srv_name(StunUri("turn", "example.org", 3478)) is None
    # explicit_port takes no part in equality: the same server either way
    assert StunUri("turn", "example.org") == parse_uri("turn:example.org:3478")


def rec(priority: int, weight: int, target: str) -> SrvRecord:
    return SrvRecord(priority, weight, 3478, target)


def test_lowest_priority_first_whatever_the_weights() -> None:
    records = [rec(20, 100, "c"), rec(10, 0, "a"), rec(30, 1, "d"), rec(10, 0, "b")]
    for seed in range(20):
        ordered = order_records(records, random.Random(seed))
        assert [r.priority for r in ordered] == [10, 10, 20, 30]
        assert {r.target for r in ordered[:2]} == {"a", "b"}


def test_weights_share_the_first_place() -> None:
    records = [rec(1, 90, "heavy"), rec(1, 10, "light")]
    rng = random.Random(1)
    first = collections.Counter(order_records(records, rng)[0].target for _ in range(4000))
    assert 0.87 < first["heavy"] / 4000 < 0.93  # 90 %, give or take sampling
    assert all(len(order_records(records, rng)) == 2 for _ in range(10))


def test_weight_zero_is_rarely_first_but_always_kept() -> None:
    records = [rec(1, 0, "zero"), rec(1, 100, "busy")]
    rng = random.Random(2)
    firsts = collections.Counter(order_records(records, rng)[0].target for _ in range(2000))
    # weight 0 goes first in the running sum: picked only when the draw is 0 (1 in 101)
    assert 0 < firsts["zero"] < 60
    assert {r.target for r in order_records(records, rng)} == {"zero", "busy"}


class FixedDraws:
    """A rng that returns the draws it is given, checking the range asked for."""

    def __init__(self, *draws: int) -> None:
        self.draws = list(draws)
        self.ranges: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.ranges.append((a, b))
        return self.draws.pop(0)


def test_the_running_sum_rule_with_an_injected_rng() -> None:
    records = [rec(5, 10, "a"), rec(5, 20, "b"), rec(5, 30, "c")]
    rng = FixedDraws(35, 15, 0)
    ordered = order_records(records, rng)
    # draw 35 of 0..60: running sums 10, 30, 60 -> c; then 15 of 0..30: 10, 30 -> b; then a
    assert [r.target for r in ordered] == ["c", "b", "a"]
    assert rng.ranges == [(0, 60), (0, 30), (0, 10)]


def test_a_lone_dot_target_means_no_service() -> None:
    assert order_records([rec(0, 0, ".")]) == []
    # among others, a "." record is just skipped
    assert [r.target for r in order_records([rec(0, 0, "."), rec(1, 0, "x")])] == ["x"]
