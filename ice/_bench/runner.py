"""A small timeit harness for the cases in ice._bench.cases (no pytest-benchmark needed).

For each case: prepare it (``case.setup()``), find a number of calls that
takes at least ``min_time`` seconds (as ``timeit.Timer.autorange`` does,
1-2-5 steps), then time that many calls ``repeats`` times with the garbage
collector off. The result is the min and the median of the per-call times.
Nothing is subtracted: the cost of calling the prepared callable from the
timing loop is part of every number (see `harness_floor_ns`).

The clock is this thread's CPU time (``time.thread_time``) where it has
nanosecond resolution (Linux, macOS), not the wall clock: on a shared core a
repeat during which another process ran is not counted longer, only the
cycles this loop spent (bench/README.md, "Regression check", has the spread
of both clocks on a busy core). ``clock="wall"`` times with
``time.perf_counter`` as timeit does.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final, Literal

from ice._bench import cases
from ice._bench.report import Result

__all__ = ["Result", "Settings", "clock_name", "harness_floor_ns", "measure", "run"]

Clock = Literal["cpu", "wall"]


def _cpu_clock_usable() -> bool:
    # Windows' thread CPU time ticks in 15.6 ms steps: a 0.1 s repeat would be
    # off by 15%, so the wall clock is the better of the two there.
    try:
        return time.get_clock_info("thread_time").resolution <= 1e-6
    except (AttributeError, ValueError, OSError):
        return False


CPU_CLOCK_USABLE: Final = _cpu_clock_usable()


def clock_name(clock: Clock) -> str:
    """The function that times a run asked to use clock (cpu falls back to wall)."""
    return "thread_time" if clock == "cpu" and CPU_CLOCK_USABLE else "perf_counter"


def _timer(clock: Clock) -> Callable[[], float]:
    return time.thread_time if clock_name(clock) == "thread_time" else time.perf_counter


@dataclass(frozen=True)
class Settings:
    """How long to time each case."""

    min_time: float
    """Seconds each timed repeat lasts at least."""
    repeats: int
    """Timed repeats per case; the min and median are taken over these."""
    clock: Clock = "cpu"
    """"cpu": this thread's CPU time where it has fine resolution; "wall": perf_counter."""


FULL: Final = Settings(min_time=0.1, repeats=7)
QUICK: Final = Settings(min_time=0.004, repeats=3)


def _calibrate(timer: timeit.Timer, min_time: float) -> int:
    """The smallest 1-2-5 step number of calls that takes at least min_time."""
    base = 1
    while True:
        for step in (1, 2, 5):
            number = base * step
            if timer.timeit(number) >= min_time:
                return number
        base *= 10


def measure(name: str, op: Callable[[], object], settings: Settings = FULL) -> Result:
    """Time op (a zero-argument callable) and return its per-call min and median."""
    op()  # fail early, before any timing, if the workload is broken
    timer = timeit.Timer(op, timer=_timer(settings.clock))
    number = _calibrate(timer, settings.min_time)
    per_call = [t / number * 1e9 for t in timer.repeat(repeat=settings.repeats, number=number)]
    return Result(
        name=name,
        min_ns=min(per_call),
        median_ns=statistics.median(per_call),
        loops=number,
        repeats=settings.repeats,
    )


def _noop() -> None:
    return None


def harness_floor_ns(settings: Settings = FULL) -> float:
    """Median ns per call of an empty Python function: what the timing loop adds at least.

    Single-call cases are timed as a bound method or functools.partial, which
    costs about as much as this; multi-step cases are a Python function.
    """
    return measure("(empty function)", _noop, settings).median_ns


def run(
    selected: Collection[str] | None = None,
    quick: bool = False,
    *,
    progress: Callable[[str], None] | None = None,
    settings: Settings | None = None,
) -> list[Result]:
    """Time the cases named in selected (every registered case when None).

    quick times each case for a few milliseconds (the whole table in a few
    seconds: a smoke run); otherwise 7 repeats of at least 0.1 s each.
    settings, when given, overrides both.
    progress, when given, is called with each case's name before it runs.
    """
    if settings is None:
        settings = QUICK if quick else FULL
    chosen = cases.all_cases()
    if selected is not None:
        wanted = set(selected)
        unknown = wanted - {c.name for c in chosen}
        if unknown:
            raise KeyError(f"no benchmark case named {', '.join(sorted(unknown))}")
        chosen = [c for c in chosen if c.name in wanted]
    results: list[Result] = []
    for case in chosen:
        if progress is not None:
            progress(case.name)
        results.append(measure(case.name, case.setup(), settings))
    return results
