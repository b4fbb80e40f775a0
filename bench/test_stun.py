"""pion/stun (github.com/pion/stun) benchmarks, one test per Go benchmark.

The workloads live in ice/_bench/cases.py; these tests only time them.
"""

from __future__ import annotations

from pytest_benchmark.fixture import BenchmarkFixture

from ice._bench import cases


def test_MessageIntegrity_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("MessageIntegrity_AddTo").setup())


def test_MessageIntegrity_Check(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("MessageIntegrity_Check").setup())


def test_Fingerprint_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Fingerprint_AddTo").setup())


def test_Fingerprint_Check(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Fingerprint_Check").setup())


def test_XORMappedAddress_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("XORMappedAddress_AddTo").setup())


def test_XORMappedAddress_GetFrom(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("XORMappedAddress_GetFrom").setup())


def test_MappedAddress_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("MappedAddress_AddTo").setup())


def test_AlternateServer_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("AlternateServer_AddTo").setup())


def test_Username_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Username_AddTo").setup())


def test_Username_GetFrom(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Username_GetFrom").setup())


def test_Nonce_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Nonce_AddTo").setup())


def test_Nonce_AddTo_BadLength(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Nonce_AddTo_BadLength").setup())


def test_Nonce_GetFrom(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Nonce_GetFrom").setup())


def test_ErrorCode_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ErrorCode_AddTo").setup())


def test_ErrorCodeAttribute_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ErrorCodeAttribute_AddTo").setup())


def test_ErrorCodeAttribute_GetFrom(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("ErrorCodeAttribute_GetFrom").setup())


def test_UnknownAttributes_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("UnknownAttributes_AddTo").setup())


def test_UnknownAttributes_GetFrom(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("UnknownAttributes_GetFrom").setup())


def test_Message_Write(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Message_Write").setup())


def test_MessageFull(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("MessageFull").setup())


def test_MessageFullHardcore(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("MessageFullHardcore").setup())


def test_Message_CloneTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Message_CloneTo").setup())


def test_Message_AddTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Message_AddTo").setup())


def test_Message_Get(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Message_Get").setup())


def test_Message_GetNotFound(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Message_GetNotFound").setup())


def test_Message_ForEach(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Message_ForEach").setup())


def test_Message_WriteTo(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Message_WriteTo").setup())


def test_Message_ReadFrom(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Message_ReadFrom").setup())


def test_Message_ReadBytes(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Message_ReadBytes").setup())


def test_Decode(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Decode").setup())


def test_Message_NewTransactionID(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Message_NewTransactionID").setup())


def test_Client_Do(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Client_Do").setup())


def test_Agent_Process(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Agent_Process").setup())


def test_Agent_GC(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("Agent_GC").setup())


def test_IsMessage(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("IsMessage").setup())


def test_MessageType_Value(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("MessageType_Value").setup())


def test_BuildOverhead_Build(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("BuildOverhead_Build").setup())


def test_BuildOverhead_Raw(benchmark: BenchmarkFixture) -> None:
    benchmark(cases.get("BuildOverhead_Raw").setup())
