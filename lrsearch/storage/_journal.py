"""Integrity of journal files, lrsearch's default storage.

Optuna's journal is one JSON record per line, appended under a lock. Its reader skips a
last line cut short (a finished trial then reads as running) and appends the next record
onto it, after which nothing reads the file. So every lrsearch command checks a journal
before opening it (`check_journal`) and refuses a damaged one; `repair_journal` keeps a
backup and cuts the file after its last complete record before the damage.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shlex
import shutil
import time
from contextlib import contextmanager

from lrsearch.errors import StorageError, UsageError


class JournalDamagedError(StorageError, ValueError):
    """A journal file has a line that is not a complete record."""


@dataclasses.dataclass(frozen=True)
class Damage:
    """Where a journal is damaged: the 1-based line, the byte offset it starts at, the
    number of lines, and what is wrong."""

    line: int
    offset: int
    lines: int
    problem: str


@dataclasses.dataclass(frozen=True)
class RepairResult:
    """What `repair_journal` did; `backup` is None when there was nothing to repair."""

    backup: str | None
    records_kept: int
    lines_dropped: int
    bytes_dropped: int
    damage: Damage | None = None

    @property
    def repaired(self) -> bool:
        return self.backup is not None


def find_damage(path: str) -> Damage | None:
    """The first damaged line of the journal at `path`, or None (also for a missing or
    empty file). Read under the journal's own lock, so a record being written is never
    mistaken for damage."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None
    with _locked(path):
        return _scan(path)[0]


def check_journal(path: str) -> None:
    """Raise JournalDamagedError, saying how to repair it, if the journal is damaged."""
    damage = find_damage(path)
    if damage is None:
        return
    kept = damage.line - 1
    raise JournalDamagedError(
        f"the journal {path} is damaged: line {damage.line} of {damage.lines} {damage.problem}; "
        f"{kept} complete records precede it. Nothing was written to it. Repair it with "
        f"`lrsearch repair-journal {shlex.quote(path)}`, which keeps a backup and cuts it after record {kept}.")


def repair_journal(path: str) -> RepairResult:
    """Back the journal up beside it (`PATH.bak-YYYYmmdd-HHMMSS`) and cut it at its first
    damaged line, under the journal's lock; a journal without damage is left as it is
    (no backup). Stop the processes writing to it first: they replay what they read."""
    if not os.path.isfile(path):
        raise UsageError(f"no journal file {path!r}.")
    try:
        with _locked(path, required=True):
            return _cut_at_damage(path)
    except PermissionError as exc:
        raise UsageError(f"cannot repair {path}: {exc.strerror}: {exc.filename}") from None


def _cut_at_damage(path: str) -> RepairResult:
    damage, records = _scan(path)
    if damage is None:
        return RepairResult(backup=None, records_kept=records, lines_dropped=0, bytes_dropped=0)
    backup = _backup(path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(damage.offset)
        f.flush()
        os.fsync(f.fileno())
    return RepairResult(backup=backup, records_kept=damage.line - 1, lines_dropped=damage.lines - damage.line + 1,
                        bytes_dropped=size - damage.offset, damage=damage)


def _scan(path: str) -> tuple[Damage | None, int]:
    """(the first damage or None, the number of complete records before it)."""
    with open(path, "rb") as f:
        data = f.read()
    try:  # fast path: Optuna writes ASCII; scanning str lines with the C scanner is ~2x json.loads
        lines: list = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = data.split(b"\n")  # same line breaks: b"\n" never occurs inside a UTF-8 sequence
    complete, tail = lines[:-1], lines[-1]  # after the last newline: empty when the file ends well
    total = len(complete) + (1 if tail else 0)
    scan = json.JSONDecoder().scan_once
    for index, line in enumerate(complete):
        try:
            record, end = scan(line, 0)
            if end == len(line) and type(record) is dict:
                continue
        except (StopIteration, ValueError, TypeError):
            pass
        problem = _problem(line)  # what Optuna's reader (json.loads) says
        if problem:
            return Damage(index + 1, _offset(data, index), total, problem), index
    if tail:
        return Damage(total, _offset(data, total - 1), total,
                      f"is cut short ({len(tail)} bytes without an end of line)"), total - 1
    return None, total


def _problem(line: str | bytes) -> str | None:
    raw = line.encode("utf-8") if isinstance(line, str) else line
    try:
        record = json.loads(raw)
    except ValueError:
        return f"is not a JSON record: {_shorten(raw)}"
    return None if isinstance(record, dict) else f"is not a JSON object: {_shorten(raw)}"


def _shorten(raw: bytes, limit: int = 40) -> str:
    return repr(raw[:limit]) + ("..." if len(raw) > limit else "")


def _offset(data: bytes, index: int) -> int:
    """The byte offset of line `index` (0-based) of `data`."""
    offset = 0
    for _ in range(index):
        offset = data.index(b"\n", offset) + 1
    return offset


@contextmanager
def _locked(path: str, required: bool = False):
    """Optuna's lock of the journal at `path`, the one its writers take (`PATH.lock`). Where
    the lock cannot be created (a read-only folder, where this process could not append
    either) the file is read without it, unless `required`."""
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(path)
    try:
        held = lock.acquire()
    except OSError as exc:
        if required or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        held = False
    try:
        yield
    finally:
        if held:
            lock.release()


def _backup(path: str) -> str:
    """Copy `path` to a new `PATH.bak-YYYYmmdd-HHMMSS[-N]`, never over an existing file,
    and flush it to disk before the original is cut."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = f"{path}.bak-{stamp}", 1
    while True:
        try:
            out = open(candidate, "xb")
            break
        except FileExistsError:
            candidate, n = f"{path}.bak-{stamp}-{n}", n + 1
    with out, open(path, "rb") as src:
        shutil.copyfileobj(src, out)
        out.flush()
        os.fsync(out.fileno())
    shutil.copystat(path, candidate)
    return candidate
