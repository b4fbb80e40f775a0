"""Smoke test of bench/server_rate.py: half a second of STUN and of TURN load per server.

Not a benchmark (no rate is asserted): it runs the script's ``main`` against
coturn and our server and checks that each was loaded in both protocols
(responses came back, packets were relayed both ways) and that the Markdown
tables carry them; our server may be skipped only with a reason.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from _scripts import load_script

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("turnserver") is None,
        reason="coturn is not installed (apt-get install coturn): no server to compare with",
    ),
]


def _server_rate() -> ModuleType:
    return load_script("server_rate")


def test_both_protocols_against_each_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rate.json"
    argv = ["--servers", "coturn,ice", "--duration", "0.5", "--quiet", "--json", str(out)]
    argv += ["--stun-flows", "1,3", "--turn-flows", "1,3", "--size", "100,1200"]
    code = _server_rate().main(argv)
    printed = capsys.readouterr().out
    assert code == 0, printed
    data = json.loads(out.read_text(encoding="utf-8"))
    runs = {(r["server"], r["mode"], r["flows"], r["size"]): r for r in data["runs"]}
    servers = ["coturn"] if "ice" in data["skipped"] else ["coturn", "ice"]
    if "ice" in data["skipped"]:
        assert data["skipped"]["ice"], "skipped without a reason"
        assert f"- ice: skipped: {data['skipped']['ice']}" in printed
    for server in servers:
        for flows in (1, 3):
            stun = runs[(server, "stun", flows, 0)]
            assert stun["received"] > 0 and stun["rate"] > 0, stun
            for size in (100, 1200):
                turn = runs[(server, "turn", flows, size)]
                assert turn["received"] > 0, turn
                assert turn["relayed_rate"] >= 2 * turn["rate_received"] > 0, turn  # both ways
                lat = turn["latency_ms"]
                assert 0 < lat["p50"] <= lat["p99"] <= lat["max"], turn
            lat = stun["latency_ms"]
            assert 0 < lat["p50"] <= lat["p99"] <= lat["max"], stun
        # a row per case: STUN from 1 socket, TURN with 1 allocation at each size
        assert printed.count(f"| {server} | 1 |") == 3, printed
        assert printed.count(f"| {server} | 3 | 1200 |") == 1, printed
    assert "STUN Binding requests" in printed and "TURN ChannelData" in printed
    if servers == ["coturn", "ice"]:
        assert "- ice / coturn, turn, 3 allocations, 1200 B:" in printed
        assert printed.count(" per core\n") + printed.endswith(" per core") == 6, printed
    if sys.platform.startswith("linux"):  # the rest of the machine's CPU, beside the two
        assert all(r["other_cpu"] is not None and r["other_cpu"] >= 0 for r in data["runs"])
        assert "- other CPU: what the rest of the machine used" in printed
