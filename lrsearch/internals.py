"""The one place lrsearch touches Keras', TensorFlow's, Optuna's and optuna-dashboard's private API
(and relies on an undocumented behaviour of Python's own `multiprocessing`).

Each function tries a public route first where one exists; where only the private one
does what lrsearch needs, a missing attribute raises `InternalError` naming it and the
installed versions, so that a renamed internal stops the run as lrsearch's bug instead
of failing every trial. Hot paths resolve an attribute once (`loss_tracker` returns the
metric itself, for use inside `tf.function`). Nothing here imports Keras, TensorFlow or
Optuna before it is called.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib
import importlib.util
import sys
import threading
import weakref
from importlib import metadata
from typing import Any, Callable, Iterator

from lrsearch.errors import InternalError

_MISSING = object()


def unsupported(package: str, what: str) -> InternalError:
    """The error for a private `what` of `package` that this version of it lacks."""
    from lrsearch._version import __version__

    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        installed = "(not installed)"
    return InternalError(f"lrsearch {__version__} does not support {package} {installed}: {what} is gone. "
                         f"Install the {package} version lrsearch was tested with, or report this as a bug.")


def _private(owner: Any, name: str, package: str) -> Any:
    value = getattr(owner, name, _MISSING)
    if value is _MISSING:
        raise unsupported(package, f"{type(owner).__name__}.{name}")
    return value


# --------------------------------------------------------------------------- Python

_main_lock = threading.Lock()


@contextlib.contextmanager
def without_main_module() -> Iterator[None]:
    """Processes spawned inside this block do not run the parent's `__main__`, which spawning
    runs again in each child where it has a `__spec__` name (`python -m`) or a `__file__` (a
    script), as `multiprocessing.spawn.get_preparation_data` reads them (undocumented): a
    script calling `lrsearch.search` without a `__main__` guard would search again in every
    worker. Both are hidden here, under a lock, and restored (a defined study travels pickled)."""
    main = sys.modules["__main__"]
    with _main_lock:
        hidden = {name: vars(main).pop(name) for name in ("__file__", "__spec__") if name in vars(main)}
        main.__spec__ = None
        try:
            yield
        finally:
            vars(main).pop("__spec__", None)
            vars(main).update(hidden)


# --------------------------------------------------------------------------- Optuna


def storage_of(study) -> Any:
    """The storage an Optuna study reads and writes (no public accessor in Optuna 4 or 5)."""
    return _private(study, "_storage", "optuna")


_study_ids: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def study_id(study) -> int:
    """The storage's id of `study`: asked of the storage by name once per study object
    (public), then remembered."""
    found = _study_ids.get(study)
    if found is None:
        found = _study_ids[study] = storage_of(study).get_study_id_from_name(study.study_name)
    return found


def trial_id(trial) -> int:
    """The storage's id of an Optuna `Trial` or `FrozenTrial` (no public accessor)."""
    return _private(trial, "_trial_id", "optuna")


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
    return _private(storage, "_get_stale_trial_ids", "optuna")(study_id)


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


# --------------------------------------------------------------------------- optuna-dashboard


def note_key(trial: int | None) -> str:
    """The study attribute of optuna-dashboard's note version of trial id `trial` (None: the study's)."""
    return _dashboard_note("note_ver_key")(trial)


def save_note(study, trial, body: str) -> None:
    """Write `body` as the dashboard's note of `trial` (a FrozenTrial of `study`; None: the
    study's own): optuna-dashboard's public `save_note` takes only a live Trial."""
    trial = None if trial is None else trial_id(trial)
    _dashboard_note("save_note_with_version")(storage_of(study), study_id(study), trial, 1, body)


def _dashboard_note(name: str) -> Callable:
    notes = sys.modules.get("optuna_dashboard._note", _MISSING)
    notes = _note_module_alone() if notes is _MISSING else notes
    if getattr(notes, name, None) is None:
        raise unsupported("optuna-dashboard", "optuna_dashboard._note" + f".{name}" * (notes is not None))
    return getattr(notes, name)


@functools.cache
def _note_module_alone() -> Any:
    """optuna-dashboard's `_note` (None if gone), by itself where it loads so: the package's
    `__init__` imports its web app and Optuna's importance (scikit-learn, SciPy): a second."""
    with contextlib.suppress(Exception):
        where = importlib.util.find_spec("optuna_dashboard").submodule_search_locations[0]
        alone = importlib.util.spec_from_file_location("lrsearch._dashboard_note", f"{where}/_note.py")
        module = importlib.util.module_from_spec(alone)
        alone.loader.exec_module(module)
        return module
    with contextlib.suppress(ImportError):
        return importlib.import_module("optuna_dashboard._note")


# --------------------------------------------------------------------------- Keras


def schedule_of(optimizer) -> Any:
    """The `LearningRateSchedule` a Keras optimizer was made with, None if its rate is a
    number (public `optimizer.learning_rate` gives only the current value)."""
    import keras

    rate = _private(optimizer, "_learning_rate", "keras")
    return rate if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) else None


def symbolic_build(model, batch) -> None:
    """Build a compiled model's weights, compiled metrics and loss from one `batch`, as
    `model.fit` does before training, without running a step (no public equivalent)."""
    _private(model, "_symbolic_build", "keras")(data_batch=batch)


def loss_tracker(model):
    """The Mean metric that a compiled `model` logs as `loss`: found among the public
    `model.metrics` (where Keras puts it first), else Keras' private attribute."""
    import keras

    found = next((m for m in model.metrics if m.name == "loss" and isinstance(m, keras.metrics.Mean)), None)
    if found is None:
        found = getattr(model, "_loss_tracker", None)
    if found is None:
        raise unsupported("keras", f"{type(model).__name__}._loss_tracker")
    return found


def reset_layer_names() -> None:
    """Start Keras' automatic layer names afresh (dense, dense_1, ...), as `clear_session`
    does, without emptying TensorFlow's eager kernel cache (after which every traced function
    is instantiated again); `clear_session` where Keras' name counter has moved."""
    import keras

    try:
        naming = importlib.import_module("keras.src.utils.naming")
    except ImportError:
        naming = None
    reset = getattr(naming, "reset_uids", None)
    if reset is None:
        keras.backend.clear_session(free_memory=False)
    else:
        reset()


def seed_keras(seed: int) -> None:
    """Seed Python's `random`, NumPy and Keras' global seed generator as
    `keras.utils.set_random_seed` does, without `tf.random.set_seed` (which empties the
    kernel cache: see `reset_layer_names`); that function where Keras' state has moved."""
    import random

    import keras
    import numpy as np

    try:
        state = importlib.import_module("keras.src.backend.common.global_state")
        generators = importlib.import_module("keras.src.random.seed_generator")
        rng_utils = importlib.import_module("keras.src.utils.rng_utils")
        names = (rng_utils.GLOBAL_RANDOM_SEED, generators.GLOBAL_SEED_GENERATOR)
        setter = state.set_global_attribute
    except (ImportError, AttributeError):
        keras.utils.set_random_seed(seed)
        return
    setter(names[0], seed)
    setter(names[1], None)  # made again from `random` on first use
    random.seed(seed)
    np.random.seed(seed)


def numpy_monitor_op(callback) -> None:
    """Set a Keras monitoring callback's comparison (ReduceLROnPlateau...) as Keras does on its
    first epoch end, but as NumPy's `less` or `greater`, not `keras.ops`' (a tensor each);
    nothing where Keras lacks `_set_monitor_op` (the callback sets its own)."""
    import keras
    import numpy as np

    set_monitor_op = getattr(callback, "_set_monitor_op", None)
    if set_monitor_op is None:
        return
    set_monitor_op()
    to_numpy = {keras.ops.less: np.less, keras.ops.greater: np.greater}
    callback.monitor_op = to_numpy.get(callback.monitor_op, callback.monitor_op)


def optimizer_stand_in(cls: type) -> type:
    """Class decorator for a stand-in of a Keras optimizer whose rate is a number, its
    public `learning_rate`: it answers what `schedule_of` reads of an optimizer too."""
    cls._learning_rate = property(lambda self: self.learning_rate)
    return cls


@functools.cache
def functional_class() -> type:
    """The class `keras.Model(inputs, outputs)` makes (Keras exports it under no public
    name), found by making one; explicit names leave Keras' name counters alone."""
    import keras

    probe = keras.Input((1,), name="lrsearch_probe")
    return type(keras.Model(probe, probe, name="lrsearch_probe"))


# --------------------------------------------------------------------------- TensorFlow

_PFOR = "tensorflow.python.ops.parallel_for.pfor"
_bitcast_lock = threading.Lock()
_bitcast_vectorized = False


def vectorize_bitcast() -> None:
    """Give TensorFlow's vectorizer (`tf.vectorized_map`) the Bitcast op it lacks (Keras'
    `signbit`, which its losses use, bitcasts): a bitcast keeps the leading axis, so it
    maps lane-wise. Registered once, in TensorFlow's private converter registry (no public
    one exists); later calls do nothing."""
    global _bitcast_vectorized
    with _bitcast_lock:
        if _bitcast_vectorized:
            return
        try:
            pfor = importlib.import_module(_PFOR)
        except ImportError:
            raise unsupported("tensorflow", _PFOR) from None
        for name in ("RegisterPFor", "wrap"):
            if not hasattr(pfor, name):
                raise unsupported("tensorflow", f"{_PFOR}.{name}")
        import tensorflow as tf

        @pfor.RegisterPFor("Bitcast")
        def convert(pfor_input):
            return pfor.wrap(tf.bitcast(pfor_input.stacked_input(0), pfor_input.get_attr("type")), True)

        _bitcast_vectorized = True
