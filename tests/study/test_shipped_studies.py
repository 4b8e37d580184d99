"""The shipped study files: each loads and runs a short search to the end through `lrsearch run`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lrsearch.results import read_trial

STUDIES = Path(__file__).resolve().parent.parent.parent / "studies"
NAMES = ["digits", "diabetes", "csv_example", "csv_multiclass"]


@pytest.mark.parametrize("name", NAMES)
def test_study_loads_with_a_one_line_description(name):
    from lrsearch.study import load_study

    study = load_study(STUDIES / f"{name}.py")
    assert study.description and "\n" not in study.description
    assert study.settings.direction == ("minimize" if name == "diabetes" else "maximize")


def test_csv_multiclass_gives_integer_labels_of_its_three_classes():
    import numpy as np
    import pandas as pd

    from lrsearch.study import data, load_study

    study = load_study(STUDIES / "csv_multiclass.py")
    assert study.settings.loss == "sparse_categorical_crossentropy"
    (x, y), (x_val, y_val) = data.load(study)
    table = pd.read_csv(STUDIES / "data" / "plans.csv")
    assert len(x) + len(x_val) == len(table) == 600 and x.dtype == x_val.dtype == np.float32
    assert y.dtype == np.int32 and y.ndim == 1 and set(np.unique(y)) == set(np.unique(y_val)) == {0, 1, 2}
    shares = np.bincount(y) / len(y)
    assert shares == pytest.approx(np.bincount(y_val) / len(y_val), abs=0.02)  # stratified
    expected = table["plan"].value_counts(normalize=True)
    assert shares == pytest.approx([expected["basic"], expected["premium"], expected["standard"]], abs=0.02)
    assert x.shape[1] == 4 + 4  # the numeric columns, and region one-hot
    assert np.abs(x.mean(axis=0)).max() < 1e-5


@pytest.mark.parametrize("name", [name if name == "digits" else pytest.param(name, marks=pytest.mark.slow)
                                  for name in NAMES])  # the CNN by default, the others with the slow tests
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
