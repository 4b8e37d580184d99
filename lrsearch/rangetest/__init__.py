"""The LR range test: the test itself and its result (`find_lr`), results kept with the
study and reused by their inputs, and the learning-rate bounds they give a search."""

from lrsearch.rangetest._bounds import (apply_recorded_bounds, bounds_from_find_lr, describe_bounds, narrow_space,
                                       recorded_bounds)
from lrsearch.rangetest._inputs import DEFAULTS, RULES
from lrsearch.rangetest._range_test import RangeTestResult, find_lr, smooth, suggest_lr
from lrsearch.rangetest._store import find_lr_cached, request, stored_result

__all__ = ["DEFAULTS", "RULES", "RangeTestResult", "apply_recorded_bounds", "bounds_from_find_lr", "describe_bounds",
           "find_lr", "find_lr_cached", "narrow_space", "recorded_bounds", "request", "smooth", "stored_result",
           "suggest_lr"]
