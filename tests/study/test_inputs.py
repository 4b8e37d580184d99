"""Bad inputs refused early and clearly: NaN in the data stops a run before it leaves a study
or a summary behind; a directory, a binary file or a blank study name is named for what it
is; no training rows, a compiled model and Keras' coloured errors get a plain word; and
the run's first line says why trials do not train in lanes."""

from __future__ import annotations

import re

import optuna
import pytest

import lrsearch
from conftest import TINY
from lrsearch.cli import main
from lrsearch.errors import SearchStopped, StudyFileError, UsageError
from lrsearch.run import finish
from lrsearch.storage import open_storage
from lrsearch.study import data, define_study, load_study
from lrsearch.workers._supervisor import Outcome

SETTINGS = lrsearch.Settings(loss="categorical_crossentropy", metrics=["accuracy"], objective="val_accuracy",
                             epochs=2, n_trials=4)


def test_nan_in_the_data_stops_the_run_before_it_makes_a_study_or_prints_a_summary(cli, tmp_path):
    path = tmp_path / "holes.py"
    path.write_text(TINY.read_text().replace("    onehot = ", "    x[5, 0] = np.nan\n    x[7] = np.inf\n    onehot = "))
    journal = str(tmp_path / "s.journal")
    result = cli("run", str(path), "--storage", journal, "--workers", "1", "--n-trials", "2", "--no-report",
                 timeout=120)
    assert result.returncode == 2, result.stderr
    assert (f"{path}: data()'s train x holds 3 NaN and inf value(s) in 2 of its 100 rows (the first, nan, at row 5)"
            in result.stderr), result.stderr
    assert "Study 'holes'" not in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert optuna.get_all_study_names(open_storage(journal)) == []  # no trial asked, none left RUNNING


def test_a_stop_before_any_trial_deletes_only_a_study_that_was_blank(tmp_path, capsys):
    storage = open_storage(str(tmp_path / "s.journal"))
    kept = optuna.create_study(study_name="kept", storage=storage)
    kept.set_user_attr("find_lr:sgd:32", "a range test worth keeping")
    blank = optuna.create_study(study_name="blank", storage=storage)
    for study, was_blank in ((kept, False), (blank, True)):
        with pytest.raises(SearchStopped, match="data\\(\\) raised"):
            finish(Outcome(fatal="study.py: data() raised KeyError"), study, hint=None, blank=was_blank)
    assert optuna.get_all_study_names(storage) == ["kept"] and capsys.readouterr().out == ""


def test_a_directory_a_binary_file_and_a_blank_study_name_are_named_for_what_they_are(tmp_path, capsys):
    (tmp_path / "a.py").write_text(TINY.read_text())
    (tmp_path / "image.py").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "latin.py").write_bytes('x = 1\ny = 2\nz = "caf\xe9"\n'.encode("latin-1"))
    for path, message in ((tmp_path, "is a directory. Give the path of a study file in it (a.py, image.py"),
                          (tmp_path / "image.py", "is not a Python file: it holds binary data (a NUL byte at "
                                                  "offset 8)"),
                          (tmp_path / "latin.py", "is not a Python file: byte 20 is not utf-8 text")):
        with pytest.raises(StudyFileError, match=f"^{path}: {message}".replace("(", r"\(").replace(")", r"\)")):
            load_study(path)
    assert main(["export", str(tmp_path)]) == 2 and "is a directory" in capsys.readouterr().err
    for name in ("", "   "):
        with pytest.raises(UsageError, match="a study's name must be a non-empty string"):
            lrsearch.SearchOptions.of(study_name=name)
        assert main(["export", str(TINY), "--study-name", name]) == 2
        assert "a study's name must be a non-empty string" in capsys.readouterr().err
    with pytest.raises(UsageError, match="non-empty"):
        define_study(" ", data=lambda: None, build_model=lambda: None, settings=SETTINGS)


def blobs(rows: int = 60, val_rows: int = 20):
    import numpy as np

    x = np.random.default_rng(0).normal(size=(rows + val_rows, 2)).astype("float32")
    y = np.eye(3, dtype="float32")[np.arange(rows + val_rows) % 3]
    return (x[:rows], y[:rows]), (x[rows:], y[rows:])


def mlp(units: int = 8, compiled: bool = False):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    if compiled:
        model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.parametrize("rows, val_rows, split", [(0, 20, "train"), (60, 0, "validation")])
def test_a_split_without_rows_is_refused(rows, val_rows, split):
    study = define_study("empty", data=lambda: blobs(rows, val_rows), build_model=lambda: mlp(), settings=SETTINGS)
    with pytest.raises(StudyFileError) as raised:
        data.load(study)
    assert f"data()'s {split} split holds no rows (x (0, 2), y (0, 3))" in str(raised.value)


def test_an_empty_validation_dataset_is_refused_by_name():
    import tensorflow as tf

    def datasets():
        (x, y), (vx, vy) = blobs()
        return (tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
                tf.data.Dataset.from_tensor_slices((vx, vy)).batch(16).take(0))

    study = define_study("emptied", data=datasets, build_model=lambda: mlp(), settings=SETTINGS)
    with pytest.raises(StudyFileError, match="data\\(\\)'s validation dataset holds no batch; give it at least one"):
        data.load(study)


def test_generators_are_refused_with_the_forms_that_stream_batches():
    def generators():
        train, val = blobs()
        return (batch for batch in [train]), (batch for batch in [val])

    study = define_study("streamed", data=generators, build_model=lambda: mlp(), settings=SETTINGS)
    with pytest.raises(StudyFileError) as raised:
        data.load(study)
    assert str(raised.value).endswith("must be an (x, y) or (x, y, sample_weight) tuple, but is a generator. To "
                                      "stream batches, give a tf.data.Dataset (tf.data.Dataset.from_generator wraps a "
                                      "generator) or a keras.utils.PyDataset."), raised.value


def checked_runner(build_model, lanes, lane_cap=1, callbacks=None):
    from lrsearch.training import TrialRunner, preflight

    study = define_study("checked", data=blobs, build_model=build_model, settings=SETTINGS, callbacks=callbacks)
    runner = TrialRunner(study)
    preflight(runner, lanes, lane_cap)
    return runner


def preflight_path(build_model, lanes, lane_cap=1, callbacks=None) -> str:
    return checked_runner(build_model, lanes, lane_cap, callbacks).preflight.training_path


def test_the_training_path_says_why_trials_train_one_at_a_time_and_that_a_compile_is_replaced():
    import keras

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.dense(x)

    assert preflight_path(lambda: mlp(), None).endswith(
        "one trial at a time, because each worker's share of the work is too small for lanes (a larger "
        "n_trials, --n-trials, or more trainings to confirm allow them)")
    from lrsearch.training._trial import LANES_LATER

    runner = checked_runner(lambda: mlp(4000), None, lane_cap=2)  # lanes left to time later
    assert runner.preflight.training_path.endswith(LANES_LATER) and runner.lanes == 1
    clause = runner.time_lanes()
    assert re.fullmatch(r", (one trial at a time, because lanes were measured not to pay on this device|2 trials at "
                        r"once in lanes, as measured) \(an epoch of 2 lanes took [\d.]+x one trial's\)|, one trial "
                        r"at a time, because a step takes [\d.]+ ms alone, .*",  # timed: a busy machine may tip it
                        clause), clause
    assert runner.lanes == (2 if "2 trials at once" in clause else 1)
    assert runner.preflight.training_path.endswith(clause) and runner.time_lanes() is None  # timed once
    assert preflight_path(Subclassed, None).endswith(
        "one trial at a time, because the model is not a plain Sequential or functional model with a config")
    suggesting = checked_runner(lambda trial: mlp(trial.suggest_int("units", 8, 64)), None, lane_cap=2)
    assert suggesting.preflight.training_path.endswith(  # each trial's own model: lanes would trace it again
        "one trial at a time, because build_model() suggests its own parameters, so trials seldom share the "
        "compiled step that lanes share and each new one would trace the lanes' step again (--lanes K trains in "
        "lanes all the same)") and suggesting.lanes_to_time is None
    assert preflight_path(lambda: mlp(), None, callbacks=lambda: []).endswith(
        "because the study file's callbacks() get a stand-in for the model in lanes (--lanes K trains in lanes all "
        "the same)")
    path = preflight_path(lambda: mlp(compiled=True), 1)
    assert path == ("lrsearch's compiled epoch loop (in-memory arrays), one trial at a time, as --lanes 1 asks; "
                    "build_model() returns a compiled model, whose compile() lrsearch replaces by its own (the "
                    "settings' loss and metrics, each trial's optimizer): return it uncompiled")


def test_a_keras_error_reads_as_one_plain_line():
    import keras

    def misshapen():
        return keras.Sequential([keras.Input((2,)), keras.layers.Reshape((5,))])

    with pytest.raises(StudyFileError) as raised:
        preflight_path(misshapen, 1)
    message = str(raised.value)
    assert "build_model() raised ValueError: Exception encountered when calling Reshape.call(). The total size" \
        in message and "\x1b" not in message and "\n" not in message, repr(message)


def test_a_validation_split_the_model_cannot_take_is_refused_before_any_trial():
    import numpy as np

    from lrsearch.training import TrialRunner, preflight

    def data_():
        (x, y), (x_val, y_val) = blobs()
        return (x, y), (np.concatenate([x_val, x_val[:, :1]], axis=1), y_val)  # a feature more than training's

    runner = TrialRunner(define_study("misfit", data=data_, build_model=lambda: mlp(), settings=SETTINGS))
    with pytest.raises(StudyFileError) as r:
        preflight(runner, 1, 1)
    assert ("evaluating one batch of the validation data failed (batch x (20, 3), y (20, 3); model input (None, 2); "
            "loss 'categorical_crossentropy', metrics ['accuracy']): ValueError") in str(r.value), r.value
    assert str(r.value).endswith("but received input with shape (20, 3)"), r.value  # Keras' argument list cut
