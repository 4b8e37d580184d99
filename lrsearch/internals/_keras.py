"""Keras' private API: optimizers, compiled models, names and seeds."""

from __future__ import annotations

import functools
import importlib
from typing import Any

from lrsearch.internals._guard import private_attribute, unsupported


def schedule_of(optimizer) -> Any:
    """The `LearningRateSchedule` a Keras optimizer was made with, None if its rate is a
    number (public `optimizer.learning_rate` gives only the current value)."""
    import keras

    rate = private_attribute(optimizer, "_learning_rate", "keras")
    return rate if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) else None


def clone_layers(model):
    """`keras.models.clone_model(model)`, not compiled. Keras compiles the clone of a compiled
    model from its compile config, which finds a study's own loss or metric only where Keras'
    registry holds it, and rebuilds a Lambda layer only outside its safe mode (no public
    switch but a global one); the caller compiles the clone with the objects at hand, and the
    study's code is the worker's own."""
    import keras

    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError as error:
        raise unsupported("keras", "keras.src.saving.serialization_lib.SafeModeScope") from error
    compiled = private_attribute(model, "compiled", "keras")
    model.compiled = False
    try:
        with SafeModeScope(False):
            return keras.models.clone_model(model)
    finally:
        model.compiled = compiled


def symbolic_build(model, batch) -> None:
    """Build a compiled model's weights, compiled metrics and loss from one `batch`, as
    `model.fit` does before training, without running a step (no public equivalent)."""
    private_attribute(model, "_symbolic_build", "keras")(data_batch=batch)


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
