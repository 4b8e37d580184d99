"""Stop hopeless trials from inside training: a Keras callback that prunes a trial when
it diverges, when it stalls, or when the study's pruner says so.

The callback only watches and reports; the decisions are small and named:

- *diverged*: the loss is NaN/inf (every batch), or an epoch's loss rose above both the
  first epoch's loss and `divergence_factor` times its best;
- *stalled*: after `stall_window` epochs neither the objective nor the training loss
  improved by `stall_min_delta` (relative) on the first epoch's value, as with LR 1e-7;
- *pruner*: the objective is reported to Optuna each epoch and the study's pruner, if
  its settings name one (`make_pruner`), compares it with the other trials.

Each pruned trial records its reason, epoch and detail (`lrsearch.results._record.write_pruned`).
"""

from __future__ import annotations

import math

import keras
import optuna

from lrsearch.results import BY_PRUNER, DIVERGED, STALLED, write_pruned
from lrsearch.study import PRUNERS
from lrsearch.training._epochs import NONFINITE_KEY


def make_pruner(name: str | None, epochs: int) -> optuna.pruners.BasePruner:
    """The study's relative pruner (`Settings.pruner`): none by default, so that only the
    callback's diverged and stalled stops end a trial early; else Optuna's Hyperband or
    Median pruner over epochs.

    None is the default by `benchmarks/pruners.py` on blobs (20 seeds, each search stopped
    at its first trial at val_accuracy 0.83): Hyperband pruned would-be hits and needed
    more trials than random sampling, and was no sooner to the target (see the README's
    *Performance*). Hyperband pays where epochs are dear and early epochs rank the trials.
    """
    if name is None:
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, epochs // 20), max_resource=epochs,
                                              reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 20))
    raise ValueError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)} or None.")


class Pruned(optuna.TrialPruned):
    """The pruning callback's stop, its reason recorded (`write_pruned`); a plain
    optuna.TrialPruned is the study file's own."""


class PruningCallback(keras.callbacks.Callback):
    """Report `monitor` to `trial` each epoch and raise `optuna.TrialPruned` to stop it."""

    def __init__(
        self,
        trial: optuna.Trial,
        monitor: str,
        direction: str,
        stall_window: int,
        stall_min_delta: float = 0.01,
        divergence_factor: float = 4.0,
    ) -> None:
        super().__init__()
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', but got {direction!r}.")
        if stall_window < 1:
            raise ValueError(f"stall_window must be >= 1, but got {stall_window}.")
        if divergence_factor <= 1:
            raise ValueError(f"divergence_factor must be > 1, but got {divergence_factor}.")
        self.trial = trial
        self.monitor = monitor
        self.sign = 1.0 if direction == "maximize" else -1.0
        self.stall_window = stall_window
        self.stall_min_delta = stall_min_delta
        self.divergence_factor = divergence_factor
        self._first: dict[str, float] = {}
        self._best_loss = math.inf

    def on_train_begin(self, logs=None) -> None:
        self._first = {}
        self._best_loss = math.inf

    def on_train_batch_end(self, batch, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._prune(DIVERGED, None, f"loss became {float(loss)} at batch {batch}")

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        loss = float(logs.get("loss", math.nan))
        if logs.get(NONFINITE_KEY) or not math.isfinite(loss):
            self._prune(DIVERGED, epoch, f"loss became {loss}")
        if self.monitor not in logs:
            raise KeyError(
                f"the objective {self.monitor!r} is not in the training logs; they have {sorted(logs)}."
            )
        value = float(logs[self.monitor])
        self.trial.report(value, epoch)  # first: a trial stopped at this epoch keeps its value, as its history does
        if epoch == 0:
            self._first = {"loss": loss, "objective": value}
        if loss > self._first["loss"] and loss > self.divergence_factor * self._best_loss:
            self._prune(DIVERGED, epoch, f"loss {loss:.4g} rose above {self.divergence_factor:g}x its best "
                                         f"{self._best_loss:.4g}")
        self._best_loss = min(self._best_loss, loss)
        self._best_objective = value if epoch == 0 else self._better(self._best_objective, value)
        if epoch + 1 == self.stall_window and self._stalled(loss):
            self._prune(STALLED, epoch, f"neither {self.monitor} nor loss improved by "
                                        f"{self.stall_min_delta:.0%} in {self.stall_window} epochs")
        if self.trial.should_prune():
            self._prune(BY_PRUNER, epoch, f"{self.monitor}={value:.4g} at epoch {epoch + 1}")

    def _better(self, a: float, b: float) -> float:
        return max(a, b) if self.sign > 0 else min(a, b)

    def _stalled(self, loss: float) -> bool:
        def gain(first: float, best: float, sign: float) -> float:
            return sign * (best - first) / max(abs(first), 1e-12)

        objective_gain = gain(self._first["objective"], self._best_objective, self.sign)
        loss_gain = gain(self._first["loss"], self._best_loss, -1.0)
        return objective_gain < self.stall_min_delta and loss_gain < self.stall_min_delta

    def _prune(self, reason: str, epoch: int | None, detail: str) -> None:
        write_pruned(self.trial, reason, epoch, detail)
        if self.model is not None:
            self.model.stop_training = True
        raise Pruned(f"{reason}: {detail}")
