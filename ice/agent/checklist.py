"""The ICE check list: candidate pairs, their states and their order (RFC 8445 6.1.2).

A `CheckList` holds the pairs of one data stream, highest priority first,
with the RFC's pair states and the foundation rule that keeps all but one
pair per foundation Frozen until a pair of that foundation succeeds. It
decides what to check next (`next_check`: the triggered-check queue first,
then the best Waiting pair, then unfreezing) and nothing else: sending,
timing and roles are the agent's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from ice.agent.candidate import Candidate, pair_priority
from ice.machine import Address

__all__ = ["CandidatePair", "CheckList", "PairState"]


class PairState(StrEnum):
    FROZEN = "frozen"
    WAITING = "waiting"
    IN_PROGRESS = "in-progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


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
    """The pairs of one data stream and the order they are checked in."""

    def __init__(self) -> None:
        self.pairs: list[CandidatePair] = []
        self.triggered: deque[CandidatePair] = deque()
        self._by_key: dict[tuple[Address, Address, int], CandidatePair] = {}

    def find(self, base: Address, remote: Address, component: int) -> CandidatePair | None:
        return self._by_key.get((base, remote, component))

    def add(self, pair: CandidatePair, controlling: bool) -> CandidatePair:
        """Add ``pair`` unless one with the same base, remote address and component
        exists (RFC 8445 6.1.2.4 pruning keeps the higher priority one); return the
        pair that stays."""
        key = (pair.base, pair.remote_address, pair.component)
        existing = self._by_key.get(key)
        pair.set_priority(controlling)
        if existing is not None:
            if existing.state is PairState.FROZEN and pair.priority > existing.priority:
                existing.local, existing.remote = pair.local, pair.remote
                existing.set_priority(controlling)
                self._sort()
            return existing
        if not any(
            p.foundation == pair.foundation and p.state is not PairState.FROZEN for p in self.pairs
        ) and not any(
            p.foundation == pair.foundation and p.component < pair.component for p in self.pairs
        ):
            pair.state = PairState.WAITING
        self.pairs.append(pair)
        self._by_key[key] = pair
        self._sort()
        return pair

    def rebase(self, pair: CandidatePair, base: Address) -> None:
        """The pair now leaves from ``base`` (an ICE-TCP connection's local address)."""
        old = (pair.base, pair.remote_address, pair.component)
        if self._by_key.get(old) is pair:
            del self._by_key[old]
        pair.base = base
        self._by_key.setdefault((base, pair.remote_address, pair.component), pair)

    def reprioritise(self, controlling: bool) -> None:
        """After a role change every pair priority changes (RFC 8445 7.2.5.1)."""
        for pair in self.pairs:
            pair.set_priority(controlling)
        self._sort()

    def _sort(self) -> None:
        self.pairs.sort(key=lambda p: p.priority, reverse=True)

    def trigger(self, pair: CandidatePair) -> None:
        """Queue a triggered check (RFC 8445 7.3.1.4); a pair already queued stays once."""
        if pair.state in (PairState.FROZEN, PairState.FAILED):
            pair.state = PairState.WAITING
        if pair not in self.triggered:
            self.triggered.append(pair)

    def next_check(self) -> CandidatePair | None:
        """The pair to check now (RFC 8445 6.1.4.2), or None when there is nothing to do."""
        while self.triggered:
            pair = self.triggered.popleft()
            if pair.state is not PairState.SUCCEEDED or pair.use_candidate_sent:
                return pair
        for pair in self.pairs:
            if pair.state is PairState.WAITING:
                return pair
        active = {p.foundation for p in self.pairs if p.state in _ACTIVE}
        for pair in self.pairs:
            if pair.state is PairState.FROZEN and pair.foundation not in active:
                return pair
        return None

    def unfreeze_foundation(self, foundation: str) -> None:
        """A pair of ``foundation`` succeeded: its Frozen siblings wait (RFC 8445 7.2.5.3.3)."""
        for pair in self.pairs:
            if pair.state is PairState.FROZEN and pair.foundation == foundation:
                pair.state = PairState.WAITING

    @property
    def done(self) -> bool:
        """Nothing left to check: every pair succeeded or failed."""
        return not self.triggered and all(
            p.state in (PairState.SUCCEEDED, PairState.FAILED) for p in self.pairs
        )

    def valid_pairs(self, component: int) -> list[CandidatePair]:
        return [p for p in self.pairs if p.valid and p.component == component]


_ACTIVE = (PairState.WAITING, PairState.IN_PROGRESS)
