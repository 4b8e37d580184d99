"""Integrity of journal files, lrsearch's default storage.

Optuna's journal is one JSON record per line, appended under a lock. Its reader skips a
last line cut short (a finished trial then reads as running) and appends the next record
onto it, after which nothing reads the file. So every lrsearch command checks a journal
before opening it (`check_journal`) and refuses a damaged one; `repair_journal` keeps a
backup and cuts the file after its last complete record before the damage.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from contextlib import contextmanager

from lrsearch.errors import StorageError


class JournalDamagedError(StorageError):
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
    backup: str | None
    records_kept: int
    lines_dropped: int
    bytes_dropped: int


def find_damage(path: str) -> Damage | None:
    """The first damaged line of the journal at `path`, or None (also for a missing or
    empty file). Read under the journal's own lock, so a record being written is never
    mistaken for damage."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None
    with _locked(path):
        return _scan(path)


def _scan(path: str) -> Damage | None:
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # after the last newline: b"" when the file ends well
    total = len(complete) + (1 if tail else 0)
    offset = 0
    for number, line in enumerate(complete, start=1):
        problem = _problem(line)
        if problem:
            return Damage(number, offset, total, problem)
        offset += len(line) + 1
    if tail:
        return Damage(total, offset, total, f"is cut short ({len(tail)} bytes without an end of line)")
    return None


def check_journal(path: str) -> None:
    """Raise JournalDamagedError, saying how to repair it, if the journal is damaged."""
    damage = find_damage(path)
    if damage is None:
        return
    raise JournalDamagedError(
        f"the journal {path} is damaged: line {damage.line} of {damage.lines} {damage.problem}; "
        f"{damage.line - 1} complete records precede it. Nothing was written to it. Repair it with "
        f"`lrsearch repair-journal {path}`, which keeps a backup and cuts it after record {damage.line - 1}.")


def repair_journal(path: str) -> RepairResult:
    """Back the journal up beside it and cut it at its first damaged line; a journal
    without damage is left as it is (no backup)."""
    with _locked(path):
        damage = _scan(path)
        if damage is None:
            return RepairResult(backup=None, records_kept=_count_lines(path), lines_dropped=0, bytes_dropped=0)
        backup = _backup_name(path)
        shutil.copy2(path, backup)
        size = os.path.getsize(path)
        os.truncate(path, damage.offset)
        return RepairResult(backup=backup, records_kept=damage.line - 1,
                            lines_dropped=damage.lines - damage.line + 1, bytes_dropped=size - damage.offset)


@contextmanager
def _locked(path: str):
    """Optuna's lock of the journal at `path` (the one its writers take)."""
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _problem(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        shown = line[:40] + (b"..." if len(line) > 40 else b"")
        return f"is not a JSON record: {shown!r}"
    return None if isinstance(record, dict) else f"is not a JSON object: {line[:40]!r}"


def _count_lines(path: str) -> int:
    if not os.path.isfile(path):
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _backup_name(path: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = f"{path}.bak-{stamp}", 1
    while os.path.exists(candidate):
        candidate, n = f"{path}.bak-{stamp}-{n}", n + 1
    return candidate
