"""What a worker process keeps from one job to the next, warm in a Python session's pool (`_pool`): its device,
set once; the database storages it opened; and the last study's `TrialRunner` with its data, the preflight check
it passed and its kept compiled models, which a job of the same study (same file content or pickle, epochs, seed,
lanes option and ranges; as many lanes as the job's cap allows) reuses rather than load the data, check the model,
time lanes and trace again.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from pathlib import Path

from lrsearch import results
from lrsearch.devices import Slot
from lrsearch.workers._job import Job
from lrsearch.workers._link import ParentLink
from lrsearch.workers._messages import Setting, Starting


class Warm:
    """A worker's device, database storages and last trial runner, across its jobs; made
    first thing in the process, which has the environment it was spawned with then."""

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self._inherited = dict(os.environ)  # the environment the parent gave it last
        self._device: str | None = None
        self._databases: dict[str, object] = {}
        self._source: bytes | None = None  # `_source` of the study loaded last
        self._study = None  # that study, as loaded (the job's seed and ranges not applied)
        self._key: tuple | None = None  # what the runner below was made for
        self._runner = None

    def settle(self, setting: Setting | None) -> None:
        """Take on the parent's `setting` (its environment, but for the variables the slot
        sets; its working folder and import path), as a worker spawned now would have."""
        if setting is None:
            return
        for name in self._inherited.keys() - setting.environment.keys():
            os.environ.pop(name, None)
        os.environ.update(setting.environment)
        os.environ.update(self.slot.environment())
        self._inherited = setting.environment
        os.chdir(setting.folder)
        sys.path[:] = setting.path

    def device(self) -> str:
        """The slot's device, configured once, before TensorFlow runs anything (`configure_tensorflow`)."""
        if self._device is None:
            from lrsearch.devices import configure_tensorflow

            self._device = configure_tensorflow(self.slot)
        return self._device

    def storage(self, location: str):
        """The storage at `location` (`open_storage`): a database server's kept open from job to job, so that
        jobs add no connections; a file's opened afresh, as it may have been replaced since."""
        from lrsearch.storage import is_url, open_storage

        if not is_url(location) or location.startswith(("sqlite", "redis")):
            return open_storage(location, wait_to_open=True)
        if location not in self._databases:
            self._databases[location] = open_storage(location, wait_to_open=True)
        return self._databases[location]

    def runner(self, job: Job, study, link: ParentLink):
        """The `TrialRunner` of `job` on `study`, with the `Preflight` it passed (`runner.preflight`): the last
        job's if it trains the same, else a new one, which loads the data and checks the model. Raises what
        loading the study does."""
        from lrsearch.rangetest import apply_recorded_bounds
        from lrsearch.study import unpickle_study
        from lrsearch.training import TrialRunner, preflight

        link.tell(Starting("study"))
        source = _source(job)
        if source is None or source != self._source:
            self._study, self._source, self._key = unpickle_study(job.study_path, job.study_pickle), source, None
        study_file = apply_recorded_bounds(self._study.with_seed(job.seed), study)
        key = (job.epochs, job.options.lanes, study_file.settings, study_file.space)
        if key == self._key and (job.options.lanes is not None or self._runner.lanes <= job.lane_cap):
            results.write_study(study, steps_per_epoch=self._runner.steps_per_epoch())  # as its first trial did
            if self._runner.lanes_to_time is not None:  # not timed yet: at most this job's cap
                self._runner.lanes_to_time = job.lane_cap
            return self._runner
        self._runner = self._key = None  # the last study's data and models go first
        link.tell(Starting("data"))
        runner = TrialRunner(study_file, epochs=job.epochs, device=f"{socket.gethostname()}/{self.device()}")
        link.tell(Starting("model"))
        preflight(runner, job.options.lanes, job.lane_cap)
        self._runner, self._key = runner, key
        return runner


def _source(job: Job) -> bytes | None:
    """A digest of the job's study: its pickle, or its file's path and content; None if the file cannot be
    read (loading it then says why)."""
    if job.study_pickle is not None:
        return hashlib.sha256(job.study_pickle).digest()
    try:
        return hashlib.sha256(job.study_path.encode() + b"\0" + Path(job.study_path).read_bytes()).digest()
    except OSError:
        return None
