"""Train a compiled Keras model with whole epochs inside compiled functions.

For the small models a learning-rate search trains, `model.fit` spends most of its time
on per-step and per-epoch Python overhead, not arithmetic. `fit` here keeps Keras'
semantics - the model's own `train_step`/`test_step`, its optimizer and metrics, the
same logs (`loss`, metrics, `val_*`) and epoch-level callbacks - but runs every batch of
an epoch inside one `tf.function`, shuffling the rows each epoch. A non-finite loss
stops the epoch at the batch where it appears.

Its validation values are those `model.fit(validation_data=...)` reports: evaluated in
batches of the training batch size (`eval_batch`), or in one large batch where no value
the model logs depends on how the rows are batched (`batch_free`).

It falls back to `model.fit` for what it cannot serve (datasets, custom `train_step`).
A `Trainer` also keeps compiled models across calls (see `lrsearch.training._kept_models`), so trials
of an architecture it has seen skip building, compiling and tracing.
"""

from __future__ import annotations

import collections
import inspect
import logging
import math
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from lrsearch import internals
from lrsearch.study import data
from lrsearch.training import _kept_models as kept_models
from lrsearch.training._lane_optimizer import hyperparameters

log = logging.getLogger(__name__)

#: Rows per validation step where no logged value depends on how the rows are batched.
LARGE_EVAL_BATCH = 4096
#: Keras' losses and metrics whose value over a validation set is the same however its rows
#: are batched: a mean over rows, or counts summed over rows (AUC, precision, F1, IoU, R2).
#: Keras averages other metrics over batches, one value a batch: a metric function of the
#: user's (an F1 over each batch), its own correlations, a multi-output model's per-output
#: losses (plain `Mean`s here).
BATCH_FREE_LOSSES = frozenset({
    "binary_crossentropy", "binary_focal_crossentropy", "categorical_crossentropy", "categorical_focal_crossentropy",
    "sparse_categorical_crossentropy", "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "cosine_similarity", "huber", "log_cosh", "hinge", "squared_hinge",
    "categorical_hinge", "kl_divergence", "poisson",
    "BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy", "CategoricalFocalCrossentropy",
    "SparseCategoricalCrossentropy", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "CosineSimilarity", "Huber", "LogCosh", "Hinge", "SquaredHinge",
    "CategoricalHinge", "KLDivergence", "Poisson"})
BATCH_FREE_METRICS = frozenset({
    "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy", "BinaryCrossentropy", "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "RootMeanSquaredError", "CosineSimilarity", "LogCoshError", "KLDivergence",
    "Poisson", "Hinge", "SquaredHinge", "CategoricalHinge", "AUC", "Precision", "Recall", "TruePositives",
    "TrueNegatives", "FalsePositives", "FalseNegatives", "PrecisionAtRecall", "RecallAtPrecision",
    "SensitivityAtSpecificity", "SpecificityAtSensitivity", "F1Score", "FBetaScore", "IoU", "MeanIoU", "BinaryIoU",
    "OneHotIoU", "OneHotMeanIoU", "R2Score"})
#: Keras layers that run the user's code, mask rows or add a loss per batch.
BATCH_BOUND_LAYERS = frozenset({"Lambda", "TFSMLayer", "JaxLayer", "FlaxLayer", "Masking", "ActivityRegularization"})
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
        with warnings.catch_warnings():  # a dataset of unknown length ends each epoch so: nothing ran out
            warnings.filterwarnings("ignore", "Your input ran out of data", UserWarning)
            return model.fit(train, validation_data=val, epochs=epochs, callbacks=list(callbacks), verbose=0,
                             shuffle=False)  # a dataset shuffles itself: Keras would ignore True with a warning
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
        loop = self.kept_loop(model, optimizer)
        if loop is None:
            model.compile(optimizer=optimizer, loss=self.loss, metrics=self.metrics)
            return fit(model, self.train, self.val, epochs=epochs, batch_size=self.batch_size,
                       callbacks=callbacks, shuffle=shuffle, seed=seed)
        return loop.run(epochs, list(callbacks), shuffle, seed)

    def kept_loop(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> "_EpochLoop | None":
        """The kept compiled model of `model`'s `kept_models.signature`, loaded with `model` and
        `optimizer` (compiled with a `kept_models.TableOptimizer` and traced if new); None where
        models are not kept, or a `TableOptimizer` cannot run `optimizer`."""
        if not (self.keep > 0 and kept_models.reusable(model) and can_run_fast(model, self.train, self.val) is None):
            return None
        lane = hyperparameters(optimizer)
        if isinstance(lane, str):
            return None
        if not model.built:
            model(data.take(self.train, 1)[0])
        key = kept_models.signature(model)
        if key is None:
            return None
        loop = self._loops.pop(key, None)
        if loop is None:
            table = kept_models.TableOptimizer(lane)
            model.compile(optimizer=table, loss=self.loss, metrics=self.metrics)
            if model.optimizer is not table:  # Keras wrapped it (a LossScaleOptimizer, for mixed_float16)
                return None
            loop = _EpochLoop(model, self.train, self.val, self.batch_size)
        else:
            kept_models.load(loop.model, model, lane)
        self._loops[key] = loop
        while len(self._loops) > self.keep:
            self._loops.popitem(last=False)
        return loop


def eval_batch(model: keras.Model, batch_size: int) -> int:
    """Rows per validation step of the compiled, built `model`: `batch_size`, as
    `model.fit(validation_data=...)` and `model.evaluate` take them, unless `batch_free`."""
    return LARGE_EVAL_BATCH if batch_free(model) else batch_size


def batch_free(model: keras.Model) -> bool:
    """Whether every value the compiled, built `model` logs on a validation set is the same
    however its rows are batched: a plain Sequential or functional model of Keras' own
    layers that mixes, masks and regularises no rows, with Keras' per-row losses and
    `BATCH_FREE_METRICS` only."""
    if not kept_models.reusable(model):
        return False  # its own call() may mix rows
    try:
        config = model.get_config()
    except NotImplementedError:  # a layer of the user's that Keras cannot describe
        return False
    tracker = internals.loss_tracker(model)
    metrics = [metric for metric in _flat_metrics(model.metrics) if metric is not tracker]
    return (_loss_batch_free(model.loss) and _config_batch_free(config)
            and all(type(m).__name__ in BATCH_FREE_METRICS and _keras_own(type(m))
                    and _config_batch_free(m.get_config()) for m in metrics))


def _flat_metrics(metrics: list) -> list:
    """`metrics` with Keras' containers (the compiled metrics) replaced by what they hold."""
    flat = []
    for metric in metrics:
        inner = getattr(metric, "metrics", None) if _keras_own(type(metric)) else None
        flat += _flat_metrics(inner) if isinstance(inner, list) else [metric]
    return flat


def _loss_batch_free(loss) -> bool:
    if loss is None:
        return True  # an output without a loss
    if isinstance(loss, dict):
        return all(_loss_batch_free(v) for v in loss.values())
    if isinstance(loss, (list, tuple)):
        return all(_loss_batch_free(v) for v in loss)
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        return (type(loss).__name__ in BATCH_FREE_LOSSES and _keras_own(type(loss))
                and loss.reduction in ("sum_over_batch_size", "mean") and _config_batch_free(loss.get_config()))
    return inspect.isfunction(loss) and loss.__name__ in BATCH_FREE_LOSSES and _keras_own(loss)


def _config_batch_free(config) -> bool:
    """Whether no part of a Keras config runs code of the user's, masks rows, adds a loss per
    batch or works along the rows' axis (an axis of None or 0; Keras ops other than ones
    along an axis or element by element)."""
    if isinstance(config, (list, tuple)):
        return all(_config_batch_free(v) for v in config)
    if not isinstance(config, dict):
        return True
    module = config.get("module")
    if module is not None and "class_name" in config:
        inner = config.get("config")
        if not (module == "keras" or module.startswith("keras.")) or config["class_name"] in BATCH_BOUND_LAYERS:
            return False
        if module.startswith("keras.src.ops") and isinstance(inner, dict) and set(inner) - {"name", "axis", "keepdims"}:
            return False
    if config.get("activity_regularizer") is not None or config.get("mask_zero"):
        return False
    for key in ("axis", "axes"):
        axis = config.get(key, -1)
        if axis is None or 0 in (axis if isinstance(axis, (list, tuple)) else [axis]):
            return False
    return all(_config_batch_free(v) for v in config.values())


def _keras_own(obj) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] == "keras"


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
        internals.symbolic_build(model, data.take(self.train, self.batch_size))
        self.eval_batch = eval_batch(model, batch_size)
        self.val_steps = math.ceil(data.rows(val) / self.eval_batch)
        self.loss_tracker = internals.loss_tracker(model)
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        # Without AutoGraph, as Keras' own trainer traces its steps: converting Keras' source took
        # longer than building the graph, in every worker's first trial of an architecture.
        self.train_epoch = tf.function(self._train_epoch, autograph=False,
                                       input_signature=[tf.TensorSpec([None], tf.int32)])
        self.evaluate = tf.function(self._evaluate, autograph=False, reduce_retracing=True)

    def _train_epoch(self, order):
        """Train on the rows of `order`, in batches, until they end or the loss is not finite:
        an epoch, or its first steps."""
        self.model.reset_metrics()  # in the graph: eager resets cost as much as a small epoch
        n = tf.size(order)

        def step(i, finite):
            rows = order[i * self.batch_size : tf.minimum((i + 1) * self.batch_size, n)]
            self.model.train_step(data.map_arrays(lambda t: tf.gather(t, rows), self.train))
            return i + 1, tf.reduce_all(tf.math.is_finite(self.loss_tracker.result()))

        steps = (n + self.batch_size - 1) // self.batch_size
        _, finite = tf.while_loop(lambda i, finite: (i < steps) & finite, step, (tf.constant(0), tf.constant(True)))
        return self.model.get_metrics_result(), finite

    def _evaluate(self):
        self.model.reset_metrics()
        n = tf.shape(data.leaves(self.val[0])[0])[0]

        def step(i):
            start, end = i * self.eval_batch, tf.minimum((i + 1) * self.eval_batch, n)
            self.model.test_step(data.map_arrays(lambda t: t[start:end], self.val))
            return (i + 1,)

        tf.while_loop(lambda i: i < self.val_steps, step, (tf.constant(0),))
        return self.model.get_metrics_result()

    def steps_run(self, steps: int):
        """A function that trains `steps` steps (an epoch, or its first steps; the weights train
        on, a trial loads its own) and evaluates the validation set once, traced already."""
        order = tf.constant(np.arange(min(steps, self.steps) * self.batch_size, dtype=np.int32) % self.n)

        def run() -> None:
            self.train_epoch(order)
            {name: float(value) for name, value in self.evaluate().items()}  # waits, as an epoch's logs do

        run()  # traces
        return run

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


def seconds(run, repeats: int = 3, calls: int = 1) -> float:
    """Seconds a call of `run()` takes: the fastest of `repeats` timings of `calls` calls in a row."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            run()
        times.append((time.perf_counter() - started) / calls)
    return min(times)


def end_epoch(callbacks: keras.callbacks.CallbackList, epoch: int, logs: dict) -> None:
    """`callbacks.on_epoch_end(epoch, logs)` for `logs` of plain floats, without Keras'
    check of every value for a tensor, a cost every epoch of every trial pays."""
    for callback in callbacks.callbacks:
        callback.on_epoch_end(epoch, logs)
