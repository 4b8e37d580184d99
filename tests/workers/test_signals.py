"""A run stopped from outside, for real: SIGTERM while lanes claim and start trials one after
another, and a timeout that passes while the study file's data() hangs. Each test counts
what matters: trials asked and finished, trials left RUNNING, the exit code, and no
traceback in the output."""

from __future__ import annotations

import datetime
import os
import signal
import textwrap
import time

from conftest import SCRIPTED, Command, started, trials, wait_for

from lrsearch.storage import find_damage

#: The moment between a lane's last look at the run's stop flag and Optuna's timestamp of
#: the trial it then creates, and the signal's way to the run's handler: a trial stamped
#: within it was decided before the run knew of the signal.
DECIDED_BEFORE = datetime.timedelta(seconds=0.1)


def test_sigterm_while_lanes_claim_trials_ends_the_run_in_seconds_and_starts_no_trial(tmp_path, journal):
    """Three lanes claim a trial each every fraction of a second; SIGTERM reaches the run and its
    worker (as a service manager sends it to the group) while they do: the run exits 130 within
    10 s (no report: it can wait), no trial starts after the signal, none is left RUNNING, and no
    worker was killed in the middle of a write (Optuna's lock file would stall the run 30 s, with
    warnings, and a half record would damage the journal)."""
    gate = tmp_path / "gate"
    gate.mkdir()
    run = Command(tmp_path, "run", str(SCRIPTED), "--storage", journal, "--n-trials", "60", "--workers", "1",
                  "--lanes", "3", "--no-confirm", env={"LRSEARCH_TEST_GATE": str(gate)})
    wait_for(lambda: started(gate) and [t.state.name for t in trials(journal)].count("RUNNING") == 3,
             "three trials in lanes")
    (gate / "go").touch()
    wait_for(lambda: len(started(gate)) >= 9, "the lanes to claim trials one after another")
    signalled, clock = datetime.datetime.now(datetime.timezone.utc), time.monotonic()
    os.killpg(run.pid, signal.SIGTERM)
    code = run.wait()

    assert code == 130, run.stderr()
    assert time.monotonic() - clock < 10
    done = trials(journal)
    states = [t.state.name for t in done]
    late = [t.number for t in done if t.datetime_start and t.datetime_start.astimezone() > signalled + DECIDED_BEFORE]
    assert late == [], [(t.number, t.datetime_start) for t in done]
    usable = states.count("COMPLETE") + states.count("PRUNED")
    stopped = [t.user_attrs["fail_reason"] for t in done if t.state.name == "FAIL"]  # running, or not yet written
    assert states.count("RUNNING") == 0 and usable + len(stopped) >= 9 and usable < 60
    assert all("the run was terminated (SIGTERM)" in reason for reason in stopped), stopped
    output = run.stdout() + run.stderr()
    assert "lock file" not in output and "Traceback" not in output, output
    assert "No report written (terminated)" in run.stderr() and not (tmp_path / "lrsearch-report-scripted").exists()
    assert "Interrupted. Run the same command again to resume." in run.stderr()
    assert not os.path.exists(f"{journal}.lock") and find_damage(journal) is None


HANGING_DATA = """\
    import time

    import lrsearch

    settings = lrsearch.Settings(loss="categorical_crossentropy", metrics=["accuracy"], objective="val_accuracy",
                                 epochs=2, batch_size=32, n_trials=3)


    def data():
        time.sleep(10**6)


    def build_model(trial):
        import keras

        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
"""


def test_a_timeout_while_data_hangs_says_so_and_fails(tmp_path, journal):
    """No trial can start while data() hangs: when the timeout passes the run names data() and
    the study file and exits 1, instead of 0 and a word on an unfinished confirmation."""
    study_file = tmp_path / "hangs.py"
    study_file.write_text(textwrap.dedent(HANGING_DATA))
    run = Command(tmp_path, "run", str(study_file), "--storage", journal, "--workers", "1", "--timeout", "20",
                  "--no-report")
    assert run.wait() == 1, run.stderr()
    assert (f"lrsearch run: error: data() of {study_file} did not return within the timeout (20 s), so no trial "
            f"could start") in run.stderr()
    assert "confirmation" not in run.stderr() and "Traceback" not in run.stdout() + run.stderr()
    assert trials(journal, "hangs") == []
