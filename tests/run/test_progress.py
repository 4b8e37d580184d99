"""lrsearch.run._progress on real Optuna studies: the states counted, the best value, the end-of-run
summary (ranking by the mean on fresh seeds, pruning and failure reasons), and the live bar."""

from __future__ import annotations

import io
import math
import time

import optuna
import pytest

from lrsearch import results
from lrsearch.run import _progress as progress

CONSTANT = {"optimizer": "sgd", "lr": 0.01, "schedule": "constant", "momentum": 0.9}
ADAM = {"optimizer": "adam", "lr": 0.001, "schedule": "constant"}


@pytest.fixture
def study():
    """Six trials of a maximized objective: three complete (0.70, 0.80, inf), one pruned as
    stalled, one failed, one running."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="p", direction="maximize")
    results.write_study(study, objective="val_accuracy", direction="maximize", epochs=3, seed=0)
    for value, config in ((0.70, CONSTANT), (0.80, ADAM), (math.inf, ADAM)):
        trial = study.ask()
        results.write_trial_config(trial, "CPU", config)
        results.write_trial_end(trial, {"val_accuracy": [0.5, value], "val_loss": [1.0, 0.6], "lr": [0.01, 0.01]}, 1.5)
        study.tell(trial, value)
    pruned = study.ask()
    results.write_pruned(pruned, "stalled", 2, "val_accuracy moved < 1e-4 in 2 epochs")
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    failed = study.ask()
    results.write_failure(failed, "ValueError: bad batch")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    study.ask()  # left running
    return study


def test_states_are_counted_and_the_best_value_skips_non_finite_ones(study):
    counts = progress.count_states(study)
    assert (counts["COMPLETE"], counts["PRUNED"], counts["FAIL"], counts["RUNNING"]) == (3, 1, 1, 1)
    assert progress.best_value(study) == pytest.approx(0.80)


def test_best_value_follows_the_direction_and_is_none_without_a_complete_trial():
    minimized = optuna.create_study(direction="minimize")
    assert progress.best_value(minimized) is None
    for value in (0.3, 0.1, 0.2):
        minimized.tell(minimized.ask(), value)
    assert progress.best_value(minimized) == pytest.approx(0.1)


def test_the_summary_ranks_by_own_value_and_counts_reasons(study):
    text = progress.summary(study)
    assert text.startswith("Study 'p': 6 trials - complete 3, pruned 1, failed 1, running 1.")
    assert "Top 2 trials by val_accuracy at the last epoch:" in text  # the inf trial is not ranked
    rows = [line.split() for line in text.splitlines() if line.strip().startswith(("0 ", "1 "))]
    assert [row[0] for row in rows] == ["1", "0"]  # 0.80 first
    assert "Pruned: stalled 1" in text and "Failed: 1 x ValueError: bad batch" in text


def test_the_summary_ranks_confirmed_trials_by_their_mean_on_fresh_seeds(study):
    results.write_confirmation(study, 0, {101: 0.82, 102: 0.84})
    results.write_confirmation(study, 1, {101: 0.60, 102: None})  # the raw top trial diverged on a fresh seed
    text = progress.summary(study)
    assert "Top 2 trials by mean val_accuracy on fresh seeds:" in text
    assert "The pick is trial 0: 0.83 +- 0.014 (2 seeds) on fresh seeds" in text
    assert "the top trial by its own seed, 1 (0.8), scored 0.6 (2 seeds, diverged on 1)" in text
    results.write_confirmation(study, 1, {})  # the raw top trial, unconfirmed
    assert "the top trial by its own seed, 1 (0.8), was not confirmed." in progress.summary(study)


def test_a_study_without_a_complete_trial_says_so():
    empty = optuna.create_study(study_name="e")
    assert "No trial completed yet." in progress.summary(empty)


def test_the_live_bar_shows_finished_trials_and_the_best(study, capsys):
    bar = progress.LiveProgress(study, n_trials=8)
    assert bar.bar.n == 5  # complete, pruned and failed; not the running one
    bar.close()
    err = capsys.readouterr().err
    assert "5/8" in err and "complete 3 pruned 1 failed 1 running 1 best 0.8" in err


def test_the_live_bar_reads_a_slow_storage_less_often(study, monkeypatch):
    """Reads that take 0.1 s come 2 s apart (at most 5% of the run's time reading for its
    bar), quick ones a second apart."""
    read = study.get_trials

    def reads_within(seconds: float, delay: float) -> int:
        reads: list[float] = []

        def timed(**kwargs):
            reads.append(time.monotonic())
            time.sleep(delay)
            return read(**kwargs)

        monkeypatch.setattr(study, "get_trials", timed)
        bar = progress.LiveProgress(study, n_trials=8, out=io.StringIO())
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            bar.tick()
            time.sleep(0.02)
        return len(reads)

    assert reads_within(2.6, delay=0.1) == 2
    assert reads_within(2.6, delay=0.0) == 3
