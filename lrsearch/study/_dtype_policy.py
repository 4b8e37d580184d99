"""Keras' global dtype policy (mixed precision) as a study sets it. Keras keeps the policy
per thread, and `clear_session` resets it: a study file's
`keras.mixed_precision.set_global_policy("mixed_float16")` at import would reach neither a
lane's thread nor a trial built after a `clear_session`, and would stay set in the caller's
Python session (`lrsearch.retrain` in a notebook), where the next study's models would take
it. So a study records the policy its file's import (or, for `define_study`, the caller)
set (`set_by`), and its builder runs under that policy (`building_under`); the caller's
policy is back after both. Nothing here imports Keras: where the study never did, there is
no policy to keep.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator


def current() -> str | None:
    """The name of this thread's global dtype policy; None where Keras is not imported."""
    keras = sys.modules.get("keras")
    return keras.mixed_precision.global_policy().name if keras is not None else None


def _set(name: str | None) -> None:
    """Set this thread's global policy to `name` (Keras' default for None), if Keras is imported."""
    keras = sys.modules.get("keras")
    if keras is not None and current() != (name or keras.config.floatx()):
        keras.mixed_precision.set_global_policy(name or keras.config.floatx())


def in_use() -> str | None:
    """This thread's global policy where it is not Keras' default (`define_study` keeps it)."""
    keras = sys.modules.get("keras")
    name = current()
    return name if keras is not None and name != keras.config.floatx() else None


def set_by(run) -> tuple[object, str | None]:
    """Call `run()`; return what it returned and the policy it left set where that is not
    Keras' default (`in_use`), with the policy set back to what it was before."""
    before = current()
    try:
        return run(), in_use()
    finally:
        _set(before)


@contextlib.contextmanager
def building_under(policy: str | None) -> Iterator[None]:
    """Run the block (a builder) under `policy` where one is given, and under this thread's
    policy as it was before, whatever the block set, after it."""
    before = current()
    if policy is not None:
        import keras

        keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        _set(before)
