"""Events of the ICE agent (`ice.agent.agent.Agent.next_event`) and its state names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ice.agent.candidate import Candidate

__all__ = [
    "AgentEvent",
    "ConnectionState",
    "ConnectionStateChanged",
    "GatheringState",
    "GatheringStateChanged",
    "LocalCandidate",
    "LocalCandidatesEnd",
    "RoleChanged",
    "SelectedPairChanged",
]


class ConnectionState(StrEnum):
    """The seven states of an ICE connection (the seed's table; W3C RTCIceConnectionState)."""

    NEW = "new"
    CHECKING = "checking"
    CONNECTED = "connected"
    COMPLETED = "completed"
    FAILED = "failed"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


class GatheringState(StrEnum):
    NEW = "new"
    GATHERING = "gathering"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class ConnectionStateChanged:
    state: ConnectionState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class GatheringStateChanged:
    state: GatheringState


@dataclass(frozen=True, slots=True)
class LocalCandidate:
    """A local candidate to signal to the peer (trickle ICE: as soon as it is known)."""

    candidate: Candidate


@dataclass(frozen=True, slots=True)
class LocalCandidatesEnd:
    """All local candidates are known: signal end-of-candidates."""


@dataclass(frozen=True, slots=True)
class SelectedPairChanged:
    """The pair data of ``component`` (of data stream ``stream``) goes over now."""

    component: int
    local: Candidate
    remote: Candidate
    stream: int = 0


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """A role conflict (487) was resolved by switching roles."""

    controlling: bool


AgentEvent = (
    ConnectionStateChanged
    | GatheringStateChanged
    | LocalCandidate
    | LocalCandidatesEnd
    | SelectedPairChanged
    | RoleChanged
)
