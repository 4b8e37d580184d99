"""lrsearch.training._kept_models on real Keras models: which models may be kept, what their signature
tells apart, the TableOptimizer against Keras' own optimizers, and loading a fresh trial into a kept model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from lrsearch.lr import LearningRateMonitor, LRConfig, make_optimizer
from lrsearch.training import _kept_models as kept_models
from lrsearch.training._lane_optimizer import hyperparameters


def mlp(width: int = 4) -> keras.Model:
    """A fresh model, its layer names counted afresh, as a worker builds each trial's."""
    keras.backend.clear_session(free_memory=False)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(1)])


def test_plain_sequential_and_functional_models_are_reusable_subclasses_not():
    inputs = keras.Input((2,))
    assert kept_models.reusable(mlp()) and kept_models.reusable(keras.Model(inputs, keras.layers.Dense(1)(inputs)))

    class Mine(keras.Sequential):
        pass

    assert not kept_models.reusable(Mine([keras.Input((2,)), keras.layers.Dense(1)]))


def test_the_signature_is_the_architecture_whatever_the_optimizer():
    assert kept_models.signature(mlp()) == kept_models.signature(mlp())
    assert kept_models.signature(mlp(8)) != kept_models.signature(mlp())
    doubled = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, dtype="float64")])
    assert kept_models.signature(doubled) is None, "float64 weights would step in float32"


MIXED_PRECISION = '''
import lrsearch

settings = lrsearch.Settings(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                             objective="val_accuracy", epochs=2, batch_size=16, seed=1)


def data():
    import numpy as np

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    return (x[:48], y[:48]), (x[48:], y[48:])


def build_model(trial):
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2),
                             keras.layers.Activation("softmax", dtype="float32")])
'''


def test_a_mixed_precision_model_trains_trial_after_trial_with_keras_loss_scaling(tmp_path):
    """Keras wraps a mixed_float16 model's optimizer in a LossScaleOptimizer as it compiles:
    such a model is not kept, and each trial trains as a fresh runner trains it."""
    from lrsearch.study import load_study
    from lrsearch.training import TrialRunner

    path = tmp_path / "mixed.py"
    path.write_text(MIXED_PRECISION)
    adam, sgd = LRConfig(optimizer="adam", lr=1e-2), LRConfig(optimizer="sgd", lr=0.05, momentum=0.9)
    try:
        runner = TrialRunner(load_study(path))
        first, second = runner.retrain(adam, {}, 3), runner.retrain(sgd, {}, 3)
        assert first is not None and second is not None
        assert second == TrialRunner(load_study(path)).retrain(sgd, {}, 3)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_policy_set_as_the_study_file_loads_builds_its_models_in_every_thread_and_leaves_the_caller_s_alone(
        tmp_path):
    """Keras keeps its dtype policy per thread and clear_session resets it: a study file that
    sets mixed_float16 as it is imported still builds mixed models after the preflight's
    clear_session and in a lane's thread, while the loading session keeps float32."""
    import threading

    import optuna

    from lrsearch.study import load_study
    from lrsearch.training import TrialRunner, preflight

    path = tmp_path / "mixed_at_import.py"
    path.write_text(MIXED_PRECISION.replace("import lrsearch\n", "import keras\nimport lrsearch\n\n"
                                            "keras.mixed_precision.set_global_policy('mixed_float16')\n", 1)
                    .replace('    keras.mixed_precision.set_global_policy("mixed_float16")\n', ""))
    study = load_study(path)
    assert study.dtype_policy == "mixed_float16" and keras.mixed_precision.global_policy().name == "float32"
    runner = TrialRunner(study)
    preflight(runner, 1, 1)  # clears the session
    config = LRConfig(optimizer="adam", lr=1e-3)
    policies = [runner.new_model(optuna.trial.FixedTrial({}), config)[0].dtype_policy.name]
    thread = threading.Thread(target=lambda: policies.append(
        runner.new_model(optuna.trial.FixedTrial({}), config)[0].dtype_policy.name))
    thread.start()
    thread.join()
    assert policies == ["mixed_float16", "mixed_float16"]
    assert keras.mixed_precision.global_policy().name == "float32"
    assert runner.retrain(config, {}, 3) is not None  # trains with Keras' loss scaling
    assert keras.mixed_precision.global_policy().name == "float32"


def embedded() -> keras.Model:
    """A model whose Embedding's gradients come as IndexedSlices."""
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(5)
    return keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(20, 4),
                             keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])


#: Every optimizer and schedule a trial can have, each with numbers off Keras' defaults.
CONFIGS = {
    "sgd": LRConfig(optimizer="sgd", lr=0.05),
    "sgd-nesterov": LRConfig(optimizer="sgd", lr=0.05, momentum=0.8, nesterov=True),
    "rmsprop": LRConfig(optimizer="rmsprop", lr=3e-3),
    "adagrad": LRConfig(optimizer="adagrad", lr=0.1),
    "adam-time-decay": LRConfig(optimizer="adam", lr=0.01, schedule="time_decay", decay=0.05),
    "sgd-one-cycle": LRConfig(optimizer="sgd", lr=0.2, momentum=0.9, schedule="one_cycle", div=10.0),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_table_optimizer_steps_as_keras_own_optimizer(name):
    """Keras' fit with the trial's own optimizer, and with a TableOptimizer of its numbers
    loaded after another kind trained: the same weights and learning rates, step by step."""
    rows = np.random.default_rng(0).integers(0, 20, (16, 3)).astype("int32")
    target = np.random.default_rng(1).normal(size=(16, 1)).astype("float32")
    runs = []
    for table in (False, True):
        model, optimizer = embedded(), make_optimizer(CONFIGS[name], steps_per_epoch=4, epochs=3)
        if table:
            optimizer = kept_models.TableOptimizer(hyperparameters(make_optimizer(LRConfig("adagrad", 0.5), 4, 3)))
            model.compile(optimizer=optimizer, loss="mse")
            model.fit(rows, target, batch_size=4, epochs=1, verbose=0, shuffle=False)  # another trial before
            kept_models.load(model, embedded(), hyperparameters(make_optimizer(CONFIGS[name], 4, 3)))
        else:
            model.compile(optimizer=optimizer, loss="mse")
        monitor = LearningRateMonitor()
        model.fit(rows, target, batch_size=4, epochs=3, verbose=0, shuffle=False, callbacks=[monitor])
        runs.append((model.get_weights(), monitor.lrs, int(model.optimizer.iterations.numpy())))
    (keras_weights, keras_lrs, keras_steps), (weights, lrs, steps) = runs
    assert steps == keras_steps == 12
    np.testing.assert_allclose(lrs, keras_lrs, rtol=1e-5, atol=1e-8)  # float32 rounding near 0
    for expected, got in zip(keras_weights, weights):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_setting_the_learning_rate_sets_the_base_rate_as_reduce_lr_on_plateau_does():
    optimizer = kept_models.TableOptimizer(hyperparameters(keras.optimizers.SGD(learning_rate=0.1)))
    optimizer.learning_rate = 0.025
    assert float(optimizer.learning_rate) == pytest.approx(0.025)
    model = mlp()
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((8, 2), np.float32), np.ones((8, 1), np.float32), epochs=1, verbose=0)
    assert float(optimizer.learning_rate) == pytest.approx(0.025)


def test_a_kept_model_loads_a_fresh_trial():
    kept, optimizer = mlp(), kept_models.TableOptimizer(hyperparameters(keras.optimizers.Adam(learning_rate=0.1)))
    kept.compile(optimizer=optimizer, loss="mse")
    x, y = np.ones((8, 2), np.float32), np.ones((8, 1), np.float32)
    kept.fit(x, y, epochs=2, verbose=0)
    assert int(optimizer.iterations.numpy()) == 2

    fresh = mlp()
    kept_models.load(kept, fresh, hyperparameters(keras.optimizers.Adagrad(learning_rate=0.3)))
    assert all(np.array_equal(a, b) for a, b in zip(kept.get_weights(), fresh.get_weights()))
    assert int(optimizer.iterations.numpy()) == 0 and float(optimizer.learning_rate) == pytest.approx(0.3)
    slots = {variable.name: variable.numpy() for variable in optimizer.variables}
    assert np.all(slots["v"] == 0.1), "Adagrad's accumulators start at 0.1"
    assert np.all(slots["m"] == 0)


def test_loading_variables_of_another_shape_is_refused():
    with pytest.raises(ValueError, match="cannot load 2 variables into 4"):
        kept_models._assign(mlp().variables, mlp().variables[:2])


#: The kinds that must train as Keras' own to the last bit, RMSprop's and Adagrad's x / sqrt(y) among them.
LAST_BIT = {"adam": LRConfig("adam", 1e-3), "sgd-momentum": LRConfig("sgd", 0.05, momentum=0.9),
            "rmsprop": LRConfig("rmsprop", 0.01), "adagrad-decay": LRConfig("adagrad", 0.1, schedule="time_decay",
                                                                          decay=0.01)}


@pytest.mark.slow  # a CNN trained by each optimizer, twice
def test_each_kind_trains_a_batchnorm_cnn_to_the_last_bit_as_keras_own():
    """A BatchNorm CNN turns a last-bit difference in a step into another model within an
    epoch (so does RMSprop at a high rate, after a few), so each kind rounds as Keras' own:
    the same weights, bit for bit. Keras' math, that is: TensorFlow's oneDNN kernels (its
    default on CPUs) round a step otherwise for some tensors on some CPUs (one ulp of SGD's
    momentum on a BatchNorm scale after 5 steps, on one), Keras' optimizer and this one
    alike, so the two train in a process without them (TF_ENABLE_ONEDNN_OPTS=0, read as
    TensorFlow is imported), all kinds in one process."""
    script = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_kept_models as t; " \
             f"print([kind for kind in sorted(t.LAST_BIT) if not t.trains_a_batchnorm_cnn_alike_both_ways(kind)])"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "[]", f"kinds that differ from Keras': {run.stdout[-300:]}"


def trains_a_batchnorm_cnn_alike_both_ways(config: str) -> bool:
    """Train a BatchNorm CNN with Keras' optimizer for `config` and with the TableOptimizer
    of it; whether their weights are the same, bit for bit."""
    config = LAST_BIT[config]
    images = np.random.default_rng(0).normal(size=(64, 8, 8, 1)).astype("float32")
    labels = (images.mean(axis=(1, 2, 3)) > 0).astype("float32")
    weights = []
    for table in (False, True):
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(7)
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, use_bias=False),
                                  keras.layers.BatchNormalization(), keras.layers.ReLU(), keras.layers.MaxPooling2D(),
                                  keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")])
        optimizer = make_optimizer(config, steps_per_epoch=4, epochs=3)
        model.compile(optimizer=kept_models.TableOptimizer(hyperparameters(optimizer)) if table else optimizer,
                      loss="binary_crossentropy")
        model.fit(images, labels, batch_size=16, epochs=3, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    return all(np.array_equal(got, expected) for expected, got in zip(*weights))
