"""Write the best configuration of a study (or a given trial, or the top K) to JSON or
YAML, for `lrsearch.load_config(path)` in another project. The best is by the mean over
fresh seeds where `lrsearch run` (or `lrsearch confirm`) retrained the top trials, and the
file carries those values with their spread."""

from __future__ import annotations

import argparse

from lrsearch.commands._common import add_study_arguments
from lrsearch.export import FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    parser.add_argument("-o", "--output", default=None,
                        help="file to write (default: ./STUDY_NAME-best.json, or .yaml with --format yaml)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="file format (default: from the --output suffix, else json)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, metavar="N", help="export trial number N instead of the best")
    which.add_argument("--top", type=int, metavar="K", help="export the K best trials, best first")


def main(args: argparse.Namespace) -> int:
    from lrsearch.errors import UsageError
    from lrsearch.commands._common import load_optuna_study, resolve_study
    from lrsearch.export import exported_configs, write
    from lrsearch.config import describe

    if args.top is not None and args.top < 1:
        raise UsageError(f"--top must be >= 1, but got {args.top}.")
    ref = resolve_study(args)
    study = load_optuna_study(ref)
    configs = exported_configs(study, trial=args.trial, top=args.top, study_file=ref.study)
    output = args.output or f"{ref.study_name}-best.{args.format or 'json'}"
    path = write(configs, output, fmt=args.format, many=args.top is not None)
    for rank, cfg in enumerate(configs, start=1):
        fresh = f" (fresh seeds: {cfg.confirmation.describe()})" if cfg.confirmation else ""
        print(f"{'#' + str(rank) + ' ' if args.top else ''}trial {cfg.trial_number}: {cfg.objective}="
              f"{cfg.value:.4g}{fresh}  {describe(cfg.lr_config.to_dict())}")
    print(f"Wrote {path}; in another project: cfg = lrsearch.load_config({str(path)!r}), or with Keras alone: "
          f"keras.optimizers.deserialize(<the file>['keras']['optimizer'])")
    return 0

