"""The shared machine timer: one deadline, re-armed in place, never fired early."""

from __future__ import annotations

import asyncio

from ice.aio.timer import MachineTimer


def test_fires_once_at_the_latest_deadline_with_a_time_not_before_it() -> None:
    async def main() -> list[tuple[float, float]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[float, float]] = []
        timer = MachineTimer(lambda now: fired.append((now, deadline)))
        deadline = loop.time() + 0.05
        timer.arm(loop.time() + 0.01)
        timer.arm(deadline)  # replaces the earlier deadline
        timer.arm(deadline)  # the same again: nothing changes
        await asyncio.sleep(0.1)
        assert timer.at is None
        timer.arm(loop.time() + 0.01)
        timer.cancel()
        await asyncio.sleep(0.03)
        return fired

    fired = asyncio.run(main())
    assert len(fired) == 1
    now, deadline = fired[0]
    assert now >= deadline
