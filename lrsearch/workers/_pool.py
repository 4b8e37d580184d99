"""The worker processes of a Python session: each `Worker` as the parent holds it, and the `WarmPool` of those
idle between two runs. A worker that finished its run's job stays alive, TensorFlow imported and its last study's
trial runner kept (`_warm`), and the next run whose slot it fits takes it, so that a notebook's second `search`
starts its trials at once. One that fits none of the next run's slots ends then, and all end with the session
(`atexit`, or their parent's death, which each notices) or `shutdown()`. A worker fits a slot it was spawned for
while the variables that TensorFlow and CUDA read as they load (`LOAD_TIME`) keep their values; each job brings
the parent's environment, working folder and import path of the moment.
"""

from __future__ import annotations

import atexit
import dataclasses
import multiprocessing as mp
import multiprocessing.util  # noqa: F401  # its exit handler, which SIGTERMs and joins workers, must run after ours
import os
import shutil
import tempfile
import threading

from lrsearch import internals
from lrsearch.devices import Slot
from lrsearch.workers._claims import MachineLock
from lrsearch.workers._worker import worker_main

#: Prefixes of the environment variables read once, as TensorFlow, CUDA or Python load.
LOAD_TIME = ("TF_", "XLA_", "CUDA_", "NCCL_", "NVIDIA_", "KERAS_", "LD_", "PYTHON")


@dataclasses.dataclass(eq=False)
class Worker:
    """One worker process, as the parent holds it."""

    process: mp.Process
    events: object  # the receiving end of its pipe to the parent
    orders: object  # the sending end of the parent's pipe to it
    stop: object  # its run's stop flag: a multiprocessing RawValue("b")
    slot: Slot
    loaded_with: dict[str, str]  # `load_time(slot)` when it was spawned
    scratch: str  # its temporary folder, removed once it ended

    @classmethod
    def spawn(cls, context, slot: Slot, claim_lock: MachineLock) -> "Worker":
        receiver, sender = context.Pipe(duplex=False)
        order_receiver, order_sender = context.Pipe(duplex=False)
        stop = context.RawValue("b", 0)  # a plain shared integer, as the claim lock's owner
        scratch = tempfile.mkdtemp(prefix="lrsearch-worker-")
        process = context.Process(target=worker_main, name="lrsearch-worker", daemon=True,
                                  args=(slot, scratch, claim_lock, stop, sender, order_receiver))
        with internals.without_main_module():  # a script without a __main__ guard must not run again there
            process.start()
        sender.close()
        order_receiver.close()
        return cls(process, receiver, order_sender, stop, slot, load_time(slot), scratch)

    def close(self) -> None:
        """Close its pipes and remove its temporary folder (the process ended)."""
        self.events.close()
        self.orders.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def load_time(slot: Slot) -> dict[str, str]:
    """The `LOAD_TIME` variables that a worker spawned now for `slot` would load TensorFlow with, but for those
    the slot sets."""
    return {name: value for name, value in os.environ.items()
            if name.startswith(LOAD_TIME) and name not in slot.environment()}


class WarmPool:
    """This session's spawn context and claim lock, and its idle workers."""

    def __init__(self) -> None:
        self.context = mp.get_context("spawn")
        self.claim_lock = MachineLock.create(self.context)
        self.idle: list[Worker] = []
        self._lock = threading.Lock()  # runs in several threads share the pool
        atexit.register(self.stop_idle)

    def take(self, slot: Slot) -> Worker:
        """An idle worker that fits `slot`, else a new one."""
        now = load_time(slot)
        with self._lock:
            fits = [w for w in self.idle if w.slot == slot and w.loaded_with == now and w.process.is_alive()]
            if fits:
                self.idle.remove(fits[0])
                return fits[0]
        return Worker.spawn(self.context, slot, self.claim_lock)

    def keep(self, worker: Worker) -> None:
        """Keep `worker`, which finished its job, for the next run."""
        with self._lock:
            self.idle.append(worker)

    def stop_idle(self) -> None:
        """Kill the idle workers (which write nothing), all before waiting for any."""
        with self._lock:
            idle, self.idle = self.idle, []
        for worker in idle:
            worker.process.kill()
        for worker in idle:
            worker.process.join()
            worker.close()


_pool: WarmPool | None = None
_made = threading.Lock()


def pool() -> WarmPool:
    """The session's pool, made when a run first needs a worker."""
    global _pool
    with _made:
        if _pool is None:
            _pool = WarmPool()
        return _pool


def shutdown() -> None:
    """End the worker processes that this Python session keeps warm between searches, and with them the
    memory they hold (a GPU's too); the next search starts new ones. They end with the session anyway."""
    if _pool is not None:
        _pool.stop_idle()
