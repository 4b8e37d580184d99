"""lrsearch's 1cycle schedule, registered with Keras as 'lrsearch>OneCycle' when this
module is imported, and its rate as a function of tensors (which lanes use)."""

from __future__ import annotations

import keras

#: 1cycle's last phase: the share of training spent annealing below eta0.
ONE_CYCLE_ANNIHILATION = 0.1
#: How far below eta0 the 1cycle schedule ends.
ONE_CYCLE_FINAL_DIV = 1e3


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
    # The rate's slope is one number, which the step multiplies: written as a product and a
    # quotient of it, TensorFlow's graph optimizer would fold the two constants into one
    # where they are constants (Keras' optimizer), and round otherwise than eagerly or than
    # a trial runner's variables.
    slope = (peak - initial) / half
    up = initial + slope * step
    down = peak - slope * (step - half)
    anneal = initial + (final - initial) * ops.minimum((step - cycle_end) / tail, 1.0)
    return ops.where(step < half, up, ops.where(step < cycle_end, down, anneal))
