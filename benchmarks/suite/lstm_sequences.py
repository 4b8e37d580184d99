"""An LSTM classifying noisy sequences by the sign of their trend in each half.

Model: LSTM(32) + softmax. Data: 2000 sequences of 30 steps and 2 features made by numpy
(seed 0): a class (0-3) sets whether the first half drifts up or down and whether the
second half does, under noise several times the drift; 1500 train, 500 validate. The
LSTM must remember the first half while it reads the second.
TARGET: val_accuracy >= 0.92 at 15 epochs.
"""

import lrsearch

TARGET = 0.92

settings = lrsearch.Settings(
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
    objective="val_accuracy",
    direction="maximize",
    epochs=15,
    batch_size=64,
    n_trials=30,
    seed=1,
)

STEPS, FEATURES, ROWS, TRAIN_ROWS = 30, 2, 2000, 1500


def data():
    """The sequences and their classes, the first 1500 to train, the rest to validate."""
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, ROWS)
    first, second = np.where(labels // 2, 1.0, -1.0), np.where(labels % 2, 1.0, -1.0)
    half = STEPS // 2
    drift = np.concatenate([np.repeat(first[:, None], half, 1), np.repeat(second[:, None], STEPS - half, 1)], 1)
    drift *= rng.uniform(0.25, 0.5, (ROWS, 1))
    sequences = drift[..., None] + rng.normal(0, 1.0, (ROWS, STEPS, FEATURES))
    sequences, labels = sequences.astype("float32"), labels.astype("int32")
    return (sequences[:TRAIN_ROWS], labels[:TRAIN_ROWS]), (sequences[TRAIN_ROWS:], labels[TRAIN_ROWS:])


def build_model(trial):
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(STEPS, FEATURES)),
            keras.layers.LSTM(32),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
