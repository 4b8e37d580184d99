"""Gallery: an architecture that varies per trial (units, dropout), with BatchNormalization and Dropout."""

import lrsearch

settings = lrsearch.Settings(loss="sparse_categorical_crossentropy", metrics=["accuracy"], objective="val_loss",
                             epochs=5, batch_size=32, n_trials=4, seed=7)
space = lrsearch.Space(lr=(1e-3, 0.1), peak_lr=(1e-3, 0.1))


def data():
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=400, n_features=8, n_informative=5, n_classes=3, random_state=7)
    x, y = x.astype("float32"), y.astype("int32")
    return (x[:300], y[:300]), (x[300:], y[300:])


def build_model(trial):
    import keras

    units = trial.suggest_int("units", 8, 32)
    dropout = trial.suggest_float("dropout", 0.0, 0.3)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(units), keras.layers.BatchNormalization(),
                             keras.layers.Activation("relu"), keras.layers.Dropout(dropout),
                             keras.layers.Dense(3, activation="softmax")])
