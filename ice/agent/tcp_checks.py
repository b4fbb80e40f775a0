"""The agent's side of ICE-TCP (RFC 6544): connections asked of the adapter, and the
server-reflexive twin of an active TCP candidate.

`Agent` owns one `TcpChecks` and gives it what it needs of the agent (see the class).
The adapter opens the connections `Agent.connections_to_open` lists and reports back
with `Agent.connection_opened` or `Agent.connection_failed`; it tells the agent of the
peer's connections with `Agent.connection_accepted` and of closed ones with
`Agent.connection_closed`. Checks then travel over them like datagrams: a Transmit
from the connection's local address to its remote one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ice.agent.candidate import Candidate, CandidateType, foundation
from ice.agent.checklist import CandidatePair, CheckList
from ice.agent.tcp import OpenConnection, TcpConnections, tcp_priority
from ice.machine import Address

__all__ = ["TcpChecks", "peer_may_connect"]


class _AddCandidate(Protocol):
    def __call__(
        self, candidate: Candidate, base: Address, now: float = ..., *, stream: int = ...
    ) -> None: ...


class TcpChecks:
    """ICE-TCP connection handling for the `ice.Agent` that owns it.

    ``checklists()`` gives the agent's check lists of the moment (an ICE
    restart replaces them). ``local_candidates`` is the agent's own list.
    ``bases`` is its base -> (stream, candidate) index, which learns the local
    address of each connection that opens. ``add_local_candidate`` is the
    agent's method of that name. ``arm(now)`` makes its check pacer run, and
    ``check_failed(now)`` makes it reconsider whether the session has failed.
    """

    def __init__(
        self,
        *,
        checklists: Callable[[], Sequence[CheckList]],
        local_candidates: Sequence[Candidate],
        bases: dict[Address, tuple[int, Candidate]],
        add_local_candidate: _AddCandidate,
        arm: Callable[[float], None],
        check_failed: Callable[[float], None],
    ) -> None:
        self._checklists = checklists
        self._local_candidates = local_candidates
        self._bases = bases
        self._add_local_candidate = add_local_candidate
        self._arm = arm
        self._check_failed = check_failed
        self._connections = TcpConnections()

    def is_open(self, local: Address, remote: Address) -> bool:
        """Whether a connection from ``local`` to ``remote`` is open to check over."""
        return (local, remote) in self._connections.open

    def clear(self) -> None:
        """Forget every connection, open or asked for (the agent closed)."""
        self._connections.clear()

    # -- what the adapter reports (through the Agent methods of the same names)

    def connections_to_open(self) -> list[OpenConnection]:
        return self._connections.to_open()

    def connection_opened(self, connection_id: int, local: Address, now: float) -> None:
        pair = self._connections.settle(connection_id)  # (none once the agent closed)
        if not isinstance(pair, CandidatePair):
            return
        self._connections.open.add((local, pair.remote_address))
        self._bases.setdefault(local, (pair.stream, pair.local))
        checklist = self._checklists()[pair.stream]
        checklist.rebase(pair, local)
        checklist.trigger(pair)
        self._arm(now)

    def connection_failed(self, connection_id: int, now: float) -> None:
        pair = self._connections.settle(connection_id)
        if not isinstance(pair, CandidatePair):
            return
        if self.is_open(pair.base, pair.remote_address):
            # simultaneous open: the peer's connection to us has the same addresses
            self._checklists()[pair.stream].trigger(pair)
            self._arm(now)
            return
        pair.check_failed()
        self._check_failed(now)

    def connection_accepted(self, local: Address, remote: Address) -> None:
        self._connections.open.add((local, remote))

    def connection_closed(self, local: Address, remote: Address, now: float) -> None:
        self._connections.open.discard((local, remote))
        for checklist in self._checklists():
            for pair in checklist.pairs:
                if pair.base == local and pair.remote_address == remote and not pair.valid:
                    pair.connection_closed()
        self._check_failed(now)

    # -- what the agent asks

    def open_connection(self, pair: CandidatePair) -> None:
        """Ask the adapter for the connection ``pair``'s check needs (once)."""
        if self._connections.waiting_for(pair):
            return
        pair.connection_requested()
        simultaneous = pair.local.tcptype == "so"
        self._connections.request(pair, pair.base, pair.remote_address, simultaneous)

    def add_server_reflexive_twin(
        self, udp: Candidate, ip: str, server: Address, stream: int, now: float
    ) -> None:
        """RFC 6544 5.2: an active TCP host candidate's server-reflexive twin is the UDP
        one's address with port 9 (no STUN over TCP: an active candidate's port is
        whatever its connection gets). Signalled so the peer knows the public IP."""
        for local in list(self._local_candidates):
            if not (
                local.transport == "tcp" and local.tcptype == "active"
                and local.type is CandidateType.HOST and local.host == ip
                and local.component == udp.component
            ):  # fmt: skip
                continue
            twin = Candidate(
                foundation=foundation(CandidateType.SRFLX, ip, server, "tcp"),
                component=local.component,
                transport="tcp",
                priority=tcp_priority(
                    CandidateType.SRFLX, "active", (local.priority >> 8) & 0x1FFF, local.component
                ),
                host=udp.host,
                port=9,
                type=CandidateType.SRFLX,
                related_address=ip,
                related_port=9,
                tcptype="active",
            )
            if not any(c.address == twin.address and c.transport == "tcp"
                       for c in self._local_candidates):  # fmt: skip
                self._add_local_candidate(twin, (ip, 0), now, stream=stream)


def peer_may_connect(
    local_candidates: Sequence[Candidate], remote_candidates: Sequence[Sequence[Candidate]]
) -> bool:
    """Whether the peer has active TCP candidates that could connect to a passive one
    of ours (simultaneous-open ones count as both)."""
    passive = any(c.tcptype in ("passive", "so") for c in local_candidates)
    active = any(c.tcptype in ("active", "so") for remotes in remote_candidates for c in remotes)
    return passive and active
