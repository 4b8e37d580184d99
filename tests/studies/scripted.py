"""The tiny study, steered by the tests through environment variables.

- LRSEARCH_TEST_GATE=FOLDER: each trial writes its process id to FOLDER/started-N (N: the
  trial number) and waits until FOLDER/go exists, so that a test acts while trials surely run;
- LRSEARCH_TEST_FAIL: build_model raises for these trial numbers ("1,3"), for every trial
  ("all"), or already in the workers' start-up check ("start");
- LRSEARCH_TEST_SLOW=SECONDS: each trial takes that much longer, so that a fault surely
  strikes while trials run;
- LRSEARCH_TEST_CONFIRM_GATE=FOLDER: each training of a confirmation (its trial is an Optuna
  FixedTrial) writes its process id to FOLDER/confirm-K-PID (K counts them) and waits for FOLDER/go.
"""

import os
import runpy
import time
from pathlib import Path

import optuna

_tiny = runpy.run_path(str(Path(__file__).with_name("tiny.py")))
settings, data = _tiny["settings"], _tiny["data"]


def build_model(trial):
    real = "worker" in trial.user_attrs  # a trial of the study, not the start-up check's probe
    confirm_gate = os.environ.get("LRSEARCH_TEST_CONFIRM_GATE")
    if confirm_gate and isinstance(trial, optuna.trial.FixedTrial):
        _wait_at_gate(confirm_gate, f"confirm-{len(list(Path(confirm_gate).glob('confirm-*')))}-{os.getpid()}")
    fail = os.environ.get("LRSEARCH_TEST_FAIL", "")
    if fail == "start" or (real and (fail == "all" or str(trial.number) in fail.split(","))):
        raise ValueError(f"scripted failure of trial {trial.number}")
    if real:
        time.sleep(float(os.environ.get("LRSEARCH_TEST_SLOW", 0)))
    gate = os.environ.get("LRSEARCH_TEST_GATE")
    if gate and real:
        _wait_at_gate(gate, f"started-{trial.number}")
    return _tiny["build_model"](trial)


def _wait_at_gate(folder: str, name: str) -> None:
    partial = Path(folder, f".partial-{name}")
    partial.write_text(str(os.getpid()))
    partial.rename(Path(folder, name))
    while not Path(folder, "go").exists():
        time.sleep(0.05)
