"""Journal files checked and repaired for real: journals written by Optuna, then damaged
as disks and people damage them (the last line cut short, a garbage line, a bad line in
the middle)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch.errors import StorageError, UsageError
from lrsearch.storage import (JournalDamagedError, _journal as journal_module, check_journal, find_damage, open_storage,
                              repair_journal)

COMPLETE, RUNNING = TrialState.COMPLETE, TrialState.RUNNING


def backend(path: str) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))


def write_study(path: str, n_trials: int = 3) -> None:
    """A real study: each trial with a parameter, two intermediate values, a user attr."""
    study = optuna.create_study(study_name="s", storage=backend(path))
    for number in range(n_trials):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.report(0.5, 0)
        trial.report(0.25, 1)
        trial.set_user_attr("note", f"trial {number}")
        study.tell(trial, float(number))


def states(path: str) -> list[TrialState]:
    return [t.state for t in optuna.load_study(study_name="s", storage=backend(path)).trials]


def lines(path: str) -> int:
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def backups(tmp_path) -> list:
    return sorted(tmp_path.glob("*.bak-*"))


@pytest.fixture
def journal(tmp_path) -> str:
    path = str(tmp_path / "j.journal")
    write_study(path, n_trials=3)
    assert states(path) == [COMPLETE] * 3
    return path


def test_a_clean_journal_passes_and_repair_leaves_it_alone(tmp_path, journal):
    check_journal(journal)
    before = open(journal, "rb").read()
    result = repair_journal(journal)
    assert not result.repaired and result.backup is None and result.damage is None
    assert (result.records_kept, result.lines_dropped, result.bytes_dropped) == (lines(journal), 0, 0)
    assert open(journal, "rb").read() == before
    assert backups(tmp_path) == []
    assert not os.path.lexists(journal + ".lock"), "the lock is released"


def test_a_missing_or_empty_journal_is_no_damage(tmp_path):
    check_journal(str(tmp_path / "absent.journal"))
    (tmp_path / "empty.journal").write_bytes(b"")
    check_journal(str(tmp_path / "empty.journal"))
    assert not (tmp_path / "absent.journal").exists(), "checking creates nothing"
    with pytest.raises(UsageError):
        repair_journal(str(tmp_path / "absent.journal"))


def _truncate(path):
    os.truncate(path, os.path.getsize(path) - 90)  # the last record (> 90 bytes) loses its end


def _garbage(path):
    with open(path, "ab") as f:
        f.write(b"garbage\n")


def _no_newline(path):
    with open(path, "ab") as f:
        f.write(b'{"op_code": 0')


def _not_an_object(path):
    with open(path, "ab") as f:
        f.write(b"[1, 2]\n")


@pytest.mark.parametrize("damage, bad_line, problem, after", [
    # the cut record is the last trial's end: the trial is kept, running (the next run fails it)
    (_truncate, 0, "is cut short (84 bytes without an end of line)", [COMPLETE, COMPLETE, RUNNING]),
    (_garbage, 1, "is not a JSON record: b'garbage'", [COMPLETE] * 3),
    (_no_newline, 1, "is cut short (13 bytes without an end of line)", [COMPLETE] * 3),
    (_not_an_object, 1, "is not a JSON object: b'[1, 2]'", [COMPLETE] * 3),
], ids=["truncated", "garbage line", "line without newline", "not an object"])
def test_b_damage_is_found_named_and_repaired_keeping_a_backup(tmp_path, journal, damage, bad_line, problem, after):
    good = lines(journal)
    damage(journal)
    damaged = open(journal, "rb").read()
    line = good + bad_line  # 1-based: the truncated last line, or the one appended
    kept = line - 1

    with pytest.raises(JournalDamagedError) as error:
        check_journal(journal)
    assert str(error.value) == (
        f"the journal {journal} is damaged: line {line} of {line} {problem}; {kept} complete records precede it. "
        f"Nothing was written to it. Repair it with `lrsearch repair-journal {journal}`, which keeps a backup "
        f"and cuts it after record {kept}.")
    assert isinstance(error.value, StorageError) and isinstance(error.value, ValueError)
    with pytest.raises(JournalDamagedError):
        open_storage(journal)  # every command opens storage through here
    assert open(journal, "rb").read() == damaged, "a check writes nothing"

    result = repair_journal(journal)
    assert result.repaired and result.damage.line == line
    assert [p.name for p in backups(tmp_path)] == [os.path.basename(result.backup)]
    assert open(result.backup, "rb").read() == damaged
    assert (result.records_kept, result.lines_dropped) == (kept, 1)
    assert result.bytes_dropped == len(damaged) - os.path.getsize(journal) > 0
    assert open(journal, "rb").read() == damaged[:os.path.getsize(journal)] and lines(journal) == kept
    check_journal(journal)
    assert states(journal) == after

    study = optuna.load_study(study_name="s", storage=backend(journal))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert states(journal) == after + [COMPLETE]
    assert optuna.load_study(study_name="s", storage=backend(journal)).trials[-1].params.keys() == {"x"}
    check_journal(journal)


def test_b_a_bad_line_in_the_middle_drops_it_and_all_after(tmp_path):
    path = str(tmp_path / "j.journal")
    write_study(path, n_trials=2)
    cut = lines(path)
    write_study_more = optuna.load_study(study_name="s", storage=backend(path))
    write_study_more.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    total = lines(path)
    data = open(path, "rb").read()
    offset = len(b"".join(data.splitlines(keepends=True)[:cut]))
    with open(path, "wb") as f:  # a bad line after trial 2, then the records of trials 3 and 4
        f.write(data[:offset] + b"not json\n" + data[offset:])

    damage = find_damage(path)
    assert (damage.line, damage.lines, damage.offset) == (cut + 1, total + 1, offset)
    with pytest.raises(JournalDamagedError, match=f"line {cut + 1} of {total + 1} is not a JSON record"):
        check_journal(path)
    result = repair_journal(path)
    assert (result.records_kept, result.lines_dropped) == (cut, total - cut + 1)
    assert open(path, "rb").read() == data[:offset]
    assert states(path) == [COMPLETE] * 2


def test_b_a_backup_never_overwrites_a_file(tmp_path, journal, monkeypatch):
    monkeypatch.setattr(journal_module.time, "strftime", lambda _: "20250101-120000")
    taken = tmp_path / "j.journal.bak-20250101-120000"
    taken.write_bytes(b"an older backup")
    _garbage(journal)
    result = repair_journal(journal)
    assert result.backup == str(taken) + "-1"
    assert taken.read_bytes() == b"an older backup"


def test_b_a_record_being_written_under_the_lock_is_not_damage(journal):
    """A writer holds Optuna's lock and has written half its record: the check waits for
    the lock instead of reporting a line cut short."""
    lock = optuna.storages.journal.JournalFileSymlinkLock(journal)
    lock.acquire()
    with open(journal, "ab") as f:
        f.write(b'{"op_code":0,"worker_id":"w",')
        f.flush()
        errors = []
        checker = threading.Thread(target=lambda: errors.append(_error_of(check_journal, journal)))
        checker.start()
        time.sleep(0.3)
        assert checker.is_alive(), "the check waits for the writer's lock"
        f.write(b'"study_name":"t","directions":[1]}\n')
    lock.release()
    checker.join(10)
    assert errors == [None]
    assert sorted(optuna.get_all_study_names(backend(journal))) == ["s", "t"]


def _error_of(function, *args):
    try:
        function(*args)
    except Exception as exc:  # noqa: BLE001 - handed to the test thread
        return exc
    return None


def test_b_checking_a_large_journal_is_fast(tmp_path, journal):
    """~20k lines (the size of a long study) in well under a second (about 25 ms here)."""
    records = open(journal, "rb").read().splitlines(keepends=True)
    big = tmp_path / "big.journal"
    big.write_bytes(b"".join(records[:1] + records[1:] * (20_000 // (len(records) - 1))))
    assert 19_900 < lines(str(big)) <= 20_001
    started = time.perf_counter()
    check_journal(str(big))
    assert time.perf_counter() - started < 0.5


def test_c_the_command_repairs_and_says_what_it_did(tmp_path, journal):
    records = lines(journal)
    with open(journal, "ab") as f:
        f.write(b"garbage")
    damaged = open(journal, "rb").read()
    result = subprocess.run([sys.executable, "-m", "lrsearch", "repair-journal", journal],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    [backup] = backups(tmp_path)
    assert result.stdout.splitlines() == [
        f"{journal}: line {records + 1} of {records + 1} is cut short (7 bytes without an end of line).",
        f"Backup: {backup}",
        f"Kept {records} records; dropped 1 line(s), 7 bytes.",
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert backup.read_bytes() == damaged
    assert states(journal) == [COMPLETE] * 3

    again = subprocess.run([sys.executable, "-m", "lrsearch", "repair-journal", journal],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0
    assert again.stdout.splitlines() == [f"{journal}: no damage found ({records} records); left as it is."]
    assert len(backups(tmp_path)) == 1
    missing = subprocess.run([sys.executable, "-m", "lrsearch", "repair-journal", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no journal file" in missing.stderr
    assert "Traceback" not in missing.stdout + missing.stderr
