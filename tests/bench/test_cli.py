"""python -m ice bench --compare / --save / --from through main(), on crafted result files.

Nothing is timed: --from reads the "current" run from a file too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ice._bench import compare
from ice._bench.cli import main

ROWS = {"Username_AddTo": 100.0, "Nonce_GetFrom": 90.0, "ChannelData_Decode": 140.0}


def write(path: Path, rows: dict[str, float], floor: float = 30.0, **meta: Any) -> str:
    data = {
        "meta": {
            "cpu": "AMD EPYC",
            "python": "3.11.7",
            "min_time": 0.1,
            "repeats": 7,
            "harness_floor_ns": floor,
            **meta,
        },
        "results": [{"name": n, "min_ns": ns, "median_ns": ns} for n, ns in rows.items()],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    base = write(tmp_path / "base.json", ROWS)
    now = write(tmp_path / "now.json", {**ROWS, "Username_AddTo": 160.0})  # +60%
    return base, now


def test_compare_reports_a_regression_and_exits_0(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    base, now = files
    assert main(["--from", now, "--compare", base]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| Username_AddTo | 100 |"))
    assert "+60.0%" in row and "**slower**" in row
    assert f"# Compared with {base}" in out
    assert "1 slower and 0 faster" in out


def test_fail_on_regression_exits_1_and_says_why(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    base, now = files
    assert main(["--from", now, "--compare", base, "--fail-on-regression"]) == 1
    assert "1 rows slower than" in capsys.readouterr().err
    # The alias, and a tolerance above the change: nothing to fail on.
    assert main(["--from", now, "--compare", base, "--compare-fail", "--tolerance", "70"]) == 0


def test_save_writes_a_baseline_that_compare_reads(tmp_path: Path) -> None:
    source = write(tmp_path / "run.json", ROWS)
    saved = tmp_path / "saved.json"
    assert main(["--from", source, "--save", str(saved)]) == 0
    again = compare.load(str(saved))
    assert again.medians_ns == ROWS and again.floor_ns == 30.0
    assert main(["--from", source, "--compare", str(saved), "--fail-on-regression"]) == 0


def test_k_limits_the_comparison_to_the_selected_rows(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    base, now = files
    assert main(["--from", now, "--compare", base, "-k", "Nonce", "--compare-fail"]) == 0
    out = capsys.readouterr().out
    assert "| Nonce_GetFrom |" in out and "Username_AddTo" not in out
    assert "Only in the baseline" not in out


def test_the_default_tolerance_applies_without_tolerance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write(tmp_path / "base.json", ROWS)
    beyond = 1 + (compare.DEFAULT_TOLERANCE_PCT + 5) / 100
    within = 1 + (compare.DEFAULT_TOLERANCE_PCT - 5) / 100
    slower = write(tmp_path / "slower.json", {**ROWS, "Username_AddTo": 100.0 * beyond})
    noisy = write(tmp_path / "noisy.json", {**ROWS, "Username_AddTo": 100.0 * within})
    assert main(["--from", slower, "--compare", base, "--fail-on-regression"]) == 1
    assert main(["--from", noisy, "--compare", base, "--fail-on-regression"]) == 0
    short = write(tmp_path / "short.json", ROWS, min_time=0.004, repeats=3)
    capsys.readouterr()
    assert main(["--from", short, "--compare", base]) == 0
    assert "another min time per repeat (0.1, this run 0.004)" in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, "{", '{"results": "no"}'])
def test_an_unreadable_baseline_is_exit_2_without_a_traceback(
    tmp_path: Path,
    files: tuple[str, str],
    content: str | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    assert main(["--from", files[1], "--compare", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and "Traceback" not in err
