"""Your own table: a CSV read with pandas (shipped: 400 synthetic customers, predict `churned`)."""

# To use your own data, point CSV at your file and TARGET at its 0/1 label column. Text
# columns are one-hot encoded, numeric ones standardised with the training rows' statistics.
# studies/data/example.csv is synthetic (numpy seed 7): churn grows with the monthly charge
# and support calls and falls with tenure and the premium plan; logistic regression gets ~0.70.

from pathlib import Path

import lrsearch

CSV = Path(__file__).parent / "data" / "example.csv"
TARGET = "churned"

settings = lrsearch.Settings(
    loss="binary_crossentropy",
    metrics=["accuracy"],
    objective="val_accuracy",
    direction="maximize",
    epochs=60,
    batch_size=32,
    n_trials=30,
    seed=1,
)


def data():
    """The CSV's rows, split 75/25 stratified on TARGET (seed 0), as float32 arrays."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    table = pd.read_csv(CSV)
    if TARGET not in table.columns:
        raise ValueError(f"{CSV} has no column {TARGET!r}; its columns are {list(table.columns)}.")
    y = table.pop(TARGET).to_numpy("float32").reshape(-1, 1)
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
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
