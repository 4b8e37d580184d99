"""`lrsearch.search` and `lrsearch.define_study`: the whole search as a library call, on a
study file or on a study defined in Python, whose functions reach the spawned workers by
cloudpickle; bad arguments fail before any worker starts; a broken study raises."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import textwrap

import pytest

import lrsearch
from conftest import ROOT, TINY
from lrsearch.errors import SearchStopped, StudyFileError, UsageError

#: A script that defines its study in `__main__`, as a notebook cell does: moons, not blobs,
#: a binary output, and a model parameter of its own; `ROWS` is a global its data() reads.
DEFINED = textwrap.dedent('''
    import keras
    import lrsearch
    from sklearn.datasets import make_moons

    ROWS = 240

    def data():
        x, y = make_moons(n_samples=ROWS, noise=0.2, random_state=0)
        x = x.astype("float32")
        return (x[:160], y[:160]), (x[160:], y[160:])

    def build_model(trial):
        width = trial.suggest_int("width", 4, 16)
        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(width, activation="relu"),
                                 keras.layers.Dense(1, activation="sigmoid")])

    settings = lrsearch.Settings(loss="binary_crossentropy", metrics=["accuracy"], objective="val_accuracy",
                                 epochs=3, batch_size=16, n_trials=5, seed=1)

    if __name__ == "__main__":
        study = lrsearch.define_study("moons", data=data, build_model=build_model, settings=settings)
        for attempt in (1, 2):
            result = lrsearch.search(study, storage="moons.journal", workers=2, confirm=(2, 2), report=False)
            print("RESULT", attempt, result.outcome, result.best.number, result.best.value,
                  sorted(result.confirmation.values.values()) if result.confirmation else None)
        path = result.export("best.json")
        print("EXPORTED", lrsearch.load_config(path).trial_number)
''')


def test_a_study_defined_in_main_runs_in_spawned_workers_and_resumes(tmp_path):
    (tmp_path / "moons.py").write_text(DEFINED)
    done = subprocess.run([sys.executable, "moons.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    results = re.findall(r"^RESULT (\d) (.+?) (\d+) (\S+) (.*)$", done.stdout, re.M)
    assert [r[:2] for r in results] == [("1", "finished"), ("2", "nothing to do")], done.stdout
    assert results[0][2:4] == results[1][2:4]  # the same pick when nothing more ran
    assert re.search(r"^EXPORTED " + results[0][2] + "$", done.stdout, re.M)

    import optuna

    from lrsearch.results import read_study
    from lrsearch.storage import open_storage

    study = optuna.load_study(study_name="moons", storage=open_storage(str(tmp_path / "moons.journal")))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 5 and not [t for t in trials if t.state.name in ("RUNNING", "FAIL")]
    assert all(4 <= t.params["width"] <= 16 for t in trials)  # the workers called this build_model
    assert read_study(study).steps_per_epoch == 10  # ... and this data(): 160 training rows in batches of 16
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, workers  # in parallel, in two processes
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert 0 < best.value <= 1 and math.isfinite(float(results[0][3]))


def test_a_study_file_in_process_returns_the_pick_and_writes_the_report(tmp_path):
    result = lrsearch.search(TINY, storage=str(tmp_path / "t.journal"), n_trials=3, epochs=2, workers=1,
                             confirm=(1, 2), report=tmp_path / "report")
    assert result.outcome == "finished" and not result.interrupted
    trials = result.study.get_trials(deepcopy=False)
    assert len(trials) == 3 and all(t.state.name != "RUNNING" for t in trials)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert result.best is not None and result.best.number in {t.number for t in complete}
    assert result.best.state == "COMPLETE" and len(result.confirmation.values) == 2
    assert (result.report / "summary.md").is_file() and result.report == tmp_path / "report"

    # A machine that joins without n_trials or epochs keeps to the run's 3 and 2, not the study file's 4 and 5.
    joined = lrsearch.join(TINY, storage=str(tmp_path / "t.journal"), workers=1)
    assert joined.outcome == "nothing to do" and len(joined.study.get_trials(deepcopy=False)) == 3


def test_joining_a_study_no_run_made_creates_none_and_one_without_n_trials_says_to_start_the_run(tmp_path):
    import optuna

    from lrsearch.storage import open_storage

    journal = str(tmp_path / "t.journal")
    optuna.create_study(study_name="other", storage=open_storage(journal))
    with pytest.raises(UsageError, match=r"no study 'tiny' in .*t.journal; it holds \['other'\]\. A worker without "
                                         r"--n-trials joins a study that `lrsearch run` \(or a worker given "
                                         r"--n-trials\) made: start that first, or give its --study-name\."):
        lrsearch.join(TINY, storage=journal, workers=1)
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(journal))] == ["other"]
    optuna.create_study(study_name="tiny", storage=open_storage(journal), direction="maximize")  # made, not run
    with pytest.raises(UsageError, match=r"has no n_trials recorded by its run yet; start the run \(lrsearch run\) "
                                         r"first, or give this worker n_trials \(--n-trials\)"):
        lrsearch.join(TINY, storage=journal, workers=1)


@pytest.mark.parametrize("options, named", [
    (dict(n_trials=0), "n_trials must be a whole number >= 1, but got 0"),
    (dict(epochs=2.5), "epochs must be a whole number >= 1"),
    (dict(seed=-1), "seed must be a whole number >= 0"),
    (dict(seed=2**32), "seed must be a whole number from 0 to 2147483647 (2**31 - 1), but got 4294967296"),
    (dict(report=5), "report must be True (./lrsearch-report-NAME), a folder or False, but got 5"),
    (dict(workers=0), "workers must be a whole number >= 1"),
    (dict(lanes=0), 'lanes must be a whole number >= 1 or None (measured, as --lanes auto; "auto" too), but got 0'),
    (dict(lanes="four"), "lanes must be a whole number >= 1 or None"),
    (dict(timeout=0), "timeout must be a number of seconds > 0"),
    (dict(confirm=(3, 0)), "confirm must be (K, N)"),
    (dict(confirm=3), "confirm must be (K, N)"),
    (dict(n_trial=5), "unknown option(s) ['n_trial']; the options are"),
])
def test_bad_arguments_name_the_keyword_and_touch_no_storage(tmp_path, options, named):
    journal = tmp_path / "never.journal"
    with pytest.raises(UsageError) as raised:
        lrsearch.search(TINY, storage=str(journal), **options)
    assert named in str(raised.value)
    assert not journal.exists()


def test_join_refuses_what_the_machine_that_runs_the_search_decides(tmp_path):
    journal = tmp_path / "never.journal"
    with pytest.raises(UsageError, match="confirm is decided by the machine that runs the search"):
        lrsearch.join(TINY, storage=str(journal), confirm=(1, 1))
    assert not journal.exists()


def test_a_study_that_is_neither_a_path_nor_defined_is_refused():
    with pytest.raises(UsageError, match="study must be a study file's path or a study from lrsearch.define_study"):
        lrsearch.search(42)


def test_define_study_checks_its_parts_as_a_study_file_is_checked():
    tiny = lrsearch.study._study_file.load_study(TINY)
    parts = dict(data=tiny.data, build_model=tiny.builder, settings=tiny.settings)
    study = lrsearch.define_study("mine", **parts, space={"optimizers": ["adam"]})
    assert study.in_python and study.name == "mine" and study.space.optimizers == ("adam",)
    assert not tiny.in_python
    for part, value, kind in (("data", None, "a function, but got NoneType"),
                              ("build_model", 5, "a function, but got int"),
                              ("settings", {"loss": "mse"}, r"lrsearch.Settings\(...\), but got dict")):
        with pytest.raises(StudyFileError, match=f"<study mine defined in Python>: {part}= must be {kind}.$"):
            lrsearch.define_study("mine", **{**parts, part: value})
    with pytest.raises(StudyFileError, match="bad `space`"):
        lrsearch.define_study("mine", **parts, space={"optimizers": ["lion"]})
    with pytest.raises(UsageError, match="name must be a non-empty string"):
        lrsearch.define_study("a/b", **parts)


def test_a_study_that_cannot_be_pickled_says_why(tmp_path):
    import threading

    from lrsearch.study import pickle_study

    lock = threading.Lock()
    tiny = lrsearch.study._study_file.load_study(TINY)

    def data():
        with lock:
            return tiny.data()

    study = lrsearch.define_study("locked", data=data, build_model=tiny.builder, settings=tiny.settings)
    with pytest.raises(StudyFileError, match="cannot be sent to the worker processes: pickling it raised TypeError"):
        pickle_study(study)
    assert pickle_study(tiny) is None  # a study file travels by its path


def test_a_defined_study_whose_model_fails_stops_the_search_with_its_error(tmp_path):
    tiny = lrsearch.study._study_file.load_study(TINY)

    def build_model(trial):
        raise ValueError("no such layer: Dense2")

    study = lrsearch.define_study("broken", data=tiny.data, build_model=build_model, settings=tiny.settings)
    with pytest.raises(SearchStopped) as raised:
        lrsearch.search(study, storage=str(tmp_path / "b.journal"), n_trials=2, epochs=1, workers=1, report=False)
    assert "<study broken defined in Python>" in str(raised.value) and "no such layer: Dense2" in str(raised.value)
    assert raised.value.exit_code == 2


def test_a_defined_study_whose_trials_all_fail_stops_after_five_and_blames_the_study(tmp_path):
    tiny = lrsearch.study._study_file.load_study(TINY)

    def build_model(trial):
        if "worker" in trial.user_attrs:  # a trial of the study, not the workers' start-up check
            raise ValueError("out of memory, say")
        return tiny.build_model(trial)

    study = lrsearch.define_study("failing", data=tiny.data, build_model=build_model, settings=tiny.settings)
    journal = tmp_path / "f.journal"
    with pytest.raises(SearchStopped) as raised:
        lrsearch.search(study, storage=str(journal), n_trials=20, epochs=1, workers=1, report=False)
    assert raised.value.exit_code == 1 and "5 trials failed in a row" in str(raised.value)
    assert "The study is probably wrong" in str(raised.value) and "study file" not in str(raised.value)

    import optuna

    from lrsearch.storage import open_storage

    states = [t.state.name for t in optuna.load_study(study_name="failing", storage=open_storage(str(journal))).trials]
    assert 5 <= len(states) < 20 and set(states) == {"FAIL"}


def test_all_lists_what_the_readme_documents():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"\blrsearch\.([A-Za-z_]\w*)\b(?!\.py)", readme))
    modules = {p.stem for p in (ROOT / "lrsearch").iterdir()} | {"journal"}  # lrsearch.journal: the default storage
    public = {name for name in documented - modules if not name.startswith("__")}
    assert public == set(lrsearch.__all__) - {"__version__"}, (public, lrsearch.__all__)
    for name in lrsearch.__all__:
        assert hasattr(lrsearch, name)


def test_the_watch_it_live_hint_says_what_stands_for_a_password_it_never_prints(capsys):
    import optuna

    from lrsearch.options import SearchOptions
    from lrsearch.run._search import _announce
    from lrsearch.study import load_study

    study = optuna.create_study(study_name="s")
    for storage, said in (("postgresql://u:S3cret@h/db", True), ("postgresql://u@h/db", False)):
        _announce(study, load_study(TINY), SearchOptions.of(storage=storage, study_name="s"))
        out = capsys.readouterr().out
        assert "lrsearch dashboard" in out and "S3cret" not in out
        assert ("(*** stands for the storage's password, which lrsearch never prints" in out) == said, out


def test_a_bad_environment_setting_is_named_without_the_joining_workers_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("LRSEARCH_HEARTBEAT", "abc")
    with pytest.raises(UsageError) as raised:
        lrsearch.search(TINY, storage=str(tmp_path / "j.journal"), n_trials=1, workers=1, report=False)
    assert "LRSEARCH_HEARTBEAT" in str(raised.value) and "A worker without" not in str(raised.value), raised.value
