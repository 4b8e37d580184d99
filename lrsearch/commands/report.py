"""Write a study's report folder: parameter importance, parallel coordinates, optimization
history, learning curves, the learning rate per epoch of the top trials and the objective
against the learning rate per optimizer, each as an interactive HTML page and a PNG, with
trials.csv and summary.md."""

from __future__ import annotations

import argparse

from lrsearch.commands._common import add_study_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    parser.add_argument("-o", "--out-dir", default=None,
                        help="folder to write (default: ./lrsearch-report-STUDY_NAME)")


def main(args: argparse.Namespace) -> int:
    from lrsearch.commands._common import load_optuna_study, resolve_study
    from lrsearch.report import write_report_for
    from lrsearch.storage import redact

    ref = resolve_study(args, load=False)
    study = load_optuna_study(ref)
    folder = write_report_for(study, args.out_dir or f"lrsearch-report-{ref.study_name}",
                              storage_label=redact(ref.storage))
    print(f"Report: {folder}/summary.md")
    return 0
