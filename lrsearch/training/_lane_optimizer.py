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
        lane.lr = float(optimizer.learning_rate.numpy())
    return lane


def learning_rate(h: dict, step):
    """A lane's learning rate at `step` (its optimizer's iterations), as its schedule gives it."""
    decayed = h["lr"] / (1.0 + h["decay"] * step)
    cycled = one_cycle_rate(step, h["initial"], h["lr"], h["final"], h["total"], h["annihilation"])
    return tf.where(h["cycle"] > 0, cycled, decayed)


def coefficients(h: dict) -> dict:
    """The coefficients of a lane's optimizer step that hold for all its steps (see `update`):
    a per-step cost in lanes, computed once a trial by a kept model's optimizer."""
    sgd, rmsprop, adagrad, adam = (tf.equal(h["kind"], float(code)) for code in range(4))
    zero, one = tf.zeros_like(h["lr"]), tf.ones_like(h["lr"])
    nesterov = h["nesterov"] > 0
    return {
        "a": tf.where(sgd, h["momentum"], one),
        "b": tf.where(adam, 1.0 - h["beta_1"], zero), "b_lr": tf.where(sgd, -one, zero),
        "a_in": tf.where(adam, one, zero),
        "c": tf.where(rmsprop, h["rho"], one),
        "d": tf.where(rmsprop, 1.0 - h["rho"], tf.where(sgd, zero, tf.where(adam, 1.0 - h["beta_2"], one))),
        "c_in": tf.where(adam, one, zero),
        "e": tf.where(sgd, tf.where(nesterov, h["momentum"], one), zero),
        "f_lr": tf.where(sgd & nesterov, -one, zero),
        "k_alpha": tf.where(adam, -one, zero),
        "l_lr": tf.where(rmsprop | adagrad, -one, zero),
        "eps_in": tf.where(adam, zero, tf.where(sgd, one, h["epsilon"])),
        "eps_out": tf.where(adam, h["epsilon"], zero),
        "beta_1": h["beta_1"], "beta_2": h["beta_2"],
    }


def update(k: dict, step, lr, weight, gradient, m, v, square=None):
    """One optimizer step of a lane (all its weights in one vector), as Keras' SGD,
    RMSprop, Adagrad and Adam take it, with the lane's `coefficients` `k`; `square` is the
    gradient's square where it is not `tf.square(gradient)` (Keras squares sparse gradients
    row by row).

    Every kind is one form (few operations on the vectors, which are most of a step's
    cost): m' = a m + b (g - a_in m), v' = c v + d (g^2 - c_in v), and the weight moves by
    e m' + f g + (alpha_k m' + l g) / (sqrt(v' + eps_in) + eps_out), where b, f and l
    scale with the rate and alpha_k with Adam's bias-corrected rate. Each kind's terms
    round as Keras' own (Adam's m + (g - m)(1 - beta_1)): a BatchNorm CNN trained with Adam
    turns a last-bit difference into a different model within an epoch."""
    square = tf.square(gradient) if square is None else square
    local_step = step + 1.0
    alpha = lr * tf.sqrt(1.0 - tf.pow(k["beta_2"], local_step)) / (1.0 - tf.pow(k["beta_1"], local_step))
    new_m = k["a"] * m + (k["b"] + k["b_lr"] * lr) * (gradient - k["a_in"] * m)
    new_v = k["c"] * v + k["d"] * (square - k["c_in"] * v)
    moved = (k["k_alpha"] * alpha) * new_m + (k["l_lr"] * lr) * gradient
    delta = k["e"] * new_m + (k["f_lr"] * lr) * gradient + moved / (tf.sqrt(new_v + k["eps_in"]) + k["eps_out"])
    return weight + delta, new_m, new_v
