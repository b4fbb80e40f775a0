"""The machine surface every sans-I/O protocol machine here shares.

A leaf: the types below import nothing of the package, so every layer may
import them. A machine is driven the way aioquic drives a QUIC connection::

    machine.receive_datagram(data, addr, now, local=..., reliable=...)
    while (event := machine.next_event()) is not None: ...
    for transmit in machine.datagrams_to_send(now): ...   # put them on the wire
    at = machine.get_timer()                               # call handle_timer(at) then

``now`` is monotonic seconds from the caller; a machine never reads the
clock. ``ice.aio.driver.MachineDriver`` runs any of them on asyncio.

The machines: `ice.stun.client.StunClient`, `ice.stun.server.StunServer`,
`ice.stun.nat.NatDiscovery`, `ice.stun.nat_lifetime.BindingLifetimeDiscovery`,
`ice.turn.client.TurnSession`, `ice.turn.data_connection.TurnDataConnection`,
`ice.turn.server.TurnServer`, `ice.agent.agent.Agent`, and
`ice.agent.mdns.MdnsResponder`/`MdnsResolver` (tests/test_machine.py checks
each against `Machine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class Machine(Protocol):
    """What ``MachineDriver`` needs of a sans-I/O machine.

    ``local`` is the local address the datagram arrived on. A machine bound
    to one socket (a STUN or TURN client, mDNS) accepts it and ignores it.
    A machine with several needs it to tell them apart: the ICE agent always,
    a server core unless it has a ``primary`` address (which None then
    stands for), NAT discovery for its second socket (None is the first).
    ``reliable`` says it came over TCP/TLS, where nothing is retransmitted;
    machines that learn that otherwise (a client is told at construction)
    ignore it.

    What ``receive_datagram`` returns is the machine's own business (the STUN
    client says whether it answered a request); a driver ignores it.
    ``next_event`` returns None once there is no event left; machines that
    have no events (the server cores) always return None.
    """

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> object: ...

    def datagrams_to_send(self, now: float) -> list[Transmit]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...

    def next_event(self) -> object: ...
