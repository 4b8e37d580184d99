"""The report folder of a study: each figure as an interactive HTML page (plotly, the
pages sharing one plotly.min.js in the folder) and a PNG (matplotlib), `trials.csv` and
`summary.md`.

`data` computes what the figures show, `html` and `png` draw it, `summary` writes the
Markdown. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

from lrsearch.report.data import TOP_TRIALS, ReportData, collect

__all__ = ["ReportData", "collect", "write_report", "write_report_for"]


def write_report(storage: str, study_name: str, out_dir: str | Path) -> Path:
    """Write the report of study `study_name` in `storage` (a journal file path or
    Optuna storage URL) to `out_dir`, created if needed; return the folder."""
    import optuna

    from lrsearch.storage import open_storage, redact

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    return write_report_for(study, out_dir, storage_label=redact(storage))


def write_report_for(study, out_dir: str | Path, storage_label: str = "") -> Path:
    """Write the report of a loaded Optuna study to `out_dir`; return the folder."""
    from lrsearch.report import html, png, summary

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = collect(study)
    drawn: dict[str, list[str]] = {}

    def draw(name: str, make_html, make_png) -> None:
        html.write(make_html(), out / f"{name}.html")
        png.write(make_png(), out / f"{name}.png")
        drawn[name] = [f"{name}.html", f"{name}.png"]

    if data.importance is not None:
        draw("importance", lambda: html.importance(data.importance), lambda: png.importance(data.importance))
    if "parallel_coordinates" not in data.missing:
        draw("parallel_coordinates", lambda: html.parallel_coordinates(data.parallel, data.direction),
             lambda: png.parallel_coordinates(data.parallel, data.direction))
    if "history" not in data.missing:
        draw("history", lambda: html.history(data.history), lambda: png.history(data.history))
    if "learning_curves" not in data.missing:
        top = [number for number in data.ranking[:TOP_TRIALS] if number in data.learning_curves.series]
        title = f"Learning curves: {data.objective} per epoch of every trial, the top {len(top)} in colour"
        draw("learning_curves", lambda: html.curves(data.learning_curves, title, top),
             lambda: png.curves(data.learning_curves, title, top))
    if "lr_per_epoch" not in data.missing:
        draw("lr_per_epoch", lambda: html.lr_per_epoch(data.lr_curves), lambda: png.lr_per_epoch(data.lr_curves))
    if "objective_vs_lr" not in data.missing:
        draw("objective_vs_lr", lambda: html.objective_vs_lr(data.objective_vs_lr, data.objective),
             lambda: png.objective_vs_lr(data.objective_vs_lr, data.objective))

    data.trials.to_csv(out / "trials.csv", index=False)
    (out / "summary.md").write_text(summary.render(data, storage_label or "(in memory)", drawn), encoding="utf-8")
    return out
