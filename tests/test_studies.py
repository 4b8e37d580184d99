"""The shipped study files: each loads and runs a short search to the end through `lrsearch run`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lrsearch.record import read_trial

STUDIES = Path(__file__).resolve().parent.parent / "studies"
NAMES = ["digits", "diabetes", "csv_example"]


@pytest.mark.parametrize("name", NAMES)
def test_study_loads_with_a_one_line_description(name):
    from lrsearch.studyfile import load_study

    study = load_study(STUDIES / f"{name}.py")
    assert study.description and "\n" not in study.description
    assert study.settings.direction == ("minimize" if name == "diabetes" else "maximize")


@pytest.mark.parametrize("name", NAMES)
def test_study_runs_to_completion_through_the_cli(name, tmp_path, cli, journal):
    import optuna

    from lrsearch.storage import open_storage

    result = cli("run", str(STUDIES / f"{name}.py"), "--storage", journal, "--n-trials", "3", "--epochs", "5",
                 "--workers", "1", "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Study '{name}': 3 trials" in result.stdout
    study = optuna.load_study(study_name=name, storage=open_storage(journal))

    _assert_finished_with_finite_values(study.get_trials())


def _assert_finished_with_finite_values(trials):
    states = [t.state.name for t in trials]
    assert len(trials) == 3 and set(states) <= {"COMPLETE", "PRUNED"}, states
    for trial in trials:
        history = trial.user_attrs["history"]
        assert read_trial(trial).epochs_run >= 1
        if trial.state.name == "COMPLETE":
            assert math.isfinite(trial.value)
            assert read_trial(trial).epochs_run == 5
        if trial.user_attrs.get("pruned_reason") != "diverged":
            assert all(v is not None and math.isfinite(v) for v in history["loss"]), history["loss"]
