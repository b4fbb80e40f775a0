"""Binding lifetime discovery, sans-I/O (RFC 5780 section 4.6).

`BindingLifetimeDiscovery` measures how long a NAT keeps an idle UDP mapping,
with two local sockets X and Y and an RFC 5780 server that honours
RESPONSE-PORT. It has the machine surface of `ice.stun.nat.NatDiscovery`; its
result is a `BindingLifetime`.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass
from enum import Enum

from ice._errors import DecodeError
from ice.attrs import ResponsePort
from ice.machine import Address, Transmit
from ice.stun.nat import (
    DEFAULT_TIMEOUT,
    BindingLifetime,
    LifetimeProbe,
    TokenBytes,
    _build_request,
    _fmt,
    _mapped_address,
    _same,
    _table,
)
from ice.stun.transaction import TransactionEvent, TransactionFailed, TransactionSucceeded

__all__ = ["BindingLifetimeDiscovery", "LifetimeEvent", "LifetimeFinished"]

logger = logging.getLogger("ice.stun.nat_lifetime")


@dataclass(frozen=True, slots=True)
class LifetimeFinished:
    """`BindingLifetimeDiscovery` is done; the same result is in ``machine.result``."""

    result: BindingLifetime


LifetimeEvent = LifetimeProbe | LifetimeFinished


class _LifetimeState(Enum):
    IDLE = "idle"
    BINDING = "binding from X"
    WAITING = "waiting"
    PROBING = "probing from Y"
    DONE = "done"


class BindingLifetimeDiscovery:
    """Measure how long the NAT keeps an idle UDP mapping (RFC 5780 section 4.6).

    Socket X (the primary one, ``local_x``) sends a Binding request, which
    creates or refreshes its mapping. After ``T`` seconds of silence on X,
    socket Y (``local_y``) sends a Binding request with RESPONSE-PORT set to
    X's mapped port: the server answers to Y's mapped IP (the NAT's) at that
    port, and the answer reaches X only while X's mapping is alive. It comes
    from the server address X sent to, so any filtering lets it through.

    ``T`` doubles from ``min_wait`` until the mapping is gone (or ``max_wait``
    is reached), then the bracket is halved until it is at most
    ``resolution`` wide. Each cycle starts with a fresh binding from X, so
    every probe measures an idle time of ``T`` from the last packet X sent.
    """

    def __init__(
        self,
        server: Address,
        local_x: Address,
        local_y: Address,
        *,
        min_wait: float = 1.0,
        max_wait: float = 300.0,
        resolution: float = 5.0,
        timeout: float = DEFAULT_TIMEOUT,
        software: str | None = None,
        token_bytes: TokenBytes = secrets.token_bytes,
    ) -> None:
        if not 0 < min_wait <= max_wait:
            raise ValueError("need 0 < min_wait <= max_wait")
        if not resolution > 0:
            raise ValueError("resolution must be positive")
        if _same(local_x, local_y):
            raise ValueError("X and Y must be two different sockets")
        self.server = server
        self.local_x = local_x
        self.local_y = local_y
        self.min_wait = min_wait
        self.max_wait = max_wait
        self.resolution = resolution
        self._table = _table(timeout)
        self._token_bytes = token_bytes
        self._software = software
        self._events: deque[LifetimeEvent] = deque()
        self._state = _LifetimeState.IDLE
        self._tid: bytes | None = None
        self._mapped: Address | None = None
        self._wait = min_wait
        self._wait_until = 0.0
        self._last_x_send = 0.0
        self._lower = 0.0
        self._upper: float | None = None
        self._probes: list[LifetimeProbe] = []
        self._problems: list[str] = []
        self.result: BindingLifetime | None = None

    @property
    def mapped_address(self) -> Address | None:
        """X's mapped address from its latest binding."""
        return self._mapped

    def start(self, now: float) -> None:
        if self._state is not _LifetimeState.IDLE:
            raise RuntimeError("discovery already started")
        self._bind(now)

    # -- the machine surface

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None:
        """Feed a datagram; ``local`` is the socket it came in on (None: X).
        ``reliable`` is ignored: the search runs over UDP."""
        self._table.receive_datagram(data, addr, now, local=local)
        self._drain(now)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        out = self._table.datagrams_to_send(now)
        if any(t.source is None for t in out):
            self._last_x_send = now  # the idle time counts from X's last packet
        return out

    def get_timer(self) -> float | None:
        if self._state is _LifetimeState.WAITING:
            return self._wait_until
        return self._table.get_timer()

    def handle_timer(self, now: float) -> None:
        if self._state is _LifetimeState.WAITING:
            if now >= self._wait_until:
                self._probe(now)
            return
        self._table.handle_timer(now)
        self._drain(now)

    def next_event(self) -> LifetimeEvent | None:
        return self._events.popleft() if self._events else None

    # -- the search

    def _bind(self, now: float) -> None:
        self._state = _LifetimeState.BINDING
        request = _build_request(self._token_bytes, self._software)
        self._tid = self._table.start(request, self.server, now)

    def _probe(self, now: float) -> None:
        assert self._mapped is not None
        self._state = _LifetimeState.PROBING
        request = _build_request(self._token_bytes, self._software, ResponsePort(self._mapped[1]))
        self._tid = self._table.start(request, self.server, now, source=self.local_y)

    def _drain(self, now: float) -> None:
        while (event := self._table.next_event()) is not None:
            if event.transaction_id != self._tid:
                continue
            if self._state is _LifetimeState.BINDING:
                self._bound(event, now)
            elif self._state is _LifetimeState.PROBING:
                self._probed(event, now)

    def _bound(self, event: TransactionEvent, now: float) -> None:
        mapped = None
        if isinstance(event, TransactionSucceeded):
            try:
                mapped = _mapped_address(event.response)
            except DecodeError:
                mapped = None
        if mapped is None:
            why = (
                f"error response {event.code} {event.reason}"
                if isinstance(event, TransactionFailed)
                else "no answer"
                if not isinstance(event, TransactionSucceeded)
                else "no mapped address in the answer"
            )
            self._finish(f"binding from X to {_fmt(self.server)}: {why}".rstrip())
            return
        self._mapped = mapped
        self._state = _LifetimeState.WAITING
        self._wait_until = max(self._last_x_send + self._wait, now)

    def _probed(self, event: TransactionEvent, now: float) -> None:
        if isinstance(event, TransactionFailed):
            self._finish(
                f"the server rejected RESPONSE-PORT ({event.code} {event.reason})".rstrip()
                + ": it does not support RFC 5780"
            )
            return
        if (
            isinstance(event, TransactionSucceeded)
            and event.local is not None
            and _same(event.local, self.local_y)
        ):
            self._finish("the answer to the probe came back to Y: the server ignores RESPONSE-PORT")
            return
        alive = isinstance(event, TransactionSucceeded)
        probe = LifetimeProbe(self._wait, alive)
        self._probes.append(probe)
        self._events.append(probe)
        logger.debug("binding lifetime: %s", probe)
        wait = self._wait
        if alive:
            self._lower = wait
        else:
            self._upper = wait
        if self._upper is None:
            if wait >= self.max_wait:
                self._finish()
                return
            self._wait = min(2 * wait, self.max_wait)
        else:
            if not alive and wait <= self.min_wait:
                self._finish()  # gone after the shortest wait allowed
                return
            if self._upper - self._lower <= self.resolution:
                self._finish()
                return
            self._wait = max((self._lower + self._upper) / 2, self.min_wait)
        self._bind(now)

    def _finish(self, problem: str | None = None) -> None:
        if problem is not None:
            self._problems.append(problem)
        self._state = _LifetimeState.DONE
        self._tid = None
        searched = bool(self._probes)
        self.result = BindingLifetime(
            server=self.server,
            lower=self._lower if searched else None,
            upper=self._upper if searched else None,
            probes=tuple(self._probes),
            problems=tuple(self._problems),
        )
        self._events.append(LifetimeFinished(self.result))
