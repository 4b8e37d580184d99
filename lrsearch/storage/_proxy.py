"""`lrsearch storage-proxy`: Optuna's gRPC storage proxy in front of a database, so that
many workers share one study through a few database connections (`serve_proxy`).

The workers give `--storage grpc://HOST:PORT`. The proxy serves the database as
`open_storage` opens it (Optuna's cache in front, as Optuna advises for its proxy, with
the database's heartbeats), with the heartbeats of its own protocol
(`lrsearch.storage._grpc`), and reads of a study's trials shared by the calls that ask
at once (`_shared_reads`). A database that is down is waited out for
`PROXY_PATIENCE` seconds by the proxy, then by each worker with its own patience, as if
the database were its own: the proxy answers UNAVAILABLE, and each worker says in its log
that its storage is unreachable and for how long it waits.

The proxy has no authentication or encryption (Optuna's has none): anyone who reaches its
port can read and change every study in the database.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from typing import TextIO

from lrsearch.errors import UsageError
from lrsearch.storage._redact import is_grpc, is_url, redact

PROXY_HOST = "127.0.0.1"
PROXY_PORT = 13000
#: Threads that serve calls, one call each, and as many database connections, kept open.
#: A call answered from the proxy's cache is CPU work, which Python runs one thread at a
#: time; one that writes holds its thread while the database answers. A few threads keep
#: the database busy across a network's round trip; more only wait for the interpreter,
#: each holding a connection that the database counts against its limit.
PROXY_THREADS = 8
#: Seconds the proxy waits for an unreachable database before it answers UNAVAILABLE, and
#: the workers wait on: a dropped connection that the pool makes again, not an outage
#: (a shorter LRSEARCH_STORAGE_PATIENCE shortens it).
PROXY_PATIENCE = 10.0
#: Seconds that calls in progress get to finish when the proxy stops.
STOP_GRACE = 5.0


def serve_proxy(storage: str, host: str = PROXY_HOST, port: int = PROXY_PORT, threads: int = PROXY_THREADS,
                out: TextIO = sys.stdout) -> None:
    """Serve `storage` (a database URL) to workers at grpc://`host`:`port` (port 0: a free
    one) with `threads` threads until interrupted (Ctrl-C, or SIGTERM through the CLI),
    once it says so in one line to `out`. UsageError for a storage that is no database, a
    port out of range or taken, fewer than one thread; StorageOpenError for a database
    that cannot be opened."""
    from concurrent.futures import ThreadPoolExecutor

    import optuna

    from lrsearch import internals
    from lrsearch.storage._grpc import SERVER_OPTIONS, DatabaseUnavailable, ProxiedHeartbeats
    from lrsearch.storage._open import open_storage, storage_patience
    from lrsearch.storage._redact import plain_logs
    from lrsearch.storage._resilient import rdb_under
    from lrsearch.storage._shared_reads import SharedReads

    _check(storage, port, threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study created (claim locks are studies)
    opened = open_storage(storage, notify=lambda line: print(f"lrsearch storage-proxy: {line}", file=sys.stderr,
                                                            flush=True),
                          patience=min(PROXY_PATIENCE, storage_patience()), connections=threads)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lrsearch-storage-proxy")
    plain_logs(logging.getLogger("grpc._server"))  # an unexpected error's log: one plain line, no password
    served = ProxiedHeartbeats(SharedReads(opened))
    server = internals.grpc_proxy_server(served, pool, [DatabaseUnavailable()], SERVER_OPTIONS)
    try:
        bound = _bind(server, host, port)
        server.start()
        print(f"Serving {redact(storage)} to workers at --storage grpc://{worker_address(host)}:{bound} with "
              f"{threads} threads (Ctrl-C stops it).", file=out, flush=True)
        if not is_loopback(host):
            print(f"warning: the storage proxy listens on {host} without authentication or encryption; anyone who "
                  f"reaches port {bound} can read, change and delete the studies in {redact(storage)}.",
                  file=sys.stderr, flush=True)
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(STOP_GRACE).wait()
        pool.shutdown(wait=False, cancel_futures=True)
        rdb = rdb_under(opened)
        if rdb is not None:
            rdb.engine.dispose()


def _check(storage: str, port: int, threads: int) -> None:
    if not is_url(storage) or storage.startswith("redis") or is_grpc(storage):
        what = ("a journal file, which the processes of one machine share without a proxy" if not is_url(storage)
                else "a storage proxy already" if is_grpc(storage) else "a Redis journal, which Optuna's proxy cannot "
                "serve")
        raise UsageError(f"lrsearch storage-proxy serves a database (postgresql://, mysql://, sqlite:///), but "
                         f"{redact(storage)} is {what}.")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must lie in [0, 65535], but got {port}.")
    if threads < 1:
        raise UsageError(f"--threads must be at least 1, but got {threads}.")


def _bind(server, host: str, port: int) -> int:
    """Listen on `host:port`; the port bound (the one chosen, for port 0)."""
    address = f"[{host}]" if ":" in host and not host.startswith("[") else host
    try:
        bound = server.add_insecure_port(f"{address}:{port}")
    except RuntimeError as exc:  # gRPC's word for an address in use or not this machine's
        raise UsageError(f"cannot listen on {address}:{port} ({exc}): is another proxy there? Give another --port, "
                         f"or 0 for a free one.") from None
    if not bound:
        raise UsageError(f"cannot listen on {address}:{port}: is another proxy there? Give another --port, or 0 "
                         f"for a free one.")
    return bound


def worker_address(host: str) -> str:
    """The host that workers give for a proxy listening on `host`: this machine's name for
    every address (0.0.0.0, ::), else `host` itself (IPv6 in brackets)."""
    bare = host.strip("[]")
    if bare in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    return f"[{bare}]" if ":" in bare else bare


def is_loopback(host: str) -> bool:
    """Whether a server listening on `host` (a name or an address, IPv6 bracketed or not) is
    reachable from this machine only."""
    bare = host.strip("[]")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False
