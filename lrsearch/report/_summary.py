"""The report's summary.md: counts, the top trials, the stored LR range tests,
importances, pruning reasons, and what the report could not show."""

from __future__ import annotations

import math

from lrsearch import results
from lrsearch.lr import PLATEAU_MIN_LR, describe
from lrsearch.report._data import CONFIG_FIELDS, TOP_TRIALS, ReportData, absent


def render(data: ReportData, storage: str, figures: dict[str, list[str]]) -> str:
    """Markdown for `data`; `figures` maps each drawn figure to its files."""
    states = data.trials["state"].value_counts()
    lines = [f"# lrsearch report: {data.study_name}", "",
             f"Storage `{storage}`, objective `{data.objective}` ({data.direction}).", "",
             "Trials: " + (", ".join(f"{n} {s.lower()}" for s, n in states.items()) or "none") + ".", ""]
    lines += _top_trials(data) + _range_tests(data) + _importance(data) + _pruned_and_failed(data)
    lines += ["Epochs count from 1 here and in trials.csv, as Keras prints them; optuna-dashboard's steps "
              "(a trial's intermediate values) count from 0.", ""]
    lines += ["## Figures", ""]
    for name, files in figures.items():
        lines.append(f"- {name.replace('_', ' ')}: " + ", ".join(f"[{f}]({f})" for f in files))
    lines += ["- all trials: [trials.csv](trials.csv)", ""]
    if data.missing:
        lines += ["## Missing", ""]
        lines += [f"- {name.replace('_', ' ')}: {why}" for name, why in data.missing.items()]
        lines.append("")
    return "\n".join(lines)


def _top_trials(data: ReportData) -> list[str]:
    lines = ["## Top trials", ""]
    rows = data.trials.set_index("number").loc[data.ranking[:TOP_TRIALS]].reset_index()
    if rows.empty:
        return lines + ["No complete trial yet, so there is no best configuration to show or export.", ""]
    confirmed = any(number in data.confirmed for number in rows["number"])
    if confirmed:
        lines += [f"Ranked by the mean {data.objective} over fresh seeds where a trial was retrained on them "
                  f"(`lrsearch run --confirm K,N`, `lrsearch confirm`); a trial's own value is one draw.", ""]
    fresh = " on fresh seeds (mean +- std) |" if confirmed else ""
    model = any(rows["model"])
    lines += [f"| trial | {data.objective} |{fresh} best (epoch) | epochs | configuration |" + " model |" * model,
              "|---|---|" + "---|" * confirmed + "---|---|---|" + "---|" * model]
    for _, row in rows.iterrows():
        config = {k: row[k] for k in CONFIG_FIELDS if not absent(row[k])}
        if "patience" in config:
            config["patience"] = int(config["patience"])
        best = "" if absent(row["best_value"]) else f"{row['best_value']:.4g} ({int(row['best_epoch'])})"
        epochs = "" if absent(row["epochs_run"]) else int(row["epochs_run"])
        found = data.confirmed.get(row["number"])
        tie = "= " if row["number"] in data.tied else ""  # beside what ranks the trial
        own = "" if found else tie
        fresh = f" {tie + found.describe() if found else ''} |" if confirmed else ""
        lines.append(f"| {row['number']} | {own}{row['value']:.4g} |{fresh} {best} | {epochs} | {describe(config)} |"
                     + f" {row['model']} |" * model)
    lines.append("")
    if data.tied & set(rows["number"]):
        lines += [results.TIES_LEGEND, ""]
    if data.tie_note:
        lines += [data.tie_note, ""]
    for number, (floor, epochs) in data.at_floor.items():
        lines += [f"Trial {number} spent {floor} of its {epochs} epochs at the plateau schedule's floor (lr "
                  f"{PLATEAU_MIN_LR:g}), where it learns nothing more: fewer epochs, or a larger factor or "
                  f"patience, would reach the same.", ""]
    return lines


def _range_tests(data: ReportData) -> list[str]:
    if not data.range_tests:
        return []
    lines = ["## LR range tests", ""]
    for result in data.range_tests:
        lines.append(f"- {result.describe()}")
        if result.warning():
            lines.append(f"  - {result.warning()}")
    return lines + [""]


def _importance(data: ReportData) -> list[str]:
    lines = ["## Parameter importance", ""]
    if data.importance is None:
        return lines + [f"Not computed: {data.missing['importance']}", ""]
    imp = data.importance
    complete = imp.n_trials - imp.n_pruned
    share = f" ({math.ceil(0.1 * complete)} of {complete} here)" if complete > 1 else ""
    lines += [f"Evaluator: `{imp.evaluator}` over {imp.n_trials} trials ({imp.n_pruned} of them pruned). "
              f"{imp.why}", "", "| parameter | importance |", "|---|---|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in imp.values.items()]
    return lines + ["", f"`lrsearch dashboard` shows these values in its importance panel. A plain `optuna-dashboard` "
                        f"shows Optuna's default instead: PED-ANOVA over the complete trials only, on the raw "
                        f"parameters, which ranks what sets the best 10% of them{share} apart from the rest; with "
                        f"few complete trials that is mostly noise.", ""]


def _pruned_and_failed(data: ReportData) -> list[str]:
    lines = ["## Pruned and failed trials", ""]
    tables = (("pruned: reason", data.pruning_reasons), ("failed: reason", data.fail_reasons),
              ("interrupted (not counted, retried): cause", data.interruptions))
    if not any(counts for _, counts in tables):
        lines += ["None.", ""]
    for title, counts in tables:
        if counts:
            lines += [f"| {title} | trials |", "|---|---|"]
            lines += [f"| {reason} | {n} |" for reason, n in counts.items()]
            lines.append("")
    return lines
