"""One trial: build the study's model, compile it with the trial's learning-rate
configuration, train it, and record what happened.

What a trial records (its device and configuration, then its history and training
time) goes through `lrsearch.results._record`; the pruning callback adds why it was pruned.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import Any

import keras
import optuna

from lrsearch import internals, results
from lrsearch.errors import StudyFileError
from lrsearch.lr import LearningRateMonitor, LRConfig, make_callbacks, make_optimizer, suggest
from lrsearch.study import Study, data, problem_of, user_code
from lrsearch.training import _architecture as architecture, _epochs as epoch_loop, _lanes as lanes
from lrsearch.training._pruning import Pruned, PruningCallback


#: Compiled models a worker keeps: one per architecture (a study whose `build_model` varies its layers has several).
KEPT_MODELS = 16
#: The lanes clause of a training path while a worker's lanes wait to be timed until a new
#: study's start trials (the usual starting rates, the likeliest to be good) are taken: they
#: finish as soon as they can, not behind the timing and each in a lane's longer time.
LANES_LATER = (", one trial at a time until the study's start trials are taken, then in as many lanes as "
               "measured to pay")


class TrialRunner:
    """Holds a study's data once per process and trains its trials: one at a time, or
    one per thread in lanes once `use_lanes` said yes."""

    def __init__(self, study: Study, epochs: int | None = None, device: str = "cpu") -> None:
        self.study = study
        self.settings = dataclasses.replace(study.settings, epochs=epochs or study.settings.epochs)  # --epochs
        self.epochs = self.settings.epochs
        self.device = device
        self._recorded_steps = False
        self._steps: int | None = None
        self.train, self.val = data.load(study)
        self.trainer = epoch_loop.Trainer(self.train, self.val, loss=self.settings.loss,
                                       metrics=self.settings.compile_metrics,
                                       batch_size=self.settings.batch_size,
                                       keep=KEPT_MODELS if self.settings.keep_compiled else 0)
        self.lanes = 1
        self.lanes_to_time: int | None = None  # the cap of the lanes `preflight` left to time later
        self.preflight: Preflight | None = None  # what `preflight` found, the lanes once timed
        self.first_trial: tuple[float, int] | None = None  # its seconds and training steps: it traced the step
        self._building = threading.Lock()  # threads in lanes share the global seed

    def use_lanes(self, count: int, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> str | None:
        """Train trials in `count` lanes (threads calling this runner at once) if models
        like `model` with `optimizer` can; None if so, else why not."""
        if not self.settings.keep_compiled:
            return "settings.keep_compiled is off"
        trainer = lanes.Lanes(self.train, self.val, loss=self.settings.loss, metrics=self.settings.compile_metrics,
                              batch_size=self.settings.batch_size, lanes=count, alone=self.trainer)
        why = trainer.why_not(model, optimizer)
        if why is None:
            self.trainer, self.lanes = trainer, count
        return why

    def choose_lanes(self, model: keras.Model, cap: int, trials_left: int | None = None) -> "lanes.Choice":
        """Measure how many lanes pay for the compiled `model` (`lanes.choose`), given the
        `trials_left` to this worker where known, and train in that many; the optimizer of
        `model` must be a fresh trial's."""
        left = None
        if trials_left is not None and self.first_trial is not None:
            left = lanes.WorkLeft(trials_left * self.epochs * self.steps_per_epoch(), *self.first_trial)
        choice = lanes.choose(self.trainer, model, model.optimizer, loss=self.settings.loss,
                              metrics=self.settings.compile_metrics, cap=cap, left=left)
        if choice.count > 1:
            self.trainer = lanes.Lanes(self.train, self.val, loss=self.settings.loss,
                                       metrics=self.settings.compile_metrics, batch_size=self.settings.batch_size,
                                       lanes=choice.count, alone=self.trainer, group=choice.group)
            self.lanes = choice.count
        return choice

    def time_lanes(self, trials_left: int | None = None) -> str | None:
        """Time the lanes `preflight` left to time (`LANES_LATER`), on a fresh trial's compiled
        model, unless the `trials_left` to this worker cannot pay for it, and train in as many
        as pay (`choose_lanes`); what was chosen, as a clause, and `preflight` updated to say
        it; None if no lanes were left to time."""
        cap, self.lanes_to_time = self.lanes_to_time, None
        if cap is None:
            return None
        probe = optuna.create_study(direction=self.settings.direction).ask()
        try:
            clause = _measured_lanes(self, self.build(probe, suggest(probe, self.study.space)), cap, trials_left)
        except Exception as exc:  # the first trial trained: the trials go on one at a time
            clause = f", one trial at a time, because timing lanes failed ({problem_of(exc)})"
        self.preflight = dataclasses.replace(self.preflight, training_path=self.preflight.training_path.replace(
            LANES_LATER, clause))
        return clause

    def steps_per_epoch(self) -> int:
        if self._steps is None:
            try:
                self._steps = data.steps_per_epoch(self.train, self.settings.batch_size)
            except ValueError as exc:
                raise StudyFileError(self.study.path, f"data(): {exc}") from None
        return self._steps

    def new_model(self, trial: Any, config: LRConfig) -> tuple[keras.Model, keras.optimizers.Optimizer]:
        """The study's model, uncompiled, and a fresh optimizer for `config`."""
        model = self.study.build_model(trial, passthrough=(optuna.TrialPruned,))
        if not isinstance(model, keras.Model):
            raise StudyFileError(self.study.path, f"build_model() must return a Keras model, but returned "
                                                  f"{type(model).__name__}.")
        return model, make_optimizer(config, self.steps_per_epoch(), self.epochs)

    def build(self, trial: Any, config: LRConfig) -> keras.Model:
        """The study's model, compiled with `config`'s optimizer."""
        return self.compile(*self.new_model(trial, config))

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> keras.Model:
        """`model` compiled with `optimizer` and the settings' loss and metrics."""
        try:
            model.compile(optimizer=optimizer, loss=self.settings.loss, metrics=self.settings.compile_metrics)
        except (ValueError, TypeError) as exc:
            raise StudyFileError(self.study.path, f"compiling the model with settings loss={self.settings.loss!r}, "
                                                  f"metrics={self.settings.compile_metrics!r} failed: "
                                                  f"{problem_of(exc)}") from exc
        return model

    def __call__(self, trial: optuna.Trial) -> float:
        """The Optuna objective: the monitored metric at the last epoch."""
        seed = results.trial_seed(self.settings.seed, trial.number)
        started = time.perf_counter()
        config = suggest(trial, self.study.space)
        if not self._recorded_steps:  # what `lrsearch export` needs to replay a 1cycle trial
            results.write_study(trial.study, steps_per_epoch=self.steps_per_epoch())
            self._recorded_steps = True
        results.write_trial_config(trial, self.device, config.to_dict())
        recorder = keras.callbacks.History()
        callbacks = self.callbacks(trial, config, recorder, prune=True)
        try:
            model, optimizer = self.seeded_model(trial, config, seed, fresh_names=self.lanes == 1)
            self.trainer.fit(model, optimizer, epochs=self.epochs, callbacks=callbacks, seed=seed)
        except optuna.TrialPruned as exc:
            if not isinstance(exc, Pruned):  # the study file's build_model or callback pruned it
                trained = len(recorder.history.get("loss", []))
                results.write_pruned(trial, results.BY_STUDY_FILE, trained - 1 if trained else None,
                                     str(exc) or "optuna.TrialPruned, without a message")
            raise
        finally:
            seconds = time.perf_counter() - started
            self._record(trial, recorder.history, seconds)
            if self.first_trial is None:
                self.first_trial = seconds, len(recorder.history.get("loss", [])) * self.steps_per_epoch()
        return float(recorder.history[self.settings.objective][-1])

    def seeded_model(self, trial: Any, config: LRConfig, seed: int, fresh_names: bool):
        """`new_model`, built, its initial weights drawn from `seed`; with `fresh_names`
        Keras' layer names start afresh, as the kept models' signatures need (not while
        other threads build models: lanes ignore names)."""
        with self._building:
            if fresh_names:
                internals.reset_layer_names()
            internals.seed_keras(seed)
            model, optimizer = self.new_model(trial, config)
            if not model.built:
                model(data.take(self.train, 1)[0])
            return model, optimizer

    def retrain(self, config: LRConfig, params: dict, seed: int, number: int = 0) -> float | None:
        """Train finished trial `number`'s configuration again on `seed`, as its trial
        trained but without pruning: the objective at the last epoch, None if it diverged.
        `params` are the trial's, which answer the builder's own suggestions; the builder
        and callbacks() see the trial's number."""
        trial = optuna.trial.FixedTrial(params, number=number)
        recorder = keras.callbacks.History()
        callbacks = self.callbacks(trial, config, recorder, prune=False)
        model, optimizer = self.seeded_model(trial, config, seed, fresh_names=self.lanes == 1)
        self.trainer.fit(model, optimizer, epochs=self.epochs, callbacks=callbacks, seed=seed)
        values = recorder.history.get(self.settings.objective, [])  # fewer than epochs if a callback stopped it
        finished = values and epoch_loop.NONFINITE_KEY not in recorder.history and math.isfinite(values[-1])
        return float(values[-1]) if finished else None

    def callbacks(self, trial: Any, config: LRConfig, recorder: keras.callbacks.History, *,
                  prune: bool) -> list[keras.callbacks.Callback]:
        """A training's callbacks, in order: the learning rate into the logs, `recorder`
        (before the pruning callback, so that it keeps the last epoch), the schedule's, the
        study file's, and with `prune` the pruning callback."""
        callbacks = [LearningRateMonitor(), recorder,
                     *make_callbacks(config, self.settings.objective, self.settings.direction),
                     *self.study_callbacks(trial)]
        if prune:
            callbacks.append(PruningCallback(trial, self.settings.objective, self.settings.direction,
                                             self.settings.stall_window))
        return callbacks

    def study_callbacks(self, trial: Any) -> list[keras.callbacks.Callback]:
        """The study file's callbacks(trial), checked, each run inside `user_code`: what
        one raises fails its training with the file named."""
        made = self.study.call_callbacks(trial)
        if not isinstance(made, (list, tuple)) or not all(isinstance(c, keras.callbacks.Callback) for c in made):
            raise StudyFileError(self.study.path, f"callbacks() must return a list of Keras callbacks, but returned "
                                                  f"{made!r:.200}.")
        return [_StudyCallback(self.study.path, callback) for callback in made]

    def _record(self, trial: optuna.Trial, history: dict, duration: float) -> None:
        results.write_trial_end(trial, {k: v for k, v in history.items() if k != epoch_loop.NONFINITE_KEY}, duration)


class _StudyCallback(keras.callbacks.Callback):
    """A study file's callback with its epoch-level hooks run inside `user_code` (the
    epoch loops call no batch-level hooks)."""

    def __init__(self, path, callback: keras.callbacks.Callback) -> None:
        super().__init__()
        self.path, self.callback = path, callback

    def set_model(self, model) -> None:
        self.callback.set_model(model)

    def set_params(self, params) -> None:
        self.callback.set_params(params)

    def _hook(self, name: str, *args) -> None:
        with user_code(self.path, f"callbacks(): {type(self.callback).__name__}.{name}()", (optuna.TrialPruned,)):
            getattr(self.callback, name)(*args)

    def on_train_begin(self, logs=None) -> None:
        self._hook("on_train_begin", logs)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._hook("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None) -> None:
        self._hook("on_epoch_end", epoch, logs)

    def on_train_end(self, logs=None) -> None:
        self._hook("on_train_end", logs)


@dataclasses.dataclass(frozen=True)
class Preflight:
    """What the check before the first trial found: how trials train (in words), and
    the model (`architecture.describe`) when `build_model` suggests nothing of its own."""

    training_path: str
    model: dict | None


def preflight(runner: TrialRunner, lane_count: int | None = 1, lane_cap: int = lanes.MAX_LANES) -> Preflight:
    """Check the study file against Keras before any real trial: the builder returns a
    Keras model that takes the data and loss, and the objective is in the logs. Raises
    StudyFileError. It runs one eager `test_step` on a batch of each split. With
    `lane_count` > 1 it sets the runner to train in lanes if this model can (tracing the
    lanes' step, which the trials then use); with None, leaves the lanes to
    `TrialRunner.time_lanes` once the study's start trials are taken (`LANES_LATER`: as many
    as measured to pay, at most `lane_cap`; none for a study file with callbacks(), which
    lanes would give a stand-in model). Sets `runner.preflight`."""
    study = runner.study
    probe = optuna.create_study(direction=study.settings.direction).ask()
    keras.backend.clear_session(free_memory=False)
    config = suggest(probe, study.space)
    space_params = set(probe.params)
    model, optimizer = runner.new_model(probe, config)
    compiled_by_builder = getattr(model, "compiled", False)
    runner.compile(model, optimizer)
    for split, part in (("training", runner.train), ("validation", runner.val)):
        batch = data.first_batch(part, study.settings.batch_size)
        try:
            logged = sorted(model.test_step(batch))
        except Exception as exc:
            raise StudyFileError(study.path, f"evaluating one batch of the {split} data failed ({_inputs(model, batch)}"
                                             f"; loss {study.settings.loss!r}, metrics "
                                             f"{list(study.settings.compile_metrics)!r}): {problem_of(exc)}") from exc
    logged += [f"val_{name}" for name in logged]
    if study.settings.objective not in logged:
        raise StudyFileError(study.path, f"the objective {study.settings.objective!r} is not logged by this "
                                         f"model; it logs {logged}. Set settings.objective to one of them "
                                         f"or add the metric to settings.metrics.")
    fixed = set(probe.params) == space_params
    path = epoch_loop.training_path(model, runner.train, runner.val) + _lanes_clause(runner, model, lane_count,
                                                                                        lane_cap, fixed)
    if compiled_by_builder:
        path += ("; build_model() returns a compiled model, whose compile() lrsearch replaces by its own (the "
                 "settings' loss and metrics, each trial's optimizer): return it uncompiled")
    runner.preflight = Preflight(path, architecture.describe(model) if fixed else None)
    keras.backend.clear_session(free_memory=False)
    return runner.preflight


def _inputs(model: keras.Model, batch) -> str:
    """What met in a batch's evaluation: the batch's shapes (x, y, sample weights) and the
    model's input shape, where Keras knows it."""
    items = batch if isinstance(batch, (tuple, list)) else (batch,)
    shapes = ", ".join(f"{role} {data.map_arrays(lambda a: tuple(a.shape), item)}"
                       for role, item in zip(data.ROLES, items))
    try:
        return f"batch {shapes}; model input {model.input_shape}"
    except (AttributeError, ValueError):  # a subclassed model has no input shape
        return f"batch {shapes}"


def _lanes_clause(runner: TrialRunner, model: keras.Model, lane_count: int | None, lane_cap: int,
                  fixed: bool) -> str:
    """How many trials at once a worker trains, and why no more, as a clause of the
    training path (`fixed`: whether `build_model` suggests nothing of its own); sets
    `runner` to train in lanes if it will (see `preflight`)."""
    if epoch_loop.can_run_fast(model, runner.train, runner.val) is not None:
        return ", one trial at a time"  # the training path says why
    if lane_count is None and runner.study.callbacks is not None:
        return (", one trial at a time, because the study file's callbacks() get a stand-in for the model in "
                "lanes (--lanes K trains in lanes all the same)")
    if lane_count == 1:
        return ", one trial at a time, as --lanes 1 asks"
    if lane_count is None:
        why = lanes.why_alone(model, runner.train, runner.val)
        if why is None and not fixed:
            why = ("build_model() suggests its own parameters, so trials seldom share the compiled step that lanes "
                   "share and each new one would trace the lanes' step again (--lanes K trains in lanes all the same)")
        if why is None and lane_cap < 2:
            why = ("each worker's share of the work is too small for lanes (a larger n_trials, --n-trials, or more "
                   "trainings to confirm allow them)")
        if why is None and not runner.settings.keep_compiled:
            why = "settings.keep_compiled is off"
        if why is None:
            runner.lanes_to_time = lane_cap
            return LANES_LATER
        return f", one trial at a time, because {why}"
    why_not = runner.use_lanes(lane_count, model, model.optimizer)
    if why_not is not None:
        return f", one trial at a time, because {why_not}"
    op = runner.trainer.lane_by_lane(model)
    return f", {lane_count} trials at once in lanes" + (
        f" (TensorFlow's {op} op and other ops without a vectorised form run lane by lane)" if op else "")


def _measured_lanes(runner: TrialRunner, model: keras.Model, lane_cap: int, trials_left: int | None) -> str:
    """The lanes clause for `--lanes auto`: as many lanes as `lanes.choose` measured to pay."""
    choice = runner.choose_lanes(model, lane_cap, trials_left)
    if choice.count == 1:
        return f", one trial at a time, because {choice.said}"
    op = runner.trainer.lane_by_lane(model)
    return f", {choice.count} trials at once in lanes, as measured ({choice.said})" + (
        f"; TensorFlow's {op} op and other ops without a vectorised form run lane by lane" if op else "")


def train(
    study: Study | str,
    config: LRConfig | dict,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    model_params: dict | None = None,
) -> dict[str, list[float]]:
    """Train the study's model once with `config`, without Optuna or pruning, and return
    its per-epoch logs (`lr` included). `model_params` answers the builder's own
    `trial.suggest_*` calls, if it makes any."""
    from lrsearch.study import load_study

    if not isinstance(study, Study):
        study = load_study(study)
    if isinstance(config, dict):
        config = LRConfig.from_dict(config)
    runner = TrialRunner(study, epochs=epochs)
    seed = study.settings.seed if seed is None else seed
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = runner.build(optuna.trial.FixedTrial(model_params or {}), config)
    recorder = keras.callbacks.History()
    callbacks = [LearningRateMonitor(), recorder,
                 *make_callbacks(config, study.settings.objective, study.settings.direction)]
    epoch_loop.fit(model, runner.train, runner.val, epochs=runner.epochs, batch_size=study.settings.batch_size,
                callbacks=callbacks, seed=seed)
    return dict(recorder.history)
