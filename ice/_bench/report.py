"""The comparison table: our ns/op beside pion's Go ns/op (and aioice's), with the targets.

Shared by ``python -m ice bench`` (ice._bench.cli) and ``bench/compare.py``
(pytest-benchmark JSON), so both print the same markdown.

Targets (docs: DESIGN.md, "Performance"), judged on the median ns/op:

- integrity rows (MESSAGE-INTEGRITY add/check): at most 0.5x Go;
- every other per-operation row: at most max(3x Go, Go + 60 ns);
- aioice comparisons: ours at least 25x faster than aioice (the STUN rows), or
  as AIOICE_SPEEDUP_BY_CASE says (the TURN client's per-packet rows), or
  under the bound of AIOICE_ABSOLUTE_NS (the plain XOR-MAPPED-ADDRESS parse).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from ice._bench import cases
from ice._bench.go_reference import GO_NS, MACHINE, PACKAGES

INTEGRITY_MAX_RATIO: Final = 0.5
OP_MAX_RATIO: Final = 3.0
OP_MAX_EXTRA_NS: Final = 60.0
AIOICE_MIN_SPEEDUP: Final = 25.0
#: Rows with their own aioice target: the TURN client's per-packet paths (issue 4
#: quotes aioice's figures without a factor; ours must at least be faster, and the
#: ChannelData fast paths twice as fast).
AIOICE_SPEEDUP_BY_CASE: Final[dict[str, float | None]] = {
    "TurnClient_Send": 2.0,
    "TurnClient_Receive": 2.0,
    # aioice never sends Send indications: its row is its ChannelData send, shown
    # for scale only (ours binds a channel after the first datagrams, then takes
    # the TurnClient_Send path).
    "TurnClient_SendIndication": None,
    "TurnClient_ReceiveDataIndication": 1.0,
    # Issue 16 asks for the 401 rows beside aioice without a factor: shown, not judged.
    "Plain_Build401": None,
    "Plain_Parse401": None,
}
#: aioice rows judged on an absolute bound instead (issue 16: the XOR-MAPPED-ADDRESS
#: parse, the plain way, under 250 ns).
AIOICE_ABSOLUTE_NS: Final[dict[str, float]] = {"Plain_ParseResponse": 250.0}

_SECTIONS: Final[dict[str, str]] = {
    "stun": "pion/stun (github.com/pion/stun)",
    "turn": "pion/turn (github.com/pion/turn/v2/internal/proto)",
    "hmac": "pion/stun HMAC (github.com/pion/stun/internal/hmac)",
    "aioice": "aioice (pure-Python STUN, aioice.stun)",
    "ice": "ICE agent (ice.agent.agent, sans-I/O; no Go or aioice twin: not judged)",
}


@dataclass(frozen=True)
class Result:
    """One case's timing, per call, in nanoseconds."""

    name: str
    min_ns: float
    median_ns: float
    loops: int = 0
    """Calls per timed repeat (pytest-benchmark: iterations per round)."""
    repeats: int = 0
    """Timed repeats (pytest-benchmark: rounds)."""
    calls: int = 0
    """Python-level calls one timed iteration makes (runner.python_calls; 0: not counted)."""


@dataclass(frozen=True)
class Verdict:
    """One row of the table: a result judged against its reference."""

    name: str
    group: str
    result: Result
    reference: str
    """"Go" or "aioice"."""
    reference_ns: float | None
    limit_ns: float | None
    """Our median must be at most this."""
    rule: str
    """How the limit was derived, e.g. "0.5x Go"."""

    @property
    def met(self) -> bool | None:
        if self.limit_ns is None:
            return None
        return self.result.median_ns <= self.limit_ns

    @property
    def ratio(self) -> float | None:
        """ours / Go, or (for aioice rows) the speedup aioice / ours."""
        if self.reference_ns is None or self.result.median_ns <= 0:
            return None
        if self.reference == "aioice":
            return self.reference_ns / self.result.median_ns
        return self.result.median_ns / self.reference_ns


def judge(results: Iterable[Result]) -> list[Verdict]:
    """A verdict per registered case that has a result (aioice sides fold into their pair)."""
    by_name = {r.name: r for r in results}
    verdicts: list[Verdict] = []
    for case in cases.all_cases():
        result = by_name.get(case.name)
        if result is None or case.kind == "aioice":
            continue
        if case.kind == "ours":
            other = by_name.get(case.pair or "")
            ref = other.median_ns if other is not None else None
            speedup = AIOICE_SPEEDUP_BY_CASE.get(case.name, AIOICE_MIN_SPEEDUP)
            absolute = AIOICE_ABSOLUTE_NS.get(case.name)
            if absolute is not None:
                limit, rule = absolute, f"< {absolute:g} ns"
            elif speedup is None:
                limit, rule = None, "-"
            else:
                limit = ref / speedup if ref is not None else None
                rule = f">= {speedup:g}x faster"
            verdicts.append(Verdict(case.name, case.group, result, "aioice", ref, limit, rule))
            continue
        go = GO_NS.get(case.name)
        if go is None:
            verdicts.append(Verdict(case.name, case.group, result, "Go", None, None, "-"))
        elif case.kind == "integrity":
            limit = INTEGRITY_MAX_RATIO * go
            rule = f"{INTEGRITY_MAX_RATIO:g}x Go"
            verdicts.append(Verdict(case.name, case.group, result, "Go", go, limit, rule))
        else:
            by_ratio, by_extra = OP_MAX_RATIO * go, go + OP_MAX_EXTRA_NS
            limit = max(by_ratio, by_extra)
            rule = f"{OP_MAX_RATIO:g}x Go" if by_ratio >= by_extra else f"Go + {OP_MAX_EXTRA_NS:g}"
            verdicts.append(Verdict(case.name, case.group, result, "Go", go, limit, rule))
    return verdicts


def misses(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """The rows that do not meet their target."""
    return [v for v in verdicts if v.met is False]


def _ns(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def _met(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def _why(
    verdict: Verdict,
    py_floor_ns: float | None,
    c_floor_ns: float | None,
    raise_floor_ns: float | None = None,
) -> str:
    """The calling cost inside a missed row, when its calls were counted.

    The timing loop's call of the op costs an empty Python function's call when
    the op is one (it has a body with calls in it), else an empty C method's;
    each call in the body is counted at the C method's cost (the codec's
    methods are C), which leaves Python-level helpers inside the work. A row
    that raises and catches on every iteration is set beside CPython's
    cheapest raise instead (a function catching [].pop()'s IndexError): what
    it costs beyond that is the refusal's own work and the rest of its body.
    """
    if raise_floor_ns is not None and cases.get(verdict.name).raises:
        rest = verdict.result.median_ns - raise_floor_ns
        return (
            ". Why: each iteration raises and catches an exception; CPython's cheapest raise "
            "(a function catching an empty list's pop() IndexError) costs "
            f"{_ns(raise_floor_ns)} ns in this loop, so the refusal and the rest of the "
            f"iteration cost {_ns(rest)} ns beyond it"
        )
    calls = verdict.result.calls
    if not calls or py_floor_ns is None or c_floor_ns is None:
        return ""
    outer = py_floor_ns if calls > 1 else c_floor_ns
    calling = outer + (calls - 1) * c_floor_ns
    rest = verdict.result.median_ns - calling
    within = (
        "; the rest is within the target"
        if verdict.limit_ns is not None and rest <= verdict.limit_ns
        else ""
    )
    inner = f" + {calls - 1} x {_ns(c_floor_ns)} (empty C method)" if calls > 1 else ""
    return (
        f". Why: {calls} Python-level call{'s' if calls > 1 else ''} per iteration, "
        f"{_ns(outer)} ({'empty function' if calls > 1 else 'empty C method'}){inner} "
        f"= {_ns(calling)} ns of calling; the rest, {_ns(rest)} ns, is the work{within}"
    )


def build_table(
    results: Iterable[Result],
    *,
    title: str = "ice codec vs pion (Go) and aioice",
    notes: Iterable[str] = (),
    show_skipped: bool = True,
    call_floor_ns: float | None = None,
    c_call_floor_ns: float | None = None,
    raise_floor_ns: float | None = None,
) -> str:
    """The whole comparison as markdown: one table per Go package, then aioice, then a summary.

    With call_floor_ns and c_call_floor_ns (what an empty Python function and
    an empty C method cost per call in the timing loop), each missed row whose
    calls were counted says how much of it is calling: a Go loop body makes no
    calls at all, a Python one makes at least one (the loop's call of it).
    With raise_floor_ns (CPython's cheapest raise in the same loop), a missed
    row that raises on every iteration is set beside that instead.
    """
    results = list(results)
    verdicts = judge(results)
    lines = [f"# {title}", ""]
    lines += [f"- {note}" for note in notes]
    lines += [
        "- ns/op per call; targets judged on the median ns/op. Go: pion's run-3 medians "
        f"from shared/bench/go-reference.md, measured on a {MACHINE}.",
        "",
    ]
    for group, heading in _SECTIONS.items():
        rows = [v for v in verdicts if v.group == group]
        if not rows:
            continue
        lines += [f"## {heading}", ""]
        if group == "aioice":
            lines += [
                "| case | ours ns/op | ours min | aioice ns/op | speedup | target | met? |",
                "|---|---:|---:|---:|---:|---|---|",
            ]
        else:
            lines += [
                "| case | ours ns/op | ours min | Go ns/op | ours / Go | target | met? |",
                "|---|---:|---:|---:|---:|---|---|",
            ]
        for v in rows:
            target = f"<= {_ns(v.limit_ns)} ({v.rule})" if v.limit_ns is not None else "-"
            lines.append(
                f"| {v.name} | {_ns(v.result.median_ns)} | {_ns(v.result.min_ns)} "
                f"| {_ns(v.reference_ns)} | {_ratio(v.ratio)} | {target} | {_met(v.met)} |"
            )
        lines.append("")

    judged = [v for v in verdicts if v.met is not None]
    missed = misses(verdicts)
    lines += ["## Summary", ""]
    lines.append(f"{len(judged) - len(missed)} of {len(judged)} rows meet their target.")
    if missed:
        lines.append("")
        lines.append("Misses:")
        for v in missed:
            assert v.limit_ns is not None
            lines.append(
                f"- {v.name}: {_ns(v.result.median_ns)} ns/op, target <= {_ns(v.limit_ns)} "
                f"({v.rule}; {v.reference} {_ns(v.reference_ns)})"
                f"{_why(v, call_floor_ns, c_call_floor_ns, raise_floor_ns)}"
            )
    known = {c.name for c in cases.all_cases()}
    unknown = sorted(r.name for r in results if r.name not in known)
    if unknown:
        lines += ["", f"Results with no registered case (ignored): {', '.join(unknown)}"]
    if show_skipped:
        lines += ["", "Go benchmarks without a case:"]
        lines += [
            f"- {name} ({PACKAGES.get(name, '?')}): {reason}"
            for name, reason in cases.SKIPPED.items()
        ]
    return "\n".join(lines) + "\n"


def to_json(
    results: Iterable[Result], *, meta: Mapping[str, object] | None = None
) -> dict[str, object]:
    """Results and verdicts as plain data (the --json output of python -m ice bench)."""
    results = list(results)
    verdicts = {v.name: v for v in judge(results)}
    rows: list[dict[str, object]] = []
    for r in results:
        v = verdicts.get(r.name)
        rows.append(
            {
                "name": r.name,
                "min_ns": r.min_ns,
                "median_ns": r.median_ns,
                "loops": r.loops,
                "repeats": r.repeats,
                "calls": r.calls,
                "reference": v.reference if v else None,
                "reference_ns": v.reference_ns if v else None,
                "limit_ns": v.limit_ns if v else None,
                "rule": v.rule if v else None,
                "met": v.met if v else None,
            }
        )
    return {"meta": dict(meta or {}), "results": rows}
