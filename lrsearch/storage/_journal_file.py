"""The journal file lrsearch writes: Optuna's `JournalFileBackend`, whose failures to
write (no space left, a disk quota, a file-size limit, a read-only file system, no
permission) are WriteErrors naming the journal, and which cuts off the part of a record
that such a failure left at the end of the file.

Optuna's lock is a symbolic link to the journal beside it, made with the path it was
given; a lock left by a process killed while it wrote is broken after a grace period,
which Optuna reads through the link. So the lock links to the journal's absolute path: a
relative path to a journal in another folder made a link that leads nowhere, whose age
Optuna could never read, and every later process spun on it for ever. Such a link, left
before, is removed once it is older than the grace period (`journal_lock`)."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from optuna.storages.journal import JournalFileBackend

#: Seconds after which Optuna breaks a journal lock that was not released (its default).
LOCK_GRACE_S = 30

from lrsearch.errors import write_error
from lrsearch.storage._journal import cut_torn_tail


class JournalFile(JournalFileBackend):
    """Optuna's journal file at `path`, its failures to write told as WriteErrors."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            super().__init__(os.path.abspath(path), lock_obj=journal_lock(path))  # creates the file if it is missing
        except OSError as exc:
            raise write_error(exc, path) or exc from None

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        try:
            super().append_logs(logs)
        except OSError as exc:
            failure = write_error(exc, self.path)
            if failure is None:
                raise
            cut_torn_tail(self.path)
            raise failure from None


def journal_lock(path: str, grace_period: int = LOCK_GRACE_S):
    """Optuna's lock of the journal at `path`, the one its writers take (`PATH.lock`), linking
    to the journal's absolute path; a broken lock left before removed (`remove_broken_lock`)."""
    from optuna.storages.journal import JournalFileSymlinkLock

    path = os.path.abspath(path)
    remove_broken_lock(path)
    return JournalFileSymlinkLock(path, grace_period=grace_period)


def remove_broken_lock(path: str) -> None:
    """Remove the lock of the journal at `path` if it is a link that leads nowhere and is
    older than `LOCK_GRACE_S`: a lock Optuna would break, could it read its age."""
    lock = path + ".lock"
    with contextlib.suppress(OSError):  # no lock, or another process removed it first
        if os.path.islink(lock) and not os.path.exists(lock) and time.time() - os.lstat(lock).st_mtime > LOCK_GRACE_S:
            os.unlink(lock)
