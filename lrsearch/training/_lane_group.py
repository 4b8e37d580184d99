"""K lanes of one architecture in one compiled epoch.

A small model's trial pays for per-step dispatch, not arithmetic, so trials of one
architecture share their steps: a `LaneGroup` stacks K models' weights, optimizer
slots and hyperparameters along a leading axis and trains all K in one compiled epoch,
with `tf.vectorized_map` over Keras' `stateless_call` and `stateless_compute_loss`.
Each lane keeps what a trial alone has: its initial weights, its own batch order
(shuffled with its seed), its optimizer and schedule (`_lane_optimizer`; ReduceLROnPlateau
through its callback), its metrics, and it stops at the batch where its loss becomes
non-finite. Lanes need not be at the same epoch. The lanes' validation values are evaluated
in the steps a trial alone takes (`epoch_loop.eval_batch`).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from lrsearch import internals
from lrsearch.study import data
from lrsearch.training import _epochs as epoch_loop
from lrsearch.training._lane_optimizer import COLUMNS, KINDS, LaneOptimizer, learning_rate, table, update


class SparseGradients(ValueError):
    """A model whose gradients are sparse, which lanes cannot train as Keras does."""


class LaneGroup:
    """K lanes of one architecture: stacked variables and the compiled epoch that trains
    the lanes in use. A lane's trainable weights, and its optimizer's two slots, are
    each one flat vector, so that an optimizer step is a few ops however many variables
    the model has. Not thread-safe; `Lanes` serialises calls."""

    def __init__(self, template: keras.Model, train, val, *, loss, metrics, batch_size: int, lanes: int,
                 fallback: bool = True) -> None:
        self.template = template
        self.k = lanes
        self.fallback = fallback  # ops without a vectorised form run lane by lane in a loop, instead of failing
        self.lane_by_lane: str | None = None  # then: the first such op, if any
        self.n = data.rows(train)
        self.batch_size = min(batch_size, self.n)
        self.steps = math.ceil(self.n / self.batch_size)
        self.train = data.map_arrays(tf.constant, train)
        self.val = data.map_arrays(tf.constant, val)
        self.val_rows = data.rows(val)
        template.compile(optimizer="sgd", loss=loss, metrics=metrics)
        internals.symbolic_build(template, data.take(self.train, self.batch_size))
        self.loss_tracker = internals.loss_tracker(template)
        self.eval_batch = epoch_loop.eval_batch(template, batch_size)
        template.reset_metrics()
        self.metric_start = [tf.constant(v.numpy()) for v in template.metrics_variables]

        if any(v.dtype != "float32" for v in template.trainable_variables):
            raise TypeError("its weights are not all float32 (mixed precision)")
        self.shapes = [tuple(v.shape) for v in template.trainable_variables]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.weights = tf.Variable(tf.stack([self._flat(template.trainable_variables)] * lanes), trainable=False)
        self.states = [tf.Variable(tf.stack([v.value] * lanes), trainable=False)
                       for v in template.non_trainable_variables]
        self.m = tf.Variable(tf.zeros_like(self.weights), trainable=False)
        self.v = tf.Variable(tf.zeros_like(self.weights), trainable=False)
        self.val_steps = math.ceil(self.val_rows / self.eval_batch)
        internals.vectorize_bitcast()  # Keras' losses bitcast (`signbit`) inside the vectorized step
        self.run_epoch = tf.function(self._epoch, autograph=False, input_signature=[
            tf.TensorSpec([lanes, None], tf.int32), tf.TensorSpec([len(COLUMNS), lanes], tf.float32),
            tf.TensorSpec([lanes], tf.float32), tf.TensorSpec([lanes], tf.bool), tf.TensorSpec([], tf.int32)])

    # ------------------------------------------------------------------ host side

    def load(self, lane: int, model: keras.Model, optimizer: LaneOptimizer) -> None:
        """Start `lane` as `model` (same architecture, initial weights) with `optimizer`."""
        self.weights[lane].assign(self._flat(model.trainable_variables))
        for stack, variable in zip(self.states, model.non_trainable_variables):
            stack[lane].assign(variable.value)
        start = optimizer.accumulator if optimizer.kind == KINDS.index("adagrad") else 0.0
        self.m[lane].assign(tf.zeros(self.m.shape[1:]))
        self.v[lane].assign(tf.fill(self.v.shape[1:], start))

    def lane_weights(self, lane: int) -> list[np.ndarray]:
        """The trainable weights of `lane`, shaped as the model's variables."""
        return [part.numpy() for part in self._views(self.weights[lane])]

    @staticmethod
    def _flat(variables) -> tf.Tensor:
        return tf.concat([tf.reshape(v.value, [-1]) for v in variables], 0)

    def _views(self, flat) -> list:
        return [tf.reshape(part, shape) for part, shape in zip(tf.split(flat, self.sizes), self.shapes)]

    def trace(self) -> None:
        """Compile the epoch and evaluation functions, running one step of idle lanes and no
        evaluation; raises what vectorising the model raises."""
        self._idle_steps(1, evaluate=False)

    def steps_run(self, steps: int):
        """A function that trains `steps` steps of all lanes and evaluates them once, as
        `epoch_loop._EpochLoop.steps_run` does one trial (traced by `trace`)."""
        return lambda: self._idle_steps(min(steps, self.steps))

    def _idle_steps(self, steps: int, evaluate: bool = True) -> None:
        """`steps` training steps of idle lanes, which cost what active lanes do, then an evaluation."""
        orders = np.tile(np.arange(steps * self.batch_size, dtype=np.int32) % self.n, (self.k, 1))
        self.epoch(orders, table({}, self.k), np.zeros(self.k, np.float32), np.zeros(self.k, bool), evaluate=evaluate)

    def epoch(self, orders: np.ndarray, numbers: np.ndarray, steps: np.ndarray, active: np.ndarray,
              evaluate: bool = True):
        """Train the `active` lanes from their `steps` (iterations so far), each on the rows
        of its row of `orders` (an epoch), with its column of `numbers` (`_lane_optimizer.table`),
        then evaluate them. Per-lane numpy results: (logs by name, finite, lr at the end)."""
        logs, finite, lr = self.run_epoch(tf.constant(orders), tf.constant(numbers), tf.constant(steps, tf.float32),
                                          tf.constant(active), tf.constant(self.val_steps if evaluate else 0))
        return {name: value.numpy() for name, value in logs.items()}, finite.numpy(), lr.numpy()

    # ----------------------------------------------------------------- compiled

    def _lane_step(self, args):
        weights, states, metrics, m, v, h, step, batch = args
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        model = self.template
        with tf.GradientTape() as tape:
            tape.watch(weights)
            views = self._views(weights)
            y_pred, states = model.stateless_call(views, states, x, training=True)
            loss, (_, states, metrics) = model.stateless_compute_loss(
                views, states, metrics, x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        gradients = tape.gradient(loss, views)
        if any(isinstance(g, tf.IndexedSlices) for g in gradients):
            raise SparseGradients("its gradients are sparse (an Embedding layer), which lanes do not update as "
                                   "Keras does")
        gradient = tf.concat([tf.reshape(g, [-1]) for g in gradients], 0)
        weights, m, v = update(h, step, learning_rate(h, step), weights, gradient, m, v)
        metrics = self._update_metrics(metrics, loss, x, y, y_pred, sample_weight)
        finite = tf.reduce_all(tf.math.is_finite(self._loss(metrics)))
        return weights, states, metrics, m, v, finite

    def _update_metrics(self, metrics, loss, x, y, y_pred, sample_weight):
        model = self.template
        with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, metrics))) as scope:
            self.loss_tracker.update_state(loss, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
            model.compute_metrics(x, y, y_pred, sample_weight)
        return [scope.get_current_value(v) for v in model.metrics_variables]

    def _loss(self, metrics):
        model = self.template
        with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, metrics))):
            return self.loss_tracker.result()

    def _results(self, metrics):
        model = self.template
        with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, metrics))):
            return model.get_metrics_result()

    def _epoch(self, orders, numbers, steps, active, val_steps):
        """Train (see `epoch`), then evaluate the lanes' new weights in `val_steps` batches, in one call."""
        logs, finite, lr = self._train_epoch(orders, dict(zip(COLUMNS, tf.unstack(numbers))), steps, active)
        logs.update({f"val_{name}": value for name, value in self._evaluate(val_steps).items()})
        return logs, finite, lr

    def _train_epoch(self, orders, hyper, steps, active):
        k = self.k
        metrics = [tf.stack([start] * k) for start in self.metric_start]
        state = (self.weights.value(), [s.value() for s in self.states], metrics, self.m.value(), self.v.value(),
                 steps, active)

        n = tf.shape(orders)[1]

        def body(i, weights, states, metrics, m, v, step, running):
            rows = orders[:, i * self.batch_size: tf.minimum((i + 1) * self.batch_size, n)]
            batch = data.map_arrays(lambda t: tf.gather(t, rows), self.train)
            new = tf.vectorized_map(self._lane_step, (weights, states, metrics, m, v, hyper, step, batch),
                                    fallback_to_while_loop=self.fallback)
            *new, finite = new
            old = (weights, states, metrics, m, v)
            kept = tf.nest.map_structure(lambda a, b: _select(running, a, b), tuple(new), old)
            return (i + 1, *kept, step + tf.cast(running, tf.float32), running & finite)

        batches = (n + self.batch_size - 1) // self.batch_size
        loop = tf.while_loop(lambda i, *rest: i < batches, body, (tf.constant(0), *state),
                             parallel_iterations=1)
        _, weights, states, metrics, m, v, step, running = loop
        for target, value in zip([self.weights, *self.states, self.m, self.v], [weights, *states, m, v]):
            target.assign(value)
        logs = tf.vectorized_map(self._results, metrics, fallback_to_while_loop=self.fallback)
        finite = running | ~active
        return logs, finite, tf.vectorized_map(lambda a: learning_rate(a[0], a[1]), (hyper, step))

    def _evaluate(self, steps):
        metrics = [tf.stack([start] * self.k) for start in self.metric_start]
        model = self.template
        weights = self.weights.value()
        states = [s.value() for s in self.states]

        def body(i, metrics):
            batch = data.map_arrays(lambda t: t[i * self.eval_batch:(i + 1) * self.eval_batch], self.val)
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)

            def lane(args):
                w, s, mv = args
                w = self._views(w)
                y_pred, s = model.stateless_call(w, s, x, training=False)
                loss, (_, s, mv) = model.stateless_compute_loss(w, s, mv, x=x, y=y, y_pred=y_pred,
                                                                sample_weight=sample_weight, training=False)
                return self._update_metrics(mv, loss, x, y, y_pred, sample_weight)

            return i + 1, tf.vectorized_map(lane, (weights, states, metrics), fallback_to_while_loop=self.fallback)

        _, metrics = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), metrics), parallel_iterations=1)
        return tf.vectorized_map(self._results, metrics, fallback_to_while_loop=self.fallback)


def _select(mask, new, old):
    """`new` in the lanes of `mask`, `old` elsewhere (lanes lead every tensor)."""
    shape = tf.concat([tf.shape(mask), tf.ones([tf.rank(new) - 1], tf.int32)], 0)
    return tf.where(tf.reshape(mask, shape), new, old)
