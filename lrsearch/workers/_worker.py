"""The worker process: its entry point, its start-up, and its confirmation trainings.

A worker is `spawn`ed by the parent and sets its device (CUDA_VISIBLE_DEVICES, thread pools) before importing
TensorFlow, which it does before it has its job (so that this overlaps the parent's own loading of the study file);
then it loads the study file once, runs trials (`_trials`), and once the study is full retrains the confirmation
tasks the parent sends. It ends with an exit code from `_job` that says whether the parent may replace it.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import warnings

from lrsearch import internals, results
from lrsearch.devices import Slot
from lrsearch.errors import InternalError, StorageUnavailableError, WriteError
from lrsearch.workers._claims import Claim, MachineLock, claimed_states
from lrsearch.workers._job import EXIT_FATAL, EXIT_STORAGE, Job, open_study, sampler_seed
from lrsearch.workers._link import ParentLink
from lrsearch.workers._messages import Confirmed, ConfirmFailed, Fatal, Idle, Ready, Starting, StorageLost
from lrsearch.workers._study_lock import study_lock
from lrsearch.workers._trials import run_trials

#: Seconds a worker waits after SIGTERM for the parent to kill it.
TERM_GRACE = 10.0


def worker_main(slot: Slot, index: int, generation: int, machine_lock: MachineLock, stop, pipe, orders) -> None:
    """Entry point of a worker process (spawned); `generation` counts the workers started
    before it in its slot. `stop` is a shared flag, `pipe` the sending end of this worker's
    pipe to the parent, `orders` the receiving end of the parent's pipe to it, on which
    the job comes first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    signal.signal(signal.SIGTERM, _end_soon)
    link = ParentLink(stop, pipe, orders, parent=os.getppid())
    os.environ.update(slot.environment())
    from lrsearch.devices import import_tensorflow

    import_tensorflow()  # first, before any module below imports it noisily; maybe before the job is known
    job = link.receive_job()
    if job is None:
        os._exit(0)
    storage, study, runner = _start_up(job, slot, index, generation, link)
    os._exit(_work(job, storage, study, runner, machine_lock, link))  # os._exit: skip TensorFlow's slow teardown


def _end_soon(signum, frame) -> None:
    """SIGTERM, which a service manager sends the parent too: the parent kills this worker
    at a moment when no worker writes to the storage; should it not, the worker ends by
    itself after TERM_GRACE seconds."""
    threading.Timer(TERM_GRACE, os._exit, args=(128 + signum,)).start()


def _start_up(job: Job, slot: Slot, index: int, generation: int, link: "ParentLink"):
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
        return _load(job, slot, index, generation, link)
    except StorageUnavailableError as exc:
        link.tell(StorageLost(str(exc)))
        os._exit(EXIT_STORAGE)
    except (InternalError, WriteError) as exc:
        link.tell(Fatal(str(exc), error=exc))
        os._exit(EXIT_FATAL)
    except Exception as exc:  # the same in every worker: stop the run rather than restart workers
        link.tell(Fatal(str(exc) if isinstance(exc, StudyFileError) else
                        redact_text(f"a worker could not start: {problem_of(exc)}", job.options.storage)))
        os._exit(EXIT_FATAL)


def _load(job: Job, slot: Slot, index: int, generation: int, link: "ParentLink"):
    """Configure the device, open the storage and the study, load the study file with the
    run's seed and the ranges --bounds-from-find-lr narrowed, check the model; say Ready."""
    from lrsearch.devices import configure_tensorflow
    from lrsearch.rangetest import apply_recorded_bounds
    from lrsearch.storage import WriteBackStorage, open_storage
    from lrsearch.study import unpickle_study
    from lrsearch.training import TrialRunner, preflight

    device = configure_tensorflow(slot)
    link.tell(Starting("storage"))
    storage = WriteBackStorage(open_storage(job.options.storage, wait_to_open=True))
    held = storage.get_n_trials(storage.get_study_id_from_name(job.study_name), state=claimed_states())
    study = open_study(job, seed=sampler_seed(job.seed, index, generation, held), storage=storage)
    link.tell(Starting("study"))
    study_file = unpickle_study(job.study_path, job.study_pickle).with_seed(job.seed)
    study_file = apply_recorded_bounds(study_file, study)
    link.tell(Starting("data"))
    runner = TrialRunner(study_file, epochs=job.epochs, device=f"{socket.gethostname()}/{device}")
    link.tell(Starting("model"))
    checked = preflight(runner, job.options.lanes, job.lane_cap)
    _check_model(job, study, checked.model)
    link.tell(Ready(checked.training_path))
    return storage, study, runner


def _work(job: Job, storage, study, runner, machine_lock: MachineLock, link: "ParentLink") -> int:
    """Run trials, then the confirmation if the study is full and the run confirms; the
    worker's exit code. Writes what is behind to the storage before it ends."""
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


def serve_confirmations(runner, link: "ParentLink") -> None:
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
            try:
                value = runner.retrain(LRConfig.from_dict(task.config), task.params, task.seed)
            except (StudyFileExit, InternalError) as exc:
                ended.append(exc)
                return
            except Exception as exc:
                link.tell(ConfirmFailed(task, problem_of(exc)))
            else:
                link.tell(Confirmed(task, value))
            link.tell(Idle())

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
