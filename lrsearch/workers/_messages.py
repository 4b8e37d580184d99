"""The messages between the parent and its workers: small frozen dataclasses that pickle through the
multiprocessing pipes between them.

A worker sends `Event`s on its pipe to the parent (from any of its lanes' threads); the parent sends
`Order`s on its pipe to the worker: the job first, then, once the study is full and the run confirms,
the confirmation trainings one at a time and a dismissal. A worker that is `Done` with its job waits
for the next `RunJob`, of this run or of a later one in the same Python session.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrsearch.results import Task
    from lrsearch.workers._job import Job

# --------------------------------------------------------------------------- worker -> parent


@dataclasses.dataclass(frozen=True)
class Starting:
    """The worker reached `stage` of its start-up: "storage" (opening it), "study" (loading the study
    file), "data" (calling its data()) or "model" (building the model and checking it). Before the
    first, it imports TensorFlow."""

    stage: str


@dataclasses.dataclass(frozen=True)
class Ready:
    """The worker loaded the study and passed the preflight check; its trials train with `training_path`."""

    training_path: str


@dataclasses.dataclass(frozen=True)
class LanesTimed:
    """The worker timed its lanes after the start trials (`TrialRunner.time_lanes`); `clause` says how
    many it trains in, as the lanes clause of a training path."""

    clause: str


@dataclasses.dataclass(frozen=True)
class Fatal:
    """The run must stop, for `message` (which would be the same in every worker, so none is restarted).
    `error`: what the parent raises once the workers are gone (lrsearch's own bug, a full disk), rather
    than stopping the search as the study's fault."""

    message: str
    error: Exception | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True)
class StorageLost:
    """The storage stayed unavailable longer than the worker waits for it; the run stops."""

    message: str


@dataclasses.dataclass(frozen=True)
class TrialEnded:
    """A trial the worker ran ended in `state` ("COMPLETE", "PRUNED" or "FAIL", with `fail_reason`)."""

    state: str
    fail_reason: str | None


@dataclasses.dataclass(frozen=True)
class Done:
    """The worker ended its job (the run stopped, the study is full and confirmed, or it needs searching
    again) and waits, warm, for the next `RunJob`."""


@dataclasses.dataclass(frozen=True)
class Idle:
    """One of the worker's lanes waits for a confirmation training."""


@dataclasses.dataclass(frozen=True)
class Confirmed:
    """A confirmation training ended with `value` (None where it diverged) after `seconds`."""

    task: Task
    value: float | None
    seconds: float


@dataclasses.dataclass(frozen=True)
class ConfirmFailed:
    """A confirmation training raised, for `reason`; the run goes on."""

    task: Task
    reason: str


# --------------------------------------------------------------------------- parent -> worker


@dataclasses.dataclass(frozen=True)
class RunJob:
    """The job of the run: the first order, sent as soon as the parent has it, for slot `index`, whose
    `generation` counts the jobs the run handed to that slot before (they seed each worker's sampler);
    with the parent's `Setting`, which the worker takes on (it may have been spawned for an earlier run;
    None: it keeps its own)."""

    job: Job
    index: int = 0
    generation: int = 0
    setting: Setting | None = None


@dataclasses.dataclass(frozen=True)
class Setting:
    """A process's environment variables, working folder and import path."""

    environment: dict[str, str]
    folder: str
    path: tuple[str, ...]

    @classmethod
    def now(cls) -> "Setting":
        """This process's."""
        return cls(dict(os.environ), os.getcwd(), tuple(sys.path))


@dataclasses.dataclass(frozen=True)
class Confirm:
    """Retrain `task` on a free lane and send its `Confirmed` (or `ConfirmFailed`), then `Idle`."""

    task: Task


@dataclasses.dataclass(frozen=True)
class Dismiss:
    """No confirmation training is left for the worker (or the study must search again): it ends."""


Event = Starting | Ready | LanesTimed | Fatal | StorageLost | TrialEnded | Done | Idle | Confirmed | ConfirmFailed
Order = RunJob | Confirm | Dismiss
