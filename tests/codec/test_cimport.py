"""A third-party Cython module cimports the codec's .pxd surface and runs.

Built against the ``ice`` this test process imported (an installed wheel in
CI's wheel job), so a header or .pxd the wheel leaves out fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from tests.support.cli import PYTHON

pytest.importorskip("Cython", reason="building a cimporting module needs Cython")
pytest.importorskip("setuptools", reason="building a cimporting module needs setuptools")

PROBE = """
from libc.stdint cimport uint8_t
from ice._codec cimport IntegrityKey, Message, as_integrity_key, format_ip
from ice._wire cimport load16


def type_and_first_ip(Message msg):
    cdef uint8_t ip[4]
    ip[:] = [192, 0, 2, 1]
    return load16(msg._buf), format_ip(1, ip)


def key_of(password):
    cdef IntegrityKey key = as_integrity_key(password)
    return key.key
"""

SETUP = """
import os

import ice
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("probe", ["probe.pyx"], include_dirs=[ice.get_include()])],
        compiler_directives={"language_level": 3},
        # where ice's .pxd files are: sys.path holds it for a wheel, not for
        # an editable install (found by an import hook)
        include_path=[os.path.dirname(ice.get_include())],
    ),
)
"""


def _has_compiler() -> bool:
    if sys.platform == "win32":
        return True  # MSVC is found by setuptools, not on PATH
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler) is not None


@pytest.mark.skipif(not _has_compiler(), reason="no C compiler to build the cimporting module")
def test_a_module_built_against_the_package_cimports_the_codec(tmp_path: Path) -> None:
    (tmp_path / "probe.pyx").write_text(PROBE)
    (tmp_path / "setup.py").write_text(SETUP)
    build = subprocess.run(
        [*PYTHON, "setup.py", "build_ext", "--inplace"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    run = subprocess.run(
        [
            *PYTHON,
            "-c",
            textwrap.dedent(
                """
                import sys
                sys.path.insert(0, ".")
                import ice, probe
                request = ice.Message.decode(bytes.fromhex(
                    "000100002112a442b7e7a701bc34d686fa87dfae"))
                print(probe.type_and_first_ip(request), probe.key_of(b"secret"))
                """
            ),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.strip() == "(1, '192.0.2.1') b'secret'"
