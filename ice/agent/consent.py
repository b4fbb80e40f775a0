"""Consent freshness bookkeeping (RFC 7675), sans-I/O.

`Consent` keeps, per selected pair (a slot: data stream and component), when
the peer last answered and when the next randomised consent check is due,
and says what the silence amounts to. The ICE agent sends the checks and
changes its state; this module only does the arithmetic, in one place, with
deadlines compared exactly as they are reported (no float drift between
`deadline` and `poll`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Consent", "ConsentVerdict"]

Slot = tuple[int, int]


@dataclass(frozen=True, slots=True)
class ConsentVerdict:
    """What `Consent.poll` found: checks to send now, and how long the worst silence is."""

    due: tuple[Slot, ...]
    lost: Slot | None  # silent for consent_timeout: consent is gone
    silent_slot: Slot | None  # silent for consent_disconnect
    silence: float


class Consent:
    """Per-slot consent: checks every ``interval`` (randomised +-20 %, RFC 7675 5.1);
    ``disconnect`` and ``timeout`` seconds without an answer mean disconnected and lost."""

    def __init__(
        self, rng: random.Random, *, interval: float, disconnect: float, timeout: float
    ) -> None:
        self._rng = rng
        self.interval, self.disconnect, self.timeout = interval, disconnect, timeout
        self._next: dict[Slot, float] = {}
        self._answered: dict[Slot, float] = {}

    def __bool__(self) -> bool:
        return bool(self._next)

    def start(self, slot: Slot, now: float) -> None:
        """A pair was selected for ``slot``: it has consent now."""
        self._answered[slot] = now
        self._next[slot] = now + self._delay()

    def answered(self, slot: Slot, now: float) -> None:
        if slot in self._answered:
            self._answered[slot] = now

    def clear(self) -> None:
        self._next.clear()
        self._answered.clear()

    def deadline(self, disconnected: bool) -> float | None:
        """The next check, or the moment silence crosses a line."""
        limit = self.timeout if disconnected else min(self.timeout, self.disconnect)
        return min(
            (min(at, self._answered[slot] + limit) for slot, at in self._next.items()),
            default=None,
        )

    def poll(self, now: float) -> ConsentVerdict:
        """Reschedule the checks due at ``now`` and report them and the silences."""
        due, lost, silent_slot, silence = [], None, None, 0.0
        for slot, at in self._next.items():
            answered = self._answered[slot]
            if now >= answered + self.timeout:
                lost = slot
            if now >= answered + self.disconnect and now - answered >= silence:
                silent_slot, silence = slot, now - answered
            if now >= at:
                self._next[slot] = now + self._delay()
                due.append(slot)
        return ConsentVerdict(tuple(due), lost, silent_slot, silence)

    def _delay(self) -> float:
        return self.interval * self._rng.uniform(0.8, 1.2)
