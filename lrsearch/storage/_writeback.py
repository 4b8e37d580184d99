"""A worker's storage layer: the trials it runs are kept in memory and written behind.

A trial reports a value and its pruner reads it back every epoch; on PostgreSQL or SQLite
each of those is a round trip that costs more than the epoch. `WriteBackStorage` keeps
each trial this process runs (created here, or an enqueued one it took) as a local
`FrozenTrial`: reports, user and system attributes and the final state land there at
once and reach the storage below from a background thread, in order, batched, within
`interval` seconds (so optuna-dashboard shows a running trial's values as it trains).
Reads of those trials are answered locally; everything else (other trials, which the
sampler and the pruner compare against, parameters, which Optuna checks against the
study's) goes to the storage as before.

On an RDB storage one batch is one transaction (`lrsearch.internals.rdb_batch_writer`), through
`lrsearch storage-proxy` one call a trial (`_grpc.ProxyClient.write_batch`); elsewhere each write
is the storage's own call. A batch that fails because the storage is unreachable is retried
by the layer below; a trial that another process finished meanwhile (failed as stale)
loses its remaining writes, which is said once.

A thread in `only_waiting_trials` takes trials from the study's waiting ones only, in a
random order: where Optuna's ask finds none left to take, it raises `NoWaitingTrial`
instead of creating one (`lrsearch.workers._claims`, claims by ticket).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import random
import sys
import threading
from typing import Any, Callable

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from lrsearch import internals
from lrsearch.storage._resilient import DelegatingStorage, rdb_under

#: Seconds a write may wait before it reaches the storage.
FLUSH_INTERVAL = 1.0
#: The storage call that writes each kind of op `(kind, trial_id, key, value)` on its own.
OP_CALLS = {"value": "set_trial_intermediate_value", "user_attr": "set_trial_user_attr",
            "system_attr": "set_trial_system_attr"}


class NoWaitingTrial(Exception):
    """Optuna's ask found no waiting trial to take, in `WriteBackStorage.only_waiting_trials`."""


class WriteBackStorage(DelegatingStorage):
    """`inner` with the writes of this process's own trials written behind."""

    def __init__(self, inner: BaseStorage, interval: float = FLUSH_INTERVAL,
                 warn: Callable[[str], None] | None = None) -> None:
        super().__init__(inner)
        self.interval = interval
        self.warn = warn or (lambda line: print(f"lrsearch worker: {line}", file=sys.stderr, flush=True))
        self._owned: dict[int, FrozenTrial] = {}
        self._facts: dict[tuple, Any] = {}
        self._pending: list[tuple] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._error: BaseException | None = None
        self._local = threading.local()  # whether this thread is in `only_waiting_trials`
        self._thread = threading.Thread(target=self._write_behind, name="lrsearch-write-behind", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ facts that never change

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._remember(("id", study_name), "get_study_id_from_name", study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._remember(("name", study_id), "get_study_name_from_id", study_id)

    def get_study_directions(self, study_id: int):
        return self._remember(("directions", study_id), "get_study_directions", study_id)

    def _remember(self, key: tuple, name: str, *args: Any) -> Any:
        """Optuna's Hyperband builds a study object per bracket at every pruning check,
        which asks for these: answered once per process."""
        if key not in self._facts:
            self._facts[key] = self.call(name, *args)
        return self._facts[key]

    # ------------------------------------------------------------------ trials taken here

    @contextlib.contextmanager
    def only_waiting_trials(self):
        """Within the block, this thread's `create_new_trial` without a template (Optuna's ask,
        which found no waiting trial to take) raises NoWaitingTrial and creates nothing."""
        self._local.only_waiting = True
        try:
            yield
        finally:
            self._local.only_waiting = False

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is None and getattr(self._local, "only_waiting", False):
            raise NoWaitingTrial(f"no waiting trial left in study id {study_id}")
        trial_id = self.call("create_new_trial", study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:  # not one enqueued for anyone
            self._own(trial_id)
        return trial_id

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        trial = self._owned.get(trial_id)
        if trial is None:
            taken = self.call("set_trial_state_values", trial_id, state, values)
            if taken and state == TrialState.RUNNING:  # an enqueued trial this process now runs
                self._own(trial_id)
            return taken
        BaseStorage.check_trial_is_updatable(self, trial_id, trial.state)
        with self._lock:
            trial.state = state
            if values is not None:
                trial.values = list(values)
            if state.is_finished():
                trial.datetime_complete = datetime.datetime.now()
            self._pending.append(("state", trial_id, state, None if values is None else list(values)))
        self._wake.set()  # a finished trial is written at once
        return True

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        trial = self._owned.get(trial_id)
        if trial is None:
            return self.call("set_trial_intermediate_value", trial_id, step, intermediate_value)
        self._queue(trial, ("value", trial_id, step, intermediate_value),
                    lambda: trial.intermediate_values.__setitem__(step, intermediate_value))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        trial = self._owned.get(trial_id)
        if trial is None:
            return self.call("set_trial_user_attr", trial_id, key, value)
        self._queue(trial, ("user_attr", trial_id, key, value), lambda: trial.user_attrs.__setitem__(key, value))

    def set_trial_user_attr_now(self, trial_id: int, key: str, value: Any) -> None:
        """Write a user attribute through at once (and locally, if the trial is ours)."""
        self.call("set_trial_user_attr", trial_id, key, value)
        trial = self._owned.get(trial_id)
        if trial is not None:
            trial.user_attrs[key] = value

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        trial = self._owned.get(trial_id)
        if trial is None:
            return self.call("set_trial_system_attr", trial_id, key, value)
        self._queue(trial, ("system_attr", trial_id, key, value), lambda: trial.system_attrs.__setitem__(key, value))

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float, distribution) -> None:
        self.call("set_trial_param", trial_id, param_name, param_value_internal, distribution)
        trial = self._owned.get(trial_id)
        if trial is not None:
            trial.params[param_name] = distribution.to_external_repr(param_value_internal)
            trial.distributions[param_name] = distribution

    def get_trial(self, trial_id: int) -> FrozenTrial:
        trial = self._owned.get(trial_id)
        return trial if trial is not None else self.call("get_trial", trial_id)

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return dict(self.get_trial(trial_id).user_attrs)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return dict(self.get_trial(trial_id).system_attrs)

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return dict(self.get_trial(trial_id).params)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        trials = self.call("get_all_trials", study_id, deepcopy=False)
        trials = [self._owned.get(internals.trial_id(t), t) for t in trials]
        if states is not None:
            trials = [t for t in trials if t.state in states]
        if getattr(self._local, "only_waiting", False) and states is not None and set(states) == {TrialState.WAITING}:
            random.shuffle(trials)  # Optuna's ask tries them in this order: processes taking at once rarely collide
        return copy.deepcopy(trials) if deepcopy else trials

    # ------------------------------------------------------------------ writing behind

    def flush(self) -> None:
        """Wait until every write so far reached the storage; raise the error of one that
        could not be written (e.g. the storage stayed unreachable)."""
        self._wake.set()
        while True:
            with self._lock:
                done = not self._pending and self._idle.is_set()
            if done or not self._thread.is_alive():
                break
            self._idle.wait(0.05)
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _own(self, trial_id: int) -> None:
        self._owned[trial_id] = self.call("get_trial", trial_id)

    def _queue(self, trial: FrozenTrial, op: tuple, apply: Callable[[], None]) -> None:
        BaseStorage.check_trial_is_updatable(self, internals.trial_id(trial), trial.state)
        with self._lock:
            apply()
            self._pending.append(op)

    def _write_behind(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, []
                if batch:
                    self._idle.clear()
            if not batch:
                continue
            try:
                self._write(batch)
            except BaseException as exc:  # kept for flush(); the worker decides what it means
                self._error = exc
            finally:
                with self._lock:
                    for op in batch:
                        if op[0] == "state" and op[2].is_finished():
                            self._owned.pop(op[1], None)  # the storage has it all now
                    if not self._pending:
                        self._idle.set()

    def _write(self, batch: list[tuple]) -> None:
        """Write `batch` in order: the attribute and value writes of a run of ops in one
        go, then each state change (which Optuna checks and locks on its own)."""
        run: list[tuple] = []
        lost: set[int] = set()
        for op in [*batch, None]:
            if op is not None and op[0] != "state":
                if op[1] not in lost:
                    run.append(op)
                continue
            if run:
                lost |= self._write_ops(run)
                run = []
            if op is not None and op[1] not in lost:
                try:
                    self.call("set_trial_state_values", op[1], op[2], op[3])
                except UpdateFinishedTrialError:
                    lost.add(op[1])
        for trial_id in lost:
            self.warn(f"trial id {trial_id} was finished by another process (its heartbeats stopped?); "
                      f"what it reported since was not written.")

    def _write_ops(self, ops: list[tuple]) -> set[int]:
        """Write attribute and value ops; return the trials found finished by someone else."""
        batch = _batch_writer(self.inner)
        if batch is not None:
            try:
                self.retrying(lambda: batch(ops))
                return set()
            except UpdateFinishedTrialError:
                pass  # one trial was finished elsewhere: write one by one to keep the others
        lost: set[int] = set()
        for kind, trial_id, key, value in ops:
            if trial_id in lost:
                continue
            try:
                self.call(OP_CALLS[kind], trial_id, key, value)
            except UpdateFinishedTrialError:
                lost.add(trial_id)
        return lost


def _batch_writer(storage: BaseStorage) -> Callable[[list[tuple]], None] | None:
    """What writes a batch of attribute and value ops in one go below `storage`: one
    transaction of an RDB storage (None where this Optuna lacks what that uses), one call a
    trial through `lrsearch storage-proxy`; None elsewhere."""
    rdb = rdb_under(storage)
    if rdb is not None:
        return internals.rdb_batch_writer(rdb)
    while storage is not None and not hasattr(storage, "write_batch"):
        storage = getattr(storage, "inner", None)
    return storage.write_batch if storage is not None and storage.batches else None
