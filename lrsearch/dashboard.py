"""Serve optuna-dashboard on a study's storage.

Uses optuna-dashboard's public `wsgi(storage)` application under the same threaded
wsgiref server its CLI runs, so that lrsearch can bind the port first (port 0 picks a
free one), print the real URL, and keep the request log quiet. The storage is opened
the way `lrsearch run` opens it: a journal file is read alongside running workers
without taking their lock; SQLite (one writer at a time) is best avoided while a run
is writing.
"""

from __future__ import annotations

import ipaddress
import socketserver
import sys
from typing import TextIO
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


class _ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


def make_dashboard_server(storage, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> WSGIServer:
    """A bound, not yet serving, optuna-dashboard server on `storage` (an Optuna storage)."""
    from optuna_dashboard import wsgi

    if not 0 <= port <= 65535:
        raise ValueError(f"port must lie in [0, 65535], but got {port}.")
    return make_server(host, port, wsgi(storage), server_class=_ThreadedServer, handler_class=_QuietHandler)


def dashboard_url(host: str, port: int, study_id: int | None = None) -> str:
    shown = f"[{host}]" if ":" in host else host
    path = "/dashboard" if study_id is None else f"/dashboard/studies/{study_id}"
    return f"http://{shown}:{port}{path}"


def serve(storage: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, study_name: str | None = None,
          out: TextIO = sys.stdout) -> None:
    """Serve `storage` (journal file path or storage URL) until interrupted; print the URL
    (of `study_name`'s page, if given) first."""
    from lrsearch.storage import open_storage

    opened = open_storage(storage)
    study_id = opened.get_study_id_from_name(study_name) if study_name else None
    server = make_dashboard_server(opened, host, port)
    try:
        print(f"Dashboard: {dashboard_url(host, server.server_port, study_id)}", file=out, flush=True)
        if not _is_loopback(host):
            print(f"warning: the dashboard listens on {host} without authentication; anyone who reaches it can "
                  f"read, annotate and delete studies.", file=out, flush=True)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
