"""This package against aioice (pure-Python STUN): each case timed on both sides.

test_<Case> times ours, test_<Case>_aioice the same work done with aioice.stun;
the aioice side is skipped when aioice is not installed. The workloads live in
ice/_bench/cases.py.
"""

from __future__ import annotations

import importlib.util

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from ice._bench import cases

needs_aioice = pytest.mark.skipif(
    importlib.util.find_spec("aioice") is None, reason="aioice is not installed"
)


def test_ICE_BuildSign(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ICE_BuildSign").setup())


@needs_aioice
def test_ICE_BuildSign_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ICE_BuildSign_aioice").setup())


def test_ICE_ParseVerify(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ICE_ParseVerify").setup())


@needs_aioice
def test_ICE_ParseVerify_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ICE_ParseVerify_aioice").setup())


def test_Binding_ParseResponse(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Binding_ParseResponse").setup())


@needs_aioice
def test_Binding_ParseResponse_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Binding_ParseResponse_aioice").setup())


# The plain way (attributes made per message, names through the ice module).


def test_Plain_BuildSign(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Plain_BuildSign").setup())


@needs_aioice
def test_Plain_BuildSign_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Plain_BuildSign_aioice").setup())


def test_Plain_ParseVerify(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Plain_ParseVerify").setup())


@needs_aioice
def test_Plain_ParseVerify_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Plain_ParseVerify_aioice").setup())


def test_Plain_ParseResponse(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Plain_ParseResponse").setup())


@needs_aioice
def test_Plain_ParseResponse_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Plain_ParseResponse_aioice").setup())


def test_Plain_Build401(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Plain_Build401").setup())


@needs_aioice
def test_Plain_Build401_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Plain_Build401_aioice").setup())


def test_Plain_Parse401(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Plain_Parse401").setup())


@needs_aioice
def test_Plain_Parse401_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Plain_Parse401_aioice").setup())


# The TURN client's per-datagram cost (ice.turn.client.TurnSession vs aioice.turn).


def test_TurnClient_Send(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("TurnClient_Send").setup())


@needs_aioice
def test_TurnClient_Send_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("TurnClient_Send_aioice").setup())


def test_TurnClient_Receive(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("TurnClient_Receive").setup())


@needs_aioice
def test_TurnClient_Receive_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("TurnClient_Receive_aioice").setup())


def test_TurnClient_SendIndication(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("TurnClient_SendIndication").setup())


@needs_aioice
def test_TurnClient_SendIndication_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("TurnClient_SendIndication_aioice").setup())


def test_TurnClient_ReceiveDataIndication(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("TurnClient_ReceiveDataIndication").setup())


@needs_aioice
def test_TurnClient_ReceiveDataIndication_aioice(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("TurnClient_ReceiveDataIndication_aioice").setup())
