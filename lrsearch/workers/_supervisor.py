"""The parent of a run's workers (`Supervisor`), which never imports TensorFlow: it takes a worker per slot
(`_processes`; a warm one from an earlier run of this Python session where one fits, `_pool`), hands each the job,
acts on the events they send, replaces one that dies (failing the trials it was running, `_recovery`), stops the
run after several failures in a row, hands out the confirmation (`_confirmations`), and handles Ctrl-C: the first
lets running trials finish, the second (or SIGTERM) kills them (marked failed). From the signal on, no lane starts
a trial (each looks at the run's stop flag under its claim), and workers are killed only while none of them writes
to the journal file. A run does not end while trials of live workers elsewhere are still RUNNING. A worker `Done`
with the job takes it again where the study needs more, else goes back to the warm pool.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from typing import Callable

from lrsearch import internals, results
from lrsearch.devices import Slot
from lrsearch.errors import InternalError, StorageUnavailableError
from lrsearch.results import worker_tag
from lrsearch.workers._claims import claimed_trials, keep_tickets
from lrsearch.workers._confirmations import ConfirmationQueue, Confirming
from lrsearch.workers._job import EXIT_FATAL, EXIT_STORAGE, MAX_FAILURES_IN_A_ROW, Job
from lrsearch.workers._messages import (ConfirmFailed, Confirmed, Done, Event, Fatal, Idle, LanesTimed, Ready, Starting,
                                        StorageLost, TrialEnded)
from lrsearch.workers._pool import pool
from lrsearch.workers._processes import WorkerProcesses
from lrsearch.workers._recovery import (describe_exit, fail_dead_local_trials, fail_trials_of, live_running,
                                        note_storage_lost)
from lrsearch.workers._study_lock import study_lock

#: Seconds between the parent's checks for trials whose heartbeats stopped.
STALE_CHECK_INTERVAL = 5.0
#: A worker's start-up, in order (`Starting`); it imports TensorFlow first.
STAGES = ("import", "storage", "study", "data", "model")


@dataclasses.dataclass
class Outcome:
    interrupted: bool = False
    terminated: bool = False  # by SIGTERM, which asks the run to end at once
    fatal: str | None = None
    failure_streak: str | None = None
    storage_error: str | None = None
    replaced_workers: int = 0
    confirm_failures: list[str] = dataclasses.field(default_factory=list)
    confirmation_left: bool = False  # the run stopped during its confirmation (a stopped search says so itself)
    never_started: str | None = None  # why the timeout ended the run before any worker was ready


class Supervisor:
    """Start, watch and replace the workers of one run."""

    def __init__(self, slots: list[Slot],
                 say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> None:
        self.slots, self.say = slots, say
        self.job: Job | None = None
        self.study = None
        self.on_tick: Callable[[], None] = lambda: None
        self.workers = WorkerProcesses(slots)
        self.outcome = Outcome()
        self.confirmations = ConfirmationQueue(self.workers.send, self.outcome.confirm_failures, say)
        self.ready: set[int] = set()  # workers past loading the data and the preflight check
        self.done: set[int] = set()  # workers that finished the job and wait, warm
        self.stages: dict[int, str] = {}  # worker index -> where its start-up is (`STAGES`), until it is ready
        self.training_path: str | None = None
        self.lanes_timed = False  # a worker said how many lanes it timed to pay
        self._waiting_note: str | None = None
        self._interrupts = 0
        self._said_lanes = False  # that workers trace lanes before their first trial
        self._kill_reason: str | None = None
        self._failures_in_a_row = 0
        self._trials_ended, self._last_failure = 0, None  # in this run; the last failed trial's reason
        self._deaths_without_trial = 0
        self._error: Exception | None = None  # what a worker's Fatal says `run` raises

    def prestart(self) -> None:
        """Give each slot a worker before the job is known: a warm one where the pool has
        one that fits, else a new one, which sets its device and imports TensorFlow
        (seconds) while the parent loads the study file (which may import TensorFlow too)
        and opens the storage; `run` hands them the job. Warm workers left over end."""
        for index in range(len(self.slots)):
            self._start(index)
        pool().stop_idle()

    def close(self) -> None:
        """After `run`, or instead of it: hand the workers back to the warm pool if they
        never got the job, else end them."""
        if self.job is None:
            for index in list(self.workers.processes):
                self.workers.release(index)
        self._kill_all("the run did not start")

    def stop(self) -> None:
        """No new trials; running ones finish."""
        self.workers.stop()

    def time_out(self, seconds: float) -> None:
        """The run's `seconds` have passed: stop; if no worker got ready, say where they were."""
        if self.training_path is None and not self.stopping():
            self.outcome.never_started = self._never_started(seconds)
        self.stop()

    def stopping(self) -> bool:
        return self.workers.stopped

    def remaining(self) -> int:
        return self.job.n_trials - claimed_trials(self.study)

    def run(self, job: Job, study, on_tick: Callable[[], None] | None = None,
            confirming: Confirming | None = None) -> Outcome:
        """Run `job` on `study` (an Optuna study on a storage from
        `lrsearch.storage._open.open_storage`) until it is full, and confirmed with `confirming`
        (which needs `job.confirm`). Raises, once the workers are gone, the error a
        worker's Fatal carries (InternalError, WriteError)."""
        self.job, self.study = job, study
        self.study_lock = study_lock(internals.storage_of(study), job.options.storage, internals.study_id(study))
        self.confirmations.begin(confirming, study, confirming and self.study_lock)
        self.on_tick = on_tick or self.on_tick
        storage = internals.storage_of(study)
        if hasattr(storage, "abort"):  # a second Ctrl-C ends a wait for the storage
            storage.abort = lambda: self._kill_reason is not None
        for index in self.workers.processes:
            self.workers.hand(index, job)
        main_thread = threading.current_thread() is threading.main_thread()  # only it may handle signals
        previous = {signum: signal.signal(signum, self._on_signal)
                    for signum in ((signal.SIGINT, signal.SIGTERM) if main_thread else ())}
        try:
            self._supervise()
        except StorageUnavailableError as exc:
            self.outcome.storage_error = str(exc)
        finally:
            self._kill_all(self._kill_reason or "the run was stopped")
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self.outcome.storage_error:
            note_storage_lost(self.study)  # the next run names it in the trials left RUNNING
        else:
            fail_dead_local_trials(self.study)
            self.confirmations.release()
        if self._error is not None:
            raise self._error
        self._all_failed()
        self.outcome.confirmation_left = self.confirmations.begun() and self.confirmations.left()
        return self.outcome

    def _supervise(self) -> None:
        """Start the workers the run needs, then tick until none is left here and none is
        awaited elsewhere, failing trials whose heartbeats stopped now and then."""
        fail_dead_local_trials(self.study)
        results.fail_stale_trials(self.study)
        self._keep_tickets(len(self.slots))
        if self._work_left():
            for index in range(len(self.slots)):
                if index not in self.workers.processes:
                    self._start(index)
        checked = time.monotonic()
        while self.workers.processes or self._waiting_for_others():
            self._tick()
            if time.monotonic() - checked >= STALE_CHECK_INTERVAL:
                results.fail_stale_trials(self.study)
                self._keep_tickets()
                checked = time.monotonic()
            time.sleep(0.25)

    def _keep_tickets(self, workers: int = 0) -> None:
        """Where workers claim by ticket (`_claims.keep_tickets`): tickets for this run's `workers` as it starts,
        later for the trials running, made while workers start and train rather than when they claim."""
        if not self.stopping():
            keep_tickets(self.study, self.study_lock, self.job.n_trials, workers)

    def _tick(self) -> None:
        """Kill what the run's stop asks to, read the workers' events, replace the dead, hand
        out the confirmation, and let the caller update its display."""
        if self._kill_reason:
            self._kill_all(self._kill_reason)
        elif self.stopping():
            self._kill_unready()
        self._drain_events()
        self._reap()
        self.confirmations.step(self.stopping(), self.remaining, self._live_running)
        self.on_tick()

    def _waiting_for_others(self) -> bool:
        """With no worker left here: start them again if the study lost trials (one
        elsewhere failed), and keep the run going while trials of live workers elsewhere
        are RUNNING (failing those whose heartbeats stop), so that it never ends on a
        trial that nobody will finish."""
        if self.stopping():
            return False
        fail_dead_local_trials(self.study)  # their retries are work left
        if self._work_left():
            for index in range(len(self.slots)):
                self._start(index)
            return True
        return bool(self._live_running())

    def _work_left(self) -> bool:
        """Trials to claim, or a confirmation not finished."""
        return self.remaining() > 0 or self.confirmations.left()

    def _live_running(self) -> list[str]:
        """The workers of RUNNING trials that may still finish them; says once which run
        elsewhere than in this run's workers."""
        tags, heartbeats = live_running(self.study)
        ours = {worker_tag(process.pid) for process in self.workers.processes.values()}
        others = sorted(set(tags) - ours)
        if others:
            note = (f"Waiting for {len([t for t in tags if t not in ours])} trial(s) running in {', '.join(others)}"
                    + (" (a trial whose heartbeats stop is failed)" if heartbeats else "") + ".")
            if note != self._waiting_note:
                self.say(note)
                self._waiting_note = note
        return tags

    # ----------------------------------------------------------------------- processes

    def _start(self, index: int) -> None:
        self.workers.start(index)
        self.stages[index] = STAGES[0]
        if self.job is not None:
            self.workers.hand(index, self.job)

    def _reap(self) -> None:
        """Replace workers that died where the run goes on; hand those done with the job back
        to the warm pool, from which a study that needs more takes them again."""
        for index in sorted(self.done):
            self._forget(index, warm=True)
            if not self.stopping() and self._work_left():
                self._start(index)
        for index, process in list(self.workers.processes.items()):
            if process.is_alive():
                continue
            process.join()
            self._forget(index)
            code = process.exitcode
            if code in (EXIT_FATAL, EXIT_STORAGE):
                continue
            if code != 0:
                self._fail_trials_of(process.pid, f"worker died: {describe_exit(code)}")
                self._deaths_without_trial += 1
                if self._deaths_without_trial >= 3 and not self.stopping():
                    self.outcome.fatal = (f"workers keep dying ({describe_exit(code)}) before finishing a trial; "
                                          f"run with --workers 1 --verbose to see why.")
                    self.stop()
            if self.stopping() or not self._work_left():
                continue
            if code != 0:
                self.outcome.replaced_workers += 1
            self._start(index)

    def _forget(self, index: int, warm: bool = False) -> None:
        """Drop a worker that ended (or, `warm`, finished the job: back to the pool), reading
        what it sent before; its confirmation tasks go back to the queue."""
        self._drain_events([index])
        if warm:
            self.workers.release(index)
        else:
            self.workers.close(index)
        self.ready.discard(index)
        self.done.discard(index)
        self.stages.pop(index, None)
        self.confirmations.forget(index, self.stopping)

    def _fail_trials_of(self, pid: int, reason: str, interrupted: bool = False) -> None:
        held_lock = self.workers.claim_lock.free_if_held_by(pid)
        if self.study is None:  # it never had a job
            return
        fail_trials_of(self.study, pid, held_lock, reason, interrupted)

    def _kill_all(self, reason: str) -> None:
        self._kill(list(self.workers.processes), reason)

    def _kill_unready(self) -> None:
        """Stopping: end the workers still loading data or checking the model (which may
        hang in the study file's code); they hold no trial."""
        self._drain_events()
        self._kill([index for index in self.workers.processes if index not in self.ready],
                   "the run stopped while the worker was starting")

    def _kill(self, indices: list[int], reason: str) -> None:
        """Kill workers `indices` while none writes to the journal, then fail their trials for `reason`."""
        processes = {index: self.workers.processes[index] for index in indices}
        if not processes:
            return
        self.workers.kill(list(processes), self.job.options.storage if self.job else None)
        for index, process in processes.items():
            self._forget(index)
            self._fail_trials_of(process.pid, reason, interrupted=True)

    def _never_started(self, seconds: float) -> str:
        """Why no training started within the run's `seconds`: where the furthest worker's
        start-up was."""
        stage = max(self.stages.values(), key=STAGES.index, default=STAGES[0])
        path, what = self.job.study_path, "trial" if self.remaining() > 0 else "confirmation training"
        if stage == "data":
            return (f"data() of {path} did not return within the timeout ({seconds:g} s), so no {what} could "
                    f"start; check that it returns when called alone, or give a longer timeout.")
        doing = {"import": "importing TensorFlow", "storage": "opening the storage",
                 "study": f"loading the study file {path}",
                 "model": f"building the model with build_model() of {path} and checking it"}[stage]
        return (f"no {what} started within the timeout ({seconds:g} s): the workers were still {doing}; give a "
                f"longer timeout.")

    def _on_signal(self, signum, frame) -> None:
        """Ctrl-C: stop gracefully, or at once the second time; SIGTERM: at once. The main
        loop does the killing, so that this handler never races it."""
        self.outcome.interrupted = True
        self.stop()
        if signum == signal.SIGTERM:
            self.outcome.terminated = True
            self._kill_reason = "the run was terminated (SIGTERM)"
            print("\nTerminated (SIGTERM): running trials stop now.", file=sys.stderr, flush=True)
            return
        self._interrupts += 1
        if self._interrupts == 1:
            print("\nStopping: running trials finish, no new ones start (Ctrl-C again to stop now).",
                  file=sys.stderr, flush=True)
        else:
            self._kill_reason = "the run was stopped by a second Ctrl-C"

    # ----------------------------------------------------------------------- events

    def _drain_events(self, indices=None) -> None:
        self.workers.receive(self._on_event, indices)

    def _on_event(self, index: int, event: Event) -> None:
        """Act on `event` from worker `index`; InternalError for a message that is not an event."""
        handler = self._HANDLERS.get(type(event))
        if handler is None:
            raise InternalError(f"worker {index} sent {event!r}, which is not an event the supervisor knows")
        handler(self, index, event)

    def _on_starting(self, index: int, event: Starting) -> None:
        self.stages[index] = event.stage
        lanes = self.job.options.lanes if self.job else None
        if event.stage == "model" and lanes and lanes > 1 and self.training_path is None and not self._said_lanes:
            self._said_lanes = True  # the start-up check traces the lanes' step
            self.say(f"Each worker traces the step of its {lanes} lanes before its first trial (for a recurrent "
                     f"model, tens of seconds; --lanes 1 skips it).")

    def _on_ready(self, index: int, event: Ready) -> None:
        self.ready.add(index)
        self.stages.pop(index, None)
        if self.training_path is None:
            self.training_path = event.training_path
            self.say(f"Trials train with {event.training_path}.")

    def _on_lanes_timed(self, index: int, event: LanesTimed) -> None:
        if not self.lanes_timed:
            self.lanes_timed = True
            self.say(f"Lanes, chosen once the start trials were taken: {event.clause.removeprefix(', ')}.")

    def _on_fatal(self, index: int, event: Fatal) -> None:
        self.outcome.fatal = event.message
        self._error = self._error or event.error
        self.stop()

    def _on_storage_lost(self, index: int, event: StorageLost) -> None:
        self.outcome.storage_error = event.message
        self.stop()

    def _on_done(self, index: int, event: Done) -> None:
        self.done.add(index)

    def _on_idle(self, index: int, event: Idle) -> None:
        self.confirmations.lane_idle(index)

    def _on_confirmed(self, index: int, event: Confirmed) -> None:
        self._deaths_without_trial = 0
        self.confirmations.confirmed(index, event.task, event.value, event.seconds)

    def _on_confirm_failed(self, index: int, event: ConfirmFailed) -> None:
        self.confirmations.failed(index, event.task, event.reason)

    def _on_trial_ended(self, index: int, event: TrialEnded) -> None:
        self._deaths_without_trial = 0
        self._trials_ended += 1
        self._failures_in_a_row = self._failures_in_a_row + 1 if event.state == "FAIL" else 0
        self._last_failure = event.fail_reason
        if self._failures_in_a_row >= MAX_FAILURES_IN_A_ROW and not self.stopping():
            self.outcome.failure_streak = (f"{self._failures_in_a_row} trials failed in a row; "
                                           f"the last with: {event.fail_reason}")
            self.stop()

    def _all_failed(self) -> None:
        """A run whose every trial failed, too few for a streak, ends as a streak does."""
        if (self.outcome.failure_streak is None and 0 < self._trials_ended == self._failures_in_a_row
                and not (self.outcome.interrupted or self.outcome.terminated)):
            self.outcome.failure_streak = (f"all {self._trials_ended} trials of this run failed; "
                                           f"the last with: {self._last_failure}")

    _HANDLERS: dict[type, Callable[["Supervisor", int, Event], None]] = {
        Starting: _on_starting, Ready: _on_ready, LanesTimed: _on_lanes_timed, Fatal: _on_fatal,
        StorageLost: _on_storage_lost, Done: _on_done, Idle: _on_idle, Confirmed: _on_confirmed,
        ConfirmFailed: _on_confirm_failed, TrialEnded: _on_trial_ended,
    }
