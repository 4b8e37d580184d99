"""The optimizers and learning-rate schedules lrsearch searches, each described once: its
parameters (default range, scale, the values a configuration accepts) and the Keras
objects it becomes. `_space` samples from this, `_config` checks against it, `_keras_objects`
builds from it and `lrsearch.export` writes what it builds.

Adding an optimizer or a schedule is one entry in `OPTIMIZERS` or `SCHEDULES`; a new
parameter is also a `Param` here and a field of `LRConfig` and of `Space` (a test checks
that the three agree). No Keras import until a builder runs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

#: The floor ReduceLROnPlateau never goes below.
PLATEAU_MIN_LR = 1e-7


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched parameter.

    `name` is the Optuna parameter and the `Space` option holding its range, `field` the
    `LRConfig` field holding its value (the same name, except 1cycle's `peak_lr`, which a
    configuration holds as `lr`). `default` is the Space's default: a (low, high) range,
    or for a bool its fixed value (None searches both). `valid` is the interval a value
    must lie in: (low, high, low_open, high_open).
    """

    name: str
    default: Any
    valid: tuple[float, float, bool, bool] = (-math.inf, math.inf, False, False)
    log: bool = False
    kind: str = "float"
    field: str = ""

    def __post_init__(self) -> None:
        if not self.field:
            object.__setattr__(self, "field", self.name)

    def interval(self) -> str:
        low, high, low_open, high_open = self.valid
        return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def accepts(self, value: float) -> bool:
        low, high, low_open, high_open = self.valid
        return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """An optimizer: its class in `keras.optimizers`, its own parameters (optional in a
    configuration) and the constructor arguments, besides the learning rate, a
    configuration gives it."""

    name: str
    keras_class: str
    params: tuple[Param, ...] = ()
    options: Callable[[Any], dict[str, Any]] = lambda config: {}


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: the parameter that holds its (initial or peak) learning
    rate, its own parameters (required in a configuration), the optimizer's
    `learning_rate` argument, and the callbacks it needs as (class in `keras.callbacks`,
    arguments) pairs.

    `learning_rate(config, steps_per_epoch, epochs)` returns a float or a Keras schedule;
    `callbacks(config, monitor, direction)` the pairs. `needs_steps`: the schedule's length
    depends on the batches per epoch. `note`: what a project that reads the exported
    optimizer with Keras alone must know.
    """

    name: str
    lr: Param
    params: tuple[Param, ...] = ()
    learning_rate: Callable[[Any, int, int], Any] = lambda config, steps_per_epoch, epochs: config.lr
    callbacks: Callable[[Any, str, str], list[tuple[str, dict[str, Any]]]] = lambda config, monitor, direction: []
    needs_steps: bool = False
    note: str = ""


LR = Param("lr", (1e-7, 1.0), valid=(0.0, 10.0, True, False), log=True)
PEAK_LR = Param("peak_lr", (1e-7, 1.0), valid=(0.0, 10.0, True, False), log=True, field="lr")
MOMENTUM = Param("momentum", (0.0, 0.99), valid=(0.0, 1.0, False, True))
NESTEROV = Param("nesterov", False, kind="bool")
DECAY = Param("decay", (1e-5, 1e-1), valid=(0.0, math.inf, True, False), log=True)
PATIENCE = Param("patience", (2, 20), valid=(0, math.inf, False, False), kind="int")
FACTOR = Param("factor", (0.05, 0.5), valid=(0.0, 1.0, True, True))
DIV = Param("div", (5.0, 25.0), valid=(1.0, math.inf, False, False), log=True)


def _time_decay(config, steps_per_epoch: int, epochs: int):
    import keras

    # The seed's lr0 / (1 + decay * iteration).
    return keras.optimizers.schedules.InverseTimeDecay(config.lr, decay_steps=1, decay_rate=config.decay)


def _one_cycle(config, steps_per_epoch: int, epochs: int):
    from lrsearch.lr._one_cycle import ONE_CYCLE_ANNIHILATION, ONE_CYCLE_FINAL_DIV, OneCycle

    initial = config.lr / config.div
    return OneCycle(initial, config.lr, initial / ONE_CYCLE_FINAL_DIV, max(2, steps_per_epoch * epochs),
                    ONE_CYCLE_ANNIHILATION)


def _plateau(config, monitor: str, direction: str) -> list[tuple[str, dict[str, Any]]]:
    return [("ReduceLROnPlateau", {"monitor": monitor, "mode": "max" if direction == "maximize" else "min",
                                   "factor": config.factor, "patience": config.patience,
                                   "min_lr": PLATEAU_MIN_LR})]


OPTIMIZERS: dict[str, Optimizer] = {entry.name: entry for entry in (
    Optimizer("sgd", "SGD", (MOMENTUM, NESTEROV),
              lambda config: {"momentum": config.momentum or 0.0, "nesterov": bool(config.nesterov)}),
    Optimizer("rmsprop", "RMSprop"),
    Optimizer("adagrad", "Adagrad"),
    Optimizer("adam", "Adam"),
)}

SCHEDULES: dict[str, Schedule] = {entry.name: entry for entry in (
    Schedule("constant", LR),
    Schedule("time_decay", LR, (DECAY,), learning_rate=_time_decay),
    Schedule("plateau", LR, (PATIENCE, FACTOR), callbacks=_plateau),
    Schedule("one_cycle", PEAK_LR, (DIV,), learning_rate=_one_cycle, needs_steps=True,
             note="The learning rate is lrsearch's OneCycle schedule (registered with Keras as "
                  "'lrsearch>OneCycle'): for it alone, pip install lrsearch (Keras and PyYAML) and run "
                  "`from lrsearch.lr import OneCycle` before keras.optimizers.deserialize."),
)}

#: Every parameter, by its Optuna name.
PARAMS: dict[str, Param] = {param.name: param for entry in (*OPTIMIZERS.values(), *SCHEDULES.values())
                            for param in (getattr(entry, "lr", None), *entry.params) if param is not None}


def config_field(name: str) -> str:
    """The `LRConfig` field of Optuna parameter `name` (`peak_lr` -> `lr`); other names as they are."""
    return PARAMS[name].field if name in PARAMS else name
