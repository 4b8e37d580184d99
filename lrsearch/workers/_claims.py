"""Claiming trials, so that a study ends with exactly `n_trials`: a worker counts the study's trials and creates
its next one under a lock shared on this machine (`MachineLock`, made by the parent, which frees it when its holder
dies) and under the study's lock shared by all machines (`_study_lock.study_lock`: on PostgreSQL an advisory lock,
`DatabaseLock`). `claimed_trials` is the count, for both sides of the process boundary.
"""

from __future__ import annotations

import dataclasses
import os

from lrsearch import internals, results

#: The states of trials that count toward `n_trials`: all but enqueued ones that no worker took yet.
CLAIMED = ("RUNNING", "COMPLETE", "PRUNED", "FAIL")


def claimed_states() -> tuple:
    """The TrialStates of the trials some worker took (`CLAIMED`)."""
    from optuna.trial import TrialState

    return tuple(TrialState[name] for name in CLAIMED)


def claimed_trials(study) -> int:
    """How many trials of `study` count toward its `n_trials`: those in a CLAIMED state but
    the interrupted ones (`results.interruption`), whose retries take their place. One read
    of the trials, as Optuna's own count makes, answered from its cache on an RDB storage."""
    claimed = internals.storage_of(study).get_all_trials(internals.study_id(study), deepcopy=False,
                                                         states=claimed_states())
    return sum(results.interruption(trial) is None for trial in claimed)


@dataclasses.dataclass(frozen=True)
class MachineLock:
    """The claim lock of this machine's workers, and the pid of its holder (0: none) in a plain
    shared integer, with no lock inside that a killed worker could leave held. Made by the parent
    and handed to each worker as it is spawned."""

    lock: object  # a multiprocessing Lock
    owner: object  # a multiprocessing RawValue("i")

    @classmethod
    def create(cls, context) -> "MachineLock":
        return cls(context.Lock(), context.RawValue("i", 0))

    def free_if_held_by(self, pid: int) -> bool:
        """Release the lock if the (dead) process `pid` held it: a dead worker's value cannot
        change any more. True if it did."""
        if self.owner.value != pid:
            return False
        self.owner.value = 0
        self.lock.release()
        return True


class Claim:
    """The lock under which a worker counts the study's trials and creates the next one:
    the machine-wide lock, recording its holder so that the parent can free it if the
    holder dies, then the study's lock shared with other machines if there is one
    (`_study_lock.study_lock`)."""

    def __init__(self, machine_lock: MachineLock, shared_lock) -> None:
        self.machine_lock, self.shared_lock, self.held = machine_lock, shared_lock, False

    def acquire(self) -> None:
        self.machine_lock.lock.acquire()
        self.machine_lock.owner.value = os.getpid()
        self.held = True
        if self.shared_lock:
            self.shared_lock.acquire()

    def release(self) -> None:
        if self.held:
            if self.shared_lock:
                self.shared_lock.release()
            self.held = False
            self.machine_lock.owner.value = 0
            self.machine_lock.lock.release()


class DatabaseLock:
    """A PostgreSQL advisory lock on one study, held on a connection of its own, so that
    workers of several machines claim trials one at a time. The server frees it when the
    connection drops, so a worker that dies holding it blocks no one."""

    NAMESPACE = 0x6C72  # "lr": the first key of pg_advisory_lock(int, int)

    @classmethod
    def of(cls, storage, study_id: int) -> "DatabaseLock | None":
        from lrsearch.storage import rdb_under

        rdb = rdb_under(storage)
        engine = getattr(rdb, "engine", None)
        if engine is None or engine.dialect.name != "postgresql":
            return None
        return cls(engine, study_id, getattr(storage, "retrying", lambda work: work()))

    def __init__(self, engine, study_id: int, retrying=lambda work: work()) -> None:
        self.engine, self.retrying = engine, retrying
        self.connection, self.key = None, {"space": self.NAMESPACE, "study": study_id}

    def acquire(self) -> None:
        self.retrying(lambda: self._execute("SELECT pg_advisory_lock(:space, :study)"))

    def release(self) -> None:
        """Free the lock; a connection lost meanwhile freed it already."""
        try:
            self._execute("SELECT pg_advisory_unlock(:space, :study)")
        except Exception:
            self._drop()

    def _execute(self, sql: str) -> None:
        from sqlalchemy import text

        try:
            if self.connection is None:
                self.connection = self.engine.connect()
            self.connection.execute(text(sql), self.key)
            self.connection.commit()
        except Exception:
            self._drop()  # reconnect next time (a server restart ends the session, and the lock with it)
            raise

    def _drop(self) -> None:
        if self.connection is not None:
            try:
                self.connection.invalidate()
            except Exception:
                pass
            self.connection = None
