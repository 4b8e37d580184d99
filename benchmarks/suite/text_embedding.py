"""A text classifier with an Embedding: token sequences whose class is told by which
keywords occur among distractors and filler.

Model: Embedding(1000, 32) + GlobalAveragePooling1D + Dense(32) + softmax. Data: 6000
sequences of 60 token ids made by numpy (seed 0): each of 4 classes owns 25 keywords;
a sequence holds 3 keywords of its class, 2 of another class and filler drawn from the
other 900 tokens, shuffled; 4500 train, 1500 validate.
TARGET: val_accuracy >= 0.95 at 20 epochs.
"""

import lrsearch

TARGET = 0.95

settings = lrsearch.Settings(
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
    objective="val_accuracy",
    direction="maximize",
    epochs=20,
    batch_size=64,
    n_trials=30,
    seed=1,
)

VOCABULARY, LENGTH, CLASSES, KEYWORDS, OWN, DISTRACTORS = 1000, 60, 4, 25, 3, 2
ROWS, TRAIN_ROWS = 6000, 4500


def data():
    """The token sequences and their classes, the first 4500 to train, the rest to validate."""
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, ROWS)
    other = (labels + rng.integers(1, CLASSES, ROWS)) % CLASSES
    own = labels[:, None] * KEYWORDS + rng.integers(0, KEYWORDS, (ROWS, OWN))
    distractors = other[:, None] * KEYWORDS + rng.integers(0, KEYWORDS, (ROWS, DISTRACTORS))
    filler = rng.integers(CLASSES * KEYWORDS, VOCABULARY, (ROWS, LENGTH - OWN - DISTRACTORS))
    tokens = rng.permuted(np.concatenate([own, distractors, filler], axis=1), axis=1)
    tokens, labels = tokens.astype("int32"), labels.astype("int32")
    return (tokens[:TRAIN_ROWS], labels[:TRAIN_ROWS]), (tokens[TRAIN_ROWS:], labels[TRAIN_ROWS:])


def build_model(trial):
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(LENGTH,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, 32),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
