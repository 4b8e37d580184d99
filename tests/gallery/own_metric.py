"""Gallery: a binary classifier scored by a metric function of its own, an F1 over each batch."""

import keras

import lrsearch


def soft_f1(y_true, y_pred):
    """F1 of the batch from probabilities: one number a batch, which Keras averages over batches."""
    y_true = keras.ops.reshape(keras.ops.cast(y_true, "float32"), (-1,))
    y_pred = keras.ops.reshape(y_pred, (-1,))
    true_positives = keras.ops.sum(y_true * y_pred)
    return 2 * true_positives / (keras.ops.sum(y_true) + keras.ops.sum(y_pred) + 1e-7)


settings = lrsearch.Settings(loss="binary_crossentropy", metrics=[soft_f1], objective="val_soft_f1",
                             direction="maximize", epochs=4, batch_size=32, n_trials=4, seed=5)
space = lrsearch.Space(lr=(1e-3, 0.1), peak_lr=(1e-3, 0.1))


def data():
    import numpy as np

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.8 * rng.normal(size=300) > 0.6).astype("float32")
    return (x[:200], y[:200]), (x[200:], y[200:])


def build_model(trial):
    units = trial.suggest_int("units", 4, 16)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")])
