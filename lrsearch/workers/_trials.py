"""The trial loop of a worker process: claim a trial, run it, tell the parent how it ended, in
`runner.lanes` threads at once (`lrsearch.training._lanes`), until the study holds `n_trials`, the
worker ran `options.recycle` trials (then it exits and is replaced: TensorFlow keeps memory for
each model it traced, even after `clear_session`), the run says stop or is gone, or trials keep
failing.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from lrsearch import internals, results
from lrsearch.errors import InternalError
from lrsearch.results import worker_tag
from lrsearch.workers._claims import Claim
from lrsearch.workers._job import MAX_FAILURES_IN_A_ROW, Job
from lrsearch.workers._link import ParentLink
from lrsearch.workers._messages import LanesTimed, TrialEnded

#: Seconds between a worker's sweeps for trials whose heartbeats stopped (the parent sweeps too).
SWEEP_INTERVAL = 5.0


def _nothing() -> None:
    pass


def run_trials(job: Job, study, runner, claim: Callable[[], Claim], link: ParentLink) -> bool:
    """Claim and run trials until the study holds `n_trials`, `recycle` trials ran, the run
    says stop or is gone, or trials keep failing; in `runner.lanes` threads at once, each
    with its own `claim()`. Where the preflight left the lanes to time, they are timed
    (`TrialRunner.time_lanes`) after a trial once the study's start trials are all taken:
    those, the likeliest to be good, finish as soon as they can. True if the study is full.
    Raises the StudyFileExit or InternalError that ended a trial."""
    search = _Search(job, study, runner, link)
    threads: list[threading.Thread] = []

    def add_lanes() -> None:
        for i in range(len(threads) + 1, runner.lanes):
            threads.append(threading.Thread(target=search.loop, args=(claim(),), name=f"lrsearch-lane-{i}",
                                            daemon=True))
            threads[-1].start()

    def time_lanes() -> None:
        if runner.lanes_to_time is None:  # nothing to time: no read of the study's trials
            return
        left = max(0, job.n_trials - len(study.get_trials(deepcopy=False)))
        if (clause := runner.time_lanes(trials_left=-(-left // job.workers))) is not None:
            link.tell(LanesTimed(clause))
            add_lanes()

    add_lanes()
    search.loop(claim(), after_starts=time_lanes)
    for thread in threads:
        thread.join()
    if search.ended:
        raise search.ended[0]
    return search.full


class _Search:
    """What the threads of `run_trials` share: the trials they started, the failures in a
    row, whether the study is full, and what ends the worker: a study file's attempt to
    end the process, or lrsearch's own bug."""

    def __init__(self, job: Job, study, runner, link: ParentLink) -> None:
        self.job, self.study, self.runner, self.link = job, study, runner, link
        self.tag = worker_tag()
        self.lock = threading.Lock()
        self.started = 0
        self.failures_in_a_row = 0
        self.swept: float | None = None  # when (monotonic) this process last swept for stale trials
        self.full = False
        self.ended: list = []  # a StudyFileExit or InternalError

    def _go_on(self) -> bool:
        with self.lock:
            if (self.full or self.ended or self.started >= self.job.options.recycle
                    or self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW):  # failing trials take milliseconds: don't
                return False  # race through the study before the parent reads the streak and stops the run
            self.started += 1
        return not self.link.stopped()  # told to stop, or the run itself is gone

    def loop(self, claim: Claim, after_starts: Callable[[], None] = _nothing) -> None:
        """One lane: claim a trial and run it, as long as `_go_on` says; `after_starts()` once,
        after a trial of its own ended, when the study's start trials (`StartSampler.starts`)
        were all taken."""
        current: list = [None]  # the trial being run
        objective = self._objective(claim, current)
        study = self.study
        starts = len(getattr(study.sampler, "starts", ()))

        def run_one() -> None:
            if not self.link.stopped():  # else the run stopped while this lane waited for its claim: back out
                study.optimize(objective, n_trials=1, catch=(Exception,))

        while self._go_on():
            if not claim.tickets:  # by ticket no count needs it: the parent's sweeps serve, one read a machine
                self._sweep()
            current[0] = None
            claim.acquire()
            try:
                if not claim.start(study, self.job.n_trials, run_one):
                    self.full = True
                    return
            finally:
                claim.release()
            if self.ended or current[0] is None:
                return
            self._ended(internals.trial_id(current[0]))
            if current[0].number + 1 >= starts and not self.link.stopped():
                after_starts()
                after_starts = _nothing

    def _sweep(self) -> None:
        """Interrupt the trials whose heartbeats stopped, before a claim rather than under it (the
        count under the claim sees them; of two processes that fail one trial, one wins), and at
        most every SWEEP_INTERVAL seconds, since a sweep reads every running trial."""
        with self.lock:
            if self.swept is not None and time.monotonic() - self.swept < SWEEP_INTERVAL:
                return
            self.swept = time.monotonic()
        results.fail_stale_trials(self.study)

    def _objective(self, claim: Claim, current: list) -> Callable:
        """The objective of one lane's trials: mark the trial as this worker's, free the claim
        lock once Optuna created it, and record why it failed."""
        import optuna

        from lrsearch.errors import StudyFileExit
        from lrsearch.study import problem_of

        def objective(trial):
            results.write_worker(trial, self.tag)  # under the claim: a worker killed now leaves a trial that names it
            claim.release()
            current[0] = trial
            try:
                return self.runner(trial)
            except optuna.TrialPruned:
                raise
            except Exception as exc:
                results.write_failure(trial, problem_of(exc))
                if isinstance(exc, (StudyFileExit, InternalError)):
                    self.ended.append(exc)
                raise

        return objective

    def _ended(self, trial_id: int) -> None:
        """Count a trial that ended toward the failures in a row, and tell the parent."""
        trial = results.read_trial(internals.storage_of(self.study).get_trial(trial_id))
        with self.lock:
            self.failures_in_a_row = self.failures_in_a_row + 1 if trial.state == "FAIL" else 0
        self.link.tell(TrialEnded(trial.state, trial.fail_reason))
