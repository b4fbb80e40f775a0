"""The README's code runs as written (it is the front door)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_readme_holds_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "pip install . && python -m ice bench" in text
    assert "pip install -e '.[test]' && pytest" in text
