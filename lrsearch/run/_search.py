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
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from lrsearch.errors import SearchStopped, StorageUnavailableError, UsageError, counted
from lrsearch.options import SearchOptions
from lrsearch.run._result import SearchResult, result_of
from lrsearch.storage import DEFAULT_STORAGE
from lrsearch.study import Study, load_study, pickle_study
from lrsearch.workers import Job

#: Trials of a worker's share per lane it may choose: with more lanes than this allows,
#: the sampler would draw most of the study before any trial finished.
TRIALS_PER_LANE = 4


def search(study, **options) -> SearchResult:
    """Search `study` (a study file's path, or a `lrsearch.define_study` study) until its
    storage holds `n_trials` finished trials (default: the study's), then retrain the
    `confirm` = (K, N) best on N fresh seeds each and write the report folder.

    `options` are `lrsearch.SearchOptions`' (storage, study_name, n_trials, epochs, seed,
    timeout, workers, gpus, per_gpu, lanes, accept_changes, recycle, confirm, report,
    bounds_from_find_lr, defaults_first). Raises UsageError, StudyFileError, StorageError or SearchStopped.
    """
    return _run(study, SearchOptions.of(**options))


def join(study, *, storage: str, **options) -> SearchResult:
    """Run this machine's workers on a study that `search` runs elsewhere on the shared
    `storage` (a database URL), until it holds `n_trials` (default: the one that run recorded
    with the study; UsageError before it did); with the study's own seed unless
    `seed` is given. The machine that started it confirms and reports. `options` as
    `search`'s, up to `recycle`."""
    for name in _NOT_WHEN_JOINING:
        if name in options:
            raise UsageError(f"{name} is decided by the machine that runs the search, not by one that joins it.")
    return _run(study, SearchOptions.of(storage=storage, joining=True, confirm=None, report=False, **options))


#: Options of the machine that started a search, which `join` does not take.
_NOT_WHEN_JOINING = ("confirm", "report", "bounds_from_find_lr", "defaults_first", "joining")


def _run(study, options: SearchOptions) -> SearchResult:
    with prestarted(options.slots()) as pool:
        return _search(study, options, pool)


@contextlib.contextmanager
def prestarted(slots):
    """A Supervisor with a worker per slot: warm from an earlier search of this Python
    session where one fits, else one that starts importing TensorFlow now. On the way out
    the workers that its run left (or all, if it did not happen) wait, warm, for the next
    search, until the session ends or `lrsearch.shutdown()`."""
    from lrsearch.run import _progress as progress
    from lrsearch.workers import Supervisor

    pool = Supervisor(slots, say=progress.say)
    pool.prestart()
    try:
        yield pool
    finally:
        pool.close()


def _search(study_or_path, options: SearchOptions, pool) -> SearchResult:
    """The run: open and check the study, start the workers on it, confirm, report."""
    from lrsearch.workers import Confirming, claimed_trials, fail_dead_local_trials

    study_file = _study_file(study_or_path)
    study_pickle = pickle_study(study_file)  # before the storage is touched: it may refuse
    report_to = _report_folder(options, options.study_name or study_file.name)
    study, study_file = _opened(study_file, options)
    blank = not study.user_attrs and not study.get_trials(deepcopy=False)  # as this run made it: see `finish`
    name, settings = study.study_name, study_file.settings
    n_trials, epochs = _targets(options, study, settings)
    _record_settings(study, study_file, epochs, options.accept_changes,
                     n_trials=None if options.joining else n_trials)
    study_args = _announce(study, study_file, options)
    try:
        _learning_rate_bounds(options, study_file, study)
    except BaseException:  # a range test that failed or was interrupted: no trial was asked
        if blank:
            _delete(study)
        raise
    confirming = Confirming.of(options.confirm)
    job = Job(study_path=str(study_file.path), study_pickle=study_pickle, study_name=name, n_trials=n_trials,
              epochs=epochs, seed=settings.seed, options=options, confirm=confirming is not None,
              pruner=settings.pruner, lane_cap=max(1, n_trials // (TRIALS_PER_LANE * len(pool.slots))),
              workers=len(pool.slots))
    fail_dead_local_trials(study)  # first: the trials a killed run of this machine left do not count
    remaining = n_trials - claimed_trials(study)
    if remaining > 0:
        print(f"Running up to {remaining} of {n_trials} trials ({counted(epochs, 'epoch')} each) on {len(pool.slots)} "
              f"worker(s): {', '.join(slot.describe() for slot in pool.slots)}", flush=True)
    timer = Timer(options.timeout)
    outcome = supervise(pool, job, study, timer=timer, confirming=confirming, notes=not options.joining)
    if outcome is None:
        print(f"The study already holds {n_trials - remaining} trials (asked for {n_trials}); "
              f"raise n_trials (--n-trials) to search further.")
    finish(outcome, study, hint=None if study_file.in_python else f"{program()} confirm {study_args}",
           storage=None if options.joining else options.storage, in_python=study_file.in_python, blank=blank)
    folder = None
    if report_to is not None and outcome and outcome.terminated:  # SIGTERM asks the run to end at once
        print(f"No report written (terminated); `{program()} report {study_args}` writes it.", file=sys.stderr)
    elif report_to is not None:
        try:
            folder = _write_report(options.storage, name, report_to)
        except KeyboardInterrupt:
            print(f"No report written (interrupted); `{program()} report {study_args}` writes it.", file=sys.stderr)
            raise
    return result_of(study, outcome, timer, folder)


def _study_file(study_or_path) -> Study:
    """The study `search` was given: a study file's path, or a `define_study` study."""
    if isinstance(study_or_path, Study):
        return study_or_path
    if isinstance(study_or_path, (str, os.PathLike)):
        return load_study(study_or_path)
    raise UsageError(f"study must be a study file's path or a study from lrsearch.define_study, not "
                     f"{type(study_or_path).__name__}.")


def _opened(study_file: Study, options: SearchOptions) -> tuple[Any, Study]:
    """The Optuna study the options name (created if new, but by a worker without n_trials,
    which joins a study), and the study file with the run's seed; UsageError if the stored
    study goes the other direction, or a joining worker's does not exist."""
    import optuna

    from lrsearch.run import _progress as progress
    from lrsearch.storage import NoSuchStudy, is_url, open_study, redact

    storage_url, settings = options.storage, study_file.settings
    if options.joining and not is_url(storage_url):
        print("note: a journal file is shared only by processes of one machine; other machines need "
              "a postgresql:// storage", file=sys.stderr)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = options.study_name or study_file.name
    joins = options.joining and not options.n_trials  # creates no study: a mistyped name would stay behind
    try:
        study = open_study(storage_url, name, direction=None if joins else settings.direction, notify=progress.say)
    except NoSuchStudy as exc:
        raise UsageError(f"{exc} A worker without --n-trials joins a study that `lrsearch run` (or a worker given "
                         f"--n-trials) made: start that first, or give its --study-name.") from None
    if study.direction.name.lower() != settings.direction:
        raise UsageError(f"study {name!r} in {redact(storage_url)} was created to "
                         f"{study.direction.name.lower()}, but the study says {settings.direction}.")
    return study, study_file.with_seed(_seed(options, study, name, settings.seed))


def _record_settings(study, study_file: Study, epochs: int, accept_changes: bool, n_trials: int | None) -> None:
    """Record what the study's trials mean, after checking that it has not changed, and the
    run's `n_trials` (None: keep the recorded one), which workers that join it keep to."""
    from lrsearch import results
    from lrsearch._version import __version__

    settings, space = study_file.settings, study_file.space.to_dict()
    check_unchanged(study, study.study_name, accept=accept_changes, objective=settings.objective, epochs=epochs,
                    batch_size=settings.batch_size, space=space)
    results.write_study(study, study_file=str(study_file.path), objective=settings.objective,
                       direction=settings.direction, epochs=epochs, batch_size=settings.batch_size,
                       seed=settings.seed, n_trials=n_trials, lrsearch_version=__version__, space=space)
    results.name_objective(study, settings.objective)


def _announce(study, study_file: Study, options: SearchOptions) -> str:
    """Print where the study is and how to watch it; the arguments that name it."""
    from lrsearch.storage import optuna_cli_hint, redact

    storage_url, name = options.storage, study.study_name
    print(f"Storage: {redact(storage_url)}  study: {name}")
    where = ["--storage", redact(storage_url)] if storage_url != DEFAULT_STORAGE else []
    named = ["--study-name", name] if options.study_name or study_file.in_python else []
    study_args = shlex.join([*([] if study_file.in_python else [str(study_file.path)]), *where, *named])
    if not options.joining:
        print(f"Watch it live:  {program()} dashboard {study_args}")
        print(f"List trials:    {optuna_cli_hint(storage_url, name, program('optuna'))}")
        if redact(storage_url) != storage_url:
            print("                (*** stands for the storage's password, which lrsearch never prints: type it "
                  "as you gave it)")
    return study_args


def supervise(pool, job, study, *, timer: "Timer", confirming=None, notes: bool = True):
    """Run `job` in `pool` (a Supervisor) with a live progress bar (and a second one for
    the confirmation), and with `notes` each finished trial's dashboard note, until the
    study is full and confirmed or `timer` runs out; None if there was nothing to do."""
    from lrsearch import results
    from lrsearch.dashboard import LiveNotes
    from lrsearch.run import _progress as progress
    from lrsearch.workers import claimed_trials, fail_dead_local_trials

    fail_dead_local_trials(study)  # trials left RUNNING by a run of this machine that was killed outright
    results.fail_stale_trials(study)  # ... or by a machine that vanished
    busy = job.n_trials > claimed_trials(study) or progress.count_states(study)["RUNNING"]
    if not busy and not (confirming and results.plan(study, confirming.top, confirming.seeds)):
        return None
    bars = progress.RunProgress(study, job.n_trials, searching=bool(busy))
    if confirming:
        confirming.on_start = lambda tasks: bars.confirming(tasks, job.epochs, len(pool.slots))
        confirming.on_done = bars.confirmed
    timer.start()
    live = LiveNotes(study, job.options.storage) if notes else None
    outcome = None
    try:
        outcome = pool.run(job, study, confirming=confirming,
                           on_tick=lambda: (bars.tick(), live and live.tick(), timer.check(pool)))
        return outcome
    finally:
        bars.close(final_read=outcome is not None and not outcome.storage_error)


def finish(outcome, study, hint: str | None, storage: str | None = None, in_python: bool = False,
           blank: bool = False) -> None:
    """Print the summary and what went wrong, and write the dashboard notes the trials
    lack given their `storage`; raise if the run failed (StorageUnavailableError,
    SearchStopped). `hint`: the command that completes a confirmation left undone;
    `in_python`: the study was defined in Python, not in a study file. A run stopped by its
    study before any trial (a worker's check of the data and model failed) prints no
    summary and, where the study was `blank` when the run opened it (no trials, nothing
    recorded: in practice made by this run), deletes it: the parent, which never imports
    TensorFlow, makes the study before its workers can check the data and model."""
    from lrsearch.dashboard import annotate
    from lrsearch.run import _progress as progress

    if outcome and outcome.storage_error:
        raise StorageUnavailableError(outcome.storage_error)
    if outcome and outcome.fatal and not study.get_trials(deepcopy=False):
        if blank:
            _delete(study)
        raise SearchStopped(outcome.fatal, exit_code=2)
    print(progress.summary(study))
    if storage is not None:
        annotate(study, storage)
    if outcome and outcome.replaced_workers:
        print(f"{outcome.replaced_workers} worker(s) died and were replaced; the trials they were training, if any, "
              f"were marked failed.")
    if outcome and outcome.confirm_failures:
        print(f"{len(outcome.confirm_failures)} confirmation training(s) failed: "
              + "; ".join(outcome.confirm_failures[:3]), file=sys.stderr)
    if outcome and outcome.fatal:
        raise SearchStopped(outcome.fatal, exit_code=2)
    if outcome and outcome.never_started:  # not the study file's fault: it may need longer than the timeout
        raise SearchStopped(outcome.never_started, exit_code=1)
    if outcome and outcome.failure_streak:
        raise SearchStopped(f"{outcome.failure_streak}\nThe {'study' if in_python else 'study file'} is probably "
                            f"wrong; fix it and run the same search again.", exit_code=1)
    if outcome and outcome.confirmation_left:
        print(f"The confirmation over fresh seeds did not finish; the ranking uses what it recorded. "
              f"Run the same search again{f', or `{hint}`,' if hint else ''} to complete it.", file=sys.stderr)


def _delete(study) -> None:
    """Delete `study` from its storage: a study this run made, which stopped before its first trial."""
    import optuna

    from lrsearch import internals

    optuna.delete_study(study_name=study.study_name, storage=internals.storage_of(study))


def _targets(options: SearchOptions, study, settings) -> tuple[int, int]:
    """The run's n_trials and epochs: those given, else, when joining, those its run
    recorded with the study (UsageError if it recorded none yet), else the study file's."""
    from lrsearch import results
    from lrsearch.storage import redact

    if not options.joining:
        return options.n_trials or settings.n_trials, options.epochs or settings.epochs
    record = results.read_study(study)
    if options.n_trials is None and record.n_trials is None:
        raise UsageError(f"study {study.study_name!r} in {redact(options.storage)} has no n_trials recorded by its "
                         f"run yet; start the run (lrsearch run) first, or give this worker n_trials (--n-trials).")
    return options.n_trials or record.n_trials, options.epochs or record.epochs or settings.epochs


def _seed(options: SearchOptions, study, name: str, file_seed: int) -> int:
    """The run's seed: `seed`, else the study's own when joining it, else the study
    file's. UsageError if the study has trials made with another: each trial's seed is
    the study's plus its number, which export and confirmation replay."""
    from lrsearch import results

    recorded = results.read_study(study).seed
    seed = (options.seed if options.seed is not None else
            recorded if options.joining and recorded is not None else file_seed)
    if recorded is not None and seed != recorded and study.get_trials(deepcopy=False):
        raise UsageError(f"study {name!r} was made with seed {recorded}, not {seed}; a study keeps its seed (each "
                         f"trial's is the study's plus its number). Give a new study name (--study-name), or "
                         f"seed={recorded} (--seed {recorded}).")
    return seed


def check_unchanged(study, name: str, accept: bool, **current) -> None:
    """UsageError if the study was made with another objective, epochs, batch size or
    space (unless `accept`): its old trials would be ranked beside new ones that mean
    something else."""
    from lrsearch import results

    changed = results.changes(study, **current)
    if changed and study.get_trials(deepcopy=False) and not accept:
        raise UsageError(f"study {name!r} was made with other settings than these ({'; '.join(changed)}), so its "
                         f"trials would not compare with new ones. Give a new study name (--study-name) to start "
                         f"afresh, or accept_changes=True (--accept-changes) to go on with the new settings.")


def _learning_rate_bounds(options: SearchOptions, study_file, study) -> None:
    """With `bounds_from_find_lr`, narrow and record the ranges (the workers read the
    record); else say which recorded ranges the workers will use, if any."""
    from lrsearch.rangetest import bounds_from_find_lr, describe_bounds, recorded_bounds

    if options.bounds_from_find_lr:
        try:
            bounds_from_find_lr(study_file, study, echo=lambda line: print(line, flush=True))
        except UsageError as exc:
            raise UsageError(f"the LR range test failed: {exc}") from None
        return
    recorded, fresh = recorded_bounds(study_file, study)
    if recorded and fresh:
        print(f"Ranges narrowed by the LR range test (recorded with the study): {describe_bounds(recorded)}.")
    elif recorded:
        print(f"note: the study's lr/peak_lr ranges changed since the LR range test narrowed them "
              f"({describe_bounds(recorded)}); searching the study's ranges. Search with "
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
            supervisor.time_out(self.seconds)


def _report_folder(options: SearchOptions, study_name: str) -> Path | None:
    """The folder the run's report goes to, checked writable before anything starts; None
    without a report."""
    from lrsearch.report import check_writable, report_folder

    if not options.report or options.joining:
        return None
    folder = report_folder(study_name, options.report)
    check_writable(folder)
    return folder


def _write_report(storage: str, study_name: str, folder: Path) -> Path:
    from lrsearch.report import write_report

    folder = write_report(storage, study_name, folder)
    print(f"Report: {folder}/summary.md")
    return Path(folder)
