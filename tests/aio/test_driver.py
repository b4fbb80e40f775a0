"""`ice.aio.driver.MachineDriver` on a real event loop, with a scripted machine.

The machine below does what it is told and writes down what it is asked; the
driver's hooks write into the same log, so each test reads the order in which
the driver called the machine and the hooks. Timers are a few milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import pytest

from ice.aio.driver import TIMER_ERROR_BACKOFF, MachineDriver
from ice.machine import Address, Machine, Transmit
from tests.support.loop import run

PEER = ("192.0.2.1", 3478)
LOCAL = ("192.0.2.10", 50000)


class Scripted:
    """A machine whose outputs the test queues, and which logs what it is asked."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.events: deque[str] = deque()
        self.outbox: list[Transmit] = []
        #: Events that appear once its datagrams have been taken (sending produced them).
        self.after_sending: list[str] = []
        self.deadline: float | None = None
        #: Deadlines to move to, one per handle_timer call.
        self.next_deadlines: list[float | None] = []
        self.fired: list[float] = []
        self.broken: set[str] = set()

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        now: float,
        *,
        local: Address | None = None,
        reliable: bool = False,
    ) -> None:
        self.log.append(("receive", data, addr, now, local, reliable))
        if "receive" in self.broken:
            raise RuntimeError("bug in receive_datagram")

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        self.log.append(("datagrams_to_send", now))
        out, self.outbox = self.outbox, []
        self.events.extend(self.after_sending)
        self.after_sending = []
        return out

    def get_timer(self) -> float | None:
        self.log.append(("get_timer",))
        if "get_timer" in self.broken:
            raise RuntimeError("bug in get_timer")
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.log.append(("handle_timer", now))
        self.fired.append(now)
        if "handle_timer" in self.broken:
            raise RuntimeError("bug in handle_timer")
        self.deadline = self.next_deadlines.pop(0) if self.next_deadlines else None

    def next_event(self) -> str | None:
        return self.events.popleft() if self.events else None


class Recorder(MachineDriver[Scripted]):
    """Hooks that log into the machine's log; ``broken`` hooks raise."""

    def __init__(self, machine: Scripted) -> None:
        super().__init__(machine)
        self.broken: set[str] = set()
        self.reports: list[tuple[Exception, str]] = []

    def transmit(self, transmit: Transmit) -> None:
        self.machine.log.append(("transmit", transmit.data))
        if transmit.data in self.broken:
            raise OSError("the socket refused it")

    def event_received(self, event: str) -> None:
        self.machine.log.append(("event", event))
        if event in self.broken:
            raise ValueError(f"a bug handling {event}")

    def report(self, exc: Exception, context: str) -> None:
        self.reports.append((exc, context))
        super().report(exc, context)


def steps(log: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The log without the times, which differ from run to run."""
    return [entry[:1] + tuple(x for x in entry[1:] if not isinstance(x, float)) for entry in log]


async def loop_errors() -> list[dict[str, Any]]:
    """What reaches the loop's exception handler from now on (must stay empty)."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    return errors


def test_the_scripted_machine_is_a_machine() -> None:
    assert isinstance(Scripted(), Machine)


def test_a_pump_delivers_events_then_sends_then_delivers_again_then_arms_the_timer() -> None:
    async def main() -> None:
        machine = Scripted()
        driver = Recorder(machine)
        now = asyncio.get_running_loop().time()
        machine.events.extend(["e1", "e2"])
        machine.outbox = [Transmit(b"t1", PEER), Transmit(b"t2", PEER)]
        machine.after_sending = ["e3"]
        machine.deadline = now + 60
        driver.feed(b"in", PEER, now, local=LOCAL, reliable=True)
        assert steps(machine.log) == [
            ("receive", b"in", PEER, LOCAL, True),
            ("event", "e1"),
            ("event", "e2"),
            ("datagrams_to_send",),
            ("transmit", b"t1"),
            ("transmit", b"t2"),
            ("event", "e3"),
            ("get_timer",),
        ]
        assert machine.log[0][3] == now and machine.log[3][1] == now  # the caller's now
        assert driver.timer_at == now + 60
        driver.close()

    run(main())


def test_feed_without_now_reads_the_loop_clock() -> None:
    async def main() -> None:
        machine = Scripted()
        driver = Recorder(machine)
        before = asyncio.get_running_loop().time()
        driver.feed(b"in", PEER)
        after = asyncio.get_running_loop().time()
        _, _, _, now, local, reliable = machine.log[0]
        assert before <= now <= after and local is None and reliable is False

    run(main())


def test_feed_batch_feeds_every_datagram_then_pumps_once() -> None:
    async def main() -> None:
        machine = Scripted()
        driver = Recorder(machine)
        machine.outbox = [Transmit(b"out", PEER)]
        driver.feed_batch([(b"a", PEER), (b"b", LOCAL)], 5.0, local=LOCAL)
        assert steps(machine.log) == [
            ("receive", b"a", PEER, LOCAL, False),
            ("receive", b"b", LOCAL, LOCAL, False),
            ("datagrams_to_send",),
            ("transmit", b"out"),
            ("get_timer",),
        ]

    run(main())


def test_one_timer_is_re_armed_in_place_and_fires_once_at_the_latest_deadline() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        machine = Scripted()
        driver = Recorder(machine)
        start = loop.time()
        for delay in (0.010, 0.030, 0.020):  # three pumps, three deadlines: one timer
            machine.deadline = start + delay
            driver.pump()
        assert driver.timer_at == start + 0.020
        await asyncio.sleep(0.06)
        assert len(machine.fired) == 1 and machine.fired[0] >= start + 0.020
        assert driver.timer_at is None  # the machine has no deadline after it fired

    run(main())


def test_a_timer_fires_with_now_not_before_its_deadline_even_when_the_loop_wakes_early() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        # asyncio runs a handle up to one clock resolution before its time: with a
        # coarse clock the timer fires early, and the machine must still get the deadline.
        loop._clock_resolution = 0.5  # type: ignore[attr-defined]
        machine = Scripted()
        driver = Recorder(machine)
        deadline = loop.time() + 0.2
        machine.deadline = deadline
        driver.pump()
        await asyncio.sleep(0.01)
        assert machine.fired == [deadline]
        assert loop.time() < deadline  # it did fire early
        # a deadline already past: now is the loop's time, later than the deadline
        late = loop.time() - 1.0
        machine.deadline = late
        driver.pump()
        await asyncio.sleep(0.01)
        assert late + 0.5 < machine.fired[1] <= loop.time()

    run(main())


def test_the_timer_fire_is_followed_by_a_pump_with_the_same_now() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        machine = Scripted()
        driver = Recorder(machine)
        machine.deadline = loop.time() + 0.005
        machine.next_deadlines = [loop.time() + 60]
        driver.pump()
        machine.log.clear()
        machine.outbox = [Transmit(b"retransmit", PEER)]
        await asyncio.sleep(0.03)
        assert steps(machine.log) == [
            ("handle_timer",),
            ("datagrams_to_send",),
            ("transmit", b"retransmit"),
            ("get_timer",),
        ]
        assert machine.log[0][1] == machine.log[1][1]  # the timer's now, not a fresh clock
        assert driver.timer_at == machine.deadline
        driver.close()

    run(main())


def test_a_machine_exception_loses_only_that_datagram_and_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        errors = await loop_errors()
        machine = Scripted()
        driver = Recorder(machine)
        machine.broken.add("receive")
        machine.outbox = [Transmit(b"still sent", PEER)]
        machine.deadline = asyncio.get_running_loop().time() + 60
        driver.feed(b"boom", PEER, 1.0)
        assert ("transmit", b"still sent") in machine.log
        assert driver.timer_at == machine.deadline
        assert [type(exc) for exc, _ in driver.reports] == [RuntimeError]
        assert "receive_datagram of 4 bytes" in driver.reports[0][1]
        machine.broken.clear()
        driver.feed(b"fine", PEER, 2.0)  # the machine goes on
        assert ("receive", b"fine", PEER, 2.0, None, False) in machine.log
        assert errors == []
        driver.close()

    caplog.set_level(logging.ERROR, logger="ice.aio.driver")
    run(main())
    records = [r for r in caplog.records if r.name == "ice.aio.driver"]
    assert len(records) == 1 and records[0].exc_info is not None
    assert "Scripted" in records[0].getMessage() and "receive_datagram" in records[0].getMessage()


def test_a_hook_exception_costs_only_that_transmit_or_event() -> None:
    async def main() -> None:
        errors = await loop_errors()
        machine = Scripted()
        driver = Recorder(machine)
        driver.broken.update({b"t1", "e1"})
        machine.events.extend(["e1", "e2"])
        machine.outbox = [Transmit(b"t1", PEER), Transmit(b"t2", PEER)]
        driver.pump(1.0)
        assert steps(machine.log) == [
            ("event", "e1"),
            ("event", "e2"),
            ("datagrams_to_send",),
            ("transmit", b"t1"),
            ("transmit", b"t2"),
            ("get_timer",),
        ]
        assert [(type(exc), context.split()[0]) for exc, context in driver.reports] == [
            (ValueError, "event_received('e1')"),
            (OSError, "transmit"),
        ]
        assert errors == []

    run(main())


def test_a_machine_failing_in_handle_timer_is_timed_again_only_after_a_backoff() -> None:
    async def main() -> None:
        errors = await loop_errors()
        loop = asyncio.get_running_loop()
        machine = Scripted()
        driver = Recorder(machine)
        machine.broken.add("handle_timer")
        machine.deadline = loop.time() + 0.005  # it never moves: handle_timer keeps failing
        driver.pump()
        await asyncio.sleep(0.05)
        assert len(machine.fired) == 1  # no spinning on the deadline it cannot get past
        timer_at = driver.timer_at
        assert timer_at is not None and timer_at >= machine.fired[0] + TIMER_ERROR_BACKOFF
        assert [type(exc) for exc, _ in driver.reports] == [RuntimeError]
        assert driver.reports[0][1].startswith("handle_timer(")
        assert errors == []
        driver.close()

    run(main())


def test_a_machine_failing_in_get_timer_is_left_untimed() -> None:
    async def main() -> None:
        machine = Scripted()
        driver = Recorder(machine)
        machine.deadline = asyncio.get_running_loop().time() + 60
        driver.pump()
        assert driver.timer_at == machine.deadline
        machine.broken.add("get_timer")
        driver.pump()
        assert driver.timer_at is None
        assert [context for _, context in driver.reports] == ["get_timer"]

    run(main())


def test_arm_timer_re_arms_without_a_pump() -> None:
    async def main() -> None:
        machine = Scripted()
        driver = Recorder(machine)
        machine.deadline = asyncio.get_running_loop().time() + 60
        machine.outbox = [Transmit(b"left for the next pump", PEER)]
        machine.events.append("left too")
        driver.arm_timer()
        assert steps(machine.log) == [("get_timer",)]
        assert driver.timer_at == machine.deadline
        driver.close()
        driver.arm_timer()
        assert driver.timer_at is None

    run(main())


def test_close_cancels_the_timer_and_stops_feeding_and_pumping() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        machine = Scripted()
        driver = Recorder(machine)
        machine.deadline = loop.time() + 0.01
        driver.pump()
        driver.close()
        assert driver.timer_at is None
        machine.log.clear()
        machine.outbox = [Transmit(b"late", PEER)]
        driver.feed(b"late", PEER)
        driver.pump()
        await asyncio.sleep(0.03)
        assert machine.log == [] and machine.fired == []

    run(main())


def test_a_hook_that_closes_the_driver_stops_the_pump_there() -> None:
    class Closing(Recorder):
        def event_received(self, event: str) -> None:
            super().event_received(event)
            if event == "last":
                self.close()

    async def main() -> None:
        machine = Scripted()
        driver = Closing(machine)
        machine.events.extend(["last", "after"])
        machine.outbox = [Transmit(b"never", PEER)]
        machine.deadline = asyncio.get_running_loop().time() + 0.01
        driver.pump()
        assert steps(machine.log) == [("event", "last")]
        assert driver.timer_at is None

    run(main())


def test_a_hook_may_pump_again_without_anything_sent_twice() -> None:
    class Reentrant(Recorder):
        def event_received(self, event: str) -> None:
            super().event_received(event)
            if event == "answer":
                self.machine.outbox.append(Transmit(b"reply", PEER))
                self.pump()

    async def main() -> None:
        machine = Scripted()
        driver = Reentrant(machine)
        machine.events.append("answer")
        machine.outbox = [Transmit(b"first", PEER)]
        driver.pump(1.0)
        sent = [entry[1] for entry in machine.log if entry[0] == "transmit"]
        assert sorted(sent) == [b"first", b"reply"]

    run(main())


def test_while_paused_datagrams_wait_in_the_machine() -> None:
    async def main() -> None:
        machine = Scripted()
        driver = Recorder(machine)
        driver.paused = True
        machine.events.append("redirected")
        machine.outbox = [Transmit(b"allocate", ("192.0.2.2", 3478))]
        driver.pump(1.0)
        assert steps(machine.log) == [("event", "redirected"), ("get_timer",)]
        assert machine.outbox  # still the machine's
        driver.paused = False
        driver.pump(2.0)
        assert ("transmit", b"allocate") in machine.log

    run(main())


def test_a_driver_may_be_made_outside_a_loop() -> None:
    machine = Scripted()
    driver = Recorder(machine)  # Connection makes its driver before any loop runs

    async def main() -> None:
        driver.feed(b"x", PEER)
        assert machine.log[0][0] == "receive"

    run(main())


def test_a_machine_failing_1000_times_logs_one_traceback_and_counts_1000(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> MachineDriver[Scripted]:
        machine = Scripted()
        machine.broken.add("receive")
        driver: MachineDriver[Scripted] = MachineDriver(machine)
        for i in range(1000):
            driver.feed(b"boom", PEER, float(i))
        driver.close()
        return driver

    caplog.set_level(logging.DEBUG, logger="ice.aio.driver")
    driver = run(main())
    records = [r for r in caplog.records if r.name == "ice.aio.driver"]
    tracebacks = [r for r in records if r.exc_info is not None]
    assert len(tracebacks) == 1
    assert driver.failures.count == 1000
    assert len(records) <= 2  # the traceback, and at most one summary within the minute
