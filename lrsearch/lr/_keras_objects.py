"""Turn an `LRConfig` into Keras objects, as `lrsearch.lr._catalogue` describes them: the
optimizer (with its schedule) and the learning-rate callbacks. Used by the trial runner
and by `load_config` alike.
"""

from __future__ import annotations

import weakref

import keras

from lrsearch.lr._catalogue import OPTIMIZERS, SCHEDULES
from lrsearch.lr._config import LRConfig


class LearningRateMonitor(keras.callbacks.Callback):
    """Records the optimizer's learning rate at the end of each epoch (the seed's
    LearningRateMonitor), in `self.lrs` and in the epoch's logs as `lr`.

    A schedule is evaluated in a compiled function kept per optimizer: eagerly it costs
    about 1.4 ms an epoch, a third of a small model's epoch."""

    _compiled: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        super().__init__()
        self.lrs: list[float] = []

    def on_train_begin(self, logs=None) -> None:
        self.lrs = []

    def on_epoch_end(self, epoch, logs=None) -> None:
        lr = float(keras.ops.convert_to_numpy(self._current(self.model.optimizer)))
        self.lrs.append(lr)
        if logs is not None:
            logs["lr"] = lr

    @classmethod
    def _current(cls, optimizer):
        from lrsearch.internals import schedule_of

        schedule = schedule_of(optimizer)
        if schedule is None:
            return optimizer.learning_rate
        if optimizer not in cls._compiled:
            import tensorflow as tf

            ref = weakref.ref(optimizer)  # a strong one would keep the key alive
            cls._compiled[optimizer] = tf.function(lambda: schedule_of(ref())(ref().iterations))
        return cls._compiled[optimizer]()


def make_optimizer(config: LRConfig, steps_per_epoch: int, epochs: int) -> keras.optimizers.Optimizer:
    """A fresh Keras optimizer for `config`, its schedule attached."""
    entry = OPTIMIZERS[config.optimizer]
    return getattr(keras.optimizers, entry.keras_class)(
        learning_rate=make_learning_rate(config, steps_per_epoch, epochs), **entry.options(config))


def make_learning_rate(config: LRConfig, steps_per_epoch: int, epochs: int):
    """The learning rate argument: a float, or a schedule over optimizer iterations."""
    return SCHEDULES[config.schedule].learning_rate(config, steps_per_epoch, epochs)


def make_callbacks(config: LRConfig, monitor: str, mode: str) -> list[keras.callbacks.Callback]:
    """The learning-rate callbacks `config` needs (ReduceLROnPlateau for `plateau`);
    `mode` is the study's direction, "maximize" or "minimize"."""
    return [(_CALLBACKS.get(name) or getattr(keras.callbacks, name))(**options)
            for name, options in SCHEDULES[config.schedule].callbacks(config, monitor, mode)]


class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau, comparing the monitored floats with NumPy: Keras' own
    makes a tensor of each epoch's comparison, which costs more than a lane's share of
    an epoch (see `lrsearch.internals.numpy_monitor_op`)."""

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.monitor_op is None:
            from lrsearch.internals import numpy_monitor_op

            numpy_monitor_op(self)
        super().on_epoch_end(epoch, logs)


_CALLBACKS = {"ReduceLROnPlateau": ReduceLROnPlateau}
