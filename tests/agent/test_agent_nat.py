"""Two agents behind NATs of every classic kind, with a STUN server, under virtual time.

The expectations are the textbook ones (the seed's explainer): server-reflexive
candidates and hole punching connect every pair of cone NATs, a symmetric NAT
connects only to a peer whose NAT filters on the address alone (or not at all),
and two symmetric NATs need a relay.
"""

from __future__ import annotations

import random

import pytest

from ice.agent.agent import Agent
from ice.agent.candidate import CandidateType
from ice.agent.events import ConnectionState
from ice.machine import Address
from ice.stun.nat import FilteringBehavior, MappingBehavior
from ice.stun.server import StunServer
from tests.agent.test_agent import connected, host
from tests.support.netsim import Network, SimNat
from tests.support.relay_sim import RelayedAgent, SimTurnServer

EIM = MappingBehavior.ENDPOINT_INDEPENDENT
APDM = MappingBehavior.ADDRESS_AND_PORT_DEPENDENT
EIF = FilteringBehavior.ENDPOINT_INDEPENDENT
ADF = FilteringBehavior.ADDRESS_DEPENDENT
APDF = FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT

KINDS = {
    "full cone": (EIM, EIF),
    "restricted cone": (EIM, ADF),
    "port-restricted cone": (EIM, APDF),
    "symmetric": (APDM, APDF),
}
STUN: Address = ("198.51.100.1", 3478)
LEFT: Address = ("192.168.1.10", 5000)
RIGHT: Address = ("192.168.2.20", 6000)


def run(left_kind: str | None, right_kind: str | None) -> tuple[Agent, Agent, Network]:
    net = Network(latency=0.01)
    net.add_host(StunServer(), [STUN], name="stun")
    a = Agent(controlling=True, rng=random.Random(1))
    b = Agent(controlling=False, rng=random.Random(2))
    for agent, address, kind, public in (
        (a, LEFT, left_kind, "203.0.113.1"),
        (b, RIGHT, right_kind, "203.0.113.2"),
    ):
        nat = None
        if kind is not None:
            mapping, filtering = KINDS[kind]
            nat = net.add_nat(SimNat(public, mapping=mapping, filtering=filtering))
        net.add_host(agent, [address], behind=nat)
        agent.add_local_candidate(host(address), address)
        agent.add_stun_server(STUN)
        agent.gather(net.now)
    net.run(until=lambda: a.gathering_state == b.gathering_state == "complete", max_time=10)
    a.set_remote_credentials(b.local_ufrag, b.local_pwd)
    b.set_remote_credentials(a.local_ufrag, a.local_pwd)
    for x, y in ((a, b), (b, a)):
        for candidate in y.local_candidates:
            x.add_remote_candidate(candidate, net.now)
        x.add_remote_candidate(None, net.now)
    a.connect(net.now)
    b.connect(net.now)
    failed = (ConnectionState.FAILED,)
    net.run(
        until=lambda: connected(a, b) or a.state in failed or b.state in failed,
        max_time=net.now + 60,
    )
    return a, b, net


CONNECTS = [
    ("full cone", "full cone"),
    ("full cone", "restricted cone"),
    ("restricted cone", "port-restricted cone"),
    ("port-restricted cone", "port-restricted cone"),
    ("symmetric", "full cone"),
    ("symmetric", "restricted cone"),
    ("full cone", "symmetric"),
    (None, "symmetric"),
]
FAILS = [
    ("symmetric", "port-restricted cone"),
    ("port-restricted cone", "symmetric"),
    ("symmetric", "symmetric"),
]


@pytest.mark.parametrize(("left", "right"), CONNECTS)
def test_these_nats_connect_without_a_relay(left: str | None, right: str | None) -> None:
    a, b, _ = run(left, right)
    assert connected(a, b), (a.state, a.failure_reason, b.state, b.failure_reason)
    for agent in (a, b):
        pair = agent.selected_pair(1)
        assert pair is not None and pair.nominated


def test_behind_cone_nats_the_server_reflexive_candidates_are_gathered_and_used() -> None:
    a, b, _ = run("port-restricted cone", "port-restricted cone")
    for agent, public in ((a, "203.0.113.1"), (b, "203.0.113.2")):
        srflx = [c for c in agent.local_candidates if c.type is CandidateType.SRFLX]
        assert [c.host for c in srflx] == [public]
        assert srflx[0].related_address is not None
    pair = a.selected_pair(1)
    assert pair is not None and pair.remote.host == "203.0.113.2"


@pytest.mark.parametrize(("left", "right"), FAILS)
def test_these_nats_need_a_relay(left: str, right: str) -> None:
    a, b, _ = run(left, right)
    assert a.state is ConnectionState.FAILED or b.state is ConnectionState.FAILED
    failed = a if a.state is ConnectionState.FAILED else b
    assert "no working candidate pair" in failed.failure_reason


def test_a_dead_stun_server_only_costs_its_own_timeout() -> None:
    net = Network()
    agent = Agent(controlling=True, rng=random.Random(1), gather_timeout=2.0)
    net.add_host(agent, [LEFT])
    agent.add_local_candidate(host(LEFT), LEFT)
    agent.add_stun_server(("198.51.100.99", 3478))  # nobody there
    agent.gather(0.0)
    net.run(until=lambda: agent.gathering_state == "complete", max_time=10)
    assert net.now == pytest.approx(2.0)
    assert [c.type for c in agent.local_candidates] == [CandidateType.HOST]


# -- with our TURN server in the network

TURN: Address = ("198.51.100.2", 3478)
TURN_USERS = {"left": "left-secret", "right": "right-secret"}


def run_with_relay(
    left_kind: str | None, right_kind: str | None, *, relay_only: bool = False
) -> tuple[Agent, Agent, Network, SimTurnServer]:
    net = Network(latency=0.01)
    net.add_host(StunServer(), [STUN], name="stun")
    turn = SimTurnServer(net, TURN, TURN_USERS)
    a = Agent(controlling=True, rng=random.Random(1))
    b = Agent(controlling=False, rng=random.Random(2))
    relayed = []
    for agent, name, address, kind, public in (
        (a, "left", LEFT, left_kind, "203.0.113.1"),
        (b, "right", RIGHT, right_kind, "203.0.113.2"),
    ):
        nat = None
        if kind is not None:
            mapping, filtering = KINDS[kind]
            nat = net.add_nat(SimNat(public, mapping=mapping, filtering=filtering))
        machine = RelayedAgent(agent, address, TURN, name, TURN_USERS[name])
        net.add_host(machine, [address], behind=nat, name=name)
        if not relay_only:
            agent.add_local_candidate(host(address), address)
            agent.add_stun_server(STUN)
        machine.allocate(net.now)
        relayed.append(machine)
    net.run(until=lambda: all(m.relayed is not None for m in relayed), max_time=10)
    for agent in (a, b):
        agent.gather(net.now)
    net.run(until=lambda: a.gathering_state == b.gathering_state == "complete", max_time=20)
    a.set_remote_credentials(b.local_ufrag, b.local_pwd)
    b.set_remote_credentials(a.local_ufrag, a.local_pwd)
    for x, y in ((a, b), (b, a)):
        for candidate in y.local_candidates:
            x.add_remote_candidate(candidate, net.now)
        x.add_remote_candidate(None, net.now)
    a.connect(net.now)
    b.connect(net.now)
    failed = (ConnectionState.FAILED,)
    net.run(
        until=lambda: connected(a, b) or a.state in failed or b.state in failed,
        max_time=net.now + 60,
    )
    return a, b, net, turn


@pytest.mark.parametrize(("left", "right"), FAILS)
def test_a_relay_connects_what_hole_punching_cannot(left: str, right: str) -> None:
    a, b, _, turn = run_with_relay(left, right)
    assert connected(a, b), (a.state, a.failure_reason, b.state, b.failure_reason)
    pair = a.selected_pair(1)
    assert pair is not None
    assert CandidateType.RELAY in (pair.local.type, pair.remote.type)
    assert turn.core.allocation_count == 2


@pytest.mark.parametrize(("left", "right"), CONNECTS[:4])
def test_with_a_relay_cone_nats_still_connect_directly(left: str, right: str) -> None:
    a, b, _, _ = run_with_relay(left, right)
    assert connected(a, b)
    pair = a.selected_pair(1)
    assert pair is not None and CandidateType.RELAY not in (pair.local.type, pair.remote.type)


@pytest.mark.parametrize("kind", [None, *KINDS])
def test_relay_only_agents_connect_through_the_turn_server(kind: str | None) -> None:
    a, b, net, turn = run_with_relay(kind, kind, relay_only=True)
    assert connected(a, b), (a.state, a.failure_reason, b.state, b.failure_reason)
    for agent in (a, b):
        assert {c.type for c in agent.local_candidates} == {CandidateType.RELAY}
    relays = {alloc.relays[1] for alloc in turn.core.allocations()}
    pair = a.selected_pair(1)
    assert pair is not None and (pair.local.host, pair.local.port) in relays
    # the checks went through the server: peers' datagrams reached the relay addresses
    assert any(p.receiver in relays for p in net.log if p.delivered)
