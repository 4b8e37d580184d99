"""`lrsearch.search` from a script without an `if __name__ == "__main__":` guard, as the
README's example is copied into a file, and from a script fed on standard input: the
spawned workers get the study, never the script, so it runs once and its search finishes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import optuna

from conftest import ROOT, TINY
from lrsearch import internals
from lrsearch.storage import open_storage

#: A study defined in the script itself: the workers get its functions pickled by value.
DEFINED_HERE = textwrap.dedent('''
    import lrsearch

    open("ran", "a").write("once\\n")


    def data():
        import numpy as np

        x = np.random.default_rng(0).normal(size=(80, 2)).astype("float32")
        y = np.eye(3, dtype="float32")[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0)]
        return (x[:60], y[:60]), (x[60:], y[60:])


    def build_model():
        import keras

        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])


    settings = lrsearch.Settings(loss="categorical_crossentropy", metrics=["accuracy"], objective="val_accuracy",
                                 epochs=1, n_trials=1)
    study = lrsearch.define_study("script", data=data, build_model=build_model, settings=settings)
    result = lrsearch.search(study, storage="s.journal", workers=1, lanes=1, confirm=None, report=False)
    print("best trial", result.best.number)
''')
#: The README's first example, with a study file.
README_EXAMPLE = textwrap.dedent(f'''
    import lrsearch

    open("ran", "a").write("once\\n")
    result = lrsearch.search({str(TINY)!r}, n_trials=1, epochs=1, storage="s.journal", workers=1, lanes=1,
                             confirm=None, report=False)
    print("best trial", result.best.number)
''')


def run_script(tmp_path, script: str, from_stdin: bool) -> subprocess.CompletedProcess:
    path = tmp_path / "search_blobs.py"
    path.write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-"] if from_stdin else [sys.executable, str(path)]
    with open(path) as stdin:
        return subprocess.run(command, cwd=tmp_path, stdin=stdin if from_stdin else subprocess.DEVNULL, env=env,
                              capture_output=True, text=True, timeout=240)


def assert_searched_once(tmp_path, result: subprocess.CompletedProcess, name: str) -> None:
    assert result.returncode == 0, result.stderr
    assert "best trial" in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert (tmp_path / "ran").read_text() == "once\n", "a worker ran the script again"
    states = [t.state.name for t in optuna.load_study(study_name=name, storage=open_storage(
        str(tmp_path / "s.journal"))).get_trials(deepcopy=False)]
    assert states == ["COMPLETE"], states  # 1 asked, 1 usable, none left RUNNING


def test_a_script_without_a_main_guard_searches_once(tmp_path):
    assert_searched_once(tmp_path, run_script(tmp_path, DEFINED_HERE, from_stdin=False), "script")


def test_a_script_on_standard_input_searches_once(tmp_path):
    assert_searched_once(tmp_path, run_script(tmp_path, README_EXAMPLE, from_stdin=True), "tiny")


def test_processes_spawned_without_the_main_module_are_not_told_to_run_it(monkeypatch):
    from multiprocessing import spawn

    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "__file__", "/a/script.py", raising=False)
    with internals.without_main_module():
        prepared = spawn.get_preparation_data("worker")
    assert not {"init_main_from_path", "init_main_from_name"} & set(prepared)
    assert main.__file__ == "/a/script.py"
    assert {"init_main_from_path", "init_main_from_name"} & set(spawn.get_preparation_data("worker"))
