"""Server-reflexive candidate gathering, sans-I/O (RFC 8445 5.1.1.2).

`ServerReflexiveGatherer` asks every STUN server, from every base of the
same address family, what address it sees, with its own transactions so
that a dead server times out on its own clock (``timeout``) and never stalls
anything else. The ICE agent owns one; its results are (base, server,
mapped address) triples, for the agent to turn into candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ice._codec import Message
from ice._errors import DecodeError
from ice.attrs import Software, XorMappedAddress
from ice.constants import BINDING_REQUEST
from ice.machine import Address, Transmit
from ice.stun.transaction import TransactionSucceeded, TransactionTable

__all__ = ["Reflexive", "ServerReflexiveGatherer"]

logger = logging.getLogger("ice.agent.srflx")


@dataclass(frozen=True, slots=True)
class Reflexive:
    """What ``server`` saw of the base ``base``."""

    base: Address
    server: Address
    mapped: Address


class ServerReflexiveGatherer:
    """Binding requests to STUN servers, one per (base, server) of the same family."""

    def __init__(self, *, timeout: float = 3.5, software: str | None = None) -> None:
        rto = timeout / 7  # sends at 0, 1 and 3 RTO, gives up at 7 RTO
        self._table = TransactionTable(rto=rto, min_rto=rto, max_rto=max(rto, 60.0), rc=3, rm=4)
        # tid -> the server asked; the base is the table's: the request's source, and the
        # local address of the answer's event
        self._asking: dict[bytes, Address] = {}
        self._found: list[Reflexive] = []
        self.software = software

    @property
    def busy(self) -> bool:
        """True while some server has neither answered nor timed out."""
        return bool(self._asking)

    def start(self, bases: Iterable[Address], servers: Iterable[Address], now: float) -> None:
        servers = list(servers)
        for base in bases:
            for server in servers:
                if (":" in base[0]) != (":" in server[0]):
                    continue  # another address family
                request = Message.build(BINDING_REQUEST)
                if self.software is not None:
                    Software(self.software).add_to(request)
                request.add_fingerprint()
                self._asking[request.transaction_id] = server
                self._table.start(request, server, now, source=base)

    def cancel(self) -> None:
        for tid in list(self._asking):
            self._table.cancel(tid)
        self._asking.clear()

    def owns(self, message: Message) -> bool:
        return message.transaction_id in self._asking

    def receive_message(
        self, message: Message, addr: Address, now: float, *, local: Address
    ) -> None:
        """An answer that arrived on the socket bound to ``local`` (the base asked from)."""
        if self._table.receive_message(message, addr, now, local=local):
            self._drain()

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        return self._table.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        return self._table.get_timer()

    def handle_timer(self, now: float) -> None:
        self._table.handle_timer(now)
        self._drain()

    def results(self) -> list[Reflexive]:
        """The addresses found since the last call."""
        found, self._found = self._found, []
        return found

    def _drain(self) -> None:
        while (event := self._table.next_event()) is not None:
            server = self._asking.pop(event.transaction_id, None)
            if server is None:
                continue
            if not isinstance(event, TransactionSucceeded) or event.local is None:
                logger.info("no server-reflexive address from %s", server)
                continue
            try:
                mapped = XorMappedAddress.get_from(event.response)
            except DecodeError:
                mapped = None
            if mapped is not None:
                self._found.append(Reflexive(event.local, server, mapped.address))
