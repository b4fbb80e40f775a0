"""pytest-benchmark suite mirroring pion's Go benchmarks (see README.md here).

Not part of the default ``pytest`` run (pyproject's testpaths is ``tests``):
run ``pytest bench --benchmark-json=RESULT.json`` and then
``python bench/compare.py RESULT.json``.

Every benchmark runs with the garbage collector off and a warm-up, like the
timeit harness of ``python -m ice bench``, and is grouped by the Go package
it mirrors (the test module's name).

The ``benchmark`` fixture here is pytest-benchmark's, with one change: a
zero-argument callable is timed in a plain ``for`` loop calling ``fn()``, as
timeit does. pytest-benchmark's own loop calls ``fn(*args, **kwargs)``, which
builds an empty dict on every call and adds about 35 ns to each of these
(20-200 ns) operations: a cost of the harness, not of the code under test.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

try:
    import ice  # noqa: F401
except ImportError:  # a source checkout built in place (python setup.py build_ext --inplace)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_GROUPS = {
    "test_stun": "pion/stun",
    "test_turn": "pion/turn internal/proto",
    "test_hmac": "pion/stun internal/hmac",
    "test_aioice": "ice vs aioice",
    "test_ice": "ice agent (no reference)",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "benchmark" not in getattr(item, "fixturenames", ()):
            continue
        module = (
            item.module.__name__.rpartition(".")[2] if isinstance(item, pytest.Function) else ""
        )
        item.add_marker(
            pytest.mark.benchmark(group=_GROUPS.get(module), disable_gc=True, warmup=True)
        )


def _plain_loop_runner(fixture: BenchmarkFixture) -> None:
    """Make fixture time zero-argument callables with fn() instead of fn(*args, **kwargs)."""
    original = getattr(fixture, "_make_runner", None)
    if original is None:  # a pytest-benchmark without this hook: keep its own loop
        return

    def make_runner(
        function_to_benchmark: Callable[[], object], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Callable[..., Any]:
        if args or kwargs:
            return original(function_to_benchmark, args, kwargs)  # type: ignore[no-any-return]
        fn = function_to_benchmark
        disable_gc = bool(getattr(fixture, "_disable_gc", False))
        default_timer: Callable[[], float] = getattr(fixture, "_timer", time.perf_counter)

        def runner(
            loops_range: range | None,
            timer: Callable[[], float] = default_timer,
        ) -> Any:
            gc_enabled = gc.isenabled()
            if disable_gc:
                gc.disable()
            try:
                if loops_range:
                    start = timer()
                    for _ in loops_range:
                        fn()
                    return timer() - start
                start = timer()
                result = fn()
                return timer() - start, result
            finally:
                if gc_enabled:
                    gc.enable()

        return runner

    fixture._make_runner = make_runner  # type: ignore[method-assign]


@pytest.fixture
def benchmark(benchmark: BenchmarkFixture) -> BenchmarkFixture:
    """pytest-benchmark's fixture, timing zero-argument callables in a plain loop."""
    _plain_loop_runner(benchmark)
    return benchmark
