"""Retrain the best trials of an existing study on fresh seeds and record each value, so
that the summary, the report and `lrsearch export` rank by the mean over seeds rather
than by one lucky draw. `lrsearch run` does this at its end (priced to its search, or
--confirm K,N); this command does it for a study that skipped it or stopped during it, as
asked (--top 3 --seeds 3 by default), whatever that costs. Trainings recorded already are kept, so a larger --seeds adds seeds and a larger --top adds
trials."""

from __future__ import annotations

import argparse
import sys

from lrsearch.cli._arguments import (add_study_arguments, add_worker_arguments, at_least, given_options,
                                     seconds)
from lrsearch.results import DEFAULT_SEEDS, DEFAULT_TOP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser, file_required=True)
    parser.add_argument("--top", type=at_least(1), default=DEFAULT_TOP, metavar="K",
                        help=f"how many of the best complete trials to retrain (default: {DEFAULT_TOP})")
    parser.add_argument("--seeds", type=at_least(1), default=DEFAULT_SEEDS, metavar="N",
                        help=f"fresh seeds per trial (default: {DEFAULT_SEEDS})")
    parser.add_argument("--timeout", type=seconds, help="stop starting trainings after this many seconds")
    add_worker_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from lrsearch.run import confirm

    result = confirm(args.study_file, top=args.top, seeds=args.seeds, **given_options(args))
    if result.interrupted:
        print("Interrupted. Run the same command again to go on.", file=sys.stderr)
        return 130
    return 0
