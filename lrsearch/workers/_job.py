"""The job every worker of a run does, and what both sides of the process boundary agree on.

`Job` is what the parent hands each worker; `open_study` opens its study in a storage with lrsearch's sampler and
pruner; `sampler_seed` gives each worker its own TPE seed. The exit codes tell the parent why a worker ended, and
`MAX_FAILURES_IN_A_ROW` is where both a worker and the parent stop on trials that keep failing.
"""

from __future__ import annotations

import dataclasses
import socket
import warnings
import zlib

from lrsearch.options import SearchOptions

#: A worker's exit code when the run must stop (told the parent with `Fatal`): not replaced.
EXIT_FATAL = 3
#: A worker's exit code when the storage stayed unavailable (told with `StorageLost`): not replaced.
EXIT_STORAGE = 4
#: Trials failed one after another that stop a run (the study file is likely wrong).
MAX_FAILURES_IN_A_ROW = 5


@dataclasses.dataclass(frozen=True)
class Job:
    """What every worker of a run does: the study (its file; pickled too when it was defined
    in Python, see `lrsearch.study.pickle_study`), what the run resolved from the study and
    the options (`n_trials`, `epochs`, `seed`, the study's `pruner`), and the options."""

    study_path: str
    study_name: str
    n_trials: int
    epochs: int
    seed: int
    options: SearchOptions
    confirm: bool = False  # once the study is full, retrain the trials the parent sends
    pruner: str | None = None  # `Settings.pruner`
    lane_cap: int = 32  # the most lanes a worker may choose
    workers: int = 1  # the run's workers, which share its trials
    study_pickle: bytes | None = None


def open_study(job: Job, seed: int | None, storage):
    """The Optuna study of `job` in `storage`, with lrsearch's sampler (its starts set by
    `start_from`) and pruner."""
    import optuna

    from lrsearch.training import make_pruner
    from lrsearch.workers._start_sampler import StartSampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed)
    return optuna.load_study(study_name=job.study_name, storage=storage, sampler=StartSampler(sampler),
                             pruner=make_pruner(job.pruner, job.epochs))


def start_from(job: Job, study, space) -> None:
    """Give `study`'s first trials (as `open_study` opened it) the starts of `space`
    (`lr.start_params`), unless the run asks the sampler to draw them too."""
    from lrsearch.lr import start_params

    study.sampler.starts = start_params(space) if job.options.defaults_first else []


def sampler_seed(study_seed: int, index: int, generation: int, held: int = 0) -> int:
    """The TPE seed of a worker: fixed by the study's seed, the worker's slot and how many
    workers that slot started before, this machine, and the trials the study `held` (taken by a
    worker, not enqueued) when the worker opened it, so that a run with one worker is repeatable while workers (and
    machines) of one study, and a resumed study's new trials, draw differently."""
    joined = f":{held}" if held else ""  # a fresh study's seeds stay what they were
    return zlib.crc32(f"{study_seed}:{index}:{generation}:{socket.gethostname()}{joined}".encode())
