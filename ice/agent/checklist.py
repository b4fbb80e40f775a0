"""The ICE check list: candidate pairs, their states and their order (RFC 8445 6.1.2).

A `CheckList` holds the pairs of one data stream, highest priority first,
with the RFC's pair states and the foundation rule that keeps all but one
pair per foundation Frozen until a pair of that foundation succeeds. It
decides what to check next (`next_check`: the triggered-check queue first,
then the best Waiting pair, then unfreezing) and nothing else: sending,
timing and roles are the agent's.

Every change of a pair's state is here, as h11 keeps its state machine in one
file: `_TRANSITIONS` lists, for each thing that can happen to a pair, the
states it may happen in and the state it leads to, and the `CandidatePair`
methods named after those happenings apply it. Anything else raises
`PairStateError`: a pair moving where RFC 8445 never takes it is a bug here,
not something a peer can cause.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from ice.agent.candidate import Candidate, pair_priority
from ice.machine import Address

__all__ = ["CandidatePair", "CheckList", "PairState", "PairStateError", "protected"]


_K = TypeVar("_K")


class PairState(StrEnum):
    FROZEN = "frozen"
    WAITING = "waiting"
    IN_PROGRESS = "in-progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PairStateError(RuntimeError):
    """A pair was asked to move in a way `_TRANSITIONS` does not allow (a bug)."""


class _Happening(StrEnum):
    UNFROZEN = "unfrozen"
    TRIGGERED = "triggered"
    CHECK_STARTED = "check started"
    CHECK_CANCELLED = "check cancelled"
    CONNECTION_REQUESTED = "connection requested"
    CHECK_SUCCEEDED = "check succeeded"
    CHECK_FAILED = "check failed"
    CONNECTION_CLOSED = "connection closed"
    ANSWERED_BY_LITE = "answered by a lite agent"


_F, _W, _P, _S, _X = (
    PairState.FROZEN,
    PairState.WAITING,
    PairState.IN_PROGRESS,
    PairState.SUCCEEDED,
    PairState.FAILED,
)

#: (state, what happened) -> the new state. Pairs start Frozen.
_TRANSITIONS: dict[tuple[PairState, _Happening], PairState] = {
    # 6.1.2.6: the initial states (the first pair of a foundation waits), and
    # 7.2.5.3.3: a pair of the foundation succeeded.
    (_F, _Happening.UNFROZEN): _W,
    # 7.3.1.4: a triggered check is queued; a Failed pair is tried again, and
    # a pair being checked or already valid stays as it is.
    (_F, _Happening.TRIGGERED): _W,
    (_X, _Happening.TRIGGERED): _W,
    (_W, _Happening.TRIGGERED): _W,
    (_P, _Happening.TRIGGERED): _P,
    (_S, _Happening.TRIGGERED): _S,
    # 6.1.4.2 and 7.2.4: a check is sent. The ordinary check may pick a Frozen
    # pair, which passes through Waiting at once; a triggered one may be a pair
    # that failed since it was queued, or one still in progress. A nomination
    # check on a valid pair leaves it Succeeded.
    (_F, _Happening.CHECK_STARTED): _P,
    (_W, _Happening.CHECK_STARTED): _P,
    (_P, _Happening.CHECK_STARTED): _P,
    (_X, _Happening.CHECK_STARTED): _P,
    (_S, _Happening.CHECK_STARTED): _S,
    # 7.3.1.4: the peer's check came over a pair whose check is in progress. That
    # check is sent no more (its answer still counts) and the pair waits for the
    # triggered check queued at once, not for the next retransmission.
    (_P, _Happening.CHECK_CANCELLED): _W,
    # RFC 6544 7.2: a check over TCP first needs its connection. The pair is
    # In-Progress until the connection is up and the check goes out over it, a
    # valid pair too (its connection closed): that check, not the one that asked
    # for the connection, is what proves the new connection and nominates.
    (_F, _Happening.CONNECTION_REQUESTED): _P,
    (_W, _Happening.CONNECTION_REQUESTED): _P,
    (_P, _Happening.CONNECTION_REQUESTED): _P,
    (_X, _Happening.CONNECTION_REQUESTED): _P,
    (_S, _Happening.CONNECTION_REQUESTED): _P,
    # 7.2.5.3: a check of the pair succeeded. Any check sent, which is any
    # state a pair is in once it was checked: an older check may answer after a
    # newer one failed, or after the failed pair was triggered again.
    (_P, _Happening.CHECK_SUCCEEDED): _S,
    (_S, _Happening.CHECK_SUCCEEDED): _S,
    (_X, _Happening.CHECK_SUCCEEDED): _S,
    (_W, _Happening.CHECK_SUCCEEDED): _S,
    # 7.2.5.2: a check failed (timeout, error response, not symmetric), or its
    # TCP connection could not be opened. A valid pair whose nomination fails
    # fails too.
    (_P, _Happening.CHECK_FAILED): _X,
    (_S, _Happening.CHECK_FAILED): _X,
    (_X, _Happening.CHECK_FAILED): _X,
    (_W, _Happening.CHECK_FAILED): _X,
    # RFC 6544 7.2: the TCP connection a pair runs over closed before the pair
    # was valid (valid pairs keep their state; consent then decides).
    (_F, _Happening.CONNECTION_CLOSED): _X,
    (_W, _Happening.CONNECTION_CLOSED): _X,
    (_P, _Happening.CONNECTION_CLOSED): _X,
    (_X, _Happening.CONNECTION_CLOSED): _X,
    # 2.5: a lite agent never checks; a pair is valid once it answers the
    # peer's check on it.
    (_F, _Happening.ANSWERED_BY_LITE): _S,
    (_W, _Happening.ANSWERED_BY_LITE): _S,
    (_S, _Happening.ANSWERED_BY_LITE): _S,
    (_X, _Happening.ANSWERED_BY_LITE): _S,
}


@dataclass(eq=False, slots=True)
class CandidatePair:
    """A local candidate (sent from its base) and a remote one, for one component."""

    local: Candidate
    remote: Candidate
    base: Address  # the local transport address checks and data leave from
    stream: int = 0  # which data stream's check list the pair is on
    state: PairState = PairState.FROZEN
    nominated: bool = False
    use_candidate_sent: bool = False  # a check with USE-CANDIDATE succeeded or is in flight
    valid: bool = False
    transaction_id: bytes | None = None  # of the check in flight
    # stats
    checks_sent: int = 0
    checks_received: int = 0
    responses_received: int = 0
    responses_sent: int = 0
    rtt: float | None = None
    smoothed_rtt: float | None = None
    packets_sent: int = 0
    packets_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    _priority: int = field(default=0, repr=False)

    @property
    def component(self) -> int:
        return self.local.component

    @property
    def slot(self) -> tuple[int, int]:
        """(stream, component): what a selected pair is selected for."""
        return (self.stream, self.local.component)

    @property
    def foundation(self) -> str:
        return f"{self.local.foundation}:{self.remote.foundation}"

    @property
    def remote_address(self) -> Address:
        return (self.remote.host, self.remote.port)

    @property
    def priority(self) -> int:
        return self._priority

    def set_priority(self, controlling: bool) -> None:
        local, remote = self.local.priority, self.remote.priority
        self._priority = (
            pair_priority(local, remote) if controlling else pair_priority(remote, local)
        )

    # -- state changes: each one goes through _TRANSITIONS

    def _move(self, happening: _Happening) -> None:
        state = _TRANSITIONS.get((self.state, happening))
        if state is None:
            raise PairStateError(f"{happening.value} on a {self.state} pair: {self!r}")
        self.state = state

    def unfreeze(self) -> None:
        """Frozen -> Waiting (initial states, or a pair of the foundation succeeded)."""
        self._move(_Happening.UNFROZEN)

    def triggered(self) -> None:
        """A triggered check was queued: Frozen or Failed -> Waiting."""
        self._move(_Happening.TRIGGERED)

    def check_started(self) -> None:
        """A check was sent: In-Progress, unless it already Succeeded."""
        self._move(_Happening.CHECK_STARTED)

    def check_cancelled(self) -> None:
        """The check in progress is sent no more (RFC 8445 7.3.1.4): Waiting."""
        self._move(_Happening.CHECK_CANCELLED)

    def connection_requested(self) -> None:
        """A check needs a TCP connection, asked for now: In-Progress until it is up."""
        self._move(_Happening.CONNECTION_REQUESTED)

    def check_succeeded(self) -> bool:
        """A check succeeded: Succeeded and valid. True when it was not Succeeded before."""
        first = self.state is not PairState.SUCCEEDED
        self._move(_Happening.CHECK_SUCCEEDED)
        self.valid = True
        return first

    def check_failed(self) -> None:
        """A check failed, or its TCP connection could not be opened: Failed."""
        self._move(_Happening.CHECK_FAILED)

    def connection_closed(self) -> None:
        """The TCP connection of a pair that is not valid closed: Failed."""
        self._move(_Happening.CONNECTION_CLOSED)

    def answered_by_lite(self) -> None:
        """A lite agent answered the peer's check on the pair: Succeeded and valid."""
        self._move(_Happening.ANSWERED_BY_LITE)
        self.valid = True

    def record_rtt(self, rtt: float) -> None:
        self.rtt = rtt
        self.smoothed_rtt = (
            rtt if self.smoothed_rtt is None else 0.875 * self.smoothed_rtt + 0.125 * rtt
        )

    def __repr__(self) -> str:
        return (
            f"<CandidatePair {self.base[0]}:{self.base[1]} ({self.local.type}) -> "
            f"{self.remote.host}:{self.remote.port} ({self.remote.type}) "
            f"c{self.component} {self.state}{' nominated' if self.nominated else ''}>"
        )


class CheckList:
    """The pairs of one data stream and the order they are checked in.

    At most ``max_pairs`` pairs (None: no limit), as RFC 8445 6.1.2.5 asks: at
    the limit a new pair takes the place of the lowest-priority one that is
    not `protected` (being checked, valid or nominated), or is refused when
    it ranks no higher. Every look-up a check makes (by addresses, by
    foundation, by remote candidate, is it queued) is a dict or set, and the
    order is kept by insertion, so one check costs the same at 10 pairs as at
    the limit.
    """

    def __init__(self, max_pairs: int | None = None) -> None:
        if max_pairs is not None and max_pairs < 1:
            raise ValueError("max_pairs must be at least 1")
        self.max_pairs = max_pairs
        self.pairs: list[CandidatePair] = []  # highest priority first
        self.triggered: deque[CandidatePair] = deque()
        self._queued: set[CandidatePair] = set()  # the pairs in `triggered`
        self._by_key: dict[tuple[Address, Address, int], CandidatePair] = {}
        #: Bumped whenever `find`'s answers may change: an answer kept along with it
        #: holds while it stays the same (the asyncio connection counts every data
        #: datagram on its pair that way, without a look-up each).
        self.generation = 0
        self._by_foundation: dict[str, list[CandidatePair]] = {}
        self._by_remote: dict[tuple[Address, int], list[CandidatePair]] = {}

    def find(self, base: Address, remote: Address, component: int) -> CandidatePair | None:
        return self._by_key.get((base, remote, component))

    def of_remote(self, address: Address, component: int) -> list[CandidatePair]:
        """The pairs whose remote candidate is at ``address`` for ``component``."""
        return self._by_remote.get((address, component), [])

    def add(
        self, pair: CandidatePair, controlling: bool, others: Iterable[CheckList] = ()
    ) -> CandidatePair | None:
        """Add ``pair`` unless one with the same base, remote address and component
        exists (RFC 8445 6.1.2.4 pruning keeps the higher priority one); return the
        pair that stays, or None when the list is full of pairs that rank higher or
        are `protected`. ``others`` are the other data streams' check lists."""
        key = (pair.base, pair.remote_address, pair.component)
        existing = self._by_key.get(key)
        pair.set_priority(controlling)
        if existing is not None:
            if existing.state is PairState.FROZEN and pair.priority > existing.priority:
                self._unindex(existing)
                existing.local, existing.remote = pair.local, pair.remote
                existing.set_priority(controlling)
                self._index(existing)
            return existing
        if self.max_pairs is not None and len(self.pairs) >= self.max_pairs:
            victim = self._lowest(pair.priority)
            if victim is None:
                return None
            self.remove(victim)
        if _first_of_foundation(pair, self._by_foundation, others):
            pair.unfreeze()
        self._by_key[key] = pair
        self.generation += 1
        self._index(pair)
        return pair

    def remove(self, pair: CandidatePair) -> None:
        """Forget ``pair`` (pruned): it is checked no more."""
        self._unindex(pair)
        key = (pair.base, pair.remote_address, pair.component)
        if self._by_key.get(key) is pair:
            del self._by_key[key]
            self.generation += 1
        if pair in self._queued:
            self._queued.discard(pair)
            self.triggered.remove(pair)

    def _lowest(self, below: int) -> CandidatePair | None:
        """The lowest-priority pair under ``below`` that may be pruned, or None."""
        for pair in reversed(self.pairs):
            if pair.priority >= below:
                return None
            if not protected(pair):
                return pair
        return None

    def _index(self, pair: CandidatePair) -> None:
        # after the pairs of the same priority, as a stable sort would put it
        insort(self.pairs, pair, key=_descending)
        self._by_foundation.setdefault(pair.foundation, []).append(pair)
        self._by_remote.setdefault((pair.remote_address, pair.component), []).append(pair)

    def _unindex(self, pair: CandidatePair) -> None:
        pairs = self.pairs
        index = bisect_left(pairs, -pair.priority, key=_descending)
        while pairs[index] is not pair:  # past others of the same priority
            index += 1
        del pairs[index]
        _drop(self._by_foundation, pair.foundation, pair)
        _drop(self._by_remote, (pair.remote_address, pair.component), pair)

    def rebase(self, pair: CandidatePair, base: Address) -> None:
        """The pair now leaves from ``base`` (an ICE-TCP connection's local address)."""
        old = (pair.base, pair.remote_address, pair.component)
        if self._by_key.get(old) is pair:
            del self._by_key[old]
        pair.base = base
        self._by_key.setdefault((base, pair.remote_address, pair.component), pair)
        self.generation += 1

    def reprioritise(self, controlling: bool) -> None:
        """After a role change every pair priority changes (RFC 8445 7.2.5.1)."""
        for pair in self.pairs:
            pair.set_priority(controlling)
        self.pairs.sort(key=_descending)

    def trigger(self, pair: CandidatePair) -> None:
        """Queue a triggered check (RFC 8445 7.3.1.4); a pair already queued stays once."""
        pair.triggered()
        if pair not in self._queued:
            self._queued.add(pair)
            self.triggered.append(pair)

    def next_check(self) -> CandidatePair | None:
        """The pair to check now (RFC 8445 6.1.4.2), or None when there is nothing to do."""
        while self.triggered:
            pair = self.triggered.popleft()
            self._queued.discard(pair)
            if pair.state is not PairState.SUCCEEDED or pair.use_candidate_sent:
                return pair
        for pair in self.pairs:
            if pair.state is PairState.WAITING:
                return pair
        for pair in self.pairs:
            if pair.state is PairState.FROZEN and not any(
                p.state in _ACTIVE for p in self._by_foundation[pair.foundation]
            ):
                return pair
        return None

    def unfreeze_foundation(self, foundation: str) -> None:
        """A pair of ``foundation`` succeeded: its Frozen siblings wait (RFC 8445 7.2.5.3.3)."""
        for pair in self._by_foundation.get(foundation, ()):
            if pair.state is PairState.FROZEN:
                pair.unfreeze()

    @property
    def done(self) -> bool:
        """Nothing left to check: every pair succeeded or failed."""
        return not self.triggered and all(
            p.state in (PairState.SUCCEEDED, PairState.FAILED) for p in self.pairs
        )

    def valid_pairs(self, component: int) -> list[CandidatePair]:
        return [p for p in self.pairs if p.valid and p.component == component]


def protected(pair: CandidatePair) -> bool:
    """A pair no limit may prune: being checked, valid, or nominated (by either side)."""
    return (
        pair.state is PairState.IN_PROGRESS
        or pair.state is PairState.SUCCEEDED
        or pair.valid
        or pair.nominated
        or pair.use_candidate_sent
    )


def _descending(pair: CandidatePair) -> int:
    return -pair.priority


def _drop(index: dict[_K, list[CandidatePair]], key: _K, pair: CandidatePair) -> None:
    bucket = [p for p in index[key] if p is not pair]
    if bucket:
        index[key] = bucket
    else:
        del index[key]


_ACTIVE = (PairState.WAITING, PairState.IN_PROGRESS)


def _first_of_foundation(
    pair: CandidatePair,
    by_foundation: dict[str, list[CandidatePair]],
    others: Iterable[CheckList],
) -> bool:
    """RFC 8445 6.1.2.6: a new pair waits when no pair of its foundation does (or
    is further along) in any check list, and none of a lower component of it is
    on this one; otherwise it stays Frozen."""
    foundation = pair.foundation
    siblings = by_foundation.get(foundation, ())
    if any(p.state is not PairState.FROZEN or p.component < pair.component for p in siblings):
        return False
    return not any(
        p.state is not PairState.FROZEN
        for other in others
        for p in other._by_foundation.get(foundation, ())
    )
