"""ICE over TCP (RFC 6544): candidate preferences, pairing rules, framing, connections.

What the agent needs beyond UDP, kept in one place:

- priorities: a TCP candidate's local preference is ``2**13 * direction +
  other`` (RFC 6544 4.2: active 6, passive 4, simultaneous-open 2 for host
  candidates) and its type preference is below UDP's, so that UDP pairs win
  when both work;
- pairing (RFC 6544 6.2): TCP with TCP only, an active local candidate with a
  passive remote one, simultaneous-open with simultaneous-open; a local
  passive candidate is never checked from (the peer connects to it);
- RFC 4571 framing: each STUN message or application datagram on a
  connection is preceded by its 16-bit length (`frame` / `FrameReader`);
- `TcpConnections`: the agent's record of the connections it asked for
  (`OpenConnection`, given to the adapter through `Agent.connections_to_open`)
  and of the ones that carry checks, by (local, remote) address.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ice.agent.candidate import Candidate, CandidateType, TcpType, candidate_priority
from ice.agent.checklist import CandidatePair
from ice.machine import Address

__all__ = [
    "DIRECTION_PREFERENCE",
    "TCP_TYPE_PREFERENCE",
    "FrameReader",
    "OpenConnection",
    "TcpConnections",
    "can_pair",
    "frame",
    "peer_reflexive_tcptype",
    "tcp_priority",
]

#: RFC 6544 4.2, for host candidates (not behind a NAT that keeps TCP state).
DIRECTION_PREFERENCE: dict[str, int] = {"active": 6, "passive": 4, "so": 2}
#: Below UDP's 126/110/100/0, so a working UDP pair is preferred (RFC 6544 4.2 leaves
#: the choice to the agent).
TCP_TYPE_PREFERENCE: dict[CandidateType, int] = {
    CandidateType.HOST: 80,
    CandidateType.PRFLX: 70,
    CandidateType.SRFLX: 60,
    CandidateType.RELAY: 0,
}
#: RFC 4571: a frame is at most 65,535 bytes.
MAX_FRAME = 0xFFFF
_LENGTH = struct.Struct("!H")


def tcp_priority(
    type: CandidateType, tcptype: TcpType, other_preference: int, component: int
) -> int:
    """The priority of a TCP candidate (RFC 6544 4.2)."""
    local = (DIRECTION_PREFERENCE[tcptype] << 13) | (other_preference & 0x1FFF)
    return candidate_priority(
        type, local, component, type_preference=TCP_TYPE_PREFERENCE[CandidateType(type)]
    )


def can_pair(local: Candidate, remote: Candidate) -> bool:
    """Whether ``local`` checks ``remote`` (RFC 6544 6.2); UDP pairs with UDP only."""
    if local.transport != remote.transport:
        return False
    if local.transport != "tcp":
        return True
    if local.tcptype == "active":
        return remote.tcptype == "passive"
    if local.tcptype == "so":
        return remote.tcptype == "so"
    return False  # a passive local candidate waits for the peer to connect


def peer_reflexive_tcptype(local: Candidate) -> TcpType:
    """The tcptype of a peer-reflexive candidate learnt on a connection to ``local``
    (RFC 6544 7.2.1): the peer connected to our passive one, so it is active."""
    return "active" if local.tcptype == "passive" else "so" if local.tcptype == "so" else "passive"


def frame(data: bytes) -> bytes:
    """``data`` with its RFC 4571 length in front."""
    if len(data) > MAX_FRAME:
        raise ValueError(f"an RFC 4571 frame carries at most 65,535 bytes, not {len(data)}")
    return _LENGTH.pack(len(data)) + data


class FrameReader:
    """Splits a TCP byte stream into RFC 4571 frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by ``data`` (the rest waits for more)."""
        buffer = self._buffer
        buffer += data
        frames = []
        offset = 0
        while len(buffer) - offset >= 2:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if len(buffer) - offset - 2 < length:
                break
            frames.append(bytes(buffer[offset + 2 : offset + 2 + length]))
            offset += 2 + length
        del buffer[:offset]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held."""
        return len(self._buffer)


@dataclass(frozen=True, slots=True)
class OpenConnection:
    """The agent asks the adapter to connect from ``local`` to ``remote`` and report
    back with `Agent.connection_opened` or `Agent.connection_failed`.

    ``local`` is the base of the local candidate: (ip, 0) for an active one (any
    port), the candidate's own port for a simultaneous-open one (bound with
    address reuse beside its listener). ``component`` is the pair's: what the
    connection's data is delivered as.
    """

    connection_id: int
    local: Address
    remote: Address
    simultaneous: bool = False
    component: int = 1


@dataclass(slots=True)
class _Pending:
    request: OpenConnection
    pair: CandidatePair  # waiting for it


@dataclass(slots=True)
class TcpConnections:
    """The connections the agent asked for, and the local addresses that are TCP."""

    _next_id: int = 1
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _to_open: list[OpenConnection] = field(default_factory=list)
    #: (local, remote) of every open connection the agent checks over.
    open: set[tuple[Address, Address]] = field(default_factory=set)

    def request(
        self, pair: CandidatePair, local: Address, remote: Address, simultaneous: bool
    ) -> int:
        connection_id = self._next_id
        self._next_id += 1
        request = OpenConnection(connection_id, local, remote, simultaneous, pair.component)
        self._pending[connection_id] = _Pending(request, pair)
        self._to_open.append(request)
        return connection_id

    def to_open(self) -> list[OpenConnection]:
        out, self._to_open = self._to_open, []
        return out

    def settle(self, connection_id: int) -> object | None:
        """The pair that waited for ``connection_id`` (None for an unknown id)."""
        pending = self._pending.pop(connection_id, None)
        return None if pending is None else pending.pair

    def waiting_for(self, pair: object) -> bool:
        return any(p.pair is pair for p in self._pending.values())

    def clear(self) -> None:
        self._pending.clear()
        self._to_open.clear()
        self.open.clear()
