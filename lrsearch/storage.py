"""Where trials live.

- a file path (the default, ``./lrsearch.journal``): Optuna's JournalStorage on a
  JournalFileBackend, which several processes on one machine can write at once and
  which optuna-dashboard and the optuna CLI open directly;
- any Optuna storage URL: ``postgresql://user:pass@host/db`` (several machines; with
  heartbeats, so trials of a vanished worker are failed), ``sqlite:///x.db``,
  ``mysql://...``, ``redis://...``.

Every storage comes wrapped in `ResilientStorage`, which waits through a server restart.

Whatever lrsearch prints or records about a URL goes through `redact` first.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import time
import warnings
from typing import TYPE_CHECKING, Callable

from lrsearch.errors import StorageError, StorageOpenError

if TYPE_CHECKING:
    from lrsearch.resilient import ResilientStorage

DEFAULT_STORAGE = "lrsearch.journal"
#: Seconds between a running trial's heartbeats on an RDB storage, and how long one may
#: stay silent before the trial is failed: longer than an outage lrsearch rides out
#: (`resilient.DEFAULT_PATIENCE`) plus one interval, so that a restart fails no trial.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 90

#: Query parameters that carry a password (libpq, SQLAlchemy drivers).
_PASSWORD_PARAMS = {"password", "passwd", "pwd", "sslpassword"}
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")


def is_url(storage: str) -> bool:
    return "://" in storage


def is_rdb(storage: str) -> bool:
    return is_url(storage) and not storage.startswith("redis")


def redact(storage: str) -> str:
    """`storage` with any password replaced by ***: in `user:password@host` (the
    password may hold '@', ':' or '/', or be percent-encoded) and in query parameters
    such as `?password=`. A path stays as it is."""
    if not is_url(storage):
        return storage
    scheme, _, rest = storage.partition("://")
    authority, slash, tail = _split_authority(rest)
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        authority = f"{userinfo}@{host}"
    path, question, query = tail.partition("?")
    if question:
        query = "&".join(_redact_param(part) for part in query.split("&"))
    return f"{scheme}://{authority}{slash}{path}{question}{query}"


def _split_authority(rest: str) -> tuple[str, str, str]:
    """(user:password@host:port, "/", the rest): the authority ends at the first '/' or
    '?' after its last '@' (a password may hold '/')."""
    at = rest.rfind("@")
    for i in range(max(at, 0), len(rest)):
        if rest[i] in "/?":
            return rest[:i], "/" if rest[i] == "/" else "", rest[i + 1:] if rest[i] == "/" else rest[i:]
    return rest, "", ""


def _redact_param(part: str) -> str:
    key, equals, value = part.partition("=")
    return f"{key}=***" if equals and key.lower() in _PASSWORD_PARAMS and value else part


def passwords_of(storage: str) -> list[str]:
    """The password(s) in `storage`, raw and percent-decoded (for scrubbing messages)."""
    import urllib.parse

    found = []
    if is_url(storage):
        authority, _, tail = _split_authority(storage.partition("://")[2])
        userinfo = authority.rpartition("@")[0]
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
        for part in tail.partition("?")[2].split("&"):
            key, _, value = part.partition("=")
            if key.lower() in _PASSWORD_PARAMS:
                found.append(value)
    found += [urllib.parse.unquote(p) for p in found]
    return sorted({p for p in found if p}, key=len, reverse=True)


def redact_text(text: str, storage: str) -> str:
    """`text` (an error message, say) with every URL redacted and the passwords of
    `storage` replaced by ***, wherever they appear."""
    text = _URL.sub(lambda m: redact(m.group(0)), text)
    for password in passwords_of(storage):
        text = text.replace(password, "***")
    return text


def open_storage(storage: str, *, notify: Callable[[str], None] | None = None,
                 abort: Callable[[], bool] | None = None, wait_to_open: bool = False) -> "ResilientStorage":
    """The Optuna storage of a journal file path or URL, retried through outages
    (`lrsearch.resilient`); RDB storages record heartbeats of running trials.

    A journal file is checked first and refused if damaged (`lrsearch.journal`). A server
    that cannot be reached fails at once, unless `wait_to_open` (a worker joining a run)."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import JournalStorage, RDBStorage, _CachedStorage
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    from lrsearch.journal import check_journal
    from lrsearch.resilient import ResilientStorage

    interval, grace = heartbeat_settings()
    resilient = ResilientStorage(None, redact(storage), patience=storage_patience(), notify=notify, abort=abort)
    if not is_url(storage):
        check_journal(storage)
        resilient.inner = JournalStorage(JournalFileBackend(storage))
    elif storage.startswith("redis"):
        resilient.inner = JournalStorage(JournalRedisBackend(storage))
    else:
        options = {"engine_kwargs": {"pool_pre_ping": True}, "heartbeat_interval": interval, "grace_period": grace}

        def create():
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
                warnings.simplefilter("ignore", ExperimentalWarning)
                return _CachedStorage(_create_rdb(lambda: RDBStorage(storage, **options)))

        try:
            resilient.inner = resilient.retrying(create) if wait_to_open else create()
        except StorageError:
            raise
        except Exception as exc:
            raise StorageOpenError(redact_text(f"cannot open storage {redact(storage)}: "
                                               f"{type(exc).__name__}: {exc}", storage)) from None
    return resilient


def heartbeat_settings() -> tuple[int, int]:
    """(seconds between a running trial's heartbeats, seconds of silence after which it
    is failed) on RDB storages; LRSEARCH_HEARTBEAT="INTERVAL,GRACE" overrides them."""
    text = os.environ.get("LRSEARCH_HEARTBEAT")
    if not text:
        return HEARTBEAT_INTERVAL, GRACE_PERIOD
    try:
        interval, grace = (int(part) for part in text.split(","))
        if interval < 1 or grace <= interval:
            raise ValueError
    except ValueError:
        raise StorageError(f"LRSEARCH_HEARTBEAT must be 'INTERVAL,GRACE' in whole seconds with "
                           f"1 <= INTERVAL < GRACE, but got {text!r}.") from None
    return interval, grace


def storage_patience() -> float:
    """Seconds to wait for an unreachable storage; LRSEARCH_STORAGE_PATIENCE overrides it."""
    from lrsearch.resilient import DEFAULT_PATIENCE

    text = os.environ.get("LRSEARCH_STORAGE_PATIENCE")
    try:
        return DEFAULT_PATIENCE if not text else max(0.0, float(text))
    except ValueError:
        raise StorageError(f"LRSEARCH_STORAGE_PATIENCE must be a number of seconds, but got {text!r}.") from None


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


def dashboard_command(storage: str) -> str:
    """The optuna-dashboard command that watches `storage` (password hidden)."""
    return f"optuna-dashboard {shlex.quote(redact(storage))}"


def optuna_cli_hint(storage: str, study_name: str) -> str:
    return f"optuna trials --study-name {shlex.quote(study_name)} --storage {shlex.quote(redact(storage))}"
