"""Smoke test of bench/ice_connect.py: a few connects and a few hundred datagrams.

Not a benchmark (no timing is asserted beyond "it took some"): it runs the
script's ``main`` with tiny counts and checks that every connect succeeded
and every datagram came back once, byte for byte, through our connection,
through aioice's and through the plain-socket floor, in both modes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
RUNS = 3
PACKETS = 200
TINY = ["-n", str(RUNS), "--connect-warmup", "1", "--packets", str(PACKETS)]
TINY += ["--warmup", "20", "--rounds", "1", "--window", "16", "--strict", "--quiet"]

needs_aioice = pytest.mark.skipif(
    importlib.util.find_spec("aioice") is None, reason="aioice is not installed"
)


def _ice_connect() -> ModuleType:
    name = "_bench_ice_connect"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "ice_connect.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _run(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, Any]:
    """main's exit code, what it printed, and its JSON."""
    out = tmp_path / "ice.json"
    code = _ice_connect().main([*TINY, *argv, "--json", str(out)])
    printed = capsys.readouterr().out
    return code, printed, json.loads(out.read_text(encoding="utf-8"))


def _check_flows(data: Any, impls: list[str], printed: str) -> None:
    flows = data["flows"]
    seen = sorted((f["impl"], f["mode"]) for f in flows)
    assert seen == sorted((impl, mode) for impl in impls for mode in ("one-way", "ping-pong"))
    for f in flows:
        assert f["count"] == f["received"] == PACKETS, (f, printed)
        assert f["lost"] == f["corrupt"] == f["late"] == 0 and not f["stalled"], f
        assert f["exact"] and f["rate"] > 0 and f["cpu_us"] > 0, f


@pytest.mark.interop
@needs_aioice
def test_both_connect_and_every_datagram_comes_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, printed, data = _run([], tmp_path, capsys)
    connects = {c["impl"]: c for c in data["connect"]}
    assert sorted(connects) == ["aioice", "ours"], printed
    for impl, c in connects.items():
        assert c["runs"] == RUNS and c["failures"] == [], (impl, c)
        assert 0 < c["min_ms"] <= c["median_ms"] <= c["p90_ms"] <= c["max_ms"], (impl, c)
    _check_flows(data, ["aioice", "direct", "ours"], printed)
    assert code == 0, printed
    ratios = data["ratios"]
    assert all(value is not None and value > 0 for value in ratios.values()), ratios
    assert "ours / aioice" in printed and "target < 2 ms" in printed


def test_ours_alone_without_aioice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, printed, data = _run(["--impls", "ours,direct"], tmp_path, capsys)
    (c,) = data["connect"]
    assert c["impl"] == "ours" and c["runs"] == RUNS and c["failures"] == [], c
    _check_flows(data, ["direct", "ours"], printed)
    assert code == 0, printed
    assert "| aioice |" not in printed
