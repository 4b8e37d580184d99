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

import dataclasses
import json
import logging
import math
import re
import threading

import keras

from lrsearch.errors import plain
from lrsearch.training import _epochs as epoch_loop, _kept_models as kept_models
from lrsearch.training._lane_engine import Engine
from lrsearch.training._lane_group import LaneGroup, SparseGradients
from lrsearch.training._lane_optimizer import LaneOptimizer, hyperparameters

log = logging.getLogger(__name__)

#: Weights times rows a step of all lanes may carry on a CPU core, or a GPU, before an
#: epoch of all lanes costs much more than one trial's: more lanes train more trials a
#: second, but each finishes later, and a search waits on its first good trials (on a CPU
#: core, 4 blobs lanes reached a first good trial soonest; see the README's Performance).
#: And the most lanes a group has.
LANE_WORK = {"cpu": 5e4, "gpu": 5e7}
MAX_LANES = 32


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


def auto_count(model: keras.Model, batch_size: int, device: str, cap: int) -> int:
    """Lanes for `model` on `device` ("cpu" or "gpu"): as many as a step's work allows
    (a power of two, at most MAX_LANES), and no more than `cap`."""
    return max(1, min(_work_allows(model, batch_size, device), MAX_LANES, cap))


def why_one_lane(model: keras.Model, batch_size: int, device: str, train, val) -> str:
    """Why `auto_count` gives the compiled `model` one lane, in a clause: what keeps lanes
    from taking it at all, as far as is known without tracing them; else its size; else
    the cap."""
    refused = _assess(model, model.optimizer, train, val)
    if isinstance(refused, str):
        return refused
    if _work_allows(model, batch_size, device) == 1:
        return (f"the model is too large for lanes to pay on a {device.upper()} ({model.count_params():,} weights "
                f"x {batch_size} rows a step)")
    return "each worker's share of the trials is too small for lanes (a larger n_trials, --n-trials, allows them)"


def _work_allows(model: keras.Model, batch_size: int, device: str) -> int:
    """Lanes a step of `model` on `batch_size` rows can carry on `device` (LANE_WORK), a power of two."""
    work = max(1, model.count_params()) * max(1, batch_size)
    return 2 ** max(0, int(math.log2(max(1.0, LANE_WORK[device] / work))))


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

    def __init__(self, train, val, *, loss, metrics, batch_size: int, lanes: int, alone: epoch_loop.Trainer) -> None:
        self.train, self.val = train, val
        self.loss, self.metrics, self.batch_size, self.lanes = loss, metrics, batch_size, lanes
        self.alone = alone
        self._alone_lock = threading.Lock()
        self._said: set[str] = set()
        self._groups: dict[str, Engine] = {}
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
        """A traced group for `model`'s architecture: every op vectorised if it can be,
        else with the ops that cannot run one lane after another inside the step."""
        lacking = None
        for lenient in (False, True):
            try:
                group = LaneGroup(model, self.train, self.val, loss=self.loss, metrics=self.metrics,
                                  batch_size=self.batch_size, lanes=self.lanes, lenient=lenient)
                group.trace()
            except SparseGradients as exc:
                return _Broken(str(exc))
            except Exception as exc:  # what vectorising or running the step raised: try leniently, then alone
                lacking = lacking or _first_line(exc)
                continue
            if lacking:
                group.lane_by_lane = _op_named(lacking)
            return Engine(group)
        return _Broken(f"its model does not vectorise ({lacking})")


def _first_line(exc: Exception) -> str:
    text = plain(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _op_named(message: str) -> str:
    """The op a vectorisation error names, e.g. Conv2D."""
    found = re.search(r"of op '(\w+)'|defined for (\w+)", message)
    return next(name for name in found.groups() if name) if found else "some ops"


@dataclasses.dataclass(frozen=True)
class _Broken:
    broken: str  # why this architecture cannot train in lanes
