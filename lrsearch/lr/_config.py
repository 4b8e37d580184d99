"""The learning-rate configuration of one trial: what the space suggests, what
`_keras_objects` turns into Keras objects and what `lrsearch.export` writes, checked against the
catalogue's optimizers and schedules.

Plain data, no TensorFlow or Optuna import: `load_config` must work without them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from lrsearch.errors import UsageError
from lrsearch.lr._catalogue import OPTIMIZERS, PARAMS, SCHEDULES, Param


class ConfigError(UsageError):
    """A learning-rate configuration that Keras cannot run."""


@dataclasses.dataclass(frozen=True)
class LRConfig:
    """One point of the search space.

    `lr` is the initial learning rate; with the `one_cycle` schedule it is the peak
    (eta1, searched as `peak_lr`), and the cycle starts at `lr / div` (eta0). Fields that
    the chosen optimizer or schedule does not use stay None; `lrsearch.lr._catalogue` says
    which those are.
    """

    optimizer: str
    lr: float
    schedule: str = "constant"
    momentum: float | None = None
    nesterov: bool | None = None
    decay: float | None = None
    patience: int | None = None
    factor: float | None = None
    div: float | None = None

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        optimizer, schedule = OPTIMIZERS[self.optimizer], SCHEDULES[self.schedule]
        own = {param.field: param for param in (schedule.lr, *optimizer.params, *schedule.params)}
        for param in PARAMS.values():
            if param.field not in own and getattr(self, param.field) is not None:
                owner = (f"optimizer {self.optimizer!r}" if any(param in o.params for o in OPTIMIZERS.values())
                         else f"schedule {self.schedule!r}")
                raise ConfigError(f"{owner} takes no [{param.field!r}].")
        for param in (schedule.lr, *schedule.params):
            if getattr(self, param.field) is None:
                raise ConfigError(f"schedule {self.schedule!r} needs {param.field!r}, but it is missing.")
        for field, param in own.items():
            if getattr(self, field) is not None:
                _check_value(param, getattr(self, field))

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, in a JSON-friendly dict."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LRConfig":
        """Build from `to_dict`'s output (or Optuna trial params), naming unknown keys."""
        if not isinstance(data, dict):
            raise ConfigError(f"a learning-rate configuration must be a mapping, but got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown field(s) {unknown}; known fields are {sorted(known)}.")
        for required in ("optimizer", "lr"):
            if required not in data:
                raise ConfigError(f"the configuration has no {required!r}.")
        return cls(**data)


def _check_choice(name: str, value: Any, choices: dict) -> None:
    if value not in choices:
        raise ConfigError(f"{name!r} must be one of {list(choices)}, but got {value!r}.")


def _check_value(param: Param, value: Any) -> None:
    if param.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{param.field!r} must be true or false, but got {value!r}.")
        return
    if param.kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConfigError(f"{param.field!r} must be a whole number in {param.interval()}, but got {value!r}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{param.field!r} must be a finite number, but got {value!r}.")
    if not param.accepts(value):
        raise ConfigError(f"{param.field!r} must lie in {param.interval()}, but got {value!r}.")


def describe(config: dict) -> str:
    """A short human form of an LRConfig dict: `sgd lr=0.0123 momentum=0.9 one_cycle div=10`."""
    try:
        cfg = LRConfig.from_dict(config)
    except ValueError:
        return str(config)
    optimizer, schedule = OPTIMIZERS[cfg.optimizer], SCHEDULES[cfg.schedule]
    parts = [cfg.optimizer, f"{schedule.lr.name}={cfg.lr:.3g}"]
    for param in optimizer.params:
        value = getattr(cfg, param.field)
        if value:
            parts.append(param.name if param.kind == "bool" else f"{param.name}={value:.2f}")
    parts.append(cfg.schedule)
    for param in schedule.params:
        value = getattr(cfg, param.field)
        parts.append(f"{param.name}={value}" if param.kind == "int" else f"{param.name}={value:.3g}")
    return " ".join(parts)
