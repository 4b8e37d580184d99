"""Does confirmation over fresh seeds pick a better configuration than the raw top trial?

Each run is a default `lrsearch run` of the study (which confirms the top 3 trials on 3
fresh seeds) on a journal file of its own. Then `lrsearch confirm --seeds 3+H` trains the
same top trials on H more seeds that neither pick has seen; those held-out seeds score
both the raw top trial (best on its own seed) and the confirmed pick (best mean on the
first 3 fresh seeds). Per run it prints both, and at the end how often they differ and
their mean held-out scores. One process per command, as a user types them; the runs go
one after another (the machine's cores belong to each run's workers).

    .venv/bin/python benchmarks/confirmation.py --runs 5
    .venv/bin/python benchmarks/confirmation.py --runs 2 --n-trials 20 --epochs 50   # a quick look
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
    parser.add_argument("--runs", type=int, default=5, help="searches (default: 5)")
    parser.add_argument("--study", default=str(ROOT / "studies" / "blobs.py"), help="study file (default: blobs)")
    parser.add_argument("--held-out", type=int, default=5, help="held-out seeds per trial (default: 5)")
    parser.add_argument("--n-trials", type=int, help="lrsearch run --n-trials (default: the study file's)")
    parser.add_argument("--epochs", type=int, help="lrsearch run --epochs (default: the study file's)")
    return parser.parse_args(argv)


def lrsearch(*args: str, cwd: Path) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lrsearch", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"lrsearch {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout, time.perf_counter() - started


def one_run(args: argparse.Namespace, folder: Path, index: int) -> dict:
    import optuna

    from lrsearch import results
    from lrsearch.storage import open_storage

    storage, name = str(folder / f"run{index}.journal"), f"run{index}"
    common = [args.study, "--storage", storage, "--study-name", name]
    extra = [*(["--n-trials", str(args.n_trials)] if args.n_trials else []),
             *(["--epochs", str(args.epochs)] if args.epochs else [])]
    out, run_s = lrsearch("run", *common, *extra, "--no-report", cwd=folder)
    confirm_s = float(out.split("Confirmed ")[1].split(" in ")[1].split(" s")[0])
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    direction = study.direction.name.lower()
    raw = results.rank(study.trials, direction, {})[0]
    confirmed = results.confirmations(study)
    pick = results.rank(study.trials, direction, confirmed)[0]
    _, held_s = lrsearch("confirm", *common, "--top", str(results.DEFAULT_TOP),
                         "--seeds", str(results.DEFAULT_SEEDS + args.held_out), cwd=folder)
    seeds = results.fresh_seeds(results.read_study(study).seed, results.DEFAULT_SEEDS + args.held_out)
    held = set(seeds[results.DEFAULT_SEEDS:])
    values = results.read_confirmations(study)

    def held_out(number: int) -> float:  # over the seeds where it did not diverge
        return results.Confirmation({s: v for s, v in values[number].items() if s in held}).mean

    return {"raw": raw.number, "raw_own": raw.value, "raw_held": held_out(raw.number),
            "pick": pick.number, "pick_confirmed": confirmed[pick.number].mean, "pick_held": held_out(pick.number),
            "run_s": run_s, "confirm_s": confirm_s, "held_out_s": held_s}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lrsearch-confirm-") as tmp:
        for index in range(args.runs):
            row = one_run(args, Path(tmp), index)
            rows.append(row)
            print(f"run {index}: raw top trial {row['raw']} ({row['raw_own']:.4f} on its own seed, "
                  f"{row['raw_held']:.4f} held out) | pick {row['pick']} ({row['pick_confirmed']:.4f} confirmed, "
                  f"{row['pick_held']:.4f} held out) | run {row['run_s']:.1f} s, of which confirming "
                  f"{row['confirm_s']:.1f} s", flush=True)
    differ = sum(r["raw"] != r["pick"] for r in rows)
    raw_held = statistics.fmean(r["raw_held"] for r in rows)
    pick_held = statistics.fmean(r["pick_held"] for r in rows)
    curse = statistics.fmean(r["raw_own"] - r["raw_held"] for r in rows)
    print(f"\nThe pick differs from the raw top trial in {differ} of {len(rows)} runs.")
    print(f"Mean held-out score ({args.held_out} seeds): raw top {raw_held:.4f}, confirmed pick {pick_held:.4f} "
          f"({pick_held - raw_held:+.4f}).")
    print(f"The raw top trial's own value overstates its held-out score by {curse:+.4f} on average.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
