"""Faults of the storage and of machines, for real: a PostgreSQL server restarted and
stopped under a run, a worker on a second "machine" (another host name) killed outright,
a run killed outright while its trial trains, and damaged journal files. Each test counts
what matters: usable trials (finished, but not interrupted) against those asked, trials
left RUNNING, the exit code, and no traceback in the output."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.parse

import pytest
from conftest import SCRIPTED, Command, children, started, trials, wait_for  # noqa: F401

from lrsearch import results

FINISHED = ("COMPLETE", "PRUNED", "FAIL")
#: The tiny study, whose trials can wait at a gate once they trained an epoch.
INTERRUPTIBLE = SCRIPTED.with_name("interruptible.py")


def counts(storage: str, name: str = "scripted") -> tuple[int, int]:
    """(usable trials: finished and not interrupted, RUNNING or WAITING trials) of a study."""
    done = trials(storage, name)
    usable = [t for t in done if t.state.name in FINISHED and not results.interruption(t)]
    return len(usable), sum(t.state.name in ("RUNNING", "WAITING") for t in done)


def retried(storage: str, name: str = "scripted") -> dict[int, object]:
    """Interrupted trial number -> the trial that retried it (with the parameters it had drawn,
    and the rest drawn anew), after checking both."""
    done = trials(storage, name)
    retries = {t.user_attrs["retry_of"]: t for t in done if "retry_of" in t.user_attrs}
    interrupted = [t for t in done if results.interruption(t)]
    assert sorted(retries) == [t.number for t in interrupted]
    for t in interrupted:
        assert retries[t.number].params.items() >= t.params.items() and retries[t.number].state.name in FINISHED
    return retries


def no_traceback(*commands: Command) -> None:
    for command in commands:
        output = command.stdout() + command.stderr()
        assert "Traceback" not in output, output


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def server(postgres_url):
    """Control of the PostgreSQL cluster behind the test URL (Debian's pg_ctlcluster, as
    .ci/run starts it); always started again afterwards."""
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        pytest.skip("restarting PostgreSQL needs Debian's pg_ctlcluster, as root (as in .ci/run)")
    port = urllib.parse.urlsplit(postgres_url).port or 5432
    clusters = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout
    version, name = next(line.split()[:2] for line in clusters.splitlines() if line.split()[2] == str(port))

    def control(action: str) -> None:
        subprocess.run(["pg_ctlcluster", version, name, action], check=True, capture_output=True)

    yield control
    subprocess.run(["pg_ctlcluster", version, name, "start"], capture_output=True)


def running_trials(storage: str, at_least: int) -> bool:
    try:
        return counts(storage)[1] >= at_least
    except Exception:  # the study's tables are created by the run
        return False


@pytest.mark.postgres
@pytest.mark.parametrize("outage, lanes", [("restart", "1"),
                                           pytest.param("stopped 15 s", "2", marks=pytest.mark.slow)],
                         ids=["restart", "stopped 15 s, in lanes"])  # one at a time and in lanes: each way once
def test_a_database_outage_under_a_run_is_waited_out(tmp_path, fresh_postgres, server, outage, lanes):
    run = Command(tmp_path, "run", str(SCRIPTED), "--storage", fresh_postgres, "--n-trials", "6",
                  "--workers", "2", "--lanes", lanes, "--no-report", env={"LRSEARCH_TEST_SLOW": "2"})
    wait_for(lambda: running_trials(fresh_postgres, 2), "two trials to run")
    if outage == "restart":
        server("restart")
    else:
        server("stop")
        time.sleep(15)
        server("start")

    assert run.wait() == 0, run.stderr()
    assert lanes == "1" or "2 trials at once in lanes" in run.stderr()
    assert counts(fresh_postgres) == (6, 0)
    assert [t.state.name for t in trials(fresh_postgres)].count("FAIL") == 0, run.stdout()
    if outage != "restart":  # a restart may pass between two calls unseen
        assert "unreachable since" in run.stderr() and "reachable again" in run.stderr()
    no_traceback(run)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_down_for_longer_than_the_patience_stops_the_run_and_the_same_command_resumes(
        tmp_path, fresh_postgres, server):
    """The trials the outage stopped are interrupted, not counted, and retried by the rerun,
    whose reason names the outage (the run noted it in the cache folder, which the rerun empties)."""
    args = ("run", str(SCRIPTED), "--storage", fresh_postgres, "--n-trials", "5", "--workers", "2", "--no-report")
    env = {"LRSEARCH_TEST_SLOW": "2", "LRSEARCH_STORAGE_PATIENCE": "5", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    run = Command(tmp_path, *args, env=env)
    wait_for(lambda: running_trials(fresh_postgres, 2), "two trials to run")
    server("stop")
    try:
        code = run.wait()
    finally:
        server("start")
    assert code == 75, run.stderr()
    assert "has been unreachable for" in run.stderr() and "run the same command again" in run.stderr()
    assert "\nlrsearch run: error: storage " in run.stderr(), run.stderr()  # on a line of its own, not the bar's
    password = urllib.parse.urlsplit(fresh_postgres).password
    assert password not in run.stdout() + run.stderr()
    no_traceback(run)
    left = counts(fresh_postgres)[1]
    assert left >= 1 and len(list((tmp_path / "cache" / "lrsearch").rglob("*.json"))) == 1

    rerun = Command(tmp_path, *args, env=env)
    assert rerun.wait() == 0, rerun.stderr()
    assert counts(fresh_postgres) == (5, 0)
    interrupted = [t for t in trials(fresh_postgres) if results.interruption(t)]
    assert len(interrupted) == len(retried(fresh_postgres)) == left
    assert all(t.user_attrs["fail_reason"].startswith("interrupted: its run lost the storage (unreachable") for t in interrupted)
    assert f"interrupted {left}, running 0." in rerun.stdout()
    assert not list((tmp_path / "cache" / "lrsearch").rglob("*.json"))
    no_traceback(rerun)


@pytest.mark.postgres
@pytest.mark.slow
def test_b_a_machine_that_vanishes_has_its_trial_failed_and_the_run_waits_for_it(tmp_path, fresh_postgres):
    if subprocess.run(["unshare", "-u", "true"], capture_output=True).returncode != 0:
        pytest.skip("`unshare -u` (a second host name) needs root or user namespaces")
    heartbeat = {"LRSEARCH_HEARTBEAT": "1,4"}
    gate = tmp_path / "gate"
    gate.mkdir()
    # The run's trials take 3 s each, so that machine2 (TensorFlow's import takes a while on a busy
    # machine) surely claims one before the run has claimed them all. One lane each: machine2 holds
    # exactly one trial when it vanishes.
    main = Command(tmp_path, "run", str(SCRIPTED), "--storage", fresh_postgres, "--n-trials", "8",
                   "--workers", "1", "--lanes", "1", "--no-report", env={**heartbeat, "LRSEARCH_TEST_SLOW": "3"})
    wait_for(lambda: running_trials(fresh_postgres, 1), "the run to start a trial")
    machine2 = Command(tmp_path, "worker", str(SCRIPTED), "--storage", fresh_postgres, "--n-trials", "8",
                       "--workers", "1", "--lanes", "1", env={**heartbeat, "LRSEARCH_TEST_GATE": str(gate)},
                       wrap=["unshare", "-u", "sh", "-c", 'hostname machine2 && exec "$0" "$@"'])
    number, pid = next(iter(wait_for(lambda: started(gate), "machine2 to start a trial").items()))
    assert pid in children(machine2.pid)
    wait_for(lambda: "Waiting for 1 trial(s) running in machine2" in main.stderr(), "the run to wait for machine2")
    os.killpg(machine2.pid, 9)  # the whole machine: its `lrsearch worker` and the worker process

    assert main.wait() == 0, main.stderr()
    done = trials(fresh_postgres)
    assert counts(fresh_postgres) == (8, 0)
    lost = done[number]
    assert lost.user_attrs["worker"] == f"machine2:{pid}"
    assert lost.state.name == "FAIL" and "stopped sending heartbeats" in lost.user_attrs["fail_reason"]
    assert results.interruption(lost) and list(retried(fresh_postgres)) == [number]
    assert "Waiting for 1 trial(s) running in machine2" in main.stderr()
    no_traceback(main)


# --------------------------------------------------------------------------- a run killed outright


def test_b_the_trial_of_a_run_killed_outright_is_interrupted_kept_and_retried_not_counted(tmp_path, journal):
    gate = tmp_path / "gate"
    gate.mkdir()
    args = ("run", str(INTERRUPTIBLE), "--storage", journal, "--n-trials", "3", "--epochs", "3", "--workers", "1",
            "--lanes", "1", "--no-report", "--no-confirm")
    killed = Command(tmp_path, *args, env={"LRSEARCH_TEST_EPOCH_GATE": str(gate)})
    number = next(iter(wait_for(lambda: started(gate), "a trial to train an epoch")))
    wait_for(lambda: trials(journal, "interruptible")[number].intermediate_values, "its epoch to reach the journal")
    os.killpg(killed.pid, 9)  # the run and its worker, as a crash of the machine would
    killed.wait()
    assert counts(journal, "interruptible") == (0, 1)

    rerun = Command(tmp_path, *args)
    assert rerun.wait() == 0, rerun.stderr()
    assert "Running up to 3 of 3 trials" in rerun.stdout()
    assert counts(journal, "interruptible") == (3, 0)
    done = trials(journal, "interruptible")
    lost = done[number]
    assert lost.state.name == "FAIL" and len(done) == 4
    assert lost.user_attrs["fail_reason"] == (
        "interrupted: its run ended before it finished (killed, or lost the storage), after 1 of 3 epoch(s), kept "
        "as its intermediate values; its parameters are retried")
    assert list(lost.intermediate_values) == [0]
    assert list(retried(journal, "interruptible")) == [number]
    assert "interrupted 1, running 0." in rerun.stdout()
    no_traceback(killed, rerun)


# --------------------------------------------------------------------------- journal files


def _truncate(path: str) -> None:
    os.truncate(path, os.path.getsize(path) - 90)


@pytest.mark.parametrize("damage", [_truncate], ids=["truncated"])  # a stray line: tests/test_errors.py walks it
def test_c_a_damaged_journal_is_refused_by_every_command_never_appended_to_and_repaired(tmp_path, journal, damage):
    args = ("run", str(SCRIPTED), "--storage", journal, "--workers", "1", "--no-report")
    first = Command(tmp_path, *args, "--n-trials", "3")
    assert first.wait() == 0, first.stderr()
    damage(journal)
    damaged = open(journal, "rb").read()

    refused = [Command(tmp_path, *args, "--n-trials", "4"),
               Command(tmp_path, "report", "--storage", journal, "--study-name", "scripted"),
               Command(tmp_path, "export", "--storage", journal, "--study-name", "scripted", "-o", "best.json")]
    for command in refused:
        assert command.wait() not in (0, None), command.stdout()
        assert "lrsearch repair-journal" in command.stderr() and journal in command.stderr()
    assert open(journal, "rb").read() == damaged, "a damaged journal must not be written to"
    no_traceback(*refused)

    repair = Command(tmp_path, "repair-journal", journal)
    assert repair.wait() == 0, repair.stderr()
    backups = list(tmp_path.glob("trials.journal.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == damaged
    resumed = Command(tmp_path, *args, "--n-trials", "4")
    assert resumed.wait() == 0, resumed.stderr()
    assert counts(journal) == (4, 0)
    no_traceback(repair, resumed)


# --------------------------------------------------------------------------- passwords


@pytest.mark.parametrize("url", [
    "postgresql://someone:pa55-w0rd@127.0.0.1:1/nowhere",
    "postgresql://someone@127.0.0.1:1/nowhere?password=pa55-w0rd",
    "postgresql+psycopg://someone:pa55%40w0rd@127.0.0.1:1/nowhere",
    "postgresql://127.0.0.1:1/nowhere?user=someone&password=pa55-w0rd&sslmode=disable",
])
def test_d_no_password_reaches_the_console_in_any_url_form(tmp_path, url):
    commands = [Command(tmp_path, "run", str(SCRIPTED), "--storage", url, "--no-report"),
                Command(tmp_path, "report", "--storage", url, "--study-name", "scripted")]
    for command in commands:
        assert command.wait() != 0
        output = command.stdout() + command.stderr()
        assert "pa55" not in output, output
        assert "***" in output, output
    no_traceback(*commands)
