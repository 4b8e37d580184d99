"""The benchmark suite: on each of its studies (`STUDIES`), time to its target for
lrsearch against the textbook Optuna + Keras recipe (and Keras Tuner with --kerastuner),
and the time of one trial against `model.fit`; one markdown table at the end.

For each study, `time_to_target.compare` runs each side --repeats times (alternating
which side goes first, repeat i on seed --seed + i) and the table gives each side's
median seconds to the study's `TARGET` with the median trials it drew to reach it; then
`trial_speed.measure` times the same configurations through `model.fit` and through a
search worker's kept compiled models ("kept"). Every ratio comes from this one run. A
full run is long (5 studies x 2 sides x 5 repeats, up to --limit each): run it in pieces
with --studies, one study at a time; each piece prints its own rows.

    .venv/bin/python benchmarks/run_suite.py                              # all, 5 repeats
    .venv/bin/python benchmarks/run_suite.py --studies shapes_rgb --repeats 1 --limit 120
    .venv/bin/python benchmarks/run_suite.py --studies digits,lstm_sequences --lanes 1 --kerastuner
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import time_to_target  # noqa: E402  (this script's folder is on sys.path)
import trial_speed  # noqa: E402

SUITE = Path(__file__).resolve().parent / "suite"
#: The suite's study files by name: the shipped digits CNN and the files of benchmarks/suite/.
STUDIES = {"digits": time_to_target.ROOT / "studies" / "digits.py",
           **{name: SUITE / f"{name}.py"
              for name in ("shapes_rgb", "lstm_sequences", "friedman_mlp", "text_embedding")}}
#: Configurations of `trial_speed.CONFIGS` timed per study: a constant and a scheduled one.
SPEED_CONFIGS = ["adam 1e-3", "sgd one_cycle 0.1"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", default=",".join(STUDIES),
                        help=f"comma-separated study names (default: {','.join(STUDIES)})")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each side per study (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first repeat, +1 per repeat (default: 0)")
    parser.add_argument("--limit", type=float, default=600.0, help="seconds each side may take a run (default: 600)")
    parser.add_argument("--workers", type=int, help="lrsearch run --workers (default: lrsearch's own choice)")
    parser.add_argument("--lanes", help="lrsearch run --lanes: a count or auto (default: lrsearch's own)")
    parser.add_argument("--kerastuner", action="store_true",
                        help="add Keras Tuner's BayesianOptimization as a third side (pip install keras-tuner)")
    parser.add_argument("--speed-seeds", type=int, default=1,
                        help="seeds per configuration for the per-trial speed; 0 skips it (default: 1)")
    args = parser.parse_args(argv)
    args.studies = [name.strip() for name in args.studies.split(",") if name.strip()]
    unknown = [name for name in args.studies if name not in STUDIES]
    if unknown or not args.studies:
        parser.error(f"no study {', '.join(unknown) or '(none given)'} in the suite; choose from {', '.join(STUDIES)}.")
    if args.repeats < 1 or args.limit <= 0 or args.speed_seeds < 0:
        parser.error("--repeats must be >= 1, --limit > 0 and --speed-seeds >= 0.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sides = ("lrsearch", "textbook", "kerastuner") if args.kerastuner else ("lrsearch", "textbook")
    print(f"suite: {', '.join(args.studies)}; {args.repeats} repeat(s) a side from seed {args.seed}; "
          f"limit {args.limit:.0f} s; {os.cpu_count()} CPU(s)", flush=True)
    rows = []
    for number, name in enumerate(args.studies, 1):
        path = str(STUDIES[name])
        goal = time_to_target.Goal(path, time_to_target.study_target(path))
        print(f"\n[{number}/{len(args.studies)}] {name}: time to {goal}", flush=True)
        outcomes = time_to_target.compare(path, goal, sides, args.repeats, args.seed, args.limit,
                                          workers=args.workers, lanes=args.lanes)
        speed = None
        if args.speed_seeds:
            print(f"[{number}/{len(args.studies)}] {name}: per-trial speed", flush=True)
            speed = trial_speed.measure(path, None, args.speed_seeds, SPEED_CONFIGS)
        rows.append(Row(name, goal, outcomes, speed, args.limit))
        print(f"[{number}/{len(args.studies)}] {name} done: {rows[-1].summary()}", flush=True)
    print_table(rows, sides)
    return 0


class Row:
    """One study's figures: each side's runs and, unless skipped, the per-trial timings."""

    def __init__(self, name: str, goal, outcomes: dict, speed: list[dict] | None, limit: float) -> None:
        self.name, self.goal, self.outcomes, self.speed, self.limit = name, goal, outcomes, speed, limit

    def ratio(self, side: str) -> float | None:
        """`side`'s median seconds over lrsearch's; the limit stands in for a median that
        missed (a lower bound then); None where lrsearch's median missed."""
        ours, theirs = time_to_target.median(self.outcomes["lrsearch"]), time_to_target.median(self.outcomes[side])
        if math.isinf(ours):
            return None
        return (self.limit if math.isinf(theirs) else theirs) / ours

    def side_cells(self, side: str) -> list[str]:
        runs = self.outcomes[side]
        seconds = time_to_target.median(runs)
        trials = [o.trials_to_target for o in runs if o.trials_to_target]
        shown = "miss" if math.isinf(seconds) else f"{seconds:.1f}"
        cells = [f"{shown} ({statistics.median(trials):g})" if trials else shown]
        if side != "lrsearch":
            ratio = self.ratio(side)
            bound = "> " if ratio is not None and math.isinf(time_to_target.median(runs)) else ""
            cells.append("lrsearch missed" if ratio is None else f"{bound}{ratio:.1f}x")
        return cells

    def speed_cells(self) -> list[str]:
        if not self.speed:
            return ["-", "-", "-"]
        fit = statistics.median(row["fit_s"] for row in self.speed)
        kept = statistics.median(row["kept_s"] for row in self.speed)
        return [f"{fit:.2f}", f"{kept:.2f}", f"{statistics.median(trial_speed.speedups(self.speed, 'kept')):.1f}x"]

    def summary(self) -> str:
        return "; ".join(f"{side} {' '.join(self.side_cells(side))}" for side in self.outcomes)


def print_table(rows: list[Row], sides: tuple[str, ...]) -> None:
    header = ["study", "target", "lrsearch median s (trials)"]
    for side in sides[1:]:
        header += [f"{side} median s (trials)", f"{side}/lrsearch"]
    header += ["model.fit s/trial", "lrsearch s/trial", "model.fit/lrsearch per trial"]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        cells = [row.name, str(row.goal)] + [cell for side in sides for cell in row.side_cells(side)]
        print("| " + " | ".join(cells + row.speed_cells()) + " |")
    for side in sides[1:]:
        ratios = [row.ratio(side) for row in rows]
        known = [ratio for ratio in ratios if ratio is not None]
        missed = len(ratios) - len(known)
        line = f"\nmedian over the suite of {side}/lrsearch: {statistics.median(ratio or 0.0 for ratio in ratios):.1f}x"
        if known:
            line += f"; lowest {min(known):.1f}x"
        if missed:
            line += f"; lrsearch missed its target on {missed} study(ies), counted as 0x"
        print(line)

if __name__ == "__main__":
    sys.exit(main())
