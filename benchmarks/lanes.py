"""Trial throughput of lanes against one trial at a time on a worker's kept compiled models.

The same trials - configurations drawn once from the study's space with a fixed seed,
enqueued in an in-memory Optuna study - are trained to the end (no relative pruner; the
callback's diverged and stalled stops still apply) as a search worker trains them:
through `TrialRunner`, one at a time on its kept compiled models ("kept"), and in K lanes,
K threads at once ("lanes K"). Every side runs in this one process, one thread of
TensorFlow per side as a worker on one core has, after a warm-up that compiles what it
keeps; the ratio of trials per second is what lanes buy.

    .venv/bin/python benchmarks/lanes.py                      # blobs, 200 epochs, 32 trials, K=4,8,16,32
    .venv/bin/python benchmarks/lanes.py --epochs 50 --trials 16 --lanes 8   # a quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
#: What the issue asks of lanes on 2 CPU cores.
TARGET = 5.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "blobs.py"), help="study file (default: blobs)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs per trial (default: 200)")
    parser.add_argument("--trials", type=int, default=32, help="trials per side (default: 32)")
    parser.add_argument("--lanes", type=int, nargs="+", default=[4, 8, 16, 32], help="lane counts (default: 4 8 16 32)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (default: 1, a worker per core)")
    parser.add_argument("--target", type=float, default=0.83,
                        help="objective value whose share among the random draws is reported (default: 0.83)")
    return parser.parse_args(argv)


def draw(study_file, count: int) -> list[dict]:
    """`count` parameter sets of the study's space, drawn at random with a fixed seed."""
    import optuna

    from lrsearch.lr import suggest

    sampler = optuna.samplers.RandomSampler(seed=7)
    drawn = optuna.create_study(sampler=sampler)
    params = []
    for _ in range(count):
        trial = drawn.ask()
        suggest(trial, study_file.space)
        params.append(trial.params)
    return params


def search(study_file, epochs: int, params: list[dict], lanes: int) -> tuple[float, int, int, list[float]]:
    """Train the trials of `params` as a worker with `lanes` lanes does: seconds, trials
    finished, epochs trained, the values of those that completed."""
    import optuna

    from lrsearch.training import TrialRunner, preflight

    runner = TrialRunner(study_file, epochs=epochs)
    preflight(runner, lane_count=lanes, lane_cap=lanes)
    if runner.lanes != lanes:
        raise SystemExit(f"lanes {lanes} not available for this study")
    study = optuna.create_study(direction=study_file.settings.direction, pruner=optuna.pruners.NopPruner())
    warm = list(params[: max(1, lanes)])
    for side in (warm, params):
        for p in side:
            study.enqueue_trial(p)
        left = [len(side)]
        lock = threading.Lock()

        def work():
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                study.optimize(runner, n_trials=1, catch=(Exception,))

        started = time.perf_counter()
        threads = [threading.Thread(target=work) for _ in range(lanes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    done = [t for t in study.trials[len(warm):] if t.state.is_finished()]
    epochs_run = sum(len(t.intermediate_values) for t in done)
    return seconds, len(done), epochs_run, [t.value for t in done if t.state.name == "COMPLETE"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import optuna
    import tensorflow as tf

    from lrsearch.study import load_study

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    study_file = load_study(args.study)
    params = draw(study_file, args.trials)
    print(f"{study_file.name}: {args.trials} trials x {args.epochs} epochs per side, {args.threads} TensorFlow "
          f"thread(s), {os.cpu_count()} CPU(s), TensorFlow {tf.__version__}")
    rows = [("kept", *search(study_file, args.epochs, params, 1))]
    print(f"{'side':>10} {'seconds':>8} {'trials':>6} {'epochs':>7} {'trials/s':>8} {'x kept':>7}")
    for lanes in args.lanes:
        rows.append((f"lanes {lanes}", *search(study_file, args.epochs, params, lanes)))
    base = rows[0][2] / rows[0][1]
    best = 0.0
    for name, seconds, trials, epochs, _ in rows:
        rate = trials / seconds
        best = max(best, rate / base) if name != "kept" else best
        print(f"{name:>10} {seconds:8.2f} {trials:6d} {epochs:7d} {rate:8.2f} {rate / base:7.1f}", flush=True)
    print(f"best lanes / kept throughput: {best:.1f}x (target >= {TARGET:g}x): {'yes' if best >= TARGET else 'NO'}")
    values = rows[0][4]
    hits = sum(value >= args.target - 1e-6 for value in values)
    expected = f"{args.trials / hits:.1f}" if hits else "more than the draws"
    print(f"random sampling: {hits} of {args.trials} draws reach {args.target} at their last epoch, so it needs "
          f"{expected} trials to the target on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
