"""The LR range test (Smith; the 1cycle article in seeds/004): train while the learning
rate grows geometrically, watch the smoothed loss, suggest a learning rate from the
curve; keep results with the Optuna study, draw the curve, and narrow a search space
around the suggestions.

The loop runs inside one `tf.function`: the learning rate is assigned to the
optimizer's variable before each `train_step`, the batch loss is recorded, and the loop
stops once the smoothed loss (exponential moving average, bias-corrected) exceeds
`diverge_factor` times its minimum or turns non-finite. The model's weights and the
optimizer's state are restored afterwards.

Rules (both are computed; `suggestion` follows `rule`):

- ``"min/10"`` (default): a tenth of the learning rate at the smoothed loss' minimum,
  the article's "about 10x below where the loss starts to shoot up" (fastai's
  "minimum"). On blobs with SGD it gives 0.035-0.046 for 7 of 8 seeds.
- ``"steepest"``: where the smoothed loss falls fastest against log(lr), between the
  moving average's warm-up and the minimum. Noisy on small problems.

Either way the result warns when the suggestion sits on a bump: the smoothed loss there
is more than `BUMP_MARGIN` (25%) above its lowest at the lower learning rates before it
(after the warm-up). On a clean curve the suggestion lies on the falling part, at that
lowest value: 0.99-1.01x it for Adam and RMSprop on blobs (4 seeds each). Plain SGD on
blobs climbs to 1.8-3.5x it around 0.035-0.046, a transient that falls again before the
minimum at ~0.4, so min/10 lands on top of it (all 4 seeds warn); Adagrad, suggesting
~1, sits at 1.1-1.4x (1 seed of 4 warns).

Why 2000 iterations by default, not "a few hundred": a blobs epoch is 16 batches. With
300 iterations over 1e-7..10 the model spends ~40 iterations per decade and is still
in its high-loss start-up state when the LR passes 0.03, where plain SGD spikes; the
test then measures that transient and min/10 gives ~0.001, 100x below what trains
best. With 2000 iterations (250 per decade) the model learns at the useful LRs first,
and the in-graph loop still costs under a second on a CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import numpy as np

from lrsearch.config import LRConfig
from lrsearch.errors import UsageError
from lrsearch.record import range_test_key, read_bounds, read_range_test, write_bounds, write_range_test
from lrsearch.space import Space

if TYPE_CHECKING:
    import keras
    import optuna

    from lrsearch.studyfile import Study

RULES = ("min/10", "steepest")
#: Around a suggestion s, the narrowed ranges: lr in [s/10, 3s], peak_lr in [s/3, 10s].
LR_WINDOW = (1 / 10, 3.0)
PEAK_WINDOW = (1 / 3, 10.0)
#: How far above the lowest smoothed loss at lower learning rates the smoothed loss at the
#: suggestion must lie to count as a bump: 25%, far above the moving average's noise
#: (about 1% on clean curves) and what one sees as a rise on the figure.
BUMP_MARGIN = 0.25
DEFAULTS = {"start_lr": 1e-7, "end_lr": 10.0, "iterations": 2000, "beta": 0.98, "diverge_factor": 4.0,
            "rule": "min/10"}


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
        warmup = round(1 / (1 - self.beta))
        suggestion, min_lr, steepest_lr = suggest_lr(lrs, smoothed, self.rule, warmup=warmup)
        for name, value in (("lrs", tuple(float(v) for v in lrs)), ("smoothed", tuple(float(v) for v in smoothed)),
                            ("suggestion", suggestion), ("min_lr", min_lr), ("steepest_lr", steepest_lr),
                            ("bump", find_bump(lrs, smoothed, suggestion, warmup))):
            object.__setattr__(self, name, value)

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
        """One line on the bump the suggestion sits on, and what to do; None without one."""
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
    import tensorflow as tf

    _check_positive(start_lr=start_lr, end_lr=end_lr, iterations=iterations, batch_size=batch_size)
    if end_lr <= start_lr:
        raise UsageError(f"end_lr must be > start_lr, but got end_lr={end_lr} <= start_lr={start_lr}.")
    if not 0 <= beta < 1:
        raise UsageError(f"beta must lie in [0, 1), but got {beta}.")
    if diverge_factor <= 1:
        raise UsageError(f"diverge_factor must be > 1, but got {diverge_factor}.")
    dataset = _repeated_batches(train, batch_size, seed)
    model._symbolic_build(data_batch=next(iter(dataset)))  # as fastfit: weights and compiled metrics
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    saved_weights = model.get_weights()
    saved_state = [v.numpy() for v in optimizer.variables]

    @tf.function
    def loop(batches, schedule):
        losses = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
        avg, best, stopped = tf.constant(0.0), tf.constant(np.inf, tf.float32), tf.constant(0)
        for step in tf.range(iterations):
            optimizer.learning_rate = schedule[step]
            model.reset_metrics()  # the loss tracker then holds this batch's loss alone
            loss = tf.cast(model.train_step(next(batches))["loss"], tf.float32)
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
    import tensorflow as tf

    if isinstance(train, (tuple, list)):
        rows = len(train[0])
        dataset = tf.data.Dataset.from_tensor_slices(tuple(train)).shuffle(rows, seed=seed)
        return dataset.batch(min(batch_size, rows), drop_remainder=True).repeat()
    return train.repeat()


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise UsageError(f"{name} must be a positive number, but got {value!r}.")


def find_lr(study: "Study", optimizer: str = "sgd", *, batch_size: int | None = None, momentum: float | None = None,
            start_lr: float = DEFAULTS["start_lr"], end_lr: float = DEFAULTS["end_lr"],
            iterations: int = DEFAULTS["iterations"], rule: str = DEFAULTS["rule"], beta: float = DEFAULTS["beta"],
            diverge_factor: float = DEFAULTS["diverge_factor"]) -> RangeTestResult:
    """The range test of `study`'s model (built with an empty FixedTrial and compiled
    as a trial is) with `optimizer`. SGD's `momentum` defaults to 0, the seed tutorial's
    plain SGD; the batch size defaults to the study's."""
    import keras
    import optuna

    from lrsearch.runner import TrialRunner

    if rule not in RULES:
        raise UsageError(f"rule must be one of {list(RULES)}, but got {rule!r}.")
    if optimizer != "sgd" and momentum is not None:
        raise UsageError(f"momentum applies to sgd only, but got momentum={momentum} with {optimizer!r}.")
    if optimizer == "sgd" and momentum is None:
        momentum = 0.0
    started = time.perf_counter()
    settings = study.settings
    batch_size = batch_size or settings.batch_size
    runner = TrialRunner(study, epochs=1)
    if not isinstance(runner.train, tuple) and batch_size != settings.batch_size:
        raise UsageError(f"{study.path}: data() returns batched datasets, whose batch size "
                         f"({settings.batch_size} by the settings) cannot be changed to {batch_size}.")
    keras.backend.clear_session()
    keras.utils.set_random_seed(settings.seed)
    model = runner.build(optuna.trial.FixedTrial({}), LRConfig(optimizer=optimizer, lr=start_lr, momentum=momentum))
    losses, stopped = run_range_test(model, runner.train, batch_size=batch_size, start_lr=start_lr, end_lr=end_lr,
                                     iterations=iterations, beta=beta, diverge_factor=diverge_factor,
                                     seed=settings.seed)
    return RangeTestResult(
        optimizer=optimizer, batch_size=batch_size, momentum=momentum, start_lr=float(start_lr),
        end_lr=float(end_lr), iterations=int(iterations), beta=float(beta), diverge_factor=float(diverge_factor),
        rule=rule, losses=tuple(float(v) for v in losses), stopped=stopped,
        duration_s=round(time.perf_counter() - started, 3),
    )


# --------------------------------------------------------------------------- kept with the study


def stored_result(optuna_study: "optuna.Study", optimizer: str, batch_size: int,
                  inputs: dict[str, Any] | None = None) -> RangeTestResult | None:
    """The result stored with the study for this optimizer and batch size, if there is
    one and (when `inputs` are given) it was made with those inputs."""
    text = read_range_test(optuna_study, optimizer, batch_size)
    if text is None:
        return None
    result = RangeTestResult.from_json(text)
    if inputs is not None and any(result.inputs()[k] != v for k, v in inputs.items()):
        return None
    return result


def store_result(optuna_study: "optuna.Study", result: RangeTestResult) -> str:
    """Record `result` as a study user attribute; return its key."""
    return write_range_test(optuna_study, result.optimizer, result.batch_size, result.to_json())


def request(study: "Study", optimizer: str, **options: Any) -> dict[str, Any]:
    """The complete inputs (`find_lr`'s keyword arguments) of a range test of `study`
    with `optimizer`; options left out or None take the defaults."""
    unknown = sorted(set(options) - {"batch_size", "momentum", *DEFAULTS})
    if unknown:
        raise TypeError(f"unknown range-test option(s) {unknown}.")
    inputs = {"optimizer": optimizer, "batch_size": study.settings.batch_size,
              "momentum": 0.0 if optimizer == "sgd" else None, **DEFAULTS}
    inputs.update({k: v for k, v in options.items() if v is not None})
    return inputs


def find_lr_cached(study: "Study", optuna_study: "optuna.Study", optimizer: str, *, recompute: bool = False,
                   **options: Any) -> tuple[RangeTestResult, bool]:
    """(result, reused): the result stored with the study for the same inputs, else a
    fresh range test, then stored."""
    inputs = request(study, optimizer, **options)
    found = None if recompute else stored_result(optuna_study, optimizer, inputs["batch_size"], inputs)
    if found is not None:
        return found, True
    result = find_lr(study, **inputs)
    store_result(optuna_study, result)
    return result, False


# --------------------------------------------------------------------------- narrowing the space


def narrow_space(space: Space, suggestions: dict[str, float]) -> Space:
    """`space` with `lr` and `peak_lr` narrowed around the per-optimizer suggestions.

    Each suggestion s gives the windows lr in [s/10, 3s] and peak_lr in [s/3, 10s]
    (1cycle starts at peak/div, so its peak sits above a constant LR). `Space` holds one
    `lr` range for every optimizer and TPE samples it as one parameter, so the range
    becomes the union of the optimizers' windows: it keeps each optimizer's good region
    (an intersection can be empty: Adam's and SGD's windows barely overlap) at the cost
    of allowing some cross pairs, e.g. SGD at Adam's lowest LR. The result is clipped to
    the study's own range; a fixed range stays as it is, and a window that misses the
    study's range entirely leaves that range unchanged.
    """
    if not suggestions:
        raise UsageError("narrow_space needs at least one suggestion, but got none.")
    for optimizer, value in suggestions.items():
        _check_positive(**{f"the suggestion for {optimizer}": value})
    changes = {}
    for name, (below, above) in (("lr", LR_WINDOW), ("peak_lr", PEAK_WINDOW)):
        low, high = getattr(space, name)
        window = (min(s * below for s in suggestions.values()), max(s * above for s in suggestions.values()))
        clipped = (max(low, window[0]), min(high, window[1]))
        if low < high and clipped[0] < clipped[1]:
            changes[name] = clipped
    return space.replace(**changes)


def bounds_from_find_lr(study: "Study", optuna_study: "optuna.Study", *, isolate: bool = True,
                        echo: Callable[[str], None] = print, **options: Any) -> Space:
    """Run (or reuse) the range test once per optimizer of `study`'s space, narrow
    `lr` and `peak_lr` around the suggestions, print the ranges with `echo` and record
    them as the study user attribute "find_lr_bounds"; return the narrowed space.

    `isolate` runs missing range tests in a spawned child process, so that a caller
    without TensorFlow (the `lrsearch run` supervisor) neither imports it nor holds a
    GPU. `options` are `find_lr`'s (batch_size, iterations, rule...).
    """
    results: dict[str, RangeTestResult] = {}
    missing = []
    for optimizer in study.space.optimizers:
        inputs = request(study, optimizer, **options)
        found = stored_result(optuna_study, optimizer, inputs["batch_size"], inputs)
        if found is None:
            missing.append(inputs)
        else:
            results[optimizer] = found
    if missing:
        echo(f"LR range test for {', '.join(m['optimizer'] for m in missing)} "
             f"(batch {missing[0]['batch_size']}, {missing[0]['iterations']} iterations)...")
        fresh = _run_isolated(str(study.path), missing) if isolate else \
            [find_lr(study, **inputs).to_json() for inputs in missing]
        for text in fresh:
            result = RangeTestResult.from_json(text)
            store_result(optuna_study, result)
            results[result.optimizer] = result
    ran = {inputs["optimizer"] for inputs in missing}
    for optimizer in study.space.optimizers:
        echo(f"  {results[optimizer].describe()}" + ("" if optimizer in ran else " [stored]"))
        if results[optimizer].warning():
            echo(f"    {results[optimizer].warning()}")
    narrowed = narrow_space(study.space, {o: r.suggestion for o, r in results.items()})
    record = {
        "lr": list(narrowed.lr), "peak_lr": list(narrowed.peak_lr),
        "study_lr": list(study.space.lr), "study_peak_lr": list(study.space.peak_lr),
        "suggestions": {o: r.suggestion for o, r in results.items()},
        "rule": next(iter(results.values())).rule, "batch_size": next(iter(results.values())).batch_size,
        "windows": {"lr": list(LR_WINDOW), "peak_lr": list(PEAK_WINDOW), "combined": "union, clipped"},
    }
    write_bounds(optuna_study, record)
    echo(f"Narrowed by the range test: {describe_bounds(record)}.")
    return narrowed


def describe_bounds(record: dict[str, Any]) -> str:
    """The narrowed ranges of a `bounds_from_find_lr` record and the study's own."""
    return (f"lr {_span(record['lr'])} (was {_span(record['study_lr'])}), "
            f"peak_lr {_span(record['peak_lr'])} (was {_span(record['study_peak_lr'])})")


def recorded_bounds(study: "Study", optuna_study: "optuna.Study") -> tuple[dict | None, bool]:
    """(the record `bounds_from_find_lr` left with `optuna_study` or None, whether it
    applies to `study`: it does while the study file's lr and peak_lr ranges are those
    it was narrowed from; an edited file's own ranges win)."""
    record = read_bounds(optuna_study)
    if not record:
        return None, False
    fresh = (tuple(record["study_lr"]) == tuple(study.space.lr)
             and tuple(record["study_peak_lr"]) == tuple(study.space.peak_lr))
    return record, fresh


def apply_recorded_bounds(study: "Study", optuna_study: "optuna.Study") -> "Study":
    """`study` with the ranges `bounds_from_find_lr` recorded with `optuna_study`, if
    any apply (for worker processes, which load the study file themselves)."""
    record, fresh = recorded_bounds(study, optuna_study)
    if not fresh:
        return study
    space = study.space.replace(lr=tuple(record["lr"]), peak_lr=tuple(record["peak_lr"]))
    return dataclasses.replace(study, space=space)


def _span(pair: tuple[float, float]) -> str:
    return f"[{pair[0]:.3g}, {pair[1]:.3g}]"


def _run_isolated(study_path: str, requests: list[dict[str, Any]]) -> list[str]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_child_find_lr, study_path, requests).result()


def _child_find_lr(study_path: str, requests: list[dict[str, Any]]) -> list[str]:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lrsearch.devices import import_tensorflow
    from lrsearch.studyfile import load_study

    import_tensorflow()

    study = load_study(study_path)
    return [find_lr(study, **inputs).to_json() for inputs in requests]


# --------------------------------------------------------------------------- drawing


def curve_paths(result: RangeTestResult, out_dir: str | Path) -> tuple[Path, Path]:
    stem = f"find_lr-{result.optimizer}-b{result.batch_size}"
    return Path(out_dir) / f"{stem}.png", Path(out_dir) / f"{stem}.html"


def save_curve(result: RangeTestResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write the loss-against-LR curve (log axis, suggestion marked) as PNG and as an
    HTML page (plotly.min.js beside it, so it opens offline); return both paths."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    png, html = curve_paths(result, out_dir)
    lrs = np.asarray(result.lrs)
    losses, smoothed = np.asarray(result.losses), np.asarray(result.smoothed)
    # The blow-up would flatten the rest of the curve: show at most twice the starting loss.
    finite = losses[np.isfinite(losses)]
    ylim = (0.9 * np.nanmin(smoothed), min(1.05 * finite.max(), 2 * smoothed[0]))
    title = (f"LR range test: {result.optimizer}, batch {result.batch_size} - "
             f"suggested lr {result.suggestion:.3g} ({result.rule})")
    _draw_png(png, lrs, losses, smoothed, result, ylim, title)
    _draw_html(html, lrs, losses, smoothed, result, ylim, title)
    return png, html


def _draw_png(path, lrs, losses, smoothed, result, ylim, title) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot(lrs, losses, color="#b0b0b0", linewidth=0.8, label="batch loss")
    ax.plot(lrs, smoothed, color="#1f77b4", linewidth=2, label=f"smoothed (EMA, beta {result.beta:g})")
    ax.axvline(result.suggestion, color="#d62728", linestyle="--",
               label=f"suggestion {result.suggestion:.3g} ({result.rule})")
    ax.axvline(result.min_lr, color="#2ca02c", linestyle=":", label=f"minimum {result.min_lr:.3g}")
    ax.set_xscale("log")
    ax.set_ylim(*ylim)
    ax.set_xlabel("learning rate (log)")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    figure.savefig(path, dpi=110)


def _draw_html(path, lrs, losses, smoothed, result, ylim, title) -> None:
    import plotly.graph_objects as go

    figure = go.Figure([
        go.Scatter(x=lrs, y=losses, name="batch loss", line={"color": "#b0b0b0", "width": 1}),
        go.Scatter(x=lrs, y=smoothed, name=f"smoothed (EMA, beta {result.beta:g})",
                   line={"color": "#1f77b4", "width": 2}),
    ])
    figure.add_vline(x=result.suggestion, line_dash="dash", line_color="#d62728",
                     annotation_text=f"suggestion {result.suggestion:.3g}")
    figure.add_vline(x=result.min_lr, line_dash="dot", line_color="#2ca02c",
                     annotation_text=f"minimum {result.min_lr:.3g}", annotation_position="bottom right")
    figure.update_layout(title=title, xaxis={"type": "log", "title": "learning rate (log)"},
                         yaxis={"title": "training loss", "range": list(ylim)}, template="plotly_white")
    # plotly.min.js once beside the pages (offline, and not 4.7 MB per optimizer)
    figure.write_html(path, include_plotlyjs="directory", full_html=True, auto_open=False)
