"""Gallery: a regression on scikit-learn's diabetes data (standardised), minimising MAE."""

import lrsearch

settings = lrsearch.Settings(loss="mse", metrics=["mae"], objective="val_mae", epochs=6, batch_size=32,
                             n_trials=4, seed=2)
space = lrsearch.Space(lr=(1e-3, 0.1), peak_lr=(1e-3, 0.1))


def data():
    import numpy as np
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    x = (x - x[:340].mean(axis=0)) / x[:340].std(axis=0)
    y = (y - y[:340].mean()) / y[:340].std()
    return (x[:340], y[:340]), (x[340:], y[340:])


def build_model(trial):
    import keras

    return keras.Sequential([keras.Input((10,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
