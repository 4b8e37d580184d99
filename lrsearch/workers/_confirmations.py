"""The parent's confirmation queue: once the search is done, the trainings of the confirmation (`Confirming`: the
top trials on fresh seeds, planned by `lrsearch.results._ranking`) go one at a time to the idle lanes of the
workers, and their values into the study. A worker that dies gives its trainings back to the queue; the queue
dismisses the workers when none is left.

Runs that share a study share its confirmation: a run claims each training in the study before it hands it out,
under the study's lock (`_study_lock`), and leaves alone those another live run claimed, waiting for their values
instead. A claim lapses when its run's process is gone (on this machine) or stops renewing it (on another), so a
run that dies mid-confirmation leaves its trainings to the next.
"""

from __future__ import annotations

import collections
import dataclasses
import socket
import sys
import time
from typing import TYPE_CHECKING, Callable

from lrsearch import results
from lrsearch.results import worker_tag
from lrsearch.workers._messages import Confirm, Dismiss, Order
from lrsearch.workers._recovery import process_alive
from lrsearch.workers._study_lock import held

if TYPE_CHECKING:
    from lrsearch.results import Task

#: Seconds between two looks at the claims of other runs while this one waits for them.
CLAIMS_CHECK_INTERVAL = 1.0


@dataclasses.dataclass
class Confirming:
    """The confirmation a run does once its search is done: the `top` trials on `seeds`
    fresh seeds, or with neither given as many as `results.price` allows
    (`lrsearch.results._ranking`). `after_running`: wait for RUNNING trials first."""

    top: int | None = None
    seeds: int | None = None
    after_running: bool = True
    on_start: Callable[[list], None] = lambda tasks: None  # the planned `results.Task`s
    on_done: Callable[[], None] = lambda: None  # one of them was recorded, by this run or another

    @classmethod
    def of(cls, confirm) -> "Confirming | None":
        """The confirmation that `SearchOptions.confirm` asks for: (K, N), True (priced), or None/False (none)."""
        if confirm is None or confirm is False:
            return None
        return cls() if confirm is True else cls(*confirm)

    def plan(self, study, say: Callable[[str], None]) -> list:
        """The trainings it still needs in `study` (`results.plan`, which prices them where K and N
        are not given); priced, it `say`s what the pricing chose first."""
        note = results.price(study).note() if self.top is None or self.seeds is None else None
        if note:
            say(note)
        return results.plan(study, self.top, self.seeds)


class ConfirmationQueue:
    """The confirmation trainings of a run: those not yet handed out (some perhaps claimed
    by another run), those each worker trains (one a lane), the lanes waiting for one.
    `send` hands a worker an order; `failures` collects the trainings that failed; `say`
    tells the user that the run waits for another."""

    def __init__(self, send: Callable[[int, Order], None], failures: list[str],
                 say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> None:
        self.send, self.failures, self.say = send, failures, say
        self.confirming: Confirming | None = None
        self.study = None
        self.lock = None  # the study's lock, which every run takes to claim a training
        self.holder = worker_tag()  # how this run's claims name it
        self.pending: list | None = None  # tasks not yet sent (None: not planned yet)
        self.assigned: dict[int, list] = {}  # worker index -> the tasks it trains (one a lane)
        self.idle: collections.Counter = collections.Counter()  # worker index -> lanes waiting for a task
        self.claimed: dict[tuple[int, int], Task] = {}  # (number, seed) -> a task this run claimed, not recorded
        self.elsewhere: set[tuple[int, int]] = set()  # pending tasks that other runs claimed, at the last look
        self._retried: set[tuple[int, int]] = set()
        self._checked = self._renewed = float("-inf")  # monotonic times of the last look, the last renewal
        self._waiting_note: str | None = None

    def begin(self, confirming: Confirming | None, study, lock=None) -> None:
        """The run's confirmation (None: it does none), its Optuna study and the study's lock
        (`_study_lock.study_lock`; None: this run claims alone)."""
        self.confirming, self.study, self.lock = confirming, study, lock

    def left(self) -> bool:
        """Whether the confirmation is not finished: not planned yet, or trainings to do
        here or to wait for."""
        return self.confirming is not None and (self.pending is None or bool(self.pending or self.in_training()))

    def begun(self) -> bool:
        """Whether the confirmation was planned: the search before it ended."""
        return self.confirming is not None and self.pending is not None

    def in_training(self) -> bool:
        return any(self.assigned.values())

    def step(self, stopping: bool, remaining: Callable[[], int], live_running: Callable[[], list]) -> None:
        """Once the search is done (`remaining()` trials to claim: none; with `after_running`,
        `live_running()`: none), plan the confirmation and hand its tasks to idle lanes as
        this run claims them; dismiss the workers when none is left (or when the study lost
        a trial and must search again: they end, and are started afresh)."""
        if self.confirming is None:
            return
        self._renew()
        if stopping or not +self.idle:
            return
        if remaining() > 0:
            self._dismiss(list(self.idle))
            return
        if self.pending is None:
            if self.confirming.after_running and live_running():
                return
            self.pending = self.confirming.plan(self.study, self.say)
            self.confirming.on_start(list(self.pending))
        if self.pending and (any(_key(task) not in self.elsewhere for task in self.pending)
                             or time.monotonic() - self._checked >= CLAIMS_CHECK_INTERVAL):
            self._hand_out()
        if not self.pending and not self.in_training():
            self._dismiss(list(self.idle))

    def lane_idle(self, index: int) -> None:
        """A lane of worker `index` waits for a task."""
        self.idle[index] += 1

    def confirmed(self, index: int, task: Task, value: float | None, seconds: float) -> None:
        """Worker `index` trained `task` to `value` in `seconds`: record it with the values of
        its trial that this run or others recorded so far."""
        self._unassign(index, task)
        with held(self.lock):
            found = results.confirmations(self.study).get(task.number, results.Confirmation({}))
            results.write_confirmation(self.study, task.number, {**found.values, task.seed: value},
                                       {**found.seconds, task.seed: seconds})
        self.claimed.pop(_key(task), None)
        self.confirming.on_done()

    def failed(self, index: int, task: Task, reason: str) -> None:
        self._unassign(index, task)
        self.failures.append(f"trial {task.number} seed {task.seed}: {reason}")
        self._release([task])

    def forget(self, index: int, stopping: Callable[[], bool]) -> None:
        """Worker `index` ended: the tasks it was training go back to the queue, once if it
        died (a second death skips them), always if the run stopped it (`stopping()`)."""
        self.idle.pop(index, None)
        for task in self.assigned.pop(index, []):
            if stopping():
                self.pending.insert(0, task)
            elif _key(task) in self._retried:
                self.failures.append(f"trial {task.number} seed {task.seed}: its worker died twice")
                self._release([task])
            else:
                self._retried.add(_key(task))
                self.pending.insert(0, task)

    def release(self) -> None:
        """Give up this run's claims on the trainings it did not record (the run ends), so
        that another run takes them at once."""
        self._release(list(self.claimed.values()))

    def _hand_out(self) -> None:
        """Under the study's lock: drop the pending tasks recorded meanwhile (by another
        run), claim those no other live run claimed, and send them to idle lanes."""
        self._checked = time.monotonic()
        elsewhere = {}
        with held(self.lock):
            done, claims, now = results.read_confirmations(self.study), results.read_claims(self.study), time.time()
            for task in list(self.pending):
                claim = claims.get(_key(task))
                if task.seed in done.get(task.number, {}):
                    self.pending.remove(task)
                    self.claimed.pop(_key(task), None)
                    self.confirming.on_done()
                elif self._held_elsewhere(claim, now):
                    elsewhere[_key(task)] = claim.by
                elif +self.idle:
                    results.write_claim(self.study, task, self.holder, now)
                    self.claimed[_key(task)] = task
                    self.pending.remove(task)
                    self._send(task)
        self.elsewhere = set(elsewhere)
        self._say_waiting(elsewhere)

    def _held_elsewhere(self, claim: results.Claim | None, now: float) -> bool:
        """Whether `claim` is another run's that still holds: renewed within the heartbeats'
        grace, and by a live process where it is on this machine."""
        from lrsearch.storage import heartbeat_settings

        if claim is None or claim.by == self.holder or now - claim.at > heartbeat_settings()[1]:
            return False
        where = results.split_worker_tag(claim.by)
        return where is None or where[0] != socket.gethostname() or process_alive(where[1])

    def _send(self, task: Task) -> None:
        index = next(index for index, free in self.idle.items() if free > 0)
        self.idle[index] -= 1
        self.assigned.setdefault(index, []).append(task)
        self.send(index, Confirm(task))

    def _renew(self) -> None:
        """Renew the claims of the trainings in progress, once every heartbeat interval."""
        from lrsearch.storage import heartbeat_settings

        if time.monotonic() - self._renewed < heartbeat_settings()[0]:
            return
        self._renewed = time.monotonic()
        for task in (task for tasks in self.assigned.values() for task in tasks):
            results.write_claim(self.study, task, self.holder, time.time())

    def _release(self, tasks: list) -> None:
        for task in tasks:
            results.write_claim(self.study, task, None)
            self.claimed.pop(_key(task), None)

    def _say_waiting(self, elsewhere: dict) -> None:
        """Say once what the run waits for, when it waits for other runs' trainings."""
        runs = sorted(set(elsewhere.values()))
        note = runs and (f"Waiting for {len(elsewhere)} confirmation training(s) that "
                         f"{'another run trains' if len(runs) == 1 else 'other runs train'} ({', '.join(runs)}).")
        if note and note != self._waiting_note:
            self.say(note)
        self._waiting_note = note or None

    def _dismiss(self, indices) -> None:
        for index in indices:
            self.send(index, Dismiss())
            self.idle.pop(index, None)

    def _unassign(self, index: int, task: Task) -> None:
        if task in self.assigned.get(index, []):
            self.assigned[index].remove(task)


def _key(task: Task) -> tuple[int, int]:
    """What identifies a confirmation training across runs: its trial's number and its seed."""
    return task.number, task.seed
