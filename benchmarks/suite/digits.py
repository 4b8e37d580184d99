"""The digits CNN: scikit-learn's 8x8 handwritten digits, two convolutions, 10 classes.

Model: Conv2D(16) + MaxPooling + Conv2D(32) + Dense(64) + softmax, as `studies/digits.py`.
Data: load_digits (1797 images, pixels scaled to [0, 1]), a stratified 75/25 split.
TARGET: val_accuracy >= 0.975 at 30 epochs.
"""

import lrsearch

TARGET = 0.975

settings = lrsearch.Settings(
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
    objective="val_accuracy",
    direction="maximize",
    epochs=30,
    batch_size=32,
    n_trials=30,
    seed=1,
)


def data():
    """load_digits, pixels scaled to [0, 1]: a stratified 75/25 split, seed 0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    return (x_train, y_train), (x_val, y_val)


def build_model(trial):
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
