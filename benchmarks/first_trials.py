"""What a search's first trials are worth, for each way of choosing them (`STARTS`):
trials to a study's target, the best value within budgets of 10, 20 (and 60) trials, the
held-out value of each budget's pick (its configuration retrained on fresh seeds) and the
seconds to the target, on blobs and the suite.

Each search runs in this process, one trial at a time (as `lrsearch run --workers 1 --lanes
1` does), on an in-memory study: lrsearch's trial runner, callback and kept compiled models,
the start's sampler seeded by the search's seed, which also seeds the trials' training. A
budget of 10 is trials 0-9. Trial counts do not depend on the machine's speed; seconds do.

    .venv/bin/python benchmarks/first_trials.py --studies digits,friedman_mlp --seeds 3
    .venv/bin/python benchmarks/first_trials.py --studies blobs --budget 60 --starts defaults,tpe
    .venv/bin/python benchmarks/first_trials.py --starts defaults --pruner median
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import optuna  # noqa: E402
import run_suite  # noqa: E402  (this script's folder is on sys.path)
import time_to_target  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: Ways to choose a search's first trials; each is (starts, TPE's n_startup_trials), where
#: starts is "usual" (lrsearch's `lr.STARTS`), "range test" (those optimizers at the rate
#: the LR range test suggests) or None, and "qmc" draws the first 10 from Sobol points.
STARTS = {
    "defaults": ("usual", 10),  # lrsearch's default: the usual rates, then TPE's own random start
    "tpe": (None, 10),  # Optuna's: TPE from the first trial (`--no-defaults-first`)
    "usual+tpe": ("usual", 0),  # the usual rates, then TPE modelling from the next trial on
    "range-test+tpe": ("range test", 0),
    "qmc": ("qmc", 10),  # Optuna's QMCSampler (scrambled Sobol) for the first 10, then TPE
}
HELD_OUT_SEEDS = (10_007, 10_009)


def study_path(name: str) -> Path:
    return time_to_target.BLOBS if name == "blobs" else run_suite.STUDIES[name]


def range_test_starts(study) -> list[tuple[str, dict]]:
    """`lr.STARTS` with each optimizer's learning rate replaced by its range test's suggestion."""
    from lrsearch.lr import STARTS as USUAL
    from lrsearch.rangetest import find_lr

    return [(optimizer, {**values, "lr": find_lr(study, optimizer, momentum=values.get("momentum")).suggestion})
            for optimizer, values in USUAL]


class QmcThenTpe(optuna.samplers.BaseSampler):
    """Optuna's QMCSampler (scrambled Sobol) for trials numbered below `count`, `tpe` after."""

    def __init__(self, tpe, seed: int, count: int = 10) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.qmc = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                                  warn_independent_sampling=False)
        self.tpe, self.count = tpe, count

    def _pick(self, trial):
        return self.qmc if trial.number < self.count else self.tpe

    def infer_relative_search_space(self, study, trial):
        return self._pick(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._pick(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, name, distribution):
        return self._pick(trial).sample_independent(study, trial, name, distribution)

    def before_trial(self, study, trial):
        self._pick(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self._pick(trial).after_trial(study, trial, state, values)


def make_sampler(start: str, runner, seed: int, range_starts):
    """The sampler of one search with `start`: lrsearch's `StartSampler` over TPE as a run's
    worker makes it, with the start's starts and TPE's startup trials."""
    from lrsearch.lr import start_params
    from lrsearch.workers._start_sampler import StartSampler

    kind, startup = STARTS[start]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        tpe = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed,
                                         n_startup_trials=startup)
    if kind == "qmc":
        return QmcThenTpe(tpe, seed)
    space = runner.study.space
    starts = {"usual": lambda: start_params(space), "range test": lambda: start_params(space, range_starts),
              None: list}[kind]()
    return StartSampler(tpe, starts)


@dataclasses.dataclass
class Search:
    trials: list  # FrozenTrials by number
    ends: list  # seconds from the search's start to each trial's end, by number
    seconds: float


def search(runner, sampler, seed: int, budget: int, pruner: str | None = None) -> Search:
    from lrsearch.training import make_pruner

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, sampler=sampler, direction=runner.settings.direction,
                                pruner=make_pruner(pruner, runner.epochs))
    runner.settings = dataclasses.replace(runner.settings, seed=seed)  # the trials' training seeds
    ends: list[float] = []
    started = time.perf_counter()
    study.optimize(runner, n_trials=budget, catch=(Exception,),
                   callbacks=[lambda study, trial: ends.append(time.perf_counter() - started)])
    return Search(sorted(study.trials, key=lambda t: t.number), ends, time.perf_counter() - started)


def held_out(runner, goal, trials) -> float:
    """The mean objective of the best complete trial among `trials`, retrained on
    `HELD_OUT_SEEDS` (a training that diverges counts as nan)."""
    from lrsearch.lr import LRConfig
    from lrsearch.results import read_trial

    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)]
    if not complete:
        return math.nan
    best = (max if goal.direction == "maximize" else min)(complete, key=lambda t: t.value)
    config = LRConfig.from_dict(read_trial(best).config)
    values = [runner.retrain(config, best.params, seed, best.number) for seed in HELD_OUT_SEEDS]
    return statistics.mean(math.nan if v is None else v for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", default="blobs,digits,text_embedding")
    parser.add_argument("--starts", default=",".join(STARTS), help=f"comma-separated subset of {', '.join(STARTS)}")
    parser.add_argument("--seeds", type=int, default=3, help="searches per study and start (seeds --seed + i)")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--budget", type=int, default=20, help="trials per search; budgets 10, 20, 60 up to it report")
    parser.add_argument("--pruner", choices=("median", "hyperband"), default=None,
                        help="Optuna's pruner in every search (`Settings.pruner`; default: none, as lrsearch's)")
    args = parser.parse_args(argv)
    starts = args.starts.split(",")
    if unknown := [s for s in starts if s not in STARTS]:
        parser.error(f"--starts: unknown {', '.join(unknown)}; choose from {', '.join(STARTS)}")
    from lrsearch.study import load_study
    from lrsearch.training import TrialRunner

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    budgets = [b for b in (10, 20, 60) if b <= args.budget]
    print(f"| study | start | trials to target (median; reached within {args.budget}) | "
          + " | ".join(f"best of {b} / held out" for b in budgets) + " | s to target | s a search |")
    print("|---|---|---|" + "---|" * len(budgets) + "---|---|")
    for name in args.studies.split(","):
        path = study_path(name)
        goal = time_to_target.Goal(str(path), time_to_target.study_target(path))
        study = load_study(str(path))
        range_starts = range_test_starts(study) if any(STARTS[s][0] == "range test" for s in starts) else None
        if range_starts:
            print(f"  {name}: range test starts {range_starts}", file=sys.stderr, flush=True)
        runner = TrialRunner(study)
        for start in starts:
            hits, to_target_s, seconds = [], [], []
            bests, helds = {b: [] for b in budgets}, {b: [] for b in budgets}
            for i in range(args.seeds):
                seed = args.seed + i
                done = search(runner, make_sampler(start, runner, seed, range_starts), seed, args.budget, args.pruner)
                hit = next((t.number for t in done.trials if t.state.name == "COMPLETE" and goal.reached(t.value)),
                           None)
                hits.append(None if hit is None else hit + 1)
                to_target_s.append(done.seconds if hit is None else done.ends[hit])
                seconds.append(done.seconds)
                for b in budgets:
                    bests[b].append(goal.best(done.trials[:b]))
                    helds[b].append(held_out(runner, goal, done.trials[:b]))
                print(f"  {name} {start} seed {seed}: target at trial {hits[-1]}, "
                      + ", ".join(f"best of {b} {bests[b][-1]:.4g} (held out {helds[b][-1]:.4g})" for b in budgets)
                      + f", {done.seconds:.0f} s", file=sys.stderr, flush=True)
            counted = [n if n is not None else args.budget + 1 for n in hits]  # a miss ranks last
            median_hit = statistics.median(counted)
            cells = " | ".join(f"{statistics.median(bests[b]):.4g} / {statistics.median(helds[b]):.4g}"
                               for b in budgets)
            print(f"| {name} ({goal}) | {start} | {median_hit:g}{'+' if median_hit > args.budget else ''} "
                  f"({sum(n is not None for n in hits)}/{args.seeds}) | {cells} | "
                  f"{statistics.median(to_target_s):.0f} | {statistics.median(seconds):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
