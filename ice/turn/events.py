"""Events of the TURN client machine (`ice.turn.client.TurnSession.next_event`)."""

from __future__ import annotations

from dataclasses import dataclass

from ice.machine import Address

__all__ = [
    "Allocated",
    "AllocationFailed",
    "AllocationLost",
    "BindFailed",
    "Bound",
    "ChannelBindFailed",
    "ChannelBound",
    "Closed",
    "ConnectionAttempt",
    "DataConnectionEvent",
    "DataReceived",
    "PeerConnectFailed",
    "PeerConnected",
    "PermissionExpired",
    "PermissionFailed",
    "PermissionInstalled",
    "Redirected",
    "Refreshed",
    "TurnEvent",
]


@dataclass(frozen=True, slots=True)
class Allocated:
    """The server granted the allocation; ``address_error`` names a family it refused
    in a dual allocation (RFC 8656 ADDRESS-ERROR-CODE)."""

    relayed: tuple[Address, ...]
    mapped: Address | None
    lifetime: int
    reservation_token: bytes | None
    address_error: str | None = None


@dataclass(frozen=True, slots=True)
class AllocationFailed:
    """Allocate was refused (the code and reason) or unanswered (code 0)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Redirected:
    """300 ALTERNATE-SERVER: the session now talks to ``server`` (connect to it over TCP).
    ``domain`` is the ALTERNATE-DOMAIN to check a TLS certificate against, when given."""

    server: Address
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class Refreshed:
    lifetime: int


@dataclass(frozen=True, slots=True)
class AllocationLost:
    """The allocation is gone: refresh refused (code) or unanswered (0), or expired."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    """The allocation was released (Refresh with LIFETIME 0) or abandoned."""


@dataclass(frozen=True, slots=True)
class PermissionInstalled:
    peers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PermissionExpired:
    """Unused for a whole lifetime, the permission was let lapse, as the server does."""

    peers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PermissionFailed:
    """CreatePermission was refused; datagrams waiting for these IPs were dropped."""

    peers: tuple[str, ...]
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChannelBound:
    channel: int
    peer: Address


@dataclass(frozen=True, slots=True)
class ChannelBindFailed:
    channel: int
    peer: Address
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class DataReceived:
    """A datagram from ``peer``, through a channel (its number) or a Data indication (None)."""

    data: bytes
    peer: Address
    channel: int | None


# -- TCP allocations (RFC 6062)


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """The server connected to ``peer`` (the Connect of ``transaction_id``): bind a data
    connection to ``connection_id`` within 30 s (`TurnSession.data_connection`)."""

    connection_id: int
    peer: Address
    transaction_id: bytes


@dataclass(frozen=True, slots=True)
class PeerConnectFailed:
    """Connect was refused: 446 (a connection to ``peer`` exists or is being made),
    447 (the server could not reach it), 403 (forbidden), ... or unanswered (0)."""

    peer: Address
    code: int
    reason: str
    transaction_id: bytes


@dataclass(frozen=True, slots=True)
class ConnectionAttempt:
    """``peer`` connected to the relayed address (a ConnectionAttempt indication):
    bind a data connection to ``connection_id`` within 30 s to accept it."""

    connection_id: int
    peer: Address


@dataclass(frozen=True, slots=True)
class Bound:
    """ConnectionBind succeeded: from here on the data connection carries the peer's
    bytes, raw, both ways (`ice.turn.data_connection.TurnDataConnection`)."""

    connection_id: int


@dataclass(frozen=True, slots=True)
class BindFailed:
    """ConnectionBind was refused (the code), unanswered or the server closed the
    connection (0); close the data connection."""

    connection_id: int
    code: int
    reason: str


DataConnectionEvent = Bound | BindFailed

TurnEvent = (
    Allocated
    | AllocationFailed
    | Redirected
    | Refreshed
    | AllocationLost
    | Closed
    | PermissionInstalled
    | PermissionExpired
    | PermissionFailed
    | ChannelBound
    | ChannelBindFailed
    | DataReceived
    | PeerConnected
    | PeerConnectFailed
    | ConnectionAttempt
)
