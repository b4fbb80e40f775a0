"""A snapshot of an ICE agent's state and pair counters (what `Agent.stats` returns).

The counters live on the `CandidatePair`s: the agent counts the checks and
responses itself, and the adapter reports the application data it sends and
receives on a pair (`Agent.record_sent`, `Agent.record_received`) since data
never goes through the agent. A snapshot is frozen: later traffic does not
change it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ice.agent.candidate import Candidate
from ice.agent.checklist import CandidatePair, PairState
from ice.agent.events import ConnectionState, GatheringState

__all__ = ["ConnectionStats", "PairStats", "pair_stats"]


@dataclass(frozen=True, slots=True)
class PairStats:
    """One candidate pair: its state and counters (times in seconds)."""

    component: int
    local: Candidate
    remote: Candidate
    state: PairState
    nominated: bool
    selected: bool
    rtt: float | None
    smoothed_rtt: float | None
    checks_sent: int
    checks_received: int
    responses_sent: int
    responses_received: int
    packets_sent: int
    packets_received: int
    bytes_sent: int
    bytes_received: int


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    state: ConnectionState
    gathering_state: GatheringState
    failure_reason: str  # "" unless the agent failed
    pairs: tuple[PairStats, ...]  # highest priority first


def pair_stats(
    pairs: Iterable[CandidatePair], selected: Iterable[CandidatePair | None]
) -> tuple[PairStats, ...]:
    """Snapshots of ``pairs``, each marked whether it is one of ``selected``."""
    chosen = {id(p) for p in selected if p is not None}
    return tuple(
        PairStats(
            component=p.component,
            local=p.local,
            remote=p.remote,
            state=p.state,
            nominated=p.nominated,
            selected=id(p) in chosen,
            rtt=p.rtt,
            smoothed_rtt=p.smoothed_rtt,
            checks_sent=p.checks_sent,
            checks_received=p.checks_received,
            responses_sent=p.responses_sent,
            responses_received=p.responses_received,
            packets_sent=p.packets_sent,
            packets_received=p.packets_received,
            bytes_sent=p.bytes_sent,
            bytes_received=p.bytes_received,
        )
        for p in pairs
    )
