"""A study file's own callbacks(trial) under a real lrsearch run, one trial at a time and
in lanes: their epoch-level hooks run in every trial and confirmation training (which sees its
trial's number), one that
sets stop_training ends a trial after its epoch, and errors name the study file."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from conftest import TINY, run_cli
from lrsearch import results
from lrsearch.storage import open_storage

CALLBACKS = Path(__file__).resolve().parent.parent / "studies" / "callbacks.py"


@pytest.mark.parametrize("lanes", ["1", pytest.param("2", marks=pytest.mark.slow)])
def test_the_study_callbacks_see_each_epoch_and_stop_the_trial(tmp_path, monkeypatch, lanes):
    log, journal = tmp_path / "log.txt", str(tmp_path / "c.journal")
    monkeypatch.setenv("LRSEARCH_TEST_CALLBACK_LOG", str(log))
    run = run_cli("run", str(CALLBACKS), "--storage", journal, "--n-trials", "4", "--workers", "1", "--lanes", lanes,
                  "--confirm", "2,1", "--no-report", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert lanes == "1" or "2 trials at once in lanes" in run.stdout + run.stderr
    lines = log.read_text().splitlines()
    study = optuna.load_study(study_name="callbacks", storage=open_storage(journal))
    for trial in study.trials:
        mine = [line.split(" ", 2)[2] for line in lines if line.startswith(f"trial {trial.number} ")]
        epochs = results.read_trial(trial).epochs_run
        assert mine[0] == "train_begin" and [line.split()[1] for line in mine[1:epochs + 1]] == \
            [str(epoch) for epoch in range(epochs)]
        if trial.state.name == "COMPLETE":
            assert epochs == 3 and mine[-1] == "train_end" and len(mine) == 5
    assert any(t.state.name == "COMPLETE" for t in study.trials)
    confirmations = results.read_confirmations(study)
    assert len(confirmations) == 2 and all(v is not None for values in confirmations.values() for v in values.values())
    for number in confirmations:  # each confirmation training's callbacks see its trial's number
        mine = [line.split(" ", 2)[2] for line in lines if line.startswith(f"retrain {number} ")]
        assert mine[0] == "train_begin" and mine[-1] == "train_end", (number, lines)


@pytest.mark.slow  # a run of the CLI
def test_by_default_a_study_with_callbacks_trains_one_trial_at_a_time_and_says_why(tmp_path, monkeypatch):
    """Lanes would give the callbacks a stand-in for the model, so the automatic choice
    takes one lane for them; the same study without callbacks() times lanes once its start trials are taken."""
    monkeypatch.setenv("LRSEARCH_TEST_CALLBACK_LOG", str(tmp_path / "log.txt"))
    without = tmp_path / "without.py"
    without.write_text(TINY.read_text())
    for study_file, expected in ((CALLBACKS, "one trial at a time, because the study file's callbacks()"),
                                 (without, "Lanes, chosen once the start trials were taken: ")):
        journal = str(tmp_path / f"{study_file.stem}.journal")
        run = run_cli("run", str(study_file), "--storage", journal, "--n-trials", "8", "--workers", "1",
                      "--no-confirm", "--no-report", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert expected in run.stdout + run.stderr
        assert "Traceback" not in run.stderr
        study = optuna.load_study(study_name=study_file.stem, storage=open_storage(journal))
        assert len(study.trials) == 8 and all(t.state.is_finished() for t in study.trials)


RAISING = """

def callbacks(trial):
    import keras

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("boom")

    if trial.number == 0:
        raise ValueError("no callbacks today")
    return [Boom()] if trial.number == 1 else []
"""


def test_callbacks_that_raise_fail_their_trial_not_the_run_and_name_the_study_file(tmp_path):
    study_file = tmp_path / "raising.py"
    study_file.write_text(TINY.read_text() + RAISING)
    text = study_file.read_text().splitlines()
    lines = [next(n for n, line in enumerate(text, 1) if word in line) for word in ("no callbacks", "boom")]
    journal = str(tmp_path / "r.journal")
    run = run_cli("run", str(study_file), "--storage", journal, "--n-trials", "3", "--workers", "1",
                  "--no-confirm", "--no-report", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    study = optuna.load_study(study_name="raising", storage=open_storage(journal))
    reasons = [results.read_trial(t).fail_reason for t in study.trials]
    assert reasons[:2] == [f"line {lines[0]}: callbacks() raised ValueError: no callbacks today",
                           f"line {lines[1]}: callbacks(): Boom.on_epoch_end() raised RuntimeError: boom"], reasons
    assert study.trials[2].state.name != "FAIL" and "Traceback" not in run.stderr


def test_callbacks_must_be_a_function_that_returns_keras_callbacks(tmp_path):
    from lrsearch.errors import StudyFileError
    from lrsearch.study import load_study
    from lrsearch.training import TrialRunner

    bad = tmp_path / "bad.py"
    bad.write_text(TINY.read_text() + "\ncallbacks = [1]\n")
    with pytest.raises(StudyFileError, match="`callbacks` must be a function, callbacks"):
        load_study(bad)
    wrong = tmp_path / "wrong.py"
    wrong.write_text(TINY.read_text() + "\n\ndef callbacks():\n    return 'a logger'\n")
    with pytest.raises(StudyFileError, match="callbacks\\(\\) must return a list of Keras callbacks, but returned 'a"):
        TrialRunner(load_study(wrong)).study_callbacks(None)
