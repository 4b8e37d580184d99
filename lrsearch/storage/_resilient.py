"""Optuna storages in layers, and the layer that rides out a database restart.

`ResilientStorage` wraps any Optuna storage and retries a call that failed because the
server could not be reached (connection refused or dropped, SQLite's "database is
locked", a Redis connection error, a gRPC storage proxy that answers UNAVAILABLE: down,
restarting, or in front of a database that is), with backoff, for up to `patience`
seconds. It says once, through `notify`, since when the storage is unreachable and again
when it is back. Past its patience it raises `StorageUnavailableError`; the study is as
the last successful call left it, so the same command resumes it.

Heartbeats pass through every layer (`DelegatingStorage`), except that Optuna's own
failing of stale trials is turned off (`lrsearch.internals.without_optuna_stale_failing`):
lrsearch fails them itself, with a reason, through `stale_trial_ids` (see
`lrsearch.results._record.fail_stale_trials`).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from optuna.storages import BaseStorage

from lrsearch import internals
from lrsearch.errors import StorageUnavailableError
from lrsearch.storage._redact import describe_error

BaseHeartbeat = internals.heartbeat_base()

#: Seconds the storage may stay unreachable before a command gives up.
DEFAULT_PATIENCE = 75.0
_BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0)
#: What StorageUnavailableError ends with.
RESUME_ADVICE = "Nothing finished is lost; run the same command again once it is back."


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the server could not be reached, as
    opposed to a bad request that would fail again."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _is_transient_one(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _is_transient_one(exc: BaseException) -> bool:
    from sqlalchemy import exc as sa  # installed with Optuna

    if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError)):
        return True
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if module.startswith("psycopg") and name in ("OperationalError", "InterfaceError"):
        return True
    if module.startswith("redis") and name in ("ConnectionError", "TimeoutError", "BusyLoadingError"):
        return True
    if module.startswith("grpc") and callable(getattr(exc, "code", None)):
        return _grpc_unavailable(exc)
    return isinstance(exc, (ConnectionError, TimeoutError))


def _grpc_unavailable(exc: BaseException) -> bool:
    """Whether a failed gRPC call says the proxy could not be reached: UNAVAILABLE is what a
    proxy killed, restarting, stopping (past its grace) or not yet listening answers, and
    what it answers itself when its database stays unreachable."""
    import grpc

    try:
        return exc.code() == grpc.StatusCode.UNAVAILABLE
    except Exception:  # noqa: BLE001 - not a call's error after all
        return False


@internals.without_optuna_stale_failing
class DelegatingStorage(BaseStorage, BaseHeartbeat):
    """An Optuna storage that passes every call to `inner` through `call`: the base of
    lrsearch's storage layers, each of which changes `call` or a few methods."""

    def __init__(self, inner: BaseStorage) -> None:
        self.inner = inner

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    def retrying(self, work: Callable[[], Any]) -> Any:
        """`work()`, which uses the storage under this layer, retried as the layers below
        retry their calls."""
        return self.inner.retrying(work) if isinstance(self.inner, DelegatingStorage) else work()

    def is_heartbeat_enabled(self) -> bool:
        return isinstance(self.inner, BaseHeartbeat) and self.inner.get_heartbeat_interval() is not None

    def get_heartbeat_interval(self) -> int | None:
        return self.inner.get_heartbeat_interval() if isinstance(self.inner, BaseHeartbeat) else None

    def record_heartbeat(self, trial_id: int) -> None:
        self.call("record_heartbeat", trial_id)

    def stale_trial_ids(self, study_id: int) -> list[int]:
        """RUNNING trials whose heartbeats stopped for longer than the grace period."""
        if not self.is_heartbeat_enabled():
            return []
        if isinstance(self.inner, DelegatingStorage):
            return self.call("stale_trial_ids", study_id)
        return self.retrying(lambda: internals.stale_trial_ids(self.inner, study_id))

    def get_heartbeat_stale_trial_callback(self):
        return None

    def get_failed_trial_callback(self):
        return None

    def remove_session(self) -> None:
        self.inner.remove_session()

    def check_trial_is_updatable(self, trial_id: int, trial_state) -> None:
        BaseStorage.check_trial_is_updatable(self, trial_id, trial_state)


def _delegate(name: str):
    def method(self, *args, **kwargs):
        return self.call(name, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


for _name in ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
              "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
              "get_study_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
              "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
              "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
              "set_trial_system_attr", "get_trial", "get_all_trials", "get_n_trials", "get_best_trial",
              "get_trial_params", "get_trial_user_attrs", "get_trial_system_attrs"):
    setattr(DelegatingStorage, _name, _delegate(_name))
internals.instantiable(DelegatingStorage)
del _name


class ResilientStorage(DelegatingStorage):
    """`inner` with every call retried while the server is unreachable.

    `notify(line)` receives one line when an outage starts and one when it ends (None:
    silent); `abort()` is polled while waiting and, when true, gives up at once."""

    def __init__(self, inner: BaseStorage, label: str, patience: float = DEFAULT_PATIENCE,
                 notify: Callable[[str], None] | None = None, abort: Callable[[], bool] | None = None) -> None:
        super().__init__(inner)
        self.label, self.patience = label, patience
        self.notify = notify or (lambda line: None)
        self.abort = abort or (lambda: False)
        self._down_since: float | None = None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """`inner.name(*args, **kwargs)`, retried through an outage."""
        return self.retrying(lambda: getattr(self.inner, name)(*args, **kwargs))

    def record_heartbeat(self, trial_id: int) -> None:
        """Record a heartbeat of `trial_id`; never raises, since it runs in Optuna's
        heartbeat thread, which would print a traceback and stop beating. The trial's own
        calls meet the same outage and end the work; any other failure is said in one line."""
        try:
            self.call("record_heartbeat", trial_id)
        except StorageUnavailableError:
            pass
        except Exception as exc:  # noqa: BLE001 - the next beat tries again
            self.notify(f"storage {self.label}: a heartbeat of trial id {trial_id} was not recorded "
                        f"({describe_error(exc)}).")

    def retrying(self, work: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            try:
                result = work()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._wait(exc, attempt)
                attempt += 1
                continue
            if self._down_since is not None:
                down = time.monotonic() - self._down_since
                self.notify(f"storage {self.label} is reachable again after {down:.0f} s; carrying on.")
                self._down_since = None
            return result

    def _wait(self, exc: BaseException, attempt: int) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self.notify(f"storage {self.label} unreachable since {time.strftime('%H:%M:%S')} "
                        f"({describe_error(exc)}); waiting up to {self.patience:.0f} s for it.")
        waited = now - self._down_since
        if waited >= self.patience or self.abort():
            raise StorageUnavailableError(
                f"storage {self.label} has been unreachable for {waited:.0f} s ({describe_error(exc)}). "
                f"{RESUME_ADVICE}") from None
        deadline = min(now + _BACKOFF[min(attempt, len(_BACKOFF) - 1)], self._down_since + self.patience)
        while time.monotonic() < deadline and not self.abort():
            time.sleep(0.05)


def rdb_under(storage: BaseStorage):
    """The RDBStorage at the bottom of `storage`'s layers (lrsearch's, then Optuna's
    `_CachedStorage`), or None."""
    from optuna.storages import RDBStorage

    while storage is not None and not isinstance(storage, RDBStorage):
        storage = getattr(storage, "inner", None) or internals.storage_behind(storage)
    return storage

