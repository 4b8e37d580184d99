"""`lrsearch dashboard` against a journal file that `lrsearch run` is writing at the same
moment: the study and its trials read back through optuna-dashboard's HTTP API, and the
run undisturbed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("optuna_dashboard")

ROOT = Path(__file__).resolve().parent.parent
N_TRIALS = 6


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return json.load(response)


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def finished(trials: list[dict]) -> int:
    return sum(t["state"] in ("Complete", "Pruned", "Fail") for t in trials)


def all_finished(url: str) -> dict | None:
    """The study the dashboard serves at `url` once it shows all N_TRIALS finished."""
    study = get_json(url)
    return study if finished(study["trials"]) == N_TRIALS else None


def test_dashboard_reads_a_study_while_a_run_writes_it(tmp_path):
    """The study exists first (as after an earlier `lrsearch run`), the dashboard serves it,
    then a run adds trials: every read happens while the run writes."""
    from lrsearch.storage import open_storage

    journal = str(tmp_path / "live.journal")
    optuna.create_study(study_name="blobs", storage=open_storage(journal), direction="maximize")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    run_log, dash_log = tmp_path / "run.log", tmp_path / "dashboard.log"
    with open(run_log, "w") as run_out, open(dash_log, "w") as dash_out:
        run = None
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "lrsearch", "dashboard", "--storage", journal, "--study-name", "blobs",
             "--port", "0"], stdout=dash_out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
            start_new_session=True)
        try:
            line = wait_for(lambda: dashboard.poll() is not None or next(
                (l for l in dash_log.read_text().splitlines() if l.startswith("Dashboard: ")), None),
                120, "the dashboard URL")
            assert dashboard.poll() is None, f"the dashboard died: {dash_log.read_text()[-2000:]}"
            url = line.split()[1]
            assert url.startswith("http://127.0.0.1:") and "/dashboard/studies/" in url
            base, study_id = url.split("/dashboard/")[0], int(url.rsplit("/", 1)[1])
            assert "blobs" in [s["study_name"] for s in get_json(f"{base}/api/studies")["study_summaries"]]

            run = subprocess.Popen(
                [sys.executable, "-m", "lrsearch", "run", str(ROOT / "studies" / "blobs.py"), "--storage", journal,
                 "--n-trials", str(N_TRIALS), "--epochs", "8", "--workers", "2", "--no-report"],
                stdout=run_out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env, start_new_session=True)
            snapshots = []  # (trials seen, finished among them) while the run writes
            while run.poll() is None:
                trials = get_json(f"{base}/api/studies/{study_id}")["trials"]
                snapshots.append((len(trials), finished(trials)))
                time.sleep(0.3)
            assert run.wait(timeout=300) == 0, run_log.read_text()[-3000:]
            # The dashboard caches trials for a few seconds: wait until it shows the run's end.
            final = wait_for(lambda: all_finished(f"{base}/api/studies/{study_id}"), 60,
                             "the dashboard to show every trial finished", interval=0.5)
            assert dashboard.poll() is None, f"the dashboard died: {dash_log.read_text()[-2000:]}"
        finally:
            for process in (run, dashboard):  # each in its own session: stop it and its workers
                if process is not None and process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=30)

    log = run_log.read_text()
    assert "Traceback" not in log and "lock" not in log.lower(), log[-3000:]
    assert "Traceback" not in dash_log.read_text()
    assert snapshots and snapshots[0][1] < N_TRIALS, snapshots  # read while the run was writing
    assert all(a <= b for a, b in zip(snapshots, snapshots[1:])), "trials vanished between two reads"

    study = optuna.load_study(study_name="blobs", storage=open_storage(journal))
    stored = {t.number: t for t in study.trials}
    assert sorted(stored) == list(range(N_TRIALS))
    assert {t.state.name for t in stored.values()} <= {"COMPLETE", "PRUNED"}, "the run lost or failed trials"
    served = {t["number"]: t for t in final["trials"]}
    assert sorted(served) == sorted(stored)
    for number, trial in served.items():
        assert trial["state"] == stored[number].state.name.capitalize()
        assert trial.get("values") == (None if stored[number].value is None else [stored[number].value])
        assert len(trial["intermediate_values"]) == len(stored[number].intermediate_values)
    print(f"dashboard reads during the run: {len(snapshots)}, first {snapshots[:1]}, last {snapshots[-1:]}")


def test_dashboard_command_refuses_a_missing_storage(tmp_path, capsys):
    from lrsearch.cli import main

    assert main(["dashboard", "--storage", str(tmp_path / "absent.journal")]) == 2
    assert "no storage file" in capsys.readouterr().err
    assert main(["dashboard", "--storage", str(tmp_path / "absent.journal"), "--port", "70000"]) == 2


def test_dashboard_url():
    from lrsearch.dashboard import dashboard_url

    assert dashboard_url("127.0.0.1", 8080, 3) == "http://127.0.0.1:8080/dashboard/studies/3"
    assert dashboard_url("::1", 8080) == "http://[::1]:8080/dashboard"
