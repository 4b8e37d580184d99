"""Lanes: trials of one architecture trained together must train as each would alone."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest

from lrsearch.lr import LearningRateMonitor, LRConfig, make_callbacks, make_optimizer
from lrsearch.study import load_study
from lrsearch.training import TrialRunner
from lrsearch.training import _epochs as epoch_loop, _lanes as lanes
from lrsearch.training._lane_group import LaneGroup
from lrsearch.training._lane_optimizer import hyperparameters, table

ROWS, BATCH, STEPS = 160, 32, 4  # 4 batches an epoch, the last one full
LOSS, METRICS = "categorical_crossentropy", ["accuracy"]

CONFIGS = {
    "sgd momentum": LRConfig("sgd", 0.05, momentum=0.9),
    "sgd nesterov": LRConfig("sgd", 0.02, momentum=0.5, nesterov=True),
    "sgd plain": LRConfig("sgd", 0.1),
    "rmsprop time_decay": LRConfig("rmsprop", 0.003, schedule="time_decay", decay=0.01),
    "adagrad one_cycle": LRConfig("adagrad", 0.2, schedule="one_cycle", div=10.0),
    "adam": LRConfig("adam", 0.01),
}


def blobs(rows: int = ROWS, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 2 * rows)
    x = (rng.normal(size=(2 * rows, 2)) + 3 * np.eye(3)[labels][:, :2]).astype("float32")
    y = np.eye(3, dtype="float32")[labels]
    return (x[:rows], y[:rows]), (x[rows:], y[rows:])


def mlp():
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def seeded(build, seed: int, x):
    keras.utils.set_random_seed(seed)
    model = build()
    model(x[:1])
    return model


def optimizer_for(config, epochs: int):
    """A fresh optimizer for an LRConfig, or from a factory (for what LRConfig refuses)."""
    return config() if callable(config) else make_optimizer(config, STEPS, epochs)


def callbacks_for(config) -> list:
    return [LearningRateMonitor(), *([] if callable(config) else make_callbacks(config, "val_accuracy", "maximize"))]


def alone(build, config, seed: int, train, val, epochs: int, loss=LOSS, metrics=METRICS):
    """(weights, history) of `config` trained by itself, as a search worker trains it."""
    keras.backend.clear_session(free_memory=False)
    model = seeded(build, seed, train[0])
    model.compile(optimizer=optimizer_for(config, epochs), loss=loss, metrics=metrics)
    callbacks = callbacks_for(config)
    history = epoch_loop.fit(model, train, val, epochs=epochs, batch_size=BATCH, callbacks=callbacks, seed=seed)
    return [v.numpy() for v in model.trainable_variables], history.history


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_lane_trains_one_epoch_as_its_trial_alone(name):
    """The trial sits in lane 2 of 4; lane 0 holds another optimizer further into its
    schedule, lane 1 is empty, lane 3 diverges: after an epoch its weights are alone's."""
    train, val = blobs()
    group = LaneGroup(seeded(mlp, 0, train[0]), train, val, loss=LOSS, metrics=METRICS, batch_size=BATCH, lanes=4)
    others = {0: (LRConfig("adam", 0.003), 11), 3: (lambda: keras.optimizers.SGD(1e30), 12)}
    loaded = {}
    for index, (config, seed) in {**others, 2: (CONFIGS[name], 5)}.items():
        loaded[index] = hyperparameters(optimizer_for(config, 1))
        group.load(index, seeded(mlp, seed, train[0]), loaded[index])
    orders = np.tile(np.arange(ROWS, dtype=np.int32), (4, 1))
    orders[2] = np.random.default_rng(5).permutation(ROWS)
    steps = np.array([40, 0, 0, 0], np.float32)
    logs, finite, _ = group.epoch(orders, table(loaded, group.k), steps, np.array([True, False, True, True]))

    weights, history = alone(mlp, CONFIGS[name], 5, train, val, epochs=1)
    for expected, trained in zip(weights, group.lane_weights(2)):
        np.testing.assert_allclose(trained, expected, rtol=1e-5, atol=1e-6)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert logs[key][2] == pytest.approx(history[key][0], rel=1e-5, abs=1e-6), key
    assert finite[2] and not finite[3]  # lr 1e30 blows up in its own lane only


def run_in_threads(trainer, jobs, build=mlp):
    """Each job (a list of (config, seed, epochs, extra callbacks)) trains its trials one
    after another in a thread of its own; the histories (or errors) by (job, position)."""
    results = {}
    building = threading.Lock()  # the global seed, as TrialRunner holds it

    def work(j, trials):
        for position, (config, seed, epochs, extra) in enumerate(trials):
            with building:
                model = seeded(build, seed, trainer.train[0])
            callbacks = [*callbacks_for(config), *extra]
            try:
                history = trainer.fit(model, optimizer_for(config, epochs), epochs=epochs,
                                      callbacks=callbacks, seed=seed)
                results[j, position] = history.history
            except BaseException as exc:  # what the trial's own thread sees
                results[j, position] = exc

    threads = [threading.Thread(target=work, args=(j, trials)) for j, trials in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def test_trials_in_lanes_log_what_they_log_alone():
    """Three threads, trials of different lengths, so that later trials join lanes while
    others are mid-way; a plateau schedule lowers its rate between epochs."""
    train, val = blobs()
    trainer = lanes.Lanes(train, val, loss=LOSS, metrics=METRICS, batch_size=BATCH, lanes=3,
                          alone=epoch_loop.Trainer(train, val, loss=LOSS, metrics=METRICS, batch_size=BATCH, keep=2))
    plateau = LRConfig("sgd", 0.05, momentum=0.9, schedule="plateau", patience=1, factor=0.5)
    jobs = [[(CONFIGS["adam"], 1, 3, []), (CONFIGS["adagrad one_cycle"], 2, 5, [])],
            [(plateau, 3, 8, [])],
            [(CONFIGS["sgd nesterov"], 4, 2, []), (CONFIGS["rmsprop time_decay"], 5, 4, [])]]
    results = run_in_threads(trainer, jobs)
    assert trainer.lane_by_lane(seeded(mlp, 0, train[0])) is None
    for (j, position), history in results.items():
        config, seed, epochs, _ = jobs[j][position]
        _, expected = alone(mlp, config, seed, train, val, epochs)
        assert not isinstance(history, BaseException), history
        assert len(history["loss"]) == epochs
        for key in ("loss", "val_loss", "val_accuracy", "lr"):
            np.testing.assert_allclose(history[key], expected[key], rtol=2e-4, atol=1e-6, err_msg=f"{config} {key}")
    assert min(results[1, 0]["lr"]) < plateau.lr  # the plateau did lower it


class PruneAt(keras.callbacks.Callback):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True
            raise optuna.TrialPruned(f"at {epoch}")


def test_a_pruned_or_diverged_lane_ends_alone():
    train, val = blobs()
    trainer = lanes.Lanes(train, val, loss=LOSS, metrics=METRICS, batch_size=BATCH, lanes=4,
                          alone=epoch_loop.Trainer(train, val, loss=LOSS, metrics=METRICS, batch_size=BATCH, keep=2))
    def diverging():
        return keras.optimizers.SGD(1e30)

    jobs = [[(CONFIGS["adam"], 1, 6, [PruneAt(1)])], [(diverging, 2, 6, [])], [(CONFIGS["sgd momentum"], 3, 6, [])]]
    results = run_in_threads(trainer, jobs)
    assert isinstance(results[0, 0], optuna.TrialPruned)
    _, expected = alone(mlp, diverging, 2, train, val, 6)
    assert results[1, 0].get(epoch_loop.NONFINITE_KEY) == expected.get(epoch_loop.NONFINITE_KEY) == [True]
    assert len(results[1, 0]["loss"]) == len(expected["loss"]) < 6
    assert len(results[2, 0]["loss"]) == 6


def test_what_lanes_cannot_run_says_why():
    assert "amsgrad" in hyperparameters(keras.optimizers.Adam(amsgrad=True))
    assert "clipnorm" in hyperparameters(keras.optimizers.SGD(clipnorm=1.0))
    assert "Nadam" in hyperparameters(keras.optimizers.Nadam())
    assert "momentum" in hyperparameters(keras.optimizers.RMSprop(momentum=0.5))

    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    assert lanes.architecture_key(Custom()) is None
    first, second = seeded(mlp, 0, np.zeros((1, 2), "float32")), seeded(mlp, 1, np.zeros((1, 2), "float32"))
    assert first.layers[0].name != second.layers[0].name
    assert lanes.architecture_key(first) == lanes.architecture_key(second)  # names count up; the key ignores them

    x = np.random.default_rng(0).integers(0, 10, (64, 5)).astype("int32")
    y = np.eye(3, dtype="float32")[x[:, 0] % 3]
    embedding = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(10, 4),
                                  keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3, activation="softmax")])
    embedding(x[:1])
    trainer = lanes.Lanes((x[:32], y[:32]), (x[32:], y[32:]), loss=LOSS, metrics=METRICS, batch_size=8, lanes=2,
                          alone=epoch_loop.Trainer((x[:32], y[:32]), (x[32:], y[32:]), loss=LOSS, metrics=METRICS,
                                                batch_size=8, keep=1))
    assert "sparse" in trainer.why_not(embedding, keras.optimizers.Adam())


def conv():
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(3, 3, activation="relu"),
                             keras.layers.MaxPooling2D(), keras.layers.BatchNormalization(), keras.layers.Flatten(),
                             keras.layers.Dense(3, activation="softmax")])


def dropout():
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dropout(0.3), keras.layers.Dense(3, activation="softmax")])


def gru():
    return keras.Sequential([keras.Input((6, 6)), keras.layers.GRU(4), keras.layers.Dense(3, activation="softmax")])


def functional():
    inputs = keras.Input((6, 6, 1))
    flat = keras.layers.Flatten()(inputs)
    left = keras.layers.Dense(4, activation="tanh", kernel_regularizer="l2")(flat)
    right = keras.layers.LayerNormalization()(keras.layers.Dense(4)(flat))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Concatenate()([left, right])))


@pytest.mark.parametrize("build, lane_by_lane", [(conv, "Conv2D"), (dropout, "StatelessRandomGetKeyCounter"),
                                                 pytest.param(gru, None, marks=pytest.mark.slow), (functional, None)])
def test_common_layers_train_in_lanes_as_alone(build, lane_by_lane):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 2 * ROWS)
    x = rng.normal(size=(2 * ROWS, 6, 6, 1)).astype("float32") + labels[:, None, None, None]
    if build is gru:
        x = x[..., 0]
    y = np.eye(3, dtype="float32")[labels]
    train, val = (x[:ROWS], y[:ROWS]), (x[ROWS:], y[ROWS:])
    trainer = lanes.Lanes(train, val, loss=LOSS, metrics=METRICS, batch_size=BATCH, lanes=2,
                          alone=epoch_loop.Trainer(train, val, loss=LOSS, metrics=METRICS, batch_size=BATCH, keep=1))
    jobs = [[(CONFIGS["adam"], 1, 2, [])], [(CONFIGS["sgd momentum"], 2, 2, [])]]
    assert trainer.why_not(seeded(build, 0, x), make_optimizer(CONFIGS["adam"], STEPS, 2)) is None
    assert trainer.lane_by_lane(seeded(build, 0, x)) == lane_by_lane

    results = run_in_threads(trainer, jobs, build)
    for (j, position), history in results.items():
        config, seed, epochs, _ = jobs[j][position]
        _, expected = alone(build, config, seed, train, val, epochs)
        for key in ("loss", "val_loss", "lr"):
            np.testing.assert_allclose(history[key], expected[key], rtol=2e-4, atol=1e-6, err_msg=key)


def test_lanes_tried_are_powers_of_two_up_to_the_cap():
    assert lanes._counts(1) == []
    assert lanes._counts(5) == [2, 4, 5]
    assert lanes._counts(1000) == [2, 4, 8, 16, 32]


def small_cnn():
    return keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(16, 3, activation="relu"),
                             keras.layers.MaxPooling2D(), keras.layers.Conv2D(16, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])


def chosen(build, train, val, cap):
    trainer = epoch_loop.Trainer(train, val, loss=LOSS, metrics=METRICS, batch_size=BATCH, keep=2)
    model = seeded(build, 0, train[0])
    optimizer = make_optimizer(CONFIGS["adam"], STEPS, 2)
    model.compile(optimizer=optimizer, loss=LOSS, metrics=METRICS)
    return lanes.choose(trainer, model, optimizer, loss=LOSS, metrics=METRICS, cap=cap)


def test_lanes_are_measured_to_pay_for_a_small_model_and_not_tried_for_convolutions_which_say_nothing(capfd):
    train, val = blobs(rows=40 * BATCH)  # 40 steps an epoch: what a group costs a call counts little
    mlp_choice = chosen(mlp, train, val, cap=4)  # how many pay depends on the machine and its load: timed, anyway
    timed = "an epoch of 4 lanes took " if mlp_choice.count > 1 else "lanes were measured not to pay on this device ("
    assert mlp_choice.said.startswith(timed) or "a step takes" in mlp_choice.said, mlp_choice.said
    assert mlp_choice.count == (mlp_choice.group.k if mlp_choice.group else 1) and mlp_choice.count in (1, 2, 4)

    rng = np.random.default_rng(0)
    images = rng.normal(size=(2 * ROWS, 16, 16, 3)).astype("float32")
    labels = np.eye(3, dtype="float32")[rng.integers(0, 3, 2 * ROWS)]
    cnn_choice = chosen(small_cnn, (images[:ROWS], labels[:ROWS]), (images[ROWS:], labels[ROWS:]), cap=2)
    assert (cnn_choice.count, cnn_choice.group) == (1, None)
    assert re.fullmatch(r"TensorFlow's Conv2D op has no vectorised form, so that lanes would run it one lane after "
                        r"another|a step takes [\d.]+ ms alone, more than lanes, which share what a step costs "
                        r"besides its arithmetic, can save", cnn_choice.said), cnn_choice.said
    printed = capfd.readouterr()
    assert "tensorflow" not in printed.err.lower() + printed.out.lower()


def test_lanes_are_timed_for_a_lambda_layer_and_a_loss_function_that_keras_registry_lacks():
    """Keras clones a compiled model with its loss found by name, and a Lambda layer only
    outside safe mode: timing lanes failed on both, and such a study trained one at a time."""
    def own_loss(y_true, y_pred):  # a study file's function, not registered with Keras
        return keras.losses.categorical_crossentropy(y_true, y_pred)

    def with_lambda():
        return keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda t: t * 2.0),
                                 keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")])

    train, val = blobs(rows=40 * BATCH)
    trainer = epoch_loop.Trainer(train, val, loss=own_loss, metrics=METRICS, batch_size=BATCH, keep=2)
    model = seeded(with_lambda, 0, train[0])
    optimizer = make_optimizer(CONFIGS["adam"], STEPS, 2)
    model.compile(optimizer=optimizer, loss=own_loss, metrics=METRICS)
    choice = lanes.choose(trainer, model, optimizer, loss=own_loss, metrics=METRICS, cap=2)
    assert re.match(r"an epoch of 2 lanes took|lanes were measured not to pay|a step takes", choice.said), choice.said
    assert model.compiled


def test_auto_lanes_leave_any_model_with_a_convolution_alone_untimed_and_name_its_layer():
    """`--lanes auto` neither traces nor times lanes for a convolution, nested or not: they
    would run it one lane after another (a CNN's trials took longer in lanes than alone)."""
    signals = np.random.default_rng(0).normal(size=(ROWS, 12, 2)).astype("float32")
    labels = np.eye(3, dtype="float32")[np.arange(ROWS) % 3]
    inner = keras.Sequential([keras.Input((12, 2)), keras.layers.SeparableConv1D(4, 3), keras.layers.Flatten()])
    inputs = keras.Input((12, 2))
    models = {"Conv1D": keras.Sequential([keras.Input((12, 2)), keras.layers.Conv1D(4, 3), keras.layers.Flatten(),
                                          keras.layers.Dense(3, activation="softmax")]),
              "SeparableConv1D": keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inner(inputs))),
              None: keras.Sequential([keras.Input((12, 2)), keras.layers.Flatten(),
                                      keras.layers.Dense(3, activation="softmax")])}
    for layer, model in models.items():
        model.compile(optimizer=make_optimizer(CONFIGS["adam"], STEPS, 2), loss=LOSS, metrics=METRICS)
        why = lanes.why_alone(model, (signals, labels), (signals, labels))
        assert why == (None if layer is None else f"its {layer} layer has no vectorised form with each lane's own "
                                                  f"filters, so that lanes would run it one lane after another")


def test_explicit_lanes_on_a_convolution_run_it_lane_by_lane_and_say_nothing(capfd):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2 * ROWS, 8, 8, 3)).astype("float32")
    labels = np.eye(3, dtype="float32")[rng.integers(0, 3, 2 * ROWS)]
    train, val = (images[:ROWS], labels[:ROWS]), (images[ROWS:], labels[ROWS:])
    trainer = lanes.Lanes(train, val, loss=LOSS, metrics=METRICS, batch_size=BATCH, lanes=4,
                          alone=epoch_loop.Trainer(train, val, loss=LOSS, metrics=METRICS, batch_size=BATCH, keep=1))
    assert trainer.why_not(seeded(small_cnn_8, 0, images), make_optimizer(CONFIGS["adam"], STEPS, 2)) is None
    assert trainer.lane_by_lane(seeded(small_cnn_8, 0, images)) == "Conv2D"
    printed = capfd.readouterr()
    assert "tensorflow" not in printed.err.lower() + printed.out.lower()


def small_cnn_8():
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])


GALLERY = Path(__file__).resolve().parent.parent / "gallery"


@pytest.mark.parametrize("name", ["own_metric", "own_loss", "multi_output"])
def test_a_lane_records_what_keras_evaluate_reports_at_the_study_batch_size(name):
    """A metric function, a loss function, per-output losses: a lane's last val_* values are
    `model.evaluate(..., batch_size=<the study's>)` on the lane's weights."""
    study = load_study(GALLERY / f"{name}.py")
    runner = TrialRunner(study, epochs=2)
    trial, config = optuna.trial.FixedTrial({"units": 8, "depth": 1}), LRConfig("adam", 0.01)
    assert runner.use_lanes(2, *runner.seeded_model(trial, config, seed=0, fresh_names=False)) is None
    model, optimizer = runner.seeded_model(trial, config, seed=1, fresh_names=False)
    history = runner.trainer.fit(model, optimizer, epochs=2, seed=1)
    (engine,) = runner.trainer._groups.values()
    trained = runner.build(trial, config)
    for variable, value in zip(trained.trainable_variables, engine.group.lane_weights(0)):
        variable.assign(value)
    x, y, *weights = runner.val
    expected = trained.evaluate(x, y, sample_weight=weights[0] if weights else None,
                                batch_size=study.settings.batch_size, return_dict=True, verbose=0)
    assert study.settings.objective.removeprefix("val_") in expected
    for key, value in expected.items():
        assert history.history[f"val_{key}"][-1] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_lanes_are_timed_only_where_the_work_left_can_pay_for_tracing_them():
    """A worker's first trial of 100 steps took 1 s, 0.9 s of it tracing (a step: 1 ms): timing
    lanes, which traces them, pays only for work left of at least TIMING_PAYBACK such traces."""
    from lrsearch.training._lanes import TIMING_PAYBACK, WorkLeft

    small = WorkLeft(steps=1000, first_trial_s=1.0, first_trial_steps=100)
    assert small.why_not_time(0.001) == ("the trials left to this worker take about 1 s alone, too little to pay "
                                         "for tracing and timing lanes (its first trial spent about 0.9 s tracing "
                                         "its step)")
    enough = int(TIMING_PAYBACK * 0.9 / 0.001) + 1
    assert WorkLeft(steps=enough, first_trial_s=1.0, first_trial_steps=100).why_not_time(0.001) is None
    assert WorkLeft(steps=10, first_trial_s=0.05, first_trial_steps=100).why_not_time(0.001) is None  # no trace
