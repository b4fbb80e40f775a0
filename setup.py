"""Build the compiled codec. Everything else about the package is in pyproject.toml.

ICE_ANNOTATE=1 pip install -e .   also writes cython -a HTML next to each .pyx
ICE_DEBUG=1                       turns bounds checks back on and keeps debug info
ICE_PORTABLE=1                    builds the portable code paths that other platforms
                                  run, so Linux CI can test them: ice._codec without
                                  the SHA instructions (ICE_SHA_PORTABLE_ONLY; then
                                  ice._codec.SHA_BACKEND == "portable"), ice._crc
                                  without PCLMULQDQ (ICE_CRC_PORTABLE_ONLY; then
                                  ice._crc.BACKEND == "table") and
                                  ice.aio._udpio without recvmmsg/sendmmsg
                                  (ICE_NO_MMSG; then ice.aio._udpio.HAVE_MMSG is
                                  False, and so is ice._load._pump.HAVE_PUMP).
                                  .ci/portable.sh uses it in a scratch copy
                                  with --force: the .so files it leaves are slower.
ICE_KEEP_SYMBOLS=1                keeps the symbol table of a release build, so that
                                  perf names the codec's functions
ICE_SANITIZE=1                    builds with AddressSanitizer and UBSan (any UB report
                                  aborts); the flags go last on the command line, after
                                  -O3/-g0 and $CFLAGS, so nothing turns them off. Run
                                  with LD_PRELOAD=$(gcc -print-file-name=libasan.so):
                                  .ci/sanitize.sh does, in a scratch copy.

Release builds (the default) carry no debug info and, on Linux, no symbol table
beyond what the dynamic loader needs: 1.8 MB of extensions instead of 12 MB.
"""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ANNOTATE = os.environ.get("ICE_ANNOTATE") == "1"
DEBUG = os.environ.get("ICE_DEBUG") == "1"
PORTABLE = os.environ.get("ICE_PORTABLE") == "1"
SANITIZE = os.environ.get("ICE_SANITIZE") == "1"

# Compiler directives live here and nowhere else.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "binding": False,
    "embedsignature.format": "clinic",
    "freethreading_compatible": False,
}

if sys.platform == "win32":
    CFLAGS = ["/O2"]
elif DEBUG:
    CFLAGS = ["-O3", "-fno-strict-aliasing", "-UNDEBUG", "-O1", "-g"]
else:
    # -g0 comes after the interpreter's own -g, and the last one wins.
    CFLAGS = ["-O3", "-fno-strict-aliasing", "-g0"]
KEEP_SYMBOLS = DEBUG or os.environ.get("ICE_KEEP_SYMBOLS") == "1"
LDFLAGS = ["-Wl,-s"] if sys.platform.startswith("linux") and not KEEP_SYMBOLS else []
# Last on the line: -O1 over -O3 for usable reports, -g over -g0, and the
# sanitizers after anything $CFLAGS says; no stripping of the symbols reports name.
SANITIZE_FLAGS = [
    "-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=undefined",
]  # fmt: skip
if SANITIZE:
    LDFLAGS = ["-fsanitize=address,undefined"]


class BuildExt(build_ext):
    """Adds the flags above to every extension and links without a RUNPATH.

    An interpreter built with a shared libpython in a private prefix (pyenv,
    python-build-standalone) puts ``-Wl,-rpath,<prefix>/lib`` in LDSHARED, so
    every extension would carry the build machine's path as its RUNPATH. The
    extensions link against no libpython and need no search path at all.
    """

    def build_extensions(self) -> None:
        linker = getattr(self.compiler, "linker_so", None)
        if linker is not None:
            self.compiler.linker_so = [a for a in linker if not a.startswith("-Wl,-rpath")]
        for extension in self.extensions:
            extension.extra_compile_args = [*CFLAGS, *extension.extra_compile_args]
            if SANITIZE:
                extension.extra_compile_args += SANITIZE_FLAGS
            extension.extra_link_args = [*LDFLAGS, *extension.extra_link_args]
        super().build_extensions()


EXTENSIONS = [
    Extension(
        "ice._crc",
        ["ice/_crc.pyx"],
        depends=["ice/_crc_clmul.h"],
        define_macros=[("ICE_CRC_PORTABLE_ONLY", "1")] if PORTABLE else [],
    ),
    Extension(
        "ice._attrs_base", ["ice/_attrs_base.pyx"], depends=["ice/_fastcall.h", "ice/_refusal.h"]
    ),
    Extension("ice._attrs_stun", ["ice/_attrs_stun.pyx"]),
    Extension("ice._attrs_turn", ["ice/_attrs_turn.pyx"]),
    Extension(
        "ice._codec",
        ["ice/_codec.pyx", "ice/_sha.c"],
        depends=[
            "ice/_sha.h",
            "ice/_fastcall.h",
            "ice/_refusal.h",
            "ice/_utf8.h",
            "ice/_crc.pxd",
            "ice/_codec.pxd",
            "ice/_wire.pxd",
        ],
        include_dirs=["ice"],
        define_macros=[("ICE_SHA_PORTABLE_ONLY", "1")] if PORTABLE else [],
    ),
    Extension(
        "ice.stun._transaction",
        ["ice/stun/_transaction.pyx"],
        depends=["ice/_codec.pxd", "ice/_crc.pxd", "ice/_wire.pxd"],
    ),
    Extension(
        "ice.aio._udpio",
        ["ice/aio/_udpio.pyx"],
        define_macros=[("ICE_NO_MMSG", "1")] if PORTABLE else [],
    ),
    Extension(
        "ice._load._pump",
        ["ice/_load/_pump.pyx"],
        define_macros=[("ICE_NO_MMSG", "1")] if PORTABLE else [],
    ),
    Extension("ice.turn._allocation", ["ice/turn/_allocation.pyx"]),
    Extension(
        "ice.turn._relay",
        ["ice/turn/_relay.pyx"],
        depends=["ice/turn/_allocation.pxd"],
    ),
    Extension(
        "ice.stun._binding",
        ["ice/stun/_binding.pyx"],
        depends=["ice/_crc.pxd", "ice/_wire.pxd"],
    ),
]

setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives=DIRECTIVES,
        annotate=ANNOTATE,
        force=ANNOTATE,  # an annotate build re-runs Cython so every .html is written
        include_path=["."],
    ),
)
