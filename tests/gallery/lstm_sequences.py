"""Gallery: an LSTM classifying short synthetic sequences by the sign of their sum."""

import lrsearch

settings = lrsearch.Settings(loss="binary_crossentropy", metrics=["accuracy"], objective="val_accuracy",
                             epochs=5, batch_size=32, n_trials=4, seed=4)
space = lrsearch.Space(lr=(1e-3, 0.1), peak_lr=(1e-3, 0.1))


def data():
    import numpy as np

    x = np.random.default_rng(0).normal(size=(400, 8, 1)).astype("float32")
    y = (x.sum(axis=(1, 2)) > 0).astype("float32")
    return (x[:300], y[:300]), (x[300:], y[300:])


def build_model(trial):
    import keras

    return keras.Sequential([keras.Input((8, 1)), keras.layers.LSTM(8), keras.layers.Dense(1, activation="sigmoid")])
