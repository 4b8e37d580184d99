"""Optuna's private API: its studies', trials' and storages' internals."""

from __future__ import annotations

import collections
import weakref
from typing import Any, Callable

from lrsearch.internals._guard import private_attribute, unsupported


def storage_of(study) -> Any:
    """The storage an Optuna study reads and writes (no public accessor in Optuna 4 or 5)."""
    return private_attribute(study, "_storage", "optuna")


_study_ids: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def study_id(study) -> int:
    """The storage's id of `study`: asked of the storage by name once per study object
    (public), then remembered."""
    found = _study_ids.get(study)
    if found is None:
        found = _study_ids[study] = storage_of(study).get_study_id_from_name(study.study_name)
    return found


class TrialsReadOnceATrial:
    """`study` as a sampler sees it: each read of its trials answered from Optuna's own
    snapshot, which `Study.ask` renews once a trial, where TPE with `constant_liar` reads
    the storage afresh for every parameter it samples."""

    def __init__(self, study) -> None:
        self.study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self.study, name)

    def _get_trials(self, deepcopy=True, states=None, use_cache=False):
        return private_attribute(self.study, "_get_trials", "optuna")(deepcopy=deepcopy, states=states, use_cache=True)

    def trials(self) -> list:
        """The study's trials, from this trial's snapshot (not copies: read, don't change)."""
        return self._get_trials(deepcopy=False)


def enqueued_with_params(trial) -> bool:
    """Whether the FrozenTrial `trial` was enqueued with parameters (`Study.enqueue_trial`,
    which keeps them in a system attribute of its own)."""
    return "fixed_params" in trial.system_attrs


def trial_id(trial) -> int:
    """The storage's id of an Optuna `Trial` or `FrozenTrial` (no public accessor)."""
    return private_attribute(trial, "_trial_id", "optuna")


def cached(rdb):
    """Optuna's cache in front of an RDBStorage `rdb`, as `optuna.storages.get_storage`
    builds it from a URL; `rdb` itself where this Optuna lacks the class (slower, not wrong)."""
    import optuna.storages

    cache = getattr(optuna.storages, "_CachedStorage", None)
    return rdb if cache is None else cache(rdb)


def heartbeat_base() -> type:
    """Optuna's heartbeat interface, which a storage subclasses for Optuna to record heartbeats
    (its `_get_stale_trial_ids`: see `without_optuna_stale_failing`)."""
    try:
        from optuna.storages._heartbeat import BaseHeartbeat
    except ImportError:
        raise unsupported("optuna", "optuna.storages._heartbeat.BaseHeartbeat") from None
    if not hasattr(BaseHeartbeat, "_get_stale_trial_ids"):
        raise unsupported("optuna", "BaseHeartbeat._get_stale_trial_ids")
    return BaseHeartbeat


def stale_trial_ids(storage, study_id: int) -> list[int]:
    """The RUNNING trials of `study_id` whose heartbeats stopped for longer than the grace
    period, as Optuna's heartbeat storage `storage` finds them (no public query)."""
    return private_attribute(storage, "_get_stale_trial_ids", "optuna")(study_id)


def without_optuna_stale_failing(storage_class: type) -> type:
    """Class decorator for a storage subclassing `heartbeat_base()`: Optuna's own failing of
    stale trials finds none in it; lrsearch fails them itself, with a reason (`stale_trial_ids`)."""
    storage_class._get_stale_trial_ids = lambda self, study_id: []
    return storage_class


def instantiable(storage_class: type) -> type:
    """`storage_class`, which passes every call to another storage through methods set
    after its class body, made instantiable whatever abstract methods this Optuna's
    storage bases declare."""
    storage_class.__abstractmethods__ = frozenset()
    return storage_class


def storage_behind(storage) -> Any:
    """The storage Optuna's cache `storage` (see `cached`) passes its calls to; None if
    `storage` is no such wrapper, or this Optuna's cache keeps it elsewhere."""
    return getattr(storage, "_backend", None)


def grpc_storage_proxy(host: str, port: int, channel_options: list[tuple[str, Any]]):
    """Optuna's GrpcStorageProxy of the proxy at `host:port`, its channel made with
    `channel_options` as well as Optuna's own (which takes none); a plain one where this Optuna
    keeps its channel otherwise (it then reconnects after gRPC's default backoff: slower)."""
    import grpc
    from optuna.storages import GrpcStorageProxy

    proxy = GrpcStorageProxy(host=host, port=port)
    try:
        from optuna.storages._grpc.auto_generated.api_pb2_grpc import StorageServiceStub
        from optuna.storages._grpc.client import GrpcClientCache
    except ImportError:
        return proxy
    if not all(hasattr(proxy, name) for name in ("_channel", "_stub", "_cache")):
        return proxy
    proxy._channel.close()
    proxy._channel = grpc.insecure_channel(f"{host}:{port}", options=[("grpc.max_receive_message_length", -1),
                                                                      *channel_options])
    proxy._stub = StorageServiceStub(proxy._channel)
    proxy._cache = GrpcClientCache(proxy._stub)
    return proxy


def grpc_proxy_server(storage, thread_pool, interceptors: list, options: list[tuple[str, Any]]):
    """A gRPC server (not started, no port yet) serving Optuna storage `storage` as
    `optuna.storages.run_grpc_proxy_server` does, with `interceptors` and server `options`,
    which that function takes none of (nor does it return, to be stopped gracefully)."""
    import grpc

    try:
        from optuna.storages._grpc.auto_generated.api_pb2_grpc import add_StorageServiceServicer_to_server
        from optuna.storages._grpc.servicer import OptunaStorageProxyService
    except ImportError:
        raise unsupported("optuna", "optuna.storages._grpc's servicer") from None
    server = grpc.server(thread_pool, interceptors=interceptors, options=options)
    add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)
    return server


def rdb_batch_writer(rdb) -> Callable[[list[tuple]], None] | None:
    """A function that writes `(kind, trial_id, key, value)` ops ("value", "user_attr",
    "system_attr") in one transaction of Optuna's RDBStorage `rdb`, with its private models
    and helpers, a trial's intermediate values in one INSERT (Optuna's takes three queries
    a value); None where this Optuna lacks them (write through its public calls instead)."""
    try:
        import sqlalchemy
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError:
        return None
    if not all(hasattr(rdb, name) for name in ("scoped_session", "_set_trial_attr_without_commit")):
        return None
    attribute_model = {"user_attr": models.TrialUserAttributeModel, "system_attr": models.TrialSystemAttributeModel}

    def write(ops: list[tuple]) -> None:
        values: dict[int, dict[int, float]] = collections.defaultdict(dict)  # trial -> step -> its last value
        with _create_scoped_session(rdb.scoped_session, True) as session:
            for kind, trial, key, value in ops:
                if kind == "value":
                    values[trial][key] = value
                else:
                    rdb._set_trial_attr_without_commit(session, attribute_model[kind], trial, key, value)
            for trial, steps in values.items():
                _write_intermediate_values(session, trial, steps)

    def _write_intermediate_values(session, trial_id: int, steps: dict[int, float]) -> None:
        """What `rdb._set_trial_intermediate_value_without_commit` does for each step, in
        three statements: the trial's check, the rows it has of these steps, the new rows."""
        model = models.TrialIntermediateValueModel
        rdb.check_trial_is_updatable(trial_id, models.TrialModel.find_or_raise_by_id(trial_id, session).state)
        rows = session.query(model).filter(model.trial_id == trial_id, model.step.in_(list(steps)))
        existing, new = {row.step: row for row in rows}, []
        for step, value in steps.items():
            stored, value_type = model.intermediate_value_to_stored_repr(value)
            if step in existing:
                existing[step].intermediate_value, existing[step].intermediate_value_type = stored, value_type
            else:
                new.append({"trial_id": trial_id, "step": step, "intermediate_value": stored,
                            "intermediate_value_type": value_type})
        if new:
            session.execute(sqlalchemy.insert(model.__table__), new)

    return write
