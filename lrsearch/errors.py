"""lrsearch's own errors. The CLI turns each into a message without a traceback and an
exit code (`exit_code`); anything else is a bug and keeps its traceback."""

from __future__ import annotations


class LrsearchError(Exception):
    """Base of lrsearch's errors."""

    exit_code = 1


class StorageError(LrsearchError):
    """The Optuna storage cannot be used as it is; the message says what to do."""


class StorageUnavailableError(StorageError):
    """The storage stayed unreachable for longer than lrsearch waits."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class StorageOpenError(StorageError):
    """The storage cannot be opened: a wrong URL, a server that is down, a file that
    cannot be written."""

    exit_code = 2
