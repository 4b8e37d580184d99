"""A lane's optimizer and schedule as numbers, and Keras' optimizer math re-implemented on them.

A lane runs SGD with momentum/Nesterov, RMSprop, Adagrad or Adam with their
hyperparameters, under a constant rate, inverse time decay or 1cycle: `hyperparameters`
turns a Keras optimizer into a `LaneOptimizer` (or says why a lane cannot run it), and
`update` takes one step of it as Keras would, for every lane at once.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from lrsearch import internals
from lrsearch.lr import OneCycle, one_cycle_rate

#: Optimizer kinds a lane can run, in the order of their codes.
KINDS = ("sgd", "rmsprop", "adagrad", "adam")
#: Optimizer options a lane cannot vary from Keras' defaults.
_FIXED_OPTIONS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                  "use_ema": False, "loss_scale_factor": None, "gradient_accumulation_steps": None,
                  "centered": False, "amsgrad": False}


@dataclasses.dataclass
class LaneOptimizer:
    """A lane's optimizer and schedule as numbers (see `hyperparameters`)."""

    kind: int
    lr: float
    momentum: float = 0.0
    nesterov: float = 0.0
    rho: float = 0.9
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    accumulator: float = 0.1
    decay: float = 0.0
    cycle: float = 0.0  # 1 for a 1cycle schedule over the fields below
    initial: float = 1.0
    final: float = 1.0
    total: float = 2.0
    annihilation: float = 0.1


#: The fields of a `LaneOptimizer`, in the order of the compiled epoch's hyperparameter table.
FIELDS = tuple(field.name for field in dataclasses.fields(LaneOptimizer))
#: What an empty lane computes with.
IDLE = LaneOptimizer(kind=0, lr=0.0)


def hyperparameters(optimizer: keras.optimizers.Optimizer) -> LaneOptimizer | str:
    """`optimizer` as a `LaneOptimizer`, or why a lane cannot run it."""
    kind = type(optimizer).__name__.lower()
    if kind not in KINDS or type(optimizer) is not getattr(keras.optimizers, type(optimizer).__name__):
        return f"the optimizer is {type(optimizer).__name__}"
    options = optimizer.get_config()
    for name, default in _FIXED_OPTIONS.items():
        if options.get(name, default) != default:
            return f"the optimizer sets {name}={options[name]!r}"
    if kind == "rmsprop" and options["momentum"]:
        return "RMSprop has momentum"
    rate = internals.schedule_of(optimizer)
    lane = LaneOptimizer(kind=KINDS.index(kind), lr=1.0, epsilon=options.get("epsilon", 1e-7))
    if kind == "sgd":
        lane.momentum, lane.nesterov = float(options["momentum"]), float(bool(options["nesterov"]))
    elif kind == "rmsprop":
        lane.rho = float(options["rho"])
    elif kind == "adagrad":
        lane.accumulator = float(options["initial_accumulator_value"])
    else:
        lane.beta_1, lane.beta_2 = float(options["beta_1"]), float(options["beta_2"])
    if isinstance(rate, OneCycle):
        lane.cycle, lane.lr = 1.0, rate.peak_lr
        lane.initial, lane.final, lane.total, lane.annihilation = (rate.initial_lr, rate.final_lr, rate.total_steps,
                                                                   rate.annihilation)
    elif isinstance(rate, keras.optimizers.schedules.InverseTimeDecay):
        if rate.staircase:
            return "the schedule is a staircase InverseTimeDecay"
        lane.lr, lane.decay = float(rate.initial_learning_rate), float(rate.decay_rate) / float(rate.decay_steps)
    elif isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return f"the schedule is {type(rate).__name__}"
    else:
        lane.lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    return lane


def learning_rate(h: dict, step):
    """A lane's learning rate at `step` (its optimizer's iterations), as its schedule gives it."""
    decayed = h["lr"] / (1.0 + h["decay"] * step)
    cycled = one_cycle_rate(step, h["initial"], h["lr"], h["final"], h["total"], h["annihilation"])
    return tf.where(h["cycle"] > 0, cycled, decayed)


def update(h: dict, step, lr, weight, gradient, m, v):
    """One optimizer step of a lane (all its weights in one vector), as Keras' SGD,
    RMSprop, Adagrad and Adam take it."""
    sgd, rmsprop, adagrad, adam = (tf.equal(h["kind"], float(code)) for code in range(4))
    square = tf.square(gradient)
    new_m = tf.where(sgd, m * h["momentum"] - gradient * lr,
                     tf.where(adam, m + (gradient - m) * (1.0 - h["beta_1"]), m))
    new_v = tf.where(rmsprop, h["rho"] * v + (1.0 - h["rho"]) * square,
                     tf.where(adagrad, v + square, tf.where(adam, v + (square - v) * (1.0 - h["beta_2"]), v)))
    local_step = step + 1.0
    alpha = lr * tf.sqrt(1.0 - tf.pow(h["beta_2"], local_step)) / (1.0 - tf.pow(h["beta_1"], local_step))
    sgd_delta = tf.where(h["nesterov"] > 0, new_m * h["momentum"] - gradient * lr, new_m)
    root_delta = -(lr * gradient) / tf.sqrt(new_v + h["epsilon"])
    adam_delta = -(new_m * alpha) / (tf.sqrt(new_v) + h["epsilon"])
    delta = tf.where(sgd, sgd_delta, tf.where(adam, adam_delta, root_delta))
    return weight + delta, new_m, new_v
