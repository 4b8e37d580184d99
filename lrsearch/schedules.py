"""Turn an `LRConfig` into Keras objects, as `lrsearch.catalogue` describes them: the
optimizer (with its schedule) and the learning-rate callbacks. Used by the trial runner
and by `load_config` alike. Holds lrsearch's own 1cycle schedule, registered with Keras.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np

from lrsearch.catalogue import ONE_CYCLE_ANNIHILATION, OPTIMIZERS, SCHEDULES
from lrsearch.config import LRConfig


@keras.saving.register_keras_serializable(package="lrsearch")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The 1cycle policy: linear from `initial_lr` up to `peak_lr`, linear back down to
    `initial_lr`, then a last `annihilation` share of the steps down to `final_lr`.

    The peak sits at step `(1 - annihilation) / 2 * total_steps`, the middle of the cycle.
    """

    def __init__(
        self,
        initial_lr: float,
        peak_lr: float,
        final_lr: float,
        total_steps: int,
        annihilation: float = ONE_CYCLE_ANNIHILATION,
    ) -> None:
        if not 0 < initial_lr <= peak_lr:
            raise ValueError(f"OneCycle needs 0 < initial_lr <= peak_lr, but got {initial_lr} and {peak_lr}.")
        if not 0 < final_lr <= initial_lr:
            raise ValueError(f"OneCycle needs 0 < final_lr <= initial_lr, but got {final_lr}.")
        if total_steps < 2:
            raise ValueError(f"OneCycle needs total_steps >= 2, but got {total_steps}.")
        if not 0 <= annihilation < 1:
            raise ValueError(f"OneCycle needs 0 <= annihilation < 1, but got {annihilation}.")
        self.initial_lr = float(initial_lr)
        self.peak_lr = float(peak_lr)
        self.final_lr = float(final_lr)
        self.total_steps = int(total_steps)
        self.annihilation = float(annihilation)

    def __call__(self, step):
        return one_cycle_rate(step, self.initial_lr, self.peak_lr, self.final_lr, self.total_steps, self.annihilation)

    def get_config(self) -> dict:
        return {
            "initial_lr": self.initial_lr,
            "peak_lr": self.peak_lr,
            "final_lr": self.final_lr,
            "total_steps": self.total_steps,
            "annihilation": self.annihilation,
        }


def one_cycle_rate(step, initial, peak, final, total, annihilation):
    """The 1cycle learning rate at `step`; every argument may be a number or a tensor
    (a trial runner holds them in variables, lanes in per-lane tensors)."""
    ops = keras.ops
    step, initial, peak, final, total, annihilation = (
        ops.cast(value, "float32") for value in (step, initial, peak, final, total, annihilation)
    )
    half = ops.maximum(1.0, total * (1.0 - annihilation) / 2.0)
    cycle_end = 2.0 * half
    tail = ops.maximum(1.0, total - cycle_end)
    up = initial + (peak - initial) * step / half
    down = peak - (peak - initial) * (step - half) / half
    anneal = initial + (final - initial) * ops.minimum((step - cycle_end) / tail, 1.0)
    return ops.where(step < half, up, ops.where(step < cycle_end, down, anneal))


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
    an epoch. Should Keras rename `_set_monitor_op`, this is Keras' class unchanged."""

    def _set_monitor_op(self):
        super()._set_monitor_op()
        self.monitor_op = {keras.ops.less: np.less, keras.ops.greater: np.greater}.get(self.monitor_op,
                                                                                         self.monitor_op)


_CALLBACKS = {"ReduceLROnPlateau": ReduceLROnPlateau}
