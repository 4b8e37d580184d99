"""Everything lrsearch stores with a study and its trials, in one place.

Optuna keeps states, values, parameters and intermediate values itself; lrsearch adds
user attributes, each one a field here, written and read only through this module:

- the study (`StudyRecord`): study_file, objective, direction, epochs, batch_size, seed,
  n_trials (the run's target, which workers that join it keep to), lrsearch_version,
  steps_per_epoch, space (the study file's), model (what a fixed
  architecture looks like: `lrsearch.training._architecture`); the LR range test's results and
  narrowed ranges; and the values of trials retrained on fresh seeds (`lrsearch.results._ranking`),
  kept with the study because Optuna freezes a trial's attributes once it has finished;
- a trial (`TrialRecord`): worker, device, config, history (per-epoch logs, `lr`
  included), duration_s, and why it ended early: pruned_reason / pruned_epoch /
  pruned_detail, or fail_reason, with interrupted (the cause) for a trial that something
  else ended (`interrupt_trial`: not counted, retried); retry_of on such a retry;
- for optuna-dashboard, by `lrsearch.dashboard._notes` rather than here: the notes of the study and
  its trials (study system attributes, in optuna-dashboard's format) and each trial's
  learning-rate chart (an artifact of the study, in a folder beside the storage).

What can be derived is not stored: epochs run and the best epoch come from the history,
a trial's seed is the study's seed plus its number. Studies written before that (with
per-trial best_value, epochs_run, seed and steps_per_epoch attributes) read the same.
In a worker, a trial's writes go through `lrsearch.storage._writeback`, which batches them.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import socket
from typing import Any, Callable, Iterable

from lrsearch import internals


DIVERGED, STALLED, BY_PRUNER, BY_STUDY_FILE = "diverged", "stalled", "pruner", "study file"
UNKNOWN_FAILURE = "unknown"
_INTERRUPTED, _RETRY_OF = "interrupted", "retry_of"
_RANGE_TEST_PREFIX = "find_lr:"
_BOUNDS = "find_lr_bounds"
_CONFIRM_PREFIX = "confirm:"
_CONFIRM_SECONDS_PREFIX = "confirm_s:"


# --------------------------------------------------------------------------- the study


@dataclasses.dataclass(frozen=True)
class StudyRecord:
    """What `lrsearch run` records about a study (None: not recorded)."""

    study_file: str | None = None
    objective: str | None = None
    direction: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    n_trials: int | None = None
    lrsearch_version: str | None = None
    steps_per_epoch: int | None = None
    space: dict | None = None
    model: dict | None = None


def read_study(study) -> StudyRecord:
    attrs = study.user_attrs
    return StudyRecord(**{f.name: attrs.get(f.name) for f in dataclasses.fields(StudyRecord)})


def write_study(study, **fields: Any) -> None:
    """Record `fields` of the StudyRecord, writing only those that changed."""
    known = {f.name for f in dataclasses.fields(StudyRecord)}
    unknown = set(fields) - known
    if unknown:
        raise TypeError(f"not fields of StudyRecord: {sorted(unknown)}")
    current = study.user_attrs
    for key, value in fields.items():
        if value is not None and current.get(key) != value:
            study.set_user_attr(key, value)


def changes(study, **current: Any) -> list[str]:
    """How `current` StudyRecord fields differ from those recorded, one phrase each
    (`epochs 10 -> 30`; a dict field per key); fields not recorded yet do not count."""
    recorded = read_study(study)
    found = []
    for key, value in current.items():
        before = getattr(recorded, key)
        if before is None or before == value:
            continue
        if isinstance(value, dict) and isinstance(before, dict):
            found += [f"{key} {option} {before.get(option)!r} -> {value.get(option)!r}"
                      for option in sorted(set(before) | set(value)) if before.get(option) != value.get(option)]
        else:
            found.append(f"{key} {before!r} -> {value!r}")
    return found


def name_objective(study, objective: str) -> None:
    """Give the study's value the objective's name, as optuna-dashboard shows it."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    if study.metric_names != [objective]:
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names([objective])


def read_range_test(study, optimizer: str, batch_size: int) -> str | None:
    """The stored LR range test result (JSON text) for this optimizer and batch size."""
    return study.user_attrs.get(range_test_key(optimizer, batch_size))


def write_range_test(study, optimizer: str, batch_size: int, text: str) -> str:
    key = range_test_key(optimizer, batch_size)
    study.set_user_attr(key, text)
    return key


def read_range_tests(study) -> list[str]:
    """Every stored LR range test result (JSON text), ordered by optimizer and batch size."""
    return [text for key, text in sorted(study.user_attrs.items()) if key.startswith(_RANGE_TEST_PREFIX)]


def range_test_key(optimizer: str, batch_size: int) -> str:
    return f"{_RANGE_TEST_PREFIX}{optimizer}:{batch_size}"


def read_bounds(study) -> dict | None:
    """The ranges `--bounds-from-find-lr` narrowed, if recorded."""
    return study.user_attrs.get(_BOUNDS) or None


def write_bounds(study, record: dict) -> None:
    study.set_user_attr(_BOUNDS, record)


def read_confirmations(study) -> dict[int, dict[int, float | None]]:
    """trial number -> {seed: objective at the last epoch (None: it diverged)}."""
    found = {}
    for key, values in study.user_attrs.items():
        number = key[len(_CONFIRM_PREFIX):]
        if key.startswith(_CONFIRM_PREFIX) and number.isdigit() and isinstance(values, dict):
            found[int(number)] = {int(seed): value for seed, value in values.items() if seed.lstrip("-").isdigit()}
    return found


def write_confirmation(study, number: int, values: dict[int, float | None],
                       seconds: dict[int, float] | None = None) -> None:
    """All the fresh-seed values of trial `number` known so far (non-finite ones as None),
    and the seconds of their trainings, where measured."""
    rounded = {str(seed): None if value is None else _rounded(value) for seed, value in sorted(values.items())}
    study.set_user_attr(f"{_CONFIRM_PREFIX}{number}", rounded)
    if seconds:
        study.set_user_attr(f"{_CONFIRM_SECONDS_PREFIX}{number}",
                            {str(seed): round(float(spent), 3) for seed, spent in sorted(seconds.items())})


def read_confirmation_seconds(study) -> dict[int, dict[int, float]]:
    """trial number -> {seed: seconds its confirmation training took}, where measured (not
    by studies confirmed before lrsearch recorded them)."""
    found = {}
    for key, seconds in study.user_attrs.items():
        number = key[len(_CONFIRM_SECONDS_PREFIX):]
        if key.startswith(_CONFIRM_SECONDS_PREFIX) and number.isdigit() and isinstance(seconds, dict):
            found[int(number)] = {int(seed): float(spent) for seed, spent in seconds.items()
                                  if seed.lstrip("-").isdigit() and isinstance(spent, (int, float))}
    return found


# --------------------------------------------------------------------------- a trial


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial as lrsearch reads it: Optuna's own fields and lrsearch's record."""

    number: int
    state: str
    value: float | None
    params: dict
    datetime_start: datetime.datetime | None
    datetime_complete: datetime.datetime | None
    worker: str | None = None
    device: str | None = None
    config: dict | None = None
    history: dict = dataclasses.field(default_factory=dict)
    duration_s: float | None = None
    pruned_reason: str | None = None
    pruned_epoch: int | None = None
    pruned_detail: str | None = None
    fail_reason: str | None = None
    interrupted: str | None = None  # what ended a FAIL trial from outside (`interrupt_trial`)
    retry_of: int | None = None  # the interrupted trial whose parameters this one retries
    seed: int | None = None
    steps_per_epoch: int | None = None

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("lr", []))

    def best(self, objective: str, direction: str) -> tuple[float, int] | None:
        """(best value of `objective`, its 0-based epoch) over the history, if any finite."""
        finite = [(v, i) for i, v in enumerate(self.history.get(objective, [])) if _finite(v)]
        if not finite:
            return None
        pick = max if direction == "maximize" else min
        return pick(finite, key=lambda item: item[0])


def trial_seed(study_seed: int, number: int) -> int:
    """The seed of trial `number` of a study seeded `study_seed`, which export and
    confirmation replay."""
    return study_seed + number


def read_trial(trial, study: StudyRecord = StudyRecord()) -> TrialRecord:
    """The record of an Optuna FrozenTrial; `study` supplies what trials share."""
    attrs = trial.user_attrs
    state = trial.state.name
    seed = attrs.get("seed")  # recorded per trial by lrsearch 0.1.0 before the record module
    if seed is None and study.seed is not None:
        seed = trial_seed(study.seed, trial.number)
    return TrialRecord(
        number=trial.number, state=state, value=trial.value if len(trial.values or ()) == 1 else None,
        params=dict(trial.params), datetime_start=trial.datetime_start, datetime_complete=trial.datetime_complete,
        worker=attrs.get("worker"), device=attrs.get("device"),
        config=attrs.get("config") if isinstance(attrs.get("config"), dict) else None,
        history=attrs.get("history") if isinstance(attrs.get("history"), dict) else {},
        duration_s=attrs.get("duration_s"),
        pruned_reason=(attrs.get("pruned_reason") or BY_PRUNER) if state == "PRUNED" else None,
        pruned_epoch=attrs.get("pruned_epoch"), pruned_detail=attrs.get("pruned_detail"),
        fail_reason=(attrs.get("fail_reason") or UNKNOWN_FAILURE) if state == "FAIL" else None,
        interrupted=interruption(trial), retry_of=attrs.get(_RETRY_OF),
        seed=seed, steps_per_epoch=attrs.get("steps_per_epoch", study.steps_per_epoch),
    )


def not_complete(trial) -> str:
    """What a trial that is not complete is, in words: "trial 3 failed"."""
    state = trial.state.name
    return f"trial {trial.number} " + {"FAIL": "failed", "PRUNED": "was pruned", "RUNNING": "is still running",
                                       "WAITING": "is waiting to run"}.get(state, f"is {state.lower()}")


def read_trials(study, states: Iterable[str] | None = None) -> list[TrialRecord]:
    """The records of `study`'s trials (optionally only those in `states`), by number."""
    shared = read_study(study)
    wanted = None if states is None else set(states)
    return [read_trial(t, shared) for t in study.get_trials(deepcopy=False)
            if wanted is None or t.state.name in wanted]


def write_worker(trial, worker: str) -> None:
    """Which process runs `trial`, written through at once: it is how the trial of a
    worker that died is found."""
    storage = internals.storage_of(trial.study)
    write = getattr(storage, "set_trial_user_attr_now", storage.set_trial_user_attr)
    write(internals.trial_id(trial), "worker", worker)


def write_trial_config(trial, device: str, config: dict) -> None:
    """The device `trial` trains on and its full LR configuration."""
    trial.set_user_attr("device", device)
    trial.set_user_attr("config", config)


def write_trial_end(trial, history: dict[str, list], duration_s: float) -> None:
    """The per-epoch logs (non-finite values as None) and the training time."""
    trial.set_user_attr("history", {key: [_rounded(v) for v in values] for key, values in history.items()})
    trial.set_user_attr("duration_s", round(duration_s, 3))


def write_pruned(trial, reason: str, epoch: int | None, detail: str) -> None:
    trial.set_user_attr("pruned_reason", reason)
    trial.set_user_attr("pruned_epoch", epoch)
    trial.set_user_attr("pruned_detail", detail)


def write_failure(trial, reason: str) -> None:
    """Why the running `trial` failed (before Optuna marks it FAIL)."""
    trial.set_user_attr("fail_reason", reason)


# --------------------------------------------------------------------------- trials left behind


def fail_trial(storage, trial_id: int, reason: str, interrupted: str | None = None) -> bool:
    """Fail a RUNNING trial of another process with `reason` (and, if `interrupted`, that
    cause as its mark); False if it was finished meanwhile (its worker told it, or another
    process failed it first). The mark is written before the state, so that whoever reads
    the trial as FAIL reads it too."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        if interrupted:
            storage.set_trial_user_attr(trial_id, _INTERRUPTED, interrupted)
        storage.set_trial_user_attr(trial_id, "fail_reason", reason)
        return bool(storage.set_trial_state_values(trial_id, TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False


def interruption(trial) -> str | None:
    """What ended the FAIL FrozenTrial `trial` from outside (`interrupt_trial`), or None:
    such a trial does not count toward n_trials."""
    return trial.user_attrs.get(_INTERRUPTED) if trial.state.name == "FAIL" else None


def interrupt_trial(study, trial, cause: str, suspect: bool = False) -> bool:
    """Fail the RUNNING FrozenTrial `trial`, which `cause` ended rather than its own doing
    (its run was stopped, killed or lost the storage; its machine vanished), as interrupted:
    it does not count toward n_trials, keeps the values it reported, and its parameters are
    enqueued once more; where the trial itself may have caused it (`suspect`: its machine
    vanished, which a model too large for it does), a retry is not retried again. False if
    it had finished meanwhile."""
    import optuna

    storage = internals.storage_of(study)
    epochs, trained = read_study(study).epochs, len(trial.intermediate_values)
    when = (f"after {trained}{f' of {epochs}' if epochs else ''} epoch(s), kept as its intermediate values"
            if trained else "before its first epoch ended")
    retried = trial.user_attrs.get(_RETRY_OF)
    again = suspect and retried is not None
    outcome = f"not retried again (it retried trial {retried})" if again else "its parameters are retried"
    reason = f"interrupted: {cause}, {when}; {outcome}"
    if not fail_trial(storage, internals.trial_id(trial), reason, interrupted=cause):
        return False
    if not again:
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, params=trial.params,
                                                  distributions=trial.distributions,
                                                  user_attrs={_RETRY_OF: trial.number}))
    return True


def fixed_beforehand(trial) -> bool:
    """Whether the parameters of the FrozenTrial `trial` were fixed before a worker took it:
    a retry of an interrupted trial, or one enqueued with parameters (`study.enqueue_trial`)."""
    return _RETRY_OF in trial.user_attrs or internals.enqueued_with_params(trial)


def fail_running_trials(study, belongs: Callable[[str | None], bool], reason: str,
                        interrupted: bool = False) -> int:
    """Fail the RUNNING trials whose worker tag satisfies `belongs`, as interrupted by
    `reason` if `interrupted`; how many."""
    from optuna.trial import TrialState

    running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if belongs(t.user_attrs.get("worker"))]
    if interrupted:
        return sum(interrupt_trial(study, t, reason) for t in running)
    storage = internals.storage_of(study)
    return sum(fail_trial(storage, internals.trial_id(t), reason) for t in running)


def fail_stale_trials(study) -> int:
    """Interrupt the RUNNING trials whose heartbeats stopped (a machine that vanished)."""
    from lrsearch.storage import heartbeat_settings

    storage = internals.storage_of(study)
    stale = storage.stale_trial_ids(internals.study_id(study)) if hasattr(storage, "stale_trial_ids") else []
    if not stale:
        return 0
    grace = heartbeat_settings()[1]
    cause = f"its worker stopped sending heartbeats (none for {grace} s; the machine or process is gone)"
    return sum(interrupt_trial(study, storage.get_trial(stale_id), cause, suspect=True) for stale_id in stale)


def worker_tag(pid: int | None = None) -> str:
    """How a trial names the process running it: host:pid."""
    import os

    return f"{socket.gethostname()}:{pid or os.getpid()}"


def split_worker_tag(tag: str | None) -> tuple[str, int] | None:
    if not tag or ":" not in tag:
        return None
    host, _, pid = tag.rpartition(":")
    return (host, int(pid)) if pid.isdigit() else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _rounded(value: Any) -> float | None:
    value = float(value)
    return float(f"{value:.6g}") if math.isfinite(value) else None
