"""`lrsearch confirm` as a library call: retrain the best trials of a stored study on fresh
seeds in worker processes and record each value, so that the summary, the report and the
export rank by the mean over seeds. Trainings recorded already are kept, so a stopped
confirmation resumes and larger `seeds` or `top` add to it."""

from __future__ import annotations

import os
from typing import Any

from lrsearch.errors import UsageError
from lrsearch.options import SearchOptions
from lrsearch.results import DEFAULT_SEEDS, DEFAULT_TOP
from lrsearch.run._result import SearchResult, result_of

#: The `SearchOptions` that a confirmation takes.
_OPTIONS = {"storage", "study_name", "timeout", "workers", "gpus", "per_gpu"}


def confirm(study_file: "str | os.PathLike | Any", *, top: int = DEFAULT_TOP, seeds: int = DEFAULT_SEEDS,
            **options) -> SearchResult:
    """Retrain the `top` best complete trials of the study file's study (a path, or a
    study from `lrsearch.define_study`) on `seeds` fresh seeds each, in worker processes,
    printing the progress and the summary as `search` does. `options`: `SearchOptions`'
    storage, study_name, timeout (seconds: stops starting trainings), workers, gpus and
    per_gpu. The result's `outcome` is "finished", "nothing to do" (all confirmed already),
    "interrupted" or "timed out". Raises UsageError for a study that is absent, has no
    complete trial or was made with other settings, and what `search` raises when its
    workers fail."""
    from lrsearch import results
    from lrsearch.run._search import TRIALS_PER_LANE, Timer, check_unchanged, finish, prestarted, supervise
    from lrsearch.study import pickle_study, resolve_study
    from lrsearch.workers import Confirming, Job

    for name, value in (("top", top), ("seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{name} must be a whole number >= 1, but got {value!r}.")
    for name in set(options) - _OPTIONS:
        raise UsageError(f"confirm takes none of search's {name} option; its options are {sorted(_OPTIONS)}.")
    options = SearchOptions.of(**options, confirm=(top, seeds), report=False)
    slots = options.slots()
    ref = resolve_study(study_file, storage=options.storage, study_name=options.study_name)
    study = ref.open()
    settings = ref.study.settings
    epochs = results.read_study(study).epochs or settings.epochs
    check_unchanged(study, ref.study_name, accept=False, objective=settings.objective, epochs=epochs,
                    batch_size=settings.batch_size, space=ref.study.space.to_dict())
    if not results.rank(study.get_trials(deepcopy=False), study.direction.name.lower(), {}):
        raise UsageError(f"study {ref.study_name!r} has no complete trial yet, so there is nothing to confirm.")
    confirming = Confirming(top, seeds, after_running=False)
    recorded_seed = results.read_study(study).seed  # the study's, which its trials and fresh seeds derive from
    tasks = results.plan(study, top, seeds)
    slots = slots[:len(tasks)]  # no more workers than trainings
    job = Job(study_path=str(ref.study.path), study_pickle=pickle_study(ref.study), study_name=ref.study_name,
              n_trials=0, epochs=epochs, seed=settings.seed if recorded_seed is None else recorded_seed,
              options=options, confirm=True, lane_cap=max(1, len(tasks) // (TRIALS_PER_LANE * max(1, len(slots)))))
    outcome, timer = None, Timer(options.timeout)
    if tasks:
        with prestarted(slots) as pool:
            outcome = supervise(pool, job, study, timer=timer, confirming=confirming)
    else:
        print(f"The top {top} trials are confirmed on {seeds} fresh seed(s) already.")
    in_python = ref.study.in_python
    hint = None if in_python else f"lrsearch confirm {study_file if isinstance(study_file, str) else ref.study.path}"
    finish(outcome, study, hint=hint, storage=ref.storage, in_python=in_python)
    return result_of(study, outcome, timer, None)

