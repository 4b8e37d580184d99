"""Wall time until a search finds a configuration that reaches a study's target (blobs:
val_accuracy >= 0.83): `lrsearch run` against the textbook Optuna + Keras recipe.

The objective and its direction are the study file's settings; the target is `--target`,
else the study file's module constant `TARGET` (the suite's files in benchmarks/suite/
have one), else 0.83 for blobs. Reaching it means a value at or above it for an
objective maximized, at or below it for one minimized.

- lrsearch: `lrsearch run` in a subprocess, on a fresh journal file in a temporary folder;
  the clock starts when the process is launched (imports, worker start-up and preflight
  included) and stops when the storage holds a complete trial at or above the target.
  The run is then interrupted (Ctrl-C twice: running trials are killed).
- textbook: a fresh Python process, as a user runs their script: `model.fit(...,
  validation_data=...)`, optuna-integration's `KerasPruningCallback` on the objective,
  `TPESampler` + `MedianPruner` (defaults), an in-memory study. The clock starts when the
  process is launched, as lrsearch's does (its imports and data loading included), and
  stops at the first complete trial at or above the target, or at the time limit (checked
  between trials).

- kerastuner (only with `--side kerastuner`; `pip install keras-tuner`): Keras Tuner's
  BayesianOptimization over the same space, `model.fit` as the textbook side, in a fresh
  process clocked and stopped the same way.

All sides sample the same space with `lrsearch.lr.suggest` and build the same
optimizer and callbacks with `lrsearch.lr`. A trial's value is its objective at its
last epoch, as lrsearch records it. One run is one draw of the
samplers' luck (a lucky textbook run needs 4 trials, an unlucky lrsearch run 29), so
--repeats N runs each side N times, alternating, and compares the medians.

    .venv/bin/python benchmarks/time_to_target.py --repeats 5 --limit 600
    .venv/bin/python benchmarks/time_to_target.py                       # one draw, 20 min cap each
    .venv/bin/python benchmarks/time_to_target.py --side textbook --limit 300
    .venv/bin/python benchmarks/time_to_target.py --study benchmarks/suite/lstm_sequences.py --repeats 5
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import json
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
BLOBS = ROOT / "studies" / "blobs.py"
#: The targets of the shipped study files, which hold no `TARGET` of their own.
KNOWN_TARGETS = {BLOBS: 0.83, ROOT / "studies" / "digits.py": 0.975}
SIDES = ("lrsearch", "textbook", "kerastuner")
#: Keras metrics are float32: 415/500 = 0.83 arrives as 0.82999998.
FLOAT32_SLACK = 1e-6
#: Seconds between two reads of the lrsearch run's storage.
POLL_S = 0.2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float,
                        help="objective value to reach (default: the study file's TARGET; 0.83 for blobs)")
    parser.add_argument("--limit", type=float, default=1200.0, help="seconds each side may take (default: 1200)")
    parser.add_argument("--side", choices=("both", *SIDES), default="both",
                        help="both: lrsearch and textbook (default); kerastuner needs pip install keras-tuner")
    parser.add_argument("--study", default=str(BLOBS), help="study file (default: blobs)")
    parser.add_argument("--seed", type=int, default=0,
                        help="the textbook sampler's seed and lrsearch run --seed in the first repeat, +1 per repeat "
                             "(default: 0), so that each repeat is a draw of the samplers' luck on both sides")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side; medians compared (default: 1)")
    parser.add_argument("--epochs", type=int, help="epochs per trial on both sides (default: the study file's)")
    parser.add_argument("--workers", type=int, help="lrsearch run --workers (default: lrsearch's own choice)")
    parser.add_argument("--lanes", help="lrsearch run --lanes: a count or auto (default: lrsearch's own)")
    parser.add_argument("--clock-from", type=float, help=argparse.SUPPRESS)  # this process is one side's own
    args = parser.parse_args(argv)
    if args.target is None:
        args.target = study_target(args.study)
    if args.target is None:
        parser.error(f"{args.study} has no TARGET = <number>; give --target.")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, but got {args.epochs}.")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, but got {args.repeats}.")
    if args.limit <= 0:
        parser.error(f"--limit must be > 0, but got {args.limit}.")
    return args


def study_target(path: str | os.PathLike) -> float | None:
    """The study file's module constant `TARGET` (read, not imported), else its known target."""
    path = Path(path).resolve()
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TARGET" for t in node.targets):
            return float(ast.literal_eval(node.value))
    return KNOWN_TARGETS.get(path)


class Goal:
    """A study's objective, its direction and the value to reach."""

    def __init__(self, study_path: str, target: float) -> None:
        from lrsearch.study import load_study

        settings = load_study(study_path).settings
        self.objective, self.direction, self.target = settings.objective, settings.direction, target

    def reached(self, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.direction == "maximize":
            return value >= self.target - FLOAT32_SLACK
        return value <= self.target + FLOAT32_SLACK

    def best(self, trials) -> float:
        """The best complete trial's value; -inf (maximize) or +inf (minimize) without one."""
        values = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
        pick, none = (max, -math.inf) if self.direction == "maximize" else (min, math.inf)
        return pick(values, default=none)

    def __str__(self) -> str:
        return f"{self.objective} {'>=' if self.direction == 'maximize' else '<='} {self.target:g}"


class Outcome:
    """How one side did: seconds to the target (None if not reached), trials, best value,
    and trials to the target: how many the sampler had drawn up to the first that reached it."""

    def __init__(self, name: str, seconds: float | None, elapsed: float, trials: int, best: float,
                 trials_to_target: int | None) -> None:
        self.name, self.seconds, self.elapsed, self.trials, self.best = name, seconds, elapsed, trials, best
        self.trials_to_target = trials_to_target

    def describe(self, goal: Goal) -> str:
        found = (f"reached {goal} in {self.seconds:.1f} s at trial {self.trials_to_target}"
                 if self.seconds is not None else f"not reached in {self.elapsed:.0f} s")
        best = f"{self.best:.4f}" if math.isfinite(self.best) else "none"
        return f"{self.name:10} {found}; {self.trials} finished trials, best {best}"


# --------------------------------------------------------------------------- textbook side


def textbook(study_path: str, goal: Goal, limit: float, seed: int, epochs: int | None, started: float) -> Outcome:
    """The recipe of Optuna's Keras example, on the same data, model and space; `started`
    is the `time.monotonic()` its clock counts from."""
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
        callbacks = [*make_callbacks(config, goal.objective, goal.direction),
                     KerasPruningCallback(trial, goal.objective)]
        history = model.fit(x, y, validation_data=validation, epochs=epochs,
                            batch_size=settings.batch_size, callbacks=callbacks, verbose=0)
        return float(history.history[goal.objective][-1])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    reached: list[float] = []

    def stop_at_target(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        elapsed = time.monotonic() - started
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        print(f"  textbook trial {trial.number:3} {trial.state.name:8} {value:>6}  at {elapsed:6.1f} s", flush=True)
        if trial.state == optuna.trial.TrialState.COMPLETE and goal.reached(trial.value) and not reached:
            reached.append(elapsed)
            study.stop()

    study = optuna.create_study(direction=goal.direction, sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner())
    study.optimize(objective, timeout=max(limit - (time.monotonic() - started), 0.0), callbacks=[stop_at_target],
                   catch=(Exception,))
    return _outcome("textbook", study.get_trials(deepcopy=False), reached, time.monotonic() - started, goal)


# --------------------------------------------------------------------------- lrsearch side


def lrsearch(study_path: str, goal: Goal, limit: float, workers: int | None, epochs: int | None,
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
                try:
                    trials = study.get_trials(deepcopy=False)
                except KeyError:  # the run deleted the study it had made (and may make it again)
                    study = None
                    continue
                if goal.reached(goal.best(trials)):
                    reached.append(time.monotonic() - started)
                    break
        finally:
            elapsed = time.monotonic() - started
            _stop(process)
        if study is not None:
            with contextlib.suppress(KeyError):
                trials = study.get_trials(deepcopy=False)
        if study is None or (process.returncode not in (0, 130, -signal.SIGINT) and not reached):
            print(f"lrsearch run exited with {process.returncode}; its output:\n{Path(log_path).read_text()[-3000:]}")
        return _outcome("lrsearch", trials, reached, elapsed, goal)


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


# --------------------------------------------------------------------------- Keras Tuner side


class _HyperParameterTrial:
    """What `lrsearch.lr.suggest` asks of an Optuna trial, answered by Keras Tuner's `hp`."""

    def __init__(self, hp) -> None:
        self.hp = hp

    def suggest_categorical(self, name: str, choices: list):
        return self.hp.Choice(name, choices)

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return self.hp.Float(name, low, high, sampling="log" if log else "linear")

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return self.hp.Int(name, low, high)


class _StopSearch(Exception):
    """Raised between two Keras Tuner trials to end its search."""


def kerastuner(study_path: str, goal: Goal, limit: float, seed: int, epochs: int | None, started: float) -> Outcome:
    """Keras Tuner's BayesianOptimization (its seed `seed`) on the same data, model and space;
    `started` as for `textbook`."""
    try:
        import keras_tuner
    except ImportError:
        raise SystemExit("--side kerastuner needs Keras Tuner, which lrsearch does not: pip install keras-tuner")
    import keras
    import optuna

    from lrsearch.lr import make_callbacks, make_optimizer, suggest
    from lrsearch.study import data, load_study

    study_file = load_study(study_path)
    settings = study_file.settings
    (x, y), validation = data.load(study_file)
    steps = math.ceil(len(x) / settings.batch_size)
    epochs = epochs or settings.epochs
    reached: list[float] = []
    values: list[float] = []  # each trial's objective at its last epoch, NaN where it failed

    class HyperModel(keras_tuner.HyperModel):
        def declare_hyperparameters(self, hp):
            """Every parameter of every optimizer and schedule, so that the tuner samples them all."""
            for optimizer in study_file.space.optimizers:
                for schedule in study_file.space.schedules:
                    suggest(_HyperParameterTrial(hp), dataclasses.replace(
                        study_file.space, optimizers=(optimizer,), schedules=(schedule,)))
            self.build(hp)

        def build(self, hp):
            keras.backend.clear_session()
            config = suggest(_HyperParameterTrial(hp), study_file.space)
            model = study_file.build_model(optuna.trial.FixedTrial({}))
            model.compile(optimizer=make_optimizer(config, steps, epochs), loss=settings.loss,
                          metrics=settings.compile_metrics)
            model.lrsearch_config = config
            return model

    class Tuner(keras_tuner.BayesianOptimization):
        def run_trial(self, trial, *args, **kwargs):
            """Fit as the textbook side does; the trial's score is its last epoch's objective."""
            model = self.hypermodel.build(trial.hyperparameters)
            history = model.fit(x, y, validation_data=validation, epochs=epochs, batch_size=settings.batch_size,
                                callbacks=make_callbacks(model.lrsearch_config, goal.objective, goal.direction),
                                verbose=0)
            values.append(float(history.history[goal.objective][-1]))
            return {goal.objective: values[-1]}

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            elapsed = time.monotonic() - started
            if len(values) < len(self.oracle.trials):
                values.append(math.nan)
            shown = f"{values[-1]:.4f}" if math.isfinite(values[-1]) else "-"
            print(f"  kerastuner trial {len(values) - 1:3} {trial.status:8} {shown:>6}  at {elapsed:6.1f} s",
                  flush=True)
            if goal.reached(values[-1]) and not reached:
                reached.append(elapsed)
            if reached or elapsed >= limit:
                raise _StopSearch

    direction = "max" if goal.direction == "maximize" else "min"
    with tempfile.TemporaryDirectory(prefix="lrsearch-ttt-kt-") as folder:
        tuner = Tuner(HyperModel(), objective=keras_tuner.Objective(goal.objective, direction), max_trials=100_000,
                      seed=seed, directory=folder, project_name="ttt", overwrite=True)
        try:
            tuner.search(verbose=0)
        except _StopSearch:
            pass
    finished = [v for v in values if math.isfinite(v)]
    best = (max if goal.direction == "maximize" else min)(finished, default=goal.best([]))
    hits = [number for number, value in enumerate(values) if goal.reached(value)]
    return Outcome("kerastuner", reached[0] if reached else None, time.monotonic() - started, len(values), best,
                   hits[0] + 1 if hits else None)


# --------------------------------------------------------------------------- all

#: What a side's own process prints last: its Outcome's fields, as JSON.
RESULT = "time_to_target result: "


def in_fresh_process(side: str, study_path: str, goal: Goal, limit: float, seed: int,
                     epochs: int | None) -> Outcome:
    """`side` ("textbook" or "kerastuner") in a Python process of its own, clocked from
    its launch (CLOCK_MONOTONIC is one clock for all processes of this machine)."""
    started = time.monotonic()
    command = [sys.executable, __file__, "--study", study_path, "--target", str(goal.target), "--limit", str(limit),
               "--seed", str(seed), "--side", side, "--clock-from", repr(started)]
    if epochs:
        command += ["--epochs", str(epochs)]
    result = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as process:
        for line in process.stdout:
            if line.startswith(RESULT):
                result = json.loads(line[len(RESULT):])
            else:
                print(line, end="", flush=True)
    if result is None:
        raise SystemExit(f"the {side} side's process exited with {process.returncode} and no result")
    return Outcome(**result)


def _one_side(args: argparse.Namespace) -> int:
    """The child of `in_fresh_process`: run one side once, print its outcome."""
    goal = Goal(args.study, args.target)
    run = textbook if args.side == "textbook" else kerastuner
    outcome = run(args.study, goal, args.limit, args.seed, args.epochs, args.clock_from)
    print(RESULT + json.dumps(vars(outcome)), flush=True)
    return 0


def _outcome(name: str, trials, reached: list[float], elapsed: float, goal: Goal) -> Outcome:
    finished = [t for t in trials if t.state.is_finished()]
    hits = [t.number for t in finished if t.state.name == "COMPLETE" and goal.reached(t.value)]
    return Outcome(name, reached[0] if reached else None, elapsed, len(finished), goal.best(finished),
                   min(hits) + 1 if reached and hits else None)


def compare(study_path: str, goal: Goal, sides: tuple[str, ...], repeats: int, seed: int, limit: float,
            epochs: int | None = None, workers: int | None = None,
            lanes: str | None = None) -> dict[str, list[Outcome]]:
    """Each side `repeats` times, alternating which goes first, repeat i with seed `seed` + i."""
    outcomes: dict[str, list[Outcome]] = {side: [] for side in sides}
    for repeat in range(repeats):
        for side in sides if repeat % 2 == 0 else sides[::-1]:  # alternate, so load hits all alike
            if side == "lrsearch":
                outcome = lrsearch(study_path, goal, limit, workers, epochs, lanes, seed + repeat)
            else:
                outcome = in_fresh_process(side, study_path, goal, limit, seed + repeat, epochs)
            outcomes[side].append(outcome)
            print(f"repeat {repeat}: {outcome.describe(goal)}", flush=True)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.clock_from is not None:
        return _one_side(args)
    sides = ("lrsearch", "textbook") if args.side == "both" else (args.side,)
    goal = Goal(args.study, args.target)
    print(f"target {goal} on {args.study}; limit {args.limit:.0f} s per side; "
          f"{args.repeats} repeat(s); {os.cpu_count()} CPU(s)", flush=True)
    outcomes = compare(args.study, goal, sides, args.repeats, args.seed, args.limit, args.epochs, args.workers,
                       args.lanes)
    for side, runs in outcomes.items():
        print(f"{side:9} seconds to {goal.target:g}: {', '.join(_seconds(o) for o in runs)}; "
              f"median {_median_seconds(runs)}; trials to it: "
              f"{', '.join(str(o.trials_to_target or 'miss') for o in runs)}")
    if len(outcomes) == 2:
        ratio = median_ratio(outcomes["lrsearch"], outcomes["textbook"], args.limit)
        print(f"ratio of medians: lrsearch reached {goal.target:g} {ratio} sooner" if ratio
              else "ratio: lrsearch did not reach the target in most repeats")
    return 0 if all(o.seconds is not None for runs in outcomes.values() for o in runs) else 1


def median_ratio(ours: list[Outcome], theirs: list[Outcome], limit: float) -> str | None:
    """The other side's median seconds over lrsearch's, as "12.3x" ("> 12.3x" where the
    other side's median missed: its time limit stands in); None where lrsearch's missed."""
    mine, other = median(ours), median(theirs)
    if math.isinf(mine):
        return None
    return f"> {limit / mine:.1f}x" if math.isinf(other) else f"{other / mine:.1f}x"


def median(runs: list[Outcome]) -> float:
    """Median seconds to the target; a repeat that missed counts as infinitely long."""
    return statistics.median(o.seconds if o.seconds is not None else math.inf for o in runs)


def _seconds(outcome: Outcome) -> str:
    return f"{outcome.seconds:.1f}" if outcome.seconds is not None else "miss"


def _median_seconds(runs: list[Outcome]) -> str:
    value = median(runs)
    return "miss" if math.isinf(value) else f"{value:.1f}"


if __name__ == "__main__":
    sys.exit(main())
