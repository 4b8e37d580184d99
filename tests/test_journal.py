"""Journal files checked and repaired for real: journals written by Optuna, then damaged
as disks and people damage them (the last line cut short, a garbage line, a bad line in
the middle)."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest

from lrsearch.errors import StorageError
from lrsearch.journal import JournalDamagedError, check_journal, find_damage, repair_journal
from lrsearch.storage import open_storage


def write_study(path: str, n_trials: int = 3) -> None:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    study = optuna.create_study(study_name="s", storage=storage)
    for number in range(n_trials):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.report(0.5, 0)
        trial.set_user_attr("note", f"trial {number}")
        study.tell(trial, float(number))


def n_trials(path: str) -> int:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    return len(optuna.load_study(study_name="s", storage=storage).trials)


def lines(path: str) -> int:
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def test_a_clean_journal_passes_and_repair_leaves_it_alone(tmp_path):
    path = str(tmp_path / "j.journal")
    write_study(path)
    check_journal(path)
    before = open(path, "rb").read()
    result = repair_journal(path)
    assert result.backup is None and result.lines_dropped == 0 and result.records_kept == lines(path)
    assert open(path, "rb").read() == before
    assert list(tmp_path.glob("*.bak-*")) == []


def test_a_missing_or_empty_journal_is_no_damage(tmp_path):
    check_journal(str(tmp_path / "absent.journal"))
    (tmp_path / "empty.journal").write_bytes(b"")
    check_journal(str(tmp_path / "empty.journal"))


@pytest.mark.parametrize("damage, problem", [
    (lambda p: os.truncate(p, os.path.getsize(p) - 90), "is cut short"),
    (lambda p: open(p, "ab").write(b"garbage\n"), "is not a JSON record"),
    (lambda p: open(p, "ab").write(b'{"op_code": 0'), "is cut short"),
    (lambda p: open(p, "ab").write(b"[1, 2]\n"), "is not a JSON object"),
], ids=["truncated", "garbage line", "half a record", "not an object"])
def test_b_damage_is_found_named_and_repaired_keeping_a_backup(tmp_path, damage, problem):
    path = str(tmp_path / "j.journal")
    write_study(path, n_trials=3)
    good_lines = lines(path)
    damage(path)
    damaged = open(path, "rb").read()

    with pytest.raises(JournalDamagedError) as error:
        check_journal(path)
    message = str(error.value)
    assert problem in message and f"lrsearch repair-journal {path}" in message and path in message
    assert isinstance(error.value, StorageError)
    with pytest.raises(JournalDamagedError):
        open_storage(path)  # every command opens storage through here

    result = repair_journal(path)
    assert open(result.backup, "rb").read() == damaged
    assert result.lines_dropped == 1 and result.bytes_dropped == len(damaged) - os.path.getsize(path)
    check_journal(path)
    assert result.records_kept == lines(path) >= good_lines - 1
    assert n_trials(path) == 3  # a cut last record is the last trial's end, not the trial
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    optuna.load_study(study_name="s", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert n_trials(path) == 4
    check_journal(path)


def test_b_a_bad_line_in_the_middle_drops_it_and_all_after(tmp_path):
    path = str(tmp_path / "j.journal")
    write_study(path, n_trials=2)
    cut = lines(path)
    with open(path, "ab") as f:  # a bad line, then three records after it
        f.write(b"not json\n" + b'{"op_code": 4}\n' * 3)
    damage = find_damage(path)
    assert damage.line == cut + 1 and damage.lines == cut + 4
    result = repair_journal(path)
    assert result.records_kept == cut and result.lines_dropped == 4
    assert n_trials(path) == 2


def test_c_the_command_repairs_and_says_what_it_did(tmp_path):
    path = str(tmp_path / "j.journal")
    write_study(path, n_trials=3)
    records = lines(path)
    with open(path, "ab") as f:
        f.write(b"garbage")
    result = subprocess.run([sys.executable, "-m", "lrsearch", "repair-journal", path],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"line {records + 1} of {records + 1} is cut short" in result.stdout
    assert f"Kept {records} records; dropped 1 line(s), 7 bytes." in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert n_trials(path) == 3

    again = subprocess.run([sys.executable, "-m", "lrsearch", "repair-journal", path],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "no damage found" in again.stdout
    missing = subprocess.run([sys.executable, "-m", "lrsearch", "repair-journal", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no journal file" in missing.stderr
