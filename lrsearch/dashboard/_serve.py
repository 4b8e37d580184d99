"""Serve optuna-dashboard on a study's storage.

Uses optuna-dashboard's public `wsgi(storage)` application under the same threaded
wsgiref server its CLI runs, so that lrsearch can bind the port first (port 0 picks a
free one), print the real URL, and keep the request log quiet. The storage is opened
the way `lrsearch run` opens it: a journal file is read alongside running workers
without taking their lock; SQLite (one writer at a time) is best avoided while a run
is writing. The importance panel shows the report's importances
(`lrsearch.report._data.importance`) rather than optuna-dashboard's own. Before it serves,
the trials get the notes they lack (`lrsearch.dashboard._notes`), and the server serves their charts.
"""

from __future__ import annotations

import json
import re
import socketserver
import sys
import threading
from typing import TextIO
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lrsearch.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: optuna-dashboard's API route for the importance panel.
_IMPORTANCE_ROUTE = re.compile(r"/api/studies/(\d+)/param_importances/?")


class _ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


class ReportImportance:
    """WSGI application: optuna-dashboard on `storage`, except that the importance panel of a
    single-objective study shows the report's importances."""

    def __init__(self, storage, artifact_store=None) -> None:
        from optuna_dashboard import wsgi

        self.storage = storage
        self.dashboard = wsgi(storage, artifact_store=artifact_store)
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[int, bytes]] = {}  # study id -> (finished trials, body)

    def __call__(self, environ, start_response):
        match = _IMPORTANCE_ROUTE.fullmatch(environ.get("PATH_INFO", ""))
        body = self.importances(int(match.group(1))) if match and environ.get("REQUEST_METHOD") == "GET" else None
        if body is None:
            return self.dashboard(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def importances(self, study_id: int) -> bytes | None:
        """The panel's JSON for `study_id`, or None to leave it to optuna-dashboard (an unknown
        or multi-objective study)."""
        from lrsearch.report import importance

        try:
            directions = self.storage.get_study_directions(study_id)
        except KeyError:
            return None
        if len(directions) != 1:
            return None
        trials = self.storage.get_all_trials(study_id, deepcopy=False)
        finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        with self._lock:
            cached = self._cache.get(study_id)
            if cached is None or cached[0] != finished:
                imp = importance(trials, directions[0].name.lower())
                values = imp.values if imp is not None else {}
                panel = [{"name": name, "importance": value, "distribution": _distribution_name(name, trials)}
                         for name, value in values.items()]
                cached = self._cache[study_id] = (finished, json.dumps({"param_importances": [panel]}).encode())
        return cached[1]


def _distribution_name(name: str, trials) -> str:
    names = ("lr", "peak_lr") if name == "lr" else (name,)
    return next(type(t.distributions[n]).__name__ for t in trials for n in names if n in t.distributions)


def make_dashboard_server(storage, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                          artifact_store=None) -> WSGIServer:
    """A bound, not yet serving, optuna-dashboard server on `storage` (an Optuna storage),
    serving `artifact_store`'s files (an Optuna artifact store) if given."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must lie in [0, 65535], but got {port}.")
    return make_server(host, port, ReportImportance(storage, artifact_store), server_class=_ThreadedServer,
                       handler_class=_QuietHandler)


def dashboard_url(host: str, port: int, study_id: int | None = None) -> str:
    shown = f"[{host}]" if ":" in host else host
    path = "/dashboard" if study_id is None else f"/dashboard/studies/{study_id}"
    return f"http://{shown}:{port}{path}"


def serve_study(study_file=None, *, storage: str | None = None, study_name: str | None = None,
                host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """`lrsearch dashboard`: serve the study of `study_file` or `study_name` (every study of
    the storage when neither is given) until interrupted. UsageError for a port out of
    range, a storage or study that is not there, or an address it cannot listen on."""
    from lrsearch.storage import DEFAULT_STORAGE, redact, require_storage
    from lrsearch.study import resolve_study

    if not 0 <= port <= 65535:
        raise UsageError(f"--port must lie in [0, 65535], but got {port}.")
    if study_file or study_name:
        ref = resolve_study(study_file, storage=storage, study_name=study_name, load=False)
        ref.open()  # names the studies there if this one is absent
        storage, study_name = ref.storage, ref.study_name
    else:
        storage = storage or DEFAULT_STORAGE
        require_storage(storage)
    try:
        serve(storage, host, port, study_name=study_name)
    except OSError as exc:  # the port is taken, the address is not ours
        raise UsageError(f"cannot serve {redact(storage)} on {host}:{port}: {exc}") from None


def serve(storage: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, study_name: str | None = None,
          out: TextIO = sys.stdout) -> None:
    """Serve `storage` (journal file path or storage URL) until interrupted, with notes
    written first for its studies (or `study_name` only); print the URL (of `study_name`'s
    page, if given) first."""
    from lrsearch.dashboard import _notes as notes
    from lrsearch.storage import is_loopback, open_storage

    opened = open_storage(storage)
    study_id = opened.get_study_id_from_name(study_name) if study_name else None
    write_notes(opened, storage, study_name, out)
    try:
        charts = notes.artifact_store(storage)
    except OSError as exc:  # a read-only folder: the studies are still worth serving
        charts = None
        print(f"note: the trials' learning-rate charts are not served: {exc}", file=out, flush=True)
    server = make_dashboard_server(opened, host, port, charts)
    try:
        print(f"Dashboard: {dashboard_url(host, server.server_port, study_id)}", file=out, flush=True)
        if not is_loopback(host):
            print(f"warning: the dashboard listens on {host} without authentication; anyone who reaches it can "
                  f"read, annotate and delete studies.", file=out, flush=True)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def write_notes(opened, storage: str, study_name: str | None, out: TextIO) -> None:
    """`lrsearch.dashboard._notes.annotate` the studies of `opened` (or `study_name` only); a storage
    that takes no writes (a read-only file, a read-only database user) gets a warning."""
    import optuna

    from lrsearch.dashboard import _notes as notes
    from lrsearch.storage import redact_text, study_names

    names = [study_name] if study_name else study_names(opened)
    try:
        for name in names:
            notes.annotate(optuna.load_study(study_name=name, storage=opened), storage)
    except Exception as exc:  # the dashboard is worth serving without them
        print(redact_text(f"warning: could not write the trials' notes ({type(exc).__name__}: {exc}); serving "
                          f"without them.", storage), file=out, flush=True)

