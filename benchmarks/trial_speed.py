"""Per-trial speed of lrsearch's fast runner against `model.fit`, with the objective of both.

The same learning-rate configurations are trained on a study (blobs by default, or
`--study`, at the study's epochs, objective and loss), each with
`model.fit(..., validation_data=...)`, with `lrsearch.training.train` (the fast epoch loop,
compiled from scratch: "fast") and through a search worker's kept compiled models
(`fastfit.Trainer`, as trials of a search run: "kept"), for several seeds. They are
interleaved - the order rotates from one configuration to the next - so that load from
other processes on the machine hits all alike. Each timing is a whole trial: model
build, compile (or load into a kept model) and training.

    .venv/bin/python benchmarks/trial_speed.py                    # blobs: 200 epochs, 5 seeds
    .venv/bin/python benchmarks/trial_speed.py --epochs 20 --seeds 1   # a quick look
    .venv/bin/python benchmarks/trial_speed.py --study benchmarks/suite/shapes_rgb.py --seeds 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
#: The seed's settings that learn (tutorial 000): momentum, Adam, plateau, decay, 1cycle.
CONFIGS = {
    "sgd 0.01 m0.9": dict(optimizer="sgd", lr=0.01, momentum=0.9),
    "adam 1e-3": dict(optimizer="adam", lr=1e-3),
    "sgd plateau p10": dict(optimizer="sgd", lr=0.01, momentum=0.9, schedule="plateau", patience=10, factor=0.1),
    "sgd time_decay 1e-4": dict(optimizer="sgd", lr=0.01, momentum=0.9, schedule="time_decay", decay=1e-4),
    "sgd one_cycle 0.1": dict(optimizer="sgd", lr=0.1, momentum=0.9, schedule="one_cycle", div=10.0),
}
SIDES = ("fit", "fast", "kept")
#: What the issue asks of the fast runner: speed on blobs, and a final objective as good.
MIN_SPEEDUP, MAX_OBJECTIVE_GAP = 10.0, 0.01


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the study's)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per configuration (default: 5)")
    parser.add_argument("--study", default=str(ROOT / "studies" / "blobs.py"), help="study file (default: blobs)")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), metavar="NAME",
                        help=f"configurations to run (default: all of {sorted(CONFIGS)})")
    args = parser.parse_args(argv)
    for name in ("epochs", "seeds"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, but got {getattr(args, name)}.")
    return args


def fit_with_keras(runner, config, epochs: int, seed: int) -> float:
    """One trial with `model.fit`: the objective at its last epoch."""
    import keras
    import optuna

    from lrsearch.lr import LearningRateMonitor, make_callbacks

    settings = runner.settings
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = runner.build(optuna.trial.FixedTrial({}), config)
    callbacks = [LearningRateMonitor(), *make_callbacks(config, settings.objective, settings.direction)]
    history = model.fit(*runner.train, validation_data=runner.val, epochs=epochs,
                        batch_size=settings.batch_size, callbacks=callbacks, verbose=0)
    return float(history.history[settings.objective][-1])


def fit_fast(study, config, epochs: int, seed: int) -> float:
    """One trial with lrsearch's fast runner: the objective at its last epoch."""
    from lrsearch.training import train

    return float(train(study, config, epochs=epochs, seed=seed)[study.settings.objective][-1])


def fit_kept(runner, config, epochs: int, seed: int) -> float:
    """One trial as a search worker runs it, through `runner`'s kept compiled models."""
    import optuna

    from lrsearch.lr import LearningRateMonitor, make_callbacks

    settings = runner.settings
    model, optimizer = runner.seeded_model(optuna.trial.FixedTrial({}), config, seed, fresh_names=True)
    callbacks = [LearningRateMonitor(), *make_callbacks(config, settings.objective, settings.direction)]
    history = runner.trainer.fit(model, optimizer, epochs=epochs, callbacks=callbacks, seed=seed)
    return float(history.history[settings.objective][-1])


def timed(function, *args) -> tuple[float, float]:
    started = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - started, value


def spread(values: list[float]) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {deviation:.4f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return summarize(measure(args.study, args.epochs, args.seeds, args.configs or list(CONFIGS)),
                     args.configs or list(CONFIGS))


def measure(study_path: str, epochs: int | None, seeds: int, names: list[str]) -> list[dict]:
    """Each configuration of `names` on each seed, on all three sides in a rotating order:
    one row per configuration and seed, with each side's seconds and objective."""
    import tensorflow as tf

    from lrsearch.lr import LRConfig
    from lrsearch.study import load_study
    from lrsearch.training import TrialRunner

    tf.get_logger().setLevel("ERROR")
    study = load_study(study_path)
    epochs = epochs or study.settings.epochs
    runner = TrialRunner(study, epochs=epochs)
    print(f"{study.name}: {epochs} epochs, batch {study.settings.batch_size}, {seeds} seed(s), "
          f"{len(names)} configuration(s), {study.settings.objective}; TensorFlow {tf.__version__}, "
          f"{os.cpu_count()} CPU(s)", flush=True)
    fit_with_keras(runner, LRConfig(**CONFIGS[names[0]]), 1, 0)  # warm-up: TensorFlow's own first-call costs
    fit_fast(study, LRConfig(**CONFIGS[names[0]]), 1, 0)
    fit_kept(runner, LRConfig(**CONFIGS[names[0]]), 1, 0)
    rows = []
    print(f"{'configuration':22} {'seed':>4} {'fit s':>7} {'fast s':>7} {'kept s':>7} {'fit/fast':>8} "
          f"{'fit/kept':>8} {'fit value':>9} {'fast value':>10} {'kept value':>10}")
    turn = 0
    for seed in range(seeds):
        for name in names:
            config = LRConfig(**CONFIGS[name])
            runs = {"fit": lambda: timed(fit_with_keras, runner, config, epochs, seed),
                    "fast": lambda: timed(fit_fast, study, config, epochs, seed),
                    "kept": lambda: timed(fit_kept, runner, config, epochs, seed)}
            order = SIDES[turn % 3:] + SIDES[: turn % 3]
            turn += 1
            result = {side: runs[side]() for side in order}
            row = {"name": name, **{f"{side}_s": result[side][0] for side in SIDES},
                   **{f"{side}_value": result[side][1] for side in SIDES}}
            rows.append(row)
            print(f"{name:22} {seed:>4} {row['fit_s']:7.2f} {row['fast_s']:7.2f} {row['kept_s']:7.2f} "
                  f"{row['fit_s'] / row['fast_s']:8.1f} {row['fit_s'] / row['kept_s']:8.1f} {row['fit_value']:9.4f} "
                  f"{row['fast_value']:10.4f} {row['kept_value']:10.4f}", flush=True)
    return rows


def speedups(rows: list[dict], side: str) -> list[float]:
    """model.fit's seconds over `side`'s ("fast" or "kept"), one per row."""
    return [row["fit_s"] / row[f"{side}_s"] for row in rows]


def summarize(rows: list[dict], names: list[str]) -> int:
    print(f"\n{'configuration':22} {'fit s/trial':>11} {'fast s/trial':>12} {'kept s/trial':>12}  "
          f"{'fit value':>17}  {'fast value':>17}  {'kept value':>17}")
    for name in [*names, "all"]:
        mine = [row for row in rows if name in (row["name"], "all")]
        seconds = [statistics.mean(row[f"{side}_s"] for row in mine) for side in SIDES]
        print(f"{name:22} {seconds[0]:11.2f} {seconds[1]:12.2f} {seconds[2]:12.2f}  "
              + "  ".join(f"{spread([row[f'{side}_value'] for row in mine]):>17}" for side in SIDES))
    ratios = {side: speedups(rows, side) for side in ("fast", "kept")}
    for side, values in ratios.items():
        total = sum(row["fit_s"] for row in rows) / sum(row[f"{side}_s"] for row in rows)
        print(f"per-trial time ratio model.fit / {side}: median {statistics.median(values):.1f}x, "
              f"min {min(values):.1f}x, max {max(values):.1f}x; total time ratio {total:.1f}x")
    fit_value = statistics.mean(row["fit_value"] for row in rows)
    gaps = {side: statistics.mean(row[f"{side}_value"] for row in rows) - fit_value for side in ("fast", "kept")}
    print(f"mean final objective: model.fit {fit_value:.4f}, fast {fit_value + gaps['fast']:.4f} "
          f"({gaps['fast']:+.4f}), kept {fit_value + gaps['kept']:.4f} ({gaps['kept']:+.4f})")
    fast_enough = min(ratios["kept"]) >= MIN_SPEEDUP  # a search's trials run as "kept" ones
    close_enough = max(abs(gap) for gap in gaps.values()) <= MAX_OBJECTIVE_GAP
    print(f"target: every kept trial >= {MIN_SPEEDUP:g}x faster: {'yes' if fast_enough else 'NO'}; "
          f"mean objective within {MAX_OBJECTIVE_GAP}: {'yes' if close_enough else 'NO'}")
    return 0 if fast_enough and close_enough else 1


if __name__ == "__main__":
    sys.exit(main())
