"""``python -m ice bench``: time the codec and print it beside pion's Go numbers.

Runs every case of ice._bench.cases with a timeit harness (no
pytest-benchmark needed) and prints the markdown comparison table.
``--quick`` is a smoke run of a few seconds; ``-k`` selects cases by a
substring of their name; ``--json`` also writes the results and verdicts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from collections.abc import Sequence

from ice._bench import cases, report, runner

HELP = "run the codec benchmarks and compare them with pion (Go) and aioice"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="time each case for a few ms only (a smoke run; numbers are rough)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write results and verdicts as JSON")
    parser.add_argument(
        "-k",
        metavar="SUBSTRING",
        dest="select",
        help="only the cases whose name contains SUBSTRING (case-insensitive)",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _environment(quick: bool, floor_ns: float) -> dict[str, object]:
    from ice import __version__
    from ice._codec import SHA_BACKEND

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "ice": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "sha_backend": SHA_BACKEND,
        "mode": "quick" if quick else "full",
        "harness_floor_ns": round(floor_ns, 2),
    }


def run(args: argparse.Namespace) -> int:
    chosen = cases.select(args.select)
    if args.list:
        for case in chosen:
            print(f"{case.name:32} {case.group:7} {case.kind:9} {case.doc}")
        return 0
    if not chosen:
        print(f"no benchmark case matches {args.select!r}", file=sys.stderr)
        return 2
    settings = runner.QUICK if args.quick else runner.FULL
    floor = runner.harness_floor_ns(settings)
    c_floor = runner.c_call_floor_ns(settings)
    total = len(chosen)
    done = 0

    def progress(name: str) -> None:
        nonlocal done
        done += 1
        print(f"[{done}/{total}] {name}", file=sys.stderr, flush=True)

    results = runner.run([c.name for c in chosen], quick=args.quick, progress=progress)
    env = _environment(args.quick, floor)
    notes = [
        f"python -m ice bench{' --quick' if args.quick else ''}: ice {env['ice']}, "
        f"{env['implementation']} {env['python']} on {env['cpu']} ({env['machine']}), "
        f"SHA path: {env['sha_backend']}, {env['date']}",
        f"harness: timeit, {settings.repeats} repeats of >= {settings.min_time:g} s per case; "
        f"an empty Python function costs {floor:.1f} ns/call in this loop, "
        f"an empty C method {c_floor:.1f}",
    ]
    print(report.build_table(results, notes=notes, call_floor_ns=floor, c_call_floor_ns=c_floor))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report.to_json(results, meta=env), out, indent=2)
            out.write("\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ice bench",
        description="Time every codec operation and print it beside pion's Go figure.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
