"""Integrity of journal files, lrsearch's default storage.

Optuna's journal is one JSON record per line, appended under a lock. Its reader skips a
last line cut short (a finished trial then reads as running) and appends the next record
onto it, after which nothing reads the file; and it replays records that no longer add
up, after one in the middle was lost, without a word (trials lose their parameters, or
take another trial's). So every lrsearch command checks a journal before opening it
(`check_journal`): each line a record, and the records consistent
(`lrsearch.storage._journal_replay`). A process checks each line once: a later check
reads only what was appended since.

`repair_journal` keeps a backup and cuts a damaged file after its last complete record
before the damage; it cannot bring a lost record back, and cuts before the first record
that shows one only when asked (`cut_inconsistent`), saying what that drops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shlex
import shutil
import time
import zlib
from contextlib import contextmanager

from lrsearch.errors import StorageOpenError, UsageError, WriteError, write_error
from lrsearch.storage._journal_replay import COMPLETE, CREATE_TRIAL, FAIL, PRUNED, SET_TRIAL_STATE_VALUES, Replay


#: Seconds after which Optuna breaks a journal lock that was not released (its default).
LOCK_GRACE_S = 30


class JournalDamagedError(StorageOpenError, ValueError):
    """A journal file has a line that is not a complete record, or records that do not
    add up (one was lost)."""


@dataclasses.dataclass(frozen=True)
class Damage:
    """Where a journal is damaged: the 1-based line, the byte offset it starts at, the
    number of lines, what is wrong, and whether the records do not add up (the line is a
    record, but one before it was lost) rather than the line is not a record."""

    line: int
    offset: int
    lines: int
    problem: str
    inconsistent: bool = False


@dataclasses.dataclass(frozen=True)
class RepairResult:
    """What `repair_journal` did; `backup` is None when there was nothing to repair.
    `trials_dropped` and `endings_dropped` count the dropped records that created a trial
    and that finished one."""

    backup: str | None
    records_kept: int
    lines_dropped: int
    bytes_dropped: int
    damage: Damage | None = None
    trials_dropped: int = 0
    endings_dropped: int = 0

    @property
    def repaired(self) -> bool:
        return self.backup is not None


@dataclasses.dataclass
class _Sound:
    """What a process found sound in a journal: its first `size` bytes (their CRC), the
    `records` on them, and the replay of those records."""

    size: int = 0
    crc: int = 0
    records: int = 0
    replay: Replay = dataclasses.field(default_factory=Replay)


#: Real path of a journal -> what this process found sound in it.
_SOUND: dict[str, _Sound] = {}


def find_damage(path: str) -> Damage | None:
    """The first damaged line of the journal at `path`, or None (also for a missing or
    empty file)."""
    return _checked(path)[0]


def check_journal(path: str) -> None:
    """Raise JournalDamagedError, saying what to do, if the journal is damaged."""
    damage, data = _checked(path)
    if damage is not None:
        _refuse_other_files(path, data)
        raise JournalDamagedError(_damage_message(path, damage, data))


def _checked(path: str) -> tuple[Damage | None, bytes]:
    """(the first damage of the journal at `path` or None, its content), read under the
    journal's own lock, so that a record being written is never mistaken for damage."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None, b""
    with _locked(path):
        data = _read(path)
        return _scan(path, data)[0], data


def repair_journal(path: str, cut_inconsistent: bool = False) -> RepairResult:
    """Back the journal up beside it (`PATH.bak-YYYYmmdd-HHMMSS`) and cut it at its first
    damaged line, under the journal's lock; a journal without damage is left as it is
    (no backup). Records that do not add up are cut only with `cut_inconsistent`, else
    JournalDamagedError says what the cut would drop. Stop the processes writing to it
    first: they replay what they read. WriteError where the backup cannot be written (it
    is checked for space first, and no part of one is left)."""
    if not os.path.isfile(path):
        raise UsageError(f"no journal file {path!r}.")
    try:
        with _locked(path, required=True):
            return _cut_at_damage(path, cut_inconsistent)
    except OSError as exc:
        raise write_error(exc, path) or exc from None


def cut_torn_tail(path: str) -> None:
    """Cut what follows the last complete line of the journal, under its lock: the part
    of a record that a failed write left. Where the lock cannot be taken (a full disk may
    refuse the lock file too), the next command's check finds the cut record instead."""
    try:
        with _locked(path, required=True), open(path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            end = _after_last_newline(f, size)
            if end < size:
                f.truncate(end)
    except OSError:
        pass


def _cut_at_damage(path: str, cut_inconsistent: bool) -> RepairResult:
    data = _read(path)
    damage, records = _scan(path, data)
    if damage is None:
        return RepairResult(backup=None, records_kept=records, lines_dropped=0, bytes_dropped=0)
    _refuse_other_files(path, data)
    if damage.inconsistent and not cut_inconsistent:
        raise JournalDamagedError(_damage_message(path, damage, data, repairing=True))
    backup = _backup(path, data)
    with open(path, "r+b") as f:
        f.truncate(damage.offset)
        f.flush()
        os.fsync(f.fileno())
    return RepairResult(backup, damage.line - 1, damage.lines - damage.line + 1, len(data) - damage.offset, damage,
                        *_dropped(data[damage.offset:]))


def _refuse_other_files(path: str, data: bytes) -> None:
    """UsageError where `data` does not start as a journal does (a record, or the first part
    of one): the file is something else, which repairing would empty."""
    if data.startswith(b'{"op_code"'):
        return
    hint = (f"; it is an SQLite database: as a storage, give sqlite:///{os.path.abspath(path)}"
            if data.startswith(b"SQLite format 3\0") else "")
    raise UsageError(f"{path} is not an Optuna journal file: its first line is not a journal record{hint}. It was "
                     f"left as it is.")


def _damage_message(path: str, damage: Damage, data: bytes, repairing: bool = False) -> str:
    """What is wrong with the journal at `path` and what to do: one message for every
    command, and for `repair-journal` where it cannot repair it by itself."""
    quoted, kept = shlex.quote(path), damage.line - 1
    where = f"line {damage.line} of {damage.lines} {damage.problem}"
    if not damage.inconsistent:
        return (f"the journal {path} is damaged: {where}; {kept} complete records precede it. Nothing was written to "
                f"it. Repair it with `lrsearch repair-journal {quoted}`, which keeps a backup and cuts it after "
                f"record {kept}.")
    trials, endings = _dropped(data[damage.offset:])
    cut = (f"`lrsearch repair-journal --cut-inconsistent {quoted}` keeps a backup and cuts it before line "
           f"{damage.line}, dropping {damage.lines - kept} records, which create {trials} trial(s) and finish "
           f"{endings}")
    if repairing:
        return (f"{path}: {where}. repair-journal cannot bring a lost record back, and left the file as it is: "
                f"restore the journal from a copy, or {cut}.")
    return (f"the journal {path} does not add up: {where}. Nothing was written to it. Restore it from a copy, "
            f"or {cut}.")


def _dropped(tail: bytes) -> tuple[int, int]:
    """(trials created, trials finished) by the records in `tail`, the lines a cut drops."""
    created = finished = 0
    for line in tail.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            created += record.get("op_code") == CREATE_TRIAL
            finished += (record.get("op_code") == SET_TRIAL_STATE_VALUES
                         and record.get("state") in (COMPLETE, PRUNED, FAIL))
    return created, finished


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _scan(path: str, data: bytes) -> tuple[Damage | None, int]:
    """(the first damage of the journal `data` read from `path`, or None; the number of
    complete records before it), resuming after what this process found sound in the
    file before, if the file still starts with it."""
    key = os.path.realpath(path)
    sound = _SOUND.pop(key, None)
    if sound is None or len(data) < sound.size or zlib.crc32(data[:sound.size]) != sound.crc:
        sound = _Sound()
    text = data[sound.size:]
    try:  # fast path: Optuna writes ASCII; scanning str lines with the C scanner is ~2x json.loads
        lines: list = text.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = text.split(b"\n")  # same line breaks: b"\n" never occurs inside a UTF-8 sequence
    complete, tail = lines[:-1], lines[-1]  # after the last newline: empty when the file ends well
    total = sound.records + len(complete) + (1 if tail else 0)
    scan, replay = json.JSONDecoder().scan_once, sound.replay
    for index, line in enumerate(complete, start=sound.records):
        record = _record(line, scan)
        problem = record if isinstance(record, str) else replay.apply(record, index + 1)
        if problem:
            return _first(replay, Damage(index + 1, 0, total, problem, not isinstance(record, str)), data), index
    if tail:
        damage = Damage(total, 0, total, f"is cut short ({len(tail)} bytes without an end of line)")
        return _first(replay, damage, data), total - 1
    lost = replay.lost_parameter()
    if lost is not None:
        return _first(replay, None, data, lost), lost[0] - 1
    _SOUND[key] = _Sound(len(data), zlib.crc32(data), total, replay)
    return None, total


def _first(replay: Replay, damage: Damage | None, data: bytes, lost: tuple[int, str] | None = None) -> Damage:
    """The first of `damage` and a lost parameter of a trial finished before it, with the
    offset of its line."""
    lost = lost or replay.lost_parameter()
    if lost is not None and (damage is None or lost[0] < damage.line):
        damage = Damage(lost[0], 0, damage.lines if damage else data.count(b"\n"), lost[1], True)
    return dataclasses.replace(damage, offset=_offset(data, damage.line - 1))


def _record(line: str | bytes, scan) -> dict | str:
    """The record on `line`, or what is wrong with it as Optuna's reader (json.loads) sees it."""
    try:
        record, end = scan(line, 0)
        if end == len(line) and type(record) is dict:
            return record
    except (StopIteration, ValueError, TypeError):
        pass
    raw = line.encode("utf-8") if isinstance(line, str) else line
    try:
        record = json.loads(raw)
    except ValueError:
        return f"is not a JSON record: {_shorten(raw)}"
    return record if isinstance(record, dict) else f"is not a JSON object: {_shorten(raw)}"


def _shorten(raw: bytes, limit: int = 40) -> str:
    return repr(raw[:limit]) + ("..." if len(raw) > limit else "")


def _offset(data: bytes, index: int) -> int:
    """The byte offset of line `index` (0-based) of `data`."""
    offset = 0
    for _ in range(index):
        offset = data.index(b"\n", offset) + 1
    return offset


def _after_last_newline(f, size: int, chunk: int = 1 << 16) -> int:
    """The offset after the last newline of the open file `f` of `size` bytes (0: none)."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        f.seek(start)
        at = f.read(end - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def journal_lock(path: str, grace_period: int = LOCK_GRACE_S):
    """Optuna's lock of the journal at `path`, the one its writers take (`PATH.lock`): a
    symbolic link to the journal, broken after `grace_period` by the next writer if a
    process killed while it wrote left it, as Optuna reads its age through the link. So it
    links to the journal's absolute path: a relative path to a journal in another folder
    made a link that led nowhere, whose age Optuna could never read, and every later
    process spun on it for ever. Such a link, left before, is removed (`remove_broken_lock`)."""
    from optuna.storages.journal import JournalFileSymlinkLock

    path = os.path.abspath(path)
    remove_broken_lock(path)
    return JournalFileSymlinkLock(path, grace_period=grace_period)


def remove_broken_lock(path: str) -> None:
    """Remove the lock of the journal at `path` if it is a link that leads nowhere and is
    older than `LOCK_GRACE_S`: a lock Optuna would break, could it read its age."""
    lock = path + ".lock"
    with contextlib.suppress(OSError):  # no lock, or another process removed it first
        broken = os.path.islink(lock) and not os.path.exists(lock)
        if broken and time.time() - os.lstat(lock).st_mtime > LOCK_GRACE_S:
            os.unlink(lock)


@contextmanager
def _locked(path: str, required: bool = False):
    """Optuna's lock of the journal at `path`, the one its writers take (`PATH.lock`). Where
    the lock cannot be created (a read-only folder or a full disk, where this process could
    not append either) the file is read without it, unless `required`."""
    lock = journal_lock(path)
    try:
        held = lock.acquire()
    except OSError as exc:
        if required or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise
        held = False
    try:
        yield
    finally:
        if held:
            lock.release()


def _backup(path: str, data: bytes) -> str:
    """Write `data` (the journal at `path`) to a new `PATH.bak-YYYYmmdd-HHMMSS[-N]`, never
    over an existing file, flushed to disk before the original is cut. WriteError, and no
    backup left, where there is no room for it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = f"{path}.bak-{stamp}", 1
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    if free < len(data):
        raise WriteError(candidate, f"no space left on the device ({free} bytes free for a backup of {len(data)})")
    while True:
        try:
            out = open(candidate, "xb")
            break
        except FileExistsError:
            candidate, n = f"{path}.bak-{stamp}-{n}", n + 1
    try:
        with out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        shutil.copystat(path, candidate)
    except OSError as exc:
        os.unlink(candidate)
        raise write_error(exc, candidate) or exc from None
    return candidate
