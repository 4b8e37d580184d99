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
from lrsearch.storage._resilient import RESUME_ADVICE, DelegatingStorage

#: The trial system attribute that holds a running trial's last heartbeat.
HEARTBEAT_KEY = "lrsearch:heartbeat"
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
    return ProxyClient(proxy, interval, grace)


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
    attributes (see the module's docstring)."""

    def __init__(self, inner: BaseStorage, interval: int, grace: int) -> None:
        super().__init__(inner)
        self.interval, self.grace = interval, grace

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
    proxy's clock and recorded as the database's heartbeat too, and a first one given to
    each trial as it starts running."""

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
        else:
            self.call("set_trial_system_attr", trial_id, key, value)

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
