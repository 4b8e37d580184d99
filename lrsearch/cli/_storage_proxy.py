"""Serve a database to many workers through Optuna's gRPC storage proxy: start it beside
the database (or on any machine the workers reach), then give every `lrsearch run` and
`lrsearch worker` of the study `--storage grpc://HOST:PORT` instead of the database's URL.
The workers then hold no database connections; the proxy holds --threads of them and
answers most reads from its cache. A database outage is waited out as without the proxy,
and so is the proxy's own restart. The proxy has no authentication or encryption: listen
on an address that only your machines reach. SIGTERM or Ctrl-C stops it."""

from __future__ import annotations

import argparse

from lrsearch.cli._arguments import at_least
from lrsearch.storage import PROXY_HOST, PROXY_PORT, PROXY_THREADS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", required=True,
                        help="the database to serve: an Optuna storage URL such as postgresql://user:password@host/db "
                             "(its password is never printed)")
    parser.add_argument("--host", default=PROXY_HOST,
                        help=f"address to listen on (default: {PROXY_HOST}, this machine only; 0.0.0.0 for every "
                             f"machine that reaches this one)")
    parser.add_argument("--port", type=at_least(0), default=PROXY_PORT,
                        help=f"port (default: {PROXY_PORT}; 0 picks a free one)")
    parser.add_argument("--threads", type=at_least(1), default=PROXY_THREADS,
                        help=f"threads serving calls, and database connections held (default: {PROXY_THREADS})")


def main(args: argparse.Namespace) -> int:
    from lrsearch.storage import serve_proxy

    serve_proxy(args.storage, args.host, args.port, args.threads)
    return 0
