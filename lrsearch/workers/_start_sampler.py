"""The sampler of a run's workers: TPE, but a study's first trials take the learning rates
people start from (`lrsearch.lr.start_params`). Trial numbers say which: trial i below the
number of starts takes start i, whichever worker creates it (or takes it waiting, a
ticket of `_claims`), so that a new study begins with them and a resumed one (whose
first trials exist) is not touched. The starts are not enqueued: a run stopped early
leaves none of them waiting.
"""

from __future__ import annotations

from typing import Any

import optuna

from lrsearch.internals import TrialsReadOnceATrial


class StartSampler(optuna.samplers.BaseSampler):
    """`base`, except that a trial numbered i < len(`starts`) takes the values of `starts[i]`
    for the parameters it names (where the distribution holds them); the sampler draws the
    rest. Parameters a trial has fixed (an enqueued trial) stay as they are. `base` reads the
    study's trials once a trial (`internals.TrialsReadOnceATrial`): with many workers each
    read is of every running trial."""

    def __init__(self, base: optuna.samplers.BaseSampler, starts: list[dict[str, Any]] | None = None) -> None:
        self.base = base
        self.starts = list(starts or [])

    def _start(self, trial) -> dict[str, Any] | None:
        return self.starts[trial.number] if trial.number < len(self.starts) else None

    def infer_relative_search_space(self, study, trial):
        return self.base.infer_relative_search_space(TrialsReadOnceATrial(study), trial)

    def sample_relative(self, study, trial, search_space):
        return {} if self._start(trial) is not None else self.base.sample_relative(
            TrialsReadOnceATrial(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        start = self._start(trial)
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
