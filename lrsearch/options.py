"""How a search runs: one object from `lrsearch run`'s flags or `search()`'s keywords to
every worker, holding each option's default once. None means "the study's own"."""

from __future__ import annotations

import dataclasses
import os

from lrsearch.errors import UsageError
from lrsearch.storage import DEFAULT_STORAGE
from lrsearch.study import MAX_SEED, check_name


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """The options of `lrsearch.search` (and `join`, which takes those up to `recycle`).

    `storage`: a journal file path or a database URL; `study_name`, `n_trials`, `epochs`
    and `seed` override the study's. `timeout` (seconds) stops starting new trainings.
    `workers` defaults to one per GPU (`gpus`: "all", "none" or "0,1"; `per_gpu` each),
    else one per CPU core. `lanes`: trials each worker trains at once (None or "auto": as suit
    the model and device, as measured; 1 repeats a one-worker run exactly). `accept_changes` resumes a study
    made with other settings; `recycle` restarts a worker after that many trials.
    `confirm` = (K, N) retrains the K best on N fresh seeds; True (the default) chooses K and
    N so that it costs at most `results.PRICED_SHARE` of the search's training time, or skips
    it (`results.price`); None or False: rank by each trial's own seed. `report`: True for
    ./lrsearch-report-NAME, a folder, or False; `bounds_from_find_lr` narrows the lr ranges
    by the LR range test first; `defaults_first`: a new study's first trials are the learning
    rates people start from (`lrsearch.lr.start_params`), then the sampler's. `joining`: this
    machine joins a study that another machine runs (`lrsearch.join`).
    """

    storage: str = DEFAULT_STORAGE
    study_name: str | None = None
    n_trials: int | None = None
    epochs: int | None = None
    seed: int | None = None
    timeout: float | None = None
    workers: int | None = None
    gpus: str = "all"
    per_gpu: int = 1
    lanes: int | None = None
    accept_changes: bool = False
    recycle: int = 50
    confirm: tuple[int, int] | bool | None = True
    report: bool | str | os.PathLike = True
    bounds_from_find_lr: bool = False
    defaults_first: bool = True
    joining: bool = False

    @classmethod
    def of(cls, **given) -> "SearchOptions":
        """The options from keywords; UsageError naming an unknown keyword or a wrong value."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise UsageError(f"unknown option(s) {unknown}; the options are {sorted(known - {'joining'})}.")
        if given.get("lanes") == "auto":  # as the command line spells None
            given = {**given, "lanes": None}
        options = cls(**given)
        options.check()
        return dataclasses.replace(options, storage=os.fspath(options.storage))

    def slots(self) -> list:
        """The worker slots these options ask for (`lrsearch.devices.plan`); UsageError if wrong."""
        import sys

        from lrsearch import devices

        gpus = devices.parse_gpus(self.gpus)
        if self.per_gpu > 1 and not gpus:
            print(f"note: --per-gpu {self.per_gpu} has no effect: no GPU is used, so workers go one per CPU core "
                  f"(--workers sets how many).", file=sys.stderr)
        return devices.plan(self.workers, gpus, self.per_gpu)

    def check(self) -> None:
        """UsageError naming the option whose value is wrong."""
        if not isinstance(self.storage, (str, os.PathLike)) or not str(self.storage):
            raise UsageError(f"storage must be a journal file path or a database URL, but got {self.storage!r}.")
        if self.study_name is not None:
            check_name(self.study_name)
        for name, low in (("n_trials", 1), ("epochs", 1), ("recycle", 1), ("workers", 1), ("per_gpu", 1),
                          ("lanes", 1), ("seed", 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                auto = " or None (measured, as --lanes auto; \"auto\" too)" if name == "lanes" else ""
                raise UsageError(f"{name} must be a whole number >= {low}{auto}, but got {value!r}.")
        if not isinstance(self.report, (bool, str, os.PathLike)):
            raise UsageError(f"report must be True (./lrsearch-report-NAME), a folder or False, but got "
                             f"{self.report!r}.")
        if self.seed is not None and self.seed > MAX_SEED:
            raise UsageError(f"seed must be a whole number from 0 to {MAX_SEED} (2**31 - 1), but got {self.seed!r}.")
        if self.timeout is not None and (isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float))
                                         or not self.timeout > 0):
            raise UsageError(f"timeout must be a number of seconds > 0, but got {self.timeout!r}.")
        confirm = self.confirm
        if not (confirm is None or isinstance(confirm, bool)) and (
                not isinstance(confirm, (tuple, list)) or len(confirm) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in confirm)):
            raise UsageError(f"confirm must be (K, N), how many top trials and fresh seeds each, both >= 1, True "
                             f"(priced to the search) or None; got {confirm!r}.")
