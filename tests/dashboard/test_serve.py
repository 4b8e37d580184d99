"""`lrsearch dashboard` against a journal file that `lrsearch run` is writing at the same
moment: the study, its trials and their notes and charts read back through
optuna-dashboard's HTTP API, and the run undisturbed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("optuna_dashboard")

ROOT = Path(__file__).resolve().parent.parent.parent
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


def start_dashboard(storage: str, out, cwd, env) -> subprocess.Popen:
    """`lrsearch dashboard` on study blobs of `storage`, on a free port, in its own session."""
    return subprocess.Popen([sys.executable, "-m", "lrsearch", "dashboard", "--storage", storage, "--study-name",
                             "blobs", "--port", "0"], stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                            start_new_session=True)


def dashboard_address(dashboard: subprocess.Popen, log: Path) -> tuple[str, int]:
    """(http://127.0.0.1:PORT, study id) as the dashboard printed them in `log`."""
    line = wait_for(lambda: dashboard.poll() is not None or next(
        (l for l in log.read_text().splitlines() if l.startswith("Dashboard: ")), None), 120, "the dashboard URL")
    assert dashboard.poll() is None, f"the dashboard died: {log.read_text()[-2000:]}"
    url = line.split()[1]
    assert url.startswith("http://127.0.0.1:") and "/dashboard/studies/" in url
    return url.split("/dashboard/")[0], int(url.rsplit("/", 1)[1])


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
        dashboard = start_dashboard(journal, dash_out, tmp_path, env)
        try:
            base, study_id = dashboard_address(dashboard, dash_log)
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
            chart = final["trials"][0]["note"]["body"].split("](")[-1].split(")")[0]
            with urllib.request.urlopen(base + chart, timeout=30) as response:  # written by the run, served here
                assert response.headers["Content-Type"] == "image/svg+xml" and response.read().startswith(b"<svg")
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
        assert trial["note"]["body"].startswith(f"### Trial {number}: "), trial["note"]
    assert final["note"]["body"].startswith("## blobs")
    print(f"dashboard reads during the run: {len(snapshots)}, first {snapshots[:1]}, last {snapshots[-1:]}")


def test_a_storage_whose_charts_folder_cannot_be_made_is_served_without_the_charts(tmp_path):
    """A journal in a folder the dashboard cannot write to (here its charts folder's name is
    taken by a file) is served all the same, saying that the charts are not."""
    from lrsearch.storage import open_storage

    journal = tmp_path / "ro.journal"
    optuna.create_study(study_name="blobs", storage=open_storage(str(journal)), direction="maximize")
    (tmp_path / "ro.journal.artifacts").write_text("not a folder")
    log = tmp_path / "dashboard.log"
    with open(log, "w") as out:
        dashboard = start_dashboard(str(journal), out, tmp_path, None)
        try:
            base, study_id = dashboard_address(dashboard, log)
            assert get_json(f"{base}/api/studies/{study_id}")["name"] == "blobs"
            assert "note: the trials' learning-rate charts are not served: [Errno 17] File exists" in log.read_text()
        finally:
            os.killpg(dashboard.pid, signal.SIGINT)
            dashboard.wait(timeout=30)


def test_dashboard_command_refuses_a_missing_storage(tmp_path, capsys):
    from lrsearch.cli import main

    assert main(["dashboard", "--storage", str(tmp_path / "absent.journal")]) == 2
    assert "no storage file" in capsys.readouterr().err
    assert main(["dashboard", "--storage", str(tmp_path / "absent.journal"), "--port", "70000"]) == 2


def test_dashboard_url():
    from lrsearch.dashboard import dashboard_url

    assert dashboard_url("127.0.0.1", 8080, 3) == "http://127.0.0.1:8080/dashboard/studies/3"
    assert dashboard_url("::1", 8080) == "http://[::1]:8080/dashboard"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHART_BLUE = (0x1F, 0x77, 0xB4)  # the learning-rate line of lrsearch.dashboard._notes.lr_chart


@pytest.mark.slow  # a real search (about a minute on two cores), then Chromium
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH: `apt-get install -y chromium` to run this check")
def test_a_trial_page_shows_its_note_and_chart_in_a_real_browser(cli, tmp_path):
    """The dashboard as a person sees it: `lrsearch run` of blobs (6 trials of 20 epochs),
    `lrsearch dashboard` on it, and headless Chromium on the page of a pruned trial, which
    must render its note with the pruning reason and draw its learning-rate chart. The
    screenshot is kept at $LRSEARCH_SCREENSHOT (default: in the test's tmp folder) and its
    path printed, to look at: `pytest -m slow -s tests/test_dashboard.py -k browser`."""
    from matplotlib.image import imread

    from lrsearch.storage import open_storage

    journal = str(tmp_path / "blobs.journal")
    run = cli("run", str(ROOT / "studies" / "blobs.py"), "--storage", journal, "--n-trials", "6", "--epochs", "20",
              "--workers", "1", "--seed", "1", "--no-confirm", "--no-report", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    study = optuna.load_study(study_name="blobs", storage=open_storage(journal))
    pruned = next(t for t in study.trials if t.state.name == "PRUNED")
    reason = pruned.user_attrs["pruned_reason"]
    screenshot = Path(os.environ.get("LRSEARCH_SCREENSHOT", tmp_path / f"trial-{pruned.number}.png"))
    log = tmp_path / "dashboard.log"
    with open(log, "w") as out:
        dashboard = start_dashboard(journal, out, tmp_path, {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        try:
            base, study_id = dashboard_address(dashboard, log)
            page = f"{base}/dashboard/studies/{study_id}/trials?numbers={pruned.number}"
            browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                       "--window-size=1600,1300", "--virtual-time-budget=20000"]
            dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, text=True, timeout=180)
            shot = subprocess.run([*browser, f"--screenshot={screenshot}", page], capture_output=True, text=True,
                                  timeout=180)
        finally:
            os.killpg(dashboard.pid, signal.SIGTERM)
            dashboard.wait(timeout=30)
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    print(f"screenshot of trial {pruned.number} (pruned, {reason}): {screenshot}")
    html = dom.stdout
    assert f"Trial {pruned.number}: pruned ({reason})" in html, html[-3000:]
    assert f"reason <em>{reason}</em>" in html and "Configuration" in html and "Learning rate per epoch" in html
    assert f'src="/artifacts/{study_id}/' in html
    pixels = (imread(screenshot)[:, :, :3] * 255).round()
    drawn = (abs(pixels - CHART_BLUE).max(axis=2) <= 8).sum()
    assert drawn > 200, f"the learning-rate chart was not drawn ({drawn} pixels of its colour)"
