"""The configuration file that `lrsearch export` writes, read back as ready Keras objects:

    cfg = lrsearch.load_config("best.json")
    model.compile(optimizer=cfg.optimizer(), loss=..., metrics=...)
    model.fit(x, y, epochs=cfg.epochs, batch_size=cfg.batch_size, callbacks=cfg.callbacks(), ...)

The file holds `lr_config` (what `LRConfig` knows: the source of truth), the training
settings, where the configuration came from, where the trial was retrained on fresh seeds
(`lrsearch.results._ranking`) its values there under `confirmation`, and under `keras` what a
project with Keras alone reads: Keras' own serialized optimizer, for
`keras.optimizers.deserialize`. Loading parses JSON or safe YAML only (`_config_text`,
which refuses whatever is not a document of JSON's types), never executes
code, and imports neither Optuna, Keras nor the study file; Keras is imported when
`optimizer()` or `callbacks()` builds an object, and `optimizer()` checks the file's
Keras optimizer against the one `lr_config` gives.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from lrsearch.export._config_text import parse, read
from lrsearch.lr import SCHEDULES, ConfigError, LRConfig
from lrsearch.results import Confirmation

if TYPE_CHECKING:
    import keras

SCHEMA = "lrsearch.config"
SCHEMA_MANY = "lrsearch.configs"
#: 2 added `confirmation`; 3 made `keras` Keras' own serialized optimizer (in 1 and 2 it
#: described the objects for people, and is not read). Older versions read the same.
SCHEMA_VERSION = 3
_TOP_KEYS = {"schema", "schema_version", "lrsearch_version", "exported_at", "study", "training", "lr_config",
             "keras", "model_params", "confirmation"}
_KERAS_KEYS = {"optimizer", "callbacks", "note"}


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
    #: The file's `keras.optimizer` (Keras' serialized form), if it has one: what
    #: `lr_config` gives, so it takes no part in comparisons.
    keras_optimizer: dict[str, Any] | None = dataclasses.field(default=None, compare=False, repr=False)

    def optimizer(self, steps_per_epoch: int | None = None) -> "keras.optimizers.Optimizer":
        """A fresh Keras optimizer with its learning-rate schedule.

        `steps_per_epoch` (batches per epoch) sets the length of the one_cycle schedule;
        it defaults to the study's. Give it when you train on a different amount of data.
        """
        from lrsearch.lr import make_optimizer

        steps = steps_per_epoch if steps_per_epoch is not None else self.steps_per_epoch
        if steps is None:
            if SCHEDULES[self.lr_config.schedule].needs_steps:
                raise ConfigError(f"the {self.lr_config.schedule} schedule needs the number of batches per epoch, "
                                  f"and the file does not record it; call "
                                  f"optimizer(steps_per_epoch=ceil(rows / batch_size)).")
            steps = 1
        check_count("steps_per_epoch", steps)
        optimizer = make_optimizer(self.lr_config, steps, self.epochs)
        if self.keras_optimizer is not None and steps == (self.steps_per_epoch or 1):
            import keras

            wrong = next(_differences(self.keras_optimizer, keras.optimizers.serialize(optimizer)), None)
            if wrong is not None:
                raise ConfigError(f"keras.optimizer.{wrong} disagrees with lr_config and training, which it is "
                                  f"written from: edit lr_config (or delete 'keras').")
        return optimizer

    def callbacks(self) -> list["keras.callbacks.Callback"]:
        """Fresh learning-rate callbacks (ReduceLROnPlateau for the plateau schedule, else none).
        They watch the study's objective, so `fit` needs the matching validation data."""
        from lrsearch.lr import make_callbacks

        return make_callbacks(self.lr_config, self.objective, self.direction)


def confirmation_document(found: Confirmation) -> dict[str, Any]:
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
    if not all(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 for seed in seeds) \
            or len(set(seeds)) < len(seeds):
        raise ConfigError(f"confirmation.seeds must be distinct whole numbers >= 0, but got {seeds!r}.")
    if not all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"confirmation.values must be numbers or null (diverged), but got {values!r}.")
    found = Confirmation(dict(zip(seeds, values)))
    expected = confirmation_document(found)
    for key in ("mean", "std", "diverged"):
        got, want = section.get(key), expected[key]
        if isinstance(got, bool) or not (got == want or isinstance(got, (int, float)) and want is not None
                                         and math.isclose(got, want)):
            raise ConfigError(f"confirmation.{key} is {got!r} but its values give {want!r}; edit the values "
                              f"(or delete {key!r}).")
    return found


def load_config(path: str | os.PathLike, rank: int = 1) -> ExportedConfig:
    """Load a file written by `lrsearch export`; from a `--top K` file, the `rank`-th best.

    Raises ConfigError (a ValueError) naming the file and the problem, for any file that
    is not such a configuration: missing, unreadable, binary, too large, malformed JSON or
    YAML, or values no export writes.
    """
    path = Path(path)
    try:
        document = parse(read(path), path)
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
        check_count(f"training.{name}", training[name])
    for name in ("seed", "steps_per_epoch"):
        if training[name] is not None:
            check_count(f"training.{name}", training[name], low=0 if name == "seed" else 1)
    if study["direction"] not in ("minimize", "maximize"):
        raise ConfigError(f"study.direction must be 'minimize' or 'maximize', but got {study['direction']!r}.")
    for name in ("name", "objective"):
        if not isinstance(study[name], str) or not study[name]:
            raise ConfigError(f"study.{name} must be a non-empty string, but got {study[name]!r}.")
    check_count("study.trial", study["trial"], low=0)
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
    if "keras" in document and version >= 3:
        config = dataclasses.replace(config, keras_optimizer=_keras_optimizer(document["keras"]))
    return config


def _keras_optimizer(section: Any) -> dict[str, Any] | None:
    if not isinstance(section, dict):
        raise ConfigError(f"'keras' must be a mapping, but got {type(section).__name__}.")
    unknown = sorted(set(section) - _KERAS_KEYS)
    if unknown:
        raise ConfigError(f"keras has unknown key(s) {unknown}; known keys are {sorted(_KERAS_KEYS)}.")
    optimizer = section.get("optimizer")
    if optimizer is not None and not isinstance(optimizer, dict):
        raise ConfigError(f"keras.optimizer must be a mapping (Keras' serialized optimizer), but got "
                          f"{type(optimizer).__name__}.")
    return optimizer


def _differences(got: Any, want: Any, path: str = "") -> Iterator[str]:
    """Where `got` (the file's) and `want` (rebuilt) disagree: the dotted keys, over the keys
    both have (another Keras version may add or drop some), names aside (Keras numbers them)."""
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(got.keys() & want.keys() - {"name"}):
            yield from _differences(got[key], want[key], f"{path}.{key}" if path else key)
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (got, want)):
        if not math.isclose(got, want, rel_tol=1e-6):
            yield path
    elif got != want:
        yield path


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


def check_count(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, but got {value!r}.")
