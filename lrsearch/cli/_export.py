"""Write the best configuration of a study (or a given trial, or the top K) to JSON or
YAML, for `lrsearch.load_config(path)` in another project. The best is by the mean over
fresh seeds where `lrsearch run` (or `lrsearch confirm`) retrained the top trials, and the
file carries those values with their spread."""

from __future__ import annotations

import argparse

from lrsearch.cli._arguments import add_study_arguments
from lrsearch.export import FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    parser.add_argument("-o", "--output", default=None,
                        help="file to write, or - for standard output (default: ./STUDY_NAME-best.json, or .yaml "
                             "with --format yaml)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="file format (default: from the --output suffix, else json)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, metavar="N", help="export trial number N instead of the best")
    which.add_argument("--top", type=int, metavar="K", help="export the K best trials, best first")


def main(args: argparse.Namespace) -> int:
    from lrsearch.errors import UsageError
    from lrsearch.export import export_study

    if args.top is not None and args.top < 1:
        raise UsageError(f"--top must be >= 1, but got {args.top}.")
    export_study(args.study_file, storage=args.storage, study_name=args.study_name, output=args.output,
                 top=args.top, trial=args.trial, fmt=args.format)
    return 0
