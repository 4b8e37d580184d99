"""The learning-rate search space and how a trial samples it (Optuna define-by-run).

Parameters are conditional: `momentum` exists only for SGD, `decay` only with the
time-decay schedule, and so on, so that importances and parallel coordinates compare
like with like. No TensorFlow import here.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from typing import TYPE_CHECKING, Any

from lrsearch.config import OPTIMIZERS, SCHEDULES, LRConfig
from lrsearch.errors import UsageError

if TYPE_CHECKING:
    import optuna


class SpaceError(UsageError):
    """A search space that cannot be sampled."""


@dataclasses.dataclass(frozen=True)
class Space:
    """Which optimizers and schedules to try and the range of each parameter.

    Ranges are (low, high) pairs; give low == high to fix a parameter. `lr` is the
    initial learning rate of the constant, time-decay and plateau schedules, `peak_lr`
    the peak of the 1cycle schedule (it starts at peak_lr / div).
    """

    optimizers: tuple[str, ...] = OPTIMIZERS
    schedules: tuple[str, ...] = SCHEDULES
    lr: tuple[float, float] = (1e-7, 1.0)
    peak_lr: tuple[float, float] = (1e-7, 1.0)
    momentum: tuple[float, float] = (0.0, 0.99)
    nesterov: bool | None = False
    decay: tuple[float, float] = (1e-5, 1e-1)
    patience: tuple[int, int] = (2, 20)
    factor: tuple[float, float] = (0.05, 0.5)
    div: tuple[float, float] = (5.0, 25.0)

    def __post_init__(self) -> None:
        for name, allowed in (("optimizers", OPTIMIZERS), ("schedules", SCHEDULES)):
            values = getattr(self, name)
            if isinstance(values, str):
                values = (values,)
            values = tuple(values)
            object.__setattr__(self, name, values)
            if not values:
                raise SpaceError(f"{name} must name at least one of {list(allowed)}.")
            for value in values:
                if value not in allowed:
                    raise SpaceError(f"unknown {name[:-1]} {value!r}; choose from {list(allowed)}.")
        positive = ("lr", "peak_lr", "decay", "factor")
        for name in ("lr", "peak_lr", "momentum", "decay", "patience", "factor", "div"):
            pair = getattr(self, name)
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise SpaceError(f"{name} must be a (low, high) pair, but got {pair!r}.")
            low, high = pair
            if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in pair):
                raise SpaceError(f"{name} must be a pair of finite numbers, but got {pair!r}.")
            if low > high:
                raise SpaceError(f"{name} must have low <= high, but got {pair!r}.")
            if name in positive and low <= 0:
                raise SpaceError(f"{name} must be > 0 (it is searched on a log scale), but got {pair!r}.")
            object.__setattr__(self, name, (low, high))
        if self.momentum[1] >= 1.0 or self.momentum[0] < 0:
            raise SpaceError(f"momentum must lie in [0, 1), but got {self.momentum!r}.")
        if self.factor[1] >= 1.0:
            raise SpaceError(f"factor must be < 1, but got {self.factor!r}.")
        if self.div[0] < 1.0:
            raise SpaceError(f"div must be >= 1, but got {self.div!r}.")

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> "Space":
        """Build from a plain dict, naming any unknown option and the closest known one."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in options:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise SpaceError(f"unknown space option {key!r}.{hint} Known options: {', '.join(known)}.")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON values (tuples as lists), as `from_dict` takes them."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> "Space":
        return dataclasses.replace(self, **changes)


def suggest(trial: "optuna.Trial", space: Space) -> LRConfig:
    """Sample one learning-rate configuration for `trial`."""
    optimizer = _categorical(trial, "optimizer", space.optimizers)
    schedule = _categorical(trial, "schedule", space.schedules)
    params: dict[str, Any] = {"optimizer": optimizer, "schedule": schedule}
    if schedule == "one_cycle":
        params["lr"] = _float(trial, "peak_lr", space.peak_lr, log=True)
        params["div"] = _float(trial, "div", space.div, log=True)
    else:
        params["lr"] = _float(trial, "lr", space.lr, log=True)
    if optimizer == "sgd":
        params["momentum"] = _float(trial, "momentum", space.momentum)
        params["nesterov"] = (
            _categorical(trial, "nesterov", (False, True)) if space.nesterov is None else space.nesterov
        )
    if schedule == "time_decay":
        params["decay"] = _float(trial, "decay", space.decay, log=True)
    elif schedule == "plateau":
        params["patience"] = _int(trial, "patience", space.patience)
        params["factor"] = _float(trial, "factor", space.factor)
    return LRConfig(**params)


def _categorical(trial: "optuna.Trial", name: str, choices: tuple) -> Any:
    if len(choices) == 1:
        return choices[0]
    return trial.suggest_categorical(name, list(choices))


def _float(trial: "optuna.Trial", name: str, bounds: tuple[float, float], log: bool = False) -> float:
    low, high = bounds
    if low == high:
        return float(low)
    return trial.suggest_float(name, low, high, log=log)


def _int(trial: "optuna.Trial", name: str, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if low == high:
        return int(low)
    return trial.suggest_int(name, int(low), int(high))
