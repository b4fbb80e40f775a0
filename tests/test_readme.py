"""The README's code runs as written (it is the front door)."""

from __future__ import annotations

import os
import re

import pytest

from tests.support.coturn import requires_coturn, run_coturn
from tests.support.sources import README, requires_checkout

pytestmark = requires_checkout


def python_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks
    return blocks


def run_block(block: str) -> None:
    exec(compile(block, str(README), "exec"), {})


def test_readme_python_examples_run() -> None:
    for block in python_blocks():
        if "TURN_URI" not in block and "ice.aiortc" not in block:
            run_block(block)


def test_readme_aiortc_line_switches_aiortc_to_ice() -> None:
    pytest.importorskip("aiortc", reason="aiortc is an optional extra")
    import aiortc.rtcicetransport

    import ice
    import ice.aiortc

    (block,) = [b for b in python_blocks() if "ice.aiortc" in b]
    try:
        run_block(block)
        assert issubclass(aiortc.rtcicetransport.Connection, ice.Connection)
    finally:
        ice.aiortc.uninstall()
    assert not ice.aiortc.installed()


@requires_coturn
def test_readme_turn_example_runs_against_coturn(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TURN example reads its server from TURN_URI: here a coturn of our own."""
    turn_blocks = [b for b in python_blocks() if "TURN_URI" in b]
    assert turn_blocks
    with run_coturn() as coturn:
        monkeypatch.setitem(os.environ, "TURN_URI", f"turn:127.0.0.1:{coturn.port}?transport=tcp")
        for block in turn_blocks:
            run_block(block)


def test_readme_holds_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "pip install . && ice demo" in text
    assert "pip install -e '.[test]' && pytest" in text
