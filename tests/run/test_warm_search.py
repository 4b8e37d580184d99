"""Searches one after another in one Python process, as a notebook runs them: the next takes the
last one's worker, warm (TensorFlow imported, the study's data loaded, its model checked and
compiled), loads the study again only where the file changed, and `lrsearch.shutdown()` ends it."""

from __future__ import annotations

import os

import pytest

import lrsearch
from conftest import TINY
from lrsearch.results import split_worker_tag

#: tiny.py's data(), recording each call with the file's TAG.
CALLS_RECORDED = '''
TAG = "{tag}"
_tiny_data = data


def data():
    with open({calls!r}, "a") as calls:
        calls.write(TAG)
    return _tiny_data()
'''


def test_a_second_search_takes_the_warm_worker_a_changed_study_is_loaded_again_and_shutdown_ends_it(tmp_path):
    study_file, calls = tmp_path / "warm.py", tmp_path / "calls"
    study_file.write_text(TINY.read_text() + CALLS_RECORDED.format(tag="a", calls=str(calls)))
    options = dict(storage=str(tmp_path / "w.journal"), epochs=1, workers=1, lanes=1, confirm=None, report=False)

    def search(n_trials: int) -> set[int]:
        """The pids of the processes that ran the study's trials, after a search up to `n_trials`."""
        result = lrsearch.search(study_file, n_trials=n_trials, **options)
        taken = [t for t in result.study.get_trials(deepcopy=False) if t.state.name != "WAITING"]  # not enqueued
        assert len(taken) == n_trials and {t.state.name for t in taken} <= {"COMPLETE", "PRUNED"}
        return {split_worker_tag(t.user_attrs["worker"])[1] for t in taken}

    first = search(1)
    assert search(2) == first and calls.read_text() == "a"  # one process, and data() was not called again
    study_file.write_text(study_file.read_text().replace('TAG = "a"', 'TAG = "b"'))
    assert search(3) == first and calls.read_text() == "ab"  # the new study file's data()

    lrsearch.shutdown()
    (pid,) = first
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
