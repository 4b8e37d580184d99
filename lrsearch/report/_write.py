"""The report folder of a study: each figure as an interactive HTML page (plotly, the
pages sharing one plotly.min.js in the folder) and a PNG (matplotlib), `trials.csv` and
`summary.md`: `write_report` for a stored study (`lrsearch report`), `write_report_for` for
a loaded one.

`_data` computes what the figures show, `_html` and `_png` draw it, `_summary` writes the
Markdown. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

from lrsearch.errors import writing
from lrsearch.report._data import TOP_TRIALS, ReportData, collect
from lrsearch.report._folder import report_folder
from lrsearch.storage import DEFAULT_STORAGE

__all__ = ["ReportData", "collect", "write_report", "write_report_for"]


def write_report(storage: str = DEFAULT_STORAGE, study_name: str | None = None, out_dir: str | Path | None = None,
                 *, study_file: "str | os.PathLike | None" = None) -> Path:
    """`lrsearch report`: write the report of study `study_name` (default: the study file's
    name) in `storage` (a journal file path or Optuna storage URL) to `out_dir` (default:
    ./lrsearch-report-STUDY_NAME), created if needed; return the folder. The study file is
    not imported; UsageError if the study is absent."""
    from lrsearch.storage import redact
    from lrsearch.study import resolve_study

    ref = resolve_study(study_file, storage=storage, study_name=study_name, load=False)
    return write_report_for(ref.open(), report_folder(ref.study_name, out_dir), storage_label=redact(ref.storage))


def write_report_for(study, out_dir: str | Path, storage_label: str = "") -> Path:
    """Write the report of a loaded Optuna study to `out_dir`; return the folder.
    WriteError if a file cannot be written (no space left, no permission)."""
    from lrsearch.report import _html as html
    from lrsearch.report import _png as png
    from lrsearch.report import _summary as summary

    out = Path(out_dir)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    data = collect(study)
    drawn: dict[str, list[str]] = {}

    def draw(name: str, make_html, make_png) -> None:
        drawn[name] = [f"{name}.html", f"{name}.png"]
        for file, write, make in zip(drawn[name], (html.write, png.write), (make_html, make_png)):
            figure = make()
            with writing(out / file):
                write(figure, out / file)

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

    with writing(out / "trials.csv"):
        data.trials.to_csv(out / "trials.csv", index=False)
    text = summary.render(data, storage_label or "(in memory)", drawn)
    with writing(out / "summary.md"):
        (out / "summary.md").write_text(text, encoding="utf-8")
    return out
