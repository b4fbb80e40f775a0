"""Keep the benchmark names stable and complete.

Every case in ice._bench.cases has a ``test_<name>`` function in the module of
its group, every such function names a case, every Go benchmark in
go_reference either has a case or a reason in cases.SKIPPED, and every case's
callable runs. These are plain tests (no timing).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ice._bench import cases
from ice._bench.go_reference import GO_NS

HERE = Path(__file__).resolve().parent
MODULE_OF_GROUP = {
    "stun": "test_stun.py",
    "turn": "test_turn.py",
    "hmac": "test_hmac.py",
    "aioice": "test_aioice.py",
    "ice": "test_ice.py",
}


def _test_functions(module: str) -> set[str]:
    tree = ast.parse((HERE / module).read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def _expected_by_module() -> dict[str, set[str]]:
    expected: dict[str, set[str]] = {module: set() for module in MODULE_OF_GROUP.values()}
    for case in cases.all_cases():
        expected[MODULE_OF_GROUP[case.group]].add(case.name)
        if case.pair is not None:  # the aioice side, registered or not
            expected[MODULE_OF_GROUP[case.group]].add(case.pair)
    return expected


@pytest.mark.parametrize("module", sorted(MODULE_OF_GROUP.values()))
def test_each_case_has_one_test_function(module: str) -> None:
    expected = {f"test_{name}" for name in _expected_by_module()[module]}
    found = _test_functions(module)
    assert sorted(expected - found) == [], f"{module} lacks a test for these cases"
    assert sorted(found - expected) == [], f"{module} has tests that name no case"


def test_every_go_benchmark_has_a_case_or_a_reason() -> None:
    names = {case.name for case in cases.all_cases()}
    missing = sorted(set(GO_NS) - names - set(cases.SKIPPED))
    assert missing == [], "add a case to ice/_bench/cases.py or a reason to cases.SKIPPED"
    assert sorted(set(cases.SKIPPED) & names) == [], "a skipped benchmark has a case"
    assert sorted(set(cases.SKIPPED) - set(GO_NS)) == [], "SKIPPED names no Go benchmark"


def test_go_cases_have_a_go_number() -> None:
    for case in cases.all_cases():
        if case.group not in ("aioice", "ice"):  # ice: no Go twin
            assert case.name in GO_NS, case.name
        assert case.doc, f"{case.name} has no docstring"


@pytest.mark.parametrize("name", [case.name for case in cases.all_cases()])
def test_case_runs(name: str) -> None:
    op = cases.get(name).setup()
    op()
    op()
