"""Draw a report's data as static PNG images with matplotlib.

Figures are built with `matplotlib.figure.Figure` and its Agg canvas, never pyplot, so
drawing needs no display and leaves no global state behind. Images are written with a
palette of `COLOURS` colours: charts look the same and take a fraction of the space.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lrsearch.report._data import Curves, History, Importance, ParallelCoordinates
from lrsearch.report._style import MISSING_LABEL, OTHER_COLOR, STATE_COLORS, TOP_COLORS, top_label

DPI = 110
COLOURS = 64


def write(figure: Figure, path: Path) -> Path:
    from PIL import Image

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=DPI)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(COLOURS, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    return path


def importance(data: Importance) -> Figure:
    names = list(data.values)[::-1]
    figure = Figure(figsize=(7, 0.45 * len(names) + 1.6), layout="constrained")
    ax = figure.add_subplot()
    bars = ax.barh(names, [data.values[n] for n in names], color="#1f77b4")
    ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=8)
    ax.set_xlabel("importance (sums to 1)")
    ax.set_xlim(0, max(max(data.values.values(), default=0) * 1.15, 0.05))
    ax.set_title(f"Parameter importance: {data.evaluator}\n{data.n_trials} trials, {data.n_pruned} of them pruned",
                 fontsize=10)
    return figure


def parallel_coordinates(data: ParallelCoordinates, direction: str) -> Figure:
    """One vertical axis per column, each scaled to [0, 1]; lines coloured by the objective,
    the best drawn last. A parameter that does not apply sits at 'n/a' below the axis."""
    frame = data.frame
    columns = [data.objective, *data.params]
    figure = Figure(figsize=(max(6, 1.3 * len(columns) + 2), 5), layout="constrained")
    ax = figure.add_subplot()
    scaled, ticks = [], []
    for name in columns:
        position, labels = _scale(frame[name], name in data.categorical, name in data.log)
        scaled.append(position)
        ticks.append(labels)
    ys = np.column_stack(scaled)
    objective = frame[data.objective].to_numpy(dtype=float)
    order = np.argsort(objective if direction == "maximize" else -objective)
    segments = [np.column_stack([np.arange(len(columns)), ys[i]]) for i in order]
    lines = LineCollection(segments, cmap="viridis_r" if direction == "minimize" else "viridis", linewidths=1.2,
                           alpha=0.8)
    lines.set_array(objective[order])
    ax.add_collection(lines)
    figure.colorbar(lines, ax=ax, label=data.objective)
    for x, labels in enumerate(ticks):
        ax.axvline(x, color="black", linewidth=0.8)
        for y, text in labels:
            ax.text(x + 0.03, y, text, fontsize=7, va="center")
    ax.set_xlim(-0.2, len(columns) - 0.6)
    ax.set_ylim(-0.18, 1.05)
    ax.set_xticks(range(len(columns)), [f"{c} (log)" if c in data.log else c for c in columns], rotation=20)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"Parallel coordinates: {len(frame)} trials (complete, and pruned at their last value)",
                 fontsize=10)
    return figure


def _scale(values, categorical: bool, log: bool) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Positions in [0, 1] (missing at -0.1) and (position, label) ticks."""
    absent = values.isna().to_numpy()
    present = values[~absent]
    if categorical:
        labels = sorted(present.astype(str).unique())
        step = 1.0 / max(1, len(labels) - 1)
        where = {label: i * step if len(labels) > 1 else 0.5 for i, label in enumerate(labels)}
        position = np.array([-0.1 if a else where[str(v)] for v, a in zip(values, absent)])
        ticks = [(where[label], label) for label in labels]
    else:
        numbers = values.astype(float).to_numpy()
        numbers = np.log10(numbers, where=~absent, out=np.full_like(numbers, np.nan)) if log else numbers
        low, high = np.nanmin(numbers), np.nanmax(numbers)
        span = high - low or 1.0
        position = np.where(absent, -0.1, (numbers - low) / span)
        ticks = [((t - low) / span, f"{10 ** t:.2g}" if log else f"{t:.3g}")
                 for t in (np.linspace(low, high, 4) if high > low else [low])]
    if absent.any():
        ticks.append((-0.1, MISSING_LABEL))
    return position, ticks


def history(data: History) -> Figure:
    frame = data.frame
    figure = Figure(figsize=(7, 4), layout="constrained")
    ax = figure.add_subplot()
    ax.scatter(frame["number"], frame["value"], s=14, label="complete trial")
    ax.step(frame["number"], frame["best_so_far"], where="post", color="#d62728", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(data.objective)
    ax.set_title("Optimization history", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure


def curves(data: Curves, title: str, top: list[int]) -> Figure:
    """The `top` trials' curves (best first) in colour, each named in the legend; the
    others thin and grey behind them."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.add_subplot()
    for rank, number in enumerate(top):
        values = data.series[number]
        ax.plot(range(1, len(values) + 1), values, color=TOP_COLORS[rank], linewidth=1.8, zorder=2,
                label=top_label(rank, number))
    others = [np.column_stack([np.arange(1, len(v) + 1), v]) for n, v in data.series.items() if n not in top]
    if others:  # after the top trials in the legend, below them in the drawing
        ax.add_collection(LineCollection(others, colors=OTHER_COLOR, linewidths=0.6, alpha=0.6, zorder=1,
                                         label=f"other trials ({len(others)})"))
    ax.autoscale()
    ax.set_xlabel("epoch")
    ax.set_ylabel(data.ylabel)
    ax.set_title(title, fontsize=10)
    figure.legend(loc="outside right upper", fontsize=8)  # curves fill the axes: keep the legend off them
    ax.grid(alpha=0.3)
    return figure


def lr_per_epoch(data: Curves) -> Figure:
    figure = Figure(figsize=(7, 4), layout="constrained")
    ax = figure.add_subplot()
    for number, values in data.series.items():
        ax.plot(range(1, len(values) + 1), values, marker=".", markersize=3, label=f"trial {number}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(f"Learning rate per epoch of the top {len(data.series)} trials", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure


def objective_vs_lr(frame, objective: str) -> Figure:
    optimizers = sorted(frame["optimizer"].dropna().unique())
    width = 3.2 * len(optimizers) + 1
    figure = Figure(figsize=(width, 3.8))  # fixed margins: constrained layout costs ~1 s here
    figure.subplots_adjust(left=0.7 / width, right=1 - 0.15 / width, bottom=0.16, top=0.86, wspace=0.08)
    axes = figure.subplots(1, len(optimizers), sharex=True, sharey=True, squeeze=False)[0]
    markers = {"PRUNED": "x", "COMPLETE": "o"}
    for ax, optimizer in zip(axes, optimizers):
        part = frame[frame["optimizer"] == optimizer]
        counts = []
        for state, marker in markers.items():
            group = part[part["state"] == state]
            if len(group):
                ax.scatter(group["lr"], group["value"], marker=marker, s=18, color=STATE_COLORS[state])
                counts.append(f"{len(group)} {state.lower()}")
        ax.set_xscale("log")
        ax.set_title(f"{optimizer} ({', '.join(counts)})", fontsize=10)
        ax.set_xlabel("lr (peak for one_cycle)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(objective)
    figure.suptitle(f"{objective} against the learning rate, per optimizer", fontsize=10)
    handles = [Line2D([], [], linestyle="", marker=marker, color=STATE_COLORS[state], label=state.lower())
               for state, marker in markers.items() if (frame["state"] == state).any()]
    figure.legend(handles=handles, loc="upper right", ncols=2, fontsize=8, frameon=False)
    return figure
