"""Compare a run of ``python -m ice bench`` with a saved baseline (``--compare FILE``).

Both sides are the JSON that ``--json`` / ``--save`` write: ``meta`` (the
environment, with ``harness_floor_ns``: what an empty Python function costs in
the timing loop of that run) and ``results`` (one row per case, with its median
ns per call).

Each row is judged on its median divided by its own run's floor, so a machine
that is uniformly slower (another frequency, a noisy neighbour for the whole
run) moves every row and its floor together and flags nothing; the raw ns are
shown beside. A row is a regression when its floor-normalised median grew by
more than the tolerance. bench/README.md ("Regression check") has the
run-to-run spread the default tolerance comes from.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

#: Default tolerance, in percent of the floor-normalised median, for full and
#: --quick runs alike: the largest change between two runs of unchanged code
#: measured on a shared core was 44% (a --quick run against a full baseline:
#: 35%), plus a margin. bench/README.md ("Regression check") has the spread.
DEFAULT_TOLERANCE_PCT: Final = 50.0

#: meta keys that make two runs incomparable enough to warn about.
_ENVIRONMENT_KEYS: Final = (
    ("cpu", "CPU"),
    ("machine", "architecture"),
    ("implementation", "Python implementation"),
    ("python", "Python version"),
    ("sha_backend", "SHA path"),
)
_SETTINGS_KEYS: Final = (
    ("min_time", "min time per repeat"),
    ("repeats", "repeats"),
    ("clock", "clock"),
)


class BaselineError(ValueError):
    """A file that is not the JSON ``python -m ice bench --json/--save`` writes."""


@dataclass(frozen=True)
class Run:
    """One side of a comparison: median ns per case and the run's harness floor."""

    medians_ns: dict[str, float]
    floor_ns: float | None
    meta: dict[str, Any] = field(default_factory=dict)

    def normalised(self, name: str) -> float | None:
        """The case's median in units of the floor (None without a usable floor)."""
        if self.floor_ns is None or self.floor_ns <= 0:
            return None
        return self.medians_ns[name] / self.floor_ns


@dataclass(frozen=True)
class Row:
    """One case present in both runs."""

    name: str
    baseline_ns: float
    current_ns: float
    baseline_norm: float | None
    current_norm: float | None

    @property
    def raw_change(self) -> float:
        """current / baseline - 1 on the raw medians."""
        return self.current_ns / self.baseline_ns - 1.0

    @property
    def change(self) -> float:
        """current / baseline - 1 on the floor-normalised medians (raw when no floor)."""
        if self.baseline_norm is None or self.current_norm is None:
            return self.raw_change
        return self.current_norm / self.baseline_norm - 1.0


@dataclass(frozen=True)
class Comparison:
    rows: list[Row]
    tolerance_pct: float
    only_in_baseline: list[str]
    only_in_current: list[str]
    warnings: list[str]
    baseline_floor_ns: float | None
    current_floor_ns: float | None

    @property
    def regressions(self) -> list[Row]:
        """Rows slower than the baseline by more than the tolerance."""
        return [r for r in self.rows if r.change * 100.0 > self.tolerance_pct]

    @property
    def improvements(self) -> list[Row]:
        """Rows faster than the baseline by more than the tolerance."""
        return [r for r in self.rows if -r.change * 100.0 > self.tolerance_pct]


def run_from_json(data: Mapping[str, Any], *, source: str = "results") -> Run:
    """A Run from the parsed JSON of ``--json`` / ``--save``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("results"), list):
        raise BaselineError(f"{source}: not an `ice bench --json` file (no results list)")
    meta = data.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise BaselineError(f"{source}: meta is not an object")
    medians: dict[str, float] = {}
    for row in data["results"]:
        try:
            name, median = str(row["name"]), float(row["median_ns"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BaselineError(f"{source}: a result row without name/median_ns: {row!r}") from exc
        medians[name] = median
    floor = meta.get("harness_floor_ns")
    try:
        floor_ns = float(floor) if floor is not None else None
    except (TypeError, ValueError):
        floor_ns = None
    return Run(medians, floor_ns, dict(meta))


def load(path: str) -> Run:
    """Read a baseline or result file; BaselineError (with the path) if it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise BaselineError(f"{path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: not JSON ({exc})") from exc
    return run_from_json(data, source=path)


def _environment_warnings(baseline: Run, current: Run) -> list[str]:
    warnings: list[str] = []
    for key, label in _ENVIRONMENT_KEYS:
        old, new = baseline.meta.get(key), current.meta.get(key)
        if old is not None and new is not None and old != new:
            warnings.append(
                f"the baseline was measured with another {label} ({old} here: {new}): "
                "the floor cancels a uniform speed difference, not a different one per row"
            )
    for key, label in _SETTINGS_KEYS:
        old, new = baseline.meta.get(key), current.meta.get(key)
        if old is not None and new is not None and old != new:
            warnings.append(
                f"the baseline used another {label} ({old}, this run {new}): "
                "a shorter run may be noisier"
            )
    for side, run in (("baseline", baseline), ("this run", current)):
        if run.floor_ns is None or run.floor_ns <= 0:
            warnings.append(f"{side} has no harness_floor_ns: rows compared on raw ns")
    return warnings


def compare(
    baseline: Run, current: Run, tolerance_pct: float = DEFAULT_TOLERANCE_PCT
) -> Comparison:
    """Every case of current beside its baseline; cases on one side only are listed."""
    rows: list[Row] = []
    for name, now in current.medians_ns.items():
        if name not in baseline.medians_ns:
            continue
        base = baseline.medians_ns[name]
        if base <= 0 or now <= 0:
            continue
        rows.append(Row(name, base, now, baseline.normalised(name), current.normalised(name)))
    return Comparison(
        rows=rows,
        tolerance_pct=tolerance_pct,
        only_in_baseline=[n for n in baseline.medians_ns if n not in current.medians_ns],
        only_in_current=[n for n in current.medians_ns if n not in baseline.medians_ns],
        warnings=_environment_warnings(baseline, current),
        baseline_floor_ns=baseline.floor_ns,
        current_floor_ns=current.floor_ns,
    )


def _ns(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _norm(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _flag(row: Row, tolerance_pct: float) -> str:
    if row.change * 100.0 > tolerance_pct:
        return "**slower**"
    if -row.change * 100.0 > tolerance_pct:
        return "faster"
    return ""


def format_comparison(
    comparison: Comparison, *, baseline_name: str = "baseline", notes: Iterable[str] = ()
) -> str:
    """The comparison as markdown: one row per case, then the summary."""
    c = comparison
    if c.baseline_floor_ns and c.current_floor_ns:
        floors = (
            f"harness floor: baseline {_ns(c.baseline_floor_ns)} ns, "
            f"this run {_ns(c.current_floor_ns)} ns"
        )
    else:
        floors = "harness floor: missing on one side, rows compared on raw ns"
    lines = [f"# Compared with {baseline_name}", ""]
    lines += [f"- {note}" for note in notes]
    lines += [
        f"- {floors}; x floor = median / floor; change is on x floor, flagged beyond "
        f"+-{c.tolerance_pct:g}%",
    ]
    lines += [f"- warning: {w}" for w in c.warnings]
    lines += [
        "",
        "| case | baseline ns/op | now ns/op | raw change "
        "| baseline x floor | now x floor | change | |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in c.rows:
        lines.append(
            f"| {r.name} | {_ns(r.baseline_ns)} | {_ns(r.current_ns)} | {_pct(r.raw_change)} "
            f"| {_norm(r.baseline_norm)} | {_norm(r.current_norm)} | {_pct(r.change)} "
            f"| {_flag(r, c.tolerance_pct)} |"
        )
    lines += ["", "## Summary", ""]
    slower, faster = c.regressions, c.improvements
    lines.append(
        f"{len(c.rows)} rows compared: {len(slower)} slower and {len(faster)} faster "
        f"than the baseline beyond {c.tolerance_pct:g}%."
    )
    if slower:
        lines += ["", "Slower:"]
        lines += [
            f"- {r.name}: {_pct(r.change)} (raw {_ns(r.baseline_ns)} -> {_ns(r.current_ns)} ns)"
            for r in sorted(slower, key=lambda r: -r.change)
        ]
    if c.only_in_baseline:
        lines += ["", f"Only in the baseline (not run now): {', '.join(c.only_in_baseline)}"]
    if c.only_in_current:
        lines += ["", f"Not in the baseline (new rows): {', '.join(c.only_in_current)}"]
    return "\n".join(lines) + "\n"


def spread(runs: Sequence[Run]) -> dict[str, float]:
    """Per case, max / min - 1 of its floor-normalised median over runs (cases in 2+ runs).

    The run-to-run noise the tolerance must exceed: comparing any two of these
    runs moves a row by at most this much.
    """
    values: dict[str, list[float]] = {}
    for one in runs:
        for name in one.medians_ns:
            norm = one.normalised(name)
            values.setdefault(name, []).append(norm if norm is not None else one.medians_ns[name])
    return {name: max(v) / min(v) - 1.0 for name, v in values.items() if len(v) > 1}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ice._bench.compare RUN.json RUN.json ...``: the spread of repeated runs."""
    parser = argparse.ArgumentParser(
        prog="python -m ice._bench.compare",
        description="Per-row run-to-run spread (max/min - 1 of median / harness floor) of "
        "several `python -m ice bench --json` files of the same machine: the evidence a "
        "--tolerance is chosen from.",
    )
    parser.add_argument("files", nargs="+", metavar="RUN.json")
    args = parser.parse_args(argv)
    try:
        runs = [load(path) for path in args.files]
    except BaselineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(runs) < 2:
        print("error: the spread needs two runs or more", file=sys.stderr)
        return 2
    normalised = spread(runs)
    raw = spread([Run(r.medians_ns, None, r.meta) for r in runs])
    floors = ", ".join(_ns(r.floor_ns) if r.floor_ns else "?" for r in runs)
    print(f"{len(runs)} runs; harness floor per run: {floors} ns")
    print("")
    print("| case | spread (x floor) | spread (raw ns) |")
    print("|---|---:|---:|")
    for name in sorted(normalised, key=lambda n: -normalised[n]):
        print(f"| {name} | {normalised[name] * 100:.1f}% | {raw[name] * 100:.1f}% |")
    ordered = sorted(normalised.values())
    if ordered:
        median = ordered[len(ordered) // 2]
        print("")
        print(
            f"x floor: max {ordered[-1] * 100:.1f}%, median {median * 100:.1f}%; "
            f"raw: max {max(raw.values()) * 100:.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
