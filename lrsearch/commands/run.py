"""Search a study's learning-rate settings in parallel worker processes, with pruning.

Running the same command again resumes the study until it holds --n-trials finished
trials (complete, pruned or failed). The storage defaults to ./lrsearch.journal, which
optuna-dashboard and the optuna CLI open directly; give --storage postgresql://... to let
other machines join with `lrsearch worker`.
"""

from __future__ import annotations

import argparse
import sys

from lrsearch.storage import DEFAULT_STORAGE


def add_arguments(parser: argparse.ArgumentParser, joining: bool = False) -> None:
    parser.add_argument("study_file", metavar="STUDY_FILE", help="the study file, e.g. studies/blobs.py")
    parser.add_argument("--storage", required=joining, default=None if joining else DEFAULT_STORAGE,
                        help="Optuna storage URL (postgresql://user:password@host/db) or journal file path"
                             + ("" if joining else f" (default: ./{DEFAULT_STORAGE})"))
    parser.add_argument("--study-name", help="study name (default: the study file's name)")
    parser.add_argument("--n-trials", type=int,
                        help="finished trials the study should hold (default: the study file's)")
    parser.add_argument("--epochs", type=int, help="override the study file's epochs (for quick tries)")
    parser.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    parser.add_argument("--workers", type=int,
                        help="worker processes (default: one per GPU, else one per CPU core)")
    parser.add_argument("--gpus", default="all", help="GPUs to use: all, none, or indices like 0,1 (default: all)")
    parser.add_argument("--per-gpu", type=int, default=1, help="workers per GPU (default: 1)")
    parser.add_argument("--accept-changes", action="store_true",
                        help="resume the study although its objective, epochs, batch size, space or model changed "
                             "since it was made (records the new ones; earlier trials keep the old)")
    parser.add_argument("--recycle", type=int, default=50, metavar="N",
                        help="restart each worker after N trials, which bounds TensorFlow's memory growth "
                             "(default: 50)")
    if not joining:
        parser.add_argument("--no-report", action="store_true", help="do not write the report folder at the end")
        parser.add_argument("--bounds-from-find-lr", action="store_true",
                            help="run the LR range test once per optimizer (or reuse its stored result) and narrow "
                                 "the lr and 1cycle peak_lr ranges around its suggestions; recorded with the study, "
                                 "so resumed runs and `lrsearch worker` keep them")


def main(args: argparse.Namespace, joining: bool = False) -> int:
    import optuna

    from lrsearch import __version__, devices, progress, record
    from lrsearch.cli import UsageError
    from lrsearch.errors import StorageError, StorageUnavailableError
    from lrsearch.storage import dashboard_command, is_url, open_storage, optuna_cli_hint, redact, redact_text
    from lrsearch.studyfile import load_study
    from lrsearch.workers import Job, Supervisor, claimed_trials, fail_dead_local_trials

    study_file = load_study(args.study_file)
    settings = study_file.settings
    for name in ("n_trials", "epochs", "workers", "recycle"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, but got {value}.")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be > 0, but got {args.timeout}.")
    if joining and not is_url(args.storage):
        print("note: a journal file is shared only by processes of one machine; other machines need "
              "--storage postgresql://...", file=sys.stderr)
    try:
        slots = devices.plan(args.workers, devices.parse_gpus(args.gpus), args.per_gpu)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

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
    space = study_file.space.to_dict()
    _check_resume(args, study, name, objective=settings.objective, epochs=epochs, batch_size=settings.batch_size,
                  space=space)
    record.write_study(study, study_file=str(study_file.path), objective=settings.objective,
                       direction=settings.direction, epochs=epochs, batch_size=settings.batch_size,
                       seed=settings.seed, lrsearch_version=__version__, space=space)
    record.name_objective(study, settings.objective)

    print(f"Storage: {redact(args.storage)}  study: {name}")
    if not joining:
        print(f"Watch it live:  {dashboard_command(args.storage)}")
        print(f"List trials:    {optuna_cli_hint(args.storage, name)}")
    _learning_rate_bounds(args, study_file, study)
    job = Job(study_path=str(study_file.path), storage=args.storage, study_name=name, n_trials=n_trials,
              epochs=epochs, max_trials=args.recycle, seed=settings.seed, accept_changes=args.accept_changes)
    fail_dead_local_trials(study)  # trials left RUNNING by a run of this machine that was killed outright
    record.fail_stale_trials(study)  # ... or by a machine that vanished
    remaining = n_trials - claimed_trials(study)
    if remaining > 0 or progress.count_states(study)["RUNNING"]:
        if remaining > 0:
            print(f"Running up to {remaining} of {n_trials} trials ({epochs} epochs each) on {len(slots)} "
                  f"worker(s): {', '.join(slot.describe() for slot in slots)}", flush=True)
        bar = progress.LiveProgress(study, n_trials)
        supervisor = Supervisor(job, slots, study, say=progress.say,
                                on_tick=lambda: (bar.tick(), _check_timeout(args, supervisor)))
        supervisor.started = _now()
        outcome = supervisor.run()
        bar.close()
        if outcome.storage_error:
            print(f"lrsearch run: error: {outcome.storage_error}", file=sys.stderr)
            return StorageUnavailableError.exit_code
    else:
        print(f"The study already holds {n_trials - remaining} trials (asked for {n_trials}); "
              f"raise --n-trials to search further.")
        outcome = None
    print(progress.summary(study))
    if outcome and outcome.replaced_workers:
        print(f"{outcome.replaced_workers} worker(s) died and were replaced; their trials were marked failed.")
    if outcome and outcome.fatal:
        print(f"lrsearch run: error: {outcome.fatal}", file=sys.stderr)
        return 2
    if outcome and outcome.failure_streak:
        print(f"lrsearch run: stopped: {outcome.failure_streak}\nThe study file is probably wrong; "
              f"fix it and run the same command again.", file=sys.stderr)
        return 1
    if not joining and not args.no_report:
        _write_report(args.storage, name)
    if outcome and outcome.interrupted:
        print("Interrupted. Run the same command again to resume.", file=sys.stderr)
        return 130
    return 0


def _check_resume(args: argparse.Namespace, study, name: str, **current) -> None:
    """UsageError if the study was made with another objective, epochs, batch size or
    space: its old trials would be ranked beside new ones that mean something else."""
    from lrsearch import record
    from lrsearch.cli import UsageError

    recorded = record.read_study(study)
    changed = []
    for key, value in current.items():
        before = getattr(recorded, key)
        if before is None or before == value:
            continue
        if isinstance(value, dict):
            changed += [f"{key} {option} {before.get(option)!r} -> {value.get(option)!r}"
                        for option in sorted(set(before) | set(value)) if before.get(option) != value.get(option)]
        else:
            changed.append(f"{key} {before!r} -> {value!r}")
    if changed and study.get_trials(deepcopy=False) and not args.accept_changes:
        raise UsageError(f"study {name!r} was made with other settings than these ({'; '.join(changed)}), so its "
                         f"trials would not compare with new ones. Give a new --study-name to start afresh, or "
                         f"--accept-changes to go on with the new settings.")


def _learning_rate_bounds(args: argparse.Namespace, study_file, study) -> None:
    """With --bounds-from-find-lr, narrow and record the ranges (the workers read the
    record); else say which recorded ranges the workers will use, if any."""
    from lrsearch import lrfinder
    from lrsearch.cli import UsageError

    if getattr(args, "bounds_from_find_lr", False):
        try:
            lrfinder.bounds_from_find_lr(study_file, study, echo=lambda line: print(line, flush=True))
        except ValueError as exc:
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


def _check_timeout(args: argparse.Namespace, supervisor) -> None:
    if args.timeout is not None and _now() - supervisor.started > args.timeout and not supervisor.stopping():
        print(f"\n--timeout {args.timeout:g}s reached: running trials finish, no new ones start.",
              file=sys.stderr, flush=True)
        supervisor.stop()


def _write_report(storage: str, study_name: str) -> None:
    from lrsearch.report import write_report

    folder = write_report(storage, study_name, f"lrsearch-report-{study_name}")
    print(f"Report: {folder}/summary.md")
