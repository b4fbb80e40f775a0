"""Pair states: the one transition table in ice/agent/checklist.py and the check list's
initial states (RFC 8445 6.1.2.6)."""

from __future__ import annotations

import ast
import itertools
import random
from collections.abc import Callable
from pathlib import Path

import pytest

import ice
from ice.agent.candidate import Candidate, CandidateType, candidate_priority, foundation
from ice.agent.checklist import (
    _TRANSITIONS,
    CandidatePair,
    CheckList,
    PairState,
    PairStateError,
    _Happening,
)
from ice.machine import Address

F, W, P, S, X = (
    PairState.FROZEN,
    PairState.WAITING,
    PairState.IN_PROGRESS,
    PairState.SUCCEEDED,
    PairState.FAILED,
)


def candidate(address: Address, component: int = 1) -> Candidate:
    return Candidate(
        foundation=foundation(CandidateType.HOST, address[0], None, "udp"),
        component=component,
        transport="udp",
        priority=candidate_priority(CandidateType.HOST, 65535, component),
        host=address[0],
        port=address[1],
        type=CandidateType.HOST,
    )


def make_pair(
    local: Address = ("10.0.0.1", 5000),
    remote: Address = ("10.0.0.2", 6000),
    component: int = 1,
    state: PairState = F,
) -> CandidatePair:
    pair = CandidatePair(candidate(local, component), candidate(remote, component), local)
    pair.state = state  # the one place outside checklist.py allowed to: a fixture
    return pair


HAPPENINGS: dict[_Happening, Callable[[CandidatePair], object]] = {
    _Happening.UNFROZEN: CandidatePair.unfreeze,
    _Happening.TRIGGERED: CandidatePair.triggered,
    _Happening.CHECK_STARTED: CandidatePair.check_started,
    _Happening.CHECK_CANCELLED: CandidatePair.check_cancelled,
    _Happening.CONNECTION_REQUESTED: CandidatePair.connection_requested,
    _Happening.CHECK_SUCCEEDED: CandidatePair.check_succeeded,
    _Happening.CHECK_FAILED: CandidatePair.check_failed,
    _Happening.CONNECTION_CLOSED: CandidatePair.connection_closed,
    _Happening.ANSWERED_BY_LITE: CandidatePair.answered_by_lite,
}


def test_every_happening_has_a_method() -> None:
    assert set(HAPPENINGS) == set(_Happening)


@pytest.mark.parametrize(
    ("state", "happening"), list(itertools.product(PairState, _Happening)), ids=str
)
def test_the_table_decides_every_move(state: PairState, happening: _Happening) -> None:
    pair = make_pair(state=state)
    allowed = _TRANSITIONS.get((state, happening))
    if allowed is None:
        with pytest.raises(PairStateError, match=happening.value):
            HAPPENINGS[happening](pair)
        assert pair.state is state  # refused, not half done
    else:
        HAPPENINGS[happening](pair)
        assert pair.state is allowed


@pytest.mark.parametrize(
    ("state", "happening"),
    [
        (W, _Happening.UNFROZEN),  # only a Frozen pair unfreezes
        (F, _Happening.CHECK_SUCCEEDED),  # never checked
        (F, _Happening.CHECK_FAILED),
        (S, _Happening.CONNECTION_CLOSED),  # a valid pair keeps its state; consent decides
        (P, _Happening.ANSWERED_BY_LITE),  # a lite agent never checks
        (S, _Happening.CHECK_CANCELLED),  # only a check in progress is cancelled
    ],
)
def test_moves_rfc_8445_never_makes_are_refused_loudly(
    state: PairState, happening: _Happening
) -> None:
    with pytest.raises(PairStateError):
        HAPPENINGS[happening](make_pair(state=state))


def test_the_rfc_8445_path_of_a_pair() -> None:
    pair = make_pair()
    assert pair.state is F and not pair.valid
    pair.unfreeze()
    pair.check_started()
    assert pair.state is P
    assert pair.check_succeeded() is True and pair.valid
    pair.check_started()  # a nomination on a valid pair
    assert pair.state is S
    assert pair.check_succeeded() is False  # not the first time
    pair.check_failed()  # the nomination failed
    pair.triggered()  # and a triggered check tries again
    assert pair.state is W


def test_a_tcp_pair_checks_again_once_its_new_connection_is_up() -> None:
    pair = make_pair(state=S)
    pair.connection_requested()  # its connection closed: a new one is asked for
    assert pair.state is P


def test_initial_states_one_waiting_pair_per_foundation() -> None:
    """6.1.2.6: the first pair of a foundation waits; others of it, a higher component
    of it, and one whose foundation waits in another check list stay Frozen."""
    first, other = CheckList(), CheckList()
    a = first.add(make_pair(), True)
    same_foundation = first.add(make_pair(local=("10.0.0.1", 5002)), True)
    assert (a.state, same_foundation.state) == (W, F)
    rtcp = CheckList()
    rtp = rtcp.add(make_pair(), True)
    component_2 = rtcp.add(make_pair(local=("10.0.0.1", 5001), component=2), True)
    assert (rtp.state, component_2.state) == (W, F)
    elsewhere = other.add(make_pair(), True, [first])
    assert elsewhere.state is F
    alone = other.add(make_pair(local=("10.0.0.3", 5000)), True, [first])
    assert alone.state is W  # another foundation


def test_a_triggered_failed_pair_waits_and_is_queued_once() -> None:
    checklist = CheckList()
    pair = checklist.add(make_pair(), True)
    pair.check_started()
    pair.check_failed()
    checklist.trigger(pair)
    checklist.trigger(pair)
    assert pair.state is W and list(checklist.triggered) == [pair]
    assert checklist.next_check() is pair


def test_a_success_unfreezes_its_foundation() -> None:
    checklist = CheckList()
    first = checklist.add(make_pair(), True)
    sibling = checklist.add(make_pair(local=("10.0.0.1", 5002)), True)
    first.check_started()
    first.check_succeeded()
    checklist.unfreeze_foundation(first.foundation)
    assert sibling.state is W


def test_no_module_but_checklist_writes_a_pair_state() -> None:
    """h11's rule: every change of state is in one file. Other modules call methods.
    (Where pairs go: the agent and the asyncio adapters; TURN has states of its own.)"""
    package = Path(ice.__file__).parent
    writes = []
    for path in sorted([*package.glob("agent/*.py"), *package.glob("aio/*.py")]):
        if path == package / "agent" / "checklist.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AugAssign | ast.AnnAssign)
                else []
            )
            for target in targets:
                for leaf in ast.walk(target):
                    if (
                        isinstance(leaf, ast.Attribute)
                        and leaf.attr == "state"
                        and not (isinstance(leaf.value, ast.Name) and leaf.value.id == "self")
                    ):
                        writes.append(f"{path.relative_to(package)}:{leaf.lineno}")
    assert writes == []


def ranked_pair(remote_port: int, priority: int) -> CandidatePair:
    remote = Candidate(
        foundation=f"r{remote_port}",
        component=1,
        transport="udp",
        priority=priority,
        host="10.0.0.2",
        port=remote_port,
        type=CandidateType.PRFLX,
    )
    local = candidate(("10.0.0.1", 5000))
    return CandidatePair(local, remote, ("10.0.0.1", 5000))


def test_at_max_pairs_the_lowest_unprotected_pair_makes_room_or_the_newcomer_is_refused() -> None:
    checklist = CheckList(max_pairs=3)
    low, mid, high = (checklist.add(ranked_pair(n, n * 1000), True) for n in (1, 2, 3))
    assert low is not None and mid is not None and high is not None
    for pair in (low, mid, high):
        checklist.trigger(pair)
    assert checklist.add(ranked_pair(9, 500), True) is None  # ranks below them all
    newcomer = checklist.add(ranked_pair(4, 4000), True)
    assert checklist.pairs == [newcomer, high, mid]
    # the pruned pair is gone from the triggered queue and every index
    assert list(checklist.triggered) == [mid, high]
    assert checklist.find(low.base, low.remote_address, 1) is None
    assert checklist.of_remote(low.remote_address, 1) == []
    # a pair being checked or working is never pruned: the next lowest goes instead
    mid.check_started()
    assert checklist.add(ranked_pair(5, 5000), True) is not None
    assert high not in checklist.pairs and mid in checklist.pairs
    # all protected: nothing is pruned, however high the newcomer ranks
    for pair in checklist.pairs:
        if pair.state is not P:
            pair.check_started()
    checklist.pairs[0].check_succeeded()
    held = list(checklist.pairs)
    assert checklist.add(ranked_pair(6, 2**31 - 1), True) is None
    assert checklist.pairs == held


def test_pairs_stay_in_the_order_a_stable_sort_gives_whatever_the_arrival_order() -> None:
    rng = random.Random(8)
    checklist = CheckList()
    added = []
    for port in range(1, 300):
        pair = checklist.add(ranked_pair(port, rng.randrange(20) * 7), rng.random() < 0.5)
        assert pair is not None
        added.append(pair)
    assert checklist.pairs == sorted(added, key=lambda p: p.priority, reverse=True)
    for pair in added[::3]:
        checklist.remove(pair)
    kept = [p for i, p in enumerate(added) if i % 3]
    assert checklist.pairs == sorted(kept, key=lambda p: p.priority, reverse=True)
    assert all(checklist.of_remote(p.remote_address, 1) == [p] for p in kept)


def test_generation_moves_whenever_an_answer_of_find_may_change() -> None:
    """A find() answer kept with the generation holds while it stays (the asyncio
    connection counts data on a pair that way): every change of the index moves it,
    and nothing else does."""
    checklist = CheckList(max_pairs=2)
    seen = [checklist.generation]

    def moved() -> bool:
        seen.append(checklist.generation)
        return seen[-1] != seen[-2]

    low = checklist.add(ranked_pair(1, 1000), True)
    assert low is not None and moved()
    assert checklist.add(ranked_pair(1, 500), True) is low and not moved()  # already there
    checklist.trigger(low)
    low.check_started()
    assert not moved()  # states are not the index
    high = checklist.add(ranked_pair(2, 2000), True)
    assert high is not None and moved()
    assert checklist.add(ranked_pair(3, 3000), True) is not None and moved()  # high pruned
    assert checklist.find(high.base, high.remote_address, 1) is None
    checklist.rebase(low, ("10.0.0.1", 5001))
    assert moved() and checklist.find(("10.0.0.1", 5001), low.remote_address, 1) is low
    checklist.remove(low)
    assert moved() and checklist.find(low.base, low.remote_address, 1) is None
