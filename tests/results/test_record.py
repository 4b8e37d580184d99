"""The record module: what is stored, what is derived, studies of the earlier layout, and
one answer for a pruned trial without a reason everywhere it is shown."""

from __future__ import annotations

import optuna

from lrsearch import results
from lrsearch.report import pruning_reasons, trials_frame
from lrsearch.results._record import interrupt_trial
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


def test_an_interrupted_trial_keeps_its_values_is_not_counted_and_is_retried():
    """A trial that something else ended: FAIL with the cause and the epochs it trained, its
    intermediate values kept, not counted toward n_trials, its parameters enqueued again with
    the trial they retry, each time a run is stopped under it; a retry whose machine vanished
    (which the trial itself may have caused) is not retried again; a trial that failed on its
    own still counts."""
    from lrsearch.workers import claimed_trials

    study = optuna.create_study(direction="maximize")
    results.write_study(study, epochs=5)
    running = study.ask()
    running.suggest_float("lr", 1e-4, 1.0, log=True)
    for epoch, value in enumerate((0.5, 0.6)):
        running.report(value, epoch)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # failed on its own: counted
    assert claimed_trials(study) == 2

    cause = "the run was terminated (SIGTERM)"
    assert results.fail_running_trials(study, lambda tag: True, cause, interrupted=True) == 1
    interrupted, failed, retry = study.get_trials()
    assert interrupted.state.name == "FAIL" and interrupted.intermediate_values == {0: 0.5, 1: 0.6}
    record = results.read_trial(interrupted)
    assert record.interrupted == cause and results.interruption(interrupted) == cause
    assert record.fail_reason == (f"interrupted: {cause}, after 2 of 5 epoch(s), kept as its intermediate values; "
                                  f"its parameters are retried")
    assert retry.state.name == "WAITING" and retry.params == interrupted.params
    assert results.read_trial(retry).retry_of == 0 and results.read_trial(failed).interrupted is None
    assert claimed_trials(study) == 1  # the failed one; the retry counts once a worker takes it

    taken = study.ask()  # a worker takes the retry, with its parameters, and its run is stopped in turn
    assert taken.number == 2 and taken.params == interrupted.params
    assert results.fail_running_trials(study, lambda tag: True, "Ctrl-C twice", interrupted=True) == 1
    assert results.read_trial(study.get_trials()[2]).fail_reason.endswith("its parameters are retried")
    again = study.ask()
    assert again.number == 3 and again.params == interrupted.params and again.user_attrs["retry_of"] == 2
    assert interrupt_trial(study, study.get_trials()[3], "its machine vanished", suspect=True)
    assert len(study.get_trials()) == 4 and claimed_trials(study) == 1
    assert results.read_trial(study.get_trials()[3]).fail_reason.endswith("not retried again (it retried trial 2)")
    summary = progress.summary(study)
    assert "4 trials - complete 0, pruned 0, failed 1, interrupted 3, running 0." in summary
    assert "Interrupted (not counted; retried as trial(s) 2, 3): 1 x the run was terminated (SIGTERM); " in summary


def test_a_retry_a_worker_enqueued_counts_once_another_process_takes_it(tmp_path):
    """A worker (its write-behind storage) that interrupts a trial of a vanished machine enqueues
    the retry for whichever process takes it: once another one does, the worker counts it."""
    from lrsearch.storage import WriteBackStorage, open_storage
    from lrsearch.workers import claimed_trials

    journal = str(tmp_path / "s.journal")
    elsewhere = optuna.create_study(study_name="s", storage=open_storage(journal))
    elsewhere.ask().suggest_float("lr", 1e-4, 1.0, log=True)
    worker = optuna.load_study(study_name="s", storage=WriteBackStorage(open_storage(journal)))
    assert results.fail_running_trials(worker, lambda tag: True, "its machine vanished", interrupted=True) == 1
    assert claimed_trials(worker) == 0
    assert elsewhere.ask().number == 1  # the retry, taken by another process
    assert claimed_trials(worker) == 1
