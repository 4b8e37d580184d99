"""lrsearch.internals on real Keras models and Optuna studies, and what each function says
when the private attribute it needs is gone (an object lacking it, as another version
would be); and a run whose trials hit such an error stops at once with exit 70."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError

from lrsearch import internals
from lrsearch.errors import InternalError
from lrsearch.training import _kept_models as kept_models

RENAMED = Path(__file__).resolve().parent / "studies" / "renamed.py"


def gone(package: str, what: str) -> str:
    """A pattern for the error naming `what`, lrsearch's and `package`'s versions."""
    return rf"lrsearch \S+ does not support {package} {re.escape(metadata.version(package))}: {re.escape(what)} is gone"


class Bare:
    """An object with none of the private attributes."""


@pytest.fixture
def study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s")
    study.tell(study.ask(), 1.0)
    return study


@pytest.fixture
def compiled():
    model = keras.Sequential([keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def batch(rows: int = 4):
    return np.ones((rows, 2), np.float32), np.zeros((rows, 3), np.float32)


# --------------------------------------------------------------------------- Optuna


def test_storage_and_ids_are_those_the_storage_knows(study):
    storage = internals.storage_of(study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert internals.study_id(study) == storage.get_study_id_from_name("s")
    frozen = study.get_trials()[0]
    live = study.ask()
    assert internals.trial_id(frozen) == storage.get_trial_id_from_study_id_trial_number(internals.study_id(study), 0)
    assert internals.trial_id(live) == storage.get_trial_id_from_study_id_trial_number(internals.study_id(study), 1)


def test_a_study_or_trial_without_the_private_attributes_is_an_internal_error():
    with pytest.raises(InternalError, match=gone("optuna", "Bare._storage")):
        internals.storage_of(Bare())
    with pytest.raises(InternalError, match=gone("optuna", "Bare._storage")):
        internals.study_id(Bare())
    with pytest.raises(InternalError, match=gone("optuna", "Bare._trial_id")):
        internals.trial_id(Bare())


class CountedReads(optuna.storages.InMemoryStorage):
    """Optuna's in-memory storage, counting its reads of a study's trials."""

    reads = 0

    def get_all_trials(self, *args, **kwargs):
        self.reads += 1
        return super().get_all_trials(*args, **kwargs)


def objective(trial) -> float:
    """Three parameters, one only for one optimizer: TPE samples it on its own."""
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam"])
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    momentum = trial.suggest_float("momentum", 0.0, 0.99) if optimizer == "sgd" else 0.0
    return -abs(math.log10(lr) + 2) - momentum


@pytest.mark.parametrize("one_read", [False, True])
def test_trials_read_once_a_trial_spare_tpe_with_a_constant_liar_a_read_a_parameter(one_read):
    from lrsearch.workers._start_sampler import StartSampler

    storage = CountedReads()
    tpe = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=0, n_startup_trials=4)
    study = optuna.create_study(storage=storage, direction="maximize", sampler=StartSampler(tpe) if one_read else tpe)
    study.optimize(objective, n_trials=8)
    other = optuna.load_study(study_name=study.study_name, storage=storage)
    running = other.ask({"optimizer": optuna.distributions.CategoricalDistribution(["sgd", "adam"])})
    reads_before = storage.reads
    study.optimize(objective, n_trials=4)
    per_trial = (storage.reads - reads_before) / 4
    # Optuna's own: one read to take a waiting trial and one a sample; lrsearch's: the first two alone.
    assert per_trial == 2 if one_read else per_trial > 2
    trial = study.ask()
    seen = internals.TrialsReadOnceATrial(study)._get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert {t.number for t in seen} == {running.number, trial.number}  # the liar's running trials, fresh this trial


def test_rdb_batch_writer_writes_values_and_attributes_in_one_go(tmp_path):
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    study = optuna.create_study(storage=rdb, study_name="s")
    trial = study.ask()
    tid = internals.trial_id(trial)
    other = internals.trial_id(study.ask())
    write = internals.rdb_batch_writer(rdb)
    write([("value", tid, 0, 0.5), ("user_attr", tid, "a", [1]), ("system_attr", tid, "b", "x"),
           ("value", tid, 1, math.inf), ("value", other, 0, 2.0), ("value", tid, 1, 0.25)])  # the last value wins
    write([("value", tid, 0, math.nan), ("value", tid, 2, -math.inf)])  # a step again, and a new one
    stored = rdb.get_trial(tid)
    assert (stored.user_attrs, stored.system_attrs["b"]) == ({"a": [1]}, "x")
    assert str(stored.intermediate_values) == str({0: math.nan, 1: 0.25, 2: -math.inf})
    assert rdb.get_trial(other).intermediate_values == {0: 2.0}
    study.tell(trial, 1.0)
    with pytest.raises(UpdateFinishedTrialError):  # as Optuna's own write refuses a finished trial
        write([("value", tid, 3, 0.5)])
    assert 3 not in rdb.get_trial(tid).intermediate_values


def test_rdb_batch_writer_is_none_without_optunas_helpers():
    """The caller then writes through the public storage calls."""
    assert internals.rdb_batch_writer(Bare()) is None


# --------------------------------------------------------------------------- optuna-dashboard


def test_cached_puts_optunas_cache_in_front_of_an_rdb_storage_or_leaves_it(tmp_path, monkeypatch):
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'c.db'}")
    front = internals.cached(rdb)
    assert front is not rdb and internals.storage_behind(front) is rdb
    assert internals.storage_behind(rdb) is None
    optuna.create_study(study_name="c", storage=front).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="c", storage=rdb).trials) == 2  # written through to the database
    monkeypatch.delattr(optuna.storages, "_CachedStorage")
    assert internals.cached(rdb) is rdb


def test_heartbeat_base_has_the_stale_trial_hook_lrsearch_overrides(monkeypatch):
    base = internals.heartbeat_base()
    assert isinstance(optuna.storages.RDBStorage("sqlite://"), base)
    monkeypatch.delattr(base, "_get_stale_trial_ids")
    with pytest.raises(InternalError, match=gone("optuna", "BaseHeartbeat._get_stale_trial_ids")):
        internals.heartbeat_base()


def test_stale_trial_ids_are_optunas_and_a_quiet_storage_leaves_them_to_lrsearch(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    rdb = optuna.storages.RDBStorage(url, heartbeat_interval=60)
    study = optuna.create_study(storage=rdb, study_name="h")
    trial = internals.trial_id(study.ask())
    rdb.record_heartbeat(trial)
    assert internals.stale_trial_ids(rdb, internals.study_id(study)) == []
    with rdb.engine.begin() as connection:  # its last heartbeat, long ago
        connection.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'"))
    assert internals.stale_trial_ids(rdb, internals.study_id(study)) == [trial]

    @internals.without_optuna_stale_failing
    class Quiet(optuna.storages.RDBStorage):
        pass

    optuna.storages.fail_stale_trials(optuna.load_study(study_name="h", storage=Quiet(url, heartbeat_interval=60)))
    assert rdb.get_trial(trial).state.name == "RUNNING"
    optuna.storages.fail_stale_trials(study)  # what Optuna does without it
    assert rdb.get_trial(trial).state.name == "FAIL"


def test_a_storage_without_the_stale_trial_query_is_an_internal_error():
    with pytest.raises(InternalError, match=gone("optuna", "Bare._get_stale_trial_ids")):
        internals.stale_trial_ids(Bare(), 1)


def test_instantiable_lets_a_storage_that_delegates_every_call_be_made():
    class Delegating(optuna.storages.BaseStorage):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Delegating()
    assert isinstance(internals.instantiable(Delegating)(), optuna.storages.BaseStorage)


def test_a_trial_note_is_saved_where_optuna_dashboard_reads_it(study):
    from optuna_dashboard._note import get_note_from_system_attrs

    frozen = study.get_trials()[0]
    internals.save_note(study, frozen, "### hello")
    attrs = internals.storage_of(study).get_study_system_attrs(internals.study_id(study))
    assert internals.note_key(internals.trial_id(frozen)) in attrs
    assert internals.note_key(None) not in attrs  # the study's own note is another key
    assert get_note_from_system_attrs(attrs, internals.trial_id(frozen))["body"] == "### hello"


def test_notes_are_written_without_importing_optuna_dashboards_web_app(tmp_path):
    """What a run's parent does: its notes need optuna-dashboard's note functions only, not the
    package's web app and Optuna's importance (scikit-learn, SciPy) that its __init__ imports."""
    from optuna_dashboard._note import get_note_from_system_attrs

    from lrsearch.storage import open_storage

    journal = str(tmp_path / "n.journal")
    code = (f"import sys, optuna; from lrsearch import internals; from lrsearch.storage import open_storage\n"
            f"study = optuna.create_study(study_name='n', storage=open_storage({journal!r}))\n"
            f"study.tell(study.ask(), 1.0)\n"
            f"internals.save_note(study, None, '## the study')\n"
            f"internals.save_note(study, study.trials[0], '### trial 0')\n"
            f"print(sorted(m for m in sys.modules if m.startswith(('optuna_dashboard', 'sklearn'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    study = optuna.load_study(study_name="n", storage=open_storage(journal))
    attrs = internals.storage_of(study).get_study_system_attrs(internals.study_id(study))
    assert get_note_from_system_attrs(attrs, None)["body"] == "## the study"
    assert get_note_from_system_attrs(attrs, internals.trial_id(study.trials[0]))["body"] == "### trial 0"


def test_optuna_dashboard_without_its_note_module_is_an_internal_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna_dashboard._note", None)  # as if the module were gone
    with pytest.raises(InternalError, match=gone("optuna-dashboard", "optuna_dashboard._note")):
        internals.note_key(None)


def test_optuna_dashboard_without_its_note_functions_is_an_internal_error(study, monkeypatch):
    import optuna_dashboard._note

    monkeypatch.delattr(optuna_dashboard._note, "note_ver_key")
    with pytest.raises(InternalError, match=gone("optuna-dashboard", "optuna_dashboard._note.note_ver_key")):
        internals.note_key(None)
    monkeypatch.delattr(optuna_dashboard._note, "save_note_with_version")
    with pytest.raises(InternalError, match=gone("optuna-dashboard", "optuna_dashboard._note.save_note_with_version")):
        internals.save_note(study, study.get_trials()[0], "x")


# --------------------------------------------------------------------------- Keras


def test_schedule_of_gives_the_schedule_object_or_none():
    schedule = keras.optimizers.schedules.InverseTimeDecay(0.1, decay_steps=1, decay_rate=0.01)
    assert internals.schedule_of(keras.optimizers.SGD(learning_rate=schedule)) is schedule
    assert internals.schedule_of(keras.optimizers.Adam(learning_rate=0.01)) is None


def test_an_optimizer_without_learning_rate_is_an_internal_error():
    with pytest.raises(InternalError, match=gone("keras", "Bare._learning_rate")):
        internals.schedule_of(Bare())


def test_an_optimizer_stand_in_has_no_schedule():
    class StandIn:
        learning_rate = 0.1

    with pytest.raises(InternalError, match=gone("keras", "StandIn._learning_rate")):
        internals.schedule_of(StandIn())
    assert internals.schedule_of(internals.optimizer_stand_in(StandIn)()) is None


@pytest.mark.parametrize("mode, monitor, comparison", [("min", "val_loss", np.less), ("max", "val_loss", np.greater),
                                                       ("auto", "val_loss", np.less)])
def test_numpy_monitor_op_compares_as_keras_does_with_numpy(compiled, mode, monitor, comparison):
    callback = keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, min_delta=0.1)
    callback.set_model(compiled)
    internals.numpy_monitor_op(callback)
    assert callback.monitor_op is comparison
    assert callback.min_delta == (-0.1 if comparison is np.less else 0.1)  # as Keras turns it for `less`


def test_numpy_monitor_op_leaves_a_callback_without_kerass_setter_alone():
    callback = types.SimpleNamespace(monitor_op=None)
    internals.numpy_monitor_op(callback)
    assert callback.monitor_op is None  # Keras' own class sets it then


def test_symbolic_build_builds_weights_and_compiled_metrics_without_training(compiled):
    before = len(compiled.metrics_variables)
    internals.symbolic_build(compiled, batch())
    assert compiled.built and [tuple(v.shape) for v in compiled.trainable_variables] == [(2, 3), (3,)]
    assert len(compiled.metrics_variables) > before  # mae's total and count
    assert int(compiled.optimizer.iterations.numpy()) == 0


class _Renamed(keras.Sequential):
    """A model of a Keras whose trainer lacks `_symbolic_build`."""

    def __getattribute__(self, name):
        if name == "_symbolic_build":
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_a_model_without_symbolic_build_is_an_internal_error():
    model = _Renamed([keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(InternalError, match=gone("keras", "_Renamed._symbolic_build")):
        internals.symbolic_build(model, batch())


def test_loss_tracker_is_the_metric_logged_as_loss(compiled):
    internals.symbolic_build(compiled, batch())
    tracker = internals.loss_tracker(compiled)
    assert tracker is compiled._loss_tracker  # the one train_step updates
    compiled.train_on_batch(*batch())
    assert float(tracker.result()) == pytest.approx(compiled.get_metrics_result()["loss"])


def test_loss_tracker_needs_only_the_public_metrics():
    mean = keras.metrics.Mean(name="loss")
    assert internals.loss_tracker(types.SimpleNamespace(metrics=[keras.metrics.Mean(name="mae"), mean])) is mean


def test_a_model_without_any_loss_tracker_is_an_internal_error():
    with pytest.raises(InternalError, match=gone("keras", "SimpleNamespace._loss_tracker")):
        internals.loss_tracker(types.SimpleNamespace(metrics=[]))


def test_functional_class_is_what_keras_model_makes_and_leaves_names_alone():
    internals.functional_class.cache_clear()
    keras.backend.clear_session()
    found = internals.functional_class()
    inputs = keras.Input((2,))
    functional = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    assert (functional.name, functional.layers[-1].name) == ("functional", "dense")  # the probe took no name
    assert type(functional) is found and found is not keras.Sequential
    assert kept_models.reusable(functional) and kept_models.reusable(keras.Sequential([keras.layers.Dense(1)]))


def _draws(seeding, seed: int) -> list[np.ndarray]:
    """A model's initial weights and one training-mode output (dropout and noise draw),
    after `seeding(seed)`."""
    seeding(seed)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3), keras.layers.BatchNormalization(),
                              keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.GaussianNoise(0.1),
                              keras.layers.Dense(3)])
    return [w.numpy() for w in model.weights] + [np.asarray(model(np.ones((2, 6, 6, 1), "float32"), training=True))]


def _same(left: list[np.ndarray], right: list[np.ndarray]) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(left, right, strict=True))


def test_seed_keras_draws_what_set_random_seed_draws_and_leaves_tensorflows_seed_alone():
    import tensorflow as tf

    tf.random.set_seed(5)
    for seed in (3, 11):
        assert _same(_draws(internals.seed_keras, seed), _draws(keras.utils.set_random_seed, seed))
    tf.random.set_seed(5)
    assert _same(_draws(internals.seed_keras, 3), _draws(internals.seed_keras, 3))
    assert not _same(_draws(internals.seed_keras, 3), _draws(internals.seed_keras, 4))
    assert tf.compat.v1.get_seed(None)[0] == 5  # not reset: setting it empties TensorFlow's kernel cache


def test_seed_keras_falls_back_to_set_random_seed_where_kerass_global_state_moved(monkeypatch):
    import tensorflow as tf

    expected = _draws(keras.utils.set_random_seed, 3)
    tf.random.set_seed(5)
    monkeypatch.setitem(sys.modules, "keras.src.backend.common.global_state", None)  # as if renamed
    assert _same(_draws(internals.seed_keras, 3), expected)
    assert tf.compat.v1.get_seed(None)[0] == 3


@pytest.mark.parametrize("renamed", [False, True])
def test_reset_layer_names_starts_kerass_automatic_names_afresh(renamed, monkeypatch):
    if renamed:  # the fallback, clear_session
        monkeypatch.setitem(sys.modules, "keras.src.utils.naming", None)
    keras.layers.Dense(1), keras.layers.Dense(1)
    internals.reset_layer_names()
    assert [keras.layers.Dense(1).name, keras.layers.Dense(1).name] == ["dense", "dense_1"]


# --------------------------------------------------------------------------- TensorFlow

PFOR = "tensorflow.python.ops.parallel_for.pfor"


def test_vectorize_bitcast_lets_vectorized_map_bitcast_each_lane():
    import tensorflow as tf

    internals.vectorize_bitcast()
    internals.vectorize_bitcast()  # a second call is harmless
    x = tf.constant([[1.5, -2.0], [-0.0, 3.0]])
    bits = tf.vectorized_map(lambda row: tf.bitcast(row, tf.int32), x, fallback_to_while_loop=False)
    np.testing.assert_array_equal(bits.numpy(), tf.bitcast(x, tf.int32).numpy())
    signs = tf.vectorized_map(keras.ops.signbit, x, fallback_to_while_loop=False)
    assert signs.numpy().tolist() == [[False, True], [True, False]]


def test_tensorflow_without_its_vectorizer_registry_is_an_internal_error(monkeypatch):
    import importlib

    pfor = importlib.import_module(PFOR)
    monkeypatch.setattr(internals._tensorflow, "_bitcast_vectorized", False)  # as before the first call
    monkeypatch.delattr(pfor, "RegisterPFor")
    with pytest.raises(InternalError, match=gone("tensorflow", f"{PFOR}.RegisterPFor")):
        internals.vectorize_bitcast()
    monkeypatch.setitem(sys.modules, PFOR, None)  # as if the module were gone
    with pytest.raises(InternalError, match=gone("tensorflow", PFOR)):
        internals.vectorize_bitcast()


def test_an_unsupported_package_message_names_the_fix():
    message = str(internals.unsupported("no-such-package-lrsearch", "x._y"))
    assert "no-such-package-lrsearch (not installed): x._y is gone" in message and "report this" in message


# --------------------------------------------------------------------------- a run


def test_a_run_whose_trial_hits_an_internal_error_stops_at_once_with_exit_70(cli, tmp_path):
    journal = str(tmp_path / "trials.journal")
    run = cli("run", str(RENAMED), "--storage", journal, "--n-trials", "8", "--workers", "1", "--lanes", "1",
              "--no-report", "--no-confirm", cwd=tmp_path)
    assert run.returncode == 70, run.stderr
    assert re.search(gone("keras", "Sequential._symbolic_build"), run.stderr), run.stderr
    assert "in a row" not in run.stderr and "study file is probably wrong" not in run.stderr
    assert "Traceback" not in run.stderr
    from lrsearch.storage import open_storage

    trials = optuna.load_study(study_name="renamed", storage=open_storage(journal)).get_trials()
    assert [t.state.name for t in trials] == ["FAIL"]
    assert "InternalError: lrsearch" in trials[0].user_attrs["fail_reason"]
