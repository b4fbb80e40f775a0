"""The one timer every sans-I/O machine needs on an asyncio loop.

After each step the adapter calls ``timer.arm(machine.get_timer())``; when the
deadline comes, ``on_fire(now)`` runs with ``now = max(deadline, loop.time())``
(a loop may wake a little early, and a machine must never see a time before
the deadline it asked for). Arming the same deadline again is free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["MachineTimer"]


class MachineTimer:
    """A single re-armable deadline on the running loop."""

    def __init__(self, on_fire: Callable[[float], None]) -> None:
        self._on_fire = on_fire
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def at(self) -> float | None:
        """The armed deadline, or None."""
        return self._at

    def arm(self, at: float | None) -> None:
        """Fire at ``at`` (loop time) instead of whatever was armed; None disarms."""
        if at == self._at and (at is None or self._handle is not None):
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._at = at
        if at is not None:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._handle = self._loop.call_at(at, self._fire)

    def cancel(self) -> None:
        self.arm(None)

    def _fire(self) -> None:
        at, loop = self._at, self._loop
        self._handle = self._at = None
        assert at is not None and loop is not None
        self._on_fire(max(at, loop.time()))
