"""Gallery: a subclassed keras.Model (layers in __init__, the forward pass in call())."""

import keras

import lrsearch

settings = lrsearch.Settings(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                             objective="val_accuracy", epochs=5, batch_size=32, n_trials=4, seed=5)
space = lrsearch.Space(lr=(1e-3, 0.1), peak_lr=(1e-3, 0.1))


class MyModel(keras.Model):
    def __init__(self, units=16, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.out = keras.layers.Dense(classes, activation="softmax")

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def data():
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=400, centers=3, n_features=4, cluster_std=2.5, random_state=5)
    x, y = x.astype("float32"), y.astype("int32")
    return (x[:300], y[:300]), (x[300:], y[300:])


def build_model(trial):
    return MyModel()
