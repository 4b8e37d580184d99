"""The seed's blobs problem: 3 Gaussian blobs, a 50-unit MLP, SGD-era learning-rate dynamics."""

import lrsearch

settings = lrsearch.Settings(
    loss="categorical_crossentropy",
    metrics=["accuracy"],
    objective="val_accuracy",
    direction="maximize",
    epochs=200,
    batch_size=32,
    n_trials=60,
    seed=1,
)


def data():
    """make_blobs(1000, 3 centres, 2 features, std 2, random_state 2): first half trains, second validates."""
    import numpy as np
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2)
    onehot = np.eye(3, dtype="float32")[y]
    x = x.astype("float32")
    return (x[:500], onehot[:500]), (x[500:], onehot[500:])


def build_model(trial):
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(2,)),
            keras.layers.Dense(50, activation="relu", kernel_initializer="he_uniform"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
