"""pion/turn (github.com/pion/turn/v2/internal/proto) benchmarks, one test per Go benchmark.

The workloads live in ice/_bench/cases.py; these tests only time them.
"""

from __future__ import annotations

from pytest_benchmark.fixture import BenchmarkFixture

from ice._bench import cases


def test_ChannelNumber_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ChannelNumber_AddTo").setup())


def test_ChannelNumber_GetFrom(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ChannelNumber_GetFrom").setup())


def test_Lifetime_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Lifetime_AddTo").setup())


def test_Lifetime_GetFrom(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Lifetime_GetFrom").setup())


def test_Data_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Data_AddTo").setup())


def test_Data_AddToRaw(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Data_AddToRaw").setup())


def test_ChannelData_Encode(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ChannelData_Encode").setup())


def test_ChannelData_Decode(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ChannelData_Decode").setup())


def test_IsChannelData(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("IsChannelData").setup())
