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

from lrsearch.errors import StorageError, StorageOpenError, UsageError

if TYPE_CHECKING:
    from lrsearch.storage._resilient import ResilientStorage

DEFAULT_STORAGE = "lrsearch.journal"
#: Seconds between a running trial's heartbeats on an RDB storage, and how long one may
#: stay silent before the trial is failed: longer than an outage lrsearch rides out
#: (`resilient.DEFAULT_PATIENCE`) plus one interval, so that a restart fails no trial.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 90

#: Query parameters that carry a password (libpq, SQLAlchemy drivers); any name holding
#: "password" or "passwd" counts too (`ssl_password`, `db_password`).
_PASSWORD_PARAMS = {"password", "passwd", "pwd", "sslpassword"}
#: A URL inside a message (`redact_text`): up to a space or a quote.
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")


def is_url(storage: str) -> bool:
    return "://" in storage


def is_rdb(storage: str) -> bool:
    return is_url(storage) and not storage.startswith("redis")


def redact(storage: str) -> str:
    """`storage` with any password replaced by ***: in `user:password@host` (the
    password may hold '@', ':', '/' or '?', or be percent-encoded) and in query parameters
    such as `?password=` or `&PWD=`. A path or `sqlite:///x.db` stays as it is."""
    if not is_url(storage):
        return storage
    scheme, _, rest = storage.partition("://")
    authority, slash, tail = _split_authority(rest)
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, colon, password = userinfo.partition(":")
        authority = f"{user}:***@{host}" if colon and password else authority
    path, question, query = tail.partition("?")
    if question:
        query = "&".join(_redact_param(part) for part in query.split("&"))
    return f"{scheme}://{authority}{slash}{path}{question}{query}"


def _split_authority(rest: str) -> tuple[str, str, str]:
    """`rest` (a URL after "://") as (user:password@host:port, "/" or "", what follows).

    The password may hold '@', ':' and '/', so the user info ends at the last '@' before
    the query, not at the first '/'; it starts where a '?' is followed by `name=` before
    any later '@' (so `pa?ss@host` is a password and `db?password=p@ss` a query). A URL
    whose "://" is followed by '/' (`sqlite:///x.db`) has no authority."""
    if rest.startswith("/"):
        return "", "/", rest[1:]
    query = _query_start(rest)
    at = rest.rfind("@", 0, query)
    if at < 0 and ":" in rest[:query] and "/" not in rest[:query] and "@" in rest[query:]:
        # `user:pa?x=1@host/db`: no path before the '?', so it may still be in a password,
        # unless what follows it is a password parameter (`host:1?password=p@ss`)
        path = rest.find("/", query)
        candidate = rest.rfind("@", 0, path if path >= 0 else len(rest))
        if not any(_is_password_param(part.partition("=")[0]) for part in rest[query + 1:candidate].split("&")):
            at = candidate
    for i in range(max(at, 0), len(rest)):
        if rest[i] == "/":
            return rest[:i], "/", rest[i + 1:]
        if rest[i] == "?":
            return rest[:i], "", rest[i:]
    return rest, "", ""


def _query_start(rest: str) -> int:
    """Where the query of `rest` starts: its first '?' followed by `name=` before the next
    '@' (or with no '@' after it); len(rest) when there is none."""
    i = rest.find("?")
    while i >= 0:
        at = rest.find("@", i)
        if at < 0 or "=" in rest[i:at]:
            return i
        i = rest.find("?", i + 1)
    return len(rest)


def _is_password_param(key: str) -> bool:
    import urllib.parse

    key = urllib.parse.unquote_plus(key).strip().lower()
    return key in _PASSWORD_PARAMS or "password" in key or "passwd" in key


def _redact_param(part: str) -> str:
    key, equals, value = part.partition("=")
    return f"{key}=***" if equals and value and _is_password_param(key) else part


def passwords_of(storage: str) -> list[str]:
    """The passwords in `storage`, raw, percent-decoded and percent-encoded (as a driver
    may echo them), longest first: for scrubbing messages."""
    import urllib.parse

    found = []
    if is_url(storage):
        authority, _, tail = _split_authority(storage.partition("://")[2])
        userinfo = authority.rpartition("@")[0]
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
        for part in tail.partition("?")[2].split("&"):
            key, equals, value = part.partition("=")
            if equals and _is_password_param(key):
                found += [value, urllib.parse.unquote_plus(value)]
    found = [p for p in found if p]
    found += [urllib.parse.unquote(p) for p in found]
    found += [urllib.parse.quote(p, safe="") for p in found]
    return sorted(set(found), key=len, reverse=True)


def redact_text(text: str, storage: str) -> str:
    """`text` (an error message, say) with every URL in it redacted and the passwords of
    `storage` replaced by ***, wherever they appear."""
    text = _URL.sub(lambda m: redact(m.group(0)), text)
    for password in passwords_of(storage):
        text = text.replace(password, "***")
    return text


def open_storage(storage: str, *, notify: Callable[[str], None] | None = None,
                 abort: Callable[[], bool] | None = None, wait_to_open: bool = False) -> "ResilientStorage":
    """The Optuna storage of a journal file path or URL, retried through outages
    (`lrsearch.storage._resilient`); RDB storages record heartbeats of running trials.

    A journal file is checked first and refused if damaged (`lrsearch.journal`). A server
    that cannot be reached fails at once, unless `wait_to_open` (a worker joining a run)."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    from lrsearch.internals import cached
    from lrsearch.storage._journal import check_journal
    from lrsearch.storage._resilient import ResilientStorage

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
                return cached(_create_rdb(lambda: RDBStorage(storage, **options)))

        try:
            resilient.inner = resilient.retrying(create) if wait_to_open else create()
        except StorageError:
            raise
        except Exception as exc:
            raise StorageOpenError(redact_text(f"cannot open storage {redact(storage)}: "
                                               f"{type(exc).__name__}: {exc}", storage)) from None
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
        names = [s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)]
    except StorageError:
        raise
    except Exception as exc:  # a wrong URL, a server that is down, a file we cannot write
        raise StorageOpenError(redact_text(f"cannot open storage {redact(storage)}: {type(exc).__name__}: {exc}",
                                           storage)) from None
    if study_name not in names:
        raise UsageError(f"no study {study_name!r} in {redact(storage)}; it holds {names or 'none'}.")
    return optuna.load_study(study_name=study_name, storage=opened, sampler=sampler, pruner=pruner)


def require_storage(storage: str) -> None:
    """UsageError unless `storage` is a URL or an existing journal file (reading must not
    create an empty one)."""
    if not is_url(storage) and not os.path.isfile(storage):
        raise UsageError(f"no storage file {storage!r}; run `lrsearch run` first or give --storage.")


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
    from lrsearch.storage._resilient import DEFAULT_PATIENCE

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


def optuna_cli_hint(storage: str, study_name: str, program: str = "optuna") -> str:
    return f"{program} trials --study-name {shlex.quote(study_name)} --storage {shlex.quote(redact(storage))}"
