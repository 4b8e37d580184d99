"""Options shared by the commands: which study a command reads (a study file, or a storage
and a study name), the worker processes, the search options given, and argparse types."""

from __future__ import annotations

import argparse
import dataclasses

from lrsearch.options import SearchOptions
from lrsearch.storage import DEFAULT_STORAGE


def add_study_arguments(parser: argparse.ArgumentParser, file_required: bool = False) -> None:
    parser.add_argument(
        "study_file", nargs=None if file_required else "?", metavar="STUDY_FILE",
        help="the study file (e.g. studies/blobs.py)" + ("" if file_required else
                                                         "; or give --storage and --study-name"),
    )
    parser.add_argument("--storage", default=None,
                        help=f"journal file path or Optuna storage URL (default: ./{DEFAULT_STORAGE})")
    parser.add_argument("--study-name", default=None, help="study name (default: the study file's name)")


def at_least(low: int, high: int | None = None):
    """An argparse type: a whole number >= `low` (and <= `high`, if given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, but got {text!r}") from None
        if value < low or high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be >= {low}" + (f" and <= {high}" if high is not None else "")
                                             + f", but got {value}")
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
    parser.add_argument("--gpus", default=SearchOptions.gpus,
                        help=f"GPUs to use: all, none, or indices like 0,1 (default: {SearchOptions.gpus})")
    parser.add_argument("--per-gpu", type=at_least(1), default=SearchOptions.per_gpu,
                        help=f"workers per GPU (default: {SearchOptions.per_gpu})")


def given_options(args: argparse.Namespace, *exclude: str) -> dict:
    """The `SearchOptions` among the parsed flags (same names) that were given or have a
    default, less `exclude`."""
    names = {field.name for field in dataclasses.fields(SearchOptions)} - set(exclude)
    return {name: value for name, value in vars(args).items() if name in names and value is not None}
