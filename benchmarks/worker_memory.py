"""Does a worker's memory grow from trial to trial?

Runs `lrsearch run` on the blobs study with one worker, never recycled unless --recycle
says so, reads the worker's resident memory (VmRSS) each time a trial finishes, and
prints it with the growth per trial fitted over the second half of the run (after
start-up and the first compilations have settled).

    .venv/bin/python benchmarks/worker_memory.py                        # 60 trials, 50 epochs
    .venv/bin/python benchmarks/worker_memory.py --recycle 20           # the bound recycling gives
    .venv/bin/python benchmarks/worker_memory.py --trials 20 --epochs 10   # a quick look
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "blobs.py"), help="study file (default: blobs)")
    parser.add_argument("--trials", type=int, default=60, help="trials to run (default: 60)")
    parser.add_argument("--epochs", type=int, default=50, help="epochs per trial (default: 50)")
    parser.add_argument("--recycle", type=int, help="restart the worker after this many trials (default: never)")
    return parser.parse_args(argv)


def worker_pid(run_pid: int) -> int | None:
    """The worker process among the run's children (not multiprocessing's resource tracker)."""
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == run_pid and b"spawn_main" in command:
            return int(proc.name)
    return None


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def finished_trials(storage: str, name: str) -> int:
    import optuna

    from lrsearch.storage import open_storage

    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:  # not created yet
        return 0
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares growth (MB per trial)."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = tempfile.mkdtemp(prefix="lrsearch-memory-")
    storage, name = os.path.join(folder, "memory.journal"), "memory"
    command = [sys.executable, "-m", "lrsearch", "run", args.study, "--storage", storage, "--study-name", name,
               "--n-trials", str(args.trials), "--epochs", str(args.epochs), "--workers", "1",
               "--recycle", str(args.recycle or args.trials + 1), "--no-report"]
    run = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[int, float]] = []
    pid = None
    while run.poll() is None:
        if pid is None or rss_mb(pid) is None:  # not started yet, or recycled
            pid = worker_pid(run.pid)
        done = finished_trials(storage, name)
        memory = rss_mb(pid) if pid else None
        if memory is not None and done and (not samples or done > samples[-1][0]):
            samples.append((done, memory))
        time.sleep(0.2)
    if run.returncode != 0 or len(samples) < 4:
        print(f"the run failed (exit code {run.returncode}) or finished too few trials; run it by hand: "
              f"{' '.join(command)}", file=sys.stderr)
        return 1
    print(f"Worker memory over {args.trials} trials of {Path(args.study).name} ({args.epochs} epochs each), "
          f"one worker, {f'recycled every {args.recycle} trials' if args.recycle else 'never recycled'}:")
    print(f"  {'trials':>6}  {'RSS MB':>7}")
    step = max(1, len(samples) // 12)
    for done, memory in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        print(f"  {done:>6}  {memory:>7.1f}")
    second_half = [s for s in samples if s[0] > samples[-1][0] / 2]
    print(f"Growth over the second half: {slope(second_half):+.2f} MB per trial (first sample "
          f"{samples[0][1]:.1f} MB, last {samples[-1][1]:.1f} MB, highest {max(m for _, m in samples):.1f} MB).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
