"""Build the compiled codec. Everything else about the package is in pyproject.toml.

ICE_ANNOTATE=1 pip install -e .   also writes cython -a HTML next to each .pyx
ICE_DEBUG=1                       turns bounds checks back on for debugging
ICE_PORTABLE=1                    builds the portable code paths that other platforms
                                  run, so Linux CI can test them: ice._codec without
                                  the SHA instructions (ICE_SHA_PORTABLE_ONLY; then
                                  ice._codec.SHA_BACKEND == "portable") and
                                  ice.aio._udpio without recvmmsg/sendmmsg
                                  (ICE_NO_MMSG; then ice.aio._udpio.HAVE_MMSG is
                                  False). Use it in a scratch copy with --force: the
                                  .so files it leaves behind are slower ones.
"""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

ANNOTATE = os.environ.get("ICE_ANNOTATE") == "1"
DEBUG = os.environ.get("ICE_DEBUG") == "1"
PORTABLE = os.environ.get("ICE_PORTABLE") == "1"

# Compiler directives live here and nowhere else.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "freethreading_compatible": False,
}

if sys.platform == "win32":
    CFLAGS = ["/O2"]
else:
    CFLAGS = ["-O3", "-fno-strict-aliasing"] + (["-UNDEBUG", "-O1", "-g"] if DEBUG else [])

EXTENSIONS = [
    Extension("ice._crc", ["ice/_crc.pyx"], extra_compile_args=CFLAGS),
    Extension("ice._attrs_base", ["ice/_attrs_base.pyx"], extra_compile_args=CFLAGS),
    Extension("ice._attrs_stun", ["ice/_attrs_stun.pyx"], extra_compile_args=CFLAGS),
    Extension("ice._attrs_turn", ["ice/_attrs_turn.pyx"], extra_compile_args=CFLAGS),
    Extension(
        "ice._codec",
        ["ice/_codec.pyx", "ice/_sha.c"],
        depends=["ice/_sha.h", "ice/_crc.pxd", "ice/_codec.pxd", "ice/_wire.pxd"],
        include_dirs=["ice"],
        define_macros=[("ICE_SHA_PORTABLE_ONLY", "1")] if PORTABLE else [],
        extra_compile_args=CFLAGS,
    ),
    Extension(
        "ice.stun._transaction",
        ["ice/stun/_transaction.pyx"],
        depends=["ice/_codec.pxd", "ice/_crc.pxd", "ice/_wire.pxd"],
        extra_compile_args=CFLAGS,
    ),
    Extension(
        "ice.aio._udpio",
        ["ice/aio/_udpio.pyx"],
        define_macros=[("ICE_NO_MMSG", "1")] if PORTABLE else [],
        extra_compile_args=CFLAGS,
    ),
    Extension("ice.turn._allocation", ["ice/turn/_allocation.pyx"], extra_compile_args=CFLAGS),
    Extension(
        "ice.turn._relay",
        ["ice/turn/_relay.pyx"],
        depends=["ice/turn/_allocation.pxd"],
        extra_compile_args=CFLAGS,
    ),
    Extension(
        "ice.stun._binding",
        ["ice/stun/_binding.pyx"],
        depends=["ice/_crc.pxd", "ice/_wire.pxd"],
        extra_compile_args=CFLAGS,
    ),
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives=DIRECTIVES,
        annotate=ANNOTATE,
        force=ANNOTATE,  # an annotate build re-runs Cython so every .html is written
        include_path=["."],
    ),
)
