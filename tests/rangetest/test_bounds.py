"""Narrowing the space around the range test's suggestions: windows, union and
clipping; the record left with the study and the space workers read from it; the
range tests run in a spawned process.
"""

from __future__ import annotations

import dataclasses

import pytest

optuna = pytest.importorskip("optuna")

from conftest import SHORT_RANGE_TEST  # noqa: E402
from lrsearch.rangetest import _bounds as bounds  # noqa: E402
from lrsearch.rangetest import narrow_space  # noqa: E402
from lrsearch.results import range_test_key, read_bounds  # noqa: E402
from lrsearch.lr import Space  # noqa: E402


def test_narrow_space_windows_union_and_clip():
    space = Space(lr=(1e-7, 1.0), peak_lr=(1e-7, 1.0))
    narrowed = narrow_space(space, {"sgd": 0.05, "adam": 0.004})
    assert narrowed.lr == pytest.approx((0.0004, 0.15))
    assert narrowed.peak_lr == pytest.approx((0.004 / 3, 0.5))
    assert narrowed.optimizers == space.optimizers and narrowed.momentum == space.momentum
    clipped = narrow_space(space, {"adagrad": 1.0})
    assert clipped.lr == pytest.approx((0.1, 1.0)) and clipped.peak_lr == pytest.approx((1 / 3, 1.0))


def test_narrow_space_keeps_fixed_and_disjoint_ranges():
    space = Space(lr=(0.01, 0.01), peak_lr=(1e-7, 1e-5))
    narrowed = narrow_space(space, {"sgd": 0.05})
    assert narrowed.lr == (0.01, 0.01)
    assert narrowed.peak_lr == (1e-7, 1e-5)
    with pytest.raises(ValueError, match="at least one"):
        narrow_space(space, {})
    with pytest.raises(ValueError, match="sgd"):
        narrow_space(space, {"sgd": -1.0})


def test_bounds_from_find_lr_records_and_workers_apply_them(blobs_study, optuna_study):
    study = dataclasses.replace(blobs_study, space=blobs_study.space.replace(optimizers=("sgd",)))
    lines: list[str] = []
    narrowed = bounds.bounds_from_find_lr(study, optuna_study, isolate=False, echo=lines.append, **SHORT_RANGE_TEST)
    record = read_bounds(optuna_study)
    s = record["suggestions"]["sgd"]
    assert tuple(record["lr"]) == narrowed.lr == pytest.approx((max(1e-7, s / 10), min(1.0, 3 * s)))
    assert any("Narrowed" in line for line in lines)
    applied = bounds.apply_recorded_bounds(blobs_study, optuna_study)
    assert applied.space.lr == narrowed.lr and applied.space.peak_lr == narrowed.peak_lr
    again: list[str] = []
    bounds.bounds_from_find_lr(study, optuna_study, isolate=False, echo=again.append, **SHORT_RANGE_TEST)
    assert any("[stored]" in line for line in again)
    assert bounds.apply_recorded_bounds(blobs_study, optuna.create_study()) is blobs_study


@pytest.mark.slow
def test_bounds_from_find_lr_in_a_spawned_process(blobs_study, optuna_study):
    study = dataclasses.replace(blobs_study, space=blobs_study.space.replace(optimizers=("adam",)))
    narrowed = bounds.bounds_from_find_lr(study, optuna_study, echo=lambda line: None, **SHORT_RANGE_TEST)
    assert range_test_key("adam", 32) in optuna_study.user_attrs
    assert 1e-7 < narrowed.lr[0] < narrowed.lr[1] < 1.0
