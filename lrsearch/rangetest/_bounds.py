"""Narrow the search space around the LR range test's suggestions, record the narrowed
ranges with the study, and give workers (which load the study file themselves) the
space they search."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from lrsearch.errors import UsageError
from lrsearch.lr import Space
from lrsearch.rangetest._inputs import check_positive
from lrsearch.rangetest._range_test import RangeTestResult, find_lr, run_isolated
from lrsearch.rangetest._store import request, store_result, stored_result
from lrsearch.results import read_bounds, write_bounds

if TYPE_CHECKING:
    import optuna

    from lrsearch.study import Study

#: Around a suggestion s, the narrowed ranges: lr in [s/10, 3s], peak_lr in [s/3, 10s].
LR_WINDOW = (1 / 10, 3.0)
PEAK_WINDOW = (1 / 3, 10.0)


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
        check_positive(**{f"the suggestion for {optimizer}": value})
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
        fresh = run_isolated(study, missing) if isolate else \
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

