"""`load_config` on files that are not an export: whatever the file holds, a ConfigError
naming the file and what is wrong, never another exception, and quickly."""

from __future__ import annotations

import copy
import json
import time

import pytest
import yaml

from lrsearch.export import load_config
from lrsearch.lr import ConfigError

#: An export as `lrsearch export` writes it (its `keras` section shortened: load_config
#: keeps it for `optimizer()`, which compares it).
EXPORT = {
    "schema": "lrsearch.config", "schema_version": 3, "lrsearch_version": "0.1.0",
    "exported_at": "2026-01-01T00:00:00+00:00",
    "study": {"name": "blobs", "trial": 3, "objective": "val_accuracy", "direction": "maximize", "value": 0.83},
    "training": {"epochs": 50, "batch_size": 32, "seed": 7, "steps_per_epoch": 16},
    "lr_config": {"optimizer": "sgd", "lr": 0.01, "schedule": "plateau", "momentum": 0.9, "nesterov": True,
                  "patience": 10, "factor": 0.1},
    "keras": {"optimizer": {"module": "keras.optimizers", "class_name": "SGD",
                            "config": {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True}},
              "callbacks": [{"class_name": "ReduceLROnPlateau", "config": {"patience": 10}}], "note": "n"},
    "model_params": {"units": 50},
    "confirmation": {"seeds": [1, 2, 3], "values": [0.8, 0.9, None], "mean": 0.85, "std": 0.0707106781186547,
                     "diverged": 1},
}

#: file name -> (its text, what the message says)
MALFORMED = {
    "deep.json": ("[" * 100_000 + "]" * 100_000, "nests deeper than Python reads"),
    "deep.yaml": ("[" * 1000 + "]" * 1000, "nests deeper than"),
    "deep_mapping.yaml": ("".join(" " * i + "a:\n" for i in range(1000)), "nests deeper than"),
    "nested.json": ("[" * 200 + "]" * 200, "nests deeper than 64 levels"),
    "long_int.json": ('{"schema": ' + "9" * 5_000_000 + "}", "a whole number of 5000000 digits"),
    "long_int.yaml": ("schema: " + "9" * 100_000, "a whole number of 100000 digits"),
    "large_int.json": ('{"training": {"epochs": 99999999999999999999999}}', "training.epochs is a whole number of 23"),
    "nan.json": ('{"study": {"value": NaN}}', "holds NaN"),
    "infinity.json": ('{"a": [1, -Infinity]}', "holds -Infinity"),
    "overflow.json": ('{"a": {"b": 1e400}}', "a.b is inf, not a finite number"),
    "nan.yaml": ("study:\n  value: .nan\n", "study.value is nan"),
    "list.json": ("[1, 2]", "the top level is a list, not a mapping"),
    "scalar.yaml": ("just words", "the top level is a str"),
    "twice.json": ('{"schema": "lrsearch.config", "schema": "x"}', "the key 'schema' appears twice"),
    "twice.yaml": ("a: 1\nb: 2\na: 3\n", "the key 'a' appears twice"),
    "int_key.yaml": ("schema: lrsearch.config\n1: one\n", "has the key 1, which is not a string"),
    "list_key.yaml": ("? [a, b]\n: c\n", "has a list or a mapping as a key"),
    "date.yaml": ("exported_at: 2026-01-01\n", "exported_at is a YAML date"),
    "bad_date.yaml": ("exported_at: 2026-13-45\n", "not valid YAML: month must be in 1..12"),
    "set.yaml": ("a: !!set {x, y}\n", "a is a YAML set"),
    "binary.yaml": ("a: !!binary aGVsbG8=\n", "a is a YAML bytes"),
    "python.yaml": ("a: !!python/object/apply:os.system ['echo hi']\n", "could not determine a constructor"),
    "recursive.yaml": ("a: &a [*a]\n", "recursive node"),
    "aliases.yaml": ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)),
        "holds more than 1,000,000 values"),
    "tab.yaml": ("a:\n\tb: 1\n", "not valid YAML: found character '\\t' that cannot start any token at line 2"),
    "truncated.json": (json.dumps(EXPORT)[:-40], "the file looks truncated"),
    "empty.json": ("  \n", "the file is empty"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_file_is_a_config_error_naming_it(tmp_path, name):
    text, message = MALFORMED[name]
    path = tmp_path / name
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value), raised.value
    assert "\n" not in str(raised.value) and time.monotonic() - started < 5


def test_what_is_not_a_text_file_of_sensible_size_is_named_for_what_it_is(tmp_path):
    (tmp_path / "bytes.json").write_bytes(bytes(range(256)))
    (tmp_path / "huge.json").write_bytes(b" " * (17 * 2**20))
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "bom.json").write_text("\ufeff" + json.dumps(EXPORT), encoding="utf-8")  # as Windows editors save
    for name, message in (("bytes.json", "is not a text file (byte 128 is not UTF-8)"),
                          ("huge.json", "is larger than 16 MB"), ("folder.json", "is a directory"),
                          ("absent.json", "no such file")):
        with pytest.raises(ConfigError, match=f"^{tmp_path / name}: {message}".replace("(", r"\(").replace(")", r"\)")):
            load_config(tmp_path / name)
    assert load_config(tmp_path / "bom.json").trial_number == 3


def places(document, where=()):
    """Every key path of `document` (mappings and lists), its own () first."""
    yield where
    if isinstance(document, dict):
        for key, value in document.items():
            yield from places(value, (*where, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from places(value, (*where, index))


def replaced(document, where, value):
    document = copy.deepcopy(document)
    *parents, last = where
    owner = document
    for key in parents:
        owner = owner[key]
    if value is DELETE:
        del owner[last]
    else:
        owner[last] = value
    return document


DELETE = object()
#: What each value of the export is replaced by, in turn.
ODD_VALUES = [DELETE, None, True, -1, 0, 2**70, 3.5, float("inf"), "", "x", [], {}, [[[]]], {"schema": {}}, [None]]


def test_any_value_of_an_export_replaced_by_an_odd_one_loads_or_is_a_config_error(tmp_path):
    assert load_config(write(tmp_path / "good.json", EXPORT)).trial_number == 3
    refused = []
    for where in list(places(EXPORT))[1:]:
        for value in ODD_VALUES:
            path = write(tmp_path / "odd.json", replaced(EXPORT, where, value))
            try:
                load_config(path)
            except ConfigError as exc:
                assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), exc
                refused.append(where)
    assert {("training", "epochs"), ("confirmation", "diverged"), ("confirmation", "seeds", 0)} <= set(refused)


def write(path, document):
    if path.suffix == ".yaml":
        path.write_text(yaml.safe_dump(document))
    else:
        path.write_text(json.dumps(document))
    return path
