"""What a peer can make the agent hold: at most ``max_remote_candidates`` remote
candidates per component and ``max_pairs`` pairs, the lowest-priority ones pruned
(RFC 8445 6.1.2.5), never a pair being checked or working."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ice
from ice.agent.agent import Agent
from ice.agent.candidate import Candidate, CandidateType
from ice.agent.checklist import CandidatePair, PairState, protected
from ice.attrs import IceControlling, Priority, UseCandidate, Username, XorMappedAddress
from ice.constants import BINDING_REQUEST, BINDING_SUCCESS
from ice.machine import Address, Transmit
from ice.stun.credentials import short_term_key
from tests.agent.test_agent import LEFT, RIGHT, connected, host, make_pair, signal
from tests.support.netsim import Network

PEER_UFRAG, PEER_PWD = "peer", "peer-password-22-chars"


def check_from(agent: Agent, priority: int, *extra: object) -> bytes:
    """A check the agent's authenticated peer sends it."""
    request = ice.Message.build(
        BINDING_REQUEST,
        Username(f"{agent.local_ufrag}:{PEER_UFRAG}"),
        Priority(priority),
        IceControlling(1),
        *extra,  # type: ignore[arg-type]
    )
    request.add_integrity(short_term_key(agent.local_pwd))
    request.add_fingerprint()
    return request.raw


def flood_address(n: int) -> Address:
    return (f"10.66.{n // 200}.{n % 200 + 1}", 20000 + n)


def signalled(address: Address, priority: int, component: int = 1) -> Candidate:
    return Candidate(
        foundation=f"f{address[1]}",
        component=component,
        transport="udp",
        priority=priority,
        host=address[0],
        port=address[1],
        type=CandidateType.HOST,
    )


def remote_priorities(agent: Agent) -> set[int]:
    return {c.priority for c in agent.remote_candidates}


class _Flooder:
    """A peer that knows the password and checks from thousands of addresses at once."""

    def __init__(self, target: Agent, priorities: list[int]) -> None:
        self.addresses = [flood_address(n) for n in range(len(priorities))]
        self._out = [
            Transmit(check_from(target, priority), RIGHT, source)
            for source, priority in zip(self.addresses, priorities, strict=True)
        ]
        self.received = 0

    def receive_datagram(self, data: bytes, addr: Address, now: float, *, local: Address) -> None:
        self.received += 1  # answers and checks: it never answers back

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


def test_5000_peer_reflexive_candidates_keep_the_lists_at_the_cap_and_the_connection_succeeds() -> (
    None
):
    net = Network(latency=0.005)
    a, b = make_pair()
    rng = random.Random(15)
    flood = rng.sample(range(1, 2**31), 5000)  # distinct, some above a's host candidate
    ours = a.local_candidates[0]
    assert 0 < sum(p > ours.priority for p in flood) < 99
    flooder = _Flooder(b, flood)
    net.add_host(a, [LEFT], name="a")
    net.add_host(b, [RIGHT], name="b")
    net.add_host(flooder, flooder.addresses, name="flooder")
    highest: list[int] = []

    def within_caps() -> bool:
        highest.append(len(b.checklist.pairs))
        assert len(b.remote_candidates) <= 100 and len(b.checklist.pairs) <= 100
        return False

    net.run(until=lambda: within_caps() or flooder.received == 5000, max_time=5)
    assert len(b.remote_candidates) == len(b.checklist.pairs) == 100
    # the 100 highest-priority ones of the 5,000 stay, every one a triggered check
    assert remote_priorities(b) == set(sorted(flood)[-100:])
    assert len(b.checklist.triggered) == 100

    # now the real peer signals: its host candidate outranks all but a few of them
    signal(a, b, net.now)
    assert ours.priority in remote_priorities(b) and len(b.remote_candidates) == 100
    net.run(until=lambda: within_caps() or connected(a, b), max_time=60)
    assert max(highest) == 100
    pair = b.selected_pair(1)
    assert pair is not None and pair.remote_address == LEFT
    # it waited behind the triggered checks of at most 100 pairs, one per Ta: with
    # all 5,000 kept it would have been 250 s
    assert net.now < 100 * b.ta + 1


def test_at_the_limit_a_signalled_candidate_takes_the_place_of_the_lowest_or_is_left_out() -> None:
    b = Agent(controlling=False, rng=random.Random(2), max_remote_candidates=3)
    b.add_local_candidate(host(RIGHT), RIGHT)
    for n, priority in enumerate((300, 100, 200)):
        b.add_remote_candidate(signalled(("10.1.0.1", 1000 + n), priority))
    assert remote_priorities(b) == {100, 200, 300}
    b.add_remote_candidate(signalled(("10.1.0.1", 1003), 50))  # ranks lowest: left out
    b.add_remote_candidate(signalled(("10.1.0.1", 1004), 100))  # a tie keeps the one held
    assert remote_priorities(b) == {100, 200, 300}
    b.add_remote_candidate(signalled(("10.1.0.1", 1005), 250))
    assert remote_priorities(b) == {200, 250, 300}
    # its pair went with it
    assert {p.remote.priority for p in b.checklist.pairs} == {200, 250, 300}
    assert b.checklist.find(RIGHT, ("10.1.0.1", 1001), 1) is None
    # each component has its own limit
    b2 = Agent(controlling=False, components=2, max_remote_candidates=1, rng=random.Random(2))
    b2.add_remote_candidate(signalled(("10.1.0.1", 1000), 5, component=1))
    b2.add_remote_candidate(signalled(("10.1.0.1", 1001), 5, component=2))
    assert len(b2.remote_candidates) == 2


def test_a_pair_being_checked_or_working_is_never_pruned() -> None:
    net = Network(latency=0.005)
    a, b = make_pair(max_remote_candidates=2, max_pairs=2)
    net.add_host(a, [LEFT])
    net.add_host(b, [RIGHT])
    signal(a, b)
    net.run(until=lambda: connected(a, b), max_time=5)
    selected = b.selected_pair(1)
    assert selected is not None and selected.remote.priority < 2**31 - 1
    now = net.now
    for n in range(10):  # every one outranks the selected pair's remote candidate
        b.receive_datagram(check_from(b, 2**31 - 1 - n), flood_address(n), now, local=RIGHT)
    assert selected in b.checklist.pairs and b.selected_pair(1) is selected
    assert LEFT in {c.address for c in b.remote_candidates}
    assert len(b.remote_candidates) == len(b.checklist.pairs) == 2
    # the newcomer that got the other place is being checked: once both are, the
    # next ones are refused, however high they rank
    for _ in range(3):
        net.run(until=lambda: all(protected(p) for p in b.checklist.pairs), max_time=now + 1)
    held = set(b.checklist.pairs)
    b.receive_datagram(check_from(b, 2**31 - 1), flood_address(99), net.now, local=RIGHT)
    assert set(b.checklist.pairs) == held
    assert flood_address(99) not in {c.address for c in b.remote_candidates}


def test_the_limits_are_checked_and_reach_the_agent_through_connection() -> None:
    with pytest.raises(ValueError, match="max_pairs"):
        Agent(controlling=True, max_pairs=0)
    with pytest.raises(ValueError, match="max_remote_candidates"):
        Agent(controlling=True, max_remote_candidates=0)
    unlimited = Agent(controlling=True, max_remote_candidates=None, max_pairs=None)
    for n in range(150):
        unlimited.add_remote_candidate(signalled(flood_address(n), n + 1))
    assert len(unlimited.remote_candidates) == 150
    conn = ice.Connection(ice_controlling=True, max_remote_candidates=7, max_pairs=9)
    assert conn.agent.max_remote_candidates == 7 and conn.agent.checklist.max_pairs == 9
    default = ice.Connection(ice_controlling=False)
    assert default.agent.max_remote_candidates == default.agent.max_pairs == 100


# -- the property: random arrival never breaks the caps or prunes what is protected

_OTHER: Address = ("10.0.0.2", 6001)  # a second local candidate: two pairs per remote
_SOURCES = [flood_address(n) for n in range(12)]

_steps = st.lists(
    st.one_of(
        st.tuples(  # a check from a source, with its PRIORITY, maybe USE-CANDIDATE
            st.just("check"),
            st.sampled_from(_SOURCES),
            st.integers(1, 2**31 - 1),
            st.booleans(),
            st.sampled_from([RIGHT, _OTHER]),
        ),
        st.tuples(  # a signalled candidate (of component 2 when the flag is set)
            st.just("signal"),
            st.sampled_from(_SOURCES),
            st.integers(1, 2**31 - 1),
            st.booleans(),
            st.just(RIGHT),
        ),
        st.tuples(  # one of the agent's checks answered (which one: the number)
            st.just("answer"),
            st.just(RIGHT),
            st.integers(0, 20),
            st.just(False),
            st.just(RIGHT),
        ),
        st.tuples(  # time passes (ms): checks go out, time out, fail
            st.just("time"),
            st.just(RIGHT),
            st.integers(1, 4000),
            st.just(False),
            st.just(RIGHT),
        ),
    ),
    max_size=60,
)


def _answer(request: Transmit) -> bytes:
    check = ice.Message.decode(request.data)
    assert request.source is not None
    response = ice.Message.build(
        BINDING_SUCCESS, XorMappedAddress(*request.source), transaction_id=check.transaction_id
    )
    response.add_integrity(short_term_key(PEER_PWD))
    response.add_fingerprint()
    return response.raw


def _consistent(agent: Agent, caps: tuple[int, int]) -> None:
    max_remote, max_pairs = caps
    checklist = agent.checklist
    for component in (1, 2):
        assert sum(c.component == component for c in agent.remote_candidates) <= max_remote
    assert len(checklist.pairs) <= max_pairs
    priorities = [p.priority for p in checklist.pairs]
    assert priorities == sorted(priorities, reverse=True)
    remote = {(c.address, c.component): c for c in agent.remote_candidates}
    for pair in checklist.pairs:
        assert remote[(pair.remote_address, pair.component)] is pair.remote
        assert checklist.find(pair.base, pair.remote_address, pair.component) is pair
    assert all(p in checklist.pairs for p in checklist.triggered)


@settings(max_examples=150, deadline=None)
@given(_steps, st.integers(1, 4), st.integers(1, 6), st.booleans())
def test_random_arrival_keeps_the_caps_and_never_prunes_a_protected_pair(
    steps: list[tuple[str, Address, int, bool, Address]],
    max_remote: int,
    max_pairs: int,
    controlling: bool,
) -> None:
    agent = Agent(
        controlling=controlling,
        components=2,
        rng=random.Random(3),
        max_remote_candidates=max_remote,
        max_pairs=max_pairs,
    )
    agent.add_local_candidate(host(RIGHT), RIGHT)
    agent.add_local_candidate(host(_OTHER, preference=1000), _OTHER)
    agent.add_local_candidate(host(("10.0.0.2", 6002), component=2), ("10.0.0.2", 6002))
    agent.end_of_local_candidates()
    agent.set_remote_credentials(PEER_UFRAG, PEER_PWD)
    agent.connect(0.0)
    now = 0.0
    sent: list[Transmit] = []
    for kind, source, priority, use_candidate, local in steps:
        before: set[CandidatePair] = {p for p in agent.checklist.pairs if protected(p)}
        if kind == "check":
            extra = (UseCandidate(),) if use_candidate else ()
            agent.receive_datagram(check_from(agent, priority, *extra), source, now, local=local)
        elif kind == "signal":
            component = 2 if use_candidate else 1
            agent.add_remote_candidate(signalled(source, priority, component), now)
        elif kind == "answer" and sent:
            request = sent.pop(priority % len(sent))
            if ice.Message.decode(request.data).type == BINDING_REQUEST:
                agent.receive_datagram(_answer(request), request.addr, now, local=request.source)
        elif kind == "time":
            now += priority / 1000
            while (timer := agent.get_timer()) is not None and timer <= now:
                agent.handle_timer(timer)
        sent.extend(agent.datagrams_to_send(now))
        _consistent(agent, (max_remote, max_pairs))
        pairs = set(agent.checklist.pairs)
        assert before <= pairs, "a protected pair was pruned"
    for pair in agent.checklist.pairs:
        assert pair.state in PairState
    for component in (1, 2):
        selected = agent.selected_pair(component)
        assert selected is None or selected in agent.checklist.pairs
