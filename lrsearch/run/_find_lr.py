"""`lrsearch find-lr` as a library call: the LR range test of a study for each optimizer,
answered from the study's storage where it was run with the same inputs before, its curve
written, and what it suggests printed."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrsearch.errors import UsageError
from lrsearch.storage import DEFAULT_STORAGE

if TYPE_CHECKING:
    from lrsearch.rangetest import RangeTestResult


@dataclasses.dataclass(frozen=True)
class RangeTestRun:
    """One optimizer's range test: its result, whether it was `reused` from the storage,
    and its curve as PNG and HTML."""

    result: RangeTestResult
    reused: bool
    png: Path
    html: Path


def find_lr(study_file: "str | os.PathLike | Any", *, storage: str = DEFAULT_STORAGE, study_name: str | None = None,
            optimizers: list[str] | tuple[str, ...] | None = None, out: str | os.PathLike | None = None,
            recompute: bool = False, batch_size: int | None = None, momentum: float | None = None,
            start_lr: float | None = None, end_lr: float | None = None, iterations: int | None = None,
            rule: str | None = None, verbose: bool = True) -> list[RangeTestRun]:
    """Run the LR range test of `study_file` (a path or a loaded study) for each of
    `optimizers` (default: the study's space's), or reuse the result stored with the study
    `study_name` in `storage` for the same inputs (unless `recompute`); store each result
    there and write its curve to `out` (default: ./lrsearch-find-lr-STUDY_NAME). Options
    left None take the range test's defaults. `verbose` prints each suggestion, its
    warning, its curve and where it is stored."""
    from lrsearch.devices import import_tensorflow

    import_tensorflow()  # first: the study file may import Keras, the test trains here
    import optuna

    from lrsearch.rangetest import find_lr_cached, request
    from lrsearch.report import check_writable, save_curve
    from lrsearch.storage import open_study, redact
    from lrsearch.study import Study, file_stem, load_study, resolve_study

    study = study_file if isinstance(study_file, Study) else load_study(study_file)
    options = {"batch_size": batch_size, "momentum": momentum, "start_lr": start_lr, "end_lr": end_lr,
               "iterations": iterations, "rule": rule}
    optimizers = _check(study, options, optimizers)
    for optimizer in optimizers:
        request(study, optimizer, **options)  # every input checked before the storage is touched
    name = resolve_study(study, study_name=study_name).study_name
    out = out or f"lrsearch-find-lr-{file_stem(name)}"
    check_writable(out)
    storage = os.fspath(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna_study = open_study(storage, name, direction=study.settings.direction)
    runs = []
    for optimizer in optimizers:
        result, reused = find_lr_cached(study, optuna_study, optimizer, recompute=recompute, **options)
        runs.append(RangeTestRun(result, reused, *save_curve(result, out)))
        if verbose:
            print(result.describe())
            if result.warning():
                print(f"  {result.warning()}")
            print(f"  curve: {runs[-1].png}  {runs[-1].html}")
            print(f"  {'reused' if reused else 'stored as'} study user attribute {result.key!r} "
                  f"(study {name!r} in {redact(storage)})" + ("; --recompute runs it again" if reused else ""))
    return runs


def _check(study, options: dict[str, Any], optimizers) -> list[str]:
    """The optimizers to test; UsageError for an option out of range, or momentum for
    another optimizer than SGD."""
    for key in ("batch_size", "start_lr", "end_lr", "iterations"):
        value = options[key]
        if value is not None and value <= 0:
            raise UsageError(f"--{key.replace('_', '-')} must be > 0, but got {value}.")
    optimizers = [optimizers] if isinstance(optimizers, str) else list(optimizers or study.space.optimizers)
    if options["momentum"] is not None and optimizers != ["sgd"]:
        raise UsageError(f"--momentum applies to sgd only; add --optimizer sgd (testing {', '.join(optimizers)}).")
    return optimizers
