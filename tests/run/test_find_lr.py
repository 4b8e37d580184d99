"""`lrsearch.find_lr`, the library function of `lrsearch find-lr`: it runs the range test,
writes the curve, stores the result with the study and reuses it, and refuses bad input
before it touches the storage."""

from __future__ import annotations

import optuna
import pytest

import lrsearch
from conftest import TINY
from lrsearch.errors import StorageOpenError, UsageError
from lrsearch.rangetest import stored_result
from lrsearch.storage import open_storage


def test_find_lr_stores_the_result_writes_the_curve_and_reuses_it(tmp_path, capsys):
    journal, out = str(tmp_path / "s.journal"), tmp_path / "curves"
    runs = lrsearch.find_lr(TINY, storage=journal, optimizers="adam", iterations=100, out=out, verbose=False)
    assert capsys.readouterr().out == ""
    assert [(run.result.optimizer, run.reused) for run in runs] == [("adam", False)]
    assert runs[0].png == out / "find_lr-adam-b32.png" and runs[0].png.is_file() and runs[0].html.is_file()
    stored = stored_result(optuna.load_study(study_name="tiny", storage=open_storage(journal)), "adam", 32)
    assert stored.suggestion == runs[0].result.suggestion

    again = lrsearch.find_lr(str(TINY), storage=journal, optimizers=["adam"], iterations=100, out=out)
    assert again[0].reused and again[0].result.suggestion == runs[0].result.suggestion
    printed = capsys.readouterr().out
    assert "reused study user attribute 'find_lr:adam:32'" in printed and f"  curve: {runs[0].png}" in printed


def test_find_lr_refuses_bad_input_before_touching_the_storage(tmp_path):
    journal = tmp_path / "s.journal"
    with pytest.raises(UsageError, match="--iterations must be > 0, but got 0"):
        lrsearch.find_lr(TINY, storage=str(journal), iterations=0)
    with pytest.raises(UsageError, match="--momentum applies to sgd only; add --optimizer sgd \\(testing adam\\)"):
        lrsearch.find_lr(TINY, storage=str(journal), optimizers=["adam"], momentum=0.9)
    assert not journal.exists()
    with pytest.raises(StorageOpenError) as caught:
        lrsearch.find_lr(TINY, storage="nosuchdb://user:s3cret@host/db", optimizers=["sgd"])
    assert "cannot open storage nosuchdb://user:***@host/db" in str(caught.value) and caught.value.exit_code == 2
    assert "s3cret" not in str(caught.value)
