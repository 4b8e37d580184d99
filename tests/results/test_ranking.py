"""Confirmation over fresh seeds (lrsearch.results._ranking): the ranking and the plan on studies
made in memory, then for real through `lrsearch run` and `lrsearch confirm`: every
planned training recorded once, the recorded values what the configuration gives on
those seeds, the summary, report and export ranking by the mean, a worker killed
during a training, Ctrl-C, and a confirmation resumed."""

from __future__ import annotations

import datetime
import json
import math
import os
import signal

import optuna
import pytest
from optuna.distributions import FloatDistribution

from conftest import TINY
from lrsearch import results
from lrsearch.export import exported_configs, load_config, write
from lrsearch.storage import open_storage
from conftest import SCRIPTED, Command, wait_for

CONFIG = {"optimizer": "adam", "lr": 0.01, "schedule": "constant"}


def made_study(values, direction="maximize", seed=3, losses=None):
    """An in-memory study of complete trials with these values (and val_loss at their last
    epoch), recorded as lrsearch does."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    results.write_study(study, seed=seed, objective="val_accuracy", epochs=5, batch_size=32)
    for i, value in enumerate(values):
        config = dict(CONFIG, lr=0.001 * (i + 1))
        study.add_trial(optuna.trial.create_trial(
            params={"lr": config["lr"]}, distributions={"lr": FloatDistribution(1e-7, 1.0, log=True)},
            value=value, user_attrs={"config": config,
                                     **({"history": {"val_loss": [1.0, losses[i]]}} if losses else {})}))
    return study


def test_confirmation_statistics_and_words():
    found = results.Confirmation({1: 0.8, 2: 0.9, 3: None})
    assert found.n_diverged == 1 and found.mean == pytest.approx(0.85)
    assert found.std == pytest.approx(math.sqrt(0.005))
    assert found.describe() == "0.85 +- 0.071 (3 seeds, diverged on 1)"
    assert results.Confirmation({1: 0.8}).std is None and results.Confirmation({1: 0.8}).describe() == "0.8 (1 seed)"
    assert results.Confirmation({1: None}).describe() == "diverged on all 1 seeds"


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_rank_puts_confirmed_trials_by_mean_then_the_rest_by_value_then_those_that_diverged(direction):
    flip = 1 if direction == "maximize" else -1
    study = made_study([flip * v for v in (0.90, 0.95, 0.80, 0.85, 0.99)], direction)
    confirmed = {0: results.Confirmation({7: flip * 0.88, 8: flip * 0.86}),  # mean 0.87
                 1: results.Confirmation({7: flip * 0.80, 8: flip * 0.82}),  # mean 0.81: lucky on its own seed
                 3: results.Confirmation({7: flip * 0.95, 8: None})}  # the best mean, but diverged once
    ranked = results.rank(study.trials, direction, confirmed)
    assert [t.number for t in ranked] == [0, 1, 4, 2, 3]
    assert [t.number for t in results.rank(study.trials, direction, {})] == [4, 1, 0, 3, 2]


def test_ties_go_to_the_lower_loss_of_the_objectives_split_and_the_summary_says_so():
    from lrsearch.run import _progress as progress

    study = made_study([1.0, 0.9, 1.0, 1.0], losses=[0.3, 0.01, 0.2, 0.1])
    assert [t.number for t in results.rank(study.trials, "maximize", {})] == [0, 2, 3, 1]
    assert [t.number for t in results.rank(study.trials, "maximize", {}, "val_accuracy")] == [3, 2, 0, 1]
    note = "Trials 3, 2, 0 tie on val_accuracy; the lower val_loss at the last epoch ranks trial 3 first"
    assert results.tie_note(study.trials, "maximize", {}, "val_accuracy").startswith(note)
    assert note in progress.summary(study)
    assert exported_configs(study)[0].trial_number == 3
    assert results.tiebreaker("accuracy") == "loss" and results.tiebreaker("val_loss") is None
    confirmed = {0: results.Confirmation({1: 0.9}), 2: results.Confirmation({1: 0.9})}
    assert [t.number for t in results.rank(study.trials, "maximize", confirmed, "val_accuracy")][:2] == [2, 0]
    assert results.tie_note(study.trials, "maximize", {3: results.Confirmation({1: 0.95})}, "val_accuracy") is None


def test_plan_gives_the_top_trials_the_same_fresh_seeds_and_skips_what_is_recorded():
    study = made_study([0.5, 0.9, 0.7, 0.8])
    seeds = results.fresh_seeds(3, 2)
    assert seeds == [3 + results.SEED_OFFSET, 4 + results.SEED_OFFSET]
    tasks = results.plan(study, top=3, seeds=2)
    assert sorted((t.number, t.seed) for t in tasks) == sorted((n, s) for n in (1, 3, 2) for s in seeds)
    assert {t.number: t.config["lr"] for t in tasks} == {1: 0.002, 3: 0.004, 2: 0.003}
    results.write_confirmation(study, 1, {seeds[0]: 0.85})
    left = results.plan(study, top=3, seeds=2)
    assert len(left) == 5 and (1, seeds[0]) not in {(t.number, t.seed) for t in left}
    for number in (1, 2, 3):
        results.write_confirmation(study, number, dict.fromkeys(seeds, 0.6))
    assert results.plan(study, top=3, seeds=2) == []
    assert len(results.plan(study, top=4, seeds=2)) == 2  # a larger --top adds the next trial only


def test_the_confirmation_says_how_many_more_seeds_where_some_are_recorded(capsys):
    from lrsearch.run import _progress as progress

    study = made_study([0.5, 0.9, 0.7])
    say = progress.RunProgress(study, 3, searching=False)
    say.confirming(results.plan(study, top=2, seeds=1), epochs=5, workers=2)
    assert "Confirming trial(s) 1, 2 on 1 fresh seed(s): 2 training(s) of 5 epochs on 2 worker(s)." \
        in capsys.readouterr().out
    results.write_confirmation(study, 1, {results.fresh_seeds(3, 1)[0]: 0.85})
    say.confirming(results.plan(study, top=2, seeds=2), epochs=5, workers=2)
    assert "Confirming trial(s) 1, 2 on up to 2 more fresh seed(s) each (0 to 1 recorded already): 3 training(s)" \
        in capsys.readouterr().out
    say.close()


def test_export_ranks_by_the_confirmed_mean_and_the_file_carries_the_spread(tmp_path):
    study = made_study([0.9, 0.95, 0.8])
    results.write_confirmation(study, 0, {11: 0.9, 12: 0.88})
    results.write_confirmation(study, 1, {11: 0.84, 12: None})
    configs = exported_configs(study, top=3)
    assert [c.trial_number for c in configs] == [0, 2, 1]
    path = write(configs, tmp_path / "top.json", many=True)
    document = json.loads(path.read_text())["configs"][0]["confirmation"]
    assert document == {"seeds": [11, 12], "values": [0.9, 0.88], "mean": pytest.approx(0.89),
                        "std": pytest.approx(0.01414, rel=1e-3), "diverged": 0}
    assert load_config(path, rank=1).confirmation == results.Confirmation({11: 0.9, 12: 0.88})
    assert load_config(path, rank=3).confirmation.n_diverged == 1
    assert load_config(path, rank=2).confirmation is None


def test_verdict_names_the_pick_how_the_raw_top_trial_fared_and_what_confirming_cost():
    study = timed_study([(0.9, 10.0), (0.95, 10.0), (None, 30.0)])
    assert results.verdict(study.trials, "maximize", {}) is None
    confirmed = {0: results.Confirmation({1: 0.9, 2: 0.9}), 1: results.Confirmation({1: 0.8, 2: 0.82})}
    assert results.verdict(study.trials, "maximize", confirmed) == (
        "The pick is trial 0: 0.9 +- 0 (2 seeds) on fresh seeds; the top trial by its own seed, 1 (0.95), "
        "scored 0.81 +- 0.014 (2 seeds) on fresh seeds. Confirmation: 4 training(s), ~40 s of training, 80% of "
        "the search's 50 s.")
    # Measured seconds replace the estimate (a full training's median, 10 s) where recorded.
    measured = {0: results.Confirmation({1: 0.9, 2: 0.9}, {1: 3.0, 2: 4.0}),
                1: results.Confirmation({1: 0.8, 2: 0.82}, {1: 2.0, 2: 1.0})}
    assert results.verdict(study.trials, "maximize", measured).endswith(
        "Confirmation: 4 training(s), 10 s of training, 20% of the search's 50 s.")
    measured[1] = results.Confirmation({1: 0.8, 2: 0.82}, {1: 2.0})
    assert results.verdict(study.trials, "maximize", measured).endswith(
        "Confirmation: 4 training(s), ~19 s of training, 38% of the search's 50 s.")


START = datetime.datetime(2024, 5, 1, 12, 0, 0)


def timed_study(trials, *, interrupted=(), timed=None):
    """An in-memory study whose trials took real seconds: (value, seconds) each, a complete
    trial, or a pruned one where the value is None; the `interrupted` numbers failed as
    interrupted; `timed` gives the seconds a worker recorded for some (duration_s)."""
    study = made_study([])
    for number, (value, seconds) in enumerate(trials):
        state = (optuna.trial.TrialState.FAIL if number in interrupted else optuna.trial.TrialState.PRUNED
                 if value is None else optuna.trial.TrialState.COMPLETE)
        config = dict(CONFIG, lr=0.001 * (number + 1))
        trial = optuna.trial.create_trial(
            state=state, value=value, params={"lr": config["lr"]},
            distributions={"lr": FloatDistribution(1e-7, 1.0, log=True)},
            user_attrs={"config": config, **({"interrupted": "its run was killed"} if number in interrupted else {}),
                        **({"duration_s": (timed or {})[number]} if number in (timed or {}) else {})})
        trial.datetime_start, trial.datetime_complete = START, START + datetime.timedelta(seconds=seconds)
        study.add_trial(trial)
    return study


@pytest.mark.parametrize("complete, pruned_s, choice", [
    (45, 0, (3, 3)),  # 20% of 45 full trainings is 9
    (50, 0, (3, 3)),  # 10: never more than the explicit default
    (40, 0, (2, 3)),  # 8
    (20, 20.0, (2, 2)),  # 20% of 20 + 2 x 20 / 10 is 4.8 trainings: the pruned trials count
    (10, 0, (2, 1)),  # 2
    (9, 0, (0, 0)),  # 1.8: skipped
])
def test_the_default_confirmation_costs_at_most_a_fifth_of_the_studys_training(complete, pruned_s, choice):
    study = timed_study([(0.5 + 0.001 * i, 10.0) for i in range(complete)] + [(None, pruned_s)] * 2)
    pricing = results.price(study)
    assert (pricing.top, pricing.seeds) == choice
    assert pricing.training_s == pytest.approx(10.0)
    assert len(results.plan(study)) == choice[0] * choice[1] <= pricing.budget
    note = pricing.note()
    if choice == (0, 0):
        assert note == ("confirmation skipped: it would cost more than 20% of the search (a full training takes "
                        "10 s, 20% of the study's 90 s of training is 18 s); confirm anyway with --confirm K,N "
                        "(confirm=(K, N)) or `lrsearch confirm`.")
    else:
        assert note.startswith(f"confirming the top {choice[0]} trials on {choice[1]} fresh seed(s), priced to at "
                               f"most 20% of the search")


def test_the_trainings_recorded_already_count_and_interrupted_trials_do_not():
    study = timed_study([(0.5 + 0.01 * i, 10.0) for i in range(45)] + [(None, 5000.0)], interrupted={45})
    assert results.training_seconds(study.trials) == (450.0, 10.0)  # the interrupted trial's end is not its own
    seeds = results.fresh_seeds(3, 3)
    results.write_confirmation(study, 0, {seeds[0]: 0.5, seeds[1]: None, seeds[2]: 0.4})  # once in the top 3
    pricing = results.price(study)
    assert (pricing.top, pricing.seeds, pricing.budget) == (2, 3, 9)  # 3 recorded + 6 new
    results.write_confirmation(study, 44, dict.fromkeys(seeds, 0.9))  # the best trial, confirmed already
    assert (results.price(study).top, results.price(study).seeds) == (2, 3)  # 6 recorded + 3 new
    assert {(t.number, t.seed) for t in results.plan(study)} == {(43, s) for s in seeds}
    assert results.Pricing(0, 0, 0, 0.0, 0.0).note() is None  # no complete trial: nothing to say
    spent = timed_study([(0.5 + 0.01 * i, 10.0) for i in range(10)])  # a budget of 2 trainings
    results.write_confirmation(spent, 8, {seeds[0]: 0.5})  # confirmed before trial 9 was found
    results.write_confirmation(spent, 7, {seeds[0]: 0.5})
    assert spent.best_trial.number == 9 and results.price(spent).top == 0
    assert results.price(spent).note().startswith(
        "confirmation skipped: the 2 training(s) recorded already spend its budget of 20% of the search (a full "
        "training takes 10 s, 20% of the study's 100 s of training is 20 s: 2 trainings), so the top trials found "
        "since are not confirmed")
    assert "of the study's 6.1 s of training is 1.2 s: 2 trainings" in results.Pricing(2, 1, 2, 6.1, 0.58).note()


def test_a_full_training_costs_what_most_complete_trials_took_not_the_first_ones_that_traced_the_model():
    study = timed_study([(0.5, 30.0)] * 2 + [(0.6 + 0.01 * i, 10.0) for i in range(8)])
    assert results.training_seconds(study.trials) == (140.0, 10.0)  # their mean, 14 s, is no training's


def test_a_trial_costs_the_seconds_its_worker_timed_not_a_storage_outage_before_its_end_was_recorded():
    study = timed_study([(0.5, 32.5), (0.6, 30.5)] + [(0.7, 5.0)] * 3, timed={0: 6.2, 1: 4.3, 2: 5.0})
    assert results.training_seconds(study.trials) == (pytest.approx(25.5), 5.0)


# --------------------------------------------------------------------------- for real


def load(storage: str, name: str):
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def no_traceback(*texts: str) -> None:
    assert not any("Traceback" in text for text in texts), texts


def test_run_confirms_the_top_trials_and_everything_ranks_by_the_mean(cli, tmp_path):
    journal = str(tmp_path / "c.journal")
    with_good_trials(journal, "tiny")
    run = cli("run", str(TINY), "--storage", journal, "--n-trials", "6", "--workers", "1", "--confirm", "2,2",
              cwd=tmp_path)  # two workers: test_a_worker_killed_during_a_confirmation_training_...
    assert run.returncode == 0, run.stderr
    no_traceback(run.stdout, run.stderr)
    study = load(journal, "tiny")
    top = [t.number for t in results.rank(study.trials, "maximize", {})[:2]]
    assert len(top) == 2
    seeds = results.fresh_seeds(3, 2)
    recorded = results.read_confirmations(study)
    assert sorted(recorded) == sorted(top) and all(sorted(v) == seeds for v in recorded.values())
    assert f"Confirming trial(s) {', '.join(map(str, sorted(top)))} on 2 fresh seed(s): {2 * len(top)} training(s)" \
        in run.stdout
    assert "by mean val_accuracy on fresh seeds" in run.stdout and "The pick is trial" in run.stdout
    assert len(study.trials) == 6  # confirming adds no trial

    # Each recorded value is what that configuration gives on that seed (a worker trained the right thing).
    from lrsearch.lr import LRConfig
    from lrsearch.study import load_study
    from lrsearch.training import TrialRunner

    number = top[0]
    trial = study.trials[number]
    again = TrialRunner(load_study(TINY)).retrain(LRConfig.from_dict(trial.user_attrs["config"]), trial.params,
                                                  seeds[1])
    assert again == pytest.approx(recorded[number][seeds[1]], abs=0.021)  # 100 validation rows: 2 may flip

    pick = results.rank(study.trials, "maximize", results.confirmations(study))[0].number
    exported = cli("export", str(TINY), "--storage", journal, "-o", str(tmp_path / "best.json"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    best = load_config(tmp_path / "best.json")
    assert best.trial_number == pick and sorted(best.confirmation.values) == seeds
    summary = (tmp_path / "lrsearch-report-tiny" / "summary.md").read_text()
    assert "| on fresh seeds (mean +- std) |" in summary
    assert summary.split("## Top trials")[1].split("\n| ")[2].startswith(f"{pick} |")

    more = cli("confirm", str(TINY), "--storage", journal, "--top", "3", "--seeds", "3", "--workers", "1",
               cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    no_traceback(more.stdout, more.stderr)
    study = load(journal, "tiny")
    wanted = min(3, len(results.rank(study.trials, "maximize", {})))
    recorded = results.read_confirmations(study)
    assert len(recorded) == wanted and all(len(v) == 3 for v in recorded.values())
    added = wanted * 3 - 4
    assert f": {added} training(s)" in more.stdout
    assert recorded[number][seeds[0]] == results.read_confirmations(load(journal, "tiny"))[number][seeds[0]]

    again = cli("confirm", str(TINY), "--storage", journal, "--top", "3", "--seeds", "3", "--workers", "1",
                cwd=tmp_path)
    assert again.returncode == 0 and "confirmed on 3 fresh seed(s) already" in again.stdout


@pytest.mark.slow  # three runs of the CLI
def test_no_confirm_records_nothing_and_confirm_refuses_what_it_cannot_do(cli, tmp_path):
    journal = str(tmp_path / "c.journal")
    run = cli("run", str(TINY), "--storage", journal, "--n-trials", "2", "--workers", "1", "--no-confirm",
              "--no-report", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert results.read_confirmations(load(journal, "tiny")) == {} and "Confirming" not in run.stdout

    bad = cli("run", str(TINY), "--storage", journal, "--confirm", "3", cwd=tmp_path)
    assert bad.returncode == 2 and "expected K,N (top trials, seeds each)" in bad.stderr
    edited = tmp_path / "tiny.py"
    edited.write_text(TINY.read_text().replace("batch_size=32", "batch_size=16"))
    other = cli("confirm", str(edited), "--storage", journal, cwd=tmp_path)
    assert other.returncode == 2 and "batch_size 32 -> 16" in other.stderr
    no_traceback(other.stderr)
    empty = str(tmp_path / "empty.journal")
    failing = tmp_path / "failing.py"
    failing.write_text(TINY.read_text().replace("def build_model(trial):\n", "def build_model(trial):\n"
                                                "    if 'worker' in trial.user_attrs:\n"
                                                "        raise ValueError('no')\n"))
    failed = cli("run", str(failing), "--storage", empty, "--n-trials", "1", "--no-report", cwd=tmp_path)
    assert failed.returncode == 1 and "all 1 trials of this run failed" in failed.stderr
    nothing = cli("confirm", str(failing), "--storage", empty, cwd=tmp_path)
    assert nothing.returncode == 2 and "has no complete trial yet, so there is nothing to confirm" in nothing.stderr


def confirm_started(gate) -> dict[str, int]:
    return {p.name: int(p.read_text()) for p in gate.glob("confirm-*")}


def with_good_trials(journal: str, name: str = "scripted") -> None:
    """Enqueue two configurations that train well on the tiny data, so that the search
    surely has two complete trials to confirm."""
    study = optuna.create_study(study_name=name, storage=open_storage(journal), direction="maximize")
    for lr in (0.02, 0.05):
        study.enqueue_trial({"optimizer": "adam", "schedule": "constant", "lr": lr})


@pytest.mark.parametrize("workers", [("--workers", "2"), ("--workers", "1", "--lanes", "2")],
                         ids=["two workers", "two lanes"])
@pytest.mark.slow  # a run per form, a worker killed
def test_a_worker_killed_during_a_confirmation_training_is_replaced_and_its_training_redone(tmp_path, workers):
    """With lanes, the worker holds two trainings when it dies: both are redone."""
    journal = str(tmp_path / "c.journal")
    gate = tmp_path / "gate"
    gate.mkdir()
    with_good_trials(journal)
    run = Command(tmp_path, "run", str(SCRIPTED), "--storage", journal, "--n-trials", "6", *workers,
                  "--confirm", "2,2", "--no-report", env={"LRSEARCH_TEST_CONFIRM_GATE": str(gate)})
    victim = sorted(wait_for(lambda: confirm_started(gate), "a confirmation training to start").values())[0]
    os.kill(victim, signal.SIGKILL)
    (gate / "go").touch()
    assert run.wait() == 0, run.stderr()
    no_traceback(run.stdout(), run.stderr())
    study = load(journal, "scripted")
    top = results.rank(study.trials, "maximize", {})[:2]
    recorded = results.read_confirmations(study)
    assert sorted(recorded) == sorted(t.number for t in top)
    assert all(len(values) == 2 for values in recorded.values())
    assert [t.state.name for t in study.trials].count("RUNNING") == 0 and len(study.trials) == 6
    assert "1 worker(s) died and were replaced" in run.stdout()


@pytest.mark.slow  # two runs of the CLI
def test_ctrl_c_during_the_confirmation_keeps_what_finished_and_the_same_command_completes_it(tmp_path):
    journal = str(tmp_path / "c.journal")
    gate = tmp_path / "gate"
    gate.mkdir()
    args = ("run", str(SCRIPTED), "--storage", journal, "--n-trials", "6", "--confirm", "2,3", "--no-report")
    with_good_trials(journal)
    first = Command(tmp_path, *args, "--workers", "2", env={"LRSEARCH_TEST_CONFIRM_GATE": str(gate)})
    wait_for(lambda: len(confirm_started(gate)) == 2, "two confirmation trainings to start")
    first.ctrl_c()
    wait_for(lambda: "Stopping" in first.stderr(), "the run to acknowledge Ctrl-C")
    (gate / "go").touch()
    assert first.wait() == 130, first.stderr()
    no_traceback(first.stdout(), first.stderr())
    assert "The confirmation over fresh seeds did not finish" in first.stderr()
    done = sum(len(v) for v in results.read_confirmations(load(journal, "scripted")).values())
    assert done == 2  # the two that ran finished; no new one started

    second = Command(tmp_path, *args, "--workers", "1")
    assert second.wait() == 0, second.stderr()
    no_traceback(second.stdout(), second.stderr())
    study = load(journal, "scripted")
    assert "Running up to" not in second.stdout() and ": 4 training(s)" in second.stdout()
    assert sum(len(v) for v in results.read_confirmations(study).values()) == 6
    assert len(study.trials) == 6
