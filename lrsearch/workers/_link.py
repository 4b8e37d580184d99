"""The worker's end of its link to the parent process: events out, orders in, the stop flag."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Callable

from lrsearch.workers._messages import Confirm, Event, RunJob, TrialEnded

if TYPE_CHECKING:
    from lrsearch.results import Task


class ParentLink:
    """The worker's end of its link to the parent: the events it sends (from any lane's
    thread), the orders it receives, its run's stop flag, and the parent's pid, to notice
    when the run is gone (nobody listens then: the worker finishes its trial and stops).
    `trials` counts the trials this process ran, in all its jobs (`TrialEnded` told)."""

    def __init__(self, stop, events, orders, parent: int) -> None:
        self.stop, self.events, self.orders, self.parent = stop, events, orders, parent
        self.lock = threading.Lock()  # threads in lanes send too
        self.trials = 0

    def tell(self, event: Event) -> None:
        try:
            with self.lock:
                self.trials += isinstance(event, TrialEnded)
                self.events.send(event)
        except OSError:  # the parent ended
            pass

    def stopped(self) -> bool:
        """The run says stop, or is gone."""
        return bool(self.stop.value) or os.getppid() != self.parent

    def receive_job(self) -> RunJob | None:
        """The next job the parent sends, however long it waits (the run that stopped this worker may
        be followed by another), skipping orders its last job left unread; None once the parent is gone
        or closed the pipe."""
        while os.getppid() == self.parent:
            try:
                if self.orders.poll(0.25) and isinstance(order := self.orders.recv(), RunJob):
                    return order
            except (EOFError, OSError):
                return None
        return None

    def next_task(self, give_up: Callable[[], bool] = lambda: False) -> "Task | None":
        """The task of the parent's next Confirm; None when it says Dismiss, stops the run or is gone."""
        while not self.stopped() and not give_up():
            try:
                if self.orders.poll(0.25):
                    order = self.orders.recv()
                    return order.task if isinstance(order, Confirm) else None
            except (EOFError, OSError):
                return None
