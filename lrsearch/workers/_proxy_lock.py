"""A study's lock made of Optuna storage calls alone, for processes on several machines that share a storage
which gives them no lock of its own: Optuna's gRPC storage proxy, whose workers never reach the database behind
it (`_study_lock.study_lock` takes it there; it works through any Optuna storage).

The lock is a study of its own that exists while it is held, named for the locked study (`lock_name`).
Acquiring it is creating that study: a storage creates a name once, so of the processes that try at once one
succeeds and the others get DuplicatedStudyError (behind the proxy, from PostgreSQL's unique index); they look
up its id, with a short backoff, until it is gone (a look is a plain read, not a failed insert that the
database would log). Releasing it is deleting it. A holder that died leaves it behind: a waiter that has seen
the same lock study (by its id, which a storage never gives again) for `lease` seconds of its own clock (no
clocks compared across machines) deletes that study by its id, which ends that holding only: waiters that
break it at once delete the one study, and the next holder's study has a new id that no stale waiter knows.

Why not the WAITING trial that `set_trial_state_values(RUNNING)` pops, as atomic: putting a stale one back to
WAITING is unconditional, so two waiters that saw the same dead holder could free each other's new holding;
and lock trials created in a race cannot be told apart safely (a later one may get the same number, and the
first one created may become visible after another). Ordering either needs a lock again, where a study's
name is a compare-and-set and its id a generation, as the storage API offers them.

A creation whose answer an outage lost, retried, looks like another's holding and waits out the lease.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time

from lrsearch import internals
from lrsearch.results import worker_tag

#: Seconds a holding may last before a waiter breaks it: far above a claim (milliseconds to a second), and above
#: the storage's patience too, though waiters restart their count after a look that met an outage (`STALL`).
LEASE = 120.0
#: Seconds between two looks at a held lock: the first wait, and the longest. Each look is a call the proxy
#: serves among everyone's; with one waiter a machine, the first of several to look after a release still
#: comes soon (the longest wait over their number, on average).
POLL = (0.01, 0.4)
#: Seconds past which a look met an unreachable storage, which the holder may have met as well.
STALL = 5.0
#: The system attribute of a lock study that names its holder and when (its clock) it took the lock.
HOLDER = "lrsearch:holder"


def lock_name(study_id: int) -> str:
    """The name of the study that exists while study `study_id`'s lock is held."""
    from lrsearch.storage import CLAIM_LOCK_PREFIX

    return f"{CLAIM_LOCK_PREFIX}{study_id}"


def proxy_under(storage):
    """The GrpcStorageProxy at the bottom of `storage`'s layers (lrsearch's, then Optuna's), or None."""
    from optuna.storages import GrpcStorageProxy

    while storage is not None and not isinstance(storage, GrpcStorageProxy):
        storage = getattr(storage, "inner", None) or internals.storage_behind(storage)
    return storage


class ProxyLock:
    """The lock of study `study_id` in `storage` (any Optuna storage), with the interface of
    `_claims.DatabaseLock`: `acquire` waits for it, `release` frees it. One holder at a time per
    object, as the other locks; calls go through `retrying` (an outage is waited out)."""

    @classmethod
    def of(cls, storage, study_id: int) -> "ProxyLock | None":
        """The lock of `study_id` through the gRPC proxy under `storage`'s layers; None if none."""
        proxy = proxy_under(storage)
        if proxy is None:
            return None
        return cls(proxy, study_id, getattr(storage, "retrying", lambda work: work()))

    def __init__(self, storage, study_id: int, retrying=lambda work: work(), lease: float = LEASE) -> None:
        self.storage, self.study_id, self.retrying, self.lease = storage, study_id, retrying, lease
        self.name = lock_name(study_id)
        self.held: int | None = None  # the id of the lock study while this object holds it

    def acquire(self) -> None:
        while (taken := self._take()) is None:
            self._wait_until_free()
        self.held = taken

    def release(self) -> None:
        """Free the lock; one that a waiter broke (held past the lease) is free already."""
        held, self.held = self.held, None
        if held is not None:
            with contextlib.suppress(KeyError):
                self.retrying(lambda: self.storage.delete_study(held))

    def _take(self) -> int | None:
        """Create the lock study and record its holder; None if it exists."""
        from optuna.exceptions import DuplicatedStudyError
        from optuna.study import StudyDirection

        try:
            taken = self.retrying(lambda: self.storage.create_new_study([StudyDirection.MINIMIZE], self.name))
        except DuplicatedStudyError:
            return None
        holder = {"by": worker_tag(), "at": time.time()}
        with contextlib.suppress(KeyError):  # broken already, by a lease shorter than this call
            self.retrying(lambda: self.storage.set_study_system_attr(taken, HOLDER, holder))
        return taken

    def _wait_until_free(self) -> None:
        """Look at the lock study until it is gone: released, or broken here once the same one
        stayed for the lease."""
        wait, seen, since = POLL[0], None, 0.0
        while True:
            looked = time.monotonic()
            try:
                holding = self.retrying(lambda: self.storage.get_study_id_from_name(self.name))
            except KeyError:
                return
            now = time.monotonic()
            if holding != seen or now - looked > STALL:  # a new holding, or an outage the holder may have met too
                seen, since = holding, now
            elif now - since >= self.lease:
                self._break(holding)
                return
            time.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(2 * wait, POLL[1])

    def _break(self, holding: int) -> None:
        """Delete the lock study `holding` (that holding only), and say whose it was."""
        try:
            holder = self.retrying(lambda: self.storage.get_study_system_attrs(holding)).get(HOLDER) or {}
            self.retrying(lambda: self.storage.delete_study(holding))
        except KeyError:
            return  # released meanwhile, or broken by another waiter
        since = time.strftime("%H:%M:%S", time.localtime(holder["at"])) if "at" in holder else "a time it never said"
        print(f"lrsearch: broke the claim lock of study id {self.study_id}, held by "
              f"{holder.get('by', 'a process that ended before it said its name')} since {since} (its clock), "
              f"over the {self.lease:.0f} s lease: a holder that ended while holding it.", file=sys.stderr, flush=True)
