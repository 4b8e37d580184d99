"""The tiny study, steered by the tests through environment variables.

- LRSEARCH_TEST_GATE=FOLDER: each trial writes its process id to FOLDER/started-N (N: the
  trial number) and waits until FOLDER/go exists, so that a test acts while trials surely run;
- LRSEARCH_TEST_FAIL: build_model raises for these trial numbers ("1,3"), for every trial
  ("all"), or already in the workers' start-up check ("start").
"""

import os
import time
from pathlib import Path

import lrsearch

settings = lrsearch.Settings(loss="categorical_crossentropy", metrics=["accuracy"], objective="val_accuracy",
                             epochs=5, batch_size=32, n_trials=4, seed=3)


def data():
    import numpy as np
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=200, centers=3, n_features=2, cluster_std=2, random_state=2)
    onehot = np.eye(3, dtype="float32")[y]
    return (x[:100], onehot[:100]), (x[100:], onehot[100:])


def build_model(trial):
    import keras

    real = "worker" in trial.user_attrs  # a trial of the study, not the start-up check's probe
    fail = os.environ.get("LRSEARCH_TEST_FAIL", "")
    if fail == "start" or (real and (fail == "all" or str(trial.number) in fail.split(","))):
        raise ValueError(f"scripted failure of trial {trial.number}")
    gate = os.environ.get("LRSEARCH_TEST_GATE")
    if gate and real:
        partial = Path(gate, f".partial-{trial.number}")
        partial.write_text(str(os.getpid()))
        partial.rename(Path(gate, f"started-{trial.number}"))
        while not Path(gate, "go").exists():
            time.sleep(0.05)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])
