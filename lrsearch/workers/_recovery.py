"""Trials whose worker is gone, for the parent: fail the RUNNING trials of a worker that died (counted, its own
doing) or that the run killed (interrupted: not counted, retried; `fail_trials_of`), and interrupt those left by
processes of this machine that no longer exist (`fail_dead_local_trials`), naming a lost storage where the run that
left them noted one (`note_storage_lost`); tell which RUNNING trials a live worker elsewhere may still finish
(`live_running`); and say how a worker ended (`describe_exit`). Other machines' trials are interrupted by heartbeats
(`results.fail_stale_trials`).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import signal
import socket
from pathlib import Path

from lrsearch import internals, results
from lrsearch.errors import StorageUnavailableError
from lrsearch.results import worker_tag

#: Why a trial left RUNNING by a dead process of this machine ended, when no note says more.
RUN_ENDED = "its run ended before it finished (killed, or lost the storage)"


def describe_exit(code: int | None) -> str:
    """A worker's exit code in words: `killed by SIGKILL (kill -9 or out of memory)`."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        cause = {"SIGKILL": "kill -9 or out of memory", "SIGSEGV": "a crash", "SIGABRT": "a crash"}.get(name)
        return f"killed by {name}" + (f" ({cause})" if cause else "")
    return f"exit code {code}"


def fail_trials_of(study, pid: int, held_lock: bool, reason: str, interrupted: bool = False) -> None:
    """Fail the RUNNING trials of this machine's worker `pid`, which ended (`interrupted`: the run
    ended it, `reason` says how); with `held_lock` (it died holding the claim lock) also a trial it
    created but had not marked as its own."""
    try:
        results.fail_running_trials(study, lambda tag: tag == worker_tag(pid) or (held_lock and tag is None),
                                    reason, interrupted=interrupted)
    except StorageUnavailableError:
        pass  # its trial stays RUNNING for now; the next run interrupts it (its process is gone)


def fail_dead_local_trials(study) -> int:
    """Interrupt the RUNNING trials left by processes of this machine that no longer exist (a
    run killed outright, or one that lost the storage, which its note says); other machines'
    trials are left to heartbeats. The note is read once: the first run after it finds all
    the trials it was about."""
    host = socket.gethostname()

    def dead_here(tag: str | None) -> bool:
        where = results.split_worker_tag(tag)
        return where is not None and where[0] == host and not process_alive(where[1])

    note = _storage_lost_note(study)
    failed = results.fail_running_trials(study, dead_here, _read_note(note) or RUN_ENDED, interrupted=True)
    with contextlib.suppress(OSError):
        note.unlink(missing_ok=True)
    return failed


def note_storage_lost(study) -> None:
    """Note in this user's cache that the run of `study` stops now because it lost the storage
    (which cannot be told so), for the next run here to name why the trials it left ended."""
    note = _storage_lost_note(study)
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text(json.dumps({"lost_at": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")}))
    except OSError:
        pass  # the next run says RUN_ENDED


def _read_note(note: Path) -> str | None:
    """The cause that a note of `note_storage_lost` names, if there is a readable one."""
    try:
        lost_at = json.loads(note.read_text())["lost_at"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"its run lost the storage (unreachable for longer than its patience; the run stopped at {lost_at})"


def _storage_lost_note(study) -> Path:
    """Where `note_storage_lost` notes it for this storage and study (by a hash: no URL is written)."""
    from lrsearch.storage import is_url

    label = getattr(internals.storage_of(study), "label", "")  # the redacted URL or the journal's path
    where = label if not label or is_url(label) else os.path.abspath(label)
    key = hashlib.sha256(f"{where}\n{study.study_name}".encode()).hexdigest()[:24]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache, "lrsearch", "storage-lost", f"{key}.json")


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
    return heartbeats or (where[0] == socket.gethostname() and process_alive(where[1]))


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this machine runs; a zombie (dead, not reaped yet: an orphan
    waits for init to reap it) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return not os.path.isdir("/proc/self")  # no /proc (macOS): the signal said it runs
    except OSError:
        return True
