"""The CLI tests' child processes run the package this test process imported."""

from __future__ import annotations

import subprocess
from pathlib import Path

import ice
from tests.support.cli import ICE, PYTHON


def _beside_a_source_tree(tmp_path: Path) -> Path:
    """A directory holding an uncompiled ``ice/``, as a checkout's root does."""
    (tmp_path / "ice").mkdir()
    (tmp_path / "ice" / "__init__.py").write_text("raise ImportError('the source tree shadowed')\n")
    (tmp_path / "ice" / "__main__.py").write_text("raise SystemExit('the source tree shadowed')\n")
    return tmp_path


def test_a_child_imports_the_same_compiled_package(tmp_path: Path) -> None:
    probe = "import ice, ice._codec; print(ice.__file__); print(ice._codec.__file__)"
    done = subprocess.run(
        [*PYTHON, "-c", probe],
        cwd=_beside_a_source_tree(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == [ice.__file__, ice._codec.__file__]


def test_python_m_ice_in_a_checkout_root_runs_the_imported_package(tmp_path: Path) -> None:
    done = subprocess.run(
        [*ICE, "decode", "000100002112a442b7e7a701bc34d686fa87dfae"],
        cwd=_beside_a_source_tree(tmp_path),
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("STUN BINDING REQUEST"), done.stdout
