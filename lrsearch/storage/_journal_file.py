"""The journal file lrsearch writes: Optuna's `JournalFileBackend`, whose failures to
write (no space left, a disk quota, a file-size limit, a read-only file system, no
permission) are WriteErrors naming the journal, and which cuts off the part of a record
that such a failure left at the end of the file. It takes Optuna's lock as lrsearch's
other writers do (`_journal.journal_lock`)."""

from __future__ import annotations

import os
from typing import Any

from optuna.storages.journal import JournalFileBackend

from lrsearch.errors import write_error
from lrsearch.storage._journal import cut_torn_tail, journal_lock


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
