"""The sampler of a run's workers: TPE, but a study's first trials take the learning rates
people start from (`lrsearch.lr.start_params`). Trial numbers say which: trial i takes
start i, less the trials numbered below it whose parameters were fixed beforehand (retries
of interrupted trials, enqueued ones: `results.fixed_beforehand`), whichever worker creates
it (or takes it waiting, a ticket of `_claims`), so that a new study begins with them, a
retry takes no start's place, and a resumed one (whose first trials exist) is not touched.
The starts are not enqueued: a run stopped early leaves none of them waiting.
"""

from __future__ import annotations

from typing import Any

import optuna

from lrsearch import results
from lrsearch.internals import TrialsReadOnceATrial


class StartSampler(optuna.samplers.BaseSampler):
    """`base`, except that the study's first trials take the values of `starts` in turn for
    the parameters they name (where the distribution holds them); the sampler draws the rest.
    A trial whose parameters were fixed beforehand takes no start. `base` reads the study's
    trials once a trial (`internals.TrialsReadOnceATrial`): with many workers each read is
    of every running trial."""

    def __init__(self, base: optuna.samplers.BaseSampler, starts: list[dict[str, Any]] | None = None) -> None:
        self.base = base
        self.starts = list(starts or [])

    def _start(self, study, trial) -> dict[str, Any] | None:
        """The start `trial` takes, or None: the i-th of the study's trials that takes one
        (`results.fixed_beforehand`: not) takes `starts[i]`."""
        if not self.starts or results.fixed_beforehand(trial):
            return None
        earlier = TrialsReadOnceATrial(study).trials()
        index = trial.number - sum(t.number < trial.number and results.fixed_beforehand(t) for t in earlier)
        return self.starts[index] if index < len(self.starts) else None

    def infer_relative_search_space(self, study, trial):
        return self.base.infer_relative_search_space(TrialsReadOnceATrial(study), trial)

    def sample_relative(self, study, trial, search_space):
        return {} if self._start(study, trial) is not None else self.base.sample_relative(
            TrialsReadOnceATrial(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        start = self._start(study, trial)
        if start is not None and param_name in start and _holds(param_distribution, start[param_name]):
            return start[param_name]
        return self.base.sample_independent(TrialsReadOnceATrial(study), trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


def _holds(distribution, value) -> bool:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return value in distribution.choices
    return distribution.low <= value <= distribution.high
