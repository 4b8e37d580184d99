"""Does narrowing the learning-rate ranges with the LR range test (what
`lrsearch run --bounds-from-find-lr` does) reach a good configuration in fewer trials?

1. The range test on blobs with SGD: its suggestion and its wall time against one full
   200-epoch trial (`lrsearch.training.train`), both warm (TensorFlow imported, one
   untimed call each first), the median of a few repeats.
2. The same search twice per seed: over the study's full space, and over the space
   narrowed around the range test's per-optimizer suggestions
   (`lrsearch.rangetest.narrow_space`). One process, `study.optimize(TrialRunner(...))`,
   in-memory storage, lrsearch's sampler settings (TPE multivariate + group, seeded)
   and pruner. Counted: trials (pruned ones included) until the best val_accuracy
   reaches the target, at most --max-trials per search.

    .venv/bin/python benchmarks/find_lr_bounds.py                 # 3 seeds x up to 30 trials
    .venv/bin/python benchmarks/find_lr_bounds.py --seeds 5 --max-trials 40
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "blobs.py"), help="study file (default: blobs)")
    parser.add_argument("--target", type=float, default=0.83, help="val_accuracy to reach (default: 0.83)")
    parser.add_argument("--seeds", type=int, default=3, help="sampler seeds 0..N-1 (default: 3)")
    parser.add_argument("--max-trials", type=int, default=30, help="trials per search at most (default: 30)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (default: 3)")
    return parser.parse_args(argv)


def time_range_test(study, repeats: int) -> float:
    """Print the sgd range test's suggestion and timing; return one trial's seconds."""
    from lrsearch.rangetest import find_lr
    from lrsearch.training import train

    config = {"optimizer": "sgd", "lr": 0.1}
    train(study, config)  # warm-up: imports, first traces
    result = find_lr(study, "sgd")
    trial_s, test_s = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        train(study, config)
        trial_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = find_lr(study, "sgd")
        test_s.append(time.perf_counter() - started)
    trial, test = statistics.median(trial_s), statistics.median(test_s)
    print(f"Range test, sgd: {result.describe()}")
    print(f"  suggestion {result.suggestion:.3g} in [0.01, 1]: {0.01 <= result.suggestion <= 1}")
    print(f"  wall time (median of {repeats}): range test {test:.2f} s ({len(result.losses)} iterations), "
          f"one {study.settings.epochs}-epoch trial {trial:.2f} s, ratio {test / trial:.2f}")
    return trial


def trials_to_target(study_file, seed: int, target: float, max_trials: int) -> tuple[int | None, float, float]:
    """(trials until the best reaches `target` or None, best value, seconds)."""
    import optuna

    from lrsearch.training import TrialRunner, make_pruner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=make_pruner(study_file.settings.pruner, study_file.settings.epochs))
    reached: list[int] = []

    def stop_at_target(study, trial) -> None:
        # Keras metrics are float32: 415/500 = 0.83 arrives as 0.82999998.
        if trial.value is not None and trial.value >= target - 1e-6 and not reached:
            reached.append(trial.number + 1)
            study.stop()

    started = time.perf_counter()
    study.optimize(TrialRunner(study_file), n_trials=max_trials, callbacks=[stop_at_target], catch=(Exception,))
    best = max((t.value for t in study.trials if t.value is not None), default=float("nan"))
    return (reached[0] if reached else None), best, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    import optuna

    from lrsearch.rangetest import find_lr, narrow_space
    from lrsearch.study import load_study

    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = load_study(args.study)
    print(f"{study.path}: {study.settings.epochs} epochs, batch {study.settings.batch_size}; "
          f"target {study.settings.objective} >= {args.target}")
    trial_s = time_range_test(study, args.repeats)

    started = time.perf_counter()
    results = {optimizer: find_lr(study, optimizer) for optimizer in study.space.optimizers}
    tests_s = time.perf_counter() - started
    narrowed = narrow_space(study.space, {o: r.suggestion for o, r in results.items()})
    print(f"\nRange tests for {', '.join(results)}: {tests_s:.1f} s (~{tests_s / trial_s:.1f} trials); suggestions "
          + ", ".join(f"{o} {r.suggestion:.3g}" for o, r in results.items()))
    print(f"  full:     lr {study.space.lr}, peak_lr {study.space.peak_lr}")
    print(f"  narrowed: lr ({narrowed.lr[0]:.3g}, {narrowed.lr[1]:.3g}), "
          f"peak_lr ({narrowed.peak_lr[0]:.3g}, {narrowed.peak_lr[1]:.3g})")
    arms = {"full": study, "narrowed": dataclasses.replace(study, space=narrowed)}

    print(f"\nTrials until best {study.settings.objective} >= {args.target} (at most {args.max_trials}):")
    print(f"{'seed':>4}  {'full':>16}  {'narrowed':>16}")
    counts: dict[str, list[int]] = {arm: [] for arm in arms}
    for seed in range(args.seeds):
        cells = []
        for arm, arm_study in arms.items():
            trials, best, seconds = trials_to_target(arm_study, seed, args.target, args.max_trials)
            counts[arm].append(trials if trials is not None else args.max_trials + 1)
            shown = str(trials) if trials is not None else f">{args.max_trials} (best {best:.4f})"
            cells.append(f"{shown} ({seconds:.0f} s)")
        print(f"{seed:>4}  {cells[0]:>16}  {cells[1]:>16}", flush=True)
    for arm, values in counts.items():
        misses = sum(v > args.max_trials for v in values)
        print(f"{arm:>8}: median {statistics.median(values):g} trials, mean {statistics.mean(values):.1f} "
              f"(a miss counts as {args.max_trials + 1}; {misses} miss(es))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
