"""The parent's confirmation queue: once the search is done, the trainings of the confirmation (`Confirming`: the
top trials on fresh seeds, planned by `lrsearch.results._ranking`) go one at a time to the idle lanes of the
workers, and their values into the study. A worker that dies gives its trainings back to the queue; the queue
dismisses the workers when none is left.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import TYPE_CHECKING, Callable

from lrsearch import results
from lrsearch.workers._messages import Confirm, Dismiss, Order

if TYPE_CHECKING:
    from lrsearch.results import Task


@dataclasses.dataclass
class Confirming:
    """The confirmation a run does once its search is done: the `top` trials on `seeds`
    fresh seeds (`lrsearch.results._ranking`). `after_running`: wait for RUNNING trials first."""

    top: int
    seeds: int
    after_running: bool = True
    on_start: Callable[[list], None] = lambda tasks: None  # the planned `results.Task`s
    on_done: Callable[[], None] = lambda: None


class ConfirmationQueue:
    """The confirmation trainings of a run: those not yet handed out, those each worker
    trains (one a lane), the lanes waiting for one, and the values recorded so far.
    `send` hands a worker an order; `failures` collects the trainings that failed."""

    def __init__(self, send: Callable[[int, Order], None], failures: list[str]) -> None:
        self.send, self.failures = send, failures
        self.confirming: Confirming | None = None
        self.study = None
        self.pending: list | None = None  # tasks not yet sent (None: not planned yet)
        self.assigned: dict[int, list] = {}  # worker index -> the tasks it trains (one a lane)
        self.idle: collections.Counter = collections.Counter()  # worker index -> lanes waiting for a task
        self._values: dict[int, dict[int, float | None]] = {}  # trial number -> seed -> value
        self._retried: set[tuple[int, int]] = set()

    def begin(self, confirming: Confirming | None, study) -> None:
        """The run's confirmation (None: it does none) and its Optuna study."""
        self.confirming, self.study = confirming, study

    def left(self) -> bool:
        """Whether the confirmation is not finished: not planned yet, or trainings to do."""
        return self.confirming is not None and (self.pending is None or bool(self.pending or self.in_training()))

    def in_training(self) -> bool:
        return any(self.assigned.values())

    def step(self, stopping: bool, remaining: Callable[[], int], live_running: Callable[[], list]) -> None:
        """Once the search is done (`remaining()` trials to claim: none; with `after_running`,
        `live_running()`: none), plan the confirmation and hand its tasks to idle lanes;
        dismiss the workers when none is left (or when the study lost a trial and must
        search again: they end, and are started afresh)."""
        from lrsearch import results

        if self.confirming is None or stopping or not +self.idle:
            return
        if remaining() > 0:
            self._dismiss(list(self.idle))
            return
        if self.pending is None:
            if self.confirming.after_running and live_running():
                return
            self.pending = results.plan(self.study, self.confirming.top, self.confirming.seeds)
            self._values = results.read_confirmations(self.study)
            self.confirming.on_start(list(self.pending))
        while self.pending and +self.idle:
            index = next(index for index, free in self.idle.items() if free > 0)
            self.idle[index] -= 1
            task = self.pending.pop(0)
            self.assigned.setdefault(index, []).append(task)
            self.send(index, Confirm(task))
        if not self.pending and not self.in_training():
            self._dismiss(list(self.idle))

    def lane_idle(self, index: int) -> None:
        """A lane of worker `index` waits for a task."""
        self.idle[index] += 1

    def confirmed(self, index: int, task: Task, value: float | None) -> None:
        """Worker `index` trained `task` to `value`: record it in the study."""
        self._unassign(index, task)
        self._values.setdefault(task.number, {})[task.seed] = value
        results.write_confirmation(self.study, task.number, self._values[task.number])
        self.confirming.on_done()

    def failed(self, index: int, task: Task, reason: str) -> None:
        self._unassign(index, task)
        self.failures.append(f"trial {task.number} seed {task.seed}: {reason}")

    def forget(self, index: int, stopping: Callable[[], bool]) -> None:
        """Worker `index` ended: the tasks it was training go back to the queue, once if it
        died (a second death skips them), always if the run stopped it (`stopping()`)."""
        self.idle.pop(index, None)
        for task in self.assigned.pop(index, []):
            if stopping():
                self.pending.insert(0, task)
            elif (task.number, task.seed) in self._retried:
                self.failures.append(f"trial {task.number} seed {task.seed}: its worker died twice")
            else:
                self._retried.add((task.number, task.seed))
                self.pending.insert(0, task)

    def _dismiss(self, indices) -> None:
        for index in indices:
            self.send(index, Dismiss())
            self.idle.pop(index, None)

    def _unassign(self, index: int, task: Task) -> None:
        if task in self.assigned.get(index, []):
            self.assigned[index].remove(task)
