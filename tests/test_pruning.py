"""The pruning callback's decisions, called directly without training (as
optuna-integration tests its Keras callback)."""

from __future__ import annotations

import optuna
import pytest

from lrsearch.pruning import DIVERGED, STALLED, PruningCallback, make_pruner


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
    _, trial = make_trial()
    cb = callback(trial)
    cb.on_train_begin()
    for epoch, loss in enumerate([1.0, 0.2, 0.25, 0.18]):  # noise below the first loss: fine
        cb.on_epoch_end(epoch, {"loss": loss, "val_accuracy": 0.5 + epoch / 10})
    with pytest.raises(optuna.TrialPruned):
        cb.on_epoch_end(4, {"loss": 3.0, "val_accuracy": 0.3})
    assert trial.user_attrs["pruned_reason"] == DIVERGED and trial.user_attrs["pruned_epoch"] == 4


def test_flat_objective_and_loss_prune_as_stalled_at_the_window():
    _, trial = make_trial()
    cb = callback(trial, stall_window=4)
    cb.on_train_begin()
    for epoch in range(3):
        cb.on_epoch_end(epoch, {"loss": 1.1 - epoch * 1e-4, "val_accuracy": 0.33})
    with pytest.raises(optuna.TrialPruned):
        cb.on_epoch_end(3, {"loss": 1.0997, "val_accuracy": 0.332})
    assert trial.user_attrs["pruned_reason"] == STALLED


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


def test_default_pruner_prunes_a_trial_far_behind_its_peers():
    # Hyperband picks a trial's bracket from a hash of the study name: fix it, for a fixed bracket layout.
    study = optuna.create_study(study_name="pruned-behind", direction="maximize", pruner=make_pruner(epochs=30))
    for value in [0.8, 0.82, 0.79, 0.81] * 5:  # enough peers to fill every Hyperband bracket
        t = study.ask()
        for step in range(30):
            t.report(value, step)
            if t.should_prune():  # records the rungs that later trials are compared on
                break
        study.tell(t, value)
    bad = study.ask()
    pruned_at = None
    for step in range(30):
        bad.report(0.2, step)
        if bad.should_prune():
            pruned_at = step
            break
    assert pruned_at is not None and pruned_at < 29
