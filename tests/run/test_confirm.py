"""`lrsearch.confirm`, the library function of `lrsearch confirm`: it retrains the top
trials of a stored study on fresh seeds in a worker, records each value, returns the pick,
resumes rather than repeats, and refuses what it cannot confirm without starting workers."""

from __future__ import annotations

import datetime

import optuna
import pytest
from optuna.distributions import FloatDistribution

import lrsearch
from conftest import SCRIPTED, TINY, Command, wait_for
from lrsearch import results
from lrsearch.errors import UsageError
from lrsearch.options import SearchOptions
from lrsearch.storage import open_storage
from lrsearch.workers._confirmations import ConfirmationQueue, Confirming


def stored_study(journal: str, values, *, batch_size: int = 32, name: str = "tiny", seconds: float = 0.0):
    """A study of the tiny study file in `journal`, with complete trials recorded as
    `lrsearch run` records them (2 epochs, so that a confirmation training is short), each
    trained in `seconds`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=open_storage(journal), direction="maximize")
    results.write_study(study, seed=3, objective="val_accuracy", epochs=2, batch_size=batch_size)
    for i, value in enumerate(values):
        config = {"optimizer": "adam", "lr": 0.02 * (i + 1), "schedule": "constant"}
        trial = optuna.trial.create_trial(
            params={"lr": config["lr"]}, distributions={"lr": FloatDistribution(1e-7, 1.0, log=True)},
            value=value, user_attrs={"config": config})
        trial.datetime_complete = trial.datetime_start + datetime.timedelta(seconds=seconds)
        study.add_trial(trial)
    return study


def test_a_run_confirms_as_priced_to_its_search_unless_given_k_and_n(tmp_path):
    """`confirm=True`, the default, plans when the search is done what costs at most a fifth of
    the study's training and says so; (K, N) plans exactly that; None or False, nothing."""
    assert SearchOptions().confirm is True and SearchOptions.of(confirm=False).confirm is False
    with pytest.raises(UsageError, match=r"confirm must be .*True \(priced to the search\) or None; got 1"):
        SearchOptions.of(confirm=1)
    assert Confirming.of(None) is None and Confirming.of(False) is None
    assert (Confirming.of((3, 1)).top, Confirming.of((3, 1)).seeds) == (3, 1)
    study = stored_study(str(tmp_path / "c.journal"), [0.5 + 0.01 * i for i in range(14)], seconds=4.0)

    def planned(confirming):
        sent, said = [], []
        queue = ConfirmationQueue(lambda index, order: sent.append(order.task), [], say=said.append)
        queue.begin(confirming, study)
        for _ in range(9):
            queue.lane_idle(0)
        queue.step(False, remaining=lambda: 0, live_running=lambda: [])
        return sorted((task.number, task.seed) for task in sent), said

    sent, said = planned(Confirming.of(True))  # 20% of 14 trainings: 2
    assert sent == [(12, results.fresh_seeds(3, 1)[0]), (13, results.fresh_seeds(3, 1)[0])]
    assert said == ["confirming the top 2 trials on 1 fresh seed(s), priced to at most 20% of the search (a full "
                    "training takes 4 s, 20% of the study's 56 s of training is 11 s: 2 trainings, those recorded "
                    "already included)."]
    sent, said = planned(Confirming.of((3, 3)))
    assert len(sent) == 9 and said == []


def test_confirm_records_fresh_seeds_returns_the_pick_and_resumes(tmp_path, capsys):
    journal = str(tmp_path / "c.journal")
    stored_study(journal, [0.5, 0.9])
    result = lrsearch.confirm(TINY, storage=journal, top=1, seeds=1, workers=1)
    assert result.outcome == "finished" and not result.interrupted
    seeds = results.fresh_seeds(3, 1)
    recorded = results.read_confirmations(optuna.load_study(study_name="tiny", storage=open_storage(journal)))
    assert list(recorded) == [1] and list(recorded[1]) == seeds
    assert result.best.number == 1 and result.confirmation.values == recorded[1]
    assert list(result.confirmation.seconds) == seeds and 0 < result.confirmation.seconds[seeds[0]] < 120
    out, err = capsys.readouterr()
    assert "on 1 fresh seed(s): 1 training(s)" in out
    assert "one trial at a time, because each worker's share of the work is too small" in out + err  # lanes untimed
    spent = result.confirmation.seconds[seeds[0]]
    shown = f"{spent:.0f}" if spent >= 10 else f"{spent:.2g}"  # measured, not "~" an estimate
    assert f"Confirmation: 1 training(s), {shown} s of training" in out

    again = lrsearch.confirm(str(TINY), storage=journal, top=1, seeds=1, workers=1)
    assert again.outcome == "nothing to do" and again.best.number == 1
    assert "The top 1 trials are confirmed on 1 fresh seed(s) already." in capsys.readouterr().out


def test_confirm_refuses_what_it_cannot_confirm(tmp_path):
    journal = str(tmp_path / "c.journal")
    missing = tmp_path / "missing.journal"
    with pytest.raises(UsageError, match="no storage file"):
        lrsearch.confirm(TINY, storage=str(missing), workers=1)
    assert not missing.exists()  # reading a study never creates its storage
    with pytest.raises(UsageError, match="top must be a whole number >= 1, but got 0"):
        lrsearch.confirm(TINY, storage=journal, top=0)
    with pytest.raises(UsageError, match="timeout must be a number of seconds > 0"):
        lrsearch.confirm(TINY, storage=journal, timeout=0)

    failed = stored_study(journal, [])
    failed.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    with pytest.raises(UsageError, match="no study 'other' in .*; it holds \\['tiny'\\]"):
        lrsearch.confirm(TINY, storage=journal, study_name="other", workers=1)
    with pytest.raises(UsageError, match="has no complete trial yet, so there is nothing to confirm"):
        lrsearch.confirm(TINY, storage=journal, workers=1)
    other = str(tmp_path / "other.journal")
    stored_study(other, [0.5], batch_size=16)
    with pytest.raises(UsageError, match="batch_size 16 -> 32"):
        lrsearch.confirm(TINY, storage=other, workers=1)


def test_two_runs_on_one_study_share_its_confirmation(tmp_path):
    """Two `lrsearch run`s on a study that holds its trials already: each claims the trainings it
    hands out, so that the two train the 2 x 2 of the confirmation once between them (not once
    each), and both rank by the same records."""
    journal, gate = str(tmp_path / "c.journal"), tmp_path / "gate"
    gate.mkdir()
    stored_study(journal, [0.5, 0.9], name="scripted")
    args = ("run", str(SCRIPTED), "--storage", journal, "--n-trials", "2", "--epochs", "2", "--confirm", "2,2",
            "--workers", "1", "--lanes", "1", "--no-report")
    runs = [Command(tmp_path, *args, env={"LRSEARCH_TEST_CONFIRM_GATE": str(gate)}) for _ in range(2)]
    wait_for(lambda: len({path.name.rpartition("-")[2] for path in gate.glob("confirm-*")}) == 2,
             "both runs to start a training of the confirmation")
    (gate / "go").touch()

    assert [run.wait() for run in runs] == [0, 0], [run.stderr() for run in runs]
    assert len(list(gate.glob("confirm-*"))) == 4  # trainings, as the study file saw them
    recorded = results.read_confirmations(optuna.load_study(study_name="scripted", storage=open_storage(journal)))
    assert {number: sorted(values) for number, values in recorded.items()} == {0: results.fresh_seeds(3, 2),
                                                                               1: results.fresh_seeds(3, 2)}
    picks = [next(line for line in run.stdout().splitlines() if line.startswith("The pick is")) for run in runs]
    assert picks[0] == picks[1]
    assert all("Traceback" not in run.stdout() + run.stderr() for run in runs)
