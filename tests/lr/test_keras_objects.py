"""The 1cycle schedule: its shape, its checks, and its round trips through Keras
serialization and through a saved model with its optimizer; the plateau callback
against Keras' own."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from lrsearch.lr import ONE_CYCLE_ANNIHILATION, ONE_CYCLE_FINAL_DIV  # noqa: E402
from lrsearch.lr import LRConfig  # noqa: E402
from lrsearch.lr import OneCycle, make_optimizer  # noqa: E402

ETA0, ETA1, FINAL, STEPS = 0.01, 0.1, 1e-5, 1000


def schedule_of(optimizer) -> OneCycle:
    """The optimizer's learning-rate schedule, through its public config."""
    return keras.saving.deserialize_keras_object(optimizer.get_config()["learning_rate"])


def values(schedule, steps) -> np.ndarray:
    return np.array([float(keras.ops.convert_to_numpy(schedule(step))) for step in steps])


def test_one_cycle_shape():
    schedule = OneCycle(ETA0, ETA1, FINAL, STEPS)
    half = STEPS * (1 - ONE_CYCLE_ANNIHILATION) / 2  # the middle of the cycle
    curve = values(schedule, range(STEPS + 1))
    assert curve[0] == pytest.approx(ETA0)
    assert int(np.argmax(curve)) == pytest.approx(half, abs=1)
    assert curve.max() == pytest.approx(ETA1, rel=1e-5)
    assert np.all(np.diff(curve[: int(half)]) > 0)  # linear up ...
    assert np.all(np.diff(curve[int(half) + 1 :]) <= 1e-9)  # ... then down, never up again
    assert curve[int(2 * half)] == pytest.approx(ETA0, rel=1e-4)  # back at eta0 when the cycle ends
    assert curve[-1] == pytest.approx(FINAL, rel=1e-4)  # ends orders of magnitude lower
    assert curve[-1] < ETA0 / 100
    assert values(schedule, [STEPS * 3])[0] == pytest.approx(FINAL, rel=1e-4)  # and stays there


def test_one_cycle_rounds_alike_traced_and_eager():
    """Keras' optimizer computes the rate in its traced step, with the schedule's numbers as
    constants that TensorFlow's graph optimizer may fold; a kept model's optimizer computes
    it from variables, as eagerly. The two must agree to the bit, or an exported 1cycle
    configuration trains another model (RMSprop at a high rate diverges within an epoch)."""
    import tensorflow as tf

    schedule = OneCycle(0.592 / 5.29, 0.592, 0.592 / 5.29 / ONE_CYCLE_FINAL_DIV, 320)
    traced = tf.function(lambda step: schedule(step))
    steps = range(321)
    eager = values(schedule, steps)
    in_graph = np.array([float(traced(tf.constant(step, tf.int64))) for step in steps])
    np.testing.assert_array_equal(in_graph, eager)


@pytest.mark.parametrize("args, message", [
    ((0.0, ETA1, FINAL, STEPS), "0 < initial_lr <= peak_lr"),
    ((ETA1, ETA0, FINAL, STEPS), "0 < initial_lr <= peak_lr"),
    ((ETA0, ETA1, ETA1, STEPS), "final_lr"),
    ((ETA0, ETA1, FINAL, 1), "total_steps >= 2, but got 1"),
])
def test_one_cycle_checks_its_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        OneCycle(*args)


def test_one_cycle_round_trips_through_keras_serialization():
    schedule = OneCycle(ETA0, ETA1, FINAL, STEPS, annihilation=0.2)
    data = keras.saving.serialize_keras_object(schedule)
    assert "lrsearch" in str(data)
    again = keras.saving.deserialize_keras_object(data)
    assert isinstance(again, OneCycle)
    assert again.get_config() == schedule.get_config()
    steps = [0, 100, 400, 799, 900, 1000]
    np.testing.assert_allclose(values(again, steps), values(schedule, steps))


def test_make_optimizer_builds_one_cycle_from_a_config():
    config = LRConfig(optimizer="sgd", lr=0.2, schedule="one_cycle", div=10.0, momentum=0.9)
    optimizer = make_optimizer(config, steps_per_epoch=16, epochs=200)
    schedule = schedule_of(optimizer)
    assert isinstance(schedule, OneCycle)
    assert schedule.peak_lr == 0.2 and schedule.initial_lr == pytest.approx(0.02)
    assert schedule.final_lr == pytest.approx(0.02 / ONE_CYCLE_FINAL_DIV)
    assert schedule.total_steps == 16 * 200


def test_one_cycle_survives_saving_the_whole_model(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(3, activation="softmax")])
    config = LRConfig(optimizer="adam", lr=0.05, schedule="one_cycle", div=5.0)
    model.compile(optimizer=make_optimizer(config, steps_per_epoch=4, epochs=5), loss="categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
    y = np.eye(3, dtype="float32")[np.arange(32) % 3]
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 8 optimizer steps
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    schedule = schedule_of(loaded.optimizer)
    assert isinstance(schedule, OneCycle)
    assert schedule.get_config() == schedule_of(model.optimizer).get_config()
    assert int(loaded.optimizer.iterations.numpy()) == 8
    assert float(loaded.optimizer.learning_rate) == pytest.approx(float(model.optimizer.learning_rate))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("mode, min_delta", [("max", 0.0), ("max", 0.01), ("min", 0.0), ("min", 0.01)])
def test_plateau_callback_reduces_exactly_as_keras_does(mode, min_delta):
    """lrsearch's ReduceLROnPlateau (NumPy comparisons) lowers the rate at the same epochs,
    to the same values, as Keras' own on one noisy monitored series."""
    from lrsearch.lr import ReduceLROnPlateau

    values = np.random.default_rng(3).normal(0.5, 0.02, 60).cumsum() / np.arange(1, 61)
    rates = []
    for cls in (keras.callbacks.ReduceLROnPlateau, ReduceLROnPlateau):
        model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        callback = cls(monitor="val_loss", mode=mode, patience=3, factor=0.5, min_delta=min_delta, min_lr=1e-4)
        callback.set_model(model)
        callback.on_train_begin()
        seen = []
        for epoch, value in enumerate(values):
            callback.on_epoch_end(epoch, {"val_loss": float(value)})
            seen.append(float(model.optimizer.learning_rate))
        rates.append(seen)
    assert rates[0] == rates[1]
    assert len(set(rates[0])) > 2  # the series did make the rate fall, more than once
    assert callback.monitor_op in (np.less, np.greater)
