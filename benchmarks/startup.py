"""Seconds from launching `lrsearch run` to its first trial starting (RUNNING in the
storage), for the blobs study as shipped (Keras imported inside its functions) and for
the same study with `import keras` at the top of the file, as people often write it (the
run's own process then imports TensorFlow too). With --warm: seconds from calling
`lrsearch.search` to its first trial starting, for a first search in a fresh Python
process and for a second search of the same study in that process, as a notebook runs
them (its workers warm). With --trained STUDY...: for each study file, the seconds from launching
`lrsearch run STUDY --n-trials 2 --seed 0` to its first trial's end, and that trial's own seconds
(a worker's first trial of a model also traces it), from Optuna's timestamps.

    .venv/bin/python benchmarks/startup.py --repeats 5
    .venv/bin/python benchmarks/startup.py --warm --repeats 5
    .venv/bin/python benchmarks/startup.py --repeats 2 --trained studies/digits.py benchmarks/suite/lstm_sequences.py
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.05


def first_trial_s(study_file: Path, folder: Path, index: int) -> float:
    import optuna

    from lrsearch.storage import open_storage

    journal = folder / f"s{index}.journal"
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "lrsearch", "run", str(study_file), "--storage", str(journal),
                                "--n-trials", "2", "--epochs", "1", "--no-confirm", "--no-report"],
                               cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None:
            if journal.exists():
                try:
                    study = optuna.load_study(study_name=study_file.stem, storage=open_storage(str(journal)))
                    if study.get_trials(deepcopy=False):
                        return time.perf_counter() - started
                except KeyError:  # the study is not created yet
                    pass
            time.sleep(POLL_S)
        raise SystemExit(f"lrsearch run ended (exit {process.returncode}) before a trial started")
    finally:
        process.wait()


def first_trained_s(study_file: Path, folder: Path, index: int) -> tuple[float, float]:
    """(seconds from launching a 2-trial run of `study_file` to its first finished trial's end,
    that trial's seconds)."""
    import optuna

    from lrsearch.storage import open_storage

    journal = folder / f"t{index}.journal"
    launched = datetime.datetime.now()
    subprocess.run([sys.executable, "-m", "lrsearch", "run", str(study_file), "--storage", str(journal), "--seed", "0",
                    "--n-trials", "2", "--no-confirm", "--no-report"], cwd=folder, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    trials = optuna.load_study(study_name=study_file.stem, storage=open_storage(str(journal))).trials
    first = min((t for t in trials if t.datetime_complete), key=lambda t: t.datetime_complete)
    return (first.datetime_complete - launched).total_seconds(), (first.datetime_complete - first.datetime_start
                                                                  ).total_seconds()


def warm_pair(folder: str) -> None:
    """Two searches of blobs in this process, 2 trials of 1 epoch each: print the seconds from
    each call to the start of its first trial (Optuna's own timestamp)."""
    import contextlib
    import io

    import lrsearch

    journal = str(Path(folder) / "warm.journal")
    seconds = []
    for n_trials in (2, 4):
        called = datetime.datetime.now()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            result = lrsearch.search(ROOT / "studies" / "blobs.py", storage=journal, n_trials=n_trials, epochs=1,
                                     confirm=None, report=False)
        first = min(t.datetime_start for t in result.study.get_trials(deepcopy=False)
                    if t.datetime_start is not None and t.datetime_start >= called)
        seconds.append((first - called).total_seconds())
    print("WARM", *seconds)


def warm_s(folder: Path) -> tuple[float, float]:
    """`warm_pair` in a fresh Python process: (first search, second search)."""
    here = str(Path(__file__).parent)
    code = f"import sys; sys.path.insert(0, {here!r}); import startup; startup.warm_pair({str(folder)!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True)
    line = [line for line in done.stdout.splitlines() if line.startswith("WARM ")]
    if done.returncode or not line:
        raise SystemExit(f"the searches failed (exit {done.returncode}): {done.stderr[-2000:]}")
    first, second = map(float, line[0].split()[1:])
    return first, second


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="launches per study file (default: 5)")
    parser.add_argument("--warm", action="store_true", help="a first and a second lrsearch.search in one process")
    parser.add_argument("--trained", nargs="+", type=Path, metavar="STUDY",
                        help="time each study file's first trial to its end instead")
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="lrsearch-startup-") as tmp:
        folder = Path(tmp)
        if args.trained:
            runs: dict[Path, list[tuple[float, float]]] = {path: [] for path in args.trained}
            for launch in range(args.repeats * len(args.trained)):  # the files in turns: machine noise hits each
                path = args.trained[launch % len(args.trained)]
                runs[path].append(first_trained_s(path.resolve(), folder, launch))
            for path, values in runs.items():
                print(f"{path.name}: first trial ended after {statistics.median(v[0] for v in values):.2f} s, took "
                      f"{statistics.median(v[1] for v in values):.2f} s (medians of {len(values)})")
            return 0
        if args.warm:
            pairs = [warm_s(Path(tempfile.mkdtemp(dir=folder))) for _ in range(args.repeats)]
            for name, values in (("first search", [p[0] for p in pairs]), ("second search", [p[1] for p in pairs])):
                print(f"{name}: first trial after {statistics.median(values):.2f} s (median of {len(values)}: "
                      f"{', '.join(f'{v:.2f}' for v in values)})")
            return 0
        shipped = ROOT / "studies" / "blobs.py"
        eager = folder / "blobs_keras_at_top.py"
        eager.write_text("import keras  # noqa: F401\n" + shipped.read_text())
        times: dict[str, list[float]] = {shipped.name: [], eager.name: []}
        launches = 0
        for _ in range(args.repeats):
            for study_file in (shipped, eager):  # alternating, so that machine noise hits both
                times[study_file.name].append(first_trial_s(study_file, folder, launches))
                launches += 1
        for name, values in times.items():
            print(f"{name}: first trial after {statistics.median(values):.2f} s (median of {len(values)}: "
                  f"{', '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
