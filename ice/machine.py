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

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Address", "FailureLog", "Machine", "Transmit"]

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


class FailureLog:
    """Counts the exceptions a catch-all swallows, and logs them without flooding.

    A bug that one crafted packet triggers is triggered by every copy of that
    packet: a traceback each (about 1.4 KB and a millisecond of formatting)
    turns it into a log flood and a CPU sink. So the first failure of each
    kind (exception type and the line that raised it) is logged with its
    traceback, at most `MAX_KINDS` kinds; every other one only counts, and at
    most one summary line per ``interval`` seconds says how many there were.
    ``now`` is the caller's clock (a machine's ``now``, a driver's loop time).
    """

    #: Kinds logged with a traceback, at most; beyond that only the summaries.
    MAX_KINDS = 16

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        #: Failures recorded since construction (what /metrics exports).
        self.count = 0
        self._kinds: set[tuple[str, str, int]] = set()
        self._unlogged = 0
        self._summary_at: float | None = None

    def record(self, exc: BaseException, context: str, now: float) -> None:
        self.count += 1
        kind = _kind(exc)
        if kind not in self._kinds and len(self._kinds) < self.MAX_KINDS:
            self._kinds.add(kind)
            self.logger.error(
                "%s raised %s (repeats are counted, summarised every %g s)",
                context, exc, self.interval, exc_info=exc,
            )  # fmt: skip
            if self._summary_at is None:
                self._summary_at = now + self.interval
            return
        self._unlogged += 1
        if self._summary_at is None:
            self._summary_at = now + self.interval
        elif now >= self._summary_at:
            self.logger.error(
                "%d more failures (%d in all) in the last %g s; the latest: %s raised %r",
                self._unlogged, self.count, self.interval, context, exc,
            )  # fmt: skip
            self._unlogged = 0
            self._summary_at = now + self.interval


def _kind(exc: BaseException) -> tuple[str, str, int]:
    tb = exc.__traceback__
    if tb is None:
        return type(exc).__qualname__, "", 0
    while tb.tb_next is not None:
        tb = tb.tb_next
    return type(exc).__qualname__, tb.tb_frame.f_code.co_filename, tb.tb_lineno
