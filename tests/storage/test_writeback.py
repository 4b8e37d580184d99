"""The worker's write-behind storage on real storages (SQLite and the journal file): what a
trial writes is read back at once where it runs, reaches the storage within the flush
interval (the dashboard's live view), in few transactions, and a trial that another
process finished meanwhile costs a warning, not the worker."""

from __future__ import annotations

import time

import optuna
import pytest
import sqlalchemy

from lrsearch.storage import WriteBackStorage, open_storage, rdb_under


@pytest.fixture(params=["sqlite", "journal"])
def url(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path}/s.db" if request.param == "sqlite" else str(tmp_path / "s.journal")


def reader(url: str, name: str = "s") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


def test_reports_are_local_at_once_and_reach_the_storage_within_the_interval(url):
    warnings = []
    storage = WriteBackStorage(open_storage(url), interval=0.2, warn=warnings.append)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    trial = study.ask()
    for step in range(50):
        trial.report(step / 100, step)
    trial.set_user_attr("history", {"loss": [1.0, 0.5]})
    assert len(storage.get_trial(trial._trial_id).intermediate_values) == 50  # read back where it runs
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen = reader(url).trials[0]
        if len(seen.intermediate_values) == 50 and "history" in seen.user_attrs:
            break
        time.sleep(0.05)
    assert len(seen.intermediate_values) == 50 and seen.user_attrs["history"] == {"loss": [1.0, 0.5]}
    assert seen.state.name == "RUNNING"

    study.tell(trial, 0.49)
    storage.flush()
    finished = reader(url).trials[0]
    assert finished.state.name == "COMPLETE" and finished.value == 0.49
    assert finished.intermediate_values[49] == 0.49 and warnings == []


def test_an_rdb_batch_is_one_transaction(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    storage = WriteBackStorage(open_storage(url), interval=60)  # nothing flushes until asked
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    engine = rdb_under(storage).engine
    commits = []
    sqlalchemy.event.listen(engine, "commit", lambda connection: commits.append(1))
    for step in range(200):
        trial.report(float(step), step)
        trial.set_user_attr(f"k{step % 5}", step)
    storage.flush()
    assert len(commits) == 1
    study.tell(trial, 1.0)
    storage.flush()
    assert len(commits) <= 3  # the state change: Optuna's own transaction
    assert len(reader(url).trials[0].intermediate_values) == 200


def test_a_trial_failed_elsewhere_meanwhile_loses_its_writes_with_a_warning(url):
    warnings = []
    storage = WriteBackStorage(open_storage(url), interval=60, warn=warnings.append)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    storage.flush()
    other = open_storage(url)
    other.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)  # as for a stale heartbeat
    trial.report(1.0, 0)
    study.tell(trial, 1.0)
    storage.flush()
    assert reader(url).trials[0].state.name == "FAIL"
    assert len(warnings) == 1 and "finished by another process" in warnings[0]


def test_an_enqueued_trial_taken_here_is_written_behind_too(url):
    storage = WriteBackStorage(open_storage(url), interval=60)
    study = optuna.create_study(study_name="s", storage=storage)
    study.enqueue_trial({"x": 0.25})
    trial = study.ask()
    assert trial.suggest_float("x", 0, 1) == 0.25
    trial.report(0.5, 0)
    assert reader(url).trials[0].intermediate_values == {}  # not yet: behind
    study.tell(trial, 0.5)
    storage.flush()
    done = reader(url).trials[0]
    assert done.state.name == "COMPLETE" and done.intermediate_values == {0: 0.5} and done.params == {"x": 0.25}
