"""The typed messages between the parent and its workers, without starting a process: each
pickles through a multiprocessing pipe unchanged, the supervisor acts on every event and
refuses anything else, a worker reads its orders, and the confirmation queue hands out and
takes back trainings."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import pickle
import typing

import pytest

from lrsearch.errors import InternalError, WriteError
from lrsearch.options import SearchOptions
from lrsearch.results import Task
from lrsearch.workers import Job, Supervisor
from lrsearch.workers._confirmations import ConfirmationQueue, Confirming
from lrsearch.workers._messages import (Confirm, ConfirmFailed, Confirmed, Dismiss, Done, Event, Fatal, Idle,
                                        LanesTimed, Order, Ready, RunJob, Setting, Starting, StorageLost, TrialEnded)
from lrsearch.workers._link import ParentLink

TASK = Task(number=3, seed=7, config={"optimizer": "adam", "schedule": "constant", "lr": 0.01}, params={"lr": 0.01})
JOB = Job(study_path="study.py", study_name="s", n_trials=4, epochs=2, seed=1, options=SearchOptions(), confirm=True)
MESSAGES = [Starting("data"), Ready("the compiled path"), LanesTimed(", 3 trials at once in lanes"), Fatal("stop"), Fatal("full", error=WriteError("x", "full")),
            StorageLost("down"), TrialEnded("FAIL", "ValueError: x"), TrialEnded("COMPLETE", None), Idle(),
            Confirmed(TASK, 0.5, 1.25), Confirmed(TASK, None, 0.5), ConfirmFailed(TASK, "ValueError: y"), Done(),
            RunJob(JOB), RunJob(JOB, 1, 2, Setting.now()), Confirm(TASK), Dismiss()]


def test_every_message_type_is_tested_and_belongs_to_one_direction():
    events, orders = set(typing.get_args(Event)), set(typing.get_args(Order))
    assert not events & orders
    assert {type(message) for message in MESSAGES} == events | orders


@pytest.mark.parametrize("message", MESSAGES, ids=lambda message: type(message).__name__)
def test_a_message_round_trips_through_pickle_and_a_pipe(message):
    assert pickle.loads(pickle.dumps(message)) == message
    receiver, sender = mp.get_context("spawn").Pipe(duplex=False)
    sender.send(message)
    received = receiver.recv()
    assert type(received) is type(message) and received == message
    if isinstance(message, Fatal) and message.error is not None:  # the error the parent raises crosses too
        assert type(received.error) is WriteError and str(received.error) == str(message.error)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.x = 1


def test_the_supervisor_acts_on_every_event_type():
    events = set(typing.get_args(Event))
    assert set(Supervisor._HANDLERS) == events


@pytest.mark.parametrize("message", [("ready", "the compiled path"), ("fatal", "stop"), "idle", None, RunJob(JOB),
                                     Dismiss()], ids=repr)
def test_the_supervisor_refuses_what_is_not_an_event(message):
    supervisor = Supervisor([], say=lambda line: None)
    with pytest.raises(InternalError, match="not an event the supervisor knows"):
        supervisor._on_event(0, message)
    assert not supervisor.stopping() and supervisor.outcome.fatal is None


def test_the_supervisor_acts_on_events():
    said = []
    supervisor = Supervisor([], say=said.append)
    supervisor._on_event(1, Ready("a path"))
    supervisor._on_event(2, Ready("another path"))
    assert supervisor.ready == {1, 2} and said == ["Trials train with a path."]
    supervisor._on_event(1, LanesTimed(", 3 trials at once in lanes, as measured (2.5x)"))
    supervisor._on_event(2, LanesTimed(", one trial at a time, because lanes were measured not to pay"))
    assert said[1:] == ["Lanes, chosen once the start trials were taken: 3 trials at once in lanes, as measured (2.5x)."]
    del said[1:]
    for _ in range(4):
        supervisor._on_event(1, TrialEnded("FAIL", "ValueError: x"))
    assert not supervisor.stopping()
    supervisor._on_event(1, TrialEnded("FAIL", "ValueError: last"))
    assert supervisor.stopping()
    assert supervisor.outcome.failure_streak == "5 trials failed in a row; the last with: ValueError: last"

    few = Supervisor([], say=said.append)  # too few for a streak, but none of the run's trials ended otherwise
    for reason in ("ValueError: x", "ValueError: y"):
        few._on_event(0, TrialEnded("FAIL", reason))
    few._all_failed()
    assert few.outcome.failure_streak == "all 2 trials of this run failed; the last with: ValueError: y"
    mixed = Supervisor([], say=said.append)
    for state in ("FAIL", "PRUNED", "FAIL"):
        mixed._on_event(0, TrialEnded(state, "ValueError: x" if state == "FAIL" else None))
    mixed._all_failed()
    assert mixed.outcome.failure_streak is None

    tracing = Supervisor([], say=said.append)  # explicit lanes: the start-up check traces them, which takes long
    tracing.job = dataclasses.replace(JOB, options=SearchOptions(lanes=4))
    del said[:]
    for index in (0, 1):
        tracing._on_event(index, Starting("model"))
    assert said == ["Each worker traces the step of its 4 lanes before its first trial (for a recurrent model, "
                    "tens of seconds; --lanes 1 skips it)."]
    supervisor._on_event(0, Starting("model"))  # lanes measured (the default): nothing to say
    assert len(said) == 1

    other = Supervisor([], say=said.append)
    other._on_event(0, Fatal("a bug", error=InternalError("a bug")))
    assert other.stopping() and other.outcome.fatal == "a bug" and str(other._error) == "a bug"
    other._on_event(0, StorageLost("down"))
    assert other.outcome.storage_error == "down"


def test_a_worker_reads_the_job_then_tasks_until_dismissed():
    context = mp.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    stop = context.RawValue("b", 0)
    link = ParentLink(stop, events=None, orders=receiver, parent=os.getppid())
    for order in (RunJob(JOB), Confirm(TASK), Dismiss()):
        sender.send(order)
    assert link.receive_job() == RunJob(JOB)
    assert link.next_task() == TASK
    assert link.next_task() is None
    stop.value = 1
    sender.send(Confirm(TASK))
    assert link.stopped() and link.next_task() is None


def test_the_confirmation_queue_hands_out_tasks_and_takes_them_back_once_from_a_dead_worker(optuna_study):
    sent, failures = [], []
    queue = ConfirmationQueue(lambda index, order: sent.append((index, order)), failures)
    queue.begin(Confirming(top=1, seeds=2), study=optuna_study)
    queue.pending = [TASK, Task(3, 8, TASK.config, TASK.params)]
    queue.lane_idle(0)
    queue.step(False, remaining=lambda: 0, live_running=lambda: [])
    assert sent == [(0, Confirm(TASK))] and queue.left()
    queue.forget(0, stopping=lambda: False)
    assert queue.pending[0] == TASK and not queue.in_training()
    queue.lane_idle(1)
    queue.step(False, remaining=lambda: 0, live_running=lambda: [])
    queue.forget(1, stopping=lambda: False)
    assert failures == ["trial 3 seed 7: its worker died twice"]
    queue.lane_idle(2)
    queue.step(False, remaining=lambda: 1, live_running=lambda: [])  # the study lost a trial: search again
    assert sent[-1] == (2, Dismiss()) and not queue.idle


def test_a_worker_that_opens_a_study_with_trials_draws_new_parameters():
    """A resumed study's (or a joining worker's) first trial is not a copy of trial 0: the
    TPE seed counts the trials the study holds; a fresh study's seed is what it was."""
    import optuna

    from lrsearch import internals
    from lrsearch.workers._job import sampler_seed

    def draw(trial):
        return trial.suggest_float("lr", 1e-7, 1.0, log=True)

    assert sampler_seed(3, 0, 0) == sampler_seed(3, 0, 0, held=0) != sampler_seed(3, 0, 0, held=3)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=sampler_seed(3, 0, 0)))
    study.optimize(draw, n_trials=3)
    resumed = optuna.Study(study.study_name, internals.storage_of(study),
                           sampler=optuna.samplers.TPESampler(seed=sampler_seed(3, 0, 0, held=3)))
    earlier = [t.params["lr"] for t in study.trials]
    assert draw(resumed.ask()) not in earlier
