"""Export: the best blobs trial retrained from the file alone in a fresh process reaches the
study's value; every schedule round-trips through load_config to the same Keras objects;
Keras alone, in a process where lrsearch is not importable, reads the file's optimizer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from lrsearch.lr import ConfigError, LRConfig  # noqa: E402
from lrsearch.export import ExportedConfig, load_config  # noqa: E402
from lrsearch.export import write  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
BLOBS = ROOT / "studies" / "blobs.py"
EPOCHS = 12


@pytest.fixture(scope="module")
def blobs_journal(tmp_path_factory):
    """A real search on the seed's blobs problem: 8 trials of 12 epochs in a journal file."""
    from lrsearch.storage import open_storage
    from lrsearch.study import load_study
    from lrsearch.training import TrialRunner, make_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = str(tmp_path_factory.mktemp("blobs") / "blobs.journal")
    study = optuna.create_study(direction="maximize", study_name="blobs", storage=open_storage(path),
                                sampler=optuna.samplers.TPESampler(seed=1), pruner=make_pruner("hyperband", EPOCHS))
    study.optimize(TrialRunner(load_study(BLOBS), epochs=EPOCHS), n_trials=8)
    return path, study


FRESH_PROCESS = textwrap.dedent("""
    import importlib.util, json, sys
    sys.modules["optuna"] = None  # the other project has no Optuna
    import keras
    import lrsearch
    from lrsearch.training import _epochs as epoch_loop

    cfg = lrsearch.load_config(sys.argv[1])
    spec = importlib.util.spec_from_file_location("blobs_problem", sys.argv[2])
    problem = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(problem)
    train, val = problem.data()
    results = {}
    for loop in ("lrsearch", "model.fit"):
        keras.utils.set_random_seed(cfg.seed)
        model = problem.build_model(None)
        model.compile(optimizer=cfg.optimizer(), loss="categorical_crossentropy", metrics=["accuracy"])
        if loop == "model.fit":
            history = model.fit(*train, validation_data=val, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                callbacks=cfg.callbacks(), verbose=0)
        else:
            history = epoch_loop.fit(model, train, val, epochs=cfg.epochs, batch_size=cfg.batch_size,
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
    assert abs(reached["lrsearch"] - study.best_value) <= 0.01
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
        assert "was pruned; only complete trials have a value" in capsys.readouterr().err
    assert main(["export", str(BLOBS), "--storage", path, "--trial", "999"]) == 2
    assert "has no trial 999" in capsys.readouterr().err
    assert main(["export", str(BLOBS), "--storage", path, "--study-name", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


def test_export_study_is_the_command_as_a_function(blobs_journal, tmp_path, monkeypatch, capsys):
    import lrsearch

    path, study = blobs_journal
    complete = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: -t.value)
    monkeypatch.chdir(tmp_path)
    configs = lrsearch.export_study(BLOBS, storage=path, top=2, fmt="yaml", verbose=False)
    assert capsys.readouterr().out == ""
    assert [c.trial_number for c in configs] == [t.number for t in complete[:2]]
    assert [load_config(tmp_path / "blobs-best.yaml", rank=r).trial_number for r in (1, 2)] == [
        c.trial_number for c in configs]
    number = complete[-1].number
    (one,) = lrsearch.export_study(str(BLOBS), storage=path, trial=number, output=tmp_path / "one.json")
    assert one.trial_number == number and load_config(tmp_path / "one.json").trial_number == number
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"trial {number}: val_accuracy=") and printed[1].startswith("Wrote ")
    with pytest.raises(ConfigError, match="give the study file"):  # not made by `lrsearch run`
        lrsearch.export_study(storage=path, study_name="blobs")
    with pytest.raises(lrsearch.UsageError, match="no study 'nope'"):
        lrsearch.export_study(BLOBS, storage=path, study_name="nope")
    with pytest.raises(ConfigError, match="trial must be a whole number >= 0, but got '1'"):
        lrsearch.export_study(BLOBS, storage=path, trial="1")


def test_one_cycle_trial_without_recorded_steps_counts_them_from_the_study_file():
    """A trial that does not record its batches per epoch (not made by lrsearch's runner)."""
    from lrsearch.export import exported_configs
    from lrsearch.study import load_study

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
    from lrsearch.lr import OneCycle

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


#: Run in a process where lrsearch is not importable: read the file's optimizer with Keras
#: alone and print what it built.
KERAS_ALONE = textwrap.dedent("""
    import json, sys
    {setup}
    import keras
    section = json.load(open(sys.argv[1]))["keras"]
    optimizer = keras.optimizers.deserialize(section["optimizer"])
    lr = optimizer._learning_rate
    rate = lr if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule) else None
    print(type(optimizer).__name__, type(rate).__name__, float(rate(0) if rate else optimizer.learning_rate),
          float(rate(10)) if rate else "-")
""")
BLOCK_LRSEARCH = ("sys.modules['lrsearch'] = None  # as if not installed\ntry:\n    import lrsearch\n"
                  "except ImportError:\n    pass\nelse:\n    raise SystemExit('lrsearch importable')")


def keras_alone(path: Path, cwd: Path, setup: str = BLOCK_LRSEARCH, env=None) -> subprocess.CompletedProcess:
    # -I: neither PYTHONPATH, the user's site nor the working folder is on the path.
    flags = ["-I"] if env is None else []
    return subprocess.run([sys.executable, *flags, "-c", KERAS_ALONE.format(setup=setup), str(path)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", ["sgd_constant", "adam_time_decay"])
def test_keras_alone_reads_the_exported_optimizer(name, tmp_path):
    path = write([exported(CONFIGS[name])], tmp_path / "c.json")
    done = keras_alone(path, tmp_path)
    assert done.returncode == 0, done.stderr
    kind, schedule, first, later = done.stdout.split()
    if name == "sgd_constant":
        assert (kind, schedule, later) == ("SGD", "NoneType", "-") and float(first) == pytest.approx(0.01)
    else:  # lr0 / (1 + decay * step)
        assert (kind, schedule) == ("Adam", "InverseTimeDecay")
        assert (float(first), float(later)) == pytest.approx((1e-3, 1e-3 / (1 + 1e-4 * 10)))
    assert "from lrsearch.lr import OneCycle" not in json.loads(path.read_text())["keras"]["note"]


def test_one_cycle_reads_with_keras_once_lrsearch_schedules_is_imported(tmp_path):
    path = write([exported(CONFIGS["adagrad_one_cycle"])], tmp_path / "c.json")
    section = json.loads(path.read_text())["keras"]
    assert section["optimizer"]["config"]["learning_rate"]["registered_name"] == "lrsearch>OneCycle"
    assert "from lrsearch.lr import OneCycle" in section["note"]
    assert keras_alone(path, tmp_path).returncode != 0  # lrsearch's own schedule needs lrsearch
    done = keras_alone(path, tmp_path, setup="from lrsearch.lr import OneCycle",
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    kind, schedule, first, later = done.stdout.split()
    assert (kind, schedule) == ("Adagrad", "OneCycle")
    assert float(first) == pytest.approx(0.03) and float(later) > float(first)  # rising towards the 0.3 peak


def test_a_yaml_export_holds_the_same_keras_optimizer(tmp_path):
    yaml = pytest.importorskip("yaml")
    config = exported(CONFIGS["adam_time_decay"])
    as_json = json.loads(write([config], tmp_path / "c.json").read_text())["keras"]["optimizer"]
    as_yaml = yaml.safe_load(write([config], tmp_path / "c.yaml").read_text())["keras"]["optimizer"]
    assert as_yaml["class_name"] == as_json["class_name"] == "Adam"
    assert as_yaml["config"]["learning_rate"] == as_json["config"]["learning_rate"]


@pytest.mark.parametrize("name, top, fmt", [("one.json", None, None), ("one.yml", None, None), ("top.json", 3, None),
                                            ("top.yaml", 3, None), ("no_suffix", None, "yaml"), ("top", 3, None)])
def test_the_printed_way_to_read_the_file_works_for_each_shape(blobs_journal, tmp_path, capsys, name, top, fmt):
    """What `lrsearch export` prints, run as printed: load_config gives the best, and Keras
    reads the best's optimizer, from one configuration or a --top K list, JSON or YAML."""
    import keras
    import yaml

    import lrsearch

    path, _ = blobs_journal
    configs = lrsearch.export_study(BLOBS, storage=path, top=top, output=tmp_path / name, fmt=fmt)
    (wrote,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Wrote ")]
    (with_lrsearch,) = re.findall(r"cfg = (lrsearch\.load_config\([^)]*\))", wrote)
    (with_keras,) = re.findall(r"(keras\.optimizers\.deserialize\(.*\['optimizer'\]\))$", wrote)
    namespace = {"lrsearch": lrsearch, "keras": keras, "json": json, "yaml": yaml}
    assert eval(with_lrsearch, namespace) == configs[0]
    optimizer = eval(with_keras, namespace)
    assert type(optimizer).__name__.lower() == configs[0].lr_config.optimizer
    assert (f"({top} configurations, best first)" in wrote) is (top is not None)


def test_an_output_that_cannot_be_written_or_contradicts_its_format_is_refused_naming_it(blobs_journal, tmp_path):
    import lrsearch
    from lrsearch.errors import WriteError

    path, _ = blobs_journal
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "file").write_text("")
    for output, cause in (("folder.json", "a folder is in the way of the file"),
                          ("file/best.json", "a file is in the way of a folder on the path")):
        with pytest.raises(WriteError, match=f"^{cause} writing {re.escape(str(tmp_path / output))}$"):
            lrsearch.export_study(BLOBS, storage=path, output=tmp_path / output, verbose=False)
    with pytest.raises(ConfigError, match="names a JSON file, but the format asked for is yaml: name it .yaml"):
        lrsearch.export_study(BLOBS, storage=path, output=tmp_path / "best.json", fmt="yaml", verbose=False)
    assert sorted(os.listdir(tmp_path)) == ["file", "folder.json"]


def test_output_dash_writes_the_document_to_standard_output_and_no_file(blobs_journal, tmp_path, monkeypatch,
                                                                        capsys):
    import yaml

    from lrsearch.cli import main

    path, study = blobs_journal
    best = max((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["export", str(BLOBS), "--storage", path, "-o", "-"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["study"]["trial"] == best.number  # the document alone: it parses whole
    assert printed.err.startswith(f"trial {best.number}: val_accuracy=") and "Wrote" not in printed.err
    assert main(["export", str(BLOBS), "--storage", path, "-o", "-", "--format", "yaml", "--top", "2"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["configs"][0]["study"]["trial"] == best.number
    assert os.listdir(tmp_path) == []


def test_a_file_without_a_keras_optimizer_is_read_through_load_config(tmp_path):
    from lrsearch.export._export import reading_hint

    config = exported(CONFIGS["adagrad_one_cycle"], steps_per_epoch=None)
    hint = reading_hint(write([config], tmp_path / "c.json"), [config], many=False)
    assert "keras.optimizers.deserialize" not in hint and "cfg.optimizer(steps_per_epoch=...)" in hint
