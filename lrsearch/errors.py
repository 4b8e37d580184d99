"""lrsearch's own errors, one family under `LrsearchError`.

The CLI turns each into a one-line message and its `exit_code`, without a traceback
(`--verbose` adds it). Any other exception is a bug in lrsearch: the CLI says so and
exits with `InternalError.exit_code`.

- `UsageError`: bad input from the user (options, arguments, files they name); exit 2.
- `StudyFileError`: a study (a file or one defined in Python) that cannot be used; exit 2.
- `StorageError`: the Optuna storage cannot be used as it is.
- `SearchStopped`: a search that could not go on (its workers cannot run the study, or
  its trials keep failing).
- `WriteError`: a file lrsearch writes cannot be written (no space left, no permission, a
  read-only file system); exit 74.
- `InternalError`: lrsearch itself is broken (a Keras or Optuna internal it relies on
  changed); the message names the versions.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path


#: Every exit code of the `lrsearch` command, and what it means (the README's table).
EXIT_CODES = {
    0: "done",
    1: "the search stopped: its trials failed one after another (five in a row, or every trial of a run) and "
       "the study file is probably wrong, or the timeout passed before any trial could start (the message says "
       "where the workers were, e.g. in a `data()` that did not return)",
    2: "bad input: an option, a study or config file, or a storage that cannot be opened (a wrong URL, a "
       "server that is down, a damaged journal)",
    70: "a bug in lrsearch; please report it",
    74: "a file could not be written: no space left, no permission, a read-only file system",
    75: "the storage stayed unreachable for longer than lrsearch waits; nothing finished is lost, run the "
        "same command again",
    130: "interrupted (Ctrl-C or SIGTERM); run the same command again to resume",
}


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


class WriteError(LrsearchError):
    """A file cannot be written: no space left, no permission, a read-only file system."""

    exit_code = 74  # EX_IOERR

    def __init__(self, path: str | os.PathLike, cause: str) -> None:
        self.path, self.cause = str(path), cause
        super().__init__(f"{cause} writing {self.path}")

    def __reduce__(self):
        return type(self), (self.path, self.cause)


#: errno -> what `WriteError` says of it; other OSErrors are not the disk's fault.
WRITE_FAILURES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file grew past the size allowed",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def write_error(exc: OSError, path: str | os.PathLike | None = None) -> WriteError | None:
    """`exc` as a WriteError naming the file (`path`, else the one `exc` names), or None
    if it is not a failure to write."""
    cause = WRITE_FAILURES.get(exc.errno)
    where = path or exc.filename
    if cause is None:
        return None
    return WriteError(where if where is not None else "a file", cause)


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Within it, any OSError (writing `path`, or making its folder) becomes a WriteError
    naming `path`."""
    try:
        yield
    except (FileExistsError, NotADirectoryError):
        raise WriteError(path, "a file is in the way of a folder on the path") from None
    except OSError as exc:
        raise (write_error(exc, path) or WriteError(path, (exc.strerror or str(exc)).lower())) from None


def ready_to_write(path: str | os.PathLike) -> None:
    """Check, before the work that produces it, that the file `path` can be written: its
    folders are made, and it is opened for appending and closed (removed again if it was
    not there). WriteError naming it where not (a folder or file in the way, no permission,
    a read-only file system). For a folder to write in: `report.check_writable`."""
    path = Path(path)
    with writing(path):
        if path.is_dir():
            raise WriteError(path, "a folder is in the way of the file")
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "ab"):
            pass
        if not existed:
            path.unlink()


def plain(text: str) -> str:
    """`text` without terminal colour codes (Keras colours some of its messages), the list
    of arguments that Keras adds to a layer's error, and what TensorFlow adds to an op's
    error in a compiled function: the Python frames that defined the op, its graph-node tags
    and, for a label out of range, every label of the batch (what stays says what went wrong)."""
    text = _CALL_ARGUMENTS.sub("", _ANSI.sub("", text))
    if _OP_STACK in text:
        text = "\n".join(line for line in text.splitlines() if not _OP_NOISE.match(line))
        text = _LABEL_VALUES.sub("", text.replace("Graph execution error:", ""))
    return text


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CALL_ARGUMENTS = re.compile(r"\s*Arguments received by [\w.]+\(\):.*", re.S)
_OP_STACK = "defined at (most recent call last):"
_OP_NOISE = re.compile(r'\s*(Detected at node .* defined at \(most recent call last\):|File ".*", line \d+, in '
                       r'|\[\[\{\{node )|\s*$')
_LABEL_VALUES = re.compile(r"\s*Label values:[-\d\s]*")


class InternalError(LrsearchError):
    """A bug in lrsearch, not in the user's input or study."""

    exit_code = 70  # EX_SOFTWARE


def counted(count: int, noun: str) -> str:
    """'1 epoch', '3 epochs': `count` and `noun`, plural but for one."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
