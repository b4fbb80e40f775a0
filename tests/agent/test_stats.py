"""`Agent.stats` snapshots and the data counters the adapter reports
(`Agent.record_sent`, `Agent.record_received`), two agents under virtual time."""

from __future__ import annotations

import dataclasses
import random

import pytest

from ice.agent.agent import Agent
from ice.agent.checklist import PairState
from ice.agent.events import ConnectionState, GatheringState
from ice.agent.stats import ConnectionStats, PairStats
from tests.agent.test_agent import LEFT, RIGHT, connected, make_pair, signal
from tests.support.netsim import Network


def test_stats_count_checks_rtt_and_the_data_the_adapter_reports() -> None:
    net = Network(latency=0.005)
    a = Agent(controlling=True, components=2, rng=random.Random(1))
    b = Agent(controlling=False, components=2, rng=random.Random(2))
    for agent, ips in ((a, ["10.0.0.1", "10.0.0.3"]), (b, ["10.0.0.2"])):
        bases = [(ip, 7000 + c) for ip in ips for c in (1, 2)]
        for preference, (ip, port) in enumerate(bases):
            agent.add_host_candidate((ip, port), port - 7000, 65535 - preference)
        agent.end_of_local_candidates()
        net.add_host(agent, bases)
    before = a.stats()
    assert before == ConnectionStats(ConnectionState.NEW, GatheringState.COMPLETE, "", ())
    signal(a, b)
    net.run(until=lambda: connected(a, b), max_time=5)

    stats = a.stats()
    assert stats.state in (ConnectionState.CONNECTED, ConnectionState.COMPLETED)
    assert len(stats.pairs) == len(a.checklist.pairs) == 4  # 2 local x 1 remote, 2 components
    assert [p.component for p in stats.pairs if p.selected] == [1, 2]
    for component in (1, 2):
        pair = a.selected_pair(component)
        assert pair is not None
        (snapshot,) = [p for p in stats.pairs if p.selected and p.component == component]
        assert (snapshot.local, snapshot.remote) == (pair.local, pair.remote)
        assert snapshot.state is PairState.SUCCEEDED and snapshot.nominated
        assert snapshot.checks_sent >= 1 and snapshot.responses_received >= 1
        # two one-way latencies, measured in virtual time
        assert snapshot.rtt == pytest.approx(0.01)
        assert snapshot.smoothed_rtt == pytest.approx(0.01)
        assert (snapshot.packets_sent, snapshot.bytes_received) == (0, 0)
    assert [p.priority for p in a.checklist.pairs] == sorted(
        (p.priority for p in a.checklist.pairs), reverse=True
    )  # the snapshot keeps the check list's order: highest priority first
    assert [(p.local, p.remote) for p in stats.pairs] == [
        (p.local, p.remote) for p in a.checklist.pairs
    ]

    # data: the adapter sends on a's selected pair and b counts what arrives
    sent = a.selected_pair(1)
    assert sent is not None
    for size in (100, 1200, 0):
        a.record_sent(sent, size)
        b.record_received(size, sent.base, local=sent.remote_address, component=1)
    b.record_received(50, ("192.0.2.99", 1), local=sent.remote_address, component=1)  # no pair
    b.record_received(50, sent.base, local=sent.remote_address, component=2)  # not component 2
    after = a.stats()
    (mine,) = [p for p in after.pairs if p.selected and p.component == 1]
    assert (mine.packets_sent, mine.bytes_sent) == (3, 1300)
    (theirs,) = [p for p in b.stats().pairs if p.selected and p.component == 1]
    assert (theirs.packets_received, theirs.bytes_received) == (3, 1300)
    assert sum(p.packets_received for p in b.stats().pairs) == 3

    # a snapshot does not move: consent checks go on in the next 20 s
    net.run(until=lambda: net.now > 20)
    later = {(p.local, p.remote): p for p in a.stats().pairs}[(mine.local, mine.remote)]
    assert later.checks_sent > mine.checks_sent
    assert later.responses_received > mine.responses_received
    with pytest.raises(dataclasses.FrozenInstanceError):
        mine.packets_sent = 0  # type: ignore[misc]
    assert isinstance(mine, PairStats)


def test_stats_after_failure_and_close_keep_the_pairs_but_none_is_selected() -> None:
    net = Network()
    a, b = make_pair()
    net.add_host(a, [LEFT], name="left")
    net.add_host(b, [RIGHT], name="right")
    signal(a, b)
    net.run(until=lambda: connected(a, b), max_time=5)
    assert any(p.selected for p in a.stats().pairs)
    a.close()
    closed = a.stats()
    assert closed.state is ConnectionState.CLOSED and closed.pairs
    assert not any(p.selected for p in closed.pairs)

    lonely, _ = make_pair()
    net = Network()
    net.add_host(lonely, [LEFT])  # the peer never answers
    signal(lonely, _)
    net.run(until=lambda: lonely.state is ConnectionState.FAILED, max_time=60)
    failed = lonely.stats()
    assert failed.failure_reason.startswith("no working candidate pair")
    assert [p.state for p in failed.pairs] == [PairState.FAILED]
