"""Reuse compiled training across trials of one architecture.

Tracing a small model's epoch functions costs more than dozens of its epochs (blobs:
0.33 s against 5 ms an epoch), and most trials of a search are pruned early. So a
worker keeps, per architecture and optimizer kind, one compiled model with its traced
epoch loop, and loads each new trial into it: the new model's initial weights (and
dropout seeds), a fresh optimizer state and the trial's hyperparameters. The numbers a
trial varies - SGD's momentum and the schedule's fields - become `Knob`s that traced
code reads from variables, so changing them does not retrace; the learning rate
without a schedule is a variable in Keras already.

What must match for reuse (the `signature`): the model's class, config and variable
shapes; the optimizer's class and config, except its learning rate and momentum (only
whether momentum is zero, which decides the optimizer's variables); the schedule's
class and its non-numeric fields. Subclassed models are never reused: their config
need not describe what they compute. A study whose `build_model` varies something its
layers' configs do not show turns reuse off with `Settings(keep_compiled=False)`.
"""

from __future__ import annotations

import functools
import json

import keras
import tensorflow as tf

from lrsearch import internals

#: Optimizer attributes a trial varies; read by `update_step`, so made `Knob`s.
TUNED_OPTIMIZER_ATTRS = ("momentum",)


@functools.total_ordering
class Knob:
    """A number that traced code reads from a variable and Python code compares as its
    current value (as in SGD's `if self.momentum != 0`)."""

    def __init__(self, value: float) -> None:
        self.value = float(value)
        self.variable = tf.Variable(self.value, trainable=False, dtype=tf.float32)

    def assign(self, value: float) -> None:
        self.value = float(value)
        self.variable.assign(self.value)

    def __tf_tensor__(self, dtype=None, name=None):
        return tf.cast(self.variable, dtype or tf.float32, name=name)

    def __float__(self) -> float:
        return self.value

    def __eq__(self, other) -> bool:
        return self.value == other.value if isinstance(other, Knob) else self.value == other

    def __lt__(self, other) -> bool:
        return self.value < other.value if isinstance(other, Knob) else self.value < other

    __hash__ = None

    def __repr__(self) -> str:
        return f"Knob({self.value})"


def reusable(model: keras.Model) -> bool:
    """Whether `model`'s config says all it computes: a plain Sequential or functional
    model, not a subclass of either."""
    return type(model) in (keras.Sequential, internals.functional_class())


def signature(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> str | None:
    """What two trials must share to train on one compiled model; None if the model's
    config cannot be read (a custom layer without `get_config`). `model` must be built."""
    try:
        model_config = model.get_config()
    except NotImplementedError:
        return None
    options = optimizer.get_config()
    for name in ("name", "learning_rate", *TUNED_OPTIMIZER_ATTRS):
        options.pop(name, None)
    for name in TUNED_OPTIMIZER_ATTRS:
        if hasattr(optimizer, name):
            options[f"{name} != 0"] = float(getattr(optimizer, name)) != 0
    schedule = internals.schedule_of(optimizer)
    key = {
        "model": [type(model).__qualname__, model_config, [(v.path, v.shape, v.dtype) for v in model.variables]],
        "optimizer": [type(optimizer).__qualname__, options],
        "schedule": None if schedule is None else [
            type(schedule).__qualname__, {k: v for k, v in schedule.get_config().items() if not _is_number(v)}
        ],
    }
    return json.dumps(key, sort_keys=True, default=str)


def make_tunable(optimizer: keras.optimizers.Optimizer) -> None:
    """Turn the numbers a trial varies into `Knob`s, before `optimizer` is first traced."""
    for owner, names in _tuned(optimizer):
        for name in names:
            setattr(owner, name, Knob(getattr(owner, name)))


def load(model: keras.Model, optimizer: keras.optimizers.Optimizer, fresh_model: keras.Model,
         fresh_optimizer: keras.optimizers.Optimizer) -> None:
    """Make the compiled `model` and its tunable `optimizer` start as `fresh_model` would
    with `fresh_optimizer`; both pairs have the same `signature`."""
    _assign(model.variables, fresh_model.variables)
    fresh_optimizer.build(model.trainable_variables)  # fresh slots, iteration and learning rate
    _assign(optimizer.variables, fresh_optimizer.variables)
    for (owner, names), (fresh, _) in zip(_tuned(optimizer), _tuned(fresh_optimizer)):
        for name in names:
            getattr(owner, name).assign(getattr(fresh, name))


def _tuned(optimizer) -> list[tuple[object, list[str]]]:
    """(object, attribute names) pairs of the numbers a trial varies."""
    pairs = [(optimizer, [name for name in TUNED_OPTIMIZER_ATTRS if hasattr(optimizer, name)])]
    schedule = internals.schedule_of(optimizer)
    if schedule is not None:
        pairs.append((schedule, [k for k, v in schedule.get_config().items() if _is_number(v)]))
    return pairs


def _is_number(value) -> bool:
    return isinstance(value, (int, float, Knob)) and not isinstance(value, bool)


def _assign(targets: list, sources: list) -> None:
    if len(targets) != len(sources):
        raise ValueError(f"cannot load {len(sources)} variables into {len(targets)}")
    for target, source in zip(targets, sources):
        target.assign(source)
