"""Import one of this folder's scripts (server_rate.py, ice_connect.py, ...) by
path, for the tests beside them: bench/ is not a package, and each script is
loaded once per process under ``_bench_<name>`` so its module state is shared
by the tests that use it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def load_script(name: str) -> ModuleType:
    """bench/NAME.py as a module."""
    key = f"_bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
