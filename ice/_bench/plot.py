"""Bar charts of the benchmark results (``python -m ice bench --plot FILE.svg``).

matplotlib is an optional extra (``pip install 'ice-stun-turn[plot]'``): it is
imported only when a chart is drawn, never by ``import ice`` or the bench
itself. `require_matplotlib` is called before a long run so that a missing
matplotlib fails at once, not after the measurements.

Two charts: the codec rows (ours beside pion's Go figure or aioice's, grouped
as the table groups them, log-scale ns/op), and bench/server_rate.py's server
rates (per server: the rate and the rate per core of the server's CPU).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ice._bench import report

INSTALL_HINT: Final = "pip install 'ice-stun-turn[plot]'"

OURS_COLOUR: Final = "#1f77b4"
MISS_COLOUR: Final = "#d62728"
GO_COLOUR: Final = "#17becf"
AIOICE_COLOUR: Final = "#ff7f0e"
TARGET_COLOUR: Final = "#333333"


class PlotUnavailable(RuntimeError):
    """matplotlib cannot be imported; the message says how to install it."""


def require_matplotlib() -> Any:
    """matplotlib.pyplot on the Agg backend, or PlotUnavailable naming the extra to install."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError as exc:
        raise PlotUnavailable(
            f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from exc
    # Agg draws to files only: no display is needed (CI, ssh) and no GUI
    # toolkit is imported.
    matplotlib.use("Agg")
    # SVG text as <text>, not glyph outlines: a tenth of the size, searchable.
    matplotlib.rcParams["svg.fonttype"] = "none"
    return importlib.import_module("matplotlib.pyplot")


def _rows(results: Iterable[report.Result]) -> list[tuple[str, list[report.Verdict]]]:
    verdicts = report.judge(results)
    groups: list[tuple[str, list[report.Verdict]]] = []
    for group, heading in report._SECTIONS.items():
        rows = [v for v in verdicts if v.group == group]
        if rows:
            groups.append((heading, rows))
    return groups


def plot_codec(
    results: Iterable[report.Result], path: str, *, title: str = "ice codec vs pion (Go) and aioice"
) -> None:
    """A horizontal bar per row: ours, and Go's or aioice's figure beside it, log-scale ns/op.

    Our bar is red where the row misses its target; a black tick marks the target.
    """
    plt = require_matplotlib()
    groups = _rows(results)
    if not groups:
        raise ValueError("no result belongs to a registered case: nothing to plot")
    bar = 0.38
    y = 0.0
    ticks: list[float] = []
    labels: list[str] = []
    headers: list[tuple[float, str]] = []
    placed: list[tuple[float, report.Verdict]] = []
    for heading, rows in groups:
        headers.append((y, heading))
        y += 1.0
        for v in rows:
            placed.append((y, v))
            ticks.append(y)
            labels.append(v.name)
            y += 1.0
        y += 0.4
    height = 1.6 + 0.26 * y
    fig, ax = plt.subplots(figsize=(9.0, height))
    seen: set[str] = set()

    def label(name: str) -> str:
        # One legend entry per kind of bar, however many rows draw one.
        if name in seen:
            return "_nolegend_"
        seen.add(name)
        return name

    for pos, v in placed:
        missed = v.met is False
        ax.barh(
            pos - bar / 2,
            v.result.median_ns,
            height=bar,
            color=MISS_COLOUR if missed else OURS_COLOUR,
            label=label("ice, misses its target" if missed else "ice (median)"),
        )
        ax.text(
            # Right of our bar and of its target tick, so the tick does not strike it.
            max(v.result.median_ns, v.limit_ns or 0.0) * 1.08,
            pos - bar / 2,
            _ns(v.result.median_ns),
            va="center",
            fontsize=7,
        )
        if v.reference_ns is not None:
            is_go = v.reference == "Go"
            ax.barh(
                pos + bar / 2,
                v.reference_ns,
                height=bar,
                color=GO_COLOUR if is_go else AIOICE_COLOUR,
                label=label("pion (Go)" if is_go else "aioice"),
            )
        if v.limit_ns is not None:
            ax.plot(
                [v.limit_ns, v.limit_ns],
                [pos - bar, pos],
                color=TARGET_COLOUR,
                linewidth=1.5,
                label=label("target"),
            )
    ax.set_xscale("log")
    drawn = [v.result.median_ns for _, v in placed]
    drawn += [v.reference_ns for _, v in placed if v.reference_ns is not None]
    drawn += [v.limit_ns for _, v in placed if v.limit_ns is not None]
    # Room on the right for the value printed after the longest bar.
    ax.set_xlim(min(drawn) / 2, max(drawn) * 4)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(y, -1.0)
    for pos, heading in headers:
        ax.text(
            0.0,
            pos,
            heading,
            transform=ax.get_yaxis_transform(),
            fontsize=9,
            fontweight="bold",
            va="center",
        )
    ax.set_xlabel("ns per operation (median; log scale; shorter is faster)")
    ax.set_title(title, fontsize=10, pad=26)
    ax.grid(axis="x", which="major", linestyle=":", linewidth=0.6)
    # Above the bars, under the title: inside the axes it would cover rows.
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _ns(value: float) -> str:
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _thousands() -> Any:
    ticker = importlib.import_module("matplotlib.ticker")
    return ticker.FuncFormatter(lambda value, _pos: f"{value:,.0f}")


def _run_label(run: Mapping[str, Any]) -> str:
    mode = str(run.get("mode", "?"))
    what = "STUN Binding" if mode == "stun" else "TURN ChannelData" if mode == "turn" else mode
    flows = run.get("flows")
    unit = "socket" if mode == "stun" else "allocation"
    text = what
    if flows is not None:
        text += f", {flows} {unit}{'' if flows == 1 else 's'}"
    size = run.get("size", (run.get("extra") or {}).get("size"))
    if size is not None and mode == "turn":
        text += f", {size} B"
    return text


def _best_runs(runs: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The best run (highest rate) per (configuration, server), in the order first seen."""
    best: dict[tuple[str, str], Mapping[str, Any]] = {}
    for run in runs:
        key = (_run_label(run), str(run.get("server", "?")))
        rate = float(run.get("rate") or 0.0)
        if key not in best or rate > float(best[key].get("rate") or 0.0):
            best[key] = run
    return best


def plot_server_rates(data: Mapping[str, Any], path: str) -> None:
    """bench/server_rate.py's JSON as two panels: the rate, and the rate per core of server CPU.

    One group of bars per configuration (STUN, TURN with N allocations, ...),
    one bar per server, the best round of each.
    """
    plt = require_matplotlib()
    runs = data.get("runs") or []
    best = _best_runs(runs)
    if not best:
        raise ValueError("the server_rate JSON has no runs: nothing to plot")
    configs = list(dict.fromkeys(config for config, _ in best))
    servers = list(dict.fromkeys(server for _, server in best))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
    colours = {s: palette[i % len(palette)] for i, s in enumerate(servers)}
    bar = 0.8 / len(servers)
    height = 1.8 + 0.32 * len(configs) * len(servers)
    fig, axes = plt.subplots(1, 2, figsize=(11.0, height), sharey=True)
    panels = (
        ("rate", "packets/s (STUN: responses; TURN: relayed packets)"),
        ("per_core", "packets/s per core of server CPU"),
    )
    for ax, (field, xlabel) in zip(axes, panels, strict=True):
        labelled: set[str] = set()
        peak = max(float(r.get(field) or 0.0) for r in best.values()) or 1.0
        for i, config in enumerate(configs):
            for j, server in enumerate(servers):
                run = best.get((config, server))
                if run is None:
                    continue
                value = run.get(field)
                pos = i + (j - (len(servers) - 1) / 2) * bar
                ax.barh(
                    pos,
                    float(value or 0.0),
                    height=bar * 0.9,
                    color=colours[server],
                    label="_nolegend_" if server in labelled else server,
                )
                labelled.add(server)
                text = f"{float(value):,.0f}" if value else "? (no CPU figure)"
                ax.text(float(value or 0.0) + peak * 0.01, pos, text, va="center", fontsize=7)
        ax.set_xlim(0, peak * 1.25)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.grid(axis="x", linestyle=":", linewidth=0.6)
    axes[0].set_yticks(range(len(configs)))
    axes[0].set_yticklabels(configs, fontsize=8)
    axes[0].set_ylim(len(configs) - 0.5, -0.5)
    for ax in axes:
        ax.xaxis.set_major_formatter(_thousands())
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="upper center",
        bbox_to_anchor=(0.5, 0.96),
        ncol=len(servers),
        fontsize=8,
        frameon=False,
    )
    header = str(data.get("header") or "")
    fig.suptitle("Server rates on loopback (best round)", fontsize=11)
    if header:
        fig.text(0.5, 0.005, header, ha="center", va="bottom", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.04 if header else 0, 1, 0.9))
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
