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

from lrsearch.config import OPTIMIZERS
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
    from lrsearch.devices import import_tensorflow

    import_tensorflow()  # first: the study file may import Keras, the test trains here
    import optuna

    from lrsearch.errors import UsageError
    from lrsearch.rangetest_store import find_lr_cached
    from lrsearch.report.range_test import save_curve
    from lrsearch.storage import open_storage, redact
    from lrsearch.studyfile import load_study

    study = load_study(args.study_file)
    for name in ("batch_size", "start_lr", "end_lr", "iterations"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, but got {value}.")
    optimizers = args.optimizer or list(study.space.optimizers)
    if args.momentum is not None and optimizers != ["sgd"]:
        raise UsageError(f"--momentum applies to sgd only; add --optimizer sgd (testing {', '.join(optimizers)}).")
    name = args.study_name or study.name
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        optuna_study = optuna.create_study(study_name=name, storage=open_storage(args.storage),
                                           direction=study.settings.direction, load_if_exists=True)
    except Exception as exc:  # a wrong URL, a server that is down, a file we cannot write
        raise UsageError(f"cannot open storage {redact(args.storage)}: {type(exc).__name__}: {exc}") from None
    out = args.out or f"lrsearch-find-lr-{name}"
    options = {"batch_size": args.batch_size, "momentum": args.momentum, "start_lr": args.start_lr,
               "end_lr": args.end_lr, "iterations": args.iterations, "rule": args.rule}
    for optimizer in optimizers:
        result, reused = find_lr_cached(study, optuna_study, optimizer, recompute=args.recompute, **options)
        png, html = save_curve(result, out)
        print(result.describe())
        if result.warning():
            print(f"  {result.warning()}")
        print(f"  curve: {png}  {html}")
        print(f"  {'reused' if reused else 'stored as'} study user attribute {result.key!r} "
              f"(study {name!r} in {redact(args.storage)})" + ("; --recompute runs it again" if reused else ""))
    return 0
