"""Optuna's gRPC storage proxy as a storage of lrsearch: both ends of it.

The worker's end (`open_proxy`, `ProxyClient`): `grpc://HOST:PORT` opened as Optuna's
GrpcStorageProxy on a channel that reconnects within a second of the proxy coming back
(gRPC's default backoff grows to two minutes, longer than lrsearch waits for a storage)
and notices a proxy machine that vanished mid-call (`CHANNEL_OPTIONS`). A proxy that is
down or restarting answers UNAVAILABLE, which `ResilientStorage` waits through.

The proxy's end (`ProxiedHeartbeats`, `DatabaseUnavailable`), which `lrsearch
storage-proxy` serves: a call that met the database unreachable for longer than the
proxy waits answers UNAVAILABLE as well, so that the workers wait on with their own patience.

Heartbeats: GrpcStorageProxy is no Optuna heartbeat storage, so a running trial's
heartbeat is its system attribute `HEARTBEAT_KEY`, a UTC time in ISO 8601, written every
heartbeat interval; a RUNNING trial whose last one is older than the grace period is
stale (`ProxyClient.stale_trial_ids`). `lrsearch storage-proxy` stamps each with its own
clock, gives each trial a first one as it starts (a trial whose creation an outage hid
from its worker, which then created another, is failed as stale too), and records each
as the database's own heartbeat too (on the database's clock), which processes that
reach the database directly judge by.

Batches: a worker's write-behind layer hands `lrsearch storage-proxy` each trial's batch of
attribute and value writes as one call, the trial system attribute `BATCH_KEY`, which the
proxy writes in one transaction and does not keep (one call a value otherwise: 200 a
trial of 200 epochs). A worker asks the proxy first (`BATCHES_PROBE`), so that behind
Optuna's plain proxy it writes value by value as before.

Clocks: a sweeper compares its own UTC clock with the proxy's (behind Optuna's plain
proxy, the worker's); they may disagree by up to the grace period less the interval
(80 s by default) before a live trial looks stale, where NTP keeps them within
milliseconds. A RUNNING trial without the attribute (its worker reaches the database
directly, with the database's heartbeats) is left to the processes that do, as Optuna's
RDBStorage leaves a trial with no heartbeat.
"""

from __future__ import annotations

import copy
import datetime
import warnings
from typing import Any

import grpc
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState, create_trial

from lrsearch import internals
from lrsearch.errors import StorageUnavailableError
from lrsearch.storage._redact import grpc_address
from lrsearch.storage._resilient import RESUME_ADVICE, DelegatingStorage, rdb_under
from lrsearch.storage._writeback import OP_CALLS

#: The trial system attribute that holds a running trial's last heartbeat.
HEARTBEAT_KEY = "lrsearch:heartbeat"
#: The trial system attribute that carries a batch of a trial's writes to `lrsearch storage-proxy`.
BATCH_KEY = "lrsearch:batch"
#: A study name that `lrsearch storage-proxy` answers with `BATCHES_ANSWER` (Optuna's, with "not
#: found"): how a worker learns that its proxy takes batches.
BATCHES_PROBE, BATCHES_ANSWER = "lrsearch:proxy-takes-batches", -1
#: Seconds `open_proxy` waits for the proxy to answer.
OPEN_TIMEOUT = 3.0
#: The worker's channel: reconnect attempts at most a second apart, and a ping after 30 s
#: of a call without an answer, which fails the call if the proxy stays silent for 10 s more.
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 1000),
                   ("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 10_000)]
#: The proxy's server: it accepts those pings (gRPC's default refuses pings under 5 minutes
#: apart), and its port is its own (gRPC's default lets a second server share it unseen).
SERVER_OPTIONS = [("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000), ("grpc.so_reuseport", 0)]


def open_proxy(storage: str, interval: int, grace: int) -> "ProxyClient":
    """The storage proxy at `storage` (grpc://HOST:PORT), with heartbeats every `interval`
    seconds and stale after `grace`, once it answers; ConnectionError (which
    `ResilientStorage` waits through) if it does not within `OPEN_TIMEOUT` seconds."""
    host, port = grpc_address(storage)
    with warnings.catch_warnings():  # the proxy is "experimental" in Optuna 5
        warnings.simplefilter("ignore", ExperimentalWarning)
        proxy = internals.grpc_storage_proxy(host, port, CHANNEL_OPTIONS)
    try:
        proxy.wait_server_ready(timeout=OPEN_TIMEOUT)
    except ConnectionError:
        proxy.close()
        raise ConnectionError(f"no storage proxy answers at {host}:{port} within {OPEN_TIMEOUT:g} s (is "
                              f"`lrsearch storage-proxy` running there?)") from None
    return ProxyClient(proxy, interval, grace, batches=_takes_batches(proxy))


def _takes_batches(proxy: BaseStorage) -> bool:
    """Whether the proxy is `lrsearch storage-proxy`, which takes a trial's writes in one call."""
    try:
        return proxy.get_study_id_from_name(BATCHES_PROBE) == BATCHES_ANSWER
    except (KeyError, grpc.RpcError):  # Optuna's proxy; one that went away meanwhile: write one by one
        return False


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def last_heartbeat(trial: FrozenTrial) -> datetime.datetime | None:
    """When `trial` last sent a heartbeat through a proxy (UTC); None if it never did."""
    try:
        beat = datetime.datetime.fromisoformat(trial.system_attrs[HEARTBEAT_KEY])
    except (KeyError, TypeError, ValueError):
        return None
    return beat if beat.tzinfo is not None else None


class ProxyClient(DelegatingStorage):
    """Optuna's GrpcStorageProxy `inner`, with heartbeats recorded and judged as trial
    attributes, and with `batches`, batches of writes handed to the proxy in one call
    (see the module's docstring)."""

    def __init__(self, inner: BaseStorage, interval: int, grace: int, batches: bool = False) -> None:
        super().__init__(inner)
        self.interval, self.grace, self.batches = interval, grace, batches

    def write_batch(self, ops: list[tuple]) -> None:
        """Write `(kind, trial_id, key, value)` ops ("value", "user_attr", "system_attr"),
        one call a trial; UpdateFinishedTrialError if one of the trials is finished."""
        by_trial: dict[int, list] = {}
        for kind, trial_id, key, value in ops:
            by_trial.setdefault(trial_id, []).append([kind, key, value])
        for trial_id, trial_ops in by_trial.items():
            self.inner.set_trial_system_attr(trial_id, BATCH_KEY, trial_ops)

    def is_heartbeat_enabled(self) -> bool:
        return True

    def get_heartbeat_interval(self) -> int:
        return self.interval

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.inner.set_trial_system_attr(trial_id, HEARTBEAT_KEY, utc_now())
        except UpdateFinishedTrialError:
            pass  # finished meanwhile (by its worker, or failed as stale): nothing left to keep alive

    def stale_trial_ids(self, study_id: int) -> list[int]:
        """RUNNING trials whose last heartbeat is older than the grace period, by this
        machine's UTC clock."""
        now = datetime.datetime.now(datetime.timezone.utc)
        running = self.inner.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [internals.trial_id(t) for t in running
                if (beat := last_heartbeat(t)) is not None and (now - beat).total_seconds() > self.grace]


class ProxiedHeartbeats(DelegatingStorage):
    """What `lrsearch storage-proxy` serves: the database's storage `inner` (a
    `ResilientStorage` with heartbeats), with each heartbeat attribute stamped with the
    proxy's clock and recorded as the database's heartbeat too, a first one given to
    each trial as it starts running, and batches of a trial's writes written in one
    transaction."""

    def get_study_id_from_name(self, study_name: str) -> int:
        return BATCHES_ANSWER if study_name == BATCHES_PROBE else self.call("get_study_id_from_name", study_name)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """A trial created running gets its first heartbeat in the same transaction: a
        creation that an outage hid from its worker leaves a trial that goes stale."""
        if template_trial is None:
            template_trial = create_trial(state=TrialState.RUNNING, system_attrs={HEARTBEAT_KEY: utc_now()})
        elif template_trial.state == TrialState.RUNNING:
            template_trial = copy.deepcopy(template_trial)
            template_trial.system_attrs[HEARTBEAT_KEY] = utc_now()
        trial_id = self.call("create_new_trial", study_id, template_trial)
        if template_trial.state == TrialState.RUNNING:
            self.inner.record_heartbeat(trial_id)  # ResilientStorage's, which never raises
        return trial_id

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        """An enqueued trial that a worker takes gets its first heartbeat just after (in a
        transaction of its own: a proxy killed between the two leaves that trial without one)."""
        updated = self.call("set_trial_state_values", trial_id, state, values)
        if updated and state == TrialState.RUNNING:
            self._beat(trial_id)
        return updated

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if key == HEARTBEAT_KEY:
            self._beat(trial_id)
        elif key == BATCH_KEY:
            self._write_batch([(kind, trial_id, int(name) if kind == "value" else name, item)
                               for kind, name, item in value])
        else:
            self.call("set_trial_system_attr", trial_id, key, value)

    def _write_batch(self, ops: list[tuple]) -> None:
        write = internals.rdb_batch_writer(rdb_under(self.inner))
        if write is not None:
            self.retrying(lambda: write(ops))
            return
        for kind, trial_id, key, value in ops:  # this Optuna lacks what the batch writer uses
            self.call(OP_CALLS[kind], trial_id, key, value)

    def _beat(self, trial_id: int) -> None:
        self.call("set_trial_system_attr", trial_id, HEARTBEAT_KEY, utc_now())
        self.inner.record_heartbeat(trial_id)  # ResilientStorage's, which never raises


class DatabaseUnavailable(grpc.ServerInterceptor):
    """Answers a call that met the database unreachable for longer than the proxy waits
    (StorageUnavailableError) with UNAVAILABLE, which workers wait through, instead of
    gRPC's UNKNOWN for any exception, which they would take for a bug."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:  # the proxy's calls are all unary
            return handler
        serve = handler.unary_unary

        def guarded(request, context):
            try:
                return serve(request, context)
            except StorageUnavailableError as exc:
                said = str(exc).removesuffix(RESUME_ADVICE).strip()
                context.abort(grpc.StatusCode.UNAVAILABLE, f"the proxy's {said}")

        return grpc.unary_unary_rpc_method_handler(guarded, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)
