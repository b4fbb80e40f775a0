"""The sans-I/O ICE agent (ice.agent.agent.Agent), per operation: no Go or aioice twin.

Two agents wired in memory (no sockets, the clock standing still); the
workloads live in ice/_bench/cases.py (group "ice"). The report shows these
rows without a reference. The asyncio connection against aioice's, on
loopback sockets, is bench/ice_connect.py.
"""

from __future__ import annotations

from pytest_benchmark.fixture import BenchmarkFixture

from ice._bench import cases


def test_Agent_Connect(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Agent_Connect").setup())


def test_Agent_ReceiveCheck(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Agent_ReceiveCheck").setup())
