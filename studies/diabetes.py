"""scikit-learn's diabetes regression: an MLP on standardised inputs and target, val_loss (MSE) minimised."""

import lrsearch

settings = lrsearch.Settings(
    loss="mse",
    metrics=["mae"],
    objective="val_loss",
    direction="minimize",
    epochs=60,
    batch_size=32,
    n_trials=30,
    seed=1,
)


def data():
    """load_diabetes (442 patients, 10 features): a 75/25 split, seed 0; inputs and target
    standardised with the training rows' mean and deviation, so val_loss is in target variances."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_diabetes(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y.reshape(-1, 1), test_size=0.25, random_state=0)
    x_scaler = StandardScaler().fit(x_train)
    y_scaler = StandardScaler().fit(y_train)
    return (
        (x_scaler.transform(x_train).astype("float32"), y_scaler.transform(y_train).astype("float32")),
        (x_scaler.transform(x_val).astype("float32"), y_scaler.transform(y_val).astype("float32")),
    )


def build_model(trial):
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(10,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
