"""Export and load_config: the best blobs trial retrained from the file alone in a fresh
process reaches the study's value; every schedule round-trips to the same Keras objects;
broken, truncated and foreign files get errors that name the problem."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from lrsearch.config import ConfigError, LRConfig  # noqa: E402
from lrsearch.export import ExportedConfig, load_config, write  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BLOBS = ROOT / "studies" / "blobs.py"
EPOCHS = 12


@pytest.fixture(scope="module")
def blobs_journal(tmp_path_factory):
    """A real search on the seed's blobs problem: 8 trials of 12 epochs in a journal file."""
    from lrsearch.pruning import make_pruner
    from lrsearch.runner import TrialRunner
    from lrsearch.storage import open_storage
    from lrsearch.studyfile import load_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = str(tmp_path_factory.mktemp("blobs") / "blobs.journal")
    study = optuna.create_study(direction="maximize", study_name="blobs", storage=open_storage(path),
                                sampler=optuna.samplers.TPESampler(seed=1), pruner=make_pruner(EPOCHS))
    study.optimize(TrialRunner(load_study(BLOBS), epochs=EPOCHS), n_trials=8)
    return path, study


FRESH_PROCESS = textwrap.dedent("""
    import importlib.util, json, sys
    sys.modules["optuna"] = None  # the other project has no Optuna
    import keras
    import lrsearch
    from lrsearch import fastfit

    cfg = lrsearch.load_config(sys.argv[1])
    spec = importlib.util.spec_from_file_location("blobs_problem", sys.argv[2])
    problem = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(problem)
    train, val = problem.data()
    results = {}
    for loop in ("lrsearch.fastfit", "model.fit"):
        keras.utils.set_random_seed(cfg.seed)
        model = problem.build_model(None)
        model.compile(optimizer=cfg.optimizer(), loss="categorical_crossentropy", metrics=["accuracy"])
        if loop == "model.fit":
            history = model.fit(*train, validation_data=val, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                callbacks=cfg.callbacks(), verbose=0)
        else:
            history = fastfit.fit(model, train, val, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                  callbacks=cfg.callbacks(), seed=cfg.seed)
        results[loop] = history.history[cfg.objective][-1]
    print(json.dumps(results))
""")


def test_best_trial_retrained_in_a_fresh_process_reaches_the_study_value(blobs_journal, tmp_path):
    """Only the exported file, the study's data() and build_model(): no Optuna, no storage.

    lrsearch's fast loop with the file's seed replays the trial (the bar: within 0.01);
    plain model.fit shuffles differently, so it gets a looser 0.03.
    """
    from lrsearch.cli import main

    path, study = blobs_journal
    out = tmp_path / "best.json"
    assert main(["export", str(BLOBS), "--storage", path, "-o", str(out)]) == 0
    cfg = load_config(out)
    assert (cfg.trial_number, cfg.value, cfg.epochs) == (study.best_trial.number, study.best_value, EPOCHS)
    assert cfg.seed == 1 + cfg.trial_number  # blobs' settings.seed + trial number, as the runner seeds it
    assert cfg.steps_per_epoch == 16  # ceil(500 rows / batch 32), as the runner recorded it
    script = tmp_path / "fresh.py"
    script.write_text(FRESH_PROCESS)
    done = subprocess.run([sys.executable, str(script), str(out), str(BLOBS)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    reached = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"study best {study.best_value:.4f}, fresh process: {reached}")
    assert abs(reached["lrsearch.fastfit"] - study.best_value) <= 0.01
    assert reached["model.fit"] >= study.best_value - 0.03


def test_top_k_and_trial_n(blobs_journal, tmp_path, capsys):
    from lrsearch.cli import main

    path, study = blobs_journal
    complete = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: -t.value)
    out = tmp_path / "top.yaml"
    capsys.readouterr()
    # Made without `lrsearch run`, the study does not record its batch size: the study file must say it.
    assert main(["export", "--storage", path, "--study-name", "blobs", "--top", "3", "-o", str(out)]) == 2
    assert "give the study file" in capsys.readouterr().err
    assert main(["export", str(BLOBS), "--storage", path, "--top", "3", "-o", str(out)]) == 0
    ranked = [load_config(out, rank=r) for r in (1, 2, 3)]
    assert [c.trial_number for c in ranked] == [t.number for t in complete[:3]]
    assert [c.lr_config.to_dict() for c in ranked] == [t.user_attrs["config"] for t in complete[:3]]
    with pytest.raises(ConfigError, match="rank must be between 1 and 3"):
        load_config(out, rank=4)

    number = complete[-1].number
    out = tmp_path / "one.json"
    assert main(["export", str(BLOBS), "--storage", path, "--trial", str(number), "-o", str(out)]) == 0
    assert load_config(out).trial_number == number

    capsys.readouterr()
    pruned = [t.number for t in study.trials if t.state.name == "PRUNED"]
    if pruned:
        assert main(["export", str(BLOBS), "--storage", path, "--trial", str(pruned[0])]) == 2
        assert "is pruned, not complete" in capsys.readouterr().err
    assert main(["export", str(BLOBS), "--storage", path, "--trial", "999"]) == 2
    assert "has no trial 999" in capsys.readouterr().err
    assert main(["export", str(BLOBS), "--storage", path, "--study-name", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


def test_one_cycle_trial_without_recorded_steps_counts_them_from_the_study_file():
    """A trial that does not record its batches per epoch (not made by lrsearch's runner)."""
    from lrsearch.export import exported_configs
    from lrsearch.studyfile import load_study

    study = optuna.create_study(direction="maximize", study_name="blobs")
    study.set_user_attr("objective", "val_accuracy")
    for key, value in {"epochs": 30, "batch_size": 32, "seed": 4}.items():
        study.set_user_attr(key, value)
    config = {"optimizer": "adam", "lr": 0.01, "schedule": "one_cycle", "div": 10.0}
    study.add_trial(optuna.trial.create_trial(value=0.8, user_attrs={"config": config}))
    with pytest.raises(ConfigError, match="give the study file"):
        exported_configs(study)
    (cfg,) = exported_configs(study, study_file=load_study(BLOBS))
    assert (cfg.steps_per_epoch, cfg.epochs, cfg.seed) == (16, 30, 4)  # ceil(500 rows / 32)


CONFIGS = {
    "sgd_constant": LRConfig("sgd", 0.01, momentum=0.9, nesterov=True),
    "adam_time_decay": LRConfig("adam", 1e-3, "time_decay", decay=1e-4),
    "rmsprop_plateau": LRConfig("rmsprop", 1e-3, "plateau", patience=10, factor=0.1),
    "adagrad_one_cycle": LRConfig("adagrad", 0.3, "one_cycle", div=10.0),
}


def exported(lr_config: LRConfig, steps_per_epoch=16) -> ExportedConfig:
    return ExportedConfig(lr_config=lr_config, epochs=50, batch_size=32, seed=7, steps_per_epoch=steps_per_epoch,
                          objective="val_accuracy", direction="maximize", value=0.83, study_name="blobs",
                          trial_number=3, lrsearch_version="0.1.0", exported_at="2026-01-01T00:00:00+00:00")


@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_round_trip_builds_the_keras_objects(name, fmt, tmp_path):
    keras = pytest.importorskip("keras")
    from lrsearch.schedules import OneCycle

    original = exported(CONFIGS[name])
    loaded = load_config(write([original], tmp_path / f"c.{fmt}"))
    assert loaded == original
    optimizer, callbacks = loaded.optimizer(), loaded.callbacks()
    assert type(optimizer).__name__.lower() == CONFIGS[name].optimizer
    lr = optimizer._learning_rate  # the float or the schedule object given to the optimizer
    if name == "sgd_constant":
        assert (optimizer.momentum, optimizer.nesterov) == (0.9, True)
        assert float(optimizer.learning_rate) == pytest.approx(0.01)
    if name == "adam_time_decay":
        assert isinstance(lr, keras.optimizers.schedules.InverseTimeDecay)
        assert (lr.initial_learning_rate, lr.decay_rate, lr.decay_steps) == (1e-3, 1e-4, 1)
    if name == "adagrad_one_cycle":
        assert isinstance(lr, OneCycle) and lr.total_steps == 16 * 50 and lr.peak_lr == 0.3
        assert float(lr(0)) == pytest.approx(0.03)
        assert loaded.optimizer(steps_per_epoch=4)._learning_rate.total_steps == 200
    if name == "rmsprop_plateau":
        (plateau,) = callbacks
        assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau)
        assert (plateau.monitor, plateau.patience, plateau.factor, plateau.mode) == ("val_accuracy", 10, 0.1, "max")
    else:
        assert callbacks == []
    assert loaded.optimizer() is not optimizer  # fresh objects each call


def test_one_cycle_without_steps_asks_for_them(tmp_path):
    loaded = load_config(write([exported(CONFIGS["adagrad_one_cycle"], steps_per_epoch=None)], tmp_path / "c.json"))
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        loaded.optimizer()


def test_import_and_load_config_without_optuna_or_tensorflow(tmp_path):
    path = write([exported(CONFIGS["rmsprop_plateau"])], tmp_path / "c.json")
    code = ("import sys; sys.modules['optuna'] = None; import lrsearch; "
            f"cfg = lrsearch.load_config({str(path)!r}); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow imported'; "
            "print(cfg.lr_config.optimizer, cfg.epochs)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["rmsprop", "50"]


def good_document() -> dict:
    return exported(CONFIGS["rmsprop_plateau"]).to_dict()


def edited(**changes):
    document = good_document()
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = document
        for parent in parents:
            target = target[parent]
        if value is KeyError:
            del target[key]
        else:
            target[key] = value
    return json.dumps(document)


BAD_FILES = {
    "truncated": (json.dumps(good_document(), indent=2)[:180], "not valid JSON (the file looks truncated)"),
    "not_json": ("optimizer = adam\n", "not valid JSON: Expecting value at line 1 column 1"),
    "empty": ("", "the file is empty"),
    "foreign_package_json": ('{"name": "left-pad", "version": "1.3.0"}',
                             "has no 'schema' key (its keys: name, version)"),
    "foreign_list": ("[1, 2, 3]", "the top level is a list"),
    "other_schema": ('{"schema": "keras.optimizer"}', "schema is 'keras.optimizer', expected 'lrsearch.config'"),
    "newer_schema": (edited(schema_version=3), "schema_version 3 was written by a newer lrsearch"),
    "confirmation_lengths": (edited(confirmation={"seeds": [1, 2], "values": [0.5], "mean": 0.5, "std": None,
                                                  "diverged": 0}), "'seeds' and 'values', lists of one length"),
    "confirmation_edited_mean": (edited(confirmation={"seeds": [1, 2], "values": [0.5, 0.7], "mean": 0.9,
                                                      "std": 0.1414, "diverged": 0}),
                                 "confirmation.mean is 0.9 but its values give 0.6"),
    "confirmation_bool_value": (edited(confirmation={"seeds": [1], "values": [True], "mean": 1, "std": None,
                                                     "diverged": 0}), "confirmation.values must be numbers"),
    "unknown_optimizer": (edited(lr_config__optimizer="adamw"), "'optimizer' must be one of"),
    "negative_lr": (edited(lr_config__lr=-0.1), "'lr' must lie in (0.0, 10.0]"),
    "factor_one": (edited(lr_config__factor=1.0), "'factor' must lie in (0.0, 1.0)"),
    "missing_patience": (edited(lr_config__patience=KeyError), "schedule 'plateau' needs 'patience'"),
    "zero_epochs": (edited(training__epochs=0), "training.epochs must be a whole number >= 1"),
    "float_batch": (edited(training__batch_size=32.5), "training.batch_size must be a whole number"),
    "bad_direction": (edited(study__direction="up"), "study.direction must be"),
    "nan_value": (edited(study__value=float("nan")), "study.value must be a finite number"),
    "unknown_key": (edited(callbacks_code="import os"), "unknown key(s) ['callbacks_code']"),
    "missing_training": (edited(training=KeyError), "the key 'training' is missing"),
    "edited_description": (edited(keras__optimizer={"class_name": "RMSprop", "learning_rate": 0.5}),
                           "keras.optimizer is"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_gets_an_error_naming_the_problem(name, tmp_path):
    text, message = BAD_FILES[name]
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_yaml_tags_are_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.yaml"
    path.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    assert not marker.exists()


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.json")
