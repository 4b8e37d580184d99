"""The record module: what is stored, what is derived, studies of the earlier layout, and
one answer for a pruned trial without a reason everywhere it is shown."""

from __future__ import annotations

import optuna

from lrsearch import results
from lrsearch.report import pruning_reasons, trials_frame
from lrsearch.run import _progress as progress


def study_with(*trials: optuna.trial.FrozenTrial, **attrs) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    for trial in trials:
        study.add_trial(trial)
    return study


def frozen(state="COMPLETE", value=0.8, **user_attrs) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(state=optuna.trial.TrialState[state],
                                     value=value if state == "COMPLETE" else None, user_attrs=user_attrs)


HISTORY = {"val_accuracy": [0.5, 0.9, 0.7], "lr": [0.1, 0.1, 0.05], "loss": [1.0, None, 0.4]}


def test_derived_fields_come_from_the_history_and_the_study_seed():
    study = study_with(frozen(history=HISTORY), frozen(history=HISTORY), seed=7, steps_per_epoch=16)
    first, second = results.read_trials(study)
    assert first.epochs_run == 3 and first.best("val_accuracy", "maximize") == (0.9, 1)
    assert first.best("val_accuracy", "minimize") == (0.5, 0)
    assert first.best("loss", "minimize") == (0.4, 2)  # None (a non-finite epoch) is skipped
    assert (first.seed, second.seed) == (7, 8) and first.steps_per_epoch == 16


def test_a_study_of_the_earlier_layout_reads_the_same():
    old = frozen(history=HISTORY, seed=42, steps_per_epoch=9, best_value=0.9, best_epoch=1, epochs_run=3)
    rec = results.read_trials(study_with(old, seed=7))[0]
    assert rec.seed == 42 and rec.steps_per_epoch == 9 and rec.epochs_run == 3


def test_a_pruned_trial_without_a_reason_is_pruner_on_the_console_and_in_the_report():
    study = study_with(frozen("PRUNED"), frozen("PRUNED", pruned_reason="stalled"), frozen("FAIL"),
                       objective="val_accuracy")
    trials = study.get_trials()
    assert pruning_reasons(trials) == {"pruner": 1, "stalled": 1}
    assert "Pruned: pruner 1, stalled 1" in progress.summary(study)
    assert "Failed: 1 x unknown" in progress.summary(study)
    frame = trials_frame(trials, "val_accuracy", "maximize")
    assert list(frame["pruned_reason"][:2]) == ["pruner", "stalled"] and frame["pruned_reason"].isna()[2]


def test_write_study_writes_only_what_changed():
    study = optuna.create_study()
    results.write_study(study, epochs=5, seed=None)
    assert study.user_attrs == {"epochs": 5}
    results.write_study(study, epochs=5, objective="val_loss")
    assert results.read_study(study) == results.StudyRecord(epochs=5, objective="val_loss")


def test_the_objective_names_the_value_for_the_dashboard():
    study = optuna.create_study()
    results.name_objective(study, "val_mae")
    results.name_objective(study, "val_mae")
    assert study.metric_names == ["val_mae"]
