"""The `lrsearch` command: parses arguments, dispatches to one module a command (`lrsearch.cli._<command>`), and
turns lrsearch's errors into messages and exit codes (`lrsearch.errors`); any other
exception is reported as a bug in lrsearch, with its traceback under --verbose."""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import logging
import os
import signal
import sys
import textwrap
import traceback

from lrsearch._version import __version__
from lrsearch.devices import quiet_native_logs
from lrsearch.errors import EXIT_CODES, InternalError, LrsearchError, write_error

#: name -> (module `lrsearch.cli._<module>`, one-line help). Each module has
#: `add_arguments(parser)` and `main(args) -> int`.
COMMANDS = {
    "run": ("run", "search a study's learning-rate settings (resumes an existing study)"),
    "worker": ("worker", "join a running study from another machine (PostgreSQL or grpc:// storage)"),
    "report": ("report", "write importance, parallel-coordinate and learning-curve reports"),
    "dashboard": ("dashboard", "watch a study live in optuna-dashboard"),
    "confirm": ("confirm", "retrain a study's best trials on fresh seeds and rank them by the mean"),
    "export": ("export", "write the best configuration to JSON or YAML for other projects"),
    "retrain": ("retrain", "train the best configuration again and save the Keras model with its history"),
    "find-lr": ("find_lr", "LR range test: find the learning rate where the loss falls fastest"),
    "repair-journal": ("repair_journal", "repair a damaged journal file, keeping a backup"),
    "storage-proxy": ("storage_proxy", "serve a database to many workers through Optuna's gRPC storage proxy"),
    "studies": ("studies", "list the study files in a folder with their descriptions"),
}
#: The search stack (`pip install 'lrsearch[search]'`) by import name, which every command needs;
#: the light install (Keras and PyYAML) is enough for `load_config` only.
SEARCH_STACK = ("optuna", "optuna_dashboard", "tensorflow", "sklearn", "pandas", "plotly", "matplotlib",
                "sqlalchemy", "psycopg", "grpc", "tqdm", "cloudpickle")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrsearch",
        description="Find the learning-rate settings of a Keras model with Optuna.",
        epilog="Run `lrsearch COMMAND --help` for a command's options.\n\nExit codes:\n" + "\n".join(
            textwrap.fill(meaning, 88, initial_indent=f"  {code:>3}  ", subsequent_indent=" " * 7)
            for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lrsearch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"lrsearch.cli._{module_name}")
        sub = subparsers.add_parser(name, help=help_text, description=module.__doc__)
        sub.add_argument("--verbose", action="store_true", help="show full tracebacks and library logs")
        module.add_arguments(sub)
        sub.set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if args.verbose:
        os.environ["LRSEARCH_VERBOSE"] = "1"  # worker processes inherit it
    quiet_native_logs()  # before anything imports TensorFlow or gRPC
    missing = missing_search_stack()
    if missing:
        print(f"lrsearch {args.command} needs the search stack, and {missing} is not installed: "
              f"pip install 'lrsearch[search]' (in a clone: pip install -e '.[search]')", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM ends a command as Ctrl-C does (exit 130)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"lrsearch {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        error = known_error(exc)
        if error is not None:
            print(f"lrsearch {args.command}: error: {error}", file=sys.stderr)
            return error.exit_code
        print(f"lrsearch {args.command}: internal error: {type(exc).__name__}: {exc}\nThis is a bug in lrsearch "
              f"{__version__}, not in your input" + ("" if args.verbose else "; --verbose shows its traceback")
              + ". Please report it.", file=sys.stderr)
        return InternalError.exit_code
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    """SIGTERM outside a run's supervision of its workers (which stops them first, `lrsearch.workers`)."""
    raise KeyboardInterrupt


def known_error(exc: Exception) -> LrsearchError | None:
    """`exc` as one of lrsearch's errors, None if it is a bug: a write that failed for want
    of space or a writable file system, wherever it happened, is a WriteError."""
    if isinstance(exc, LrsearchError):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
        return write_error(exc)
    return None


def missing_search_stack() -> str | None:
    """The first package of the search stack that is not installed, else None."""
    return next((name for name in SEARCH_STACK if importlib.util.find_spec(name) is None), None)


if __name__ == "__main__":
    sys.exit(main())
