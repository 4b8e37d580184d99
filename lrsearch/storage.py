"""Where trials live.

- a file path (the default, ``./lrsearch.journal``): Optuna's JournalStorage on a
  JournalFileBackend, which several processes on one machine can write at once and
  which optuna-dashboard and the optuna CLI open directly;
- any Optuna storage URL: ``postgresql://user:pass@host/db`` (several machines; with
  heartbeats, so trials of a vanished worker are marked failed), ``sqlite:///x.db``,
  ``mysql://...``, ``redis://...``.

Whatever lrsearch prints or records about a URL goes through `redact` first.
"""

from __future__ import annotations

import random
import re
import shlex
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

DEFAULT_STORAGE = "lrsearch.journal"
#: Seconds between a running trial's heartbeats on an RDB storage, and how long one may
#: stay silent before the trial is marked failed.
HEARTBEAT_INTERVAL = 20
GRACE_PERIOD = 60

_PASSWORD = re.compile(r"^(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*):(?P<password>.*)@")


def is_url(storage: str) -> bool:
    return "://" in storage


def is_rdb(storage: str) -> bool:
    return is_url(storage) and not storage.startswith("redis")


def redact(storage: str) -> str:
    """`storage` with any password replaced by ***."""
    return _PASSWORD.sub(r"\g<head>:***@", storage)


def open_storage(storage: str, heartbeat: bool = False) -> "optuna.storages.BaseStorage":
    """An Optuna storage for a file path or URL; RDB storages get heartbeats if asked."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    if not is_url(storage):
        return JournalStorage(JournalFileBackend(storage))
    if storage.startswith("redis"):
        return JournalStorage(JournalRedisBackend(storage))
    options = {"engine_kwargs": {"pool_pre_ping": True}}
    if heartbeat:
        options.update(heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD,
                       failed_trial_callback=_note_stale)
    return _create_rdb(lambda: RDBStorage(storage, **options))


def _create_rdb(create, attempts: int = 6):
    """`create()`, retried while other processes create the same tables: on a fresh
    database, workers starting together race to create Optuna's tables and all but one
    fail with a duplicate-key error."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            return create()
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))


def _note_stale(study: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> None:
    study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", "worker stopped sending heartbeats")


def dashboard_command(storage: str) -> str:
    """The optuna-dashboard command that watches `storage` (password hidden)."""
    return f"optuna-dashboard {shlex.quote(redact(storage))}"


def optuna_cli_hint(storage: str, study_name: str) -> str:
    return f"optuna trials --study-name {shlex.quote(study_name)} --storage {shlex.quote(redact(storage))}"
