"""Range-test results kept with the Optuna study: reused only for the same inputs,
and read back from a journal file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from lrsearch import rangetest, rangetest_store  # noqa: E402
from lrsearch.record import range_test_key  # noqa: E402
from lrsearch.studyfile import load_study  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BLOBS = ROOT / "studies" / "blobs.py"
#: Short range tests for the mechanics.
SHORT = {"iterations": 300, "beta": 0.9}


@pytest.fixture(scope="module")
def blobs_study():
    return load_study(BLOBS)



@pytest.fixture
def optuna_study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize")



@pytest.fixture(scope="module")
def short_sgd(blobs_study):
    return rangetest.find_lr(blobs_study, "sgd", **SHORT)



def test_stored_result_is_reused_only_for_the_same_inputs(blobs_study, optuna_study):
    first, reused = rangetest_store.find_lr_cached(blobs_study, optuna_study, "sgd", **SHORT)
    assert not reused
    assert range_test_key("sgd", 32) in optuna_study.user_attrs
    second, reused = rangetest_store.find_lr_cached(blobs_study, optuna_study, "sgd", **SHORT)
    assert reused and second.duration_s == first.duration_s
    third, reused = rangetest_store.find_lr_cached(blobs_study, optuna_study, "sgd", **{**SHORT, "iterations": 250})
    assert not reused and third.iterations == 250


def test_stored_result_survives_a_journal_file(tmp_path, short_sgd):
    from lrsearch.storage import open_storage

    path = str(tmp_path / "x.journal")
    study = optuna.create_study(storage=open_storage(path), study_name="s")
    rangetest_store.store_result(study, short_sgd)
    loaded = optuna.load_study(study_name="s", storage=open_storage(path))
    found = rangetest_store.stored_result(loaded, "sgd", 32, short_sgd.inputs())
    assert found is not None and found.suggestion == pytest.approx(short_sgd.suggestion, rel=1e-3)
