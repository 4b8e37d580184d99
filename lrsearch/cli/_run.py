"""Search a study's learning-rate settings in parallel worker processes, with pruning.

Running the same command again resumes the study until it holds --n-trials finished
trials (complete, pruned or failed). At the end the top trials are retrained on fresh
seeds (as many as cost at most 20% of the search's training, or --confirm K,N), and the
summary, the report and `lrsearch export` rank them by their mean over those seeds rather
than by one lucky draw. The storage defaults to
./lrsearch.journal, which optuna-dashboard and the optuna CLI open directly; give
--storage postgresql://... to let other machines join with `lrsearch worker`.
"""

from __future__ import annotations

import argparse
import sys

from lrsearch.cli._arguments import add_worker_arguments, at_least, given_options, seconds
from lrsearch.options import SearchOptions
from lrsearch.results import DEFAULT_SEEDS, DEFAULT_TOP, PRICED_SHARE
from lrsearch.storage import DEFAULT_STORAGE
from lrsearch.study import MAX_SEED


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
                        help="Optuna storage URL (postgresql://user:password@host/db, or grpc://HOST:PORT of `lrsearch "
                             "storage-proxy`) or journal file path"
                             + ("" if joining else f" (default: ./{DEFAULT_STORAGE})"))
    parser.add_argument("--study-name", help="study name (default: the study file's name)")
    parser.add_argument("--n-trials", type=at_least(1),
                        help="finished trials the study should hold (default: "
                             + ("the one its run recorded" if joining else "the study file's") + ")")
    parser.add_argument("--epochs", type=at_least(1),
                        help="epochs a trial trains (default: the ones its run recorded)" if joining else
                        "override the study file's epochs (for quick tries)")
    parser.add_argument("--seed", type=at_least(0, MAX_SEED),
                        help="override the study file's seed; with --workers 1 a run is repeatable (see the README)"
                             + ("; default: the study's own" if joining else ""))
    parser.add_argument("--timeout", type=seconds,
                        help="stop starting trials (and confirmation trainings) after this many seconds")
    add_worker_arguments(parser)
    parser.add_argument("--lanes", type=lanes_spec, default=None, metavar="K",
                        help="trials each worker trains at once in one compiled step (default: auto, as many as "
                             "measured to pay on the worker's device, at most a quarter of its trials, one for a "
                             "study file with callbacks(); 1: one at a time, which a repeatable run needs)")
    parser.add_argument("--accept-changes", action="store_true",
                        help="resume the study although its objective, epochs, batch size, space or model changed "
                             "since it was made (records the new ones; earlier trials keep the old)")
    parser.add_argument("--recycle", type=at_least(1), metavar="N",
                        help=f"restart each worker after N trials, which bounds TensorFlow's memory growth "
                             f"(default: {SearchOptions.recycle})")
    if not joining:
        confirming = parser.add_mutually_exclusive_group()
        confirming.add_argument("--confirm", type=confirm_spec, default=True, metavar="K,N",
                                help=f"at the end, retrain the K best complete trials on N fresh seeds each and rank "
                                     f"by the mean (default: the most, up to {DEFAULT_TOP},{DEFAULT_SEEDS}, that "
                                     f"costs at most {PRICED_SHARE:.0%}% of the search's training time; none if "
                                     f"even 2 trainings cost more)")
        confirming.add_argument("--no-confirm", action="store_true", help="rank by each trial's own seed only")
        parser.add_argument("--no-report", action="store_true", help="do not write the report folder at the end")
        parser.add_argument("--bounds-from-find-lr", action="store_true",
                            help="run the LR range test once per optimizer (or reuse its stored result) and narrow "
                                 "the lr and 1cycle peak_lr ranges around its suggestions; recorded with the study, "
                                 "so resumed runs and `lrsearch worker` keep them")
        parser.add_argument("--no-defaults-first", action="store_true",
                            help="let the sampler draw a new study's first trials too (default: they are Adam at "
                                 "lr 1e-3, SGD at 0.01 with momentum 0.9 and RMSprop at 1e-3, as far as the space "
                                 "holds them)")


def main(args: argparse.Namespace, joining: bool = False) -> int:
    from lrsearch.run import join, search

    given = given_options(args, "confirm", "report")
    if joining:
        result = join(args.study_file, **given)
    else:
        result = search(args.study_file, **given, confirm=None if args.no_confirm else args.confirm,
                        report=not args.no_report, defaults_first=not args.no_defaults_first)
    if result.interrupted:
        print("Interrupted. Run the same command again to resume.", file=sys.stderr)
        return 130
    return 0
