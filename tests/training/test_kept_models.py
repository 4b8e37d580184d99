"""lrsearch.training._kept_models on real Keras models: which models may be kept, what their signature
tells apart, and loading a fresh trial into a kept model and optimizer."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lrsearch import internals
from lrsearch.training import _kept_models as kept_models


def mlp(width: int = 4) -> keras.Model:
    """A fresh model, its layer names counted afresh, as a worker builds each trial's."""
    keras.backend.clear_session(free_memory=False)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(1)])


def decay(rate: float = 0.01, staircase: bool = False):
    return keras.optimizers.schedules.InverseTimeDecay(0.1, decay_steps=1, decay_rate=rate, staircase=staircase)


def test_a_knob_reads_and_compares_as_its_value():
    knob = kept_models.Knob(0.5)
    assert float(knob) == 0.5 and knob == 0.5 and knob < 0.9 and knob != 0 and knob == kept_models.Knob(0.5)
    knob.assign(0.0)
    assert knob == 0 and float(keras.ops.convert_to_numpy(knob.variable)) == 0.0


def test_plain_sequential_and_functional_models_are_reusable_subclasses_not():
    inputs = keras.Input((2,))
    assert kept_models.reusable(mlp()) and kept_models.reusable(keras.Model(inputs, keras.layers.Dense(1)(inputs)))

    class Mine(keras.Sequential):
        pass

    assert not kept_models.reusable(Mine([keras.Input((2,)), keras.layers.Dense(1)]))


def test_the_signature_ignores_what_a_trial_varies():
    base = kept_models.signature(mlp(), keras.optimizers.SGD(learning_rate=0.1, momentum=0.9))
    assert base == kept_models.signature(mlp(), keras.optimizers.SGD(learning_rate=0.003, momentum=0.5))
    with_decay = kept_models.signature(mlp(), keras.optimizers.SGD(learning_rate=decay(0.01)))
    assert with_decay == kept_models.signature(mlp(), keras.optimizers.SGD(learning_rate=decay(0.5)))


@pytest.mark.parametrize("other", [
    lambda: (mlp(8), keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)),  # another architecture
    lambda: (mlp(), keras.optimizers.SGD(learning_rate=0.1)),  # no momentum: other optimizer variables
    lambda: (mlp(), keras.optimizers.Adam(learning_rate=0.1)),
    lambda: (mlp(), keras.optimizers.SGD(learning_rate=decay(staircase=True), momentum=0.9)),
])
def test_the_signature_tells_apart_what_changes_the_compiled_step(other):
    assert kept_models.signature(*other()) != kept_models.signature(mlp(), keras.optimizers.SGD(learning_rate=0.1, momentum=0.9))


def test_a_kept_model_loads_a_fresh_trial():
    kept, optimizer = mlp(), keras.optimizers.SGD(learning_rate=decay(0.01), momentum=0.9)
    kept_models.make_tunable(optimizer)
    assert isinstance(optimizer.momentum, kept_models.Knob)
    kept.compile(optimizer=optimizer, loss="mse")
    x, y = np.ones((8, 2), np.float32), np.ones((8, 1), np.float32)
    kept.fit(x, y, epochs=2, verbose=0)
    assert int(optimizer.iterations.numpy()) == 2

    fresh, fresh_optimizer = mlp(), keras.optimizers.SGD(learning_rate=decay(0.25), momentum=0.3)
    kept_models.load(kept, optimizer, fresh, fresh_optimizer)
    assert all(np.array_equal(a, b) for a, b in zip(kept.get_weights(), fresh.get_weights()))
    assert int(optimizer.iterations.numpy()) == 0
    schedule = internals.schedule_of(optimizer)
    assert optimizer.momentum == 0.3 and isinstance(schedule.decay_rate, kept_models.Knob) and schedule.decay_rate == 0.25


def test_loading_variables_of_another_shape_is_refused():
    with pytest.raises(ValueError, match="cannot load 2 variables into 4"):
        kept_models._assign(mlp().variables, mlp().variables[:2])
