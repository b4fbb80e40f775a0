"""The sans-I/O ICE agent: two agents on the in-memory network, under virtual time."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ice
from ice.agent.agent import Agent
from ice.agent.candidate import Candidate, CandidateType, candidate_priority, foundation
from ice.agent.checklist import PairState
from ice.agent.events import (
    AgentEvent,
    ConnectionState,
    ConnectionStateChanged,
    LocalCandidate,
    RoleChanged,
    SelectedPairChanged,
)
from ice.constants import BINDING_REQUEST, AttrType
from ice.machine import Address
from tests.support.netsim import Network

LEFT: Address = ("10.0.0.1", 5000)
RIGHT: Address = ("10.0.0.2", 6000)


def host(address: Address, component: int = 1, preference: int = 65535) -> Candidate:
    return Candidate(
        foundation=foundation(CandidateType.HOST, address[0], None, "udp"),
        component=component,
        transport="udp",
        priority=candidate_priority(CandidateType.HOST, preference, component),
        host=address[0],
        port=address[1],
        type=CandidateType.HOST,
    )


def make_pair(
    *, left: Sequence[Address] = (LEFT,), right: Sequence[Address] = (RIGHT,), **options: object
) -> tuple[Agent, Agent]:
    a = Agent(controlling=True, rng=random.Random(1), **options)  # type: ignore[arg-type]
    b = Agent(controlling=False, rng=random.Random(2), **options)  # type: ignore[arg-type]
    for agent, addresses in ((a, left), (b, right)):
        for address in addresses:
            agent.add_local_candidate(host(address), address)
        agent.end_of_local_candidates()
    return a, b


def signal(a: Agent, b: Agent, now: float = 0.0) -> None:
    """Exchange credentials and candidates (no trickle), then start both."""
    a.set_remote_credentials(b.local_ufrag, b.local_pwd)
    b.set_remote_credentials(a.local_ufrag, a.local_pwd)
    for x, y in ((a, b), (b, a)):
        for candidate in y.local_candidates:
            x.add_remote_candidate(candidate, now)
        x.add_remote_candidate(None, now)
    a.connect(now)
    b.connect(now)


def events(agent: Agent) -> list[AgentEvent]:
    out = []
    while (event := agent.next_event()) is not None:
        out.append(event)
    return out


def states(seen: list[AgentEvent]) -> list[ConnectionState]:
    return [e.state for e in seen if isinstance(e, ConnectionStateChanged)]


def connected(*agents: Agent) -> bool:
    return all(a.state in (ConnectionState.CONNECTED, ConnectionState.COMPLETED) for a in agents)


def test_two_agents_connect_over_host_candidates_in_one_round_trip_and_a_half() -> None:
    net = Network(latency=0.005)
    a, b = make_pair()
    net.add_host(a, [LEFT], name="left")
    net.add_host(b, [RIGHT], name="right")
    signal(a, b)

    net.run(until=lambda: connected(a, b), max_time=5)

    # check, response (+ triggered check), nomination: ~4 one-way latencies, not Ta-bound
    assert net.now <= 0.025
    seen_a, seen_b = events(a), events(b)
    assert states(seen_a)[:2] == [ConnectionState.CHECKING, ConnectionState.CONNECTED] or states(
        seen_a
    )[:2] == [ConnectionState.CHECKING, ConnectionState.COMPLETED]
    for agent, seen, remote in ((a, seen_a, RIGHT), (b, seen_b, LEFT)):
        selected = [e for e in seen if isinstance(e, SelectedPairChanged)]
        assert len(selected) == 1 and selected[0].remote.address == remote
        pair = agent.selected_pair(1)
        assert pair is not None and pair.nominated and pair.remote_address == remote
    assert any(isinstance(e, LocalCandidate) for e in seen_a)


def test_checks_carry_the_rfc_8445_attributes() -> None:
    a, b = make_pair()
    signal(a, b)
    (check,) = a.datagrams_to_send(0.0)
    request = ice.Message.decode(check.data)
    assert request.type == BINDING_REQUEST and check.source == LEFT and check.addr == RIGHT
    assert ice.Username.get_from(request).value == f"{b.local_ufrag}:{a.local_ufrag}"  # type: ignore[union-attr]
    assert ice.IceControlling.get_from(request).value == a.tie_breaker  # type: ignore[union-attr]
    assert ice.Priority.get_from(request) is not None
    request.check_integrity(ice.short_term_key(b.local_pwd))
    request.check_fingerprint()


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        ("no-integrity", 400),
        ("wrong-password", 401),
        ("wrong-username", 401),
    ],
)
def test_bad_checks_are_refused_with_400_or_401(mutate: str, code: int) -> None:
    a, b = make_pair()
    signal(a, b)
    key = ice.short_term_key(b.local_pwd)
    username = f"{b.local_ufrag}:{a.local_ufrag}"
    if mutate == "wrong-password":
        key = ice.short_term_key("not the password at all")
    if mutate == "wrong-username":
        username = f"someoneelse:{a.local_ufrag}"
    request = ice.Message.build(BINDING_REQUEST, ice.Username(username), ice.Priority(1))
    if mutate != "no-integrity":
        request.add_integrity(key)
    request.add_fingerprint()
    b.datagrams_to_send(0.0)
    b.receive_datagram(request.raw, LEFT, 0.0, local=RIGHT)
    (answer,) = b.datagrams_to_send(0.0)
    error = ice.ErrorCodeAttribute.get_from(ice.Message.decode(answer.data))
    assert error is not None and error.code == code


def test_role_conflict_is_resolved_by_the_tie_breaker_both_ways() -> None:
    net = Network()
    a = Agent(controlling=True, rng=random.Random(1), tie_breaker=5)
    b = Agent(controlling=True, rng=random.Random(2), tie_breaker=9)
    for agent, address in ((a, LEFT), (b, RIGHT)):
        agent.add_local_candidate(host(address), address)
        agent.end_of_local_candidates()
    net.add_host(a, [LEFT])
    net.add_host(b, [RIGHT])
    signal(a, b)
    net.run(until=lambda: connected(a, b), max_time=5)
    assert b.controlling and not a.controlling  # the larger tie-breaker keeps control
    assert RoleChanged(False) in events(a)

    net = Network()
    a = Agent(controlling=False, rng=random.Random(1), tie_breaker=5)
    b = Agent(controlling=False, rng=random.Random(2), tie_breaker=9)
    for agent, address in ((a, LEFT), (b, RIGHT)):
        agent.add_local_candidate(host(address), address)
        agent.end_of_local_candidates()
    net.add_host(a, [LEFT])
    net.add_host(b, [RIGHT])
    signal(a, b)
    net.run(until=lambda: connected(a, b), max_time=5)
    assert b.controlling and not a.controlling


def test_aggressive_nomination_selects_with_the_first_check() -> None:
    net = Network()
    a, b = make_pair(nomination="aggressive")
    net.add_host(a, [LEFT])
    net.add_host(b, [RIGHT])
    signal(a, b)
    net.run(until=lambda: connected(a, b), max_time=5)
    first = ice.Message.decode(net.log[0].data)
    assert int(AttrType.USE_CANDIDATE) in first


def test_no_route_fails_once_both_sides_are_done() -> None:
    net = Network()
    a, b = make_pair()
    net.add_host(a, [LEFT])  # the right agent is not on the network at all
    signal(a, b)
    net.run(until=lambda: a.state is ConnectionState.FAILED, max_time=60)
    assert "no working candidate pair" in a.failure_reason


def test_consent_loss_disconnects_then_fails_and_recovery_reconnects() -> None:
    net = Network()
    a, b = make_pair()
    net.add_host(a, [LEFT])
    host_b = net.add_host(b, [RIGHT])
    signal(a, b)
    net.run(until=lambda: connected(a, b), max_time=5)
    events(a)

    # the peer stops answering: disconnected after ~8 s of silence
    machine = host_b.machine
    host_b.machine = _Deaf(machine)  # type: ignore[assignment]
    start = net.now
    net.run(until=lambda: a.state is ConnectionState.DISCONNECTED, max_time=start + 20)
    assert 7.9 <= net.now - start <= 8.1 + 0.01
    host_b.machine = machine  # answers again: back to connected at the next consent check
    net.run(until=lambda: connected(a), max_time=start + 20)
    assert a.state in (ConnectionState.CONNECTED, ConnectionState.COMPLETED)

    host_b.machine = _Deaf(machine)  # type: ignore[assignment]
    start = net.now
    net.run(until=lambda: a.state is ConnectionState.FAILED, max_time=start + 60)
    assert 29 <= net.now - start <= 36
    assert a.selected_pair(1) is None  # no more sending without consent


class _Wrapped:
    """An agent on the network as it is; subclasses change what it hears."""

    def __init__(self, inner: Agent) -> None:
        self.inner = inner

    def receive_datagram(self, data: bytes, addr: Address, now: float, *, local: Address) -> None:
        self.inner.receive_datagram(data, addr, now, local=local)

    def datagrams_to_send(self, now: float) -> list[ice.Transmit]:
        return self.inner.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        return self.inner.get_timer()

    def handle_timer(self, now: float) -> None:
        self.inner.handle_timer(now)


class _Deaf(_Wrapped):
    """Wraps an agent so that it hears nothing (and so answers nothing)."""

    def receive_datagram(self, data: bytes, addr: Address, now: float, *, local: Address) -> None:
        pass


def test_trickled_candidates_in_any_order_connect() -> None:
    """Remote candidates arrive one by one after connect(); end-of-candidates last."""
    net = Network()
    a, b = make_pair(left=(LEFT, ("10.0.0.3", 5001)), right=(RIGHT,))
    net.add_host(a, [LEFT, ("10.0.0.3", 5001)])
    net.add_host(b, [RIGHT])
    a.set_remote_credentials(b.local_ufrag, b.local_pwd)
    b.set_remote_credentials(a.local_ufrag, a.local_pwd)
    a.connect(0.0)
    b.connect(0.0)
    net.run(until=lambda: net.now >= 0.5)  # nothing to check yet: idle, not failed
    assert a.state is ConnectionState.CHECKING and b.state is ConnectionState.CHECKING
    for candidate in reversed(a.local_candidates):
        b.add_remote_candidate(candidate, net.now)
        later = net.now + 0.05
        net.run(until=lambda later=later: net.now >= later)  # type: ignore[misc]
    a.add_remote_candidate(b.local_candidates[0], net.now)
    net.run(until=lambda: connected(a, b), max_time=net.now + 5)
    assert connected(a, b)
    a.add_remote_candidate(None, net.now)
    b.add_remote_candidate(None, net.now)


def test_a_peer_that_checks_before_signalling_its_candidates_becomes_peer_reflexive() -> None:
    net = Network()
    a, b = make_pair()
    net.add_host(a, [LEFT])
    net.add_host(b, [RIGHT])
    a.set_remote_credentials(b.local_ufrag, b.local_pwd)
    b.set_remote_credentials(a.local_ufrag, a.local_pwd)
    a.add_remote_candidate(b.local_candidates[0], 0.0)  # b learns of a only from its checks
    a.connect(0.0)
    b.connect(0.0)
    net.run(until=lambda: connected(a, b), max_time=5)
    pair = b.selected_pair(1)
    assert pair is not None and pair.remote.type is CandidateType.PRFLX


def test_two_components_each_get_a_selected_pair() -> None:
    net = Network()
    a = Agent(controlling=True, components=2, rng=random.Random(1))
    b = Agent(controlling=False, components=2, rng=random.Random(2))
    for agent, ip in ((a, "10.0.0.1"), (b, "10.0.0.2")):
        for component, port in ((1, 7000), (2, 7001)):
            agent.add_local_candidate(host((ip, port), component), (ip, port))
        agent.end_of_local_candidates()
    net.add_host(a, [("10.0.0.1", 7000), ("10.0.0.1", 7001)])
    net.add_host(b, [("10.0.0.2", 7000), ("10.0.0.2", 7001)])
    signal(a, b)
    net.run(until=lambda: connected(a, b), max_time=5)
    for agent in (a, b):
        for component in (1, 2):
            pair = agent.selected_pair(component)
            assert pair is not None and pair.base[1] == 6999 + component


def test_a_lite_peer_is_checked_by_the_full_agent_which_takes_control() -> None:
    net = Network()
    full = Agent(controlling=False, rng=random.Random(1))
    lite = Agent(controlling=False, lite=True, rng=random.Random(2))
    for agent, address in ((full, LEFT), (lite, RIGHT)):
        agent.add_local_candidate(host(address), address)
        agent.end_of_local_candidates()
    net.add_host(full, [LEFT])
    net.add_host(lite, [RIGHT])
    full.set_remote_credentials(lite.local_ufrag, lite.local_pwd, lite=True)
    lite.set_remote_credentials(full.local_ufrag, full.local_pwd)
    for x, y in ((full, lite), (lite, full)):
        x.add_remote_candidate(y.local_candidates[0], 0.0)
        x.add_remote_candidate(None, 0.0)
    full.connect(0.0)
    lite.connect(0.0)
    net.run(until=lambda: connected(full, lite), max_time=5)
    assert full.controlling and not lite.controlling
    sent_by_lite = [p for p in net.log if p.source == RIGHT]
    assert all(ice.Message.decode(p.data).cls != 0 for p in sent_by_lite)  # answers only
    assert lite.state is ConnectionState.COMPLETED


def test_restart_keeps_the_old_pair_until_a_new_one_is_selected() -> None:
    net = Network()
    a, b = make_pair()
    net.add_host(a, [LEFT])
    net.add_host(b, [RIGHT])
    signal(a, b)
    net.run(until=lambda: connected(a, b), max_time=5)
    old_ufrag, old_pair = a.local_ufrag, a.selected_pair(1)
    events(a)

    a.restart(net.now)
    b.restart(net.now)
    assert a.local_ufrag != old_ufrag and a.state is ConnectionState.CHECKING
    assert a.selected_pair(1) is old_pair  # data keeps flowing meanwhile
    assert any(isinstance(e, LocalCandidate) for e in events(a))
    signal(a, b, net.now)
    net.run(until=lambda: connected(a, b), max_time=net.now + 5)

    assert connected(a, b)
    new_pair = a.selected_pair(1)
    assert new_pair is not None and new_pair is not old_pair
    # checks after the restart use the new credentials
    last = ice.Message.decode([p for p in net.log if p.source == LEFT][-1].data)
    username = ice.Username.get_from(last)
    assert username is not None and username.value.endswith(f":{a.local_ufrag}")


class _Lossy(_Wrapped):
    """Wraps an agent: drops every ``nth`` datagram it would receive, and holds every
    other one back for ``hold`` seconds so that they arrive out of order."""

    def __init__(self, inner: Agent, nth: int, hold: float = 0.0) -> None:
        super().__init__(inner)
        self.nth, self.hold = nth, hold
        self.count = 0
        self.held: list[tuple[float, bytes, Address, Address]] = []

    def receive_datagram(self, data: bytes, addr: Address, now: float, *, local: Address) -> None:
        self.count += 1
        if self.count % self.nth == 0:
            return
        if self.hold and self.count % 2:
            self.held.append((now + self.hold, data, addr, local))
            return
        self.inner.receive_datagram(data, addr, now, local=local)

    def get_timer(self) -> float | None:
        timers = [t for t in [self.inner.get_timer(), *(h[0] for h in self.held)] if t is not None]
        return min(timers, default=None)

    def handle_timer(self, now: float) -> None:
        due = [h for h in self.held if h[0] <= now]
        self.held = [h for h in self.held if h[0] > now]
        for _, data, addr, local in due:
            self.inner.receive_datagram(data, addr, now, local=local)
        self.inner.handle_timer(now)


class _LosesFirst(_Wrapped):
    """Wraps an agent: the first datagram it would receive is lost, as behind a NAT
    or a TURN permission the peer has not opened yet."""

    def __init__(self, inner: Agent) -> None:
        super().__init__(inner)
        self.lost: bytes | None = None

    def receive_datagram(self, data: bytes, addr: Address, now: float, *, local: Address) -> None:
        if self.lost is None:
            self.lost = data
            return
        self.inner.receive_datagram(data, addr, now, local=local)


def test_a_lost_check_is_replaced_by_a_triggered_check_not_waited_for() -> None:
    """RFC 8445 7.3.1.4: the peer's check arrives while ours is in progress, so ours
    is cancelled (sent no more) and a new one goes out at once: connected well
    before the first retransmission (check_rto, 250 ms), and the cancelled check
    timing out later fails nothing."""
    net = Network(latency=0.005)
    a, b = make_pair()
    right = _LosesFirst(b)
    net.add_host(a, [LEFT], name="left")
    net.add_host(right, [RIGHT], name="right")  # type: ignore[arg-type]
    signal(a, b)

    net.run(until=lambda: connected(a, b), max_time=5)

    assert net.now < 0.1
    assert right.lost is not None
    lost = ice.Message.decode(right.lost)
    assert lost.type == BINDING_REQUEST
    net.run(until=lambda: net.now > 30, max_time=60)  # past the cancelled check's timeout
    resent = [p for p in net.log if p.source == LEFT and p.data[8:20] == lost.transaction_id]
    assert len(resent) == 1  # the lost send, never retransmitted
    assert connected(a, b)
    pair = a.selected_pair(1)
    assert pair is not None and pair.state is PairState.SUCCEEDED


def test_a_cancelled_check_still_queued_behind_others_never_goes_out() -> None:
    """At most 10 checks are in flight to one address (RFC 8489 6.2): with 11 local
    candidates the 11th waits. Cancelled by the peer's check (7.3.1.4), it is
    dropped, where a quiet transaction would still have been sent once later."""
    lefts = [(f"10.0.1.{i}", 5000) for i in range(1, 12)]  # 11 foundations: none frozen
    a, b = make_pair(left=lefts)
    signal(a, b)
    now, sent_by_a = 0.0, []
    in_progress: list[object] = []
    while len(in_progress) < 11:  # every check of a is lost on the way
        assert now < 2, "a never had 11 checks under way"
        now = a.get_timer() or now
        a.handle_timer(now)
        sent_by_a += a.datagrams_to_send(now)
        in_progress = [p for p in a.checklist.pairs if p.state is PairState.IN_PROGRESS]
    sent_ids = {t.data[8:20] for t in sent_by_a}
    (queued,) = [p for p in a.checklist.pairs if p.transaction_id not in sent_ids]
    queued_id = queued.transaction_id
    check = None
    while check is None:  # b checks each of a's candidates in turn
        assert now < 4, "b never checked the queued pair's base"
        now = b.get_timer() or now
        b.handle_timer(now)
        check = next((t for t in b.datagrams_to_send(now) if t.addr == queued.base), None)
    a.receive_datagram(check.data, RIGHT, now, local=queued.base)
    end = now + 10  # past every other check's timeout, when slots free up
    while (timer := a.get_timer()) is not None and timer < end:
        a.handle_timer(timer)
        sent_by_a += a.datagrams_to_send(timer)
    from_queued = [t for t in sent_by_a if t.source == queued.base]
    assert queued_id not in {t.data[8:20] for t in from_queued}
    assert any(ice.Message.decode(t.data).type == BINDING_REQUEST for t in from_queued)


@pytest.mark.parametrize(("nth", "hold"), [(2, 0.0), (3, 0.02), (4, 0.05)])
def test_loss_and_reordering_only_slow_the_checks_down(nth: int, hold: float) -> None:
    net = Network()
    a, b = make_pair(left=(LEFT, ("10.0.0.3", 5001)), right=(RIGHT, ("10.0.0.4", 6001)))
    net.add_host(_Lossy(a, nth, hold), [LEFT, ("10.0.0.3", 5001)])  # type: ignore[arg-type]
    net.add_host(_Lossy(b, nth + 1, hold), [RIGHT, ("10.0.0.4", 6001)])  # type: ignore[arg-type]
    signal(a, b)
    net.run(until=lambda: connected(a, b), max_time=20)
    assert connected(a, b)
    pa, pb = a.selected_pair(1), b.selected_pair(1)
    assert pa is not None and pb is not None
    assert pa.remote_address == pb.base and pb.remote_address == pa.base


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([0x0001, 0x0101, 0x0111, 0x0011]))
def test_hostile_datagrams_never_break_the_agent(body: bytes, msg_type: int) -> None:
    a, b = make_pair()
    signal(a, b)
    a.datagrams_to_send(0.0)
    body = body[: len(body) - len(body) % 4]
    framed = msg_type.to_bytes(2, "big") + len(body).to_bytes(2, "big") + b"\x21\x12\xa4\x42"
    for data in (body, framed + bytes(12) + body):
        a.receive_datagram(data, RIGHT, 0.1, local=LEFT)
        for transmit in a.datagrams_to_send(0.1):
            ice.Message.decode(transmit.data)  # whatever it answers is well-formed STUN
    assert a.state is ConnectionState.CHECKING


def test_an_authentic_check_with_a_malformed_priority_is_answered_not_fatal() -> None:
    a, b = make_pair()
    signal(a, b)
    b.datagrams_to_send(0.0)
    request = ice.Message.build(BINDING_REQUEST, ice.Username(f"{b.local_ufrag}:{a.local_ufrag}"))
    request.add(int(AttrType.PRIORITY), b"\x01\x02")  # two bytes, not four
    request.add_integrity(ice.short_term_key(b.local_pwd))
    b.receive_datagram(request.raw, ("10.9.9.9", 9999), 0.0, local=RIGHT)
    (answer,) = b.datagrams_to_send(0.0)
    assert ice.Message.decode(answer.data).type == ice.BINDING_SUCCESS


def test_two_data_streams_share_foundations_across_their_check_lists() -> None:
    """RFC 8445 6.1.2.6: a foundation's pairs wait in the first check list only; the
    others are unfrozen when one of that foundation succeeds."""
    net = Network()
    a = Agent(controlling=True, streams=2, rng=random.Random(1))
    b = Agent(controlling=False, streams=2, rng=random.Random(2))
    ports = {0: 7000, 1: 7002}
    for agent, ip in ((a, "10.0.0.1"), (b, "10.0.0.2")):
        for stream, port in ports.items():
            agent.add_local_candidate(host((ip, port)), (ip, port), stream=stream)
        agent.end_of_local_candidates()
    net.add_host(a, [("10.0.0.1", 7000), ("10.0.0.1", 7002)])
    net.add_host(b, [("10.0.0.2", 7000), ("10.0.0.2", 7002)])
    a.set_remote_credentials(b.local_ufrag, b.local_pwd)
    b.set_remote_credentials(a.local_ufrag, a.local_pwd)
    for x, y in ((a, b), (b, a)):
        for stream in (0, 1):
            for candidate in y.local_candidates:
                if candidate.port == ports[stream]:
                    x.add_remote_candidate(candidate, 0.0, stream=stream)
        x.add_remote_candidate(None, 0.0)
    first, second = a.checklists[0].pairs[0], a.checklists[1].pairs[0]
    assert first.foundation == second.foundation
    assert (first.state, second.state) == (PairState.WAITING, PairState.FROZEN)

    a.connect(0.0)
    b.connect(0.0)
    net.run(until=lambda: connected(a, b), max_time=5)

    for agent in (a, b):
        for stream, port in ports.items():
            pair = agent.selected_pair(1, stream=stream)
            assert pair is not None and pair.base[1] == port and pair.stream == stream
    selected = [e for e in events(a) if isinstance(e, SelectedPairChanged)]
    assert sorted(e.stream for e in selected) == [0, 1]


def test_credentials_come_from_the_os_csprng_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an injected generator, ufrag/pwd/tie-breaker are unguessable (RFC 8445 5.3)."""
    drawn: list[int] = []
    real = random.SystemRandom.getrandbits

    def spy(self: random.SystemRandom, k: int) -> int:
        drawn.append(k)
        return real(self, k)

    monkeypatch.setattr(random.SystemRandom, "getrandbits", spy)
    agent = Agent(controlling=True)
    assert 64 in drawn  # the tie-breaker
    assert len(agent.local_pwd) >= 22 and agent.local_pwd != Agent(controlling=True).local_pwd


LEFT2: Address = ("10.0.0.3", 5001)


def test_every_retransmission_of_a_check_leaves_from_its_pairs_base() -> None:
    a, b = make_pair(left=(LEFT, LEFT2), check_rto=0.1)
    signal(a, b)
    sent = a.datagrams_to_send(0.0)
    now = 0.0
    while (timer := a.get_timer()) is not None and timer < 2.0:  # nobody answers
        now = timer
        a.handle_timer(now)
        sent += a.datagrams_to_send(now)
    sources: dict[bytes, set[Address | None]] = {}
    for transmit in sent:
        sources.setdefault(transmit.data, set()).add(transmit.source)
    assert len(sent) > len(sources) == 2  # both pairs' checks, each sent more than once
    assert sorted(len(s) for s in sources.values()) == [1, 1]
    assert set().union(*sources.values()) == {LEFT, LEFT2}
    for data, (source,) in sources.items():
        tid = ice.Message.decode(data).transaction_id
        (pair,) = [p for p in a.checklist.pairs if p.transaction_id == tid]
        assert source == pair.base


def test_checks_queued_before_close_do_not_go_out() -> None:
    a, b = make_pair()
    signal(a, b)  # the first check is queued in the transaction table
    a.close()
    assert a.datagrams_to_send(0.0) == []


@pytest.mark.parametrize(("arrives_on", "state"), [(LEFT, "succeeded"), (LEFT2, "failed")])
def test_a_response_on_another_socket_than_the_checks_base_fails_the_pair(
    arrives_on: Address, state: str
) -> None:
    """RFC 8445 7.2.5.2.1: the response must come back to the base the check left from."""
    a, b = make_pair(left=(LEFT, LEFT2))
    signal(a, b)
    checks = [t for t in a.datagrams_to_send(0.0) if t.source == LEFT]
    assert len(checks) == 1
    b.receive_datagram(checks[0].data, LEFT, 0.01, local=RIGHT)
    tid = ice.Message.decode(checks[0].data).transaction_id
    (answer,) = [
        t for t in b.datagrams_to_send(0.01) if ice.Message.decode(t.data).transaction_id == tid
    ]
    a.receive_datagram(answer.data, RIGHT, 0.02, local=arrives_on)
    pair = a.checklist.find(LEFT, RIGHT, 1)
    assert pair is not None and pair.state == state
