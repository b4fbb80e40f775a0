"""Smoke test of bench/aiortc_datachannel.py: one tiny round on aioice and on ice.

Not a benchmark (no number is judged): it runs the script's ``main`` with tiny
counts and checks that both implementations connected, moved every message
and datagram, ran on the ICE they were meant to, and that the table came out.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from _scripts import load_script

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("aiortc") is None or importlib.util.find_spec("aioice") is None,
    reason="aiortc (and aioice, which it depends on) is not installed",
)


def _bench() -> ModuleType:
    return load_script("aiortc_datachannel")


@pytest.mark.interop
def test_one_round_on_each_and_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "aiortc.json"
    argv = ["--rounds", "1", "--warmup", "0", "--messages", "50", "--large-messages", "10"]
    argv += ["--datagrams", "200", "--quiet", "--json", str(out)]
    code = _bench().main(argv)
    printed = capsys.readouterr().out
    assert code == 0, printed
    data = json.loads(out.read_text(encoding="utf-8"))
    (aioice_round,), (ice_round,) = data["results"]
    assert (aioice_round["impl"], ice_round["impl"]) == ("aioice", "ice")
    for found in (aioice_round, ice_round):
        assert found["connect_ms"] > 0 and found["lost"] == 0, found
        assert found["small_msgs"] > 0 and found["large_msgs"] > 0 and found["datagrams"] > 0
        assert found["relay_connect_ms"] > 0
    assert "| aiortc 2 peers on 127.0.0.1 | aioice | ice | ice / aioice |" in printed
    assert "| ICE transport, 1,200 B datagrams |" in printed
    assert "| connect through a TURN relay (relay-only, ice's TURN server) |" in printed
