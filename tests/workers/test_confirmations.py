"""The confirmation queue shares a study's confirmation with other runs, on a real (in-memory)
Optuna study and without starting a worker: it leaves alone the trainings another live run
claimed and waits for their values, takes those of a run that died or stopped renewing its
claims, records its values beside the other runs' and gives up its claims when it ends."""

from __future__ import annotations

import os
import subprocess
import time

from lrsearch import results
from lrsearch.results import Task, worker_tag
from lrsearch.workers import _confirmations
from lrsearch.workers._confirmations import ConfirmationQueue, Confirming
from lrsearch.workers._messages import Confirm

CONFIG = {"optimizer": "adam", "schedule": "constant", "lr": 0.01}


def test_a_run_takes_the_trainings_no_other_live_run_claimed_and_waits_for_the_rest(optuna_study, monkeypatch):
    monkeypatch.setattr(_confirmations, "CLAIMS_CHECK_INTERVAL", 0)
    ended = subprocess.Popen(["true"])
    ended.wait()
    other_run, gone_run = worker_tag(os.getppid()), worker_tag(ended.pid)
    tasks = [Task(number, seed, CONFIG, {"lr": 0.01}) for number in (0, 1) for seed in (7, 8)]
    now = time.time()
    results.write_claim(optuna_study, tasks[0], other_run, now)  # a live run of this machine
    results.write_claim(optuna_study, tasks[1], gone_run, now)  # a run of this machine that ended
    results.write_claim(optuna_study, tasks[2], "machine2:5", now - 1000)  # a machine that stopped renewing it
    results.write_claim(optuna_study, tasks[3], "machine2:5", now)  # a machine that renews it
    sent, said = [], []
    queue = ConfirmationQueue(lambda index, order: sent.append(order), [], say=said.append)
    queue.begin(Confirming(top=2, seeds=2), optuna_study)
    queue.pending = list(tasks)
    for _ in range(3):
        queue.lane_idle(0)

    queue.step(False, remaining=lambda: 0, live_running=lambda: [])
    assert sent == [Confirm(tasks[1]), Confirm(tasks[2])]
    assert said == [f"Waiting for 2 confirmation training(s) that other runs train "
                    f"({', '.join(sorted([other_run, 'machine2:5']))})."]
    claims = results.read_claims(optuna_study)
    assert {claims[t.number, t.seed].by for t in tasks[1:3]} == {worker_tag()}

    results.write_confirmation(optuna_study, 0, {7: 0.5})  # the other run records its training
    queue.confirmed(0, tasks[1], 0.75, 2.5)
    queue.step(False, remaining=lambda: 0, live_running=lambda: [])
    assert results.read_confirmations(optuna_study) == {0: {7: 0.5, 8: 0.75}}
    assert results.confirmations(optuna_study)[0].seconds == {8: 2.5}  # the other run's, recorded without
    assert queue.pending == [tasks[3]] and queue.left() and len(sent) == 2

    queue.release()  # the run ends: the training it did not record is free for the next
    assert (1, 7) not in results.read_claims(optuna_study) and (1, 8) in results.read_claims(optuna_study)
