"""Write a study's best learning-rate configuration to a JSON or YAML file, and load it in
another project as ready Keras objects:

    cfg = lrsearch.load_config("best.json")
    model.compile(optimizer=cfg.optimizer(), loss=..., metrics=...)
    model.fit(x, y, epochs=cfg.epochs, batch_size=cfg.batch_size, callbacks=cfg.callbacks(), ...)

The file holds `lr_config` (what `LRConfig` knows: the source of truth), the same
settings spelled as Keras objects under `keras` (for people; checked against `lr_config`
on load), the training settings, where the configuration came from and, where the trial
was retrained on fresh seeds (`lrsearch.confirm`), its values there with their mean and
spread under `confirmation`. Loading parses
JSON or safe YAML only, never executes code, and imports neither Optuna nor the study
file; TensorFlow is imported when `optimizer()` or `callbacks()` builds an object.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsearch.config import ONE_CYCLE_ANNIHILATION, ONE_CYCLE_FINAL_DIV, PLATEAU_MIN_LR, ConfigError, LRConfig
from lrsearch.confirm import Confirmation

if TYPE_CHECKING:
    import keras
    import optuna

SCHEMA = "lrsearch.config"
SCHEMA_MANY = "lrsearch.configs"
#: 2 added `confirmation`; version 1 files read the same.
SCHEMA_VERSION = 2
FORMATS = ("json", "yaml")
#: Trial parameters that belong to the learning-rate space; the rest are the model's own.
LR_PARAMS = ("optimizer", "schedule", "lr", "peak_lr", "div", "momentum", "nesterov", "decay", "patience", "factor")
_KERAS_OPTIMIZERS = {"sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adam": "Adam"}
_TOP_KEYS = {"schema", "schema_version", "lrsearch_version", "exported_at", "study", "training", "lr_config",
             "keras", "model_params", "confirmation"}


@dataclasses.dataclass(frozen=True)
class ExportedConfig:
    """A loaded configuration file: the learning-rate settings and how they were trained."""

    lr_config: LRConfig
    epochs: int
    batch_size: int
    seed: int | None
    steps_per_epoch: int | None
    objective: str
    direction: str
    value: float | None
    study_name: str
    trial_number: int
    lrsearch_version: str
    exported_at: str
    model_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    confirmation: Confirmation | None = None

    def optimizer(self, steps_per_epoch: int | None = None) -> "keras.optimizers.Optimizer":
        """A fresh Keras optimizer with its learning-rate schedule.

        `steps_per_epoch` (batches per epoch) sets the length of the one_cycle schedule;
        it defaults to the study's. Give it when you train on a different amount of data.
        """
        from lrsearch.schedules import make_optimizer

        steps = steps_per_epoch if steps_per_epoch is not None else self.steps_per_epoch
        if steps is None:
            if self.lr_config.schedule == "one_cycle":
                raise ConfigError("the one_cycle schedule needs the number of batches per epoch, and the file "
                                  "does not record it; call optimizer(steps_per_epoch=ceil(rows / batch_size)).")
            steps = 1
        _check_count("steps_per_epoch", steps)
        return make_optimizer(self.lr_config, steps, self.epochs)

    def callbacks(self) -> list["keras.callbacks.Callback"]:
        """Fresh learning-rate callbacks (ReduceLROnPlateau for the plateau schedule, else none).
        They watch the study's objective, so `fit` needs the matching validation data."""
        from lrsearch.schedules import make_callbacks

        return make_callbacks(self.lr_config, self.objective, self.direction)

    def to_dict(self) -> dict[str, Any]:
        """The file's document for this configuration."""
        document = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "lrsearch_version": self.lrsearch_version,
            "exported_at": self.exported_at,
            "study": {"name": self.study_name, "trial": self.trial_number, "objective": self.objective,
                      "direction": self.direction, "value": self.value},
            "training": {"epochs": self.epochs, "batch_size": self.batch_size, "seed": self.seed,
                         "steps_per_epoch": self.steps_per_epoch},
            "lr_config": self.lr_config.to_dict(),
            "keras": keras_description(self.lr_config, self.steps_per_epoch, self.epochs, self.objective,
                                       self.direction),
        }
        if self.model_params:
            document["model_params"] = dict(self.model_params)
        if self.confirmation is not None:
            document["confirmation"] = _confirmation_document(self.confirmation)
        return document


def _confirmation_document(found: Confirmation) -> dict[str, Any]:
    return {"seeds": list(found.values), "values": list(found.values.values()), "mean": found.mean,
            "std": found.std, "diverged": found.n_diverged}


def _read_confirmation(section: Any) -> Confirmation:
    """The `confirmation` section, checked: seeds and values of one length, and the
    summary numbers those values give."""
    if not isinstance(section, dict):
        raise ConfigError(f"'confirmation' must be a mapping, but got {type(section).__name__}.")
    seeds, values = section.get("seeds"), section.get("values")
    if not isinstance(seeds, list) or not isinstance(values, list) or len(seeds) != len(values) or not seeds:
        raise ConfigError("confirmation needs 'seeds' and 'values', lists of one length (at least one seed).")
    if not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        raise ConfigError(f"confirmation.seeds must be whole numbers, but got {seeds!r}.")
    if not all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"confirmation.values must be numbers or null (diverged), but got {values!r}.")
    found = Confirmation(dict(zip(seeds, values)))
    expected = _confirmation_document(found)
    for key in ("mean", "std", "diverged"):
        got, want = section.get(key), expected[key]
        if not (got == want or isinstance(got, (int, float)) and want is not None and math.isclose(got, want)):
            raise ConfigError(f"confirmation.{key} is {got!r} but its values give {want!r}; edit the values "
                              f"(or delete {key!r}).")
    return found


def keras_description(config: LRConfig, steps_per_epoch: int | None, epochs: int, objective: str,
                      direction: str) -> dict[str, Any]:
    """`config` spelled as the Keras objects `optimizer()` and `callbacks()` build."""
    optimizer: dict[str, Any] = {"class_name": _KERAS_OPTIMIZERS[config.optimizer]}
    schedule = None
    if config.schedule == "time_decay":
        schedule = {"class_name": "InverseTimeDecay", "initial_learning_rate": config.lr, "decay_steps": 1,
                    "decay_rate": config.decay}
    elif config.schedule == "one_cycle":
        initial = config.lr / config.div
        schedule = {"class_name": "lrsearch.schedules.OneCycle", "initial_lr": initial, "peak_lr": config.lr,
                    "final_lr": initial / ONE_CYCLE_FINAL_DIV,
                    "total_steps": None if steps_per_epoch is None else max(2, steps_per_epoch * epochs),
                    "annihilation": ONE_CYCLE_ANNIHILATION}
    optimizer["learning_rate"] = "schedule" if schedule else config.lr
    if config.optimizer == "sgd":
        optimizer.update(momentum=config.momentum or 0.0, nesterov=bool(config.nesterov))
    callbacks = []
    if config.schedule == "plateau":
        callbacks.append({"class_name": "ReduceLROnPlateau", "monitor": objective,
                          "mode": "max" if direction == "maximize" else "min", "factor": config.factor,
                          "patience": config.patience, "min_lr": PLATEAU_MIN_LR})
    return {"optimizer": optimizer, "schedule": schedule, "callbacks": callbacks}


# ----------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike, rank: int = 1) -> ExportedConfig:
    """Load a file written by `lrsearch export`; from a `--top K` file, the `rank`-th best.

    Raises ConfigError (a ValueError) naming the file and the problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    try:
        document = _parse(text, path)
        if isinstance(document, dict) and document.get("schema") == SCHEMA_MANY:
            document = _pick(document, rank)
        elif rank != 1:
            raise ConfigError(f"holds one configuration, so rank must be 1, but got {rank!r}.")
        return from_document(document)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def from_document(document: Any) -> ExportedConfig:
    """Validate one configuration document (a parsed file) and build the config."""
    if not isinstance(document, dict):
        raise ConfigError(f"not an lrsearch configuration: the top level is a {type(document).__name__}, "
                          f"not a mapping.")
    if "schema" not in document:
        keys = ", ".join(sorted(map(str, document))[:8]) or "none"
        raise ConfigError(f"not an lrsearch configuration: it has no 'schema' key (its keys: {keys}).")
    if document["schema"] != SCHEMA:
        raise ConfigError(f"not an lrsearch configuration: schema is {document['schema']!r}, expected {SCHEMA!r}.")
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(f"'schema_version' must be a whole number, but got {version!r}.")
    if version > SCHEMA_VERSION:
        raise ConfigError(f"schema_version {version} was written by a newer lrsearch; this one reads version "
                          f"{SCHEMA_VERSION}. Upgrade lrsearch.")
    if version < 1:
        raise ConfigError(f"'schema_version' must be >= 1, but got {version}.")
    unknown = sorted(set(document) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}; known keys are {sorted(_TOP_KEYS)}.")
    study = _section(document, "study", ("name", "trial", "objective", "direction", "value"))
    training = _section(document, "training", ("epochs", "batch_size", "seed", "steps_per_epoch"))
    lr_dict = _require(document, "lr_config")
    try:
        lr_config = LRConfig.from_dict(lr_dict)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"lr_config: {exc}") from None
    for name in ("epochs", "batch_size"):
        _check_count(f"training.{name}", training[name])
    for name in ("seed", "steps_per_epoch"):
        if training[name] is not None:
            _check_count(f"training.{name}", training[name], low=0 if name == "seed" else 1)
    if study["direction"] not in ("minimize", "maximize"):
        raise ConfigError(f"study.direction must be 'minimize' or 'maximize', but got {study['direction']!r}.")
    for name in ("name", "objective"):
        if not isinstance(study[name], str) or not study[name]:
            raise ConfigError(f"study.{name} must be a non-empty string, but got {study[name]!r}.")
    _check_count("study.trial", study["trial"], low=0)
    value = study["value"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not math.isfinite(value)):
        raise ConfigError(f"study.value must be a finite number or null, but got {value!r}.")
    model_params = document.get("model_params", {})
    if not isinstance(model_params, dict):
        raise ConfigError(f"model_params must be a mapping, but got {type(model_params).__name__}.")
    config = ExportedConfig(
        lr_config=lr_config, epochs=training["epochs"], batch_size=training["batch_size"], seed=training["seed"],
        steps_per_epoch=training["steps_per_epoch"], objective=study["objective"], direction=study["direction"],
        value=None if value is None else float(value), study_name=study["name"], trial_number=study["trial"],
        lrsearch_version=str(document.get("lrsearch_version", "")), exported_at=str(document.get("exported_at", "")),
        model_params=model_params,
        confirmation=_read_confirmation(document["confirmation"]) if "confirmation" in document else None,
    )
    if "keras" in document:
        if not isinstance(document["keras"], dict):
            raise ConfigError(f"'keras' must be a mapping, but got {type(document['keras']).__name__}.")
        expected = keras_description(lr_config, config.steps_per_epoch, config.epochs, config.objective,
                                     config.direction)
        for part, want in expected.items():
            got = document["keras"].get(part)
            if got != want:
                raise ConfigError(f"keras.{part} is {got!r} but lr_config and training give {want!r}; 'keras' "
                                  f"only describes lr_config, so edit lr_config (or delete 'keras').")
    return config


def _parse(text: str, path: Path) -> Any:
    if not text.strip():
        raise ConfigError("the file is empty.")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if exc.pos >= len(text.rstrip()) else ""
        raise ConfigError(f"not valid JSON{hint}: {exc.msg} at line {exc.lineno} column {exc.colno}.") from None


def _pick(document: dict, rank: int) -> dict:
    configs = document.get("configs")
    if not isinstance(configs, list) or not configs:
        raise ConfigError("a multi-configuration file needs a non-empty 'configs' list.")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= len(configs):
        raise ConfigError(f"rank must be between 1 and {len(configs)}, but got {rank!r}.")
    return configs[rank - 1]


def _require(document: dict, key: str) -> Any:
    if key not in document:
        raise ConfigError(f"the key {key!r} is missing.")
    return document[key]


def _section(document: dict, key: str, fields: tuple[str, ...]) -> dict:
    section = _require(document, key)
    if not isinstance(section, dict):
        raise ConfigError(f"{key!r} must be a mapping, but got {type(section).__name__}.")
    missing = [f for f in fields if f not in section]
    unknown = sorted(set(section) - set(fields))
    if missing or unknown:
        raise ConfigError(f"{key!r} " + "; ".join(
            part for part in (f"lacks {missing}" if missing else "", f"has unknown {unknown}" if unknown else "")
            if part) + f" (expected exactly {list(fields)}).")
    return section


def _check_count(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, but got {value!r}.")


# ----------------------------------------------------------------------------- exporting


def exported_configs(
    study: "optuna.Study", *, trial: int | None = None, top: int | None = None, study_file: Any = None
) -> list[ExportedConfig]:
    """The best complete trial of `study` (or trial number `trial`, or the `top` best) as
    configurations to `write`, best first: by the mean over fresh seeds where the trials
    were confirmed (`lrsearch.confirm.rank`).

    Epochs are those the trial trained; batch size, objective and seed come from the
    study's attributes (recorded by `lrsearch run`), else from `study_file` (a loaded
    `Study`), which also counts the training batches when a one_cycle trial did not record them.
    """
    if trial is not None and top is not None:
        raise ConfigError("give either a trial number or a top count, not both.")
    if top is not None:
        _check_count("top", top)
    from lrsearch.confirm import confirmations, rank
    from lrsearch.record import read_study, read_trial

    trials = study.get_trials(deepcopy=False)
    confirmed = confirmations(study)
    facts = _study_facts(study, study_file)
    if trial is not None:
        chosen = [t for t in trials if t.number == trial]
        if not chosen:
            raise ConfigError(f"study {study.study_name!r} has no trial {trial}; it has {len(trials)} trials "
                              f"(0-{len(trials) - 1}).")
        if chosen[0].state.name != "COMPLETE":
            raise ConfigError(f"trial {trial} is {chosen[0].state.name.lower()}, not complete; only complete trials "
                              f"have a value to export.")
    else:
        chosen = rank(trials, study.direction.name.lower(), confirmed, facts["objective"])[:top or 1]
        if not chosen:
            raise ConfigError(f"study {study.study_name!r} has no complete trial yet, so there is nothing to export.")
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    from lrsearch import __version__

    configs = []
    shared = read_study(study)
    for t in chosen:
        rec = read_trial(t, shared)
        if rec.config is None:
            raise ConfigError(f"trial {t.number} has no recorded configuration; was it run by lrsearch?")
        lr_config = LRConfig.from_dict(rec.config)
        steps = rec.steps_per_epoch
        if steps is None and lr_config.schedule == "one_cycle":
            steps = _steps_per_epoch(study_file, t.number)
        seed = rec.seed if rec.seed is not None else (None if facts["seed"] is None else facts["seed"] + t.number)
        configs.append(ExportedConfig(
            lr_config=lr_config, epochs=rec.epochs_run or facts["epochs"],
            batch_size=facts["batch_size"], seed=seed, steps_per_epoch=steps, objective=facts["objective"],
            direction=study.direction.name.lower(), value=float(t.value), study_name=study.study_name,
            trial_number=t.number, lrsearch_version=__version__, exported_at=now,
            model_params={k: v for k, v in t.params.items() if k not in LR_PARAMS},
            confirmation=confirmed.get(t.number),
        ))
    return configs


def write(configs: list[ExportedConfig], out: str | os.PathLike, *, fmt: str | None = None,
          many: bool = False) -> Path:
    """Write one configuration (or, with `many`, a ranked list) as JSON or YAML."""
    out = Path(out)
    fmt = fmt or ("yaml" if out.suffix.lower() in (".yaml", ".yml") else "json")
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, but got {fmt!r}.")
    if many:
        document: Any = {"schema": SCHEMA_MANY, "schema_version": SCHEMA_VERSION,
                         "configs": [c.to_dict() for c in configs]}
    else:
        document = configs[0].to_dict()
    if fmt == "yaml":
        import yaml

        text = yaml.safe_dump(document, sort_keys=False)
    else:
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def _study_facts(study: "optuna.Study", study_file: Any) -> dict[str, Any]:
    """epochs, batch_size, objective, seed: the study's attributes, else the study file's."""
    from lrsearch.record import read_study

    recorded = read_study(study)
    settings = getattr(study_file, "settings", None)
    facts = {}
    for key in ("epochs", "batch_size", "objective", "seed"):
        value = getattr(recorded, key)
        value = getattr(settings, key, None) if value is None else value
        if value is None and key != "seed":
            raise ConfigError(f"study {study.study_name!r} does not record its {key} (it was not made by "
                              f"`lrsearch run`); give the study file.")
        facts[key] = value
    return facts


def _steps_per_epoch(study_file: Any, number: int) -> int:
    """Batches per epoch of the study's training data, for a trial that did not record it
    (one_cycle's length depends on it)."""
    if study_file is None:
        raise ConfigError(f"trial {number} uses the one_cycle schedule, whose length depends on the batches per "
                          f"epoch, and does not record them; give the study file so that export can count them.")
    from lrsearch.runner import TrialRunner

    return TrialRunner(study_file).steps_per_epoch()
