"""The agent's side of ICE-TCP (RFC 6544): connections asked of the adapter, and the
server-reflexive twin of an active TCP candidate.

`Agent` inherits `TcpChecks`; what it provides (its check lists, bases,
state, `_arm`, `_check_failed`, ...) is declared below for type checking.
The adapter opens the connections `connections_to_open` lists and reports
back with `connection_opened` or `connection_failed`; it tells the agent of
the peer's connections with `connection_accepted` and of closed ones with
`connection_closed`. Checks then travel over them like datagrams: a
Transmit from the connection's local address to its remote one.
"""

from __future__ import annotations

from ice.agent.candidate import Candidate, CandidateType, foundation
from ice.agent.checklist import CandidatePair, CheckList
from ice.agent.events import ConnectionState
from ice.agent.tcp import OpenConnection, TcpConnections, tcp_priority
from ice.machine import Address

__all__ = ["TcpChecks"]


class TcpChecks:
    """ICE-TCP connection handling for `ice.Agent` (a mixin: it keeps no state itself)."""

    # provided by Agent
    state: ConnectionState
    checklists: list[CheckList]
    local_candidates: list[Candidate]
    tcp_passive_wait: float
    _tcp: TcpConnections
    _bases: dict[Address, tuple[int, Candidate]]
    _remote: list[list[Candidate]]
    _connect_time: float | None

    def _arm(self, now: float) -> None:
        raise NotImplementedError

    def _check_failed(self, now: float) -> None:
        raise NotImplementedError

    def add_local_candidate(
        self, candidate: Candidate, base: Address, now: float = 0.0, *, stream: int = 0
    ) -> None:
        raise NotImplementedError

    def connections_to_open(self) -> list[OpenConnection]:
        """TCP connections the check list needs: open each and report back with
        `connection_opened` or `connection_failed`."""
        return self._tcp.to_open()

    def connection_opened(self, connection_id: int, local: Address, now: float) -> None:
        """The connection asked for is up, leaving from ``local``: its check goes out."""
        pair = self._tcp.settle(connection_id)
        if not isinstance(pair, CandidatePair) or self.state is ConnectionState.CLOSED:
            return
        self._tcp.open.add((local, pair.remote_address))
        self._bases.setdefault(local, (pair.stream, pair.local))
        self.checklists[pair.stream].rebase(pair, local)
        self.checklists[pair.stream].trigger(pair)
        self._arm(now)

    def connection_failed(self, connection_id: int, now: float) -> None:
        """The connection could not be opened: its pair fails."""
        pair = self._tcp.settle(connection_id)
        if not isinstance(pair, CandidatePair):
            return
        if (pair.base, pair.remote_address) in self._tcp.open:
            # simultaneous open: the peer's connection to us has the same addresses
            self.checklists[pair.stream].trigger(pair)
            self._arm(now)
            return
        pair.check_failed()
        self._check_failed(now)

    def connection_accepted(self, local: Address, remote: Address) -> None:
        """The peer connected to a passive or simultaneous-open candidate at ``local``."""
        self._tcp.open.add((local, remote))

    def connection_closed(self, local: Address, remote: Address, now: float) -> None:
        """A connection closed: the pairs over it fail (the selected one loses consent)."""
        self._tcp.open.discard((local, remote))
        for checklist in self.checklists:
            for pair in checklist.pairs:
                if pair.base == local and pair.remote_address == remote and not pair.valid:
                    pair.connection_closed()
        self._check_failed(now)

    def _awaiting_connections(self, now: float) -> bool:
        """True while a peer with active TCP candidates may still connect to one of
        our passive ones: until ``tcp_passive_wait`` after `connect`."""
        if self._connect_time is None or now >= self._connect_time + self.tcp_passive_wait:
            return False
        passive = any(c.tcptype in ("passive", "so") for c in self.local_candidates)
        active = any(c.tcptype in ("active", "so") for remotes in self._remote for c in remotes)
        return passive and active

    def _open_connection(self, pair: CandidatePair) -> None:
        if self._tcp.waiting_for(pair):
            return
        pair.connection_requested()
        simultaneous = pair.local.tcptype == "so"
        self._tcp.request(pair, pair.base, pair.remote_address, simultaneous)

    def _add_tcp_server_reflexive(
        self, udp: Candidate, ip: str, server: Address, stream: int, now: float
    ) -> None:
        """RFC 6544 5.2: an active TCP host candidate's server-reflexive twin is the UDP
        one's address with port 9 (no STUN over TCP: an active candidate's port is
        whatever its connection gets). Signalled so the peer knows the public IP."""
        for local in list(self.local_candidates):
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
                       for c in self.local_candidates):  # fmt: skip
                self.add_local_candidate(twin, (ip, 0), now, stream=stream)
