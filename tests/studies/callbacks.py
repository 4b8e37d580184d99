"""The tiny study with callbacks of its own: one writes each hook it gets to the file named
by LRSEARCH_TEST_CALLBACK_LOG, one stops training after epoch 2 (0-based), so that a trial
that is not pruned has 3 epochs of history."""

import os
import runpy
from pathlib import Path

import lrsearch

_tiny = runpy.run_path(str(Path(__file__).with_name("tiny.py")))
settings, data, build_model = _tiny["settings"], _tiny["data"], _tiny["build_model"]
space = lrsearch.Space(lr=(1e-2, 0.3), peak_lr=(1e-2, 0.3))


def callbacks(trial):
    import keras
    import optuna

    who = f"{'retrain' if isinstance(trial, optuna.trial.FixedTrial) else 'trial'} {trial.number}"

    class Log(keras.callbacks.Callback):
        def write(self, line):
            with open(os.environ["LRSEARCH_TEST_CALLBACK_LOG"], "a") as log:
                log.write(f"{who} {line}\n")

        def on_train_begin(self, logs=None):
            self.write("train_begin")

        def on_epoch_end(self, epoch, logs=None):
            self.write(f"epoch_end {epoch} lr={logs['lr']:.3g} val_accuracy={logs['val_accuracy']:.3f}")

        def on_train_end(self, logs=None):
            self.write("train_end")

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.model.stop_training = True

    return [Log(), Stop()]
