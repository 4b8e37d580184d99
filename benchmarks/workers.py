"""Trial throughput of `lrsearch run` with 1 worker against the default number of workers.

Each setting runs the blobs study on a fresh journal for --trials trials. Throughput is
read from the storage: finished trials per minute from the first trial's start to the
last trial's end (worker start-up excluded), and the same over the whole command
(start-up included). Pruned trials stop early and the sampled configurations differ from
run to run, so the epochs trained per minute are printed too: their ratio is the fairest
comparison. With --repeats, the settings alternate in order so that other load on the
machine hits both alike.

    .venv/bin/python benchmarks/workers.py                            # 16 trials x 200 epochs
    .venv/bin/python benchmarks/workers.py --trials 4 --epochs 5      # a smoke test
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "blobs.py"), help="study file (default: blobs)")
    parser.add_argument("--trials", type=int, default=16, help="trials per run (default: 16)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs per trial (default: 200)")
    parser.add_argument("--workers", type=int, help="workers to compare with 1 (default: lrsearch run's default)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each setting (default: 1)")
    return parser.parse_args(argv)


def default_workers() -> str:
    from lrsearch import devices

    slots = devices.plan(None, devices.parse_gpus("all"))
    return f"{len(slots)} ({', '.join(sorted({slot.describe() for slot in slots}))})"


def measure(args: argparse.Namespace, workers: int | None) -> dict[str, float]:
    """One `lrsearch run` on a fresh journal; its trial and epoch rates."""
    import optuna

    from lrsearch.results import read_trial
    from lrsearch.storage import open_storage

    folder = tempfile.mkdtemp(prefix="lrsearch-workers-")
    storage = str(Path(folder) / "bench.journal")
    command = [sys.executable, "-m", "lrsearch", "run", args.study, "--storage", storage, "--study-name", "bench",
               "--n-trials", str(args.trials), "--epochs", str(args.epochs), "--no-report"]
    if workers is not None:
        command += ["--workers", str(workers)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"`{' '.join(command)}` failed:\n{result.stderr[-3000:]}")
    trials = optuna.load_study(study_name="bench", storage=open_storage(storage)).get_trials(deepcopy=False)
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    epochs = sum(read_trial(t).epochs_run for t in trials)
    return {"trials_per_min": 60 * len(trials) / span, "epochs_per_min": 60 * epochs / span,
            "trials_per_min_wall": 60 * len(trials) / wall, "wall_s": wall,
            "pruned": sum(t.state.name == "PRUNED" for t in trials)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = {"1 worker": 1, f"{args.workers or 'default'} workers": args.workers}
    print(f"{Path(args.study).name}: {args.trials} trials x {args.epochs} epochs per run; "
          f"default workers here: {default_workers()}", flush=True)
    results: dict[str, list[dict[str, float]]] = {label: [] for label in settings}
    for repeat in range(args.repeats):
        order = list(settings) if repeat % 2 == 0 else list(reversed(settings))
        for label in order:
            results[label].append(measure(args, settings[label]))
            r = results[label][-1]
            print(f"  {label:>16}: {r['trials_per_min']:6.1f} trials/min, {r['epochs_per_min']:8.0f} epochs/min "
                  f"(whole command: {r['trials_per_min_wall']:.1f} trials/min, {r['wall_s']:.0f} s; "
                  f"{r['pruned']:.0f} pruned)", flush=True)
    medians = {label: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
               for label, runs in results.items()}
    one, many = (medians[label] for label in settings)
    print(f"Ratio ({list(settings)[1]} / 1 worker): trials/min {many['trials_per_min'] / one['trials_per_min']:.2f}x, "
          f"epochs/min {many['epochs_per_min'] / one['epochs_per_min']:.2f}x, "
          f"whole command {many['trials_per_min_wall'] / one['trials_per_min_wall']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
