"""Claiming trials, so that a study ends with exactly `n_trials`: a worker counts the study's trials and creates
its next one under a lock shared on this machine (`MachineLock`, made by the parent, which frees it when its holder
dies) and under the study's lock shared by all machines (`_study_lock.study_lock`: on PostgreSQL an advisory lock,
`DatabaseLock`). `claimed_trials` is the count, for both sides of the process boundary.

Through Optuna's gRPC proxy, where the study's lock is made of storage calls (`ProxyLock`) and claims made at once
would pass it one by one, a worker claims by ticket instead, under its machine's lock alone: it takes one of the
study's waiting trials, which Optuna's ask takes atomically (of the processes that try one, one gets it). The
tickets are made ahead under the study's lock (`top_up`): by each machine's parent, one for each of its workers
as its run starts and later one for each trial running (`keep_tickets`), and by a worker that found none left.
Waiting trials count toward `n_trials` with the claimed ones, so a study still ends with exactly `n_trials`; a
run stopped early leaves its tickets waiting, for the next run on the study to take.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from lrsearch import internals, results
from lrsearch.workers._proxy_lock import ProxyLock

#: The states of trials that count toward `n_trials`: all but enqueued ones that no worker took yet.
CLAIMED = ("RUNNING", "COMPLETE", "PRUNED", "FAIL")
#: Tickets a worker makes when it finds none left: one for itself and a few for the next claims.
TICKETS_A_WORKER = 4


def claimed_states() -> tuple:
    """The TrialStates of the trials some worker took (`CLAIMED`)."""
    from optuna.trial import TrialState

    return tuple(TrialState[name] for name in CLAIMED)


def claimed_trials(study) -> int:
    """How many trials of `study` count toward its `n_trials`: those in a CLAIMED state but
    the interrupted ones (`results.interruption`), whose retries take their place."""
    return _counts(study)["claimed"]


def top_up(study, n_trials: int, wanted: Callable[[dict], int]) -> bool:
    """Under the study's lock (the caller's): make waiting trials (tickets) until
    `wanted(counts)` of them wait (`counts` as `_counts` reads them now), as far as `n_trials`
    allows counting the claimed and the waiting ones. False if none is left to take: the
    study holds `n_trials` claimed trials."""
    from optuna.trial import TrialState, create_trial

    storage, study_id = internals.storage_of(study), internals.study_id(study)
    counts = _counts(study)
    made = max(0, min(n_trials - counts["claimed"] - counts["waiting"], wanted(counts) - counts["waiting"]))
    for _ in range(made):
        storage.create_new_trial(study_id, template_trial=create_trial(state=TrialState.WAITING))
    return counts["waiting"] + made > 0


def keep_tickets(study, shared_lock, n_trials: int, workers: int = 0) -> None:
    """What a run's parent does where workers claim by ticket (`by_ticket(shared_lock)`): as
    it starts, make a ticket for each of its `workers`; later, keep one waiting for each
    trial running, whose worker takes one next; under `shared_lock`, the study's lock."""
    def wanted(counts: dict) -> int:
        return counts["waiting"] + workers if workers else counts["running"]

    if not by_ticket(shared_lock):
        return
    if not workers and (counts := _counts(study))["waiting"] >= wanted(counts):
        return  # enough wait, as read without the lock
    _top_up_holding(shared_lock, study, n_trials, wanted)


def _top_up_holding(shared_lock, study, n_trials: int, wanted: Callable[[dict], int]) -> bool:
    """`top_up` under `shared_lock`, the study's lock."""
    shared_lock.acquire()
    try:
        return top_up(study, n_trials, wanted)
    finally:
        shared_lock.release()


def _counts(study) -> dict[str, int]:
    """How many trials of `study` are waiting, running, and claimed (`claimed_trials`): one
    read of the trials, as Optuna's own count makes, answered from its cache on an RDB storage."""
    from optuna.trial import TrialState

    trials = internals.storage_of(study).get_all_trials(internals.study_id(study), deepcopy=False,
                                                        states=(*claimed_states(), TrialState.WAITING))
    return {"waiting": sum(trial.state == TrialState.WAITING for trial in trials),
            "running": sum(trial.state == TrialState.RUNNING for trial in trials),
            "claimed": sum(trial.state != TrialState.WAITING and results.interruption(trial) is None
                           for trial in trials)}


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


def by_ticket(shared_lock) -> bool:
    """Whether the workers that share `shared_lock` (`_study_lock.study_lock`) claim trials by
    ticket: through the gRPC proxy, whose lock costs several calls to the busy proxy a claim."""
    return isinstance(shared_lock, ProxyLock)


class Claim:
    """The lock under which a worker takes its next trial: the machine-wide lock, recording
    its holder so that the parent can free it if the holder dies, then the study's lock
    shared with other machines if there is one (`_study_lock.study_lock`), but where workers
    claim by ticket (`by_ticket`), who take the study's lock only to make tickets. The
    machine's lock stays: one claim at a time a machine spares the storage a crowd."""

    def __init__(self, machine_lock: MachineLock, shared_lock) -> None:
        self.machine_lock, self.shared_lock, self.held = machine_lock, shared_lock, False
        self.tickets = by_ticket(shared_lock)

    def acquire(self) -> None:
        self.machine_lock.lock.acquire()
        self.machine_lock.owner.value = os.getpid()
        self.held = True
        if self.shared_lock and not self.tickets:
            self.shared_lock.acquire()

    def release(self) -> None:
        if self.held:
            if self.shared_lock and not self.tickets:
                self.shared_lock.release()
            self.held = False
            self.machine_lock.owner.value = 0
            self.machine_lock.lock.release()

    def start(self, study, n_trials: int, run_one: Callable[[], None]) -> bool:
        """Under this claim, held: start the next trial of `study` with `run_one` (Optuna's
        optimize of one trial, whose objective releases the claim), unless the study holds
        `n_trials` claimed trials: False then. By ticket, a trial is a waiting one taken,
        and where none is left this worker makes a few (`TICKETS_A_WORKER`, `top_up`)."""
        if not self.tickets:
            if claimed_trials(study) >= n_trials:
                return False
            run_one()
            return True
        from lrsearch.storage import NoWaitingTrial

        while True:
            try:
                with internals.storage_of(study).only_waiting_trials():
                    run_one()
                return True
            except NoWaitingTrial:
                if claimed_trials(study) >= n_trials:  # full: no lock needed to see that
                    return False
                if not _top_up_holding(self.shared_lock, study, n_trials, lambda counts: TICKETS_A_WORKER):
                    return False


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
