"""Wall time until a search on blobs finds a configuration with val_accuracy >= 0.83:
`lrsearch run studies/blobs.py` against the textbook Optuna + Keras recipe.

- lrsearch: `lrsearch run` in a subprocess, on a fresh journal file in a temporary folder;
  the clock starts when the process is launched (imports, worker start-up and preflight
  included) and stops when the storage holds a complete trial at or above the target.
  The run is then interrupted (Ctrl-C twice: running trials are killed).
- textbook: one process, `model.fit(..., validation_data=...)`, optuna-integration's
  `KerasPruningCallback` on val_accuracy, `TPESampler` + `MedianPruner` (defaults), an
  in-memory study; the clock starts at the study's creation (after TensorFlow is
  imported, which favours this side by a few seconds). It stops at the first complete
  trial at or above the target, or at the time limit (checked between trials).

Both sides sample the same space with `lrsearch.lr.suggest` and build the same
optimizer and callbacks with `lrsearch.lr`. A study's value is a trial's
val_accuracy at its last epoch, as lrsearch records it. One run is one draw of the
samplers' luck (a lucky textbook run needs 4 trials, an unlucky lrsearch run 29), so
--repeats N runs each side N times, alternating, and compares the medians.

    .venv/bin/python benchmarks/time_to_target.py --repeats 5 --limit 600
    .venv/bin/python benchmarks/time_to_target.py                       # one draw, 20 min cap each
    .venv/bin/python benchmarks/time_to_target.py --side textbook --limit 300
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
OBJECTIVE = "val_accuracy"
#: Keras metrics are float32: 415/500 = 0.83 arrives as 0.82999998.
FLOAT32_SLACK = 1e-6
#: Seconds between two reads of the lrsearch run's storage.
POLL_S = 0.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=0.83, help="val_accuracy to reach (default: 0.83)")
    parser.add_argument("--limit", type=float, default=1200.0, help="seconds each side may take (default: 1200)")
    parser.add_argument("--side", choices=("both", "lrsearch", "textbook"), default="both")
    parser.add_argument("--study", default=str(ROOT / "studies" / "blobs.py"), help="study file (default: blobs)")
    parser.add_argument("--seed", type=int, default=0,
                        help="the textbook sampler's seed and lrsearch run --seed in the first repeat, +1 per repeat "
                             "(default: 0), so that each repeat is a draw of the samplers' luck on both sides")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side; medians compared (default: 1)")
    parser.add_argument("--epochs", type=int, help="epochs per trial on both sides (default: the study file's)")
    parser.add_argument("--workers", type=int, help="lrsearch run --workers (default: lrsearch's own choice)")
    parser.add_argument("--lanes", help="lrsearch run --lanes: a count or auto (default: lrsearch's own)")
    args = parser.parse_args(argv)
    if not 0 < args.target <= 1:
        parser.error(f"--target must lie in (0, 1], but got {args.target}.")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, but got {args.epochs}.")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, but got {args.repeats}.")
    if args.limit <= 0:
        parser.error(f"--limit must be > 0, but got {args.limit}.")
    return args


class Outcome:
    """How one side did: seconds to the target (None if not reached), trials, best value,
    and trials to the target: how many the sampler had drawn up to the first that reached it."""

    def __init__(self, name: str, seconds: float | None, elapsed: float, trials: int, best: float,
                 trials_to_target: int | None) -> None:
        self.name, self.seconds, self.elapsed, self.trials, self.best = name, seconds, elapsed, trials, best
        self.trials_to_target = trials_to_target

    def describe(self, target: float) -> str:
        found = (f"reached {target} in {self.seconds:.1f} s at trial {self.trials_to_target}"
                 if self.seconds is not None else f"not reached in {self.elapsed:.0f} s")
        best = f"{self.best:.4f}" if math.isfinite(self.best) else "none"
        return f"{self.name:9} {found}; {self.trials} finished trials, best {best}"


# --------------------------------------------------------------------------- textbook side


def textbook(study_path: str, target: float, limit: float, seed: int, epochs: int | None) -> Outcome:
    """The recipe of Optuna's Keras example, on the same data, model and space."""
    import keras
    import optuna
    from optuna_integration import KerasPruningCallback

    from lrsearch.lr import make_callbacks, make_optimizer, suggest
    from lrsearch.study import data, load_study

    study_file = load_study(study_path)
    settings = study_file.settings
    (x, y), validation = data.load(study_file)
    steps = math.ceil(len(x) / settings.batch_size)
    epochs = epochs or settings.epochs

    def objective(trial: optuna.Trial) -> float:
        keras.backend.clear_session()
        config = suggest(trial, study_file.space)
        model = study_file.build_model(trial)
        model.compile(optimizer=make_optimizer(config, steps, epochs), loss=settings.loss,
                      metrics=settings.compile_metrics)
        callbacks = [*make_callbacks(config, OBJECTIVE, "maximize"), KerasPruningCallback(trial, OBJECTIVE)]
        history = model.fit(x, y, validation_data=validation, epochs=epochs,
                            batch_size=settings.batch_size, callbacks=callbacks, verbose=0)
        return float(history.history[OBJECTIVE][-1])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.monotonic()
    reached: list[float] = []

    def stop_at_target(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        elapsed = time.monotonic() - started
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        print(f"  textbook trial {trial.number:3} {trial.state.name:8} {value:>6}  at {elapsed:6.1f} s", flush=True)
        if trial.state == optuna.trial.TrialState.COMPLETE and trial.value >= target - FLOAT32_SLACK and not reached:
            reached.append(elapsed)
            study.stop()

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner())
    study.optimize(objective, timeout=limit, callbacks=[stop_at_target], catch=(Exception,))
    return _outcome("textbook", study.get_trials(deepcopy=False), reached, time.monotonic() - started, target)


# --------------------------------------------------------------------------- lrsearch side


def lrsearch(study_path: str, target: float, limit: float, workers: int | None, epochs: int | None,
             lanes: str | None, seed: int) -> Outcome:
    """`lrsearch run` on a fresh journal, watched from here until it reaches the target."""
    import optuna

    from lrsearch.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="lrsearch-ttt-") as folder:
        journal = os.path.join(folder, "run.journal")
        command = [sys.executable, "-m", "lrsearch", "run", study_path, "--storage", journal, "--study-name",
                   "ttt", "--n-trials", "1000", "--timeout", str(limit), "--no-report", "--seed", str(seed)]
        if workers:
            command += ["--workers", str(workers)]
        if lanes:
            command += ["--lanes", lanes]
        if epochs:
            command += ["--epochs", str(epochs)]
        log_path = os.path.join(folder, "run.log")
        started = time.monotonic()
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        reached: list[float] = []
        trials: list = []
        study = None
        try:
            while process.poll() is None and time.monotonic() - started < limit + 60:
                time.sleep(POLL_S)
                if study is None and os.path.exists(journal):
                    study = _try_load(journal, open_storage)
                if study is None:
                    continue
                trials = study.get_trials(deepcopy=False)
                best = _best(trials)
                if best >= target - FLOAT32_SLACK:
                    reached.append(time.monotonic() - started)
                    break
        finally:
            elapsed = time.monotonic() - started
            _stop(process)
        if study is not None:
            trials = study.get_trials(deepcopy=False)
        if study is None or (process.returncode not in (0, 130, -signal.SIGINT) and not reached):
            print(f"lrsearch run exited with {process.returncode}; its output:\n{Path(log_path).read_text()[-3000:]}")
        return _outcome("lrsearch", trials, reached, elapsed, target)


def _try_load(journal: str, open_storage):
    import optuna

    try:
        return optuna.load_study(study_name="ttt", storage=open_storage(journal))
    except KeyError:  # the run has not created the study yet
        return None


def _stop(process: subprocess.Popen) -> None:
    """Ctrl-C twice (the second kills running trials), then kill if it lingers."""
    for _ in range(2):
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            time.sleep(1.0)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------- both


def _best(trials) -> float:
    values = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    return max(values, default=-math.inf)


def _outcome(name: str, trials, reached: list[float], elapsed: float, target: float) -> Outcome:
    finished = [t for t in trials if t.state.is_finished()]
    hits = [t.number for t in finished if t.state.name == "COMPLETE" and t.value >= target - FLOAT32_SLACK]
    return Outcome(name, reached[0] if reached else None, elapsed, len(finished), _best(finished),
                   min(hits) + 1 if reached and hits else None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sides = ("lrsearch", "textbook") if args.side == "both" else (args.side,)
    print(f"target val_accuracy {args.target} on {args.study}; limit {args.limit:.0f} s per side; "
          f"{args.repeats} repeat(s); {os.cpu_count()} CPU(s)", flush=True)
    outcomes: dict[str, list[Outcome]] = {side: [] for side in sides}
    for repeat in range(args.repeats):
        for side in sides if repeat % 2 == 0 else sides[::-1]:  # alternate, so load hits both alike
            if side == "lrsearch":
                outcome = lrsearch(args.study, args.target, args.limit, args.workers, args.epochs, args.lanes,
                                   args.seed + repeat)
            else:
                outcome = textbook(args.study, args.target, args.limit, args.seed + repeat, args.epochs)
            outcomes[side].append(outcome)
            print(f"repeat {repeat}: {outcome.describe(args.target)}", flush=True)
    for side, runs in outcomes.items():
        print(f"{side:9} seconds to {args.target}: {', '.join(_seconds(o) for o in runs)}; "
              f"median {_median_seconds(runs)}; trials to it: "
              f"{', '.join(str(o.trials_to_target or 'miss') for o in runs)}")
    if len(outcomes) == 2:
        ours, theirs = _median(outcomes["lrsearch"]), _median(outcomes["textbook"])
        if math.isinf(ours):
            print("ratio: lrsearch did not reach the target in most repeats")
        else:
            bound = "> " if math.isinf(theirs) else ""
            theirs = theirs if not math.isinf(theirs) else args.limit
            print(f"ratio of medians: lrsearch reached {args.target} {bound}{theirs / ours:.1f}x sooner")
    return 0 if all(o.seconds is not None for runs in outcomes.values() for o in runs) else 1


def _median(runs: list[Outcome]) -> float:
    """Median seconds to the target; a repeat that missed counts as infinitely long."""
    return statistics.median(o.seconds if o.seconds is not None else math.inf for o in runs)


def _seconds(outcome: Outcome) -> str:
    return f"{outcome.seconds:.1f}" if outcome.seconds is not None else "miss"


def _median_seconds(runs: list[Outcome]) -> str:
    median = _median(runs)
    return "miss" if math.isinf(median) else f"{median:.1f}"


if __name__ == "__main__":
    sys.exit(main())
