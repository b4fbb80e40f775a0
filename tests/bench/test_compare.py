"""ice._bench.compare on crafted results: what is flagged, what the floor cancels.

Nothing here is timed: both sides of every comparison are made-up JSON of
the shape ``python -m ice bench --json/--save`` writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ice._bench import compare

ENV = {"cpu": "AMD EPYC", "python": "3.11.7", "implementation": "CPython", "machine": "x86_64"}


def results(floor: float | None, rows: dict[str, float], **meta: Any) -> dict[str, Any]:
    """The --json shape: meta with the harness floor, one row per case."""
    full_meta: dict[str, Any] = {**ENV, "min_time": 0.1, "repeats": 7, **meta}
    if floor is not None:
        full_meta["harness_floor_ns"] = floor
    return {
        "meta": full_meta,
        "results": [
            {"name": name, "min_ns": ns * 0.97, "median_ns": ns, "loops": 1000, "repeats": 7}
            for name, ns in rows.items()
        ],
    }


BASE = {"Username_AddTo": 100.0, "Message_ReadFrom": 240.0, "MessageIntegrity_Check": 900.0}


def run(data: dict[str, Any]) -> compare.Run:
    return compare.run_from_json(data)


def test_a_row_30_percent_slower_is_flagged_and_a_3_percent_one_is_not() -> None:
    now = {**BASE, "Username_AddTo": 130.0, "Message_ReadFrom": 240.0 * 1.03}
    c = compare.compare(run(results(30.0, BASE)), run(results(30.0, now)), tolerance_pct=15)
    assert [r.name for r in c.regressions] == ["Username_AddTo"]
    assert c.regressions[0].change == pytest.approx(0.30)
    assert c.improvements == []
    table = compare.format_comparison(c)
    assert "| Username_AddTo | 100 | 130 | +30.0% |" in table
    assert "**slower**" in table.split("| Username_AddTo")[1].splitlines()[0]
    assert "**slower**" not in table.split("| Message_ReadFrom")[1].splitlines()[0]
    assert "1 slower and 0 faster" in table


def test_the_floor_cancels_a_uniformly_twice_as_slow_machine() -> None:
    slow = {name: ns * 2 for name, ns in BASE.items()}
    c = compare.compare(run(results(30.0, BASE)), run(results(60.0, slow)), tolerance_pct=15)
    assert c.regressions == [] and c.improvements == []
    for row in c.rows:
        assert row.raw_change == pytest.approx(1.0)  # raw: +100%, shown beside
        assert row.change == pytest.approx(0.0)
    # The same run judged without a floor is all regressions: the floor is what saves it.
    raw = compare.compare(run(results(None, BASE)), run(results(None, slow)), tolerance_pct=15)
    assert len(raw.regressions) == len(BASE)
    assert any("no harness_floor_ns" in w for w in raw.warnings)


def test_a_row_slower_on_a_faster_machine_is_still_flagged() -> None:
    # Machine 2x faster (floor halves), one row only 1.5x faster: relative to the floor
    # it lost 33%, though its raw ns went down.
    now = {name: ns / 2 for name, ns in BASE.items()}
    now["MessageIntegrity_Check"] = 900.0 / 1.5
    c = compare.compare(run(results(30.0, BASE)), run(results(15.0, now)), tolerance_pct=15)
    assert [r.name for r in c.regressions] == ["MessageIntegrity_Check"]
    assert c.regressions[0].raw_change < 0 < c.regressions[0].change


def test_faster_rows_are_reported_not_failed() -> None:
    now = {**BASE, "Message_ReadFrom": 120.0}
    c = compare.compare(run(results(30.0, BASE)), run(results(30.0, now)), tolerance_pct=15)
    assert c.regressions == []
    assert [r.name for r in c.improvements] == ["Message_ReadFrom"]
    assert "0 slower and 1 faster" in compare.format_comparison(c)


def test_rows_on_one_side_only_are_listed_not_errors() -> None:
    now = {"Username_AddTo": 100.0, "Message_ReadFrom": 240.0, "Nonce_GetFrom": 90.0}
    c = compare.compare(run(results(30.0, BASE)), run(results(30.0, now)))
    assert [r.name for r in c.rows] == ["Username_AddTo", "Message_ReadFrom"]
    assert c.only_in_baseline == ["MessageIntegrity_Check"]
    assert c.only_in_current == ["Nonce_GetFrom"]
    table = compare.format_comparison(c)
    assert "Only in the baseline (not run now): MessageIntegrity_Check" in table
    assert "Not in the baseline (new rows): Nonce_GetFrom" in table


def test_the_tolerance_is_the_threshold() -> None:
    now = {**BASE, "Username_AddTo": 110.0}
    base = run(results(30.0, BASE))
    assert compare.compare(base, run(results(30.0, now)), tolerance_pct=5).regressions
    assert not compare.compare(base, run(results(30.0, now)), tolerance_pct=12).regressions


def test_a_baseline_from_another_cpu_or_python_is_warned_about() -> None:
    base = run(results(30.0, BASE))
    same = compare.compare(base, run(results(30.0, BASE)))
    assert same.warnings == []
    other = run(results(30.0, BASE, cpu="Intel Xeon", python="3.13.1", repeats=3))
    warnings = compare.compare(base, other).warnings
    assert any("CPU" in w and "Intel Xeon" in w for w in warnings)
    assert any("Python version" in w and "3.13.1" in w for w in warnings)
    assert any("repeats" in w for w in warnings)
    assert all(
        f"- warning: {w}" in compare.format_comparison(compare.compare(base, other))
        for w in warnings
    )


def test_load_rejects_what_is_not_a_result_file(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(results(30.0, BASE)), encoding="utf-8")
    assert compare.load(str(good)).medians_ns == BASE
    for name, text in (("notjson", "{"), ("shape", '{"runs": []}'), ("row", '{"results": [{}]}')):
        bad = tmp_path / f"{name}.json"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(compare.BaselineError, match=re.escape(str(bad))):
            compare.load(str(bad))
    with pytest.raises(compare.BaselineError, match=r"missing\.json"):
        compare.load(str(tmp_path / "missing.json"))


def test_spread_is_max_over_min_of_the_floor_normalised_medians() -> None:
    runs = [
        run(results(30.0, {"A": 100.0, "B": 300.0})),
        run(results(33.0, {"A": 121.0, "B": 330.0})),  # A: 3.67 vs 3.33 x floor; B: 10 both
        run(results(30.0, {"A": 105.0})),
    ]
    spread = compare.spread(runs)
    assert spread["A"] == pytest.approx((121 / 33) / (100 / 30) - 1)
    assert spread["B"] == pytest.approx(0.0)
