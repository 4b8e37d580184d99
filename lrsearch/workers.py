"""Run a study's trials in worker processes that share one Optuna storage.

Each worker is a `spawn`ed process that sets its device (CUDA_VISIBLE_DEVICES, thread
pools) before importing TensorFlow, which it does before the parent has its job (the
parent starts the workers first, so that this overlaps the parent's own loading of the
study file), then loads the study file once, and runs trials - several at once in
lanes, one thread each (`lrsearch.lanes`), where the model allows - until the
study holds `n_trials` trials, it has run `max_trials` (then it exits and is replaced:
TensorFlow keeps about 4 MB per model it traced, even after `clear_session`, which
matters for models the trainer cannot keep compiled; see benchmarks/worker_memory.py),
or it is told to stop.

The parent (`Supervisor`) never imports TensorFlow. It starts the workers, replaces one
that dies and marks the trial it was running failed, stops the run after several
failures in a row, and handles Ctrl-C: the first lets running trials finish, the second
(or SIGTERM) kills them (marked failed). Workers claim trials one at a time under a lock
shared on this machine and, on PostgreSQL, under an advisory lock shared by all
machines, so a study ends with exactly `n_trials`. A worker writes its trial's reports
and attributes behind (`lrsearch.writeback`), so a database round trip never stalls an
epoch. Heartbeats fail the trials of a machine that vanished: the process that notices
fails them with a reason, and a run does not end while trials of live workers elsewhere
are still RUNNING. Storage outages are waited out (`lrsearch.resilient`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import multiprocessing as mp
import os
import signal
import socket
import sys
import threading
import time
import warnings
import zlib
from multiprocessing.connection import wait
from typing import Callable

from lrsearch import internals, record
from lrsearch.devices import Slot
from lrsearch.errors import InternalError, StorageUnavailableError
from lrsearch.record import worker_tag

EXIT_FATAL = 3
EXIT_STORAGE = 4
#: Seconds between the parent's checks for trials whose heartbeats stopped.
STALE_CHECK_INTERVAL = 5.0
#: Trials failed one after another that stop a run (the study file is likely wrong).
MAX_FAILURES_IN_A_ROW = 5
#: Trials that count toward `n_trials`: all but enqueued ones that no worker took yet.
CLAIMED = ("RUNNING", "COMPLETE", "PRUNED", "FAIL")


@dataclasses.dataclass(frozen=True)
class Job:
    """What every worker of a run does."""

    study_path: str
    storage: str
    study_name: str
    n_trials: int
    epochs: int
    max_trials: int = 50
    seed: int = 0
    accept_changes: bool = False
    confirm: bool = False  # once the study is full, retrain the trials the parent sends (`lrsearch.confirm`)
    pruner: str | None = None  # `Settings.pruner`
    lanes: int | None = None  # trials a worker trains at once (`lrsearch.lanes`); None: as suits the model
    lane_cap: int = 32  # the most lanes a worker may choose
    study_pickle: bytes | None = None  # a study defined in Python (`lrsearch.studyfile.pickle_study`)


def claimed_trials(study) -> int:
    """How many trials of `study` count toward its `n_trials`."""
    from optuna.trial import TrialState

    states = tuple(TrialState[name] for name in CLAIMED)
    return internals.storage_of(study).get_n_trials(internals.study_id(study), state=states)


def open_study(job: Job, seed: int | None, storage):
    """The Optuna study of `job` in `storage`, with lrsearch's sampler and pruner."""
    import optuna

    from lrsearch.pruning import make_pruner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed)
    return optuna.load_study(study_name=job.study_name, storage=storage, sampler=sampler,
                             pruner=make_pruner(job.pruner, job.epochs))


def sampler_seed(study_seed: int, index: int, generation: int) -> int:
    """The TPE seed of a worker: fixed by the study's seed, the worker's slot and how many
    workers that slot started before, and this machine, so that a run with one worker is
    repeatable while workers (and machines) of one study draw differently."""
    return zlib.crc32(f"{study_seed}:{index}:{generation}:{socket.gethostname()}".encode())


# --------------------------------------------------------------------------- worker side


def worker_main(slot: Slot, index: int, generation: int, lock, lock_owner, stop, pipe, orders) -> None:
    """Entry point of a worker process (spawned); `generation` counts the workers started
    before it in its slot. `stop` is a shared flag, `pipe` the
    sending end of this worker's pipe to the parent, `orders` the receiving end of the
    parent's pipe to it, on which the job comes first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    events = _Events(pipe)
    parent = os.getppid()
    os.environ.update(slot.environment())
    from lrsearch.devices import configure_tensorflow, import_tensorflow

    import_tensorflow()  # first, before any module below imports it noisily; maybe before the job is known
    job = _receive_job(orders, stop, parent)
    if job is None:
        os._exit(0)
    import optuna

    from lrsearch.bounds import apply_recorded_bounds
    from lrsearch.runner import TrialRunner, preflight
    from lrsearch.storage import open_storage, redact_text
    from lrsearch.errors import StudyFileError, StudyFileExit
    from lrsearch.studyfile import unpickle_study
    from lrsearch.writeback import WriteBackStorage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    logging.getLogger("lrsearch.fastfit").setLevel(logging.ERROR)  # the run says once how trials train
    try:
        device = configure_tensorflow(slot)
        storage = WriteBackStorage(open_storage(job.storage, wait_to_open=True))
        study = open_study(job, seed=sampler_seed(job.seed, index, generation), storage=storage)
        # The run's seed, and the ranges --bounds-from-find-lr narrowed.
        study_file = unpickle_study(job.study_path, job.study_pickle).with_seed(job.seed)
        study_file = apply_recorded_bounds(study_file, study)
        runner = TrialRunner(study_file, epochs=job.epochs, device=f"{socket.gethostname()}/{device}")
        checked = preflight(runner, job.lanes, job.lane_cap, "gpu" if device.startswith("GPU") else "cpu")
        _check_model(job, study, checked.model)
        events.send(("ready", checked.training_path))
    except StorageUnavailableError as exc:
        events.send(("storage", str(exc)))
        os._exit(EXIT_STORAGE)
    except InternalError as exc:
        events.send(_internal(exc))
        os._exit(EXIT_FATAL)
    except Exception as exc:  # the same in every worker: stop the run rather than restart workers
        events.send(("fatal", str(exc) if isinstance(exc, StudyFileError)
                      else redact_text(f"a worker could not start: {type(exc).__name__}: {exc}", job.storage)))
        os._exit(EXIT_FATAL)
    database_lock = _DatabaseLock.of(storage, internals.study_id(study))
    try:
        if _run_trials(job, study, runner, lambda: _Claim(lock, lock_owner, database_lock), stop, events,
                       parent) and job.confirm:
            _serve_confirmations(runner, stop, events, orders, parent)
        storage.flush()
    except StorageUnavailableError as exc:
        events.send(("storage", str(exc)))
        os._exit(EXIT_STORAGE)
    except (StudyFileExit, InternalError) as exc:
        storage.flush()
        events.send(_internal(exc) if isinstance(exc, InternalError) else ("fatal", str(exc)))
        os._exit(EXIT_FATAL)
    os._exit(0)  # skip TensorFlow's slow interpreter teardown; everything is in the storage


def _internal(exc: InternalError) -> tuple:
    """The event that stops the run on lrsearch's own bug: "fatal" with a flag after the
    message, which makes the parent raise InternalError (exit 70 in the CLI)."""
    return ("fatal", str(exc), "internal")


def _check_model(job: Job, study, model: dict | None) -> None:
    """Record the model a fixed `build_model` makes; StudyFileError if it is not the one
    the study's trials trained (unless the run accepts changes)."""
    from lrsearch.architecture import difference
    from lrsearch.errors import StudyFileError

    if model is None:
        return
    before = record.read_study(study).model
    change = before and difference(before, model)
    if change and not job.accept_changes and study.get_trials(deepcopy=False):
        raise StudyFileError(job.study_path, f"build_model() makes another model than the trials of study "
                                             f"{job.study_name!r} trained ({change}), so they would not compare. "
                                             f"Give a new --study-name to start afresh, or --accept-changes to go "
                                             f"on with this model.")
    if change or not before:
        record.write_study(study, model=model)


def _run_trials(job: Job, study, runner, claim: Callable[[], "_Claim"], stop, events, parent: int) -> bool:
    """Claim and run trials until the study holds `n_trials`, `max_trials` ran, the run
    says stop or is gone, or trials keep failing; in `runner.lanes` threads at once, each
    with its own `claim()`. True if the study is full. Raises the StudyFileExit or
    InternalError that ended a trial."""
    search = _Search(job, study, runner, stop, events, parent)
    threads = [threading.Thread(target=search.loop, args=(claim(),), name=f"lrsearch-lane-{i}", daemon=True)
               for i in range(1, runner.lanes)]
    for thread in threads:
        thread.start()
    search.loop(claim())
    for thread in threads:
        thread.join()
    if search.ended:
        raise search.ended[0]
    return search.full


class _Search:
    """What the threads of `_run_trials` share: the trials they started, the failures in a
    row, whether the study is full, and what ends the worker: a study file's attempt to
    end the process, or lrsearch's own bug."""

    def __init__(self, job: Job, study, runner, stop, events, parent: int) -> None:
        self.job, self.study, self.runner, self.stop, self.events, self.parent = job, study, runner, stop, events, parent
        self.tag = worker_tag()
        self.lock = threading.Lock()
        self.started = 0
        self.failures_in_a_row = 0
        self.full = False
        self.ended: list = []  # a StudyFileExit or InternalError

    def _go_on(self) -> bool:
        with self.lock:
            if (self.full or self.ended or self.started >= self.job.max_trials
                    or self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW):  # failing trials take milliseconds: don't
                return False  # race through the study before the parent reads the streak and stops the run
            self.started += 1
        return not self.stop.value and os.getppid() == self.parent  # told to stop, or the run itself is gone

    def loop(self, claim: "_Claim") -> None:
        import optuna

        from lrsearch.errors import StudyFileError, StudyFileExit

        current: list = [None]  # the storage id of the trial being run

        def objective(trial):
            record.write_worker(trial, self.tag)
            claim.release()
            current[0] = internals.trial_id(trial)
            try:
                return self.runner(trial)
            except optuna.TrialPruned:
                raise
            except Exception as exc:
                record.write_failure(trial, exc.problem if isinstance(exc, StudyFileError) else
                                     f"{type(exc).__name__}: {exc}")
                if isinstance(exc, (StudyFileExit, InternalError)):
                    self.ended.append(exc)
                raise

        study = self.study
        while self._go_on():
            claim.acquire()
            try:
                record.fail_stale_trials(study)
                if claimed_trials(study) >= self.job.n_trials:
                    self.full = True
                    return
                current[0] = None
                study.optimize(objective, n_trials=1, catch=(Exception,))
            finally:
                claim.release()
            if self.ended:
                return
            if current[0] is not None:
                trial = record.read_trial(internals.storage_of(study).get_trial(current[0]))
                with self.lock:
                    self.failures_in_a_row = self.failures_in_a_row + 1 if trial.state == "FAIL" else 0
                self.events.send(("trial", trial.state, trial.fail_reason))


def _serve_confirmations(runner, stop, events, orders, parent: int) -> None:
    """After the search: say idle once a lane, then retrain the tasks the parent sends,
    one a lane at once, until it says done, the run stops or is gone. A task that raises
    is reported, not fatal (but a study file that tries to end the process, or an
    InternalError, is)."""
    import queue

    from lrsearch.config import LRConfig
    from lrsearch.errors import StudyFileError, StudyFileExit

    tasks: queue.SimpleQueue = queue.SimpleQueue()
    ended: list = []

    def serve() -> None:
        while (task := tasks.get()) is not None:
            try:
                value = runner.retrain(LRConfig.from_dict(task.config), task.params, task.seed)
            except (StudyFileExit, InternalError) as exc:
                ended.append(exc)
                return
            except Exception as exc:
                events.send(("confirm_failed", task, exc.problem if isinstance(exc, StudyFileError)
                             else f"{type(exc).__name__}: {exc}"))
            else:
                events.send(("confirmed", task, value))
            events.send(("idle",))

    threads = [threading.Thread(target=serve, name=f"lrsearch-confirm-{i}", daemon=True) for i in range(runner.lanes)]
    for thread in threads:
        thread.start()
        events.send(("idle",))
    while (order := _next_order(orders, stop, parent, give_up=lambda: bool(ended))) is not None:
        tasks.put(order[1])
    for thread in threads:
        tasks.put(None)
    for thread in threads:
        thread.join()
    if ended:
        raise ended[0]


def _receive_job(orders, stop, parent: int) -> Job | None:
    """The job the parent sends; None if it stops the run or is gone first."""
    while not stop.value and os.getppid() == parent:
        try:
            if orders.poll(0.25):
                return orders.recv()[1]
        except (EOFError, OSError):
            return None
    return None


def _next_order(orders, stop, parent: int, give_up: Callable[[], bool] = lambda: False) -> tuple | None:
    """The parent's next ("confirm", task); None when it says done, stops the run or is gone."""
    while not stop.value and os.getppid() == parent and not give_up():
        try:
            if orders.poll(0.25):
                order = orders.recv()
                return order if order[0] == "confirm" else None
        except (EOFError, OSError):
            return None
    return None


class _Events:
    """What a worker tells its parent; nobody listens once the run is gone."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.lock = threading.Lock()  # threads in lanes send too

    def send(self, event: tuple) -> None:
        try:
            with self.lock:
                self.pipe.send(event)
        except OSError:  # the parent ended: the worker finishes its trial and stops
            pass


class _Claim:
    """The lock under which a worker counts the study's trials and creates the next one:
    the machine-wide lock, recording its holder so that the parent can free it if the
    holder dies, then the database's lock if there is one."""

    def __init__(self, lock, owner, database_lock: "_DatabaseLock | None") -> None:
        self.lock, self.owner, self.database_lock, self.held = lock, owner, database_lock, False

    def acquire(self) -> None:
        self.lock.acquire()
        self.owner.value = os.getpid()
        self.held = True
        if self.database_lock:
            self.database_lock.acquire()

    def release(self) -> None:
        if self.held:
            if self.database_lock:
                self.database_lock.release()
            self.held = False
            self.owner.value = 0
            self.lock.release()


class _DatabaseLock:
    """A PostgreSQL advisory lock on one study, held on a connection of its own, so that
    workers of several machines claim trials one at a time. The server frees it when the
    connection drops, so a worker that dies holding it blocks no one."""

    NAMESPACE = 0x6C72  # "lr": the first key of pg_advisory_lock(int, int)

    @classmethod
    def of(cls, storage, study_id: int) -> "_DatabaseLock | None":
        from lrsearch.resilient import rdb_under

        rdb = rdb_under(storage)
        engine = getattr(rdb, "engine", None)
        if engine is None or engine.dialect.name != "postgresql":
            return None
        return cls(engine, study_id, getattr(storage, "retrying", lambda work: work()))

    def __init__(self, engine, study_id: int, retrying=lambda work: work()) -> None:
        self.engine, self.retrying = engine, retrying
        self.connection, self.key = None, {"space": self.NAMESPACE, "study": study_id}

    def acquire(self) -> None:
        self.retrying(lambda: self._execute("SELECT pg_advisory_lock(:space, :study)"))

    def release(self) -> None:
        """Free the lock; a connection lost meanwhile freed it already."""
        try:
            self._execute("SELECT pg_advisory_unlock(:space, :study)")
        except Exception:
            self._drop()

    def _execute(self, sql: str) -> None:
        from sqlalchemy import text

        try:
            if self.connection is None:
                self.connection = self.engine.connect()
            self.connection.execute(text(sql), self.key)
            self.connection.commit()
        except Exception:
            self._drop()  # reconnect next time (a server restart ends the session, and the lock with it)
            raise

    def _drop(self) -> None:
        if self.connection is not None:
            try:
                self.connection.invalidate()
            except Exception:
                pass
            self.connection = None


# --------------------------------------------------------------------------- parent side


@dataclasses.dataclass
class Outcome:
    interrupted: bool = False
    fatal: str | None = None
    failure_streak: str | None = None
    storage_error: str | None = None
    replaced_workers: int = 0
    confirm_failures: list[str] = dataclasses.field(default_factory=list)
    confirmation_left: bool = False  # the run stopped before its confirmation was done


@dataclasses.dataclass
class Confirming:
    """The confirmation a run does once its search is done: the `top` trials on `seeds`
    fresh seeds (`lrsearch.confirm`). `after_running`: wait for RUNNING trials first."""

    top: int
    seeds: int
    after_running: bool = True
    on_start: Callable[[list], None] = lambda tasks: None  # the planned `confirm.Task`s
    on_done: Callable[[], None] = lambda: None


class Supervisor:
    """Start, watch and replace the workers of one run."""

    def __init__(self, slots: list[Slot],
                 say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> None:
        self.slots, self.say = slots, say
        self.job: Job | None = None
        self.study = None
        self.confirming: Confirming | None = None
        self.on_tick: Callable[[], None] = lambda: None
        self.pending: list | None = None  # confirmation tasks not yet sent (None: not planned yet)
        self.assigned: dict[int, list] = {}  # worker index -> the tasks it trains (one a lane)
        self.idle: collections.Counter = collections.Counter()  # worker index -> lanes waiting for a task
        self._values: dict[int, dict[int, float | None]] = {}  # trial number -> seed -> value
        self._retried: set[tuple[int, int]] = set()
        self.context = mp.get_context("spawn")
        self.lock = self.context.Lock()
        # Plain shared integers: no lock inside that a killed worker could leave held.
        self.lock_owner = self.context.RawValue("i", 0)
        self.stop_flag = self.context.RawValue("b", 0)
        self.processes: dict[int, mp.Process] = {}
        self.pipes: dict[int, object] = {}  # index -> receiving end of the worker's pipe
        self.orders: dict[int, object] = {}  # index -> sending end of the pipe to the worker
        self._generations = collections.Counter()  # index -> workers started there so far
        self.ready: set[int] = set()  # workers past loading the data and the preflight check
        self.training_path: str | None = None
        self.outcome = Outcome()
        self._waiting_note: str | None = None
        self._interrupts = 0
        self._kill_reason: str | None = None
        self._failures_in_a_row = 0
        self._deaths_without_trial = 0
        self._internal_error: str | None = None  # a worker hit lrsearch's own bug: `run` raises it

    def prestart(self) -> None:
        """Start a worker per slot before the job is known: each sets its device and
        imports TensorFlow (seconds) while the parent loads the study file (which may
        import TensorFlow too) and opens the storage; `run` hands them the job."""
        for index in range(len(self.slots)):
            self._start(index)

    def close(self) -> None:
        """End the workers of a run that did not happen (`prestart` without `run`)."""
        for index in list(self.processes):
            self._kill(index, "the run did not start")

    def stop(self) -> None:
        """No new trials; running ones finish."""
        self.stop_flag.value = 1

    def stopping(self) -> bool:
        return bool(self.stop_flag.value)

    def remaining(self) -> int:
        return self.job.n_trials - claimed_trials(self.study)

    def run(self, job: Job, study, on_tick: Callable[[], None] | None = None,
            confirming: Confirming | None = None) -> Outcome:
        """Run `job` on `study` (an Optuna study on a storage from
        `lrsearch.storage.open_storage`) until it is full, and confirmed with `confirming`
        (which needs `job.confirm`). Raises InternalError, once the workers are gone,
        if one of them hit it."""
        self.job, self.study, self.confirming = job, study, confirming
        self.on_tick = on_tick or self.on_tick
        storage = internals.storage_of(study)
        if hasattr(storage, "abort"):  # a second Ctrl-C ends a wait for the storage
            storage.abort = lambda: self._kill_reason is not None
        for index in self.processes:
            self._send(index, ("job", job))
        main_thread = threading.current_thread() is threading.main_thread()  # only it may handle signals
        previous = {signum: signal.signal(signum, self._on_signal)
                    for signum in ((signal.SIGINT, signal.SIGTERM) if main_thread else ())}
        try:
            fail_dead_local_trials(self.study)
            record.fail_stale_trials(self.study)
            if self._work_left():
                for index in range(len(self.slots)):
                    if index not in self.processes:
                        self._start(index)
            checked = time.monotonic()
            while self.processes or self._waiting_for_others():
                if self._kill_reason:
                    self._kill_all(self._kill_reason)
                elif self.stopping():
                    self._kill_unready()
                self._drain_events()
                self._reap()
                self._confirm_step()
                self.on_tick()
                if time.monotonic() - checked >= STALE_CHECK_INTERVAL:
                    record.fail_stale_trials(self.study)
                    checked = time.monotonic()
                time.sleep(0.25)
        except StorageUnavailableError as exc:
            self.outcome.storage_error = str(exc)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._kill_all("the run was stopped")
        if not self.outcome.storage_error:
            fail_dead_local_trials(self.study)
        if self._internal_error:
            raise InternalError(self._internal_error)
        self.outcome.confirmation_left = self._confirmation_left()
        return self.outcome

    def _waiting_for_others(self) -> bool:
        """With no worker left here: start them again if the study lost trials (one
        elsewhere failed), and keep the run going while trials of live workers elsewhere
        are RUNNING (failing those whose heartbeats stop), so that it never ends on a
        trial that nobody will finish."""
        if self.stopping():
            return False
        if self._work_left():
            for index in range(len(self.slots)):
                self._start(index)
            return True
        return bool(self._live_running())

    def _work_left(self) -> bool:
        """Trials to claim, or a confirmation not finished."""
        return self.remaining() > 0 or self._confirmation_left()

    def _confirmation_left(self) -> bool:
        return self.confirming is not None and (self.pending is None or bool(self.pending or self._in_training()))

    def _live_running(self) -> list[str]:
        """The workers of RUNNING trials that may still finish them; says once which run
        elsewhere than in this run's workers."""
        heartbeats = getattr(internals.storage_of(self.study), "is_heartbeat_enabled", lambda: False)()
        tags = [t.user_attrs["worker"] for t in self.study.get_trials(deepcopy=False, states=(_running(),))
                if _is_live_elsewhere(t.user_attrs.get("worker"), heartbeats)]
        ours = {worker_tag(process.pid) for process in self.processes.values()}
        others = sorted(set(tags) - ours)
        if others:
            note = (f"Waiting for {len([t for t in tags if t not in ours])} trial(s) running in {', '.join(others)}"
                    + (" (a trial whose heartbeats stop is failed)" if heartbeats else "") + ".")
            if note != self._waiting_note:
                self.say(note)
                self._waiting_note = note
        return tags

    def _confirm_step(self) -> None:
        """Once the search is done, plan the confirmation and hand its tasks to idle
        workers; dismiss them when none is left (or when the study lost a trial and must
        search again: they end, and are started afresh)."""
        from lrsearch import confirm

        if self.confirming is None or self.stopping() or not +self.idle:
            return
        if self.remaining() > 0:
            self._dismiss(list(self.idle))
            return
        if self.pending is None:
            if self.confirming.after_running and self._live_running():
                return
            self.pending = confirm.plan(self.study, self.confirming.top, self.confirming.seeds)
            self._values = record.read_confirmations(self.study)
            self.confirming.on_start(list(self.pending))
        while self.pending and +self.idle:
            index = next(index for index, free in self.idle.items() if free > 0)
            self.idle[index] -= 1
            task = self.pending.pop(0)
            self.assigned.setdefault(index, []).append(task)
            self._send(index, ("confirm", task))
        if not self.pending and not self._in_training():
            self._dismiss(list(self.idle))

    def _in_training(self) -> bool:
        return any(self.assigned.values())

    def _dismiss(self, indices) -> None:
        for index in indices:
            self._send(index, ("done",))
            self.idle.pop(index, None)

    def _send(self, index: int, order: tuple) -> None:
        try:
            self.orders[index].send(order)
        except OSError:  # it died meanwhile; reaping it returns its task
            pass

    def _confirmed(self, index: int, task, value: float | None) -> None:
        self._unassign(index, task)
        self._values.setdefault(task.number, {})[task.seed] = value
        record.write_confirmation(self.study, task.number, self._values[task.number])
        self.confirming.on_done()

    def _start(self, index: int) -> None:
        receiver, sender = self.context.Pipe(duplex=False)
        order_receiver, order_sender = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=worker_main, name=f"lrsearch-worker-{index}", daemon=True,
            args=(self.slots[index], index, self._generations[index], self.lock, self.lock_owner, self.stop_flag,
                  sender, order_receiver),
        )
        process.start()
        self._generations[index] += 1
        sender.close()
        order_receiver.close()
        self.processes[index], self.pipes[index], self.orders[index] = process, receiver, order_sender
        if self.job is not None:
            self._send(index, ("job", self.job))

    def _reap(self) -> None:
        for index, process in list(self.processes.items()):
            if process.is_alive():
                continue
            process.join()
            self._forget(index)
            code = process.exitcode
            if code in (EXIT_FATAL, EXIT_STORAGE):
                continue
            if code != 0:
                self._fail_trials_of(process.pid, f"worker died: {describe_exit(code)}")
                self._deaths_without_trial += 1
                if self._deaths_without_trial >= 3 and not self.stopping():
                    self.outcome.fatal = (f"workers keep dying ({describe_exit(code)}) before finishing a trial; "
                                          f"run with --workers 1 --verbose to see why.")
                    self.stop()
            if self.stopping() or not self._work_left():
                continue
            if code != 0:
                self.outcome.replaced_workers += 1
            self._start(index)

    def _forget(self, index: int) -> None:
        """Drop a finished worker, reading what it sent before it ended. The confirmation
        tasks it was training go back to the queue: once if the worker died (a second
        death skips them), always if the run stopped it."""
        self._drain_events([index])
        self.pipes.pop(index).close()
        self.orders.pop(index).close()
        del self.processes[index]
        self.ready.discard(index)
        self.idle.pop(index, None)
        for task in self.assigned.pop(index, []):
            if self.stopping():
                self.pending.insert(0, task)
            elif (task.number, task.seed) in self._retried:
                self.outcome.confirm_failures.append(f"trial {task.number} seed {task.seed}: its worker died twice")
            else:
                self._retried.add((task.number, task.seed))
                self.pending.insert(0, task)

    def _unassign(self, index: int, task) -> None:
        if task in self.assigned.get(index, []):
            self.assigned[index].remove(task)

    def _fail_trials_of(self, pid: int, reason: str) -> None:
        held_lock = self.lock_owner.value == pid  # a dead worker's value cannot change any more
        if held_lock:
            self.lock_owner.value = 0
            self.lock.release()
        if self.study is None:  # it never had a job
            return
        try:
            record.fail_running_trials(self.study, lambda tag: tag == worker_tag(pid) or (held_lock and tag is None),
                                       reason)
        except StorageUnavailableError:
            pass  # its trial stays RUNNING for now; the next run fails it (its process is gone)

    def _drain_events(self, indices=None) -> None:
        pipes = {self.pipes[index]: index for index in (self.pipes if indices is None else indices)}
        for pipe in wait(list(pipes), timeout=0):
            try:
                while pipe.poll():
                    self._on_event(pipes[pipe], *pipe.recv())
            except (EOFError, OSError):  # the worker ended, perhaps in the middle of a message
                pass

    def _on_event(self, index: int, kind: str, *details) -> None:
        if kind == "ready":
            self.ready.add(index)
            if self.training_path is None:
                self.training_path = details[0]
                self.say(f"Trials train with {details[0]}.")
        elif kind == "fatal":
            self.outcome.fatal = details[0]
            if details[1:] == ("internal",):
                self._internal_error = details[0]
            self.stop()
        elif kind == "storage":
            self.outcome.storage_error = details[0]
            self.stop()
        elif kind == "idle":
            self.idle[index] += 1
        elif kind == "confirmed":
            self._deaths_without_trial = 0
            self._confirmed(index, *details)
        elif kind == "confirm_failed":
            task, reason = details
            self._unassign(index, task)
            self.outcome.confirm_failures.append(f"trial {task.number} seed {task.seed}: {reason}")
        elif kind == "trial":
            state, reason = details
            self._deaths_without_trial = 0
            self._failures_in_a_row = self._failures_in_a_row + 1 if state == "FAIL" else 0
            if self._failures_in_a_row >= MAX_FAILURES_IN_A_ROW and not self.stopping():
                self.outcome.failure_streak = (f"{self._failures_in_a_row} trials failed in a row; "
                                               f"the last with: {reason}")
                self.stop()

    def _on_signal(self, signum, frame) -> None:
        """Ctrl-C: stop gracefully, or at once the second time; SIGTERM: at once. The main
        loop does the killing, so that this handler never races it."""
        self.outcome.interrupted = True
        self.stop()
        if signum == signal.SIGTERM:
            self._kill_reason = "the run was terminated (SIGTERM)"
            return
        self._interrupts += 1
        if self._interrupts == 1:
            print("\nStopping: running trials finish, no new ones start (Ctrl-C again to stop now).",
                  file=sys.stderr, flush=True)
        else:
            self._kill_reason = "interrupted by Ctrl-C"

    def _kill_all(self, reason: str) -> None:
        for index in list(self.processes):
            self._kill(index, reason)

    def _kill_unready(self) -> None:
        """Stopping: end the workers still loading data or checking the model (which may
        hang in the study file's code); they hold no trial."""
        self._drain_events()
        for index in list(self.processes):
            if index not in self.ready:
                self._kill(index, "the run stopped while the worker was starting")

    def _kill(self, index: int, reason: str) -> None:
        process = self.processes[index]
        if process.is_alive():
            process.kill()
        process.join()
        self._forget(index)
        self._fail_trials_of(process.pid, reason)


def describe_exit(code: int | None) -> str:
    """A worker's exit code in words: `killed by SIGKILL (kill -9 or out of memory)`."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        cause = {"SIGKILL": "kill -9 or out of memory", "SIGSEGV": "a crash", "SIGABRT": "a crash"}.get(name)
        return f"killed by {name}" + (f" ({cause})" if cause else "")
    return f"exit code {code}"


def fail_dead_local_trials(study) -> int:
    """Fail RUNNING trials left by processes of this machine that no longer exist (a run
    killed outright); other machines' trials are left to heartbeats."""
    host = socket.gethostname()

    def dead_here(tag: str | None) -> bool:
        where = record.split_worker_tag(tag)
        return where is not None and where[0] == host and not _alive(where[1])

    return record.fail_running_trials(study, dead_here, "its worker process is gone (the run was killed)")


def _running():
    from optuna.trial import TrialState

    return TrialState.RUNNING


def _is_live_elsewhere(tag: str | None, heartbeats: bool) -> bool:
    """Whether a RUNNING trial's worker may still finish it: any lrsearch worker where
    heartbeats will tell if it vanishes, else a live process of this machine."""
    where = record.split_worker_tag(tag)
    if where is None:
        return False
    return heartbeats or (where[0] == socket.gethostname() and _alive(where[1]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
