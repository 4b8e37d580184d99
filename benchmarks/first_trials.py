"""What a search's first trials are worth: trials to a study's target, and the best value
within budgets of 10, 20 (and 60) trials, for lrsearch's start (the learning rates people
start from, then TPE: the default) against Optuna's own (TPE from its first trial:
`--no-defaults-first`), on blobs and the suite.

Each run is `lrsearch run STUDY --n-trials BUDGET --seed S --no-confirm --no-report` on a
fresh journal; trials count by number (the order the workers took them), so a budget of
10 is trials 0-9 whatever finished first. Counts do not depend on the machine's speed;
the seconds printed do.

    .venv/bin/python benchmarks/first_trials.py --studies blobs,digits,text_embedding --seeds 5
    .venv/bin/python benchmarks/first_trials.py --studies blobs --budget 60 --seeds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import run_suite  # noqa: E402  (this script's folder is on sys.path)
import time_to_target  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STARTS = {"defaults": [], "sampler": ["--no-defaults-first"]}


def study_path(name: str) -> Path:
    return time_to_target.BLOBS if name == "blobs" else run_suite.STUDIES[name]


def one_run(path: Path, start: str, seed: int, budget: int) -> tuple[list, float]:
    """The trials (by number) of one run, and its seconds."""
    import optuna

    from lrsearch.storage import open_storage

    with tempfile.TemporaryDirectory(prefix="lrsearch-first-") as folder:
        journal = os.path.join(folder, "run.journal")
        command = [sys.executable, "-m", "lrsearch", "run", str(path), "--storage", journal, "--study-name", "first",
                   "--n-trials", str(budget), "--seed", str(seed), "--no-confirm", "--no-report", *STARTS[start]]
        started = time.monotonic()
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.monotonic() - started
        if run.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {run.returncode}:\n{run.stderr[-2000:]}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name="first", storage=open_storage(journal))
        return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", default="blobs,digits,text_embedding")
    parser.add_argument("--seeds", type=int, default=5, help="runs per study and start (seeds --seed + i)")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--budget", type=int, default=20, help="trials per run; budgets 10, 20, 60 below it report")
    args = parser.parse_args(argv)
    budgets = [b for b in (10, 20, 60) if b <= args.budget]
    print(f"| study | start | trials to target (median; reached within {args.budget}) | "
          + " | ".join(f"best of {b} (median)" for b in budgets) + " | seconds a run (median) |")
    print("|---|---|---|" + "---|" * len(budgets) + "---|")
    for name in args.studies.split(","):
        path = study_path(name)
        goal = time_to_target.Goal(str(path), time_to_target.study_target(path))
        for start in STARTS:
            to_target, bests, seconds = [], {b: [] for b in budgets}, []
            for i in range(args.seeds):
                trials, took = one_run(path, start, args.seed + i, args.budget)
                seconds.append(took)
                hit = next((t.number + 1 for t in trials if t.state.name == "COMPLETE" and goal.reached(t.value)), None)
                to_target.append(hit)
                for b in budgets:
                    bests[b].append(goal.best(trials[:b]))
                print(f"  {name} {start} seed {args.seed + i}: target at trial {hit}, best of {args.budget} "
                      f"{goal.best(trials):.4g}, {took:.0f} s", file=sys.stderr, flush=True)
            reached = [n for n in to_target if n is not None]
            counted = [n if n is not None else args.budget + 1 for n in to_target]  # a miss ranks last
            median_hit = statistics.median(counted)
            best = " | ".join(f"{statistics.median(bests[b]):.4g}" for b in budgets)
            print(f"| {name} ({goal}) | {start} | {median_hit:g}{'+' if median_hit > args.budget else ''} "
                  f"({len(reached)}/{args.seeds}) | {best} | {statistics.median(seconds):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
