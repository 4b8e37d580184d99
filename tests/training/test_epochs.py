"""The fast epoch loop against `model.fit`: same logs, same weights, same callbacks.

Every test trains a real tiny Keras model on blobs-like data for one to a few epochs.
"""

from __future__ import annotations

import dataclasses

import logging
import warnings as python_warnings
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
optuna = pytest.importorskip("optuna")
tf = pytest.importorskip("tensorflow")

from lrsearch import internals  # noqa: E402
from lrsearch.study import load_study  # noqa: E402
from lrsearch.training import TrialRunner  # noqa: E402
from lrsearch.training import _epochs as epoch_loop  # noqa: E402
from lrsearch.lr import LRConfig  # noqa: E402
from lrsearch import results  # noqa: E402
from lrsearch.results import DIVERGED  # noqa: E402
from lrsearch.training import PruningCallback  # noqa: E402
from lrsearch.lr import LearningRateMonitor, make_callbacks, make_optimizer  # noqa: E402

LOG_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy"}
#: Rows of training data; BATCH does not divide it, so the last batch is partial (100 = 3 * 32 + 4).
TRAIN_ROWS, BATCH = 100, 32


@pytest.fixture(scope="module")
def blobs():
    """Three Gaussian blobs as in the seed, small: ((x, y) train, (x, y) validation)."""
    rng = np.random.default_rng(2)
    centres = np.array([[-6.0, 2.0], [0.0, -8.0], [-2.0, 6.0]], dtype="float32")
    labels = rng.integers(0, 3, size=160)
    x = (centres[labels] + rng.normal(0.0, 2.0, size=(160, 2))).astype("float32")
    y = np.eye(3, dtype="float32")[labels]
    return (x[:TRAIN_ROWS], y[:TRAIN_ROWS]), (x[TRAIN_ROWS:], y[TRAIN_ROWS:])


def build(optimizer, seed: int = 3, model_class=None) -> keras.Model:
    """The seed's MLP, smaller, compiled with `optimizer`."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = (model_class or keras.Sequential)([
        keras.Input(shape=(2,)),
        keras.layers.Dense(16, activation="relu", kernel_initializer="he_uniform"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def twins(make_optimizer_):
    """Two models with the same weights and each its own fresh optimizer."""
    first = build(make_optimizer_())
    second = build(make_optimizer_(), seed=99)
    second.set_weights(first.get_weights())
    return first, second


def test_same_logs_keys_as_model_fit(blobs):
    train, val = blobs
    keras_model, fast_model = twins(lambda: keras.optimizers.SGD(0.01, momentum=0.9))
    reference = keras_model.fit(*train, validation_data=val, epochs=2, batch_size=BATCH, verbose=0)
    fast = epoch_loop.fit(fast_model, train, val, epochs=2, batch_size=BATCH)
    assert set(reference.history) == LOG_KEYS
    assert set(fast.history) == set(reference.history)
    assert all(len(values) == 2 for values in fast.history.values())


@pytest.mark.parametrize(
    "make_optimizer_",
    [lambda: keras.optimizers.SGD(0.05, momentum=0.9), lambda: keras.optimizers.Adam(1e-2)],
    ids=["sgd-momentum", "adam"],
)
def test_same_weights_and_logs_as_model_fit_without_shuffling(blobs, make_optimizer_):
    train, val = blobs
    keras_model, fast_model = twins(make_optimizer_)
    np.testing.assert_array_equal(keras_model.get_weights()[0], fast_model.get_weights()[0])
    reference = keras_model.fit(*train, validation_data=val, epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
    fast = epoch_loop.fit(fast_model, train, val, epochs=2, batch_size=BATCH, shuffle=False)
    steps = 2 * -(-TRAIN_ROWS // BATCH)  # the partial last batch counts as a step
    assert int(fast_model.optimizer.iterations.numpy()) == int(keras_model.optimizer.iterations.numpy()) == steps
    for expected, got in zip(keras_model.get_weights(), fast_model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    for key in LOG_KEYS:
        np.testing.assert_allclose(fast.history[key], reference.history[key], rtol=1e-5, atol=1e-6)
    moved = [np.max(np.abs(a - b)) for a, b in zip(build(make_optimizer_()).get_weights(), fast_model.get_weights())]
    assert max(moved) > 1e-3, "training did not change the weights"


def test_shuffling_follows_the_seed(blobs):
    train, val = blobs

    def weights_after(seed):
        model = build(keras.optimizers.SGD(0.05))
        epoch_loop.fit(model, train, val, epochs=2, batch_size=BATCH, seed=seed)
        return model.get_weights()[0]

    np.testing.assert_array_equal(weights_after(5), weights_after(5))
    assert not np.allclose(weights_after(5), weights_after(6))


def test_reduce_lr_on_plateau_and_lr_monitor_run_in_the_fast_loop(blobs):
    """A learning rate too small to move the accuracy: the plateau callback must cut it, as in model.fit."""
    train, val = blobs
    config = LRConfig(optimizer="sgd", lr=1e-6, momentum=0.0, schedule="plateau", patience=1, factor=0.5)
    steps = -(-TRAIN_ROWS // BATCH)
    lrs = {}
    for name in ("fit", "fast"):
        model = build(make_optimizer(config, steps, epochs=4))
        monitor = LearningRateMonitor()
        callbacks = [monitor, *make_callbacks(config, "val_accuracy", "maximize")]
        if name == "fit":
            history = model.fit(*train, validation_data=val, epochs=4, batch_size=BATCH, callbacks=callbacks,
                                verbose=0)
        else:
            history = epoch_loop.fit(model, train, val, epochs=4, batch_size=BATCH, callbacks=callbacks)
        assert history.history["lr"] == monitor.lrs
        lrs[name] = monitor.lrs
    assert lrs["fast"][0] == pytest.approx(1e-6)
    assert lrs["fast"][-1] < lrs["fast"][0] / 1.9, f"the learning rate never dropped: {lrs['fast']}"
    np.testing.assert_allclose(lrs["fast"], lrs["fit"], rtol=1e-6)


def test_nonfinite_loss_stops_the_epoch_and_the_trial_is_pruned(blobs):
    (x, y), val = blobs
    y = y.copy()
    y[40] = np.nan  # in the second batch (rows 32-63); a NaN input would not do: relu(NaN) is 0 on CPU
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    model = build(keras.optimizers.SGD(0.01))
    pruning = PruningCallback(trial, "val_accuracy", "maximize", stall_window=5)
    with pytest.raises(optuna.TrialPruned):
        epoch_loop.fit(model, (x, y), val, epochs=3, batch_size=BATCH, callbacks=[pruning], shuffle=False)
    assert int(model.optimizer.iterations.numpy()) == 2, "the epoch went on past the non-finite batch"
    assert trial.user_attrs["pruned_reason"] == DIVERGED
    assert trial.user_attrs["pruned_epoch"] == 0
    assert "nan" in trial.user_attrs["pruned_detail"]


def test_nonfinite_loss_is_flagged_in_the_logs(blobs):
    (x, y), val = blobs
    y = y.copy()
    y[0] = np.inf
    model = build(keras.optimizers.SGD(0.01))
    history = epoch_loop.fit(model, (x, y), val, epochs=3, batch_size=BATCH, shuffle=False)
    assert history.history[epoch_loop.NONFINITE_KEY] == [True]
    assert len(history.history["loss"]) == 1
    assert not np.isfinite(history.history["loss"][0])


class CustomStep(keras.Sequential):
    """A model with its own train_step, which the fast loop must not bypass."""

    def train_step(self, data):
        self.custom_steps = getattr(self, "custom_steps", 0) + 1
        return super().train_step(data)


def as_datasets(blobs):
    return tuple(tf.data.Dataset.from_tensor_slices(part).batch(BATCH) for part in blobs)


@pytest.mark.parametrize("case", ["custom_train_step", "tf_data", "tf_data_of_unknown_length"])
def test_fallback_to_model_fit_gives_the_same_logs_keys(blobs, case, caplog, monkeypatch):
    monkeypatch.setattr(epoch_loop, "_warned", set())
    model = build(keras.optimizers.Adam(1e-3), model_class=CustomStep if case == "custom_train_step" else None)
    train, val = as_datasets(blobs) if case.startswith("tf_data") else blobs
    if case == "tf_data_of_unknown_length":  # as from_generator's: Keras learns its length as it runs out
        train = train.filter(lambda x, y: True)
    assert epoch_loop.can_run_fast(model, train, val) is not None
    with caplog.at_level(logging.WARNING, logger=epoch_loop.__name__), \
            python_warnings.catch_warnings(record=True) as warned:
        python_warnings.simplefilter("always")
        history = epoch_loop.fit(model, train, val, epochs=2, batch_size=BATCH)
        epoch_loop.fit(model, train, val, epochs=1, batch_size=BATCH)
    assert not [w for w in warned if "shuffle" in str(w.message)]  # a dataset shuffles itself: Keras' warning is moot
    assert not [w for w in warned if "ran out of data" in str(w.message)]  # how such a dataset ends an epoch
    assert set(history.history) == LOG_KEYS
    assert all(len(values) == 2 for values in history.history.values())
    warnings = [r for r in caplog.records if "model.fit" in r.getMessage()]
    assert len(warnings) == 1, "the fallback should be announced exactly once"
    if case == "custom_train_step":
        assert model.custom_steps > 0, "the model's own train_step did not run"


def test_numpy_data_and_a_plain_model_take_the_fast_path(blobs):
    train, val = blobs
    assert epoch_loop.can_run_fast(build(keras.optimizers.SGD(0.01)), train, val) is None


# --------------------------------------------------------------------------- Trainer: compiled models kept across trials


def fresh(optimizer, units: int = 16, seed: int = 3) -> tuple[keras.Model, keras.optimizers.Optimizer]:
    """An uncompiled model and its optimizer, as a trial makes them."""
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(2,)),
        keras.layers.Dense(units, activation="relu", kernel_initializer="he_uniform"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(3, activation="softmax"),
    ])
    return model, optimizer


def trainer_for(blobs, keep: int = 16) -> epoch_loop.Trainer:
    train, val = blobs
    return epoch_loop.Trainer(train, val, loss="categorical_crossentropy", metrics=["accuracy"], batch_size=BATCH,
                           keep=keep)


STEPS = -(-TRAIN_ROWS // BATCH)
#: Two trials of one kind (optimizer, schedule) that differ in every number a trial varies.
PAIRS = {
    "sgd-time-decay": (LRConfig(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=False, schedule="time_decay",
                                decay=1e-2),
                       LRConfig(optimizer="sgd", lr=0.2, momentum=0.3, nesterov=False, schedule="time_decay",
                                decay=1e-3)),
    "adam-one-cycle": (LRConfig(optimizer="adam", lr=0.02, schedule="one_cycle", div=10.0),
                       LRConfig(optimizer="adam", lr=0.005, schedule="one_cycle", div=20.0)),
    "adagrad-constant": (LRConfig(optimizer="adagrad", lr=0.1), LRConfig(optimizer="adagrad", lr=0.01)),
}


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_a_kept_model_trains_the_next_trial_as_a_fresh_one_would(blobs, kind):
    """Trial B loaded into trial A's compiled model (after A trained and another optimizer
    came between, on the same compiled model) ends with the weights, logs and learning
    rates of B compiled from scratch with Keras' own optimizer."""
    first, second = PAIRS[kind]
    trainer = trainer_for(blobs)

    def run_with_trainer(config, seed):
        monitor = LearningRateMonitor()
        model, optimizer = fresh(make_optimizer(config, STEPS, epochs=3), seed=seed)
        history = trainer.fit(model, optimizer, epochs=3, callbacks=[monitor], seed=seed)
        return history, monitor.lrs

    kept, _ = run_with_trainer(first, seed=1)
    other = LRConfig(optimizer="rmsprop", lr=1e-3)
    run_with_trainer(other, seed=2)
    reused, reused_lrs = run_with_trainer(second, seed=3)
    assert reused.model is kept.model, "the second trial of a kind did not reuse the kept model"
    assert len(trainer._loops) == 1, "another optimizer or schedule compiled the architecture again"

    model, optimizer = fresh(make_optimizer(second, STEPS, epochs=3), seed=3)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    monitor = LearningRateMonitor()
    reference = epoch_loop.fit(model, *blobs, epochs=3, batch_size=BATCH, callbacks=[monitor], seed=3)
    assert reused.model is not model
    np.testing.assert_allclose(reused_lrs, monitor.lrs, rtol=1e-5, atol=1e-9)  # float32 rounding near 0
    for key in LOG_KEYS:
        np.testing.assert_allclose(reused.history[key], reference.history[key], rtol=1e-4, atol=1e-5)
    for expected, got in zip(model.get_weights(), reused.model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert int(reused.model.optimizer.iterations.numpy()) == 3 * STEPS


def test_other_architectures_and_subclassed_models_get_their_own_compile(blobs):
    trainer = trainer_for(blobs, keep=2)
    config = LRConfig(optimizer="adam", lr=1e-2)
    histories = []
    for units in (16, 8, 16):
        model, optimizer = fresh(make_optimizer(config, STEPS, epochs=1), units=units)
        histories.append(trainer.fit(model, optimizer, epochs=1))
    assert histories[2].model is histories[0].model
    assert histories[1].model is not histories[0].model
    assert histories[1].model.layers[0].units == 8

    model, optimizer = fresh(make_optimizer(config, STEPS, epochs=1), units=4)  # evicts the least recently used
    trainer.fit(model, optimizer, epochs=1)
    model, optimizer = fresh(make_optimizer(config, STEPS, epochs=1), units=8)
    assert trainer.fit(model, optimizer, epochs=1).model is model, "an evicted model came back"

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.dense(x)

    kept = len(trainer._loops)
    for _ in range(2):
        model = Subclassed()
        assert trainer.fit(model, keras.optimizers.Adam(1e-2), epochs=1).model is model
    assert len(trainer._loops) == kept


def test_functional_models_are_kept_too(blobs):
    trainer = trainer_for(blobs)

    def functional():
        keras.backend.clear_session(free_memory=False)
        inputs = keras.Input(shape=(2,))
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8)(inputs)))

    first = trainer.fit(functional(), keras.optimizers.Adam(1e-2), epochs=1)
    second = trainer.fit(functional(), keras.optimizers.Adam(1e-3), epochs=1)
    assert second.model is first.model
    assert float(second.model.optimizer.learning_rate) == pytest.approx(1e-3)


class Mapped(keras.layers.Layer):
    """A custom layer that Keras cannot describe: its argument is a function."""

    def __init__(self, function):
        super().__init__()
        self.function = function

    def call(self, x):
        return self.function(x)


def test_models_whose_config_cannot_be_read_or_with_keep_0_are_compiled_anew(blobs):
    config = LRConfig(optimizer="adam", lr=1e-2)
    for trainer, layer in ((trainer_for(blobs), lambda: Mapped(lambda x: 2.0 * x)), (trainer_for(blobs, keep=0), None)):
        for _ in range(2):
            model, optimizer = fresh(make_optimizer(config, STEPS, epochs=1))
            if layer is not None:
                model = keras.Sequential([layer(), *model.layers])
            history = trainer.fit(model, optimizer, epochs=1)
            assert history.model is model
            assert set(history.history) == LOG_KEYS
        assert not trainer._loops


def two_input_two_output(seed: int = 3) -> keras.Model:
    """A functional model with named inputs "a" and "b" and outputs "cls" and "reg"."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    a, b = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model({"a": a, "b": b}, {"cls": keras.layers.Dense(3, activation="softmax", name="cls")(hidden),
                                            "reg": keras.layers.Dense(1, name="reg")(hidden)})
    model.compile(optimizer=keras.optimizers.SGD(0.002),
                  loss={"cls": "categorical_crossentropy", "reg": "mse"}, metrics={"cls": ["accuracy"]})
    return model


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_dict_inputs_and_outputs_and_sample_weights_train_like_model_fit(blobs, weighted):
    """Multi-input, multi-output data as model.fit takes it: same weights and logs without shuffling
    (Keras' per-output validation losses average over batches, so they are evaluated in its batches)."""
    (x, y), (xv, yv) = blobs
    rng = np.random.default_rng(0)

    def split(x, y):
        inputs = {"a": x, "b": rng.normal(size=(len(x), 3)).astype("float32")}
        targets = {"cls": y, "reg": x[:, :1] * 0.5}
        return (inputs, targets, rng.uniform(0.5, 2.0, size=len(x)).astype("float32")) if weighted \
            else (inputs, targets)

    train, val = split(x, y), split(xv, yv)
    assert epoch_loop.can_run_fast(two_input_two_output(), train, val) is None
    reference_model = two_input_two_output()
    reference = reference_model.fit(*train[:2], sample_weight=train[2] if weighted else None, validation_data=val,
                                    epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
    fast_model = two_input_two_output()
    fast = epoch_loop.fit(fast_model, train, val, epochs=2, batch_size=BATCH, shuffle=False)
    assert set(fast.history) == set(reference.history)
    for expected, got in zip(reference_model.get_weights(), fast_model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    for key in reference.history:
        np.testing.assert_allclose(fast.history[key], reference.history[key], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- validation values as Keras reports them

GALLERY = Path(__file__).resolve().parent.parent / "gallery"
#: Gallery study files whose validation values depend on the batch: a metric function (an F1
#: over each batch), a loss function (weighted by each batch's classes), per-output losses.
BATCH_BOUND_STUDIES = ("own_metric", "own_loss", "multi_output")


def keras_evaluate(model: keras.Model, val, batch_size: int) -> dict[str, float]:
    x, y, *weights = val
    return model.evaluate(x, y, sample_weight=weights[0] if weights else None, batch_size=batch_size,
                          return_dict=True, verbose=0)


@pytest.mark.parametrize("name", BATCH_BOUND_STUDIES)
def test_a_trial_records_what_keras_evaluate_reports_at_the_study_batch_size(name):
    """Trained as a search worker trains it, the model's last-epoch val_* values are
    `model.evaluate(..., batch_size=<the study's>)` on the same weights."""
    study = load_study(GALLERY / f"{name}.py")
    runner = TrialRunner(study, epochs=2)
    model, optimizer = runner.seeded_model(optuna.trial.FixedTrial({"units": 8, "depth": 1}),
                                           LRConfig("adam", 0.01), seed=1, fresh_names=True)
    history = runner.trainer.fit(model, optimizer, epochs=2, seed=1)
    assert not epoch_loop.batch_free(history.model)
    expected = keras_evaluate(history.model, runner.val, study.settings.batch_size)
    assert study.settings.objective.removeprefix("val_") in expected
    for key, value in expected.items():
        assert history.history[f"val_{key}"][-1] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("epochs, window", [(None, 5), (150, 15), (30, 5)])
def test_the_stall_window_is_a_tenth_of_the_run_s_epochs(epochs, window):
    """`--epochs` (a runner's epochs) sets the stalled stop's window, not the study file's epochs."""
    study = load_study(GALLERY / "own_metric.py")
    runner = TrialRunner(dataclasses.replace(study, settings=dataclasses.replace(study.settings, epochs=6)),
                         epochs=epochs)
    trial = optuna.create_study().ask()
    pruning = runner.callbacks(trial, LRConfig("adam", 0.01), keras.callbacks.History(), prune=True)[-1]
    assert isinstance(pruning, PruningCallback) and pruning.stall_window == window
    assert runner.epochs == (epochs or 6)


class _PrunesAtEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise optuna.TrialPruned("the study's own check at epoch 2")


@pytest.mark.parametrize("where", ["build_model", "callback"])
def test_a_trial_the_study_file_prunes_records_why_not_as_the_pruner(where):
    """optuna.TrialPruned raised by build_model or a study's callback is the study file's
    reason, with its message and epoch, not "pruner" (no pruner is configured)."""
    study = load_study(GALLERY / "own_metric.py")
    if where == "build_model":
        def build_model(trial):
            raise optuna.TrialPruned("too many units")
        study = dataclasses.replace(study, builder=build_model)
    else:
        study = dataclasses.replace(study, callbacks=lambda trial: [_PrunesAtEpoch()])
    searched = optuna.create_study(direction="maximize")
    searched.optimize(TrialRunner(study, epochs=3), n_trials=1)
    trial = searched.trials[0]
    assert trial.state.name == "PRUNED"
    record = results.read_trial(trial)
    assert (record.pruned_reason, record.pruned_detail, record.pruned_epoch) == (
        ("study file", "too many units", None) if where == "build_model"
        else ("study file", "the study's own check at epoch 2", 1))


def test_batch_free_values_evaluate_in_one_batch_to_what_keras_reports(blobs):
    """Per-row losses and metrics, counts (AUC, precision, F1), sample weights, batch
    normalisation, dropout and a weight penalty: one large batch gives Keras' values."""
    (x, y), (xv, yv) = blobs
    weights = np.random.default_rng(1).uniform(0.5, 2.0, len(xv)).astype("float32")
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, activation="relu", kernel_regularizer="l2"),
                              keras.layers.BatchNormalization(), keras.layers.Dropout(0.3),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.CategoricalCrossentropy(),
                  metrics=["accuracy", "mae", keras.metrics.AUC(), keras.metrics.Precision(),
                           keras.metrics.F1Score(average="macro")])
    history = epoch_loop.fit(model, (x, y), (xv, yv, weights), epochs=2, batch_size=BATCH)
    assert epoch_loop.batch_free(model)
    for key, value in keras_evaluate(model, (xv, yv, weights), BATCH).items():
        assert history.history[f"val_{key}"][-1] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def soft_mean(y_true, y_pred):
    return keras.ops.mean(y_pred)


BATCH_BOUND = {
    "metric function": dict(metrics=[soft_mean]),
    "keras' own correlation": dict(metrics=[keras.metrics.PearsonCorrelation()]),
    "loss function": dict(loss=soft_mean),
    "summed loss": dict(loss=keras.losses.CategoricalCrossentropy(reduction="sum")),
    "lambda layer": dict(layer=lambda: keras.layers.Lambda(lambda t: t - keras.ops.mean(t, axis=0))),
    "softmax over rows": dict(layer=lambda: keras.layers.Softmax(axis=0)),
    "activity penalty": dict(layer=lambda: keras.layers.Dense(3, activity_regularizer="l2")),
    "two outputs": dict(outputs=2),
}


@pytest.mark.parametrize("case", ["none", *sorted(BATCH_BOUND)])
def test_what_depends_on_the_batch_is_evaluated_in_the_study_batches(case):
    """Each of these makes a validation value depend on the batch (the model without them does not)."""
    options = BATCH_BOUND.get(case, {})
    keras.backend.clear_session(free_memory=False)
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(3)(inputs)
    hidden = options.get("layer", keras.layers.Identity)()(hidden)
    outputs = [keras.layers.Softmax()(hidden) for _ in range(options.get("outputs", 1))]
    model = keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0])
    model.compile(optimizer="sgd", loss=options.get("loss", "categorical_crossentropy"),
                  metrics=options.get("metrics", ["accuracy"]) if len(outputs) == 1 else None)
    y = np.zeros((4, 3), "float32")
    internals.symbolic_build(model, (np.zeros((4, 2), "float32"), [y] * len(outputs) if len(outputs) > 1 else y))
    assert epoch_loop.batch_free(model) is (case == "none")
    assert epoch_loop.eval_batch(model, BATCH) == (epoch_loop.LARGE_EVAL_BATCH if case == "none" else BATCH)
