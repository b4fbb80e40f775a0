"""ICE-TCP (RFC 6544) in the sans-I/O agent: pairing, priorities, framing, and two agents
connecting over TCP in an in-memory network (TCP only, UDP blocked, both with UDP winning)."""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from collections.abc import Callable

import pytest

from ice.agent.agent import Agent
from ice.agent.candidate import Candidate, CandidateType, foundation
from ice.agent.checklist import CandidatePair, CheckList, PairState
from ice.agent.events import ConnectionState
from ice.agent.tcp import (
    FrameReader,
    OpenConnection,
    can_pair,
    frame,
    peer_reflexive_tcptype,
    tcp_priority,
)
from ice.agent.tcp_checks import RELAY_RETRY_DELAY, TcpChecks
from ice.machine import Address
from tests.agent.test_agent import connected, host
from tests.support.tcp_net import TcpNet

LEFT_IP, RIGHT_IP = "192.0.2.1", "192.0.2.2"


def tcp(ip: str, port: int, tcptype: str, component: int = 1) -> Candidate:
    return Candidate(
        foundation=foundation(CandidateType.HOST, ip, None, "tcp"),
        component=component,
        transport="tcp",
        priority=tcp_priority(CandidateType.HOST, tcptype, 65535, component),  # type: ignore[arg-type]
        host=ip,
        port=9 if tcptype == "active" else port,
        type=CandidateType.HOST,
        tcptype=tcptype,  # type: ignore[arg-type]
    )


def add_tcp(net: TcpNet, agent: Agent, ip: str, port: int, tcptype: str) -> None:
    base: Address = (ip, 0) if tcptype == "active" else (ip, port)
    added = agent.add_host_candidate(base, 1, 65535, tcptype=tcptype)  # type: ignore[arg-type]
    assert added == tcp(ip, port, tcptype)
    if tcptype != "active":
        net.listeners[base] = agent


def _exchange_and_run(a: Agent, b: Agent, net: TcpNet) -> None:
    """Signal each agent's credentials and candidates to the other, then run the
    network until both connect or one fails (30 s of virtual time at most)."""
    a.set_remote_credentials(b.local_ufrag, b.local_pwd)
    b.set_remote_credentials(a.local_ufrag, a.local_pwd)
    for x, y in ((a, b), (b, a)):
        for candidate in y.local_candidates:
            x.add_remote_candidate(candidate)
        x.add_remote_candidate(None)
    a.connect(0.0)
    b.connect(0.0)
    failed = ConnectionState.FAILED
    net.run(lambda: connected(a, b) or failed in (a.state, b.state), max_time=30)


def run(
    left: list[str],
    right: list[str],
    *,
    udp: bool = False,
    block_udp: bool = False,
    block_tcp: bool = False,
) -> tuple[Agent, Agent, TcpNet]:
    net = TcpNet(block_udp=block_udp, block_tcp=block_tcp)
    a = Agent(controlling=True, rng=random.Random(1))
    b = Agent(controlling=False, rng=random.Random(2))
    for agent, ip, types in ((a, LEFT_IP, left), (b, RIGHT_IP, right)):
        net.agents.append(agent)
        if udp:
            address = (ip, 5000)
            agent.add_local_candidate(host(address), address)
            net.udp[address] = agent
        for index, tcptype in enumerate(types):
            add_tcp(net, agent, ip, 6000 + index, tcptype)
        agent.end_of_local_candidates()
    _exchange_and_run(a, b, net)
    return a, b, net


@pytest.mark.parametrize(
    ("left", "right"),
    [(["active"], ["passive"]), (["passive"], ["active"]), (["so"], ["so"])],
    ids=["active-passive", "passive-active", "so-so"],
)
def test_each_tcptype_pairing_connects_over_tcp_only(left: list[str], right: list[str]) -> None:
    a, b, net = run(left, right)
    assert connected(a, b), (a.failure_reason, b.failure_reason)
    for agent in (a, b):
        pair = agent.selected_pair(1)
        assert pair is not None and pair.local.transport == "tcp"
        assert pair.nominated
    assert {kind for kind, _, _ in net.delivered} == {"tcp"}


def test_tcp_types_that_do_not_pair_fail_cleanly() -> None:
    a, b, _ = run(["passive"], ["passive"])
    assert ConnectionState.FAILED in (a.state, b.state)
    assert "no working candidate pair" in (a.failure_reason or b.failure_reason)


def test_with_udp_blocked_the_agents_fall_back_to_tcp() -> None:
    a, b, _ = run(["active", "passive"], ["active", "passive"], udp=True, block_udp=True)
    assert connected(a, b), (a.failure_reason, b.failure_reason)
    pair = a.selected_pair(1)
    assert pair is not None and pair.local.transport == "tcp"


def test_when_both_work_udp_wins() -> None:
    a, b, _ = run(["active", "passive"], ["active", "passive"], udp=True)
    assert connected(a, b)
    for agent in (a, b):
        pair = agent.selected_pair(1)
        assert pair is not None and pair.local.transport == "udp"


def test_with_tcp_blocked_udp_still_connects() -> None:
    a, b, _ = run(["active"], ["passive"], udp=True, block_tcp=True)
    assert connected(a, b)
    pair = a.selected_pair(1)
    assert pair is not None and pair.local.transport == "udp"


def test_priorities_put_tcp_below_udp_and_order_directions() -> None:
    udp = host(("192.0.2.1", 5000)).priority
    active, passive, so = (tcp(LEFT_IP, 6000, t).priority for t in ("active", "passive", "so"))
    assert udp > active > passive > so


def test_pairing_rules() -> None:
    active, passive, so = (tcp(LEFT_IP, 6000, t) for t in ("active", "passive", "so"))
    remote = {t: tcp(RIGHT_IP, 7000, t) for t in ("active", "passive", "so")}
    udp = host((RIGHT_IP, 5000))
    assert can_pair(active, remote["passive"]) and not can_pair(active, remote["active"])
    assert can_pair(so, remote["so"]) and not can_pair(so, remote["passive"])
    assert not any(can_pair(passive, r) for r in remote.values())
    assert not can_pair(active, udp) and not can_pair(udp, remote["passive"])
    assert peer_reflexive_tcptype(passive) == "active"
    assert peer_reflexive_tcptype(so) == "so"


def test_rfc4571_framing() -> None:
    reader = FrameReader()
    stream = frame(b"first") + frame(b"") + frame(b"x" * 300)
    assert reader.feed(stream[:3]) == []
    assert reader.feed(stream[3:8]) == [b"first"]
    assert reader.feed(stream[8:]) == [b"", b"x" * 300]
    assert reader.pending == 0
    with pytest.raises(ValueError):
        frame(bytes(70000))


def test_an_active_tcp_candidate_gets_a_server_reflexive_twin_from_udp() -> None:
    """RFC 6544 5.2: behind a NAT, the UDP srflx address with port 9 and tcptype active."""
    from ice.stun.nat import FilteringBehavior, MappingBehavior
    from ice.stun.server import StunServer
    from tests.support.netsim import Network, SimNat

    net = Network()
    stun: Address = ("198.51.100.1", 3478)
    net.add_host(StunServer(), [stun], name="stun")
    nat = net.add_nat(
        SimNat(
            "203.0.113.1",
            mapping=MappingBehavior.ENDPOINT_INDEPENDENT,
            filtering=FilteringBehavior.ENDPOINT_INDEPENDENT,
        )
    )
    agent = Agent(controlling=True, rng=random.Random(1))
    base: Address = ("192.168.1.10", 5000)
    net.add_host(agent, [base], behind=nat)
    agent.add_local_candidate(host(base), base)
    add_tcp(TcpNet(), agent, base[0], 6000, "active")
    agent.add_stun_server(stun)
    agent.gather(net.now)
    net.run(until=lambda: agent.gathering_state == "complete", max_time=10)
    twins = [c for c in agent.local_candidates if c.transport == "tcp" and c.type == "srflx"]
    assert [(c.host, c.port, c.tcptype, c.related_address) for c in twins] == [
        ("203.0.113.1", 9, "active", base[0])
    ]
    udp_srflx = next(
        c for c in agent.local_candidates if c.transport == "udp" and c.type == "srflx"
    )
    assert twins[0].priority < udp_srflx.priority


class _Owner:
    """What an agent gives its TcpChecks, recorded: TcpChecks needs no Agent."""

    def __init__(self) -> None:
        self.checklists = [CheckList()]
        self.candidates: list[Candidate] = []
        self.bases: dict[Address, tuple[int, Candidate]] = {}
        self.calls: list[tuple[str, float]] = []
        self.controlling = True

    def checks(self) -> TcpChecks:
        return TcpChecks(
            checklists=lambda: self.checklists,
            local_candidates=self.candidates,
            bases=self.bases,
            add_local_candidate=self.add_local_candidate,
            arm=lambda now: self.calls.append(("arm", now)),
            check_failed=lambda now: self.calls.append(("check_failed", now)),
            controlling=lambda: self.controlling,
        )

    def add_local_candidate(
        self, candidate: Candidate, base: Address, now: float = 0.0, *, stream: int = 0
    ) -> None:
        self.candidates.append(candidate)


def _tcp_pair(owner: _Owner, simultaneous: bool = False) -> CandidatePair:
    if simultaneous:
        local, remote = tcp(LEFT_IP, 6001, "so"), tcp(RIGHT_IP, 7001, "so")
        base: Address = (LEFT_IP, 6001)
    else:
        local, remote = tcp(LEFT_IP, 6000, "active"), tcp(RIGHT_IP, 7000, "passive")
        base = (LEFT_IP, 0)
    return owner.checklists[0].add(CandidatePair(local, remote, base), True)


def test_tcp_checks_is_a_component_driven_through_what_its_owner_gives_it() -> None:
    owner = _Owner()
    checks = owner.checks()
    pair = _tcp_pair(owner)

    checks.open_connection(pair)
    checks.open_connection(pair)  # asked for once
    (request,) = checks.connections_to_open()
    assert (request.local, request.remote, request.simultaneous) == (
        (LEFT_IP, 0),
        (RIGHT_IP, 7000),
        False,
    )
    assert (pair.state, checks.connections_to_open()) == (PairState.IN_PROGRESS, [])

    local: Address = (LEFT_IP, 50123)
    checks.connection_opened(request.connection_id, local, 1.0)
    assert pair.base == local and checks.is_open(local, (RIGHT_IP, 7000))
    assert owner.bases[local] == (0, pair.local)
    assert list(owner.checklists[0].triggered) == [pair]
    assert owner.calls == [("arm", 1.0)]

    checks.connection_closed(local, (RIGHT_IP, 7000), 2.0)
    assert pair.state is PairState.FAILED and not checks.is_open(local, (RIGHT_IP, 7000))
    assert owner.calls[-1] == ("check_failed", 2.0)


def test_a_failed_connection_fails_its_pair_unless_the_peer_connected_meanwhile() -> None:
    owner = _Owner()
    checks = owner.checks()
    failing, simultaneous = _tcp_pair(owner), _tcp_pair(owner, simultaneous=True)
    for pair in (failing, simultaneous):
        checks.open_connection(pair)
    first, second = checks.connections_to_open()
    checks.connection_accepted(simultaneous.base, simultaneous.remote_address)

    checks.connection_failed(first.connection_id, 1.0)
    checks.connection_failed(second.connection_id, 2.0)
    checks.connection_failed(second.connection_id, 3.0)  # stale news: nothing happens

    assert failing.state is PairState.FAILED
    assert simultaneous.state is PairState.IN_PROGRESS
    assert list(owner.checklists[0].triggered) == [simultaneous]
    assert owner.calls == [("check_failed", 1.0), ("arm", 2.0)]


def test_a_connection_that_opens_after_the_agent_closed_is_ignored() -> None:
    a, b = Agent(controlling=True, rng=random.Random(1)), Agent(controlling=False)
    add_tcp(TcpNet(), a, LEFT_IP, 6000, "active")
    a.add_remote_candidate(tcp(RIGHT_IP, 7000, "passive"))
    a.set_remote_credentials(b.local_ufrag, b.local_pwd)
    a.connect(0.0)
    (request,) = a.connections_to_open()
    a.close()
    a.connection_opened(request.connection_id, (LEFT_IP, 50123), 0.1)
    assert a.datagrams_to_send(0.1) == [] and a.checklist.triggered == deque()


def test_a_connection_request_names_the_component_of_its_pair() -> None:
    """The adapter delivers a connection's data as that component's."""
    agent = Agent(controlling=True, components=2, rng=random.Random(1))
    agent.add_host_candidate((LEFT_IP, 0), 2, 65535, tcptype="active")
    agent.end_of_local_candidates()
    agent.set_remote_credentials("abcd", "a" * 22)
    agent.add_remote_candidate(tcp(RIGHT_IP, 7000, "passive", component=2))
    agent.connect(0.0)
    (request,) = agent.connections_to_open()
    assert (request.local, request.remote) == ((LEFT_IP, 0), (RIGHT_IP, 7000))
    assert request.component == 2 and not request.simultaneous


def relayed_pair_agents(
    refuse: Callable[[OpenConnection, float], bool],
) -> tuple[Agent, Agent, TcpNet, list[tuple[float, Address]]]:
    """Two relay-only agents with RFC 6062 candidates (a passive and an active one
    per allocation, both at the relayed address), through a network that refuses
    what ``refuse`` says; also the (time, local address) of every connection asked for."""
    asked: list[tuple[float, Address]] = []

    def record(request: OpenConnection, now: float) -> bool:
        asked.append((now, request.local))
        return refuse(request, now)

    net = TcpNet(refuse=record)
    a = Agent(controlling=True, rng=random.Random(1))
    b = Agent(controlling=False, rng=random.Random(2))
    for agent, relayed in ((a, RELAYED_A), (b, RELAYED_B)):
        net.agents.append(agent)
        agent.add_relayed_candidates(
            relayed, 1, 65535, server=TURN_SERVER, server_transport="tcp", transport="tcp"
        )
        net.listeners[relayed] = agent
        agent.end_of_local_candidates()
    _exchange_and_run(a, b, net)
    return a, b, net, asked


RELAYED_A: Address = ("198.51.100.1", 50000)
RELAYED_B: Address = ("198.51.100.1", 50002)
TURN_SERVER: Address = ("198.51.100.1", 3478)


def test_relayed_connections_refused_at_first_are_asked_for_again_controlling_first() -> None:
    """Both agents' first connections run between the same two relayed addresses;
    a TURN server refuses both when they cross (coturn: 'peer data socket with this
    address already exist', or 'no permission' before the peer's CreatePermission
    is in). The controlling agent asks again RELAY_RETRY_DELAY later and connects
    long before the passive candidates' wait (tcp_passive_wait) would end."""
    a, b, net, asked = relayed_pair_agents(lambda request, now: now == 0.0)
    assert connected(a, b), (a.failure_reason, b.failure_reason)
    assert asked == [(0.0, RELAYED_A), (0.0, RELAYED_B), (RELAY_RETRY_DELAY, RELAYED_A)]
    assert net.now < 2 * RELAY_RETRY_DELAY
    for agent in (a, b):
        pair = agent.selected_pair(1)
        assert pair is not None and pair.local.type is CandidateType.RELAY


def test_the_controlled_agent_retries_later_when_the_controlling_one_cannot() -> None:
    a, b, _, asked = relayed_pair_agents(
        lambda request, now: now == 0.0 or request.local == RELAYED_A
    )
    assert connected(a, b), (a.failure_reason, b.failure_reason)
    later = 3 * RELAY_RETRY_DELAY
    assert asked[2:] == [(RELAY_RETRY_DELAY, RELAYED_A), (later, RELAYED_B)]


def test_a_relayed_connection_is_retried_once_then_the_session_fails() -> None:
    a, b, net, asked = relayed_pair_agents(lambda request, now: True)
    assert ConnectionState.FAILED in (a.state, b.state)
    assert sorted(local for _, local in asked) == [RELAYED_A, RELAYED_A, RELAYED_B, RELAYED_B]
    assert net.now >= a.tcp_passive_wait  # the passive candidates still waited


def test_host_tcp_connections_are_not_retried() -> None:
    """A refused host connection is an answer: only a relay's refusal may be passing."""
    a, b, _ = run(["active"], ["passive"], block_tcp=True)
    assert ConnectionState.FAILED in (a.state, b.state)
    assert not a._tcp_checks.retrying and a._tcp_checks.get_timer() is None


def test_a_retry_is_dropped_when_the_pair_recovered_meanwhile() -> None:
    owner = _Owner()
    owner.controlling = False
    checks = owner.checks()
    relay = dataclasses.replace(tcp(RIGHT_IP, 7000, "passive"), type=CandidateType.RELAY)
    local = tcp(LEFT_IP, 6000, "active")
    pair = owner.checklists[0].add(CandidatePair(local, relay, (LEFT_IP, 0)), True)
    checks.open_connection(pair)
    (request,) = checks.connections_to_open()

    checks.connection_failed(request.connection_id, 1.0)
    assert pair.state is PairState.FAILED and checks.retrying
    assert checks.get_timer() == 1.0 + 3 * RELAY_RETRY_DELAY
    owner.checklists[0].trigger(pair)  # the peer connected and checked meanwhile
    pair.check_started()
    checks.handle_timer(checks.get_timer())
    assert not checks.retrying and list(owner.checklists[0].triggered) == [pair]
    assert checks.connections_to_open() == []
