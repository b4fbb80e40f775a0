"""The machine surface every sans-I/O protocol machine here shares.

A leaf: the types below import nothing of the package, so every layer may
import them. A machine is driven the way aioquic drives a QUIC connection::

    machine.receive_datagram(data, addr, now, local=..., reliable=...)
    for transmit in machine.datagrams_to_send(now): ...   # put them on the wire
    while (event := machine.next_event()) is not None: ...
    at = machine.get_timer()                               # call handle_timer(at) then

``now`` is monotonic seconds from the caller; a machine never reads the
clock. ``ice.aio.driver.MachineDriver`` runs any of them on asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Address", "Machine", "Transmit"]

#: A transport address: (host text, port). IPv6 hosts carry no brackets.
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Transmit:
    """One datagram (or stream write) to send to ``addr``.

    ``source`` names the local address to send from when the machine has
    several (an ICE agent's host candidates, an RFC 5780 server answering a
    CHANGE-REQUEST); None means the socket the machine is bound to.
    """

    data: bytes
    addr: Address
    source: Address | None = None


class Machine(Protocol):
    """What ``MachineDriver`` needs of a sans-I/O machine.

    ``local`` is the local address the datagram arrived on (machines bound
    to one socket ignore it); ``reliable`` says it came over TCP/TLS, where
    nothing is retransmitted.
    """

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None: ...

    def datagrams_to_send(self, now: float) -> list[Transmit]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...

    def next_event(self) -> Any: ...
