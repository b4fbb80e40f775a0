"""Smoke test of bench/turn_relay.py: a few hundred datagrams through coturn, both clients.

Not a benchmark (no timing is asserted): it runs the script's ``main`` with a
small ``-n`` and checks that every datagram came back once, byte for byte,
through our TURN client and through aioice's, over UDP and over TCP.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from _scripts import load_script

COUNT = 200

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("turnserver") is None,
        reason="coturn is not installed (apt-get install coturn): no TURN server to relay through",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("aioice") is None, reason="aioice is not installed"
    ),
]


def _turn_relay() -> ModuleType:
    return load_script("turn_relay")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_every_datagram_comes_back_byte_exact(
    transport: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "relay.json"
    argv = ["-n", str(COUNT), "--warmup", "20", "--prime", "0", "--window", "16"]
    argv += ["--transport", transport]
    code = _turn_relay().main([*argv, "--strict", "--quiet", "--json", str(out)])
    printed = capsys.readouterr().out
    data = json.loads(out.read_text(encoding="utf-8"))
    results = {r["client"]: r for r in data["results"]}
    assert sorted(results) == ["aioice", "ours"], printed
    for client, r in results.items():
        assert r["transport"] == transport
        assert (r["sent"], r["received"]) == (COUNT, COUNT), (client, r)
        assert r["lost"] == r["corrupt"] == r["duplicates"] == r["late"] == 0, (client, r)
        assert r["exact"] and r["rate"] > 0, (client, r)
    assert code == 0, printed
    assert "ours / aioice:" in printed and data["ratio"] > 0
