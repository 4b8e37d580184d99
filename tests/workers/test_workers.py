"""Worker processes for real: a worker killed mid-trial, trials that raise, Ctrl-C and a
resumed run, two `lrsearch worker` commands on one PostgreSQL study, passwords kept out
of sight, and the device plan (no GPU needed).

The runs use tests/studies/scripted.py, whose trials can wait at a gate (a folder) until
the test opens it, so that a test kills or interrupts workers while trials surely run."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.parse
from pathlib import Path

import optuna
import pytest

from lrsearch import devices
from lrsearch.devices import Slot
from lrsearch.storage import open_storage, redact, redact_text

from conftest import PATIENCE, SCRIPTED, Command, children, started, states, trials, wait_for  # noqa: F401

#: The line of scripted.py whose failure messages name.
RAISE_LINE = next(n for n, line in enumerate(SCRIPTED.read_text().splitlines(), 1) if "raise ValueError" in line)


def test_a_worker_killed_mid_trial_fails_that_trial_and_is_replaced(tmp_path, journal):
    """... and no worker, killed or ended, leaves a temporary file (AutoGraph's modules)."""
    gate, scratch = tmp_path / "gate", tmp_path / "tmp"
    gate.mkdir()
    scratch.mkdir()
    run = Command(tmp_path, "run", str(SCRIPTED), "--storage", journal, "--n-trials", "4", "--workers", "2",
                  "--no-report", env={"LRSEARCH_TEST_GATE": str(gate), "TMPDIR": str(scratch)})
    number, pid = sorted(wait_for(lambda: started(gate), "a trial to start").items())[0]
    assert pid in children(run.pid), "the trial should run in a worker process of the run"
    os.kill(pid, signal.SIGKILL)
    (gate / "go").touch()

    assert run.wait() == 0, run.stderr()
    done = trials(journal)
    assert len(done) == 4
    assert all(t.state.name in ("COMPLETE", "PRUNED", "FAIL") for t in done)
    killed = done[number]
    assert killed.state.name == "FAIL"
    assert killed.user_attrs["worker"].endswith(f":{pid}")
    assert "worker died: killed by SIGKILL" in killed.user_attrs["fail_reason"]
    assert [t.state.name for t in done if t.number != number].count("FAIL") == 0
    assert "1 worker(s) died and were replaced" in run.stdout()
    assert sorted(path.name for path in scratch.iterdir()) == []


@pytest.mark.slow  # lanes traced in a run of the CLI
def test_a_worker_killed_with_trials_in_lanes_fails_each_of_them_and_is_replaced(tmp_path, journal):
    """Three trials at once in one worker: all three end FAIL with the worker's death, none
    stays RUNNING, and the replacement finishes the study in lanes again."""
    gate = tmp_path / "gate"
    gate.mkdir()
    run = Command(tmp_path, "run", str(SCRIPTED), "--storage", journal, "--n-trials", "9", "--workers", "1",
                  "--lanes", "3", "--no-report", "--no-confirm", env={"LRSEARCH_TEST_GATE": str(gate)})
    _, pid = sorted(wait_for(lambda: started(gate), "a trial to start").items())[0]
    wait_for(lambda: states(journal).count("RUNNING") == 3, "three trials running in lanes")
    os.kill(pid, signal.SIGKILL)
    (gate / "go").touch()

    assert run.wait() == 0, run.stderr()
    done = trials(journal)
    assert len(done) == 9 and not [t for t in done if t.state.name == "RUNNING"]
    failed = [t for t in done if t.state.name == "FAIL"]
    assert len(failed) == 3
    assert all("worker died: killed by SIGKILL" in t.user_attrs["fail_reason"] for t in failed)
    assert all(t.user_attrs["worker"].endswith(f":{pid}") for t in failed)
    assert (run.stdout() + run.stderr()).count("3 trials at once in lanes") == 1  # once, not again by the replacement
    assert "Traceback" not in run.stdout() + run.stderr()


def test_b_a_failing_trial_is_recorded_and_the_run_goes_on(tmp_path, journal):
    run = Command(tmp_path, "run", str(SCRIPTED), "--storage", journal, "--n-trials", "4", "--workers", "1",
                  "--no-report", env={"LRSEARCH_TEST_FAIL": "1"})
    assert run.wait() == 0, run.stderr()
    done = trials(journal)
    assert [t.state.name == "FAIL" for t in done] == [False, True, False, False]
    reason = "build_model() raised ValueError: scripted failure of trial 1"
    assert re.fullmatch(rf"line \d+: {re.escape(reason)}", done[1].user_attrs["fail_reason"])
    assert reason in run.stdout() and "Failed: 1 x" in run.stdout()


def test_b_failures_in_a_row_stop_the_run(tmp_path, journal):
    run = Command(tmp_path, "run", str(SCRIPTED), "--storage", journal, "--n-trials", "20", "--workers", "1",
                  "--no-report", env={"LRSEARCH_TEST_FAIL": "all"})
    assert run.wait() == 1, run.stderr()
    assert f"5 trials failed in a row; the last with: line {RAISE_LINE}: build_model() raised ValueError: scripted failure" in run.stderr()
    assert "The study file is probably wrong" in run.stderr()
    assert 5 <= len(states(journal)) < 20 and set(states(journal)) == {"FAIL"}


def test_b_a_study_file_that_fails_at_start_up_stops_the_run_at_once(tmp_path, journal):
    run = Command(tmp_path, "run", str(SCRIPTED), "--storage", journal, "--workers", "2", "--no-report",
                  env={"LRSEARCH_TEST_FAIL": "start"})
    assert run.wait() == 2, run.stderr()
    assert f"error: {SCRIPTED}: line {RAISE_LINE}: build_model() raised ValueError: scripted failure of trial 0" in run.stderr()
    assert "keep dying" not in run.stderr() and "Study 'scripted'" not in run.stdout()  # no summary
    assert optuna.get_all_study_names(open_storage(journal)) == []  # the study this run made is gone again


def test_c_ctrl_c_lets_trials_finish_twice_stops_them_and_a_rerun_resumes(tmp_path, journal):
    gate = tmp_path / "gate"
    gate.mkdir()
    args = ("run", str(SCRIPTED), "--storage", journal, "--n-trials", "4", "--no-report")

    first = Command(tmp_path, *args, "--workers", "2", env={"LRSEARCH_TEST_GATE": str(gate)})
    wait_for(lambda: len(started(gate)) == 2, "both workers to start a trial")
    first.ctrl_c()
    wait_for(lambda: "Stopping" in first.stderr(), "the run to acknowledge Ctrl-C")
    (gate / "go").touch()
    assert first.wait() == 130, first.stderr()
    assert "Run the same command again to resume" in first.stderr()
    assert "confirmation over fresh seeds did not finish" not in first.stderr()  # it had not begun
    assert sorted(states(journal)) in (["COMPLETE", "COMPLETE"], ["COMPLETE", "PRUNED"], ["PRUNED", "PRUNED"])

    (gate / "go").unlink()
    second = Command(tmp_path, *args, "--workers", "1", env={"LRSEARCH_TEST_GATE": str(gate)})
    wait_for(lambda: 2 in started(gate), "trial 2 to start")
    second.ctrl_c()
    wait_for(lambda: "Stopping" in second.stderr(), "the run to acknowledge Ctrl-C")
    second.ctrl_c()
    assert second.wait() == 130, second.stderr()
    interrupted = trials(journal)[2]
    assert interrupted.state.name == "FAIL"
    assert interrupted.user_attrs["interrupted"] == "the run was stopped by a second Ctrl-C"
    assert states(journal)[3:] == ["WAITING"] and "RUNNING" not in states(journal)  # its retry, not counted

    third = Command(tmp_path, *args, "--workers", "1")
    assert third.wait() == 0, third.stderr()
    assert "Running up to 2 of 4 trials" in third.stdout()
    assert len(states(journal)) == 5 and not {"RUNNING", "WAITING"} & set(states(journal))


def test_c_workers_stop_after_their_trial_when_the_run_is_gone(tmp_path, journal):
    gate = tmp_path / "gate"
    gate.mkdir()
    run = Command(tmp_path, "run", str(SCRIPTED), "--storage", journal, "--workers", "1", "--no-report",
                  env={"LRSEARCH_TEST_GATE": str(gate)})
    pid = wait_for(lambda: started(gate), "a trial to start")[0]
    os.kill(run.pid, signal.SIGKILL)  # the run only: its worker is orphaned
    run.wait()
    (gate / "go").touch()
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(),
             "the orphaned worker to exit")
    assert states(journal) in (["COMPLETE"], ["PRUNED"])


@pytest.mark.slow  # a run of the CLI; the start sampler's own tests count enqueued trials
def test_enqueued_trials_are_run_not_counted_as_done(tmp_path, journal, cli, tiny_study):
    study = optuna.create_study(study_name="tiny", storage=open_storage(journal), direction="maximize")
    for lr in (0.01, 0.02):
        study.enqueue_trial({"optimizer": "adam", "schedule": "constant", "lr": lr})
    result = cli("run", str(tiny_study), "--storage", journal, "--n-trials", "3", "--workers", "1", "--no-report",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    done = trials(journal, "tiny")
    assert [t.state.name for t in done].count("WAITING") == 0 and len(done) == 3
    assert [t.params.get("lr") for t in done[:2]] == [0.01, 0.02]


@pytest.mark.postgres
def test_d_two_workers_share_one_postgresql_study_exactly(tmp_path, fresh_postgres):
    gate = tmp_path / "gate"
    gate.mkdir()
    args = ("worker", str(SCRIPTED), "--storage", fresh_postgres, "--n-trials", "6", "--workers", "1")
    machines = [Command(tmp_path, *args, env={"LRSEARCH_TEST_GATE": str(gate)}) for _ in range(2)]
    waiting = wait_for(lambda: len(started(gate)) == 2 and started(gate), "each machine to start a trial")
    parents = {pid: parent for parent in (m.pid for m in machines) for pid in children(parent)}
    assert {parents.get(pid) for pid in waiting.values()} == {m.pid for m in machines}, \
        "each `lrsearch worker` should be running one of the first two trials"
    (gate / "go").touch()
    for machine in machines:
        assert machine.wait() == 0, machine.stderr()

    done = trials(fresh_postgres)
    assert len(done) == 6 and {t.state.name for t in done} <= {"COMPLETE", "PRUNED"}
    assert len({t.user_attrs["worker"] for t in done}) == 2

    password = urllib.parse.urlsplit(fresh_postgres).password
    assert password, "the test server's URL should have a password, to check that it stays hidden"
    study = optuna.load_study(study_name="scripted", storage=open_storage(fresh_postgres))
    recorded = json.dumps([study.user_attrs, study._storage.get_study_system_attrs(study._study_id)]
                          + [[t.user_attrs, t.system_attrs, t.params] for t in done], default=str)
    for text in [recorded] + [m.stdout() + m.stderr() for m in machines]:
        assert password not in text
    assert redact(fresh_postgres) in machines[0].stdout()


@pytest.mark.postgres
def test_d_claiming_trials_is_exclusive_across_machines_and_freed_by_a_lost_connection(fresh_postgres):
    import sqlalchemy

    from lrsearch.workers._claims import DatabaseLock

    storage = open_storage(fresh_postgres)
    study_id = optuna.create_study(study_name="locks", storage=storage)._study_id
    first, second = DatabaseLock.of(storage, study_id), DatabaseLock.of(storage, study_id)

    def second_can_claim() -> bool:
        with second.engine.connect() as connection:
            took = connection.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:space, :study)"),
                                      second.key).scalar()
            if took:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:space, :study)"), second.key)
            return took

    first.acquire()
    assert not second_can_claim()
    first.release()
    assert second_can_claim()
    first.acquire()
    first.connection.invalidate()  # as when its worker is killed: the server ends the session
    assert wait_for(second_can_claim, "the server to free the lock of a lost connection")
    first.acquire()  # a lock whose connection was lost connects anew
    assert not second_can_claim()
    first.release()
    assert second_can_claim()


def test_e_a_storage_password_never_shows(tmp_path, cli, tiny_study):
    url = "postgresql://someone:pa55-w0rd@127.0.0.1:1/nowhere"
    result = cli("run", str(tiny_study), "--storage", url, "--no-report", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot open storage postgresql://someone:***@127.0.0.1:1/nowhere" in result.stderr
    assert "pa55-w0rd" not in result.stdout + result.stderr


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:secret@db.example/lr", "postgresql://u:***@db.example/lr"),
    ("postgresql+psycopg://u:se@cr/et@db:5432/lr?sslmode=require",
     "postgresql+psycopg://u:***@db:5432/lr?sslmode=require"),
    ("redis://:secret@localhost:6379/0", "redis://:***@localhost:6379/0"),
    ("postgresql://u@db/lr", "postgresql://u@db/lr"),
    ("postgresql://db:5432/lr", "postgresql://db:5432/lr"),
    ("lrsearch.journal", "lrsearch.journal"),
    ("sqlite:///runs/x.db", "sqlite:///runs/x.db"),
    ("postgresql://u@db/lr?password=secret", "postgresql://u@db/lr?password=***"),
    ("postgresql://db/lr?user=u&PASSWORD=secret&sslmode=require", "postgresql://db/lr?user=u&PASSWORD=***&sslmode=require"),
    ("postgresql://u:se%40cret@db/lr", "postgresql://u:***@db/lr"),
    ("mysql+pymysql://u:se:cr@et@db/lr", "mysql+pymysql://u:***@db/lr"),
])
def test_e_redact(url, shown):
    assert redact(url) == shown
    assert "secret" not in redact(url) and "se%40" not in redact(url)


def test_e_redact_text_scrubs_a_password_wherever_a_message_repeats_it():
    url = "postgresql://u:se%40cret@db/lr"
    message = f"connection to {url} failed: password 'se@cret' or 'se%40cret' rejected"
    assert redact_text(message, url) == "connection to postgresql://u:***@db/lr failed: password '***' or '***' rejected"


def test_f_plan_without_gpus_gives_one_single_threaded_worker_per_core():
    cores = devices.cpu_count()
    assert devices.plan(None, []) == [Slot(None, 1)] * cores
    assert devices.plan(1, []) == [Slot(None, cores)]
    assert devices.plan(2 * cores, []) == [Slot(None, 1)] * (2 * cores)
    assert Slot(None, 2).describe() == "CPU (2 threads)"
    assert Slot(None, 1).environment()["CUDA_VISIBLE_DEVICES"] == ""


def test_f_plan_spreads_workers_over_gpus():
    cores = devices.cpu_count()
    assert [s.gpu for s in devices.plan(None, ["0", "1"])] == ["0", "1"]
    assert [s.gpu for s in devices.plan(None, ["0", "1"], per_gpu=3)] == ["0", "1", "0", "1", "0", "1"]
    assert [s.gpu for s in devices.plan(3, ["2", "5"])] == ["2", "5", "2"]
    assert all(s.threads == max(1, cores // 6) for s in devices.plan(None, ["0", "1"], per_gpu=3))
    assert Slot("1", 4).environment()["CUDA_VISIBLE_DEVICES"] == "1"
    assert Slot("1", 4).describe() == "GPU:1"


@pytest.mark.parametrize("workers, per_gpu, message", [(0, 1, "--workers must be >= 1, but got 0"),
                                                       (None, 0, "--per-gpu must be >= 1, but got 0")])
def test_f_plan_rejects_bad_counts(workers, per_gpu, message):
    with pytest.raises(ValueError, match=message):
        devices.plan(workers, ["0"], per_gpu)


def test_f_parse_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,3")
    assert devices.parse_gpus("all") == devices.parse_gpus(None) == ["0", "1", "3"]
    assert devices.parse_gpus("none") == []
    assert devices.parse_gpus("3, 0") == ["3", "0"]
    with pytest.raises(ValueError, match="GPU 2 is not visible here \\(visible: 0,1,3\\)"):
        devices.parse_gpus("0,2")
    for bad in ("gpu0", "", "-1", "1,1"):
        with pytest.raises(ValueError, match="--gpus takes 'all', 'none' or distinct indices"):
            devices.parse_gpus(bad)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.parse_gpus("all") == []
    with pytest.raises(ValueError, match="visible: none"):
        devices.parse_gpus("0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,-1,2")  # CUDA stops reading at the first invalid entry
    assert devices.parse_gpus("all") == ["0", "1"]


def test_f_gpus_named_by_uuid_are_gpus_and_reach_the_worker_as_named(monkeypatch):
    """As SLURM and Kubernetes set it: each worker gets its GPU's UUID, not an index that
    would name another (physical) GPU."""
    first, mig = "GPU-8c1a2b3d-0000-1111-2222-333344445555", "MIG-0f0e0d0c-aaaa-bbbb-cccc-ddddeeeeffff"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{first},{mig}")
    gpus = devices.parse_gpus("all")
    assert gpus == [first, mig]
    slots = devices.plan(None, gpus, per_gpu=2)
    assert [s.environment()["CUDA_VISIBLE_DEVICES"] for s in slots] == [first, mig, first, mig]
    assert slots[0].describe() == "GPU:GPU-8c1a2b3d..."
    assert devices.parse_gpus(mig) == [mig]
    with pytest.raises(ValueError, match="GPU GPU-ffff is not visible here"):
        devices.parse_gpus("GPU-ffff")


def test_f_bad_gpus_are_a_usage_error(tiny_study, journal, tmp_path):
    run = Command(tmp_path, "run", str(tiny_study), "--storage", journal, "--gpus", "7",
                  env={"CUDA_VISIBLE_DEVICES": ""})
    assert run.wait() == 2
    assert "--gpus 7: GPU 7 is not visible here (visible: none)" in run.stderr()
