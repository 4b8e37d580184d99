"""The learning-rate configuration of one trial: what the space suggests, what
`schedules` turns into Keras objects and what `export` writes.

Plain data, no TensorFlow or Optuna import: `load_config` must work without them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from lrsearch.errors import UsageError

OPTIMIZERS = ("sgd", "rmsprop", "adagrad", "adam")
SCHEDULES = ("constant", "time_decay", "plateau", "one_cycle")

#: 1cycle's last phase: the share of training spent annealing below eta0.
ONE_CYCLE_ANNIHILATION = 0.1
#: How far below eta0 the 1cycle schedule ends.
ONE_CYCLE_FINAL_DIV = 1e3
#: The floor ReduceLROnPlateau never goes below.
PLATEAU_MIN_LR = 1e-7


class ConfigError(UsageError):
    """A learning-rate configuration that Keras cannot run."""


@dataclasses.dataclass(frozen=True)
class LRConfig:
    """One point of the search space.

    `lr` is the initial learning rate; with the `one_cycle` schedule it is the peak
    (eta1), and the cycle starts at `lr / div` (eta0). Fields that the chosen optimizer
    or schedule does not use stay None.
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
        _check_range("lr", self.lr, 0.0, 10.0, low_open=True)
        sgd_only = {"momentum": self.momentum, "nesterov": self.nesterov}
        if self.optimizer == "sgd":
            _check_range("momentum", self.momentum if self.momentum is not None else 0.0, 0.0, 1.0, high_open=True)
        else:
            _check_unused(sgd_only, f"optimizer {self.optimizer!r}")
        wanted = {
            "constant": (),
            "time_decay": ("decay",),
            "plateau": ("patience", "factor"),
            "one_cycle": ("div",),
        }[self.schedule]
        others = {name: getattr(self, name) for name in ("decay", "patience", "factor", "div") if name not in wanted}
        _check_unused(others, f"schedule {self.schedule!r}")
        for name in wanted:
            if getattr(self, name) is None:
                raise ConfigError(f"schedule {self.schedule!r} needs {name!r}, but it is missing.")
        if self.decay is not None:
            _check_range("decay", self.decay, 0.0, math.inf)
        if self.patience is not None:
            if not isinstance(self.patience, int) or isinstance(self.patience, bool) or self.patience < 0:
                raise ConfigError(f"'patience' must be a whole number >= 0, but got {self.patience!r}.")
        if self.factor is not None:
            _check_range("factor", self.factor, 0.0, 1.0, low_open=True, high_open=True)
        if self.div is not None:
            _check_range("div", self.div, 1.0, math.inf)

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


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name!r} must be one of {list(choices)}, but got {value!r}.")


def _check_range(
    name: str, value: Any, low: float, high: float, low_open: bool = False, high_open: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name!r} must be a finite number, but got {value!r}.")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ConfigError(f"{name!r} must lie in {lo}{low}, {high}{hi}, but got {value!r}.")


def _check_unused(values: dict[str, Any], owner: str) -> None:
    used = sorted(name for name, value in values.items() if value is not None)
    if used:
        raise ConfigError(f"{owner} takes no {used}.")


def describe(config: dict) -> str:
    """A short human form of an LRConfig dict: `sgd lr=0.0123 momentum=0.9 one_cycle div=10`."""
    try:
        cfg = LRConfig.from_dict(config)
    except ValueError:
        return str(config)
    parts = [cfg.optimizer, f"{'peak_lr' if cfg.schedule == 'one_cycle' else 'lr'}={cfg.lr:.3g}"]
    if cfg.momentum:
        parts.append(f"momentum={cfg.momentum:.2f}" + (" nesterov" if cfg.nesterov else ""))
    parts.append(cfg.schedule)
    for name in ("decay", "patience", "factor", "div"):
        value = getattr(cfg, name)
        if value is not None:
            parts.append(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts)
