"""A best that holds over seeds: retrain a study's top trials on fresh seeds and rank them
by their mean.

A trial's value is one training on one seed, and on small data the spread over seeds can
be as large as the gaps between the top trials, so the raw best is often the luckiest.
`lrsearch run` (and `lrsearch confirm`) retrain the top K complete trials on the same N
fresh seeds, so that their comparison is paired, record each value with the study
(`lrsearch.results._record`), and everything that names a best (the summary, the report, `lrsearch
export`) ranks by the confirmed mean. Unless K and N are given, `price` chooses them so that
the confirmation costs at most `PRICED_SHARE` of the search's training time, or skips it.
This module prices, plans and ranks, and keeps the claims
(study user attributes `confirm-claim:NUMBER:SEED`) by which runs sharing a study train each
training once between them; the workers train.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Iterable

from lrsearch.lr import PARAMS
from lrsearch.results import _record as record

DEFAULT_TOP = 3
DEFAULT_SEEDS = 3
#: The most a confirmation costs, unless K and N are given: this share of the study's training seconds.
PRICED_SHARE = 0.2
#: The (K, N) a priced confirmation chooses from, best first: the first whose trainings fit.
#: Seeds before trials (a mean over three seeds ranks two trials more surely than over two),
#: and never more than the explicit default (3, 3), the one measured against the raw top trial.
PRICED_CHOICES = ((DEFAULT_TOP, DEFAULT_SEEDS), (2, 3), (2, 2), (2, 1))
#: Fresh seeds start here above the study's seed, far from those of its trials (seed + number).
SEED_OFFSET = 1_000_000


@dataclasses.dataclass(frozen=True)
class Task:
    """One training of a confirmation: trial `number`'s configuration on `seed`."""

    number: int
    seed: int
    config: dict
    params: dict


@dataclasses.dataclass(frozen=True)
class Confirmation:
    """A trial's values on fresh seeds: seed -> objective at the last epoch, None where it
    diverged; and seed -> the seconds its training took, where measured."""

    values: dict[int, float | None]
    seconds: dict[int, float] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def finite(self) -> list[float]:
        return [v for v in self.values.values() if v is not None and math.isfinite(v)]

    @property
    def n_diverged(self) -> int:
        return len(self.values) - len(self.finite)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.finite) if self.finite else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over the finite values (None below two)."""
        return statistics.stdev(self.finite) if len(self.finite) > 1 else None

    def describe(self) -> str:
        """`0.8231 +- 0.0040 (3 seeds)`, with the seeds that diverged named."""
        if self.mean is None:
            return f"diverged on all {len(self.values)} seeds"
        spread = "" if self.std is None else f" +- {self.std:.2g}"
        diverged = f", diverged on {self.n_diverged}" if self.n_diverged else ""
        return f"{self.mean:.4g}{spread} ({len(self.values)} seed{'s' * (len(self.values) != 1)}{diverged})"


def fresh_seeds(study_seed: int | None, n: int) -> list[int]:
    """The `n` seeds every confirmed trial trains on, the same for all of them."""
    return [(study_seed or 0) + SEED_OFFSET + i for i in range(n)]


def confirmations(study) -> dict[int, Confirmation]:
    """The confirmations recorded with `study`, by trial number."""
    seconds = record.read_confirmation_seconds(study)
    return {number: Confirmation(values, seconds.get(number, {}))
            for number, values in record.read_confirmations(study).items() if values}


def plan(study, top: int | None = None, seeds: int | None = None) -> list[Task]:
    """The trainings still missing for the `top` best complete trials (by their own value)
    on `seeds` fresh seeds (neither given: as `price` decides); those recorded already are
    skipped, so a stopped confirmation resumes."""
    if top is None or seeds is None:
        pricing = price(study)
        top, seeds = pricing.top, pricing.seeds
    shared = record.read_study(study)
    done = record.read_confirmations(study)
    best = rank(study.get_trials(deepcopy=False), study.direction.name.lower(), {}, shared.objective)[:top]
    tasks = []
    for seed in fresh_seeds(shared.seed, seeds):
        for trial in best:
            config = record.read_trial(trial, shared).config
            if config is not None and seed not in done.get(trial.number, {}):
                tasks.append(Task(trial.number, seed, config, dict(trial.params)))
    return tasks


@dataclasses.dataclass(frozen=True)
class Pricing:
    """A confirmation priced to its study: the `top` trials on `seeds` fresh seeds (0, 0:
    skipped), the first of `PRICED_CHOICES` whose trainings, with those recorded already,
    number at most `budget`: `PRICED_SHARE` of `search_s` (the study's training seconds)
    over `training_s` (a full training's), both from `training_seconds`; `recorded` of them
    trained already."""

    top: int
    seeds: int
    budget: int
    search_s: float
    training_s: float
    recorded: int = 0

    def note(self) -> str | None:
        """One line on what the pricing chose and why; None without a complete trial to price by."""
        if not self.training_s:
            return None
        share = f"{PRICED_SHARE:.0%}"
        basis = (f"a full training takes {self.training_s:.3g} s, {share} of the study's {_seconds(self.search_s)} s "
                 f"of training is {_seconds(PRICED_SHARE * self.search_s)} s")
        if not self.top and self.recorded:
            return (f"confirmation skipped: the {self.recorded} training(s) recorded already spend its budget of "
                    f"{share} of the search ({basis}: {self.budget} trainings), so the top trials found since are "
                    f"not confirmed; confirm them anyway with --confirm K,N (confirm=(K, N)) or `lrsearch confirm`.")
        if not self.top:
            return (f"confirmation skipped: it would cost more than {share} of the search ({basis}); "
                    f"confirm anyway with --confirm K,N (confirm=(K, N)) or `lrsearch confirm`.")
        return (f"confirming the top {self.top} trials on {self.seeds} fresh seed(s), priced to at most {share} "
                f"of the search ({basis}: {self.budget} trainings, those recorded already included).")


def training_seconds(trials: Iterable[Any]) -> tuple[float, float]:
    """(the search's training seconds: its finished trials' `_trial_seconds`, seconds of a full
    training: its complete trials' median, as a worker's first trials also trace its model;
    0.0 where none). Trials failed as interrupted are left out: their end is when a later
    run found them. Takes Optuna FrozenTrials or `record.TrialRecord`s."""
    spans = [(_state(t), seconds) for t in trials
             if _state(t) in ("COMPLETE", "PRUNED", "FAIL") and not _interrupted(t)
             and (seconds := _trial_seconds(t)) is not None]
    full = [seconds for state, seconds in spans if state == "COMPLETE"]
    return sum(seconds for _, seconds in spans), statistics.median(full) if full else 0.0


def _trial_seconds(trial) -> float | None:
    """A trial's seconds as its worker timed them (`duration_s`), else from Optuna's start to
    its end, which also counts a storage outage that held up its last record."""
    timed = trial.duration_s if isinstance(trial, record.TrialRecord) else trial.user_attrs.get("duration_s")
    if isinstance(timed, (int, float)) and math.isfinite(timed):
        return float(timed)
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def price(study) -> Pricing:
    """The confirmation of `study` that costs at most `PRICED_SHARE` of its training time,
    counting the trainings recorded already (by earlier runs, or runs sharing the study): the
    study's whole search, not one run's, so that every run of it prices alike and a stopped
    confirmation resumes with the same plan."""
    search_s, training_s = training_seconds(study.get_trials(deepcopy=False))
    budget = math.floor(PRICED_SHARE * search_s / training_s + 1e-9) if training_s > 0 else 0
    recorded = sum(len(values) for values in record.read_confirmations(study).values())
    for top, seeds in PRICED_CHOICES:
        if recorded + len(plan(study, top, seeds)) <= budget:
            return Pricing(top, seeds, budget, search_s, training_s, recorded)
    return Pricing(0, 0, budget, search_s, training_s, recorded)


@dataclasses.dataclass(frozen=True)
class Claim:
    """Who trains a confirmation training: the process of a run (its worker tag, host:pid),
    since `at` (Unix time, renewed while it trains), so that runs sharing a study train it
    once between them."""

    by: str
    at: float


_CLAIM_PREFIX = "confirm-claim:"


def read_claims(study) -> dict[tuple[int, int], Claim]:
    """The claims on confirmation trainings, by (trial number, seed); released ones are left out."""
    found = {}
    for key, value in study.user_attrs.items():
        number, _, seed = key[len(_CLAIM_PREFIX):].partition(":")
        if key.startswith(_CLAIM_PREFIX) and isinstance(value, dict) and value.get("by"):
            found[int(number), int(seed)] = Claim(value["by"], float(value["at"]))
    return found


def write_claim(study, task: Task, by: str | None, at: float = 0.0) -> None:
    """Claim `task` for the process tagged `by` at `at`; None releases it."""
    study.set_user_attr(f"{_CLAIM_PREFIX}{task.number}:{task.seed}", {"by": by, "at": at} if by else None)


def tiebreaker(objective: str) -> str | None:
    """What ranks trials whose objective ties: the loss of the objective's split (lower
    first); None when the objective is that loss."""
    loss = "val_loss" if objective.startswith("val_") else "loss"
    return None if objective == loss else loss


def rank(trials: Iterable[Any], direction: str, confirmed: dict[int, Confirmation],
         objective: str | None = None) -> list[Any]:
    """Complete trials with a finite value, best first: the confirmed ones by their mean,
    then the others by their value, then those that diverged on some fresh seed; ties go
    to the lower `tiebreaker(objective)` at the trial's last epoch, then the lower number.
    Takes Optuna FrozenTrials or `record.TrialRecord`s."""
    sign = -1.0 if direction == "maximize" else 1.0
    second = tiebreaker(objective) if objective else None

    def key(trial) -> tuple:
        shown = _ranked_value(trial, confirmed)
        return *_standing(trial, confirmed), math.inf if shown is None else sign * shown, _last(trial, second), \
            trial.number

    done = [t for t in trials if _state(t) == "COMPLETE" and _finite(t.value)]
    return sorted(done, key=key)


def tie_note(trials: Iterable[Any], direction: str, confirmed: dict[int, Confirmation], objective: str) -> str | None:
    """A line saying that the tiebreaker chose the best trial, if it did."""
    ranked = rank(trials, direction, confirmed, objective)
    if len(ranked) < 2 or tiebreaker(objective) is None:
        return None

    def score(trial) -> tuple:
        found = confirmed.get(trial.number)
        return ("confirmed", found.mean, found.n_diverged) if found else ("own seed", trial.value)

    tied = [t for t in ranked if score(t) == score(ranked[0])]
    if len(tied) < 2:
        return None
    second = tiebreaker(objective)
    values = ", ".join(f"{t.number}: {_last(t, second):.4g}" for t in tied)
    return (f"Trials {', '.join(str(t.number) for t in tied)} tie on {objective}; the lower {second} at the last "
            f"epoch ranks trial {tied[0].number} first ({values}).")


#: What the tables' "=" beside the value that ranks a trial says (`ties`).
TIES_LEGEND = ("= ties the trial above: the same value to 4 significant digits, or means on fresh seeds closer "
               "than the standard error of their difference; their order says little.")


def ties(ranked: list[Any], confirmed: dict[int, Confirmation]) -> set[int]:
    """The trials of `ranked` (best first, as `rank` orders them) that tie the trial just
    above them: ranked by the same measure (their own value, or their mean over fresh
    seeds) and equal to the 4 significant digits the tables show, or, both confirmed,
    with means closer than the standard error of their difference."""
    tied = set()
    for above, below in zip(ranked, ranked[1:]):
        if _standing(above, confirmed) != _standing(below, confirmed):
            continue
        values = _ranked_value(above, confirmed), _ranked_value(below, confirmed)
        noise = [confirmed[t.number] for t in (above, below) if t.number in confirmed]
        errors = [c.std ** 2 / len(c.finite) for c in noise if c.std is not None]
        if None in values:
            same = values[0] is values[1]
        else:
            same = f"{values[0]:.4g}" == f"{values[1]:.4g}" or (
                len(errors) == 2 and abs(values[0] - values[1]) <= math.sqrt(sum(errors)))
        if same:
            tied.add(below.number)
    return tied


def model_params(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's own `build_model` parameters: those of its `params` outside the learning-rate space."""
    return {name: value for name, value in params.items() if name not in ("optimizer", "schedule", *PARAMS)}


def describe_model(params: dict[str, Any]) -> str:
    """`units=32, dropout=0.25`: a trial's `model_params` as the tables show them ('' if none)."""
    return ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                     for name, value in model_params(params).items())


def verdict(trials: Iterable[Any], direction: str, confirmed: dict[int, Confirmation],
            objective: str | None = None) -> str | None:
    """One line on what confirmation changed and cost: which trial is the pick, how the
    raw top trial fared on fresh seeds, and `_cost`; None if no trial is confirmed."""
    trials = list(trials)
    ranked = rank(trials, direction, confirmed, objective)
    if not ranked or ranked[0].number not in confirmed:
        return None
    pick, raw = ranked[0], rank(trials, direction, {}, objective)[0]
    line = f"The pick is trial {pick.number}: {confirmed[pick.number].describe()} on fresh seeds"
    cost = _cost(trials, confirmed)
    if raw.number == pick.number:
        return line + f" (it was also the top trial, at {raw.value:.4g} on its own seed). {cost}"
    found = confirmed.get(raw.number)
    fared = f"scored {found.describe()} on fresh seeds" if found else "was not confirmed"
    return line + f"; the top trial by its own seed, {raw.number} ({raw.value:.4g}), {fared}. {cost}"


def _cost(trials: Iterable[Any], confirmed: dict[int, Confirmation]) -> str:
    """What the recorded confirmation cost: its trainings, their measured seconds (a full
    training's, `training_seconds`, for those recorded without) and their share of the search's."""
    search_s, training_s = training_seconds(trials)
    trainings = sum(len(found.values) for found in confirmed.values())
    measured = [spent for found in confirmed.values() for seed, spent in found.seconds.items() if seed in found.values]
    spent = sum(measured) + (trainings - len(measured)) * training_s
    about = "" if len(measured) == trainings else "~"
    share = f", {spent / search_s:.0%} of the search's {_seconds(search_s)} s" if search_s > 0 else ""
    return f"Confirmation: {trainings} training(s), {about}{_seconds(spent)} s of training{share}."


def _seconds(seconds: float) -> str:
    """Whole seconds, or two significant digits below 10 (a short study's 1.2 s is not '1 s' nor '0 s')."""
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.2g}"


def _standing(trial, confirmed: dict[int, Confirmation]) -> tuple[int, int]:
    """Which part of the ranking a trial is in: confirmed (0), by its own value (1), or
    diverged on some fresh seeds (2, and on how many)."""
    found = confirmed.get(trial.number)
    if found is None:
        return 1, 0
    return (2, found.n_diverged) if found.n_diverged else (0, 0)


def _ranked_value(trial, confirmed: dict[int, Confirmation]) -> float | None:
    """What ranks a trial within its standing: its mean over fresh seeds where confirmed, else its value."""
    found = confirmed.get(trial.number)
    return trial.value if found is None else found.mean


def _last(trial, key: str | None) -> float:
    """The trial's last finite `key` in its recorded history (inf if none)."""
    history = trial.history if isinstance(trial, record.TrialRecord) else trial.user_attrs.get("history") or {}
    values = [v for v in history.get(key, []) if _finite(v)] if key else []
    return float(values[-1]) if values else math.inf


def _interrupted(trial) -> bool:
    """Whether something outside ended the trial (`record.interruption`)."""
    return bool(trial.interrupted if isinstance(trial, record.TrialRecord) else record.interruption(trial))


def _state(trial) -> str:
    state = trial.state
    return state if isinstance(state, str) else state.name


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
