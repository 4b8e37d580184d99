"""Gallery: a small CNN on scikit-learn's 8x8 digits, fed by batched tf.data datasets."""

import lrsearch

settings = lrsearch.Settings(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                             objective="val_accuracy", epochs=4, batch_size=32, n_trials=4, seed=3)
space = lrsearch.Space(lr=(1e-3, 0.1), peak_lr=(1e-3, 0.1))


def data():
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[:600] / 16.0).astype("float32")[..., None]
    y = digits.target[:600].astype("int32")
    train = tf.data.Dataset.from_tensor_slices((x[:450], y[:450])).shuffle(450, seed=0).batch(32)
    val = tf.data.Dataset.from_tensor_slices((x[450:], y[450:])).batch(64)
    return train, val


def build_model(trial):
    import keras

    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu", padding="same"),
                             keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                             keras.layers.Dense(10, activation="softmax")])
