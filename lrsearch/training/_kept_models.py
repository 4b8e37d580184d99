"""Reuse compiled training across trials of one architecture.

Tracing a model's epoch functions costs more than dozens of a small model's epochs (blobs:
0.33 s against 5 ms an epoch; a CNN's trace takes about a second), and most trials of a
search are pruned early. So a worker keeps, per architecture, one compiled model with its
traced epoch loop, and loads each new trial into it: the new model's initial weights (and
dropout seeds) and the trial's optimizer. The kept model trains with a `TableOptimizer`:
Keras' SGD, RMSprop, Adagrad and Adam under a constant rate, inverse time decay or 1cycle,
told apart by numbers in a variable, so that no trial's optimizer or schedule retraces.

What must match for reuse (the `signature`): the model's class, config and variable
shapes, and an optimizer that a `TableOptimizer` runs (`_lane_optimizer.hyperparameters`).
Subclassed models are never reused: their config need not describe what they compute. A
study whose `build_model` varies something its layers' configs do not show turns reuse off
with `Settings(keep_compiled=False)`.
"""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import tensorflow as tf

from lrsearch import internals
from lrsearch.training._lane_optimizer import COLUMNS, KINDS, LaneOptimizer, learning_rate, table, update


class TableOptimizer(keras.optimizers.Optimizer):
    """One optimizer for every `LaneOptimizer`: its numbers (kind, rate, schedule) are
    variables that `load` sets, and its step is `_lane_optimizer.update`, Keras' own math,
    taken on all the model's weights at once as one vector (few operations a step, which
    is what a small model's step costs). `learning_rate` is the rate at the current step,
    as the trial's schedule gives it; setting it (ReduceLROnPlateau) sets the base rate."""

    def __init__(self, lane: LaneOptimizer) -> None:
        super().__init__(learning_rate=float(lane.lr), name="lrsearch_table_optimizer")
        self._table = tf.Variable(_row(lane), trainable=False, name="lrsearch_table")
        self._base = tf.Variable(float(lane.lr), trainable=False, name="lrsearch_base_rate")
        self._lane = lane
        self._rate_now = tf.function(self._rate)  # an eager schedule costs a third of a small model's epoch

    def build(self, variables) -> None:
        if self.built:
            return
        super().build(variables)
        size = sum(int(np.prod(v.shape)) for v in variables)
        self._m = self.add_variable((size,), name="m")
        self._v = self.add_variable((size,), name="v",  # built in Keras' stateless scope: no assign here
                                    initializer=keras.initializers.Constant(_first_v(self._lane)))

    def load(self, lane: LaneOptimizer) -> None:
        """Start afresh as `lane`'s optimizer: its numbers, step 0, fresh slots."""
        self._lane = lane
        self._table.assign(_row(lane))
        self._base.assign(lane.lr)
        self.iterations.assign(0)
        self._m.assign(tf.zeros(self._m.shape))
        self._v.assign(tf.fill(self._v.shape, _first_v(lane)))

    def _numbers(self) -> dict:
        """The trial's `_lane_optimizer.table` column by name, its base rate the one set last
        (`learning_rate`), and whether it has a schedule."""
        row = tf.unstack(tf.convert_to_tensor(self._table))
        return {**dict(zip(COLUMNS, row)), "scheduled": row[-1], "lr": tf.convert_to_tensor(self._base)}

    def _rate(self, numbers: dict | None = None):
        """The rate at the current step: a schedule's only where the trial has one."""
        numbers = self._numbers() if numbers is None else numbers
        return tf.cond(numbers["scheduled"] > 0,
                       lambda: learning_rate(numbers, tf.cast(self.iterations, tf.float32)), lambda: numbers["lr"])

    @property
    def learning_rate(self):
        if not tf.executing_eagerly():
            return self._rate()
        return self._rate_now() if _scheduled(self._lane) else self._base

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self._base.assign(value)

    def apply(self, grads, trainable_variables=None) -> None:
        """One step on every variable (no clipping, loss scaling or averaging to apply: a
        `LaneOptimizer` has none), then the variables' constraints, as Keras' `apply`."""
        variables = list(trainable_variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]  # a variable the loss skips
        if not self.built:
            self.build(variables)
        numbers, step = self._numbers(), tf.cast(self.iterations, tf.float32)
        sparse = any(isinstance(g, tf.IndexedSlices) for g in grads)
        sizes = [int(np.prod(variable.shape)) for variable in variables]
        weight, m, v = update(numbers, step, self._rate(numbers), _flat(variables), _flat(grads),
                              self._m, self._v, _flat(_squares(grads)) if sparse else None, sizes)
        self._m.assign(m)
        self._v.assign(v)
        for variable, value in zip(variables, tf.split(weight, sizes)):
            variable.assign(tf.cast(tf.reshape(value, variable.shape), variable.dtype))
            if variable.constraint is not None:
                variable.assign(variable.constraint(variable))
        self.iterations.assign_add(1)

    def get_config(self) -> dict:
        return {**super().get_config(), **dataclasses.asdict(self._lane)}


def _flat(tensors) -> tf.Tensor:
    """`tensors` (dense, or an Embedding's IndexedSlices) as one float32 vector."""
    return tf.concat([tf.reshape(tf.cast(tf.convert_to_tensor(t), tf.float32), [-1]) for t in tensors], 0)


def _squares(grads) -> list:
    """Each gradient's square as Keras' optimizers take it: an Embedding's IndexedSlices row by row, summed where
    rows repeat."""
    return [tf.IndexedSlices(tf.square(g.values), g.indices, g.dense_shape) if isinstance(g, tf.IndexedSlices)
            else tf.square(g) for g in grads]


def _first_v(lane: LaneOptimizer) -> float:
    """What the second-moment slots start at: Adagrad's initial accumulator, else 0."""
    return lane.accumulator if lane.kind == KINDS.index("adagrad") else 0.0


def _row(lane: LaneOptimizer) -> np.ndarray:
    """`lane`'s column of `_lane_optimizer.table`, and last whether it has a schedule."""
    return np.append(table({0: lane}, 1)[:, 0], np.float32(_scheduled(lane)))


def _scheduled(lane: LaneOptimizer) -> bool:
    """Whether `lane`'s rate changes by itself (inverse time decay or 1cycle)."""
    return bool(lane.cycle or lane.decay)


def reusable(model: keras.Model) -> bool:
    """Whether `model`'s config says all it computes: a plain Sequential or functional
    model, not a subclass of either."""
    return type(model) in (keras.Sequential, internals.functional_class())


def signature(model: keras.Model) -> str | None:
    """What two trials' models must share to train on one compiled model; None if the
    model's config cannot be read (a custom layer without `get_config`), or a weight it
    trains is not float32 (a `TableOptimizer` steps in float32). `model` must be built."""
    if any(v.dtype != "float32" for v in model.trainable_variables):
        return None
    try:
        model_config = model.get_config()
    except NotImplementedError:
        return None
    key = [type(model).__qualname__, model_config, [(v.path, v.shape, v.dtype) for v in model.variables]]
    return json.dumps(key, sort_keys=True, default=str)


def load(model: keras.Model, fresh_model: keras.Model, lane: LaneOptimizer) -> None:
    """Make the compiled `model` start as `fresh_model` would with `lane`'s optimizer;
    both models have the same `signature`."""
    _assign(model.variables, fresh_model.variables)
    model.optimizer.load(lane)


def _assign(targets: list, sources: list) -> None:
    if len(targets) != len(sources):
        raise ValueError(f"cannot load {len(sources)} variables into {len(targets)}")
    for target, source in zip(targets, sources):
        target.assign(source)
