"""The parent's end of its worker processes, by slot index: each one's `spawn`ed process, the pipe it sends
events on and the pipe it takes orders from, and what all of them share: the run's stop flag and this machine's
claim lock. It starts, messages and closes workers; when to do so is the `Supervisor`'s to decide.
"""

from __future__ import annotations

import collections
import multiprocessing as mp
from multiprocessing.connection import wait
from typing import Callable

from lrsearch import internals
from lrsearch.devices import Slot
from lrsearch.workers._claims import MachineLock
from lrsearch.workers._messages import Event, Order
from lrsearch.workers._worker import worker_main


class WorkerProcesses:
    """The workers of one run on this machine, one per slot at a time."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self.context = mp.get_context("spawn")
        self.claim_lock = MachineLock.create(self.context)
        self.stop_flag = self.context.RawValue("b", 0)  # a plain shared integer, as the claim lock's owner
        self.processes: dict[int, mp.Process] = {}
        self.pipes: dict[int, object] = {}  # index -> receiving end of the worker's pipe
        self.orders: dict[int, object] = {}  # index -> sending end of the pipe to the worker
        self._generations = collections.Counter()  # index -> workers started there so far

    def start(self, index: int) -> None:
        """Spawn a worker in slot `index` (which has none)."""
        receiver, sender = self.context.Pipe(duplex=False)
        order_receiver, order_sender = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=worker_main, name=f"lrsearch-worker-{index}", daemon=True,
            args=(self.slots[index], index, self._generations[index], self.claim_lock, self.stop_flag,
                  sender, order_receiver),
        )
        with internals.without_main_module():  # a script without a __main__ guard must not run again there
            process.start()
        self._generations[index] += 1
        sender.close()
        order_receiver.close()
        self.processes[index], self.pipes[index], self.orders[index] = process, receiver, order_sender

    def send(self, index: int, order: Order) -> None:
        try:
            self.orders[index].send(order)
        except OSError:  # it died meanwhile; reaping it returns its task
            pass

    def receive(self, handle: Callable[[int, Event], None], indices=None) -> None:
        """Hand `handle` each event waiting on the pipes of workers `indices` (all by default)."""
        pipes = {self.pipes[index]: index for index in (self.pipes if indices is None else indices)}
        for pipe in wait(list(pipes), timeout=0):
            try:
                while pipe.poll():
                    handle(pipes[pipe], pipe.recv())
            except (EOFError, OSError):  # the worker ended, perhaps in the middle of a message
                pass

    def close(self, index: int) -> mp.Process:
        """Drop worker `index`, which ended (its events read), closing its pipes; its process."""
        self.pipes.pop(index).close()
        self.orders.pop(index).close()
        return self.processes.pop(index)
