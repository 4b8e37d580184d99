"""Train a compiled Keras model with whole epochs inside compiled functions.

For the small models a learning-rate search trains, `model.fit` spends most of its time
on per-step and per-epoch Python overhead, not arithmetic. `fit` here keeps Keras'
semantics - the model's own `train_step`/`test_step`, its optimizer and metrics, the
same logs (`loss`, metrics, `val_*`) and epoch-level callbacks - but runs every batch of
an epoch inside one `tf.function`, shuffling the rows each epoch. A non-finite loss
stops the epoch at the batch where it appears.

It falls back to `model.fit` for what it cannot serve (datasets, custom `train_step`).
A `Trainer` also keeps compiled models across calls (see `lrsearch.training._kept_models`), so trials
of an architecture it has seen skip building, compiling and tracing.
"""

from __future__ import annotations

import collections
import logging
import math

import keras
import numpy as np
import tensorflow as tf

from lrsearch import internals
from lrsearch.study import data
from lrsearch.training import _kept_models as kept_models

log = logging.getLogger(__name__)

#: Rows per validation batch: large, since evaluation has no per-batch semantics to keep.
EVAL_BATCH = 4096
#: The key the fast loop adds to the logs when an epoch hit a non-finite loss.
NONFINITE_KEY = "nonfinite_loss"


def can_run_fast(model: keras.Model, train, val) -> str | None:
    """None if `fit` can run this model on these data in-graph, else why not."""
    if type(model).train_step is not keras.Model.train_step or type(model).test_step is not keras.Model.test_step:
        return "the model overrides train_step/test_step"
    for part in (train, val):
        if data.is_dataset(part):
            return "data() returns datasets, which only model.fit iterates"
        if not (isinstance(part, tuple) and len(part) in (2, 3)
                and all(isinstance(a, np.ndarray) for a in data.leaves(part))):
            return "the data are not in-memory arrays"
    return None


def training_path(model: keras.Model, train, val) -> str:
    """How `fit` trains this model on these data, in words."""
    why_not = can_run_fast(model, train, val)
    if why_not is None:
        return "lrsearch's compiled epoch loop (in-memory arrays)"
    return f"model.fit (slower), because {why_not}"


def fit(model: keras.Model, train, val, *, epochs: int, batch_size: int, callbacks=(), shuffle: bool = True,
        seed: int = 0) -> keras.callbacks.History:
    """Like `model.fit(x, y, validation_data=val, ...)`, with the same logs and History."""
    why_not = can_run_fast(model, train, val)
    if why_not is not None:
        _fallback_once(why_not)
        if isinstance(train, tuple):
            x, y, *weights = train
            return model.fit(x, y, sample_weight=weights[0] if weights else None, validation_data=val,
                             epochs=epochs, batch_size=batch_size, callbacks=list(callbacks), shuffle=shuffle,
                             verbose=0)
        return model.fit(train, validation_data=val, epochs=epochs, callbacks=list(callbacks), verbose=0)
    return _EpochLoop(model, train, val, batch_size).run(epochs, list(callbacks), shuffle, seed)


class Trainer:
    """Trains models on one dataset with one loss and metrics, like `fit`, keeping up to
    `keep` compiled models (least recently used go first) to load later trials into."""

    def __init__(self, train, val, *, loss, metrics, batch_size: int, keep: int) -> None:
        self.train, self.val = train, val
        self.loss, self.metrics, self.batch_size = loss, metrics, batch_size
        self.keep = keep
        self._loops: collections.OrderedDict[str, _EpochLoop] = collections.OrderedDict()

    def fit(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, *, epochs: int, callbacks=(),
            shuffle: bool = True, seed: int = 0) -> keras.callbacks.History:
        """Compile the uncompiled `model` with `optimizer` (or load both into a kept
        compiled model of the same `kept_models.signature`) and train it as `fit` does."""
        key = None
        if self.keep > 0 and kept_models.reusable(model) and can_run_fast(model, self.train, self.val) is None:
            if not model.built:
                model(data.take(self.train, 1)[0])
            key = kept_models.signature(model, optimizer)
        if key is None:
            model.compile(optimizer=optimizer, loss=self.loss, metrics=self.metrics)
            return fit(model, self.train, self.val, epochs=epochs, batch_size=self.batch_size,
                       callbacks=callbacks, shuffle=shuffle, seed=seed)
        loop = self._loops.pop(key, None)
        if loop is None:
            kept_models.make_tunable(optimizer)
            model.compile(optimizer=optimizer, loss=self.loss, metrics=self.metrics)
            loop = _EpochLoop(model, self.train, self.val, self.batch_size)
        else:
            kept_models.load(loop.model, loop.model.optimizer, model, optimizer)
        self._loops[key] = loop
        while len(self._loops) > self.keep:
            self._loops.popitem(last=False)
        return loop.run(epochs, list(callbacks), shuffle, seed)


_warned: set[str] = set()


def _fallback_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        log.warning("lrsearch: using model.fit (slower), because %s.", reason)


class _EpochLoop:
    """One compiled function trains an epoch, another evaluates the validation set."""

    def __init__(self, model: keras.Model, train, val, batch_size: int) -> None:
        self.model = model
        self.n = data.rows(train)
        self.batch_size = min(batch_size, self.n)
        self.steps = math.ceil(self.n / self.batch_size)
        self.train = data.map_arrays(tf.constant, train)
        self.val = data.map_arrays(tf.constant, val)
        self.val_steps = math.ceil(data.rows(val) / EVAL_BATCH)
        internals.symbolic_build(model, data.take(self.train, self.batch_size))
        self.loss_tracker = internals.loss_tracker(model)
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self.train_epoch = tf.function(self._train_epoch, reduce_retracing=True)
        self.evaluate = tf.function(self._evaluate, reduce_retracing=True)

    def _train_epoch(self, order):
        self.model.reset_metrics()  # in the graph: eager resets cost as much as a small epoch
        finite = tf.constant(True)
        for step in tf.range(self.steps):
            if not finite:
                break
            rows = order[step * self.batch_size : tf.minimum((step + 1) * self.batch_size, self.n)]
            self.model.train_step(data.map_arrays(lambda t: tf.gather(t, rows), self.train))
            finite = tf.reduce_all(tf.math.is_finite(self.loss_tracker.result()))
        return self.model.get_metrics_result(), finite

    def _evaluate(self):
        self.model.reset_metrics()
        n = tf.shape(data.leaves(self.val[0])[0])[0]
        for step in tf.range(self.val_steps):
            start, end = step * EVAL_BATCH, tf.minimum((step + 1) * EVAL_BATCH, n)
            self.model.test_step(data.map_arrays(lambda t: t[start:end], self.val))
        return self.model.get_metrics_result()

    def run(self, epochs: int, callbacks: list, shuffle: bool, seed: int) -> keras.callbacks.History:
        model = self.model
        history = keras.callbacks.History()
        callback_list = keras.callbacks.CallbackList(
            callbacks + [history], model=model, epochs=epochs, steps=self.steps, verbose=0
        )
        rng = np.random.default_rng(seed)
        identity = np.arange(self.n, dtype=np.int32)
        model.stop_training = False
        callback_list.on_train_begin()
        logs: dict = {}
        for epoch in range(epochs):
            callback_list.on_epoch_begin(epoch)
            order = rng.permutation(self.n).astype(np.int32) if shuffle else identity
            train_logs, finite = self.train_epoch(tf.constant(order))
            logs = {k: float(v) for k, v in train_logs.items()}
            if not bool(finite):
                logs[NONFINITE_KEY] = True  # the pruning callback stops the trial on this
                end_epoch(callback_list, epoch, logs)
                break
            logs.update({f"val_{k}": float(v) for k, v in self.evaluate().items()})
            end_epoch(callback_list, epoch, logs)
            if model.stop_training:
                break
        callback_list.on_train_end(logs)
        return history


def end_epoch(callbacks: keras.callbacks.CallbackList, epoch: int, logs: dict) -> None:
    """`callbacks.on_epoch_end(epoch, logs)` for `logs` of plain floats, without Keras'
    check of every value for a tensor, a cost every epoch of every trial pays."""
    for callback in callbacks.callbacks:
        callback.on_epoch_end(epoch, logs)
