"""Train several trials of one architecture at once, in lanes of one compiled step.

A small model's trial pays for per-step dispatch, not arithmetic, so trials of one
architecture share their steps: a `LaneGroup` stacks K models' weights, optimizer
slots and hyperparameters along a leading axis and trains all K in one compiled epoch,
with `tf.vectorized_map` over Keras' `stateless_call` and `stateless_compute_loss`.
Each lane keeps what a trial alone has: its initial weights, its own batch order
(shuffled with its seed), its optimizer (SGD with momentum/Nesterov, RMSprop, Adagrad
or Adam with their hyperparameters), its schedule (constant, inverse time decay,
1cycle; ReduceLROnPlateau through its callback), its metrics, and it stops at the
batch where its loss becomes non-finite. Lanes need not be at the same epoch.

`Lanes.fit` is `fastfit.Trainer.fit` for many threads at once: each thread hands one
trial to the group's engine thread, which runs the epochs and, after each, the trial's
callbacks on its own lane's logs; when the trial ends (what a callback raised, such as
optuna.TrialPruned, is raised in the trial's thread) the next trial takes the lane
while the others go on. Ops without a vectorised form run lane by lane inside the step.
What lanes cannot serve (another optimizer or option, sparse gradients, a subclassed
model, datasets) trains alone, one trial at a time, and `Lanes.why_not` says why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import threading

import keras
import numpy as np
import tensorflow as tf

from lrsearch import data, fastfit, internals, reuse
from lrsearch.schedules import OneCycle, one_cycle_rate

log = logging.getLogger(__name__)

#: Weights times rows a step of all lanes may carry on a CPU core, or a GPU, before an
#: epoch of all lanes costs much more than one trial's: more lanes train more trials a
#: second, but each finishes later, and a search waits on its first good trials (on a CPU
#: core, 4 blobs lanes reached a first good trial soonest; see the README's Performance).
#: And the most lanes a group has.
LANE_WORK = {"cpu": 5e4, "gpu": 5e7}
MAX_LANES = 32
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


_FIELDS = tuple(field.name for field in dataclasses.fields(LaneOptimizer))


#: What an empty lane computes with.
_IDLE = LaneOptimizer(kind=0, lr=0.0)


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


def architecture_key(model: keras.Model) -> str | None:
    """What models must share to train in one group: their config and variables, with
    layer names (which count up from model to model) numbered in order instead; None if
    lanes cannot take `model` (a subclassed model, a layer without a config)."""
    if not reuse.reusable(model):
        return None
    try:
        config = model.get_config()
    except NotImplementedError:
        return None
    names: dict[str, str] = {}

    def collect(value):
        if isinstance(value, dict):
            if isinstance(value.get("name"), str):
                names.setdefault(value["name"], f"#{len(names)}")
            for v in value.values():
                collect(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                collect(v)

    def renamed(value):
        if isinstance(value, str):
            return names.get(value, value)
        if isinstance(value, dict):
            return {k: renamed(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [renamed(v) for v in value]
        return value

    collect(config)
    variables = [(tuple(v.shape), str(v.dtype), v.trainable) for v in model.variables]
    return json.dumps([type(model).__qualname__, renamed(config), variables], sort_keys=True, default=str)


def auto_count(model: keras.Model, batch_size: int, device: str, cap: int) -> int:
    """Lanes for `model` on `device` ("cpu" or "gpu"): as many as a step's work allows
    (a power of two, at most MAX_LANES), and no more than `cap`."""
    work = max(1, model.count_params()) * max(1, batch_size)
    count = 2 ** max(0, int(math.log2(max(1.0, LANE_WORK[device] / work))))
    return max(1, min(count, MAX_LANES, cap))


def learning_rate(h: dict, step):
    """A lane's learning rate at `step` (its optimizer's iterations), as its schedule gives it."""
    decayed = h["lr"] / (1.0 + h["decay"] * step)
    cycled = one_cycle_rate(step, h["initial"], h["lr"], h["final"], h["total"], h["annihilation"])
    return tf.where(h["cycle"] > 0, cycled, decayed)


def _update(h: dict, step, lr, weight, gradient, m, v):
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


class LaneGroup:
    """K lanes of one architecture: stacked variables and the compiled epoch that trains
    the lanes in use. A lane's trainable weights, and its optimizer's two slots, are
    each one flat vector, so that an optimizer step is a few ops however many variables
    the model has. Not thread-safe; `Lanes` serialises calls."""

    def __init__(self, template: keras.Model, train, val, *, loss, metrics, batch_size: int, lanes: int,
                 lenient: bool = False) -> None:
        self.template = template
        self.k = lanes
        self.lenient = lenient  # ops without a vectorised form run lane by lane in a loop, instead of failing
        self.lane_by_lane: str | None = None  # then: the first such op, for people
        self.n = data.rows(train)
        self.batch_size = min(batch_size, self.n)
        self.steps = math.ceil(self.n / self.batch_size)
        self.train = data.map_arrays(tf.constant, train)
        self.val = data.map_arrays(tf.constant, val)
        self.val_rows = data.rows(val)
        template.compile(optimizer="sgd", loss=loss, metrics=metrics)
        internals.symbolic_build(template, data.take(self.train, self.batch_size))
        self.loss_tracker = internals.loss_tracker(template)
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
        self.run_epoch = tf.function(self._epoch, autograph=False)

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
        """Compile the epoch and evaluation functions (no lane trains); raises what
        vectorising the model raises."""
        idle = {name: np.full(self.k, getattr(_IDLE, name), np.float32) for name in _FIELDS}
        orders = np.tile(np.arange(self.n, dtype=np.int32), (self.k, 1))
        self.epoch(orders, idle, np.zeros(self.k, np.float32), np.zeros(self.k, bool))

    def epoch(self, orders: np.ndarray, hyper: dict[str, np.ndarray], steps: np.ndarray, active: np.ndarray):
        """Train the `active` lanes one epoch from their `steps` (iterations so far), each in
        its row of `orders`. Per-lane numpy results: (logs by name, finite, lr at the end)."""
        table = np.stack([np.asarray(hyper[name], np.float32) for name in _FIELDS])  # one tensor: one conversion
        logs, finite, lr = self.run_epoch(tf.constant(orders), tf.constant(table), tf.constant(steps, tf.float32),
                                          tf.constant(active))
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
            raise _SparseGradients("its gradients are sparse (an Embedding layer), which lanes do not update as "
                                   "Keras does")
        gradient = tf.concat([tf.reshape(g, [-1]) for g in gradients], 0)
        weights, m, v = _update(h, step, learning_rate(h, step), weights, gradient, m, v)
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

    def _epoch(self, orders, table, steps, active):
        """Train (see `epoch`), then evaluate the lanes' new weights, in one call."""
        logs, finite, lr = self._train_epoch(orders, dict(zip(_FIELDS, tf.unstack(table))), steps, active)
        logs.update({f"val_{name}": value for name, value in self._evaluate().items()})
        return logs, finite, lr

    def _train_epoch(self, orders, hyper, steps, active):
        k = self.k
        metrics = [tf.stack([start] * k) for start in self.metric_start]
        state = (self.weights.value(), [s.value() for s in self.states], metrics, self.m.value(), self.v.value(),
                 steps, active)

        def body(i, weights, states, metrics, m, v, step, running):
            rows = orders[:, i * self.batch_size: tf.minimum((i + 1) * self.batch_size, self.n)]
            batch = data.map_arrays(lambda t: tf.gather(t, rows), self.train)
            new = tf.vectorized_map(self._lane_step, (weights, states, metrics, m, v, hyper, step, batch),
                                    fallback_to_while_loop=self.lenient)
            *new, finite = new
            old = (weights, states, metrics, m, v)
            kept = tf.nest.map_structure(lambda a, b: _select(running, a, b), tuple(new), old)
            return (i + 1, *kept, step + tf.cast(running, tf.float32), running & finite)

        loop = tf.while_loop(lambda i, *rest: i < self.steps, body, (tf.constant(0), *state),
                             parallel_iterations=1)
        _, weights, states, metrics, m, v, step, running = loop
        for target, value in zip([self.weights, *self.states, self.m, self.v], [weights, *states, m, v]):
            target.assign(value)
        logs = tf.vectorized_map(self._results, metrics, fallback_to_while_loop=self.lenient)
        finite = running | ~active
        return logs, finite, tf.vectorized_map(lambda a: learning_rate(a[0], a[1]), (hyper, step))

    def _evaluate(self):
        k = self.k
        metrics = [tf.stack([start] * k) for start in self.metric_start]
        model = self.template
        weights = self.weights.value()
        states = [s.value() for s in self.states]
        for start in range(0, self.val_rows, fastfit.EVAL_BATCH):
            batch = data.map_arrays(lambda t: t[start:start + fastfit.EVAL_BATCH], self.val)
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)

            def lane(args):
                w, s, mv = args
                w = self._views(w)
                y_pred, s = model.stateless_call(w, s, x, training=False)
                loss, (_, s, mv) = model.stateless_compute_loss(w, s, mv, x=x, y=y, y_pred=y_pred,
                                                                sample_weight=sample_weight, training=False)
                return self._update_metrics(mv, loss, x, y, y_pred, sample_weight)

            metrics = tf.vectorized_map(lane, (weights, states, metrics), fallback_to_while_loop=self.lenient)
        return tf.vectorized_map(self._results, metrics, fallback_to_while_loop=self.lenient)


class Lanes:
    """`fastfit.Trainer.fit` for up to `lanes` threads at once, each training one trial
    in a lane of the group of its architecture; trials that lanes cannot serve train
    alone on `alone`, one at a time."""

    def __init__(self, train, val, *, loss, metrics, batch_size: int, lanes: int, alone: fastfit.Trainer) -> None:
        self.train, self.val = train, val
        self.loss, self.metrics, self.batch_size, self.lanes = loss, metrics, batch_size, lanes
        self.alone = alone
        self._alone_lock = threading.Lock()
        self._said: set[str] = set()
        self._groups: dict[str, _Engine] = {}
        self._groups_lock = threading.Lock()

    def why_not(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> str | None:
        """None if a lane can train `model` with `optimizer`, else why not (building the
        group of `model`'s architecture, and tracing it, the first time)."""
        return self._place(model, optimizer)[2]

    def lane_by_lane(self, model: keras.Model) -> str | None:
        """The first op that runs lane by lane in `model`'s group, if any (see `why_not`)."""
        key = architecture_key(model)
        engine = None if key is None else self._engine(key, model)
        return engine.group.lane_by_lane if isinstance(engine, _Engine) else None

    def fit(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, *, epochs: int, callbacks=(),
            shuffle: bool = True, seed: int = 0) -> keras.callbacks.History:
        """Train uncompiled `model` with `optimizer` as `fastfit.Trainer.fit` does, in a lane."""
        engine, lane_optimizer, why = self._place(model, optimizer)
        if why is not None:
            if why not in self._said:
                self._said.add(why)
                log.warning("lrsearch: a trial trains alone, not in lanes, because %s.", why)
            with self._alone_lock:
                return self.alone.fit(model, optimizer, epochs=epochs, callbacks=callbacks, shuffle=shuffle, seed=seed)
        return engine.fit(model, lane_optimizer, epochs, list(callbacks), shuffle, seed)

    def _place(self, model, optimizer) -> tuple["_Engine | None", LaneOptimizer | None, str | None]:
        """The engine and lane optimizer for `model` and `optimizer`, or why lanes cannot take them."""
        why = fastfit.can_run_fast(model, self.train, self.val)
        if why is not None:
            return None, None, why
        lane_optimizer = hyperparameters(optimizer)
        if isinstance(lane_optimizer, str):
            return None, None, lane_optimizer
        key = architecture_key(model)
        if key is None:
            return None, None, "the model is not a plain Sequential or functional model with a config"
        engine = self._engine(key, model)
        if isinstance(engine, _Broken):
            return None, None, engine.broken
        return engine, lane_optimizer, None

    def _engine(self, key: str, model: keras.Model) -> "_Engine | _Broken":
        with self._groups_lock:
            if key not in self._groups:
                self._groups[key] = self._new_engine(model)
            return self._groups[key]

    def _new_engine(self, model: keras.Model) -> "_Engine | _Broken":
        """A traced group for `model`'s architecture: every op vectorised if it can be,
        else with the ops that cannot run one lane after another inside the step."""
        lacking = None
        for lenient in (False, True):
            try:
                group = LaneGroup(model, self.train, self.val, loss=self.loss, metrics=self.metrics,
                                  batch_size=self.batch_size, lanes=self.lanes, lenient=lenient)
                group.trace()
            except _SparseGradients as exc:
                return _Broken(str(exc))
            except Exception as exc:  # what vectorising or running the step raised: try leniently, then alone
                lacking = lacking or _first_line(exc)
                continue
            if lacking:
                group.lane_by_lane = _op_named(lacking)
            return _Engine(group)
        return _Broken(f"its model does not vectorise ({lacking})")


class _SparseGradients(ValueError):
    pass


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _op_named(message: str) -> str:
    """The op a vectorisation error names, e.g. Conv2D."""
    found = re.search(r"of op '(\w+)'|defined for (\w+)", message)
    return next(name for name in found.groups() if name) if found else "some ops"


@dataclasses.dataclass(frozen=True)
class _Broken:
    broken: str  # why this architecture cannot train in lanes


class _Lane:
    """One trial in a lane: its optimizer, batch order, callbacks and what it ended with."""

    def __init__(self, model, optimizer: LaneOptimizer, epochs: int, callbacks: list, shuffle: bool, seed: int,
                 group: LaneGroup) -> None:
        self.model, self.optimizer, self.epochs, self.shuffle = model, optimizer, epochs, shuffle
        self.rng = np.random.default_rng(seed)
        self.identity = np.arange(group.n, dtype=np.int32)
        self.index = -1
        self.epoch = 0
        self.steps = 0.0  # the optimizer's iterations
        self.lr = optimizer.lr  # the learning rate at the end of the last epoch
        self.history = keras.callbacks.History()
        self.view = _LaneModel(self, group.template.metrics)
        self.callbacks = keras.callbacks.CallbackList(callbacks + [self.history], model=self.view, epochs=epochs,
                                                      steps=group.steps, verbose=0)
        self.logs: dict = {}
        self.error: BaseException | None = None
        self.done = False

    def order(self) -> np.ndarray:
        return self.rng.permutation(len(self.identity)).astype(np.int32) if self.shuffle else self.identity

    def end(self, logs: dict, finite: bool) -> bool:
        """Run the epoch's end callbacks on its logs; True if the trial ends here."""
        if not finite:
            logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
            logs[fastfit.NONFINITE_KEY] = True  # the pruning callback stops the trial on this
        self.logs = logs
        fastfit.end_epoch(self.callbacks, self.epoch, logs)
        self.epoch += 1
        return not finite or self.view.stop_training or self.epoch >= self.epochs


class _Engine:
    """Trains a group's lanes in a thread of its own: a trial's thread hands its trial
    over and sleeps until it ends. Trials join between epochs, into the first free
    lane; the epochs run while any lane is in use. The trials' callbacks run here, on
    their own lane's logs, and what they raise (a pruned trial) reaches their thread."""

    def __init__(self, group: LaneGroup) -> None:
        self.group = group
        self.lanes: list[_Lane | None] = [None] * group.k
        self.joining: list[_Lane] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._serve, name="lrsearch-lanes", daemon=True).start()

    def fit(self, model, optimizer: LaneOptimizer, epochs: int, callbacks: list, shuffle: bool,
            seed: int) -> keras.callbacks.History:
        lane = _Lane(model, optimizer, epochs, callbacks, shuffle, seed, self.group)
        with self.changed:
            self.joining.append(lane)
            self.changed.notify_all()
            while not lane.done:
                self.changed.wait()
        if lane.error is not None:
            raise lane.error
        return lane.history

    def _serve(self) -> None:
        while True:
            with self.changed:
                while not self.joining and not any(self.lanes):
                    self.changed.wait()
                while self.joining and None in self.lanes:
                    self._admit(self.joining.pop(0), self.lanes.index(None))
            lanes = [lane for lane in self.lanes if lane is not None]
            for lane in lanes:
                self._guarded(lane, lambda: lane.callbacks.on_epoch_begin(lane.epoch))
            lanes = [lane for lane in lanes if not lane.done]
            try:
                results = self._run(lanes)
            except Exception as exc:
                results = None
                for lane in lanes:
                    self._finish(lane, exc)
            for lane in lanes if results else ():
                if self._guarded(lane, lambda: lane.end(*results[lane.index])):
                    self._guarded(lane, lambda: lane.callbacks.on_train_end(lane.logs))
                    self._finish(lane)

    def _admit(self, lane: _Lane, index: int) -> None:
        lane.index = index
        self.lanes[index] = lane
        self.group.load(index, lane.model, lane.optimizer)
        lane.model = None  # its weights are in the lane now
        self._guarded(lane, lane.callbacks.on_train_begin)

    def _guarded(self, lane: _Lane, callback) -> bool:
        """Run a lane's `callback`; what it raises ends the trial with that error."""
        if lane.done:
            return False
        try:
            return bool(callback())
        except BaseException as exc:  # optuna.TrialPruned, or the callback's own error
            self._finish(lane, exc)
            return False

    def _finish(self, lane: _Lane, error: BaseException | None = None) -> None:
        with self.changed:
            lane.error, lane.done = error, True
            self.lanes[lane.index] = None
            self.changed.notify_all()

    def _run(self, lanes: list[_Lane]) -> dict:
        group = self.group
        orders = np.tile(np.arange(group.n, dtype=np.int32), (group.k, 1))
        hyper = {name: np.full(group.k, getattr(_IDLE, name), np.float32) for name in _FIELDS}
        steps = np.zeros(group.k, np.float32)
        active = np.zeros(group.k, bool)
        for lane in lanes:
            orders[lane.index] = lane.order()
            for name in _FIELDS:
                hyper[name][lane.index] = getattr(lane.optimizer, name)
            steps[lane.index], active[lane.index] = lane.steps, True
        logs, finite, lr = group.epoch(orders, hyper, steps, active)
        results = {}
        for lane in lanes:
            lane.steps += group.steps
            lane.lr = float(lr[lane.index])
            results[lane.index] = ({name: float(values[lane.index]) for name, values in logs.items()},
                                   bool(finite[lane.index]))
        return results


class _LaneModel:
    """What a lane's callbacks see as `self.model`: `stop_training` and an optimizer
    whose learning rate is the lane's (ReduceLROnPlateau sets it between epochs)."""

    def __init__(self, lane: _Lane, metrics: list) -> None:
        self.stop_training = False
        self.optimizer = _LaneRate(lane)
        self.metrics = metrics  # the template's: what Keras' callbacks read to infer a mode


class _LaneRate:
    def __init__(self, lane: _Lane) -> None:
        self._lane = lane

    @property
    def learning_rate(self) -> float:
        return self._lane.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:  # only a constant rate is set, as Keras' callbacks do
        self._lane.lr = self._lane.optimizer.lr = float(np.float32(value))

    @property
    def _learning_rate(self) -> float:
        return self._lane.lr


def _vectorize_bitcast() -> None:
    """Give TensorFlow's vectorizer the Bitcast op it lacks (Keras' `signbit`, which its
    losses use, bitcasts): a same-width bitcast keeps the shape, so it maps lane-wise."""
    from tensorflow.python.ops.parallel_for import pfor  # private: no public registry exists

    @pfor.RegisterPFor("Bitcast")
    def _convert(pfor_input):
        return pfor.wrap(tf.bitcast(pfor_input.stacked_input(0), pfor_input.get_attr("type")), True)


_vectorize_bitcast()


def _select(mask, new, old):
    """`new` in the lanes of `mask`, `old` elsewhere (lanes lead every tensor)."""
    shape = tf.concat([tf.shape(mask), tf.ones([tf.rank(new) - 1], tf.int32)], 0)
    return tf.where(tf.reshape(mask, shape), new, old)
