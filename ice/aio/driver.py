"""One asyncio driver for every sans-I/O machine: aioquic's QuicConnectionProtocol, recast.

A machine (`ice.machine.Machine`) never touches a socket or the clock. A
`MachineDriver` puts one on the running loop: the adapter subclasses it (or
owns a subclass) and overrides two hooks, `transmit` (put a `Transmit` on
the wire) and `event_received` (act on an event)::

    class Client(MachineDriver[StunClient]):
        def transmit(self, transmit: Transmit) -> None:
            sock.sendto(transmit.data, transmit.addr)

        def event_received(self, event: object) -> None:
            ...

    client = Client(StunClient())
    client.feed(data, addr)                           # from the socket's callback
    client.machine.request(message, server, now)      # acting on the machine directly,
    client.pump(now)                                  # then pump
    client.close()

`feed` gives the machine one datagram (`feed_batch` several) with ``now`` =
``loop.time()`` unless the caller has one, then pumps. A pump:

1. hands the machine's events to `event_received`;
2. sends what ``datagrams_to_send(now)`` returns through `transmit`, unless
   `paused`;
3. hands over the events that sending produced;
4. arms the one timer (`ice.aio.timer.MachineTimer`) at ``get_timer()``.

Events come before sending, as in aioquic, so that a hook can change where
datagrams go before they are taken (a TURN client moving to another server
on a redirect pauses the driver until its new socket is open) and what a hook
makes the machine send leaves in the same pump. Pumps may nest (a hook may
feed or pump): each step pulls from the machine, so nothing is taken twice.

When the timer fires the machine gets ``handle_timer(now)`` with ``now =
max(deadline, loop.time())`` (never a time before the deadline it asked
for), then a pump.

Errors. An exception from the machine or from a hook is reported once, by
`report`, and never reaches the loop. `report` counts it in `failures`
(`ice.machine.FailureLog`): the first of each kind is logged with its
traceback and what the driver was doing, repeats only as a summary line at
most once a minute, so a packet that trips a bug costs microseconds, not a
traceback each. It costs only the step that raised: the datagram
(or the timer tick, the event, the transmit) is lost and the pump goes on.
A machine stays usable after a bug in one input (a server keeps serving
after one hostile packet); a machine whose ``handle_timer`` raised is timed
again no sooner than `TIMER_ERROR_BACKOFF` later, so a deadline it cannot
get past does not spin the loop. An adapter for which a failure must end
the run (NAT discovery fails its call) overrides `report`.

`close` cancels the timer; from then on `feed` and `pump` do nothing (the
machine itself can still be used directly).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, TypeVar

from ice.aio.timer import MachineTimer
from ice.machine import Address, FailureLog, Machine, Transmit

__all__ = ["TIMER_ERROR_BACKOFF", "MachineDriver"]

#: After the machine raised from handle_timer, its next timer fires no sooner than this (s).
TIMER_ERROR_BACKOFF = 1.0

M = TypeVar("M", bound=Machine)


class MachineDriver(Generic[M]):
    """Runs ``machine`` on the running asyncio loop; see the module docstring.

    It may be created outside a loop: the loop is taken on first use.
    """

    #: Where `report` logs; an adapter sets its own module's logger.
    logger: ClassVar[logging.Logger] = logging.getLogger("ice.aio.driver")

    def __init__(self, machine: M) -> None:
        self.machine = machine
        #: While True, a pump leaves datagrams in the machine (events and the timer go on).
        self.paused = False
        self._timer = MachineTimer(self._on_timer)
        self._loop: asyncio.AbstractEventLoop | None = None
        #: What `report` counted and logged (a server's /metrics exports the count).
        self.failures = FailureLog(self.logger)
        self._closed = False

    # -- the hooks

    def transmit(self, transmit: Transmit) -> None:
        """Put ``transmit`` on the wire (from ``transmit.source``'s socket, when set).

        The default drops it: every adapter overrides this.
        """
        self.logger.debug(
            "no transmit hook: %d bytes to %s dropped", len(transmit.data), transmit.addr
        )

    def event_received(self, event: Any) -> None:
        """Act on one event of the machine (a subclass narrows the type); the default
        ignores it."""

    def report(self, exc: Exception, context: str) -> None:
        """The machine or a hook raised ``exc`` while the driver did ``context``.

        Called once per failure; the default counts it in `failures`, which logs
        the first of its kind with its traceback and repeats as rate-limited summaries.
        """
        try:
            now = self._time()
        except RuntimeError:  # reported outside a running loop (a test driving it by hand)
            now = 0.0
        self.failures.record(exc, f"{type(self.machine).__name__}: {context}", now)

    # -- driving

    @property
    def timer_at(self) -> float | None:
        """The armed deadline (loop time), or None."""
        return self._timer.at

    def _time(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    def feed(
        self,
        data: bytes,
        addr: Address,
        now: float | None = None,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None:
        """Give the machine a datagram (or a stream frame) from ``addr``, then pump."""
        if self._closed:
            return
        if now is None:
            now = self._time()
        try:
            self.machine.receive_datagram(data, addr, now, local=local, reliable=reliable)
        except Exception as exc:
            self.report(exc, f"receive_datagram of {len(data)} bytes from {addr}")
        self._pump(now)

    def feed_batch(
        self,
        datagrams: Iterable[tuple[bytes, Address]],
        now: float | None = None,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None:
        """Give the machine several (data, addr) datagrams read at once, then pump once."""
        if self._closed:
            return
        if now is None:
            now = self._time()
        receive = self.machine.receive_datagram
        for data, addr in datagrams:
            try:
                receive(data, addr, now, local=local, reliable=reliable)
            except Exception as exc:
                self.report(exc, f"receive_datagram of {len(data)} bytes from {addr}")
        self._pump(now)

    def pump(self, now: float | None = None) -> None:
        """Send, deliver and re-arm after acting on the machine directly."""
        if self._closed:
            return
        self._pump(self._time() if now is None else now)

    def arm_timer(self) -> None:
        """Re-arm the timer at the machine's ``get_timer()``, without a pump: for an
        adapter that set the machine up before any input (a server runner's start)."""
        if self._closed:
            return
        try:
            at = self.machine.get_timer()
        except Exception as exc:
            self.report(exc, "get_timer")
            at = None
        self._timer.arm(at)

    def close(self) -> None:
        """Cancel the timer and stop: `feed` and `pump` do nothing from now on."""
        self._closed = True
        self._timer.cancel()

    # -- the pump

    def _pump(self, now: float) -> None:
        machine = self.machine
        try:
            while not self._closed and (event := machine.next_event()) is not None:
                try:
                    self.event_received(event)
                except Exception as exc:
                    self.report(exc, f"event_received({event!r})")
            if not self.paused and not self._closed:
                for transmit in machine.datagrams_to_send(now):
                    if self._closed:  # by a hook: what is left is not sent
                        break
                    try:
                        self.transmit(transmit)
                    except Exception as exc:
                        self.report(
                            exc, f"transmit of {len(transmit.data)} bytes to {transmit.addr}"
                        )
                while not self._closed and (event := machine.next_event()) is not None:
                    try:
                        self.event_received(event)
                    except Exception as exc:
                        self.report(exc, f"event_received({event!r})")
        except Exception as exc:  # from the machine's own methods
            self.report(exc, "datagrams_to_send/next_event")
        if self._closed:
            return
        try:
            at = machine.get_timer()
        except Exception as exc:
            self.report(exc, "get_timer")
            at = None  # untimed until the next input: guessing a deadline would be worse
        self._timer.arm(at)

    def _on_timer(self, now: float) -> None:
        if self._closed:
            return
        try:
            self.machine.handle_timer(now)
        except Exception as exc:
            self.report(exc, f"handle_timer({now:.6f})")
            self._pump(now)
            at = self._timer.at
            if at is not None and at < now + TIMER_ERROR_BACKOFF:
                self._timer.arm(now + TIMER_ERROR_BACKOFF)
            return
        self._pump(now)
