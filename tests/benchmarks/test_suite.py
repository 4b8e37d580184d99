"""The benchmark suite's study files: each loads, states a target, and trains."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import run_suite  # noqa: E402
import time_to_target  # noqa: E402


#: Rows of each part of a study's data trained on: the model and the data's forms, cheaply.
ROWS = 128


@pytest.mark.slow  # an epoch of each suite model
def test_every_suite_study_loads_states_its_target_and_trains_an_epoch():
    from lrsearch.study import define_study, load_study
    from lrsearch.training import train

    for name, path in run_suite.STUDIES.items():
        study = load_study(path)
        goal = time_to_target.Goal(str(path), time_to_target.study_target(path))
        if path.parent == run_suite.SUITE:  # the docstring states the target the file holds
            assert f"TARGET: {goal}" in path.read_text(), name
        (x, y), (x_val, y_val) = study.load_data()
        first_rows = ((x[:ROWS], y[:ROWS]), (x_val[:ROWS], y_val[:ROWS]))
        sliced = define_study(name, data=lambda: first_rows, build_model=study.builder, settings=study.settings)
        logs = train(sliced, {"optimizer": "adam", "lr": 1e-3}, epochs=1, seed=0)
        assert math.isfinite(logs[goal.objective][-1]), name
        better = goal.target + (0.01 if goal.direction == "maximize" else -0.01)
        assert goal.reached(better) and not goal.reached(2 * goal.target - better), name
    assert time_to_target.study_target(ROOT / "studies" / "blobs.py") == 0.83

