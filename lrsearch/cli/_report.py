"""Write a study's report folder: parameter importance, parallel coordinates, optimization
history, learning curves, the learning rate per epoch of the top trials and the objective
against the learning rate per optimizer, each as an interactive HTML page and a PNG, with
trials.csv and summary.md."""

from __future__ import annotations

import argparse

from lrsearch.cli._arguments import add_study_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    parser.add_argument("-o", "--out-dir", default=None,
                        help="folder to write (default: ./lrsearch-report-STUDY_NAME)")


def main(args: argparse.Namespace) -> int:
    from lrsearch.report import write_report

    folder = write_report(args.storage, args.study_name, args.out_dir, study_file=args.study_file)
    print(f"Report: {folder}/summary.md")
    return 0
