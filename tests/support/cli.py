"""Child processes that run the `ice` this test process imported.

``-P`` keeps the working directory off the child's ``sys.path``: run from a
checkout, ``python -m ice`` would otherwise import the uncompiled source tree
instead of the installed (or editable) package. Nothing here points the child
at the source tree; tests/cli/test_child_process.py checks that parent and
child load the same package.
"""

from __future__ import annotations

import sys

PYTHON = (sys.executable, "-P")
ICE = (*PYTHON, "-m", "ice")
