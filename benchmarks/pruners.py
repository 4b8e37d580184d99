"""Which Optuna pruner should lrsearch use? The same search on blobs with each candidate.

For each sampler seed, one search per pruner: `study.optimize(TrialRunner(...))` in one
process, in-memory storage, lrsearch's own sampler (`lrsearch.workers.open_study`: TPE
multivariate + group, seeded), every trial run to the end unless --stop-at-target. The
pruning callback stops diverged and stalled trials under every pruner, so `nop` (today's
default, `Settings.pruner=None`) measures those stops alone; `random` is the reference a
search must not need more trials than: Optuna's RandomSampler with those stops alone.
Printed per pruner: mean wall time of a search, epochs trained over all searches, best
val_accuracy (mean over seeds), trials until the best reaches the target (median; a miss
counts as --trials + 1), and time to the target: median seconds, and mean against `nop`
(a miss counts as the search's whole wall time, a lower bound).

    .venv/bin/python benchmarks/pruners.py                       # 5 pruners x 3 seeds x 30 trials
    .venv/bin/python benchmarks/pruners.py --pruners random,nop,hyperband --seeds 20 --trials 40 --stop-at-target
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna

from lrsearch.results import read_trial

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent


def _named(name: str | None):
    def make(epochs: int) -> optuna.pruners.BasePruner:
        from lrsearch.training import make_pruner  # imports Keras: not at --help

        return make_pruner(name, epochs)
    return make


# name -> the pruner for a search of `epochs` epochs per trial
CANDIDATES = {
    "nop": _named(None),  # lrsearch's default
    "median": _named("median"),
    "patient-median": lambda epochs: optuna.pruners.PatientPruner(_named("median")(epochs), patience=10),
    "successive-halving": lambda epochs: optuna.pruners.SuccessiveHalvingPruner(),
    "hyperband": _named("hyperband"),
}
#: The reference a search must beat on trials to the target: random sampling, no pruner.
RANDOM = "random"


@dataclass
class Search:
    """One search's outcome."""

    seconds: float
    epochs: int
    best: float
    trials_to_target: int | None
    seconds_to_target: float | None
    pruned: Counter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "blobs.py"), help="study file (default: blobs)")
    parser.add_argument("--target", type=float, default=0.83, help="val_accuracy to reach (default: 0.83)")
    parser.add_argument("--seeds", type=int, default=3, help="sampler seeds 0..N-1 (default: 3)")
    parser.add_argument("--trials", type=int, default=30, help="trials per search (default: 30)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the study's, 200 for blobs)")
    parser.add_argument("--pruners", default=",".join(CANDIDATES),
                        help=f"comma-separated subset of {', '.join(CANDIDATES)}, and {RANDOM} (RandomSampler, "
                             f"no pruner; default: all but {RANDOM})")
    parser.add_argument("--stop-at-target", action="store_true",
                        help="end each search at its first trial at the target (cheaper, for many seeds)")
    args = parser.parse_args(argv)
    args.pruners = [name.strip() for name in args.pruners.split(",") if name.strip()]
    unknown = [name for name in args.pruners if name not in CANDIDATES and name != RANDOM]
    if unknown or not args.pruners:
        parser.error(f"--pruners: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join([*CANDIDATES, RANDOM])}")
    for name in ("seeds", "trials", "epochs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    return args


def search(study_file, runner, name: str, seed: int, trials: int, target: float, stop_at_target: bool) -> Search:
    """Run `trials` trials of `study_file` with the pruner `name` and lrsearch's sampler
    seeded `seed` (for `RANDOM`: Optuna's RandomSampler and no pruner)."""
    from lrsearch.options import SearchOptions
    from lrsearch.workers import Job, open_study

    storage = optuna.storages.InMemoryStorage()
    study_name = f"pruners-{seed}"
    optuna.create_study(storage=storage, study_name=study_name, direction=study_file.settings.direction)
    job = Job(study_path=str(study_file.path), study_name=study_name, n_trials=trials, epochs=runner.epochs,
              seed=seed, options=SearchOptions())
    study = open_study(job, seed, storage)
    if name == RANDOM:
        study.sampler, study.pruner = optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()
    else:
        study.pruner = CANDIDATES[name](runner.epochs)
    reached: list[tuple[int, float]] = []
    started = time.perf_counter()

    def note_target(study, trial) -> None:
        # Keras metrics are float32: 415/500 = 0.83 arrives as 0.82999998.
        if trial.value is not None and trial.value >= target - 1e-6 and not reached:
            reached.append((trial.number + 1, time.perf_counter() - started))
            if stop_at_target:
                study.stop()

    study.optimize(runner, n_trials=trials, callbacks=[note_target], catch=(Exception,))
    seconds = time.perf_counter() - started
    best = max((t.value for t in study.trials if t.value is not None), default=float("nan"))
    epochs = sum(read_trial(t).epochs_run for t in study.trials)
    pruned = Counter(read_trial(t).pruned_reason for t in study.trials
                     if t.state == optuna.trial.TrialState.PRUNED)
    first = reached[0] if reached else (None, None)
    return Search(seconds, epochs, best, *first, pruned)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from lrsearch.study import load_study
    from lrsearch.training import TrialRunner, train

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # PatientPruner
    study = load_study(args.study)
    runner = TrialRunner(study, epochs=args.epochs)
    print(f"{study.path}: {runner.epochs} epochs, batch {study.settings.batch_size}; {args.seeds} seed(s) x "
          f"{args.trials} trials per pruner; target {study.settings.objective} >= {args.target}")
    train(study, {"optimizer": "sgd", "lr": 0.1}, epochs=1)  # warm-up: imports, first traces

    results: dict[str, list[Search]] = {name: [] for name in args.pruners}
    for seed in range(args.seeds):
        for name in args.pruners:
            result = search(study, runner, name, seed, args.trials, args.target, args.stop_at_target)
            results[name].append(result)
            pruned = ", ".join(f"{reason} {n}" for reason, n in sorted(result.pruned.items())) or "none"
            print(f"seed {seed} {name:>18}: {result.seconds:6.1f} s, {result.epochs:5d} epochs, best "
                  f"{result.best:.4f}, target at trial {result.trials_to_target or '-'}; pruned: {pruned}",
                  flush=True)

    def to_target(r: Search) -> float:
        return r.seconds_to_target if r.seconds_to_target is not None else r.seconds

    reference = statistics.mean(map(to_target, results["nop"])) if "nop" in results else None
    print(f"\n{'pruner':>18}  {'wall s':>7}  {'epochs':>7}  {'best':>6}  {'trials to target':>16}  "
          f"{'median s to target':>18}  {'time to target vs nop':>21}  misses")
    for name, runs in results.items():
        trials = statistics.median(r.trials_to_target or args.trials + 1 for r in runs)
        mean_to_target = statistics.mean(map(to_target, runs))
        median_to_target = statistics.median(map(to_target, runs))
        ratio = f"{mean_to_target / reference:.2f}" if reference else "-"
        misses = sum(r.trials_to_target is None for r in runs)
        print(f"{name:>18}  {statistics.mean(r.seconds for r in runs):7.1f}  {sum(r.epochs for r in runs):7d}  "
              f"{statistics.mean(r.best for r in runs):6.4f}  {trials:>16g}  {median_to_target:18.1f}  {ratio:>21}  "
              f"{misses}/{len(runs)}")
    print(f"(wall s: mean per search; epochs: total over {args.seeds} seed(s); trials to target: median, "
          f"a miss counts as {args.trials + 1}; time to target: a miss counts as the whole search)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
