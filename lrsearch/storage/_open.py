"""Where trials live.

- a file path (the default, ``./lrsearch.journal``): Optuna's JournalStorage on a
  JournalFileBackend, which several processes on one machine can write at once and
  which optuna-dashboard and the optuna CLI open directly;
- any Optuna storage URL: ``postgresql://user:pass@host/db`` (several machines; with
  heartbeats, so trials of a vanished worker are failed), ``sqlite:///x.db``,
  ``mysql://...``, ``redis://...``;
- ``grpc://host:port``: a storage proxy (`lrsearch storage-proxy`) in front of a database,
  shared by many machines as the database is, with heartbeats of its own
  (`lrsearch.storage._grpc`).

Every storage comes wrapped in `ResilientStorage`, which waits through a server restart.

Whatever lrsearch prints or records about a URL goes through `redact` first.
"""

from __future__ import annotations

import os
import random
import shlex
import time
import warnings
from typing import TYPE_CHECKING, Callable

from lrsearch.errors import LrsearchError, StorageOpenError, UsageError
from lrsearch.storage._redact import (check_url, describe_error, is_grpc, is_url, keep_secret, plain_database_logs,
                                      redact)

if TYPE_CHECKING:
    from lrsearch.storage._resilient import ResilientStorage

DEFAULT_STORAGE = "lrsearch.journal"
#: The names of the studies that serve as claim locks through a storage proxy
#: (`lrsearch.workers._proxy_lock`), which no command lists.
CLAIM_LOCK_PREFIX = "lrsearch.claim-lock."
#: Seconds between a running trial's heartbeats on an RDB storage or a storage proxy, and
#: how long one may stay silent before the trial is failed: longer than an outage lrsearch
#: rides out (`resilient.DEFAULT_PATIENCE`) plus one interval, so that a restart fails no trial.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 90


class NoSuchStudy(UsageError):
    """The storage holds no study of the name asked for (`open_study` without a direction)."""


def is_rdb(storage: str) -> bool:
    """Whether `storage` is a database URL (SQLAlchemy's); a storage proxy is none."""
    return is_url(storage) and not storage.startswith("redis") and not is_grpc(storage)


def open_storage(storage: str, *, notify: Callable[[str], None] | None = None,
                 abort: Callable[[], bool] | None = None, wait_to_open: bool = False,
                 patience: float | None = None, connections: int | None = None) -> "ResilientStorage":
    """The Optuna storage of a journal file path or URL, retried through outages for
    `patience` seconds (default `storage_patience()`; `lrsearch.storage._resilient`); RDB
    storages and storage proxies record heartbeats of running trials.

    A journal file is checked first and refused if damaged (`lrsearch.journal`), and a new
    one's folders are made; a write
    to it that fails for want of space raises WriteError. A URL a driver would misread is
    refused (`check_url`). A server that cannot be reached fails at once, unless
    `wait_to_open` (a worker joining a run). `connections`: the database connections
    kept open, and the most it opens (default: SQLAlchemy's pool, 5 kept and 10 more)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalRedisBackend

    from lrsearch.storage._journal import check_journal
    from lrsearch.storage._journal_file import JournalFile
    from lrsearch.storage._resilient import ResilientStorage

    check_url(storage)
    keep_secret(storage)
    interval, grace = heartbeat_settings()
    resilient = ResilientStorage(None, redact(storage), patience=storage_patience() if patience is None else patience,
                                 notify=notify, abort=abort)
    if not is_url(storage):
        path = os.path.expanduser(storage)  # "~/x.journal" quoted, or from Python, as the shell would
        try:  # a new journal's folders, as a report's are made
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        except OSError as exc:
            raise _cannot_open(storage, exc) from None
        check_journal(path)
        resilient.inner = JournalStorage(JournalFile(path))
    elif storage.startswith("redis"):
        from optuna.exceptions import ExperimentalWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # a user of a redis:// URL chose it
            resilient.inner = JournalStorage(JournalRedisBackend(storage))
    else:
        def create():
            if is_grpc(storage):
                from lrsearch.storage._grpc import open_proxy

                return open_proxy(storage, interval, grace)
            return _open_rdb(storage, interval, grace, connections)

        try:
            resilient.inner = resilient.retrying(create) if wait_to_open else create()
        except LrsearchError:
            raise
        except Exception as exc:
            raise _cannot_open(storage, exc) from None
    return resilient


def open_study(storage: str, study_name: str, *, direction: str | None = None, sampler=None, pruner=None,
               notify: Callable[[str], None] | None = None):
    """The Optuna study `study_name` in `storage` (a journal file path or URL), opened by
    `open_storage`. With `direction` it is created if absent; without, it must exist
    (UsageError naming the studies there), and so must a journal file (`require_storage`).
    A storage that cannot be opened raises StorageOpenError, its password redacted."""
    import optuna

    if direction is None:
        require_storage(storage)
    try:
        opened = open_storage(storage, notify=notify)
        if direction is not None:
            return optuna.create_study(study_name=study_name, storage=opened, direction=direction, sampler=sampler,
                                       pruner=pruner, load_if_exists=True)
        names = study_names(opened)
    except LrsearchError:
        raise
    except Exception as exc:  # a wrong URL, a server that is down, a file we cannot write
        raise _cannot_open(storage, exc) from None
    if study_name not in names:
        raise NoSuchStudy(f"no study {study_name!r} in {redact(storage)}; it holds {names or 'none'}.")
    return optuna.load_study(study_name=study_name, storage=opened, sampler=sampler, pruner=pruner)


def study_names(opened) -> list[str]:
    """The names of the studies in the opened storage `opened`, less the claim locks that
    exist while a worker behind a storage proxy claims a trial (`CLAIM_LOCK_PREFIX`)."""
    import optuna

    return [s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)
            if not s.study_name.startswith(CLAIM_LOCK_PREFIX)]


def _cannot_open(storage: str, exc: Exception) -> StorageOpenError:
    return StorageOpenError(f"cannot open storage {redact(storage)}: {describe_error(exc)}{_driver_hint(storage, exc)}")


def _driver_hint(storage: str, exc: Exception) -> str:
    """What to install where the database driver that URL `storage` names is missing."""
    if not (isinstance(exc, ImportError) and is_url(storage)):
        return ""
    scheme = storage.partition("://")[0]
    rewrite = ", or write postgresql://" if scheme.startswith("postgresql+") else ""
    return (f"\nlrsearch installs one database driver, psycopg, for postgresql:// (and postgresql+psycopg://) URLs; "
            f"install the one a {scheme}:// URL names with pip{rewrite}.")


def require_storage(storage: str) -> None:
    """UsageError unless `storage` is an existing journal file, or a URL but one of an SQLite
    file that does not exist (reading must not create an empty one)."""
    path = storage if not is_url(storage) else _sqlite_file(storage)
    if path is not None and not os.path.isfile(path):
        raise UsageError(f"no storage file {path!r}; run `lrsearch run` first or give --storage.")


def _sqlite_file(storage: str) -> str | None:
    """The file of an sqlite:/// URL `storage` (None for any other URL)."""
    if storage.partition("://")[0].partition("+")[0] != "sqlite":
        return None
    from sqlalchemy.engine import make_url

    return make_url(storage).database or None


def heartbeat_settings() -> tuple[int, int]:
    """(seconds between a running trial's heartbeats, seconds of silence after which it
    is failed) on RDB storages and storage proxies; LRSEARCH_HEARTBEAT="INTERVAL,GRACE"
    overrides them."""
    text = os.environ.get("LRSEARCH_HEARTBEAT")
    if not text:
        return HEARTBEAT_INTERVAL, GRACE_PERIOD
    try:
        interval, grace = (int(part) for part in text.split(","))
        if interval < 1 or grace <= interval:
            raise ValueError
    except ValueError:
        raise UsageError(f"LRSEARCH_HEARTBEAT must be 'INTERVAL,GRACE' in whole seconds with "
                         f"1 <= INTERVAL < GRACE, but got {text!r}.") from None
    return interval, grace


def storage_patience() -> float:
    """Seconds to wait for an unreachable storage; LRSEARCH_STORAGE_PATIENCE overrides it."""
    from lrsearch.storage._resilient import DEFAULT_PATIENCE

    text = os.environ.get("LRSEARCH_STORAGE_PATIENCE")
    try:
        patience = DEFAULT_PATIENCE if not text else float(text)
        if not patience >= 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"LRSEARCH_STORAGE_PATIENCE must be a number of seconds >= 0, but got {text!r}.") from None
    return patience


def _open_rdb(storage: str, interval: int, grace: int, connections: int | None):
    """Optuna's cached RDBStorage of database URL `storage`, with heartbeats every
    `interval` seconds, stale after `grace`."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage

    from lrsearch.internals import cached

    engine = {"pool_pre_ping": True, **({} if connections is None else {"pool_size": connections, "max_overflow": 0})}
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
        warnings.simplefilter("ignore", ExperimentalWarning)
        rdb = _create_rdb(lambda: RDBStorage(storage, engine_kwargs=engine, heartbeat_interval=interval,
                                             grace_period=grace))
    plain_database_logs(rdb.engine)
    return cached(rdb)


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


def optuna_cli_hint(storage: str, study_name: str, program: str = "optuna") -> str:
    """The optuna CLI's command that lists the study's trials; for a storage proxy, which
    the optuna CLI cannot open, with its database's URL to fill in."""
    if is_grpc(storage):
        return (f"{program} trials --study-name {shlex.quote(study_name)} --storage DATABASE_URL  (the database "
                f"behind {redact(storage)}: the optuna CLI opens no storage proxy)")
    return f"{program} trials --study-name {shlex.quote(study_name)} --storage {shlex.quote(redact(storage))}"
