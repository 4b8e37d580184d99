"""Study files: what a good one provides, and a clear message for each kind of mistake."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from lrsearch.errors import StudyFileError
from lrsearch.study._study_file import Settings, _imports_tensorflow_at_load, load_study

GOOD = textwrap.dedent('''
    """A small study."""
    import lrsearch

    settings = lrsearch.Settings(loss="mse", objective="val_loss", epochs=3)
    space = {"optimizers": ("adam",), "lr": (1e-3, 1e-1)}

    def data():
        return ([[0.0]], [[0.0]]), ([[0.0]], [[0.0]])

    def build_model(trial):
        return None
''')


def write(tmp_path, text, name="study.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_study_file_loads(tmp_path):
    study = load_study(write(tmp_path, GOOD))
    assert study.name == "study" and study.description == "A small study."
    assert study.settings.direction == "minimize"
    assert study.space.optimizers == ("adam",) and study.space.lr == (1e-3, 1e-1)


def test_a_study_file_imports_a_module_beside_it_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path.parent)
    folder = tmp_path / "my studies"
    folder.mkdir()
    (folder / "helpers_beside_the_study.py").write_text("ROWS = [[1.0]]\n")
    source = GOOD.replace("import lrsearch", "import lrsearch\nfrom helpers_beside_the_study import ROWS")
    study = load_study(write(folder, source.replace("return ([[0.0]]", "return (ROWS")))
    assert study.load_data()[0][0] == [[1.0]]


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("def data():", "def data(:"), "syntax error at line"),
    (GOOD.replace("def build_model(trial):", "def make_model(trial):"), "defines no build_model()"),
    (GOOD.replace("def data():", "def dataset():"), "defines no data()"),
    (GOOD.replace("def data():", "data = 5\ndef dataset():"), "data must be a function, but is int. Add `def data():`"),
    (GOOD.replace("settings =", "config ="), "defines no `settings"),
    (GOOD.replace('"optimizers"', '"optimisers"'), "unknown space option 'optimisers'. Did you mean 'optimizers'?"),
    (GOOD.replace('epochs=3', 'epochs=0'), "line 5: epochs must be a whole number >= 1"),
    (GOOD.replace('epochs=3', 'epochs=3, keep_compiled="no"'), "keep_compiled must be True or False"),
    (GOOD.replace('import lrsearch', 'import lrsearch\nimport no_such_module'), "ModuleNotFoundError"),
])
def test_each_mistake_names_the_file_and_the_fix(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(StudyFileError) as info:
        load_study(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(StudyFileError, match="no such file"):
        load_study(tmp_path / "nope.py")
    with pytest.raises(StudyFileError, match="ends in .py|ending in .py"):
        load_study(write(tmp_path, GOOD, name="study.txt"))


@pytest.mark.parametrize("objective, inferred", [
    ("val_loss", "minimize"), ("val_accuracy", "maximize"), ("val_mean_absolute_error", "minimize"),
    ("val_mae", "minimize"), ("val_mse", "minimize"), ("val_rmse", "minimize"), ("val_mape", "minimize"),
    ("val_msle", "minimize"), ("val_hinge", "minimize"), ("val_logcosh", "minimize"),
    ("val_kl_divergence", "minimize"), ("val_crossentropy", "minimize"), ("binary_crossentropy", "minimize"),
    ("val_auc", "maximize"), ("val_auc_1", "maximize"), ("val_precision", "maximize"), ("recall", "maximize"),
    ("val_r2_score", "maximize"), ("val_price_mae", "minimize"), ("val_out_a_accuracy", "maximize"),
    ("val_output_1_loss", "minimize"), ("val_f1_score", "maximize"), ("val_false_negatives", "minimize"),
])
def test_direction_of_keras_losses_and_metrics_is_known(objective, inferred):
    assert Settings(loss="mse", objective=objective).direction == inferred


@pytest.mark.parametrize("objective", ["val_my_score", "val_wer", "throughput"])
def test_an_objective_of_unknown_direction_must_say_it(objective):
    with pytest.raises(ValueError, match=f"whether '{objective}' should be minimized or maximized"):
        Settings(loss="mse", objective=objective)
    assert Settings(loss="mse", objective=objective, direction="minimize").direction == "minimize"


def test_a_misspelt_objective_is_pointed_at_the_name_it_resembles():
    with pytest.raises(ValueError, match="did you mean 'val_accuracy'"):
        Settings(loss="mse", objective="val_acuracy")


@pytest.mark.parametrize("source, imports", [
    ("import keras\n", True),
    ("import numpy as np, tensorflow as tf\n", True),
    ("from keras import layers\n", True),
    ("from tensorflow.keras import layers\n", True),
    ("try:\n    import keras\nexcept ImportError:\n    keras = None\n", True),
    ("class Holder:\n    import keras\n", True),  # a class body runs at load
    ("def build_model(trial):\n    import keras\n", False),
    ("data = lambda: __import__('keras')\nimport numpy\n", False),
    ("import keras_tuner\nfrom kerasy import x\n", False),
    ("import keras(\n", False),  # a syntax error: importing the file reports it
])
def test_a_file_imports_tensorflow_at_load_only_outside_its_functions(tmp_path, source, imports):
    path = tmp_path / "study.py"
    path.write_text(source)
    assert _imports_tensorflow_at_load(path) is imports


#: Two threads in study code at once: the first leaves while the second is inside, then
#: the second calls os._exit; the main thread's own os._exit, with a thread inside study
#: code again, ends the process.
EXIT_IN_THREADS = textwrap.dedent('''
    import os, threading
    from lrsearch.errors import StudyFileExit
    from lrsearch.study._study_file import user_code

    first_in, second_in, first_out, second_again = (threading.Event() for _ in range(4))

    def first():
        with user_code("first.py", "data()"):
            first_in.set()
            second_in.wait()
        first_out.set()
        print("first finished", flush=True)

    def second():
        first_in.wait()
        try:
            with user_code("second.py", "build_model()"):
                second_in.set()
                first_out.wait()
                os._exit(7)
        except StudyFileExit as exc:
            print(exc, flush=True)
        with user_code("second.py", "data()"):
            second_again.set()
            threading.Event().wait()

    threads = [threading.Thread(target=first), threading.Thread(target=second, daemon=True)]
    for thread in threads:
        thread.start()
    threads[0].join()
    second_again.wait()
    os._exit(5)
''')


def test_os_exit_in_one_threads_study_code_leaves_other_threads_and_the_process_alone():
    done = subprocess.run([sys.executable, "-c", EXIT_IN_THREADS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 5, done.stdout + done.stderr  # 7: the second thread's exit got through
    assert "first finished" in done.stdout
    assert "build_model() called os._exit(7); a study file must not end the process" in done.stdout
