"""Relayed transport addresses: which port an allocation gets, and who binds it.

The TURN server core never opens a socket. It picks a relay address here
and asks a `RelaySockets` (given to it by whoever runs it) to bind it: the
asyncio runner binds a real UDP socket, tests use `MemoryRelaySockets`.
Binding is synchronous, as ``socket.bind`` is, so an address already taken
by another program is simply skipped.

Ports are picked at random in the configured range (RFC 8656 section 7.2
recommends RFC 6056's randomised port assignment), even ones on request
(EVEN-PORT), and a reserved pair keeps port + 1 bound until a later
Allocate claims it with the RESERVATION-TOKEN or the reservation expires.

A TCP allocation (RFC 6062) takes its port from the same pool, but what is
bound there is a listening TCP socket: `TcpRelaySockets` (``open_tcp_relay``
/ ``close_tcp_relay``), which the asyncio runner has. A server whose sockets
lack it answers TCP Allocates with 442, as one that does not relay TCP.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from ice.machine import Address

__all__ = [
    "DEFAULT_RELAY_PORTS",
    "MemoryRelaySockets",
    "MemoryTcpRelaySockets",
    "PortPool",
    "RelaySockets",
    "TcpRelaySockets",
]

#: coturn's default relay range (49152-65535 is the OS's ephemeral range on many systems).
DEFAULT_RELAY_PORTS = (49152, 65535)
#: Random picks before the pool falls back to a scan of the whole range.
_RANDOM_TRIES = 32


class RelaySockets(Protocol):
    """Binds and closes relay sockets for the server core."""

    def open_relay(self, address: Address, *, dont_fragment: bool = False) -> bool:
        """Bind a UDP socket on ``address``; False when the port is taken."""
        ...

    def close_relay(self, address: Address) -> None:
        """Close the socket bound by `open_relay` (a no-op for an unknown address)."""
        ...


@runtime_checkable
class TcpRelaySockets(Protocol):
    """Binds and closes the listening sockets of TCP relayed addresses (RFC 6062)."""

    def open_tcp_relay(self, address: Address) -> bool:
        """Bind and listen on ``address`` (TCP); False when the port is taken."""
        ...

    def close_tcp_relay(self, address: Address) -> None:
        """Close the socket bound by `open_tcp_relay` (a no-op for an unknown address)."""
        ...


class MemoryRelaySockets:
    """`RelaySockets` for sans-I/O tests: records what is open; ``taken`` ports refuse."""

    def __init__(self, taken: set[Address] | None = None) -> None:
        self.taken: set[Address] = set(taken or ())
        self.open: dict[Address, bool] = {}  # address -> dont_fragment

    def open_relay(self, address: Address, *, dont_fragment: bool = False) -> bool:
        if address in self.taken or address in self.open:
            return False
        self.open[address] = dont_fragment
        return True

    def close_relay(self, address: Address) -> None:
        self.open.pop(address, None)


class MemoryTcpRelaySockets(MemoryRelaySockets):
    """`MemoryRelaySockets` that also "listen" on TCP relayed addresses (``listening``)."""

    def __init__(self, taken: set[Address] | None = None) -> None:
        super().__init__(taken)
        self.listening: set[Address] = set()

    def open_tcp_relay(self, address: Address) -> bool:
        if address in self.taken or address in self.open or address in self.listening:
            return False
        self.listening.add(address)
        return True

    def close_tcp_relay(self, address: Address) -> None:
        self.listening.discard(address)


class PortPool:
    """Hands out relay ports on one IP per address family, and takes them back."""

    def __init__(
        self,
        sockets: RelaySockets,
        ports: tuple[int, int] = DEFAULT_RELAY_PORTS,
        *,
        rng: random.Random | None = None,
    ) -> None:
        low, high = ports
        if not 1 <= low <= high <= 0xFFFF:
            raise ValueError(f"relay port range {low}-{high} is not within 1-65535")
        self.sockets = sockets
        self.low = low
        self.high = high
        self._rng = rng if rng is not None else random.SystemRandom()
        self._used: dict[str, set[int]] = {}
        self._tcp: set[Address] = set()  # taken addresses whose socket is a TCP listener

    @property
    def tcp(self) -> bool:
        """Whether the sockets can listen on TCP relayed addresses."""
        return isinstance(self.sockets, TcpRelaySockets)

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def in_use(self, ip: str) -> int:
        return len(self._used.get(ip, ()))

    def take(
        self,
        ip: str,
        *,
        even: bool = False,
        pair: bool = False,
        dont_fragment: bool = False,
        tcp: bool = False,
    ) -> tuple[Address, Address | None] | None:
        """Bind a free port on ``ip``; None when the range is exhausted.

        ``even`` asks for an even port; ``pair`` also binds the next port
        (the reservation of EVEN-PORT's R bit), returned second. ``tcp``
        listens on a TCP port instead (neither ``even`` nor ``pair`` then).
        """
        used = self._used.setdefault(ip, set())
        if tcp:
            sockets = self.sockets
            if pair or not isinstance(sockets, TcpRelaySockets):
                return None
            for port in self._candidates(used, even, False):
                if sockets.open_tcp_relay((ip, port)):
                    used.add(port)
                    self._tcp.add((ip, port))
                    return (ip, port), None
            return None
        even = even or pair
        for port in self._candidates(used, even, pair):
            if not self.sockets.open_relay((ip, port), dont_fragment=dont_fragment):
                continue
            if pair:
                if not self.sockets.open_relay((ip, port + 1)):
                    self.sockets.close_relay((ip, port))
                    continue
                used.add(port + 1)
            used.add(port)
            return (ip, port), ((ip, port + 1) if pair else None)
        return None

    def claim(self, address: Address) -> bool:
        """Keep a reserved address (already bound by `take`) for an allocation."""
        return address[1] in self._used.get(address[0], ())

    def release(self, address: Address) -> None:
        ip, port = address
        used = self._used.get(ip)
        if used is None or port not in used:
            return
        used.discard(port)
        if address in self._tcp:
            self._tcp.discard(address)
            sockets = self.sockets
            if isinstance(sockets, TcpRelaySockets):
                sockets.close_tcp_relay(address)
            return
        self.sockets.close_relay(address)

    def _candidates(self, used: set[int], even: bool, pair: bool) -> Iterator[int]:
        low, high = self.low, self.high - (1 if pair else 0)
        if even and low % 2:
            low += 1
        step = 2 if even else 1
        count = (high - low) // step + 1 if high >= low else 0
        if count <= 0:
            return
        for _ in range(min(_RANDOM_TRIES, count)):
            port = low + step * self._rng.randrange(count)
            if port not in used and not (pair and port + 1 in used):
                yield port
        # Then every port once, from a random start, so a nearly full range still finds one.
        start = self._rng.randrange(count)
        for i in range(count):
            port = low + step * ((start + i) % count)
            if port not in used and not (pair and port + 1 in used):
                yield port
