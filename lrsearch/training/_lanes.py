"""Train several trials of one architecture at once, in lanes of one compiled step.

Trials of one architecture share their steps in a group of lanes (`_lane_group`), each
lane with its own optimizer and schedule (`_lane_optimizer`). `Lanes.fit` is
`epoch_loop.Trainer.fit` for many threads at once: each thread hands one trial to the
group's engine thread (`_lane_engine`), which runs the epochs and, after each, the
trial's callbacks on its own lane's logs. Ops without a vectorised form run lane by lane
inside the step. What lanes cannot serve (another optimizer or option, sparse gradients,
a subclassed model, datasets) trains alone, one trial at a time, and `Lanes.why_not` says
why. This module decides which models and optimizers lanes take, and how many lanes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import threading

import keras

from lrsearch import internals
from lrsearch.errors import plain
from lrsearch.training import _epochs as epoch_loop, _kept_models as kept_models
from lrsearch.training._lane_engine import Engine
from lrsearch.training._lane_group import LaneGroup, SparseGradients
from lrsearch.training._lane_optimizer import LaneOptimizer, hyperparameters

log = logging.getLogger(__name__)

#: The most lanes a group has.
MAX_LANES = 32
#: Ops and layers that have no vectorised form with weights of each lane's own (TensorFlow's
#: vectorising needs a convolution's filter to be one for all lanes): lanes would run them one
#: lane after another, so that lanes are neither traced nor timed for a model that has them.
CONVOLUTIONS = r"Conv|Depthwise|Separable"
#: How many times as long as alone a trial may take in lanes: more lanes train more trials a
#: second, but each finishes later, and a search waits on its first good trials. (A lane's
#: step costs a small model about 2.4 times a step alone, however many lanes share it.)
MAX_DELAY = 3.0
#: How many times the trials a second of one trial at a time lanes must train to be used: a
#: smaller gain is within the noise of measuring it.
MIN_GAIN = 1.15
#: Seconds a step of one trial may take for lanes to be timed at all: lanes save what a step
#: costs besides its arithmetic (a lane's step costs a small model about 2.4 times a step
#: alone on a CPU core), which a longer step no longer is mostly.
DISPATCH_BOUND_STEP = 0.002
#: About the seconds each timed run of one trial's steps takes in `choose`: 4 to 64 steps (an
#: epoch of a small data set at most) and an evaluation, as a group's cost per call (an
#: epoch) counts.
MEASURED_SECONDS = 0.05
#: How many times what a worker's first trial spent tracing the work left to it must take
#: alone for lanes to be timed: timing traces a lanes' step for each count it tries (about six
#: times a trial's trace on a small dropout MLP, which took 4.6 s to time, more than the
#: 2.7 s its 18 trials left took alone), and lanes save at most about half the work left.
TIMING_PAYBACK = 12.0


def architecture_key(model: keras.Model) -> str | None:
    """What models must share to train in one group: their config and variables, with
    layer names (which count up from model to model) numbered in order instead; None if
    lanes cannot take `model` (a subclassed model, a layer without a config)."""
    if not kept_models.reusable(model):
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


@dataclasses.dataclass(frozen=True)
class WorkLeft:
    """What lanes could save and what timing them costs: the training steps left to the
    worker, and its first trial's seconds and steps (which traced the model's step)."""

    steps: int
    first_trial_s: float
    first_trial_steps: int

    def why_not_time(self, step: float) -> str | None:
        """Why timing lanes cannot pay, for a step of `step` seconds alone; None if it may."""
        traced = max(0.0, self.first_trial_s - self.first_trial_steps * step)
        if self.steps * step >= TIMING_PAYBACK * traced:
            return None
        return (f"the trials left to this worker take about {self.steps * step:.2g} s alone, too little to pay "
                f"for tracing and timing lanes (its first trial spent about {traced:.2g} s tracing its step)")


@dataclasses.dataclass(frozen=True)
class Choice:
    """How many lanes `choose` measured to pay and the traced group of that many; for one,
    no group and why, in a clause; else the measurement in words."""

    count: int
    group: LaneGroup | None
    said: str


def choose(alone: epoch_loop.Trainer, model: keras.Model, optimizer: keras.optimizers.Optimizer, *, loss, metrics,
           cap: int, left: WorkLeft | None = None) -> Choice:
    """The lanes that train the most trials a second for compiled `model` with `optimizer` on
    this device, timed here: one trial's step alone (on the kept model its trials reuse; one
    lane if it takes over `DISPATCH_BOUND_STEP`, or if the work `left` cannot pay for the
    timing: `WorkLeft.why_not_time`), then the most lanes up to `cap`, halved
    while a trial would take more than `MAX_DELAY` times as long; one lane unless that count
    trains `MIN_GAIN` times the trials a second. Lanes must be able to take the model
    (`_assess`); `model` stays the kept model's, each group gets a clone."""
    template = internals.clone_layers(model)  # before the kept model's optimizer is made tunable
    loop = alone.kept_loop(model, optimizer)  # as `Lanes` takes only what the kept models can train
    step = epoch_loop.seconds(loop.steps_run(4)) / 4
    if step > DISPATCH_BOUND_STEP:
        return Choice(1, None, f"a step takes {step * 1e3:.2g} ms alone, more than lanes, which share what a step "
                               f"costs besides its arithmetic, can save")
    if left is not None and (why := left.why_not_time(step)) is not None:
        return Choice(1, None, why)
    steps = min(64, max(4, int(MEASURED_SECONDS / step)))
    alone_run = loop.steps_run(steps)
    calls = max(1, round(MEASURED_SECONDS / epoch_loop.seconds(alone_run)))  # tiny data: an epoch is a moment
    tried, fallback = [], False
    for count in reversed(_counts(cap)):  # the most first: trials a second grow with the lanes while they pay
        group = _traced_group(internals.clone_layers(template), alone.train, alone.val, loss=loss, metrics=metrics,
                              batch_size=alone.batch_size, lanes=count, fallback=fallback)
        if isinstance(group, _Broken) and group.op and not re.match(CONVOLUTIONS, group.op) and not fallback:
            fallback = True  # a cheap op, such as dropout's seeds: measure lanes that run it lane by lane
            group = _traced_group(internals.clone_layers(template), alone.train, alone.val, loss=loss,
                                  metrics=metrics, batch_size=alone.batch_size, lanes=count, fallback=fallback)
        if isinstance(group, _Broken):
            return Choice(1, None, group.broken)
        delay = _delay(alone_run, group.steps_run(steps), calls)
        tried.append(f"of {count} lanes {delay:.2g}x" if tried else f"an epoch of {count} lanes took {delay:.2g}x "
                                                                        f"one trial's")
        if delay <= MAX_DELAY:  # fewer lanes would train fewer trials a second
            if count / delay >= MIN_GAIN:
                return Choice(count, group, ", ".join(tried))
            break
    return Choice(1, None, f"lanes were measured not to pay on this device ({', '.join(tried)})")


def _delay(alone_run, lanes_run, calls: int, rounds: int = 3) -> float:
    """How many times as long `lanes_run()` takes as `alone_run()`: each the fastest of
    `rounds` timings of `calls` calls, taken in turns so that both meet what else the
    machine is doing."""
    alone, lanes = [], []
    for _ in range(rounds):
        alone.append(epoch_loop.seconds(alone_run, 1, calls))
        lanes.append(epoch_loop.seconds(lanes_run, 1, calls))
    return min(lanes) / min(alone)


def _counts(cap: int) -> list[int]:
    """The lane counts `choose` may try: powers of two below `cap` and `cap`, at most MAX_LANES."""
    top = min(cap, MAX_LANES)
    return sorted({min(2 ** i, top) for i in range(1, top.bit_length() + 1)} - {1})


def why_alone(model: keras.Model, train, val) -> str | None:
    """Why lanes cannot take the compiled `model` at all, or would not pay, as far as is
    known without tracing or timing them, in a clause; None if they may."""
    refused = _assess(model, model.optimizer, train, val)
    if isinstance(refused, str):
        return refused
    if (layer := _convolution_layer(model)) is not None:
        return (f"its {layer} layer has no vectorised form with each lane's own filters, so that lanes would run "
                f"it one lane after another")
    return None


def _convolution_layer(model: keras.Model) -> str | None:
    """The class of the first layer of `model`, nested ones included, that `CONVOLUTIONS` names."""
    def find(value):
        if isinstance(value, dict):
            if isinstance(value.get("class_name"), str) and re.match(CONVOLUTIONS, value["class_name"]):
                return value["class_name"]
            value = list(value.values())
        if isinstance(value, (list, tuple)):
            return next((found for v in value if (found := find(v)) is not None), None)
        return None

    return find(model.get_config())


def _assess(model: keras.Model, optimizer: keras.optimizers.Optimizer, train, val) -> "tuple[LaneOptimizer, str] | str":
    """The lane optimizer and the architecture key lanes need for `model` and `optimizer` on
    these data, or why lanes cannot take them, short of tracing a group."""
    why = epoch_loop.can_run_fast(model, train, val)
    if why is not None:
        return why
    lane_optimizer = hyperparameters(optimizer)
    if isinstance(lane_optimizer, str):
        return lane_optimizer
    key = architecture_key(model)
    if key is None:
        return "the model is not a plain Sequential or functional model with a config"
    return lane_optimizer, key


class Lanes:
    """`epoch_loop.Trainer.fit` for up to `lanes` threads at once, each training one trial
    in a lane of the group of its architecture; trials that lanes cannot serve train
    alone on `alone`, one at a time."""

    def __init__(self, train, val, *, loss, metrics, batch_size: int, lanes: int, alone: epoch_loop.Trainer,
                 group: LaneGroup | None = None) -> None:
        self.train, self.val = train, val
        self.loss, self.metrics, self.batch_size, self.lanes = loss, metrics, batch_size, lanes
        self.alone = alone
        self._alone_lock = threading.Lock()
        self._said: set[str] = set()
        self._groups: dict[str, Engine | _Broken] = {}
        if group is not None:  # traced already, for its template's architecture
            self._groups[architecture_key(group.template)] = Engine(group)
        self._groups_lock = threading.Lock()

    def why_not(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> str | None:
        """None if a lane can train `model` with `optimizer`, else why not (building the
        group of `model`'s architecture, and tracing it, the first time)."""
        return self._place(model, optimizer)[2]

    def lane_by_lane(self, model: keras.Model) -> str | None:
        """The first op that runs lane by lane in `model`'s group, if any (see `why_not`)."""
        key = architecture_key(model)
        engine = None if key is None else self._engine(key, model)
        return engine.group.lane_by_lane if isinstance(engine, Engine) else None

    def fit(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, *, epochs: int, callbacks=(),
            shuffle: bool = True, seed: int = 0) -> keras.callbacks.History:
        """Train uncompiled `model` with `optimizer` as `epoch_loop.Trainer.fit` does, in a lane."""
        engine, lane_optimizer, why = self._place(model, optimizer)
        if why is not None:
            if why not in self._said:
                self._said.add(why)
                log.warning("lrsearch: a trial trains alone, not in lanes, because %s.", why)
            with self._alone_lock:
                return self.alone.fit(model, optimizer, epochs=epochs, callbacks=callbacks, shuffle=shuffle, seed=seed)
        return engine.fit(model, lane_optimizer, epochs, list(callbacks), shuffle, seed)

    def _place(self, model, optimizer) -> tuple["Engine | None", LaneOptimizer | None, str | None]:
        """The engine and lane optimizer for `model` and `optimizer`, or why lanes cannot take them."""
        assessed = _assess(model, optimizer, self.train, self.val)
        if isinstance(assessed, str):
            return None, None, assessed
        lane_optimizer, key = assessed
        engine = self._engine(key, model)
        if isinstance(engine, _Broken):
            return None, None, engine.broken
        return engine, lane_optimizer, None

    def _engine(self, key: str, model: keras.Model) -> "Engine | _Broken":
        with self._groups_lock:
            if key not in self._groups:
                self._groups[key] = self._new_engine(model)
            return self._groups[key]

    def _new_engine(self, model: keras.Model) -> "Engine | _Broken":
        group = _traced_group(model, self.train, self.val, loss=self.loss, metrics=self.metrics,
                              batch_size=self.batch_size, lanes=self.lanes)
        return group if isinstance(group, _Broken) else Engine(group)


def _traced_group(model: keras.Model, train, val, **group) -> "LaneGroup | _Broken":
    """A traced `LaneGroup(model, train, val, **group)`, which runs the ops that have no
    vectorised form one lane after another inside the step (the first named in its
    `lane_by_lane`) unless `fallback=False`; `_Broken` if it does not trace. TensorFlow's
    account of vectorising is not shown."""
    lane_by_lane: list[str] = []
    try:
        with _vectorising_quietly(lane_by_lane):
            traced = LaneGroup(model, train, val, **group)
            traced.trace()
    except SparseGradients as exc:
        return _Broken(str(exc))
    except Exception as exc:  # what vectorising or running the step raised
        op = _op_named(_first_line(exc))
        if op and group.get("fallback") is False:
            return _Broken(f"TensorFlow's {op} op has no vectorised form, so that lanes would run it one lane "
                           f"after another", op)
        return _Broken(f"its model does not vectorise ({_first_line(exc)})")
    traced.lane_by_lane = lane_by_lane[0] if lane_by_lane else None
    return traced


@contextlib.contextmanager
def _vectorising_quietly(lane_by_lane: list[str]):
    """TensorFlow's log records from vectorising (pages of graph for an op it runs in a loop)
    dropped, and the ops it runs lane by lane appended to `lane_by_lane`, meanwhile."""
    logger = logging.getLogger("tensorflow")
    shown = logger.getEffectiveLevel()

    def keep(record: logging.LogRecord) -> bool:
        if "parallel_for" not in record.pathname:
            return record.levelno >= shown
        found = re.match(r"Using a while_loop for converting (\w+)", record.getMessage())
        if found and found.group(1) not in lane_by_lane:
            lane_by_lane.append(found.group(1))
        return False

    level = logger.level
    logger.addFilter(keep)
    logger.setLevel(logging.DEBUG)  # the loop's records are debug records
    try:
        yield
    finally:
        logger.setLevel(level)
        logger.removeFilter(keep)


def _op_named(message: str) -> str | None:
    """The op a vectorisation error names, e.g. Conv2D."""
    found = re.search(r"of op '(\w+)'|defined for (\w+)", message)
    return next(name for name in found.groups() if name) if found else None


def _first_line(exc: Exception) -> str:
    text = plain(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclasses.dataclass(frozen=True)
class _Broken:
    broken: str  # why this architecture cannot train in lanes
    op: str | None = None  # the op without a vectorised form that stopped it, if that was it
