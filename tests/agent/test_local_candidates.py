"""Our own candidates from the adapter's sockets and allocations (`ice.agent.local_candidates`
and `Agent.add_host_candidate` / `add_mapped_address` / `add_relayed_candidates`), and
agents using them in the in-memory network under virtual time. Relayed candidates are
also what tests/support/relay_sim.py gives the agents of tests/agent/test_agent_nat.py."""

from __future__ import annotations

import random

import pytest

from ice.agent.agent import Agent
from ice.agent.candidate import CandidateType, candidate_priority, foundation
from ice.agent.events import ConnectionState, LocalCandidate
from ice.agent.local_candidates import host_candidate, mapped_candidate, relayed_candidates
from ice.agent.tcp import tcp_priority
from ice.machine import Address
from tests.agent.test_agent import connected, events, host, signal
from tests.support.netsim import Network, SimNat

PRIVATE: Address = ("10.0.0.1", 5000)
PUBLIC_IP = "203.0.113.9"
PEER: Address = ("198.51.100.20", 6000)
TURN: Address = ("198.51.100.1", 3478)


def test_a_udp_host_candidate_is_its_socket_with_the_rfc_priority() -> None:
    candidate = host_candidate(PRIVATE, 2, 65000)
    assert candidate == host(PRIVATE, component=2, preference=65000)
    assert candidate.address == PRIVATE and candidate.tcptype is None


def test_tcp_host_candidates_active_on_port_9_and_below_udp() -> None:
    ip = PRIVATE[0]
    built = {
        "active": host_candidate((ip, 0), 1, 65535, tcptype="active"),
        "passive": host_candidate((ip, 7000), 1, 65535, tcptype="passive"),
        "so": host_candidate((ip, 7001), 1, 65535, tcptype="so"),
    }
    assert [(c.port, c.tcptype) for c in built.values()] == [
        (9, "active"),
        (7000, "passive"),
        (7001, "so"),
    ]
    for tcptype, candidate in built.items():
        assert candidate.transport == "tcp" and candidate.type is CandidateType.HOST
        assert candidate.priority == tcp_priority(CandidateType.HOST, tcptype, 65535, 1)  # type: ignore[arg-type]
    # one foundation for the three (same type, IP and transport), not the UDP one's
    assert len({c.foundation for c in built.values()}) == 1
    assert built["so"].foundation != host_candidate(PRIVATE, 1, 65535).foundation
    assert built["active"].priority > built["passive"].priority > built["so"].priority
    assert host_candidate(PRIVATE, 1, 0).priority > built["active"].priority


def test_a_1to1_nat_candidate_is_the_public_ip_with_the_host_port() -> None:
    udp_host = host_candidate(PRIVATE, 1, 65000)
    mapped = mapped_candidate(udp_host, PUBLIC_IP)
    assert mapped.type is CandidateType.SRFLX and mapped.transport == "udp"
    assert mapped.address == (PUBLIC_IP, PRIVATE[1])
    assert (mapped.related_address, mapped.related_port) == PRIVATE
    assert mapped.priority == candidate_priority(CandidateType.SRFLX, 65000, 1)
    # not the foundation of a candidate a STUN server gave the same base
    stun_learnt = foundation(CandidateType.SRFLX, PRIVATE[0], TURN, "udp")
    assert mapped.foundation != stun_learnt


def test_relayed_candidates_of_udp_and_tcp_allocations() -> None:
    (udp,) = relayed_candidates(
        ("2001:db8:0::7", 49152), ("2001:db8::1", 40000), 1, 65535,
        server=TURN, server_transport="tls",
    )  # fmt: skip
    assert udp.address == ("2001:db8::7", 49152)  # canonical: what sockets report
    assert (udp.related_address, udp.related_port) == ("2001:db8::1", 40000)
    assert udp.foundation == foundation(CandidateType.RELAY, "2001:db8::7", TURN, "tls")
    assert udp.priority == candidate_priority(CandidateType.RELAY, 65535, 1)

    passive, active = relayed_candidates(
        ("192.0.2.7", 49153), None, 2, 65000,
        server=TURN, server_transport="tcp", transport="tcp",
    )  # fmt: skip
    assert [(c.tcptype, c.port) for c in (passive, active)] == [("passive", 49153), ("active", 9)]
    for candidate in (passive, active):
        assert candidate.transport == "tcp" and candidate.component == 2
        # the related address hidden: relay-only policy (RFC 9429 3.5.3)
        assert (candidate.related_address, candidate.related_port) == ("0.0.0.0", 9)
        assert candidate.priority == tcp_priority(
            CandidateType.RELAY,
            candidate.tcptype,  # type: ignore[arg-type]
            65000,
            2,
        )
    assert passive.foundation == active.foundation
    assert passive.foundation == foundation(CandidateType.RELAY, "192.0.2.7", TURN, "tcp")
    (hidden6,) = relayed_candidates(("::7", 1), None, 1, 1, server=TURN, server_transport="udp")
    assert (hidden6.related_address, hidden6.related_port) == ("::", 9)
    with pytest.raises(ValueError, match="udp or tcp"):
        relayed_candidates(PRIVATE, None, 1, 1, server=TURN, server_transport="udp", transport="x")


def test_the_agent_adds_what_it_builds_as_local_candidates_with_their_bases() -> None:
    agent = Agent(controlling=True, rng=random.Random(1))
    udp = agent.add_host_candidate(PRIVATE, 1, 65535)
    active = agent.add_host_candidate((PRIVATE[0], 0), 1, 65535, tcptype="active")
    mapped = agent.add_mapped_address(PRIVATE, PUBLIC_IP)
    relayed = agent.add_relayed_candidates(
        ("192.0.2.7", 49153), 1, 65534, server=TURN, server_transport="tcp", transport="tcp"
    )
    assert agent.add_mapped_address(("10.0.0.99", 1), PUBLIC_IP) is None  # no such host
    assert agent.add_mapped_address((PRIVATE[0], 0), PUBLIC_IP) is None  # TCP: not mapped
    assert agent.local_candidates == [udp, active, mapped, *relayed]
    announced = [e.candidate for e in events(agent) if isinstance(e, LocalCandidate)]
    assert announced == agent.local_candidates
    assert mapped is not None and mapped == mapped_candidate(udp, PUBLIC_IP)
    # the relayed TCP pair share the allocation as their base: checks leave from it
    remote = host_candidate(("192.0.2.50", 8000), 1, 65535, tcptype="passive")
    agent.set_remote_credentials("abcd", "a" * 22)
    agent.add_remote_candidate(remote)
    bases = {pair.local: pair.base for pair in agent.checklist.pairs}
    assert bases == {active: (PRIVATE[0], 0), relayed[1]: ("192.0.2.7", 49153)}


@pytest.mark.parametrize("mapped", [True, False])
def test_a_lite_agent_behind_a_1to1_nat_is_reached_only_through_its_mapped_candidate(
    mapped: bool,
) -> None:
    """A cloud VM: ICE-lite (it never checks, so it opens no NAT mapping), its host
    address private, its public IP mapped port for port. The peer's checks to the
    host candidate get answers from the public address (not symmetric: failed);
    only the mapped candidate works."""
    net = Network(latency=0.01)
    nat = net.add_nat(SimNat(PUBLIC_IP, one_to_one=PRIVATE[0]))
    vm = Agent(controlling=False, lite=True, rng=random.Random(1))
    peer = Agent(controlling=True, rng=random.Random(2))
    net.add_host(vm, [PRIVATE], behind=nat, name="vm")
    net.add_host(peer, [PEER], name="peer")
    vm.add_host_candidate(PRIVATE, 1, 65535)
    if mapped:
        vm.add_mapped_address(PRIVATE, PUBLIC_IP)
    peer.add_host_candidate(PEER, 1, 65535)
    for agent in (vm, peer):
        agent.end_of_local_candidates()
    signal(peer, vm)
    net.run(until=lambda: connected(peer) or peer.state is ConnectionState.FAILED, max_time=30)
    to_host = peer.checklist.find(PEER, PRIVATE, 1)
    assert to_host is not None and to_host.state == "failed"
    if not mapped:
        assert peer.state is ConnectionState.FAILED
        return
    assert connected(peer, vm), (peer.state, peer.failure_reason)
    pair = peer.selected_pair(1)
    assert pair is not None and pair.remote.type is CandidateType.SRFLX
    assert pair.remote_address == (PUBLIC_IP, PRIVATE[1])
