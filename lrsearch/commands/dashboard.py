"""Watch a study live in optuna-dashboard: serves the study's storage (a journal file or
a database URL) on 127.0.0.1 and prints the URL. Safe to run while `lrsearch run` writes
to the same journal file."""

from __future__ import annotations

import argparse

from lrsearch.commands._common import add_study_arguments
from lrsearch.dashboard import DEFAULT_HOST, DEFAULT_PORT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default: {DEFAULT_HOST}; the dashboard has no login, "
                             f"so think twice before 0.0.0.0)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")


def main(args: argparse.Namespace) -> int:
    from lrsearch.errors import UsageError
    from lrsearch.commands._common import load_optuna_study, require_storage, resolve_study
    from lrsearch.dashboard import serve
    from lrsearch.storage import DEFAULT_STORAGE, redact

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must lie in [0, 65535], but got {args.port}.")
    if args.study_file or args.study_name:
        ref = resolve_study(args, load=False)
        load_optuna_study(ref)  # names the studies there if this one is absent
        storage, name = ref.storage, ref.study_name
    else:
        storage, name = args.storage or DEFAULT_STORAGE, None
        require_storage(storage)
    try:
        serve(storage, args.host, args.port, study_name=name)
    except OSError as exc:  # the port is taken, the address is not ours
        raise UsageError(f"cannot serve {redact(storage)} on {args.host}:{args.port}: {exc}") from None
    return 0
