"""The agent's side of ICE-TCP (RFC 6544): connections asked of the adapter, and the
server-reflexive twin of an active TCP candidate.

`Agent` owns one `TcpChecks` and gives it what it needs of the agent (see the class).
The adapter opens the connections `Agent.connections_to_open` lists and reports back
with `Agent.connection_opened` or `Agent.connection_failed`; it tells the agent of the
peer's connections with `Agent.connection_accepted` and of closed ones with
`Agent.connection_closed`. Checks then travel over them like datagrams: a Transmit
from the connection's local address to its remote one.

A connection to or from a relayed candidate (RFC 6062) that fails or closes before
its pair is valid is asked for once more, later (`RELAY_RETRY_DELAY`): the TURN
server may have refused it only for a moment. It closes a peer's connection that
arrives before the permission the peer's agent asked for is installed, and one
that arrives while its own allocation is connecting to that very peer; and since
an active relayed candidate connects from the relayed address, both agents'
first connections are between the same two addresses and often collide exactly
so. The controlling agent retries first, the controlled one later, so the
retries do not collide again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from ice.agent.candidate import Candidate, CandidateType, foundation
from ice.agent.checklist import CandidatePair, CheckList, PairState
from ice.agent.tcp import OpenConnection, TcpConnections, tcp_priority
from ice.machine import Address

__all__ = ["RELAY_RETRY_DELAY", "TcpChecks", "peer_may_connect"]

#: After how long a relayed TCP pair's failed connection is asked for again: by the
#: controlling agent; the controlled agent waits three times as long.
RELAY_RETRY_DELAY = 0.5


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
    ``controlling()`` is the agent's role of the moment (it orders the retries).
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
        controlling: Callable[[], bool],
    ) -> None:
        self._checklists = checklists
        self._local_candidates = local_candidates
        self._bases = bases
        self._add_local_candidate = add_local_candidate
        self._arm = arm
        self._check_failed = check_failed
        self._controlling = controlling
        self._connections = TcpConnections()
        self._retries: dict[CandidatePair, float] = {}  # pair -> when to connect again
        self._retried: set[CandidatePair] = set()

    def is_open(self, local: Address, remote: Address) -> bool:
        """Whether a connection from ``local`` to ``remote`` is open to check over."""
        return (local, remote) in self._connections.open

    def clear(self) -> None:
        """Forget every connection, open or asked for (the agent closed)."""
        self._connections.clear()
        self._retries.clear()
        self._retried.clear()

    @property
    def retrying(self) -> bool:
        """Whether a failed connection will be asked for again (the session has not failed)."""
        return bool(self._retries)

    def get_timer(self) -> float | None:
        """When the next retry is due, or None."""
        return min(self._retries.values(), default=None)

    def handle_timer(self, now: float) -> None:
        """Ask again for the connections whose retry is due, of pairs still failed."""
        due = [pair for pair, at in self._retries.items() if at <= now]
        for pair in due:
            del self._retries[pair]
            checklists = self._checklists()
            if pair.stream >= len(checklists) or pair not in checklists[pair.stream].pairs:
                continue  # an ICE restart replaced its check list
            if pair.state is PairState.FAILED and not pair.valid:
                if pair.local.tcptype == "active" and pair.local.type is not CandidateType.RELAY:
                    # from a fresh ephemeral port, not the one the failed connection had
                    checklists[pair.stream].rebase(pair, (pair.base[0], 0))
                checklists[pair.stream].trigger(pair)  # reopened by the check it sends
                self._arm(now)
        if due:
            self._check_failed(now)

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
        self._retry_later(pair, now)
        self._check_failed(now)

    def connection_accepted(self, local: Address, remote: Address) -> None:
        self._connections.open.add((local, remote))

    def connection_closed(self, local: Address, remote: Address, now: float) -> None:
        self._connections.open.discard((local, remote))
        for checklist in self._checklists():
            for pair in checklist.pairs:
                if pair.base == local and pair.remote_address == remote and not pair.valid:
                    pair.connection_closed()
                    self._retry_later(pair, now)
        self._check_failed(now)

    def _retry_later(self, pair: CandidatePair, now: float) -> None:
        """Once per pair that connects (not a passive one) with a relayed end."""
        relayed = CandidateType.RELAY in (pair.local.type, pair.remote.type)
        if not relayed or pair.local.tcptype == "passive" or pair in self._retried:
            return
        self._retried.add(pair)
        delay = RELAY_RETRY_DELAY if self._controlling() else 3 * RELAY_RETRY_DELAY
        self._retries[pair] = now + delay

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
    local_candidates: Sequence[Candidate], remote_candidates: Iterable[Iterable[Candidate]]
) -> bool:
    """Whether the peer has active TCP candidates that could connect to a passive one
    of ours (simultaneous-open ones count as both)."""
    passive = any(c.tcptype in ("passive", "so") for c in local_candidates)
    # asked on every timer: without a passive candidate the peer's need not be looked at
    return passive and any(
        c.tcptype in ("active", "so") for remotes in remote_candidates for c in remotes
    )
