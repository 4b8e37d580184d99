"""`lrsearch run --bounds-from-find-lr`: the range test narrows the lr and peak_lr
ranges, the ranges are printed and recorded with the study, and every worker (a resumed
run, `lrsearch worker`) samples inside them."""

from __future__ import annotations

import dataclasses
import re

import pytest

optuna = pytest.importorskip("optuna")

from lrsearch.rangetest import _bounds as bounds
from lrsearch.results import range_test_key, read_bounds, write_bounds  # noqa: E402
from lrsearch.lr import OPTIMIZERS  # noqa: E402
from lrsearch.storage import open_storage  # noqa: E402
from lrsearch.study import load_study  # noqa: E402

SPAN = r"\[(\S+), (\S+)\]"


def check_trials_inside(study, record) -> int:
    """Assert every finished trial sampled lr / peak_lr from the recorded ranges; return
    how many trials were checked."""
    finished = [t for t in study.trials if t.state.is_finished() and "config" in t.user_attrs]
    for trial in finished:
        name = "peak_lr" if trial.user_attrs["config"]["schedule"] == "one_cycle" else "lr"
        low, high = record[name]
        assert low <= trial.user_attrs["config"]["lr"] <= high, (trial.number, name, trial.user_attrs["config"])
        if name in trial.distributions:  # absent only when the range is fixed
            distribution = trial.distributions[name]
            assert (distribution.low, distribution.high) == pytest.approx((low, high)), trial.number
    return len(finished)


@pytest.mark.slow  # range tests, then runs of the CLI
def test_run_bounds_from_find_lr_prints_records_and_workers_keep_them(cli, tiny_study, journal):
    first = cli("run", str(tiny_study), "--storage", journal, "--bounds-from-find-lr", "--n-trials", "3",
                "--epochs", "3", "--workers", "1", "--no-report")
    assert first.returncode == 0, first.stdout + first.stderr
    printed = re.search(rf"Narrowed by the range test: lr {SPAN} \(was \[1e-07, 1\]\), peak_lr {SPAN} "
                        rf"\(was \[1e-07, 1\]\)", first.stdout)
    assert printed, first.stdout
    for optimizer in OPTIMIZERS:
        assert re.search(rf"{optimizer} \(batch 32\): suggested lr", first.stdout), first.stdout

    study = optuna.load_study(study_name="tiny", storage=open_storage(journal))
    record = read_bounds(study)
    assert set(record["suggestions"]) == set(OPTIMIZERS)
    assert all(range_test_key(o, 32) in study.user_attrs for o in OPTIMIZERS)
    for name, group in (("lr", 1), ("peak_lr", 3)):
        low, high = record[name]
        assert [float(printed.group(group)), float(printed.group(group + 1))] == pytest.approx([low, high], rel=5e-3)
        assert 1e-7 <= low < high <= 1.0 and (low, high) != (1e-7, 1.0)
    assert check_trials_inside(study, record) == 3

    # A worker joining later, without the flag, reads the ranges from the study.
    second = cli("worker", str(tiny_study), "--storage", journal, "--n-trials", "5", "--epochs", "3",
                 "--workers", "1")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Ranges narrowed by the LR range test (recorded with the study): lr [" in second.stdout
    assert "LR range test for" not in second.stdout  # nothing recomputed
    study = optuna.load_study(study_name="tiny", storage=open_storage(journal))
    assert check_trials_inside(study, record) == 5


def test_a_record_for_other_ranges_is_not_applied(tiny_study):
    """An edited study file's own ranges win over bounds narrowed from the old ones."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna_study = optuna.create_study(direction="maximize")
    study = load_study(tiny_study)
    record = {"lr": [0.001, 0.3], "peak_lr": [0.003, 1.0], "study_lr": list(study.space.lr),
              "study_peak_lr": list(study.space.peak_lr)}
    write_bounds(optuna_study, record)
    applied = bounds.apply_recorded_bounds(study, optuna_study)
    assert applied.space.lr == (0.001, 0.3) and applied.space.peak_lr == (0.003, 1.0)
    edited = dataclasses.replace(study, space=study.space.replace(lr=(1e-5, 1e-1)))
    assert bounds.recorded_bounds(edited, optuna_study) == (record, False)
    assert bounds.apply_recorded_bounds(edited, optuna_study) is edited


@pytest.mark.slow  # a run of the CLI
def test_a_study_file_error_in_the_range_test_exits_2(cli, tiny_study, tmp_path):
    """The range test runs in a spawned process; its StudyFileError reaches the user, and
    the study the run made for it is deleted (no trial was asked)."""
    import optuna

    from lrsearch.storage import open_storage

    broken = tmp_path / "broken.py"
    broken.write_text(tiny_study.read_text().replace("def data():", "def data():\n    raise RuntimeError('no data')"))
    journal = str(tmp_path / "s.journal")
    result = cli("run", str(broken), "--storage", journal, "--bounds-from-find-lr", "--workers", "1", "--no-report")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "data() raised RuntimeError: no data" in result.stderr and "Traceback" not in result.stderr
    assert optuna.get_all_study_names(open_storage(journal)) == []
