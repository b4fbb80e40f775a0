"""A small timeit harness for the cases in ice._bench.cases (no pytest-benchmark needed).

For each case: prepare it (``case.setup()``), find a number of calls that
takes at least ``min_time`` seconds (as ``timeit.Timer.autorange`` does,
1-2-5 steps), then time that many calls ``repeats`` times with the garbage
collector off; `run_with_floor` interleaves the repeats of all cases (one
round times each case once). The result is the min and the median of the
per-call times.
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

import dis
import statistics
import time
import timeit
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final, Literal

from ice._bench import cases
from ice._bench.report import Result

__all__ = [
    "Result",
    "Settings",
    "clock_name",
    "harness_floor_ns",
    "measure",
    "run",
    "run_with_floor",
]

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


def python_calls(op: Callable[[], object]) -> int:
    """Python-level calls one iteration of op makes: the timing loop's own call of op,
    plus, when op is a Python function, each call instruction in its body (a loop
    body counted once; what the called C code does inside is the work)."""
    code = getattr(op, "__code__", None)
    if code is None:  # a bound method, builtin or functools.partial: one call
        return 1
    return 1 + sum(1 for ins in dis.get_instructions(code) if ins.opname in _CALL_OPS)


#: The call instructions of CPython 3.11-3.13 (3.11 adds PRECALL before each CALL).
_CALL_OPS: Final = frozenset({"CALL", "CALL_FUNCTION_EX", "CALL_KW"})


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
        calls=python_calls(op),
    )


def _noop() -> None:
    return None


_EMPTY: Final[dict[object, object]] = {}
_NOTHING: Final[list[object]] = []


def _cheapest_raise() -> None:
    """CPython's cheapest raise: a C function's exception with a fixed message
    (an empty list's pop(): IndexError), caught in the function that called it."""
    # try/except, not contextlib.suppress: a context manager would be timed too
    try:  # noqa: SIM105
        _NOTHING.pop()
    except IndexError:
        pass


def c_call_floor_ns(settings: Settings = FULL) -> float:
    """Median ns per call of a C method doing nothing ({}.clear), from the same loop:
    what a call into the codec costs before its work starts."""
    return measure("(empty C method)", _EMPTY.clear, settings).median_ns


def harness_floor_ns(settings: Settings = FULL) -> float:
    """Median ns per call of an empty Python function: what the timing loop adds at least.

    Single-call cases are timed as a bound method or functools.partial, which
    costs about as much as this; multi-step cases are a Python function.
    """
    return measure("(empty function)", _noop, settings).median_ns


FLOOR_NAME: Final = "(empty function)"
C_FLOOR_NAME: Final = "(empty C method)"
RAISE_FLOOR_NAME: Final = "(cheapest raise)"
#: The floor is timed before every FLOOR_EVERY-th case (and after the last) in
#: each round, and its median taken over all of those: one timing of a 30 ns
#: function per round moved by 9-11% between runs whose rows moved 2-5%, and a
#: --compare divides every row by it.
FLOOR_EVERY: Final = 8


def _chosen(selected: Collection[str] | None) -> list[cases.Case]:
    chosen = cases.all_cases()
    if selected is not None:
        wanted = set(selected)
        unknown = wanted - {c.name for c in chosen}
        if unknown:
            raise KeyError(f"no benchmark case named {', '.join(sorted(unknown))}")
        chosen = [c for c in chosen if c.name in wanted]
    return chosen


def run_with_floor(
    selected: Collection[str] | None = None,
    settings: Settings = FULL,
    *,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Result], float, float, float]:
    """Time the cases named in selected (all when None) and the harness floors, interleaved.

    Each case (and an empty function, the floor) is prepared and calibrated
    once; then come ``settings.repeats`` rounds, each timing every case once,
    in turn. A burst of load from elsewhere on the machine so lands in one
    repeat of many cases, where their median drops it, instead of in every
    repeat of a few cases, which would then read slower as a whole (timing
    each case's repeats back to back did that on a shared core: see
    bench/README.md, "Regression check"). Returns the results, in registry
    order, and the medians over all their timings of the floor (an empty
    Python function), of an empty C method (`c_call_floor_ns`) and of CPython's
    cheapest raise (`_cheapest_raise`: what a row that raises and catches an
    exception on every iteration is measured against).
    """
    clock = _timer(settings.clock)
    chosen = _chosen(selected)
    floors: list[tuple[str, timeit.Timer, int]] = []
    empties: tuple[tuple[str, Callable[[], object]], ...] = (
        (FLOOR_NAME, _noop),
        (C_FLOOR_NAME, _EMPTY.clear),
        (RAISE_FLOOR_NAME, _cheapest_raise),
    )
    for name, empty in empties:
        timer = timeit.Timer(empty, timer=clock)
        floors.append((name, timer, _calibrate(timer, settings.min_time)))
    timed: list[tuple[str, timeit.Timer, int]] = []
    calls: dict[str, int] = {}
    for index, case in enumerate(chosen):
        if progress is not None:
            progress(f"[{index + 1}/{len(chosen)}] {case.name}")
        if index % FLOOR_EVERY == 0:
            timed += floors
        op = case.setup()
        op()  # fail early, before any timing, if the workload is broken
        calls[case.name] = python_calls(op)
        timer = timeit.Timer(op, timer=clock)
        timed.append((case.name, timer, _calibrate(timer, settings.min_time)))
    timed += floors
    per_call: dict[str, list[float]] = {name: [] for name, _, _ in timed}
    for round_number in range(settings.repeats):
        if progress is not None:
            progress(f"round {round_number + 1}/{settings.repeats}")
        for name, timer, number in timed:
            per_call[name].append(timer.timeit(number) / number * 1e9)
    loops = {name: number for name, _, number in timed}
    results = [
        Result(
            name=case.name,
            min_ns=min(per_call[case.name]),
            median_ns=statistics.median(per_call[case.name]),
            loops=loops[case.name],
            repeats=settings.repeats,
            calls=calls[case.name],
        )
        for case in chosen
    ]
    return (
        results,
        statistics.median(per_call[FLOOR_NAME]),
        statistics.median(per_call[C_FLOOR_NAME]),
        statistics.median(per_call[RAISE_FLOOR_NAME]),
    )


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
    settings, when given, overrides both. The repeats are interleaved
    (`run_with_floor`); progress, when given, is called with a line of
    progress text as the run goes.
    """
    if settings is None:
        settings = QUICK if quick else FULL
    return run_with_floor(selected, settings, progress=progress)[0]
