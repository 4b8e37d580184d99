"""Notes that explain a study in optuna-dashboard.

- The study's note says what the study is: its study file, objective and direction,
  epochs, batch size and seed, and how to export the best.
- Each finished trial's note gives its configuration in words, its value and best epoch,
  why it was pruned (reason, epoch, detail) or failed, its duration, and its learning rate
  per epoch, in words and as a chart.
- The chart is an SVG artifact of the study (Optuna freezes a finished trial, so it cannot
  take artifacts of its own), kept in `artifact_dir(storage)` and shown in the trial's
  note wherever that folder is served: by `lrsearch dashboard`, or by
  `optuna-dashboard STORAGE --artifact-dir FOLDER`.

Notes live in the study's system attributes in optuna-dashboard's format (its public
`save_note` takes a running trial only, so a finished trial's note goes through the
function its own note editor uses). A study or trial that has a note, ours or one typed
in the dashboard, is left as it is, so writing them again costs one read: `lrsearch run`
and `lrsearch confirm` write them as trials finish and at the end, `lrsearch dashboard`
before it serves. Studies that lrsearch did not make are left alone.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

from lrsearch import internals, results
from lrsearch.errors import counted
from lrsearch.lr import describe
from lrsearch.storage import DEFAULT_STORAGE, is_url, redact

FINISHED = ("COMPLETE", "PRUNED", "FAIL")
#: What each pruning reason means, in words.
REASONS = {
    results.DIVERGED: "its loss turned NaN or exploded",
    results.STALLED: "neither its objective nor its loss moved in the first epochs",
    results.BY_PRUNER: "the study's Optuna pruner (Settings.pruner) ranked it below its peers",
    results.BY_STUDY_FILE: "the study file's own code (build_model or a callback) raised optuna.TrialPruned",
}
STEPS = "_Epochs count from 1, as Keras prints them; the dashboard's step axis counts from 0 (step = epoch - 1)._"
_ARTIFACT_PREFIX = "artifacts:"  # Optuna's system attribute of an uploaded artifact
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~#])")


def artifact_dir(storage: str) -> Path:
    """Where the charts of `storage` (a journal file path or URL) go: beside a journal file
    or SQLite database (`lrsearch.journal.artifacts`), else `lrsearch-artifacts` here."""
    path = storage if not is_url(storage) else storage.partition("?")[0].removeprefix("sqlite:///")
    if is_url(path) or path in ("", ":memory:"):
        return Path("lrsearch-artifacts")
    return Path(f"{path}.artifacts")


def artifact_store(storage: str):
    """The Optuna artifact store of `storage`'s charts, its folder made."""
    from optuna.artifacts import FileSystemArtifactStore

    folder = artifact_dir(storage)
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(folder)


def annotate(study, storage: str, trials: list | None = None) -> int:
    """Write the notes `study` lacks: its own, and those of `trials` (default: every
    finished trial; unfinished ones are skipped); how many trial notes were written."""
    shared = results.read_study(study)
    if shared.objective is None:  # not a study of lrsearch's
        return 0
    attrs = internals.storage_of(study).get_study_system_attrs(internals.study_id(study))
    if internals.note_key(None) not in attrs:
        internals.save_note(study, None, study_note(study, shared, storage))
    todo = [t for t in (_finished(study) if trials is None else trials)
            if t.state.name in FINISHED and internals.note_key(internals.trial_id(t)) not in attrs]
    if not todo:
        return 0
    charts = {meta["filename"]: meta["artifact_id"] for meta in
              (json.loads(v) for k, v in attrs.items() if k.startswith(_ARTIFACT_PREFIX))}
    store = artifact_store(storage)
    for trial in todo:
        rec = results.read_trial(trial, shared)
        chart = _chart(study, store, rec, shared, charts) if rec.history.get("lr") else None
        internals.save_note(study, trial, trial_note(rec, shared, chart))
    return len(todo)


class LiveNotes:
    """`annotate` for trials as they finish, reading the storage at most once per
    `interval` seconds (and the study's attributes only when a trial has finished)."""

    def __init__(self, study, storage: str, interval: float = 2.0) -> None:
        self.study, self.storage, self.interval = study, storage, interval
        self._seen: set[int] = set()  # finished trials' ids
        self._last = -math.inf

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        fresh = [t for t in _finished(self.study) if internals.trial_id(t) not in self._seen]
        if fresh:
            annotate(self.study, self.storage, fresh)
            self._seen.update(internals.trial_id(t) for t in fresh)


def study_note(study, shared: results.StudyRecord, storage: str) -> str:
    """The study's note (markdown)."""
    objective, seed = shared.objective, shared.seed
    made = f" {shared.lrsearch_version}" if shared.lrsearch_version else ""
    lines = [f"## {_text(study.study_name)}", "",
             f"A search by lrsearch{made} of a Keras model's learning rate, optimizer and schedule.", ""]
    if shared.study_file:
        lines.append(f"- **Study file**: `{shared.study_file}` (its data, model and settings)")
    lines.append(f"- **Objective**: {_text(objective)} ({shared.direction}), taken at a trial's last epoch")
    lines.append(f"- **Training**: {counted(shared.epochs, 'epoch')} per trial, batch size {shared.batch_size}"
                 + (f", seed {seed} (trial k trains on seed {seed} + k)" if seed is not None else ""))
    lines.append("- **Trials**: each finished trial's note gives its configuration, value and best epoch, why it "
                 "was pruned or failed, its duration, and its learning rate per epoch (with a chart)")
    lines.append(f"- **Export the best**: `{_command('export', study, shared, storage)} -o best.json` (the best by "
                 f"its mean over fresh seeds where the run confirmed its top trials); "
                 f"`{_command('report', study, shared, storage)}` writes the report")
    return "\n".join([*lines, "", STEPS])


def trial_note(rec: results.TrialRecord, shared: results.StudyRecord, chart: str | None = None) -> str:
    """The note (markdown) of a finished trial; `chart`: the URL path of its LR chart."""
    objective, direction = shared.objective or "value", shared.direction or "maximize"
    state = {"COMPLETE": "complete", "PRUNED": f"pruned ({rec.pruned_reason})",
             "FAIL": "interrupted (not counted)" if rec.interrupted else "failed"}[rec.state]
    lines = [f"### Trial {rec.number}: {state}", ""]
    if rec.config:
        lines.append(f"- **Configuration**: `{describe(rec.config)}`")
    if rec.state == "COMPLETE" and rec.value is not None:
        lines.append(f"- **Value**: {_text(objective)} {rec.value:.4g} at its last epoch")
    best = rec.best(objective, direction)
    if best is not None:
        lines.append(f"- **Best {_text(objective)}**: {best[0]:.4g} at epoch {_epoch(best[1])}")
    if rec.state == "PRUNED":
        at = f" at epoch {_epoch(rec.pruned_epoch)}" if rec.pruned_epoch is not None else ""
        detail = f" ({_text(rec.pruned_detail)})" if rec.pruned_detail else ""
        lines.append(f"- **Pruned{at}**, reason *{rec.pruned_reason}*: {REASONS.get(rec.pruned_reason, '')}{detail}")
    if rec.state == "FAIL":
        lines.append(f"- **{'Interrupted' if rec.interrupted else 'Failed'}**: {_text(rec.fail_reason)}")
    lines.append(f"- **Ran** {rec.epochs_run} of {shared.epochs or '?'} epochs{_duration(rec)}"
                 + (f", seed {rec.seed}" if rec.seed is not None else ""))
    lrs = rec.history.get("lr")
    if lrs:
        lines.append(f"- **Learning rate per epoch**: {lr_in_words(lrs)}")
    if chart:
        lines += ["", f"![Learning rate per epoch (lrsearch dashboard shows the chart)]({chart})"]
    return "\n".join([*lines, "", STEPS])


def lr_in_words(lrs: list) -> str:
    """A learning rate per epoch as its runs of equal values (`0.01 for epochs 1-12,
    0.005 for 13-20`) when there are few, else where it starts and ends and its extremes."""
    runs: list[list] = []  # [value, first epoch, last epoch], counted from 1
    for epoch, value in enumerate(lrs, 1):
        if runs and runs[-1][0] == value:
            runs[-1][2] = epoch
        else:
            runs.append([value, epoch, epoch])
    if len(runs) == 1 or len(runs) <= min(4, len(lrs) // 2):
        return ", ".join(f"{_lr(value)} for epoch{'s' if last > first else ''} {first}"
                         + (f"-{last}" if last > first else "") for value, first, last in runs)
    words = f"from {_lr(lrs[0])} at epoch 1 to {_lr(lrs[-1])} at epoch {len(lrs)}"
    finite = [(value, epoch) for epoch, value in enumerate(lrs, 1) if value is not None]
    if finite:
        for name, (value, epoch) in (("highest", max(finite)), ("lowest", min(finite))):
            if epoch not in (1, len(lrs)):
                words += f", {name} {_lr(value)} at epoch {epoch}"
    return words


def _chart(study, store, rec: results.TrialRecord, shared: results.StudyRecord, charts: dict[str, str]) -> str:
    """The URL path of `rec`'s LR chart, drawn and uploaded unless `charts` (file name ->
    artifact id, the study's) has it from an earlier, interrupted pass."""
    from optuna.artifacts import upload_artifact
    from optuna_dashboard.artifact import get_artifact_path

    name = f"lr-trial-{rec.number}.svg"
    if name not in charts:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder, name)
            path.write_text(lr_chart(rec, shared))
            charts[name] = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
    return get_artifact_path(study, charts[name])


def lr_chart(rec: results.TrialRecord, shared: results.StudyRecord) -> str:
    """An SVG chart of `rec`'s learning rate per epoch (log scale, left axis) and its
    objective (grey, right axis); written by hand, in microseconds, without matplotlib."""
    lrs, objective = rec.history["lr"], shared.objective or "value"
    width, height, left, right, top, bottom = 600, 240, 56, 64, 38, 34
    n = len(lrs)

    def x(epoch: int) -> float:
        return left + (width - left - right) * ((epoch - 1) / (n - 1) if n > 1 else 0.5)

    def y(share: float) -> float:
        return top + (height - top - bottom) * (1 - share)

    logs = [math.log10(v) for v in lrs if v is not None and v > 0]
    low, high = math.floor(min(logs, default=-3)), math.ceil(max(logs, default=-2))
    high = max(high, low + 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11"><rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="15" font-size="12">{escape(_chart_title(rec))}</text>']
    every = math.ceil((high - low) / 6)
    for decade in range(low, high + 1, every):
        at = y((decade - low) / (high - low))
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{at:.1f}" y2="{at:.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{left - 4}" y="{at + 4:.1f}" text-anchor="end">1e{decade}</text>')
    step = next(s * 10 ** k for k in range(6) for s in (1, 2, 5) if s * 10 ** k >= n / 6)
    for epoch in sorted({1, *range(step, n + 1, step)}):
        out.append(f'<text x="{x(epoch):.1f}" y="{height - bottom + 14}" text-anchor="middle">{epoch}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 4}" text-anchor="middle">epoch (from 1)</text>'
               f'<text x="{left}" y="{top - 6}" fill="#1f77b4">learning rate (log scale)</text>'
               f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
               f'fill="none" stroke="#888"/>')
    values = [v for v in rec.history.get(objective, []) if v is not None]
    if values:
        pad = (max(values) - min(values) or 1.0) / 12  # keeps the line off the frame
        lo, span = min(values) - pad, max(values) - min(values) + 2 * pad
        out.append(_path([None if v is None else y((v - lo) / span) for v in rec.history[objective]], x, "#999"))
        out += [f'<text x="{width - right + 4}" y="{y((value - lo) / span) + 4:.1f}" fill="#777">{value:.3g}</text>'
                for value in (min(values), max(values))]
        out.append(f'<text x="{width - right}" y="{top - 6}" text-anchor="end" fill="#777">'
                   f'{escape(objective)}</text>')
    out.append(_path([None if v is None or v <= 0 else y((math.log10(v) - low) / (high - low)) for v in lrs], x,
                     "#1f77b4", width=2))
    if rec.state == "PRUNED" and rec.pruned_epoch is not None:
        at = x(rec.pruned_epoch + 1)
        out.append(f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{top}" y2="{height - bottom}" stroke="#d62728" '
                   f'stroke-dasharray="4 3"/>')
    return "".join([*out, "</svg>"])


def _chart_title(rec: results.TrialRecord) -> str:
    title = f"Trial {rec.number}: learning rate per epoch"
    if rec.state == "PRUNED" and rec.pruned_epoch is not None:
        title += f", pruned at epoch {rec.pruned_epoch + 1} ({rec.pruned_reason})"
    return title


def _path(ys: list, x, color: str, width: float = 1) -> str:
    """An SVG path through (x(epoch), ys[epoch - 1]), broken where a value is None."""
    points, move = [], True
    for epoch, at in enumerate(ys, 1):
        if at is None:
            move = True
            continue
        points.append(f"{'M' if move else 'L'}{x(epoch):.1f},{at:.1f}")
        move = False
    return f'<path d="{" ".join(points)}" fill="none" stroke="{color}" stroke-width="{width}"/>'


def _finished(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=tuple(TrialState[name] for name in FINISHED))


def _command(name: str, study, shared: results.StudyRecord, storage: str) -> str:
    """`lrsearch NAME` for this study, as the run that made it would type it."""
    words = ["lrsearch", name]
    if shared.study_file:
        words.append(shared.study_file)
    if storage != DEFAULT_STORAGE:
        words += ["--storage", redact(storage)]
    if not shared.study_file or Path(shared.study_file).stem != study.study_name:
        words += ["--study-name", study.study_name]
    return shlex.join(words)


def _epoch(index: int) -> str:
    """A 0-based epoch as people count it, with the dashboard's step beside it."""
    return f"{index + 1} (step {index})"


def _duration(rec: results.TrialRecord) -> str:
    seconds = rec.duration_s
    if seconds is None and rec.datetime_start and rec.datetime_complete:
        seconds = (rec.datetime_complete - rec.datetime_start).total_seconds()
    return "" if seconds is None else f" in {seconds:.1f} s"


def _lr(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _text(text) -> str:
    """`text` with markdown's special characters escaped."""
    return _MARKDOWN.sub(r"\\\1", str(text))
