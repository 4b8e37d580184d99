"""What the storage costs a warm trial: the same blobs trial on each storage, in one run.

Each side is a study of its own on one storage: in memory (no storage cost: the
baseline), the journal file, SQLite and, with --postgres URL (or
LRSEARCH_TEST_POSTGRES_URL), PostgreSQL. Every trial is the enqueued `sgd lr=0.01
constant` for 200 epochs, run as a worker runs it (`study.optimize` on the worker's
write-behind storage, one TrialRunner whose kept compiled model makes every trial after
the first warm), and timed from the claim to `optimize` returning. The sides take
turns, so that load from other processes hits all alike; the first round is warm-up.
`--direct` adds each storage without the write-behind layer (how trials ran before it).

    .venv/bin/python benchmarks/storage_cost.py                 # 5 rounds
    .venv/bin/python benchmarks/storage_cost.py --rounds 3 --epochs 50 --direct
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PARAMS = {"optimizer": "sgd", "schedule": "constant", "lr": 0.01, "momentum": 0.0, "nesterov": False}
#: What the issue asks: an RDB trial within this factor of the journal's.
TARGET = 1.10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up (default: 5)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs per trial (default: 200)")
    parser.add_argument("--postgres", default=os.environ.get("LRSEARCH_TEST_POSTGRES_URL"),
                        help="a PostgreSQL URL to include (default: $LRSEARCH_TEST_POSTGRES_URL)")
    parser.add_argument("--direct", action="store_true", help="also run each storage without write-behind")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.epochs < 1:
        parser.error("--rounds and --epochs must be >= 1.")
    return args


def storages(args: argparse.Namespace, folder: str) -> dict[str, str | None]:
    sides: dict[str, str | None] = {"memory": None, "journal": os.path.join(folder, "bench.journal"),
                                    "sqlite": f"sqlite:///{folder}/bench.db"}
    if args.postgres:
        sides["postgresql"] = args.postgres
    return sides


def open_side(name: str, url: str | None, write_behind: bool, epochs: int, study_name: str):
    import optuna

    from lrsearch.storage import WriteBackStorage, open_storage
    from lrsearch.training import make_pruner

    storage = optuna.storages.InMemoryStorage() if url is None else open_storage(url)
    if write_behind:
        storage = WriteBackStorage(storage)
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize",
                                pruner=_Consulted(make_pruner("hyperband", epochs)), load_if_exists=True)
    return study


class _Consulted:
    """The search's pruner, consulted each epoch as in a search (with the same storage
    reads and writes) but never followed, so that every trial trains all its epochs."""

    def __init__(self, pruner) -> None:
        self.pruner = pruner

    def prune(self, study, trial) -> bool:
        self.pruner.prune(study, trial)
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from lrsearch.devices import import_tensorflow

    import_tensorflow()
    import optuna

    from lrsearch.study import load_study
    from lrsearch.training import TrialRunner

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runner = TrialRunner(load_study(ROOT / "studies" / "blobs.py"), epochs=args.epochs)
    with tempfile.TemporaryDirectory() as folder:
        sides = {}
        for name, url in storages(args, folder).items():
            for write_behind in (True, False) if args.direct else (True,):
                label = name if write_behind or url is None else f"{name} direct"
                if url is None and not write_behind:
                    continue
                sides[label] = open_side(name, url, write_behind, args.epochs, f"bench-{os.getpid()}-{len(sides)}")
        times: dict[str, list[float]] = {label: [] for label in sides}
        epochs: dict[str, list[int]] = {label: [] for label in sides}
        for round_ in range(args.rounds + 1):
            order = list(sides)[round_ % len(sides):] + list(sides)[:round_ % len(sides)]
            for label in order:
                study = sides[label]
                study.enqueue_trial(PARAMS)
                started = time.perf_counter()
                study.optimize(runner, n_trials=1)
                elapsed = time.perf_counter() - started
                if round_:  # the first round compiles and warms every side
                    times[label].append(elapsed)
                    epochs[label].append(len(study.trials[-1].intermediate_values))
            print(f"round {round_}{' (warm-up)' if not round_ else ''}: "
                  + ", ".join(f"{label} {times[label][-1]:.3f}s" if round_ else label for label in order), flush=True)
        for study in sides.values():
            flush = getattr(study._storage, "flush", None)
            if flush:
                flush()
        medians = {label: statistics.median(values) for label, values in times.items()}
        print(f"\nA warm {args.epochs}-epoch blobs trial (median of {args.rounds}; epochs trained per trial):")
        for label, median in medians.items():
            ratio = median / medians["journal"]
            print(f"  {label:<18} {median:6.3f} s  {ratio:5.2f}x journal  epochs {sorted(set(epochs[label]))}")
        share = (medians["journal"] - medians["memory"]) / medians["journal"]
        print(f"\nThe journal's own storage share of its trial: {share:+.1%} "
              f"({medians['journal'] - medians['memory']:+.3f} s against memory).")
        rdb = [label for label in medians if label in ("sqlite", "postgresql")]
        met = all(medians[label] <= TARGET * medians["journal"] for label in rdb)
        print(f"Target: {', '.join(rdb)} within {TARGET:.2f}x the journal: {'met' if met else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
