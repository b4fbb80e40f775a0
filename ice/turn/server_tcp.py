"""The connections of TCP allocations (RFC 6062), sans-I/O.

A TCP allocation's relayed address is a listening TCP socket. Each peer
connection, opened by the server on a Connect request or accepted from a
peer, is named by a CONNECTION-ID and is *pending* until the client opens a
new connection to the server and sends ConnectionBind with that ID on it:
from its success response on, that client data connection and the peer
connection carry raw bytes both ways. A peer connection not bound within 30
seconds is closed (RFC 6062 sections 5.2 to 5.4); a connection attempt not
answered within 30 seconds fails with 447.

`TcpRelay` keeps that table for `ice.turn.server.TurnServer`, which validates
the requests (437, 441, 403, 443, 446, 400 ...) and hands it the valid ones.
What the runner must do comes out as effects, frozen dataclasses read with
`TurnServer.next_effect()` after every call into the server, in order:

- `OpenPeerConnection`: open a TCP connection from ``relay`` (bound with
  SO_REUSEADDR/SO_REUSEPORT beside the relay's listener) to ``peer``, then
  report `TurnServer.peer_connected` or `TurnServer.peer_connection_failed`.
  Until the connection is spliced, do not read it (the kernel buffers what
  the peer sends and shrinks the TCP window: RFC 6062's buffering).
- `ClosePeerConnection`: close that peer connection (or abandon the
  attempt) and the client data connection bound to it, if any.
- `Splice`: the client's connection ``client`` -> ``local`` is now this peer
  connection's data connection. Its ConnectionBind success response is
  already among the Transmits (send those first); from then on every byte
  goes across unframed, both ways, and the peer connection is read.

The runner reports a peer connection that closes with
`TurnServer.peer_connection_closed`, the loss of a client data connection
with `TurnServer.connection_lost` (as for a control connection), and a
connection a peer made to a relayed address with
`TurnServer.peer_connection_accepted`, whose answer is the new CONNECTION-ID
or None: close it at once (no permission for that peer's IP).
"""

from __future__ import annotations

import enum
import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ice._codec import Message, message_type
from ice.attrs import ConnectionId, ErrorCodeAttribute, XorPeerAddress
from ice.constants import MessageClass, Method
from ice.machine import Address, Transmit
from ice.stun.server import RequestContext
from ice.turn.allocation import Allocation

__all__ = [
    "CONNECTION_BIND_TIMEOUT",
    "CONNECT_TIMEOUT",
    "ClosePeerConnection",
    "ConnectionState",
    "OpenPeerConnection",
    "PeerConnection",
    "Splice",
    "TcpEffect",
    "TcpRelay",
]

logger = logging.getLogger("ice.turn.server_tcp")

#: RFC 6062 section 5.2: a Connect's connection attempt times out (447) after at least 30 s.
CONNECT_TIMEOUT = 30.0
#: RFC 6062 sections 5.2 and 5.3: a peer connection not bound in 30 s is closed.
CONNECTION_BIND_TIMEOUT = 30.0

_CONNECTION_ATTEMPT = message_type(Method.CONNECTION_ATTEMPT, MessageClass.INDICATION)


@dataclass(frozen=True, slots=True)
class OpenPeerConnection:
    """Connect from the relayed address ``relay`` to ``peer``; report how it went."""

    connection_id: int
    relay: Address
    peer: Address


@dataclass(frozen=True, slots=True)
class ClosePeerConnection:
    """Close the peer connection (or its attempt) and its client data connection."""

    connection_id: int


@dataclass(frozen=True, slots=True)
class Splice:
    """Relay raw bytes between the client connection ``client`` -> ``local`` and the peer."""

    connection_id: int
    client: Address
    local: Address


TcpEffect = OpenPeerConnection | ClosePeerConnection | Splice


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"  # the server's attempt to reach the peer is under way
    PENDING = "pending"  # connected, waiting for the client's ConnectionBind
    BOUND = "bound"  # spliced to a client data connection


@dataclass(slots=True, eq=False)
class PeerConnection:
    """One peer data connection of a TCP allocation."""

    connection_id: int
    allocation: Allocation
    peer: Address
    relay: Address
    state: ConnectionState
    #: When it times out: the attempt (CONNECTING), the ConnectionBind (PENDING); inf when bound.
    deadline: float
    #: The Connect request to answer when the attempt ends (None: accepted from the peer).
    connect: RequestContext | None = None
    #: The client data connection bound to it: (client address, server address).
    data: tuple[Address, Address] | None = None


class TcpRelay:
    """The peer connections of every TCP allocation; see the module docstring.

    ``respond(ctx, response)`` signs and queues a deferred answer to a
    request, ``send`` queues a Transmit, ``schedule(at, connection)`` makes
    the server's timer fire at ``at`` (then it calls `expire`).
    ``allocations`` maps relayed addresses to allocations (the server's own
    index). ``max_per_allocation`` caps one allocation's connections.
    """

    def __init__(
        self,
        *,
        allocations: Mapping[Address, Allocation],
        respond: Callable[[RequestContext, Message], None],
        send: Callable[[Transmit], None],
        schedule: Callable[[float, PeerConnection], None],
        rng: random.Random,
        max_per_allocation: int,
    ) -> None:
        self._allocations = allocations
        self._respond = respond
        self._send = send
        self._schedule = schedule
        self._rng = rng
        self.max_per_allocation = max_per_allocation
        self._by_id: dict[int, PeerConnection] = {}
        self._by_data: dict[tuple[Address, Address], PeerConnection] = {}
        self._effects: deque[TcpEffect] = deque()
        #: What happened, by kind (for metrics): connects, accepted, refused, bound, ...
        self.counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, connection_id: int) -> PeerConnection | None:
        return self._by_id.get(connection_id)

    def connections(self) -> list[PeerConnection]:
        return list(self._by_id.values())

    def next_effect(self) -> TcpEffect | None:
        return self._effects.popleft() if self._effects else None

    def is_data_connection(self, client: Address, local: Address) -> bool:
        return (client, local) in self._by_data

    # -- from requests (validated by the server)

    def connect(
        self, allocation: Allocation, relay: Address, peer: Address, ctx: RequestContext
    ) -> PeerConnection:
        """Start a Connect: the runner opens the connection; the answer waits for it."""
        connection = self._new(
            allocation, relay, peer, ConnectionState.CONNECTING, ctx.now + CONNECT_TIMEOUT
        )
        connection.connect = ctx
        self.counts["connects"] += 1
        self._effects.append(OpenPeerConnection(connection.connection_id, relay, peer))
        return connection

    def pending(self, connection_id: int) -> PeerConnection | None:
        """The connection a ConnectionBind may bind (connected, not yet bound), or None."""
        connection = self._by_id.get(connection_id)
        if connection is None or connection.state is not ConnectionState.PENDING:
            return None
        return connection

    def bind(self, connection: PeerConnection, client: Address, local: Address) -> None:
        """ConnectionBind succeeded on ``client`` -> ``local``: splice it to the peer."""
        connection.state = ConnectionState.BOUND
        connection.deadline = float("inf")
        connection.data = (client, local)
        self._by_data[(client, local)] = connection
        self.counts["bound"] += 1
        self._effects.append(Splice(connection.connection_id, client, local))

    # -- what the runner reports

    def connected(self, connection_id: int, now: float) -> None:
        connection = self._by_id.get(connection_id)
        if connection is None or connection.state is not ConnectionState.CONNECTING:
            # Timed out or deleted meanwhile: whatever the runner opened must go.
            self._effects.append(ClosePeerConnection(connection_id))
            return
        connection.state = ConnectionState.PENDING
        connection.deadline = now + CONNECTION_BIND_TIMEOUT
        self._schedule(connection.deadline, connection)
        ctx, connection.connect = connection.connect, None
        if ctx is not None:
            response = _response(ctx.request, MessageClass.SUCCESS_RESPONSE)
            ConnectionId(connection_id).add_to(response)
            self._respond(ctx, response)

    def failed(self, connection_id: int, reason: str = "the connection failed") -> None:
        connection = self._by_id.get(connection_id)
        if connection is None or connection.state is not ConnectionState.CONNECTING:
            return
        self.counts["connect_failures"] += 1
        self._forget(connection, reason, answer=True, effect=False)  # nothing is open

    def accepted(self, relay: Address, peer: Address, now: float) -> int | None:
        """A peer connected to ``relay``: its CONNECTION-ID, or None to close it at once."""
        allocation = self._allocations.get(relay)
        if allocation is None or not allocation.tcp:
            self.counts["refused"] += 1
            return None
        if not allocation.permitted(peer[0], now):
            logger.debug("connection from %s to %s refused: no permission", peer, relay)
            self.counts["refused"] += 1
            return None
        if peer in allocation.tcp_peers or len(allocation.tcp_peers) >= self.max_per_allocation:
            self.counts["refused"] += 1
            return None
        connection = self._new(
            allocation, relay, peer, ConnectionState.PENDING, now + CONNECTION_BIND_TIMEOUT
        )
        self.counts["accepted"] += 1
        indication = Message(_CONNECTION_ATTEMPT)
        ConnectionId(connection.connection_id).add_to(indication)
        XorPeerAddress(*peer).add_to(indication)
        client, local, _ = allocation.five_tuple
        self._send(Transmit(indication.raw, client, local))
        return connection.connection_id

    def closed(self, connection_id: int) -> None:
        """The runner's peer connection ended (closed by either side)."""
        connection = self._by_id.get(connection_id)
        if connection is not None:
            self._forget(connection, "closed", effect=False)

    def data_lost(self, client: Address, local: Address) -> bool:
        """A client connection closed: True when it was a data connection (its peer goes)."""
        connection = self._by_data.get((client, local))
        if connection is None:
            return False
        self._forget(connection, "the client data connection closed")
        return True

    # -- time and teardown

    def expire(self, connection: PeerConnection, at: float, now: float) -> None:
        """The server's timer reached ``at``, when ``connection`` was filed to time out."""
        if self._by_id.get(connection.connection_id) is not connection:
            return
        if connection.deadline != at or connection.deadline > now:
            return  # rescheduled since (connected, or bound)
        if connection.state is ConnectionState.CONNECTING:
            self.counts["connect_timeouts"] += 1
            self._forget(connection, "the connection attempt timed out", answer=True)
        elif connection.state is ConnectionState.PENDING:
            self.counts["bind_timeouts"] += 1
            self._forget(connection, "no ConnectionBind within 30 s")

    def filed(self, connection: PeerConnection, at: float) -> bool:
        """Whether a timer entry (``at``, ``connection``) still matters (heap compaction)."""
        return self._by_id.get(connection.connection_id) is connection and connection.deadline == at

    def close_all(self, allocation: Allocation) -> None:
        """The allocation ends: every one of its connections is closed."""
        for connection_id in list(allocation.tcp_peers.values()):
            connection = self._by_id.get(connection_id)
            if connection is not None:
                self._forget(connection, "the allocation ended", answer=True)

    # -- internals

    def _new(
        self,
        allocation: Allocation,
        relay: Address,
        peer: Address,
        state: ConnectionState,
        deadline: float,
    ) -> PeerConnection:
        while True:
            connection_id = self._rng.getrandbits(32)
            if connection_id and connection_id not in self._by_id:
                break
        connection = PeerConnection(connection_id, allocation, peer, relay, state, deadline)
        self._by_id[connection_id] = connection
        allocation.tcp_peers[peer] = connection_id
        self._schedule(deadline, connection)
        return connection

    def _forget(
        self, connection: PeerConnection, why: str, *, answer: bool = False, effect: bool = True
    ) -> None:
        connection_id = connection.connection_id
        if self._by_id.get(connection_id) is not connection:
            return
        del self._by_id[connection_id]
        allocation = connection.allocation
        if allocation.tcp_peers.get(connection.peer) == connection_id:
            del allocation.tcp_peers[connection.peer]
        if connection.data is not None:
            self._by_data.pop(connection.data, None)
        ctx, connection.connect = connection.connect, None
        if answer and ctx is not None:
            response = _response(ctx.request, MessageClass.ERROR_RESPONSE)
            ErrorCodeAttribute(447, "Connection Timeout or Failure").add_to(response)
            self._respond(ctx, response)
        if effect:
            self._effects.append(ClosePeerConnection(connection_id))
        logger.debug(
            "TCP connection %08x %s <-> %s (%s) ended: %s",
            connection_id,
            connection.relay,
            connection.peer,
            connection.state.value,
            why,
        )


def _response(request: Message, cls: MessageClass) -> Message:
    response = Message(message_type(request.method, cls))
    response.transaction_id = request.transaction_id
    return response
