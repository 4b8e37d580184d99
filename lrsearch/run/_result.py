"""What a search ended with: the study, its pick and the pick's values on fresh seeds."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from lrsearch.results import Confirmation, TrialRecord


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What a search ended with. `best` is the pick (`lrsearch.results.rank`: by the mean
    over fresh seeds where confirmed), None if no trial completed; `confirmation` its
    values on those seeds; `outcome` one of "finished", "nothing to do" (the study was full
    and confirmed already), "interrupted" (Ctrl-C) or "timed out"; `report` the report
    folder, if one was written."""

    study: optuna.Study
    best: TrialRecord | None
    confirmation: Confirmation | None
    outcome: str
    report: Path | None = None

    @property
    def interrupted(self) -> bool:
        return self.outcome == "interrupted"

    def export(self, path: str | os.PathLike, *, top: int | None = None, fmt: str | None = None) -> Path:
        """Write the best configuration (or the `top` best) to JSON or YAML, as `lrsearch
        export` does; `lrsearch.load_config` reads it back."""
        from lrsearch.export import exported_configs, write

        return write(exported_configs(self.study, top=top), path, fmt=fmt, many=top is not None)


def result_of(study, outcome, timer, folder: Path | None) -> SearchResult:
    """The result of a search of `study` whose supervisor ended with `outcome` (None: there
    was nothing to do) under `timer`, its report in `folder`."""
    from lrsearch.results import confirmations, rank, read_study, read_trials

    confirmed = confirmations(study)
    ranked = rank(read_trials(study), study.direction.name.lower(), confirmed, read_study(study).objective)
    best = ranked[0] if ranked else None
    ended = ("nothing to do" if outcome is None else "interrupted" if outcome.interrupted
             else "timed out" if timer.expired else "finished")
    return SearchResult(study=study, best=best, confirmation=best and confirmed.get(best.number), outcome=ended,
                        report=folder)
