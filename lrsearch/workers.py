"""Run a study's trials in worker processes that share one Optuna storage.

Each worker is a `spawn`ed process that sets its device (CUDA_VISIBLE_DEVICES, thread
pools) before importing TensorFlow, loads the study file once, and runs trials until the
study holds `n_trials` trials, it has run `max_trials` (then it exits and is replaced:
TensorFlow leaks a little memory per model), or it is told to stop.

The parent (`Supervisor`) never imports TensorFlow. It starts the workers, replaces one
that dies and marks the trial it was running failed, stops the run after several
failures in a row, and handles Ctrl-C: the first lets running trials finish, the second
kills them (marked failed). Workers count trials under a lock shared on this machine, so
a run ends with exactly `n_trials`; several machines (RDB storage) may overshoot by a
trial or two, and heartbeats fail the trials of a machine that vanished.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import signal
import socket
import sys
import time
import warnings
from typing import Callable

from lrsearch.devices import Slot

EXIT_FATAL = 3
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


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


def worker_tag(pid: int | None = None) -> str:
    """How a trial names the process running it."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def open_study(job: Job, seed: int | None, heartbeat: bool = False):
    """The Optuna study of `job`, with lrsearch's sampler and pruner."""
    import optuna

    from lrsearch.pruning import make_pruner
    from lrsearch.storage import open_storage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed)
    return optuna.load_study(study_name=job.study_name, storage=open_storage(job.storage, heartbeat=heartbeat),
                             sampler=sampler, pruner=make_pruner(job.epochs))


# --------------------------------------------------------------------------- worker side


def worker_main(job: Job, slot: Slot, index: int, lock, lock_owner, stop, events) -> None:
    """Entry point of a worker process (spawned)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    os.environ.update(slot.environment())
    import optuna

    from lrsearch.devices import configure_tensorflow
    from lrsearch.lrfinder import apply_recorded_bounds
    from lrsearch.runner import TrialRunner, preflight
    from lrsearch.studyfile import StudyFileError, load_study

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    try:
        device = configure_tensorflow(slot)
        study = open_study(job, seed=job.seed * 1000 + index * 7919 + os.getpid() % 1000, heartbeat=True)
        study_file = apply_recorded_bounds(load_study(job.study_path), study)  # --bounds-from-find-lr's ranges
        runner = TrialRunner(study_file, epochs=job.epochs, device=f"{socket.gethostname()}/{device}")
        preflight(runner)
    except StudyFileError as exc:
        events.put(("fatal", str(exc)))
        sys.exit(EXIT_FATAL)
    study_id = study._study_id
    tag = worker_tag()
    held = _Lock(lock, lock_owner)
    current: list = [None]  # the storage id of the trial being run

    def objective(trial):
        trial.set_user_attr("worker", tag)
        held.release()
        current[0] = trial._trial_id
        try:
            return runner(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}")
            raise

    for _ in range(job.max_trials):
        if stop.is_set():
            break
        held.acquire()
        if study._storage.get_n_trials(study_id) >= job.n_trials:
            held.release()
            break
        current[0] = None
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,))
        finally:
            held.release()
        if current[0] is not None:
            trial = study._storage.get_trial(current[0])
            events.put(("trial", trial.state.name, trial.user_attrs.get("fail_reason")))
    events.close()
    events.join_thread()
    os._exit(0)  # skip TensorFlow's slow interpreter teardown; everything is in the storage


class _Lock:
    """The machine-wide trial-claiming lock, recording its holder so that the parent can
    free it if the holder dies."""

    def __init__(self, lock, owner) -> None:
        self.lock, self.owner, self.held = lock, owner, False

    def acquire(self) -> None:
        self.lock.acquire()
        self.owner.value = os.getpid()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.owner.value = 0
            self.lock.release()


# --------------------------------------------------------------------------- parent side


@dataclasses.dataclass
class Outcome:
    interrupted: bool = False
    fatal: str | None = None
    failure_streak: str | None = None
    replaced_workers: int = 0


class Supervisor:
    """Start, watch and replace the workers of one run."""

    def __init__(self, job: Job, slots: list[Slot], on_tick: Callable[[], None] | None = None,
                 max_failures_in_a_row: int = 5) -> None:
        import optuna

        from lrsearch.storage import open_storage

        self.job, self.slots, self.on_tick = job, slots, on_tick or (lambda: None)
        self.max_failures_in_a_row = max_failures_in_a_row
        self.context = mp.get_context("spawn")
        self.lock = self.context.Lock()
        self.lock_owner = self.context.Value("i", 0)
        self.stop = self.context.Event()
        self.events = self.context.Queue()
        self.processes: dict[int, mp.Process] = {}
        self.study = optuna.load_study(study_name=job.study_name, storage=open_storage(job.storage))
        self.outcome = Outcome()
        self._interrupts = 0
        self._failures_in_a_row = 0
        self._deaths_without_trial = 0

    def remaining(self) -> int:
        return self.job.n_trials - self.study._storage.get_n_trials(self.study._study_id)

    def run(self) -> Outcome:
        fail_dead_local_trials(self.study)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            for index in range(len(self.slots)):
                self._start(index)
            while self.processes:
                self._drain_events()
                self._reap()
                self.on_tick()
                time.sleep(0.25)
            self._drain_events()
        finally:
            signal.signal(signal.SIGINT, previous)
            self._kill_all("the run was stopped")
        fail_dead_local_trials(self.study)
        return self.outcome

    def _start(self, index: int) -> None:
        process = self.context.Process(
            target=worker_main, name=f"lrsearch-worker-{index}", daemon=True,
            args=(self.job, self.slots[index], index, self.lock, self.lock_owner, self.stop, self.events),
        )
        process.start()
        self.processes[index] = process

    def _reap(self) -> None:
        for index, process in list(self.processes.items()):
            if process.is_alive():
                continue
            process.join()
            del self.processes[index]
            code = process.exitcode
            if code not in (0, EXIT_FATAL):
                self._fail_trials_of(process.pid, f"worker died (exit code {code}: killed, crashed or out of memory)")
                self._deaths_without_trial += 1
                if self._deaths_without_trial >= 3 and not self.stop.is_set():
                    self.outcome.fatal = (f"workers keep dying (last exit code {code}) before finishing a trial; "
                                          f"run with --workers 1 --verbose to see why.")
                    self.stop.set()
            if self.stop.is_set() or self.remaining() <= 0:
                continue
            if code != 0:
                self.outcome.replaced_workers += 1
            self._start(index)

    def _fail_trials_of(self, pid: int, reason: str) -> None:
        with self.lock_owner.get_lock():
            held_lock = self.lock_owner.value == pid
            if held_lock:
                self.lock_owner.value = 0
        fail_running_trials(self.study, lambda tag: tag == worker_tag(pid) or (held_lock and tag is None), reason)
        if held_lock:
            self.lock.release()

    def _drain_events(self) -> None:
        while True:
            try:
                kind, *rest = self.events.get_nowait()
            except queue.Empty:
                return
            if kind == "fatal":
                self.outcome.fatal = rest[0]
                self.stop.set()
            elif kind == "trial":
                state, reason = rest
                self._deaths_without_trial = 0
                self._failures_in_a_row = self._failures_in_a_row + 1 if state == "FAIL" else 0
                if self._failures_in_a_row >= self.max_failures_in_a_row and not self.stop.is_set():
                    self.outcome.failure_streak = (f"{self._failures_in_a_row} trials failed in a row; "
                                                   f"the last with: {reason}")
                    self.stop.set()

    def _on_sigint(self, signum, frame) -> None:
        self._interrupts += 1
        self.outcome.interrupted = True
        self.stop.set()
        if self._interrupts == 1:
            print("\nStopping: running trials finish, no new ones start (Ctrl-C again to stop now).",
                  file=sys.stderr, flush=True)
        else:
            self._kill_all("interrupted by Ctrl-C")

    def _kill_all(self, reason: str) -> None:
        for index, process in list(self.processes.items()):
            if process.is_alive():
                process.kill()
            process.join()
            self._fail_trials_of(process.pid, reason)
            del self.processes[index]


def fail_running_trials(study, belongs: Callable[[str | None], bool], reason: str) -> int:
    """Mark RUNNING trials whose worker tag satisfies `belongs` as failed, with `reason`."""
    from optuna.trial import TrialState

    count = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if belongs(trial.user_attrs.get("worker")):
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            count += 1
    return count


def fail_dead_local_trials(study) -> int:
    """Fail RUNNING trials left by processes of this machine that no longer exist (a run
    killed outright); other machines' trials are left to heartbeats."""
    host = socket.gethostname()

    def dead_here(tag: str | None) -> bool:
        if not tag or ":" not in tag:
            return False
        tag_host, _, pid = tag.rpartition(":")
        return tag_host == host and pid.isdigit() and not _alive(int(pid))

    return fail_running_trials(study, dead_here, "its worker process is gone (the run was killed)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
