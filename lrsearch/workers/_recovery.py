"""Trials whose worker is gone, for the parent: fail the RUNNING trials of a worker that died or was killed
(`fail_trials_of`), and those left by processes of this machine that no longer exist (`fail_dead_local_trials`);
tell which RUNNING trials a live worker elsewhere may still finish (`live_running`); and say how a worker ended
(`describe_exit`). Other machines' trials are failed by heartbeats (`results.fail_stale_trials`).
"""

from __future__ import annotations

import os
import signal
import socket

from lrsearch import internals, results
from lrsearch.errors import StorageUnavailableError
from lrsearch.results import worker_tag


def describe_exit(code: int | None) -> str:
    """A worker's exit code in words: `killed by SIGKILL (kill -9 or out of memory)`."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        cause = {"SIGKILL": "kill -9 or out of memory", "SIGSEGV": "a crash", "SIGABRT": "a crash"}.get(name)
        return f"killed by {name}" + (f" ({cause})" if cause else "")
    return f"exit code {code}"


def fail_trials_of(study, pid: int, held_lock: bool, reason: str) -> None:
    """Fail the RUNNING trials of this machine's worker `pid`, which ended; with `held_lock`
    (it died holding the claim lock) also a trial it created but had not marked as its own."""
    try:
        results.fail_running_trials(study, lambda tag: tag == worker_tag(pid) or (held_lock and tag is None), reason)
    except StorageUnavailableError:
        pass  # its trial stays RUNNING for now; the next run fails it (its process is gone)


def fail_dead_local_trials(study) -> int:
    """Fail RUNNING trials left by processes of this machine that no longer exist (a run
    killed outright); other machines' trials are left to heartbeats."""
    host = socket.gethostname()

    def dead_here(tag: str | None) -> bool:
        where = results.split_worker_tag(tag)
        return where is not None and where[0] == host and not _alive(where[1])

    return results.fail_running_trials(study, dead_here, "its worker process is gone (the run was killed)")


def live_running(study) -> tuple[list[str], bool]:
    """The worker tags of RUNNING trials whose workers may still finish them, and whether
    the storage has heartbeats (which fail a trial whose worker vanished)."""
    heartbeats = getattr(internals.storage_of(study), "is_heartbeat_enabled", lambda: False)()
    tags = [t.user_attrs["worker"] for t in study.get_trials(deepcopy=False, states=(_running(),))
            if _is_live_elsewhere(t.user_attrs.get("worker"), heartbeats)]
    return tags, heartbeats


def _running():
    from optuna.trial import TrialState

    return TrialState.RUNNING


def _is_live_elsewhere(tag: str | None, heartbeats: bool) -> bool:
    """Whether a RUNNING trial's worker may still finish it: any lrsearch worker where
    heartbeats will tell if it vanishes, else a live process of this machine."""
    where = results.split_worker_tag(tag)
    if where is None:
        return False
    return heartbeats or (where[0] == socket.gethostname() and _alive(where[1]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
