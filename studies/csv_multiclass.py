"""Your own table, several classes: a CSV read with pandas (shipped: 600 synthetic customers, predict `plan`)."""

# To use your own data, point CSV at your file, TARGET at its class column (names or
# numbers) and CLASSES at how many distinct values it holds. The classes become integer
# labels 0..CLASSES-1 in sorted order, as sparse_categorical_crossentropy takes them (no
# one-hot). Text columns are one-hot encoded, numeric ones standardised with the training
# rows' statistics. studies/data/plans.csv is synthetic (studies/data/make_plans.py, numpy
# seed 11): bigger plans go with more data, devices and tenure, smaller ones with the
# south; calls do not matter. 40% basic, 35% standard, 25% premium; logistic regression
# gets ~0.79.

from pathlib import Path

import lrsearch

CSV = Path(__file__).parent / "data" / "plans.csv"
TARGET = "plan"
CLASSES = 3

settings = lrsearch.Settings(
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
    objective="val_accuracy",
    direction="maximize",
    epochs=60,
    batch_size=32,
    n_trials=30,
    seed=1,
)


def data():
    """The CSV's rows, split 75/25 stratified on TARGET (seed 0): float32 inputs, int32 labels."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    table = pd.read_csv(CSV)
    if TARGET not in table.columns:
        raise ValueError(f"{CSV} has no column {TARGET!r}; its columns are {list(table.columns)}.")
    target = pd.Categorical(table.pop(TARGET))
    if len(target.categories) != CLASSES:
        raise ValueError(f"{CSV}'s {TARGET!r} holds {len(target.categories)} classes "
                         f"({list(target.categories)}), not CLASSES = {CLASSES}.")
    y = target.codes.astype("int32")
    x = pd.get_dummies(table, dtype="float32")
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    mean, std = x_train.mean(), x_train.std().replace(0.0, 1.0)
    return (
        (((x_train - mean) / std).to_numpy("float32"), y_train),
        (((x_val - mean) / std).to_numpy("float32"), y_val),
    )


def build_model(trial):
    import keras

    return keras.Sequential(
        [
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
