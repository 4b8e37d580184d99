"""Range-test results kept with the Optuna study (as study user attributes, through
`lrsearch.results._record`): look one up by its inputs, store one, or run one unless stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lrsearch.rangetest._inputs import DEFAULTS, check_inputs
from lrsearch.rangetest._range_test import RangeTestResult, find_lr
from lrsearch.results import read_range_test, write_range_test

if TYPE_CHECKING:
    import optuna

    from lrsearch.study import Study


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
    with `optimizer`; options left out or None take the defaults. UsageError if one is wrong."""
    unknown = sorted(set(options) - {"batch_size", "momentum", *DEFAULTS})
    if unknown:
        raise TypeError(f"unknown range-test option(s) {unknown}.")
    inputs = {"optimizer": optimizer, "batch_size": study.settings.batch_size,
              "momentum": 0.0 if optimizer == "sgd" else None, **DEFAULTS}
    inputs.update({k: v for k, v in options.items() if v is not None})
    check_inputs(**inputs)
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

