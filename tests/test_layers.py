"""DESIGN.md's import rule: only the adapters and the CLI touch sockets, asyncio,
threads or the clock. The sans-I/O machines get time and randomness passed in."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ice"

#: Modules that do I/O, run an event loop or read the clock.
FORBIDDEN = {"asyncio", "socket", "ssl", "selectors", "select", "threading", "time", "subprocess"}


def is_adapter_or_cli(path: Path) -> bool:
    relative = path.relative_to(PACKAGE)
    return (
        relative.name.startswith("aio")
        or relative.name == "__main__.py"
        or relative.parts[0] in ("_cli", "_bench")
    )


def machine_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if not is_adapter_or_cli(p))


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", machine_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_machines_and_codec_wrappers_do_no_io(path: Path) -> None:
    assert not imported(path) & FORBIDDEN, f"{path.name} imports {imported(path) & FORBIDDEN}"


def test_the_rule_covers_the_machines() -> None:
    names = {p.name for p in machine_modules()}
    assert {"transaction.py", "stun_client.py", "stun_server.py", "server_auth.py"} <= names


def test_the_compiled_codec_uses_socket_only_for_address_text() -> None:
    """_codec.pyx imports socket for inet_pton/inet_ntop (IPv6 text), nothing else."""
    source = (PACKAGE / "_codec.pyx").read_text()
    uses = {line.strip() for line in source.splitlines() if "socket." in line and "#" not in line}
    assert uses, "expected the inet_pton/inet_ntop uses"
    assert all("inet_pton" in u or "inet_ntop" in u or "AF_INET" in u for u in uses), uses
