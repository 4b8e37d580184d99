"""The LR range test's figure: loss against the learning rate (log axis), the
suggestion and the minimum marked, as a PNG and an HTML page."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrsearch.rangetest import RangeTestResult


def curve_paths(result: RangeTestResult, out_dir: str | Path) -> tuple[Path, Path]:
    stem = f"find_lr-{result.optimizer}-b{result.batch_size}"
    return Path(out_dir) / f"{stem}.png", Path(out_dir) / f"{stem}.html"


def save_curve(result: RangeTestResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write the loss-against-LR curve (log axis, suggestion marked) as PNG and as an
    HTML page (plotly.min.js beside it, shared by the pages, so they open offline);
    return both paths."""
    from lrsearch.report._html import write as write_html
    from lrsearch.report._png import write as write_png

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    png, html = curve_paths(result, out_dir)
    lrs = np.asarray(result.lrs)
    losses, smoothed = np.asarray(result.losses), np.asarray(result.smoothed)
    # The blow-up would flatten the rest of the curve: show at most twice the starting loss.
    finite = losses[np.isfinite(losses)]
    ylim = (0.9 * np.nanmin(smoothed), min(1.05 * finite.max(), 2 * smoothed[0]))
    title = (f"LR range test: {result.optimizer}, batch {result.batch_size} - "
             f"suggested lr {result.suggestion:.3g} ({result.rule})")
    write_png(_png_figure(lrs, losses, smoothed, result, ylim, title), png)
    write_html(_html_figure(lrs, losses, smoothed, result, ylim, title), html)
    return png, html


def _png_figure(lrs, losses, smoothed, result: RangeTestResult, ylim, title: str):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(lrs, losses, color="#b0b0b0", linewidth=0.8, label="batch loss")
    ax.plot(lrs, smoothed, color="#1f77b4", linewidth=2, label=f"smoothed (EMA, beta {result.beta:g})")
    ax.axvline(result.suggestion, color="#d62728", linestyle="--",
               label=f"suggestion {result.suggestion:.3g} ({result.rule})")
    ax.axvline(result.min_lr, color="#2ca02c", linestyle=":", label=f"minimum {result.min_lr:.3g}")
    ax.set_xscale("log")
    ax.set_ylim(*ylim)
    ax.set_xlabel("learning rate (log)")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return figure


def _html_figure(lrs, losses, smoothed, result: RangeTestResult, ylim, title: str):
    import plotly.graph_objects as go

    figure = go.Figure([
        go.Scatter(x=lrs, y=losses, name="batch loss", line={"color": "#b0b0b0", "width": 1}),
        go.Scatter(x=lrs, y=smoothed, name=f"smoothed (EMA, beta {result.beta:g})",
                   line={"color": "#1f77b4", "width": 2}),
    ])
    figure.add_vline(x=result.suggestion, line_dash="dash", line_color="#d62728",
                     annotation_text=f"suggestion {result.suggestion:.3g}")
    figure.add_vline(x=result.min_lr, line_dash="dot", line_color="#2ca02c",
                     annotation_text=f"minimum {result.min_lr:.3g}", annotation_position="bottom right")
    figure.update_layout(title=title, xaxis={"type": "log", "title": "learning rate (log)"},
                         yaxis={"title": "training loss", "range": list(ylim)}, template="plotly_white")
    return figure
