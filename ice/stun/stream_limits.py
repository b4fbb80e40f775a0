"""Limits on a server's TCP and TLS connections, without I/O (the runner applies them).

One host must not be able to lock every other client out of a stream
listener, neither by opening many connections nor by keeping them open
cheaply (issue 15: 1,000 idle connections from one address used to fill the
server for 300 s; a client trickling a byte now and then held its slot for
ever). So:

- `ConnectionTable` admits a connection unless the server already holds
  ``max_connections``, or its source holds ``source_connections``. A source
  is an IPv4 address or an IPv6 /64: one host gets a whole /64, and a cap per
  IPv6 address would cost it nothing.
- `StreamClock` is one connection's deadlines. The first complete STUN
  message (or ChannelData frame) must arrive within ``message_timeout`` of
  the connection opening, and each later one within ``message_timeout`` of
  its first byte (slowloris). Apart from that, a connection on which no
  complete message arrived for ``idle_timeout`` is closed: stray bytes do not
  count as activity, complete messages do.

Times are the caller's monotonic seconds (``now``); nothing here reads a clock.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from ice.machine import Address

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "MESSAGE_TIMEOUT",
    "SOURCE_CONNECTIONS",
    "ConnectionTable",
    "Expiry",
    "StreamClock",
    "StreamTimeouts",
    "source_of",
]

#: Connections the server holds at once, from everyone.
MAX_CONNECTIONS = 1000
#: Connections one source (IPv4 address, IPv6 /64) holds at once. As many as the
#: allocations one client IP may hold (`ice.turn.server.DEFAULT_SOURCE_QUOTA`),
#: each TCP allocation having its own connection; a tenth of ``MAX_CONNECTIONS``.
SOURCE_CONNECTIONS = 100
#: A client sends its request as soon as it has connected (the TLS handshake has
#: its own timeout before that), and a STUN message is a few hundred bytes:
#: 10 s is ample on any link that can carry the answer.
MESSAGE_TIMEOUT = 10.0
#: coturn closes a connection holding no allocation after 60 s; so does this.
IDLE_TIMEOUT = 60.0

Expiry = Literal["message", "idle"]


def source_of(addr: Address) -> str:
    """The source a connection from ``addr`` counts against: its IPv4 address, or its
    IPv6 /64 (a host name, which no socket gives, counts as itself)."""
    host = addr[0]
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class ConnectionTable:
    """How many connections the server and each source hold: `admit` one, `release` it.

    ``source_connections`` 0 means no cap per source (the server-wide one stays).
    """

    def __init__(
        self, max_connections: int = MAX_CONNECTIONS, source_connections: int = SOURCE_CONNECTIONS
    ) -> None:
        if max_connections < 1 or source_connections < 0:
            raise ValueError("max_connections must be positive and source_connections not negative")
        self.max_connections = max_connections
        self.source_connections = source_connections
        self._by_source: dict[str, int] = {}
        self.total = 0
        #: Connections refused because the server was full / their source was.
        self.refused_full = 0
        self.refused_source = 0

    def admit(self, remote: Address) -> str | None:
        """Count a new connection from ``remote`` in, or say why it is refused."""
        if self.total >= self.max_connections:
            self.refused_full += 1
            return f"{self.total} connections open"
        source = source_of(remote)
        held = self._by_source.get(source, 0)
        if self.source_connections and held >= self.source_connections:
            self.refused_source += 1
            return f"{held} connections open from {source}"
        self._by_source[source] = held + 1
        self.total += 1
        return None

    def release(self, remote: Address) -> None:
        """A connection `admit` let in has closed."""
        source = source_of(remote)
        held = self._by_source.get(source, 0)
        if held <= 0:
            return
        if held == 1:
            del self._by_source[source]
        else:
            self._by_source[source] = held - 1
        self.total -= 1

    def held_by(self, remote: Address) -> int:
        """Connections open now from ``remote``'s source."""
        return self._by_source.get(source_of(remote), 0)


@dataclass(frozen=True, slots=True)
class StreamTimeouts:
    """The two timeouts of a `StreamClock`, in seconds (both positive)."""

    message: float = MESSAGE_TIMEOUT
    idle: float = IDLE_TIMEOUT

    def __post_init__(self) -> None:
        if not (self.message > 0 and self.idle > 0):
            raise ValueError("message_timeout and idle_timeout must be positive")


class StreamClock:
    """The deadlines of one connection opened at ``now``; see the module docstring.

    After each read, `received` says how many complete messages it finished and
    whether part of the next one is buffered; `deadline` is when to look again,
    and `expired` whether the connection has to go, and why.
    """

    __slots__ = ("_idle_at", "_message_at", "timeouts")

    def __init__(self, now: float, timeouts: StreamTimeouts) -> None:
        self.timeouts = timeouts
        self._idle_at: float | None = now + timeouts.idle
        #: When the message being waited for must be complete; None between messages.
        self._message_at: float | None = now + timeouts.message

    def received(self, now: float, messages: int, pending: bool) -> None:
        """A read finished ``messages`` complete messages, leaving part of one if ``pending``."""
        if self._idle_at is None:  # stopped
            return
        if messages:
            self._idle_at = now + self.timeouts.idle
            self._message_at = now + self.timeouts.message if pending else None
        elif pending and self._message_at is None:
            self._message_at = now + self.timeouts.message

    def in_use(self, now: float) -> None:
        """The server holds state on this connection (an allocation): idleness
        starts again from ``now``. An unfinished message keeps its deadline."""
        if self._idle_at is not None:
            self._idle_at = now + self.timeouts.idle

    def stop(self) -> None:
        """No deadlines any more (a data connection spliced to its peer: raw bytes)."""
        self._idle_at = None
        self._message_at = None

    @property
    def deadline(self) -> float | None:
        """The earliest deadline, or None once stopped."""
        idle, message = self._idle_at, self._message_at
        if idle is None:
            return None
        return idle if message is None or idle < message else message

    def expired(self, now: float) -> Expiry | None:
        """Why the connection has to go now: a message is late ("message"), or no
        message came for too long ("idle"); None while neither."""
        if self._message_at is not None and now >= self._message_at:
            return "message"
        if self._idle_at is not None and now >= self._idle_at:
            return "idle"
        return None
