"""``python -m ice bench``: time the codec and print it beside pion's Go numbers.

Runs every case of ice._bench.cases with a timeit harness (no
pytest-benchmark needed) and prints the markdown comparison table.
``--quick`` is a smoke run of a few seconds; ``-k`` selects cases by a
substring of their name; ``--json`` also writes the results and verdicts.

Regression check: ``--save FILE`` writes a baseline, ``--compare FILE`` runs
again and prints each row beside the baseline, normalised by the harness floor
of its own run, flagging rows slower than ``--tolerance`` percent
(``--fail-on-regression``: exit 1 then). ``--plot FILE.svg`` draws the rows
(matplotlib, the ``plot`` extra); ``--from FILE`` takes the results of an
earlier ``--json``/``--save`` instead of running.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from collections.abc import Sequence

from ice._bench import cases, compare, report, runner

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
    parser.add_argument(
        "--min-time",
        type=float,
        metavar="S",
        help="seconds each timed repeat lasts at least (default 0.1; --quick: 0.004)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="timed repeats per case, the median is taken over them (default 7; --quick: 3)",
    )
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="time with this thread's CPU time (default; a busy machine disturbs it less) "
        "or the wall clock (perf_counter, as timeit)",
    )
    check = parser.add_argument_group("regression check and chart")
    check.add_argument(
        "--save",
        metavar="FILE",
        help="write this run as a baseline for a later --compare (the --json format)",
    )
    check.add_argument(
        "--compare",
        metavar="FILE",
        help="compare this run with a baseline written by --save (or --json)",
    )
    check.add_argument(
        "--tolerance",
        type=float,
        metavar="PCT",
        help="flag rows whose floor-normalised median changed by more than PCT percent "
        f"(default {compare.DEFAULT_TOLERANCE_PCT:g}: the largest change between runs of "
        "unchanged code on a busy core, plus a margin; see bench/README.md)",
    )
    check.add_argument(
        "--fail-on-regression",
        "--compare-fail",
        dest="fail_on_regression",
        action="store_true",
        help="with --compare: exit 1 when a row is slower beyond the tolerance "
        "(without it the comparison only reports)",
    )
    check.add_argument(
        "--plot",
        metavar="FILE.svg",
        help="draw the rows as a bar chart, ours vs Go vs aioice, log scale "
        "(needs matplotlib: pip install 'ice-stun-turn[plot]')",
    )
    check.add_argument(
        "--from",
        dest="from_json",
        metavar="FILE",
        help="use the results in FILE (from --json or --save) instead of running",
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _settings(args: argparse.Namespace) -> runner.Settings:
    base = runner.QUICK if args.quick else runner.FULL
    return runner.Settings(
        min_time=base.min_time if args.min_time is None else args.min_time,
        repeats=base.repeats if args.repeats is None else args.repeats,
        clock=args.clock,
    )


def _environment(quick: bool, settings: runner.Settings, floor_ns: float) -> dict[str, object]:
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
        "min_time": settings.min_time,
        "repeats": settings.repeats,
        "clock": runner.clock_name(settings.clock),
        # Timed in the same interleaved rounds as the cases: the divisor of a --compare.
        "harness_floor_ns": round(floor_ns, 2),
    }


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _measure(
    args: argparse.Namespace, chosen: Sequence[cases.Case]
) -> tuple[list[report.Result], dict[str, object], list[str]]:
    settings = _settings(args)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    results, floor, c_floor, raise_floor = runner.run_with_floor(
        [c.name for c in chosen], settings, progress=progress
    )
    env = _environment(args.quick, settings, floor)
    env["c_call_floor_ns"] = round(c_floor, 2)
    env["raise_floor_ns"] = round(raise_floor, 2)
    notes = [
        f"python -m ice bench{' --quick' if args.quick else ''}: ice {env['ice']}, "
        f"{env['implementation']} {env['python']} on {env['cpu']} ({env['machine']}), "
        f"SHA path: {env['sha_backend']}, {env['date']}",
        f"harness: timeit on {runner.clock_name(settings.clock)}, {settings.repeats} repeats "
        f"of >= {settings.min_time:g} s per case; "
        f"an empty Python function costs {floor:.1f} ns/call in this loop, "
        f"an empty C method {c_floor:.1f}, CPython's cheapest raise (a function catching "
        f"an empty list's pop() IndexError) {raise_floor:.1f}",
    ]
    return results, env, notes


def _load_results(
    path: str, wanted: set[str] | None
) -> tuple[list[report.Result], dict[str, object], list[str]]:
    """The results of an earlier --json/--save (the wanted cases' only), its meta, a note."""
    loaded = compare.load(path)
    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)["results"]
        results = [
            report.Result(
                name=str(row["name"]),
                min_ns=float(row.get("min_ns", row["median_ns"])),
                median_ns=float(row["median_ns"]),
                loops=int(row.get("loops", 0)),
                repeats=int(row.get("repeats", 0)),
                calls=int(row.get("calls") or 0),
            )
            for row in rows
            if wanted is None or row["name"] in wanted
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise compare.BaselineError(f"{path}: a malformed result row ({exc})") from exc
    meta = loaded.meta
    note = (
        f"results read from {path}: ice {meta.get('ice', '?')}, "
        f"{meta.get('implementation', '?')} {meta.get('python', '?')} on {meta.get('cpu', '?')}, "
        f"{meta.get('date', '?')}; harness floor {meta.get('harness_floor_ns', '?')} ns/call"
    )
    return results, dict(meta), [note]


def _write(path: str, results: Sequence[report.Result], env: dict[str, object]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(report.to_json(results, meta=env), out, indent=2)
        out.write("\n")


def run(args: argparse.Namespace) -> int:
    chosen = cases.select(args.select)
    if args.list:
        for case in chosen:
            print(f"{case.name:32} {case.group:7} {case.kind:9} {case.doc}")
        return 0
    if not chosen:
        print(f"no benchmark case matches {args.select!r}", file=sys.stderr)
        return 2
    if (args.min_time is not None and args.min_time <= 0) or (
        args.repeats is not None and args.repeats < 1
    ):
        return _error("--min-time must be > 0 and --repeats >= 1")
    if args.tolerance is not None and args.tolerance < 0:
        return _error("--tolerance is a percentage >= 0")
    # Everything that can fail without measuring fails before the minute of measuring.
    if args.plot:
        from ice._bench import plot

        try:
            plot.require_matplotlib()
        except plot.PlotUnavailable as exc:
            return _error(str(exc))
    wanted = {c.name for c in chosen} if args.select else None
    baseline = None
    try:
        if args.compare:
            baseline = compare.load(args.compare)
            if wanted is not None:  # -k: compare the selected rows, not the whole baseline
                baseline = compare.Run(
                    {n: v for n, v in baseline.medians_ns.items() if n in wanted},
                    baseline.floor_ns,
                    baseline.meta,
                )
        if args.from_json:
            results, env, notes = _load_results(args.from_json, wanted)
        else:
            results, env, notes = _measure(args, chosen)
    except compare.BaselineError as exc:
        return _error(str(exc))
    print(
        report.build_table(
            results,
            notes=notes,
            call_floor_ns=_float(env.get("harness_floor_ns")),
            c_call_floor_ns=_float(env.get("c_call_floor_ns")),
            raise_floor_ns=_float(env.get("raise_floor_ns")),
        )
    )
    for path in (args.json, args.save):
        if path:
            _write(path, results, env)
    status = 0
    if baseline is not None:
        current = compare.run_from_json(report.to_json(results, meta=env))
        tolerance = args.tolerance
        if tolerance is None:
            tolerance = compare.DEFAULT_TOLERANCE_PCT
        comparison = compare.compare(baseline, current, tolerance)
        print(compare.format_comparison(comparison, baseline_name=args.compare))
        if args.fail_on_regression and comparison.regressions:
            print(
                f"{len(comparison.regressions)} rows slower than {args.compare} "
                f"beyond {tolerance:g}%",
                file=sys.stderr,
            )
            status = 1
    if args.plot:
        from ice._bench import plot

        title = (
            f"ice {env.get('ice', '?')} codec vs pion (Go) and aioice: "
            f"{env.get('implementation', '')} {env.get('python', '')} on {env.get('cpu', '?')}"
        )
        try:
            plot.plot_codec(results, args.plot, title=title)
        except (OSError, ValueError) as exc:
            return _error(f"--plot {args.plot}: {exc}")
        print(f"wrote {args.plot}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ice bench",
        description="Time every codec operation and print it beside pion's Go figure.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
