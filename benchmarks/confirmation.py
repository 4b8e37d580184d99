"""Does the default confirmation, priced to at most a fifth of the search's training, pick a
better configuration than the raw top trial, and what share of a run does it take?

Each run is a default `lrsearch run` of a study (blobs, then the digits CNN, unless
--study is given) on a journal file of its own, seeded `--seed` + its index. The run
confirms what its pricing allows (`lrsearch.results.price`: the top K trials on N fresh
seeds, or none). Where the confirmed pick is not the raw top trial (best on its own seed),
`lrsearch confirm --top K --seeds N+H` trains both on H more seeds that neither pick has
seen, and those held-out seeds score them; where it is, they tie. Per run it prints the
choice, both scores and the confirmation's seconds against the run's wall time; per study,
how often the pick beats the raw top trial on the held-out seeds and the confirmation's
share of the runs' wall time. One process per command, as a user types them, one after
another (the machine's cores belong to each run's workers).

    .venv/bin/python benchmarks/confirmation.py --runs 3
    .venv/bin/python benchmarks/confirmation.py --study studies/blobs.py --runs 5 --confirm 3,3   # the old default
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDIES = [str(ROOT / "studies" / "blobs.py"), str(ROOT / "studies" / "digits.py")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="searches per study (default: 5)")
    parser.add_argument("--study", action="append", help="a study file, repeatable (default: blobs and digits)")
    parser.add_argument("--held-out", type=int, default=5, help="held-out seeds per trial (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="run i searches with seed SEED + i (default: 0)")
    parser.add_argument("--confirm", help="lrsearch run --confirm K,N (default: priced to the search)")
    parser.add_argument("--n-trials", type=int, help="lrsearch run --n-trials (default: the study file's)")
    parser.add_argument("--epochs", type=int, help="lrsearch run --epochs (default: the study file's)")
    return parser.parse_args(argv)


def lrsearch(*args: str, cwd: Path) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lrsearch", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"lrsearch {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr, time.perf_counter() - started


def one_run(args: argparse.Namespace, study_file: str, folder: Path, index: int) -> dict:
    import optuna

    from lrsearch import results
    from lrsearch.storage import open_storage

    storage, name, seed = str(folder / f"run{index}.journal"), f"run{index}", args.seed + index
    common = [study_file, "--storage", storage, "--study-name", name]
    extra = [*(["--n-trials", str(args.n_trials)] if args.n_trials else []),
             *(["--epochs", str(args.epochs)] if args.epochs else []),
             *(["--confirm", args.confirm] if args.confirm else [])]
    out, run_s = lrsearch("run", *common, "--seed", str(seed), *extra, "--no-report", cwd=folder)
    confirmed_in = re.search(r"Confirmed \d+ of \d+ training\(s\) in ([\d.]+) s", out)
    cost = re.search(r"Confirmation: .*?(\d+)% of the search's", out)
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    direction = study.direction.name.lower()
    raw = results.rank(study.trials, direction, {})[0]
    confirmed = results.confirmations(study)
    pick = results.rank(study.trials, direction, confirmed)[0]
    top, seeds = len(confirmed), max((len(c.values) for c in confirmed.values()), default=0)
    row = {"seed": seed, "sign": 1 if direction == "maximize" else -1, "top": top, "seeds": seeds, "raw": raw.number,
           "pick": pick.number, "run_s": run_s, "confirm_s": float(confirmed_in.group(1)) if confirmed_in else 0.0,
           "training_share": int(cost.group(1)) / 100 if cost else 0.0, "raw_held": None, "pick_held": None}
    if pick.number != raw.number:
        lrsearch("confirm", *common, "--top", str(top), "--seeds", str(seeds + args.held_out), cwd=folder)
        held = set(results.fresh_seeds(results.read_study(study).seed, seeds + args.held_out)[seeds:])
        values = results.read_confirmations(study)
        for key, number in (("raw_held", raw.number), ("pick_held", pick.number)):
            row[key] = results.Confirmation({s: v for s, v in values[number].items() if s in held}).mean
    return row


def describe(row: dict) -> str:
    what = f"top {row['top']} on {row['seeds']} seed(s)" if row["top"] else "skipped"
    scores = (f"raw top {row['raw']} {row['raw_held']:.4f} vs pick {row['pick']} {row['pick_held']:.4f} held out"
              if row["raw_held"] is not None else f"the pick is the raw top trial {row['raw']}")
    return (f"seed {row['seed']}: confirmation {what} | {scores} | confirming {row['confirm_s']:.1f} s of a "
            f"{row['run_s']:.1f} s run ({row['confirm_s'] / row['run_s']:.0%}; {row['training_share']:.0%} of the "
            f"search's training)")


def summarize(rows: list[dict]) -> str:
    differ = [r for r in rows if r["raw_held"] is not None]
    gains = [r["sign"] * (r["pick_held"] - r["raw_held"]) for r in differ]
    share = sum(r["confirm_s"] for r in rows) / sum(r["run_s"] for r in rows)
    each = ", ".join(f"{r['confirm_s'] / r['run_s']:.0%}" for r in rows)
    return (f"the pick differed from the raw top trial in {len(differ)} of {len(rows)} runs and beat it on the "
            f"held-out seeds in {sum(g > 0 for g in gains)} of those ({statistics.fmean(gains or [0.0]):+.4f} on "
            f"average where they differed, better > 0); confirmation took {share:.0%} of the runs' wall time "
            f"(each: {each})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for study_file in [str(Path(path).resolve()) for path in args.study or STUDIES]:
        rows = []
        with tempfile.TemporaryDirectory(prefix="lrsearch-confirm-") as tmp:
            for index in range(args.runs):
                rows.append(one_run(args, study_file, Path(tmp), index))
                print(f"{Path(study_file).stem} {describe(rows[-1])}", flush=True)
        print(f"{Path(study_file).stem}: {summarize(rows)}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
