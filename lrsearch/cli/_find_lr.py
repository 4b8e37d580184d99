"""LR range test: train the study's model while the learning rate grows geometrically
(1e-7 to 10 by default), and suggest the learning rate from the loss curve.

Prints the suggestion and the rule used (and a warning when the suggestion sits on a
bump of the smoothed loss), writes the curve (PNG and HTML, loss against LR on a log
axis) and stores the result with the study (user attribute find_lr:<optimizer>:<batch
size>), so that a second call with the same inputs, or `lrsearch run
--bounds-from-find-lr`, reuses it; the report lists the stored results and warnings.
"""

from __future__ import annotations

import argparse

from lrsearch.lr import OPTIMIZERS
from lrsearch.storage import DEFAULT_STORAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lrsearch.rangetest import DEFAULTS, RULES

    parser.add_argument("study_file", metavar="STUDY_FILE", help="the study file, e.g. studies/blobs.py")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, action="append",
                        help="optimizer to test; repeat for several (default: every optimizer of the study's space)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the study file's)")
    parser.add_argument("--momentum", type=float, help="SGD's momentum during the test (default: 0)")
    parser.add_argument("--start-lr", type=float, help=f"first learning rate (default: {DEFAULTS['start_lr']:g})")
    parser.add_argument("--end-lr", type=float, help=f"last learning rate (default: {DEFAULTS['end_lr']:g})")
    parser.add_argument("--iterations", type=int, help=f"batches at most (default: {DEFAULTS['iterations']})")
    parser.add_argument("--rule", choices=RULES, help=f"how to pick the suggestion (default: {DEFAULTS['rule']})")
    parser.add_argument("--storage", default=DEFAULT_STORAGE,
                        help="journal file path or Optuna storage URL to keep the result in "
                             f"(default: ./{DEFAULT_STORAGE})")
    parser.add_argument("--study-name", help="study name (default: the study file's name)")
    parser.add_argument("--out", metavar="DIR", help="folder for the curves (default: lrsearch-find-lr-<study name>)")
    parser.add_argument("--recompute", action="store_true", help="run the test even if a stored result matches")


def main(args: argparse.Namespace) -> int:
    from lrsearch.run import find_lr

    find_lr(args.study_file, storage=args.storage, study_name=args.study_name, optimizers=args.optimizer,
            out=args.out, recompute=args.recompute, batch_size=args.batch_size, momentum=args.momentum,
            start_lr=args.start_lr, end_lr=args.end_lr, iterations=args.iterations, rule=args.rule)
    return 0
