"""Run the test suite against the installed ``ice``, from a copy of tests/
(and examples/) outside the source tree, as a wheel's user would have it.

From a checkout, pytest would put the checkout on ``sys.path`` (tests/ is a
package) and import the uncompiled source tree instead of the wheel; in a
directory of its own, the copy can only find what is installed. Used by
.ci/wheel.sh and by cibuildwheel's test-command. Arguments go to pytest.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def main(pytest_args: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="ice-installed-tests-") as scratch:
        work = Path(scratch)
        shutil.copytree(
            PROJECT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copy(PROJECT / "pyproject.toml", work)  # pytest's settings and markers
        # the examples run from a clone's root against the installed package; so here
        shutil.copytree(
            PROJECT / "examples", work / "examples", ignore=shutil.ignore_patterns("__pycache__")
        )
        where = subprocess.run(
            [sys.executable, "-P", "-c", "import ice, ice._codec; print(ice.__file__)"],
            cwd=work,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if Path(where).resolve().is_relative_to(PROJECT):
            print(f"ice is imported from the source tree ({where}), not installed")
            return 1
        print(f"testing the installed package {Path(where).parent}", flush=True)
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args]
        return subprocess.call(command, cwd=work)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
