"""PortPool and MemoryRelaySockets: which relay port an allocation gets."""

from __future__ import annotations

import itertools
import random

import pytest

from ice.turn.ports import DEFAULT_RELAY_PORTS, MemoryRelaySockets, PortPool

IP = "198.51.100.1"
IP6 = "2001:db8::1"


def pool(
    low: int = 50000,
    high: int = 50099,
    *,
    seed: int = 1,
    taken: set[tuple[str, int]] | None = None,
) -> PortPool:
    return PortPool(MemoryRelaySockets(taken), (low, high), rng=random.Random(seed))


def sockets_of(p: PortPool) -> MemoryRelaySockets:
    assert isinstance(p.sockets, MemoryRelaySockets)
    return p.sockets


def test_take_binds_a_port_in_range() -> None:
    p = pool()
    taken = p.take(IP)
    assert taken is not None
    address, spare = taken
    assert spare is None and address[0] == IP and 50000 <= address[1] <= 50099
    assert sockets_of(p).open == {address: False}
    assert p.in_use(IP) == 1 and p.in_use(IP6) == 0 and p.size == 100


def test_dont_fragment_is_passed_to_the_socket() -> None:
    p = pool()
    taken = p.take(IP, dont_fragment=True)
    assert taken is not None and sockets_of(p).open[taken[0]] is True


def test_even_ports() -> None:
    p = pool(50001, 50100)  # odd low end
    ports = []
    for _ in range(50):
        taken = p.take(IP, even=True)
        assert taken is not None and taken[1] is None
        ports.append(taken[0][1])
    assert all(port % 2 == 0 for port in ports)
    assert sorted(ports) == list(range(50002, 50101, 2))  # all 50 even ports, each once
    assert p.take(IP, even=True) is None
    assert p.take(IP) is not None  # odd ones are still free


def test_pair_reserves_the_next_port() -> None:
    p = pool()
    taken = p.take(IP, pair=True)
    assert taken is not None
    (ip, port), spare = taken
    assert port % 2 == 0 and spare == (ip, port + 1)
    assert set(sockets_of(p).open) == {(ip, port), (ip, port + 1)}
    assert p.in_use(IP) == 2
    assert p.claim(spare) and p.claim((ip, port))
    assert not p.claim((ip, port + 2)) and not p.claim((IP6, port))


def test_pair_needs_both_ports_free() -> None:
    # Every even port's successor is taken by another program: no pair is possible.
    taken = {(IP, port) for port in range(50001, 50100, 2)}
    p = pool(taken=taken)
    assert p.take(IP, pair=True) is None
    assert not sockets_of(p).open and p.in_use(IP) == 0  # the even port it tried was closed again
    even = p.take(IP, even=True)
    assert even is not None and even[0][1] % 2 == 0


def test_pair_never_straddles_the_top_of_the_range() -> None:
    p = pool(50000, 50002)
    first = p.take(IP, pair=True)
    assert first is not None and first[0][1] == 50000
    assert p.take(IP, pair=True) is None  # 50002 + 1 is outside
    assert pool(50001, 50002).take(IP, pair=True) is None
    assert pool(50001, 50001).take(IP, even=True) is None


def test_exhaustion_and_release() -> None:
    p = pool(50000, 50003)
    addresses = []
    for _ in range(4):
        taken = p.take(IP)
        assert taken is not None
        addresses.append(taken[0])
    assert sorted(port for _, port in addresses) == [50000, 50001, 50002, 50003]
    assert p.take(IP) is None and p.take(IP, even=True) is None
    assert p.take(IP6) is not None  # each IP has its own range
    p.release(addresses[2])
    assert addresses[2] not in sockets_of(p).open and p.in_use(IP) == 3
    again = p.take(IP)
    assert again is not None and again[0] == addresses[2]
    p.release((IP, 60000))  # never taken: nothing happens
    p.release(("192.0.2.99", 50000))
    assert p.in_use(IP) == 4


def test_release_twice_closes_once() -> None:
    class Counting(MemoryRelaySockets):
        closed = 0

        def close_relay(self, address: tuple[str, int]) -> None:
            Counting.closed += 1
            super().close_relay(address)

    p = PortPool(Counting(), (50000, 50010), rng=random.Random(2))
    taken = p.take(IP)
    assert taken is not None
    p.release(taken[0])
    p.release(taken[0])
    assert Counting.closed == 1


def test_ports_taken_by_other_programs_are_skipped() -> None:
    taken = {(IP, port) for port in range(50000, 50100) if port != 50042}
    p = pool(taken=taken)
    got = p.take(IP)
    assert got is not None and got[0] == (IP, 50042)
    assert p.take(IP) is None
    assert p.in_use(IP) == 1


def test_random_spread() -> None:
    p = PortPool(MemoryRelaySockets(), DEFAULT_RELAY_PORTS, rng=random.Random(3))
    ports = []
    for _ in range(200):
        taken = p.take(IP)
        assert taken is not None
        ports.append(taken[0][1])
    assert len(set(ports)) == 200
    assert ports != sorted(ports)
    low, high = DEFAULT_RELAY_PORTS
    quarter = (high - low) // 4
    buckets = [
        sum(low + i * quarter <= port < low + (i + 1) * quarter for port in ports) for i in range(4)
    ]
    assert all(bucket >= 25 for bucket in buckets), buckets  # no clustering at one end
    steps = {b - a for a, b in itertools.pairwise(ports)}
    assert len(steps) > 150  # not a sequence


def test_different_seeds_give_different_ports() -> None:
    first = [pool(seed=s).take(IP) for s in range(10)]
    assert len({t[0] for t in first if t is not None}) > 5


def test_nearly_full_range_still_finds_the_last_port() -> None:
    p = pool(50000, 59999)
    for _ in range(9999):
        assert p.take(IP) is not None
    last = p.take(IP)
    assert last is not None and p.in_use(IP) == 10000
    assert p.take(IP) is None


@pytest.mark.parametrize("ports", [(0, 10), (10, 9), (1, 65536), (-1, 5)])
def test_bad_range(ports: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        PortPool(MemoryRelaySockets(), ports)


def test_single_port_range() -> None:
    p = pool(50000, 50000)
    assert p.size == 1
    taken = p.take(IP)
    assert taken is not None and taken[0] == (IP, 50000)
    assert p.take(IP) is None


def test_memory_sockets() -> None:
    sockets = MemoryRelaySockets(taken={(IP, 1)})
    assert not sockets.open_relay((IP, 1))
    assert sockets.open_relay((IP, 2), dont_fragment=True)
    assert not sockets.open_relay((IP, 2))  # already open
    assert sockets.open == {(IP, 2): True}
    sockets.close_relay((IP, 2))
    sockets.close_relay((IP, 3))  # unknown: a no-op
    assert sockets.open == {}
