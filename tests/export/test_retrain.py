"""lrsearch retrain and lrsearch.retrain: a real tiny search, its pick trained again and
saved as a .keras model that loads and scores where lrsearch cannot be imported, --full-data,
and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from conftest import TINY, run_cli
from lrsearch import results
from lrsearch.storage import open_storage
from lrsearch.study import load_study

#: Loads a model where lrsearch is not importable: -I drops PYTHONPATH and the working
#: folder; the editable install's finder is removed before anything imports lrsearch.
WITHOUT_LRSEARCH = textwrap.dedent("""
    import json, sys
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    try:
        import lrsearch
    except ImportError:
        pass
    else:
        sys.exit("lrsearch is importable here")
    import keras, numpy as np
    model = keras.saving.load_model(sys.argv[1])
    val = np.load(sys.argv[2])
    print(json.dumps(model.evaluate(val["x"], val["y"], verbose=0, return_dict=True)))
""")


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A study file whose rates learn in 5 epochs, and a real run of 4 trials, confirmed."""
    folder = tmp_path_factory.mktemp("retrain")
    study_file = folder / "tiny.py"
    study_file.write_text(TINY.read_text() + "\nspace = lrsearch.Space(lr=(1e-2, 0.3), peak_lr=(1e-2, 0.3))\n")
    journal = str(folder / "tiny.journal")
    run = run_cli("run", str(study_file), "--storage", journal, "--n-trials", "4", "--workers", "1",
                  "--confirm", "2,2", "--no-report", cwd=folder)
    assert run.returncode == 0, run.stderr
    return study_file, journal


def load(journal: str, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(journal))


def test_retrain_saves_the_pick_which_loads_and_scores_without_lrsearch(searched, tmp_path):
    study_file, journal = searched
    study = load(journal)
    pick = results.rank(study.trials, "maximize", results.confirmations(study), "val_accuracy")[0]
    output = tmp_path / "out" / "model.keras"
    result = run_cli("retrain", str(study_file), "--storage", journal, "-o", str(output), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Retraining trial {pick.number} " in result.stdout and "fresh seeds" in result.stdout
    assert f"seed {3 + pick.number}, 5 epochs, on the training rows (100)" in result.stdout
    history = json.loads((tmp_path / "out" / "model.history.json").read_text())
    assert history["trial"] == pick.number and history["seed"] == 3 + pick.number and not history["full_data"]
    assert history["config"] == pick.user_attrs["config"] and len(history["logs"]["lr"]) == 5
    assert f"val_accuracy={history['value']:.4g} at the last epoch" in result.stdout
    assert "It loads with keras.saving.load_model, without lrsearch." in result.stdout
    assert history["custom_objects"] == []

    x_val, y_val = load_study(study_file).load_data()[1]
    np.savez(tmp_path / "val.npz", x=x_val, y=y_val)
    loaded = subprocess.run([sys.executable, "-I", "-c", WITHOUT_LRSEARCH, str(output), str(tmp_path / "val.npz")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin"})
    assert loaded.returncode == 0, loaded.stderr
    scores = json.loads(loaded.stdout.splitlines()[-1])
    assert scores["accuracy"] == pytest.approx(history["value"], abs=1e-6)  # the model trained, saved as it was
    assert scores["accuracy"] == pytest.approx(pick.value, abs=0.05)  # the trial replayed on its own seed


def test_full_data_trains_on_both_splits_says_so_and_reports_training_metrics_only(searched, tmp_path):
    study_file, journal = searched
    result = run_cli("retrain", str(study_file), "--storage", journal, "--full-data", "--epochs", "2", "--seed", "7",
                     "-o", str(tmp_path / "final.keras"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "seed 7, 2 epochs, on the training and validation rows (200)" in result.stdout
    assert "Full data: no rows are held out, so only training metrics are reported" in result.stdout
    assert "on the training rows (none are held out)" in result.stdout
    history = json.loads((tmp_path / "final.history.json").read_text())
    assert history["full_data"] and history["data"] == "the training and validation rows (200)"
    assert history["objective"] == "accuracy" and not any(key.startswith("val_") for key in history["logs"])
    assert len(history["logs"]["loss"]) == 2


def test_the_python_function_returns_the_model_and_its_history(searched):
    import keras

    import lrsearch

    study_file, journal = searched
    trial = next(t.number for t in load(journal).trials if t.state.name == "COMPLETE")
    model, history = lrsearch.retrain(study_file, storage=journal, trial=trial, epochs=1, verbose=False)
    assert "retrain" in lrsearch.__all__
    assert isinstance(model, keras.Model) and history["trial"] == trial and len(history["logs"]["lr"]) == 1


def test_refusals_say_why_without_a_traceback(searched, tmp_path, monkeypatch, capsys):
    """In-process: the command's own code path, without a Python start per case."""
    from lrsearch.cli import main

    monkeypatch.chdir(tmp_path)
    study_file, journal = searched
    study = load(journal)
    other = next((t.number for t in study.trials if t.state.name != "COMPLETE"), None)
    empty = str(tmp_path / "empty.journal")
    failed = optuna.create_study(study_name="tiny", storage=open_storage(empty))
    failed.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    edited = tmp_path / "tiny.py"
    edited.write_text(study_file.read_text().replace("batch_size=32", "batch_size=16"))
    out = str(tmp_path / "m.keras")
    cases = [
        (["--storage", empty], "has no complete trial yet, so there is nothing to retrain"),
        (["--storage", empty, "--trial", "0"], "trial 0 failed; retrain a complete trial"),
        (["--storage", journal, "--trial", "99"], "has no trial 99; it has 4 trials (0-3)"),
        (["--storage", journal, "-o", str(tmp_path / "m.h5")], "the output must be a .keras file"),
    ]
    if other is not None:
        cases.append((["--storage", journal, "--trial", str(other)], f"trial {other} is "))
    for args, message in cases:
        code, err = main(["retrain", str(study_file), "-o", out, *args]), capsys.readouterr().err
        assert code == 2 and message in err, (args, err)
        assert "Traceback" not in err
    code, err = main(["retrain", str(edited), "--storage", journal, "-o", out]), capsys.readouterr().err
    assert code == 2 and "batch_size 32 -> 16" in err, err
    assert not (tmp_path / "m.keras").exists()
    (tmp_path / "folder.keras").mkdir()
    code, printed = main(["retrain", str(study_file), "--storage", journal, "-o", "folder.keras"]), capsys.readouterr()
    assert code == 74 and printed.err.endswith("a folder is in the way of the file writing folder.keras\n"), printed.err
    assert printed.out == "" and "Traceback" not in printed.err  # refused before training


OWN_LOSS = Path(__file__).resolve().parent.parent / "gallery" / "own_loss.py"


def test_a_model_with_the_study_files_own_loss_and_metric_loads_as_the_output_says(tmp_path, capsys):
    """weighted_bce and margin are the study file's: plain keras.saving.load_model fails, so
    the output names them and both ways it gives load the model, which predicts as trained."""
    import importlib.util

    import keras

    import lrsearch

    journal = str(tmp_path / "own.journal")
    stored = optuna.create_study(study_name="own_loss", storage=open_storage(journal), direction="minimize")
    stored.add_trial(optuna.trial.create_trial(
        params={"lr": 0.01, "depth": 2}, value=0.5,
        distributions={"lr": FloatDistribution(1e-7, 1.0, log=True), "depth": IntDistribution(1, 2)},
        user_attrs={"config": {"optimizer": "adam", "lr": 0.01, "schedule": "constant"}, "epochs_run": 1,
                    "history": {"val_loss": [0.5], "lr": [0.01]}}))
    output = tmp_path / "model.keras"
    trained, history = lrsearch.retrain(OWN_LOSS, storage=journal, output=output, epochs=1)
    said = capsys.readouterr().out
    assert "without lrsearch" not in said and history["custom_objects"] == ["margin", "weighted_bce"]
    assert f"lrsearch.load_model({str(output)!r}, {str(OWN_LOSS)!r})" in said
    assert f"keras.saving.load_model({str(output)!r}, custom_objects={{'margin': margin, " \
           f"'weighted_bce': weighted_bce}})" in said

    x_val = load_study(OWN_LOSS).load_data()[1][0]
    expected = trained.predict(x_val, verbose=0)
    with pytest.raises(Exception, match="weighted_bce"):
        keras.saving.load_model(output)
    spec = importlib.util.spec_from_file_location("own_loss_study", OWN_LOSS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for loaded in (lrsearch.load_model(output, OWN_LOSS),
                   keras.saving.load_model(output, custom_objects={"margin": module.margin,
                                                                   "weighted_bce": module.weighted_bce})):
        np.testing.assert_allclose(loaded.predict(x_val, verbose=0), expected, rtol=1e-6)
        assert loaded.loss.__name__ == "weighted_bce"


def test_a_model_with_a_lambda_layer_loads_as_the_output_says_with_safe_mode_off(tmp_path, capsys):
    """A Lambda layer holds Python code, which Keras refuses to load unless told the file is
    trusted: the output says safe_mode=False, and both ways it gives load the model."""
    import keras

    import lrsearch

    def data():
        x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
        y = (x.sum(axis=1) > 0).astype("float32")
        return (x[:48], y[:48]), (x[48:], y[48:])

    def build_model(trial):
        inputs = keras.Input((3,))
        doubled = keras.layers.Lambda(lambda t: t * 2.0, name="doubled")(inputs)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(doubled))

    study = lrsearch.define_study("with_lambda", data=data, build_model=build_model, settings=lrsearch.Settings(
        loss="binary_crossentropy", metrics=["accuracy"], objective="val_accuracy", epochs=1))
    journal = stored_adam_trial(tmp_path, "with_lambda")
    output = tmp_path / "model.keras"
    trained, history = lrsearch.retrain(study, storage=journal, output=output, epochs=1)
    said = capsys.readouterr().out
    assert history["lambda_layers"] == ["doubled"] and history["custom_objects"] == []
    assert f"It loads with keras.saving.load_model({str(output)!r}, safe_mode=False), without lrsearch. Its " \
           f"Lambda layer (doubled) holds Python code" in said

    x_val = data()[1][0]
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.saving.load_model(output)
    for loaded in (keras.saving.load_model(output, safe_mode=False),
                   lrsearch.load_model(output, study, safe_mode=False)):
        np.testing.assert_allclose(loaded.predict(x_val, verbose=0), trained.predict(x_val, verbose=0), rtol=1e-6)


def _subclassed_net(name: str):
    """A keras.Model subclass named `name`, made here, inside a function."""
    import keras

    def init(self, **kwargs):
        keras.Model.__init__(self, **kwargs)
        self.hidden, self.out = keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1, activation="sigmoid")

    return type(name, (keras.Model,), {"__init__": init, "call": lambda self, x: self.out(self.hidden(x))})


TopNet = _subclassed_net("TopNet")  # of this module's top level, as a study file's own class


def test_a_subclassed_model_names_its_class_and_one_made_inside_build_model_is_said_not_to_load(tmp_path, capsys):
    """A model class of the study's own is one of its objects, as a layer is: the output names
    it and lrsearch.load_model finds it; one made inside build_model no loader can find by
    name, and the output says so instead of "it loads with keras.saving.load_model"."""
    import keras

    import lrsearch

    def data():
        x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
        y = (x.sum(axis=1) > 0).astype("float32")
        return (x[:48], y[:48]), (x[48:], y[48:])

    settings = lrsearch.Settings(loss="binary_crossentropy", metrics=["accuracy"], objective="val_accuracy", epochs=1)
    top = lrsearch.define_study("top_net", data=data, build_model=lambda trial: TopNet(), settings=settings)
    inner = lrsearch.define_study("inner_net", data=data, build_model=lambda trial: _subclassed_net("InnerNet")(),
                                  settings=settings)
    said = {}
    for study in (top, inner):
        output = tmp_path / f"{study.name}.keras"
        lrsearch.retrain(study, storage=stored_adam_trial(tmp_path, study.name), output=output, epochs=1)
        said[study.name] = capsys.readouterr().out
        history = json.loads((tmp_path / f"{study.name}.history.json").read_text())
        assert (history["custom_objects"], history["unfound_objects"]) == (
            (["TopNet"], []) if study is top else ([], ["InnerNet"])), history
    assert f"It needs the study's own TopNet: load it with lrsearch.load_model({str(tmp_path / 'top_net.keras')!r}, " \
           f"study)" in said["top_net"]
    assert type(lrsearch.load_model(tmp_path / "top_net.keras", top)).__name__ == "TopNet"
    assert "It does not load as saved. It also names InnerNet, which the study does not define at its top level" \
        in said["inner_net"] and "It loads with" not in said["inner_net"]
    with pytest.raises(TypeError, match="InnerNet"):
        keras.saving.load_model(tmp_path / "inner_net.keras")


def test_a_mixed_float16_model_loads_with_its_loss_scaled_optimizer_as_the_output_says(tmp_path, capsys):
    """Keras wraps a mixed_float16 model's optimizer for loss scaling in compile, from the
    global policy, which a fresh process has at float32: loaded there, the model gets a plain
    optimizer and drops the saved one's variables. The output says to set the policy first;
    lrsearch.load_model does, and gives the caller's policy back."""
    import keras

    import lrsearch

    def data():
        x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
        y = (x.sum(axis=1) > 0).astype("float32")
        return (x[:48], y[:48]), (x[48:], y[48:])

    def build_model(trial):
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                                 keras.layers.Dense(1, activation="sigmoid", dtype="float32")])

    study = lrsearch.define_study("mixed", data=data, build_model=build_model, settings=lrsearch.Settings(
        loss="binary_crossentropy", metrics=["accuracy"], objective="val_accuracy", epochs=1))
    journal = stored_adam_trial(tmp_path, "mixed")
    output = tmp_path / "model.keras"
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        trained, history = lrsearch.retrain(study, storage=journal, output=output, epochs=1)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # as a fresh process loads it
    assert type(trained.optimizer).__name__ == "LossScaleOptimizer" and history["load_policy"] == "mixed_float16"
    assert "It loads with keras.saving.load_model, without lrsearch. Keras gives back its loss-scaled optimizer " \
           "only to a model loaded under its dtype policy: call keras.mixed_precision.set_global_policy(" \
           "'mixed_float16') before keras.saving.load_model;" in capsys.readouterr().out

    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        assert type(keras.saving.load_model(output).optimizer).__name__ == "Adam"
    loaded = lrsearch.load_model(output, study)
    assert type(loaded.optimizer).__name__ == "LossScaleOptimizer"
    assert keras.mixed_precision.global_policy().name == "float32"
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        assert type(keras.saving.load_model(output).optimizer).__name__ == "LossScaleOptimizer"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x_val = data()[1][0]
    np.testing.assert_allclose(loaded.predict(x_val, verbose=0), trained.predict(x_val, verbose=0), rtol=1e-3)


def test_full_data_on_datasets_is_refused_for_what_it_is(tmp_path, capsys):
    from lrsearch.cli import main

    gallery = Path(__file__).resolve().parent.parent / "gallery" / "cnn_tfdata.py"
    journal = stored_adam_trial(tmp_path, "cnn_tfdata")
    code = main(["retrain", str(gallery), "--storage", journal, "--full-data", "-o", str(tmp_path / "m.keras")])
    err = capsys.readouterr().err
    assert code == 2 and ("--full-data needs in-memory arrays, which it joins, but data() returns a tf.data.Dataset "
                          "for training; retrain without it.") in err, err
    assert "sample weights" not in err and "Traceback" not in err and not (tmp_path / "m.keras").exists()


def stored_adam_trial(folder: Path, name: str) -> str:
    """A journal in `folder` whose study `name` holds one complete trial, Adam at lr 0.01,
    of val_accuracy 0.5, as a search records it; the journal's path."""
    journal = str(folder / f"{name}.journal")
    stored = optuna.create_study(study_name=name, storage=open_storage(journal), direction="maximize")
    stored.add_trial(optuna.trial.create_trial(
        params={"lr": 0.01}, value=0.5, distributions={"lr": FloatDistribution(1e-3, 0.1, log=True)},
        user_attrs={"config": {"optimizer": "adam", "lr": 0.01, "schedule": "constant"}, "epochs_run": 1,
                    "history": {"val_accuracy": [0.5], "lr": [0.01]}}))
    return journal
