"""Options shared by the commands that read a study: a study file, or a storage and a
study name."""

from __future__ import annotations

import argparse
import dataclasses

from lrsearch.storage import DEFAULT_STORAGE


@dataclasses.dataclass(frozen=True)
class StudyRef:
    """Which study a command reads: its storage, its name, and the loaded study file if
    one was given (None with --storage/--study-name alone)."""

    storage: str
    study_name: str
    study: object | None


def add_study_arguments(parser: argparse.ArgumentParser, file_required: bool = False) -> None:
    parser.add_argument(
        "study_file", nargs=None if file_required else "?", metavar="STUDY_FILE",
        help="the study file (e.g. studies/blobs.py)" + ("" if file_required else
                                                         "; or give --storage and --study-name"),
    )
    parser.add_argument("--storage", default=None,
                        help=f"journal file path or Optuna storage URL (default: ./{DEFAULT_STORAGE})")
    parser.add_argument("--study-name", default=None, help="study name (default: the study file's name)")


def at_least(low: int):
    """An argparse type: a whole number >= `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, but got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, but got {value}")
        return value

    return parse


def seconds(text: str) -> float:
    """An argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, but got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, but got {text}")
    return value


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=at_least(1),
                        help="worker processes (default: one per GPU, else one per CPU core)")
    parser.add_argument("--gpus", default="all", help="GPUs to use: all, none, or indices like 0,1 (default: all)")
    parser.add_argument("--per-gpu", type=at_least(1), default=1, help="workers per GPU (default: 1)")


def plan_slots(args: argparse.Namespace) -> list:
    """The worker slots `add_worker_arguments`' options ask for; UsageError if they are wrong."""
    from lrsearch import devices

    return devices.plan(args.workers, devices.parse_gpus(args.gpus), args.per_gpu)


def resolve_study(args: argparse.Namespace, load: bool = True) -> StudyRef:
    """The study named by the arguments; raises UsageError when it is ambiguous."""
    from lrsearch.errors import UsageError
    from lrsearch.studyfile import load_study

    study = load_study(args.study_file) if args.study_file and load else None
    name = args.study_name or (study.name if study else None)
    if name is None and args.study_file:
        from pathlib import Path

        name = Path(args.study_file).stem
    if name is None:
        raise UsageError("give a study file, or --study-name (with --storage if it is not the default).")
    return StudyRef(storage=args.storage or DEFAULT_STORAGE, study_name=name, study=study)


def load_optuna_study(ref: StudyRef):
    """The Optuna study `ref` names; UsageError naming the studies there if it is absent."""
    import optuna

    from lrsearch.errors import UsageError
    from lrsearch.storage import open_storage, redact

    require_storage(ref.storage)
    storage = open_storage(ref.storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if ref.study_name not in names:
        raise UsageError(f"no study {ref.study_name!r} in {redact(ref.storage)}; it holds {names or 'none'}.")
    return optuna.load_study(study_name=ref.study_name, storage=storage)


def require_storage(storage: str) -> None:
    """UsageError unless `storage` is a URL or an existing journal file (reading must not
    create an empty one)."""
    import os

    from lrsearch.errors import UsageError
    from lrsearch.storage import is_url

    if not is_url(storage) and not os.path.isfile(storage):
        raise UsageError(f"no storage file {storage!r}; run `lrsearch run` first or give --storage.")
