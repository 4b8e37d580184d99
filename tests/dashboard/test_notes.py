"""Dashboard notes (`lrsearch.dashboard._notes`) on real Optuna studies of each storage kind: trials made
with lrsearch's records, the notes and charts read back through optuna-dashboard's own
application, written once."""

from __future__ import annotations

import io
import json
import uuid
import warnings
import wsgiref.util

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("optuna_dashboard")

from lrsearch.dashboard import _notes as notes  # noqa: E402
from lrsearch import results
from lrsearch.storage import open_storage  # noqa: E402

EPOCHS = 6
PLATEAU = [0.01, 0.01, 0.01, 0.005, 0.005, 0.0025]


@pytest.fixture(params=["journal", "sqlite", "postgres"])
def storage(request, tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)  # where a database server's charts go
    if request.param == "journal":
        return str(tmp_path / "notes.journal")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notes.db'}"
    return request.getfixturevalue("postgres_url")


def make_study(storage: str):
    """A study as `lrsearch run` leaves it: a complete, a pruned and a failed trial, and
    one still running; its name is new (a PostgreSQL database outlives the test)."""
    study = optuna.create_study(study_name=f"notes-{uuid.uuid4().hex[:8]}", storage=open_storage(storage), direction="maximize")
    results.write_study(study, study_file="studies/notes.py", objective="val_accuracy", direction="maximize",
                       epochs=EPOCHS, batch_size=32, seed=7, lrsearch_version="0.1.0")

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 0.1, log=True)
        results.write_trial_config(trial, "host/CPU", {"optimizer": "sgd", "lr": lr, "schedule": "plateau",
                                                      "momentum": 0.9, "patience": 2, "factor": 0.5})
        epochs = 3 if trial.number == 1 else EPOCHS
        accuracy = [0.5 + 0.05 * e for e in range(epochs)]
        results.write_trial_end(trial, {"val_accuracy": accuracy, "loss": [1.0] * epochs, "lr": PLATEAU[:epochs]}, 1.25)
        if trial.number == 1:
            results.write_pruned(trial, results.BY_PRUNER, 2, "val_accuracy=0.6 at epoch 3")
            raise optuna.TrialPruned()
        if trial.number == 2:
            results.write_failure(trial, "build_model() raised ValueError: *bad* <layer> in my_model")
            raise ValueError("scripted")
        return accuracy[-1]

    study.optimize(objective, n_trials=3, catch=(ValueError,))
    with warnings.catch_warnings():  # "heartbeats are meant for optimize()", on PostgreSQL and SQLite
        warnings.simplefilter("ignore", UserWarning)
        study.ask()  # a trial still running: it gets no note yet
    return study


def dashboard_get(app, path: str) -> tuple[str, str, bytes]:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    answer = {}
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answer.update(status=status, headers=dict(headers))))
    return answer["status"], answer["headers"].get("Content-Type", ""), body


def served(study, storage: str) -> dict:
    """The study as optuna-dashboard's API serves it, and its app."""
    from optuna_dashboard import wsgi

    app = wsgi(study._storage, artifact_store=notes.artifact_store(storage))
    status, _, body = dashboard_get(app, f"/api/studies/{study._study_id}")
    assert status.startswith("200"), body[:500]
    return {"app": app, **json.loads(body)}


def test_finished_trials_and_the_study_get_notes_with_charts_the_dashboard_serves(storage):
    study = make_study(storage)
    assert notes.annotate(study, storage) == 3
    shown = served(study, storage)
    study_note = shown["note"]["body"]
    assert "`studies/notes.py`" in study_note and "val\\_accuracy (maximize)" in study_note
    assert f"{EPOCHS} epochs per trial, batch size 32, seed 7" in study_note
    assert "lrsearch export studies/notes.py" in study_note and "-o best.json" in study_note
    assert "step axis counts from 0" in study_note
    by_number = {t["number"]: t for t in shown["trials"]}
    complete, pruned, failed, running = (by_number[n]["note"]["body"] for n in range(4))
    assert running == ""
    assert complete.startswith("### Trial 0: complete")
    assert "`sgd lr=" in complete and "momentum=0.90 plateau patience=2 factor=0.5`" in complete
    assert "**Best val\\_accuracy**: 0.75 at epoch 6 (step 5)" in complete
    assert "0.01 for epochs 1-3, 0.005 for epochs 4-5, 0.0025 for epoch 6" in complete
    assert "in 1.2 s, seed 7" in complete  # trial 0 trains on the study's seed + 0
    assert pruned.startswith("### Trial 1: pruned (pruner)")
    assert "**Pruned at epoch 3 (step 2)**, reason *pruner*: the study's Optuna pruner" in pruned
    assert "(val\\_accuracy=0.6 at epoch 3)" in pruned and "Ran** 3 of 6 epochs" in pruned
    assert "**Failed**: build\\_model() raised ValueError: \\*bad\\* \\<layer\\> in my\\_model" in failed

    chart = complete.split("](")[1].split(")")[0]
    status, kind, body = dashboard_get(shown["app"], chart)
    assert status.startswith("200") and kind == "image/svg+xml", (status, body[:300])
    assert body.startswith(b"<svg") and b"Trial 0: learning rate per epoch" in body
    assert "lr-trial-0.svg" in [a["filename"] for a in shown["artifacts"]]


def test_notes_are_written_once_and_never_over_a_note_of_the_users(storage):
    from optuna_dashboard._note import save_note_with_version

    study = make_study(storage)
    assert notes.annotate(study, storage) == 3
    trial = study.trials[0]
    save_note_with_version(study._storage, study._study_id, trial._trial_id, 2, "my own words")
    before = study._storage.get_study_system_attrs(study._study_id)
    assert notes.annotate(study, storage) == 0
    assert study._storage.get_study_system_attrs(study._study_id) == before
    shown = served(study, storage)
    assert shown["trials"][0]["note"] == {"version": 2, "body": "my own words"}
    assert len(shown["artifacts"]) == 3  # one chart a trial, not one a pass


def test_a_chart_uploaded_by_an_interrupted_pass_is_reused(tmp_path, monkeypatch):
    import optuna_dashboard._note as dashboard_notes

    storage = str(tmp_path / "again.journal")
    study = make_study(storage)
    save = dashboard_notes.save_note_with_version
    calls = []

    def interrupted(*args):  # the study's note goes through, then the pass stops after trial 0's chart
        calls.append(args)
        if len(calls) > 1:
            raise KeyboardInterrupt
        save(*args)

    monkeypatch.setattr(dashboard_notes, "save_note_with_version", interrupted)
    with pytest.raises(KeyboardInterrupt):
        notes.annotate(study, storage)
    monkeypatch.undo()
    assert notes.annotate(study, storage) == 3
    assert sorted(a["filename"] for a in served(study, storage)["artifacts"]) == [
        "lr-trial-0.svg", "lr-trial-1.svg", "lr-trial-2.svg"]


def test_live_notes_read_the_storage_at_most_once_an_interval(tmp_path, monkeypatch):
    storage = str(tmp_path / "live.journal")
    study = make_study(storage)
    reads = []
    real = study.get_trials
    monkeypatch.setattr(study, "get_trials", lambda **kw: reads.append(kw) or real(**kw))
    live = notes.LiveNotes(study, storage, interval=3600)
    live.tick()
    live.tick()
    assert len(reads) == 1
    assert [t["note"]["body"] != "" for t in served(study, storage)["trials"]] == [True, True, True, False]
    running = study.trials[3]
    study.tell(running.number, 0.4)
    live.interval = 0
    live.tick()
    assert served(study, storage)["trials"][3]["note"]["body"].startswith("### Trial 3: complete")


def test_a_study_lrsearch_did_not_make_is_left_alone(tmp_path):
    from lrsearch.dashboard import write_notes

    storage = str(tmp_path / "mixed.journal")
    ours = make_study(storage)
    theirs = optuna.create_study(study_name="theirs", storage=open_storage(storage))
    theirs.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    out = io.StringIO()
    write_notes(ours._storage, storage, None, out)
    assert out.getvalue() == ""
    assert not any(k.startswith("dashboard:") for k in theirs._storage.get_study_system_attrs(theirs._study_id))
    assert served(ours, storage)["note"]["body"].startswith("## notes-")


def test_lr_in_words():
    assert notes.lr_in_words([0.1] * 5) == "0.1 for epochs 1-5"
    assert notes.lr_in_words([0.1]) == "0.1 for epoch 1"
    assert notes.lr_in_words([0.1, 0.05, 0.025, 0.0125]) == "from 0.1 at epoch 1 to 0.0125 at epoch 4"
    cycle = [0.001, 0.005, 0.01, 0.005, 0.001, 0.0005, 1e-6]
    assert notes.lr_in_words(cycle) == "from 0.001 at epoch 1 to 1e-06 at epoch 7, highest 0.01 at epoch 3"
    assert notes.lr_in_words([0.1, None, 0.1, 0.1, 0.1, 0.1]) == "0.1 for epoch 1, n/a for epoch 2, 0.1 for epochs 3-6"


def test_artifact_dir():
    from pathlib import Path

    assert notes.artifact_dir("lrsearch.journal") == Path("lrsearch.journal.artifacts")
    assert notes.artifact_dir("sqlite:////data/x.db?timeout=30") == Path("/data/x.db.artifacts")
    assert notes.artifact_dir("sqlite:///:memory:") == Path("lrsearch-artifacts")
    assert notes.artifact_dir("postgresql://u:p@db/lrsearch") == Path("lrsearch-artifacts")
