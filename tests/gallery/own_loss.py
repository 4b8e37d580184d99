"""Gallery: a binary classifier trained on a loss function of its own (cross-entropy balanced
by each batch's classes), with a metric function of its own."""

import keras

import lrsearch


def weighted_bce(y_true, y_pred):
    """Binary cross-entropy with the positives weighted by the batch's negatives per positive."""
    y_true = keras.ops.reshape(keras.ops.cast(y_true, "float32"), (-1,))
    y_pred = keras.ops.clip(keras.ops.reshape(y_pred, (-1,)), 1e-7, 1 - 1e-7)
    positives = keras.ops.sum(y_true)
    weight = (keras.ops.cast(keras.ops.shape(y_true)[0], "float32") - positives) / (positives + 1.0)
    return -(weight * y_true * keras.ops.log(y_pred) + (1 - y_true) * keras.ops.log(1 - y_pred))


def margin(y_true, y_pred):
    """How far each row's probability lies on the right side of 0.5."""
    y_true = keras.ops.reshape(keras.ops.cast(y_true, "float32"), (-1,))
    return (2 * y_true - 1) * (keras.ops.reshape(y_pred, (-1,)) - 0.5)


settings = lrsearch.Settings(loss=weighted_bce, metrics=["accuracy", margin], objective="val_loss",
                             epochs=4, batch_size=32, n_trials=4, seed=6)
space = lrsearch.Space(lr=(1e-3, 0.1), peak_lr=(1e-3, 0.1))


def data():
    import numpy as np

    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 4)).astype("float32")
    y = (x[:, 0] - x[:, 2] + 0.8 * rng.normal(size=300) > 1.0).astype("float32")
    return (x[:200], y[:200]), (x[200:], y[200:])


def build_model(trial):
    depth = trial.suggest_int("depth", 1, 2)
    hidden = [keras.layers.Dense(8, activation="relu") for _ in range(depth)]
    return keras.Sequential([keras.Input((4,)), *hidden, keras.layers.Dense(1, activation="sigmoid")])
