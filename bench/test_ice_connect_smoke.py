"""Smoke test of bench/ice_connect.py: a few connects and a few hundred datagrams.

Not a benchmark (no timing is asserted beyond "it took some"): it runs the
script's ``main`` with tiny counts and checks that every connect succeeded
and every datagram came back once, byte for byte, through our connection,
through aioice's and through the plain-socket floor, in both modes; and that
the two malloc states the script pins in child processes are what it says
(page faults, and mmap calls under strace, per datagram of the plain socket).
"""

from __future__ import annotations

import importlib.util
import json
import platform
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _scripts import load_script

RUNS = 3
PACKETS = 200
TINY = ["-n", str(RUNS), "--connect-warmup", "1", "--packets", str(PACKETS)]
TINY += ["--warmup", "20", "--rounds", "1", "--window", "16", "--strict", "--quiet"]
IN_PROCESS = ["--malloc", "as-is", "--size", "100"]

needs_aioice = pytest.mark.skipif(
    importlib.util.find_spec("aioice") is None, reason="aioice is not installed"
)


def _ice_connect() -> ModuleType:
    return load_script("ice_connect")


def _run(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, Any]:
    """main's exit code, what it printed, and its JSON."""
    out = tmp_path / "ice.json"
    code = _ice_connect().main([*TINY, *argv, "--json", str(out)])
    printed = capsys.readouterr().out
    return code, printed, json.loads(out.read_text(encoding="utf-8"))


def _check_flows(
    data: Any, impls: list[str], printed: str, runs: list[tuple[str, int]] | None = None
) -> None:
    """Every run of ``impls`` in both modes, once per (malloc state, size) of ``runs``."""
    flows = data["flows"]
    runs = runs or [("as-is", 100)]
    seen = sorted((f["malloc"], f["size"], f["impl"], f["mode"]) for f in flows)
    modes = ("one-way", "ping-pong")
    assert seen == sorted((*run, impl, mode) for run in runs for impl in impls for mode in modes)
    for f in flows:
        assert f["count"] == f["received"] == PACKETS, (f, printed)
        assert f["lost"] == f["corrupt"] == f["late"] == 0 and not f["stalled"], f
        assert f["exact"] and f["rate"] > 0 and f["cpu_us"] > 0, f


@pytest.mark.interop
@needs_aioice
def test_both_connect_and_every_datagram_comes_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, printed, data = _run(IN_PROCESS, tmp_path, capsys)
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
    code, printed, data = _run([*IN_PROCESS, "--impls", "ours,direct"], tmp_path, capsys)
    (c,) = data["connect"]
    assert c["impl"] == "ours" and c["runs"] == RUNS and c["failures"] == [], c
    _check_flows(data, ["direct", "ours"], printed)
    assert code == 0, printed
    assert "| aioice |" not in printed


glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the malloc states are glibc's"
)


@glibc
def test_both_malloc_states_in_child_processes_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, printed, data = _run(["--impls", "ours,direct", "--size", "100,1200"], tmp_path, capsys)
    runs = [(state, size) for state in ("fast", "slow") for size in (100, 1200)]
    _check_flows(data, ["direct", "ours"], printed, runs)
    assert code == 0, printed
    (c,) = data["connect"]  # measured once, in the first child
    assert c["runs"] == RUNS and c["failures"] == [], c
    for state, size, mode in ((s, z, m) for s, z in runs for m in ("ping-pong", "one-way")):
        assert f"| {state} | {size} | {mode} |" in printed
        assert data["ratios"][f"{state} {size} B {mode} pkt/s ours/direct"] > 0
    # The slow state maps a fresh page for asyncio's 256 KiB buffer per datagram; the
    # fast one reuses the heap.
    direct = {
        (f["malloc"], f["mode"], f["size"]): f for f in data["flows"] if f["impl"] == "direct"
    }
    for (state, _, _), f in direct.items():
        per_datagram = f["faults"] / f["received"]
        assert per_datagram >= 1 if state == "slow" else per_datagram < 0.5, f
    assert data["verdicts"]["one_way_lossy"] == [], printed
    assert "loss-free" in printed and "target ours >= 0.8x direct" in printed


@glibc
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_strace_counts_an_mmap_per_datagram_in_the_slow_state_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--impls", "direct", "--size", "100", "--strace", "-n", "0"]
    code, printed, data = _run(argv, tmp_path, capsys)
    assert code == 0, printed
    calls = data["syscalls_per_datagram"]
    assert calls["slow"]["direct"]["mmap"] >= 0.9 and calls["slow"]["direct"]["munmap"] >= 0.9
    assert calls["fast"]["direct"]["mmap"] < 0.1 and calls["fast"]["direct"]["brk"] < 0.1
    assert "| slow | direct |" in printed
