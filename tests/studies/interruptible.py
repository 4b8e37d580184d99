"""The tiny study, whose trials can wait at a gate once they trained an epoch: with
LRSEARCH_TEST_EPOCH_GATE=FOLDER each trial of the study writes its process id to
FOLDER/started-N (N: the trial number) at the end of its second epoch, before the pruning
callback reports it, and waits until FOLDER/go exists; so a test interrupts trials that
reported one epoch."""

import os
import runpy
import time
from pathlib import Path

_tiny = runpy.run_path(str(Path(__file__).with_name("tiny.py")))
settings, data, build_model = _tiny["settings"], _tiny["data"], _tiny["build_model"]


def callbacks(trial):
    import keras

    gate = os.environ.get("LRSEARCH_TEST_EPOCH_GATE")
    if not gate or "worker" not in trial.user_attrs:  # no gate, or the start-up check's probe
        return []

    class Gate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                Path(gate, f".partial-{trial.number}").write_text(str(os.getpid()))
                Path(gate, f".partial-{trial.number}").rename(Path(gate, f"started-{trial.number}"))
                while not Path(gate, "go").exists():
                    time.sleep(0.05)

    return [Gate()]
