"""The lock that every process claiming work from one study takes, whichever run it belongs to: workers claiming
trials (inside this machine's `_claims.MachineLock`) and the parents of runs claiming confirmation trainings. On
PostgreSQL it is `_claims.DatabaseLock`, across machines; through Optuna's gRPC storage proxy, whose workers do not
reach the database, `_proxy_lock.ProxyLock`, across machines; on a journal file, an flock on the file, across the
processes of its machine (a journal file is not shared across machines). The server or the kernel frees it when its
holder dies, and a waiter breaks the proxy's once it outlasts a lease far above a claim, so a killed process blocks
no one for good.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from lrsearch.workers._claims import DatabaseLock
from lrsearch.workers._proxy_lock import ProxyLock


def study_lock(storage, location: str, study_id: int) -> "DatabaseLock | ProxyLock | JournalLock | None":
    """The lock of study `study_id` in `storage` (an Optuna storage opened from `location`,
    a URL or a journal file's path); None for a storage that has none (SQLite, Redis)."""
    from lrsearch.storage import is_url

    if not is_url(location):
        return JournalLock(location)
    return DatabaseLock.of(storage, study_id) or ProxyLock.of(storage, study_id)


class JournalLock:
    """An exclusive flock on a journal file, taken through a descriptor of its own, so that
    it excludes the threads of one process as well as other processes. Optuna's writers do
    not take it: it orders claims, never writes."""

    def __init__(self, path: str) -> None:
        self.path, self.descriptor = path, None

    def acquire(self) -> None:
        self.descriptor = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self.descriptor, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)  # which frees the flock
            self.descriptor = None


@contextlib.contextmanager
def held(lock: "DatabaseLock | ProxyLock | JournalLock | None"):
    """`lock` held for the block (nothing where there is none)."""
    if lock is None:
        yield
        return
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
