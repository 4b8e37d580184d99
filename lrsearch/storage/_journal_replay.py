"""Whether the records of a journal add up: Optuna's operation log replayed as its reader
(`optuna.storages.journal._storage.JournalStorageReplayResult`, Optuna 5.1) replays it,
keeping only what shows a record that is missing.

A writer learns the id of a study or trial by replaying the records before its own, so a
record never refers to an id that no earlier record created; trial and study ids are
counted, so a lost creation shifts every later id and leaves a reference to one that
does not exist. Optuna ignores a change to a finished trial, which a race leaves behind
when another process failed the trial meanwhile, but never when the same process (one
`JournalStorage`: its worker ids share a prefix) finished it. A finished trial has its
values; a trial that was waiting (enqueued) is started before it reports.

A lost parameter shows only where nothing the journal holds explains it (`lost_parameter`):
a finished trial lacks a parameter that at least 3 trials of its run hold, these surround
it in number and in every other parameter (share its choice, or its lack of one; hold
values below and above its value), so that no one parameter's value or side of a
threshold, nor its place in the run, can be why it was not suggested; and no other
finished trial that lacks the parameter sits among them in number and choices.

What this cannot see: a lost attribute, intermediate value or final state (the trial is
then left RUNNING, and the next run fails it), and a lost parameter that something could
explain: of a trial on an edge (the first or last of its run, the least or greatest value
of a parameter), of one whose holders are too few or differ from it, or lost by two
trials alike. It takes for lost a parameter whose condition it cannot see (several
parameters together, one or the other above a threshold, say) when a single trial
surrounded by those that hold it fails that condition.
"""

from __future__ import annotations

from typing import Any, Callable

# Optuna's `JournalOperation` codes and `TrialState` values, as the journal stores them.
CREATE_STUDY, DELETE_STUDY, SET_STUDY_USER_ATTR, SET_STUDY_SYSTEM_ATTR, CREATE_TRIAL = 0, 1, 2, 3, 4
SET_TRIAL_PARAM, SET_TRIAL_STATE_VALUES, SET_TRIAL_INTERMEDIATE_VALUE = 5, 6, 7
SET_TRIAL_USER_ATTR, SET_TRIAL_SYSTEM_ATTR, DISCARD_TRIALS = 8, 9, 10
RUNNING, COMPLETE, PRUNED, FAIL, WAITING = 0, 1, 2, 3, 4
_LOST = "a record before it was lost"


class _Trial:
    __slots__ = ("study", "number", "state", "process", "params", "created_whole", "finished_by", "finished_at")

    def __init__(self, study: int, number: int, state: int, process: str) -> None:
        self.study, self.number, self.state, self.process = study, number, state, process
        self.params: dict[str, tuple[Any, bool]] = {}  # name -> (internal value, whether categorical)
        self.created_whole = False  # with its parameters, by `add_trial` or `enqueue_trial`
        self.finished_by: str | None = None
        self.finished_at = 0  # the line that finished it


class Replay:
    """The journal's studies and trials as far as its records were applied (`apply`)."""

    def __init__(self) -> None:
        self.studies: dict[int, tuple[str, int]] = {}  # live study id -> (name, number of objectives)
        self.names: dict[int, str] = {}  # every study id ever created -> its name
        self.trials: list[_Trial] = []  # by trial id
        self.counts: dict[int, int] = {}  # study id -> trials created in it
        self.spans: dict[str, tuple[int, int]] = {}  # process -> first and last line of its records on trials
        self._apply: dict[int, Callable[[dict, int], str | None]] = {
            CREATE_STUDY: self._create_study, DELETE_STUDY: self._delete_study,
            SET_STUDY_USER_ATTR: self._study_attr, SET_STUDY_SYSTEM_ATTR: self._study_attr,
            CREATE_TRIAL: self._create_trial, SET_TRIAL_PARAM: self._set_param,
            SET_TRIAL_STATE_VALUES: self._set_state, SET_TRIAL_INTERMEDIATE_VALUE: self._report,
            SET_TRIAL_USER_ATTR: self._trial_attr, SET_TRIAL_SYSTEM_ATTR: self._trial_attr,
            DISCARD_TRIALS: lambda record, line: None}

    def apply(self, record: dict, line: int) -> str | None:
        """Apply `record`, on 1-based `line`; what is wrong with it, or None."""
        op = record.get("op_code")
        apply = self._apply.get(op)
        if apply is None:
            return f"is not an Optuna journal record (op_code {op!r})"
        if op >= CREATE_TRIAL:
            process = _process(record)
            self.spans[process] = (self.spans.get(process, (line,))[0], line)
        try:
            return apply(record, line)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return f"is not an Optuna journal record (op_code {record['op_code']}, {type(exc).__name__}: {exc})"

    def lost_parameter(self) -> tuple[int, str] | None:
        """(the line that finished the first trial that lost a parameter, what it lacks), or None.

        Trials are compared within a study and a run: those run by processes whose records
        overlap in the file (a later run may search another space). A finished trial lost
        parameter P when at least 3 trials hold P and surround it (`_surrounds`) in number
        and in every other parameter, and no other finished trial that lacks P shares its
        place among them in number and choices (two that lack it so follow a condition
        this cannot see, as on the parity of their number)."""
        found: tuple[int, str] | None = None
        for trials in self._runs():
            categorical = {name: kind for trial in trials for name, (_, kind) in trial.params.items()}
            for name in categorical:
                holders = [trial for trial in trials if name in trial.params]
                if len(holders) < 3:
                    continue
                others = {other: _surrounds(holders, other) for other in categorical if other != name}
                choices = [others[other] for other in others if categorical[other]] + [_surrounds_number(holders)]
                alike = [trial for trial in trials if trial.state == COMPLETE and name not in trial.params
                         and all(surrounds(trial) for surrounds in choices)]
                if (len(alike) == 1 and all(surrounds(alike[0]) for surrounds in others.values())
                        and (found is None or alike[0].finished_at < found[0])):
                    found = (alike[0].finished_at, f"finishes {self._name(alike[0])} without parameter {name!r}, "
                                                   f"which the {len(holders)} trials of its run around it (in "
                                                   f"number and every other parameter) hold: {_LOST}")
        return found

    def _runs(self) -> list[list[_Trial]]:
        """The trials (but those created whole, by `add_trial` or `enqueue_trial`) by study
        and run: the processes whose records on trials overlap in the file."""
        by_process: dict[tuple[int, str], list[_Trial]] = {}
        for trial in self.trials:
            if not trial.created_whole:
                by_process.setdefault((trial.study, trial.process), []).append(trial)
        runs: list[list[_Trial]] = []
        study, end = None, 0
        for key in sorted(by_process, key=lambda key: (key[0], self.spans.get(key[1], (0, 0))[0])):
            first, last = self.spans.get(key[1], (0, 0))
            if key[0] != study or first > end:
                runs.append([])
                study, end = key[0], last
            runs[-1] += by_process[key]
            end = max(end, last)
        return runs

    # ------------------------------------------------------------------ studies

    def _create_study(self, record: dict, line: int) -> None:
        name, directions = record["study_name"], record["directions"]
        if name in (study[0] for study in self.studies.values()):
            return  # a second creation of a study: Optuna ignores it
        study_id = len(self.names)
        self.studies[study_id] = (name, len(directions))
        self.names[study_id] = name
        self.counts[study_id] = 0

    def _study(self, record: dict) -> str | None:
        study_id = record["study_id"]
        if type(study_id) is not int or not 0 <= study_id < len(self.names):
            return f"refers to study id {study_id!r}, which no record before it created: {_LOST}"
        return None

    def _delete_study(self, record: dict, line: int) -> str | None:
        problem = self._study(record)
        self.studies.pop(record["study_id"], None)
        return problem

    def _study_attr(self, record: dict, line: int) -> str | None:
        return self._study(record)

    # ------------------------------------------------------------------ trials

    def _create_trial(self, record: dict, line: int) -> str | None:
        study_id = record["study_id"]
        problem = self._study(record)
        if problem or study_id not in self.studies:
            return problem  # a trial of a deleted study: Optuna ignores it
        state = record.get("state", RUNNING)
        trial = _Trial(study_id, self.counts[study_id], state, _process(record))
        self.counts[study_id] += 1
        self.trials.append(trial)
        distributions = record.get("distributions", {})
        for name, value in record.get("params", {}).items():
            trial.params[name] = (value, _categorical(distributions[name]))
            trial.created_whole = True
        if state in (COMPLETE, PRUNED, FAIL):
            trial.finished_by, trial.finished_at = trial.process, line
        values = record.get("values") or ([record["value"]] if record.get("value") is not None else None)
        return self._values_problem(trial, state, values)

    def _target(self, record: dict) -> tuple[_Trial | None, str | None]:
        """(the trial `record` changes, or None if Optuna ignores the record; what is wrong)."""
        trial_id = record["trial_id"]
        if type(trial_id) is not int or not 0 <= trial_id < len(self.trials):
            return None, f"refers to trial id {trial_id!r}, which no record before it created: {_LOST}"
        trial = self.trials[trial_id]
        if trial.finished_by is None:
            return trial, None
        if _process(record) == trial.finished_by:
            return None, (f"changes {self._name(trial)}, which the same process finished on line "
                          f"{trial.finished_at}: {_LOST}")
        return None, None  # another process wrote it as this one finished it (a race Optuna ignores)

    def _set_param(self, record: dict, line: int) -> str | None:
        trial, problem = self._target(record)
        if trial is None:
            return problem
        name = record["param_name"]
        if trial.state == WAITING:
            return f"sets parameter {name!r} of {self._name(trial)}, which never started: {_LOST}"
        if not trial.params:
            trial.process = _process(record)  # the process that runs it (an enqueued one's creator may not)
        trial.params[name] = (record["param_value_internal"], _categorical(record["distribution"]))
        return None

    def _set_state(self, record: dict, line: int) -> str | None:
        trial, problem = self._target(record)
        if trial is None:
            return problem
        state, values = record["state"], record["values"]
        if state == RUNNING:
            trial.state = RUNNING if trial.state == WAITING else trial.state
            return None
        if state in (COMPLETE, PRUNED) and trial.state == WAITING:
            return f"finishes {self._name(trial)}, which never started: {_LOST}"
        trial.state, trial.finished_by, trial.finished_at = state, _process(record), line
        return self._values_problem(trial, state, values)

    def _report(self, record: dict, line: int) -> str | None:
        trial, problem = self._target(record)
        if trial is not None and trial.state == WAITING:
            return f"reports step {record['step']!r} of {self._name(trial)}, which never started: {_LOST}"
        return problem

    def _trial_attr(self, record: dict, line: int) -> str | None:
        return self._target(record)[1]

    def _values_problem(self, trial: _Trial, state: int, values: list | None) -> str | None:
        if state != COMPLETE:
            return None
        objectives = self.studies.get(trial.study, ("", len(values or ())))[1]
        if not values or len(values) != objectives:
            return f"finishes {self._name(trial)} with {len(values or ())} value(s) for {objectives} objective(s)"
        return None

    def _name(self, trial: _Trial) -> str:
        return f"trial #{trial.number} of study {self.names[trial.study]!r}"


def _process(record: dict) -> str:
    """The `JournalStorage` that wrote `record`: its worker ids are one prefix and a thread."""
    return str(record.get("worker_id", "")).rpartition("-")[0]


def _categorical(distribution: str) -> bool:
    """Whether a distribution (Optuna's JSON of it) is categorical: its internal values
    are the indices of its choices, which have no order."""
    return "CategoricalDistribution" in distribution


def _surrounds(holders: list[_Trial], name: str) -> Callable[[_Trial], bool]:
    """Whether `holders` surround a trial in parameter `name`: one of them lacks it as the
    trial does, or has the trial's choice, or values at most and at least the trial's."""
    values = [trial.params[name][0] for trial in holders if name in trial.params]
    choices, absent = set(values), len(values) < len(holders)
    low, high = (min(values), max(values)) if values else (None, None)

    def surrounds(trial: _Trial) -> bool:
        if name not in trial.params:
            return absent
        value, categorical = trial.params[name]
        return value in choices if categorical else bool(values) and low <= value <= high

    return surrounds


def _surrounds_number(holders: list[_Trial]) -> Callable[[_Trial], bool]:
    """Whether `holders` surround a trial in number: some come before it and some after."""
    numbers = [trial.number for trial in holders]
    low, high = min(numbers), max(numbers)
    return lambda trial: low < trial.number < high
