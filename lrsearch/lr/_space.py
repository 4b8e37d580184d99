"""The learning-rate search space and how a trial samples it (Optuna define-by-run).

Parameters are conditional: `momentum` exists only for SGD, `decay` only with the
time-decay schedule, and so on (`lrsearch.lr._catalogue` says which), so that importances and
parallel coordinates compare like with like. No TensorFlow import here.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from typing import TYPE_CHECKING, Any

from lrsearch.errors import UsageError
from lrsearch.lr._catalogue import OPTIMIZERS, PARAMS, SCHEDULES, Param
from lrsearch.lr._config import LRConfig

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

    optimizers: tuple[str, ...] = tuple(OPTIMIZERS)
    schedules: tuple[str, ...] = tuple(SCHEDULES)
    lr: tuple[float, float] = PARAMS["lr"].default
    peak_lr: tuple[float, float] = PARAMS["peak_lr"].default
    momentum: tuple[float, float] = PARAMS["momentum"].default
    nesterov: bool | None = PARAMS["nesterov"].default
    decay: tuple[float, float] = PARAMS["decay"].default
    patience: tuple[int, int] = PARAMS["patience"].default
    factor: tuple[float, float] = PARAMS["factor"].default
    div: tuple[float, float] = PARAMS["div"].default

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
        for param in PARAMS.values():
            value = getattr(self, param.name)
            if param.kind == "bool":
                if value is not None and not isinstance(value, bool):
                    raise SpaceError(f"{param.name} must be true, false or None (search both), but got {value!r}.")
                continue
            object.__setattr__(self, param.name, _checked_range(param, value))

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
    """Sample one learning-rate configuration for `trial`: the optimizer and the schedule,
    then the learning rate and the parameters of those two."""
    optimizer = _categorical(trial, "optimizer", space.optimizers)
    schedule = _categorical(trial, "schedule", space.schedules)
    params: dict[str, Any] = {"optimizer": optimizer, "schedule": schedule}
    for param in (SCHEDULES[schedule].lr, *OPTIMIZERS[optimizer].params, *SCHEDULES[schedule].params):
        params[param.field] = _suggest(trial, param, getattr(space, param.name))
    return LRConfig(**params)


def _checked_range(param: Param, pair: Any) -> tuple:
    name = param.name
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise SpaceError(f"{name} must be a (low, high) pair, but got {pair!r}.")
    low, high = pair
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in pair):
        raise SpaceError(f"{name} must be a pair of finite numbers, but got {pair!r}.")
    if low > high:
        raise SpaceError(f"{name} must have low <= high, but got {pair!r}.")
    if param.log and low <= 0:
        raise SpaceError(f"{name} must be > 0 (it is searched on a log scale), but got {pair!r}.")
    if not (param.accepts(low) and param.accepts(high)):
        raise SpaceError(f"{name} must lie in {param.interval()}, but got {pair!r}.")
    return (low, high)


def _suggest(trial: "optuna.Trial", param: Param, option: Any) -> Any:
    """`param`'s value: sampled from the space's `option` (its range, or None for a bool
    searched both ways), or the one value the option fixes."""
    if param.kind == "bool":
        return _categorical(trial, param.name, (False, True)) if option is None else option
    low, high = option
    if low == high:
        return int(low) if param.kind == "int" else float(low)
    if param.kind == "int":
        return trial.suggest_int(param.name, int(low), int(high))
    return trial.suggest_float(param.name, low, high, log=param.log)


def _categorical(trial: "optuna.Trial", name: str, choices: tuple) -> Any:
    if len(choices) == 1:
        return choices[0]
    return trial.suggest_categorical(name, list(choices))
