"""Gallery: a model with two named outputs (y and metrics as dicts) and sample weights on the training split."""

import lrsearch

settings = lrsearch.Settings(loss={"value": "mse", "flag": "binary_crossentropy"},
                             metrics={"value": ["mae"], "flag": ["accuracy"]}, objective="val_value_mae",
                             epochs=6, batch_size=32, n_trials=4, seed=8)
space = lrsearch.Space(lr=(1e-3, 0.1), peak_lr=(1e-3, 0.1))


def data():
    import numpy as np

    rng = np.random.default_rng(8)
    x = rng.normal(size=(400, 6)).astype("float32")
    value = (x[:, 0] - 0.5 * x[:, 1] + 0.1 * rng.normal(size=400)).astype("float32")
    flag = (x[:, 2] > 0).astype("float32")
    weights = np.where(flag > 0, 2.0, 1.0).astype("float32")
    train = (x[:300], {"value": value[:300], "flag": flag[:300]}, weights[:300])
    return train, (x[300:], {"value": value[300:], "flag": flag[300:]})


def build_model(trial):
    import keras

    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, {"value": keras.layers.Dense(1, name="value")(hidden),
                                "flag": keras.layers.Dense(1, activation="sigmoid", name="flag")(hidden)})
