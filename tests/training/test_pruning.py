"""The pruning callback's decisions, called directly without training (as
optuna-integration tests its Keras callback)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from lrsearch.results import DIVERGED, STALLED
from lrsearch.study import PRUNERS, Settings
from lrsearch.training import PruningCallback, make_pruner


def make_trial(pruner=None):
    study = optuna.create_study(direction="maximize", pruner=pruner or optuna.pruners.NopPruner())
    return study, study.ask()


def callback(trial, **kwargs):
    return PruningCallback(trial, "val_accuracy", "maximize", stall_window=kwargs.pop("stall_window", 5), **kwargs)


def test_nan_loss_in_a_batch_prunes_as_diverged():
    _, trial = make_trial()
    cb = callback(trial)
    cb.on_train_begin()
    cb.on_train_batch_end(0, {"loss": 0.9})
    with pytest.raises(optuna.TrialPruned):
        cb.on_train_batch_end(1, {"loss": float("nan")})
    assert trial.user_attrs["pruned_reason"] == DIVERGED


def test_exploding_loss_prunes_as_diverged_but_noise_does_not():
    study, trial = make_trial()
    cb = callback(trial)
    cb.on_train_begin()
    for epoch, loss in enumerate([1.0, 0.2, 0.25, 0.18]):  # noise below the first loss: fine
        cb.on_epoch_end(epoch, {"loss": loss, "val_accuracy": 0.5 + epoch / 10})
    with pytest.raises(optuna.TrialPruned):
        cb.on_epoch_end(4, {"loss": 3.0, "val_accuracy": 0.3})
    assert trial.user_attrs["pruned_reason"] == DIVERGED and trial.user_attrs["pruned_epoch"] == 4
    assert study._storage.get_trial(trial._trial_id).intermediate_values[4] == 0.3  # the epoch it stopped at


def test_flat_objective_and_loss_prune_as_stalled_at_the_window():
    study, trial = make_trial()
    cb = callback(trial, stall_window=4)
    cb.on_train_begin()
    for epoch in range(3):
        cb.on_epoch_end(epoch, {"loss": 1.1 - epoch * 1e-4, "val_accuracy": 0.33})
    with pytest.raises(optuna.TrialPruned):
        cb.on_epoch_end(3, {"loss": 1.0997, "val_accuracy": 0.332})
    assert trial.user_attrs["pruned_reason"] == STALLED
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {0: 0.33, 1: 0.33, 2: 0.33, 3: 0.332}


def test_a_learning_trial_is_not_stalled_even_if_accuracy_starts_high():
    _, trial = make_trial()
    cb = callback(trial, stall_window=4)
    cb.on_train_begin()
    for epoch in range(8):
        cb.on_epoch_end(epoch, {"loss": 0.5 * 0.9**epoch, "val_accuracy": 0.82})
    assert "pruned_reason" not in trial.user_attrs


def test_reports_each_epoch_and_the_study_pruner_decides():
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=0.5, n_warmup_steps=2))
    trial = study.ask()
    cb = callback(trial, stall_window=100)
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 1.0, "val_accuracy": 0.4})
    cb.on_epoch_end(1, {"loss": 0.9, "val_accuracy": 0.45})
    with pytest.raises(optuna.TrialPruned):
        cb.on_epoch_end(2, {"loss": 0.8, "val_accuracy": 0.45})
    assert trial.user_attrs["pruned_reason"] == "pruner"
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.intermediate_values == {0: 0.4, 1: 0.45, 2: 0.45}


def test_missing_objective_names_the_logged_keys():
    _, trial = make_trial()
    cb = callback(trial)
    cb.on_train_begin()
    with pytest.raises(KeyError, match="'loss', 'val_acc'"):
        cb.on_epoch_end(0, {"loss": 1.0, "val_acc": 0.5})


@pytest.mark.parametrize("kwargs", [{"stall_window": 0}, {"divergence_factor": 1.0}])
def test_bad_arguments_are_refused(kwargs):
    _, trial = make_trial()
    with pytest.raises(ValueError):
        callback(trial, **kwargs)


def _pruned_at(pruner: optuna.pruners.BasePruner, epochs: int = 30) -> int | None:
    """The epoch at which `pruner` stops a trial at 0.2 behind 20 peers at ~0.8; None if never."""
    # Hyperband picks a trial's bracket from a hash of the study name: fix it, for a fixed bracket layout.
    study = optuna.create_study(study_name="pruned-behind", direction="maximize", pruner=pruner)
    for value in [0.8, 0.82, 0.79, 0.81] * 5:  # enough peers to fill every Hyperband bracket
        t = study.ask()
        for step in range(epochs):
            t.report(value, step)
            if t.should_prune():  # records the rungs that later trials are compared on
                break
        study.tell(t, value)
    bad = study.ask()
    for step in range(epochs):
        bad.report(0.2, step)
        if bad.should_prune():
            return step
    return None


@pytest.mark.parametrize("name", PRUNERS)
def test_a_named_pruner_prunes_a_trial_far_behind_its_peers(name):
    pruned_at = _pruned_at(make_pruner(name, epochs=30))
    assert pruned_at is not None and pruned_at < 29


def test_by_default_no_pruner_ranks_trials():
    assert Settings(loss="mse").pruner is None
    assert _pruned_at(make_pruner(None, epochs=30)) is None


def test_an_unknown_pruner_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="'hyperband', 'median'"):
        Settings(loss="mse", pruner="Hyperband")
    with pytest.raises(ValueError, match="hyperband, median"):
        make_pruner("asha", epochs=30)


RANKED_STUDY = '''
import runpy
import keras
import lrsearch

_tiny = runpy.run_path({tiny!r})
settings = lrsearch.Settings(loss="categorical_crossentropy", metrics=["accuracy"], objective="val_loss",
                             epochs=4, batch_size=32, n_trials=8, seed=3, pruner={pruner!r})
data, build_model = _tiny["data"], _tiny["build_model"]


class Scripted(keras.callbacks.Callback):
    """The objective by trial number: the first five trials good, the others far behind."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.value


def callbacks(trial):
    return [Scripted(1.0 if trial.number < 5 else 100.0)]
'''


@pytest.mark.parametrize("pruner", ["median", None])
def test_the_study_files_pruner_ranks_the_trials_of_a_run(tmp_path, pruner):
    import lrsearch

    tiny = Path(__file__).resolve().parent.parent / "studies" / "tiny.py"
    study_file = tmp_path / "ranked.py"
    study_file.write_text(RANKED_STUDY.format(tiny=str(tiny), pruner=pruner))
    result = lrsearch.search(study_file, storage=str(tmp_path / "r.journal"), workers=1, confirm=None, report=False)
    trials = sorted(result.study.get_trials(deepcopy=False), key=lambda t: t.number)
    assert len(trials) == 8 and [t.state.name for t in trials[:5]] == ["COMPLETE"] * 5
    later = [(t.state.name, t.user_attrs.get("pruned_reason")) for t in trials[5:]]
    assert later == ([("PRUNED", "pruner")] * 3 if pruner else [("COMPLETE", None)] * 3)
