"""The worker process: its entry point, its start-up, and its confirmation trainings.

A worker is `spawn`ed by the parent and sets its device (CUDA_VISIBLE_DEVICES, thread pools) before importing
TensorFlow, which it does before it has its job (so that this overlaps the parent's own loading of the study file);
then it loads the study file, runs trials (`_trials`), and once the study is full retrains the confirmation
tasks the parent sends. Then it says `Done` and waits, warm (`_warm`), for the next job of the same Python session.
It ends when the parent is gone, or with an exit code from `_job` that says whether the parent may replace it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
import warnings

from lrsearch import internals, results
from lrsearch.devices import Slot
from lrsearch.errors import InternalError, StorageUnavailableError, WriteError
from lrsearch.workers._claims import Claim, MachineLock, claimed_states
from lrsearch.workers._job import EXIT_FATAL, EXIT_STORAGE, Job, open_study, sampler_seed, start_from
from lrsearch.workers._link import ParentLink
from lrsearch.workers._messages import (Confirmed, ConfirmFailed, Done, Fatal, Idle, LanesTimed, Ready, RunJob,
                                        Starting, StorageLost)
from lrsearch.workers._study_lock import study_lock
from lrsearch.workers._trials import run_trials
from lrsearch.workers._warm import Warm

#: Seconds a worker waits after SIGTERM for the parent to kill it.
TERM_GRACE = 10.0


def worker_main(slot: Slot, scratch: str, machine_lock: MachineLock, stop, pipe, orders) -> None:
    """Entry point of a worker process (spawned). `scratch` is its temporary folder, `stop` its shared stop
    flag, `pipe` the sending end of its pipe to the parent, `orders` the receiving end of the parent's pipe to
    it, on which each job comes first. A worker that ran `recycle` trials ends after its job, and one given a
    job beyond them at once: the parent replaces it (TensorFlow keeps memory for each model it traced)."""
    _use_scratch(scratch)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    signal.signal(signal.SIGTERM, _end_soon)
    link = ParentLink(stop, pipe, orders, parent=os.getppid())
    warm = Warm(slot)
    os.environ.update(slot.environment())
    from lrsearch.devices import import_tensorflow

    import_tensorflow()  # first, before any module below imports it noisily; maybe before the job is known
    while (order := link.receive_job()) is not None and (job := _within_recycle(order.job, link)) is not None:
        storage, study, runner = _start_up(job, order, warm, link)
        code = _work(job, storage, study, runner, machine_lock, link)
        if code != 0 or _within_recycle(order.job, link) is None:
            _exit(code)
        link.tell(Done())
    _exit(0)


_scratch: str | None = None


def _use_scratch(folder: str) -> None:
    """Make `folder`, this worker's own, the temporary folder of Python's `tempfile`:
    TensorFlow deletes the modules AutoGraph writes there only in Python's exit handlers,
    which a worker skips (`_exit`) or never reaches (killed)."""
    global _scratch
    _scratch = tempfile.tempdir = folder


def _exit(code: int) -> None:
    """End the worker now, skipping TensorFlow's slow teardown, with its temporary folder
    removed (the parent removes it too: a killed worker cannot): `_scratch`, not
    `tempfile.tempdir`, which the study's code may have set to a folder of its own."""
    if _scratch is not None:
        shutil.rmtree(_scratch, ignore_errors=True)
    os._exit(code)


def _within_recycle(job: Job, link: ParentLink) -> Job | None:
    """`job` with `recycle` lowered by the trials this process ran already; None if it ran them all."""
    left = job.options.recycle - link.trials
    return dataclasses.replace(job, options=dataclasses.replace(job.options, recycle=left)) if left > 0 else None


def _end_soon(signum, frame) -> None:
    """SIGTERM, which a service manager sends the parent too: the parent kills this worker
    at a moment when no worker writes to the storage; should it not, the worker ends by
    itself after TERM_GRACE seconds."""
    threading.Timer(TERM_GRACE, _exit, args=(128 + signum,)).start()


def _start_up(job: Job, order: RunJob, warm: Warm, link: ParentLink):
    """The worker's storage, study and TrialRunner, once it passed the preflight check (and
    told the parent it is ready); the process exits if it cannot start."""
    import optuna

    # What `_load` uses, imported here: before the warnings are silenced, and outside the try
    # below (a module that cannot be imported is not the study file's fault).
    import lrsearch.rangetest  # noqa: F401
    import lrsearch.training  # noqa: F401
    from lrsearch.errors import StudyFileError
    from lrsearch.storage import redact_text
    from lrsearch.study import problem_of

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    logging.getLogger("lrsearch.training._epochs").setLevel(logging.ERROR)  # the run says once how trials train
    try:
        return _load(job, order, warm, link)
    except StorageUnavailableError as exc:
        link.tell(StorageLost(str(exc)))
        _exit(EXIT_STORAGE)
    except (InternalError, WriteError) as exc:
        link.tell(Fatal(str(exc), error=exc))
        _exit(EXIT_FATAL)
    except Exception as exc:  # the same in every worker: stop the run rather than restart workers
        link.tell(Fatal(str(exc) if isinstance(exc, StudyFileError) else
                        redact_text(f"a worker could not start: {problem_of(exc)}", job.options.storage)))
        _exit(EXIT_FATAL)


def _load(job: Job, order: RunJob, warm: Warm, link: ParentLink):
    """Take on the parent's setting, configure the device, open the storage and the study,
    load the study file with the run's seed and the ranges --bounds-from-find-lr narrowed,
    check the model (or take all that from the last job, `Warm`); say Ready."""
    from lrsearch.storage import WriteBackStorage

    warm.settle(order.setting)
    warm.device()
    link.tell(Starting("storage"))
    storage = WriteBackStorage(warm.storage(job.options.storage))
    held = storage.get_n_trials(storage.get_study_id_from_name(job.study_name), state=claimed_states())
    study = open_study(job, seed=sampler_seed(job.seed, order.index, order.generation, held), storage=storage)
    runner = warm.runner(job, study, link)
    start_from(job, study, runner.study.space)
    _check_model(job, study, runner.preflight.model)
    link.tell(Ready(runner.preflight.training_path))
    return storage, study, runner


def _work(job: Job, storage, study, runner, machine_lock: MachineLock, link: ParentLink) -> int:
    """Run trials, then the confirmation if the study is full and the run confirms; the
    worker's exit code (0: it may take the next job). Writes what is behind to the storage
    before it returns."""
    from lrsearch.errors import StudyFileExit

    shared_lock = study_lock(storage, job.options.storage, internals.study_id(study))  # with other runs' workers
    try:
        if run_trials(job, study, runner, lambda: Claim(machine_lock, shared_lock), link) and job.confirm:
            serve_confirmations(runner, link)
        storage.flush()
    except StorageUnavailableError as exc:
        link.tell(StorageLost(str(exc)))
        return EXIT_STORAGE
    except (StudyFileExit, InternalError, WriteError) as exc:
        if not isinstance(exc, WriteError):
            storage.flush()
        link.tell(Fatal(str(exc), error=None if isinstance(exc, StudyFileExit) else exc))
        return EXIT_FATAL
    return 0


def _check_model(job: Job, study, model: dict | None) -> None:
    """Record the model a fixed `build_model` makes; StudyFileError if it is not the one
    the study's trials trained (unless the run accepts changes)."""
    from lrsearch.errors import StudyFileError
    from lrsearch.training import difference

    if model is None:
        return
    before = results.read_study(study).model
    change = before and difference(before, model)
    if change and not job.options.accept_changes and study.get_trials(deepcopy=False):
        raise StudyFileError(job.study_path, f"build_model() makes another model than the trials of study "
                                             f"{job.study_name!r} trained ({change}), so they would not compare. "
                                             f"Give a new --study-name to start afresh, or --accept-changes to go "
                                             f"on with this model.")
    if change or not before:
        results.write_study(study, model=model)


def serve_confirmations(runner, link: ParentLink) -> None:
    """After the search: say Idle once a lane, then retrain the tasks the parent sends,
    one a lane at once, until it says Dismiss, the run stops or is gone. A task that raises
    is reported, not fatal (but a study file that tries to end the process, or an
    InternalError, is)."""
    from lrsearch.errors import StudyFileExit
    from lrsearch.lr import LRConfig
    from lrsearch.study import problem_of

    tasks: queue.SimpleQueue = queue.SimpleQueue()
    ended: list = []

    def serve() -> None:
        while (task := tasks.get()) is not None:
            if link.stopped():  # the run stopped since it sent the task: the task goes back to its queue
                continue
            started = time.perf_counter()
            try:
                value = runner.retrain(LRConfig.from_dict(task.config), task.params, task.seed, task.number)
            except (StudyFileExit, InternalError) as exc:
                ended.append(exc)
                return
            except Exception as exc:
                link.tell(ConfirmFailed(task, problem_of(exc)))
            else:
                link.tell(Confirmed(task, value, time.perf_counter() - started))
            link.tell(Idle())

    if (clause := runner.time_lanes()) is not None:  # a worker that searched nothing before: its lanes now
        link.tell(LanesTimed(clause))
    threads = [threading.Thread(target=serve, name=f"lrsearch-confirm-{i}", daemon=True) for i in range(runner.lanes)]
    for thread in threads:
        thread.start()
        link.tell(Idle())
    while (task := link.next_task(give_up=lambda: bool(ended))) is not None:
        tasks.put(task)
    for thread in threads:
        tasks.put(None)
    for thread in threads:
        thread.join()
    if ended:
        raise ended[0]
        return None
