"""A tiny blobs study for the tests: 200 rows, 5 epochs."""

import lrsearch

settings = lrsearch.Settings(loss="categorical_crossentropy", metrics=["accuracy"], objective="val_accuracy",
                             epochs=5, batch_size=32, n_trials=4, seed=3)


def data():
    import numpy as np
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=200, centers=3, n_features=2, cluster_std=2, random_state=2)
    onehot = np.eye(3, dtype="float32")[y]
    return (x[:100], onehot[:100]), (x[100:], onehot[100:])


def build_model(trial):
    import keras

    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])
