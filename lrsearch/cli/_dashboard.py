"""Watch a study live in optuna-dashboard: serves the study's storage (a journal file or
a database URL) on 127.0.0.1 and prints the URL. Safe to run while `lrsearch run` writes
to the same journal file."""

from __future__ import annotations

import argparse

from lrsearch.cli._arguments import add_study_arguments
from lrsearch.dashboard import DEFAULT_HOST, DEFAULT_PORT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default: {DEFAULT_HOST}; the dashboard has no login, "
                             f"so think twice before 0.0.0.0)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")


def main(args: argparse.Namespace) -> int:
    from lrsearch.dashboard import serve_study

    serve_study(args.study_file, storage=args.storage, study_name=args.study_name, host=args.host, port=args.port)
    return 0
