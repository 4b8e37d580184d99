"""What a report shows, as plain data: one function per figure, each returning a
NamedTuple or a DataFrame that `html` and `png` draw and the tests check.

Every function accepts any study (no trials, only pruned or failed ones) and returns
empty data rather than raising; `ReportData.missing` says what could not be computed.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from lrsearch import results
from lrsearch.lr import PLATEAU_MIN_LR, LRConfig, config_field
from lrsearch.rangetest import RangeTestResult
from lrsearch.results import read_range_tests, read_study, read_trial

if TYPE_CHECKING:
    import optuna

#: Fields of LRConfig, in the order the tables show them.
CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(LRConfig))
#: What trials_frame says of a trial's values on fresh seeds.
CONFIRMED_COLUMNS = ("confirmed_mean", "confirmed_std", "confirmed_seeds", "confirmed_diverged")
#: Parameters drawn on a log axis.
LOG_FIELDS = ("lr", "decay", "div")
#: Importance needs this many scored trials.
IMPORTANCE_MIN_TRIALS = 10
#: Where a conditional parameter sits in the trials that lack it: this share of its range
#: below its low end (a categorical one gets the level `IMPORTANCE_UNSET`).
IMPORTANCE_UNSET_OFFSET = 0.1
IMPORTANCE_UNSET = "n/a"
#: How many of the best trials the LR-per-epoch figure and the summary show.
TOP_TRIALS = 5

IMPORTANCE_EVALUATOR = "FanovaImportanceEvaluator"
IMPORTANCE_WHY = (
    "fANOVA fits a random forest to the values of all scored trials and credits each parameter with the "
    "share of their variance it explains: what separates a poor run from a good one. Pruned trials count "
    "with the last value they reported. Log-scale parameters (lr, decay, div) are assessed in log space, "
    "and one_cycle's peak_lr counts as lr. A conditional parameter (momentum, decay, patience, factor, div) "
    "counts as unset in the trials that lack it, so its share includes that of the choice that brings it in."
)


class Importance(NamedTuple):
    """Parameter importances (normalised to sum to 1), best first."""

    values: dict[str, float]
    evaluator: str
    why: str
    n_trials: int
    n_pruned: int


class ParallelCoordinates(NamedTuple):
    """One row per scored trial: `objective`, then one column per parameter that varies.

    `frame` keeps NaN where a parameter does not apply to a trial (conditional parameter).
    """

    frame: pd.DataFrame
    objective: str
    params: list[str]
    categorical: list[str]
    log: list[str]


class History(NamedTuple):
    """Trial number, state, value and the best value so far (complete trials only)."""

    frame: pd.DataFrame
    objective: str
    direction: str


class Curves(NamedTuple):
    """Per-epoch series of several trials: trial number -> values, and each trial's state."""

    series: dict[int, list[float]]
    states: dict[int, str]
    ylabel: str


class ReportData(NamedTuple):
    """Everything a report draws and writes, and what it could not compute."""

    study_name: str
    objective: str
    direction: str
    trials: pd.DataFrame
    ranking: list[int]  # complete trials' numbers, best first (`results.rank`)
    confirmed: dict[int, results.Confirmation]  # trial number -> its values on fresh seeds
    tie_note: str | None  # `results.tie_note`: the tiebreaker chose the best trial
    tied: set[int]  # `results.ties`: ranked trials that tie the one ranked above them
    at_floor: dict[int, tuple[int, int]]  # top trial -> (epochs at the plateau floor, epochs run), if most
    range_tests: list[RangeTestResult]  # stored with the study by `lrsearch find-lr` or --bounds-from-find-lr
    importance: Importance | None
    parallel: ParallelCoordinates
    history: History
    learning_curves: Curves
    lr_curves: Curves
    objective_vs_lr: pd.DataFrame
    pruning_reasons: dict[str, int]
    fail_reasons: dict[str, int]
    interruptions: dict[str, int]
    missing: dict[str, str]


def collect(study: "optuna.Study") -> ReportData:
    """All the data of a report on `study`."""
    trials = study.get_trials(deepcopy=False)
    objective = read_study(study).objective or "objective"
    direction = study.direction.name.lower()
    confirmed = results.confirmations(study)
    frame = trials_frame(trials, objective, direction, confirmed)
    complete = frame[frame["state"] == "COMPLETE"]
    missing: dict[str, str] = {}
    counts = ", ".join(f"{n} {s.lower()}" for s, n in frame["state"].value_counts().items()) or "no trials"

    importance_data = importance(trials, direction)
    if importance_data is None:
        scored = len(_scored(trials))
        missing["importance"] = (f"needs at least {IMPORTANCE_MIN_TRIALS} trials with a value (complete, or "
                                 f"pruned after reporting one) whose parameters vary; this study has {scored} "
                                 f"({counts}).")
    parallel = parallel_coordinates(trials, objective)
    if parallel.frame.empty:
        missing["parallel_coordinates"] = f"no trial reported a finite value ({counts})."
    elif not parallel.params:
        missing["parallel_coordinates"] = "no parameter varies between the scored trials."
    history_data = history(trials, objective, direction)
    if complete.empty:
        missing["history"] = f"no complete trial yet ({counts})."
    curves = learning_curves(trials, objective)
    if not curves.series:
        missing["learning_curves"] = f"no trial reported an intermediate value ({counts})."
    lrs = lr_curves(trials, direction, confirmed, objective)
    if not lrs.series:
        missing["lr_per_epoch"] = "no complete trial recorded its learning rate per epoch."
    versus = objective_vs_lr(trials)
    if versus.empty:
        missing["objective_vs_lr"] = f"no trial reported a finite value ({counts})."
    ranked = results.rank(trials, direction, confirmed, objective)
    return ReportData(
        study_name=study.study_name,
        objective=objective,
        direction=direction,
        trials=frame,
        ranking=[t.number for t in ranked],
        confirmed=confirmed,
        tie_note=results.tie_note(trials, direction, confirmed, objective),
        tied=results.ties(ranked, confirmed),
        at_floor=at_plateau_floor(ranked[:TOP_TRIALS]),
        range_tests=[RangeTestResult.from_json(text) for text in read_range_tests(study)],
        importance=importance_data,
        parallel=parallel,
        history=history_data,
        learning_curves=curves,
        lr_curves=lrs,
        objective_vs_lr=versus,
        pruning_reasons=pruning_reasons(trials),
        fail_reasons=fail_reasons(trials),
        interruptions=interruptions(trials),
        missing=missing,
    )


def trial_config(trial: "optuna.trial.FrozenTrial") -> dict[str, Any]:
    """The trial's full LR configuration as recorded, else from its params."""
    config = read_trial(trial).config
    if config is not None:
        return dict(config)
    params = {config_field(name): value for name, value in trial.params.items()}
    return {k: v for k, v in params.items() if k in CONFIG_FIELDS}


def trials_frame(trials: list["optuna.trial.FrozenTrial"], objective: str, direction: str,
                 confirmed: dict[int, results.Confirmation] | None = None) -> pd.DataFrame:
    """One row per trial: number, state, value, its values on fresh seeds (mean, std, how many seeds, how many
    diverged), the configuration, the model's own parameters (`results.describe_model`) and what the run
    recorded. Epochs (best_epoch, pruned_epoch) count from 1, as Keras prints them; Optuna's steps from 0."""
    rows = []
    for t in trials:
        rec = read_trial(t)
        found = (confirmed or {}).get(t.number)
        row: dict[str, Any] = {"number": t.number, "state": t.state.name, "value": t.value,
                               "confirmed_mean": found and found.mean, "confirmed_std": found and found.std,
                               "confirmed_seeds": found and len(found.values),
                               "confirmed_diverged": found and found.n_diverged}
        config = trial_config(t)
        row.update({name: config.get(name) for name in CONFIG_FIELDS})
        row["model"] = results.describe_model(t.params)
        best = rec.best(objective, direction)
        row.update(best_value=best[0] if best else None, best_epoch=best[1] + 1 if best else None,
                   epochs_run=rec.epochs_run if rec.history else None)
        for key in ("duration_s", "pruned_reason", "pruned_detail", "fail_reason", "device"):
            row[key] = getattr(rec, key)
        row["pruned_epoch"] = None if rec.pruned_epoch is None else rec.pruned_epoch + 1
        row.update(reported=_last_value(t), datetime_start=t.datetime_start, datetime_complete=t.datetime_complete)
        rows.append(row)
    columns = ["number", "state", "value", *CONFIRMED_COLUMNS, *CONFIG_FIELDS, "model", "best_value", "best_epoch",
               "epochs_run", "duration_s", "pruned_reason", "pruned_epoch", "pruned_detail", "fail_reason", "device",
               "reported", "datetime_start", "datetime_complete"]
    counts = ("confirmed_seeds", "confirmed_diverged", "best_epoch", "epochs_run", "pruned_epoch")
    return pd.DataFrame(rows, columns=columns).astype(dict.fromkeys(counts, "Int64"))  # 3 and blank, not 3.0 and NaN


def importance(trials: list["optuna.trial.FrozenTrial"], direction: str) -> Importance | None:
    """fANOVA importances over the scored trials, or None when there are too few or no
    parameter varies."""
    import optuna

    scored = _scored(trials)
    if len(scored) < IMPORTANCE_MIN_TRIALS:
        return None
    # A copy in memory where every scored trial is COMPLETE with its value and has every parameter.
    rows = [_importance_params(trial) for trial, _ in scored]
    spaces = _importance_spaces(rows)
    grid = [{name: row[name][0] if name in row else unset for name, (_, unset) in spaces.items()} for row in rows]
    if not any(len({repr(params[name]) for params in grid}) > 1 for name in spaces):
        return None
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # create_study logs at INFO
    try:
        shadow = optuna.create_study(direction=direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    distributions = {name: dist for name, (dist, _) in spaces.items()}
    for params, (_, value) in zip(grid, scored):
        shadow.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = optuna.importance.get_param_importances(
            shadow, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    n_pruned = sum(trial.state.name == "PRUNED" for trial, _ in scored)
    return Importance(values={k: float(v) for k, v in values.items()}, evaluator=IMPORTANCE_EVALUATOR,
                      why=IMPORTANCE_WHY, n_trials=len(scored), n_pruned=n_pruned)


def _importance_params(trial: "optuna.trial.FrozenTrial") -> dict[str, tuple[Any, Any]]:
    """The trial's parameters as fANOVA sees them: name -> (value, distribution), numbers as
    floats, log-scale ones as log10, named as `LRConfig` fields (`peak_lr` as `lr`)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    params = {}
    for name, dist in trial.distributions.items():
        value = trial.params[name]
        if not isinstance(dist, CategoricalDistribution):
            low, high, value = float(dist.low), float(dist.high), float(value)
            if dist.log:
                low, high, value = math.log10(low), math.log10(high), math.log10(value)
            dist = FloatDistribution(low, high)
        params[config_field(name)] = (value, dist)
    return params


def _importance_spaces(rows: list[dict[str, tuple[Any, Any]]]) -> dict[str, tuple[Any, Any]]:
    """Each parameter's distribution over all `rows` and its value where a row lacks it:
    name -> (distribution, unset value). Parameters whose range is a single value are left out."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    spaces = {}
    names = list(dict.fromkeys(name for row in rows for name in row))
    for name in names:
        dists = [row[name][1] for row in rows if name in row]
        conditional = len(dists) < len(rows)
        if all(isinstance(d, CategoricalDistribution) for d in dists):
            choices = list(dict.fromkeys(c for d in dists for c in d.choices))
            if conditional:
                choices.append(IMPORTANCE_UNSET)
            if len(choices) > 1:
                spaces[name] = (CategoricalDistribution(choices), IMPORTANCE_UNSET)
        elif not any(isinstance(d, CategoricalDistribution) for d in dists):
            low, high = min(d.low for d in dists), max(d.high for d in dists)
            if high > low:
                unset = low - IMPORTANCE_UNSET_OFFSET * (high - low)
                spaces[name] = (FloatDistribution(unset if conditional else low, high), unset)
    return spaces


def parallel_coordinates(trials: list["optuna.trial.FrozenTrial"], objective: str) -> ParallelCoordinates:
    """Scored trials with their objective and the configuration fields that vary."""
    rows = [{"number": t.number, "state": t.state.name, objective: value, **trial_config(t)}
            for t, value in _scored(trials)]
    frame = pd.DataFrame(rows, columns=["number", "state", objective, *CONFIG_FIELDS])
    params = [name for name in CONFIG_FIELDS if frame[name].dropna().astype(str).nunique() > 1]
    categorical = [name for name in params if name in ("optimizer", "schedule", "nesterov")]
    log = [name for name in params if name in LOG_FIELDS]
    frame = frame[["number", "state", objective, *params]].reset_index(drop=True)
    return ParallelCoordinates(frame=frame, objective=objective, params=params, categorical=categorical, log=log)


def history(trials: list["optuna.trial.FrozenTrial"], objective: str, direction: str) -> History:
    """Values of the complete trials in trial order and the best so far."""
    done = [t for t in trials if t.state.name == "COMPLETE" and _finite(t.value)]
    frame = pd.DataFrame({"number": [t.number for t in done], "value": [float(t.value) for t in done]})
    best = frame["value"].cummax() if direction == "maximize" else frame["value"].cummin()
    frame["best_so_far"] = best
    return History(frame=frame, objective=objective, direction=direction)


def learning_curves(trials: list["optuna.trial.FrozenTrial"], objective: str) -> Curves:
    """The objective each trial reported per epoch (its intermediate values)."""
    series, states = {}, {}
    for t in trials:
        if t.intermediate_values:
            series[t.number] = [float(t.intermediate_values[step]) for step in sorted(t.intermediate_values)]
            states[t.number] = t.state.name
    return Curves(series=series, states=states, ylabel=objective)


def lr_curves(trials: list["optuna.trial.FrozenTrial"], direction: str,
              confirmed: dict[int, results.Confirmation] | None = None, objective: str | None = None,
              top: int = TOP_TRIALS) -> Curves:
    """The learning rate per epoch of the `top` best complete trials (LearningRateMonitor)."""
    series, states = {}, {}
    for t in results.rank(trials, direction, confirmed or {}, objective)[:top]:
        lrs = read_trial(t).history.get("lr")
        if lrs:
            series[t.number] = [math.nan if v is None else float(v) for v in lrs]
            states[t.number] = t.state.name
    return Curves(series=series, states=states, ylabel="learning rate")


def objective_vs_lr(trials: list["optuna.trial.FrozenTrial"]) -> pd.DataFrame:
    """Each scored trial's initial (or peak) learning rate and value, with its optimizer."""
    rows = []
    for t, value in _scored(trials):
        config = trial_config(t)
        if _finite(config.get("lr")):
            rows.append({"number": t.number, "state": t.state.name, "optimizer": config.get("optimizer"),
                         "schedule": config.get("schedule"), "lr": float(config["lr"]), "value": value})
    return pd.DataFrame(rows, columns=["number", "state", "optimizer", "schedule", "lr", "value"])


def at_plateau_floor(trials: list["optuna.trial.FrozenTrial"]) -> dict[int, tuple[int, int]]:
    """The trials of the plateau schedule whose learning rate sat at ReduceLROnPlateau's
    floor for most of their epochs: trial number -> (epochs there, epochs run). They learnt
    nothing more there, and a shorter run (or a larger factor) would do."""
    found = {}
    for t in trials:  # another schedule's rate at 1e-7 is where it started: no floor it reached
        lrs = [v for v in read_trial(t).history.get("lr", []) if _finite(v)]
        floor = sum(v <= PLATEAU_MIN_LR * 1.0001 for v in lrs)
        if lrs and floor > len(lrs) / 2 and trial_config(t).get("schedule") == "plateau":
            found[t.number] = (floor, len(lrs))
    return found


def pruning_reasons(trials: list["optuna.trial.FrozenTrial"]) -> dict[str, int]:
    """Pruned trials counted by reason (diverged, stalled, pruner)."""
    return _counted(read_trial(t).pruned_reason for t in trials if t.state.name == "PRUNED")


def fail_reasons(trials: list["optuna.trial.FrozenTrial"]) -> dict[str, int]:
    """Failed trials counted by `fail_reason`, but those interrupted (not counted)."""
    return _counted(read_trial(t).fail_reason for t in trials if t.state.name == "FAIL" and not results.interruption(t))


def interruptions(trials: list["optuna.trial.FrozenTrial"]) -> dict[str, int]:
    """Interrupted trials (failed from outside, not counted, retried) counted by cause."""
    return _counted(filter(None, map(results.interruption, trials)))


def _counted(values) -> dict[str, int]:
    return dict(collections.Counter(values).most_common())  # most first


def absent(value: Any) -> bool:
    """True for a table cell with no value: None or NaN (a parameter the trial does not use)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _scored(trials: list["optuna.trial.FrozenTrial"]) -> list[tuple["optuna.trial.FrozenTrial", float]]:
    """Complete trials with their value and pruned trials with the last value they reported."""
    scored = []
    for t in trials:
        if t.state.name == "COMPLETE" and _finite(t.value):
            scored.append((t, float(t.value)))
        elif t.state.name == "PRUNED":
            value = _last_value(t)
            if value is not None:
                scored.append((t, value))
    return scored


def _last_value(trial: "optuna.trial.FrozenTrial") -> float | None:
    finite = [trial.intermediate_values[s] for s in sorted(trial.intermediate_values)
              if _finite(trial.intermediate_values[s])]
    return float(finite[-1]) if finite else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
