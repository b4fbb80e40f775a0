"""One TURN allocation's state on the server: relays, permissions, channels, budget.

Kept apart from the server core so the bookkeeping (what expires when, which
channel maps to which peer) can be read and tested on its own. Times are the
caller's monotonic clock; nothing here reads one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ice.machine import Address

__all__ = [
    "CHANNEL_COOLDOWN",
    "CHANNEL_LIFETIME",
    "PERMISSION_LIFETIME",
    "Allocation",
    "Channel",
    "FiveTuple",
    "TokenBucket",
]

#: RFC 8656 section 9: a permission lives 300 s unless refreshed.
PERMISSION_LIFETIME = 300.0
#: RFC 8656 section 12: a channel binding lives 600 s unless refreshed.
CHANNEL_LIFETIME = 600.0
#: RFC 8656 section 12: after a binding expires, neither its number nor its peer
#: may be bound to anything else for 5 more minutes.
CHANNEL_COOLDOWN = 300.0

#: (client address, server address it reached, over a stream?): the allocation's key.
FiveTuple = tuple[Address, Address, bool]


@dataclass(slots=True)
class Channel:
    number: int
    peer: Address
    expires: float


class TokenBucket:
    """A bytes-per-second budget with a burst of one second's worth (at least 64 KiB)."""

    __slots__ = ("_level", "_stamp", "burst", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = max(rate, 65536.0)
        self._level = self.burst
        self._stamp = now

    def take(self, size: int, now: float) -> bool:
        level = min(self.burst, self._level + (now - self._stamp) * self.rate)
        self._stamp = now
        if level < size:
            self._level = level
            return False
        self._level = level - size
        return True


@dataclass(slots=True, eq=False)
class Allocation:
    """An allocation: keyed by its 5-tuple, owned by one user, relaying on one or two addresses."""

    five_tuple: FiveTuple
    username: str
    relays: dict[int, Address]  # address family (1 IPv4, 2 IPv6) -> relayed transport address
    advertised: dict[int, Address]  # what XOR-RELAYED-ADDRESS says (NAT 1:1 external address)
    expires: float
    allocate_id: bytes  # transaction ID of the Allocate, to recognise a retransmission
    reservation: bytes | None = None  # RESERVATION-TOKEN handed out with this allocation
    dont_fragment: bool = False
    bucket: TokenBucket | None = None
    #: A TCP allocation (RFC 6062): its relayed addresses are TCP listeners.
    tcp: bool = False
    permissions: dict[str, float] = field(default_factory=dict)  # peer IP -> expiry
    channels: dict[int, Channel] = field(default_factory=dict)
    channel_of_peer: dict[Address, Channel] = field(default_factory=dict)
    #: A TCP allocation's peer connections: peer transport address -> CONNECTION-ID.
    tcp_peers: dict[Address, int] = field(default_factory=dict)
    #: The deadline this allocation is filed under in the server's timer heap.
    scheduled: float = 0.0
    packets_to_peers: int = 0
    bytes_to_peers: int = 0
    packets_to_client: int = 0
    bytes_to_client: int = 0

    @property
    def client(self) -> Address:
        return self.five_tuple[0]

    @property
    def reliable(self) -> bool:
        return self.five_tuple[2]

    def relay_for(self, family: int) -> Address | None:
        return self.relays.get(family)

    # -- permissions

    def permitted(self, ip: str, now: float) -> bool:
        expires = self.permissions.get(ip)
        return expires is not None and expires > now

    def permit(self, ip: str, now: float) -> float:
        expires = now + PERMISSION_LIFETIME
        self.permissions[ip] = expires
        return expires

    # -- channels

    def channel_conflict(self, number: int, peer: Address, now: float) -> str | None:
        """Why ``number`` cannot be bound to ``peer`` (RFC 8656 section 12.2), or None."""
        bound = self.channels.get(number)
        if bound is not None and bound.peer != peer and bound.expires + CHANNEL_COOLDOWN > now:
            return "the channel is bound to another peer"
        other = self.channel_of_peer.get(peer)
        if other is not None and other.number != number and other.expires + CHANNEL_COOLDOWN > now:
            return "the peer is bound to another channel"
        return None

    def bind(self, number: int, peer: Address, now: float) -> Channel:
        """Bind (or refresh) ``number`` to ``peer``; `channel_conflict` must be None first."""
        stale = self.channels.get(number)
        if stale is not None and stale.peer != peer:
            self.channel_of_peer.pop(stale.peer, None)
        stale = self.channel_of_peer.get(peer)
        if stale is not None and stale.number != number:
            self.channels.pop(stale.number, None)
        channel = Channel(number, peer, now + CHANNEL_LIFETIME)
        self.channels[number] = channel
        self.channel_of_peer[peer] = channel
        return channel

    # -- expiry

    def purge(self, now: float) -> None:
        """Forget lapsed permissions and channels past their cool-down."""
        for ip in [ip for ip, expires in self.permissions.items() if expires <= now]:
            del self.permissions[ip]
        for channel in [c for c in self.channels.values() if c.expires + CHANNEL_COOLDOWN <= now]:
            del self.channels[channel.number]
            if self.channel_of_peer.get(channel.peer) is channel:
                del self.channel_of_peer[channel.peer]

    def next_deadline(self) -> float:
        """When something about this allocation next expires."""
        deadline = self.expires
        for expires in self.permissions.values():
            deadline = min(deadline, expires)
        for channel in self.channels.values():
            deadline = min(deadline, channel.expires + CHANNEL_COOLDOWN)
        return deadline
