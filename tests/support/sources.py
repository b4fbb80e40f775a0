"""Where the package's source files are, for the tests that read them.

These tests follow the ``ice`` that was imported, never the directory the
tests sit in: run from a copy of tests/ against an installed wheel, the
Cython sources and the README are not there, and the tests skip saying so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import ice

PACKAGE = Path(ice.__file__).resolve().parent
CHECKOUT = PACKAGE.parent
README = CHECKOUT / "README.md"

requires_sources = pytest.mark.skipif(
    not (PACKAGE / "_codec.pyx").is_file(),
    reason=f"no Cython sources beside the imported package ({PACKAGE}): an installed wheel",
)
requires_checkout = pytest.mark.skipif(
    not (README.is_file() and (CHECKOUT / "pyproject.toml").is_file()),
    reason=f"the imported package ({PACKAGE}) is not in a checkout with its README",
)
