"""`SharedReads`, the proxy's layer over Optuna's cache: reads of a study's trials made at once
share one read of the database, and a call never gets a read that began before it did."""

from __future__ import annotations

import threading
import time

import optuna
import pytest

from lrsearch import internals
from lrsearch.storage._shared_reads import SharedReads

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


class SlowReads(optuna.storages.RDBStorage):
    """A real SQLite RDBStorage whose reads of a study's trials take `seconds` longer (as a busy
    database's would) and are counted; `fail` makes them raise."""

    def __init__(self, url: str, seconds: float = 0.3) -> None:
        super().__init__(url)
        self.seconds, self.reads, self.fail = seconds, 0, False
        self.reading = threading.Event()

    def _get_trials(self, *args, **kwargs):
        self.reads += 1
        self.reading.set()
        trials = super()._get_trials(*args, **kwargs)
        time.sleep(self.seconds)
        if self.fail:
            raise ConnectionError("the database went away")
        return trials


@pytest.fixture
def storage(tmp_path):
    """A study with one trial, in SharedReads over Optuna's cache over a slow SQLite database."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    database = SlowReads(f"sqlite:///{tmp_path / 'reads.db'}")
    shared = SharedReads(internals.cached(database))
    study = optuna.create_study(storage=shared, study_name="s")
    study.enqueue_trial({"x": 1.0})
    return shared, database, internals.study_id(study), database.url


def read_at_once(shared, study_id: int, calls: int) -> list:
    """What `calls` threads' reads of the study, started together, returned (an exception where one raised)."""
    got: list = [None] * calls

    def read(i: int) -> None:
        try:
            got[i] = shared.get_all_trials(study_id, deepcopy=False)
        except Exception as exc:  # noqa: BLE001 - what the call raised is the result
            got[i] = exc

    threads = [threading.Thread(target=read, args=(i,)) for i in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return got


def test_reads_made_at_once_share_a_read_of_the_database(storage):
    shared, database, study_id, _ = storage
    database.reads = 0
    got = read_at_once(shared, study_id, 8)
    assert all(len(trials) == 1 for trials in got)
    assert database.reads <= 2  # the first, then one for all that came while it ran (Optuna's cache: 8)


def test_a_call_made_during_a_read_waits_for_the_next_and_sees_what_was_written_before_it(storage):
    shared, database, study_id, url = storage
    database.reading.clear()
    first = threading.Thread(target=shared.get_all_trials, args=(study_id,))
    first.start()
    assert database.reading.wait(5)
    optuna.storages.RDBStorage(url).create_new_trial(study_id)  # another process's, during the first read
    trials = shared.get_all_trials(study_id, states=(optuna.trial.TrialState.RUNNING,))
    first.join()
    assert [trial.number for trial in trials] == [1]


def test_a_failed_read_raises_in_every_call_that_shared_it_and_the_next_read_is_fresh(storage):
    shared, database, study_id, _ = storage
    database.fail = True
    got = read_at_once(shared, study_id, 4)
    assert all(isinstance(result, ConnectionError) for result in got)
    database.fail = False
    assert len(shared.get_all_trials(study_id)) == 1
