"""What the storage costs a warm trial of a real `lrsearch run --workers 1`: the gap between
consecutive trials' starts, on the journal file, PostgreSQL and PostgreSQL through the gRPC proxy.

Every side runs the same repeatable search (`--workers 1 --lanes 1 --seed S`, so trial i
has the same configuration and is pruned at the same epoch on every storage), on a study of
its own. A trial's gap is its start to the next trial's start, read from the storage; the
first trial (cold: compiling) is left out. The sides take turns within each round, so that
load from other processes hits all alike, and the figure per side is the median gap over
all rounds' warm trials, also per trial index (the same configuration everywhere), whose
median ratio to the journal is the fairest single number.

    .venv/bin/python benchmarks/storage_gap.py                        # 3 rounds x 12 trials
    .venv/bin/python benchmarks/storage_gap.py --rounds 1 --trials 4 --epochs 20   # a smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What the issue asks: a trial on PostgreSQL, direct or through the proxy, within this factor of the journal's.
TARGET = 1.10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "blobs.py"), help="study file (default: blobs)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side (default: 3)")
    parser.add_argument("--trials", type=int, default=12, help="trials per run, the first one cold (default: 12)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs per trial (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="the runs' seed (default: 0)")
    parser.add_argument("--postgres", default=os.environ.get("LRSEARCH_TEST_POSTGRES_URL"),
                        help="PostgreSQL URL (default: $LRSEARCH_TEST_POSTGRES_URL); without one, the journal alone")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.trials < 3 or args.epochs < 1:
        parser.error("--rounds and --epochs must be >= 1 and --trials >= 3.")
    return args


def gaps(storage: str, study_name: str, args: argparse.Namespace, folder: str) -> list[float]:
    """One `lrsearch run` of a fresh study; the gaps between its consecutive trials' starts,
    from the second trial on (the first is cold)."""
    import optuna

    from lrsearch.storage import open_storage

    command = [sys.executable, "-m", "lrsearch", "run", args.study, "--storage", storage, "--study-name", study_name,
               "--n-trials", str(args.trials), "--epochs", str(args.epochs), "--seed", str(args.seed),
               "--workers", "1", "--lanes", "1", "--no-report", "--no-confirm"]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"`{' '.join(command)}` failed:\n{result.stderr[-3000:]}")
    trials = optuna.load_study(study_name=study_name, storage=open_storage(storage)).get_trials(deepcopy=False)
    starts = sorted(trial.datetime_start for trial in trials)
    return [(later - earlier).total_seconds() for earlier, later in zip(starts[1:], starts[2:])]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import optuna

    from lrsearch.storage import PROXY_THREADS
    from storage_load import running_proxy

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sides = ["journal"] + (["postgresql", "grpc proxy"] if args.postgres else [])
    per_index: dict[str, list[list[float]]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as folder, \
            (running_proxy(args.postgres, PROXY_THREADS, folder) if args.postgres else contextlib.nullcontext()) \
            as grpc_url:
        where = {"journal": os.path.join(folder, "gap.journal"), "postgresql": args.postgres, "grpc proxy": grpc_url}
        print(f"{Path(args.study).name}: {args.rounds} rounds x {args.trials} trials x {args.epochs} epochs, "
              f"seed {args.seed}, --workers 1 --lanes 1", flush=True)
        for round_ in range(args.rounds):
            order = sides[round_ % len(sides):] + sides[:round_ % len(sides)]
            for side in order:
                started = time.perf_counter()
                measured = gaps(where[side], f"gap-{os.getpid()}-{round_}-{side.replace(' ', '-')}", args, folder)
                per_index[side].append(measured)
                print(f"round {round_} {side}: median gap {statistics.median(measured):.3f} s "
                      f"({len(measured)} gaps; run {time.perf_counter() - started:.1f} s)", flush=True)
    medians = {side: statistics.median(g for run in runs for g in run) for side, runs in per_index.items()}
    print(f"\nGap between consecutive warm trials' starts ({args.rounds} x {args.trials - 2} gaps a side):")
    print("| storage | median gap s | ratio to the journal | median of per-trial ratios |")
    print("| --- | --- | --- | --- |")
    met = True
    for side in sides:
        paired = [statistics.median(run[i] for run in per_index[side]) / statistics.median(run[i] for run in
                  per_index["journal"]) for i in range(len(per_index[side][0]))]
        ratio = statistics.median(paired)
        met &= side == "journal" or ratio <= TARGET
        print(f"| {side} | {medians[side]:.3f} | {medians[side] / medians['journal']:.2f}x | {ratio:.2f}x |")
    print(f"\nTarget: PostgreSQL, direct and through the proxy, within {TARGET:.2f}x the journal: "
          f"{'met' if met else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
