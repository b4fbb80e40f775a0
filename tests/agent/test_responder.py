"""CheckResponder on its own: what its boundary with the Agent decides (the RFC 8445 7.3
behaviour itself is tested through the Agent in test_agent.py)."""

from __future__ import annotations

import ice
from ice._codec import IntegrityKey, Message
from ice.agent.candidate import Candidate, CandidateType
from ice.agent.checklist import CandidatePair, CheckList, PairState
from ice.agent.local_candidates import host_candidate
from ice.agent.remote_candidates import RemoteCandidates
from ice.agent.responder import CheckResponder
from ice.attrs import IceControlled, Priority, UseCandidate, Username
from ice.constants import BINDING_REQUEST
from ice.machine import Address
from ice.stun.credentials import short_term_key

BASE: Address = ("10.0.0.1", 7000)
PEER: Address = ("10.0.0.2", 7000)


class Wiring:
    """What an Agent gives its responder, recorded."""

    def __init__(self) -> None:
        self.ufrag, self.pwd = "ours", "our-password-of-22-chars"
        self.controlling = False
        self.tie_breaker = 5
        self.checklists = [CheckList()]
        self.remote = [RemoteCandidates()]
        self.refuse = False  # what an agent at its limit of remote candidates answers
        self.bases = {BASE: (0, host_candidate(BASE, 1, 65535))}
        self.paired: list[CandidatePair] = []
        self.nominated: list[CandidatePair] = []
        self.roles: list[bool] = []
        self.armed: list[float] = []
        self.cancelled: list[CandidatePair] = []
        self.responder = CheckResponder(
            credentials=lambda: (self.ufrag, IntegrityKey(short_term_key(self.pwd))),
            controlling=lambda: self.controlling,
            tie_breaker=lambda: self.tie_breaker,
            lite=False,
            checklists=lambda: self.checklists,
            remote=lambda: self.remote,
            admit=self.admit,
            bases=self.bases,
            pair=self.pair,
            nominated=lambda pair, now: self.nominated.append(pair),
            set_role=self.roles.append,
            cancel_check=self.cancel_check,
            arm=self.armed.append,
        )

    def pair(
        self,
        local: Candidate,
        base: Address,
        remote: Candidate,
        stream: int,
        *,
        incoming: bool = False,
    ) -> CandidatePair | None:
        assert incoming
        pair = self.checklists[stream].add(
            CandidatePair(local, remote, base, stream), self.controlling, []
        )
        if pair is not None:
            self.paired.append(pair)
        return pair

    def cancel_check(self, pair: CandidatePair) -> None:
        self.cancelled.append(pair)
        pair.check_cancelled()  # what the Agent does once its transaction is quiet

    def admit(self, candidate: Candidate, stream: int) -> bool:
        if self.refuse:
            return False
        self.remote[stream].add(candidate)
        return True

    def check(self, *extra: object, ufrag: str | None = None, pwd: str | None = None) -> Message:
        request = Message.build(
            BINDING_REQUEST, Username(f"{ufrag or self.ufrag}:theirs"), Priority(1234), *extra
        )
        request.add_integrity(IntegrityKey(short_term_key(pwd or self.pwd)))
        request.add_fingerprint()
        return request


def answer_type(transmit: ice.Transmit) -> int:
    return Message.decode(transmit.data).type


def test_the_credentials_of_the_moment_authenticate_each_request() -> None:
    w = Wiring()
    old = w.check()
    w.ufrag, w.pwd = "new", "new-password-of-22-chars"  # what an ICE restart does
    w.responder.answer(old, PEER, BASE, 0.0)
    w.responder.answer(w.check(), PEER, BASE, 0.0)
    stale, fresh = w.responder.datagrams_to_send()
    assert answer_type(stale) == ice.BINDING_ERROR
    assert answer_type(fresh) == ice.BINDING_SUCCESS


def test_answers_leave_in_order_from_the_base_they_arrived_on_and_only_once() -> None:
    w = Wiring()
    other: Address = ("10.0.0.1", 7002)  # a socket the agent was not told about
    w.responder.answer(w.check(), PEER, other, 0.0)
    w.responder.answer(w.check(ufrag="wrong"), PEER, BASE, 0.0)
    first, second = w.responder.datagrams_to_send()
    assert (first.source, first.addr, answer_type(first)) == (other, PEER, ice.BINDING_SUCCESS)
    assert (second.source, answer_type(second)) == (BASE, ice.BINDING_ERROR)
    assert w.responder.datagrams_to_send() == []
    # answered, but the unknown socket pairs nothing and learns no candidate
    assert w.paired == [] and list(w.remote[0]) == []


def test_peer_reflexive_candidates_join_the_current_remote_list_with_fresh_foundations() -> None:
    w = Wiring()
    w.responder.answer(w.check(), PEER, BASE, 0.0)
    (first,) = w.remote[0]
    w.remote, w.checklists = [RemoteCandidates()], [CheckList()]  # an ICE restart replaces them
    w.responder.answer(w.check(), PEER, BASE, 1.0)
    (second,) = w.remote[0]
    assert first.type is second.type is CandidateType.PEER_REFLEXIVE
    assert (first.priority, first.address) == (1234, PEER)
    assert first.foundation != second.foundation
    assert [p.remote for p in w.paired] == [first, second]
    assert w.armed == [0.0, 1.0]  # each new pair is triggered, so the pacer must run


def test_a_refused_peer_reflexive_candidate_is_answered_but_neither_paired_nor_checked() -> None:
    w = Wiring()
    w.refuse = True
    w.responder.answer(w.check(UseCandidate()), PEER, BASE, 0.0)
    (answer,) = w.responder.datagrams_to_send()
    assert answer_type(answer) == ice.BINDING_SUCCESS  # RFC 8445 7.3.1.3: answered regardless
    assert w.paired == [] and list(w.remote[0]) == [] and w.armed == [] and w.nominated == []


def test_use_candidate_on_the_controlled_side_marks_the_pair_and_a_conflict_switches_role() -> None:
    w = Wiring()
    w.responder.answer(w.check(UseCandidate()), PEER, BASE, 0.0)
    (pair,) = w.paired
    assert pair.nominated and pair.state is PairState.WAITING and w.nominated == []
    pair.check_started()
    pair.check_succeeded()
    w.responder.answer(w.check(UseCandidate()), PEER, BASE, 0.5)
    assert w.nominated == [pair]
    # both controlled: the higher tie-breaker (ours, read now) takes control
    w.tie_breaker = 9
    w.responder.answer(w.check(IceControlled(7)), PEER, BASE, 1.0)
    assert w.roles == [True]
    assert [answer_type(t) for t in w.responder.datagrams_to_send()] == [ice.BINDING_SUCCESS] * 3


def test_unauthenticated_errors_grow_a_check_by_the_error_code_header_at_most() -> None:
    """A spoofed sender gets no amplification: 400 and 401 drop a reason phrase
    that would not fit, as the STUN server's answers do."""
    w = Wiring()
    unsigned = Message.build(BINDING_REQUEST, Priority(1234), IceControlled(9))  # 36 bytes
    w.responder.answer(unsigned, PEER, BASE, 0.0)
    w.responder.answer(w.check(pwd="not-the-password-22ch"), PEER, BASE, 0.0)
    bad_request, unauthenticated = w.responder.datagrams_to_send()
    error = ice.ErrorCodeAttribute.get_from(Message.decode(bad_request.data))
    assert error is not None and error.code == 400
    assert len(bad_request.data) <= len(unsigned.raw) + 8 + 8  # ERROR-CODE and FINGERPRINT
    assert len(unauthenticated.data) <= len(w.check().raw) + 8


def test_a_check_over_a_pair_in_progress_cancels_its_check_and_triggers_a_new_one() -> None:
    """RFC 8445 7.3.1.4: a new check at once, not the old one's retransmission later."""
    w = Wiring()
    w.responder.answer(w.check(), PEER, BASE, 0.0)
    (pair,) = w.paired
    w.checklists[0].next_check()  # the triggered check goes out...
    pair.check_started()  # ...and is in progress
    w.responder.answer(w.check(), PEER, BASE, 0.2)
    assert w.cancelled == [pair]
    assert pair.state is PairState.WAITING
    assert w.checklists[0].next_check() is pair
    assert w.armed == [0.0, 0.2]


def test_a_check_over_a_tcp_pair_in_progress_leaves_its_check_alone() -> None:
    """Over TCP the check in flight is not lost: it arrives or its connection fails."""
    w = Wiring()
    tcp_base: Address = ("10.0.0.1", 9)
    local = Candidate(
        foundation="t",
        component=1,
        transport="tcp",
        priority=1,
        host=tcp_base[0],
        port=tcp_base[1],
        type=CandidateType.HOST,
        tcptype="passive",
    )
    w.bases[tcp_base] = (0, local)
    w.responder.answer(w.check(), PEER, tcp_base, 0.0)
    (pair,) = w.paired
    w.checklists[0].next_check()
    pair.check_started()
    w.responder.answer(w.check(), PEER, tcp_base, 0.2)
    assert w.cancelled == [] and pair.state is PairState.IN_PROGRESS
    assert w.checklists[0].next_check() is None
