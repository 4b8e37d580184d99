"""The start trials: a new study's first trials take the usual starting rates in turn, and a
trial whose parameters were fixed beforehand (a retry, an enqueued trial) takes none and
takes no start's place."""

from __future__ import annotations

import optuna

from lrsearch import results
from lrsearch.workers._start_sampler import StartSampler

STARTS = [{"optimizer": "adam", "lr": 1e-3}, {"optimizer": "sgd", "lr": 1e-2}, {"optimizer": "rmsprop", "lr": 1e-3}]


def objective(trial) -> float:
    trial.suggest_categorical("optimizer", ["sgd", "rmsprop", "adam"])
    return trial.suggest_float("lr", 1e-7, 1.0, log=True)


def asked(study) -> tuple[int, dict]:
    trial = study.ask()
    objective(trial)
    return trial.number, trial.params


def test_a_new_study_takes_the_starts_in_order_and_retries_take_no_start_s_place():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = StartSampler(optuna.samplers.TPESampler(seed=0), STARTS)
    study = optuna.create_study(sampler=sampler)
    assert [asked(study) for _ in range(2)] == [(0, STARTS[0]), (1, STARTS[1])]
    assert results.fail_running_trials(study, lambda tag: True, "Ctrl-C twice", interrupted=True) == 2
    study.enqueue_trial({"optimizer": "sgd", "lr": 0.5})
    taken = [asked(study) for _ in range(4)]  # the two retries, the enqueued trial, then the third start
    assert taken[:3] == [(2, STARTS[0]), (3, STARTS[1]), (4, {"optimizer": "sgd", "lr": 0.5})]
    assert taken[3] == (5, STARTS[2])
    assert asked(study)[1] not in STARTS  # the sampler's own from now on


def test_a_resumed_study_whose_first_trials_exist_takes_no_start():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(objective, n_trials=3)
    resumed = optuna.load_study(study_name=study.study_name, storage=study._storage,
                                sampler=StartSampler(optuna.samplers.TPESampler(seed=0), STARTS))
    assert asked(resumed)[0] == 3 and all(asked(resumed)[1] not in STARTS for _ in range(3))
