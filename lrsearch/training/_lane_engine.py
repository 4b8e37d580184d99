"""The thread that trains a group's lanes, and what a lane's callbacks see.

Each trial's thread hands its trial to the `Engine` of its architecture's group, which
runs the epochs and, after each, the trial's callbacks on its own lane's logs; when the
trial ends (what a callback raised, such as optuna.TrialPruned, is raised in the trial's
thread) the next trial takes the lane while the others go on.
"""

from __future__ import annotations

import threading

import keras
import numpy as np

from lrsearch import internals
from lrsearch.training import _epochs as epoch_loop
from lrsearch.training._lane_group import LaneGroup
from lrsearch.training._lane_optimizer import LaneOptimizer, table


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
            logs[epoch_loop.NONFINITE_KEY] = True  # the pruning callback stops the trial on this
        self.logs = logs
        epoch_loop.end_epoch(self.callbacks, self.epoch, logs)
        self.epoch += 1
        return not finite or self.view.stop_training or self.epoch >= self.epochs


class Engine:
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
        steps = np.zeros(group.k, np.float32)
        active = np.zeros(group.k, bool)
        for lane in lanes:
            orders[lane.index] = lane.order()
            steps[lane.index], active[lane.index] = lane.steps, True
        logs, finite, lr = group.epoch(orders, table({lane.index: lane.optimizer for lane in lanes}, group.k), steps,
                                       active)
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


@internals.optimizer_stand_in
class _LaneRate:
    """A lane's optimizer as its callbacks see it: a constant learning rate, the lane's."""

    def __init__(self, lane: _Lane) -> None:
        self._lane = lane

    @property
    def learning_rate(self) -> float:
        return self._lane.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:  # only a constant rate is set, as Keras' callbacks do
        self._lane.lr = self._lane.optimizer.lr = float(np.float32(value))
