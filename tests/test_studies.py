"""The shipped study files: each loads, passes preflight and runs a short search to the end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parent.parent / "studies"
NAMES = ["digits", "diabetes", "csv_example"]


@pytest.mark.parametrize("name", NAMES)
def test_study_loads_with_a_one_line_description(name):
    from lrsearch.studyfile import load_study

    study = load_study(STUDIES / f"{name}.py")
    assert study.description and "\n" not in study.description
    assert study.settings.direction == ("minimize" if name == "diabetes" else "maximize")


@pytest.mark.parametrize("name", NAMES)
def test_study_passes_preflight_and_finishes_three_trials(name, tmp_path):
    import optuna

    from lrsearch.pruning import make_pruner
    from lrsearch.runner import TrialRunner, preflight
    from lrsearch.storage import open_storage
    from lrsearch.studyfile import load_study

    study_file = load_study(STUDIES / f"{name}.py")
    runner = TrialRunner(study_file, epochs=5)
    preflight(runner)
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(str(tmp_path / "trials.journal")),
        direction=study_file.settings.direction,
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=make_pruner(5),
    )
    study.optimize(runner, n_trials=3)  # a trial that raises fails the test here

    _assert_finished_with_finite_values(study.get_trials())


def _assert_finished_with_finite_values(trials):
    states = [t.state.name for t in trials]
    assert len(trials) == 3 and set(states) <= {"COMPLETE", "PRUNED"}, states
    assert "COMPLETE" in states, states
    for trial in trials:
        history = trial.user_attrs["history"]
        assert trial.user_attrs["epochs_run"] >= 1
        if trial.state.name == "COMPLETE":
            assert math.isfinite(trial.value)
            assert trial.user_attrs["epochs_run"] == 5
        if trial.user_attrs.get("pruned_reason") != "diverged":
            assert all(v is not None and math.isfinite(v) for v in history["loss"]), history["loss"]
