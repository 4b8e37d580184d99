"""Draw a report's data as interactive plotly figures, each written as an HTML page
that loads plotly.min.js from its own folder: one copy for all the pages, which open
offline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lrsearch.report._data import Curves, History, Importance, ParallelCoordinates, absent
from lrsearch.report._style import MISSING_LABEL, OTHER_COLOR, STATE_COLORS, TOP_COLORS, top_label


def write(figure: go.Figure, path: Path) -> Path:
    """Write `figure` to `path`, and plotly.min.js beside it unless it is there."""
    figure.write_html(path, include_plotlyjs="directory", full_html=True, auto_open=False)
    return path


def importance(data: Importance) -> go.Figure:
    names = list(data.values)[::-1]
    figure = go.Figure(go.Bar(x=[data.values[n] for n in names], y=names, orientation="h",
                              hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    figure.update_layout(
        title=f"Parameter importance ({data.evaluator}, {data.n_trials} trials, {data.n_pruned} of them pruned)",
        xaxis_title="importance (sums to 1)", template="plotly_white")
    return figure


def parallel_coordinates(data: ParallelCoordinates, direction: str) -> go.Figure:
    frame = data.frame
    dimensions = [dict(label=data.objective, values=frame[data.objective])]
    for name in data.params:
        dimensions.append(_dimension(name, frame[name], name in data.categorical, name in data.log))
    objective = frame[data.objective]
    line = dict(color=objective, colorscale="Viridis", showscale=True, reversescale=direction == "minimize",
                colorbar=dict(title=data.objective))
    figure = go.Figure(go.Parcoords(dimensions=dimensions, line=line))
    figure.update_layout(title=f"Parallel coordinates ({len(frame)} trials: complete, and pruned at their "
                               f"last value)", template="plotly_white")
    return figure


def _dimension(name: str, values, categorical: bool, log: bool) -> dict:
    present = values.dropna()
    if categorical:
        labels = sorted(present.astype(str).unique())
        codes = {label: i + 1 for i, label in enumerate(labels)}
        encoded = [0 if absent(v) else codes[str(v)] for v in values]
        return dict(label=name, values=encoded, tickvals=[0, *codes.values()], ticktext=[MISSING_LABEL, *labels],
                    range=[0, len(labels)])
    numbers = np.log10(present.astype(float)) if log else present.astype(float)
    low, high = float(numbers.min()), float(numbers.max())
    gap = (high - low) * 0.1 or 0.5
    missing = low - gap
    encoded = [missing if absent(v) else (math.log10(v) if log else float(v)) for v in values]
    ticks = list(np.linspace(low, high, 4)) if high > low else [low]
    text = [f"{10 ** t:.2g}" if log else f"{t:.3g}" for t in ticks]
    return dict(label=f"{name} (log)" if log else name, values=encoded, range=[missing, high],
                tickvals=[missing, *ticks], ticktext=[MISSING_LABEL, *text])


def history(data: History) -> go.Figure:
    frame = data.frame
    figure = go.Figure()
    figure.add_scatter(x=frame["number"], y=frame["value"], mode="markers", name="complete trial")
    figure.add_scatter(x=frame["number"], y=frame["best_so_far"], mode="lines", name="best so far",
                       line=dict(shape="hv"))
    figure.update_layout(title="Optimization history", xaxis_title="trial", yaxis_title=data.objective,
                         template="plotly_white")
    return figure


def curves(data: Curves, title: str, top: list[int]) -> go.Figure:
    """The `top` trials (best first) in colour, each named in the legend; the others thin
    and grey behind them, under one legend entry."""
    others = [number for number in data.series if number not in top]
    figure = go.Figure()
    for i, number in enumerate(others):
        figure.add_scatter(**_per_epoch(data.series[number]), mode="lines",
                           name=f"trial {number} ({data.states[number].lower()})", legendgroup="others",
                           legendgrouptitle_text=f"other trials ({len(others)})", showlegend=i == 0,
                           line=dict(color=OTHER_COLOR, width=0.8), opacity=0.6)
    for rank, number in enumerate(top):
        figure.add_scatter(**_per_epoch(data.series[number]), mode="lines", name=top_label(rank, number),
                           legendgroup="top", legendgrouptitle_text=f"top {len(top)}", legendrank=rank + 1,
                           line=dict(color=TOP_COLORS[rank], width=2.2))
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title=data.ylabel, template="plotly_white")
    return figure


def lr_per_epoch(data: Curves) -> go.Figure:
    figure = go.Figure()
    for number, values in data.series.items():
        figure.add_scatter(**_per_epoch(values), mode="lines+markers",
                           name=f"trial {number}", marker=dict(size=3))
    figure.update_layout(title=f"Learning rate per epoch of the top {len(data.series)} trials",
                         xaxis_title="epoch", yaxis_title="learning rate", template="plotly_white")
    figure.update_yaxes(type="log")
    return figure


def _per_epoch(values) -> dict[str, np.ndarray]:
    """x: the epochs counted from 1, y: the values as float32 (None as a gap); arrays,
    which plotly writes in binary, a third of the text of a list of floats."""
    return {"x": np.arange(1, len(values) + 1), "y": np.asarray(values, dtype="float32")}


def objective_vs_lr(frame, objective: str) -> go.Figure:
    optimizers = sorted(frame["optimizer"].dropna().unique())
    figure = make_subplots(rows=1, cols=len(optimizers), shared_xaxes="all", shared_yaxes=True,
                           subplot_titles=optimizers)
    symbols = {"COMPLETE": "circle", "PRUNED": "x"}
    for col, optimizer in enumerate(optimizers, start=1):
        part = frame[frame["optimizer"] == optimizer]
        for state, group in part.groupby("state"):
            figure.add_scatter(
                x=group["lr"], y=group["value"], mode="markers", row=1, col=col,
                name=state.lower(), legendgroup=state, showlegend=col == 1,
                marker=dict(symbol=symbols.get(state, "circle"), color=STATE_COLORS.get(state)),
                text=[f"trial {n}, {s}" for n, s in zip(group["number"], group["schedule"])],
                hovertemplate="lr %{x:.3g}<br>%{y:.4g}<br>%{text}<extra></extra>")
        figure.update_xaxes(type="log", title_text="lr (peak for one_cycle)", row=1, col=col)
    figure.update_yaxes(title_text=objective, row=1, col=1)
    figure.update_layout(title=f"{objective} against the learning rate, per optimizer", template="plotly_white")
    return figure
