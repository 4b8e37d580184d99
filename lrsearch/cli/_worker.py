"""Join a study from another machine: run worker processes that take trials from the
shared storage (PostgreSQL: --storage postgresql://user:password@host/db; many machines
through `lrsearch storage-proxy`: --storage grpc://HOST:PORT) until the study holds
--n-trials trials. Start `lrsearch run` or `lrsearch worker` with the same study file
and storage on every machine."""

from __future__ import annotations

import argparse

from lrsearch.cli import _run as run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run.add_arguments(parser, joining=True)


def main(args: argparse.Namespace) -> int:
    return run.main(args, joining=True)
