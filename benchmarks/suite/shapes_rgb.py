"""An RGB image CNN with batch normalisation: six kinds of coloured shape and texture on
24x24x3 noisy images.

Model: two blocks of Conv2D + BatchNormalization + ReLU + MaxPooling, Dropout, Dense(64),
Dropout, softmax. Data: 2400 images made by numpy (seed 0): a disc, a square, a ring, a
cross, a horizontally or a vertically striped box, each at a random place and size, in a
random colour on a random background, with Gaussian noise; 1800 train, 600 validate.
TARGET: val_accuracy >= 0.95 at 12 epochs.
"""

import lrsearch

TARGET = 0.95

settings = lrsearch.Settings(
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
    objective="val_accuracy",
    direction="maximize",
    epochs=12,
    batch_size=64,
    n_trials=30,
    seed=1,
)

SIZE, CLASSES, ROWS, TRAIN_ROWS = 24, 6, 2400, 1800


def data():
    """The images and their classes (0-5), the first 1800 to train, the rest to validate."""
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, ROWS)
    cx, cy = (rng.uniform(8, SIZE - 8, ROWS)[:, None, None] for _ in range(2))
    radius = rng.uniform(5, 8, ROWS)[:, None, None]
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype("float32")
    dx, dy = np.abs(x - cx), np.abs(y - cy)
    distance = np.hypot(dx, dy)
    box = np.maximum(dx, dy) <= radius * 0.85
    masks = np.stack([
        distance <= radius,
        box,
        (distance <= radius) & (distance >= radius * 0.55),
        ((dx <= 1.5) & (dy <= radius)) | ((dy <= 1.5) & (dx <= radius)),
        box & (y.astype(int) // 2 % 2 == 0),
        box & (x.astype(int) // 2 % 2 == 0),
    ])[labels, np.arange(ROWS)]
    background = rng.uniform(0.0, 0.5, (ROWS, 1, 1, 3))
    colour = rng.uniform(0.4, 1.0, (ROWS, 1, 1, 3))
    images = np.where(masks[..., None], colour, background) + rng.normal(0, 0.15, (ROWS, SIZE, SIZE, 3))
    images, labels = images.astype("float32"), labels.astype("int32")
    return (images[:TRAIN_ROWS], labels[:TRAIN_ROWS]), (images[TRAIN_ROWS:], labels[TRAIN_ROWS:])


def build_model(trial):
    import keras

    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(SIZE, SIZE, 3)),
            layers.Conv2D(16, 3, padding="same", use_bias=False),
            layers.BatchNormalization(momentum=0.9),
            layers.ReLU(),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, padding="same", use_bias=False),
            layers.BatchNormalization(momentum=0.9),
            layers.ReLU(),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.25),
            layers.Dense(CLASSES, activation="softmax"),
        ]
    )
