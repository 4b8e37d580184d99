"""The LR range test (Smith; the 1cycle article in seeds/004): train while the learning
rate grows geometrically, watch the smoothed loss and suggest a learning rate from the
curve; in this process or in a spawned child.

The loop runs inside one `tf.function`: the learning rate is assigned to the
optimizer's variable before each `train_step`, the batch loss is recorded, and the loop
stops once the smoothed loss (exponential moving average, bias-corrected) exceeds
`diverge_factor` times its minimum or turns non-finite. The model's weights and the
optimizer's state are restored afterwards.

Rules (both are computed; `suggestion` follows `rule`):

- ``"min/10"`` (default): a tenth of the learning rate at the smoothed loss' minimum,
  the article's "about 10x below where the loss starts to shoot up" (fastai's
  "minimum").
- ``"steepest"``: where the smoothed loss falls fastest against log(lr), between the
  moving average's warm-up and the minimum. Noisy on small problems.

Either way the result warns when the suggestion sits on a bump: the smoothed loss there
is more than `BUMP_MARGIN` above its lowest at the lower learning rates before it
(after the warm-up). On a clean curve the suggestion lies on the falling part, at that
lowest value; plain SGD on blobs climbs to a transient around the suggestion that falls
again before the minimum, so min/10 lands on top of it.

Why 2000 iterations by default, not "a few hundred": a blobs epoch is 16 batches. With
300 iterations over 1e-7..10 the model is still in its high-loss start-up state when
the LR passes the useful range, where plain SGD spikes; the test then measures that
transient and min/10 lands far below what trains best. With 2000 iterations the model
learns at the useful LRs first, and the in-graph loop stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from lrsearch import internals
from lrsearch.errors import UsageError
from lrsearch.rangetest._inputs import DEFAULTS, RULES, check_inputs, check_sweep
from lrsearch.lr import LRConfig
from lrsearch.results import range_test_key

if TYPE_CHECKING:
    import keras

    from lrsearch.study import Study

#: How far above the lowest smoothed loss at lower learning rates the smoothed loss at the
#: suggestion must lie to count as a bump: 25%, far above the moving average's noise
#: (about 1% on clean curves) and what one sees as a rise on the figure.
BUMP_MARGIN = 0.25


#: The fall of the smoothed loss, relative to its value after the warm-up, below which a
#: range test is said to show no learning (`RangeTestResult.warning`).
LEARNED = 0.05


class Bump(NamedTuple):
    """The smoothed loss at the suggestion, and the lowest one at lower learning rates."""

    loss: float
    low: float
    low_lr: float


@dataclasses.dataclass(frozen=True)
class RangeTestResult:
    """One range test: its inputs, the curve, the suggestion and how it was found.

    `lrs`, `losses` and `smoothed` hold one value per iteration run; `stopped` is
    "diverged" (smoothed loss above diverge_factor x its minimum), "nonfinite" or "end"
    (the LR reached end_lr without the loss blowing up). `momentum` is SGD's (else None).
    `bump` is set when the suggestion sits on a bump of the smoothed loss (`find_bump`).
    """

    optimizer: str
    batch_size: int
    momentum: float | None
    start_lr: float
    end_lr: float
    iterations: int
    beta: float
    diverge_factor: float
    rule: str
    losses: tuple[float, ...]
    stopped: str
    duration_s: float
    lrs: tuple[float, ...] = dataclasses.field(init=False)
    smoothed: tuple[float, ...] = dataclasses.field(init=False)
    suggestion: float = dataclasses.field(init=False)
    min_lr: float = dataclasses.field(init=False)
    steepest_lr: float = dataclasses.field(init=False)
    bump: Bump | None = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        lrs = lr_steps(self.start_lr, self.end_lr, self.iterations)[: len(self.losses)]
        smoothed = smooth(self.losses, self.beta)
        warmup = self.warmup
        suggestion, min_lr, steepest_lr = suggest_lr(lrs, smoothed, self.rule, warmup=warmup)
        for name, value in (("lrs", tuple(float(v) for v in lrs)), ("smoothed", tuple(float(v) for v in smoothed)),
                            ("suggestion", suggestion), ("min_lr", min_lr), ("steepest_lr", steepest_lr),
                            ("bump", find_bump(lrs, smoothed, suggestion, warmup))):
            object.__setattr__(self, name, value)

    @property
    def warmup(self) -> int:
        """Iterations the smoothed loss takes to forget its start (1 / (1 - beta))."""
        return round(1 / (1 - self.beta))

    @property
    def key(self) -> str:
        return range_test_key(self.optimizer, self.batch_size)

    def inputs(self) -> dict[str, Any]:
        """What decides whether a stored result answers a new request."""
        names = ("optimizer", "batch_size", "momentum", "start_lr", "end_lr", "iterations", "beta",
                 "diverge_factor", "rule")
        return {name: getattr(self, name) for name in names}

    def describe(self) -> str:
        how = {"min/10": f"a tenth of the lr at the smoothed-loss minimum, {self.min_lr:.3g}",
               "steepest": f"where the smoothed loss falls fastest; the minimum is at {self.min_lr:.3g}"}[self.rule]
        end = {"diverged": f"the loss blew up at lr {self.lrs[-1]:.3g}",
               "nonfinite": f"the loss turned non-finite at lr {self.lrs[-1]:.3g}",
               "end": f"the loss never blew up up to lr {self.end_lr:g}"}[self.stopped]
        return (f"{self.optimizer} (batch {self.batch_size}): suggested lr {self.suggestion:.3g}, rule {self.rule}: "
                f"{how}; {end} after {len(self.losses)} iterations ({self.duration_s:.1f} s)")

    def warning(self) -> str | None:
        """One line on what makes the suggestion doubtful, and what to do: the loss never
        fell (by `LEARNED` of its value after the warm-up), it still fell at the sweep's end,
        or the suggestion sits on a bump; None where nothing does."""
        warmup = min(self.warmup, len(self.smoothed) - 1)
        after_warmup = np.asarray(self.smoothed[warmup:], float)
        start, lowest = after_warmup[0], np.nanmin(after_warmup) if np.isfinite(after_warmup).any() else np.nan
        if math.isfinite(start) and not start - lowest > LEARNED * abs(start):
            return (f"warning: the smoothed loss never fell by {LEARNED:.0%} of its {start:.3g} at any lr from "
                    f"{self.lrs[warmup]:.3g} up: the model did not learn in this sweep, so the suggestion says "
                    f"nothing; check that it trains (its data, its loss, a train_step of its own) before searching")
        if self.stopped == "end" and self.min_lr >= self.lrs[int(0.95 * (len(self.lrs) - 1))]:
            return (f"warning: the smoothed loss was still falling at the sweep's end (lr {self.lrs[-1]:.3g}), so its "
                    f"minimum, and the suggestion, may lie higher: run the test again with a higher end_lr "
                    f"(--end-lr) or more iterations")
        if self.bump is None:
            return None
        loss, low, low_lr = self.bump
        return (f"warning: the suggestion sits on a bump of the smoothed loss ({loss:.3g} at lr {self.suggestion:.3g}, "
                f"{loss / low:.1f}x its {low:.3g} at lr {low_lr:.3g}): look at the curve before using it; if the "
                f"loss does not fall back soon after the bump, search at or below lr {low_lr:.3g}")

    def to_json(self) -> str:
        """The inputs and the raw losses (6 digits); lrs and the rest are recomputed."""
        data = {name: getattr(self, name) for name in (*self.inputs(), "stopped", "duration_s")}
        data["losses"] = [float(f"{v:.6g}") if math.isfinite(v) else None for v in self.losses]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> "RangeTestResult":
        data = json.loads(text)
        data["losses"] = tuple(math.nan if v is None else float(v) for v in data["losses"])
        return cls(**data)


# --------------------------------------------------------------------------- the curve


def lr_steps(start_lr: float, end_lr: float, iterations: int) -> np.ndarray:
    """The learning rate of each iteration: geometric from start_lr to end_lr (float32)."""
    return np.geomspace(start_lr, end_lr, iterations).astype("float32").astype(float)


def smooth(losses, beta: float) -> np.ndarray:
    """Exponential moving average with bias correction, as the in-graph loop computes it."""
    out = np.empty(len(losses))
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def suggest_lr(lrs, smoothed, rule: str = "min/10", warmup: int = 0) -> tuple[float, float, float]:
    """(the suggestion by `rule`, the lr at the smoothed minimum, the lr of steepest
    descent). Steepest descent is looked for after `warmup` iterations (the moving
    average's own settling) and before the minimum (after it the loss is blowing up)."""
    if rule not in RULES:
        raise UsageError(f"rule must be one of {list(RULES)}, but got {rule!r}.")
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    finite = np.isfinite(smoothed)
    if finite.sum() < 3:
        raise UsageError(f"the range test ran only {int(finite.sum())} finite iterations; lower start_lr.")
    lrs, smoothed = lrs[finite], smoothed[finite]
    best = int(np.argmin(smoothed))
    min_lr = float(lrs[best])
    first = min(warmup, max(0, best - 2))
    if best - first >= 2:
        slope = np.gradient(smoothed[first : best + 1], np.log10(lrs[first : best + 1]))
        steepest_lr = float(lrs[first + int(np.argmin(slope))])
    else:  # the minimum comes too early for a slope: the curve only rises
        steepest_lr = float(lrs[first])
    return (min_lr / 10 if rule == "min/10" else steepest_lr), min_lr, steepest_lr


def find_bump(lrs, smoothed, suggestion: float, warmup: int = 0) -> Bump | None:
    """The bump the `suggestion` sits on, if any: where the smoothed loss at it (at the
    first lr >= it) is more than `BUMP_MARGIN` above the lowest smoothed loss after
    `warmup` iterations and before it."""
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    at = int(np.searchsorted(lrs, suggestion))
    if at <= warmup or at >= len(lrs) or not np.isfinite(smoothed[at]):
        return None
    lowest = warmup + int(np.argmin(smoothed[warmup:at]))
    if smoothed[at] <= (1 + BUMP_MARGIN) * smoothed[lowest]:
        return None
    return Bump(float(smoothed[at]), float(smoothed[lowest]), float(lrs[lowest]))


def run_range_test(model: "keras.Model", train, *, batch_size: int, start_lr: float = DEFAULTS["start_lr"],
                   end_lr: float = DEFAULTS["end_lr"], iterations: int = DEFAULTS["iterations"],
                   beta: float = DEFAULTS["beta"], diverge_factor: float = DEFAULTS["diverge_factor"],
                   seed: int = 0) -> tuple[np.ndarray, str]:
    """Train the compiled `model` on `train` ((x, y) arrays, shuffled with `seed`, or a
    batched tf.data dataset) for up to `iterations` batches, the LR following
    `lr_steps(start_lr, end_lr, iterations)`; return (losses, stopped). The weights and
    the optimizer's state are restored afterwards."""
    from lrsearch.devices import import_tensorflow

    tf = import_tensorflow()
    check_sweep(start_lr=start_lr, end_lr=end_lr, iterations=iterations, batch_size=batch_size, beta=beta,
                 diverge_factor=diverge_factor)
    dataset = _repeated_batches(train, batch_size, seed)
    internals.symbolic_build(model, next(iter(dataset)))  # as the epoch loop does: weights and compiled metrics
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    saved_weights = model.get_weights()
    saved_state = [v.numpy() for v in optimizer.variables]
    # AutoGraph converts the loop below, not Keras' source, as Keras' own trainer traces its steps.
    train_step = tf.autograph.experimental.do_not_convert(model.train_step)
    reset_metrics = tf.autograph.experimental.do_not_convert(model.reset_metrics)

    @tf.function
    def loop(batches, schedule):
        losses = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
        avg, best, stopped = tf.constant(0.0), tf.constant(np.inf, tf.float32), tf.constant(0)
        for step in tf.range(iterations):
            optimizer.learning_rate = schedule[step]
            reset_metrics()  # the loss tracker then holds this batch's loss alone
            loss = tf.cast(train_step(next(batches))["loss"], tf.float32)
            losses = losses.write(step, loss)
            if not tf.math.is_finite(loss):
                stopped = tf.constant(1)
                break
            avg = beta * avg + (1 - beta) * loss
            smoothed = avg / (1 - tf.pow(beta, tf.cast(step + 1, tf.float32)))
            best = tf.minimum(best, smoothed)
            if smoothed > diverge_factor * best:
                stopped = tf.constant(2)
                break
        return losses.stack(), stopped

    try:
        losses, stopped = loop(iter(dataset), tf.constant(lr_steps(start_lr, end_lr, iterations), tf.float32))
    finally:
        model.set_weights(saved_weights)
        for variable, value in zip(optimizer.variables, saved_state):
            variable.assign(value)
        model.reset_metrics()
    return losses.numpy().astype(float), ("end", "nonfinite", "diverged")[int(stopped)]


def _repeated_batches(train, batch_size: int, seed: int):
    from lrsearch.devices import import_tensorflow
    from lrsearch.study import data

    tf = import_tensorflow()

    if isinstance(train, (tuple, list)):
        rows = data.rows(train)
        dataset = tf.data.Dataset.from_tensor_slices(data.as_tuples(train)).shuffle(rows, seed=seed)
        return dataset.batch(min(batch_size, rows), drop_remainder=True).repeat()
    if hasattr(train, "element_spec"):
        return train.repeat()
    return _py_dataset_batches(tf, train)


def _py_dataset_batches(tf, train):
    """A Keras PyDataset's batches in order, pass after pass, as a tf.data dataset."""
    def spec(value):
        value = np.asarray(value)
        return tf.TensorSpec((None, *value.shape[1:]), tf.as_dtype(value.dtype))

    def batch(index):
        value = train[index]
        return tuple(value) if isinstance(value, list) else value

    def batches():
        while True:
            for index in range(len(train)):
                yield batch(index)
            train.on_epoch_end()

    signature = tf.nest.map_structure(spec, batch(0))
    return tf.data.Dataset.from_generator(batches, output_signature=signature)


def find_lr(study: "Study", optimizer: str = "sgd", *, batch_size: int | None = None, momentum: float | None = None,
            start_lr: float = DEFAULTS["start_lr"], end_lr: float = DEFAULTS["end_lr"],
            iterations: int = DEFAULTS["iterations"], rule: str = DEFAULTS["rule"], beta: float = DEFAULTS["beta"],
            diverge_factor: float = DEFAULTS["diverge_factor"]) -> RangeTestResult:
    """The range test of `study`'s model (compiled as a trial is; its builder's own
    `trial.suggest_*` answered by `architecture_trial`) with `optimizer`. SGD's `momentum`
    defaults to 0, the seed tutorial's plain SGD; the batch size defaults to the study's."""
    from lrsearch.devices import import_tensorflow

    import_tensorflow()  # before Keras imports it, noisily
    import keras

    from lrsearch.training import TrialRunner

    settings = study.settings
    batch_size = batch_size or settings.batch_size
    check_inputs(optimizer, momentum=momentum, rule=rule, start_lr=start_lr, end_lr=end_lr, iterations=iterations,
                 batch_size=batch_size, beta=beta, diverge_factor=diverge_factor)
    if optimizer == "sgd" and momentum is None:
        momentum = 0.0
    started = time.perf_counter()
    runner = TrialRunner(study, epochs=1)
    if not isinstance(runner.train, tuple) and batch_size != settings.batch_size:
        raise UsageError(f"{study.path}: data() returns batched datasets, whose batch size "
                         f"({settings.batch_size} by the settings) cannot be changed to {batch_size}.")
    keras.backend.clear_session()
    keras.utils.set_random_seed(settings.seed)
    config = LRConfig(optimizer=optimizer, lr=start_lr, momentum=momentum)
    model = runner.build(architecture_trial(settings.seed), config)
    losses, stopped = run_range_test(model, runner.train, batch_size=batch_size, start_lr=start_lr, end_lr=end_lr,
                                     iterations=iterations, beta=beta, diverge_factor=diverge_factor,
                                     seed=settings.seed)
    return RangeTestResult(
        optimizer=optimizer, batch_size=batch_size, momentum=momentum, start_lr=float(start_lr),
        end_lr=float(end_lr), iterations=int(iterations), beta=float(beta), diverge_factor=float(diverge_factor),
        rule=rule, losses=tuple(float(v) for v in losses), stopped=stopped,
        duration_s=round(time.perf_counter() - started, 3),
    )


def architecture_trial(seed: int):
    """The trial a range test builds its model with: a `build_model` that suggests its own
    parameters (the model's width, say) gets them drawn at random with the study's `seed`,
    the same on every run; one that suggests none gets the model it always builds."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
    finally:
        optuna.logging.set_verbosity(verbosity)


# --------------------------------------------------------------------------- in a child process


def run_isolated(study: "Study", requests: list[dict[str, Any]]) -> list[str]:
    """`find_lr(study, **inputs)` for each of `requests` in a spawned child process (which
    imports TensorFlow and may take a GPU, so the caller does neither); the results as
    JSON text (`RangeTestResult.from_json`)."""
    from lrsearch.study import pickle_study

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from lrsearch.devices import quiet_native_logs

    quiet_native_logs()  # the child inherits the environment
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with internals.without_main_module():  # the child starts in submit()
            done = pool.submit(child_find_lr, str(study.path), pickle_study(study), requests)
        return done.result()


def child_find_lr(study_path: str, study_pickle: bytes | None, requests: list[dict[str, Any]]) -> list[str]:
    """The child's work: load the study (`lrsearch.study._study_file.unpickle_study`), run each
    range test."""
    from lrsearch.devices import import_tensorflow

    import_tensorflow()  # first: the study file may import Keras
    from lrsearch.study import unpickle_study

    study = unpickle_study(study_path, study_pickle)
    return [find_lr(study, **inputs).to_json() for inputs in requests]
