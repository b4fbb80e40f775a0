"""Print the Go/aioice comparison table for a pytest-benchmark JSON file.

    pytest bench --benchmark-json=RESULT.json
    python bench/compare.py RESULT.json [--output TABLE.md]

Each ``test_<Case>`` result becomes the case ``<Case>``; its pytest-benchmark
"min" and "median" (seconds per call) are converted to ns. The table is the
one ``python -m ice bench`` prints (ice/_bench/report.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import ice  # noqa: F401
except ImportError:  # a source checkout built in place
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ice._bench import report


def load(path: str | Path) -> tuple[list[report.Result], list[str]]:
    """The results in a pytest-benchmark JSON file, and notes about the run."""
    with open(path, encoding="utf-8") as source:
        data: dict[str, Any] = json.load(source)
    results = []
    for bench in data.get("benchmarks", []):
        name = str(bench["name"])
        if not name.startswith("test_") or "[" in name:
            continue
        stats = bench["stats"]
        results.append(
            report.Result(
                name=name.removeprefix("test_"),
                min_ns=float(stats["min"]) * 1e9,
                median_ns=float(stats["median"]) * 1e9,
                loops=int(stats.get("iterations", 0)),
                repeats=int(stats.get("rounds", 0)),
            )
        )
    machine = data.get("machine_info", {})
    commit = data.get("commit_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", machine.get("processor", "?"))
    when = data.get("datetime", "?")
    notes = [
        f"pytest-benchmark {data.get('version', '?')} ({Path(path).name}, {when}): "
        f"{machine.get('python_implementation', '?')} {machine.get('python_version', '?')} "
        f"on {cpu}, commit {str(commit.get('id', '?'))[:10]}"
        f"{' (dirty)' if commit.get('dirty') else ''}",
        "timed by bench/conftest.py's plain fn() loop (as timeit does), GC off, with warm-up",
    ]
    return results, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file", help="written by pytest bench --benchmark-json=FILE")
    parser.add_argument("--output", metavar="FILE", help="also write the table to FILE")
    args = parser.parse_args(argv)
    results, notes = load(args.json_file)
    if not results:
        print(f"{args.json_file}: no benchmark results", file=sys.stderr)
        return 1
    table = report.build_table(results, title="ice codec vs pion (Go) and aioice", notes=notes)
    print(table, end="")
    if args.output:
        Path(args.output).write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
