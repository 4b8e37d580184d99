"""A range test's inputs: their defaults, and the checks that refuse a wrong one before
anything is trained or stored."""

from __future__ import annotations

import math

from lrsearch.errors import UsageError

RULES = ("min/10", "steepest")
DEFAULTS = {"start_lr": 1e-7, "end_lr": 10.0, "iterations": 2000, "beta": 0.98, "diverge_factor": 4.0,
            "rule": "min/10"}


def check_inputs(optimizer: str, *, momentum: float | None, rule: str, **sweep: float) -> None:
    """UsageError naming the first of a range test's inputs (`find_lr`'s arguments) that is
    wrong, before anything is trained or stored."""
    from lrsearch.lr import OPTIMIZERS

    if optimizer not in OPTIMIZERS:
        raise UsageError(f"optimizer must be one of {list(OPTIMIZERS)}, but got {optimizer!r}.")
    if rule not in RULES:
        raise UsageError(f"rule must be one of {list(RULES)}, but got {rule!r}.")
    if optimizer != "sgd" and momentum is not None:
        raise UsageError(f"momentum applies to sgd only, but got momentum={momentum} with {optimizer!r}.")
    if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, (int, float))
                                 or not 0 <= momentum < 1):
        raise UsageError(f"momentum must lie in [0, 1), but got {momentum!r}.")
    check_sweep(**sweep)


def check_sweep(*, start_lr: float, end_lr: float, iterations: int, batch_size: int, beta: float,
                diverge_factor: float) -> None:
    """UsageError naming the first wrong input of the learning-rate sweep itself."""
    check_positive(start_lr=start_lr, end_lr=end_lr, iterations=iterations, batch_size=batch_size)
    if end_lr <= start_lr:
        raise UsageError(f"end_lr must be > start_lr, but got end_lr={end_lr} <= start_lr={start_lr}.")
    if not 0 <= beta < 1:
        raise UsageError(f"beta must lie in [0, 1), but got {beta}.")
    if diverge_factor <= 1:
        raise UsageError(f"diverge_factor must be > 1, but got {diverge_factor}.")


def check_positive(**values: float) -> None:
    """UsageError naming the first of `values` that is not a finite number > 0."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise UsageError(f"{name} must be a positive number, but got {value!r}.")
