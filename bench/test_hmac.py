"""pion/stun internal/hmac benchmarks, one test per Go benchmark.

The workloads live in ice/_bench/cases.py; these tests only time them.
"""

from __future__ import annotations

from pytest_benchmark.fixture import BenchmarkFixture

from ice._bench import cases


def test_HMACSHA1_512(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("HMACSHA1_512").setup())


def test_HMACSHA1_512_Pool(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("HMACSHA1_512_Pool").setup())


def test_HMACSHA256_32(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("HMACSHA256_32").setup())


def test_HMACSHA256_1K(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("HMACSHA256_1K").setup())
