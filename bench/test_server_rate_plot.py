"""bench/server_rate.py --from / --plot: a saved --json printed and drawn without running a server.

No server is started and nothing is timed: the JSON is crafted in the shape
``--json`` writes (the Run fields plus rate and per_core).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from _scripts import load_script


def _server_rate() -> ModuleType:
    return load_script("server_rate")


def _run(server: str, mode: str, rate: float, cpu: float) -> dict[str, object]:
    return {
        "server": server,
        "mode": mode,
        "flows": 1,
        "duration": 5.0,
        "sent": int(rate * 5),
        "received": int(rate * 5),
        "rate_sent": rate,
        "rate_received": rate if mode == "stun" else rate / 2,
        "loss": 0.0,
        "latency_ms": {"p50": 0.5, "p99": 1.0, "max": 2.0},
        "relayed_rate": 0.0 if mode == "stun" else rate,
        "server_cpu": cpu,
        "tool_cpu": 0.9,
        "note": f"{server} on loopback",
        "extra": {},
        "rate": rate,
        "per_core": rate / cpu,
        "a_field_from_a_newer_script": 1,  # ignored, not an error
    }


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "rate.json"
    runs = [
        _run("coturn", "stun", 120_000.0, 0.8),
        _run("ice", "stun", 200_000.0, 0.98),
        _run("coturn", "turn", 157_000.0, 0.82),
        _run("ice", "turn", 197_000.0, 0.98),
    ]
    path.write_text(json.dumps({"header": "crafted", "skipped": {}, "runs": runs}))
    return path


def test_from_prints_the_saved_tables_without_running(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _server_rate().main(["--from", str(saved)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("crafted")
    assert "| coturn | 1 | 120,000 | 120,000 |" in out
    assert "- ice / coturn, stun, 1 flow: 1.67x the rate" in out


def test_from_with_plot_draws_both_servers_and_protocols(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    svg = tmp_path / "rate.svg"
    assert _server_rate().main(["--from", str(saved), "--plot", str(svg)]) == 0
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text
    for label in ("coturn", "ice", "STUN Binding", "TURN ChannelData", "204,082"):
        assert label in text  # 204,082: ice's STUN rate per core (200,000 / 0.98)


def test_plot_without_matplotlib_fails_before_any_server_starts(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _server_rate()
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    def no_server(*args: object) -> None:
        raise AssertionError("a server was started")

    monkeypatch.setattr(module, "measure_server", no_server)
    assert module.main(["--plot", str(tmp_path / "rate.svg"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'ice-stun-turn[plot]'" in err and "Traceback" not in err


def test_a_file_that_is_not_server_rate_json_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"runs": [{"server": "x"}]}')
    assert _server_rate().main(["--from", str(bad)]) == 2
    assert "not a server_rate.py --json file" in capsys.readouterr().err
