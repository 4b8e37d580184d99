"""Gallery: a binary classifier with a sigmoid output, scored by keras.metrics.AUC."""

import keras

import lrsearch

settings = lrsearch.Settings(loss="binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")],
                             objective="val_auc", epochs=5, batch_size=32, n_trials=4, seed=1)
space = lrsearch.Space(lr=(1e-3, 0.1), peak_lr=(1e-3, 0.1))


def data():
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=400, n_features=10, n_informative=5, flip_y=0.05, random_state=0)
    x, y = x.astype("float32"), y.astype("float32")
    return (x[:300], y[:300]), (x[300:], y[300:])


def build_model(trial):
    return keras.Sequential([keras.Input((10,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")])
