"""Range-test results kept with the Optuna study: reused only for the same inputs,
and read back from a journal file.
"""

from __future__ import annotations


import pytest

optuna = pytest.importorskip("optuna")

from conftest import SHORT_RANGE_TEST  # noqa: E402
from lrsearch.rangetest import _store as rangetest_store  # noqa: E402
from lrsearch.results import range_test_key  # noqa: E402


def test_stored_result_is_reused_only_for_the_same_inputs(blobs_study, optuna_study):
    first, reused = rangetest_store.find_lr_cached(blobs_study, optuna_study, "sgd", **SHORT_RANGE_TEST)
    assert not reused
    assert range_test_key("sgd", 32) in optuna_study.user_attrs
    second, reused = rangetest_store.find_lr_cached(blobs_study, optuna_study, "sgd", **SHORT_RANGE_TEST)
    assert reused and second.duration_s == first.duration_s
    third, reused = rangetest_store.find_lr_cached(blobs_study, optuna_study, "sgd", **{**SHORT_RANGE_TEST, "iterations": 250})
    assert not reused and third.iterations == 250


def test_stored_result_survives_a_journal_file(tmp_path, short_sgd):
    from lrsearch.storage import open_storage

    path = str(tmp_path / "x.journal")
    study = optuna.create_study(storage=open_storage(path), study_name="s")
    rangetest_store.store_result(study, short_sgd)
    loaded = optuna.load_study(study_name="s", storage=open_storage(path))
    found = rangetest_store.stored_result(loaded, "sgd", 32, short_sgd.inputs())
    assert found is not None and found.suggestion == pytest.approx(short_sgd.suggestion, rel=1e-3)
