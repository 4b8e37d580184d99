"""Gallery: a functional model with two named inputs, fed a dict of arrays {"a": ..., "b": ...}."""

import lrsearch

settings = lrsearch.Settings(loss="binary_crossentropy", metrics=["accuracy"], objective="val_accuracy",
                             epochs=5, batch_size=32, n_trials=4, seed=6)
space = lrsearch.Space(lr=(1e-3, 0.1), peak_lr=(1e-3, 0.1))


def data():
    import numpy as np

    rng = np.random.default_rng(6)
    a = rng.normal(size=(400, 4)).astype("float32")
    b = rng.normal(size=(400, 3)).astype("float32")
    y = (a[:, 0] + a[:, 1] - b[:, 0] > 0).astype("float32")
    return ({"a": a[:300], "b": b[:300]}, y[:300]), ({"a": a[300:], "b": b[300:]}, y[300:])


def build_model(trial):
    import keras

    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    return keras.Model({"a": a, "b": b}, keras.layers.Dense(1, activation="sigmoid")(hidden))
