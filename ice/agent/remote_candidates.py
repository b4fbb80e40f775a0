"""The peer's candidates of one data stream, indexed, and how many of them are kept.

A peer that knows the password can send checks from as many source addresses
as it likes, and each new one is a peer-reflexive candidate (RFC 8445
7.3.1.3); a signalling channel can carry as many ``a=candidate`` lines. So
`RemoteCandidates` finds a candidate by (address, component) in one dict look
up, whatever the count, and keeps the candidates of each component ranked by
priority so that the agent can, at its limit, let the lowest one go
(`lowest`) without scanning them all. Which one may go is the agent's call:
it knows which candidates have a pair being checked or already working.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator

from ice.agent.candidate import Candidate
from ice.machine import Address

__all__ = ["RemoteCandidates"]


def _priority(candidate: Candidate) -> int:
    return candidate.priority


class RemoteCandidates:
    """The remote candidates of one data stream, in the order they were learnt."""

    __slots__ = ("_by_key", "_ranked")

    def __init__(self) -> None:
        # insertion-ordered, so iteration is arrival order and removal is O(1)
        self._by_key: dict[tuple[Address, int], Candidate] = {}
        # per component, lowest priority first
        self._ranked: dict[int, list[Candidate]] = {}

    def get(self, address: Address, component: int) -> Candidate | None:
        return self._by_key.get((address, component))

    def count(self, component: int) -> int:
        return len(self._ranked.get(component, ()))

    def add(self, candidate: Candidate) -> None:
        """Keep ``candidate`` (the caller checked it is new and has room for it)."""
        self._by_key[(candidate.address, candidate.component)] = candidate
        insort(self._ranked.setdefault(candidate.component, []), candidate, key=_priority)

    def remove(self, candidate: Candidate) -> None:
        del self._by_key[(candidate.address, candidate.component)]
        ranked = self._ranked[candidate.component]
        index = bisect_left(ranked, candidate.priority, key=_priority)
        while ranked[index] is not candidate:  # past others of the same priority
            index += 1
        del ranked[index]

    def lowest(
        self, component: int, below: int, keep: Callable[[Candidate], bool]
    ) -> Candidate | None:
        """The lowest-priority candidate of ``component`` with a priority under
        ``below`` that ``keep`` does not hold on to, or None."""
        for candidate in self._ranked.get(component, ()):
            if candidate.priority >= below:
                return None
            if not keep(candidate):
                return candidate
        return None

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def __bool__(self) -> bool:
        return bool(self._by_key)
