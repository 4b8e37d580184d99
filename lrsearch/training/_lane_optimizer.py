"""A lane's optimizer and schedule as numbers, and Keras' optimizer math re-implemented on them.

A lane runs SGD with momentum/Nesterov, RMSprop, Adagrad or Adam with their
hyperparameters, under a constant rate, inverse time decay or 1cycle: `hyperparameters`
turns a Keras optimizer into a `LaneOptimizer` (or says why a lane cannot run it), `table`
lays lanes' numbers out for a compiled step, and `update` takes one step as Keras would,
for every lane at once. A kept compiled model's `TableOptimizer` takes the same step.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
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


#: The fields of a `LaneOptimizer`.
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


def _over_sqrt(x, y, sizes=None):
    """x / sqrt(y) as Keras' steps take it, one variable at a time, when traced: TensorFlow's
    graph optimizer makes it x * rsqrt(y), and its vectorised rsqrt rounds an element by its
    place in the tensor (the last few of each take another path). So it is taken on each
    variable's slice (`sizes`), cut by slicing: the optimizer would hoist an rsqrt that
    follows a split, or precedes a concat, back onto the whole vector."""
    if sizes is None or len(sizes) == 1:
        return x * tf.math.rsqrt(y)
    ends = np.cumsum(sizes)
    return tf.concat([x[end - size:end] * tf.math.rsqrt(y[end - size:end]) for size, end in zip(sizes, ends)], 0)


def learning_rate(h: dict, step):
    """A lane's learning rate at `step` (its optimizer's iterations), as its schedule gives it."""
    decayed = h["lr"] / (1.0 + h["decay"] * step)
    cycled = one_cycle_rate(step, h["initial"], h["lr"], h["final"], h["total"], h["annihilation"])
    return tf.where(h["cycle"] > 0, cycled, decayed)


def coefficients(lane: LaneOptimizer) -> dict[str, float]:
    """The coefficients of `lane`'s step that hold for all its steps (see `update`), from
    Python floats as Keras computes its own (1 - beta_2 in float32 is off by 5e-5)."""
    kind = KINDS[int(lane.kind)]
    sgd, nesterov = kind == "sgd", lane.nesterov > 0
    return {
        "a": lane.momentum if sgd else 1.0, "b": 1.0 - lane.beta_1 if kind == "adam" else 0.0,
        "b_lr": -1.0 if sgd else 0.0, "a_in": 1.0 if kind == "adam" else 0.0,
        "c": lane.rho if kind == "rmsprop" else 1.0,
        "d": {"sgd": 0.0, "rmsprop": 1.0 - lane.rho, "adagrad": 1.0, "adam": 1.0 - lane.beta_2}[kind],
        "c_in": 1.0 if kind == "adam" else 0.0,
        "e": (lane.momentum if nesterov else 1.0) if sgd else 0.0, "f_lr": -1.0 if sgd and nesterov else 0.0,
        "k_alpha": -1.0 if kind == "adam" else 0.0, "l_lr": -1.0 if kind in ("rmsprop", "adagrad") else 0.0,
        "eps_in": {"sgd": 1.0, "adam": 0.0}.get(kind, lane.epsilon), "eps_out": lane.epsilon if kind == "adam" else 0.0,
    }


#: The rows of the compiled step's table (`table`): a `LaneOptimizer`'s fields, then its `coefficients`.
COLUMNS = (*FIELDS, *coefficients(IDLE))


def table(lanes: dict[int, LaneOptimizer], count: int) -> np.ndarray:
    """The compiled step's numbers for `count` lanes, those of `lanes` by index (`IDLE`
    elsewhere): one column a lane, one row for each of `COLUMNS`."""
    rows = np.empty((len(COLUMNS), count), np.float32)
    for index in range(count):
        lane = lanes.get(index, IDLE)
        rows[:, index] = [*(float(getattr(lane, name)) for name in FIELDS), *coefficients(lane).values()]
    return rows


def update(h: dict, step, lr, weight, gradient, m, v, square=None, sizes=None):
    """One optimizer step of a lane (all its weights in one vector), as Keras' SGD,
    RMSprop, Adagrad and Adam take it; `h` is its `table` column by name; `square` is the
    gradient's square where it is not `tf.square(gradient)` (Keras squares sparse gradients
    row by row); `sizes`, the variables' sizes in the vector, where it must round as Keras'
    own to the last bit (`_over_sqrt`).

    Every kind is one form (few operations on the vectors, which are most of a step's
    cost): m' = a m + b (g - a_in m), v' = c v + d (g^2 - c_in v), and the weight moves by
    e m' + f g + (k m' + l g) / (sqrt(v' + eps_in) + eps_out), where b, f and l scale
    with the rate and k with Adam's bias-corrected rate. Each kind's terms round as Keras'
    own in a traced step (Adam's m + (g - m)(1 - beta_1); RMSprop's and Adagrad's
    x / sqrt(y), which TensorFlow's graph optimizer turns into x * rsqrt(y)): a BatchNorm
    CNN, or RMSprop at a high rate, turns a last-bit difference into another model."""
    square = tf.square(gradient) if square is None else square
    local_step = step + 1.0
    alpha = lr * tf.sqrt(1.0 - tf.pow(h["beta_2"], local_step)) / (1.0 - tf.pow(h["beta_1"], local_step))
    new_m = h["a"] * m + (h["b"] + h["b_lr"] * lr) * (gradient - h["a_in"] * m)
    new_v = h["c"] * v + h["d"] * (square - h["c_in"] * v)
    moved = (h["k_alpha"] * alpha) * new_m + (h["l_lr"] * lr) * gradient
    scaled = tf.where(h["eps_out"] > 0, moved / (tf.sqrt(new_v + h["eps_in"]) + h["eps_out"]),
                      _over_sqrt(moved, new_v + h["eps_in"], sizes))
    delta = h["e"] * new_m + (h["f_lr"] * lr) * gradient + scaled
    return weight + delta, new_m, new_v
