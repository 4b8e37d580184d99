"""Search a study's learning-rate settings in parallel worker processes, with pruning.

Running the same command again resumes the study until it holds --n-trials finished
trials (complete, pruned or failed). At the end the top trials are retrained on fresh
seeds (--confirm K,N), and the summary, the report and `lrsearch export` rank them by
their mean over those seeds rather than by one lucky draw. The storage defaults to
./lrsearch.journal, which optuna-dashboard and the optuna CLI open directly; give
--storage postgresql://... to let other machines join with `lrsearch worker`.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys

from lrsearch.commands._common import add_worker_arguments, plan_slots
from lrsearch.confirm import DEFAULT_SEEDS, DEFAULT_TOP
from lrsearch.storage import DEFAULT_STORAGE

#: Trials of a worker's share per lane it may choose: with more lanes than this allows,
#: the sampler would draw most of the study before any trial finished.
TRIALS_PER_LANE = 4


def confirm_spec(text: str) -> tuple[int, int]:
    """--confirm's K,N: how many top trials, how many fresh seeds each."""
    try:
        top, seeds = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K,N (top trials, seeds each), like 3,3; got {text!r}") from None
    if top < 1 or seeds < 1:
        raise argparse.ArgumentTypeError(f"K and N must be >= 1, but got {text!r}")
    return top, seeds


def lanes_spec(text: str) -> int | None:
    """--lanes: a count >= 1, or auto (None)."""
    if text == "auto":
        return None
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 or auto; got {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 or auto, but got {text!r}")
    return count


def add_arguments(parser: argparse.ArgumentParser, joining: bool = False) -> None:
    parser.add_argument("study_file", metavar="STUDY_FILE", help="the study file, e.g. studies/blobs.py")
    parser.add_argument("--storage", required=joining, default=None if joining else DEFAULT_STORAGE,
                        help="Optuna storage URL (postgresql://user:password@host/db) or journal file path"
                             + ("" if joining else f" (default: ./{DEFAULT_STORAGE})"))
    parser.add_argument("--study-name", help="study name (default: the study file's name)")
    parser.add_argument("--n-trials", type=int,
                        help="finished trials the study should hold (default: the study file's)")
    parser.add_argument("--epochs", type=int, help="override the study file's epochs (for quick tries)")
    parser.add_argument("--seed", type=int,
                        help="override the study file's seed; with --workers 1 a run is repeatable (see the README)"
                             + ("; default: the study's own" if joining else ""))
    parser.add_argument("--timeout", type=float,
                        help="stop starting trials (and confirmation trainings) after this many seconds")
    add_worker_arguments(parser)
    parser.add_argument("--lanes", type=lanes_spec, default=1, metavar="K",
                        help="trials each worker trains at once in one compiled step; auto: as many as suit the "
                             "model and device, at most a quarter of each worker's trials (default: 1; lanes "
                             "pay where trials run long, see the README)")
    parser.add_argument("--accept-changes", action="store_true",
                        help="resume the study although its objective, epochs, batch size, space or model changed "
                             "since it was made (records the new ones; earlier trials keep the old)")
    parser.add_argument("--recycle", type=int, default=50, metavar="N",
                        help="restart each worker after N trials, which bounds TensorFlow's memory growth "
                             "(default: 50)")
    if not joining:
        confirming = parser.add_mutually_exclusive_group()
        confirming.add_argument("--confirm", type=confirm_spec, default=(DEFAULT_TOP, DEFAULT_SEEDS), metavar="K,N",
                                help=f"at the end, retrain the K best complete trials on N fresh seeds each and rank "
                                     f"by the mean (default: {DEFAULT_TOP},{DEFAULT_SEEDS})")
        confirming.add_argument("--no-confirm", action="store_true", help="rank by each trial's own seed only")
        parser.add_argument("--no-report", action="store_true", help="do not write the report folder at the end")
        parser.add_argument("--bounds-from-find-lr", action="store_true",
                            help="run the LR range test once per optimizer (or reuse its stored result) and narrow "
                                 "the lr and 1cycle peak_lr ranges around its suggestions; recorded with the study, "
                                 "so resumed runs and `lrsearch worker` keep them")


def main(args: argparse.Namespace, joining: bool = False) -> int:
    from lrsearch.errors import UsageError

    for name in ("n_trials", "epochs", "recycle"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, but got {value}.")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be > 0, but got {args.timeout}.")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be >= 0, but got {args.seed}.")
    with prestarted(plan_slots(args)) as pool:
        return _main(args, joining, pool)


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


def _main(args: argparse.Namespace, joining: bool, pool) -> int:
    import optuna

    from lrsearch import __version__, progress, record
    from lrsearch.errors import UsageError
    from lrsearch.commands._common import program
    from lrsearch.errors import StorageError
    from lrsearch.storage import is_url, open_storage, optuna_cli_hint, redact, redact_text
    from lrsearch.studyfile import load_study
    from lrsearch.workers import Confirming, Job, claimed_trials

    study_file = load_study(args.study_file)
    settings = study_file.settings
    slots = pool.slots
    if joining and not is_url(args.storage):
        print("note: a journal file is shared only by processes of one machine; other machines need "
              "--storage postgresql://...", file=sys.stderr)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = args.study_name or study_file.name
    n_trials = args.n_trials or settings.n_trials
    epochs = args.epochs or settings.epochs
    try:
        storage = open_storage(args.storage, notify=progress.say)
        study = optuna.create_study(study_name=name, storage=storage, direction=settings.direction,
                                    load_if_exists=True)
    except StorageError:
        raise
    except Exception as exc:  # a wrong URL, a server that is down, a file we cannot write
        raise UsageError(redact_text(f"cannot open storage {redact(args.storage)}: {type(exc).__name__}: {exc}",
                                     args.storage)) from None
    if study.direction.name.lower() != settings.direction:
        raise UsageError(f"study {name!r} in {redact(args.storage)} was created to "
                         f"{study.direction.name.lower()}, but the study file says {settings.direction}.")
    study_file = study_file.with_seed(_seed(args, study, name, settings.seed, joining))
    settings = study_file.settings
    space = study_file.space.to_dict()
    check_unchanged(study, name, accept=args.accept_changes, objective=settings.objective, epochs=epochs,
                    batch_size=settings.batch_size, space=space)
    record.write_study(study, study_file=str(study_file.path), objective=settings.objective,
                       direction=settings.direction, epochs=epochs, batch_size=settings.batch_size,
                       seed=settings.seed, lrsearch_version=__version__, space=space)
    record.name_objective(study, settings.objective)

    print(f"Storage: {redact(args.storage)}  study: {name}")
    where = ["--storage", redact(args.storage)] if args.storage != DEFAULT_STORAGE else []
    study_args = shlex.join([args.study_file, *where, *(["--study-name", name] if args.study_name else [])])
    if not joining:
        print(f"Watch it live:  {program()} dashboard {study_args}")
        print(f"List trials:    {optuna_cli_hint(args.storage, name, program('optuna'))}")
    _learning_rate_bounds(args, study_file, study)
    confirming = None if joining or args.no_confirm else Confirming(*args.confirm)
    job = Job(study_path=str(study_file.path), storage=args.storage, study_name=name, n_trials=n_trials,
              epochs=epochs, max_trials=args.recycle, seed=settings.seed, accept_changes=args.accept_changes,
              confirm=confirming is not None, lanes=args.lanes,
              lane_cap=max(1, n_trials // (TRIALS_PER_LANE * len(slots))))
    remaining = n_trials - claimed_trials(study)
    if remaining > 0:
        print(f"Running up to {remaining} of {n_trials} trials ({epochs} epochs each) on {len(slots)} "
              f"worker(s): {', '.join(slot.describe() for slot in slots)}", flush=True)
    outcome = supervise(pool, job, study, timeout=args.timeout, confirming=confirming, notes=not joining)
    if outcome is None:
        print(f"The study already holds {n_trials - remaining} trials (asked for {n_trials}); "
              f"raise --n-trials to search further.")
    hint = f"{program()} confirm {study_args}"
    code = finish(outcome, study, "worker" if joining else "run", hint=hint, storage=None if joining else args.storage)
    if code is not None:
        return code
    if not joining and not args.no_report:
        _write_report(args.storage, name)
    if outcome and outcome.interrupted:
        print("Interrupted. Run the same command again to resume.", file=sys.stderr)
        return 130
    return 0


def supervise(pool, job, study, *, timeout: float | None, confirming=None, notes: bool = True):
    """Run `job` in `pool` (a Supervisor) with a live progress bar (and a second one for
    the confirmation), and with `notes` each finished trial's dashboard note, until the
    study is full and confirmed; None if there was nothing to do."""
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
    started = _now()
    live = LiveNotes(study, job.storage) if notes else None
    outcome = pool.run(job, study, confirming=confirming,
                       on_tick=lambda: (bars.tick(), live and live.tick(), _check_timeout(timeout, started, pool)))
    bars.close()
    return outcome


def finish(outcome, study, command: str, hint: str, storage: str | None = None) -> int | None:
    """Print the summary and what went wrong, and write the dashboard notes the trials
    lack given their `storage`; the exit code if the run failed."""
    from lrsearch import notes, progress
    from lrsearch.errors import StorageUnavailableError

    if outcome and outcome.storage_error:
        print(f"lrsearch {command}: error: {outcome.storage_error}", file=sys.stderr)
        return StorageUnavailableError.exit_code
    print(progress.summary(study))
    if storage is not None:
        notes.annotate(study, storage)
    if outcome and outcome.replaced_workers:
        print(f"{outcome.replaced_workers} worker(s) died and were replaced; their trials were marked failed.")
    if outcome and outcome.confirm_failures:
        print(f"{len(outcome.confirm_failures)} confirmation training(s) failed: "
              + "; ".join(outcome.confirm_failures[:3]), file=sys.stderr)
    if outcome and outcome.fatal:
        print(f"lrsearch {command}: error: {outcome.fatal}", file=sys.stderr)
        return 2
    if outcome and outcome.failure_streak:
        print(f"lrsearch {command}: stopped: {outcome.failure_streak}\nThe study file is probably wrong; "
              f"fix it and run the same command again.", file=sys.stderr)
        return 1
    if outcome and outcome.confirmation_left:
        print(f"The confirmation over fresh seeds did not finish; the ranking uses what it recorded. "
              f"Run the same command again, or `{hint}`, to complete it.", file=sys.stderr)
    return None


def _seed(args: argparse.Namespace, study, name: str, file_seed: int, joining: bool) -> int:
    """The run's seed: --seed, else the study's own when joining it, else the study file's.
    UsageError if the study has trials made with another: each trial's seed is the
    study's plus its number, which export and confirmation replay."""
    from lrsearch import record
    from lrsearch.errors import UsageError

    recorded = record.read_study(study).seed
    seed = args.seed if args.seed is not None else recorded if joining and recorded is not None else file_seed
    if recorded is not None and seed != recorded and study.get_trials(deepcopy=False):
        raise UsageError(f"study {name!r} was made with seed {recorded}, not {seed}; a study keeps its seed (each "
                         f"trial's is the study's plus its number). Give a new --study-name, or --seed {recorded}.")
    return seed


def check_unchanged(study, name: str, accept: bool, **current) -> None:
    """UsageError if the study was made with another objective, epochs, batch size or
    space (unless `accept`): its old trials would be ranked beside new ones that mean
    something else."""
    from lrsearch import record
    from lrsearch.errors import UsageError

    changed = record.changes(study, **current)
    if changed and study.get_trials(deepcopy=False) and not accept:
        raise UsageError(f"study {name!r} was made with other settings than these ({'; '.join(changed)}), so its "
                         f"trials would not compare with new ones. Give a new --study-name to start afresh, or "
                         f"--accept-changes to go on with the new settings.")


def _learning_rate_bounds(args: argparse.Namespace, study_file, study) -> None:
    """With --bounds-from-find-lr, narrow and record the ranges (the workers read the
    record); else say which recorded ranges the workers will use, if any."""
    from lrsearch import bounds as lrfinder
    from lrsearch.errors import UsageError

    if getattr(args, "bounds_from_find_lr", False):
        try:
            lrfinder.bounds_from_find_lr(study_file, study, echo=lambda line: print(line, flush=True))
        except UsageError as exc:
            raise UsageError(f"the LR range test failed: {exc}") from None
        return
    record, fresh = lrfinder.recorded_bounds(study_file, study)
    if record and fresh:
        print(f"Ranges narrowed by the LR range test (recorded with the study): {lrfinder.describe_bounds(record)}.")
    elif record:
        print(f"note: the study file's lr/peak_lr ranges changed since the LR range test narrowed them "
              f"({lrfinder.describe_bounds(record)}); searching the file's ranges. Add --bounds-from-find-lr "
              f"to `lrsearch run` to narrow them again.", file=sys.stderr)


def _now() -> float:
    import time

    return time.monotonic()


def _check_timeout(timeout: float | None, started: float, supervisor) -> None:
    if timeout is not None and _now() - started > timeout and not supervisor.stopping():
        print(f"\n--timeout {timeout:g}s reached: running trainings finish, no new ones start.",
              file=sys.stderr, flush=True)
        supervisor.stop()


def _write_report(storage: str, study_name: str) -> None:
    from lrsearch.report import write_report

    folder = write_report(storage, study_name, f"lrsearch-report-{study_name}")
    print(f"Report: {folder}/summary.md")
