"""The whole search as a library call: `search` runs a study (a study file, or one made by
`lrsearch.define_study`) in parallel worker processes with pruning, resumes it where it
stands, confirms its best trials on fresh seeds and writes its report; `join` adds this
machine's workers to a study that another machine runs. `lrsearch run` and `lrsearch
worker` are these functions behind a parser, and notebooks call them directly.

Progress goes to the terminal (or the notebook's output) as the CLI shows it; errors are
`lrsearch.errors`: a search that cannot go on raises, while Ctrl-C (the first lets running
trials finish, the second stops them) and the timeout end it with what it recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from lrsearch.confirm import DEFAULT_SEEDS, DEFAULT_TOP
from lrsearch.errors import SearchStopped, StorageError, StorageOpenError, StorageUnavailableError, UsageError
from lrsearch.storage import DEFAULT_STORAGE

#: Trials of a worker's share per lane it may choose: with more lanes than this allows,
#: the sampler would draw most of the study before any trial finished.
TRIALS_PER_LANE = 4


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What a search ended with. `best` is the pick (`lrsearch.confirm.rank`: by the mean
    over fresh seeds where confirmed), None if no trial completed; `confirmation` its
    values on those seeds; `outcome` one of "finished", "nothing to do" (the study was full
    and confirmed already), "interrupted" (Ctrl-C) or "timed out"; `report` the report
    folder, if one was written."""

    study: Any  # optuna.Study
    best: Any  # lrsearch.record.TrialRecord | None
    confirmation: Any  # lrsearch.confirm.Confirmation | None
    outcome: str
    report: Path | None = None

    @property
    def interrupted(self) -> bool:
        return self.outcome == "interrupted"

    def export(self, path: str | os.PathLike, *, top: int | None = None, fmt: str | None = None) -> Path:
        """Write the best configuration (or the `top` best) to JSON or YAML, as `lrsearch
        export` does; `lrsearch.load_config` reads it back."""
        from lrsearch.export import exported_configs, write

        return write(exported_configs(self.study, top=top), path, fmt=fmt, many=top is not None)


def search(study, *, storage: str = DEFAULT_STORAGE, study_name: str | None = None, n_trials: int | None = None,
           epochs: int | None = None, seed: int | None = None, timeout: float | None = None,
           workers: int | None = None, gpus: str = "all", per_gpu: int = 1, lanes: int | None = None,
           accept_changes: bool = False, recycle: int = 50,
           confirm: tuple[int, int] | None = (DEFAULT_TOP, DEFAULT_SEEDS), report: bool | str | os.PathLike = True,
           bounds_from_find_lr: bool = False) -> SearchResult:
    """Search `study` (a study file's path, or a `lrsearch.define_study` study) until its
    storage holds `n_trials` finished trials (default: the study's), then retrain the
    `confirm` = (K, N) best on N fresh seeds each (None: rank by each trial's own seed) and
    write the report folder (`report`: True for ./lrsearch-report-NAME, a path, or False).

    `storage` is a journal file path or a database URL (postgresql://...) that other
    machines `join`. `workers` defaults to one per GPU (`gpus`: "all", "none" or "0,1";
    `per_gpu` each), else one per CPU core; `lanes` trials train at once in each worker
    (None: as many as suit the model and device, see `lrsearch.lanes.auto_count`; 1 for a
    run that repeats exactly with one worker). `epochs` and `seed` override the study's; `timeout`
    (seconds) stops starting new trainings; `recycle` restarts a worker after that many
    trials. A study made with other settings resumes only with `accept_changes`.
    `bounds_from_find_lr` narrows the lr ranges by the LR range test first.
    Raises UsageError, StudyFileError, StorageError or SearchStopped.
    """
    return _run(study, _Options(
        storage=storage, study_name=study_name, n_trials=n_trials, epochs=epochs, seed=seed, timeout=timeout,
        workers=workers, gpus=gpus, per_gpu=per_gpu, lanes=lanes, accept_changes=accept_changes, recycle=recycle,
        confirm=confirm, report=report, bounds_from_find_lr=bounds_from_find_lr))


def join(study, *, storage: str, study_name: str | None = None, n_trials: int | None = None,
         epochs: int | None = None, seed: int | None = None, timeout: float | None = None,
         workers: int | None = None, gpus: str = "all", per_gpu: int = 1, lanes: int | None = None,
         accept_changes: bool = False, recycle: int = 50) -> SearchResult:
    """Run this machine's workers on a study that `search` runs elsewhere on the shared
    `storage` (a database URL), until it holds `n_trials`; with the study's own seed unless
    `seed` is given. The machine that started it confirms and reports. Options as `search`."""
    return _run(study, _Options(
        storage=storage, study_name=study_name, n_trials=n_trials, epochs=epochs, seed=seed, timeout=timeout,
        workers=workers, gpus=gpus, per_gpu=per_gpu, lanes=lanes, accept_changes=accept_changes, recycle=recycle,
        joining=True))


@dataclasses.dataclass(frozen=True)
class _Options:
    storage: str
    study_name: str | None
    n_trials: int | None
    epochs: int | None
    seed: int | None
    timeout: float | None
    workers: int | None
    gpus: str
    per_gpu: int
    lanes: int | None
    accept_changes: bool
    recycle: int
    confirm: tuple[int, int] | None = None
    report: bool | str | os.PathLike = False
    bounds_from_find_lr: bool = False
    joining: bool = False

    def check(self) -> None:
        """UsageError naming the keyword whose value is wrong."""
        if not isinstance(self.storage, (str, os.PathLike)) or not str(self.storage):
            raise UsageError(f"storage must be a journal file path or a database URL, but got {self.storage!r}.")
        for name, low in (("n_trials", 1), ("epochs", 1), ("recycle", 1), ("workers", 1), ("per_gpu", 1),
                          ("lanes", 1), ("seed", 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise UsageError(f"{name} must be a whole number >= {low}, but got {value!r}.")
        if self.timeout is not None and (isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float))
                                         or not self.timeout > 0):
            raise UsageError(f"timeout must be a number of seconds > 0, but got {self.timeout!r}.")
        confirm = self.confirm
        if confirm is not None and (not isinstance(confirm, (tuple, list)) or len(confirm) != 2 or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in confirm)):
            raise UsageError(f"confirm must be (K, N), how many top trials and fresh seeds each, both >= 1, or "
                             f"None; got {confirm!r}.")


def _run(study, options: _Options) -> SearchResult:
    from lrsearch import devices

    options.check()
    options = dataclasses.replace(options, storage=os.fspath(options.storage))
    slots = devices.plan(options.workers, devices.parse_gpus(options.gpus), options.per_gpu)
    with prestarted(slots) as pool:
        return _search(study, options, pool)


@contextlib.contextmanager
def prestarted(slots):
    """A Supervisor whose workers start importing TensorFlow now; ended on the way out if
    its run did not happen."""
    from lrsearch import progress
    from lrsearch.workers import Supervisor

    pool = Supervisor(slots, say=progress.say)
    pool.prestart()
    try:
        yield pool
    finally:
        pool.close()


def _search(study_or_path, options: _Options, pool) -> SearchResult:
    import optuna

    from lrsearch import __version__, progress, record
    from lrsearch.storage import is_url, open_storage, optuna_cli_hint, redact, redact_text
    from lrsearch.studyfile import Study, load_study, pickle_study
    from lrsearch.workers import Confirming, Job, claimed_trials

    if isinstance(study_or_path, Study):
        study_file = study_or_path
    elif isinstance(study_or_path, (str, os.PathLike)):
        study_file = load_study(study_or_path)
    else:
        raise UsageError(f"study must be a study file's path or a study from lrsearch.define_study, not "
                         f"{type(study_or_path).__name__}.")
    study_pickle = pickle_study(study_file)  # before the storage is touched: it may refuse
    settings = study_file.settings
    storage_url = options.storage
    if options.joining and not is_url(storage_url):
        print("note: a journal file is shared only by processes of one machine; other machines need "
              "a postgresql:// storage", file=sys.stderr)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = options.study_name or study_file.name
    n_trials = options.n_trials or settings.n_trials
    epochs = options.epochs or settings.epochs
    try:
        storage = open_storage(storage_url, notify=progress.say)
        study = optuna.create_study(study_name=name, storage=storage, direction=settings.direction,
                                    load_if_exists=True)
    except StorageError:
        raise
    except Exception as exc:  # a wrong URL, a server that is down, a file we cannot write
        raise StorageOpenError(redact_text(f"cannot open storage {redact(storage_url)}: {type(exc).__name__}: {exc}",
                                           storage_url)) from None
    if study.direction.name.lower() != settings.direction:
        raise UsageError(f"study {name!r} in {redact(storage_url)} was created to "
                         f"{study.direction.name.lower()}, but the study says {settings.direction}.")
    study_file = study_file.with_seed(_seed(options, study, name, settings.seed))
    settings = study_file.settings
    space = study_file.space.to_dict()
    check_unchanged(study, name, accept=options.accept_changes, objective=settings.objective, epochs=epochs,
                    batch_size=settings.batch_size, space=space)
    record.write_study(study, study_file=str(study_file.path), objective=settings.objective,
                       direction=settings.direction, epochs=epochs, batch_size=settings.batch_size,
                       seed=settings.seed, lrsearch_version=__version__, space=space)
    record.name_objective(study, settings.objective)

    print(f"Storage: {redact(storage_url)}  study: {name}")
    where = ["--storage", redact(storage_url)] if storage_url != DEFAULT_STORAGE else []
    named = ["--study-name", name] if options.study_name or study_file.in_python else []
    study_args = shlex.join([*([] if study_file.in_python else [str(study_file.path)]), *where, *named])
    if not options.joining:
        print(f"Watch it live:  {program()} dashboard {study_args}")
        print(f"List trials:    {optuna_cli_hint(storage_url, name, program('optuna'))}")
    _learning_rate_bounds(options, study_file, study)
    confirming = None if options.confirm is None else Confirming(*options.confirm)
    job = Job(study_path=str(study_file.path), study_pickle=study_pickle, storage=storage_url,
              study_name=name, n_trials=n_trials, epochs=epochs, max_trials=options.recycle, seed=settings.seed,
              accept_changes=options.accept_changes, confirm=confirming is not None, pruner=settings.pruner,
              lanes=options.lanes,
              lane_cap=max(1, n_trials // (TRIALS_PER_LANE * len(pool.slots))))
    remaining = n_trials - claimed_trials(study)
    if remaining > 0:
        print(f"Running up to {remaining} of {n_trials} trials ({epochs} epochs each) on {len(pool.slots)} "
              f"worker(s): {', '.join(slot.describe() for slot in pool.slots)}", flush=True)
    timer = Timer(options.timeout)
    outcome = supervise(pool, job, study, timer=timer, confirming=confirming, notes=not options.joining)
    if outcome is None:
        print(f"The study already holds {n_trials - remaining} trials (asked for {n_trials}); "
              f"raise n_trials (--n-trials) to search further.")
    finish(outcome, study, hint=None if study_file.in_python else f"{program()} confirm {study_args}",
           storage=None if options.joining else storage_url, in_python=study_file.in_python)
    folder = None
    if options.report and not options.joining:
        folder = _write_report(storage_url, name, options.report)
    ended = ("nothing to do" if outcome is None else "interrupted" if outcome.interrupted
             else "timed out" if timer.expired else "finished")
    return _result(study, ended, folder)


def _result(study, outcome: str, folder: Path | None) -> SearchResult:
    from lrsearch import confirm, record

    shared = record.read_study(study)
    confirmed = confirm.confirmations(study)
    ranked = confirm.rank(record.read_trials(study), study.direction.name.lower(), confirmed, shared.objective)
    best = ranked[0] if ranked else None
    return SearchResult(study=study, best=best, confirmation=best and confirmed.get(best.number), outcome=outcome,
                        report=folder)


def supervise(pool, job, study, *, timer: "Timer", confirming=None, notes: bool = True):
    """Run `job` in `pool` (a Supervisor) with a live progress bar (and a second one for
    the confirmation), and with `notes` each finished trial's dashboard note, until the
    study is full and confirmed or `timer` runs out; None if there was nothing to do."""
    from lrsearch import confirm, progress, record
    from lrsearch.notes import LiveNotes
    from lrsearch.workers import claimed_trials, fail_dead_local_trials

    fail_dead_local_trials(study)  # trials left RUNNING by a run of this machine that was killed outright
    record.fail_stale_trials(study)  # ... or by a machine that vanished
    busy = job.n_trials > claimed_trials(study) or progress.count_states(study)["RUNNING"]
    if not busy and not (confirming and confirm.plan(study, confirming.top, confirming.seeds)):
        return None
    bars = progress.RunProgress(study, job.n_trials, searching=bool(busy))
    if confirming:
        confirming.on_start = lambda tasks: bars.confirming(tasks, job.epochs, len(pool.slots))
        confirming.on_done = bars.confirmed
    timer.start()
    live = LiveNotes(study, job.storage) if notes else None
    try:
        return pool.run(job, study, confirming=confirming,
                        on_tick=lambda: (bars.tick(), live and live.tick(), timer.check(pool)))
    finally:
        bars.close()


def finish(outcome, study, hint: str | None, storage: str | None = None, in_python: bool = False) -> None:
    """Print the summary and what went wrong, and write the dashboard notes the trials
    lack given their `storage`; raise if the run failed (StorageUnavailableError,
    SearchStopped). `hint`: the command that completes a confirmation left undone;
    `in_python`: the study was defined in Python, not in a study file."""
    from lrsearch import notes, progress

    if outcome and outcome.storage_error:
        raise StorageUnavailableError(outcome.storage_error)
    print(progress.summary(study))
    if storage is not None:
        notes.annotate(study, storage)
    if outcome and outcome.replaced_workers:
        print(f"{outcome.replaced_workers} worker(s) died and were replaced; their trials were marked failed.")
    if outcome and outcome.confirm_failures:
        print(f"{len(outcome.confirm_failures)} confirmation training(s) failed: "
              + "; ".join(outcome.confirm_failures[:3]), file=sys.stderr)
    if outcome and outcome.fatal:
        raise SearchStopped(outcome.fatal, exit_code=2)
    if outcome and outcome.failure_streak:
        raise SearchStopped(f"{outcome.failure_streak}\nThe {'study' if in_python else 'study file'} is probably "
                            f"wrong; fix it and run the same search again.", exit_code=1)
    if outcome and outcome.confirmation_left:
        print(f"The confirmation over fresh seeds did not finish; the ranking uses what it recorded. "
              f"Run the same search again{f', or `{hint}`,' if hint else ''} to complete it.", file=sys.stderr)


def _seed(options: _Options, study, name: str, file_seed: int) -> int:
    """The run's seed: `seed`, else the study's own when joining it, else the study
    file's. UsageError if the study has trials made with another: each trial's seed is
    the study's plus its number, which export and confirmation replay."""
    from lrsearch import record

    recorded = record.read_study(study).seed
    seed = (options.seed if options.seed is not None else
            recorded if options.joining and recorded is not None else file_seed)
    if recorded is not None and seed != recorded and study.get_trials(deepcopy=False):
        raise UsageError(f"study {name!r} was made with seed {recorded}, not {seed}; a study keeps its seed (each "
                         f"trial's is the study's plus its number). Give a new study name (--study-name), or seed={recorded} (--seed {recorded}).")
    return seed


def check_unchanged(study, name: str, accept: bool, **current) -> None:
    """UsageError if the study was made with another objective, epochs, batch size or
    space (unless `accept`): its old trials would be ranked beside new ones that mean
    something else."""
    from lrsearch import record

    changed = record.changes(study, **current)
    if changed and study.get_trials(deepcopy=False) and not accept:
        raise UsageError(f"study {name!r} was made with other settings than these ({'; '.join(changed)}), so its "
                         f"trials would not compare with new ones. Give a new study name (--study-name) to start "
                         f"afresh, or accept_changes=True (--accept-changes) to go on with the new settings.")


def _learning_rate_bounds(options: _Options, study_file, study) -> None:
    """With `bounds_from_find_lr`, narrow and record the ranges (the workers read the
    record); else say which recorded ranges the workers will use, if any."""
    from lrsearch import bounds

    if options.bounds_from_find_lr:
        try:
            bounds.bounds_from_find_lr(study_file, study, echo=lambda line: print(line, flush=True))
        except UsageError as exc:
            raise UsageError(f"the LR range test failed: {exc}") from None
        return
    recorded, fresh = bounds.recorded_bounds(study_file, study)
    if recorded and fresh:
        print(f"Ranges narrowed by the LR range test (recorded with the study): {bounds.describe_bounds(recorded)}.")
    elif recorded:
        print(f"note: the study's lr/peak_lr ranges changed since the LR range test narrowed them "
              f"({bounds.describe_bounds(recorded)}); searching the study's ranges. Search with "
              f"bounds_from_find_lr=True (--bounds-from-find-lr) to narrow them again.", file=sys.stderr)


def program(name: str = "lrsearch") -> str:
    """How a user types `name` (lrsearch, optuna) of this environment now: the bare name
    where PATH finds it, else its path (a virtual environment not activated, as after the
    quick start)."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(here):
        return f"{shlex.quote(sys.executable)} -m lrsearch" if name == "lrsearch" else name
    found = shutil.which(name)
    if found and os.path.samefile(found, here):
        return name
    relative = os.path.relpath(here)
    return shlex.quote(here if relative.startswith("..") else relative)


class Timer:
    """The timeout of a run: once `seconds` have passed since `start`, no new trainings."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds, self.started, self.expired = seconds, None, False

    def start(self) -> None:
        self.started = time.monotonic()

    def check(self, supervisor) -> None:
        if (self.seconds is not None and time.monotonic() - self.started > self.seconds
                and not supervisor.stopping()):
            self.expired = True
            print(f"\nTimeout reached ({self.seconds:g}s): running trainings finish, no new ones start.",
                  file=sys.stderr, flush=True)
            supervisor.stop()


def _write_report(storage: str, study_name: str, where: bool | str | os.PathLike) -> Path:
    from lrsearch.report import write_report

    folder = write_report(storage, study_name, f"lrsearch-report-{study_name}" if where is True else where)
    print(f"Report: {folder}/summary.md")
    return Path(folder)
