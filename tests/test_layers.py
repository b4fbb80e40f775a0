"""DESIGN.md's layer rule, as a directory rule over every .py and .pyx in ice/.

Layers, lowest first: the codec and leaf modules at the package top, then
``ice/stun/``, then ``ice/turn/`` and ``ice/agent/`` (which must not import
each other), then ``ice/aio/``, then the tools (``_load``, ``_cli``,
``_bench``, ``__main__``, and ``aiortc``: a top-level module that builds on
``ice.aio``). A module may import its own layer or a lower one,
never a higher one or its sibling, and module-level imports form no cycle.
Only ``ice/aio/`` and the tools touch sockets, asyncio, threads or the clock.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import PYTHON
from tests.support.sources import PACKAGE, requires_sources

#: Modules that do I/O, run an event loop or read the clock.
FORBIDDEN = {"asyncio", "socket", "ssl", "selectors", "select", "threading", "time", "subprocess"}

#: Directory (or top-level module) -> rank. Equal ranks in different
#: directories are siblings and may not import each other.
RANKS = {"": 0, "stun": 1, "turn": 2, "agent": 2, "aio": 3, "_load": 4, "_cli": 5, "_bench": 5}
TOOLS = {"_load", "_cli", "_bench", "__main__", "aiortc"}
#: Modules at the package top that are tools, not leaves: ``ice.aiortc`` sits there
#: (``import ice.aiortc``) but switches aiortc onto ``ice.aio.Connection``.
TOP_TOOLS = {"ice.__main__": "__main__", "ice.aiortc": "aiortc"}
#: Compiled modules below aio/ that take from socket only what turns addresses into text.
ADDRESS_TEXT_ONLY = {"_codec.pyx", "_binding.pyx"}


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    """The layer directory of ``ice.x.y`` ("" for the package top)."""
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in RANKS:
        return parts[1]
    if len(parts) == 2 and parts[1] in RANKS:  # a subpackage itself
        return parts[1]
    return TOP_TOOLS.get(module, "")


def rank(layer_name: str) -> int:
    return {"__main__": 6, "aiortc": 4}.get(layer_name) or RANKS[layer_name]


def sources() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".pyx") and p.name != "__init__.py"
    )


_PYX_IMPORT = re.compile(r"^(\s*)(?:from\s+([\w.]+)\s+c?import|c?import\s+([\w., ]+))", re.M)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level) for every import in the file; TYPE_CHECKING ones left out."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".pyx":  # Cython is not Python: read the import lines as text
        found = []
        for m in _PYX_IMPORT.finditer(text):
            names = [m.group(2)] if m.group(2) else m.group(3).split(",")
            found += [(n.strip().split(" as ")[0], not m.group(1)) for n in names]
        return found
    tree = ast.parse(text, str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "ice":  # from ice import x: x may be a submodule
                found += [(f"ice.{a.name}", id(node) in top) for a in node.names]
            else:
                found.append((node.module, id(node) in top))
    return found


def ice_module(name: str) -> str | None:
    """The ice module an import names, resolved to an existing file."""
    if not name.startswith("ice"):
        return None
    parts = name.split(".")
    while parts:
        base = PACKAGE.parent.joinpath(*parts)
        if base.with_suffix(".py").exists() or base.with_suffix(".pyx").exists():
            return ".".join(parts)
        if base.is_dir():
            return ".".join(parts)
        parts.pop()
    return None


def relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


@requires_sources
@pytest.mark.parametrize("path", sources(), ids=relative)
def test_imports_point_down(path: Path) -> None:
    own = layer(module_name(path))
    for name, _ in imports(path):
        target = ice_module(name)
        if target is None or target in ("ice", "ice._version"):
            continue
        other = layer(target)
        assert other == own or rank(other) < rank(own), f"{relative(path)} imports {target}"


@requires_sources
@pytest.mark.parametrize("path", sources(), ids=relative)
def test_machines_and_codec_do_no_io(path: Path) -> None:
    if layer(module_name(path)) in {"aio", *TOOLS}:
        return
    used = {name.split(".")[0] for name, _ in imports(path)} & FORBIDDEN
    if path.name in ADDRESS_TEXT_ONLY:
        used -= {"socket"}  # inet_pton/inet_ntop for address text; see the test below
    assert not used, f"{relative(path)} imports {used}"


@requires_sources
def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in sources():
        edges = {ice_module(name) for name, top in imports(path) if top}
        graph[module_name(path)] = {e for e in edges if e and e not in ("ice", "ice._version")}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, "import cycle: " + " -> ".join([*visiting, node])
        visiting.append(node)
        for child in sorted(graph.get(node, ())):
            visit(child)
        visiting.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


@requires_sources
def test_the_rule_covers_every_layer_and_the_compiled_modules() -> None:
    seen = {layer(module_name(p)) for p in sources()}
    assert set(RANKS) | set(TOP_TOOLS.values()) <= seen
    compiled = {relative(p) for p in sources() if p.suffix == ".pyx"}
    assert {"stun/_transaction.pyx", "turn/_relay.pyx", "aio/_udpio.pyx"} <= compiled


@requires_sources
def test_subpackage_inits_are_empty() -> None:
    for name in ("stun", "turn", "agent", "aio", "_load"):
        init = PACKAGE / name / "__init__.py"
        assert init.read_text().strip() == "", f"{init} is not empty"


@requires_sources
@pytest.mark.parametrize("name", sorted(ADDRESS_TEXT_ONLY))
def test_compiled_machines_use_socket_only_for_address_text(name: str) -> None:
    """They import socket for inet_pton/inet_ntop (IPv6 text), nothing else."""
    source = next(PACKAGE.rglob(name)).read_text()
    uses = {line.strip() for line in source.splitlines() if "socket." in line and "#" not in line}
    assert uses, "expected the inet_pton/inet_ntop uses"
    assert all("inet_pton" in u or "inet_ntop" in u or "AF_INET" in u for u in uses), uses


@pytest.mark.parametrize(
    "statement",
    ["import ice._codec", "import ice; ice.Message", "import ice.attrs, ice.constants"],
)
def test_the_codec_loads_no_asyncio(statement: str) -> None:
    """Importing the codec (or reaching it through ``ice``) pays for no I/O stack."""
    heavy = "{'asyncio', 'ssl', 'ifaddr'}"
    probe = f"{statement}; import sys; print(sorted({heavy} & set(sys.modules)))"
    run = subprocess.run([*PYTHON, "-c", probe], capture_output=True, text=True, check=True)
    out = run.stdout
    assert out.strip() == "[]", f"{statement} loaded {out.strip()}"
