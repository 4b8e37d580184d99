"""lrsearch's own errors, one family under `LrsearchError`.

The CLI turns each into a one-line message and its `exit_code`, without a traceback
(`--verbose` adds it). Any other exception is a bug in lrsearch: the CLI says so and
exits with `InternalError.exit_code`.

- `UsageError`: bad input from the user (options, arguments, files they name); exit 2.
- `StudyFileError`: a study (a file or one defined in Python) that cannot be used; exit 2.
- `StorageError`: the Optuna storage cannot be used as it is.
- `SearchStopped`: a search that could not go on (its workers cannot run the study, or
  its trials keep failing).
- `InternalError`: lrsearch itself is broken (a Keras or Optuna internal it relies on
  changed); the message names the versions.
"""

from __future__ import annotations

import os


class LrsearchError(Exception):
    """Base of lrsearch's errors."""

    exit_code = 1


class UsageError(LrsearchError, ValueError):
    """Bad input: the message says what to change. A ValueError too, as Python's own
    errors for bad argument values are."""

    exit_code = 2


class StudyFileError(LrsearchError):
    """A study that cannot be used; the message names the study file and the fix."""

    exit_code = 2

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # picklable, so it crosses from a spawned process
        return type(self), (self.path, self.problem)


class StudyFileExit(StudyFileError):
    """The study's code tried to end the process (`sys.exit`, `os._exit`): the run
    stops rather than retrying it in a new worker."""


class StorageError(LrsearchError):
    """The Optuna storage cannot be used as it is; the message says what to do."""


class StorageUnavailableError(StorageError):
    """The storage stayed unreachable for longer than lrsearch waits."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class StorageOpenError(StorageError):
    """The storage cannot be opened: a wrong URL, a server that is down, a file that
    cannot be written."""

    exit_code = 2


class SearchStopped(LrsearchError):
    """A search stopped before it was done: its workers cannot run the study (exit 2), or
    its trials failed one after another (exit 1). What it recorded stays in the storage."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self):
        return type(self), (str(self), self.exit_code)


class InternalError(LrsearchError):
    """A bug in lrsearch, not in the user's input or study."""

    exit_code = 70  # EX_SOFTWARE
