"""ice._bench.plot and ``--plot``: an SVG from crafted results, and the error without matplotlib.

Nothing is timed: the results are made up (names of registered cases, so
they fall into the table's groups).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ice._bench import plot, report
from ice._bench.cli import main

CRAFTED = [
    report.Result("Username_AddTo", min_ns=95.0, median_ns=100.0),
    report.Result("MessageIntegrity_AddTo", min_ns=700.0, median_ns=750.0),  # misses 0.5x Go
    report.Result("ChannelNumber_AddTo", min_ns=90.0, median_ns=95.0),
    report.Result("ICE_BuildSign", min_ns=900.0, median_ns=950.0),
    report.Result("ICE_BuildSign_aioice", min_ns=12000.0, median_ns=12800.0),
    report.Result("Agent_Connect", min_ns=40000.0, median_ns=41000.0),  # no twin: ours only
]

SERVER_RATE = {
    "header": "Servers on 127.0.0.1 (UDP), 5 s per run, best of 1",
    "skipped": {},
    "runs": [
        {"server": "coturn", "mode": "stun", "flows": 1, "rate": 120000.0, "per_core": 150000.0},
        {"server": "ice", "mode": "stun", "flows": 1, "rate": 200000.0, "per_core": 204000.0},
        {"server": "coturn", "mode": "turn", "flows": 1, "rate": 157000.0, "per_core": 192000.0},
        {"server": "ice", "mode": "turn", "flows": 1, "rate": 197000.0, "per_core": None},
        {"server": "ice", "mode": "turn", "flows": 1, "rate": 180000.0, "per_core": 190000.0},
    ],
}


def test_the_crafted_names_are_registered_cases() -> None:
    # If a case is renamed the plot test below would silently draw fewer rows.
    verdicts = {v.name for v in report.judge(CRAFTED)}
    assert verdicts == {
        "Username_AddTo",
        "MessageIntegrity_AddTo",
        "ChannelNumber_AddTo",
        "ICE_BuildSign",
        "Agent_Connect",
    }


def test_codec_chart_is_an_svg_with_every_row_and_group(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "codec.svg"
    plot.plot_codec(CRAFTED, str(out), title="crafted")
    svg = out.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for verdict in report.judge(CRAFTED):
        assert verdict.name in svg
    for group in ("pion/stun", "pion/turn", "aioice", "ICE agent"):
        assert group in svg


def test_server_rate_chart_is_an_svg_with_each_server_and_configuration(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "rate.svg"
    plot.plot_server_rates(SERVER_RATE, str(out))
    svg = out.read_text(encoding="utf-8")
    assert "<svg" in svg
    for text in ("coturn", "ice", "STUN Binding", "TURN ChannelData", "per core"):
        assert text in svg
    # The best round of ice's two TURN runs is drawn (197,000), not the other.
    assert "197,000" in svg and "180,000" not in svg


def results_json(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    meta: dict[str, Any] = {"cpu": "crafted", "python": "3.11.7", "harness_floor_ns": 30.0}
    path.write_text(json.dumps(report.to_json(CRAFTED, meta=meta)), encoding="utf-8")
    return path


def test_bench_plot_from_a_results_file_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "codec.svg"
    assert main(["--from", str(results_json(tmp_path)), "--plot", str(out)]) == 0
    captured = capsys.readouterr()
    assert "[1/" not in captured.err  # no case was run
    assert "| Username_AddTo | 100 |" in captured.out
    assert "Username_AddTo" in out.read_text(encoding="utf-8")


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry makes `import matplotlib` raise ImportError, as if it were absent.
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.mark.usefixtures("no_matplotlib")
def test_without_matplotlib_plot_names_the_extra() -> None:
    with pytest.raises(plot.PlotUnavailable, match=r"pip install 'ice-stun-turn\[plot\]'"):
        plot.plot_codec(CRAFTED, "unused.svg")


@pytest.mark.usefixtures("no_matplotlib")
def test_without_matplotlib_bench_plot_exits_2_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "codec.svg"
    code = main(["-k", "Username_AddTo", "--plot", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert "pip install 'ice-stun-turn[plot]'" in captured.err
    assert "Traceback" not in captured.err
    assert "[1/" not in captured.err and captured.out == ""  # failed before measuring
    assert not out.exists()
