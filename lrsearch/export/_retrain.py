"""Retrain a study's pick (or any complete trial) and keep the model: `lrsearch retrain`
and `lrsearch.retrain`.

The trial trains as it did in the search, through the runner's trainer: its configuration,
its model parameters (an `optuna.trial.FixedTrial`), its seed (the study's seed plus its
number, unless another is given), the study's epochs and the study file's `callbacks(trial)`,
without pruning. The pick is the one `lrsearch export` writes: by the confirmed mean first.

With `full_data` it trains on the training and validation rows together, for a final model:
no held-out rows are left, so only training metrics are reported and the plateau schedule
watches the objective's training counterpart (`accuracy` for `val_accuracy`).

The saved model is compiled with the study's loss and metrics and the trial's optimizer at
its last learning rate, without schedule or optimizer state: lrsearch's 1cycle schedule
would need lrsearch to load. Where the model names no function or class of the study
file's own (a loss, a metric, a layer), it loads with plain `keras.saving.load_model`;
else with `load_model(path, study_file)`, or Keras' `custom_objects` naming those. A model
with a Lambda layer holds Python code, which Keras loads only with `safe_mode=False`; a
mixed_float16 model gets its loss-scaled optimizer back only when loaded under that policy.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from lrsearch import results
from lrsearch.errors import UsageError, counted, ready_to_write, writing
from lrsearch.lr import LRConfig, describe

if TYPE_CHECKING:
    import keras

    from lrsearch.study import Study


class RetrainError(UsageError):
    """What cannot be retrained as asked; the message says why."""


def history_path(output: str | os.PathLike) -> Path:
    """Where the history of a model saved at `output` goes: model.keras -> model.history.json."""
    return Path(output).with_suffix(".history.json")


def retrain(study_file: "str | os.PathLike | Study", *, storage: str | None = None, study_name: str | None = None,
            trial: int | None = None, output: str | os.PathLike | None = None, full_data: bool = False,
            seed: int | None = None, epochs: int | None = None,
            verbose: bool = True) -> tuple["keras.Model", dict[str, Any]]:
    """Train the pick of the study in `storage` (or trial number `trial`) again and return
    the model and its history: what it trained (trial, config, seed, data, epochs) and its
    per-epoch `logs` (`lr` included). With `output` (a .keras path) save both there, the
    history beside it (`history_path`). `verbose` prints what trains, a progress bar for
    trainings over 2 s, and the result."""
    if output is not None and Path(output).suffix != ".keras":
        raise RetrainError(f"the output must be a .keras file (Keras' own format), but got {str(output)!r}.")
    if output is not None:  # before the training, which a file that cannot be written would waste
        ready_to_write(output)
        ready_to_write(history_path(output))
    from lrsearch.devices import import_tensorflow

    import_tensorflow()  # first, quietly: the imports below and the study may load TensorFlow
    from lrsearch.export._export import exported_configs
    from lrsearch.study import resolve_study

    ref = resolve_study(study_file, storage=storage, study_name=study_name)
    study_file, name = ref.study, ref.study_name
    study = ref.open()
    _check(study, name, study_file, trial)
    cfg = exported_configs(study, trial=trial, study_file=study_file)[0]
    seed = cfg.seed if seed is None else seed
    epochs = epochs or results.read_study(study).epochs or study_file.settings.epochs
    say = (lambda line: print(line, flush=True)) if verbose else (lambda line: None)
    run = _Retraining(study_file, cfg, study.trials[cfg.trial_number].params, seed, epochs, full_data)
    model, logs, final = run.train(say, verbose)
    history = {"study": name, "study_file": str(study_file.path), "trial": cfg.trial_number,
               "config": cfg.lr_config.to_dict(), "model_params": cfg.model_params, "seed": seed, "epochs": epochs,
               "data": run.used, "full_data": full_data, "objective": run.monitor, "value": final,
               "trial_value": cfg.value,
               "confirmation": None if cfg.confirmation is None else cfg.confirmation.values,
               "saved_optimizer": _compile_plain(model, cfg.lr_config, logs["lr"][-1], study_file.settings),
               **_loading(model, study_file), "logs": logs}
    if output is not None:
        with writing(output):
            model.save(output)
        with writing(history_path(output)):
            history_path(output).write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
        say(f"Wrote {output} and {history_path(output)}; compiled with {history['saved_optimizer']}. "
            f"{how_to_load(output, study_file, history)}")
    return model, history


def load_model(path: str | os.PathLike, study_file: "str | os.PathLike | Study", *,
               safe_mode: bool = True) -> "keras.Model":
    """Load a model saved by `lrsearch retrain` (or any .keras file of the study's model)
    with the study file's own functions and classes that it names (its loss, metrics,
    layers): `keras.saving.load_model` with them as `custom_objects`, under the global dtype
    policy that a mixed_float16 model needs to get its optimizer back (`_load_policy`; the
    caller's policy is restored after); `safe_mode=False` for a model with a Lambda layer,
    from a file you trust, as Keras asks."""
    from lrsearch.devices import import_tensorflow

    import_tensorflow()
    import keras

    from lrsearch.study import Study, load_study

    if not Path(path).is_file():
        raise RetrainError(f"{path}: no such file; give the .keras file that lrsearch retrain wrote.")
    study = study_file if isinstance(study_file, Study) else load_study(study_file)
    policy, previous = _saved_load_policy(path), keras.mixed_precision.global_policy()
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    try:
        return keras.saving.load_model(path, custom_objects=custom_objects(study), safe_mode=safe_mode)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _load_policy(policy: str) -> str | None:
    """The global dtype policy a model of dtype `policy` must be loaded under to get its
    optimizer back: Keras' compile wraps the optimizer for loss scaling where the model's
    policy is mixed_float16, and a Sequential or functional model loads with the global policy,
    so loaded under another it gets a plain optimizer, and Keras drops the saved optimizer's
    variables with a warning. None for every other policy."""
    return policy if policy == "mixed_float16" else None


def _saved_load_policy(path: str | os.PathLike) -> str | None:
    """`_load_policy` of the model saved in the .keras file at `path` (None where it cannot tell)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        policy = config["config"]["dtype"]
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None  # Keras' own load says what is wrong with the file
    return _load_policy(policy["config"]["name"] if isinstance(policy, dict) else str(policy))


def _loading(model: "keras.Model", study_file: "Study") -> dict[str, Any]:
    """What loading the saved `model` takes, for its history: the study file's own functions
    and classes that it names (`custom_objects`), those it names that the study file does not
    hold at its top level (`unfound_objects`: a class made inside build_model), its Lambda
    layers and the dtype policy to load it under (`_load_policy`)."""
    import keras

    config = keras.saving.serialize_keras_object(model)  # the model's own class, its layers, its compiled loss...
    own, found = set(_own_names(config)), custom_objects(study_file)
    return {"custom_objects": sorted(own & found.keys()), "unfound_objects": sorted(own - found.keys()),
            "lambda_layers": sorted(set(_lambda_layers(config))), "load_policy": _load_policy(model.dtype_policy.name)}


def how_to_load(output: str | os.PathLike, study_file: "Study", loading: dict[str, Any]) -> str:
    """How the model saved at `output` loads, given `_loading`'s findings: the study's own
    objects it names, those no loader finds, its Lambda layers, whose Python code Keras loads
    only with safe_mode=False, and the global dtype policy to load it under."""
    names, lambdas, policy = loading["custom_objects"], loading["lambda_layers"], loading["load_policy"]
    where = "the study" if study_file.in_python else str(study_file.path)
    unsafe = ", safe_mode=False" if lambdas else ""
    trust = (f" Its Lambda layer{'s' * (len(lambdas) > 1)} ({', '.join(lambdas)}) hold{'s' * (len(lambdas) == 1)} "
             f"Python code, which Keras loads only when told that the file is trusted (safe_mode=False)."
             if lambdas else "")
    under = (f" Keras gives back its loss-scaled optimizer only to a model loaded under its dtype policy: call "
             f"keras.mixed_precision.set_global_policy({policy!r}) before keras.saving.load_model"
             f"{' (lrsearch.load_model does)' if names else ''}; else the model loads with a plain optimizer, "
             f"without the saved optimizer's state." if policy else "")
    unfound = loading["unfound_objects"]
    lost = (f" It also names {', '.join(unfound)}, which {where} does not define at its top level (a class or "
            f"function made inside build_model, say): no loader can find {'them' if len(unfound) > 1 else 'it'} "
            f"by name, so the model does not load until {where} defines {'them' if len(unfound) > 1 else 'it'} "
            f"there." if unfound else "")
    if not names:
        plain = ("It loads with keras.saving.load_model, without lrsearch." if not lambdas else
                 f"It loads with keras.saving.load_model({str(output)!r}{unsafe}), without lrsearch.")
        return ("It does not load as saved." if unfound else plain) + lost + trust + under
    study = "study" if study_file.in_python else repr(where)
    objects = ", ".join(f"{name!r}: {name.split('>')[-1]}" for name in names)
    return (f"It needs {where}'s own {', '.join(names)}: load it with lrsearch.load_model({str(output)!r}, {study}"
            f"{unsafe}), or with Keras alone as keras.saving.load_model({str(output)!r}, custom_objects={{{objects}}}"
            f"{unsafe}) with those imported from {where}." + lost + trust + under)


def custom_objects(study: "Study") -> dict[str, Any]:
    """The study file's own functions and classes (its module's, and its loss's and metrics'),
    by the names Keras saves them under; Keras' own are left out."""
    import keras

    settings = study.settings
    found = [v for v in getattr(study.builder, "__globals__", {}).values()
             if inspect.isclass(v) or inspect.isfunction(v)]
    found += [v if inspect.isfunction(v) else type(v) for v in _leaves(settings.loss) + _leaves(settings.metrics)
              if not isinstance(v, str)]
    return {keras.saving.get_registered_name(v): v for v in found
            if (getattr(v, "__module__", None) or "").split(".")[0] != "keras"}


def _objects(config) -> Iterator[dict]:
    """Every object's config nested in a Keras config (a dict with a class_name), nested models' included."""
    if isinstance(config, (list, tuple)):
        for value in config:
            yield from _objects(value)
    elif isinstance(config, dict):
        if "class_name" in config:
            yield config
        for value in config.values():
            yield from _objects(value)


def _own_names(config) -> Iterator[str]:
    """The names by which a Keras config refers to objects that are not Keras' own: a
    function's name, a class's registered name (as `custom_objects` keys them); not Keras'
    own forms of values (`__lambda__`, `__keras_tensor__`, `__tuple__`...)."""
    for found in _objects(config):
        module = found.get("module")
        if isinstance(module, str) and module.split(".")[0] == "keras" or str(found["class_name"]).startswith("__"):
            continue
        name = found.get("config") if found["class_name"] == "function" else (found.get("registered_name")
                                                                                or found["class_name"])
        if isinstance(name, str):
            yield name


def _lambda_layers(config) -> Iterator[str]:
    """The names of the Lambda layers in a Keras config."""
    return (str(found["config"].get("name")) for found in _objects(config)
            if found["class_name"] == "Lambda" and isinstance(found.get("config"), dict))


def _leaves(value) -> list:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [] if value is None else [value]


class _Retraining:
    """One retraining of an exported configuration `cfg`: its data, runner and monitor."""

    def __init__(self, study_file: "Study", cfg, params: dict[str, Any], seed: int, epochs: int,
                 full_data: bool) -> None:
        from lrsearch.study import data
        from lrsearch.training import TrialRunner

        train, val = data.load(study_file)
        if full_data:
            train = _joined(study_file, train, val)
        self.study_file = dataclasses.replace(study_file, data=lambda: (train, val))  # data() once
        self.runner = TrialRunner(self.study_file, epochs=epochs)  # fresh: its trainer keeps no model
        rows = data.rows(train) if isinstance(train, tuple) else None
        split = "training and validation rows" if full_data else "training rows"
        self.used = f"the {split}" + (f" ({rows})" if rows else "")
        objective = study_file.settings.objective
        self.monitor = objective.removeprefix("val_") if full_data else objective
        self.cfg, self.params, self.seed, self.epochs, self.full_data = cfg, params, seed, epochs, full_data

    def train(self, say, verbose: bool) -> tuple["keras.Model", dict[str, list], float]:
        """Train, saying what and how it went; (model, per-epoch logs, final value)."""
        import keras
        import optuna
        from tqdm import tqdm

        from lrsearch.lr import LearningRateMonitor, make_callbacks
        from lrsearch.training import NONFINITE_KEY

        cfg, config, seed, epochs = self.cfg, self.cfg.lr_config, self.seed, self.epochs
        settings = self.study_file.settings
        say(f"Retraining trial {cfg.trial_number} ({settings.objective} {cfg.value:.4g}"
            + (f", fresh seeds {cfg.confirmation.describe()}" if cfg.confirmation else "")
            + f"): {describe(config.to_dict())}, seed {seed}, {counted(epochs, 'epoch')}, on {self.used}.")
        if self.full_data:
            say("Full data: no rows are held out, so only training metrics are reported"
                + (f" and the plateau schedule watches {self.monitor}" if config.schedule == "plateau" else "")
                + ".")
        fixed = optuna.trial.FixedTrial(self.params, number=cfg.trial_number)
        recorder = keras.callbacks.History()
        bar = tqdm(total=epochs, unit="epoch", desc=f"trial {cfg.trial_number}", delay=2, disable=not verbose,
                   dynamic_ncols=True)
        callbacks = [LearningRateMonitor(), recorder, *make_callbacks(config, self.monitor, settings.direction),
                     *self.runner.study_callbacks(fixed),
                     keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: bar.update(1))]
        model, optimizer = self.runner.seeded_model(fixed, config, seed, fresh_names=True)
        try:
            self.runner.trainer.fit(model, optimizer, epochs=epochs, callbacks=callbacks, seed=seed)
        finally:
            bar.close()
        logs = {k: v for k, v in recorder.history.items() if not (self.full_data and k.startswith("val_"))}
        final = math.nan if NONFINITE_KEY in logs else logs[self.monitor][-1]
        if not math.isfinite(final):
            raise RetrainError(f"trial {cfg.trial_number} diverged at epoch {len(logs['loss'])} on seed {seed}; "
                               f"give another --seed.")
        say(f"{self.monitor}={final:.4g} at the last epoch"
            + (" on the training rows (none are held out)" if self.full_data else
               f" (the trial: {cfg.value:.4g} on seed {cfg.seed})") + ".")
        return model, logs, final


def _compile_plain(model: "keras.Model", config: LRConfig, last_lr: float, settings) -> str:
    """Compile `model` with the study's loss and metrics and `config`'s optimizer at
    `last_lr`, without schedule or state; say what it was compiled with."""
    from lrsearch.lr import make_optimizer

    plain = LRConfig(config.optimizer, last_lr, momentum=config.momentum, nesterov=config.nesterov)
    model.compile(optimizer=make_optimizer(plain, 1, 1), loss=settings.loss, metrics=settings.compile_metrics)
    model.optimizer.build(model.trainable_variables)
    return f"{type(model.optimizer).__name__} at lr={last_lr:.4g}, no schedule, fresh state"


def _check(study, name: str, study_file: "Study", trial: int | None) -> None:
    """RetrainError unless the study has what to retrain and the study file still trains
    what its trials trained."""
    from lrsearch.results import rank

    trials = study.get_trials(deepcopy=False)
    if trial is None and not rank(trials, study.direction.name.lower(), {}):
        raise RetrainError(f"study {name!r} has no complete trial yet, so there is nothing to retrain.")
    if trial is not None and trial not in {t.number for t in trials}:
        raise RetrainError(f"study {name!r} has no trial {trial}; it has {len(trials)} trials"
                           + (f" (0-{len(trials) - 1})." if trials else "."))
    if trial is not None and trials[trial].state.name != "COMPLETE":
        raise RetrainError(f"{results.not_complete(trials[trial])}; retrain a complete trial (lrsearch export "
                           f"--top K lists the best).")
    settings = study_file.settings
    changed = results.changes(study, objective=settings.objective, batch_size=settings.batch_size,
                             space=study_file.space.to_dict())
    if changed:
        raise RetrainError(f"study {name!r} was made with other settings than {study_file.path} has now "
                           f"({'; '.join(changed)}), so its trials would not train the same. Undo the change, or "
                           f"retrain with the study file as the study ran it.")


def _joined(study_file: "Study", train, val) -> tuple:
    """The training and validation splits as one (in-memory arrays only)."""
    import keras
    import numpy as np

    if not isinstance(train, (tuple, list)):
        raise RetrainError(f"{study_file.path}: --full-data needs in-memory arrays, which it joins, but data() "
                           f"returns {'a tf.data.Dataset' if hasattr(train, 'element_spec') else 'a PyDataset'} for "
                           f"training; retrain without it.")
    if len(train) != len(val):
        raise RetrainError(f"{study_file.path}: --full-data needs sample weights in both splits or in neither, but "
                           f"data() returns them in one split only.")
    return keras.tree.map_structure(lambda a, b: np.concatenate([a, b]), train, val)

