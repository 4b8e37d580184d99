"""The learning-rate configuration and the configuration file's reader: the catalogue, LRConfig
and Space agree on the parameters; bad configurations and broken, truncated, foreign or
edited files get errors that name the problem; loading imports neither Optuna nor Keras."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from lrsearch.export import ExportedConfig, load_config
from lrsearch.lr import OPTIMIZERS, PARAMS, SCHEDULES, ConfigError, LRConfig, Space, describe

COMMON = dict(epochs=50, batch_size=32, seed=7, steps_per_epoch=16, objective="val_accuracy", direction="maximize",
              value=0.83, study_name="blobs", trial_number=3, lrsearch_version="0.1.0",
              exported_at="2026-01-01T00:00:00+00:00")
PLATEAU = LRConfig("rmsprop", 1e-3, "plateau", patience=10, factor=0.1)


def test_the_catalogue_lrconfig_and_space_name_the_same_parameters():
    assert {f.name for f in dataclasses.fields(LRConfig)} == {"optimizer", "schedule"} | {
        p.field for p in PARAMS.values()}
    assert {f.name for f in dataclasses.fields(Space)} == {"optimizers", "schedules"} | set(PARAMS)
    assert Space().optimizers == tuple(OPTIMIZERS) and Space().schedules == tuple(SCHEDULES)
    assert SCHEDULES["one_cycle"].lr.name == "peak_lr" and SCHEDULES["one_cycle"].lr.field == "lr"


@pytest.mark.parametrize("fields, message", [
    ({"optimizer": "adam", "lr": 0.01, "momentum": 0.9}, "optimizer 'adam' takes no ['momentum']"),
    ({"optimizer": "sgd", "lr": 0.01, "decay": 0.1}, "schedule 'constant' takes no ['decay']"),
    ({"optimizer": "sgd", "lr": 0.01, "schedule": "plateau", "patience": 3}, "needs 'factor'"),
    ({"optimizer": "sgd", "lr": -1.0}, "'lr' must lie in (0, 10]"),
    ({"optimizer": "sgd", "lr": 0.1, "schedule": "warp"}, "'schedule' must be one of"),
    ({"optimizer": "sgd", "lr": 0.1, "nesterov": 1}, "'nesterov' must be true or false"),
    ({"optimizer": "sgd", "lr": 0.1, "schedule": "plateau", "patience": 2.5, "factor": 0.1}, "whole number"),
    ({"optimizer": "sgd", "lr": 0.1, "schedule": "one_cycle", "div": 0.5}, "'div' must lie in [1, inf]"),
])
def test_invalid_configurations_are_refused(fields, message):
    with pytest.raises(ConfigError) as info:
        LRConfig(**fields)
    assert message in str(info.value)


def test_config_round_trips_through_a_dict():
    config = LRConfig("sgd", 0.05, "one_cycle", momentum=0.9, nesterov=True, div=10.0)
    assert LRConfig.from_dict(config.to_dict()) == config


def test_describe_names_one_cycles_lr_as_its_peak():
    assert describe({"optimizer": "sgd", "lr": 0.1, "schedule": "one_cycle", "momentum": 0.9, "div": 10.0}) == (
        "sgd peak_lr=0.1 momentum=0.90 one_cycle div=10")
    assert describe(PLATEAU.to_dict()) == "rmsprop lr=0.001 plateau patience=10 factor=0.1"


@pytest.fixture(scope="module")
def good_document() -> dict:
    from lrsearch.export import to_document

    return to_document(ExportedConfig(lr_config=PLATEAU, **COMMON))


def edited(document: dict, **changes) -> str:
    document = json.loads(json.dumps(document))
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
    "truncated": (lambda d: json.dumps(d, indent=2)[:180], "not valid JSON (the file looks truncated)"),
    "not_json": (lambda d: "optimizer = adam\n", "not valid JSON: Expecting value at line 1 column 1"),
    "empty": (lambda d: "", "the file is empty"),
    "foreign_package_json": (lambda d: '{"name": "left-pad", "version": "1.3.0"}',
                             "has no 'schema' key (its keys: name, version)"),
    "foreign_list": (lambda d: "[1, 2, 3]", "the top level is a list"),
    "other_schema": (lambda d: '{"schema": "keras.optimizer"}',
                     "schema is 'keras.optimizer', expected 'lrsearch.config'"),
    "newer_schema": (lambda d: edited(d, schema_version=4), "schema_version 4 was written by a newer lrsearch"),
    "confirmation_lengths": (lambda d: edited(d, confirmation={"seeds": [1, 2], "values": [0.5], "mean": 0.5,
                                                               "std": None, "diverged": 0}),
                             "'seeds' and 'values', lists of one length"),
    "confirmation_edited_mean": (lambda d: edited(d, confirmation={"seeds": [1, 2], "values": [0.5, 0.7],
                                                                   "mean": 0.9, "std": 0.1414, "diverged": 0}),
                                 "confirmation.mean is 0.9 but its values give 0.6"),
    "unknown_optimizer": (lambda d: edited(d, lr_config__optimizer="adamw"), "'optimizer' must be one of"),
    "negative_lr": (lambda d: edited(d, lr_config__lr=-0.1), "'lr' must lie in (0, 10]"),
    "factor_one": (lambda d: edited(d, lr_config__factor=1.0), "'factor' must lie in (0, 1)"),
    "missing_patience": (lambda d: edited(d, lr_config__patience=KeyError), "schedule 'plateau' needs 'patience'"),
    "zero_epochs": (lambda d: edited(d, training__epochs=0), "training.epochs must be a whole number >= 1"),
    "float_batch": (lambda d: edited(d, training__batch_size=32.5), "training.batch_size must be a whole number"),
    "bad_direction": (lambda d: edited(d, study__direction="up"), "study.direction must be"),
    "nan_value": (lambda d: edited(d, study__value=float("nan")), "holds NaN, which is not a number a configuration holds"),
    "unknown_key": (lambda d: edited(d, callbacks_code="import os"), "unknown key(s) ['callbacks_code']"),
    "missing_training": (lambda d: edited(d, training=KeyError), "the key 'training' is missing"),
    "keras_not_a_mapping": (lambda d: edited(d, keras=[1]), "'keras' must be a mapping"),
    "keras_unknown_key": (lambda d: edited(d, keras__code="x"), "keras has unknown key(s) ['code']"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_gets_an_error_naming_the_problem(name, good_document, tmp_path):
    make, message = BAD_FILES[name]
    path = tmp_path / "config.json"
    path.write_text(make(good_document))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_an_edited_keras_optimizer_is_caught_when_built(good_document, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(edited(good_document, keras__optimizer__config__rho=0.5))
    loaded = load_config(path)
    with pytest.raises(ConfigError, match="keras.optimizer.config.rho disagrees with lr_config"):
        loaded.optimizer()
    path.write_text(edited(good_document, keras=KeyError))
    assert type(load_config(path).optimizer()).__name__ == "RMSprop"


def test_a_version_2_file_reads_and_its_old_keras_description_is_not_read(good_document, tmp_path):
    old = {"optimizer": {"class_name": "RMSprop", "learning_rate": 0.001}, "schedule": None, "callbacks": []}
    path = tmp_path / "config.json"
    path.write_text(edited(good_document, schema_version=2, keras=old))
    loaded = load_config(path)
    assert loaded.lr_config == PLATEAU and loaded.keras_optimizer is None
    assert type(loaded.optimizer()).__name__ == "RMSprop"


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


def test_import_and_load_config_without_optuna_or_keras(good_document, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(good_document))
    code = ("import sys; sys.modules['optuna'] = None; import lrsearch; "
            f"cfg = lrsearch.load_config({str(path)!r}); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'Keras imported'; "
            "print(cfg.lr_config.optimizer, cfg.epochs, cfg.keras_optimizer['class_name'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["rmsprop", "50", "RMSprop"]
