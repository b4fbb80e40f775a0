"""A small timeit harness for the cases in ice._bench.cases (no pytest-benchmark needed).

For each case: prepare it (``case.setup()``), find a number of calls that
takes at least ``min_time`` seconds (as ``timeit.Timer.autorange`` does,
1-2-5 steps), then time that many calls ``repeats`` times with the garbage
collector off. The result is the min and the median of the per-call times.
Nothing is subtracted: the cost of calling the prepared callable from the
timing loop is part of every number (see `harness_floor_ns`).
"""

from __future__ import annotations

import dis
import statistics
import timeit
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

from ice._bench import cases
from ice._bench.report import Result

__all__ = ["Result", "Settings", "harness_floor_ns", "measure", "run"]


@dataclass(frozen=True)
class Settings:
    """How long to time each case."""

    min_time: float
    """Seconds each timed repeat lasts at least."""
    repeats: int
    """Timed repeats per case; the min and median are taken over these."""


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
    timer = timeit.Timer(op)
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


def run(
    selected: Collection[str] | None = None,
    quick: bool = False,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Time the cases named in selected (every registered case when None).

    quick times each case for a few milliseconds (the whole table in a few
    seconds: a smoke run); otherwise 7 repeats of at least 0.1 s each.
    progress, when given, is called with each case's name before it runs.
    """
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
