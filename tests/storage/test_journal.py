"""Journal files checked and repaired for real: journals written by Optuna, then damaged
as disks and people damage them (the last line cut short, a garbage line, a bad line in
the middle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch.errors import StorageOpenError, UsageError, WriteError
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


def states(path: str, name: str = "s") -> list[TrialState]:
    return [t.state for t in optuna.load_study(study_name=name, storage=backend(path)).trials]


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
    assert isinstance(error.value, StorageOpenError) and isinstance(error.value, ValueError)
    assert error.value.exit_code == 2  # a storage that cannot be opened
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


def test_b_a_second_check_of_a_large_journal_parses_only_what_was_appended(tmp_path, journal, monkeypatch):
    """~20k lines (the size of a long study: the 3 trials again and again, each a new one);
    a second check parses only the line appended since (how fast: benchmarks/storage_cost.py)."""
    records = [json.loads(line) for line in open(journal, "rb")]
    copies = [{**record, "trial_id": record["trial_id"] + 3 * copy} if "trial_id" in record else record
              for copy in range(20_000 // (len(records) - 1)) for record in records[1:]]
    big = tmp_path / "big.journal"
    big.write_text("".join(json.dumps(record) + "\n" for record in records[:1] + copies))
    assert 19_900 < lines(str(big)) <= 20_001
    parsed = []
    record = journal_module._record
    monkeypatch.setattr(journal_module, "_record", lambda line, scan: parsed.append(line) or record(line, scan))
    check_journal(str(big))
    assert len(parsed) == lines(str(big))
    with open(big, "a") as f:
        f.write(json.dumps({**next(r for r in copies if "trial_id" in r), "trial_id": None}) + "\n")
    parsed.clear()
    with pytest.raises(JournalDamagedError, match=f"line {lines(str(big))} of .* refers to trial id None"):
        check_journal(str(big))
    assert len(parsed) == 1


@pytest.mark.parametrize("content, hint", [
    (b"a,b\n1,2\n", ""),
    (b"SQLite format 3\0" + bytes(200) + b"\n\x01", "; it is an SQLite database: as a storage, give sqlite:///"),
])
def test_b_a_file_that_is_no_journal_is_refused_and_never_cut(tmp_path, content, hint):
    other = tmp_path / "other.file"
    other.write_bytes(content)
    message = f"{other} is not an Optuna journal file: its first line is not a journal record{hint}"
    for refusing in (check_journal, repair_journal):
        with pytest.raises(UsageError) as raised:
            refusing(str(other))
        assert str(raised.value).startswith(message)
    assert other.read_bytes() == content and os.listdir(tmp_path) == ["other.file"]


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


# --------------------------------------------------------------------------- records that do not add up

#: The trials of `searched`, fixed (enqueued, as a run's trials are sampled): the choices
#: decide the parameters, as in lrsearch's space (peak_lr with one_cycle, momentum with sgd),
#: and the amounts are alike, so that each trial sits among the others that share its choices.
TRIALS = [("adam", "constant", 16), ("sgd", "constant", 32), ("adam", "one_cycle", 16), ("sgd", "one_cycle", 32),
          ("adam", "constant", 32), ("sgd", "constant", 16), ("sgd", "one_cycle", 16), ("adam", "one_cycle", 32)]
AMOUNTS = {"lr": 1e-3, "peak_lr": 1e-2, "momentum": 0.9}


@pytest.fixture(scope="module")
def searched_once(tmp_path_factory) -> bytes:
    """A study "tiny" searched as lrsearch searches, by Optuna itself: its journal."""
    path = str(tmp_path_factory.mktemp("searched") / "tiny.journal")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="tiny", storage=backend(path), direction="maximize")
    for optimizer, schedule, units in TRIALS:
        study.enqueue_trial({"optimizer": optimizer, "schedule": schedule, "units": units, **AMOUNTS})

    def objective(trial):
        optimizer = trial.suggest_categorical("optimizer", ["adam", "sgd"])
        schedule = trial.suggest_categorical("schedule", ["constant", "one_cycle"])
        trial.suggest_float("peak_lr" if schedule == "one_cycle" else "lr", 1e-5, 1.0, log=True)
        if optimizer == "sgd":
            trial.suggest_float("momentum", 0.0, 0.99)
        trial.suggest_int("units", 8, 32)
        for epoch in range(2):
            trial.report(0.5 + epoch / 10, epoch)
        trial.set_user_attr("config", {"optimizer": optimizer})
        return 0.6

    study.optimize(objective, n_trials=len(TRIALS))
    return open(path, "rb").read()


@pytest.fixture
def searched(tmp_path, searched_once):
    """Write the journal of `searched_once` to a path; its records."""

    def write(path: str) -> list[dict]:
        open(path, "wb").write(searched_once)
        return [json.loads(line) for line in searched_once.splitlines()]

    return write


def line_of(records: list[dict], op: int, trial: int | None = None, **fields) -> int:
    """The 1-based line of the first record of `op` on trial id `trial` with `fields`."""
    return next(number for number, record in enumerate(records, 1) if record["op_code"] == op
                and (trial is None or record.get("trial_id") == trial)
                and all(record.get(key) == value for key, value in fields.items()))


def without_line(path: str, line: int) -> bytes:
    """Delete 1-based `line` from the journal at `path`; its content before."""
    before = open(path, "rb").read()
    kept = before.splitlines(keepends=True)
    open(path, "wb").write(b"".join(kept[:line - 1] + kept[line:]))
    return before


CREATE_STUDY, CREATE_TRIAL, SET_PARAM, SET_STATE = 0, 4, 5, 6


@pytest.mark.parametrize("deleted, reported, problem", [
    ((CREATE_STUDY, None, {}), lambda r, gone: 1, "refers to study id 0, which no record before it created"),
    # all trials were enqueued first: the next trial's records take its id, the last one's refer to none
    ((CREATE_TRIAL, None, {"study_id": 0}), lambda r, gone: line_of(r, SET_STATE, len(TRIALS) - 1) - 1,
     f"refers to trial id {len(TRIALS) - 1}, which no record before it created"),
    ((SET_STATE, 3, {"state": 0}), lambda r, gone: gone,
     "sets parameter 'optimizer' of trial #3 of study 'tiny', which never started"),
    ((SET_PARAM, 4, {"param_name": "optimizer"}), lambda r, gone: line_of(r, SET_STATE, 4, state=1) - 1,
     "finishes trial #4 of study 'tiny' without parameter 'optimizer'"),
    ((SET_PARAM, 4, {"param_name": "lr"}), lambda r, gone: line_of(r, SET_STATE, 4, state=1) - 1,
     "finishes trial #4 of study 'tiny' without parameter 'lr'"),
    ((SET_PARAM, 5, {"param_name": "momentum"}), lambda r, gone: line_of(r, SET_STATE, 5, state=1) - 1,
     "finishes trial #5 of study 'tiny' without parameter 'momentum'"),
    ((SET_PARAM, 3, {"param_name": "peak_lr"}), lambda r, gone: line_of(r, SET_STATE, 3, state=1) - 1,
     "finishes trial #3 of study 'tiny' without parameter 'peak_lr'"),
    ((SET_PARAM, 1, {"param_name": "units"}), lambda r, gone: line_of(r, SET_STATE, 1, state=1) - 1,
     "finishes trial #1 of study 'tiny' without parameter 'units'"),
], ids=["a study's creation", "a trial's creation", "an enqueued trial's start", "a categorical parameter",
        "a float parameter", "a conditional parameter", "another branch's parameter", "an integer parameter"])
def test_d_a_lost_record_is_found_and_named(tmp_path, searched, deleted, reported, problem):
    path = str(tmp_path / "lost.journal")
    records = searched(path)
    check_journal(path)
    op, trial, fields = deleted
    gone = line_of(records, op, trial, **fields)
    without_line(path, gone)

    damage = find_damage(path)
    assert damage.inconsistent and damage.lines == len(records) - 1
    assert damage.line == reported(records, gone), damage.problem
    assert damage.problem.startswith(problem) and damage.problem.endswith(": a record before it was lost")


def test_d_a_late_write_of_another_process_is_a_race_and_of_the_same_one_a_lost_record(tmp_path, searched):
    """Another process that fails a trial as its worker finishes it writes after the end,
    which Optuna ignores; the process that finished it never does."""
    path = str(tmp_path / "race.journal")
    records = searched(path)
    end = records[line_of(records, SET_STATE, 2, state=1) - 1]
    late = {"op_code": 8, "trial_id": 2, "user_attr": {"fail_reason": "its worker is gone"}}
    with open(path, "a") as f:
        f.write(json.dumps({**late, "worker_id": "another-process-1"}) + "\n")
        f.write(json.dumps({**end, "worker_id": "another-process-1", "state": 3}) + "\n")
    check_journal(path)
    with open(path, "a") as f:
        f.write(json.dumps({**late, "worker_id": end["worker_id"].rpartition("-")[0] + "-1"}) + "\n")
    with pytest.raises(JournalDamagedError, match=f"line {len(records) + 3} of .* changes trial #2 of study 'tiny', "
                                                  f"which the same process finished on line {records.index(end) + 1}"):
        check_journal(path)


def test_d_every_command_refuses_a_journal_with_a_lost_record_and_repair_cuts_it_only_when_asked(
        tmp_path, searched, monkeypatch, capsys):
    from conftest import TINY
    from lrsearch.cli import main

    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / "lost.journal")
    records = searched(path)
    damaged_at = line_of(records, SET_STATE, 4, state=1) - 1
    without_line(path, line_of(records, SET_PARAM, 4, param_name="lr"))
    damaged = open(path, "rb").read()
    where = (f"line {damaged_at} of {len(records) - 1} finishes trial #4 of study 'tiny' without parameter 'lr', "
             f"which the 3 trials of its run around it (in number and every other parameter) hold: "
             f"a record before it was lost")
    for command, extra in {"run": ["--no-report", "--workers", "1"], "report": [], "export": []}.items():
        assert main([command, str(TINY), "--storage", path, *extra]) == 2, command
        err = capsys.readouterr().err
        assert f"error: the journal {path} does not add up: {where}" in err and "Traceback" not in err, err

    assert main(["repair-journal", path]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: {where}" in err and "cannot bring a lost record back" in err and "Traceback" not in err
    assert f"--cut-inconsistent {path}` keeps a backup and cuts it before line {damaged_at}" in err
    assert "which create 0 trial(s) and finish 4" in err, err  # the ends of #4 to #7 (all were enqueued first)
    assert open(path, "rb").read() == damaged and backups(tmp_path) == []

    assert main(["repair-journal", "--cut-inconsistent", path]) == 0
    out = capsys.readouterr().out
    assert "they created 0 trial(s) and finished 4." in out, out
    [backup] = backups(tmp_path)
    assert backup.read_bytes() == damaged
    assert open(path, "rb").read() == damaged[:len(b"".join(damaged.splitlines(keepends=True)[:damaged_at - 1]))]
    check_journal(path)
    assert states(path, "tiny")[3:] == [COMPLETE, RUNNING] + [TrialState.WAITING] * 3  # the next run fails #4


def _threshold(trial):
    """warmup only above an lr threshold (trial #5 is put below it, `_rare_next`)."""
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    if lr > 2e-4:
        trial.suggest_int("warmup", 0, 5)
    return (lr - 0.1) ** 2


def _rare_next(study, trial):
    if trial.number == 4:
        study.enqueue_trial({"lr": 1e-4})


def _parity(trial):
    """p only for an even trial number."""
    optimizer = trial.suggest_categorical("optimizer", ["adam", "sgd"])
    x = trial.suggest_float("x", 0.0, 1.0)
    if trial.number % 2 == 0:
        trial.suggest_float("p", 0.0, 1.0)
    return x + (optimizer == "sgd")


def _depth(trial):
    """units_i for each of n_layers layers."""
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    return lr + sum(trial.suggest_int(f"units_{i}", 8, 64) for i in range(trial.suggest_int("n_layers", 1, 4)))


def test_d_a_parameter_that_its_trial_had_no_reason_to_suggest_is_not_taken_for_lost(tmp_path):
    """Real studies whose trials suggest parameters on conditions: a float's threshold (a
    single trial on its rare side, amid the others), the parity of a trial's number, a
    depth loop. They pass the check every command makes."""
    lacking = {}
    for objective, lacks in [(_threshold, "warmup"), (_parity, "p"), (_depth, "units_1")]:
        path = str(tmp_path / f"{objective.__name__}.journal")
        study = optuna.create_study(storage=open_storage(path), sampler=optuna.samplers.TPESampler(seed=2))
        study.optimize(objective, n_trials=12, callbacks=[_rare_next] if objective is _threshold else [])
        assert find_damage(path) is None, find_damage(path).problem
        open_storage(path)
        lacking[lacks] = [t.number for t in study.trials if t.state == COMPLETE and lacks not in t.params]
    assert lacking["warmup"] == [5] and lacking["p"] == [1, 3, 5, 7, 9, 11]
    assert any(0 < number < 11 for number in lacking["units_1"]), lacking  # amid trials of more layers


# --------------------------------------------------------------------------- a full disk


def test_e_repair_on_a_full_disk_writes_no_backup_and_says_so(tmp_path, journal):
    """Under a file-size limit below the journal's size (a disk that fills up): exit 74
    naming the backup, no part of one left, the journal as it was."""
    import resource
    import signal

    _garbage(journal)
    damaged = open(journal, "rb").read()
    limit = len(damaged) // 2

    def capped() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    result = subprocess.run([sys.executable, "-m", "lrsearch", "repair-journal", journal], capture_output=True,
                            text=True, timeout=120, preexec_fn=capped)
    assert result.returncode == 74, result.stderr
    assert f"error: the file grew past the size allowed writing {journal}.bak-" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr and "bug" not in result.stderr
    assert backups(tmp_path) == [] and open(journal, "rb").read() == damaged
    assert not os.path.lexists(journal + ".lock")


def test_e_repair_checks_for_space_before_it_writes(tmp_path, journal, monkeypatch):
    _garbage(journal)
    damaged = open(journal, "rb").read()
    monkeypatch.setattr(journal_module.shutil, "disk_usage", lambda path: SimpleNamespace(free=10))
    with pytest.raises(WriteError, match=rf"no space left on the device \(10 bytes free for a backup of "
                                         rf"{len(damaged)}\) writing {journal}.bak-"):
        repair_journal(journal)
    assert backups(tmp_path) == [] and open(journal, "rb").read() == damaged
