"""The parent's end of a run's worker processes, by slot index: each a `_pool.Worker` (its process, its two pipes
and its stop flag) taken from the Python session's warm pool where one fits the slot, else spawned, and handed back
there once it finished the run's job; what all of them share is this machine's claim lock. This module starts,
messages, stops and hands back workers; when to do so is the `Supervisor`'s to decide.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import os
from multiprocessing.connection import wait
from typing import Callable

from lrsearch.devices import Slot
from lrsearch.workers._claims import MachineLock
from lrsearch.workers._messages import Event, Order, RunJob, Setting
from lrsearch.workers._pool import Worker, pool

#: Seconds after which the parent, about to kill workers, takes a journal lock that nobody freed (a process
#: killed outright left it): Optuna's writers wait 30 s, which would hold a SIGTERM past what it allows.
JOURNAL_LOCK_GRACE = 5


class WorkerProcesses:
    """The workers of one run on this machine, one per slot at a time."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self.workers: dict[int, Worker] = {}
        self.stopped = False  # the run stopped: every worker of it is told so
        self._generations = collections.Counter()  # index -> jobs handed to that slot so far

    @property
    def processes(self) -> dict[int, mp.Process]:
        return {index: worker.process for index, worker in self.workers.items()}

    @property
    def claim_lock(self) -> MachineLock:
        return pool().claim_lock

    def start(self, index: int) -> None:
        """Give slot `index` (which has none) a worker: a warm one from the pool where one fits, else a new one."""
        worker = pool().take(self.slots[index])
        worker.stop.value = int(self.stopped)
        self.workers[index] = worker

    def hand(self, index: int, job) -> None:
        """Send worker `index` the run's `job`, as its slot's next generation."""
        self.send(index, RunJob(job, index, self._generations[index], Setting.now()))
        self._generations[index] += 1

    def stop(self) -> None:
        """Tell every worker of the run, and those it starts after, to start no trial."""
        self.stopped = True
        for worker in list(self.workers.values()):
            worker.stop.value = 1

    def send(self, index: int, order: Order) -> None:
        try:
            self.workers[index].orders.send(order)
        except OSError:  # it died meanwhile; reaping it returns its task
            pass

    def receive(self, handle: Callable[[int, Event], None], indices=None) -> None:
        """Hand `handle` each event waiting on the pipes of workers `indices` (all by default)."""
        pipes = {self.workers[index].events: index for index in (self.workers if indices is None else indices)}
        for pipe in wait(list(pipes), timeout=0):
            try:
                while pipe.poll():
                    handle(pipes[pipe], pipe.recv())
            except (EOFError, OSError):  # the worker ended, perhaps in the middle of a message
                pass

    def close(self, index: int) -> mp.Process:
        """Drop worker `index`, which ended (its events read), closing its pipes; its process."""
        worker = self.workers.pop(index)
        worker.close()
        return worker.process

    def release(self, index: int) -> None:
        """Hand worker `index`, which finished the run's job (its events read), back to the warm pool."""
        pool().keep(self.workers.pop(index))

    def kill(self, indices: list[int], storage: str | None) -> None:
        """Kill workers `indices` of a run on `storage` while none of them writes to it, and wait for them."""
        with _no_journal_writes(storage):
            for index in indices:
                if self.workers[index].process.is_alive():
                    self.workers[index].process.kill()
            for index in indices:
                self.workers[index].process.join()


@contextlib.contextmanager
def _no_journal_writes(location: str | None):
    """Hold the journal file's own lock, which Optuna's writers take, so that a worker
    killed meanwhile leaves neither that lock taken (every writer would wait for it) nor
    half a record. Nothing to hold on a database, which undoes what a killed
    connection left unfinished."""
    from lrsearch.storage import is_url

    if not location or is_url(location) or not os.path.isfile(location):
        yield
        return
    from lrsearch.storage import journal_lock

    lock = journal_lock(location, grace_period=JOURNAL_LOCK_GRACE)
    try:
        lock.acquire()
    except OSError:  # a folder this process cannot write to, nor can its workers
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
